#!/bin/sh
# /init of the QEMU interop guest (tests/qemu-interop/run-interop.sh): busybox
# only. The edu device is QEMU's x-pci-proxy-dev, served by mpdev-proxy and an
# mpdev-remote on the host. Finds it in sysfs, checks its ids and BAR, drives
# ident/liveness/factorial through MMIO with devmem at the BAR's address,
# turns bus mastering on through the sysfs config file (busybox has no
# setpci), and lets edu DMA from guest RAM (the area memmap=1M$0x8000000
# reserved, below edu's 28-bit DMA limit) to its buffer and back to another
# RAM address, verified word by word. Prints "QEMU INTEROP RESULT: PASS" or
# "QEMU INTEROP RESULT: FAIL <why>" and powers off.
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin HOME=/ TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

RAM_SRC=0x8000000 # reserved by memmap=1M$0x8000000 on the kernel command line
RAM_DST=0x8010000
EDU_BUF=0x40000
WORDS=64 # 256 bytes: each word a devmem process, slow under TCG

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "interop-guest: $*"; }
finish() {
	say "powering off at $(up) s"
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 30
}
fail() {
	echo "QEMU INTEROP RESULT: FAIL $*"
	dmesg | tail -n 20
	finish
}
hex() { printf '0x%x' "$1"; }

say "reached /init at $(up) s, kernel $(uname -r)"

dev=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		dev=$d
		break
	fi
done
[ -n "$dev" ] || fail "no edu device (1234:11e8) on the PCI bus: $(cat /sys/bus/pci/devices/*/vendor | tr '\n' ' ')"
say "edu at ${dev##*/}: vendor $(cat "$dev/vendor") device $(cat "$dev/device") class $(cat "$dev/class") irq $(cat "$dev/irq")"

# BAR0 from sysfs: "start end flags"; 1 MiB of memory space.
# shellcheck disable=SC2046 # split into three words on purpose
set -- $(head -n 1 "$dev/resource")
bar=$(($1))
size=$(($2 - $1 + 1))
flags=$(($3))
say "BAR0 at $(hex $bar), $size bytes, flags $(hex $flags)"
[ $bar -ne 0 ] || fail "BAR0 is not assigned"
[ $size -eq $((0x100000)) ] || fail "BAR0 is $size bytes, edu's is 1 MiB"
[ $((flags & 0x200)) -ne 0 ] || fail "BAR0 is not memory space (flags $(hex $flags))"

rd() { devmem "$(hex $((bar + $1)))" 32; }
wr() { devmem "$(hex $((bar + $1)))" 32 "$2"; }
# edu copies BYTES from SRC to DST (CMD 1: RAM -> its buffer, 3: back) and is
# polled until done; returns 1 with the reason in why if it never finishes.
dma() { # SRC DST CMD BYTES
	wr 0x80 "$1"
	wr 0x88 "$2"
	wr 0x90 "$4"
	wr 0x98 "$3"
	p=0
	while [ $(($(rd 0x98) & 1)) -ne 0 ]; do
		p=$((p + 1))
		[ $p -le 200 ] || { why="DMA $1 -> $2 did not finish"; return 1; }
	done
}

# --- the restart tier (run-interop-restart.sh): interop.mode=restart ---------
# Loops over ident, liveness, factorial and a DMA round trip while the host
# SIGKILLs the remote. A restarted remote's edu is a device after reset with
# Signaled System Error (status bit 14, write-1-to-clear) set: at the start of
# each iteration, and whenever a value is wrong, SERR set means "the device
# was reset": count it, clear it, redo the set-up and the iteration. A wrong
# value with SERR clear fails. Kernel command line: interop.secs=S (stop after
# S s, default 60), interop.restarts=K (stop once K restarts were seen and
# interop.after=A iterations, default 3, passed after the last one),
# interop.iters=N (at most N iterations, default 2000).
RWORDS=16 # DMA words per iteration

cmdline_num() { # NAME DEFAULT: interop.NAME=VALUE from /proc/cmdline
	v=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^interop\\.$1=//p" | tail -n 1)
	case $v in
	'' | *[!0-9]*) echo "$2" ;;
	*) echo "$v" ;;
	esac
}
up_s() { up | cut -d. -f1; }
cfg16() { # OFFSET: the 16-bit config register, one 2-byte read through sysfs
	dd if="$dev/config" bs=2 skip=$(($1 / 2)) count=1 2>/dev/null | od -An -tu2 | tr -d ' '
}
cfg16_write() { # OFFSET VALUE: one 2-byte config write through sysfs
	# shellcheck disable=SC2059 # the format is the two bytes, as octal escapes
	printf "\\$(printf %o $(($2 & 255)))\\$(printf %o $(($2 >> 8 & 255)))" |
		dd of="$dev/config" bs=2 seek=$(($1 / 2)) count=1 conv=notrunc 2>/dev/null
}
serr_set() { [ $(($(cfg16 6) & 0x4000)) -ne 0 ]; }
# The set-up: memory space and bus mastering on in the command register.
setup() {
	cmd=$(cfg16 4)
	if [ $((cmd & 0x6)) -ne 6 ]; then
		cfg16_write 4 $((cmd | 0x6)) || rfail "cannot write the command register"
		setups=$((setups + 1))
		now=$(cfg16 4)
		[ $((now & 0x6)) -eq 6 ] || rfail "bus mastering did not turn on (command $(hex "$now"))"
		how="command $(hex "$cmd") -> $(hex "$now") (set-up done)"
	else
		how="command $(hex "$cmd") kept (by the replay, after a restart)"
	fi
}
# The device was reset: clear SERR (W1C) and put back what the guest set up.
restart_seen() { # WHY
	seen=$((seen + 1))
	after=0
	cfg16_write 6 0x4000 || rfail "cannot write the status register"
	st=$(cfg16 6)
	[ $((st & 0x4000)) -eq 0 ] || rfail "SERR still set after writing 1 to it (status $(hex "$st"))"
	setup
	say "restart $seen seen at $(up) s ($1): SERR cleared, status now $(hex "$st"), $how"
}
rfail() {
	echo "QEMU INTEROP RESTART RESULT: FAIL $* (iterations=$it restarts_seen=$seen)"
	dmesg | tail -n 20
	finish
}
fact() { # N: N! (fits 32 bits for N <= 12)
	f=1 k=2
	while [ $k -le "$1" ]; do
		f=$((f * k))
		k=$((k + 1))
	done
	echo $f
}
# One iteration; on a wrong value returns 1 with the reason in why.
iteration() {
	n=$1
	v=$(rd 0x00)
	[ $((v)) -eq $((0x010000ed)) ] || { why="ident reads $v"; return 1; }
	x=$(((n * 0x9e3779b9 + 0x12345678) & 0xffffffff))
	wr 0x04 "$x"
	v=$(rd 0x04)
	[ $((v)) -eq $((~x & 0xffffffff)) ] || { why="liveness: wrote $(hex $x), read $v"; return 1; }
	k=$((n % 12 + 1))
	wr 0x08 $k
	p=0
	while [ $(($(rd 0x20) & 1)) -ne 0 ]; do
		p=$((p + 1))
		[ $p -le 100 ] || { why="factorial still computing after 100 polls"; return 1; }
	done
	v=$(rd 0x08)
	[ $((v)) -eq "$(fact $k)" ] || { why="$k! reads $((v)), not $(fact $k)"; return 1; }
	i=0
	while [ $i -lt $RWORDS ]; do
		devmem "$(hex $((RAM_SRC + 4 * i)))" 32 $(((n * 0x01000193 + i * 0x01020304) & 0xffffffff))
		devmem "$(hex $((RAM_DST + 4 * i)))" 32 0x5a5a5a5a
		i=$((i + 1))
	done
	dma $RAM_SRC $EDU_BUF 1 $((4 * RWORDS)) || return 1
	dma $EDU_BUF $RAM_DST 3 $((4 * RWORDS)) || return 1
	i=0
	while [ $i -lt $RWORDS ]; do
		got=$(devmem "$(hex $((RAM_DST + 4 * i)))" 32)
		want=$(((n * 0x01000193 + i * 0x01020304) & 0xffffffff))
		[ $((got)) -eq $want ] ||
			{ why="DMA: byte $((4 * i)) reads $got, wrote $(hex $want)"; return 1; }
		i=$((i + 1))
	done
	return 0
}
restart_loop() {
	secs=$(cmdline_num secs 60)
	want_restarts=$(cmdline_num restarts 0)
	want_after=$(cmdline_num after 3)
	max_iters=$(cmdline_num iters 2000)
	it=0 seen=0 redone=0 setups=0 after=0
	t_end=$(($(up_s) + secs))
	setup
	setups=0
	say "set-up: $how"
	say "restart loop: up to $secs s or $max_iters iterations, until $want_restarts restarts and $want_after iterations after the last"
	while [ "$(up_s)" -lt $t_end ] && [ $it -lt "$max_iters" ]; do
		if serr_set; then
			restart_seen "SERR set at the start of iteration $((it + 1))"
		fi
		why=
		if iteration $((it + 1)); then
			it=$((it + 1))
			after=$((after + 1))
			say "iteration $it ok at $(up) s, restarts_seen=$seen"
			if [ "$want_restarts" -gt 0 ] && [ $seen -ge "$want_restarts" ] &&
				[ $after -ge "$want_after" ]; then
				break
			fi
		elif serr_set; then
			redone=$((redone + 1))
			restart_seen "iteration $((it + 1)): $why"
		else
			rfail "iteration $((it + 1)): $why, and SERR is not set"
		fi
	done
	if serr_set; then
		restart_seen "SERR set after the last iteration"
	fi
	say "restart loop done at $(up) s: $it iterations, $seen restarts seen, $redone iterations redone, set-up redone $setups times"
	echo "QEMU INTEROP RESTART RESULT: PASS iterations=$it restarts_seen=$seen redone=$redone"
	finish
}
case " $(cat /proc/cmdline) " in
*" interop.mode=restart "*) restart_loop ;;
esac

v=$(rd 0x00)
say "ident: $v"
[ $((v)) -eq $((0x010000ed)) ] || fail "ident reads $v, not 0x010000ed"

wr 0x04 0x12345678
v=$(rd 0x04)
say "liveness: wrote 0x12345678, read $v"
[ $((v)) -eq $((0xedcba987)) ] || fail "liveness reads $v, not 0xedcba987"

wr 0x08 10
i=0
while [ $(($(rd 0x20) & 1)) -ne 0 ]; do
	i=$((i + 1))
	[ $i -le 100 ] || fail "factorial still computing after 100 polls"
done
v=$(rd 0x08)
say "factorial: 10! = $((v))"
[ $((v)) -eq 3628800 ] || fail "10! reads $((v)), not 3628800"

# The command register through sysfs config (offset 4, little-endian).
cmd=$(od -An -tu2 -j4 -N2 "$dev/config" | tr -d ' ')
say "command register: $(hex "$cmd") (memory space $((cmd >> 1 & 1)), bus master $((cmd >> 2 & 1)))"
new=$((cmd | 0x6))
# shellcheck disable=SC2059 # the format is the two bytes, as octal escapes
printf "\\$(printf %o $((new & 255)))\\$(printf %o $((new >> 8)))" |
	dd of="$dev/config" bs=1 seek=4 count=2 conv=notrunc 2>/dev/null ||
	fail "cannot write the command register through $dev/config"
cmd=$(od -An -tu2 -j4 -N2 "$dev/config" | tr -d ' ')
say "command register now $(hex "$cmd")"
[ $((cmd & 0x6)) -eq 6 ] || fail "bus mastering did not turn on (command $(hex "$cmd"))"

# DMA: a pattern in guest RAM -> edu's buffer -> elsewhere in guest RAM.
pattern() { echo $((($1 * 0x01020304 + 0x0a0b0c0d) & 0xffffffff)); }
i=0
while [ $i -lt $WORDS ]; do
	devmem "$(hex $((RAM_SRC + 4 * i)))" 32 "$(pattern $i)"
	devmem "$(hex $((RAM_DST + 4 * i)))" 32 0x5a5a5a5a
	i=$((i + 1))
done
devmem "$(hex $((RAM_DST + 4 * WORDS)))" 32 0x5a5a5a5a
t0=$(up)
dma $RAM_SRC $EDU_BUF 1 $((4 * WORDS)) || fail "$why"
dma $EDU_BUF $RAM_DST 3 $((4 * WORDS)) || fail "$why"
say "DMA of $((4 * WORDS)) bytes: $(hex $RAM_SRC) -> edu buffer -> $(hex $RAM_DST) (started at $t0 s, done at $(up) s)"
i=0
while [ $i -lt $WORDS ]; do
	got=$(devmem "$(hex $((RAM_DST + 4 * i)))" 32)
	[ $((got)) -eq "$(pattern $i)" ] ||
		fail "byte $((4 * i)): read $got after the DMA, wrote $(hex "$(pattern $i)")"
	i=$((i + 1))
done
got=$(devmem "$(hex $((RAM_DST + 4 * WORDS)))" 32)
[ $((got)) -eq $((0x5a5a5a5a)) ] || fail "the word after the copy changed to $got"
say "DMA verified: $((4 * WORDS)) bytes match, the word after them untouched"

echo "QEMU INTEROP RESULT: PASS"
finish
