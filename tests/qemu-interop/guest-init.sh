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
dma() { # SRC DST CMD
	wr 0x80 "$1"
	wr 0x88 "$2"
	wr 0x90 $((4 * WORDS))
	wr 0x98 "$3"
	n=0
	while [ $(($(rd 0x98) & 1)) -ne 0 ]; do
		n=$((n + 1))
		[ $n -le 200 ] || fail "DMA $1 -> $2 did not finish"
	done
}
t0=$(up)
dma $RAM_SRC $EDU_BUF 1
dma $EDU_BUF $RAM_DST 3
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
