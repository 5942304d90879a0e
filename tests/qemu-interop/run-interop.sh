#!/usr/bin/env bash
# QEMU interop: stock QEMU's -device x-pci-proxy-dev against an mpdev-remote
# emulating edu, driven by a Linux guest under TCG (see docs/qemu.md), one of
# two ways:
#
#   run-interop.sh BUILD_DIR [proxy|direct]
#
#   proxy   (the default) QEMU -> mpdev-proxy -> mpdev-remote (native protocol)
#   direct  QEMU -> mpdev-remote --face mpqemu: the remote itself is what
#           x-pci-proxy-dev's fd is connected to
#
# 1. proxy: mpdev-proxy --listen SOCK --spawn-remote --device edu; direct:
#    mpdev-remote --socket SOCK --face mpqemu --device edu. QEMU started
#    through mpdev-connect, which hands it the connection as fd 3:
#      qemu-system-x86_64 -machine pc,accel=tcg,memory-backend=RAM -m 512M
#        -object memory-backend-memfd,id=RAM,size=512M,share=on -nodefaults
#        -device x-pci-proxy-dev,id=edu0,fd=3 -kernel ... -initrd ...
#        -append "... memmap=1M$0x8000000"
#    The guest (guest-init.sh, busybox only) checks ids and BAR, ident,
#    liveness, factorial through MMIO, turns bus mastering on and verifies a
#    DMA guest RAM -> edu -> guest RAM; it prints "QEMU INTEROP RESULT: PASS".
# 2. QEMU without shareable RAM: mpdev-proxy (or the remote, direct) must say
#    what to change.
#
# Interrupts are not tested here: under TCG QEMU's x-pci-proxy-dev cannot
# wire its irqfds (that needs KVM); test_proxy, test_mpqemu_face and
# test_kvm_irq cover INTx.
#
# Exit status: 0 pass; 77 skipped (no QEMU or no guest packages, with the
# reason); 1 fail. Uses the vfio-lab's guest kit and package cache
# (BUILD_DIR/vfio-lab/cache); everything of one run lands in
# BUILD_DIR/qemu-interop/ (BUILD_DIR/qemu-interop-direct/ for direct):
# serial.log, qemu.log, proxy.log (the serving side's log: mpdev-proxy's and
# its remote's, or the remote's alone), initrd.gz, vmlinuz.
#
# Environment:
#   LAB_KERNEL_PKG   kernel package (default linux-image-6.12.117+deb12-cloud-amd64)
#   LAB_DEB_DIR      a directory of already downloaded .deb files to try first
#   INTEROP_TIMEOUT  hard limit for the guest run, seconds (default 180)
#   INTEROP_PROXY_VERBOSE  mpdev-proxy's (direct: mpdev-remote's) verbosity
#                    (default -v; -vv logs every message)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

usage() { echo "usage: run-interop.sh BUILD_DIR [proxy|direct]" >&2; exit 2; }
[ $# -eq 1 ] || [ $# -eq 2 ] || usage
build_dir=$(realpath "$1")
mode=${2:-proxy}
case $mode in
proxy) run_dir=$build_dir/qemu-interop tag=qemu-interop ;;
direct) run_dir=$build_dir/qemu-interop-direct tag=qemu-interop-direct ;;
*) usage ;;
esac
kernel_pkg=${LAB_KERNEL_PKG:-linux-image-6.12.117+deb12-cloud-amd64}
guest_timeout=${INTEROP_TIMEOUT:-180}
mkdir -p "$run_dir"
serial=$run_dir/serial.log
qemu_log=$run_dir/qemu.log
proxy_log=$run_dir/proxy.log
sock=$run_dir/$mode.sock
# shellcheck source=SCRIPTDIR/interop-lib.sh
. "$here/interop-lib.sh"

# Every process of ours ends on every way out: QEMU (under timeout, with a
# parent-death signal where setpriv has one), then mpdev-proxy, which reaps
# the mpdev-remote it started (the remote also exits when its socket closes),
# or (direct) the listening mpdev-remote.
qemu_pid='' proxy_pid=''
cleanup() {
	stop "$qemu_pid"
	qemu_pid=
	stop "$proxy_pid"
	proxy_pid=
	rm -f "$sock"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

interop_prepare

# What serves QEMU: mpdev-proxy with a remote of its own, or the remote alone.
if [ "$mode" = direct ]; then
	serve_cmd=("$remote_bin" --socket "$sock" --face mpqemu --device edu "${INTEROP_PROXY_VERBOSE:--v}")
	served_by="x-pci-proxy-dev -> mpdev-remote --face mpqemu"
	server_name=mpdev-remote
else
	serve_cmd=("$proxy_bin" --listen "$sock" --spawn-remote --device edu "${INTEROP_PROXY_VERBOSE:--v}")
	served_by="x-pci-proxy-dev -> mpdev-proxy -> mpdev-remote"
	server_name=mpdev-proxy
fi

# Starts the serving side listening at $sock in the background, logging to $1.
start_proxy() {
	rm -f "$sock"
	"${pdeath[@]}" "${serve_cmd[@]}" </dev/null 2>"$1" &
	proxy_pid=$!
	# The remote binds its socket once it is set up; mpdev-connect --wait covers the gap.
}

# Waits up to $1 s for the serving side to exit; its status in proxy_rc. The
# proxy exits when QEMU's connection ends; a listening remote serves the next
# QEMU until it is told to stop, so (direct) it is sent SIGTERM first.
wait_proxy() {
	if [ "$mode" = direct ] && kill -0 "$proxy_pid" 2>/dev/null; then
		kill -TERM "$proxy_pid" 2>/dev/null || true
	fi
	for _ in $(seq $(($1 * 10))); do
		kill -0 "$proxy_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$proxy_pid" 2>/dev/null && return 1
	proxy_rc=0
	wait "$proxy_pid" || proxy_rc=$?
	proxy_pid=
	return 0
}

# --- 1. the guest drives edu through x-pci-proxy-dev ------------------------------------
interop_qemu_cmd "$serial"
say "$qemu_version"
say "serving: ${serve_cmd[*]}"
say "booting: $connect_bin --wait 10 $sock -- ${qemu_cmd[*]}"
rm -f "$serial"
t0=$(date +%s.%N)
start_proxy "$proxy_log"
"${pdeath[@]}" timeout -k 5 "$guest_timeout" "${pdeath[@]}" \
	"$connect_bin" --wait 10 "$sock" -- "${qemu_cmd[@]}" </dev/null >"$qemu_log" 2>&1 &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
t_guest=$(elapsed "$t0")
# QEMU is gone: the proxy sees the connection end and exits 0 (the remote, on SIGTERM).
wait_proxy 10 || fail "$server_name did not exit after QEMU did"

[ -f "$serial" ] || touch "$serial"
log=$run_dir/serial.txt
tr -d '\r' <"$serial" >"$log"
echo "--- guest console from /init on:"
sed -n '/^interop-guest: reached/,$p' "$log"
echo "--- $server_name ($proxy_log):"
cat "$proxy_log"
echo "---"

why=
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	why="the guest did not power off within $guest_timeout s"
elif [ $rc -ne 0 ]; then
	why="QEMU (or mpdev-connect) exited with status $rc"
elif ! grep -q '^interop-guest: reached /init' "$log"; then
	why="the guest never reached /init"
elif grep -q '^QEMU INTEROP RESULT: FAIL' "$log"; then
	why=$(grep -m1 '^QEMU INTEROP RESULT: FAIL' "$log")
elif ! grep -q '^QEMU INTEROP RESULT: PASS$' "$log"; then
	why="the guest printed no result"
elif [ "$proxy_rc" -ne 0 ]; then
	why="$server_name exited with status $proxy_rc"
elif grep -E ': (error|warn): ' "$proxy_log" | grep -v -q 'running as root'; then
	why="$server_name logged a problem"
elif [ "$mode" = direct ] && ! grep -q 'guest memory table: .* installed' "$proxy_log"; then
	why="the remote never installed QEMU's memory table"
fi
if [ -n "$why" ]; then
	if [ -s "$qemu_log" ]; then
		echo "--- QEMU stderr ($qemu_log), last lines:"
		tail -n 20 "$qemu_log"
	fi
	if ! grep -q '^interop-guest: reached' "$log"; then
		echo "--- serial log ($serial), last lines:"
		tail -n 40 "$log"
	fi
	fail "$why"
fi
say "the guest drove edu through $served_by: PASS"
say "interrupts: not tested in this tier - under TCG, QEMU's x-pci-proxy-dev cannot wire" \
	"its irqfds (that needs KVM); INTx is tested by test_proxy and test_kvm_irq"

# --- 2. QEMU without shareable RAM: the user is told what to change ---------------------
t0=$(date +%s.%N)
nomem_log=$run_dir/proxy-no-shared-ram.log
rm -f "$nomem_log"
start_proxy "$nomem_log"
"${pdeath[@]}" timeout -k 5 60 "${pdeath[@]}" "$connect_bin" --wait 10 "$sock" -- \
	qemu-system-x86_64 -machine pc,accel=tcg -m 128M -nodefaults -display none \
	-monitor none -S -device x-pci-proxy-dev,id=edu0,fd=3 \
	</dev/null >"$run_dir/qemu-no-shared-ram.log" 2>&1 &
qemu_pid=$!
hint=
for _ in $(seq 300); do
	hint=$(grep -m1 'guest RAM is not shareable' "$nomem_log" || true)
	[ -z "$hint" ] || break
	kill -0 "$qemu_pid" 2>/dev/null || break
	sleep 0.1
done
stop "$qemu_pid"
qemu_pid=
wait_proxy 10 || fail "$server_name did not exit after QEMU (without shareable RAM) did"
[ -n "$hint" ] || {
	cat "$nomem_log"
	fail "without shareable guest RAM $server_name did not say what to change"
}
say "QEMU without shareable RAM: $server_name says:"
echo "  ${hint#*warn: }"
grep -q 'memory-backend-memfd,id=RAM,size=<RAM size>,share=on' <<<"$hint" ||
	fail "the hint lacks the memory-backend-memfd option"
t_nomem=$(elapsed "$t0")

say "timings: packages ${t_prep} s, initramfs ${t_image} s, guest ${t_guest} s," \
	"no-shared-RAM check ${t_nomem} s, total $(elapsed "$t_start") s"
say "PASS"
