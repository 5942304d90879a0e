#!/usr/bin/env bash
# The vfio-lab's own kernels, built from Debian's linux-source-6.12 (see
# docs/vfio-lab.md, "The lab kernels"):
#
#   lab-kernel.sh CONFIG        CONFIG: lab | compat
#
# prints the path of the cached bzImage for CONFIG on stdout (everything
# else goes to stderr). "lab" has the type1 container and iommufd with the
# VFIO cdev, IOMMUFD_TEST and mtty; "compat" is the same with iommufd
# serving /dev/vfio/vfio instead of the type1 container (Kconfig allows
# only one of the two). Both are built together, the second incrementally
# from the first's tree, and cached under
# ${XDG_CACHE_HOME:-~/.cache}/mpdev/lab-kernel/VERSION-HASH/, keyed by the
# source package's version and a hash of the config fragments and this
# script, so only the first run on a machine pays for the build.
#
# The source package comes through a private apt configuration (its own
# sources and lists directories under the cache): the host's apt sources
# are never touched. Exit status: 0 with the path printed; 77 when the
# source or the build tools cannot be had (the reason on stderr); 1 when
# the build fails.
#
# Environment:
#   LAB_KERNEL_SRC_PKG  source package (default linux-source-6.12)
#   LAB_KERNEL_SUITE    suite to fetch it from (default bookworm-backports)
#   LAB_KERNEL_MIRROR   mirror (default http://deb.debian.org/debian)
#   LAB_KERNEL_JOBS     make -j (default: the number of CPUs)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config=${1:-}
case $config in
lab | compat) ;;
*)
	echo "usage: lab-kernel.sh lab|compat" >&2
	exit 2
	;;
esac

src_pkg=${LAB_KERNEL_SRC_PKG:-linux-source-6.12}
suite=${LAB_KERNEL_SUITE:-bookworm-backports}
mirror=${LAB_KERNEL_MIRROR:-http://deb.debian.org/debian}
jobs=${LAB_KERNEL_JOBS:-$(nproc)}
root=${XDG_CACHE_HOME:-$HOME/.cache}/mpdev/lab-kernel
frag_lab=$here/kernel/lab.config
frag_compat=$here/kernel/compat.config

say() { echo "lab-kernel: $*" >&2; }
skip() {
	echo "SKIP: lab-kernel: $*" >&2
	exit 77
}
die() {
	echo "lab-kernel: FAIL: $*" >&2
	exit 1
}

mkdir -p "$root"
exec 9>"$root/.lock"
# One build per machine at a time; a second caller waits and then reuses it.
flock 9

# --- the source package, through a private apt configuration ----------------
apt_dir=$root/apt
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
	"$apt_dir/debs"
cat >"$apt_dir/sources/lab.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/sources"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o Debug::NoLocking=1)

key_hash=$(cat "$frag_lab" "$frag_compat" "$0" | sha256sum | cut -c1-12)
version=
if apt-get "${apt_opts[@]}" -q update >"$apt_dir/update.log" 2>&1; then
	version=$(apt-cache "${apt_opts[@]}" policy "$src_pkg" 2>/dev/null |
		sed -n 's/^ *Candidate: *//p')
	[ "$version" != "(none)" ] || version=
fi
if [ -z "$version" ]; then
	# Offline: a kernel already built from these fragments will do.
	cached=$(ls -d "$root"/*-"$key_hash" 2>/dev/null | tail -n 1 || true)
	if [ -n "$cached" ] && [ -f "$cached/$config/bzImage" ]; then
		say "apt cannot reach $suite; using the cached $(basename "$cached")"
		echo "$cached/$config/bzImage"
		exit 0
	fi
	skip "cannot find $src_pkg in $suite (apt-get update: $(tail -n 1 "$apt_dir/update.log"))"
fi
out=$root/$version-$key_hash
if [ -f "$out/lab/bzImage" ] && [ -f "$out/compat/bzImage" ]; then
	echo "$out/$config/bzImage"
	exit 0
fi

for tool in make gcc flex bison bc xz; do
	command -v "$tool" >/dev/null || skip "the kernel build needs $tool (scripts/setup.sh installs it)"
done
[ -e /usr/include/libelf.h ] || skip "the kernel build needs libelf-dev (scripts/setup.sh installs it)"

deb=$(ls "$apt_dir/debs/${src_pkg}_${version//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	say "downloading $src_pkg $version from $suite"
	(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -q download "$src_pkg=$version") \
		>"$apt_dir/download.log" 2>&1 ||
		skip "apt-get download $src_pkg=$version failed: $(tail -n 1 "$apt_dir/download.log")"
	deb=$(ls "$apt_dir/debs/${src_pkg}_"*.deb | head -n 1)
fi

# --- build ---------------------------------------------------------------------
work=$root/work
rm -rf "$work"
mkdir -p "$work"
# A failed or interrupted build leaves nothing half-made behind.
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
say "unpacking $(basename "$deb")"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './usr/src/linux-source-*.tar.xz'
tar -xJf "$work"/usr/src/linux-source-*.tar.xz -C "$work"
src=$(ls -d "$work"/linux-source-*/ | head -n 1)

configure() { # OBJDIR FRAGMENT...
	local obj=$1
	shift
	make -s -C "$src" O="$obj" ARCH=x86_64 tinyconfig >/dev/null
	KCONFIG_CONFIG=$obj/.config "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" \
		"$obj/.config" "$@" >"$obj/merge.log" 2>&1
	make -s -C "$src" O="$obj" ARCH=x86_64 olddefconfig >/dev/null
	# merge_config only warns about options Kconfig dropped; here each is a
	# lab that cannot work, so check what the fragments ask for (the last
	# fragment's word on an option wins, as in merge_config).
	local line
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) grep -qxF "$line" "$obj/.config" || die "Kconfig dropped $line" ;;
		"# CONFIG_"*" is not set")
			! grep -q "^${line:2:-11}=" "$obj/.config" || die "Kconfig kept ${line:2:-11}" ;;
		esac
	done < <(cat "$@" | awk '
		/^CONFIG_/ { n = $0; sub(/=.*/, "", n) }
		/^# CONFIG_.* is not set$/ { n = $2 }
		n != "" { last[n] = $0; if (!(n in seen)) { seen[n] = 1; order[++k] = n } n = "" }
		END { for (i = 1; i <= k; i++) print last[order[i]] }')
}

build() { # OBJDIR NAME
	say "building the $2 kernel (make -j$jobs)"
	local t=$(date +%s)
	make -s -C "$src" O="$1" ARCH=x86_64 -j"$jobs" bzImage >"$1/build.log" 2>&1 ||
		{ tail -n 30 "$1/build.log" >&2; die "the $2 kernel did not build (log above)"; }
	say "the $2 kernel built in $(($(date +%s) - t)) s"
}

configure "$work/obj" "$frag_lab"
build "$work/obj" lab
mkdir -p "$work/out/lab" "$work/out/compat"
cp "$work/obj/arch/x86/boot/bzImage" "$work/obj/.config" "$work/out/lab/"
# The compat kernel differs in a few options; Kbuild rebuilds only the
# objects that depend on them.
configure "$work/obj" "$frag_lab" "$frag_compat"
build "$work/obj" compat
cp "$work/obj/arch/x86/boot/bzImage" "$work/obj/.config" "$work/out/compat/"
echo "$version" >"$work/out/source-version"
echo "built in $(($(date +%s) - t0)) s with make -j$jobs on $(nproc) CPUs" >"$work/out/build-time"
rm -rf "$out"
mv "$work/out" "$out"
say "cached in $out ($(cat "$out/build-time"))"
echo "$out/$config/bzImage"
