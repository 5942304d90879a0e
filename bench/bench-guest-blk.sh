#!/usr/bin/env bash
# The guest-visible disk figure (issue 14, point 5): 4 KiB O_DIRECT random
# read and write IOPS from inside a TCG guest through its own virtio_blk,
# against mpdev-remote's virtio-blk through QEMU 11.1's vfio-user-pci, beside
# QEMU's own virtio-blk-pci in the same guest and run, on equal backing
# files (new sparse 64 MiB raw files in the same directory; QEMU's with
# cache=none, i.e. O_DIRECT, as mpdev's blk_io opens its file).
#
#   bench-guest-blk.sh [BUILD_DIR [MS [ROUNDS [QDS]]]]
#                      (default ./build, 2000 ms, 5 rounds, queue depths 1,4)
#
# Boots one guest with both disks through tests/qemu11/run-q11.sh -t
# blk-both (which also runs every functional check on both and checks the
# files afterwards: a disk that fails them gets no figure). Each round
# measures, per queue depth (QD threads, each one request at a time),
# reads and then writes for MS ms on one disk and then the other, so that a
# busy host slows both alike. The writes write the disk's pattern, so the
# host's check of the file after the run covers them too. Prints each
# figure's median and spread and the ratio of the medians: under TCG the
# guest's own cost dominates, so only the ratio says anything. Exit status:
# 0 with the figures; 77 when the tier cannot run here (run-q11.sh says why);
# 1 on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${1:-$here/../build}
ms=${2:-2000}
rounds=${3:-5}
qds=${4:-1,4}
out=$build_dir/qemu11/bench-guest-blk
mkdir -p "$build_dir/qemu11"

rc=0
"$here/../tests/qemu11/run-q11.sh" -t blk-both -i "$ms" -q "$qds" -r "$rounds" -o "$out" "$build_dir" \
	>"$out.log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	tail -n 30 "$out.log"
	[ $rc -eq 77 ] && exit 77
	echo "bench-guest-blk: FAIL: the guest run failed (all of it in $out.log)"
	exit 1
fi

# Median, min and max of a disk's rounds at one rw and queue depth.
stat() { # LABEL RW QD
	sed -n "s/^Q11 IOPS $1 rw=$2 qd=$3 ops=[0-9]* ms=[0-9]* per_s=\([0-9]*\) bad=0$/\1/p" "$out/serial.txt" |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)], v[1], v[NR] }'
}
echo "guest disk IOPS: 4 KiB O_DIRECT random I/O from a TCG guest's virtio_blk (QEMU 11.1, -smp 2," \
	"$(nproc) host CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  median of $rounds rounds of $ms ms per disk, alternating; IOPS (min-max)"
printf '  %-9s %-3s %22s %22s %8s\n' rw QD "QEMU virtio-blk-pci" "mpdev virtio-blk" "mpdev/QEMU"
for qd in $(echo "$qds" | tr ',' ' '); do
	for rw in read write; do
		read -r q qmin qmax < <(stat qemu-blk "$rw" "$qd") || true
		read -r m mmin mmax < <(stat mpdev-blk "$rw" "$qd") || true
		[ -n "${q:-}" ] && [ -n "${m:-}" ] || {
			echo "bench-guest-blk: FAIL: no $rw qd=$qd figures in $out/serial.txt"
			exit 1
		}
		printf '  %-9s %-3s %22s %22s %8s\n' "$rw" "$qd" "$q ($qmin-$qmax)" "$m ($mmin-$mmax)" \
			"$(awk -v q="$q" -v m="$m" 'BEGIN { printf "%.3f", m / q }')"
		q='' m=''
	done
done
