#!/usr/bin/env bash
# The short fuzz runs (about 20 s per target, docs/fuzzing.md): builds
# build-fuzz with clang-14's libFuzzer and runs the fuzz-short ctest label
# after the corpus replays. Exits 77 (skipped) where clang-14 or its
# libFuzzer runtime (libclang-rt-14-dev) is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-14 >/dev/null ||
  ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "SKIP: fuzz short runs (no clang-14/libFuzzer; install clang-14 libclang-rt-14-dev)"
  exit 77
fi
CC=clang-14 BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz} scripts/build.sh -DMPDEV_FUZZ=ON
cd "${FUZZ_BUILD_DIR:-build-fuzz}"
ctest --output-on-failure -L fuzz
