#!/usr/bin/env bash
# The guest-visible figure (issue 13, point 5): BAR0 reads per second from
# inside a TCG guest, a tight loop over an mmap of resource0 for a fixed time,
# against mpdev-remote's edu through QEMU 11.1's vfio-user-pci, beside the
# same loop against QEMU's own emulated edu in the same guest and run.
#
#   bench-guest-mmio.sh [BUILD_DIR [MS [ROUNDS]]]   (default ./build, 1000 ms, 7 rounds)
#
# Boots one guest with both devices through tests/qemu11/run-q11.sh (which
# also runs every functional check on both: a device that fails them gets no
# figure). The loop runs ROUNDS times per device, MS milliseconds each,
# alternating between the devices so that a busy host slows both alike.
# Prints each device's median and spread and the ratio of the medians. Exit status: 0 with the figures;
# 77 when the tier cannot run here (run-q11.sh says why); 1 on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${1:-$here/../build}
ms=${2:-1000}
rounds=${3:-7}
out=$build_dir/qemu11/bench-guest-mmio
mkdir -p "$build_dir/qemu11"

rc=0
"$here/../tests/qemu11/run-q11.sh" -t both -m "$ms" -r "$rounds" -o "$out" "$build_dir" >"$out.log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	tail -n 30 "$out.log"
	[ $rc -eq 77 ] && exit 77
	echo "bench-guest-mmio: FAIL: the guest run failed (all of it in $out.log)"
	exit 1
fi

# Median, min and max of a device's rounds.
rates() { sed -n "s/^Q11 MMIO $1 reads=[0-9]* ms=[0-9]* per_s=\([0-9]*\).*/\1/p" "$out/serial.txt" | sort -n; }
stat() { # median min max
	rates "$1" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)], v[1], v[NR] }'
}
read -r qemu qmin qmax < <(stat qemu-edu) || true
read -r mpdev mmin mmax < <(stat mpdev) || true
[ -n "${qemu:-}" ] && [ -n "${mpdev:-}" ] || {
	echo "bench-guest-mmio: FAIL: no MMIO figures in $out/serial.txt"
	exit 1
}
us() { awk -v r="$1" 'BEGIN { printf "%.2f", 1e6 / r }'; }
echo "guest MMIO: 4-byte BAR0 reads from a TCG guest (QEMU 11.1, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  median of $rounds rounds of $ms ms per device, alternating; reads/s (min-max), us per read"
printf '  %-40s %10s (%s-%s)  %8s us\n' "QEMU's own edu (baseline)" "$qemu" "$qmin" "$qmax" "$(us "$qemu")"
printf '  %-40s %10s (%s-%s)  %8s us\n' "mpdev-remote edu via vfio-user-pci" "$mpdev" "$mmin" "$mmax" "$(us "$mpdev")"
awk -v q="$qemu" -v m="$mpdev" 'BEGIN { printf "  ratio mpdev / QEMU edu: %.4f (QEMU edu: %.0fx the reads/s)\n", m / q, q / m }'
