/*
 * Dirty tracking end to end: a real mpdev-remote serving edu, guest RAM in
 * a memfd, edu's DMA engine driven through BAR0, the bitmaps read through
 * libmpdev. Exactly the pages a device->RAM DMA wrote are reported, once;
 * a RAM->device DMA and a refused DMA mark nothing; 64 KiB and 2 MiB
 * pages; a range too big for one reply comes back whole through
 * libmpdev's split; bad ranges and page sizes are refused with the remote
 * alive; the feature must be negotiated; after a remote restart a report
 * says -ESTALE instead of an empty bitmap.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "wire.h"

#define K4  0x1000ull
#define K64 0x10000ull
#define M2  0x200000ull

/* edu's BAR0 registers and DMA bits (remote/emu/edu.h, QEMU's hw/misc/edu.c). */
#define EDU_IDENT	   0x00
#define EDU_IRQ_STATUS	   0x24
#define EDU_IRQ_ACK	   0x64
#define EDU_DMA_SRC	   0x80
#define EDU_DMA_DST	   0x88
#define EDU_DMA_COUNT	   0x90
#define EDU_DMA_CMD	   0x98
#define EDU_CMD_RUN	   0x1u
#define EDU_CMD_TO_RAM	   0x2u
#define EDU_CMD_IRQ	   0x4u
#define EDU_IRQ_DMA	   0x100u
#define EDU_DMA_BUF	   0x40000u
#define EDU_IDENT_VALUE	   0x010000edu
#define PCI_COMMAND_MEM_BM 0x0006u

/* Guest RAM: 1 MiB writable at 1 MiB, 64 KiB read-only at 3 MiB. */
#define RAM_GPA	 0x100000ull
#define RAM_SIZE 0x100000ull
#define RO_GPA	 0x300000ull
#define RO_SIZE	 0x10000ull

static struct remote rem;
static int ram_fd = -1, ro_fd = -1;
static uint8_t *ram;

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_dirty" };

static void map_ram(struct mpdev *dev)
{
	const struct mpdev_mem_region t[] = {
		{ .gpa = RAM_GPA, .size = RAM_SIZE, .fd = ram_fd },
		{ .gpa = RO_GPA, .size = RO_SIZE, .fd = ro_fd, .read_only = true },
	};

	ck_assert_msg(mpdev_mem_set_table(dev, t, 2) == 0, "set table: %s", mpdev_last_error(dev));
	ck_assert_int_eq(mpdev_config_write(dev, 0x04, 2, PCI_COMMAND_MEM_BM), 0);
}

static void ram_open(void)
{
	ram_fd = testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
	ro_fd = testutil_memfd(RO_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
	ck_assert_ptr_ne(ram, MAP_FAILED);
}

static void ram_close(void)
{
	munmap(ram, RAM_SIZE);
	close(ram_fd);
	close(ro_fd);
	ram_fd = ro_fd = -1;
}

static void start(void)
{
	ram_open();
	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
	ck_assert_msg(mpdev_features(rem.dev) & MPDEV_FEATURE_DIRTY_TRACKING,
		      "edu's remote does not offer dirty tracking (features 0x%llx)",
		      (unsigned long long)mpdev_features(rem.dev));
	map_ram(rem.dev);
}

/* The remote still serves requests, and holds exactly its descriptors after the handshake. */
static void expect_alive(void)
{
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IDENT), EDU_IDENT_VALUE);
	remote_expect_fds(&rem, rem.baseline_fds); /* regions are mapped, their fds closed */
}

static void stop(void)
{
	expect_alive();
	remote_stop(&rem);
	ram_close();
}

/* One edu DMA, waited for (bounded); whether it completed (edu's DMA interrupt status). */
static bool edu_dma(struct mpdev *dev, uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd)
{
	uint64_t c = EDU_CMD_RUN;
	bool done;

	bar_wr64(dev, EDU_DMA_SRC, src);
	bar_wr64(dev, EDU_DMA_DST, dst);
	bar_wr64(dev, EDU_DMA_COUNT, count);
	bar_wr64(dev, EDU_DMA_CMD, cmd | EDU_CMD_RUN | EDU_CMD_IRQ);
	for (int i = 0; i < 2000 && (c & EDU_CMD_RUN); i++) {
		if (i > 10)
			usleep(1000);
		c = bar_rd64(dev, EDU_DMA_CMD);
	}
	ck_assert_msg(!(c & EDU_CMD_RUN), "DMA still running after ~2 s");
	done = bar_rd32(dev, EDU_IRQ_STATUS) & EDU_IRQ_DMA;
	if (done)
		bar_wr32(dev, EDU_IRQ_ACK, EDU_IRQ_DMA);
	return done;
}

static void to_ram(uint64_t gpa, uint64_t count)
{
	ck_assert_msg(edu_dma(rem.dev, EDU_DMA_BUF, gpa, count, EDU_CMD_TO_RAM),
		      "DMA to RAM at 0x%llx failed", (unsigned long long)gpa);
}

static void track(uint64_t iova, uint64_t size, uint64_t ps)
{
	const struct mpdev_dirty_range r = { iova, size };

	ck_assert_msg(mpdev_dirty_start(rem.dev, &r, 1, ps) == 0, "start: %s",
		      mpdev_last_error(rem.dev));
}

static void untrack(void)
{
	ck_assert_msg(mpdev_dirty_stop(rem.dev) == 0, "stop: %s", mpdev_last_error(rem.dev));
}

static bool bit(const uint8_t *b, uint64_t n)
{
	return b[n / 8] >> (n % 8) & 1;
}

/* Reports [iova, iova + pages pages) and checks exactly want[0..nw) (sorted) are set. */
static void expect_dirty(uint64_t iova, uint64_t pages, uint64_t ps, const uint64_t *want,
			 size_t nw)
{
	size_t len = (size_t)(pages + 7) / 8, k = 0;
	uint8_t *b = malloc(len + 1);

	ck_assert_ptr_nonnull(b);
	memset(b, 0xff, len + 1); /* every bit the report does not write stays visible */
	ck_assert_msg(mpdev_dirty_report(rem.dev, iova, pages * ps, ps, b, len) == 0, "report: %s",
		      mpdev_last_error(rem.dev));
	for (uint64_t i = 0; i < pages; i++) {
		bool w = k < nw && want[k] == i;

		ck_assert_msg(bit(b, i) == w, "page %llu (0x%llx): %d, wanted %d",
			      (unsigned long long)i, (unsigned long long)(iova + i * ps), bit(b, i),
			      w);
		if (w)
			k++;
	}
	ck_assert_uint_eq(k, nw);
	if (pages % 8)
		ck_assert_uint_eq(b[len - 1] >> (pages % 8), 0);
	ck_assert_uint_eq(b[len], 0xff); /* nothing past len */
	free(b);
}

static void pick(void *opaque, const char *name, uint64_t value)
{
	uint64_t *v = opaque;

	if (!strcmp(name, "dirty_reports"))
		v[0] = value, v[2] |= 1;
	if (!strcmp(name, "dirty_pages_marked"))
		v[1] = value, v[2] |= 2;
}

/* The remote's dirty counters: [0] reports, [1] pages marked. */
static void dirty_counters(uint64_t v[3])
{
	memset(v, 0, 3 * sizeof(*v));
	ck_assert_int_gt(mpdev_get_stats(rem.dev, pick, v), 0);
	ck_assert_uint_eq(v[2], 3);
}

/* Pages relative to RAM_GPA at 4 KiB; RAM, the gap and the read-only region. */
#define TRACKED ((RO_GPA + RO_SIZE - RAM_GPA) / K4)
#define PG(n)	(RAM_GPA + (n)*K4)

START_TEST(exactly_the_pages_written_once)
{
	struct mpdev_iommu_info ii;
	uint64_t c0[3], c1[3];

	ck_assert_int_eq(mpdev_get_iommu_info(rem.dev, &ii), 0);
	ck_assert(ii.dirty_tracking);
	dirty_counters(c0);
	/* Tracks RAM and the read-only region, and what lies between (not mapped). */
	track(RAM_GPA, RO_GPA + RO_SIZE - RAM_GPA, K4);
	to_ram(PG(3) + 100, 4096); /* pages 3 and 4 */
	to_ram(PG(10) + 4095, 1);  /* the last byte of page 10 */
	to_ram(PG(20), 4096);	   /* exactly page 20 */
	to_ram(PG(20) + 8, 8);	   /* page 20 again: still once */
	expect_dirty(RAM_GPA, TRACKED, K4, (uint64_t[]){ 3, 4, 10, 20 }, 4);
	/* Cleared as read. */
	expect_dirty(RAM_GPA, TRACKED, K4, NULL, 0);
	/* Again into one page: only that one. */
	to_ram(PG(10), 16);
	expect_dirty(RAM_GPA, TRACKED, K4, (uint64_t[]){ 10 }, 1);
	/* RAM -> device reads guest memory: nothing is dirty. */
	ck_assert(edu_dma(rem.dev, PG(30), EDU_DMA_BUF, 4096, 0));
	/* Refused DMAs write nothing, so mark nothing: read-only, unmapped, past the end. */
	ck_assert(!edu_dma(rem.dev, EDU_DMA_BUF, RO_GPA, 64, EDU_CMD_TO_RAM));
	ck_assert(!edu_dma(rem.dev, EDU_DMA_BUF, RAM_GPA + RAM_SIZE + K4, 64, EDU_CMD_TO_RAM));
	ck_assert(!edu_dma(rem.dev, EDU_DMA_BUF, RAM_GPA + RAM_SIZE - 8, 16, EDU_CMD_TO_RAM));
	expect_dirty(RAM_GPA, TRACKED, K4, NULL, 0);
	/* A report of part of the range, at an odd page offset. */
	to_ram(PG(5), 1);
	to_ram(PG(12), 1);
	expect_dirty(PG(3), 5, K4, (uint64_t[]){ 2 }, 1);
	expect_dirty(RAM_GPA, TRACKED, K4, (uint64_t[]){ 12 }, 1);
	dirty_counters(c1);
	ck_assert_uint_eq(c1[0] - c0[0], 6);
	ck_assert_uint_eq(c1[1] - c0[1], 7); /* 3, 4, 10, 20; 10; 5; 12 */
	untrack();
	/* Stopped: writes are not recorded, and a report is refused. */
	to_ram(PG(40), 1);
	dirty_counters(c0);
	ck_assert_uint_eq(c0[1], c1[1]);
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, RAM_GPA, K4, K4, (uint8_t[1]){ 0 }, 1),
			 -EINVAL);
	ck_assert_msg(strstr(mpdev_last_error(rem.dev), "not started"), "%s",
		      mpdev_last_error(rem.dev));
}
END_TEST

START_TEST(large_pages)
{
	const uint64_t sizes[] = { K64, M2 };

	for (size_t i = 0; i < 2; i++) {
		uint64_t ps = sizes[i], base = 0, pages = 4 * M2 / ps;

		track(base, pages * ps, ps);
		to_ram(RAM_GPA + 0x30000 + 5, 1);
		to_ram(RAM_GPA + 0x4ff00, 0x200); /* across a 64 KiB boundary */
		{
			uint64_t a = (RAM_GPA + 0x30000) / ps, b = (RAM_GPA + 0x4ff00) / ps,
				 c = (RAM_GPA + 0x500ff) / ps;
			uint64_t want[3];
			size_t nw = 0;

			want[nw++] = a;
			if (b != a)
				want[nw++] = b;
			if (c != want[nw - 1])
				want[nw++] = c;
			expect_dirty(base, pages, ps, want, nw);
		}
		expect_dirty(base, pages, ps, NULL, 0);
		untrack();
	}
}
END_TEST

/*
 * 8 GiB at 4 KiB: 2 Mi pages, a 256 KiB bitmap, five replies' worth. edu
 * reaches only the first 256 MiB, so the set bits are all in the first
 * request; the other four must come back written (zeros over the 0xff
 * fill) and in place (a misplaced chunk would overwrite the first's bits).
 */
START_TEST(range_bigger_than_one_message)
{
	const uint64_t size = 8ull << 30, pages = size / K4;
	uint64_t c0[3], c1[3];

	ck_assert_uint_gt(pages, 4 * MPDEV_DIRTY_REPORT_MAX_PAGES);
	track(0, size, K4);
	to_ram(PG(0), 1);
	to_ram(PG(255), 1);
	dirty_counters(c0);
	expect_dirty(0, pages, K4, (uint64_t[]){ RAM_GPA / K4, RAM_GPA / K4 + 255 }, 2);
	dirty_counters(c1);
	ck_assert_uint_eq(c1[0] - c0[0], 5);
	/* The tail alone, starting at a page that is not a multiple of 8 from the range's start. */
	to_ram(PG(1), 1);
	expect_dirty(RAM_GPA + K4 - 3 * K4, pages - RAM_GPA / K4 + 2, K4, (uint64_t[]){ 3 }, 1);
	untrack();
}
END_TEST

START_TEST(bad_ranges_and_page_sizes)
{
	struct mpdev_dirty_range two[2] = { { 0, 2 * K64 }, { K64, K64 } };
	uint8_t b[64];

	ck_assert_int_eq(mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0, K4 }, 1, 0),
			 -EINVAL);
	ck_assert_int_eq(
		mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0, 3 * K4 }, 1, 3 * K4),
		-EINVAL);
	ck_assert_int_eq(
		mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0x800, K4 }, 1, K4),
		-EINVAL);
	ck_assert_int_eq(mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ K4, K64 }, 1, K64),
			 -EINVAL);
	ck_assert_int_eq(mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0, 0 }, 1, K4),
			 -EINVAL);
	ck_assert_int_eq(mpdev_dirty_start(rem.dev, two, 2, K4), -EINVAL);
	ck_assert(strstr(mpdev_last_error(rem.dev), "overlaps"));
	ck_assert_int_eq(mpdev_dirty_start(rem.dev, two, 0, K4), -EINVAL);
	ck_assert_int_eq(
		mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0, 1ull << 44 }, 1, K4),
		-E2BIG);
	expect_alive();
	track(RAM_GPA, RAM_SIZE, K4);
	ck_assert_int_eq(mpdev_dirty_start(rem.dev, &(struct mpdev_dirty_range){ 0, K4 }, 1, K4),
			 -EBUSY);
	/* Reports: outside, straddling, another page size, a bitmap too small. */
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, 0, K4, K4, b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(
		mpdev_dirty_report(rem.dev, RAM_GPA + RAM_SIZE - K4, 2 * K4, K4, b, sizeof(b)),
		-EINVAL);
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, RAM_GPA, K64, K64, b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, RAM_GPA, 3 * K4 + 1, K4, b, sizeof(b)),
			 -EINVAL);
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, RAM_GPA, 64 * K4, K4, b, 7), -EINVAL);
	ck_assert_int_eq(mpdev_dirty_report(rem.dev, RAM_GPA, 64 * K4, K4, b, 8), 0);
	expect_alive();
	/* Still tracking after all that. */
	to_ram(PG(2), 1);
	expect_dirty(RAM_GPA, 256, K4, (uint64_t[]){ 2 }, 1);
	untrack();
	untrack(); /* stopping twice is fine */
}
END_TEST

/* The feature must be negotiated: the remote refuses each request otherwise. */
START_TEST(not_negotiated_refused)
{
	static struct remote raw;
	const uint64_t all_but = ~(uint64_t)MPDEV__FEATURE__FEATURE_DIRTY_TRACKING;
	struct mpdev_options o = opts;
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyStart ds = MPDEV__DIRTY_START__INIT;
	Mpdev__DirtyReport dr = MPDEV__DIRTY_REPORT__INIT;
	Mpdev__DirtyStop st = MPDEV__DIRTY_STOP__INIT;
	Mpdev__IovaRange r = MPDEV__IOVA_RANGE__INIT;
	Mpdev__IovaRange *rp = &r;
	uint8_t b[1];

	/* Raw: each of the three requests, well formed, refused by the remote itself. */
	remote_start(&raw, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO, .features = all_but });
	r.last = K4 - 1;
	ds.ranges = &rp;
	ds.n_ranges = 1;
	ds.page_size = K4;
	dr.size = K4;
	dr.page_size = K4;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_START;
	env.dirty_start = &ds;
	native_send_env(raw.sock, (env.id = raw.next_id++, &env), 0, NULL, 0);
	native_expect_reply(raw.sock, env.id, ENOTSUP, "not negotiated");
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_REPORT;
	env.dirty_report = &dr;
	native_send_env(raw.sock, (env.id = raw.next_id++, &env), 0, NULL, 0);
	native_expect_reply(raw.sock, env.id, ENOTSUP, "not negotiated");
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_STOP;
	env.dirty_stop = &st;
	native_send_env(raw.sock, (env.id = raw.next_id++, &env), 0, NULL, 0);
	native_expect_reply(raw.sock, env.id, ENOTSUP, "not negotiated");
	remote_expect_alive(&raw);
	remote_stop(&raw);

	/* libmpdev asked for less: its calls say so without asking the remote. */
	o.features = MPDEV_FEATURE_MEMORY_TABLE | MPDEV_FEATURE_STATS;
	remote_start(&raw, &(struct remote_opts){ .mpdev = &o });
	ck_assert_uint_eq(mpdev_features(raw.dev) & MPDEV_FEATURE_DIRTY_TRACKING, 0);
	ck_assert_int_eq(mpdev_dirty_start(raw.dev, &(struct mpdev_dirty_range){ 0, K4 }, 1, K4),
			 -ENOTSUP);
	ck_assert_int_eq(mpdev_dirty_report(raw.dev, 0, K4, K4, b, 1), -ENOTSUP);
	ck_assert_int_eq(mpdev_dirty_stop(raw.dev), -ENOTSUP);
	remote_stop(&raw);
}
END_TEST

/*
 * A restarted remote lost the bits: libmpdev says so (-ESTALE) rather than
 * report a clean bitmap, until tracking is started again.
 */
START_TEST(restart_makes_reports_stale)
{
	static struct remote first, second;
	struct mpdev_options o = opts;
	uint8_t b[32];

	ram_open();
	remote_start(&first, &(struct remote_opts){ .listen = true, .mpdev = &o });
	rem = first; /* the helpers drive rem */
	map_ram(rem.dev);
	track(RAM_GPA, RAM_SIZE, K4);
	to_ram(PG(1), 1);
	remote_kill(&first);
	remote_start(&second, &(struct remote_opts){ .listen = true,
						     .path = first.path,
						     .greet = REMOTE_UNGREETED });
	ck_assert_msg(mpdev_reconnect(first.dev) == 0, "reconnect: %s",
		      mpdev_last_error(first.dev));
	rem.dev = first.dev;
	ck_assert_int_eq(mpdev_dirty_report(first.dev, RAM_GPA, 256 * K4, K4, b, sizeof(b)),
			 -ESTALE);
	ck_assert_msg(strstr(mpdev_last_error(first.dev), "restarted"), "%s",
		      mpdev_last_error(first.dev));
	/* Stop (a no-op on the new remote) and start again: reports work. */
	untrack();
	track(RAM_GPA, RAM_SIZE, K4);
	to_ram(PG(7), 1);
	expect_dirty(RAM_GPA, 256, K4, (uint64_t[]){ 7 }, 1);
	remote_stop(&second);
	remote_release(&first);
	memset(&rem, 0, sizeof(rem));
	ram_close();
}
END_TEST

static Suite *dirty_suite(void)
{
	Suite *s = suite_create("dirty");
	TCase *tc = tcase_create("edu");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, exactly_the_pages_written_once);
	tcase_add_test(tc, large_pages);
	tcase_add_test(tc, range_bigger_than_one_message);
	tcase_add_test(tc, bad_ranges_and_page_sizes);
	suite_add_tcase(s, tc);

	tc = tcase_create("sessions");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, not_negotiated_refused);
	tcase_add_test(tc, restart_makes_reports_stale);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(dirty_suite());
}
