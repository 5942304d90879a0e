/*
 * The guest memory of one VM, shared by every device a remote serves for it.
 * Each device's connection sends the VM's memory table and keeps its own
 * dma_table; behind them, a region that several tables describe identically
 * (same guest range, backing file, offset and access) is mmapped once and
 * mapped in the IOMMU once, and stays until the last table lets go. That is
 * what makes N devices of one VM pin its RAM once instead of N times.
 *
 * The two halves are counted apart because dma_table changes them apart
 * (all new mmaps first, then IOMMU unmaps of what goes, then IOMMU maps of
 * what comes) and rolls each back on its own.
 */
#ifndef MPDEV_GUEST_MEM_H
#define MPDEV_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "memtable.h"

struct guest_mem_region {
	struct memtable_entry e; /* e.host: the one mapping every table uses */
	unsigned host_refs;	 /* tables holding the mmap */
	unsigned iommu_refs;	 /* tables holding the IOMMU mapping */
};

struct guest_mem_stats {
	uint64_t mmaps, munmaps;	   /* real ones */
	uint64_t iommu_maps, iommu_unmaps; /* real ones (backend dma_map/dma_unmap) */
	uint64_t shared_mmaps;		   /* a table reused an existing mmap */
	uint64_t shared_iommu_maps;	   /* a table reused an existing IOMMU mapping */
};

struct guest_mem {
	struct guest_mem_region *v;
	size_t n, cap;
	struct guest_mem_stats stats;
};

void guest_mem_init(struct guest_mem *gm);
/* Every table must have let go; anything left is unmapped with a warning. */
void guest_mem_destroy(struct guest_mem *gm);

/*
 * The remote's mapping of e (fd backs it): an identical region's mapping if
 * one exists, else a new mmap. Sets e->host.
 */
int guest_mem_host_get(struct guest_mem *gm, struct memtable_entry *e, int fd,
		       struct mpdev_error *err);
/* Drops one table's hold on e's mapping; the last hold munmaps. Clears e->host. */
void guest_mem_host_put(struct guest_mem *gm, struct memtable_entry *e);

/*
 * The IOMMU mapping of e (already host_get'd) through b's dma_map, made only
 * by the first table to ask. -EBUSY when another table of the VM holds a
 * different mapping overlapping e: the devices share one IOMMU address
 * space, so they must agree on the table.
 */
int guest_mem_iommu_get(struct guest_mem *gm, struct backend *b, const struct memtable_entry *e,
			struct mpdev_error *err);
/* Drops one table's hold; the last hold unmaps through b's dma_unmap. */
int guest_mem_iommu_put(struct guest_mem *gm, struct backend *b, const struct memtable_entry *e,
			struct mpdev_error *err);

#endif
