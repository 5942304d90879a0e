# shellcheck shell=bash disable=SC2034,SC2154 # variables: the caller sets some, reads the others
# What the QEMU interop tiers share (run-interop.sh, run-interop-restart.sh):
# messages, timing, stopping a process, the guest kit and image, QEMU's
# command line. Sourced; the caller sets here (this directory), build_dir,
# run_dir (created), tag (the message prefix) and, before interop_prepare,
# kernel_pkg.
#
#   interop_prepare        the binaries, QEMU with x-pci-proxy-dev, the guest's
#                          packages and initramfs (guest-init.sh as /init);
#                          sets proxy_bin connect_bin remote_bin cache
#                          qemu_version pdeath t_prep t_image
#   interop_qemu_cmd SERIAL [APPEND...]
#                          sets qemu_cmd: the guest with edu on fd 3, the
#                          serial console to SERIAL, APPEND added to the
#                          kernel command line

say() { echo "$tag: $*"; }
skip() {
	echo "SKIP: $tag: $*"
	exit 77
}
fail() {
	echo "$tag: FAIL: $*"
	exit 1
}
elapsed() { # seconds since $1 (a date +%s.%N stamp)
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

stop() { # stop PID: TERM, a grace period, KILL; reaped
	local pid=$1
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 25); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

interop_prepare() {
	local t0 b
	proxy_bin=$build_dir/bin/mpdev-proxy
	connect_bin=$build_dir/bin/mpdev-connect
	remote_bin=$build_dir/bin/mpdev-remote
	cache=$build_dir/vfio-lab/cache
	mkdir -p "$cache"
	for b in "$proxy_bin" "$connect_bin" "$remote_bin"; do
		[ -x "$b" ] || fail "$b is not built"
	done

	# QEMU and the guest's packages (shared with the vfio-lab)
	# shellcheck source=SCRIPTDIR/../vfio-lab/guest-kit.sh
	. "$here/../vfio-lab/guest-kit.sh" # sets kit_kernel_deb, kit_busybox_deb
	kit_lock_cache
	t0=$(date +%s.%N)
	kit_ensure_qemu x-pci-proxy-dev
	kit_fetch_guest_debs "$kernel_pkg"
	kit_unlock_cache
	t_prep=$(elapsed "$t0")
	qemu_version=$(qemu-system-x86_64 --version | head -n 1)

	# the guest image
	t0=$(date +%s.%N)
	"$here/../vfio-lab/build-initramfs.sh" -k "$kit_kernel_deb" -b "$kit_busybox_deb" \
		-o "$run_dir/initrd.gz" -v "$run_dir/vmlinuz" -w "$run_dir/work" -M "" \
		-I "$here/guest-init.sh" >"$run_dir/initramfs.log" 2>&1 ||
		{ cat "$run_dir/initramfs.log"; fail "building the initramfs failed"; }
	t_image=$(elapsed "$t0")

	pdeath=()
	if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
		pdeath=(setpriv --pdeathsig KILL --)
	fi
}

interop_qemu_cmd() { # SERIAL [APPEND...]
	local serial=$1
	shift
	# shellcheck disable=SC2054 # commas are QEMU option syntax
	qemu_cmd=(qemu-system-x86_64 -machine pc,accel=tcg,memory-backend=RAM -m 512M
		-object memory-backend-memfd,id=RAM,size=512M,share=on -nodefaults
		-display none -monitor none -no-reboot -serial "file:$serial"
		-device x-pci-proxy-dev,id=edu0,fd=3
		-kernel "$run_dir/vmlinuz" -initrd "$run_dir/initrd.gz"
		-append "console=ttyS0 panic=-1 quiet memmap=1M\$0x8000000${*:+ $*}")
}
