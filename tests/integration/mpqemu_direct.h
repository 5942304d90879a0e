/*
 * An mpdev-remote with --face mpqemu, driven as stock QEMU's
 * x-pci-proxy-dev drives it: a SOCK_STREAM connection to its listening
 * socket, mpqemu messages encoded by hand (mpqemu_raw.h, independent of
 * proto/mpqemu/), RETs read as QEMU reads them. Every wait is bounded.
 *
 *	static struct mpq mq;
 *	mpq_start(&mq, NULL);
 *	ck_assert_uint_eq(mpq_cfg_read(&mq, 0, 2), 0x1234);
 *	mpq_stop(&mq);
 */
#ifndef MPDEV_MPQEMU_DIRECT_H
#define MPDEV_MPQEMU_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpqemu_raw.h"
#include "remote_fixture.h"

/* How long one answer may take: far above a healthy RET, far below a stall. */
#define MPQ_WAIT_MS 2000

struct mpq {
	struct remote rem; /* listening at rem.path, stderr captured */
	int q;		   /* our connection: "QEMU" (-1: none) */
};

/* One entry of QEMU's SYNC_SYSMEM. */
struct mpq_mem {
	uint64_t gpa, size;
	int64_t offset;
	int fd;
};

/* The remote (edu, --face mpqemu -v, args appended), connected, baseline taken. */
void mpq_start(struct mpq *m, const char *const *args);
/* Closes our connection, SIGTERM, exit status 0 checked. */
void mpq_stop(struct mpq *m);

/* A new SOCK_STREAM connection to the remote's socket (not yet served, perhaps). */
int mpq_connect_raw(const struct mpq *m);
/*
 * Closes m->q (if open) and connects until the remote serves the new
 * connection (it may still be finishing the last one: it refuses a second
 * while busy); a config read proves it.
 */
void mpq_reconnect(struct mpq *m);

void mpq_send(int sock, const struct raw *r, const int *fds, size_t nfds);
/*
 * The RET of the request sent last: 0 with *val, -ETIMEDOUT if nothing came
 * within ms, -EPIPE if the connection ended. Anything but a RET fails.
 */
int mpq_try_ret(int sock, int ms, uint64_t *val);
/* Sends r, and fails unless its RET comes within MPQ_WAIT_MS. */
uint64_t mpq_request(int sock, const struct raw *r);
/* Nothing comes back within ms (a message QEMU expects no answer to). */
void mpq_expect_silence(int sock, int ms);
/* The remote closes the connection within MPQ_WAIT_MS. */
void mpq_expect_closed(int sock);

uint32_t mpq_cfg_read(struct mpq *m, uint32_t addr, int len);
void mpq_cfg_write(struct mpq *m, uint32_t addr, uint32_t val, int len);
uint64_t mpq_bar_read(struct mpq *m, uint64_t addr, uint32_t size, bool memory);
uint64_t mpq_bar_write(struct mpq *m, uint64_t addr, uint64_t val, uint32_t size, bool memory);
/* Sizes BAR0 as firmware does, places it at addr, enables memory space and bus mastering. */
void mpq_program_bar0(struct mpq *m, uint32_t addr);
/* SYNC_SYSMEM (no RET), then a config read to show it was handled. */
void mpq_sync_sysmem(struct mpq *m, const struct mpq_mem *e, int n);

/* A memfd named name of size bytes, sealed as QEMU's memory-backend-memfd seals it. */
int mpq_memfd(const char *name, size_t size, bool sealed);
/*
 * The remote's mappings of memfd name (from /proc/PID/maps): how many, and
 * the first max start addresses in starts (may be NULL).
 */
int mpq_mappings(const struct mpq *m, const char *name, uint64_t *starts, int max);

#endif
