/*
 * The polled shared-memory ring (FEATURE_SHM_RING, docs/protocol.md 5.13)
 * against a real, sandboxed (when run as root) mpdev-remote serving edu.
 *
 * Through libmpdev:
 *  - reads, writes and posted writes through the ring give what the socket
 *    gives (ident, liveness, a 64-bit register), and the remote counts them
 *    as ring requests; errors are the socket's errnos;
 *  - edu's factorial, which the device computes in a deferred loop event,
 *    completes while the ring is polled: polling does not starve the loop;
 *  - ring and socket keep program order (posted ring writes, then a reset
 *    on the socket, then a ring read; disable, then a socket read);
 *  - a failed posted ring write is reported by mpdev_sync;
 *  - the remote sleeps after spin_us (its CPU time stops growing), and the
 *    next access wakes it;
 *  - every wait is bounded: a stopped remote gives -ETIMEDOUT in about the
 *    handle's timeout, a killed one -EPIPE;
 *  - without the feature: -ENOTSUP.
 *
 * As a hostile client (the ring mapped and written by the test):
 *  - RingSetup with bad descriptors and parameters (unsealed, wrong size,
 *    two fds, a pipe, read-only, write-sealed, bad version, slot count,
 *    header), and without the feature: each refused with its errno;
 *  - bad slots (op, region 99, size 3, offset past the BAR, config space)
 *    get an error status, and the ring goes on; a producer index two rings
 *    ahead breaks the ring (BROKEN, error set, counted) but not the socket;
 *  - a scribbler writing random bytes over the whole ring for a second
 *    while the remote polls: the remote answers afterwards and edu is sane.
 * Every row checks that the remote still answers on the socket.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "libmpdev.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "shm_ring.h"
#include "testutil.h"

#define EDU_IDENT_REG 0x00
#define EDU_LIVENESS  0x04
#define EDU_FACTORIAL 0x08
#define EDU_STATUS    0x20
#define EDU_DMA_SRC   0x80
#define EDU_IDENT     0x010000edu
#define EDU_COMPUTING 0x01u
#define EDU_BAR0_SIZE 0x100000u
#define RING_FEATURES (0x1ffull | MPDEV_FEATURE_SHM_RING)
#define WAIT_MS	      2000
#define STOPPED_MS    300

static struct remote rem;

static const struct mpdev_options ring_opts = { .timeout_ms = 3000,
						.client_name = "test_ring",
						.features = RING_FEATURES };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint32_t rd32(struct mpdev *dev, uint64_t off)
{
	uint32_t v = 0;

	ck_assert_msg(mpdev_region_read(dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(dev));
	return v;
}

static void wr32(struct mpdev *dev, uint64_t off, uint32_t v)
{
	ck_assert_msg(mpdev_region_write(dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(dev));
}

static void post32(struct mpdev *dev, uint64_t off, uint32_t v)
{
	ck_assert_msg(mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(dev));
}

struct stat_find {
	const char *name;
	uint64_t value;
	bool found;
};

static void stat_cb(void *opaque, const char *name, uint64_t value)
{
	struct stat_find *f = opaque;

	if (!strcmp(name, f->name)) {
		f->value = value;
		f->found = true;
	}
}

static uint64_t stat_of(struct mpdev *dev, const char *name)
{
	struct stat_find f = { .name = name };

	ck_assert_msg(mpdev_get_stats(dev, stat_cb, &f) > 0, "%s", mpdev_last_error(dev));
	ck_assert_msg(f.found, "no counter %s", name);
	return f.value;
}

/* utime + stime of pid, in clock ticks. */
static unsigned long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	/* After "pid (comm)": state is field 3; utime and stime are 14 and 15. */
	ck_assert_int_eq(
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st),
		2);
	return ut + st;
}

static void start_ring(unsigned spin_us)
{
	remote_start(&rem, &(struct remote_opts){ .mpdev = &ring_opts });
	ck_assert_msg(mpdev_features(rem.dev) & MPDEV_FEATURE_SHM_RING,
		      "the remote offers no ring");
	ck_assert_msg(mpdev_ring_enable(rem.dev, 64, spin_us) == 0, "%s",
		      mpdev_last_error(rem.dev));
}

START_TEST(ring_gives_what_the_socket_gives)
{
	uint32_t ident_sock, live_sock, ident_ring, live_ring;
	uint64_t src_sock = 0, src_ring = 0, v64 = 0x0123456789abcdefull, before;

	remote_start(&rem, &(struct remote_opts){ .mpdev = &ring_opts });
	ident_sock = rd32(rem.dev, EDU_IDENT_REG);
	wr32(rem.dev, EDU_LIVENESS, 0x12345678);
	live_sock = rd32(rem.dev, EDU_LIVENESS);
	ck_assert_int_eq(mpdev_region_write(rem.dev, 0, EDU_DMA_SRC, &v64, 8), 0);
	ck_assert_int_eq(mpdev_region_read(rem.dev, 0, EDU_DMA_SRC, &src_sock, 8), 0);
	before = stat_of(rem.dev, "ring_requests");

	ck_assert_msg(mpdev_ring_enable(rem.dev, 64, 0) == 0, "%s", mpdev_last_error(rem.dev));
	ck_assert_int_eq(mpdev_ring_enable(rem.dev, 64, 0), -EBUSY);
	ident_ring = rd32(rem.dev, EDU_IDENT_REG);
	wr32(rem.dev, EDU_LIVENESS, 0x12345678);
	live_ring = rd32(rem.dev, EDU_LIVENESS);
	ck_assert_int_eq(mpdev_region_write(rem.dev, 0, EDU_DMA_SRC, &v64, 8), 0);
	ck_assert_int_eq(mpdev_region_read(rem.dev, 0, EDU_DMA_SRC, &src_ring, 8), 0);
	post32(rem.dev, EDU_LIVENESS, 0xcafe0000);
	ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), ~0xcafe0000u);

	ck_assert_uint_eq(ident_sock, EDU_IDENT);
	ck_assert_uint_eq(ident_ring, ident_sock);
	ck_assert_uint_eq(live_sock, ~0x12345678u);
	ck_assert_uint_eq(live_ring, live_sock);
	ck_assert_uint_eq(src_ring, src_sock);
	/* They did go by the ring: ident, write, read, write, read, posted, read. */
	ck_assert_uint_eq(stat_of(rem.dev, "ring_requests") - before, 7);
	ck_assert_uint_eq(stat_of(rem.dev, "ring_setups"), 1);
	/* Config space stays on the socket, and works as before. */
	{
		uint32_t vid = 0;

		ck_assert_int_eq(mpdev_config_read(rem.dev, 0, 2, &vid), 0);
		ck_assert_uint_eq(vid, 0x1234);
	}
	ck_assert_uint_eq(stat_of(rem.dev, "ring_requests") - before, 7);
	remote_expect_alive(&rem);
	remote_stop(&rem);
}
END_TEST

START_TEST(ring_errors_are_the_sockets)
{
	static const struct {
		uint32_t region;
		uint64_t offset;
		uint32_t size;
		int err;
	} rows[] = {
		{ 99, 0, 4, -EINVAL },		      /* no such region */
		{ 2, 0, 4, -EINVAL },		      /* edu has no BAR2 */
		{ 0, 0, 3, -EINVAL },		      /* width */
		{ 0, EDU_BAR0_SIZE, 4, -ERANGE },     /* past the end */
		{ 0, EDU_BAR0_SIZE - 2, 4, -ERANGE }, /* across the end */
	};
	uint32_t v = 0;

	remote_start(&rem, &(struct remote_opts){ .mpdev = &ring_opts });
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			ck_assert_int_eq(mpdev_ring_enable(rem.dev, 64, 0), 0);
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			uint8_t buf[8] = { 0 };
			int r = mpdev_region_read(rem.dev, rows[i].region, rows[i].offset, buf,
						  rows[i].size);

			ck_assert_msg(r == rows[i].err, "%s row %zu: read gave %d (%s), want %d",
				      pass ? "ring" : "socket", i, r, mpdev_last_error(rem.dev),
				      rows[i].err);
			ck_assert(*mpdev_last_error(rem.dev));
			r = mpdev_region_write(rem.dev, rows[i].region, rows[i].offset, buf,
					       rows[i].size);
			ck_assert_msg(r == rows[i].err, "%s row %zu: write gave %d (%s)",
				      pass ? "ring" : "socket", i, r, mpdev_last_error(rem.dev));
		}
	}
	/* A failed slot does not spoil the ring. */
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);
	ck_assert_uint_ge(stat_of(rem.dev, "ring_errors"), 6);
	ck_assert_uint_eq(stat_of(rem.dev, "ring_broken"), 0);
	(void)v;
	remote_expect_alive(&rem);
	remote_stop(&rem);
}
END_TEST

START_TEST(factorial_completes_while_polling)
{
	int64_t deadline;
	uint32_t st;

	/* A long spin: the ring is polled throughout, so the loop must get its passes. */
	start_ring(SHM_RING_MAX_SPIN_US);
	wr32(rem.dev, EDU_FACTORIAL, 10);
	deadline = now_ms() + WAIT_MS;
	while ((st = rd32(rem.dev, EDU_STATUS)) & EDU_COMPUTING)
		ck_assert_msg(now_ms() < deadline,
			      "the factorial never completed: the loop starved");
	ck_assert_uint_eq(rd32(rem.dev, EDU_FACTORIAL), 3628800);
	ck_assert_uint_gt(stat_of(rem.dev, "ring_yields"), 0);
	remote_stop(&rem);
}
END_TEST

START_TEST(ring_and_socket_keep_order)
{
	uint64_t before;

	start_ring(0);
	for (uint32_t i = 1; i <= 50; i++) {
		/* A posted ring write, then a reset on the socket: the reset must come after. */
		post32(rem.dev, EDU_LIVENESS, i);
		ck_assert_int_eq(mpdev_reset(rem.dev), 0);
		ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), 0); /* reset: 0, read as it is */
		/* And the other way: a reset, then a posted write the read must see. */
		post32(rem.dev, EDU_LIVENESS, i);
		ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), ~i);
	}
	/* A burst of posted writes, counted by a socket request right after. */
	before = stat_of(rem.dev, "ring_requests");
	for (uint32_t i = 0; i < 500; i++)
		post32(rem.dev, EDU_LIVENESS, i);
	ck_assert_uint_eq(stat_of(rem.dev, "ring_requests") - before, 500);
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
	/* Back to the socket: it sees what the ring wrote; a second ring replaces the first. */
	post32(rem.dev, EDU_LIVENESS, 0xabcd);
	ck_assert_int_eq(mpdev_ring_disable(rem.dev), 0);
	ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), ~0xabcdu);
	ck_assert_int_eq(mpdev_ring_enable(rem.dev, 128, 0), 0);
	ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), ~0xabcdu);
	ck_assert_uint_eq(stat_of(rem.dev, "ring_setups"), 2);
	remote_expect_alive(&rem);
	remote_stop(&rem);
}
END_TEST

START_TEST(posted_ring_failures_reach_sync)
{
	uint32_t v = 1;

	start_ring(0);
	ck_assert_int_eq(mpdev_region_write_posted(rem.dev, 0, EDU_BAR0_SIZE, &v, 4), 0);
	ck_assert_int_eq(mpdev_region_write_posted(rem.dev, 0, EDU_BAR0_SIZE + 8, &v, 4), 0);
	post32(rem.dev, EDU_LIVENESS, 7);
	ck_assert_int_eq(mpdev_sync(rem.dev), -EIO);
	ck_assert_msg(strstr(mpdev_last_error(rem.dev), "2 posted write(s) failed") &&
			      strstr(mpdev_last_error(rem.dev), "on the ring"),
		      "%s", mpdev_last_error(rem.dev));
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
	ck_assert_uint_eq(rd32(rem.dev, EDU_LIVENESS), ~7u);
	remote_stop(&rem);
}
END_TEST

START_TEST(remote_sleeps_and_wakes)
{
	unsigned long long t0, t1;
	uint64_t sleeps, wakes;

	start_ring(1000);
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);
	sleep_ms(50); /* 1 ms of spin, then it sleeps */
	sleeps = stat_of(rem.dev, "ring_sleeps");
	wakes = stat_of(rem.dev, "ring_wakes");
	ck_assert_uint_ge(sleeps, 1);
	/* Asleep it costs nothing: a second of polling would be ~100 ticks. */
	t0 = cpu_ticks(rem.pid);
	sleep_ms(300);
	t1 = cpu_ticks(rem.pid);
	ck_assert_msg(t1 - t0 <= 3, "the sleeping remote used %llu ticks in 300 ms", t1 - t0);
	/* The next access finds it asleep, wakes it, and gets its answer. */
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);
	ck_assert_uint_gt(stat_of(rem.dev, "ring_wakes"), wakes);
	sleep_ms(50);
	ck_assert_uint_gt(stat_of(rem.dev, "ring_sleeps"), sleeps);
	remote_stop(&rem);
}
END_TEST

START_TEST(waits_are_bounded)
{
	static const struct mpdev_options fast = { .timeout_ms = STOPPED_MS,
						   .client_name = "test_ring",
						   .features = RING_FEATURES };
	int64_t t;
	uint32_t v;
	int r;

	remote_start(&rem, &(struct remote_opts){ .mpdev = &fast });
	ck_assert_int_eq(mpdev_ring_enable(rem.dev, 64, 0), 0);
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);
	ck_assert_int_eq(kill(rem.pid, SIGSTOP), 0);
	t = now_ms();
	r = mpdev_region_read(rem.dev, 0, EDU_IDENT_REG, &v, 4);
	t = now_ms() - t;
	ck_assert_int_eq(kill(rem.pid, SIGCONT), 0);
	ck_assert_msg(r == -ETIMEDOUT, "%d: %s", r, mpdev_last_error(rem.dev));
	ck_assert_msg(t >= STOPPED_MS - 10 && t < STOPPED_MS + 1000, "waited %lld ms",
		      (long long)t);
	/* The ring is given up on; the socket still serves, once the ring drained. */
	ck_assert_int_eq(mpdev_region_read(rem.dev, 0, EDU_IDENT_REG, &v, 4), -ETIMEDOUT);
	ck_assert_int_eq(mpdev_ring_disable(rem.dev), 0);
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);

	/* A dead remote: -EPIPE, found by the wait's poll on the socket, well before the timeout.
	 */
	ck_assert_int_eq(mpdev_ring_enable(rem.dev, 64, 0), 0);
	remote_kill(&rem);
	t = now_ms();
	r = mpdev_region_read(rem.dev, 0, EDU_IDENT_REG, &v, 4);
	ck_assert_msg(r == -EPIPE || r == -ETIMEDOUT, "%d: %s", r, mpdev_last_error(rem.dev));
	ck_assert_int_lt(now_ms() - t, STOPPED_MS + 1000);
	remote_release(&rem);
}
END_TEST

START_TEST(ring_needs_the_feature)
{
	static const struct mpdev_options plain = { .timeout_ms = 3000,
						    .client_name = "test_ring" };

	/* libmpdev does not ask for it by default. */
	remote_start(&rem, &(struct remote_opts){ .mpdev = &plain });
	ck_assert_uint_eq(mpdev_features(rem.dev) & MPDEV_FEATURE_SHM_RING, 0);
	ck_assert_int_eq(mpdev_ring_enable(rem.dev, 64, 0), -ENOTSUP);
	ck_assert(strstr(mpdev_last_error(rem.dev), "MPDEV_FEATURE_SHM_RING"));
	ck_assert_uint_eq(rd32(rem.dev, EDU_IDENT_REG), EDU_IDENT);
	remote_stop(&rem);
}
END_TEST

/* ---- the hostile client: raw socket, the ring mapped by the test ---- */

struct hring {
	void *map;
	size_t len;
	struct shm_ring_header *hdr;
	struct shm_ring_slot *slots;
	uint32_t n, prod;
};

/* A memfd of len bytes with seals, its header claiming nslots (when it has room for one). */
static int ring_memfd(uint32_t nslots, size_t len, unsigned seals, uint64_t magic)
{
	int fd = testutil_memfd(len, 0);
	struct shm_ring_header *h;

	if (len >= sizeof(*h)) {
		h = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		ck_assert_ptr_ne(h, MAP_FAILED);
		h->magic = magic;
		h->version = SHM_RING_VERSION;
		h->nslots = nslots;
		munmap(h, len);
	}
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void ring_setup_env(Mpdev__Envelope *env, Mpdev__RingSetup *rs, uint32_t version,
			   uint32_t slots, uint32_t spin_us)
{
	rs->version = version;
	rs->slots = slots;
	rs->spin_us = spin_us;
	env->body_case = MPDEV__ENVELOPE__BODY_RING_SETUP;
	env->ring_setup = rs;
}

/* RingSetup with fds, answered with status (words in the error when not NULL). */
static void raw_setup(const int *fds, size_t nfds, uint32_t version, uint32_t slots, int status,
		      const char *words)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RingSetup rs = MPDEV__RING_SETUP__INIT;

	ring_setup_env(&env, &rs, version, slots, SHM_RING_MAX_SPIN_US);
	native_call(rem.sock, &env, rem.next_id++, fds, nfds, status, words);
}

/* A good ring of n slots, set up and mapped by the test. */
static void hostile_ring(struct hring *h, uint32_t n)
{
	int fd;

	h->n = n;
	h->prod = 0;
	h->len = shm_ring_size(n);
	fd = ring_memfd(n, h->len, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, SHM_RING_MAGIC);
	h->map = mmap(NULL, h->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(h->map, MAP_FAILED);
	h->hdr = h->map;
	h->slots = shm_ring_slots(h->map);
	raw_setup(&fd, 1, SHM_RING_VERSION, n, 0, NULL);
	close(fd);
}

static void raw_wake(int status)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RingWake w = MPDEV__RING_WAKE__INIT;

	env.body_case = MPDEV__ENVELOPE__BODY_RING_WAKE;
	env.ring_wake = &w;
	native_call(rem.sock, &env, rem.next_id++, NULL, 0, status, NULL);
}

/* RingWake as a request: 0, or EPROTO once the ring is broken (which is right too). */
static int try_wake(void)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RingWake w = MPDEV__RING_WAKE__INIT;
	int r;

	env.body_case = MPDEV__ENVELOPE__BODY_RING_WAKE;
	env.ring_wake = &w;
	r = native_try_call(rem.sock, &env, rem.next_id++, NULL, 0, WAIT_MS, NULL, 0);
	ck_assert_msg(r == 0 || r == EPROTO, "RingWake: %d", r);
	return r;
}

/* Publishes one slot as given, wakes the remote and returns the slot's status. */
static int32_t hostile_slot(struct hring *h, uint32_t op, uint32_t region, uint64_t offset,
			    uint32_t size, uint64_t data, uint64_t *rdata)
{
	struct shm_ring_slot *sl = &h->slots[h->prod & (h->n - 1)];
	int64_t deadline = now_ms() + WAIT_MS;

	sl->op = op;
	sl->region = region;
	sl->offset = offset;
	sl->size = size;
	sl->data = data;
	sl->status = 12345;
	atomic_store(&h->hdr->prod, ++h->prod);
	raw_wake(0);
	while (atomic_load(&h->hdr->cons) != h->prod)
		ck_assert_msg(now_ms() < deadline, "the remote did not answer the slot");
	if (rdata)
		*rdata = sl->rdata;
	return sl->status;
}

/* Until the remote has answered everything published (bounded). */
static void hostile_wait(struct hring *h)
{
	int64_t deadline = now_ms() + WAIT_MS;

	while (atomic_load(&h->hdr->cons) != h->prod &&
	       atomic_load(&h->hdr->remote_state) != SHM_RING_BROKEN)
		ck_assert_msg(now_ms() < deadline, "the remote did not answer the ring");
}

static void raw_alive(void)
{
	native_ping(rem.sock, rem.next_id++);
}

/* BAR0's 4 bytes at off, read on the socket. */
static uint32_t raw_rd32(uint64_t off)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
	struct wire_msg m;
	uint32_t v = 0;

	rr.index = 0;
	rr.offset = off;
	rr.size = 4;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	env.region_read = &rr;
	native_call_reply(rem.sock, &env, rem.next_id++, NULL, 0, &m);
	ck_assert_uint_eq(m.env->region_read_reply->data.len, 4);
	memcpy(&v, m.env->region_read_reply->data.data, 4);
	wire_msg_release(&m);
	return v;
}

static void raw_wr32(uint64_t off, uint32_t v)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;

	rw.index = 0;
	rw.offset = off;
	rw.data.data = (uint8_t *)&v;
	rw.data.len = 4;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env.region_write = &rw;
	native_call(rem.sock, &env, rem.next_id++, NULL, 0, 0, NULL);
}

START_TEST(bad_ring_setups)
{
	const size_t good = shm_ring_size(64);
	const unsigned sealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	int fd, fd2, p[2];
	char path[64];

	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	remote_take_baseline(&rem);

	fd = ring_memfd(64, good, 0, SHM_RING_MAGIC);
	raw_setup(&fd, 1, 1, 64, EPERM, "F_SEAL_SHRINK");
	close(fd);
	raw_alive();

	fd = ring_memfd(64, good + 4096, sealed, SHM_RING_MAGIC);
	raw_setup(&fd, 1, 1, 64, EINVAL, "exactly");
	close(fd);
	raw_alive();

	fd = ring_memfd(64, good - 64, sealed, SHM_RING_MAGIC);
	raw_setup(&fd, 1, 1, 64, EINVAL, "exactly");
	close(fd);
	raw_alive();

	fd = ring_memfd(64, good, sealed, SHM_RING_MAGIC);
	fd2 = ring_memfd(64, good, sealed, SHM_RING_MAGIC);
	{
		int two[2] = { fd, fd2 };

		raw_setup(two, 2, 1, 64, EINVAL, "exactly one descriptor");
		raw_setup(NULL, 0, 1, 64, EINVAL, "exactly one descriptor");
	}
	raw_alive();
	raw_setup(&fd, 1, 2, 64, EPROTONOSUPPORT, "version");
	raw_setup(&fd, 1, 1, 100, EINVAL, "power of two");
	raw_setup(&fd, 1, 1, 2048, EINVAL, "power of two");
	raw_setup(&fd, 1, 1, 128, EINVAL, "128 slots take exactly"); /* the file has 64 */
	close(fd2);
	raw_alive();

	/* A read-only descriptor of the right memfd: both sides write the ring. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fd2 = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd2, 0);
	raw_setup(&fd2, 1, 1, 64, EACCES, "read-only");
	close(fd2);
	close(fd);
	raw_alive();

	/* Sealed against writes: mmap MAP_SHARED writable fails. */
	fd = ring_memfd(64, good, F_SEAL_SHRINK | F_SEAL_WRITE, SHM_RING_MAGIC);
	raw_setup(&fd, 1, 1, 64, EPERM, "mmap");
	close(fd);
	raw_alive();

	/* A header that is not a ring's. */
	fd = ring_memfd(64, good, sealed, 0x1234);
	raw_setup(&fd, 1, 1, 64, EINVAL, "magic");
	close(fd);
	raw_alive();

	/* A pipe. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	raw_setup(&p[0], 1, 1, 64, EINVAL, "pipe");
	close(p[0]);
	close(p[1]);
	raw_alive();

	/* A wake without a ring. */
	raw_wake(EINVAL);
	/* Nothing kept of all that: the descriptors are back at the baseline. */
	remote_expect_alive(&rem);
	remote_stop(&rem);
}
END_TEST

START_TEST(ring_setup_without_the_feature)
{
	int fd = ring_memfd(64, shm_ring_size(64), F_SEAL_SHRINK, SHM_RING_MAGIC);

	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO, .features = 0x1ff });
	raw_setup(&fd, 1, 1, 64, ENOTSUP, "not negotiated");
	raw_wake(ENOTSUP);
	close(fd);
	raw_alive();
	remote_stop(&rem);
}
END_TEST

START_TEST(bad_slots)
{
	static const struct {
		const char *what;
		uint32_t op, region, size;
		uint64_t offset;
		int32_t status;
	} rows[] = {
		{ "op 0", 0, 0, 4, 0, -EINVAL },
		{ "op 77", 77, 0, 4, 0, -EINVAL },
		{ "region 99", SHM_RING_OP_READ, 99, 4, 0, -EINVAL },
		{ "region 5 (edu has none)", SHM_RING_OP_WRITE, 5, 4, 0, -EINVAL },
		{ "size 3", SHM_RING_OP_READ, 0, 3, 0, -EINVAL },
		{ "size 0", SHM_RING_OP_READ, 0, 0, 0, -EINVAL },
		{ "size 16", SHM_RING_OP_WRITE, 0, 16, 0, -EINVAL },
		{ "offset past BAR0", SHM_RING_OP_READ, 0, 4, EDU_BAR0_SIZE, -ERANGE },
		{ "offset across BAR0's end", SHM_RING_OP_WRITE, 0, 8, EDU_BAR0_SIZE - 4, -ERANGE },
		{ "offset 2^64-4", SHM_RING_OP_POSTED_WRITE, 0, 4, ~0ull - 3, -ERANGE },
		{ "config space", SHM_RING_OP_READ, 7, 4, 0, -EINVAL },
		{ "config space, posted", SHM_RING_OP_POSTED_WRITE, 7, 4, 4, -EINVAL },
	};
	struct hring h;
	uint64_t v = 0;

	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	hostile_ring(&h, 64);
	ck_assert_int_eq(hostile_slot(&h, SHM_RING_OP_READ, 0, 0, 4, 0, &v), 0);
	ck_assert_uint_eq(v, EDU_IDENT);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int32_t st = hostile_slot(&h, rows[i].op, rows[i].region, rows[i].offset,
					  rows[i].size, 0x55, NULL);

		ck_assert_msg(st == rows[i].status, "%s: status %d, want %d", rows[i].what, st,
			      rows[i].status);
		raw_alive();
		/* The ring goes on after a bad slot. */
		ck_assert_int_eq(hostile_slot(&h, SHM_RING_OP_READ, 0, 0, 4, 0, &v), 0);
		ck_assert_uint_eq(v, EDU_IDENT);
	}
	/* A whole ring of slots in one go, wrapping the indexes past 64. */
	for (uint32_t i = 0; i < 64; i++) {
		struct shm_ring_slot *sl = &h.slots[(h.prod + i) & 63];

		sl->op = SHM_RING_OP_POSTED_WRITE;
		sl->region = 0;
		sl->offset = EDU_LIVENESS;
		sl->size = 4;
		sl->data = i;
	}
	h.prod += 64;
	atomic_store(&h.hdr->prod, h.prod);
	raw_wake(0);
	hostile_wait(&h);
	raw_alive();
	ck_assert_uint_eq(raw_rd32(EDU_LIVENESS), ~63u);

	/* Two rings ahead: the ring is broken, the socket is not. */
	h.prod += 2 * h.n;
	atomic_store(&h.hdr->prod, h.prod);
	try_wake(); /* a remote still polling broke it already: EPROTO */
	hostile_wait(&h);
	raw_alive();
	ck_assert_uint_eq(atomic_load(&h.hdr->remote_state), SHM_RING_BROKEN);
	ck_assert_int_eq(atomic_load(&h.hdr->error), -EPROTO);
	raw_wake(EPROTO);
	ck_assert_uint_eq(raw_rd32(EDU_IDENT_REG), EDU_IDENT);
	munmap(h.map, h.len);

	/* A new ring replaces the broken one. */
	hostile_ring(&h, 128);
	ck_assert_int_eq(hostile_slot(&h, SHM_RING_OP_READ, 0, 0, 4, 0, &v), 0);
	ck_assert_uint_eq(v, EDU_IDENT);
	munmap(h.map, h.len);
	remote_expect_alive(&rem);
	remote_stop(&rem);
}
END_TEST

struct scribble {
	uint8_t *map;
	size_t len;
	atomic_bool stop;
	atomic_bool header; /* the header page too, indexes included */
	uint64_t writes;
};

static void *scribbler(void *arg)
{
	struct scribble *sc = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	while (!atomic_load(&sc->stop)) {
		size_t from = atomic_load(&sc->header) ? 0 : SHM_RING_HEADER_SIZE;

		/* xorshift64: 8 random bytes at a random place. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(sc->map + from + x % (sc->len - from - 8), &x, 8);
		sc->writes++;
	}
	return NULL;
}

START_TEST(scribbler_cannot_hurt_the_remote)
{
	struct scribble sc = { 0 };
	struct hring h;
	pthread_t t;
	int64_t end;
	uint64_t requests;
	unsigned wakes = 0;

	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	hostile_ring(&h, 64);
	sc.map = h.map;
	sc.len = h.len;
	ck_assert_int_eq(pthread_create(&t, NULL, scribbler, &sc), 0);
	/*
	 * Half a second of garbage slots published with honest indexes, so that
	 * the remote parses them; then half a second of garbage everywhere.
	 */
	end = now_ms() + 500;
	while (now_ms() < end) {
		uint32_t cons = atomic_load(&h.hdr->cons);

		h.prod = cons + 1 + (uint32_t)(now_ms() % h.n);
		atomic_store(&h.hdr->prod, h.prod);
		ck_assert_int_eq(try_wake(), 0);
		wakes++;
		sleep_ms(1);
	}
	ck_assert_uint_eq(atomic_load(&h.hdr->remote_state) == SHM_RING_BROKEN, 0);
	atomic_store(&sc.header, true);
	end = now_ms() + 500;
	while (now_ms() < end) {
		try_wake();
		wakes++;
		sleep_ms(1);
	}
	atomic_store(&sc.stop, true);
	pthread_join(t, NULL);
	ck_assert_uint_gt(sc.writes, 1000);
	ck_assert_uint_gt(wakes, 20);
	/* The remote answers, and edu is edu. */
	raw_alive();
	ck_assert_int_eq(kill(rem.pid, 0), 0);
	ck_assert_uint_eq(raw_rd32(EDU_IDENT_REG), EDU_IDENT);
	raw_wr32(EDU_LIVENESS, 0x5a5a5a5a);
	ck_assert_uint_eq(raw_rd32(EDU_LIVENESS), ~0x5a5a5a5au);
	munmap(h.map, h.len);
	remote_expect_alive(&rem);
	(void)requests;
	remote_stop(&rem);
}
END_TEST

static void teardown(void)
{
	remote_release(&rem);
}

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *lib = tcase_create("libmpdev");
	TCase *bad = tcase_create("hostile");

	tcase_add_checked_fixture(lib, NULL, teardown);
	tcase_set_timeout(lib, 60);
	tcase_add_test(lib, ring_gives_what_the_socket_gives);
	tcase_add_test(lib, ring_errors_are_the_sockets);
	tcase_add_test(lib, factorial_completes_while_polling);
	tcase_add_test(lib, ring_and_socket_keep_order);
	tcase_add_test(lib, posted_ring_failures_reach_sync);
	tcase_add_test(lib, remote_sleeps_and_wakes);
	tcase_add_test(lib, waits_are_bounded);
	tcase_add_test(lib, ring_needs_the_feature);
	suite_add_tcase(s, lib);
	tcase_add_checked_fixture(bad, NULL, teardown);
	tcase_set_timeout(bad, 60);
	tcase_add_test(bad, bad_ring_setups);
	tcase_add_test(bad, ring_setup_without_the_feature);
	tcase_add_test(bad, bad_slots);
	tcase_add_test(bad, scribbler_cannot_hurt_the_remote);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return testutil_run_suite(ring_suite());
}
