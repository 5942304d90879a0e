/*
 * Signalling and draining eventfds that a peer handed over, without ever
 * blocking.
 *
 * An eventfd received by SCM_RIGHTS is the same open file in both
 * processes, so its file flags are shared: whatever O_NONBLOCK the remote
 * sets, the peer can clear. A write() to an eventfd whose counter the peer
 * filled then blocks until somebody reads it; a read() of one the peer
 * drained first blocks until somebody writes it. Neither may happen on the
 * remote's loop, so the remote never calls write() or read() on such a
 * descriptor:
 *
 *  - Signalling goes through the kernel's own eventfd_signal(), which never
 *    waits and never looks at file flags (a full counter stays full: the
 *    edge is not lost, the consumer still sees the file readable). User
 *    space reaches it through an AIO completion: an IOCB_CMD_POLL on an
 *    eventfd of our own that is always readable, with IOCB_FLAG_RESFD
 *    naming the peer's eventfd, completes inside io_submit() and signals
 *    it. (RWF_NOWAIT does not help here: eventfd has no write_iter, so
 *    pwritev2(RWF_NOWAIT) is EOPNOTSUPP, as of Linux 6.18.)
 *    Fallback, where AIO is missing (CONFIG_AIO=n, or a container's seccomp
 *    forbids io_setup): an io_uring restricted to IORING_OP_WRITE with
 *    IOSQE_ASYNC, so the write runs in a kernel worker; a full counter parks
 *    that worker, never the loop, and at most one write per descriptor is in
 *    flight (the counter makes a second one redundant).
 *  - Draining uses preadv2(RWF_NOWAIT), which eventfd supports since Linux
 *    5.12. Without it nothing is read at all: callers watch these
 *    descriptors edge-triggered (EV_ET), so every new write is a new wakeup
 *    whether or not the counter was emptied.
 *
 * The choice is made once, at start-up (efdio_init), before the sandbox:
 * the seccomp allow list admits exactly the calls of the chosen method.
 * Single-threaded: call from the remote's loop only.
 */
#ifndef MPDEV_EFDIO_H
#define MPDEV_EFDIO_H

#include <stdbool.h>

#include "error.h"

enum efdio_method {
	EFDIO_NONE = 0,	 /* not initialised */
	EFDIO_AIO = 1,	 /* io_submit(IOCB_CMD_POLL, IOCB_FLAG_RESFD) */
	EFDIO_URING = 2, /* io_uring IORING_OP_WRITE, IOSQE_ASYNC */
};

/*
 * Chooses the signalling method: "auto" (AIO, else io_uring), "aio" or
 * "io_uring", and probes RWF_NOWAIT reads. -ENOSYS with words if the method
 * asked for (or, for auto, either) is unavailable: the remote refuses to run
 * rather than signal in a way a peer can stall. Calling it again is a no-op.
 */
int efdio_init(const char *method, struct mpdev_error *err);
void efdio_shutdown(void);

enum efdio_method efdio_get_method(void);
/* Whether efdio_drain really reads (RWF_NOWAIT), or only EV_ET watching drains. */
bool efdio_drain_reads(void);
/* One line for the log: "signal: aio (IOCB_FLAG_RESFD); drain: preadv2(RWF_NOWAIT)". */
const char *efdio_describe(void);

/*
 * Adds 1 to eventfd fd's counter without waiting. 0, or a negative errno
 * (-EINVAL: not an eventfd). Initialises with "auto" on first use when
 * efdio_init was not called (tools and tests outside the sandbox).
 */
int efdio_signal(int fd);

/* Empties fd's counter if that needs no wait: 1 drained, 0 nothing to drain, or -errno. */
int efdio_drain(int fd);

/* fd is about to be closed: forget any write still in flight for it (io_uring). */
void efdio_forget(int fd);

/* Counters for the stats reply. */
struct efdio_stats {
	unsigned long long signals;   /* signals submitted */
	unsigned long long coalesced; /* io_uring: skipped, a write was still in flight */
	unsigned long long failures;  /* submissions the kernel refused */
};
const struct efdio_stats *efdio_get_stats(void);

#endif
