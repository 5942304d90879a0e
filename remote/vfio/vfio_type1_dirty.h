/*
 * Dirty-page tracking of the type1 container (VFIO_IOMMU_DIRTY_PAGES).
 *
 * What the kernel does (drivers/vfio/vfio_iommu_type1.c): tracking covers
 * every mapping of the container, at one granule, the smallest of the
 * IOMMU's page sizes (GET_INFO's MIGRATION capability says which); a
 * bitmap may only be asked for at that granule and for a range that does
 * not split a mapping. type1 cannot see the device's writes: while an
 * IOMMU-backed group is in the container it reports every mapped page
 * dirty on every read; a container holding only mediated devices
 * (pinned_page_dirty_scope) reports the pages the vendor driver pinned.
 */
#ifndef MPDEV_VFIO_TYPE1_DIRTY_H
#define MPDEV_VFIO_TYPE1_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "vfio_sys.h"

/* One VFIO_IOMMU_MAP_DMA of the container: reports are widened to whole ones. */
struct type1_map {
	uint64_t iova, size;
};

struct type1_dirty {
	bool available; /* the MIGRATION capability is there */
	bool started;
	uint64_t pgsize;     /* the only granule the kernel accepts */
	uint64_t max_bitmap; /* bytes of bitmap per GET_BITMAP */
};

/* Reads GET_INFO's MIGRATION capability: -ENOTSUP (and why) without it. */
int type1_dirty_probe(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		      struct mpdev_error *err);
int type1_dirty_start(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		      uint64_t page_size, struct mpdev_error *err);
int type1_dirty_stop(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		     struct mpdev_error *err);
/*
 * bitmap: len bytes, bit i = page i of [iova, iova + size). The kernel
 * takes only ranges that split no mapping; a range that does is widened to
 * the mappings (maps[0..n)) it cuts, and the caller gets its own pages.
 * Reading more loses nothing: type1 marks every pinned page dirty again
 * after each read.
 */
int type1_dirty_report(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		       const struct type1_map *maps, size_t n, uint64_t iova, uint64_t size,
		       uint64_t page_size, uint8_t *bitmap, size_t len, struct mpdev_error *err);

#endif
