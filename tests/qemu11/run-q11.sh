#!/usr/bin/env bash
# The QEMU 11.1 tier: a Linux guest under TCG checks edu devices from inside
# (identity, registers, DMA byte for byte, INTx through uio_pci_generic, MSI
# through the guest kernel) — QEMU's own emulated edu, mpdev-remote's edu
# through QEMU 11.1's vfio-user-pci, or both in one guest (docs/qemu.md,
# "QEMU 11.1 vfio-user tier").
#
#   run-q11.sh [-t qemu-edu|mpdev|both] [-m MMIO_MS [-r ROUNDS]] [-o OUT_DIR] BUILD_DIR
#
# -t  which devices the guest gets (default mpdev): qemu-edu is QEMU's own edu
#     (proves the root, kernel, initramfs and guest programs); mpdev is
#     BUILD_DIR/bin/mpdev-remote --device edu --face vfio-user behind
#     vfio-user-pci; both puts the two side by side.
# -m  also measure BAR0 reads per second from inside the guest: ROUNDS
#     rounds (default 5) alternating between the devices, MMIO_MS
#     milliseconds per device each (bench/bench-guest-mmio.sh)
# -o  where the run's files go (default BUILD_DIR/qemu11/TARGET)
#
# QEMU 11.1 comes from the cached trixie root (q11-root.sh) and runs there
# through bwrap; the host's packages are not touched. Guest RAM is a shared,
# sealed memfd, which is what mpdev-remote maps. Exit status: 0 when every
# expected check printed PASS; 77 (skip, with the reason) when the root
# cannot be had or mpdev-remote has no vfio-user face; 1 otherwise.
#
# Environment:
#   Q11_TIMEOUT       hard limit for the guest, seconds (default 150)
#   Q11_REMOTE_ARGS   extra mpdev-remote arguments (word-split), e.g. --no-sandbox
#   Q11_STRICT        1: also fail when QEMU logged error replies from the server
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

usage() {
	echo "usage: run-q11.sh [-t qemu-edu|mpdev|both] [-m MMIO_MS [-r ROUNDS]] [-o OUT_DIR] BUILD_DIR" >&2
	exit 2
}
target=mpdev mmio_ms=0 mmio_rounds=5 out=
while getopts "t:m:r:o:h" opt; do
	case $opt in
	t) target=$OPTARG ;;
	m) mmio_ms=$OPTARG ;;
	r) mmio_rounds=$OPTARG ;;
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
case $target in qemu-edu | mpdev | both) ;; *) usage ;; esac
[[ $mmio_ms =~ ^[0-9]+$ ]] && [[ $mmio_rounds =~ ^[1-9][0-9]*$ ]] || usage
build_dir=$(realpath "$1")
out=${out:-$build_dir/qemu11/$target}
timeout_s=${Q11_TIMEOUT:-150}

say() { echo "qemu11: $*"; }
skip() {
	echo "SKIP: qemu11: $*"
	exit 77
}
fail() {
	echo "qemu11: FAIL: $*"
	echo "qemu11: RESULT: FAIL"
	exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Every child is ours to end, on every way out: QEMU and mpdev-remote run in
# the background with a parent-death signal and are reaped here.
qemu_pid='' remote_pid=''
stop() { # PID
	local pid=$1
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$qemu_pid"
	qemu_pid=
	stop "$remote_pid"
	remote_pid=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

pdeath=()
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
	pdeath=(setpriv --pdeathsig KILL --)
fi

# --- the root and the guest kit ----------------------------------------------
t0=$(date +%s.%N)
krc=0
kit=$("$here/q11-root.sh") || krc=$?
[ $krc -ne 77 ] || skip "no QEMU 11.1 root (q11-root.sh said why above)"
[ $krc -eq 0 ] || fail "the QEMU 11.1 root or guest kit could not be built"
root=$(readlink "$kit/root")
t_root=$(elapsed "$t0")
say "QEMU: $(cat "$kit/qemu-version"); guest kernel $(cat "$kit/kernel-version")"

remote_bin=$build_dir/bin/mpdev-remote
if [ "$target" != qemu-edu ]; then
	[ -x "$remote_bin" ] || fail "no $remote_bin (build first)"
	"$remote_bin" --face vfio-user --help >/dev/null 2>&1 ||
		skip "this mpdev-remote has no vfio-user face ($remote_bin --face vfio-user refused)"
fi

# --- the guest image -------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")
t0=$(date +%s.%N)
cc=${CC:-cc}
"$cc" -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$out/q11-guest" "$here/guest/q11_guest.c" ||
	fail "the guest program did not build"
img=$out/initramfs
mkdir -p "$img"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules/q11}
cp "$kit/busybox" "$img/bin/busybox"
for a in $("$img/bin/busybox" --list-full); do
	[ -e "$img/$a" ] || ln -s /bin/busybox "$img/$a"
done
cp "$kit"/modules/* "$img/lib/modules/q11/"
cp "$out/q11-guest" "$img/bin/q11-guest"
cp "$here/guest/init" "$img/init"
chmod 755 "$img/init"
(cd "$img" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$out/initrd.gz"
t_image=$(elapsed "$t0")

# --- the devices -------------------------------------------------------------------
devs=() qdev=()
# Fixed slots, so the guest finds each device by its address.
if [ "$target" != mpdev ]; then
	devs+=(qemu-edu@0000:00:05.0)
	# shellcheck disable=SC2054 # commas are QEMU option syntax
	qdev+=(-device edu,addr=05.0)
fi
remote_log=$out/remote.log
if [ "$target" != qemu-edu ]; then
	sock=$out/vfio-user.sock
	# shellcheck disable=SC2206 # word splitting wanted
	remote_cmd=("$remote_bin" --device edu --face vfio-user --socket "$sock" -v ${Q11_REMOTE_ARGS:-})
	say "remote: ${remote_cmd[*]}"
	"${pdeath[@]}" "${remote_cmd[@]}" </dev/null >"$remote_log" 2>&1 &
	remote_pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && break
		kill -0 "$remote_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -S "$sock" ] || {
		cat "$remote_log"
		fail "mpdev-remote did not create $sock within 10 s"
	}
	devs+=(mpdev@0000:00:06.0)
	qdev+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$sock\",\"type\":\"unix\"},\"addr\":\"06.0\"}")
fi

# --- boot ---------------------------------------------------------------------------
serial=$out/serial.log
qemu_log=$out/qemu.log
append="console=ttyS0 panic=-1 quiet q11=$(
	IFS=,
	echo "${devs[*]}"
) q11.mmio_ms=$mmio_ms q11.mmio_rounds=$mmio_rounds"
# Guest RAM is a shared memfd (QEMU seals it by default): the only memory a
# vfio-user server can map. 256 MiB keeps all of it inside edu's 28-bit DMA mask.
# shellcheck disable=SC2054 # commas are QEMU option syntax
qemu_cmd=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 256M
	-object memory-backend-memfd,id=mem,size=256M,share=on -machine q35,memory-backend=mem
	-display none -monitor none -no-reboot -nic none -serial "file:$serial"
	"${qdev[@]}" -kernel "$kit/vmlinuz" -initrd "$out/initrd.gz" -append "$append")
say "booting QEMU 11.1 from $root: ${qemu_cmd[*]}"
t0=$(date +%s.%N)
"${pdeath[@]}" timeout -k 5 "$timeout_s" "${pdeath[@]}" \
	bwrap --bind "$root" / --dev-bind /dev /dev --proc /proc --tmpfs /tmp \
	--bind "$out" "$out" --ro-bind "$kit" "$kit" --die-with-parent \
	"${qemu_cmd[@]}" </dev/null >"$qemu_log" 2>&1 &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
t_guest=$(elapsed "$t0")
remote_died=
if [ -n "$remote_pid" ]; then
	# QEMU 11.1's client aborts when its server goes away: say which one went first.
	if ! kill -0 "$remote_pid" 2>/dev/null; then
		rrc=0
		wait "$remote_pid" || rrc=$?
		remote_died="mpdev-remote exited (status $rrc) while QEMU ran"
	fi
	stop "$remote_pid"
	remote_pid=
fi

# --- verdict --------------------------------------------------------------------------
[ -f "$serial" ] || touch "$serial"
log=$out/serial.txt
tr -d '\r' <"$serial" >"$log"
echo "--- guest console from /init on:"
sed -n '/^q11-init: reached/,$p' "$log"
echo "---"
init_at=$(sed -n 's/^q11-init: reached \/init at \([0-9.]*\) s.*/\1/p' "$log")
say "timings: root+kit ${t_root} s, initramfs ${t_image} s, guest ${t_guest} s" \
	"(/init at ${init_at:-?} s guest time), total $(elapsed "$t_start") s"

checks="identity liveness factorial dma intx_repeat intx_quiet intx_reassert intx_disable msi"
missing=() failed=()
for d in "${devs[@]}"; do
	label=${d%%@*}
	for c in $checks; do
		line=$(grep -m1 "^Q11 CHECK $label $c: " "$log" || true)
		case $line in
		*": PASS"*) ;;
		"") missing+=("$label/$c") ;;
		*) failed+=("$label/$c") ;;
		esac
	done
	if [ "$mmio_ms" -gt 0 ] &&
		[ "$(grep -c "^Q11 MMIO $label reads=" "$log" || true)" -ne "$mmio_rounds" ]; then
		missing+=("$label/mmio")
	fi
done
# Anything else the guest reported as failed (init, binding) counts too.
while read -r l; do
	failed+=("$l")
done < <(grep '^Q11 CHECK .*: FAIL' "$log" | grep -v -E "^Q11 CHECK [^ ]+ ($(echo "$checks" | tr ' ' '|')): " |
	sed 's/^Q11 CHECK \([^ ]*\) \([^:]*\):.*/\1\/\2/')

why=
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	why="the guest did not power off within $timeout_s s"
elif [ $rc -ne 0 ]; then
	why="QEMU exited with status $rc"
elif ! grep -q '^q11-init: reached /init' "$log"; then
	why="the guest never reached /init"
elif ! grep -q '^Q11 DONE' "$log"; then
	why="the guest's /init did not finish"
fi
if [ -n "$remote_died" ]; then why="${why:+$why; }$remote_died"; fi
if [ ${#failed[@]} -gt 0 ]; then why="${why:+$why; }failed: ${failed[*]}"; fi
if [ ${#missing[@]} -gt 0 ]; then why="${why:+$why; }missing: ${missing[*]}"; fi
if [ -s "$remote_log" ] && grep -q ': error: ' "$remote_log"; then
	echo "--- mpdev-remote errors ($remote_log):"
	grep ': error: ' "$remote_log" | tail -n 20
	why="${why:+$why; }mpdev-remote logged errors"
fi
# Error replies QEMU's client logged: the guest may still have passed (a
# refused map of a ROM alias costs nothing it checks), but a server that
# refuses what a stock client sends is wrong. Q11_STRICT=1 fails on them.
n_err=$(grep -c 'error reply' "$qemu_log" 2>/dev/null || true)
if [ "${n_err:-0}" -gt 0 ]; then
	say "WARN: QEMU logged $n_err error replies from the server; first: $(grep -m1 'error reply' "$qemu_log")"
	[ "${Q11_STRICT:-0}" = 0 ] || why="${why:+$why; }$n_err error replies to QEMU (Q11_STRICT)"
fi
n_checks=$(grep -c '^Q11 CHECK .*: PASS' "$log" || true)
if [ -n "$why" ]; then
	if [ -s "$qemu_log" ]; then
		echo "--- QEMU stderr ($qemu_log), last lines:"
		tail -n 20 "$qemu_log"
	fi
	if ! grep -q '^q11-init: reached' "$log"; then
		echo "--- serial log ($serial), last lines:"
		tail -n 40 "$log"
	fi
	fail "$why"
fi
say "RESULT: PASS ($n_checks checks passed on ${devs[*]}; files in $out)"
