/*
 * QEMU's multi-process message format ("mpqemu"), as stock QEMU's
 * `-device x-pci-proxy-dev,fd=N` speaks it (QEMU 6.0 and later:
 * hw/remote/mpqemu-link.c, proxy.c, proxy-memory-listener.c, message.c).
 *
 * The format is QEMU's in-memory struct MPQemuMsg, so it is the host's ABI:
 * both ends run on one machine. Over a SOCK_STREAM socket each message is
 *
 *   header  MPQEMU_HDR_SIZE bytes: int cmd, (padding), size_t size
 *   data    `size` bytes of the data union (at most sizeof(union mpqemu_data))
 *
 * sent by one sendmsg() with the message's descriptors (SCM_RIGHTS) attached
 * to the header. QEMU waits for a RET after CFGWRITE, CFGREAD, BAR_WRITE,
 * BAR_READ and DEVICE_RESET; it sends SYNC_SYSMEM and SET_IRQFD without
 * waiting. RET carries its value in data.u64.
 *
 * This codec reads messages from QEMU, checks them against everything QEMU
 * can legitimately send (mpqemu_validate), and writes RETs. It never trusts
 * a length, a count or a descriptor: every error path closes every
 * descriptor received with the message.
 */
#ifndef MPDEV_MPQEMU_H
#define MPDEV_MPQEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define MPQEMU_MAX_FDS 8 /* QEMU's REMOTE_MAX_FDS */

enum mpqemu_cmd {
	MPQEMU_CMD_SYNC_SYSMEM = 0, /* guest RAM table: one fd per entry; no reply */
	MPQEMU_CMD_RET = 1,	    /* the answer to a request; value in data.u64 */
	MPQEMU_CMD_PCI_CFGWRITE = 2,
	MPQEMU_CMD_PCI_CFGREAD = 3,
	MPQEMU_CMD_BAR_WRITE = 4,
	MPQEMU_CMD_BAR_READ = 5,
	MPQEMU_CMD_SET_IRQFD = 6, /* fds: INTx irqfd, resamplefd; no reply */
	MPQEMU_CMD_DEVICE_RESET = 7,
	MPQEMU_CMD_MAX = 8,
};

/* SyncSysmemMsg: entry i (i < num_fds) is [gpas[i], +sizes[i]) at offsets[i] of fds[i]. */
struct mpqemu_sync_sysmem {
	uint64_t gpas[MPQEMU_MAX_FDS];
	uint64_t sizes[MPQEMU_MAX_FDS];
	int64_t offsets[MPQEMU_MAX_FDS]; /* off_t: QEMU always builds with 64-bit off_t */
};

/* PciConfDataMsg */
struct mpqemu_pci_conf {
	uint32_t addr;
	uint32_t val;
	int32_t len;
};

/*
 * BarAccessMsg. addr is absolute: the guest-physical (memory) or port (I/O)
 * address QEMU mapped the BAR at, plus the offset. val is a number in host
 * order. memory is QEMU's bool, kept as a byte so that a value other than 0
 * or 1 can be seen (and refused) without undefined behaviour.
 */
struct mpqemu_bar_access {
	uint64_t addr;
	uint64_t val;
	uint32_t size;
	uint8_t memory;
	uint8_t pad[3];
};

union mpqemu_data {
	uint64_t u64;
	struct mpqemu_pci_conf pci_conf;
	struct mpqemu_sync_sysmem sync_sysmem;
	struct mpqemu_bar_access bar_access;
};

/* QEMU's MPQemuMsg: the same members, in the same order, of the same types. */
struct mpqemu_msg {
	int cmd;
	size_t size;
	union mpqemu_data data;
	int fds[MPQEMU_MAX_FDS];
	int num_fds;
};

/* QEMU's MPQEMU_MSG_HDR_SIZE: offsetof(MPQemuMsg, data.u64). */
#define MPQEMU_HDR_SIZE offsetof(struct mpqemu_msg, data)
#define MPQEMU_MAX_DATA sizeof(union mpqemu_data)

/* The widest config space this codec lets through (PCIe); the proxy narrows it. */
#define MPQEMU_MAX_CONFIG_SIZE 4096u

/* A RET as it goes on the wire: the header and data.u64. */
#define MPQEMU_RET_SIZE (MPQEMU_HDR_SIZE + sizeof(uint64_t))
/* The longest message QEMU can send: the header and the whole data union. */
#define MPQEMU_MAX_MSG (MPQEMU_HDR_SIZE + MPQEMU_MAX_DATA)

/*
 * Reads one message from stream socket sock. Waits at most timeout_ms (-1:
 * forever) for the first byte and again for each further piece. Returns 1
 * with *msg filled and validated (its descriptors are the caller's, close them
 * with mpqemu_msg_close_fds), 0 when the peer closed the connection between
 * messages, or a negative errno with err saying why and no descriptor open:
 *   -EBADMSG    a message QEMU does not send (see mpqemu_validate), or one
 *               cut short by the end of the connection
 *   -EMSGSIZE   size larger than the data union (the stream cannot be resynced)
 *   -EPROTO     more than MPQEMU_MAX_FDS descriptors, or a control message
 *               that is not SCM_RIGHTS
 *   -ETIMEDOUT  the rest of a started message did not arrive in time (or,
 *               with timeout_ms >= 0, nothing arrived at all)
 *   other       the socket's own error (-ECONNRESET, ...)
 * The socket may be blocking or not; this never blocks past the timeouts.
 */
int mpqemu_recv(int sock, struct mpqemu_msg *msg, int timeout_ms, struct mpdev_error *err);

/*
 * The receive path without the socket (mpqemu_recv, and the fuzzer): decodes
 * the len bytes of buf, one message's header and all of its data, into msg,
 * whose fds/num_fds are the descriptors that arrived with it (owned by msg),
 * and validates it. Returns 1, or a negative errno with err set and every
 * descriptor closed: -EBADMSG when len is not the header plus the size it
 * declares, or for what mpqemu_validate refuses; -EMSGSIZE for a size larger
 * than the data union (then buf may hold the header alone).
 */
int mpqemu_decode(struct mpqemu_msg *msg, const void *buf, size_t len, struct mpdev_error *err);

/* The data size a message's MPQEMU_HDR_SIZE-byte header declares (not checked). */
size_t mpqemu_declared_size(const void *hdr);

/*
 * Framing for a reader that buffers the stream itself and must never wait
 * (mpdev-remote's mpqemu face): of the len bytes buffered at buf, how long
 * the first message is. Returns that length (header plus declared data) once
 * all of it is there, 0 while more bytes are needed, or -EMSGSIZE when the
 * header declares more data than any message has: the stream cannot be
 * resynchronised after that, so the connection must end.
 */
ssize_t mpqemu_frame(const void *buf, size_t len);

/* Whether QEMU waits for a RET after cmd (CFGWRITE, CFGREAD, BAR_WRITE, BAR_READ, RESET). */
bool mpqemu_cmd_wants_ret(int cmd);

/* Writes the RET for value into buf (MPQEMU_RET_SIZE bytes); returns MPQEMU_RET_SIZE. */
size_t mpqemu_encode_ret(void *buf, uint64_t value);

/*
 * Checks a received message against what QEMU sends: a known command other
 * than RET; the exact data size of that command; the descriptor count (0-8
 * for SYNC_SYSMEM, exactly 2 for SET_IRQFD, none otherwise); memory entries
 * that do not wrap and have non-negative offsets; config accesses of 1, 2 or
 * 4 bytes inside MPQEMU_MAX_CONFIG_SIZE; BAR accesses of 1, 2, 4 or 8 bytes
 * that do not wrap, with memory 0 or 1. Returns 0 or -EBADMSG with err set.
 */
int mpqemu_validate(const struct mpqemu_msg *msg, struct mpdev_error *err);

/*
 * Sends msg's header, msg->size bytes of data (at most MPQEMU_MAX_DATA) and
 * msg->num_fds descriptors, which stay the caller's. Waits at most
 * timeout_ms (-1: forever) for room. Returns 0 or a negative errno
 * (-EPIPE: the peer is gone).
 */
int mpqemu_send(int sock, const struct mpqemu_msg *msg, int timeout_ms, struct mpdev_error *err);

/* Sends the RET QEMU waits for: data.u64 = value, size 8, no descriptors. */
int mpqemu_send_ret(int sock, uint64_t value, int timeout_ms, struct mpdev_error *err);

/* Closes the message's descriptors (fd_release) and sets num_fds to 0. */
void mpqemu_msg_close_fds(struct mpqemu_msg *msg);

/* "SYNC_SYSMEM", "BAR_READ", ...; "unknown" outside the enum. */
const char *mpqemu_cmd_name(int cmd);

#endif
