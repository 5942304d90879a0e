#!/usr/bin/env bash
# QEMU interop: stock QEMU's -device x-pci-proxy-dev, served by mpdev-proxy
# and an mpdev-remote emulating edu, driven by a Linux guest under TCG (see
# docs/qemu.md).
#
#   run-interop.sh BUILD_DIR
#
# 1. mpdev-proxy --listen SOCK --spawn-remote --device edu; QEMU started
#    through mpdev-connect, which hands it the connection as fd 3:
#      qemu-system-x86_64 -machine pc,accel=tcg,memory-backend=RAM -m 512M
#        -object memory-backend-memfd,id=RAM,size=512M,share=on -nodefaults
#        -device x-pci-proxy-dev,id=edu0,fd=3 -kernel ... -initrd ...
#        -append "... memmap=1M$0x8000000"
#    The guest (guest-init.sh, busybox only) checks ids and BAR, ident,
#    liveness, factorial through MMIO, turns bus mastering on and verifies a
#    DMA guest RAM -> edu -> guest RAM; it prints "QEMU INTEROP RESULT: PASS".
# 2. QEMU without shareable RAM: mpdev-proxy must say what to change.
#
# Interrupts are not tested here: under TCG QEMU's x-pci-proxy-dev cannot
# wire its irqfds (that needs KVM); test_proxy and test_kvm_irq cover INTx.
#
# Exit status: 0 pass; 77 skipped (no QEMU or no guest packages, with the
# reason); 1 fail. Uses the vfio-lab's guest kit and package cache
# (BUILD_DIR/vfio-lab/cache); everything of one run lands in
# BUILD_DIR/qemu-interop/: serial.log, qemu.log, proxy.log, initrd.gz, vmlinuz.
#
# Environment:
#   LAB_KERNEL_PKG   kernel package (default linux-image-6.12.117+deb12-cloud-amd64)
#   LAB_DEB_DIR      a directory of already downloaded .deb files to try first
#   INTEROP_TIMEOUT  hard limit for the guest run, seconds (default 180)
#   INTEROP_PROXY_VERBOSE  mpdev-proxy's verbosity (default -v; -vv logs every message)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

[ $# -eq 1 ] || { echo "usage: run-interop.sh BUILD_DIR" >&2; exit 2; }
build_dir=$(realpath "$1")
kernel_pkg=${LAB_KERNEL_PKG:-linux-image-6.12.117+deb12-cloud-amd64}
guest_timeout=${INTEROP_TIMEOUT:-180}
run_dir=$build_dir/qemu-interop
mkdir -p "$run_dir"
serial=$run_dir/serial.log
qemu_log=$run_dir/qemu.log
proxy_log=$run_dir/proxy.log
sock=$run_dir/proxy.sock
tag=qemu-interop
# shellcheck source=SCRIPTDIR/interop-lib.sh
. "$here/interop-lib.sh"

# Every process of ours ends on every way out: QEMU (under timeout, with a
# parent-death signal where setpriv has one), then mpdev-proxy, which reaps
# the mpdev-remote it started (the remote also exits when its socket closes).
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

# Starts mpdev-proxy --listen $sock in the background, logging to $1.
start_proxy() {
	rm -f "$sock"
	"${pdeath[@]}" "$proxy_bin" --listen "$sock" --spawn-remote --device edu "${INTEROP_PROXY_VERBOSE:--v}" \
		</dev/null 2>"$1" &
	proxy_pid=$!
}

# Waits up to $1 s for the proxy to exit; its status in proxy_rc.
wait_proxy() {
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
say "proxy:   $proxy_bin --listen $sock --spawn-remote --device edu -v"
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
# QEMU is gone: the proxy sees the connection end and exits 0.
wait_proxy 10 || fail "mpdev-proxy did not exit after QEMU did"

[ -f "$serial" ] || touch "$serial"
log=$run_dir/serial.txt
tr -d '\r' <"$serial" >"$log"
echo "--- guest console from /init on:"
sed -n '/^interop-guest: reached/,$p' "$log"
echo "--- mpdev-proxy and mpdev-remote ($proxy_log):"
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
	why="mpdev-proxy exited with status $proxy_rc"
elif grep -E ': (error|warn): ' "$proxy_log" | grep -v -q 'running as root'; then
	why="mpdev-proxy or mpdev-remote logged a problem"
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
say "the guest drove edu through x-pci-proxy-dev -> mpdev-proxy -> mpdev-remote: PASS"
say "interrupts: not tested in this tier - under TCG, QEMU's x-pci-proxy-dev cannot wire" \
	"its irqfds (that needs KVM); INTx is tested by test_proxy and test_kvm_irq"

# --- 2. QEMU without shareable RAM: the user is told what to change ---------------------
t0=$(date +%s.%N)
nomem_log=$run_dir/proxy-no-shared-ram.log
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
wait_proxy 10 || fail "mpdev-proxy did not exit after QEMU (without shareable RAM) did"
[ -n "$hint" ] || {
	cat "$nomem_log"
	fail "without shareable guest RAM mpdev-proxy did not say what to change"
}
say "QEMU without shareable RAM: mpdev-proxy says:"
echo "  ${hint#*warn: }"
grep -q 'memory-backend-memfd,id=RAM,size=<RAM size>,share=on' <<<"$hint" ||
	fail "the hint lacks the memory-backend-memfd option"
t_nomem=$(elapsed "$t0")

say "timings: packages ${t_prep} s, initramfs ${t_image} s, guest ${t_guest} s," \
	"no-shared-RAM check ${t_nomem} s, total $(elapsed "$t_start") s"
say "PASS"
