#!/usr/bin/env bash
# vfio-lab: run DRIVER against real kernel VFIO inside a QEMU TCG guest that
# has an emulated Intel IOMMU and QEMU's edu device (see docs/vfio-lab.md).
#
#   run-lab.sh [-i BINARY]... BUILD_DIR DRIVER [ARGS...]
#
# Puts DRIVER and each BINARY (default: BUILD_DIR/bin/mpdev-remote, when
# built) with their shared libraries into the guest's initramfs; the guest
# binds edu to vfio-pci and runs DRIVER ARGS... (see build-initramfs.sh for
# what the driver finds in its environment). Exit status: 0 when the driver
# printed "LAB RESULT: PASS" and exited 0; 77 (skip, with the reason) when
# QEMU or the guest's packages cannot be had; 1 otherwise.
#
# Installs qemu-system-x86 when missing and run as root; downloads the
# kernel and busybox-static packages (apt-get download) once into
# BUILD_DIR/vfio-lab/cache. Everything of one run lands in
# BUILD_DIR/vfio-lab/<driver name>/: serial.log (the guest console),
# qemu.log (QEMU's stderr), initrd.gz, vmlinuz.
#
# Environment:
#   LAB_KERNEL          debian (default: Debian's cloud kernel, type1 container),
#                       lab (the lab kernel: type1 container + iommufd + VFIO cdev +
#                       IOMMUFD_TEST + mtty) or compat (iommufd's /dev/vfio/vfio);
#                       lab and compat come from lab-kernel.sh, built once and cached
#   LAB_KERNEL_PKG      kernel package (default linux-image-6.12.117+deb12-cloud-amd64;
#                       if apt cannot get it, the newest *-cloud-amd64 image is used)
#   LAB_DEB_DIR         a directory of already downloaded .deb files to try first
#   LAB_TIMEOUT         hard limit for the whole guest run, seconds (default 240)
#   LAB_DRIVER_TIMEOUT  limit for the driver inside the guest (default LAB_TIMEOUT - 60)
#   LAB_QEMU_ARGS       extra QEMU arguments (word-split)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

usage() {
	echo "usage: run-lab.sh [-i BINARY]... BUILD_DIR DRIVER [ARGS...]" >&2
	exit 2
}
extra=()
extra_given=0
while getopts "i:h" opt; do
	case $opt in
	i) extra+=("$OPTARG") extra_given=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
build_dir=$(realpath "$1")
driver=$2
shift 2
[ -x "$driver" ] || { echo "vfio-lab: driver $driver is not an executable" >&2; exit 1; }
if [ $extra_given -eq 0 ] && [ -x "$build_dir/bin/mpdev-remote" ]; then
	extra+=("$build_dir/bin/mpdev-remote")
fi

kernel_pkg=${LAB_KERNEL_PKG:-linux-image-6.12.117+deb12-cloud-amd64}
lab_kernel=${LAB_KERNEL:-debian}
case $lab_kernel in
debian | lab | compat) ;;
*) echo "vfio-lab: LAB_KERNEL must be debian, lab or compat, not $lab_kernel" >&2; exit 2 ;;
esac
lab_timeout=${LAB_TIMEOUT:-240}
driver_timeout=${LAB_DRIVER_TIMEOUT:-$((lab_timeout > 90 ? lab_timeout - 60 : lab_timeout * 2 / 3))}
lab_dir=$build_dir/vfio-lab
cache=$lab_dir/cache
run_dir=$lab_dir/$(basename "$driver")
[ "$lab_kernel" = debian ] || run_dir+=-$lab_kernel
# Runs of one driver with other arguments keep their own logs (--mtty iommufd -> -mtty-iommufd).
for a in "$@"; do
	case $a in
	/*) ;;
	*) run_dir+=-$(tr -cd 'a-zA-Z0-9_' <<<"$a") ;;
	esac
done
mkdir -p "$cache" "$run_dir"
serial=$run_dir/serial.log
qemu_log=$run_dir/qemu.log

say() { echo "vfio-lab: $*"; }
skip() {
	echo "SKIP: vfio-lab: $*"
	exit 77
}
fail() {
	echo "vfio-lab: FAIL: $*"
	exit 1
}
elapsed() { # seconds since $1 (a date +%s.%N stamp)
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# Every child is ours to end: QEMU runs under timeout in the background, with
# a parent-death signal where setpriv offers one, and the trap ends it on
# every way out of this script.
qemu_pid=
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	qemu_pid=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

# --- QEMU and the guest's packages ----------------------------------------------
# tests/vfio-lab/guest-kit.sh, shared with the QEMU interop tier.
# shellcheck source=SCRIPTDIR/guest-kit.sh
. "$here/guest-kit.sh"
kit_lock_cache
t0=$(date +%s.%N)
kit_ensure_qemu edu intel-iommu
kit_fetch_guest_debs "$kernel_pkg"
kernel_deb=$kit_kernel_deb
busybox_deb=$kit_busybox_deb
kit_unlock_cache
kernel_arg=(-k "$kernel_deb")
if [ "$lab_kernel" != debian ]; then
	krc=0
	image=$("$here/lab-kernel.sh" "$lab_kernel") || krc=$?
	[ $krc -ne 77 ] || skip "no $lab_kernel kernel (lab-kernel.sh said why above)"
	[ $krc -eq 0 ] || fail "the $lab_kernel kernel could not be built"
	kernel_arg=(-K "$image")
	say "kernel: $image ($(cat "$(dirname "$image")/../source-version" 2>/dev/null || echo '?'))"
fi
t_prep=$(elapsed "$t0")

# --- guest image ----------------------------------------------------------------
t0=$(date +%s.%N)
bins=()
for b in "${extra[@]}"; do bins+=(-i "$b"); done
"$here/build-initramfs.sh" "${kernel_arg[@]}" -b "$busybox_deb" -o "$run_dir/initrd.gz" \
	-v "$run_dir/vmlinuz" -w "$run_dir/work" -T "$driver_timeout" "${bins[@]}" \
	-- "$driver" "$@" || fail "building the initramfs failed"
t_image=$(elapsed "$t0")

# --- boot -------------------------------------------------------------------------
# shellcheck disable=SC2054 # commas are QEMU option syntax
qemu_cmd=(qemu-system-x86_64 -machine q35,kernel-irqchip=off -accel tcg -m 1536 -smp 2
	-cpu max -display none -monitor none -no-reboot -nic none -serial "file:$serial"
	-device intel-iommu,intremap=on -device edu
	-kernel "$run_dir/vmlinuz" -initrd "$run_dir/initrd.gz"
	-append "console=ttyS0 intel_iommu=on panic=-1 quiet")
# shellcheck disable=SC2206 # word splitting wanted
[ -z "${LAB_QEMU_ARGS:-}" ] || qemu_cmd+=(${LAB_QEMU_ARGS})
pdeath=()
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
	pdeath=(setpriv --pdeathsig KILL --)
fi
say "booting: ${qemu_cmd[*]}"
rm -f "$serial"
t0=$(date +%s.%N)
"${pdeath[@]}" timeout -k 5 "$lab_timeout" "${pdeath[@]}" "${qemu_cmd[@]}" \
	</dev/null >"$qemu_log" 2>&1 &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
t_guest=$(elapsed "$t0")

# --- verdict ------------------------------------------------------------------------
# The console writes CRLF; judge a copy without the CRs.
[ -f "$serial" ] || touch "$serial"
log=$run_dir/serial.txt
tr -d '\r' <"$serial" >"$log"
echo "--- guest console from /init on:"
sed -n '/^lab-init: reached/,$p' "$log"
echo "---"
init_at=$(sed -n 's/^lab-init: reached \/init at \([0-9.]*\) s.*/\1/p' "$log")
drv_t=$(awk '/^=== LAB DRIVER BEGIN at/ { b = $6 } /^=== LAB DRIVER END at/ { e = $6 }
	END { if (b != "" && e != "") printf "%.2f", e - b }' "$log")
say "timings: packages ${t_prep} s, initramfs ${t_image} s, guest ${t_guest} s" \
	"(/init at ${init_at:-?} s guest time, driver ${drv_t:-?} s), total $(elapsed "$t_start") s"
say "serial log: $serial"

why=
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	why="the guest did not power off within $lab_timeout s"
elif [ $rc -ne 0 ]; then
	why="QEMU exited with status $rc"
elif ! grep -q '^lab-init: reached /init' "$log"; then
	why="the guest never reached /init"
elif grep -q '^LAB RESULT: FAIL' "$log"; then
	why=$(grep -m1 '^LAB RESULT: FAIL' "$log")
elif ! grep -q '^LAB DRIVER EXIT: 0$' "$log"; then
	why="the driver did not exit 0 ($(grep -m1 '^LAB DRIVER EXIT:' "$log" || echo 'no exit status'))"
elif ! grep -q '^LAB RESULT: PASS$' "$log"; then
	why="the driver printed no LAB RESULT line"
fi
if [ -n "$why" ]; then
	if [ -s "$qemu_log" ]; then
		echo "--- QEMU stderr ($qemu_log), last lines:"
		tail -n 20 "$qemu_log"
	fi
	if ! grep -q '^lab-init: reached' "$log"; then
		echo "--- serial log ($serial), last lines:"
		tail -n 40 "$log"
	fi
	fail "$why"
fi
say "PASS"
