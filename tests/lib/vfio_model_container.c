/*
 * The legacy VFIO path: group files (status, SET/UNSET_CONTAINER,
 * GET_DEVICE_FD), the container (API version, extensions, SET_IOMMU) and
 * the type1 v2 IOMMU behind it (MAP_DMA, UNMAP_DMA, GET_INFO with its
 * capability chain, the DMA entry limit). Mirrors drivers/vfio/group.c,
 * drivers/vfio/container.c and drivers/vfio/vfio_iommu_type1.c.
 */
#include "vfio_model_internal.h"

#include <fcntl.h>
#include <string.h>

struct mgroup *vfm_group_find(struct vfio_model *m, int num)
{
	for (int i = 0; i < MAX_GROUPS; i++)
		if (m->groups[i].used && m->groups[i].num == num)
			return &m->groups[i];
	return NULL;
}

static bool driver_ok(const char *drv)
{
	return !drv[0] || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") ||
	       !strcmp(drv, "pcieport");
}

/* Viable unless a device of the group is owned by a DMA-using host driver. */
bool vfm_group_viable(const struct vfio_model *m, const struct mgroup *g)
{
	if (g->viable >= 0)
		return g->viable;
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && m->devs[i].group == g->num && !driver_ok(m->devs[i].driver))
			return false;
	return true;
}

void vfm_container_maybe_free(struct vfio_model *m, struct container *c)
{
	if (c->fd_open || c->ngroups)
		return;
	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (m->cont[i] == c)
			m->cont[i] = NULL;
	free(c->dmas);
	free(c);
}

/* The last group leaving deprivileges the container: the IOMMU and its mappings go. */
static void group_detach(struct vfio_model *m, struct mgroup *g)
{
	struct container *c = g->c;

	if (!c)
		return;
	g->c = NULL;
	if (--c->ngroups == 0) {
		c->n_dmas = 0; /* unmap_unpin_all */
		c->dirty_tracking = false;
		c->iommu = 0;
	}
	vfm_container_maybe_free(m, c);
}

/* Device files hold the group file: it is released after the last of them. */
void vfm_group_maybe_release(struct vfio_model *m, struct mgroup *g)
{
	if (!g->fd_open && !g->dev_files)
		group_detach(m, g);
}

static bool msi_isolated_ok(const struct vfio_model *m)
{
	return m->msi_isolated; /* type1 attach_group: EPERM without interrupt remapping */
}

static int group_set_container(struct vfio_model *m, struct mgroup *g, const int *arg)
{
	struct mfd *f;
	struct container *c;

	if (!arg)
		return -EFAULT;
	if (*arg < 0)
		return -EINVAL;
	f = vfm_fd_get(m, *arg);
	if (!f)
		return vfm_fd_in_range(*arg) || fcntl(*arg, F_GETFD) < 0 ? -EBADF : -EBADFD;
	if (g->c)
		return -EINVAL;
	if (f->kind != FD_CONTAINER)
		return -EBADFD; /* (binding a group to an iommufd: not modelled) */
	c = f->p;
	/* iommu_group_claim_dma_owner() */
	if (!vfm_group_viable(m, g))
		return -EBUSY;
	if (c->iommu && !msi_isolated_ok(m))
		return -EPERM;
	g->c = c;
	c->ngroups++;
	return 0;
}

int vfm_group_ioctl(struct vfio_model *m, struct mgroup *g, unsigned long req, void *arg)
{
	switch (req) {
	case VFIO_GROUP_GET_STATUS: {
		struct vfio_group_status *st = arg;

		if (!st)
			return -EFAULT;
		if (st->argsz < 8)
			return -EINVAL;
		st->flags = 0;
		if (g->c)
			st->flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
		else if (vfm_group_viable(m, g))
			st->flags = VFIO_GROUP_FLAGS_VIABLE;
		return 0;
	}
	case VFIO_GROUP_SET_CONTAINER:
		return group_set_container(m, g, arg);
	case VFIO_GROUP_UNSET_CONTAINER:
		if (!g->c)
			return -EINVAL;
		if (g->dev_files)
			return -EBUSY;
		group_detach(m, g);
		return 0;
	case VFIO_GROUP_GET_DEVICE_FD: {
		const char *name = arg;

		if (!name)
			return -EFAULT;
		for (int i = 0; i < MAX_DEVICES; i++) {
			struct mdev *d = &m->devs[i];

			if (!d->used || d->group != g->num || strcmp(d->bdf, name))
				continue;
			/* vfio_df_group_open(): the group needs a container with an IOMMU. */
			if (!g->c || !g->c->iommu)
				return -EINVAL;
			if (d->bound)
				return -EBUSY;
			return vfm_dev_open_file(m, d, g);
		}
		return -ENODEV;
	}
	default:
		return -ENOTTY;
	}
}

static ssize_t dma_find(const struct container *c, uint64_t start, uint64_t last)
{
	for (size_t i = 0; i < c->n_dmas; i++)
		if (overlaps(c->dmas[i].iova, c->dmas[i].iova + c->dmas[i].size - 1, start, last))
			return (ssize_t)i;
	return -1;
}

/* The container's usable IOVA: the domain aperture minus the MSI window. */
static const struct vfio_iova_range type1_ranges[] = {
	{ 0, VFIO_MODEL_MSI_START - 1 },
	{ VFIO_MODEL_MSI_LAST + 1, VFIO_MODEL_APERTURE_LAST },
};

static int type1_map(struct vfio_model *m, struct container *c, struct vfio_iommu_type1_dma_map *mp)
{
	const uint32_t known =
		VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
	uint64_t mask = PG - 1, last, npages;
	bool valid = false;
	size_t i = 0;

	if (mp->argsz < 32 || (mp->flags & ~known))
		return -EINVAL;
	if (mp->flags & VFIO_DMA_MAP_FLAG_VADDR)
		return -EINVAL; /* (vaddr update: not modelled) */
	if (!(mp->flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) || !mp->size ||
	    ((mp->size | mp->iova | mp->vaddr) & mask))
		return -EINVAL;
	if (mp->iova + mp->size - 1 < mp->iova || mp->vaddr + mp->size - 1 < mp->vaddr)
		return -EOVERFLOW;
	last = mp->iova + mp->size - 1;
	if (dma_find(c, mp->iova, last) >= 0)
		return -EEXIST;
	if (!c->dma_avail)
		return -ENOSPC;
	for (size_t k = 0; k < sizeof(type1_ranges) / sizeof(type1_ranges[0]); k++)
		if (mp->iova >= type1_ranges[k].start && last <= type1_ranges[k].end)
			valid = true;
	if (!valid)
		return -EINVAL; /* vfio_iommu_iova_dma_valid() */
	/* vfio_pin_map_dma(): every mapping pins its own pages. */
	npages = mp->size / PG;
	if (!vfm_user_mapped(mp->vaddr, mp->size))
		return -EFAULT;
	if (vfm_pinned_total(m) + npages > m->memlock_pages)
		return -ENOMEM;
	if (!grow((void **)&c->dmas, &c->cap_dmas, c->n_dmas, sizeof(c->dmas[0])))
		return -ENOMEM;
	while (i < c->n_dmas && c->dmas[i].iova < mp->iova)
		i++;
	memmove(&c->dmas[i + 1], &c->dmas[i], (c->n_dmas - i) * sizeof(c->dmas[0]));
	c->dmas[i] = (struct dma){ mp->iova, mp->size, mp->vaddr,
				   mp->flags & VFIO_DMA_MAP_FLAG_WRITE, npages };
	c->n_dmas++;
	c->dma_avail--;
	return 0;
}

/*
 * UNMAP_DMA (v2): the range may not split a mapping at either end (EINVAL);
 * every mapping inside goes; size comes back as the bytes unmapped, 0 when
 * there was nothing — which is not an error.
 */
static int type1_unmap(struct container *c, struct vfio_iommu_type1_dma_unmap *um)
{
	const uint32_t known = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL |
			       VFIO_DMA_UNMAP_FLAG_VADDR;
	uint64_t last, unmapped = 0;
	ssize_t i;

	if (um->argsz < 24 || (um->flags & ~known))
		return -EINVAL;
	if (um->flags & (VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR))
		return -EINVAL; /* (not modelled) */
	if (um->flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		if (um->iova || um->size)
			return -EINVAL;
		last = UINT64_MAX;
	} else {
		if (!um->size || (um->size & (PG - 1)) || (um->iova & (PG - 1)))
			return -EINVAL;
		if (um->iova + (um->size - 1) < um->iova)
			return -EOVERFLOW;
		last = um->iova + um->size - 1;
		i = dma_find(c, um->iova, um->iova);
		if (i >= 0 && c->dmas[i].iova != um->iova)
			return -EINVAL;
		i = dma_find(c, last, last);
		if (i >= 0 && c->dmas[i].iova + c->dmas[i].size - 1 != last)
			return -EINVAL;
	}
	while ((i = dma_find(c, um->iova, last)) >= 0) {
		unmapped += c->dmas[i].size;
		memmove(&c->dmas[i], &c->dmas[i + 1],
			(c->n_dmas - (size_t)i - 1) * sizeof(c->dmas[0]));
		c->n_dmas--;
		c->dma_avail++;
	}
	um->size = unmapped;
	return 0;
}

static int type1_get_info(struct container *c, struct vfio_iommu_type1_info *arg)
{
	struct vfio_iommu_type1_info info;
	uint8_t caps[256];
	size_t used = 0, last = SIZE_MAX;
	struct vfio_iommu_type1_info_cap_migration mig = {
		.header = { VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, 0 },
		.flags = 0,
		.pgsize_bitmap = PG,
		.max_dirty_bitmap_size = 256ull << 20, /* DIRTY_BITMAP_SIZE_MAX */
	};
	struct vfio_iommu_type1_info_dma_avail avail = {
		.header = { VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 0 },
		.avail = c->dma_avail,
	};
	struct {
		struct vfio_iommu_type1_info_cap_iova_range h;
		struct vfio_iova_range r[2];
	} ranges = { .h = { .header = { VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0 },
			    .nr_iovas = 2 } };

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, 16);
	if (info.argsz < 16) /* offsetofend(iova_pgsizes) */
		return -EINVAL;
	memcpy(ranges.r, type1_ranges, sizeof(type1_ranges));
	/* Order of vfio_iommu_type1_get_info(): migration, DMA avail, IOVA ranges. */
	used = vfm_cap_add(caps, used, &last, &mig, sizeof(mig));
	used = vfm_cap_add(caps, used, &last, &avail, sizeof(avail));
	used = vfm_cap_add(caps, used, &last, &ranges, sizeof(ranges));
	info.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
	info.iova_pgsizes = TYPE1_PGSIZES;
	info.cap_offset = 0;
	vfm_info_with_caps(arg, &info, sizeof(info), &info.argsz, &info.cap_offset, caps, used,
			   info.argsz < sizeof(info) ? info.argsz : sizeof(info));
	return 0;
}

/*
 * VFIO_IOMMU_DIRTY_PAGES (vfio_iommu_type1_dirty_pages): one flag at a time;
 * GET_BITMAP only at the smallest page size, aligned, while tracking, for a
 * range that splits no mapping. The model's groups are IOMMU-backed (not
 * pinned_page_dirty_scope), so every mapped page is reported dirty.
 */
static int type1_dirty_pages(struct container *c, struct vfio_iommu_type1_dirty_bitmap *arg)
{
	const uint32_t mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
			      VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	struct vfio_iommu_type1_dirty_bitmap_get *g;
	uint64_t npages, last;
	ssize_t i;

	if (!arg)
		return -EFAULT;
	if (c->iommu != VFIO_TYPE1v2_IOMMU)
		return -EACCES;
	if (arg->argsz < 8 || (arg->flags & ~mask) || !arg->flags ||
	    (arg->flags & (arg->flags - 1)))
		return -EINVAL;
	if (arg->flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
		c->dirty_tracking = true;
		return 0;
	}
	if (arg->flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
		c->dirty_tracking = false;
		return 0;
	}
	if (arg->argsz - 8 < sizeof(*g))
		return -EINVAL;
	g = (void *)arg->data;
	if (g->iova + g->size < g->iova || !g->bitmap.pgsize)
		return -EINVAL;
	npages = g->size / g->bitmap.pgsize;
	/* verify_bitmap_size() */
	if (!npages || !g->bitmap.size || g->bitmap.size > (256ull << 20) ||
	    npages > g->bitmap.size * 8)
		return -EINVAL;
	if (g->bitmap.pgsize != PG || (g->iova & (PG - 1)) || !g->size || (g->size & (PG - 1)))
		return -EINVAL;
	if (!c->dirty_tracking)
		return -EINVAL;
	last = g->iova + g->size - 1;
	i = dma_find(c, g->iova, g->iova);
	if (i >= 0 && c->dmas[i].iova != g->iova)
		return -EINVAL;
	i = dma_find(c, last, last);
	if (i >= 0 && c->dmas[i].iova + c->dmas[i].size - 1 != last)
		return -EINVAL;
	for (size_t k = 0; k < c->n_dmas; k++) {
		const struct dma *d = &c->dmas[k];

		if (d->iova < g->iova || d->iova > last)
			continue;
		for (uint64_t p = 0; p < d->size / PG; p++) {
			uint64_t bit = (d->iova - g->iova) / PG + p;

			g->bitmap.data[bit / 64] |= 1ull << (bit % 64);
		}
	}
	return 0;
}

int vfm_container_ioctl(struct vfio_model *m, struct container *c, unsigned long req, void *arg)
{
	uintptr_t v = (uintptr_t)arg;

	switch (req) {
	case VFIO_GET_API_VERSION:
		return VFIO_API_VERSION;
	case VFIO_CHECK_EXTENSION:
		/* type1's extensions: TYPE1, TYPE1v2, UNMAP_ALL (its driver answers). */
		return v == VFIO_TYPE1_IOMMU || v == VFIO_TYPE1v2_IOMMU || v == VFIO_UNMAP_ALL;
	case VFIO_SET_IOMMU:
		if (!c->ngroups || c->iommu)
			return -EINVAL;
		if (v != VFIO_TYPE1_IOMMU && v != VFIO_TYPE1v2_IOMMU)
			return -ENODEV;
		if (!msi_isolated_ok(m))
			return -EPERM;
		c->iommu = (int)v;
		c->dma_avail = m->dma_entry_limit;
		return 0;
	default:
		break;
	}
	if (!c->iommu)
		return -EINVAL; /* no driver: unrecognised ioctls fail */
	switch (req) {
	case VFIO_IOMMU_GET_INFO:
		return type1_get_info(c, arg);
	case VFIO_IOMMU_MAP_DMA:
		return arg ? type1_map(m, c, arg) : -EFAULT;
	case VFIO_IOMMU_UNMAP_DMA:
		return arg ? type1_unmap(c, arg) : -EFAULT;
	case VFIO_IOMMU_DIRTY_PAGES:
		return type1_dirty_pages(c, arg);
	default:
		return -ENOTTY;
	}
}
