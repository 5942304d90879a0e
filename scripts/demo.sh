#!/usr/bin/env bash
# The main job: install what is missing, build, and run mpdev-demo (an
# emulated edu device in an mpdev-remote process, driven through libmpdev).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/bin/mpdev-demo "$@"
