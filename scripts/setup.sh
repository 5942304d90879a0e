#!/usr/bin/env bash
# Installs the Debian packages mpdev needs to build and test. Safe to re-run:
# it installs only what is missing. Uses sudo when not run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libevent-dev libprotobuf-c-dev protobuf-c-compiler
  libseccomp-dev liburing-dev check libsystemd-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
