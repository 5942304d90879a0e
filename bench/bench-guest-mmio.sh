#!/usr/bin/env bash
# The guest-visible figure (issue 13, point 5): BAR0 reads per second from
# inside a TCG guest, a tight loop over an mmap of resource0 for a fixed time,
# against mpdev-remote's edu through QEMU 11.1's vfio-user-pci, beside the
# same loop against QEMU's own emulated edu in the same guest and run.
#
#   bench-guest-mmio.sh [BUILD_DIR [MS]]     (default ./build, 5000 ms per device)
#
# Boots one guest with both devices through tests/qemu11/run-q11.sh (which
# also runs every functional check on both: a device that fails them gets no
# figure). Prints both rates and the ratio. Exit status: 0 with the figures;
# 77 when the tier cannot run here (run-q11.sh says why); 1 on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${1:-$here/../build}
ms=${2:-5000}
out=$build_dir/qemu11/bench-guest-mmio
mkdir -p "$build_dir/qemu11"

rc=0
"$here/../tests/qemu11/run-q11.sh" -t both -m "$ms" -o "$out" "$build_dir" >"$out.log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	tail -n 30 "$out.log"
	[ $rc -eq 77 ] && exit 77
	echo "bench-guest-mmio: FAIL: the guest run failed (all of it in $out.log)"
	exit 1
fi

rate() { sed -n "s/^Q11 MMIO $1 reads=[0-9]* ms=[0-9]* per_s=\([0-9]*\).*/\1/p" "$out/serial.txt"; }
qemu=$(rate qemu-edu)
mpdev=$(rate mpdev)
[ -n "$qemu" ] && [ -n "$mpdev" ] || {
	echo "bench-guest-mmio: FAIL: no MMIO figures in $out/serial.txt"
	exit 1
}
echo "guest MMIO: 4-byte BAR0 reads from a TCG guest (QEMU 11.1, $(nproc) CPUs), $ms ms each"
printf '  %-46s %12s reads/s  %8.2f us/read\n' "QEMU's own edu (baseline)" "$qemu" \
	"$(awk -v r="$qemu" 'BEGIN { print 1e6 / r }')"
printf '  %-46s %12s reads/s  %8.2f us/read\n' "mpdev-remote edu via vfio-user-pci" "$mpdev" \
	"$(awk -v r="$mpdev" 'BEGIN { print 1e6 / r }')"
awk -v q="$qemu" -v m="$mpdev" 'BEGIN { printf "  ratio mpdev / QEMU edu: %.3f (QEMU edu is %.1fx as many reads/s)\n", m / q, q / m }'
