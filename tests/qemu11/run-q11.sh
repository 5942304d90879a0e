#!/usr/bin/env bash
# The QEMU 11.1 tier: a Linux guest under TCG checks edu devices from inside
# (identity, registers, DMA byte for byte, INTx through uio_pci_generic, MSI
# through the guest kernel) — QEMU's own emulated edu, mpdev-remote's edu
# through QEMU 11.1's vfio-user-pci, or both in one guest; or it uses disks
# through its own virtio_blk (a pattern over a whole disk, an ext2 on
# another) — QEMU's virtio-blk-pci, mpdev-remote's virtio-blk, or both
# (docs/qemu.md, "QEMU 11.1 vfio-user tier").
#
#   run-q11.sh [-t TARGET] [-m MMIO_MS | -i IOPS_MS [-q QD,...]] [-r ROUNDS] [-o OUT_DIR] BUILD_DIR
#
# -t  which devices the guest gets (default mpdev): qemu-edu is QEMU's own edu
#     (proves the root, kernel, initramfs and guest programs); mpdev is
#     BUILD_DIR/bin/mpdev-remote --device edu --face vfio-user behind
#     vfio-user-pci; both puts the two side by side.
#     qemu-blk: two of QEMU's virtio-blk-pci on raw files (a 64 MiB pattern
#     disk with two queues, a 32 MiB ext2 disk); mpdev-blk: the same two
#     disks from BUILD_DIR/bin/mpdev-remote --device virtio-blk:FILE behind
#     vfio-user-pci; blk-both: the four. After the guest powers off the host
#     checks the files: every byte of a pattern disk; the ext2 image by
#     e2fsck and the pattern of the file dumped out of it.
# -m  also measure BAR0 reads per second from inside the guest: ROUNDS
#     rounds (default 5) alternating between the devices, MMIO_MS
#     milliseconds per device each (bench/bench-guest-mmio.sh)
# -i  also measure 4 KiB O_DIRECT random read and write IOPS from inside the
#     guest at each queue depth of -q (default 1): ROUNDS rounds alternating
#     between the pattern disks, IOPS_MS each (bench/bench-guest-blk.sh)
# -o  where the run's files go (default BUILD_DIR/qemu11/TARGET)
#
# QEMU 11.1 comes from the cached trixie root (q11-root.sh) and runs there
# through bwrap; the host's packages are not touched. Guest RAM is a shared,
# sealed memfd, which is what mpdev-remote maps. Exit status: 0 when every
# expected check printed PASS; 77 (skip, with the reason) when the root
# cannot be had or mpdev-remote has no vfio-user face (or, for the mpdev
# disks, no virtio-blk); 1 otherwise.
#
# Environment:
#   Q11_TIMEOUT       hard limit for the guest, seconds (default 150; 300 with disks)
#   Q11_BLK_AIO       QEMU's aio= for its virtio-blk-pci disks (default io_uring)
#   Q11_REMOTE_ARGS   extra mpdev-remote arguments (word-split), e.g. --no-sandbox
#   Q11_STRICT        0: only warn when QEMU logged error replies from the server (default 1: fail)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

usage() {
	echo "usage: run-q11.sh [-t qemu-edu|mpdev|both|qemu-blk|mpdev-blk|blk-both]" \
		"[-m MMIO_MS | -i IOPS_MS [-q QD,...]] [-r ROUNDS] [-o OUT_DIR] BUILD_DIR" >&2
	exit 2
}
target=mpdev mmio_ms=0 mmio_rounds=5 iops_ms=0 iops_qd=1 out=
while getopts "t:m:i:q:r:o:h" opt; do
	case $opt in
	t) target=$OPTARG ;;
	m) mmio_ms=$OPTARG ;;
	i) iops_ms=$OPTARG ;;
	q) iops_qd=$OPTARG ;;
	r) mmio_rounds=$OPTARG ;;
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
# What the target puts in the guest: edu devices, disks, and which side serves them.
edu_qemu=0 edu_mpdev=0 blk_qemu=0 blk_mpdev=0
case $target in
qemu-edu) edu_qemu=1 ;;
mpdev) edu_mpdev=1 ;;
both) edu_qemu=1 edu_mpdev=1 ;;
qemu-blk) blk_qemu=1 ;;
mpdev-blk) blk_mpdev=1 ;;
blk-both) blk_qemu=1 blk_mpdev=1 ;;
*) usage ;;
esac
[[ $mmio_ms =~ ^[0-9]+$ ]] && [[ $mmio_rounds =~ ^[1-9][0-9]*$ ]] && [[ $iops_ms =~ ^[0-9]+$ ]] &&
	[[ $iops_qd =~ ^[1-8](,[1-8])*$ ]] || usage
build_dir=$(realpath "$1")
out=${out:-$build_dir/qemu11/$target}
if [ $((blk_qemu + blk_mpdev)) -gt 0 ]; then timeout_s=${Q11_TIMEOUT:-300}; else timeout_s=${Q11_TIMEOUT:-150}; fi

say() { echo "qemu11: $*"; }
skip() {
	echo "SKIP: qemu11: $*"
	exit 77
}
fail() {
	echo "qemu11: FAIL: $*"
	echo "qemu11: RESULT: FAIL"
	exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Every child is ours to end, on every way out: QEMU and mpdev-remote run in
# the background with a parent-death signal and are reaped here.
qemu_pid='' remote_pid=''
stop() { # PID
	local pid=$1
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$qemu_pid"
	qemu_pid=
	stop "$remote_pid"
	remote_pid=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

pdeath=()
if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
	pdeath=(setpriv --pdeathsig KILL --)
fi

# --- the root and the guest kit ----------------------------------------------
t0=$(date +%s.%N)
krc=0
kit=$("$here/q11-root.sh") || krc=$?
[ $krc -ne 77 ] || skip "no QEMU 11.1 root (q11-root.sh said why above)"
[ $krc -eq 0 ] || fail "the QEMU 11.1 root or guest kit could not be built"
root=$(readlink "$kit/root")
t_root=$(elapsed "$t0")
say "QEMU: $(cat "$kit/qemu-version"); guest kernel $(cat "$kit/kernel-version")"

remote_bin=$build_dir/bin/mpdev-remote
if [ $((edu_mpdev + blk_mpdev)) -gt 0 ]; then
	[ -x "$remote_bin" ] || fail "no $remote_bin (build first)"
	"$remote_bin" --face vfio-user --help >/dev/null 2>&1 ||
		skip "this mpdev-remote has no vfio-user face ($remote_bin --face vfio-user refused)"
fi
# --help exits before a device is parsed; its text names every kind it serves.
if [ $blk_mpdev -eq 1 ] && ! "$remote_bin" --help 2>/dev/null | grep -q 'virtio-blk'; then
	skip "this mpdev-remote has no virtio-blk device (its --help does not name virtio-blk)"
fi

# --- the guest image -------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")
t0=$(date +%s.%N)
cc=${CC:-cc}
"$cc" -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$out/q11-guest" "$here/guest/q11_guest.c" ||
	fail "the guest program did not build"
"$cc" -static -O2 -std=gnu11 -Wall -Wextra -Werror -pthread -I"$here" -o "$out/q11-blk" \
	"$here/guest/q11_blk.c" || fail "the guest's block program did not build"
"$cc" -O2 -std=gnu11 -Wall -Wextra -Werror -o "$out/blk-pattern" "$here/blk_pattern.c" ||
	fail "the host's pattern checker did not build"
img=$out/initramfs
mkdir -p "$img"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules/q11}
cp "$kit/busybox" "$img/bin/busybox"
for a in $("$img/bin/busybox" --list-full); do
	[ -e "$img/$a" ] || ln -s /bin/busybox "$img/$a"
done
cp "$kit"/modules/* "$img/lib/modules/q11/"
cp "$out/q11-guest" "$img/bin/q11-guest"
cp "$out/q11-blk" "$img/bin/q11-blk"
cp "$here/guest/init" "$img/init"
chmod 755 "$img/init"
(cd "$img" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$out/initrd.gz"
t_image=$(elapsed "$t0")

# --- the devices -------------------------------------------------------------------
devs=() qdev=() blks=()
# Fixed slots, so the guest finds each device by its address.
if [ $edu_qemu -eq 1 ]; then
	devs+=(qemu-edu@0000:00:05.0)
	# shellcheck disable=SC2054 # commas are QEMU option syntax
	qdev+=(-device edu,addr=05.0)
fi
# Disks: LABEL SLOT MIB KIND QUEUES; each a new sparse file, so nothing of an
# earlier run is in it, and a seed of this run's for the pattern.
pattern_mib=64 fs_mib=32
seed=$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')
disk_list=()
if [ $blk_qemu -eq 1 ]; then
	disk_list+=("qemu-blk 07 $pattern_mib pattern 2" "qemu-blkfs 08 $fs_mib fs 1")
fi
if [ $blk_mpdev -eq 1 ]; then
	disk_list+=("mpdev-blk 09 $pattern_mib pattern 2" "mpdev-blkfs 0a $fs_mib fs 1")
fi
remote_devs=()
for d in "${disk_list[@]}"; do
	read -r label slot mib kind nq <<<"$d"
	file=$out/$label.img
	truncate -s "${mib}M" "$file"
	blks+=("$label/0000:00:$slot.0/$mib/$kind/$nq")
	case $label in
	qemu-*)
		# shellcheck disable=SC2054 # commas are QEMU option syntax
		qdev+=(-drive "file=$file,if=none,id=$label,format=raw,cache=none,aio=${Q11_BLK_AIO:-io_uring}"
			-device "virtio-blk-pci,drive=$label,num-queues=$nq,addr=$slot.0")
		;;
	mpdev-*)
		spec=virtio-blk:$file
		[ "$nq" -eq 1 ] || spec=$spec,queues=$nq
		remote_devs+=("$spec $out/$label.sock $slot")
		;;
	esac
done
if [ $edu_mpdev -eq 1 ]; then
	devs+=(mpdev@0000:00:06.0)
	remote_devs=("edu $out/vfio-user.sock 06" "${remote_devs[@]}")
fi
remote_log=$out/remote.log
if [ ${#remote_devs[@]} -gt 0 ]; then
	# One remote for all of the guest's mpdev devices, a socket each.
	remote_cmd=("$remote_bin") socks=()
	for r in "${remote_devs[@]}"; do
		read -r spec sock slot <<<"$r"
		remote_cmd+=(--device "$spec" --socket "$sock")
		socks+=("$sock")
		qdev+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$sock\",\"type\":\"unix\"},\"addr\":\"$slot.0\"}")
	done
	# shellcheck disable=SC2206 # word splitting wanted
	remote_cmd+=(--face vfio-user -v ${Q11_REMOTE_ARGS:-})
	say "remote: ${remote_cmd[*]}"
	"${pdeath[@]}" "${remote_cmd[@]}" </dev/null >"$remote_log" 2>&1 &
	remote_pid=$!
	for sock in "${socks[@]}"; do
		for _ in $(seq 100); do
			[ -S "$sock" ] && break
			kill -0 "$remote_pid" 2>/dev/null || break
			sleep 0.1
		done
		[ -S "$sock" ] || {
			cat "$remote_log"
			fail "mpdev-remote did not create $sock within 10 s"
		}
	done
fi

# --- boot ---------------------------------------------------------------------------
serial=$out/serial.log
qemu_log=$out/qemu.log
append="console=ttyS0 panic=-1 quiet q11=$(
	IFS=,
	echo "${devs[*]}"
) q11.mmio_ms=$mmio_ms q11.mmio_rounds=$mmio_rounds"
if [ ${#blks[@]} -gt 0 ]; then
	append="$append q11.blk=$(
		IFS=,
		echo "${blks[*]}"
	) q11.seed=$seed q11.iops_ms=$iops_ms q11.iops_rounds=$mmio_rounds q11.iops_qd=$iops_qd"
fi
# Guest RAM is a shared memfd (QEMU seals it by default): the only memory a
# vfio-user server can map. 256 MiB keeps all of it inside edu's 28-bit DMA mask.
# shellcheck disable=SC2054 # commas are QEMU option syntax
qemu_cmd=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 256M
	-object memory-backend-memfd,id=mem,size=256M,share=on -machine q35,memory-backend=mem
	-display none -monitor none -no-reboot -nic none -serial "file:$serial"
	"${qdev[@]}" -kernel "$kit/vmlinuz" -initrd "$out/initrd.gz" -append "$append")
say "booting QEMU 11.1 from $root: ${qemu_cmd[*]}"
t0=$(date +%s.%N)
"${pdeath[@]}" timeout -k 5 "$timeout_s" "${pdeath[@]}" \
	bwrap --bind "$root" / --dev-bind /dev /dev --proc /proc --tmpfs /tmp \
	--bind "$out" "$out" --ro-bind "$kit" "$kit" --die-with-parent \
	"${qemu_cmd[@]}" </dev/null >"$qemu_log" 2>&1 &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
t_guest=$(elapsed "$t0")
remote_died=
if [ -n "$remote_pid" ]; then
	# QEMU 11.1's client aborts when its server goes away: say which one went first.
	if ! kill -0 "$remote_pid" 2>/dev/null; then
		rrc=0
		wait "$remote_pid" || rrc=$?
		remote_died="mpdev-remote exited (status $rrc) while QEMU ran"
	fi
	stop "$remote_pid"
	remote_pid=
fi

# --- verdict --------------------------------------------------------------------------
[ -f "$serial" ] || touch "$serial"
log=$out/serial.txt
tr -d '\r' <"$serial" >"$log"
echo "--- guest console from /init on:"
sed -n '/^q11-init: reached/,$p' "$log"
echo "---"
init_at=$(sed -n 's/^q11-init: reached \/init at \([0-9.]*\) s.*/\1/p' "$log")
say "timings: root+kit ${t_root} s, initramfs ${t_image} s, guest ${t_guest} s" \
	"(/init at ${init_at:-?} s guest time), total $(elapsed "$t_start") s"

checks="identity liveness factorial dma intx_repeat intx_quiet intx_reassert intx_disable msi"
missing=() failed=()
for d in "${devs[@]}"; do
	label=${d%%@*}
	for c in $checks; do
		line=$(grep -m1 "^Q11 CHECK $label $c: " "$log" || true)
		case $line in
		*": PASS"*) ;;
		"") missing+=("$label/$c") ;;
		*) failed+=("$label/$c") ;;
		esac
	done
	if [ "$mmio_ms" -gt 0 ] &&
		[ "$(grep -c "^Q11 MMIO $label reads=" "$log" || true)" -ne "$mmio_rounds" ]; then
		missing+=("$label/mmio")
	fi
done
# The disks: the guest's lines, then the host's own look at the files.
# queues_used is printed only where blk-mq's debugfs is; a FAIL of it counts.
pattern_checks="disk queues write flush readback"
fs_checks="fs_mkfs fs_mount fs_write fs_remount fs_check fs_umount"
n_qd=$(echo "$iops_qd" | tr ',' '\n' | grep -c .)
host_checks=()
for d in "${disk_list[@]}"; do
	read -r label slot mib kind nq <<<"$d"
	if [ "$kind" = pattern ]; then names=$pattern_checks; else names=$fs_checks; fi
	for c in $names; do
		line=$(grep -m1 "^Q11 CHECK $label $c: " "$log" || true)
		case $line in
		*": PASS"*) ;;
		"") missing+=("$label/$c") ;;
		*) failed+=("$label/$c") ;;
		esac
	done
	file=$out/$label.img
	if [ "$kind" = pattern ]; then
		if [ "$iops_ms" -gt 0 ] &&
			[ "$(grep -c "^Q11 IOPS $label rw=.* bad=0$" "$log" || true)" -ne $((2 * mmio_rounds * n_qd)) ]; then
			missing+=("$label/iops")
		fi
		# Every byte the guest wrote is in the file (the IOPS writes write the pattern too).
		hc=$("$out/blk-pattern" "$file" "$seed" $((mib << 20)) 2>&1) || failed+=("$label/host_pattern")
		host_checks+=("$hc")
	else
		if ! command -v e2fsck >/dev/null || ! command -v debugfs >/dev/null; then
			host_checks+=("$label: host check of the image skipped: no e2fsck/debugfs (e2fsprogs) here")
			continue
		fi
		if hc=$(e2fsck -fn "$file" 2>&1); then
			host_checks+=("$label: e2fsck -fn: PASS clean ($(echo "$hc" | tail -n 1))")
		else
			failed+=("$label/host_e2fsck")
			host_checks+=("$label: e2fsck -fn: FAIL: $(echo "$hc" | tr '\n' ' ' | cut -c1-300)")
		fi
		rm -f "$out/$label.q11.bin"
		debugfs -R "dump /q11.bin $out/$label.q11.bin" "$file" >/dev/null 2>&1 || true
		hc=$("$out/blk-pattern" "$out/$label.q11.bin" "$seed" 4194304 2>&1) || failed+=("$label/host_file")
		host_checks+=("$hc")
	fi
done
if [ ${#host_checks[@]} -gt 0 ]; then
	echo "--- the host's checks of the backing files:"
	printf '%s\n' "${host_checks[@]}"
	echo "---"
fi
# Anything else the guest reported as failed (init, binding) counts too.
while read -r l; do
	failed+=("$l")
done < <(grep '^Q11 CHECK .*: FAIL' "$log" |
	grep -v -E "^Q11 CHECK [^ ]+ ($(echo "$checks $pattern_checks $fs_checks" | tr ' ' '|')): " |
	sed 's/^Q11 CHECK \([^ ]*\) \([^:]*\):.*/\1\/\2/')

why=
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	why="the guest did not power off within $timeout_s s"
elif [ $rc -ne 0 ]; then
	why="QEMU exited with status $rc"
elif ! grep -q '^q11-init: reached /init' "$log"; then
	why="the guest never reached /init"
elif ! grep -q '^Q11 DONE' "$log"; then
	why="the guest's /init did not finish"
fi
if [ -n "$remote_died" ]; then why="${why:+$why; }$remote_died"; fi
if [ ${#failed[@]} -gt 0 ]; then why="${why:+$why; }failed: ${failed[*]}"; fi
if [ ${#missing[@]} -gt 0 ]; then why="${why:+$why; }missing: ${missing[*]}"; fi
if [ -s "$remote_log" ] && grep -q ': error: ' "$remote_log"; then
	echo "--- mpdev-remote errors ($remote_log):"
	grep ': error: ' "$remote_log" | tail -n 20
	why="${why:+$why; }mpdev-remote logged errors"
fi
# Error replies QEMU's client logged: the guest may still have passed (a
# refused map of a ROM alias costs nothing it checks), but a server that
# refuses what a stock client sends is wrong: they fail the run (Q11_STRICT=0 only warns).
n_err=$(grep -c 'error reply' "$qemu_log" 2>/dev/null || true)
if [ "${n_err:-0}" -gt 0 ]; then
	say "WARN: QEMU logged $n_err error replies from the server; first: $(grep -m1 'error reply' "$qemu_log")"
	[ "${Q11_STRICT:-1}" = 0 ] || why="${why:+$why; }$n_err error replies to QEMU (Q11_STRICT)"
fi
n_checks=$(grep -c '^Q11 CHECK .*: PASS' "$log" || true)
if [ -n "$why" ]; then
	if [ -s "$qemu_log" ]; then
		echo "--- QEMU stderr ($qemu_log), last lines:"
		tail -n 20 "$qemu_log"
	fi
	if ! grep -q '^q11-init: reached' "$log"; then
		echo "--- serial log ($serial), last lines:"
		tail -n 40 "$log"
	fi
	fail "$why"
fi
all=("${devs[@]}" "${blks[@]}")
n_host=
[ ${#host_checks[@]} -eq 0 ] || n_host=" and ${#host_checks[@]} host checks of the disks' files"
say "RESULT: PASS ($n_checks checks passed on ${all[*]}$n_host; files in $out)"
