#!/usr/bin/env bash
# The long fuzz run of docs/fuzzing.md: one target at a time, one process,
# niced (the machine is shared), on a scratch copy of the committed corpus.
#
#   scripts/fuzz-long.sh TARGET [RUNS [MAX_SECONDS [WORKDIR]]]
#
# TARGET is native, mpqemu or client; the fuzz build must exist
# (build-fuzz, or $FUZZ_BUILD_DIR). Leaves WORKDIR/TARGET/{corpus,artifacts,
# fuzz-0.log}; the final lines of the log hold the figures the docs table
# records (executions, exec/s, cov/ft, corpus size).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 runs=${2:-10000000} max=${3:-7200} work=${4:-/tmp/mpdev-fuzz}
bin=$(pwd)/${FUZZ_BUILD_DIR:-build-fuzz}/tests/fuzz/fuzz_$target
[ -x "$bin" ] || { echo "fuzz-long: no $bin (build with -DMPDEV_FUZZ=ON)" >&2; exit 1; }
dir=$work/$target
mkdir -p "$dir/corpus" "$dir/artifacts"
cp -n tests/fuzz/corpus/"$target"/* "$dir/corpus/"
cd "$dir"
start=$(date +%s)
# -jobs=1 -workers=1: one fuzzing process, its output in fuzz-0.log.
# -timeout=10: an input that takes seconds is a hang worth reporting.
nice -n 10 "$bin" -runs="$runs" -max_total_time="$max" -jobs=1 -workers=1 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" corpus || true
end=$(date +%s)
echo "fuzz-long: $target: $((end - start)) s wall, corpus $(ls corpus | wc -l) files," \
  "artifacts: $(ls artifacts | wc -l)"
tail -n 20 fuzz-0.log
