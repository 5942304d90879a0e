#include "blk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

#define BLK_LOG "blk_io"

#define MAX_DEPTH     4096
#define IOWQ_WORKERS  4
#define CLOSE_WAIT_MS 5000

/* statfs f_type of filesystems whose FALLOC_FL_ZERO_RANGE is known to work. */
#define EXT4_MAGIC  0xEF53
#define XFS_MAGIC   0x58465342
#define BTRFS_MAGIC 0x9123683E

struct slot {
	bool busy;
	enum blk_io_op op;
	uint64_t tag;
	uint64_t offset; /* where the next (re)submission starts */
	uint64_t len;	 /* the whole request */
	uint64_t done;	 /* bytes transferred so far (READ/WRITE) */
	/* Our copy of the caller's iovec, advanced past what is done. */
	struct iovec *iov;
	unsigned n_iov, cap_iov;
	/* Misaligned under O_DIRECT: the request goes through this buffer. */
	void *bounce;
	const struct iovec *user_iov; /* where a bounced read is copied out to */
	unsigned user_n_iov;
};

struct blk_io {
	struct blk_io_info info;
	blk_io_done_fn done;
	void *opaque;
	int fd;
	int efd;
	struct io_uring ring;
	bool ring_ok;
	struct event *ev;
	unsigned depth;
	unsigned busy;	 /* slots in use: queued or in flight */
	unsigned queued; /* SQEs written since the last submit */
	struct slot *slots;
	unsigned next_free; /* search hint */
};

static unsigned n_open_rings;

unsigned blk_io_rings_open(void)
{
	return n_open_rings;
}

/* Debian 12's liburing declares the restriction calls but does not export them. */
static int ring_register(struct io_uring *ring, unsigned op, void *arg, unsigned n)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/* ---- opening the backing ---- */

/* One aligned read of the first block: some filesystems take O_DIRECT at open and refuse it later.
 */
static bool direct_read_works(int fd, uint32_t block)
{
	void *buf = NULL;
	ssize_t n;

	if (posix_memalign(&buf, block < 4096 ? 4096 : block, block) != 0)
		return false;
	n = pread(fd, buf, block, 0);
	free(buf);
	return n >= 0; /* 0 for an empty device is still an accepted O_DIRECT read */
}

static int (*open_for_test)(const char *path, int flags);

void blk_io_set_open_for_test(int (*fn)(const char *path, int flags))
{
	open_for_test = fn;
}

static int open_backing(const struct blk_io_config *cfg, bool read_only, bool direct)
{
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);

	return open_for_test ? open_for_test(cfg->path, flags) : open(cfg->path, flags);
}

/* Block devices: the kernel says what the device can deallocate (0: nothing). */
static bool bdev_discard_max(dev_t rdev)
{
	char path[96], buf[32];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/discard_max_bytes", major(rdev),
		 minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		ok = strtoull(buf, NULL, 10) > 0;
	fclose(f);
	return ok;
}

static int probe_block_device(struct blk_io *io, const struct stat *st, struct mpdev_error *err)
{
	uint64_t size = 0;
	int lbs = 0;
	unsigned pbs = 0;

	if (ioctl(io->fd, BLKGETSIZE64, &size) < 0)
		return mpdev_error_set(err, errno, "%s: BLKGETSIZE64: %s", "block device",
				       strerror(errno));
	if (ioctl(io->fd, BLKSSZGET, &lbs) < 0 || lbs < 512)
		lbs = 512;
	if (ioctl(io->fd, BLKPBSZGET, &pbs) < 0 || pbs < (unsigned)lbs)
		pbs = (unsigned)lbs;
	io->info.block_device = true;
	io->info.size = size - size % (uint64_t)lbs;
	if (io->info.size == 0)
		return mpdev_error_set(err, EINVAL,
				       "block device smaller than one block (%d bytes)", lbs);
	io->info.logical_block = (uint32_t)lbs;
	io->info.physical_block = pbs;
	/*
	 * fallocate on a block device (Linux >= 4.9): PUNCH_HOLE is a discard,
	 * which the device may not have (sysfs says); ZERO_RANGE falls back to
	 * writing zeroes in the kernel, so it always works.
	 */
	io->info.discard = !io->info.read_only && bdev_discard_max(st->st_rdev);
	io->info.write_zeroes = !io->info.read_only;
	return 0;
}

/*
 * Regular files. Discard is probed for real without touching data: a hole
 * punched past the end of the file (KEEP_SIZE) covers no data, and a
 * filesystem without punch hole says EOPNOTSUPP. ZERO_RANGE has no such
 * harmless probe (past the end it would allocate), so it is advertised on
 * the filesystems known to implement it; anything else that refuses at run
 * time fails that request with the filesystem's errno.
 */
static void probe_file_ops(struct blk_io *io, const struct stat *st)
{
	struct statfs fs;
	off_t past = (off_t)((uint64_t)st->st_size + 65536 - (uint64_t)st->st_size % 4096);

	if (io->info.read_only)
		return;
	io->info.discard =
		fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, past, 4096) == 0;
	if (fstatfs(io->fd, &fs) == 0)
		io->info.write_zeroes = fs.f_type == EXT4_MAGIC || fs.f_type == XFS_MAGIC ||
					fs.f_type == BTRFS_MAGIC;
}

static int probe_backing(struct blk_io *io, const char *path, struct mpdev_error *err)
{
	struct stat st;

	if (fstat(io->fd, &st) < 0)
		return mpdev_error_set(err, errno, "%s: fstat: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode))
		return probe_block_device(io, &st, err);
	if (!S_ISREG(st.st_mode))
		return mpdev_error_set(err, EINVAL, "%s: neither a regular file nor a block device",
				       path);
	io->info.logical_block = 512;
	io->info.physical_block = st.st_blksize >= 512 ? (uint32_t)st.st_blksize : 512;
	io->info.size = (uint64_t)st.st_size & ~(uint64_t)511;
	if (io->info.size != (uint64_t)st.st_size)
		log_warn(BLK_LOG, "%s: size %" PRIu64 " is not a multiple of 512: using %" PRIu64,
			 path, (uint64_t)st.st_size, io->info.size);
	if (io->info.size == 0)
		return mpdev_error_set(err, EINVAL, "%s: smaller than one 512-byte sector", path);
	probe_file_ops(io, &st);
	return 0;
}

static int open_fd(struct blk_io *io, const struct blk_io_config *cfg, struct mpdev_error *err)
{
	bool ro = cfg->read_only, direct = cfg->direct;

	for (;;) {
		io->fd = open_backing(cfg, ro, direct);
		if (io->fd >= 0)
			break;
		if (!ro && (errno == EACCES || errno == EROFS || errno == EPERM)) {
			ro = true; /* not writable: serve it read-only */
			log_warn(BLK_LOG, "%s: not writable (%s): serving it read-only", cfg->path,
				 strerror(errno));
		} else if (direct && errno == EINVAL) {
			direct = false; /* tmpfs before 6.6, FUSE, ... */
			log_info(BLK_LOG, "%s: O_DIRECT refused at open: buffered I/O", cfg->path);
		} else {
			return mpdev_error_set(err, errno, "%s: %s", cfg->path, strerror(errno));
		}
	}
	io->info.read_only = ro;
	io->info.direct = direct;
	return 0;
}

/* O_DIRECT accepted at open but refused on a read: reopen buffered. */
static int verify_direct(struct blk_io *io, const struct blk_io_config *cfg,
			 struct mpdev_error *err)
{
	int fd, e;

	if (!io->info.direct || direct_read_works(io->fd, io->info.logical_block))
		return 0;
	e = errno;
	log_info(BLK_LOG, "%s: O_DIRECT read refused (%s): buffered I/O", cfg->path, strerror(e));
	fd = open_backing(cfg, io->info.read_only, false);
	if (fd < 0)
		return mpdev_error_set(err, errno, "%s: reopening buffered: %s", cfg->path,
				       strerror(errno));
	close(io->fd);
	io->fd = fd;
	io->info.direct = false;
	return 0;
}

/* ---- the ring ---- */

static int ring_setup(struct blk_io *io, struct mpdev_error *err)
{
	struct io_uring_restriction res[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FALLOCATE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
	};
	unsigned workers[2] = { IOWQ_WORKERS, IOWQ_WORKERS };
	const char *step = "io_uring_setup";
	int r;

	/* Disabled until restricted: nothing is ever submitted to an unrestricted ring. */
	r = io_uring_queue_init(io->depth, &io->ring, IORING_SETUP_R_DISABLED);
	if (r < 0)
		return mpdev_error_set(err, -r, "io_uring_setup: %s", strerror(-r));
	io->ring_ok = true;
	/* Every register call comes before the restrictions, which forbid them all afterwards. */
	r = io_uring_register_iowq_max_workers(&io->ring, workers);
	if (r == 0) {
		step = "registering the backing file";
		r = io_uring_register_files(&io->ring, &io->fd, 1);
	}
	if (r == 0) {
		step = "registering the eventfd";
		r = io_uring_register_eventfd(&io->ring, io->efd);
	}
	if (r == 0) {
		step = "IORING_REGISTER_RESTRICTIONS";
		r = ring_register(&io->ring, IORING_REGISTER_RESTRICTIONS, res,
				  (unsigned)(sizeof(res) / sizeof(res[0])));
	}
	if (r == 0) {
		step = "IORING_REGISTER_ENABLE_RINGS";
		r = ring_register(&io->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	}
	if (r < 0)
		return mpdev_error_set(err, -r, "io_uring: %s: %s", step, strerror(-r));
	return 0;
}

/* ---- requests ---- */

static bool aligned(const struct blk_io *io, uint64_t v)
{
	return v % io->info.logical_block == 0;
}

static bool iov_direct_ok(const struct blk_io *io, const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!aligned(io, (uintptr_t)iov[i].iov_base) || !aligned(io, iov[i].iov_len))
			return false;
	return true;
}

static void slot_release(struct blk_io *io, struct slot *s)
{
	free(s->bounce);
	s->bounce = NULL;
	s->busy = false;
	io->busy--;
}

/* Writes the SQE for what is left of slot s. */
static void prep(struct blk_io *io, struct io_uring_sqe *sqe, struct slot *s)
{
	unsigned idx = (unsigned)(s - io->slots);

	switch (s->op) {
	case BLK_IO_READ:
		io_uring_prep_readv(sqe, 0, s->iov, s->n_iov, s->offset);
		break;
	case BLK_IO_WRITE:
		io_uring_prep_writev(sqe, 0, s->iov, s->n_iov, s->offset);
		break;
	case BLK_IO_FLUSH:
		/* The data and what is needed to read it back; not the mtime. */
		io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
		break;
	case BLK_IO_DISCARD:
		io_uring_prep_fallocate(sqe, 0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					s->offset, s->len);
		break;
	case BLK_IO_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, 0, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					s->offset, s->len);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, idx);
	io->queued++;
}

static struct slot *slot_get(struct blk_io *io)
{
	for (unsigned i = 0; i < io->depth; i++) {
		unsigned k = (io->next_free + i) % io->depth;

		if (!io->slots[k].busy) {
			io->next_free = (k + 1) % io->depth;
			return &io->slots[k];
		}
	}
	return NULL;
}

static int slot_iov_reserve(struct slot *s, unsigned n)
{
	struct iovec *v;

	if (n <= s->cap_iov)
		return 0;
	v = realloc(s->iov, (size_t)n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->iov = v;
	s->cap_iov = n;
	return 0;
}

static void copy_iov_to(const struct iovec *iov, unsigned n, uint8_t *dst)
{
	for (unsigned i = 0; i < n; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

static void copy_to_iov(const struct iovec *iov, unsigned n, const uint8_t *src, uint64_t len)
{
	for (unsigned i = 0; i < n && len; i++) {
		size_t k = iov[i].iov_len < len ? iov[i].iov_len : (size_t)len;

		memcpy(iov[i].iov_base, src, k);
		src += k;
		len -= k;
	}
}

/*
 * A guest buffer that O_DIRECT cannot take goes through an aligned bounce
 * buffer for that request: copied in now for a write, out at completion
 * for a read. Rare (drivers align their buffers), so a copy beats a second
 * descriptor whose cache would have to be kept coherent with the direct one.
 */
static int slot_bounce(struct blk_io *io, struct slot *s, enum blk_io_op op,
		       const struct iovec *iov, unsigned n_iov, uint64_t len)
{
	size_t align = io->info.logical_block < 4096 ? 4096 : io->info.logical_block;

	if (len > SIZE_MAX || posix_memalign(&s->bounce, align, (size_t)len) != 0) {
		s->bounce = NULL;
		return -ENOMEM;
	}
	if (op == BLK_IO_WRITE)
		copy_iov_to(iov, n_iov, s->bounce);
	s->user_iov = iov;
	s->user_n_iov = n_iov;
	s->iov[0].iov_base = s->bounce;
	s->iov[0].iov_len = (size_t)len;
	s->n_iov = 1;
	return 0;
}

static int check_request(const struct blk_io *io, enum blk_io_op op, uint64_t offset,
			 const struct iovec *iov, unsigned n_iov, uint64_t len)
{
	uint64_t total = 0;

	if (op > BLK_IO_WRITE_ZEROES)
		return -EINVAL;
	/* A flush of a read-only backing is harmless (and some drivers send one). */
	if (op != BLK_IO_READ && op != BLK_IO_FLUSH && io->info.read_only)
		return -EROFS;
	if (op == BLK_IO_FLUSH)
		return 0;
	if (len > io->info.size || offset > io->info.size - len)
		return -EINVAL; /* also what offset + len would wrap */
	if (io->info.direct && (!aligned(io, offset) || !aligned(io, len)))
		return -EINVAL;
	if (op == BLK_IO_DISCARD && !io->info.discard)
		return -EOPNOTSUPP;
	if (op == BLK_IO_WRITE_ZEROES && !io->info.write_zeroes)
		return -EOPNOTSUPP;
	if (op != BLK_IO_READ && op != BLK_IO_WRITE) {
		/* fallocate refuses a zero length, a block device anything off its blocks */
		return len && aligned(io, offset) && aligned(io, len) ? 0 : -EINVAL;
	}
	if (len > INT_MAX)
		return -EINVAL; /* the result is an int */
	if (n_iov == 0 || n_iov > IOV_MAX || !iov)
		return -EINVAL;
	for (unsigned i = 0; i < n_iov; i++) {
		if (iov[i].iov_len > UINT64_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	return total == len && len > 0 ? 0 : -EINVAL;
}

int blk_io_queue(struct blk_io *io, enum blk_io_op op, uint64_t offset, const struct iovec *iov,
		 unsigned n_iov, uint64_t len, uint64_t tag)
{
	struct io_uring_sqe *sqe;
	struct slot *s;
	bool rw = op == BLK_IO_READ || op == BLK_IO_WRITE;
	int r = check_request(io, op, offset, iov, n_iov, len);

	if (r < 0)
		return r;
	if (io->busy >= io->depth)
		return -EAGAIN;
	s = slot_get(io);
	if (!s)
		return -EAGAIN;
	if (rw) {
		r = slot_iov_reserve(s, n_iov);
		if (r < 0)
			return r;
		if (io->info.direct && !iov_direct_ok(io, iov, n_iov)) {
			r = slot_bounce(io, s, op, iov, n_iov, len);
			if (r < 0)
				return r;
		} else {
			memcpy(s->iov, iov, (size_t)n_iov * sizeof(*iov));
			s->n_iov = n_iov;
		}
	}
	/* Every busy slot holds at most one SQE and the SQ has depth entries: never NULL. */
	sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		free(s->bounce);
		s->bounce = NULL;
		return -EAGAIN;
	}
	s->busy = true;
	s->op = op;
	s->tag = tag;
	s->offset = op == BLK_IO_FLUSH ? 0 : offset;
	s->len = op == BLK_IO_FLUSH ? 0 : len;
	s->done = 0;
	io->busy++;
	prep(io, sqe, s);
	return 0;
}

int blk_io_submit(struct blk_io *io)
{
	int r;

	if (!io->queued)
		return 0;
	do
		r = io_uring_submit(&io->ring);
	while (r == -EINTR);
	if (r < 0)
		return r;
	io->queued = (unsigned)r >= io->queued ? 0 : io->queued - (unsigned)r;
	return r;
}

unsigned blk_io_inflight(const struct blk_io *io)
{
	return io->busy;
}

/* Moves s's iovec past n more bytes done. */
static void iov_advance(struct slot *s, uint64_t n)
{
	unsigned i = 0;

	while (i < s->n_iov && n >= s->iov[i].iov_len) {
		n -= s->iov[i].iov_len;
		i++;
	}
	if (i < s->n_iov) {
		s->iov[i].iov_base = (uint8_t *)s->iov[i].iov_base + n;
		s->iov[i].iov_len -= (size_t)n;
	}
	memmove(s->iov, s->iov + i, (size_t)(s->n_iov - i) * sizeof(*s->iov));
	s->n_iov -= i;
}

/*
 * One CQE. A short READV/WRITEV (end of a file truncated under us, a
 * signal) goes again for the rest; one that makes no progress at all is an
 * I/O error, since it would never finish. Returns true when the request is
 * complete and *res holds its result.
 */
static bool complete_one(struct blk_io *io, struct slot *s, int cres, int *res)
{
	struct io_uring_sqe *sqe;

	if (s->op != BLK_IO_READ && s->op != BLK_IO_WRITE) {
		*res = cres;
		return true;
	}
	if (cres < 0 && cres != -EAGAIN && cres != -EINTR) {
		*res = cres;
		return true;
	}
	if (cres == 0) {
		log_warn_rl(BLK_LOG,
			    "%s at %" PRIu64 " made no progress (%" PRIu64 " of %" PRIu64
			    " bytes done): I/O error",
			    s->op == BLK_IO_READ ? "read" : "write", s->offset, s->done, s->len);
		*res = -EIO;
		return true;
	}
	if (cres > 0) {
		s->done += (uint64_t)cres;
		s->offset += (uint64_t)cres;
		iov_advance(s, (uint64_t)cres);
	}
	if (s->done >= s->len) {
		if (s->bounce && s->op == BLK_IO_READ)
			copy_to_iov(s->user_iov, s->user_n_iov, s->bounce, s->len);
		*res = s->len > INT_MAX ? INT_MAX : (int)s->len;
		return true;
	}
	sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		*res = -EIO; /* cannot happen: this slot's own SQE was consumed */
		return true;
	}
	prep(io, sqe, s);
	return false;
}

/* Reaps every CQE; the slot is free again before done runs, so done may queue more. */
static unsigned reap(struct blk_io *io)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		uint64_t idx = io_uring_cqe_get_data64(cqe);
		int cres = cqe->res, res;
		struct slot *s;
		uint64_t tag;

		io_uring_cqe_seen(&io->ring, cqe);
		if (idx >= io->depth || !io->slots[idx].busy) {
			log_warn_rl(BLK_LOG, "completion for no request (%" PRIu64 "): ignored",
				    idx);
			continue;
		}
		s = &io->slots[idx];
		if (!complete_one(io, s, cres, &res))
			continue;
		tag = s->tag;
		slot_release(io, s);
		n++;
		io->done(io->opaque, tag, res);
	}
	if (io->queued) {
		int r = blk_io_submit(io); /* remainders of short transfers */

		if (r < 0)
			log_warn_rl(BLK_LOG, "resubmitting a short transfer: %s", strerror(-r));
	}
	return n;
}

static void drain_efd(struct blk_io *io)
{
	uint64_t v;

	while (read(io->efd, &v, sizeof(v)) == sizeof(v))
		;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct blk_io *io = arg;

	(void)fd;
	(void)what;
	drain_efd(io);
	reap(io);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int blk_io_drain(struct blk_io *io, int timeout_ms)
{
	long long end = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

	for (;;) {
		struct pollfd p = { .fd = io->efd, .events = POLLIN };
		long long left;
		int r;

		if (io->queued) {
			r = blk_io_submit(io);
			if (r < 0)
				return r;
		}
		drain_efd(io);
		reap(io);
		if (!io->busy)
			return 0;
		left = end - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- open and close ---- */

static void blk_io_free(struct blk_io *io)
{
	if (io->ev)
		event_free(io->ev);
	if (io->ring_ok)
		io_uring_queue_exit(&io->ring); /* cancels whatever is still in flight */
	if (io->efd >= 0)
		close(io->efd);
	if (io->fd >= 0)
		close(io->fd);
	if (io->slots) {
		for (unsigned i = 0; i < io->depth; i++) {
			free(io->slots[i].iov);
			free(io->slots[i].bounce);
		}
		free(io->slots);
	}
	free(io);
}

int blk_io_open(const struct blk_io_config *cfg, struct event_base *base, struct blk_io **out,
		struct blk_io_info *info, struct mpdev_error *err)
{
	struct blk_io *io;
	int r;

	*out = NULL;
	if (!cfg->path || !cfg->done || !base)
		return mpdev_error_set(err, EINVAL, "blk_io: a path, a done callback and a loop");
	if (cfg->depth == 0 || cfg->depth > MAX_DEPTH)
		return mpdev_error_set(err, EINVAL, "blk_io: depth %u (1 to %u)", cfg->depth,
				       MAX_DEPTH);
	io = calloc(1, sizeof(*io));
	if (!io)
		return mpdev_error_set(err, ENOMEM, "blk_io: out of memory");
	io->fd = io->efd = -1;
	io->done = cfg->done;
	io->opaque = cfg->opaque;
	io->depth = cfg->depth;
	io->slots = calloc(cfg->depth, sizeof(*io->slots));
	if (!io->slots) {
		r = mpdev_error_set(err, ENOMEM, "blk_io: out of memory");
		goto fail;
	}
	r = open_fd(io, cfg, err);
	if (r == 0)
		r = probe_backing(io, cfg->path, err);
	if (r == 0)
		r = verify_direct(io, cfg, err);
	if (r < 0)
		goto fail;
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->efd < 0) {
		r = mpdev_error_set(err, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = ring_setup(io, err);
	if (r < 0)
		goto fail;
	io->ev = event_new(base, io->efd, EV_READ | EV_PERSIST, on_event, io);
	if (!io->ev || event_add(io->ev, NULL) < 0) {
		r = mpdev_error_set(err, ENOMEM, "blk_io: cannot watch the ring's eventfd");
		goto fail;
	}
	log_info(BLK_LOG,
		 "%s: %" PRIu64 " bytes, block %u/%u, %s%s%s%s%s, ring depth %u restricted to "
		 "readv/writev/fsync/fallocate on one fixed file",
		 cfg->path, io->info.size, io->info.logical_block, io->info.physical_block,
		 io->info.direct ? "O_DIRECT" : "buffered", io->info.read_only ? ", read-only" : "",
		 io->info.block_device ? ", block device" : "", io->info.discard ? ", discard" : "",
		 io->info.write_zeroes ? ", write-zeroes" : "", io->depth);
	n_open_rings++;
	if (info)
		*info = io->info;
	*out = io;
	return 0;
fail:
	blk_io_free(io);
	return r;
}

void blk_io_close(struct blk_io *io)
{
	if (!io)
		return;
	if (io->busy && blk_io_drain(io, CLOSE_WAIT_MS) < 0)
		log_warn(BLK_LOG, "closing with %u request(s) still in flight: cancelled",
			 io->busy);
	n_open_rings--;
	blk_io_free(io);
}

struct io_uring *blk_io_ring_for_test(struct blk_io *io)
{
	return &io->ring;
}
