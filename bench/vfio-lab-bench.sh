#!/usr/bin/env bash
# vfio-lab bench: the time to apply a memory table (64 MiB and 512 MiB, 4 KiB
# and hugetlb 2 MiB pages) through mpdev-remote beside a raw
# VFIO_IOMMU_MAP_DMA loop over the same memory, in one run of the vfio-lab
# guest (tests/vfio-lab/lab_bench.c, docs/vfio-lab.md). A benchmark, never a
# test. Builds nothing:
#
#   cmake --build BUILD_DIR --target vfio_lab_bench mpdev-remote
#   bench/vfio-lab-bench.sh BUILD_DIR [ROUNDS [CYCLES [unpinned] [no-sandbox]]]
#
# ROUNDS a set (default 5), CYCLES of (mpdev set, raw set) after a first raw
# set (default 4); bench and remote are pinned to guest CPU 0 unless
# "unpinned", the remote sandboxed unless "no-sandbox": see lab_bench.c.
# LAB_TIMEOUT defaults to 300 s here.
#
# Prints the bench's lines from the guest's console and run-lab.sh's verdict;
# exits with run-lab.sh's status (0 pass, 1 fail, 77 skipped). The whole run
# lands in BUILD_DIR/vfio-lab/vfio_lab_bench/ (serial.txt, run.log).
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 5 ] || {
	echo "usage: vfio-lab-bench.sh BUILD_DIR [ROUNDS [CYCLES [unpinned] [no-sandbox]]]" >&2
	exit 2
}
here=$(cd "$(dirname "$0")" && pwd)
build_dir=$(realpath "$1")
rounds=${2:-5}
cycles=${3:-4}
driver=$build_dir/tests/vfio_lab_bench
remote=$build_dir/bin/mpdev-remote
for f in "$driver" "$remote"; do
	[ -x "$f" ] || {
		echo "vfio-lab-bench: $f is not built (cmake --build $1 --target vfio_lab_bench mpdev-remote)" >&2
		exit 1
	}
done

run_dir=$build_dir/vfio-lab/$(basename "$driver")
mkdir -p "$run_dir"
log=$run_dir/run.log
rm -f "$run_dir/serial.txt" # no stale lines from an earlier run
rc=0
LAB_TIMEOUT=${LAB_TIMEOUT:-300} "$here/../tests/vfio-lab/run-lab.sh" -i "$remote" "$build_dir" \
	"$driver" "$remote" "$rounds" "$cycles" "${@:4}" >"$log" 2>&1 || rc=$?
sed -n 's/^bench: //p' "$run_dir/serial.txt" 2>/dev/null || true
grep -E '^(LAB RESULT|vfio-lab: (timings|FAIL|PASS))|^SKIP:' "$log" || true
if [ $rc -eq 0 ] && ! grep -q '^LAB RESULT: PASS$' "$run_dir/serial.txt" 2>/dev/null; then
	echo "vfio-lab-bench: run-lab.sh exited 0 but the guest's console has no LAB RESULT: PASS"
	rc=1
fi
[ $rc -eq 0 ] || echo "vfio-lab-bench: run-lab.sh exited $rc; the whole output is in $log"
exit $rc
