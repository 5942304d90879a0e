/*
 * QEMU's mpqemu messages built by hand, byte for byte, for the tests of
 * mpdev-proxy: written down from QEMU's layout (LP64) independently of
 * proto/mpqemu/mpqemu.h, so that a mistake there cannot hide in the tests.
 */
#ifndef MPDEV_MPQEMU_RAW_H
#define MPDEV_MPQEMU_RAW_H

#include <stddef.h>
#include <stdint.h>

/* Header: int cmd at 0, 4 bytes of padding, size_t size at 8; then size bytes of data. */
#define HDR		 16
#define SZ_SYNC_SYSMEM	 192
#define SZ_PCI_CONF	 12
#define SZ_BAR_ACCESS	 24
#define CMD_SYNC_SYSMEM	 0
#define CMD_RET		 1
#define CMD_PCI_CFGWRITE 2
#define CMD_PCI_CFGREAD	 3
#define CMD_BAR_WRITE	 4
#define CMD_BAR_READ	 5
#define CMD_SET_IRQFD	 6
#define CMD_DEVICE_RESET 7

/* Room for data up to 256 bytes: more than any command has, for oversize tests. */
struct raw {
	uint8_t b[HDR + 256];
	size_t len;
};

/* Little-endian n-byte fields (the test hosts are little-endian, as QEMU's wire is). */
void raw_put(uint8_t *p, uint64_t v, size_t n);
uint64_t raw_get(const uint8_t *p, size_t n);

/* A header declaring size bytes of data; the data (zeroed) is included up to 256. */
struct raw raw_msg(int cmd, uint64_t size);
/* PciConfDataMsg: uint32 addr at 0, uint32 val at 4, int len at 8. */
struct raw raw_cfg(int cmd, uint32_t addr, uint32_t val, int32_t len);
/* BarAccessMsg: hwaddr addr at 0, uint64 val at 8, unsigned size at 16, bool memory at 20. */
struct raw raw_bar(int cmd, uint64_t addr, uint64_t val, uint32_t size, uint8_t memory);
/* SyncSysmemMsg: gpas[8] at 0, sizes[8] at 64, offsets[8] at 128. */
void raw_sysmem_entry(struct raw *r, int i, uint64_t gpa, uint64_t size, int64_t off);

/* One sendmsg of len bytes of buf with nfds descriptors; fails the test if short. */
void raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/*
 * The RET QEMU waits for after a request, read as QEMU's mpqemu_msg_recv
 * does (the header, then its 8 bytes of data): 0 with the value in *val, or
 * -ETIMEDOUT when nothing comes within timeout_ms. Anything but a RET of 8
 * bytes fails the test.
 */
int raw_await_ret(int sock, int timeout_ms, uint64_t *val);

#endif
