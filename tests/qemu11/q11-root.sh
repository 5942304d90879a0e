#!/usr/bin/env bash
# The QEMU 11.1 tier's Debian trixie root and guest kit (docs/qemu.md,
# "QEMU 11.1 vfio-user tier"):
#
#   q11-root.sh        prints the kit directory on stdout (all else on stderr)
#
# The root is made with mmdebstrap from trixie, with QEMU (qemu-system-x86,
# its data and firmware) pinned to trixie-backports (11.1), and what builds
# the guest's MSI module (gcc, make, linux-headers-amd64). The guest kit
# beside it holds the guest kernel (trixie's linux-image-amd64), the modules
# the guest loads (uncompressed: busybox's insmod takes plain .ko), busybox
# (busybox-static) and edu_msi.ko (guest/edu_msi.c, built in the root against
# the matching headers). QEMU runs from the root through bwrap (run-q11.sh);
# the host's apt sources and packages are never touched.
#
# Both are cached under ${XDG_CACHE_HOME:-~/.cache}/mpdev/qemu11/: the root
# keyed by a hash of this script's root part (everything above "the guest
# kit": its package list and pins are in it), the kit by the whole script and
# the module's sources, so only the first run on a machine pays (about a
# minute for the root, seconds for the kit), and a change to the guest's
# module list rebuilds only the kit.
#
# Exit status: 0 with the path printed; 77 when the root cannot be had here
# (no mmdebstrap or bwrap, no mirror; the reason on stderr); 1 when a build
# that should work fails.
#
# Environment:
#   Q11_MIRROR   Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mirror=${Q11_MIRROR:-http://deb.debian.org/debian}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/mpdev/qemu11

# What the root holds; any change here changes the key (this file is hashed).
root_packages=qemu-system-x86,gcc,make,libc6-dev,linux-headers-amd64
qemu_pin='qemu-* seabios ipxe-qemu*'

say() { echo "q11-root: $*" >&2; }
skip() {
	echo "SKIP: q11-root: $*" >&2
	exit 77
}
die() {
	echo "q11-root: FAIL: $*" >&2
	exit 1
}

command -v mmdebstrap >/dev/null || skip "mmdebstrap is not installed (apt-get install mmdebstrap)"
command -v bwrap >/dev/null || skip "bwrap is not installed (apt-get install bubblewrap)"
[ "$(id -u)" -eq 0 ] || skip "mmdebstrap needs root here (its unshare mode needs subuids)"
keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
[ -f "$keyring" ] || skip "no trixie archive key ($keyring; debian-archive-keyring is too old)"

mkdir -p "$cache"
exec 9>"$cache/.lock"
# One build per machine at a time; a second caller waits and then reuses it.
flock -w 600 9 || die "another build held $cache/.lock for 10 minutes"

root_key=$(sed '/^# --- the guest kit/,$d' "$0" | sha256sum | cut -c1-12)
root=$cache/root-$root_key
kit_key=$(cat "$0" "$here/guest/edu_msi.c" "$here/guest/Kbuild" | sha256sum | cut -c1-12)
kit=$cache/kit-$kit_key

# A root mmdebstrap was killed in may still have /proc, /sys or /dev mounted
# inside: never delete through a mount point.
safe_rm() { # DIR...
	local d
	for d in "$@"; do
		[ -e "$d" ] || continue
		if awk -v p="$(realpath "$d")/" 'index($2 "/", p) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
			die "$d still has file systems mounted inside; unmount them, then remove it"
		fi
		rm -rf --one-file-system "$d"
	done
}

in_root() { # runs a command inside the root, /build bound to $1
	local dir=$1
	shift
	bwrap --bind "$root" / --dev-bind /dev /dev --proc /proc --tmpfs /tmp \
		--bind "$dir" /build --chdir /build --unshare-pid --die-with-parent "$@"
}

# --- the root -------------------------------------------------------------------
if [ ! -f "$root/.complete" ]; then
	# Roots of other keys stay: worktrees of other branches may still use
	# them (each would rebuild its own at every alternation); remove by hand.
	tmp=$cache/root-$root_key.tmp
	safe_rm "$tmp"
	t0=$(date +%s)
	say "building the trixie root (QEMU 11.1 from trixie-backports) in $tmp"
	# The guest's kernel and busybox are downloaded, not installed: a kernel
	# installed in the root would run its initramfs hooks for nothing.
	guest_get='mkdir -p /opt/guest && cd /opt/guest &&
		k=$(apt-cache depends linux-image-amd64 | sed -n "s/^ *Depends: \(linux-image-[0-9].*\)/\1/p" | head -n 1) &&
		[ -n "$k" ] && apt-get download -q "$k" busybox-static >/dev/null &&
		echo "$k" >kernel-package'
	# Bounded: a mirror that stalls is a machine that cannot do this now.
	mrc=0
	timeout -k 10 300 mmdebstrap --variant=apt --mode=root \
		--aptopt='APT::Install-Recommends "false"' \
		--setup-hook='mkdir -p "$1/etc/apt/preferences.d" && printf "Package: '"$qemu_pin"'\nPin: release n=trixie-backports\nPin-Priority: 990\n" >"$1/etc/apt/preferences.d/qemu11"' \
		--include="$root_packages" \
		--customize-hook="chroot \"\$1\" sh -c '$guest_get'" \
		trixie "$tmp" "deb $mirror trixie main" "deb $mirror trixie-backports main" \
		>"$cache/mmdebstrap.log" 2>&1 || mrc=$?
	if [ $mrc -ne 0 ]; then
		safe_rm "$tmp"
		[ $mrc -ne 124 ] && [ $mrc -ne 137 ] ||
			skip "mmdebstrap did not finish within 300 s (a slow mirror? see $cache/mmdebstrap.log)"
		# No mirror is a machine that cannot do this; anything else is a bug here.
		if grep -q -E "Temporary failure resolving|Could not resolve|Failed to fetch|Unable to connect|E: apt-get update .*failed" \
			"$cache/mmdebstrap.log"; then
			skip "mmdebstrap cannot reach $mirror (see $cache/mmdebstrap.log)"
		fi
		tail -n 20 "$cache/mmdebstrap.log" >&2
		die "mmdebstrap failed (log above, all of it in $cache/mmdebstrap.log)"
	fi
	version=$(bwrap --bind "$tmp" / --proc /proc --dev /dev qemu-system-x86_64 --version | head -n 1)
	case $version in
	*"version 11."*) ;;
	*) safe_rm "$tmp" && die "the root's QEMU is not 11.x: $version" ;;
	esac
	echo "$version" >"$tmp/.qemu-version"
	touch "$tmp/.complete"
	mv "$tmp" "$root"
	say "root built in $(($(date +%s) - t0)) s ($(du -sm "$root" | cut -f1) MB): $version"
fi

# --- the guest kit ----------------------------------------------------------------
# Loaded by the guest's /init in this order: uio for the edu checks; for the
# block checks virtio_blk (virtio and its PCI transport are built in) and
# ext4, which mounts ext2 (CONFIG_EXT4_USE_FOR_EXT2), after what it depends
# on (its modinfo: depends=jbd2,crc16,mbcache; softdep crypto-crc32c, which
# jbd2 also asks for). Trixie's kernel has no modules.dep in its package.
guest_modules="uio uio_pci_generic virtio_blk crc32c_generic crc16 mbcache jbd2 ext4"
if [ ! -f "$kit/.complete" ]; then
	# Kits of other keys are small (15 MB) and other branches' worktrees may
	# use them: removing them would make each rebuild its own every time.
	tmp=$kit.tmp
	safe_rm "$tmp"
	mkdir -p "$tmp/x" "$tmp/modules" "$tmp/msi"
	t0=$(date +%s)
	kpkg=$(cat "$root/opt/guest/kernel-package")
	dpkg-deb -x "$root"/opt/guest/"$kpkg"_*.deb "$tmp/x" || die "cannot unpack $kpkg"
	dpkg-deb -x "$root"/opt/guest/busybox-static_*.deb "$tmp/x" || die "cannot unpack busybox-static"
	kver=${kpkg#linux-image-}
	cp "$tmp/x/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	cp "$tmp/x/bin/busybox" "$tmp/busybox" 2>/dev/null || cp "$tmp/x/usr/bin/busybox" "$tmp/busybox"
	moddir=$tmp/x/usr/lib/modules/$kver
	[ -d "$moddir" ] || moddir=$tmp/x/lib/modules/$kver
	for m in $guest_modules; do
		ko=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" | head -n 1)
		[ -n "$ko" ] || die "module $m is not in $kpkg"
		case $ko in
		*.xz) if command -v xz >/dev/null; then xz -dc "$ko"; else "$tmp/busybox" xz -dc "$ko"; fi \
			>"$tmp/modules/$m.ko" ;;
		*) cp "$ko" "$tmp/modules/$m.ko" ;;
		esac
	done
	echo "$guest_modules" >"$tmp/modules/order"
	cp "$here/guest/edu_msi.c" "$here/guest/Kbuild" "$tmp/msi/"
	in_root "$tmp/msi" make -s -C "/usr/src/linux-headers-$kver" M=/build modules \
		>"$tmp/msi/build.log" 2>&1 || { cat "$tmp/msi/build.log" >&2; die "edu_msi.ko did not build"; }
	cp "$tmp/msi/edu_msi.ko" "$tmp/modules/edu_msi.ko"
	echo "$kver" >"$tmp/kernel-version"
	cp "$root/.qemu-version" "$tmp/qemu-version"
	ln -s "$root" "$tmp/root"
	rm -rf "$tmp/x"
	touch "$tmp/.complete"
	mv "$tmp" "$kit"
	say "guest kit made in $(($(date +%s) - t0)) s: kernel $kver, modules $guest_modules edu_msi"
fi
echo "$kit"
