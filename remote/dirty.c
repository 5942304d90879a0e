#include "dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define COMP "dirty"

void dirty_init(struct dirty_tracker *d)
{
	memset(d, 0, sizeof(*d));
}

static uint64_t range_last(const struct dirty_range *r)
{
	return r->iova + (r->size - 1); /* inclusive: a range may end at the top of the space */
}

static uint64_t range_bytes(const struct dirty_tracker *d, const struct dirty_range *r)
{
	return dirty_bitmap_bytes(r->size >> d->shift);
}

static int cmp_iova(const void *pa, const void *pb)
{
	const struct dirty_range *a = pa, *b = pb;

	return a->iova < b->iova ? -1 : a->iova > b->iova;
}

static int check_page_size(uint64_t page_size, struct mpdev_error *err)
{
	if (page_size < DIRTY_MIN_PAGE_SIZE || (page_size & (page_size - 1)))
		return mpdev_error_set(err, EINVAL,
				       "page size 0x%llx: a power of two of at least 0x%x",
				       (unsigned long long)page_size, DIRTY_MIN_PAGE_SIZE);
	return 0;
}

static int check_range(const struct backend_dirty_range *r, uint64_t page_size,
		       struct mpdev_error *err)
{
	if (!r->size || ((r->iova | r->size) & (page_size - 1)))
		return mpdev_error_set(err, EINVAL,
				       "range 0x%llx size 0x%llx: both must be non-zero multiples "
				       "of the page size 0x%llx",
				       (unsigned long long)r->iova, (unsigned long long)r->size,
				       (unsigned long long)page_size);
	if (r->iova + (r->size - 1) < r->iova)
		return mpdev_error_set(err, EINVAL, "range 0x%llx size 0x%llx wraps around",
				       (unsigned long long)r->iova, (unsigned long long)r->size);
	return 0;
}

/* Sorts and checks the ranges into v (n entries, no bitmaps yet); the bitmap bytes in *total. */
static int prepare(struct dirty_tracker *d, const struct backend_dirty_range *r, size_t n,
		   struct dirty_range *v, uint64_t *total, struct mpdev_error *err)
{
	int ret;

	*total = 0;
	for (size_t i = 0; i < n; i++) {
		ret = check_range(&r[i], d->page_size, err);
		if (ret < 0)
			return ret;
		v[i].iova = r[i].iova;
		v[i].size = r[i].size;
	}
	qsort(v, n, sizeof(*v), cmp_iova);
	for (size_t i = 0; i < n; i++) {
		uint64_t bytes = range_bytes(d, &v[i]);

		if (i && range_last(&v[i - 1]) >= v[i].iova)
			return mpdev_error_set(err, EINVAL,
					       "range [0x%llx, 0x%llx] overlaps [0x%llx, 0x%llx]",
					       (unsigned long long)v[i].iova,
					       (unsigned long long)range_last(&v[i]),
					       (unsigned long long)v[i - 1].iova,
					       (unsigned long long)range_last(&v[i - 1]));
		/* Checked before anything is allocated: a peer cannot make us reserve gigabytes. */
		if (bytes > DIRTY_MAX_BITMAP_BYTES - *total)
			return mpdev_error_set(err, E2BIG,
					       "the ranges need more than %llu bytes of bitmap at "
					       "page size 0x%llx: track less, or use larger pages",
					       (unsigned long long)DIRTY_MAX_BITMAP_BYTES,
					       (unsigned long long)d->page_size);
		*total += bytes;
	}
	return 0;
}

static void free_ranges(struct dirty_range *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].bits);
	free(v);
}

int dirty_start(struct dirty_tracker *d, const struct backend_dirty_range *r, size_t n,
		uint64_t page_size, struct mpdev_error *err)
{
	struct dirty_range *v;
	uint64_t total;
	int ret;

	if (d->active)
		return mpdev_error_set(err, EBUSY,
				       "dirty tracking is already started: stop it first");
	ret = check_page_size(page_size, err);
	if (ret < 0)
		return ret;
	if (!n)
		return mpdev_error_set(err, EINVAL, "no ranges to track");
	if (n > DIRTY_MAX_RANGES)
		return mpdev_error_set(err, ENOSPC, "%zu ranges: at most %u", n, DIRTY_MAX_RANGES);
	v = calloc(n, sizeof(*v));
	if (!v)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	d->page_size = page_size;
	d->shift = (unsigned)__builtin_ctzll(page_size);
	ret = prepare(d, r, n, v, &total, err);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		v[i].bits = calloc(range_bytes(d, &v[i]), 1);
		if (!v[i].bits)
			ret = mpdev_error_set(err, ENOMEM, "out of memory for %llu bytes of bitmap",
					      (unsigned long long)total);
	}
	if (ret < 0) {
		free_ranges(v, n);
		d->page_size = 0;
		d->shift = 0;
		return ret;
	}
	d->v = v;
	d->n = n;
	d->active = true;
	log_debug(COMP, "started: %zu ranges, page size 0x%llx, %llu bytes of bitmap", n,
		  (unsigned long long)page_size, (unsigned long long)total);
	return 0;
}

void dirty_stop(struct dirty_tracker *d)
{
	if (!d->active)
		return;
	free_ranges(d->v, d->n);
	d->v = NULL;
	d->n = 0;
	d->active = false;
	d->page_size = 0;
	d->shift = 0;
}

/* The first range whose last byte is at or after gpa (d->n if none). */
static size_t first_ending_after(const struct dirty_tracker *d, uint64_t gpa)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (range_last(&d->v[mid]) < gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void dirty_mark(struct dirty_tracker *d, uint64_t gpa, uint64_t len)
{
	uint64_t last = gpa + (len - 1);

	if (!d->active || !len)
		return;
	for (size_t i = first_ending_after(d, gpa); i < d->n && d->v[i].iova <= last; i++) {
		struct dirty_range *r = &d->v[i];
		uint64_t from = gpa > r->iova ? gpa : r->iova;
		uint64_t to = last < range_last(r) ? last : range_last(r);
		uint64_t p = (from - r->iova) >> d->shift, q = (to - r->iova) >> d->shift;

		for (; p <= q; p++) {
			uint8_t m = (uint8_t)(1u << (p & 7));

			if (!(r->bits[p >> 3] & m)) {
				r->bits[p >> 3] |= m;
				d->stats.pages_marked++;
			}
		}
	}
}

/* Bits [p0, p0 + n) of src (nbytes long) into out[0..dirty_bitmap_bytes(n)), bit 0 first. */
static void extract(const uint8_t *src, uint64_t nbytes, uint64_t p0, uint64_t n, uint8_t *out)
{
	uint64_t need = dirty_bitmap_bytes(n), base = p0 >> 3;
	unsigned s = p0 & 7;

	if (!s) {
		memcpy(out, src + base, need);
	} else {
		for (uint64_t k = 0; k < need; k++) {
			uint8_t lo = (uint8_t)(src[base + k] >> s);
			uint8_t hi =
				base + k + 1 < nbytes ? (uint8_t)(src[base + k + 1] << (8 - s)) : 0;

			out[k] = lo | hi;
		}
	}
	/* Bits past the last page belong to pages outside the report, or to none. */
	if (n & 7)
		out[need - 1] &= (uint8_t)((1u << (n & 7)) - 1);
}

static void clear_bits(uint8_t *bits, uint64_t p, uint64_t n)
{
	uint64_t end = p + n;

	for (; p < end && (p & 7); p++)
		bits[p >> 3] &= (uint8_t) ~(1u << (p & 7));
	if (end - p >= 8) {
		memset(bits + (p >> 3), 0, (end - p) >> 3);
		p += (end - p) & ~(uint64_t)7;
	}
	for (; p < end; p++)
		bits[p >> 3] &= (uint8_t) ~(1u << (p & 7));
}

/* The range holding iova (its last range starting at or before it), or NULL. */
static struct dirty_range *range_at(struct dirty_tracker *d, uint64_t iova)
{
	size_t i = first_ending_after(d, iova);

	return i < d->n && d->v[i].iova <= iova ? &d->v[i] : NULL;
}

int dirty_report(struct dirty_tracker *d, uint64_t iova, uint64_t size, uint64_t page_size,
		 uint8_t *bitmap, size_t len, struct mpdev_error *err)
{
	struct dirty_range *r;
	uint64_t n;

	if (!d->active)
		return mpdev_error_set(err, EINVAL, "dirty tracking is not started");
	if (page_size != d->page_size)
		return mpdev_error_set(
			err, EINVAL, "page size 0x%llx: tracking was started with 0x%llx",
			(unsigned long long)page_size, (unsigned long long)d->page_size);
	if (!size || ((iova | size) & (page_size - 1)) || iova + (size - 1) < iova)
		return mpdev_error_set(err, EINVAL,
				       "report 0x%llx size 0x%llx: both must be non-zero multiples "
				       "of the page size 0x%llx, without wrapping",
				       (unsigned long long)iova, (unsigned long long)size,
				       (unsigned long long)page_size);
	r = range_at(d, iova);
	if (!r || iova + (size - 1) > range_last(r))
		return mpdev_error_set(
			err, EINVAL, "report [0x%llx, 0x%llx] is not within one started range",
			(unsigned long long)iova, (unsigned long long)(iova + (size - 1)));
	n = size >> d->shift;
	if (len < dirty_bitmap_bytes(n))
		return mpdev_error_set(err, EINVAL, "bitmap of %zu bytes for %llu pages", len,
				       (unsigned long long)n);
	extract(r->bits, range_bytes(d, r), (iova - r->iova) >> d->shift, n, bitmap);
	clear_bits(r->bits, (iova - r->iova) >> d->shift, n);
	d->stats.reports++;
	return 0;
}
