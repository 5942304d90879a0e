/*
 * Dirty tracking of what a device model writes to guest memory: one tracker
 * per memory table (struct dma_table), fed by dma_write() on success only.
 *
 * Tracking is by guest-physical range, independent of the memory table, as
 * VFIO's is: a started range need not be mapped, regions may come and go
 * under it, and a write outside every started range marks nothing. A
 * bitmap per range, one bit per page (bit n % 8 of byte n / 8 for page n:
 * VFIO's layout); dirty_report() copies and clears, so a page written
 * between two reports is reported exactly once.
 *
 * Decisions: starting while started is EBUSY (stop first: replacing would
 * silently drop bits the VMM has not read); stopping while stopped is a
 * no-op, so that cleanup never fails; dma_table_clear() (the proxy went
 * away) stops tracking.
 */
#ifndef MPDEV_DIRTY_H
#define MPDEV_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"

#define DIRTY_MIN_PAGE_SIZE 4096u
/* As many ranges as the memory table has regions: one per region is the usual request. */
#define DIRTY_MAX_RANGES 1024u
/* All bitmaps together: 2 TiB of guest memory at 4 KiB pages. */
#define DIRTY_MAX_BITMAP_BYTES (UINT64_C(64) << 20)

struct dirty_range {
	uint64_t iova, size;
	uint8_t *bits; /* (size / page_size + 7) / 8 bytes */
};

struct dirty_stats {
	uint64_t pages_marked; /* clean pages that became dirty */
	uint64_t reports;      /* dirty_report() calls that succeeded */
};

struct dirty_tracker {
	bool active;
	unsigned shift; /* log2 of page_size */
	uint64_t page_size;
	struct dirty_range *v; /* sorted by iova, disjoint */
	size_t n;
	struct dirty_stats stats;
};

void dirty_init(struct dirty_tracker *d);

/*
 * Starts tracking ranges r[0..n) at page_size (a power of two of at least
 * DIRTY_MIN_PAGE_SIZE; each range non-empty, aligned to it, not wrapping,
 * not overlapping another): EINVAL for a bad shape, ENOSPC for more than
 * DIRTY_MAX_RANGES, E2BIG for bitmaps beyond DIRTY_MAX_BITMAP_BYTES, EBUSY
 * when already started. Every page starts clean.
 */
int dirty_start(struct dirty_tracker *d, const struct backend_dirty_range *r, size_t n,
		uint64_t page_size, struct mpdev_error *err);

/* Frees the bitmaps; a no-op when not started. */
void dirty_stop(struct dirty_tracker *d);

/* Marks the pages [gpa, gpa + len) touches (len > 0, not wrapping) in every range. */
void dirty_mark(struct dirty_tracker *d, uint64_t gpa, uint64_t len);

/* The DMA path's hook: one predictable branch when tracking is off. */
static inline void dirty_note_write(struct dirty_tracker *d, uint64_t gpa, uint64_t len)
{
	if (__builtin_expect(d->active, 0))
		dirty_mark(d, gpa, len);
}

/* Bytes of a bitmap of pages pages. */
static inline uint64_t dirty_bitmap_bytes(uint64_t pages)
{
	return pages / 8 + (pages % 8 != 0);
}

/*
 * Copies the bits of [iova, iova + size) into bitmap (at least
 * dirty_bitmap_bytes(size / page_size) bytes, len; bits past the last page
 * are 0) and clears them. The range must be non-empty, aligned to the
 * started page_size (which page_size must equal) and lie within one started
 * range: EINVAL otherwise, and also when tracking is not started.
 */
int dirty_report(struct dirty_tracker *d, uint64_t iova, uint64_t size, uint64_t page_size,
		 uint8_t *bitmap, size_t len, struct mpdev_error *err);

#endif
