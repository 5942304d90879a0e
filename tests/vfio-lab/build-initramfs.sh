#!/usr/bin/env bash
# Builds the vfio-lab guest: a kernel image and a gzip'd newc initramfs with
# busybox, the five VFIO modules, an /init that binds QEMU's edu device to
# vfio-pci, and the driver program (plus any other binaries, each with the
# shared libraries ldd lists and the dynamic loader).
#
#   build-initramfs.sh {-k KERNEL_DEB | -K BZIMAGE} -b BUSYBOX_DEB -o INITRD
#                      [-v VMLINUZ_OUT] [-w WORKDIR] [-i BINARY]... [-T DRIVER_TIMEOUT_S]
#                      [-M MODULES] [-I INIT] [-- DRIVER [ARGS...]]
#
# In the guest every binary sits at its host path (so RPATHs and compiled-in
# paths such as MPDEV_REMOTE_BIN keep working) and is linked into
# /usr/local/bin. /init runs DRIVER ARGS... (verbatim, no expansion) after the
# device is bound, with LAB_EDU_BDF, LAB_IOMMU_GROUP and LAB_VFIO_GROUP_DEV in
# its environment, between the lines "=== LAB DRIVER BEGIN ..." and
# "=== LAB DRIVER END ===", then prints "LAB DRIVER EXIT: <status>" and powers
# off. The driver prints "LAB RESULT: PASS" or "LAB RESULT: FAIL ...";
# /init prints "LAB RESULT: FAIL init: ..." itself if setup fails.
#
# -K takes a kernel image with everything built in (the lab kernels of
# lab-kernel.sh) instead of a Debian kernel package: no modules then.
#
# Other guests (tests/qemu-interop/): -I INIT puts the script INIT at /init
# instead (DRIVER is then optional); -M MODULES replaces the list of modules
# put into /lib/modules/lab ("" for none; only the lab's own /init loads them).
#
# Host tools: dpkg-deb, gzip, ldd; xz and cpio are taken from the busybox
# package when the host lacks them. Runs without root.
set -euo pipefail

MODULES="irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci"

usage() {
	sed -n '7,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

kernel_deb='' kernel_image='' busybox_deb='' out='' vmlinuz_out='' work='' driver_timeout=180 init_file=''
extra=()
while getopts "k:K:b:o:v:w:i:T:M:I:h" opt; do
	case $opt in
	k) kernel_deb=$OPTARG ;;
	K) kernel_image=$OPTARG MODULES= ;;
	b) busybox_deb=$OPTARG ;;
	o) out=$OPTARG ;;
	v) vmlinuz_out=$OPTARG ;;
	w) work=$OPTARG ;;
	i) extra+=("$OPTARG") ;;
	T) driver_timeout=$OPTARG ;;
	M) MODULES=$OPTARG ;;
	I) init_file=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ -n "$kernel_deb$kernel_image" ] && [ -n "$busybox_deb" ] && [ -n "$out" ] || usage
[ $# -ge 1 ] || [ -n "$init_file" ] || usage
driver=${1:-}

die() {
	echo "build-initramfs: $*" >&2
	exit 1
}
[[ $driver_timeout =~ ^[0-9]+$ ]] || die "driver timeout must be whole seconds: $driver_timeout"
[ -z "$init_file" ] || [ -f "$init_file" ] || die "no init script $init_file"

cleanup_work=
if [ -z "$work" ]; then
	work=$(mktemp -d)
	cleanup_work=$work
fi
trap '[ -z "$cleanup_work" ] || rm -rf "$cleanup_work"' EXIT
mkdir -p "$work"

# Extract a .deb once per package file (a stamp names the file extracted).
extract() {
	local deb=$1 dir=$2 stamp
	stamp=$(basename "$deb")
	[ -f "$deb" ] || die "missing package file $deb"
	if [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$deb" "$dir" || die "dpkg-deb -x $deb failed"
		echo "$stamp" >"$dir/.stamp"
	fi
}
[ -z "$kernel_deb" ] || extract "$kernel_deb" "$work/kernel"
extract "$busybox_deb" "$work/busybox"

bb=$work/busybox/bin/busybox
[ -x "$bb" ] || die "no bin/busybox in $busybox_deb"

unxz_to() { # unxz_to SRC DST
	if command -v xz >/dev/null; then
		xz -dc "$1" >"$2"
	else
		"$bb" xz -dc "$1" >"$2"
	fi
}

root=$work/root
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,run,lab,lib/modules/lab}

# busybox and its applets
cp "$bb" "$root/bin/busybox"
"$bb" --list-full | while read -r applet; do
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
[ -L "$root/bin/sh" ] || die "busybox lacks the sh applet"
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

# kernel image and modules (decompressed: busybox insmod takes plain .ko)
if [ -n "$kernel_image" ]; then
	[ -f "$kernel_image" ] || die "no kernel image $kernel_image"
	[ -z "$MODULES" ] || die "-K takes a kernel without modules; -M must be empty"
	vmlinuz=$kernel_image
	kver="$(basename "$(dirname "$kernel_image")") (built in)"
else
	vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* 2>/dev/null | head -n1)
	[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kernel_deb"
	kver=${vmlinuz##*/vmlinuz-}
fi
[ -z "$vmlinuz_out" ] || cp "$vmlinuz" "$vmlinuz_out"
loaded=" "
for m in $MODULES; do
	ko=$(find "$work/kernel/lib/modules/$kver" -name "$m.ko.xz" -o -name "$m.ko" | head -n1)
	[ -n "$ko" ] || die "module $m not in $kernel_deb"
	case $ko in
	*.xz) unxz_to "$ko" "$root/lib/modules/lab/$m.ko" ;;
	*) cp "$ko" "$root/lib/modules/lab/$m.ko" ;;
	esac
	# the fixed load order must satisfy each module's depends=
	deps=$(tr '\0' '\n' <"$root/lib/modules/lab/$m.ko" | sed -n 's/^depends=//p' | head -n1)
	for d in ${deps//,/ }; do
		[[ $loaded == *" ${d//_/-} "* || $loaded == *" ${d//-/_} "* ]] ||
			die "module $m depends on $d, which is not loaded before it ($MODULES)"
	done
	loaded+="$m "
done

# ELF binaries at their host paths, with their libraries and the loader
copy_file() { # copy_file HOSTPATH: to the same path in the guest (over a busybox applet link)
	local dst=$root$1
	if [ -L "$dst" ]; then
		rm -f "$dst"
	elif [ -e "$dst" ]; then
		return 0
	fi
	mkdir -p "$(dirname "$dst")"
	cp -L "$1" "$dst"
}
add_binary() {
	local bin=$1 libs lib
	[ -f "$bin" ] && [ -x "$bin" ] || die "not an executable file: $bin"
	bin=$(realpath -s "$bin")
	copy_file "$bin"
	ln -sf "$bin" "$root/usr/local/bin/$(basename "$bin")"
	# "not a dynamic executable" (static) makes ldd fail: nothing to copy
	libs=$(ldd "$bin" 2>/dev/null || true)
	if grep -q 'not found' <<<"$libs"; then
		die "$bin: libraries not found: $(grep 'not found' <<<"$libs" | tr -s ' \t' ' ')"
	fi
	for lib in $(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs"); do
		copy_file "$lib"
	done
}
[ -z "$driver" ] || add_binary "$driver"
for b in "${extra[@]}"; do
	add_binary "$b"
done

# the driver's command line, as shell words for /init's eval (no expansion)
shq() { printf "'%s' " "${1//\'/\'\\\'\'}"; }
if [ -n "$driver" ]; then
	driver_abs=$(realpath -s "$driver")
	{
		shq "$driver_abs"
		shift
		for a in "$@"; do shq "$a"; done
		echo
	} >"$root/lab/cmd"
fi

if [ -n "$init_file" ]; then
	cp "$init_file" "$root/init"
else
cat >"$root/init" <<EOF
#!/bin/sh
# vfio-lab guest init (generated by tests/vfio-lab/build-initramfs.sh)
MODULES="$MODULES"
DRIVER_TIMEOUT=$driver_timeout
EOF
cat >>"$root/init" <<'EOF'
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin HOME=/ TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "lab-init: $*"; }
finish() {
	say "powering off at $(up) s"
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 30
}
die() {
	echo "LAB RESULT: FAIL init: $*"
	dmesg | tail -n 30
	echo "LAB DRIVER EXIT: none"
	finish
}

say "reached /init at $(up) s, kernel $(uname -r)"
ulimit -l unlimited || die "cannot raise RLIMIT_MEMLOCK"
for m in $MODULES; do
	insmod /lib/modules/lab/$m.ko || die "insmod $m failed"
done
say "modules loaded at $(up) s: $MODULES"

edu= edu2=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ]; then
		if [ -z "$edu" ]; then edu=${d##*/}; elif [ -z "$edu2" ]; then edu2=${d##*/}; fi
	fi
done
[ -n "$edu" ] || die "no edu device (1234:11e8) on the PCI bus"
[ -e /sys/bus/pci/devices/$edu/iommu_group ] ||
	die "edu $edu has no IOMMU group (no vIOMMU, or intel_iommu=on missing)"
group=$(readlink /sys/bus/pci/devices/$edu/iommu_group)
group=${group##*/}
echo 1234 11e8 >/sys/bus/pci/drivers/vfio-pci/new_id || die "vfio-pci new_id failed"
wait_group_node() { # GROUP WHAT
	i=0
	while [ ! -c /dev/vfio/$1 ]; do
		i=$((i + 1))
		[ $i -le 100 ] || die "/dev/vfio/$1 ($2) did not appear within 10 s"
		sleep 0.1
	done
}
wait_group_node "$group" edu
# A second edu (LAB_QEMU_ARGS='-device edu'), bound by the same new_id, in its own group.
group2=
if [ -n "$edu2" ]; then
	group2=$(readlink /sys/bus/pci/devices/$edu2/iommu_group)
	group2=${group2##*/}
	wait_group_node "$group2" "second edu"
	say "second edu: $edu2, IOMMU group $group2"
fi
drv=$(readlink /sys/bus/pci/devices/$edu/driver)
say "edu bound at $(up) s"
say "edu PCI address: $edu ($(cat /sys/bus/pci/devices/$edu/vendor):$(cat /sys/bus/pci/devices/$edu/device))"
say "edu driver: ${drv##*/}"
say "edu IOMMU group: $group (members: $(ls /sys/kernel/iommu_groups/$group/devices | tr '\n' ' '))"
say "group node: $(ls -l /dev/vfio/$group)"
if [ -c /dev/vfio/vfio ]; then say "/dev/vfio/vfio: present"; else say "/dev/vfio/vfio: absent"; fi
if [ -c /dev/iommu ]; then say "/dev/iommu: present"; else say "/dev/iommu: absent (kernel without IOMMUFD)"; fi
cdev=
for c in /sys/bus/pci/devices/$edu/vfio-dev/vfio*; do
	[ -e "$c" ] && cdev=/dev/vfio/devices/${c##*/}
done
if [ -n "$cdev" ]; then say "edu VFIO cdev: $cdev"; else say "edu VFIO cdev: none (kernel without VFIO_DEVICE_CDEV)"; fi
say "ulimit -l: $(ulimit -l)"

# The lab kernel has the mtty sample: two 2-port mediated devices for the
# driver (the second is a migration target).
mtty=
mtty2=
if [ -d /sys/class/mdev_bus/mtty ]; then
	mtty=83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
	mtty2=83b8f4f2-509f-382f-3c1e-e6bfe0fa1002
	for u in $mtty $mtty2; do
		echo $u >/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create ||
			die "cannot create the mtty mediated device $u"
		say "mtty mediated device: $u (group $(readlink /sys/bus/mdev/devices/$u/iommu_group | sed 's,.*/,,'))"
	done
fi

export LAB_EDU_BDF=$edu LAB_EDU2_BDF=$edu2 LAB_IOMMU_GROUP=$group LAB_VFIO_GROUP_DEV=/dev/vfio/$group LAB_VFIO_CDEV=$cdev LAB_MTTY_UUID=$mtty LAB_MTTY2_UUID=$mtty2
cd /tmp
eval "set -- $(cat /lab/cmd)"
echo "=== LAB DRIVER BEGIN at $(up) s: $* ==="
timeout $DRIVER_TIMEOUT "$@"
rc=$?
echo "=== LAB DRIVER END at $(up) s ==="
if [ $rc -ne 0 ]; then
	echo "lab-init: driver failed (status $rc); last kernel messages:"
	dmesg | tail -n 30
fi
echo "LAB DRIVER EXIT: $rc"
finish
EOF
fi
chmod 755 "$root/init"

# the archive: busybox cpio when the host has no cpio; all files owned by root
if command -v cpio >/dev/null; then
	cpio_create() { cpio -o -H newc -R 0:0 --quiet; }
else
	cpio_create() { "$bb" cpio -o -H newc -R 0:0 2>/dev/null; }
fi
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio_create) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out ($(du -k "$out" | cut -f1) KiB), kernel $kver"
