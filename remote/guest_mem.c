#include "guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

#define COMP "dma"

void guest_mem_init(struct guest_mem *gm)
{
	memset(gm, 0, sizeof(*gm));
}

void guest_mem_destroy(struct guest_mem *gm)
{
	for (size_t i = 0; i < gm->n; i++) {
		struct guest_mem_region *r = &gm->v[i];

		log_warn(COMP, "region [0x%llx, 0x%llx) still held at exit (%u mmap, %u IOMMU)",
			 (unsigned long long)r->e.gpa, (unsigned long long)(r->e.gpa + r->e.size),
			 r->host_refs, r->iommu_refs);
		munmap(r->e.host, r->e.size);
	}
	free(gm->v);
	memset(gm, 0, sizeof(*gm));
}

static struct guest_mem_region *find(struct guest_mem *gm, const struct memtable_entry *e)
{
	for (size_t i = 0; i < gm->n; i++)
		if (memtable_entry_same(&gm->v[i].e, e))
			return &gm->v[i];
	return NULL;
}

static void drop(struct guest_mem *gm, struct guest_mem_region *r)
{
	size_t i = (size_t)(r - gm->v);

	memmove(&gm->v[i], &gm->v[i + 1], (gm->n - i - 1) * sizeof(*gm->v));
	gm->n--;
}

int guest_mem_host_get(struct guest_mem *gm, struct memtable_entry *e, int fd,
		       struct mpdev_error *err)
{
	struct guest_mem_region *r = find(gm, e);
	int prot = PROT_READ | (e->read_only ? 0 : PROT_WRITE);
	void *p;

	if (r) {
		r->host_refs++;
		gm->stats.shared_mmaps++;
		e->host = r->e.host;
		return 0;
	}
	if (gm->n == gm->cap) {
		size_t cap = gm->cap ? 2 * gm->cap : 16;
		struct guest_mem_region *v = realloc(gm->v, cap * sizeof(*v));

		if (!v)
			return mpdev_error_set(err, ENOMEM, "out of memory");
		gm->v = v;
		gm->cap = cap;
	}
	p = mmap(NULL, e->size, prot, MAP_SHARED, fd, (off_t)e->fd_offset);
	if (p == MAP_FAILED)
		return mpdev_error_set(err, errno, "mmap of region at 0x%llx: %s",
				       (unsigned long long)e->gpa, strerror(errno));
	gm->stats.mmaps++;
	e->host = p;
	r = &gm->v[gm->n++];
	r->e = *e;
	r->host_refs = 1;
	r->iommu_refs = 0;
	return 0;
}

void guest_mem_host_put(struct guest_mem *gm, struct memtable_entry *e)
{
	struct guest_mem_region *r = find(gm, e);

	if (!r || !r->host_refs) {
		log_error(COMP, "region at 0x%llx released but not held",
			  (unsigned long long)e->gpa);
		return;
	}
	e->host = NULL;
	if (--r->host_refs)
		return;
	if (r->iommu_refs)
		log_error(COMP, "region at 0x%llx unmapped while the IOMMU maps it",
			  (unsigned long long)r->e.gpa);
	munmap(r->e.host, r->e.size);
	gm->stats.munmaps++;
	drop(gm, r);
}

static bool overlaps(const struct memtable_entry *a, const struct memtable_entry *b)
{
	/* Inclusive ends: a region may end at the top of the address space. */
	return a->gpa <= b->gpa + (b->size - 1) && b->gpa <= a->gpa + (a->size - 1);
}

static bool maps_in_iommu(const struct backend *b)
{
	return b && b->ops->dma_map && b->ops->dma_unmap;
}

static struct backend_dma_region as_backend_region(const struct memtable_entry *e)
{
	return (struct backend_dma_region){
		.iova = e->gpa, .size = e->size, .vaddr = e->host, .read_only = e->read_only
	};
}

int guest_mem_iommu_get(struct guest_mem *gm, struct backend *b, const struct memtable_entry *e,
			struct mpdev_error *err)
{
	struct guest_mem_region *r;
	struct backend_dma_region br;
	int ret;

	if (!maps_in_iommu(b))
		return 0;
	r = find(gm, e);
	if (!r)
		return mpdev_error_set(err, EINVAL, "region at 0x%llx is not mapped by the remote",
				       (unsigned long long)e->gpa);
	if (r->iommu_refs) {
		r->iommu_refs++;
		gm->stats.shared_iommu_maps++;
		return 0;
	}
	for (size_t i = 0; i < gm->n; i++) {
		const struct guest_mem_region *o = &gm->v[i];

		if (o != r && o->iommu_refs && overlaps(&o->e, e))
			return mpdev_error_set(
				err, EBUSY,
				"region [0x%llx, 0x%llx) overlaps [0x%llx, 0x%llx), which another "
				"device of this VM maps differently; the devices share one IOMMU "
				"address space and must be sent the same memory table",
				(unsigned long long)e->gpa, (unsigned long long)(e->gpa + e->size),
				(unsigned long long)o->e.gpa,
				(unsigned long long)(o->e.gpa + o->e.size));
	}
	br = as_backend_region(&r->e);
	ret = b->ops->dma_map(b, &br, err);
	if (ret < 0)
		return ret;
	r->iommu_refs = 1;
	gm->stats.iommu_maps++;
	return 0;
}

int guest_mem_iommu_put(struct guest_mem *gm, struct backend *b, const struct memtable_entry *e,
			struct mpdev_error *err)
{
	struct guest_mem_region *r;
	struct backend_dma_region br;
	int ret;

	if (!maps_in_iommu(b))
		return 0;
	r = find(gm, e);
	if (!r || !r->iommu_refs)
		return mpdev_error_set(err, EINVAL, "region at 0x%llx is not in the IOMMU",
				       (unsigned long long)e->gpa);
	if (r->iommu_refs > 1) {
		r->iommu_refs--;
		return 0;
	}
	br = as_backend_region(&r->e);
	ret = b->ops->dma_unmap(b, &br, err);
	if (ret < 0)
		return ret; /* still mapped, still held */
	r->iommu_refs = 0;
	gm->stats.iommu_unmaps++;
	return 0;
}
