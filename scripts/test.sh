#!/usr/bin/env bash
# The test command: install what is missing, build, run every test tier that
# this machine can run. Tiers that need what the machine lacks skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 -j2
