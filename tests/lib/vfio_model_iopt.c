/*
 * The model's io_pagetable: the areas of an IOAS and its reserved ranges,
 * the holes between them, FIXED_IOVA checks and IOVA allocation, and the
 * pinned pages behind the areas with their memlock budget. Mirrors
 * drivers/iommu/iommufd/io_pagetable.c (iopt_*) and the pinning and
 * accounting of drivers/iommu/iommufd/pages.c.
 */
#include "vfio_model_internal.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Whether [addr, addr + len) is mapped in this process, as pinning needs (else EFAULT). */
bool vfm_user_mapped(uint64_t addr, uint64_t len)
{
	long sys_pg = sysconf(_SC_PAGESIZE);
	unsigned char vec[256];
	uint64_t a = align_down(addr, (uint64_t)sys_pg), end = addr + len;

	while (a < end) {
		uint64_t chunk = end - a;

		if (chunk > sizeof(vec) * (uint64_t)sys_pg)
			chunk = sizeof(vec) * (uint64_t)sys_pg;
		if (mincore((void *)(uintptr_t)a, chunk, vec) != 0)
			return false;
		a += chunk;
	}
	return true;
}

/* ---- pinned pages and the memlock budget [pages] ---- */

/* Pages are pinned while an area using them is in an IOAS with a domain [iopt: fill_domains]. */
static bool pages_wanted(const struct vfio_model *m, const struct pages *p)
{
	for (int c = 0; c < MAX_CTX; c++) {
		if (!m->ctx[c])
			continue;
		for (int i = 0; i < MAX_OBJS; i++) {
			const struct obj *o = m->ctx[c]->objs[i];

			if (!o || o->type != OBJ_IOAS || !o->ndomains)
				continue;
			for (size_t a = 0; a < o->n_areas; a++)
				if (o->areas[a].pages == p)
					return true;
		}
	}
	return false;
}

uint64_t vfm_pinned_total(const struct vfio_model *m)
{
	uint64_t n = 0;

	for (const struct pages *p = m->pages; p; p = p->next)
		if (p->pinned)
			n += p->npages;
	for (int c = 0; c < MAX_CONTAINERS; c++)
		if (m->cont[c])
			for (size_t i = 0; i < m->cont[c]->n_dmas; i++)
				n += m->cont[c]->dmas[i].npages;
	return n;
}

/*
 * Brings every pages' pinned state in line with the domains, all or nothing:
 * EFAULT if memory to pin is not mapped, ENOMEM past RLIMIT_MEMLOCK
 * [pages.c: incr_user_locked_vm]. Unpinning never fails.
 */
int vfm_pins_update(struct vfio_model *m)
{
	uint64_t add = 0;

	for (struct pages *p = m->pages; p; p = p->next)
		if (!p->pinned && pages_wanted(m, p)) {
			if (!vfm_user_mapped(p->uptr, p->npages * PG))
				return -EFAULT;
			add += p->npages;
		}
	if (add && vfm_pinned_total(m) + add > m->memlock_pages)
		return -ENOMEM;
	for (struct pages *p = m->pages; p; p = p->next)
		p->pinned = pages_wanted(m, p);
	return 0;
}

void vfm_pages_put(struct vfio_model *m, struct pages *p)
{
	if (--p->refs > 0)
		return;
	for (struct pages **pp = &m->pages; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
}

/* ---- areas and reserved ranges [iopt] ---- */

/* The first area intersecting [start, last], by IOVA, or -1. */
ssize_t vfm_area_first(const struct obj *io, uint64_t start, uint64_t last)
{
	for (size_t i = 0; i < io->n_areas; i++)
		if (overlaps(io->areas[i].iova, io->areas[i].last, start, last))
			return (ssize_t)i;
	return -1;
}

static bool resv_hit(const struct obj *io, uint64_t start, uint64_t last)
{
	for (size_t i = 0; i < io->n_resv; i++)
		if (overlaps(io->resv[i].start, io->resv[i].last, start, last))
			return true;
	return false;
}

int vfm_area_insert(struct obj *io, const struct area *a)
{
	size_t i = 0;

	if (!grow((void **)&io->areas, &io->cap_areas, io->n_areas, sizeof(*a)))
		return -ENOMEM;
	while (i < io->n_areas && io->areas[i].iova < a->iova)
		i++;
	memmove(&io->areas[i + 1], &io->areas[i], (io->n_areas - i) * sizeof(*a));
	io->areas[i] = *a;
	io->n_areas++;
	a->pages->refs++;
	return 0;
}

void vfm_area_remove(struct vfio_model *m, struct obj *io, size_t i)
{
	struct pages *p = io->areas[i].pages;

	memmove(&io->areas[i], &io->areas[i + 1], (io->n_areas - i - 1) * sizeof(io->areas[0]));
	io->n_areas--;
	vfm_pages_put(m, p);
}

/* iopt_reserve_iova(): EADDRINUSE if an area is there already. */
int vfm_resv_add(struct obj *io, uint64_t start, uint64_t last, const void *owner)
{
	if (vfm_area_first(io, start, last) >= 0)
		return -EADDRINUSE;
	if (!grow((void **)&io->resv, &io->cap_resv, io->n_resv, sizeof(io->resv[0])))
		return -ENOMEM;
	io->resv[io->n_resv++] = (struct resv){ start, last, owner };
	return 0;
}

void vfm_resv_remove_owner(struct obj *io, const void *owner)
{
	size_t j = 0;

	for (size_t i = 0; i < io->n_resv; i++)
		if (io->resv[i].owner != owner)
			io->resv[j++] = io->resv[i];
	io->n_resv = j;
}

static int cmp_resv(const void *a, const void *b)
{
	const struct resv *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The holes between used ranges (reserved, plus areas when with_areas) within
 * [lo, hi], in order; returns how many, writing at most max.
 */
size_t vfm_holes(const struct obj *io, bool with_areas, uint64_t lo, uint64_t hi,
		 struct iommu_iova_range *out, size_t max)
{
	size_t n = io->n_resv + (with_areas ? io->n_areas : 0), k = 0;
	struct resv *u = calloc(n ? n : 1, sizeof(*u));
	uint64_t cur = lo;
	bool done = false;

	if (!u)
		return 0;
	if (io->n_resv)
		memcpy(u, io->resv, io->n_resv * sizeof(*u));
	if (with_areas)
		for (size_t i = 0; i < io->n_areas; i++)
			u[io->n_resv + i] =
				(struct resv){ io->areas[i].iova, io->areas[i].last, NULL };
	qsort(u, n, sizeof(*u), cmp_resv);
	for (size_t i = 0; i < n && !done; i++) {
		if (u[i].last < cur)
			continue;
		if (u[i].start > hi)
			break;
		if (u[i].start > cur) {
			if (k < max)
				out[k] = (struct iommu_iova_range){ cur, u[i].start - 1 };
			k++;
		}
		if (u[i].last >= hi)
			done = true;
		else
			cur = u[i].last + 1;
	}
	if (!done) {
		if (k < max)
			out[k] = (struct iommu_iova_range){ cur, hi };
		k++;
	}
	free(u);
	return k;
}

void vfm_ioas_unmap_all(struct vfio_model *m, struct obj *io)
{
	while (io->n_areas)
		vfm_area_remove(m, io, io->n_areas - 1);
}

/* iopt_check_iova() for a FIXED_IOVA map or copy. */
int vfm_check_iova(const struct obj *io, uint64_t iova, uint64_t length)
{
	if (iova & (io->align - 1))
		return -EINVAL;
	if (iova + (length - 1) < iova)
		return -EOVERFLOW;
	if (resv_hit(io, iova, iova + length - 1))
		return -EINVAL;
	if (vfm_area_first(io, iova, iova + length - 1) >= 0)
		return -EEXIST;
	return 0;
}

/* iopt_alloc_iova(): first hole that fits, aligned like the user pointer. */
int vfm_alloc_iova(const struct obj *io, uint64_t uptr, uint64_t length, uint64_t *iova)
{
	struct iommu_iova_range h[64];
	uint64_t align = 1, page_off = uptr % PG;
	size_t n;

	if (length == 0 || length >= UINT64_MAX / 2)
		return -EOVERFLOW;
	while (align < length)
		align <<= 1;
	if (uptr && (1ull << __builtin_ctzll(uptr)) < align)
		align = 1ull << __builtin_ctzll(uptr);
	if (align < io->align)
		return -EINVAL;
	n = vfm_holes(io, true, PG, UINT64_MAX - PG, h, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		uint64_t s = ((h[i].start + align - 1) & ~(align - 1)) | page_off;

		if (s >= h[i].start && s <= h[i].last && h[i].last - s >= length - 1) {
			*iova = s;
			return 0;
		}
	}
	return -ENOSPC;
}
