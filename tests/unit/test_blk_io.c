/*
 * The io_uring block engine (remote/emu/blk_io.c) on real files: a temp
 * file in /var/tmp (ext4 on the CI machine: O_DIRECT, punch hole and zero
 * range all work) and one in /dev/shm (tmpfs). Completions arrive through
 * a libevent loop exactly as in the remote. The ring's restrictions are
 * checked by submitting what they forbid, and one case runs the I/O under
 * the remote's seccomp policy in a child.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "blk_io.h"
#include "seccomp_policy.h"
#include "testutil.h"

#define MIB	     (1024 * 1024)
#define FILE_SIZE    (4 * MIB)
#define BLK	     4096
#define MAX_DONE     256
#define WAIT_MS	     5000
#define CHILD_WAIT_S 10

static struct event_base *base;
static char path[64];

static struct {
	unsigned n;
	uint64_t tag[MAX_DONE];
	int res[MAX_DONE];
	unsigned want;
} got;

static void on_done(void *opaque, uint64_t tag, int res)
{
	(void)opaque;
	if (got.n < MAX_DONE) {
		got.tag[got.n] = tag;
		got.res[got.n] = res;
	}
	got.n++;
	if (got.n >= got.want)
		event_base_loopbreak(base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/* Runs the loop until n completions in all have arrived, or WAIT_MS. */
static void wait_done(unsigned n)
{
	struct timeval tv = { WAIT_MS / 1000, 0 };
	struct event *t = evtimer_new(base, on_timeout, NULL);

	got.want = n;
	evtimer_add(t, &tv);
	if (got.n < n)
		event_base_dispatch(base);
	event_free(t);
	ck_assert_msg(got.n >= n, "%u of %u completions within %d ms", got.n, n, WAIT_MS);
}

/* The result of the completion with this tag. */
static int res_of(uint64_t tag)
{
	for (unsigned i = 0; i < got.n && i < MAX_DONE; i++)
		if (got.tag[i] == tag)
			return got.res[i];
	ck_abort_msg("no completion for tag %llu", (unsigned long long)tag);
	return 0;
}

static void make_file(const char *dir, uint64_t size)
{
	int fd;

	snprintf(path, sizeof(path), "%s/mpdev-blkio-XXXXXX", dir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void setup(void)
{
	memset(&got, 0, sizeof(got));
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	make_file("/var/tmp", FILE_SIZE);
}

static void teardown(void)
{
	unlink(path);
	event_base_free(base);
}

static struct blk_io *open_io(bool direct, bool read_only, unsigned depth, struct blk_io_info *info)
{
	struct blk_io_config cfg = {
		.path = path,
		.read_only = read_only,
		.direct = direct,
		.depth = depth,
		.done = on_done,
	};
	struct mpdev_error err = { 0 };
	struct blk_io *io = NULL;
	int r = blk_io_open(&cfg, base, &io, info, &err);

	ck_assert_msg(r == 0, "blk_io_open(%s): %d %s", path, r, err.msg);
	return io;
}

static void *abuf(size_t len)
{
	void *p = NULL;

	ck_assert_int_eq(posix_memalign(&p, 4096, len), 0);
	return p;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* What the file holds, read past the engine. */
static void file_read(uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void io_one(struct blk_io *io, enum blk_io_op op, uint64_t off, void *buf, size_t len,
		   uint64_t tag)
{
	struct iovec v = { buf, len };
	unsigned before = got.n;

	ck_assert_int_eq(blk_io_queue(io, op, off, &v, 1, len, tag), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(before + 1);
}

START_TEST(open_reports_the_backing)
{
	struct blk_io_info info;
	struct blk_io *io = open_io(true, false, 8, &info);

	ck_assert_uint_eq(info.size, FILE_SIZE);
	ck_assert_uint_eq(info.logical_block, 512);
	ck_assert_uint_ge(info.physical_block, 512);
	ck_assert(info.direct); /* ext4 takes O_DIRECT */
	ck_assert(!info.read_only);
	ck_assert(!info.block_device);
	ck_assert(info.discard);      /* ext4: the past-the-end punch probe works */
	ck_assert(info.write_zeroes); /* ext4 is on the zero-range list */
	ck_assert_uint_eq(blk_io_rings_open(), 1);
	blk_io_close(io);
	ck_assert_uint_eq(blk_io_rings_open(), 0);
}
END_TEST

START_TEST(open_refuses_what_it_cannot_serve)
{
	struct blk_io_config cfg = { .path = "/var/tmp/mpdev-blkio-does-not-exist",
				     .depth = 8,
				     .done = on_done };
	struct mpdev_error err = { 0 };
	struct blk_io *io = (struct blk_io *)1;
	int fds = testutil_count_fds(0);

	ck_assert_int_eq(blk_io_open(&cfg, base, &io, NULL, &err), -ENOENT);
	ck_assert_ptr_null(io);
	ck_assert_ptr_nonnull(strstr(err.msg, "does-not-exist"));
	cfg.path = "/dev/null"; /* a character device */
	ck_assert_int_eq(blk_io_open(&cfg, base, &io, NULL, &err), -EINVAL);
	cfg.path = path;
	cfg.depth = 0;
	ck_assert_int_eq(blk_io_open(&cfg, base, &io, NULL, &err), -EINVAL);
	/* A file shorter than one sector has nothing to serve. */
	cfg.depth = 8;
	ck_assert_int_eq(truncate(path, 100), 0);
	ck_assert_int_eq(blk_io_open(&cfg, base, &io, NULL, &err), -EINVAL);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

START_TEST(size_is_rounded_down_to_a_sector)
{
	struct blk_io_info info;
	struct blk_io *io;

	ck_assert_int_eq(truncate(path, 3 * 512 + 100), 0);
	io = open_io(false, false, 4, &info);
	ck_assert_uint_eq(info.size, 3 * 512);
	blk_io_close(io);
}
END_TEST

/* Written with four iovecs, read back with three differently cut ones. */
static void writev_then_readv(bool direct)
{
	struct blk_io_info info;
	struct blk_io *io = open_io(direct, false, 8, &info);
	uint8_t *src = abuf(4 * BLK), *dst = abuf(4 * BLK), *chk = malloc(4 * BLK);
	struct iovec w[4] = { { src, BLK },
			      { src + BLK, BLK },
			      { src + 2 * BLK, 2 * BLK - 512 },
			      { src + 4 * BLK - 512, 512 } };
	struct iovec r[3] = { { dst, 2 * BLK },
			      { dst + 2 * BLK, 512 },
			      { dst + 2 * BLK + 512, 2 * BLK - 512 } };

	ck_assert_int_eq(info.direct, direct);
	fill(src, 4 * BLK, 1);
	memset(dst, 0, 4 * BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE, 8 * BLK, w, 4, 4 * BLK, 11), 0);
	ck_assert_uint_eq(blk_io_inflight(io), 1);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(1);
	ck_assert_int_eq(res_of(11), 4 * BLK);
	ck_assert_uint_eq(blk_io_inflight(io), 0);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 8 * BLK, r, 3, 4 * BLK, 12), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(12), 4 * BLK);
	ck_assert_mem_eq(dst, src, 4 * BLK);
	file_read(8 * BLK, chk, 4 * BLK);
	ck_assert_mem_eq(chk, src, 4 * BLK);
	blk_io_close(io);
	free(src);
	free(dst);
	free(chk);
}

START_TEST(writev_then_readv_direct)
{
	writev_then_readv(true);
}
END_TEST

START_TEST(writev_then_readv_buffered)
{
	writev_then_readv(false);
}
END_TEST

/* 32 requests, one io_uring_enter, and no completion from inside it. */
START_TEST(qd32_goes_in_one_submit)
{
	struct blk_io *io = open_io(true, false, 32, NULL);
	uint8_t *src = abuf(32 * BLK), *dst = abuf(32 * BLK);
	struct iovec w[32], r[32];

	fill(src, 32 * BLK, 2);
	memset(dst, 0xee, 32 * BLK);
	for (int i = 0; i < 32; i++) {
		/* Scattered: request i goes to block 97 * i mod 1024. */
		uint64_t off = (uint64_t)(97 * i % 1024) * BLK;

		w[i] = (struct iovec){ src + i * BLK, BLK };
		ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE, off, &w[i], 1, BLK, 100 + i), 0);
	}
	ck_assert_uint_eq(blk_io_inflight(io), 32);
	ck_assert_int_eq(blk_io_submit(io), 32);
	ck_assert_uint_eq(got.n, 0);
	ck_assert_int_eq(blk_io_submit(io), 0); /* nothing left to submit */
	wait_done(32);
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(res_of(100 + i), BLK);
	for (int i = 0; i < 32; i++) {
		uint64_t off = (uint64_t)(97 * i % 1024) * BLK;

		r[i] = (struct iovec){ dst + i * BLK, BLK };
		ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, off, &r[i], 1, BLK, 200 + i), 0);
	}
	ck_assert_int_eq(blk_io_submit(io), 32);
	ck_assert_uint_eq(got.n, 32);
	wait_done(64);
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(res_of(200 + i), BLK);
	ck_assert_mem_eq(dst, src, 32 * BLK);
	blk_io_close(io);
	free(src);
	free(dst);
}
END_TEST

START_TEST(flush_completes)
{
	struct blk_io *io = open_io(true, false, 4, NULL);
	uint8_t *buf = abuf(BLK);

	fill(buf, BLK, 3);
	io_one(io, BLK_IO_WRITE, 0, buf, BLK, 1);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_FLUSH, 0, NULL, 0, 0, 2), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(2), 0);
	blk_io_close(io);
	free(buf);
}
END_TEST

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Fills 64 KiB at 1 MiB, zeroes the middle 32 KiB with op, checks both edges survive. */
static void zeroes_after(enum blk_io_op op, bool supported, const char *what)
{
	struct blk_io *io;
	struct blk_io_info info;
	uint8_t *buf = abuf(16 * BLK), *back = abuf(16 * BLK);

	io = open_io(true, false, 4, &info);
	if (!(op == BLK_IO_DISCARD ? info.discard : info.write_zeroes) || !supported) {
		fprintf(stderr, "SKIP %s: the filesystem under /var/tmp does not support it\n",
			what);
		blk_io_close(io);
		free(buf);
		free(back);
		return;
	}
	fill(buf, 16 * BLK, 4);
	io_one(io, BLK_IO_WRITE, MIB, buf, 16 * BLK, 1);
	ck_assert_int_eq(res_of(1), 16 * BLK);
	ck_assert_int_eq(blk_io_queue(io, op, MIB + 4 * BLK, NULL, 0, 8 * BLK, 2), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(2), 0);
	memset(back, 0xee, 16 * BLK);
	io_one(io, BLK_IO_READ, MIB, back, 16 * BLK, 3);
	ck_assert_int_eq(res_of(3), 16 * BLK);
	ck_assert_mem_eq(back, buf, 4 * BLK);
	ck_assert(all_zero(back + 4 * BLK, 8 * BLK));
	ck_assert_mem_eq(back + 12 * BLK, buf + 12 * BLK, 4 * BLK);
	blk_io_close(io);
	free(buf);
	free(back);
}

START_TEST(discard_reads_back_zeroes)
{
	zeroes_after(BLK_IO_DISCARD, true, "discard");
}
END_TEST

START_TEST(write_zeroes_reads_back_zeroes)
{
	zeroes_after(BLK_IO_WRITE_ZEROES, true, "write zeroes");
}
END_TEST

START_TEST(ranges_outside_the_backing_are_refused)
{
	struct blk_io *io = open_io(true, false, 4, NULL);
	uint8_t *buf = abuf(2 * BLK);
	struct iovec v = { buf, 512 }, v2[2] = { { buf, 512 }, { buf + BLK, 512 } };

	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, FILE_SIZE, &v, 1, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, FILE_SIZE - 512, v2, 2, 1024, 1), -EINVAL);
	/* offset + len wraps to a small number */
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE, UINT64_MAX - 511, &v, 1, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_DISCARD, 512, NULL, 0, UINT64_MAX - 511, 1),
			 -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE_ZEROES, 0, NULL, 0, 0, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_DISCARD, 100, NULL, 0, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE_ZEROES, 0, NULL, 0, 100, 1), -EINVAL);
	/* the iovec must add up to len */
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 0, v2, 2, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 0, v2, 2, 1536, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 0, NULL, 0, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 0, &v, 0, 0, 1), -EINVAL);
	/* O_DIRECT: a range off the 512-byte grid */
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 100, &v, 1, 512, 1), -EINVAL);
	ck_assert_int_eq(blk_io_queue(io, (enum blk_io_op)99, 0, &v, 1, 512, 1), -EINVAL);
	ck_assert_uint_eq(blk_io_inflight(io), 0);
	ck_assert_int_eq(blk_io_submit(io), 0);
	/* the last sector is in range */
	io_one(io, BLK_IO_READ, FILE_SIZE - 512, buf, 512, 2);
	ck_assert_int_eq(res_of(2), 512);
	ck_assert_uint_eq(got.n, 1);
	blk_io_close(io);
	free(buf);
}
END_TEST

START_TEST(read_only_refuses_writes)
{
	struct blk_io_info info;
	struct blk_io *io = open_io(true, true, 4, &info);
	uint8_t *buf = abuf(BLK);
	struct iovec v = { buf, BLK };

	ck_assert(info.read_only);
	ck_assert(!info.discard && !info.write_zeroes);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE, 0, &v, 1, BLK, 1), -EROFS);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_DISCARD, 0, NULL, 0, BLK, 1), -EROFS);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE_ZEROES, 0, NULL, 0, BLK, 1), -EROFS);
	io_one(io, BLK_IO_READ, 0, buf, BLK, 2);
	ck_assert_int_eq(res_of(2), BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_FLUSH, 0, NULL, 0, 0, 3), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(3), 0);
	blk_io_close(io);
	free(buf);
}
END_TEST

/* A file its user cannot write is served read-only, not refused (as nobody: root writes anything).
 */
START_TEST(an_unwritable_file_is_served_read_only)
{
	pid_t pid;
	int st;

	ck_assert_int_eq(chmod(path, 0444), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct blk_io_config cfg = {
			.path = path, .direct = true, .depth = 4, .done = on_done
		};
		struct blk_io_info info;
		struct mpdev_error err = { 0 };
		struct blk_io *io;

		alarm(CHILD_WAIT_S);
		base = event_base_new(); /* not the parent's epoll instance */
		if (!base)
			_exit(6);
		if (getuid() == 0 && setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		if (access(path, W_OK) == 0)
			_exit(3);
		if (blk_io_open(&cfg, base, &io, &info, &err) < 0)
			_exit(4);
		_exit(info.read_only ? 0 : 5);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
}
END_TEST

START_TEST(a_full_ring_says_eagain)
{
	struct blk_io *io = open_io(true, false, 4, NULL);
	uint8_t *buf = abuf(5 * BLK);
	struct iovec v[5];

	for (int i = 0; i < 5; i++)
		v[i] = (struct iovec){ buf + i * BLK, BLK };
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, i * BLK, &v[i], 1, BLK, i), 0);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 4 * BLK, &v[4], 1, BLK, 4), -EAGAIN);
	ck_assert_int_eq(blk_io_submit(io), 4);
	/* Still full while in flight. */
	if (got.n == 0 && blk_io_inflight(io) == 4)
		ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 4 * BLK, &v[4], 1, BLK, 4), -EAGAIN);
	ck_assert_int_eq(blk_io_drain(io, WAIT_MS), 0);
	ck_assert_uint_eq(got.n, 4);
	ck_assert_uint_eq(blk_io_inflight(io), 0);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 4 * BLK, &v[4], 1, BLK, 4), 0);
	ck_assert_int_eq(blk_io_drain(io, WAIT_MS), 0); /* drain submits what is queued */
	ck_assert_uint_eq(got.n, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(res_of(i), BLK);
	blk_io_close(io);
	free(buf);
}
END_TEST

/* Guest buffers off the 512-byte grid under O_DIRECT: bounced, and still right. */
START_TEST(misaligned_iovecs_under_o_direct)
{
	struct blk_io_info info;
	struct blk_io *io = open_io(true, false, 4, &info);
	uint8_t *src = malloc(2 * BLK + 64), *dst = malloc(2 * BLK + 64), *chk = malloc(2 * BLK);
	/* 2 * BLK bytes over odd addresses and odd lengths */
	struct iovec w[3] = { { src + 1, 100 },
			      { src + 101, 3000 },
			      { src + 3101, 2 * BLK - 3100 } };
	struct iovec r[2] = { { dst + 7, 333 }, { dst + 340, 2 * BLK - 333 } };

	ck_assert(info.direct);
	fill(src + 1, 2 * BLK, 5);
	memset(dst, 0, 2 * BLK + 64);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE, 3 * BLK, w, 3, 2 * BLK, 1), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(1);
	ck_assert_int_eq(res_of(1), 2 * BLK);
	file_read(3 * BLK, chk, 2 * BLK);
	ck_assert_mem_eq(chk, src + 1, 2 * BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 3 * BLK, r, 2, 2 * BLK, 2), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(2), 2 * BLK);
	ck_assert_mem_eq(dst + 7, src + 1, 2 * BLK);
	ck_assert_uint_eq(dst[6], 0); /* nothing written around the guest's buffers */
	ck_assert_uint_eq(dst[7 + 2 * BLK], 0);
	blk_io_close(io);
	free(src);
	free(dst);
	free(chk);
}
END_TEST

/*
 * A file shrunk under the device: the read across the new end comes back
 * short, the engine asks again for the rest, gets 0 (end of file) and
 * reports an I/O error instead of spinning or claiming success.
 */
START_TEST(a_short_read_is_resubmitted_then_fails_at_eof)
{
	struct blk_io *io = open_io(true, false, 4, NULL);
	uint8_t *src = abuf(2 * BLK), *dst = abuf(2 * BLK);

	fill(src, 2 * BLK, 6);
	io_one(io, BLK_IO_WRITE, FILE_SIZE - 2 * BLK, src, 2 * BLK, 1);
	ck_assert_int_eq(res_of(1), 2 * BLK);
	ck_assert_int_eq(truncate(path, FILE_SIZE - BLK), 0);
	memset(dst, 0, 2 * BLK);
	io_one(io, BLK_IO_READ, FILE_SIZE - 2 * BLK, dst, 2 * BLK, 2);
	ck_assert_int_eq(res_of(2), -EIO);
	ck_assert_mem_eq(dst, src, BLK); /* the first, short, part did land */
	blk_io_close(io);
	free(src);
	free(dst);
}
END_TEST

/*
 * A short read that the rest then completes: a read across the end of a
 * shrunk file comes back short; a flush completing in the same batch grows
 * the file back from its done callback, before the engine submits the
 * rest (remainders go in one submit after the batch), so the remainder
 * finds data (zeroes) and the request completes whole.
 */
static struct {
	bool armed;
	unsigned calls;
} regrow;

static void on_done_regrow(void *opaque, uint64_t tag, int res)
{
	if (regrow.armed && tag == 1) {
		regrow.armed = false;
		ck_assert_int_eq(truncate(path, FILE_SIZE), 0);
	}
	regrow.calls++;
	on_done(opaque, tag, res);
}

START_TEST(a_short_read_is_completed_by_a_resubmission)
{
	struct blk_io_config cfg = {
		.path = path, .direct = false, .depth = 4, .done = on_done_regrow
	};
	struct mpdev_error err = { 0 };
	struct blk_io *io;
	struct io_uring *ring;
	uint8_t *src = abuf(2 * BLK), *dst = abuf(2 * BLK);
	struct iovec v = { dst, 2 * BLK };
	long long deadline;
	struct timespec ts;

	ck_assert_int_eq(blk_io_open(&cfg, base, &io, NULL, &err), 0);
	ring = blk_io_ring_for_test(io);
	fill(src, 2 * BLK, 9);
	io_one(io, BLK_IO_WRITE, FILE_SIZE - 2 * BLK, src, 2 * BLK, 0);
	ck_assert_int_eq(res_of(0), 2 * BLK);
	ck_assert_int_eq(truncate(path, FILE_SIZE - BLK), 0);
	memset(dst, 0xee, 2 * BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_FLUSH, 0, NULL, 0, 0, 1), 0);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, FILE_SIZE - 2 * BLK, &v, 1, 2 * BLK, 2), 0);
	regrow.armed = true;
	ck_assert_int_eq(blk_io_submit(io), 2);
	/* Both CQEs posted before the loop runs: one batch. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + WAIT_MS;
	while (io_uring_cq_ready(ring) < 2) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ck_assert_msg(ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 < deadline,
			      "%u CQEs within %d ms", io_uring_cq_ready(ring), WAIT_MS);
		usleep(1000);
	}
	wait_done(3);
	ck_assert_int_eq(res_of(1), 0);
	ck_assert_int_eq(res_of(2), 2 * BLK);
	ck_assert_mem_eq(dst, src, BLK);
	ck_assert(all_zero(dst + BLK, BLK)); /* what the shrink cut, read after the regrow */
	blk_io_close(io);
	free(src);
	free(dst);
}
END_TEST

static int open_refusing_direct(const char *p, int flags)
{
	if (flags & O_DIRECT) {
		errno = EINVAL;
		return -1;
	}
	return open(p, flags);
}

/* A filesystem that refuses O_DIRECT at open (tmpfs before 6.6): buffered, and says so. */
START_TEST(o_direct_refused_at_open_falls_back_to_buffered)
{
	struct blk_io_info info;
	struct blk_io *io;
	uint8_t *src = abuf(BLK), *dst = malloc(BLK + 1);
	struct iovec v = { dst + 1, 100 }; /* fine buffered: no alignment asked */

	blk_io_set_open_for_test(open_refusing_direct);
	io = open_io(true, false, 4, &info);
	blk_io_set_open_for_test(NULL);
	ck_assert(!info.direct);
	fill(src, BLK, 10);
	io_one(io, BLK_IO_WRITE, 0, src, BLK, 1);
	ck_assert_int_eq(res_of(1), BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_READ, 1, &v, 1, 100, 2), 0);
	ck_assert_int_eq(blk_io_submit(io), 1);
	wait_done(2);
	ck_assert_int_eq(res_of(2), 100);
	ck_assert_mem_eq(dst + 1, src + 1, 100);
	blk_io_close(io);
	free(src);
	free(dst);
}
END_TEST

/* Submits one raw SQE through the engine's ring and returns its CQE's res. */
static int raw_submit(struct io_uring *ring, struct io_uring_sqe *sqe)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { WAIT_MS / 1000, 0 };
	int res;

	(void)sqe;
	ck_assert_int_eq(io_uring_submit(ring), 1);
	ck_assert_int_eq(io_uring_wait_cqe_timeout(ring, &cqe, &ts), 0);
	ck_assert_uint_eq(io_uring_cqe_get_data64(cqe), 0xfeed);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

START_TEST(the_ring_is_restricted)
{
	struct blk_io *io = open_io(true, false, 4, NULL);
	struct io_uring *ring = blk_io_ring_for_test(io);
	uint8_t *buf = abuf(BLK);
	struct iovec v = { buf, BLK };
	struct io_uring_sqe *sqe;
	int own = open(path, O_RDWR | O_CLOEXEC), efd = testutil_eventfd();

	ck_assert_int_ge(own, 0);
	/* Control: the allowed shape of a READV completes. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, 0, &v, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), BLK);
	/* NOP: not one of the four opcodes. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), -EACCES);
	/* OPENAT: a new file through the ring. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), -EACCES);
	/* READV on a plain descriptor, not the registered file. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, own, &v, 1, 0);
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), -EACCES);
	/* A flag beyond IOSQE_FIXED_FILE. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, 0, &v, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_ASYNC;
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), -EACCES);
	/* A fixed file that is not there: only index 0 was registered. */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_readv(sqe, 1, &v, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ck_assert_int_eq(raw_submit(ring, sqe), -EBADF);
	/* And the ring cannot be changed: every register opcode is refused now. */
	ck_assert_int_eq(io_uring_register_files_update(ring, 0, &own, 1), -EACCES);
	ck_assert_int_eq(io_uring_unregister_files(ring), -EACCES);
	ck_assert_int_eq(io_uring_register_eventfd(ring, efd), -EACCES);
	close(own);
	close(efd);
	blk_io_close(io);
	free(buf);
}
END_TEST

/*
 * tmpfs: before Linux 6.6 it refused O_DIRECT at open and the engine fell
 * back to buffered I/O; later kernels take it. Either way the data must be
 * right and info must say which it is.
 */
START_TEST(tmpfs_backing_works_direct_or_buffered)
{
	struct blk_io_info info;
	struct blk_io *io;
	uint8_t *src = abuf(4 * BLK), *dst = abuf(4 * BLK);
	int fd;

	unlink(path);
	make_file("/dev/shm", MIB);
	io = open_io(true, false, 4, &info);
	fprintf(stderr, "tmpfs: %s\n",
		info.direct ? "O_DIRECT accepted (Linux >= 6.6)"
			    : "O_DIRECT refused: buffered fallback");
	ck_assert(info.discard);       /* shmem punches holes */
	ck_assert(!info.write_zeroes); /* and has no ZERO_RANGE */
	fill(src, 4 * BLK, 7);
	io_one(io, BLK_IO_WRITE, BLK, src, 4 * BLK, 1);
	ck_assert_int_eq(res_of(1), 4 * BLK);
	io_one(io, BLK_IO_READ, BLK, dst, 4 * BLK, 2);
	ck_assert_int_eq(res_of(2), 4 * BLK);
	ck_assert_mem_eq(dst, src, 4 * BLK);
	ck_assert_int_eq(blk_io_queue(io, BLK_IO_WRITE_ZEROES, 0, NULL, 0, BLK, 3), -EOPNOTSUPP);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, dst, 4 * BLK, BLK), 4 * BLK);
	ck_assert_mem_eq(dst, src, 4 * BLK);
	close(fd);
	blk_io_close(io);
	free(src);
	free(dst);
}
END_TEST

/*
 * Under the remote's own seccomp policy (installed in a child after the
 * ring is open, as the remote does): block I/O still runs, and making a
 * new ring kills the process.
 */
START_TEST(io_runs_under_the_seccomp_policy)
{
	int p[2];
	pid_t pid;
	int st;
	char c = 0;
	struct pollfd pfd;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct blk_io *io;
		struct mpdev_error err = { 0 };
		static uint8_t src[BLK] __attribute__((aligned(4096)));
		static uint8_t dst[BLK] __attribute__((aligned(4096)));
		struct iovec w = { src, BLK }, r = { dst, BLK };
		struct io_uring_params params;

		alarm(CHILD_WAIT_S);
		close(p[0]);
		base = event_base_new(); /* not the parent's epoll instance */
		if (!base)
			_exit(7);
		io = open_io(true, false, 4, NULL);
		fill(src, BLK, 8);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_policy_install(&err) < 0)
			_exit(2);
		if (blk_io_queue(io, BLK_IO_WRITE, 0, &w, 1, BLK, 1) < 0 ||
		    blk_io_submit(io) != 1 || blk_io_drain(io, WAIT_MS) < 0 || got.n != 1 ||
		    got.res[0] != BLK)
			_exit(3);
		if (blk_io_queue(io, BLK_IO_READ, 0, &r, 1, BLK, 2) < 0 || blk_io_submit(io) != 1 ||
		    blk_io_drain(io, WAIT_MS) < 0 || got.n != 2 || got.res[1] != BLK ||
		    memcmp(src, dst, BLK))
			_exit(4);
		c = 'y';
		if (write(p[1], &c, 1) != 1)
			_exit(5);
		memset(&params, 0, sizeof(params));
		syscall(__NR_io_uring_setup, 4, &params);
		_exit(6); /* not reached: the policy kills */
	}
	close(p[1]);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, CHILD_WAIT_S * 1000), 1);
	ck_assert_int_le(read(p[0], &c, 1), 1);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(c == 'y', "I/O under seccomp failed: child status 0x%x", st);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		      "io_uring_setup under the policy: child status 0x%x, not SIGSYS", st);
}
END_TEST

static Suite *blk_io_suite(void)
{
	Suite *s = suite_create("blk_io");
	TCase *tc = tcase_create("io");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, open_reports_the_backing);
	tcase_add_test(tc, open_refuses_what_it_cannot_serve);
	tcase_add_test(tc, size_is_rounded_down_to_a_sector);
	tcase_add_test(tc, writev_then_readv_direct);
	tcase_add_test(tc, writev_then_readv_buffered);
	tcase_add_test(tc, qd32_goes_in_one_submit);
	tcase_add_test(tc, flush_completes);
	tcase_add_test(tc, discard_reads_back_zeroes);
	tcase_add_test(tc, write_zeroes_reads_back_zeroes);
	tcase_add_test(tc, ranges_outside_the_backing_are_refused);
	tcase_add_test(tc, read_only_refuses_writes);
	tcase_add_test(tc, an_unwritable_file_is_served_read_only);
	tcase_add_test(tc, a_full_ring_says_eagain);
	tcase_add_test(tc, misaligned_iovecs_under_o_direct);
	tcase_add_test(tc, a_short_read_is_resubmitted_then_fails_at_eof);
	tcase_add_test(tc, a_short_read_is_completed_by_a_resubmission);
	tcase_add_test(tc, o_direct_refused_at_open_falls_back_to_buffered);
	tcase_add_test(tc, the_ring_is_restricted);
	tcase_add_test(tc, tmpfs_backing_works_direct_or_buffered);
	tcase_add_test(tc, io_runs_under_the_seccomp_policy);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(blk_io_suite());
}
