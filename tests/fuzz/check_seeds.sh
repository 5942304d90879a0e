#!/usr/bin/env bash
# The committed seeds (tests/fuzz/corpus/*/seed-*) must be what fuzz_seeds
# writes today: a change to the protocol or to the bad-input tables shows up
# here until the seeds are written again (docs/fuzzing.md says how).
set -euo pipefail
seeds_bin=$1 corpus=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$seeds_bin" "$tmp" >/dev/null
status=0
for dir in "$tmp"/*/; do
  target=$(basename "$dir")
  for f in "$dir"seed-*; do
    name=$(basename "$f")
    if ! cmp -s "$f" "$corpus/$target/$name"; then
      echo "check_seeds: $target/$name differs from fuzz_seeds' output" >&2
      status=1
    fi
  done
  for f in "$corpus/$target"/seed-*; do
    [ -e "$dir$(basename "$f")" ] ||
      { echo "check_seeds: $target/$(basename "$f") is no longer written" >&2; status=1; }
  done
done
[ $status -eq 0 ] && echo "check_seeds: $(ls "$tmp"/*/seed-* | wc -l) seeds current"
[ $status -eq 0 ] || echo "check_seeds: regenerate: fuzz_seeds tests/fuzz/corpus" >&2
exit $status
