/* The guest-physical map: sorted array, overlap refusal, exact remove, binary-search lookup. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memtable.h"

#define PAGE  0x1000ull
#define NMANY 10000

/* Every field derived from gpa, so that each entry carries values of its own. */
static struct memtable_entry entry(uint64_t gpa, uint64_t size)
{
	struct memtable_entry e = {
		.gpa = gpa,
		.size = size,
		.fd_offset = gpa ^ 0x5a5a000ull,
		.read_only = (gpa / PAGE * 0x9e3779b97f4a7c15ull) >> 63,
		.host = (void *)(uintptr_t)(0x7f0000000000ull + gpa * 2),
		.dev = (dev_t)(gpa / PAGE + 7),
		.ino = (ino_t)(gpa / PAGE * 13 + 1),
	};

	return e;
}

static void check_entry(const struct memtable_entry *got, uint64_t gpa, uint64_t size)
{
	struct memtable_entry want = entry(gpa, size);

	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got->gpa, want.gpa);
	ck_assert_uint_eq(got->size, want.size);
	ck_assert_uint_eq(got->fd_offset, want.fd_offset);
	ck_assert_int_eq(got->read_only, want.read_only);
	ck_assert_ptr_eq(got->host, want.host);
	ck_assert_uint_eq(got->dev, want.dev);
	ck_assert_uint_eq(got->ino, want.ino);
}

static int insert(struct memtable *t, uint64_t gpa, uint64_t size)
{
	struct memtable_entry e = entry(gpa, size);

	return memtable_insert(t, &e);
}

static bool points_into(const struct memtable *t, const struct memtable_entry *e)
{
	return e >= t->v && e < t->v + t->n;
}

static void check_sorted(const struct memtable *t)
{
	for (size_t i = 1; i < t->n; i++) {
		ck_assert_uint_lt(t->v[i - 1].gpa, t->v[i].gpa);
		ck_assert_uint_le(t->v[i - 1].gpa + t->v[i - 1].size - 1, t->v[i].gpa - 1);
	}
}

/* 0..n-1 in a fixed pseudo-random order (Fisher-Yates with rand_r). */
static size_t *shuffled(size_t n, unsigned int seed)
{
	size_t *p = malloc(n * sizeof(*p));

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand_r(&seed) % (i + 1);
		size_t tmp = p[i];

		p[i] = p[j];
		p[j] = tmp;
	}
	return p;
}

START_TEST(empty_table_finds_nothing)
{
	struct memtable t;
	struct memtable_entry out;

	memtable_init(&t);
	ck_assert_uint_eq(t.n, 0);
	ck_assert_ptr_null(memtable_lookup(&t, 0));
	ck_assert_ptr_null(memtable_lookup(&t, UINT64_MAX));
	ck_assert_int_eq(memtable_remove(&t, 0, PAGE, &out), -ENOENT);
	ck_assert_int_eq(memtable_remove(&t, 0x10000, PAGE, NULL), -ENOENT);
	ck_assert_ptr_null(memtable_find_overlap(&t, 0, UINT64_MAX));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x1000, PAGE));
	memtable_free(&t);
}
END_TEST

START_TEST(insert_refuses_empty_and_wrapping_ranges)
{
	struct memtable t;
	const struct memtable_entry *e;

	memtable_init(&t);
	ck_assert_int_eq(insert(&t, 0x1000, 0), -EINVAL);
	ck_assert_int_eq(insert(&t, 0, 0), -EINVAL);
	ck_assert_int_eq(insert(&t, UINT64_MAX - 0xfff, 0x2000), -EINVAL);
	ck_assert_int_eq(insert(&t, UINT64_MAX, 2), -EINVAL);
	ck_assert_int_eq(insert(&t, 2, UINT64_MAX), -EINVAL);
	ck_assert_uint_eq(t.n, 0);

	/* Ending exactly at the top of the address space is fine. */
	ck_assert_int_eq(insert(&t, UINT64_MAX - 0xfff, 0x1000), 0);
	ck_assert_uint_eq(t.n, 1);
	e = memtable_lookup(&t, UINT64_MAX);
	check_entry(e, UINT64_MAX - 0xfff, 0x1000);
	ck_assert_ptr_eq(memtable_lookup(&t, UINT64_MAX - 0xfff), e);
	ck_assert_ptr_null(memtable_lookup(&t, UINT64_MAX - 0x1000));
	ck_assert_ptr_eq(memtable_find_overlap(&t, UINT64_MAX, 1), e);
	ck_assert_ptr_eq(memtable_find_overlap(&t, 0, UINT64_MAX), e);
	ck_assert_int_eq(insert(&t, UINT64_MAX, 1), -EEXIST);
	ck_assert_int_eq(memtable_remove(&t, UINT64_MAX - 0xfff, 0x1000, NULL), 0);
	ck_assert_uint_eq(t.n, 0);

	/* So is the whole space but its first byte. */
	ck_assert_int_eq(insert(&t, 1, UINT64_MAX), 0);
	ck_assert_ptr_null(memtable_lookup(&t, 0));
	check_entry(memtable_lookup(&t, UINT64_MAX), 1, UINT64_MAX);
	check_entry(memtable_lookup(&t, 1), 1, UINT64_MAX);
	memtable_free(&t);
}
END_TEST

START_TEST(adjacent_regions_are_both_accepted)
{
	struct memtable t;

	memtable_init(&t);
	ck_assert_int_eq(insert(&t, 0x1000, 0x1000), 0);
	ck_assert_int_eq(insert(&t, 0x2000, 0x1000), 0);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_ptr_null(memtable_lookup(&t, 0xfff));
	check_entry(memtable_lookup(&t, 0x1000), 0x1000, 0x1000);
	check_entry(memtable_lookup(&t, 0x1fff), 0x1000, 0x1000);
	check_entry(memtable_lookup(&t, 0x2000), 0x2000, 0x1000);
	check_entry(memtable_lookup(&t, 0x2fff), 0x2000, 0x1000);
	ck_assert_ptr_null(memtable_lookup(&t, 0x3000));

	/* And adjacent on the low side too. */
	ck_assert_int_eq(insert(&t, 0, 0x1000), 0);
	check_entry(memtable_lookup(&t, 0), 0, 0x1000);
	check_entry(memtable_lookup(&t, 0xfff), 0, 0x1000);
	check_entry(memtable_lookup(&t, 0x1000), 0x1000, 0x1000);
	check_sorted(&t);
	memtable_free(&t);
}
END_TEST

START_TEST(overlaps_are_refused_and_change_nothing)
{
	static const struct {
		uint64_t gpa, size;
	} bad[] = {
		{ 0x10000, 0x10000 }, /* the same range */
		{ 0x14000, 0x1000 },  /* contained */
		{ 0x10000, 0x1 },     /* contained, at the first byte */
		{ 0x1ffff, 0x1 },     /* contained, at the last byte */
		{ 0x8000, 0x20000 },  /* containing */
		{ 0x0, UINT64_MAX },  /* containing everything */
		{ 0xf000, 0x1001 },   /* over the start by one byte */
		{ 0x1ffff, 0x1000 },  /* over the end by one byte */
		{ 0x10000, 0x20000 }, /* same start, longer */
		{ 0x8000, 0x18000 },  /* same end, earlier start */
	};
	struct memtable t;
	const struct memtable_entry *e;

	memtable_init(&t);
	ck_assert_int_eq(insert(&t, 0x10000, 0x10000), 0);
	e = memtable_lookup(&t, 0x10000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(insert(&t, bad[i].gpa, bad[i].size) == -EEXIST,
			      "[%#llx, +%#llx) was not refused", (unsigned long long)bad[i].gpa,
			      (unsigned long long)bad[i].size);
		ck_assert_uint_eq(t.n, 1);
		ck_assert_ptr_null(memtable_lookup(&t, 0xffff));
		ck_assert_ptr_eq(memtable_lookup(&t, 0x10000), e);
		ck_assert_ptr_eq(memtable_lookup(&t, 0x1ffff), e);
		ck_assert_ptr_null(memtable_lookup(&t, 0x20000));
		check_entry(e, 0x10000, 0x10000);
	}
	/* The neighbours either side still fit. */
	ck_assert_int_eq(insert(&t, 0xf000, 0x1000), 0);
	ck_assert_int_eq(insert(&t, 0x20000, 0x1000), 0);
	ck_assert_uint_eq(t.n, 3);
	check_sorted(&t);
	memtable_free(&t);
}
END_TEST

START_TEST(out_of_order_insertion_stays_sorted)
{
	size_t *order = shuffled(1000, 42);
	struct memtable t;

	memtable_init(&t);
	for (size_t i = 0; i < 1000; i++) {
		/* Varying sizes and gaps: region k is [k * 64K, k * 64K + (k % 15 + 1) * 4K). */
		uint64_t k = order[i];

		ck_assert_int_eq(insert(&t, k * 0x10000, (k % 15 + 1) * PAGE), 0);
	}
	ck_assert_uint_eq(t.n, 1000);
	check_sorted(&t);
	for (size_t k = 0; k < 1000; k++) {
		ck_assert_uint_eq(t.v[k].gpa, k * 0x10000);
		check_entry(&t.v[k], k * 0x10000, (k % 15 + 1) * PAGE);
	}
	memtable_free(&t);
	free(order);
}
END_TEST

START_TEST(remove_takes_only_exact_matches)
{
	struct memtable t;
	struct memtable_entry out;

	memtable_init(&t);
	ck_assert_int_eq(insert(&t, 0x10000, 0x4000), 0);
	ck_assert_int_eq(insert(&t, 0x20000, 0x4000), 0);
	ck_assert_int_eq(insert(&t, 0x30000, 0x4000), 0);

	/* Partial matches: nothing removed. */
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0x1000, &out), -EINVAL);
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0x8000, &out), -EINVAL);
	ck_assert_int_eq(memtable_remove(&t, 0x21000, 0x1000, &out), -EINVAL);
	ck_assert_int_eq(memtable_remove(&t, 0x21000, 0x3000, &out), -EINVAL);
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0, &out), -EINVAL);
	ck_assert_int_eq(memtable_remove(&t, 0x24000, 0x4000, &out), -ENOENT);
	ck_assert_int_eq(memtable_remove(&t, 0x1f000, 0x5000, &out), -ENOENT);
	ck_assert_uint_eq(t.n, 3);
	check_entry(memtable_lookup(&t, 0x20000), 0x20000, 0x4000);
	check_entry(memtable_lookup(&t, 0x23fff), 0x20000, 0x4000);

	/* Exact match from the middle: *out gets the entry, order is kept. */
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0x4000, &out), 0);
	check_entry(&out, 0x20000, 0x4000);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_ptr_null(memtable_lookup(&t, 0x20000));
	ck_assert_ptr_null(memtable_lookup(&t, 0x23fff));
	check_entry(&t.v[0], 0x10000, 0x4000);
	check_entry(&t.v[1], 0x30000, 0x4000);
	check_entry(memtable_lookup(&t, 0x10000), 0x10000, 0x4000);
	check_entry(memtable_lookup(&t, 0x33fff), 0x30000, 0x4000);
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0x4000, &out), -ENOENT);

	/* The hole takes a new region, even a different shape. */
	ck_assert_int_eq(insert(&t, 0x20000, 0x10000), 0);
	ck_assert_uint_eq(t.n, 3);
	check_sorted(&t);
	check_entry(memtable_lookup(&t, 0x2ffff), 0x20000, 0x10000);
	ck_assert_int_eq(memtable_remove(&t, 0x20000, 0x10000, NULL), 0);
	ck_assert_int_eq(insert(&t, 0x20000, 0x4000), 0);
	check_entry(memtable_lookup(&t, 0x20000), 0x20000, 0x4000);

	/* First and last. */
	ck_assert_int_eq(memtable_remove(&t, 0x10000, 0x4000, NULL), 0);
	ck_assert_int_eq(memtable_remove(&t, 0x30000, 0x4000, NULL), 0);
	ck_assert_uint_eq(t.n, 1);
	check_entry(&t.v[0], 0x20000, 0x4000);
	memtable_free(&t);
}
END_TEST

START_TEST(find_overlap_returns_the_lowest)
{
	struct memtable t;
	const struct memtable_entry *e;

	memtable_init(&t);
	ck_assert_int_eq(insert(&t, 0x10000, 0x1000), 0);
	ck_assert_int_eq(insert(&t, 0x12000, 0x1000), 0);
	ck_assert_int_eq(insert(&t, 0x14000, 0x1000), 0);

	/* Spanning all three, from before the first or from inside it. */
	e = memtable_find_overlap(&t, 0x8000, 0x20000);
	check_entry(e, 0x10000, 0x1000);
	ck_assert(points_into(&t, e));
	check_entry(memtable_find_overlap(&t, 0x10fff, 0x10000), 0x10000, 0x1000);
	/* Starting in a gap: the next one up. */
	check_entry(memtable_find_overlap(&t, 0x11000, 0x4000), 0x12000, 0x1000);
	check_entry(memtable_find_overlap(&t, 0x11fff, 2), 0x12000, 0x1000);
	check_entry(memtable_find_overlap(&t, 0x12fff, 0x10000), 0x12000, 0x1000);
	check_entry(memtable_find_overlap(&t, 0x0, UINT64_MAX), 0x10000, 0x1000);
	check_entry(memtable_find_overlap(&t, 0x14fff, UINT64_MAX - 0x14fff), 0x14000, 0x1000);

	/* Gaps and edges. */
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x11000, 0x1000));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x13000, 0x1000));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x0, 0x10000));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x15000, UINT64_MAX - 0x14fff));

	/* Size 0 overlaps nothing, even inside an entry; nor does a wrapping range. */
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x10000, 0));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x12800, 0));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0, 0));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0x10000, UINT64_MAX));
	memtable_free(&t);
}
END_TEST

START_TEST(ten_thousand_regions)
{
	size_t *order = shuffled(NMANY, 12345);
	struct memtable t;

	memtable_init(&t);
	/* Region k: [0x100000 + k * 8K, + 4K), a 4K gap after each. */
	for (size_t i = 0; i < NMANY; i++) {
		uint64_t gpa = 0x100000 + order[i] * 2 * PAGE;

		ck_assert_int_eq(insert(&t, gpa, PAGE), 0);
	}
	ck_assert_uint_eq(t.n, NMANY);
	check_sorted(&t);
	ck_assert_ptr_null(memtable_lookup(&t, 0));
	ck_assert_ptr_null(memtable_lookup(&t, 0xfffff));
	for (uint64_t k = 0; k < NMANY; k++) {
		uint64_t gpa = 0x100000 + k * 2 * PAGE;
		const struct memtable_entry *e = memtable_lookup(&t, gpa);

		check_entry(e, gpa, PAGE);
		ck_assert(points_into(&t, e));
		ck_assert_ptr_eq(memtable_lookup(&t, gpa + PAGE - 1), e);
		ck_assert_ptr_null(memtable_lookup(&t, gpa + PAGE));
		ck_assert_ptr_null(memtable_lookup(&t, gpa + 2 * PAGE - 1));
	}

	/* Remove every other region, in the same shuffled order. */
	for (size_t i = 0; i < NMANY; i++) {
		struct memtable_entry out;
		uint64_t gpa = 0x100000 + order[i] * 2 * PAGE;

		if (order[i] % 2)
			continue;
		ck_assert_int_eq(memtable_remove(&t, gpa, PAGE, &out), 0);
		check_entry(&out, gpa, PAGE);
	}
	ck_assert_uint_eq(t.n, NMANY / 2);
	check_sorted(&t);
	for (uint64_t k = 0; k < NMANY; k++) {
		uint64_t gpa = 0x100000 + k * 2 * PAGE;
		const struct memtable_entry *e = memtable_lookup(&t, gpa);

		if (k % 2) {
			check_entry(e, gpa, PAGE);
			ck_assert_ptr_eq(memtable_lookup(&t, gpa + PAGE - 1), e);
		} else {
			ck_assert_ptr_null(e);
			ck_assert_ptr_null(memtable_lookup(&t, gpa + PAGE - 1));
		}
		ck_assert_ptr_null(memtable_lookup(&t, gpa + PAGE));
	}
	memtable_free(&t);
	ck_assert_uint_eq(t.n, 0);
	ck_assert_ptr_null(memtable_lookup(&t, 0x100000 + 2 * PAGE));
	free(order);
}
END_TEST

START_TEST(lookup_points_into_the_table_with_all_fields)
{
	struct memtable t;

	memtable_init(&t);
	for (uint64_t k = 0; k < 40; k++)
		ck_assert_int_eq(insert(&t, (39 - k) * 0x3000, 0x2000), 0);
	for (uint64_t k = 0; k < 40; k++) {
		const struct memtable_entry *e = memtable_lookup(&t, k * 0x3000 + 0x1abc);

		check_entry(e, k * 0x3000, 0x2000);
		ck_assert(points_into(&t, e));
		ck_assert_ptr_eq(e, &t.v[k]);
		ck_assert_ptr_eq(memtable_find_overlap(&t, k * 0x3000 + 0x1fff, 0x1000), e);
	}
	/* The fields really differ between entries, so the checks above mean something. */
	ck_assert_ptr_ne(t.v[0].host, t.v[1].host);
	ck_assert_uint_ne(t.v[0].dev, t.v[1].dev);
	ck_assert_uint_ne(t.v[0].ino, t.v[1].ino);
	ck_assert_uint_ne(t.v[0].fd_offset, t.v[1].fd_offset);
	ck_assert_int_ne(t.v[0].read_only, t.v[1].read_only);
	memtable_free(&t);
}
END_TEST

START_TEST(free_leaves_an_empty_usable_table)
{
	struct memtable t;

	memtable_init(&t);
	for (uint64_t k = 0; k < 100; k++)
		ck_assert_int_eq(insert(&t, k * 2 * PAGE, PAGE), 0);
	memtable_free(&t);
	ck_assert_uint_eq(t.n, 0);
	ck_assert_uint_eq(t.cap, 0);
	ck_assert_ptr_null(t.v);
	ck_assert_ptr_null(memtable_lookup(&t, 0));
	ck_assert_ptr_null(memtable_find_overlap(&t, 0, UINT64_MAX));
	ck_assert_int_eq(memtable_remove(&t, 0, PAGE, NULL), -ENOENT);

	ck_assert_int_eq(insert(&t, 0, PAGE), 0);
	ck_assert_int_eq(insert(&t, 2 * PAGE, PAGE), 0);
	ck_assert_uint_eq(t.n, 2);
	check_entry(memtable_lookup(&t, PAGE - 1), 0, PAGE);
	ck_assert_ptr_null(memtable_lookup(&t, PAGE));
	memtable_free(&t);
	/* Twice is harmless. */
	memtable_free(&t);
	ck_assert_uint_eq(t.n, 0);
}
END_TEST

static Suite *memtable_suite(void)
{
	Suite *s = suite_create("memtable");
	TCase *tc = tcase_create("basic");

	tcase_add_test(tc, empty_table_finds_nothing);
	tcase_add_test(tc, insert_refuses_empty_and_wrapping_ranges);
	tcase_add_test(tc, adjacent_regions_are_both_accepted);
	tcase_add_test(tc, overlaps_are_refused_and_change_nothing);
	tcase_add_test(tc, remove_takes_only_exact_matches);
	tcase_add_test(tc, find_overlap_returns_the_lowest);
	tcase_add_test(tc, lookup_points_into_the_table_with_all_fields);
	tcase_add_test(tc, free_leaves_an_empty_usable_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("many");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, out_of_order_insertion_stays_sorted);
	tcase_add_test(tc, ten_thousand_regions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(memtable_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
