/*
 * The memory table of one proxy connection: each region mmapped once by the
 * remote, told to the backend once (dma_map/dma_unmap, e.g. IOMMU mappings),
 * looked up in O(log n) by device models through bounds-checked accessors.
 * Changes are incremental and atomic: a change that fails leaves the table,
 * the mappings and the backend exactly as they were.
 */
#ifndef MPDEV_DMA_H
#define MPDEV_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend.h"
#include "dirty.h"
#include "error.h"
#include "guest_mem.h"
#include "memtable.h"

struct dma_stats {
	uint64_t mmaps, munmaps;	       /* the remote's own mappings */
	uint64_t backend_maps, backend_unmaps; /* dma_map/dma_unmap calls */
	uint64_t reads, writes;		       /* accessor calls that succeeded */
	uint64_t bytes_read, bytes_written;
	uint64_t faults; /* accessor calls refused */
};

struct dma_table {
	struct memtable map;
	struct backend *backend; /* may be NULL: nothing beyond the remote's mappings */
	size_t max_regions;
	struct dma_stats stats; /* this table's calls; gm->stats says which were real */
	struct guest_mem *gm;	/* where mappings live: own, or the VM's (dma_table_share) */
	struct guest_mem own;
	/* Pages dma_write() wrote, while the VMM asks (dirty.h); by guest-physical address. */
	struct dirty_tracker dirty;
};

/* A region as the proxy describes it; fd stays owned by the caller. */
struct dma_new_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t fd_offset;
	bool read_only;
	int fd;
};

void dma_table_init(struct dma_table *t, struct backend *backend, size_t max_regions);
/*
 * Takes this (empty) table's mappings from gm, the VM's guest memory that
 * every device of the VM shares; NULL: back to the table's own.
 */
void dma_table_share(struct dma_table *t, struct guest_mem *gm);
/* Drops every region: backend unmaps, then munmaps; and stops dirty tracking. */
void dma_table_clear(struct dma_table *t);

/*
 * Adds one region: validates it (alignment, overlap -EEXIST, count -ENOSPC,
 * the fd as dma_fd_check), maps exactly it, tells the backend.
 */
int dma_table_add(struct dma_table *t, const struct dma_new_region *r, struct mpdev_error *err);

/* Removes the region that is exactly [gpa, gpa + size). */
int dma_table_remove(struct dma_table *t, uint64_t gpa, uint64_t size, struct mpdev_error *err);

/*
 * Replaces the whole table with v[0..n): regions that are unchanged (same
 * range, offset, access and backing file) stay mapped; only the difference
 * is unmapped and mapped.
 */
int dma_table_set(struct dma_table *t, const struct dma_new_region *v, size_t n,
		  struct mpdev_error *err);

/*
 * Device-model access to guest memory. The whole range must be in the table
 * (it may span adjacent regions) and, for a write, writable; otherwise
 * nothing is copied: -EFAULT (not mapped) or -EACCES (read-only). A write
 * that succeeded marks its pages dirty; a refused one marks nothing.
 */
int dma_read(struct dma_table *t, uint64_t gpa, void *buf, size_t len, struct mpdev_error *err);
int dma_write(struct dma_table *t, uint64_t gpa, const void *buf, size_t len,
	      struct mpdev_error *err);

/*
 * Zero copy (backend_host.dma_iov): the remote's addresses of [gpa, gpa +
 * len), one iovec per region the range spans, into iov[0..*n). The same
 * checks as dma_read/dma_write (-EFAULT, -EACCES), and -E2BIG for more than
 * max regions; a refused range fills nothing (*n = 0). write: the caller
 * will write there, so the pages are marked dirty now (a later write through
 * the iovecs is not seen). The addresses are valid until the backend's
 * dma_quiesce, which comes before any region goes.
 */
int dma_iov(struct dma_table *t, uint64_t gpa, uint64_t len, bool write, struct iovec *iov,
	    unsigned max, unsigned *n, struct mpdev_error *err);

#endif
