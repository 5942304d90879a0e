#!/usr/bin/env bash
# The systemd units as installed, checked offline: systemd-analyze verify
# must pass, and systemd-analyze security must rate the service's exposure
# at most MAX_EXPOSURE (lower is better; the score is printed in the log).
# Usage: check_units.sh SOURCE_DIR REMOTE_BINARY
set -euo pipefail
src=$1 remote=$2
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# An instance of each template, with ExecStart pointing at the built binary
# (verify checks that it exists) and the per-instance file optional.
sed -e "s|@SBINDIR@/mpdev-remote|$remote|" \
    -e 's|^EnvironmentFile=/etc|EnvironmentFile=-/etc|' \
    "$src/systemd/mpdev-remote@.service" > "$dir/mpdev-remote@ci.service"
cp "$src/systemd/mpdev-remote@.socket" "$dir/mpdev-remote@ci.socket"

echo "== systemd-analyze verify"
out=$(systemd-analyze verify --man=no "$dir/mpdev-remote@ci.service" "$dir/mpdev-remote@ci.socket" 2>&1) || {
  echo "$out"; echo "verify failed"; exit 1; }
# verify prints warnings without failing; any line about our units is a finding.
if echo "$out" | grep -q "mpdev-remote@ci"; then
  echo "$out"; echo "verify reported problems"; exit 1
fi
echo "verify: clean"

echo "== a device group: the socket drop-in of systemd/example-group.socket.conf"
mkdir -p "$dir/mpdev-remote@ci.socket.d"
cp "$src/systemd/example-group.socket.conf" "$dir/mpdev-remote@ci.socket.d/devices.conf"
out=$(SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "$dir/mpdev-remote@ci.socket" 2>&1) || {
  echo "$out"; echo "verify of the group's socket failed"; exit 1; }
if echo "$out" | grep -q "mpdev-remote@ci"; then
  echo "$out"; echo "verify reported problems with the group's socket"; exit 1
fi
# verify reads the drop-in (an unknown key in it is reported against its path).
echo "group socket: clean"

echo "== a vfio-user device: the socket drop-in of systemd/example-vfio-user.socket.conf"
rm -rf "$dir/mpdev-remote@ci.socket.d"
mkdir -p "$dir/mpdev-remote@ci.socket.d"
cp "$src/systemd/example-vfio-user.socket.conf" "$dir/mpdev-remote@ci.socket.d/face.conf"
out=$(SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "$dir/mpdev-remote@ci.socket" 2>&1) || {
  echo "$out"; echo "verify of the vfio-user socket failed"; exit 1; }
if echo "$out" | grep -q "mpdev-remote@ci"; then
  echo "$out"; echo "verify reported problems with the vfio-user socket"; exit 1
fi
# The name is how the remote picks the face: it must be one the remote knows.
name=$(sed -n 's/^FileDescriptorName=//p' "$src/systemd/example-vfio-user.socket.conf")
"$remote" --help | grep -q "vfio-user" || { echo "the remote does not know face '$name'"; exit 1; }
echo "vfio-user socket: clean (FileDescriptorName=$name)"
rm -rf "$dir/mpdev-remote@ci.socket.d"

echo "== limits the remote relies on"
# The descriptor budget (server_budget) assumes a deliberate limit, not the default 1024.
nofile=$(sed -n 's/^LimitNOFILE=\([0-9]*\)$/\1/p' "$src/systemd/mpdev-remote@.service")
[ -n "$nofile" ] || { echo "mpdev-remote@.service sets no LimitNOFILE"; exit 1; }
[ "$nofile" -ge 4096 ] || { echo "LimitNOFILE=$nofile is below 4096"; exit 1; }
echo "LimitNOFILE=$nofile"

echo "== systemd-analyze security"
sec=$(systemd-analyze security --offline=true "$dir/mpdev-remote@ci.service" 2>&1)
echo "$sec" | grep -E "^✗" || true
score=$(echo "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$sec"; echo "no exposure score"; exit 1; }
echo "exposure score: $score (limit $MAX_EXPOSURE)"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || {
  echo "exposure $score is above $MAX_EXPOSURE"; exit 1; }
echo "1 passed, 0 failed"
