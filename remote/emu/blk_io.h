/*
 * Block I/O for an emulated disk on io_uring: one ring per device, driven by
 * the remote's event loop (the ring's eventfd is a libevent event), buffers
 * straight from guest memory. The ring is restricted before it is enabled
 * (IORING_REGISTER_RESTRICTIONS): only READV, WRITEV, FSYNC and FALLOCATE,
 * only on the one registered backing file (IOSQE_FIXED_FILE required), so
 * the ring can do nothing the device could not do with the file itself.
 */
#ifndef MPDEV_BLK_IO_H
#define MPDEV_BLK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "error.h"

struct event_base;
struct blk_io;

/* What the backing supports, found when it is opened. */
struct blk_io_info {
	uint64_t size;		/* bytes */
	uint32_t logical_block; /* bytes: 512 or the device's (O_DIRECT alignment) */
	uint32_t physical_block;
	bool read_only; /* asked for, or the backing is not writable */
	bool direct;	/* opened O_DIRECT */
	bool discard;	/* FALLOC_FL_PUNCH_HOLE works on it */
	bool write_zeroes; /* FALLOC_FL_ZERO_RANGE works on it */
	bool block_device;
};

enum blk_io_op {
	BLK_IO_READ,
	BLK_IO_WRITE,
	BLK_IO_FLUSH,
	BLK_IO_DISCARD,	    /* [offset, offset + len) deallocated, reads back zeroes */
	BLK_IO_WRITE_ZEROES, /* [offset, offset + len) reads back zeroes */
};

/* A request's completion: res is bytes done (READ/WRITE), 0, or a negative errno. */
typedef void (*blk_io_done_fn)(void *opaque, uint64_t tag, int res);

struct blk_io_config {
	const char *path;
	bool read_only;
	bool direct;	  /* try O_DIRECT (falls back to buffered if the file refuses it) */
	unsigned depth;	  /* ring entries; requests beyond wait in the device */
	blk_io_done_fn done; /* called from the loop, never from inside blk_io_submit */
	void *opaque;
};

int blk_io_open(const struct blk_io_config *cfg, struct event_base *base, struct blk_io **out,
		struct blk_io_info *info, struct mpdev_error *err);
/* Waits for everything in flight (bounded), then closes the ring and the file. */
void blk_io_close(struct blk_io *io);

/*
 * Queues one request (not yet submitted): -EAGAIN when the ring is full
 * (call blk_io_submit and retry after a completion), -EINVAL for a range
 * outside the backing or misaligned for O_DIRECT, -EROFS for a write to a
 * read-only backing. iov must stay valid until done is called.
 * Added with blk_io.c: -EOPNOTSUPP for DISCARD / WRITE_ZEROES when info
 * said the backing lacks them; -ENOMEM when a bounce buffer (an iovec
 * O_DIRECT cannot take: it is copied, not refused) cannot be had. FLUSH
 * takes no range (offset, iov, len ignored) and is allowed read-only.
 * READ/WRITE: at most IOV_MAX (1024) iovecs, len at most INT_MAX. DISCARD
 * and WRITE_ZEROES: offset and len on logical_block, len > 0, no iovec.
 */
int blk_io_queue(struct blk_io *io, enum blk_io_op op, uint64_t offset, const struct iovec *iov,
		 unsigned n_iov, uint64_t len, uint64_t tag);
/* Submits everything queued with one io_uring_enter. Returns how many went. */
int blk_io_submit(struct blk_io *io);
/* Requests queued or in flight. */
unsigned blk_io_inflight(const struct blk_io *io);
/* Waits (at most timeout_ms) until nothing is in flight, running completions. */
int blk_io_drain(struct blk_io *io, int timeout_ms);

/*
 * Added with blk_io.c. Rings open now: the seccomp policy allows
 * io_uring_enter only when one exists (or efdio uses io_uring).
 */
unsigned blk_io_rings_open(void);

/* Tests only: the ring itself, to prove its restrictions hold. */
struct io_uring;
struct io_uring *blk_io_ring_for_test(struct blk_io *io);
/*
 * Tests only: opens the backing with fn instead of open(2) (NULL: open), so
 * a test can refuse O_DIRECT the way pre-6.6 tmpfs did.
 */
void blk_io_set_open_for_test(int (*fn)(const char *path, int flags));

#endif
