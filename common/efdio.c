#include "efdio.h"

#include <errno.h>
#include <liburing.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* AIO: completions are reaped once this many are waiting (half the ring). */
#define AIO_RING    256
#define AIO_REAP_AT (AIO_RING / 2)
/* io_uring: descriptors with a write in flight; more than that are coalesced. */
#define URING_ENTRIES  64
#define URING_INFLIGHT 64
#define URING_WORKERS  4

static struct {
	enum efdio_method method;
	bool drain_reads;
	char describe[128];
	struct efdio_stats stats;
	/* AIO */
	aio_context_t ctx;
	int ready_fd; /* ours, always readable: the POLL that completes at once */
	unsigned unreaped;
	/* io_uring */
	struct io_uring ring;
	struct {
		int fd; /* -1: free */
		uint32_t gen;
	} inflight[URING_INFLIGHT];
	uint32_t gen;
} st = { .ready_fd = -1 };

static const uint64_t one = 1; /* io_uring writes it later: must outlive the call */

static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
	return syscall(SYS_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
	return syscall(SYS_io_submit, ctx, n, iocbs);
}

static long sys_io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev)
{
	struct timespec zero = { 0, 0 };

	return syscall(SYS_io_getevents, ctx, min, max, ev, &zero);
}

static int aio_open(struct mpdev_error *err)
{
	st.ctx = 0;
	if (sys_io_setup(AIO_RING, &st.ctx) < 0)
		return mpdev_error_set(err, errno, "io_setup: %s", strerror(errno));
	st.ready_fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st.ready_fd < 0) {
		int e = errno;

		sys_io_destroy(st.ctx);
		return mpdev_error_set(err, e, "eventfd: %s", strerror(e));
	}
	return 0;
}

static void aio_reap(void)
{
	struct io_event ev[AIO_RING];

	/* Every POLL completed inside io_submit: nothing here ever waits. */
	while (st.unreaped) {
		long n = sys_io_getevents(st.ctx, 0, AIO_RING, ev);

		if (n <= 0)
			break;
		st.unreaped = (unsigned)n >= st.unreaped ? 0 : st.unreaped - (unsigned)n;
	}
}

static int aio_signal(int fd)
{
	struct iocb cb = {
		.aio_lio_opcode = IOCB_CMD_POLL,
		.aio_fildes = (uint32_t)st.ready_fd,
		.aio_buf = POLLIN,
		.aio_flags = IOCB_FLAG_RESFD,
		.aio_resfd = (uint32_t)fd,
	};
	struct iocb *p = &cb;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (sys_io_submit(st.ctx, 1, &p) == 1) {
			if (++st.unreaped >= AIO_REAP_AT)
				aio_reap();
			return 0;
		}
		if (errno != EAGAIN)
			return -errno;
		aio_reap(); /* the ring is full of completions: make room once */
	}
	return -EAGAIN;
}

/* Debian 12's liburing declares the restriction calls but does not export them. */
static int uring_register(unsigned op, void *arg, unsigned n)
{
	return syscall(__NR_io_uring_register, st.ring.ring_fd, op, arg, n) < 0 ? -errno : 0;
}

static int uring_open(struct mpdev_error *err)
{
	struct io_uring_restriction res[2] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_ASYNC },
	};
	unsigned workers[2] = { 1, URING_WORKERS };
	int r;

	/* Disabled until restricted: the ring can only ever write, even if misused. */
	r = io_uring_queue_init(URING_ENTRIES, &st.ring, IORING_SETUP_R_DISABLED);
	if (r < 0)
		return mpdev_error_set(err, -r, "io_uring_setup: %s", strerror(-r));
	r = io_uring_register_iowq_max_workers(&st.ring, workers);
	if (r == 0)
		r = uring_register(IORING_REGISTER_RESTRICTIONS, res, 2);
	if (r == 0)
		r = uring_register(IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (r < 0) {
		io_uring_queue_exit(&st.ring);
		return mpdev_error_set(err, -r, "restricting the io_uring: %s", strerror(-r));
	}
	for (int i = 0; i < URING_INFLIGHT; i++)
		st.inflight[i].fd = -1;
	return 0;
}

static void uring_reap(void)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&st.ring, &cqe) == 0) {
		uint32_t slot = (uint32_t)cqe->user_data, gen = (uint32_t)(cqe->user_data >> 32);

		if (slot < URING_INFLIGHT && st.inflight[slot].gen == gen)
			st.inflight[slot].fd = -1;
		if (cqe->res < 0)
			st.stats.failures++;
		io_uring_cqe_seen(&st.ring, cqe);
	}
}

static int uring_signal(int fd)
{
	struct io_uring_sqe *sqe;
	int free_slot = -1, r;

	uring_reap();
	for (int i = 0; i < URING_INFLIGHT; i++) {
		if (st.inflight[i].fd == fd) {
			st.stats.coalesced++;
			return 0; /* that write adds to the counter: one more is redundant */
		}
		if (st.inflight[i].fd < 0 && free_slot < 0)
			free_slot = i;
	}
	sqe = free_slot >= 0 ? io_uring_get_sqe(&st.ring) : NULL;
	if (!sqe) {
		st.stats.coalesced++;
		return -EBUSY; /* every worker is parked on a full counter */
	}
	io_uring_prep_write(sqe, fd, &one, sizeof(one), 0);
	sqe->flags |= IOSQE_ASYNC;
	st.inflight[free_slot].fd = fd;
	st.inflight[free_slot].gen = ++st.gen;
	io_uring_sqe_set_data64(sqe, (uint64_t)st.gen << 32 | (uint64_t)free_slot);
	r = io_uring_submit(&st.ring);
	if (r < 0) {
		st.inflight[free_slot].fd = -1;
		return r;
	}
	return 0;
}

static bool probe_nowait_read(void)
{
	int fd = eventfd(1, EFD_CLOEXEC);
	uint64_t v = 0;
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };
	bool ok;

	if (fd < 0)
		return false;
	ok = preadv2(fd, &iov, 1, -1, RWF_NOWAIT) == sizeof(v) && v == 1;
	close(fd);
	return ok;
}

int efdio_init(const char *method, struct mpdev_error *err)
{
	struct mpdev_error aio_err = { 0 }, uring_err = { 0 };
	bool want_aio, want_uring;

	if (st.method != EFDIO_NONE)
		return 0;
	if (!method)
		method = "auto";
	want_aio = !strcmp(method, "auto") || !strcmp(method, "aio");
	want_uring = !strcmp(method, "auto") || !strcmp(method, "io_uring");
	if (!want_aio && !want_uring)
		return mpdev_error_set(err, EINVAL,
				       "unknown eventfd method '%s' (auto, aio, io_uring)", method);
	if (want_aio && aio_open(&aio_err) == 0) {
		st.method = EFDIO_AIO;
	} else if (want_uring) {
		if (uring_open(&uring_err) < 0) {
			if (aio_err.code)
				return mpdev_error_set(
					err, ENOSYS,
					"no way to signal a peer's eventfd without "
					"risking a stall: AIO (%s) and io_uring (%s) "
					"are both unavailable",
					aio_err.msg, uring_err.msg);
			return mpdev_error_set(err, ENOSYS, "io_uring unavailable: %s",
					       uring_err.msg);
		}
		st.method = EFDIO_URING;
	} else {
		return mpdev_error_set(err, ENOSYS, "AIO unavailable: %s", aio_err.msg);
	}
	st.drain_reads = probe_nowait_read();
	snprintf(st.describe, sizeof(st.describe), "signal: %s; drain: %s",
		 st.method == EFDIO_AIO ? "aio (IOCB_FLAG_RESFD)" : "io_uring (async write)",
		 st.drain_reads ? "preadv2(RWF_NOWAIT)" : "none (edge-triggered watching)");
	return 0;
}

void efdio_shutdown(void)
{
	if (st.method == EFDIO_AIO) {
		aio_reap();
		sys_io_destroy(st.ctx);
		close(st.ready_fd);
		st.ready_fd = -1;
	} else if (st.method == EFDIO_URING) {
		/* Cancels writes parked on full counters (their workers are interrupted). */
		io_uring_queue_exit(&st.ring);
	}
	st.method = EFDIO_NONE;
}

enum efdio_method efdio_get_method(void)
{
	return st.method;
}

bool efdio_drain_reads(void)
{
	return st.drain_reads;
}

const char *efdio_describe(void)
{
	return st.method == EFDIO_NONE ? "not initialised" : st.describe;
}

int efdio_signal(int fd)
{
	int r;

	if (fd < 0)
		return -EBADF;
	if (st.method == EFDIO_NONE && efdio_init("auto", NULL) < 0)
		return -ENOSYS;
	r = st.method == EFDIO_AIO ? aio_signal(fd) : uring_signal(fd);
	if (r == 0)
		st.stats.signals++;
	else
		st.stats.failures++;
	return r;
}

int efdio_drain(int fd)
{
	uint64_t v;
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };
	ssize_t n;

	if (st.method == EFDIO_NONE)
		efdio_init("auto", NULL);
	if (!st.drain_reads)
		return 0;
	do
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	if (n == sizeof(v))
		return 1;
	return n < 0 && errno != EAGAIN ? -errno : 0;
}

void efdio_forget(int fd)
{
	if (st.method != EFDIO_URING)
		return;
	for (int i = 0; i < URING_INFLIGHT; i++)
		if (st.inflight[i].fd == fd)
			st.inflight[i].fd = -1;
}

const struct efdio_stats *efdio_get_stats(void)
{
	return &st.stats;
}
