# shellcheck shell=bash disable=SC2154,SC2034 # $cache is the caller's, kit_*_deb for the caller
# The guest kit shared by the QEMU TCG tiers (tests/vfio-lab/run-lab.sh,
# tests/qemu-interop/run-interop.sh): QEMU itself, and the Debian kernel and
# busybox-static packages the guest is built from, downloaded once into a
# cache directory.
#
# Sourced. The caller sets $cache (the cache directory, created) and defines
# say, skip (exit 77 with the reason) and fail. Honours LAB_DEB_DIR (a
# directory of already downloaded .deb files to try first).
#
#   kit_lock_cache                 one run at a time touches apt and the cache
#   kit_ensure_qemu DEVICE...      installs qemu-system-x86 if missing (as root);
#                                  skips unless QEMU has every DEVICE
#   kit_fetch_guest_debs KERNEL_PKG  sets kit_kernel_deb and kit_busybox_deb
#                                  (another *-cloud-amd64 image if KERNEL_PKG is gone)
#   kit_unlock_cache

kit_as_root() { [ "$(id -u)" -eq 0 ]; }

kit_apt_update_done=0
kit_apt_update_once() {
	[ $kit_apt_update_done -eq 0 ] || return 0
	kit_apt_update_done=1
	say "apt-get update"
	apt-get update -qq >>"$cache/apt.log" 2>&1 || true
}

kit_lock_cache() {
	exec 9>"$cache/.lock"
	flock -w 900 9 || fail "another run held $cache/.lock for 15 minutes"
}

kit_unlock_cache() {
	flock -u 9
	exec 9>&-
}

kit_ensure_qemu() {
	local qemu_devices dev
	if ! command -v qemu-system-x86_64 >/dev/null; then
		kit_as_root || skip "qemu-system-x86_64 is not installed and we are not root to install it (apt-get install qemu-system-x86)"
		command -v apt-get >/dev/null || skip "qemu-system-x86_64 is not installed and there is no apt-get"
		say "installing qemu-system-x86"
		kit_install_qemu() {
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				-o DPkg::Lock::Timeout=300 qemu-system-x86 >>"$cache/apt.log" 2>&1
		}
		kit_install_qemu || { kit_apt_update_once && kit_install_qemu; } ||
			skip "cannot install qemu-system-x86 (see $cache/apt.log): $(tail -n 1 "$cache/apt.log")"
		command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 installed but no qemu-system-x86_64"
	fi
	qemu_devices=$(qemu-system-x86_64 -device help 2>/dev/null || true)
	for dev in "$@"; do
		grep -q "name \"$dev\"" <<<"$qemu_devices" || skip "this QEMU has no $dev device"
	done
}

# Finds PKG's .deb in the cache (or LAB_DEB_DIR), else apt-get downloads it.
kit_fetch() { # kit_fetch PKG -> prints the .deb path
	local pkg=$1 f
	for f in "$cache/${pkg}"_*.deb ${LAB_DEB_DIR:+"$LAB_DEB_DIR/${pkg}"_*.deb}; do
		if [ -s "$f" ]; then
			[ "$(dirname "$f")" = "$cache" ] || cp "$f" "$cache/"
			echo "$cache/$(basename "$f")"
			return 0
		fi
	done
	command -v apt-get >/dev/null || return 1
	kit_dl() { (cd "$cache" && apt-get download -qq "$pkg" >>"$cache/apt.log" 2>&1); }
	if ! kit_dl; then
		kit_as_root || return 1
		kit_apt_update_once >&2
		kit_dl || return 1
	fi
	for f in "$cache/${pkg}"_*.deb; do
		[ -s "$f" ] && echo "$f" && return 0
	done
	return 1
}

kit_fetch_guest_debs() {
	local kernel_pkg=$1 alt
	kit_kernel_deb=$(kit_fetch "$kernel_pkg") || {
		# The pinned image may have left the archive: take the newest cloud image.
		alt=$(apt-cache search --names-only '^linux-image-[0-9].*-cloud-amd64$' 2>/dev/null |
			awk '{ print $1 }' | sort -V | tail -n 1)
		[ -n "$alt" ] && [ "$alt" != "$kernel_pkg" ] ||
			skip "cannot download $kernel_pkg (no network or apt source? see $cache/apt.log)"
		say "$kernel_pkg is not available; using $alt"
		kit_kernel_deb=$(kit_fetch "$alt") || skip "cannot download $kernel_pkg nor $alt (see $cache/apt.log)"
	}
	kit_busybox_deb=$(kit_fetch busybox-static) ||
		skip "cannot download busybox-static (no network or apt source? see $cache/apt.log)"
}
