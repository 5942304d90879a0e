#!/usr/bin/env bash
# Installs the Debian packages mpdev needs to build and test. Safe to re-run:
# it installs only what is missing. Uses sudo when not run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libevent-dev libprotobuf-c-dev protobuf-c-compiler
  libseccomp-dev liburing-dev check libsystemd-dev systemd
  clang-14 libclang-rt-14-dev # libFuzzer for the fuzz targets (scripts/fuzz-short.sh)
  # the vfio-lab's own kernel (tests/vfio-lab/lab-kernel.sh)
  flex bison bc libelf-dev xz-utils cpio
  mmdebstrap arch-test gpg bubblewrap # the QEMU 11.1 tier's trixie root (tests/qemu11/q11-root.sh)
  fio # the block bench's baseline (bench/bench_blk.c): io_uring on the same backing file
)

# The user mpdev-remote drops to, from the project's own sysusers.d entry (as a
# package would install it). Needs root; without it the remote says what to do.
ensure_user() {
  getent passwd mpdev >/dev/null && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo systemd-sysusers "$(cd "$(dirname "$0")/.." && pwd)/systemd/mpdev.sysusers" ||
    echo "setup: could not create the mpdev user; run mpdev-remote with --user" >&2
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  ensure_user
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
ensure_user
