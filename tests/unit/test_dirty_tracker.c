/*
 * The dirty tracker alone (remote/dirty.h): marks across page and range
 * boundaries, clear on read, exactly once between reports, page sizes 4 KiB
 * / 64 KiB / 2 MiB, reports at any page offset against a reference model,
 * bad inputs with their errno; and its hook in dma_write(): a write that
 * succeeded marks its pages, a refused write or a read marks nothing.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dirty.h"
#include "dma.h"
#include "testutil.h"

#define K4  0x1000ull
#define K64 0x10000ull
#define M2  0x200000ull

static struct dirty_tracker d;
static struct mpdev_error err;

static void setup(void)
{
	dirty_init(&d);
	mpdev_error_clear(&err);
}

static void teardown(void)
{
	dirty_stop(&d);
}

static void start_ok(const struct backend_dirty_range *r, size_t n, uint64_t ps)
{
	ck_assert_msg(dirty_start(&d, r, n, ps, &err) == 0, "start: %s", err.msg);
}

static void start_fails(const struct backend_dirty_range *r, size_t n, uint64_t ps, int code,
			const char *words)
{
	mpdev_error_clear(&err);
	ck_assert_int_eq(dirty_start(&d, r, n, ps, &err), -code);
	ck_assert_int_eq(err.code, code);
	ck_assert_msg(strstr(err.msg, words), "'%s' lacks '%s'", err.msg, words);
	if (code != EBUSY) /* a refused first start leaves nothing behind */
		ck_assert(!d.active && !d.v && !d.n);
}

/* Reports [iova, iova + npages pages) into out, which must hold the bitmap. */
static void report_ok(uint64_t iova, uint64_t npages, uint64_t ps, uint8_t *out, size_t len)
{
	mpdev_error_clear(&err);
	ck_assert_msg(dirty_report(&d, iova, npages * ps, ps, out, len, &err) == 0, "report: %s",
		      err.msg);
}

static bool bit(const uint8_t *b, uint64_t n)
{
	return b[n / 8] >> (n % 8) & 1;
}

/* The pages set in a bitmap of n pages, listed in want (sorted, nw entries). */
static void expect_bits(const uint8_t *b, uint64_t n, const uint64_t *want, size_t nw)
{
	size_t k = 0;

	for (uint64_t i = 0; i < n; i++) {
		bool w = k < nw && want[k] == i;

		ck_assert_msg(bit(b, i) == w, "page %llu: %d, wanted %d", (unsigned long long)i,
			      bit(b, i), w);
		if (w)
			k++;
	}
	ck_assert_uint_eq(k, nw);
	/* Bits past the last page are 0. */
	if (n % 8)
		ck_assert_uint_eq(b[n / 8] >> (n % 8), 0);
}

START_TEST(bad_starts)
{
	struct backend_dirty_range one = { 0, 16 * K4 };
	struct backend_dirty_range two[2] = { { 16 * K4, 16 * K4 }, { 0, 17 * K4 } };
	struct backend_dirty_range *many;
	struct backend_dirty_range big = { 0, 1ull << 44 }; /* 512 MiB of bitmap at 4 KiB */

	start_fails(&one, 1, 0, EINVAL, "power of two");
	start_fails(&one, 1, 2048, EINVAL, "power of two");
	start_fails(&one, 1, K4 + 1, EINVAL, "power of two");
	start_fails(&one, 1, 3 * K4, EINVAL, "power of two");
	start_fails(&one, 0, K4, EINVAL, "no ranges");
	start_fails(&(struct backend_dirty_range){ 0, 0 }, 1, K4, EINVAL, "multiples");
	start_fails(&(struct backend_dirty_range){ 0x800, K4 }, 1, K4, EINVAL, "multiples");
	start_fails(&(struct backend_dirty_range){ 0, K4 + 1 }, 1, K4, EINVAL, "multiples");
	start_fails(&(struct backend_dirty_range){ K4, K64 }, 1, K64, EINVAL, "multiples");
	start_fails(&(struct backend_dirty_range){ UINT64_MAX - K4 + 1, 2 * K4 }, 1, K4, EINVAL,
		    "wraps");
	start_fails(two, 2, K4, EINVAL, "overlaps");
	start_fails(&big, 1, K4, E2BIG, "bitmap");
	many = calloc(DIRTY_MAX_RANGES + 1, sizeof(*many));
	ck_assert_ptr_nonnull(many);
	for (size_t i = 0; i <= DIRTY_MAX_RANGES; i++)
		many[i] = (struct backend_dirty_range){ i * 2 * K4, K4 };
	start_fails(many, DIRTY_MAX_RANGES + 1, K4, ENOSPC, "at most");
	/* Exactly the limit is fine; adjacent ranges do not overlap. */
	start_ok(many, DIRTY_MAX_RANGES, K4);
	dirty_stop(&d);
	two[1].size = 16 * K4;
	start_ok(two, 2, K4);
	/* The same memory at larger pages fits. */
	dirty_stop(&d);
	start_ok(&big, 1, M2);
	start_fails(&one, 1, K4, EBUSY, "already started");
	ck_assert(d.active); /* the refused second start left the first alone */
	dirty_stop(&d);
	dirty_stop(&d); /* a no-op when stopped */
	ck_assert(!d.active);
	free(many);
}
END_TEST

START_TEST(bad_reports)
{
	struct backend_dirty_range r[2] = { { 0x100000, 16 * K4 }, { 0x110000, 16 * K4 } };
	uint8_t b[8];

	ck_assert_int_eq(dirty_report(&d, 0x100000, K4, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert(strstr(err.msg, "not started"));
	start_ok(r, 2, K4);
	ck_assert_int_eq(dirty_report(&d, 0x100000, K64, K64, b, sizeof(b), &err), -EINVAL);
	ck_assert(strstr(err.msg, "started with"));
	ck_assert_int_eq(dirty_report(&d, 0x100000, 0, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, 0x100800, K4, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, 0x100000, K4 + 1, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, 0xff000, K4, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert(strstr(err.msg, "within one started range"));
	/* Two adjacent ranges are still two: a report may not span them. */
	ck_assert_int_eq(dirty_report(&d, 0x10f000, 2 * K4, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, 0x120000, K4, K4, b, sizeof(b), &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, UINT64_MAX - K4 + 1, 2 * K4, K4, b, sizeof(b), &err),
			 -EINVAL);
	/* 16 pages need 2 bytes. */
	ck_assert_int_eq(dirty_report(&d, 0x100000, 16 * K4, K4, b, 1, &err), -EINVAL);
	ck_assert_int_eq(dirty_report(&d, 0x100000, 16 * K4, K4, b, 2, &err), 0);
	ck_assert_uint_eq(d.stats.reports, 1);
}
END_TEST

START_TEST(marks_across_pages_and_ranges)
{
	/* Ranges [64K, 128K) and [192K, 256K) at 4 KiB: a gap between them. */
	struct backend_dirty_range r[2] = { { 3 * K64, K64 }, { K64, K64 } };
	uint8_t b[2];

	start_ok(r, 2, K4);
	dirty_mark(&d, K64 + K4 - 1, 2);	       /* the end of page 0 and start of 1 */
	dirty_mark(&d, K64 + 5 * K4, K4);	       /* exactly page 5 */
	dirty_mark(&d, 2 * K64 - 1, K64 + 2 * K4 + 2); /* last page of r0, gap, pages 0-2 of r1 */
	dirty_mark(&d, 0, K64);			       /* entirely before */
	dirty_mark(&d, 4 * K64, 10 * K64);	       /* entirely after */
	dirty_mark(&d, 2 * K64 + K4, K4);	       /* in the gap */
	report_ok(K64, 16, K4, b, sizeof(b));
	expect_bits(b, 16, (uint64_t[]){ 0, 1, 5, 15 }, 4);
	report_ok(3 * K64, 16, K4, b, sizeof(b));
	expect_bits(b, 16, (uint64_t[]){ 0, 1, 2 }, 3);
	ck_assert_uint_eq(d.stats.pages_marked, 7);
}
END_TEST

START_TEST(clear_on_read_and_exactly_once)
{
	struct backend_dirty_range r = { 0, 64 * K4 };
	uint8_t b[8];

	start_ok(&r, 1, K4);
	for (int i = 0; i < 3; i++)
		dirty_mark(&d, 7 * K4 + 8 * (uint64_t)i, 8); /* one page, three writes */
	dirty_mark(&d, 40 * K4, 1);
	ck_assert_uint_eq(d.stats.pages_marked, 2);
	report_ok(0, 64, K4, b, sizeof(b));
	expect_bits(b, 64, (uint64_t[]){ 7, 40 }, 2);
	/* Read, so clear. */
	report_ok(0, 64, K4, b, sizeof(b));
	expect_bits(b, 64, NULL, 0);
	/* Written again: reported again, once. */
	dirty_mark(&d, 40 * K4 + 100, 1);
	report_ok(0, 64, K4, b, sizeof(b));
	expect_bits(b, 64, (uint64_t[]){ 40 }, 1);
	report_ok(0, 64, K4, b, sizeof(b));
	expect_bits(b, 64, NULL, 0);
	/* A report of part of the range clears only that part. */
	dirty_mark(&d, 3 * K4, 1);
	dirty_mark(&d, 50 * K4, 1);
	report_ok(0, 32, K4, b, sizeof(b));
	expect_bits(b, 32, (uint64_t[]){ 3 }, 1);
	report_ok(0, 64, K4, b, sizeof(b));
	expect_bits(b, 64, (uint64_t[]){ 50 }, 1);
	ck_assert_uint_eq(d.stats.reports, 6);
}
END_TEST

START_TEST(page_sizes)
{
	const uint64_t sizes[] = { K4, K64, M2 };

	for (size_t i = 0; i < 3; i++) {
		uint64_t ps = sizes[i];
		struct backend_dirty_range r = { 8 * ps, 12 * ps };
		uint8_t b[2] = { 0xff, 0xff };

		start_ok(&r, 1, ps);
		dirty_mark(&d, 8 * ps + 3 * ps + 1, 1);	  /* page 3 */
		dirty_mark(&d, 8 * ps + 5 * ps - 1, 2);	  /* pages 4 and 5 */
		dirty_mark(&d, 8 * ps + 7 * ps, ps);	  /* page 7 only */
		dirty_mark(&d, 8 * ps + 12 * ps - 1, 1);  /* the last, page 11 */
		dirty_mark(&d, 8 * ps + 12 * ps, 4 * ps); /* after the range */
		report_ok(8 * ps, 12, ps, b, sizeof(b));
		expect_bits(b, 12, (uint64_t[]){ 3, 4, 5, 7, 11 }, 5);
		ck_assert_uint_eq(d.stats.pages_marked, 5 * (i + 1));
		dirty_stop(&d);
	}
}
END_TEST

/* A range ending at the top of the address space: its end does not fit in 64 bits. */
START_TEST(range_at_the_top)
{
	struct backend_dirty_range r = { UINT64_MAX - 4 * K4 + 1, 4 * K4 };
	uint8_t b;

	start_ok(&r, 1, K4);
	dirty_mark(&d, UINT64_MAX, 1);
	dirty_mark(&d, UINT64_MAX - 4 * K4 + 1, 1);
	report_ok(r.iova, 4, K4, &b, 1);
	expect_bits(&b, 4, (uint64_t[]){ 0, 3 }, 2);
}
END_TEST

/*
 * Against a reference model: random writes, then reports of random
 * sub-ranges at any page offset (not only multiples of 8, where bits must
 * be shifted), and a whole range split in chunks of 8k pages as libmpdev
 * does; each must equal the model, which then forgets what was reported.
 */
START_TEST(reports_at_any_offset_match_a_model)
{
	enum { PAGES = 1000 };
	struct backend_dirty_range r = { 0x40000000, PAGES * K4 };
	static bool model[PAGES];
	uint8_t b[PAGES / 8 + 1], whole[PAGES / 8 + 1];
	unsigned seed = 12345;

	memset(model, 0, sizeof(model));
	start_ok(&r, 1, K4);
	for (int round = 0; round < 200; round++) {
		uint64_t p0, n;

		for (int w = 0; w < 20; w++) {
			uint64_t off = (uint64_t)rand_r(&seed) % (PAGES * K4);
			uint64_t len = 1 + (uint64_t)rand_r(&seed) % (3 * K4);

			if (off + len > PAGES * K4)
				len = PAGES * K4 - off;
			dirty_mark(&d, r.iova + off, len);
			for (uint64_t p = off / K4; p <= (off + len - 1) / K4; p++)
				model[p] = true;
		}
		if (round % 10 == 9) {
			/* The whole range in chunks of 64 pages, concatenated at bytes. */
			for (uint64_t c = 0; c < PAGES; c += 64) {
				n = PAGES - c < 64 ? PAGES - c : 64;
				report_ok(r.iova + c * K4, n, K4, whole + c / 8,
					  sizeof(whole) - c / 8);
			}
			for (uint64_t p = 0; p < PAGES; p++) {
				ck_assert_msg(bit(whole, p) == model[p], "round %d page %llu",
					      round, (unsigned long long)p);
				model[p] = false;
			}
			continue;
		}
		p0 = (uint64_t)rand_r(&seed) % PAGES;
		n = 1 + (uint64_t)rand_r(&seed) % (PAGES - p0);
		memset(b, 0xa5, sizeof(b));
		report_ok(r.iova + p0 * K4, n, K4, b, sizeof(b));
		for (uint64_t i = 0; i < n; i++) {
			ck_assert_msg(bit(b, i) == model[p0 + i], "round %d page %llu", round,
				      (unsigned long long)(p0 + i));
			model[p0 + i] = false;
		}
		if (n % 8)
			ck_assert_uint_eq(b[n / 8] >> (n % 8), 0);
	}
}
END_TEST

/* ---- the hook in dma_write() ---- */

START_TEST(dma_write_marks_only_what_it_wrote)
{
	const uint64_t gpa = 0x100000;
	struct dma_table t;
	struct dma_new_region rw = { .gpa = gpa, .size = 8 * K4, .fd_offset = 0 };
	struct dma_new_region ro = {
		.gpa = gpa + 8 * K4, .size = 8 * K4, .fd_offset = 8 * K4, .read_only = true
	};
	struct backend_dirty_range track = { gpa, 32 * K4 };
	uint8_t buf[2 * 4096] = { 1 }, b[4];
	int fd = testutil_memfd(16 * K4, F_SEAL_SHRINK | F_SEAL_GROW);

	if (sysconf(_SC_PAGESIZE) != (long)K4)
		return; /* the table's regions are host pages; this test is written for 4 KiB */
	dma_table_init(&t, NULL, 16);
	rw.fd = ro.fd = fd;
	ck_assert_msg(dma_table_add(&t, &rw, &err) == 0, "%s", err.msg);
	ck_assert_msg(dma_table_add(&t, &ro, &err) == 0, "%s", err.msg);
	/* Off: nothing recorded anywhere. */
	ck_assert_int_eq(dma_write(&t, gpa, buf, 16, &err), 0);
	ck_assert_uint_eq(t.dirty.stats.pages_marked, 0);
	ck_assert_msg(dirty_start(&t.dirty, &track, 1, K4, &err) == 0, "%s", err.msg);
	/* A write across pages 2 and 3 succeeds and marks both. */
	ck_assert_int_eq(dma_write(&t, gpa + 2 * K4 + 100, buf, K4, &err), 0);
	/* Refused: into the read-only region, across its start, past the table. */
	ck_assert_int_eq(dma_write(&t, gpa + 9 * K4, buf, 8, &err), -EACCES);
	ck_assert_int_eq(dma_write(&t, gpa + 7 * K4, buf, 2 * K4, &err), -EACCES);
	ck_assert_int_eq(dma_write(&t, gpa - K4, buf, 2 * K4, &err), -EFAULT);
	ck_assert_int_eq(dma_write(&t, gpa + 20 * K4, buf, 8, &err), -EFAULT);
	/* Reads, even of a writable page, write nothing. */
	ck_assert_int_eq(dma_read(&t, gpa + 5 * K4, buf, 8, &err), 0);
	ck_assert_int_eq(dma_read(&t, gpa + 10 * K4, buf, 8, &err), 0);
	ck_assert_int_eq(dirty_report(&t.dirty, gpa, 32 * K4, K4, b, sizeof(b), &err), 0);
	expect_bits(b, 32, (uint64_t[]){ 2, 3 }, 2);
	ck_assert_uint_eq(t.dirty.stats.pages_marked, 2);
	/* The proxy going away stops tracking and frees the bitmaps. */
	dma_table_clear(&t);
	ck_assert(!t.dirty.active);
	ck_assert_int_eq(dirty_report(&t.dirty, gpa, K4, K4, b, sizeof(b), &err), -EINVAL);
	close(fd);
}
END_TEST

static Suite *dirty_suite(void)
{
	Suite *s = suite_create("dirty");
	TCase *tc = tcase_create("tracker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, bad_starts);
	tcase_add_test(tc, bad_reports);
	tcase_add_test(tc, marks_across_pages_and_ranges);
	tcase_add_test(tc, clear_on_read_and_exactly_once);
	tcase_add_test(tc, page_sizes);
	tcase_add_test(tc, range_at_the_top);
	tcase_add_test(tc, reports_at_any_offset_match_a_model);
	tcase_add_test(tc, dma_write_marks_only_what_it_wrote);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(dirty_suite());
}
