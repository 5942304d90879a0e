/*
 * A model of the VFIO / iommufd uAPI (see vfio_model.h). Each behaviour names
 * the kernel code it follows (paths in torvalds/linux, v6.12-era):
 *
 *   [main]    drivers/iommu/iommufd/main.c        ucmd size checks, DESTROY
 *   [ioas]    drivers/iommu/iommufd/ioas.c        IOAS ioctls
 *   [iopt]    drivers/iommu/iommufd/io_pagetable.c areas, reserved ranges
 *   [idev]    drivers/iommu/iommufd/device.c      bind, attach, auto domains
 *   [cdev]    drivers/vfio/device_cdev.c          BIND / ATTACH / DETACH
 *   [vmain]   drivers/vfio/vfio_main.c            device fd gating
 *   [group]   drivers/vfio/group.c                group fd
 *   [cont]    drivers/vfio/container.c            container fd
 *   [type1]   drivers/vfio/vfio_iommu_type1.c     MAP_DMA / UNMAP_DMA / GET_INFO
 *   [pci]     drivers/vfio/pci/vfio_pci_core.c    device info, regions, irqs
 *   [intrs]   drivers/vfio/pci/vfio_pci_intrs.c   SET_IRQS
 *   [edu]     QEMU hw/misc/edu.c                  the device's registers
 *
 * Simplifications (deliberate, stated where they matter): pinning is charged
 * per IOAS_MAP'd range as a whole (the kernel charges the pages a domain or
 * an access actually uses) and iommufd and type1 share one budget (the
 * kernel charges user->locked_vm and mm->locked_vm separately); user memory
 * is checked to be mapped (mincore) when pinned, not that it is writable;
 * IOMMU_IOAS_ALLOW_IOVAS, IOMMU_OPTION, HWPT_ALLOC and the other iommufd
 * ioctls are not modelled (ENOTTY); edu's DMA engine only records its
 * registers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vfio_model.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iommufd_uapi.h"

#define PG	       VFIO_MODEL_PAGE_SIZE
#define MAX_FDS	       256
#define MAX_DEVICES    16
#define MAX_GROUPS     16
#define MAX_CTX	       16
#define MAX_CONTAINERS 16
#define MAX_OBJS       64
#define MAX_MMAPS      32
#define EDU_IDENT      0x010000edu
#define REGION_SHIFT   40	     /* VFIO_PCI_OFFSET_SHIFT, [pci] */
#define TYPE1_PGSIZES  0x40201000ull /* 4K | 2M | 1G, VT-d with superpages */

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* iopt_pages: the user memory of one IOAS_MAP, shared by the areas COPY makes. */
struct pages {
	uint64_t uptr; /* page aligned */
	uint64_t npages;
	bool writable;
	bool pinned;
	int refs; /* areas using it */
	struct pages *next;
};

struct area {
	uint64_t iova, last;
	struct pages *pages;
	uint64_t start_byte; /* of iova within pages */
	bool write;
};

struct resv {
	uint64_t start, last;
	const void *owner;
};

enum obj_type { OBJ_IOAS = 1, OBJ_DEVICE, OBJ_HWPT };

struct obj {
	uint32_t id;
	enum obj_type type;
	/* OBJ_IOAS */
	struct area *areas; /* sorted by iova */
	size_t n_areas, cap_areas;
	struct resv *resv;
	size_t n_resv, cap_resv;
	uint64_t align; /* iopt->iova_alignment */
	int ndomains;
	int users; /* HWPTs on this IOAS */
	/* OBJ_DEVICE */
	struct mdev *dev;
	struct obj *hwpt;
	/* OBJ_HWPT (an auto domain) */
	struct obj *ioas;
	int ndevs;
};

struct ictx {
	bool fd_open;
	int dev_refs; /* bound devices hold the context [idev: iommufd_ctx_get] */
	unsigned long serial;
	struct obj *objs[MAX_OBJS]; /* id = index + 1 (xa_alloc, XA_FLAGS_ALLOC1) */
};

enum irq_type { IRQ_NONE, IRQ_INTX, IRQ_MSI };

struct mdev {
	bool used;
	char bdf[16];
	char driver[32];
	int group;
	int cdev;
	int open_count;
	struct dfile *bound; /* the cdev file bound to an iommufd */
	/* edu */
	uint32_t addr4, fact, status, irq_status;
	uint64_t dma[4];
	uint8_t config[256];
	enum irq_type irq_type;
	int holds[5][4]; /* our dup of each trigger eventfd (eventfd_ctx_fdget) */
	int unmask_hold;
	struct vfio_model_irq irqs[5];
	unsigned resets;
};

struct dfile {
	struct mdev *dev;
	struct mgroup *group; /* opened through a group */
	bool access;	      /* df->access_granted */
	struct ictx *ictx;
	struct obj *idev;
};

struct mgroup {
	bool used;
	int num;
	int viable; /* -1: from the drivers of its devices */
	bool fd_open;
	int dev_files;
	struct container *c;
};

struct dma {
	uint64_t iova, size, vaddr;
	bool write;
	uint64_t npages;
};

struct container {
	bool fd_open;
	int ngroups;
	int iommu;	  /* 0, VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU */
	struct dma *dmas; /* sorted by iova */
	size_t n_dmas, cap_dmas;
	uint32_t dma_avail;
	unsigned long serial;
};

enum fd_kind { FD_FREE, FD_IOMMUFD, FD_CONTAINER, FD_GROUP, FD_DEVICE };

struct mfd {
	enum fd_kind kind;
	void *p;
};

struct vfio_model {
	struct vfio_sys sys;
	char root[PATH_MAX / 2], sysfs[PATH_MAX], dev[PATH_MAX];
	struct mfd fds[MAX_FDS];
	struct ictx *ctx[MAX_CTX];
	struct container *cont[MAX_CONTAINERS];
	struct mdev devs[MAX_DEVICES];
	struct mgroup groups[MAX_GROUPS];
	struct pages *pages;
	int next_cdev;
	unsigned long serial;
	bool iommufd, msi_isolated;
	uint64_t memlock_pages;
	uint32_t dma_entry_limit;
	unsigned long calls, fail_at;
	int fail_err;
	bool fail_hit;
	struct {
		void *addr;
		size_t len;
	} mmaps[MAX_MMAPS];
};

static int fail(int e)
{
	errno = e;
	return -1;
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a <= bl && b <= al;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	void *p;
	size_t ncap;

	if (n < *cap)
		return true;
	ncap = *cap ? *cap * 2 : 8;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* Whether [addr, addr + len) is mapped in this process, as pinning needs (else EFAULT). */
static bool user_mapped(uint64_t addr, uint64_t len)
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

/* ------------------------------------------------------------------------ */
/* The fake sysfs tree and device nodes                                      */
/* ------------------------------------------------------------------------ */

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int touch(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static int fd_alloc(struct vfio_model *m, enum fd_kind kind, void *p)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (m->fds[i].kind == FD_FREE) {
			m->fds[i].kind = kind;
			m->fds[i].p = p;
			return VFIO_MODEL_FD_BASE + i;
		}
	return fail(EMFILE);
}

static struct mfd *fd_get(struct vfio_model *m, int fd)
{
	if (fd < VFIO_MODEL_FD_BASE || fd >= VFIO_MODEL_FD_BASE + MAX_FDS)
		return NULL;
	if (m->fds[fd - VFIO_MODEL_FD_BASE].kind == FD_FREE)
		return NULL;
	return &m->fds[fd - VFIO_MODEL_FD_BASE];
}

static bool model_fd_range(int fd)
{
	return fd >= VFIO_MODEL_FD_BASE && fd < VFIO_MODEL_FD_BASE + MAX_FDS;
}

/* ------------------------------------------------------------------------ */
/* Pinned pages and the memlock budget                                       */
/* ------------------------------------------------------------------------ */

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

static uint64_t pinned_total(const struct vfio_model *m)
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
static int pins_update(struct vfio_model *m)
{
	uint64_t add = 0;

	for (struct pages *p = m->pages; p; p = p->next)
		if (!p->pinned && pages_wanted(m, p)) {
			if (!user_mapped(p->uptr, p->npages * PG))
				return -EFAULT;
			add += p->npages;
		}
	if (add && pinned_total(m) + add > m->memlock_pages)
		return -ENOMEM;
	for (struct pages *p = m->pages; p; p = p->next)
		p->pinned = pages_wanted(m, p);
	return 0;
}

static void pages_put(struct vfio_model *m, struct pages *p)
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

/* ------------------------------------------------------------------------ */
/* iommufd: IOAS areas and reserved ranges [iopt]                            */
/* ------------------------------------------------------------------------ */

/* The first area intersecting [start, last], by IOVA, or -1. */
static ssize_t area_first(const struct obj *io, uint64_t start, uint64_t last)
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

static int area_insert(struct obj *io, const struct area *a)
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

static void area_remove(struct vfio_model *m, struct obj *io, size_t i)
{
	struct pages *p = io->areas[i].pages;

	memmove(&io->areas[i], &io->areas[i + 1], (io->n_areas - i - 1) * sizeof(io->areas[0]));
	io->n_areas--;
	pages_put(m, p);
}

/* iopt_reserve_iova(): EADDRINUSE if an area is there already. */
static int resv_add(struct obj *io, uint64_t start, uint64_t last, const void *owner)
{
	if (area_first(io, start, last) >= 0)
		return -EADDRINUSE;
	if (!grow((void **)&io->resv, &io->cap_resv, io->n_resv, sizeof(io->resv[0])))
		return -ENOMEM;
	io->resv[io->n_resv++] = (struct resv){ start, last, owner };
	return 0;
}

static void resv_remove_owner(struct obj *io, const void *owner)
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
static size_t holes(const struct obj *io, bool with_areas, uint64_t lo, uint64_t hi,
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

static void ioas_unmap_all(struct vfio_model *m, struct obj *io)
{
	while (io->n_areas)
		area_remove(m, io, io->n_areas - 1);
}

/* ------------------------------------------------------------------------ */
/* iommufd: objects and contexts [main]                                      */
/* ------------------------------------------------------------------------ */

static struct obj *obj_new(struct ictx *c, enum obj_type type)
{
	for (int i = 0; i < MAX_OBJS; i++)
		if (!c->objs[i]) {
			struct obj *o = calloc(1, sizeof(*o));

			if (!o)
				return NULL;
			o->id = (uint32_t)i + 1;
			o->type = type;
			o->align = 1; /* iopt_init_table(): no alignment without a domain */
			c->objs[i] = o;
			return o;
		}
	return NULL;
}

static struct obj *obj_get(struct ictx *c, uint32_t id, enum obj_type type)
{
	struct obj *o;

	if (id == 0 || id > MAX_OBJS)
		return NULL;
	o = c->objs[id - 1];
	if (!o || (type && o->type != type))
		return NULL;
	return o;
}

static void obj_free(struct vfio_model *m, struct ictx *c, struct obj *o)
{
	if (o->type == OBJ_IOAS)
		ioas_unmap_all(m, o);
	c->objs[o->id - 1] = NULL;
	free(o->areas);
	free(o->resv);
	free(o);
}

/* The context goes when its fd is closed and no device holds it [main: fops_release]. */
static void ctx_maybe_free(struct vfio_model *m, struct ictx *c)
{
	if (c->fd_open || c->dev_refs)
		return;
	for (int i = 0; i < MAX_OBJS; i++)
		if (c->objs[i])
			obj_free(m, c, c->objs[i]);
	for (int i = 0; i < MAX_CTX; i++)
		if (m->ctx[i] == c)
			m->ctx[i] = NULL;
	free(c);
	pins_update(m);
}

/* An auto domain goes with its last device: iopt_table_remove_domain() [iopt]. */
static void hwpt_destroy(struct vfio_model *m, struct ictx *c, struct obj *hw)
{
	struct obj *io = hw->ioas;

	resv_remove_owner(io, hw); /* the aperture reservation */
	if (--io->ndomains == 0)
		io->align = 1;
	io->users--;
	obj_free(m, c, hw);
	pins_update(m);
}

/* Detaches a device from its HWPT (its reserved regions leave the IOAS) [idev]. */
static void idev_detach(struct vfio_model *m, struct ictx *c, struct obj *idev)
{
	struct obj *hw = idev->hwpt;

	if (!hw)
		return;
	resv_remove_owner(hw->ioas, idev->dev);
	idev->hwpt = NULL;
	if (--hw->ndevs == 0)
		hwpt_destroy(m, c, hw);
}

/* ------------------------------------------------------------------------ */
/* iommufd: ioctls [main] [ioas]                                             */
/* ------------------------------------------------------------------------ */

#define IOMMU_IOAS_ALLOW_IOVAS_NR _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS)

static const struct {
	unsigned long cmd;
	uint32_t size, min_size; /* sizeof, offsetofend(last member) */
} ucmd_ops[] = {
	{ IOMMU_DESTROY, sizeof(struct iommu_destroy), 8 },
	{ IOMMU_IOAS_ALLOC, sizeof(struct iommu_ioas_alloc), 12 },
	{ IOMMU_IOAS_ALLOW_IOVAS_NR, 24, 24 },
	{ IOMMU_IOAS_COPY, sizeof(struct iommu_ioas_copy), 40 },
	{ IOMMU_IOAS_IOVA_RANGES, sizeof(struct iommu_ioas_iova_ranges), 32 },
	{ IOMMU_IOAS_MAP, sizeof(struct iommu_ioas_map), 40 },
	{ IOMMU_IOAS_UNMAP, sizeof(struct iommu_ioas_unmap), 24 },
};

static int ioas_destroy(struct vfio_model *m, struct ictx *c, struct iommu_destroy *cmd)
{
	struct obj *o = obj_get(c, cmd->id, 0);

	if (!o)
		return -ENOENT;
	/* iommufd_object_remove(): only the xarray may hold a reference. */
	if ((o->type == OBJ_IOAS && o->users) || o->type == OBJ_DEVICE ||
	    (o->type == OBJ_HWPT && o->ndevs))
		return -EBUSY;
	obj_free(m, c, o);
	pins_update(m);
	return 0;
}

static int ioas_alloc(struct ictx *c, struct iommu_ioas_alloc *cmd)
{
	struct obj *o;

	if (cmd->flags)
		return -EOPNOTSUPP;
	o = obj_new(c, OBJ_IOAS);
	if (!o)
		return -ENOMEM;
	cmd->out_ioas_id = o->id;
	return 0;
}

/* IOMMU_IOAS_IOVA_RANGES: the holes in the reserved ranges; EMSGSIZE after answering. */
static int ioas_iova_ranges(struct ictx *c, struct iommu_ioas_iova_ranges *cmd, bool *emsgsize)
{
	struct iommu_iova_range *user = (void *)(uintptr_t)cmd->allowed_iovas;
	struct obj *io;
	uint32_t max = cmd->num_iovas;
	size_t n;

	if (cmd->__reserved)
		return -EOPNOTSUPP;
	io = obj_get(c, cmd->ioas_id, OBJ_IOAS);
	if (!io)
		return -ENOENT;
	if (max && !user)
		return -EFAULT;
	n = holes(io, false, 0, UINT64_MAX, user, max);
	cmd->num_iovas = (uint32_t)n;
	cmd->out_iova_alignment = io->align;
	*emsgsize = n > max;
	return 0;
}

/* iopt_check_iova() for a FIXED_IOVA map or copy. */
static int check_iova(const struct obj *io, uint64_t iova, uint64_t length)
{
	if (iova & (io->align - 1))
		return -EINVAL;
	if (iova + (length - 1) < iova)
		return -EOVERFLOW;
	if (resv_hit(io, iova, iova + length - 1))
		return -EINVAL;
	if (area_first(io, iova, iova + length - 1) >= 0)
		return -EEXIST;
	return 0;
}

/* iopt_alloc_iova(): first hole that fits, aligned like the user pointer. */
static int alloc_iova(const struct obj *io, uint64_t uptr, uint64_t length, uint64_t *iova)
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
	n = holes(io, true, PG, UINT64_MAX - PG, h, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		uint64_t s = ((h[i].start + align - 1) & ~(align - 1)) | page_off;

		if (s >= h[i].start && s <= h[i].last && h[i].last - s >= length - 1) {
			*iova = s;
			return 0;
		}
	}
	return -ENOSPC;
}

static int ioas_map(struct vfio_model *m, struct ictx *c, struct iommu_ioas_map *cmd)
{
	const uint32_t known =
		IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
	struct pages *p;
	struct area a;
	struct obj *io;
	uint64_t iova = cmd->iova;
	int r;

	if ((cmd->flags & ~known) || cmd->__reserved)
		return -EOPNOTSUPP;
	if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
		return -EOVERFLOW;
	if (!(cmd->flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)))
		return -EINVAL;
	io = obj_get(c, cmd->ioas_id, OBJ_IOAS);
	if (!io)
		return -ENOENT;
	/* iopt_alloc_pages() */
	if (cmd->length == 0 || cmd->length > SIZE_MAX - PG)
		return -EINVAL;
	if (cmd->user_va + cmd->length < cmd->user_va)
		return -EOVERFLOW;
	/* iopt_alloc_area_pages() */
	if (cmd->length & (io->align - 1))
		return -EINVAL;
	if (cmd->flags & IOMMU_IOAS_MAP_FIXED_IOVA)
		r = check_iova(io, iova, cmd->length);
	else
		r = alloc_iova(io, cmd->user_va, cmd->length, &iova);
	if (r)
		return r;
	/* iopt_insert_area(): the offset into the first page must suit the alignment. */
	if ((cmd->user_va % PG) & (io->align - 1))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->uptr = align_down(cmd->user_va, PG);
	p->npages = (align_down(cmd->user_va + cmd->length - 1, PG) - p->uptr) / PG + 1;
	p->writable = cmd->flags & IOMMU_IOAS_MAP_WRITEABLE;
	p->next = m->pages;
	m->pages = p;
	a = (struct area){ iova, iova + cmd->length - 1, p, cmd->user_va - p->uptr, p->writable };
	r = area_insert(io, &a);
	if (r) {
		p->refs = 1;
		pages_put(m, p);
		return r;
	}
	/* iopt_fill_domains_pages(): pinned now if the IOAS has a domain. */
	r = pins_update(m);
	if (r) {
		area_remove(m, io, (size_t)area_first(io, iova, iova)); /* frees p */
		return r;
	}
	cmd->iova = iova;
	return 0;
}

/*
 * IOMMU_IOAS_COPY: the source range must be covered by contiguous areas (any
 * part of them: iopt_get_pages() slices), else ENOENT; the destination gets
 * new areas sharing the same pages, so nothing is pinned twice.
 */
static int ioas_copy(struct vfio_model *m, struct ictx *c, struct iommu_ioas_copy *cmd)
{
	const uint32_t known =
		IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
	struct area slices[32];
	size_t n = 0, inserted = 0;
	struct obj *src, *dst;
	uint64_t last, cur, iova = cmd->dst_iova;
	bool write = cmd->flags & IOMMU_IOAS_MAP_WRITEABLE;
	int r;

	if (cmd->flags & ~known)
		return -EOPNOTSUPP;
	if (cmd->length >= UINT64_MAX || cmd->src_iova >= UINT64_MAX || cmd->dst_iova >= UINT64_MAX)
		return -EOVERFLOW;
	if (!(cmd->flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)))
		return -EINVAL;
	src = obj_get(c, cmd->src_ioas_id, OBJ_IOAS);
	if (!src)
		return -ENOENT;
	/* iopt_get_pages() */
	if (!cmd->length)
		return -EINVAL;
	if (cmd->src_iova + (cmd->length - 1) < cmd->src_iova)
		return -EOVERFLOW;
	last = cmd->src_iova + cmd->length - 1;
	cur = cmd->src_iova;
	for (;;) {
		ssize_t i = area_first(src, cur, cur);
		const struct area *a;
		uint64_t end;

		if (i < 0 || n == 32)
			return -ENOENT;
		a = &src->areas[i];
		end = a->last < last ? a->last : last;
		slices[n++] = (struct area){ 0, end - cur, a->pages,
					     a->start_byte + (cur - a->iova), write };
		if (end == last)
			break;
		cur = end + 1;
	}
	dst = obj_get(c, cmd->dst_ioas_id, OBJ_IOAS);
	if (!dst)
		return -ENOENT;
	/* iopt_map_pages() -> iopt_alloc_area_pages() */
	if (cmd->length & (dst->align - 1))
		return -EINVAL;
	if (cmd->flags & IOMMU_IOAS_MAP_FIXED_IOVA)
		r = check_iova(dst, iova, cmd->length);
	else
		r = alloc_iova(dst, slices[0].pages->uptr + slices[0].start_byte, cmd->length,
			       &iova);
	if (r)
		return r;
	cur = iova;
	for (size_t i = 0; i < n; i++) {
		uint64_t len = slices[i].last + 1;

		/* iopt_insert_area(): a writable copy needs writable pages. */
		if (write && !slices[i].pages->writable) {
			r = -EPERM;
			break;
		}
		if ((slices[i].start_byte % PG) & (dst->align - 1)) {
			r = -EINVAL;
			break;
		}
		slices[i].iova = cur;
		slices[i].last = cur + len - 1;
		r = area_insert(dst, &slices[i]);
		if (r)
			break;
		inserted++;
		cur += len;
	}
	if (r == 0)
		r = pins_update(m);
	if (r) {
		for (size_t i = 0; i < inserted; i++)
			area_remove(m, dst,
				    (size_t)area_first(dst, slices[i].iova, slices[i].iova));
		return r;
	}
	cmd->dst_iova = iova;
	return 0;
}

/*
 * IOMMU_IOAS_UNMAP: whole areas inside the range go; an area only partly
 * inside stops the walk with ENOENT — after the areas before it (by IOVA)
 * were already unmapped [iopt: iopt_unmap_iova_range]. Nothing there: ENOENT.
 * iova 0 / length U64_MAX unmaps everything, and succeeds on an empty IOAS.
 */
static int ioas_unmap(struct vfio_model *m, struct ictx *c, struct iommu_ioas_unmap *cmd)
{
	struct obj *io = obj_get(c, cmd->ioas_id, OBJ_IOAS);
	uint64_t start = cmd->iova, last, unmapped = 0;
	bool split = false;
	ssize_t i;

	if (!io)
		return -ENOENT;
	if (cmd->iova == 0 && cmd->length == UINT64_MAX) {
		for (size_t k = 0; k < io->n_areas; k++)
			unmapped += io->areas[k].last - io->areas[k].iova + 1;
		ioas_unmap_all(m, io);
		pins_update(m);
		cmd->length = unmapped;
		return 0;
	}
	if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
		return -EOVERFLOW;
	if (!cmd->length)
		return -EINVAL;
	if (cmd->iova + (cmd->length - 1) < cmd->iova)
		return -EOVERFLOW;
	last = cmd->iova + cmd->length - 1;
	while ((i = area_first(io, start, last)) >= 0) {
		struct area *a = &io->areas[i];

		if (a->iova < start || a->last > last) {
			split = true; /* the areas already removed stay removed */
			break;
		}
		unmapped += a->last - a->iova + 1;
		area_remove(m, io, (size_t)i);
	}
	pins_update(m);
	if (split || !unmapped)
		return -ENOENT;
	cmd->length = unmapped;
	return 0;
}

static int iommufd_ioctl(struct vfio_model *m, struct ictx *c, unsigned long req, void *arg)
{
	union {
		struct iommu_destroy destroy;
		struct iommu_ioas_alloc alloc;
		struct iommu_ioas_copy copy;
		struct iommu_ioas_iova_ranges ranges;
		struct iommu_ioas_map map;
		struct iommu_ioas_unmap unmap;
		uint8_t raw[64];
	} buf;
	uint32_t user_size, size = 0, min_size = 0;
	bool emsgsize = false, found = false;
	int r;

	for (size_t i = 0; i < sizeof(ucmd_ops) / sizeof(ucmd_ops[0]); i++)
		if (ucmd_ops[i].cmd == req) {
			size = ucmd_ops[i].size;
			min_size = ucmd_ops[i].min_size;
			found = true;
		}
	if (!found)
		return fail(ENOTTY); /* other commands: not modelled (ENOIOCTLCMD -> ENOTTY) */
	if (!arg)
		return fail(EFAULT);
	/* iommufd_fops_ioctl(): size first; short: EINVAL; longer: zero tail or E2BIG. */
	memcpy(&user_size, arg, sizeof(user_size));
	if (user_size < min_size)
		return fail(EINVAL);
	for (uint32_t i = size; i < user_size; i++)
		if (((const uint8_t *)arg)[i])
			return fail(E2BIG);
	memset(&buf, 0, sizeof(buf));
	memcpy(&buf, arg, user_size < size ? user_size : size);

	switch (req) {
	case IOMMU_DESTROY:
		r = ioas_destroy(m, c, &buf.destroy);
		break;
	case IOMMU_IOAS_ALLOC:
		r = ioas_alloc(c, &buf.alloc);
		break;
	case IOMMU_IOAS_IOVA_RANGES:
		r = ioas_iova_ranges(c, &buf.ranges, &emsgsize);
		break;
	case IOMMU_IOAS_MAP:
		r = ioas_map(m, c, &buf.map);
		break;
	case IOMMU_IOAS_COPY:
		r = ioas_copy(m, c, &buf.copy);
		break;
	case IOMMU_IOAS_UNMAP:
		r = ioas_unmap(m, c, &buf.unmap);
		break;
	default:
		r = -EOPNOTSUPP; /* ALLOW_IOVAS: not modelled */
	}
	if (r)
		return fail(-r);
	/* iommufd_ucmd_respond(): writes back min(user size, struct size). */
	memcpy(arg, &buf, user_size < size ? user_size : size);
	if (emsgsize)
		return fail(EMSGSIZE);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* VFIO device cdev: bind and attach [cdev] [idev]                           */
/* ------------------------------------------------------------------------ */

static bool group_viable(const struct vfio_model *m, const struct mgroup *g);
static struct mgroup *group_find(struct vfio_model *m, int num);

static int cdev_bind(struct vfio_model *m, struct dfile *df, struct vfio_device_bind_iommufd *b)
{
	const uint32_t minsz = 16; /* offsetofend(out_devid) */
	struct mdev *d = df->dev;
	struct mgroup *g = group_find(m, d->group);
	struct mfd *f;
	struct obj *o;

	if (b->argsz < minsz || b->flags || b->iommufd < 0)
		return -EINVAL;
	/* vfio_device_block_group(): not while the group is open the legacy way. */
	if (g && (g->fd_open || g->dev_files))
		return -EBUSY;
	if (df->access)
		return -EINVAL; /* one device cannot be bound twice */
	f = fd_get(m, b->iommufd);
	if (!f)
		return model_fd_range(b->iommufd) || fcntl(b->iommufd, F_GETFD) < 0 ? -EBADF
										    : -EBADFD;
	if (f->kind != FD_IOMMUFD)
		return -EBADFD;
	/* vfio_df_open(): a cdev open is exclusive. */
	if (d->open_count)
		return -EINVAL;
	/* iommufd_device_bind(): isolated MSI, then DMA ownership of the group. */
	if (!m->msi_isolated)
		return -EPERM;
	if (g && !group_viable(m, g))
		return -EBUSY;
	o = obj_new(f->p, OBJ_DEVICE);
	if (!o)
		return -ENOMEM;
	o->dev = d;
	df->ictx = f->p;
	df->idev = o;
	df->ictx->dev_refs++;
	df->access = true;
	d->open_count++;
	d->bound = df;
	b->out_devid = o->id;
	return 0;
}

/*
 * ATTACH to an IOAS finds the IOAS's auto domain or makes one: the domain's
 * aperture and page size become reserved ranges and alignment of the IOAS,
 * existing areas get pinned into it; then the device's reserved regions (the
 * MSI window) are reserved — EADDRINUSE if an area is there. pt_id comes back
 * as the HWPT's id [idev: iommufd_device_auto_get_domain].
 */
static int cdev_attach(struct vfio_model *m, struct dfile *df,
		       struct vfio_device_attach_iommufd_pt *at)
{
	struct ictx *c = df->ictx;
	struct obj *pt, *hw = NULL, *io, *old = df->idev->hwpt;
	bool created = false;
	int r;

	if (at->argsz < 12 || at->flags)
		return -EINVAL;
	pt = obj_get(c, at->pt_id, 0);
	if (!pt)
		return -ENOENT;
	if (pt->type == OBJ_HWPT) {
		hw = pt;
	} else if (pt->type == OBJ_IOAS) {
		for (int i = 0; i < MAX_OBJS; i++)
			if (c->objs[i] && c->objs[i]->type == OBJ_HWPT && c->objs[i]->ioas == pt)
				hw = c->objs[i];
	} else {
		return -EINVAL;
	}
	if (hw && hw == old) {
		at->pt_id = hw->id;
		return 0;
	}
	io = hw ? hw->ioas : pt;
	if (!hw) {
		/* iommufd_hwpt_paging_alloc() -> iopt_table_add_domain() */
		hw = obj_new(c, OBJ_HWPT);
		if (!hw)
			return -ENOMEM;
		hw->ioas = io;
		created = true;
		if (io->align < PG) {
			for (size_t i = 0; i < io->n_areas; i++)
				if ((io->areas[i].iova | (io->areas[i].last + 1) |
				     io->areas[i].start_byte) &
				    (PG - 1)) {
					r = -EADDRINUSE;
					goto undo_hwpt;
				}
		}
		r = resv_add(io, VFIO_MODEL_APERTURE_LAST + 1, UINT64_MAX, hw);
		if (r)
			goto undo_hwpt;
		io->ndomains++;
		r = pins_update(m); /* iopt_fill_domain() */
		if (r) {
			io->ndomains--;
			goto undo_resv;
		}
		io->align = PG;
		io->users++;
	}
	/* iommufd_device_attach_reserved_iova() */
	r = resv_add(io, VFIO_MODEL_MSI_START, VFIO_MODEL_MSI_LAST, df->dev);
	if (r) {
		if (created)
			hwpt_destroy(m, c, hw);
		return r;
	}
	hw->ndevs++;
	if (old) /* iommufd_device_replace() */
		idev_detach(m, c, df->idev);
	df->idev->hwpt = hw;
	at->pt_id = hw->id;
	return 0;

undo_resv:
	resv_remove_owner(io, hw);
undo_hwpt:
	obj_free(m, c, hw);
	return r;
}

static void cdev_unbind(struct vfio_model *m, struct dfile *df)
{
	struct ictx *c = df->ictx;

	if (!df->access)
		return;
	idev_detach(m, c, df->idev);
	obj_free(m, c, df->idev);
	df->dev->bound = NULL;
	df->access = false;
	c->dev_refs--;
	ctx_maybe_free(m, c);
}

/* ------------------------------------------------------------------------ */
/* Legacy container and groups [group] [cont] [type1]                        */
/* ------------------------------------------------------------------------ */

static struct mgroup *group_find(struct vfio_model *m, int num)
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
static bool group_viable(const struct vfio_model *m, const struct mgroup *g)
{
	if (g->viable >= 0)
		return g->viable;
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && m->devs[i].group == g->num && !driver_ok(m->devs[i].driver))
			return false;
	return true;
}

static void container_maybe_free(struct vfio_model *m, struct container *c)
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
		c->iommu = 0;
	}
	container_maybe_free(m, c);
}

/* Device files hold the group file: it is released after the last of them. */
static void group_maybe_release(struct vfio_model *m, struct mgroup *g)
{
	if (!g->fd_open && !g->dev_files)
		group_detach(m, g);
}

static bool msi_isolated_ok(const struct vfio_model *m)
{
	return m->msi_isolated; /* type1 attach_group: EPERM without interrupt remapping */
}

static int dev_open_file(struct vfio_model *m, struct mdev *d, struct mgroup *g);

static int group_set_container(struct vfio_model *m, struct mgroup *g, const int *arg)
{
	struct mfd *f;
	struct container *c;

	if (!arg)
		return -EFAULT;
	if (*arg < 0)
		return -EINVAL;
	f = fd_get(m, *arg);
	if (!f)
		return model_fd_range(*arg) || fcntl(*arg, F_GETFD) < 0 ? -EBADF : -EBADFD;
	if (g->c)
		return -EINVAL;
	if (f->kind != FD_CONTAINER)
		return -EBADFD; /* (binding a group to an iommufd: not modelled) */
	c = f->p;
	/* iommu_group_claim_dma_owner() */
	if (!group_viable(m, g))
		return -EBUSY;
	if (c->iommu && !msi_isolated_ok(m))
		return -EPERM;
	g->c = c;
	c->ngroups++;
	return 0;
}

static int group_ioctl(struct vfio_model *m, struct mgroup *g, unsigned long req, void *arg)
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
		else if (group_viable(m, g))
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
			return dev_open_file(m, d, g);
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
	if (!user_mapped(mp->vaddr, mp->size))
		return -EFAULT;
	if (pinned_total(m) + npages > m->memlock_pages)
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

/* Appends one capability (8-byte aligned, as vfio_info_cap_add() does) and links it. */
static size_t cap_add(uint8_t *caps, size_t used, size_t *last_hdr, const void *cap, size_t len)
{
	size_t size = (len + 7) & ~(size_t)7;

	memset(caps + used, 0, size);
	memcpy(caps + used, cap, len);
	if (*last_hdr != SIZE_MAX)
		((struct vfio_info_cap_header *)(caps + *last_hdr))->next = (uint32_t)used;
	*last_hdr = used;
	return used + size;
}

/*
 * Writes the info struct (head bytes) and the caps behind it when argsz has
 * room; otherwise raises argsz and leaves cap_offset 0 [pci] [type1].
 */
static void info_with_caps(void *arg, void *head, size_t hsize, uint32_t *argszp,
			   uint32_t *cap_offset, uint8_t *caps, size_t caps_len, size_t copy_len)
{
	if (*argszp < hsize + caps_len) {
		*argszp = (uint32_t)(hsize + caps_len);
		*cap_offset = 0;
	} else {
		for (size_t off = 0; off < caps_len;) {
			struct vfio_info_cap_header *h = (void *)(caps + off);
			size_t next = h->next;

			if (h->next)
				h->next += (uint32_t)hsize; /* vfio_info_cap_shift() */
			if (!next)
				break;
			off = next;
		}
		memcpy((uint8_t *)arg + hsize, caps, caps_len);
		*cap_offset = (uint32_t)hsize;
	}
	memcpy(arg, head, copy_len);
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
	used = cap_add(caps, used, &last, &mig, sizeof(mig));
	used = cap_add(caps, used, &last, &avail, sizeof(avail));
	used = cap_add(caps, used, &last, &ranges, sizeof(ranges));
	info.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
	info.iova_pgsizes = TYPE1_PGSIZES;
	info.cap_offset = 0;
	info_with_caps(arg, &info, sizeof(info), &info.argsz, &info.cap_offset, caps, used,
		       info.argsz < sizeof(info) ? info.argsz : sizeof(info));
	return 0;
}

static int container_ioctl(struct vfio_model *m, struct container *c, unsigned long req, void *arg)
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
	default:
		return -ENOTTY;
	}
}

/* ------------------------------------------------------------------------ */
/* The device: edu behind vfio-pci [pci] [intrs] [edu]                       */
/* ------------------------------------------------------------------------ */

static void edu_config_init(struct mdev *d)
{
	uint8_t *c = d->config;

	memset(c, 0, sizeof(d->config));
	c[0x00] = 0x34, c[0x01] = 0x12; /* vendor 1234 */
	c[0x02] = 0xe8, c[0x03] = 0x11; /* device 11e8 */
	c[0x06] = 0x10;			/* status: capability list */
	c[0x08] = 0x10;			/* revision */
	c[0x0a] = 0xff;			/* class: PCI_CLASS_OTHERS */
	c[0x2c] = 0xf4, c[0x2d] = 0x1a; /* subsystem vendor 1af4 */
	c[0x2e] = 0x00, c[0x2f] = 0x11; /* subsystem 1100 */
	c[0x34] = 0x40;			/* capabilities */
	c[0x3d] = 0x01;			/* INTA */
	c[0x40] = 0x05, c[0x41] = 0x00; /* MSI, end of list */
	c[0x42] = 0x80;			/* 64-bit, 1 vector */
}

static void irq_release(struct mdev *d, int index)
{
	for (int i = 0; i < 4; i++) {
		if (d->holds[index][i] >= 0)
			close(d->holds[index][i]);
		d->holds[index][i] = -1;
		d->irqs[index].trigger[i] = -1;
	}
	d->irqs[index].count = 0;
	if (index == VFIO_PCI_INTX_IRQ_INDEX) {
		if (d->unmask_hold >= 0)
			close(d->unmask_hold);
		d->unmask_hold = -1;
		d->irqs[index].unmask_fd = -1;
		d->irqs[index].masked = false;
	}
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return;
}

/* INTx: automasked on each interrupt; the trigger eventfd means "asserted". */
static void intx_fire(struct mdev *d)
{
	struct vfio_model_irq *q = &d->irqs[VFIO_PCI_INTX_IRQ_INDEX];

	/* (The command register's INTx-disable bit is not modelled.) */
	if (d->irq_type != IRQ_INTX || q->masked)
		return;
	q->masked = true;
	if (d->holds[VFIO_PCI_INTX_IRQ_INDEX][0] >= 0) {
		signal_fd(d->holds[VFIO_PCI_INTX_IRQ_INDEX][0]);
		q->signals++;
	}
}

static void edu_irq(struct mdev *d, uint32_t bits, bool raise)
{
	if (raise) {
		d->irq_status |= bits;
		if (!d->irq_status)
			return;
		if (d->irq_type == IRQ_MSI) {
			if (d->holds[VFIO_PCI_MSI_IRQ_INDEX][0] >= 0) {
				signal_fd(d->holds[VFIO_PCI_MSI_IRQ_INDEX][0]);
				d->irqs[VFIO_PCI_MSI_IRQ_INDEX].signals++;
			}
		} else {
			intx_fire(d);
		}
	} else {
		d->irq_status &= ~bits;
	}
}

static uint64_t edu_read(struct mdev *d, uint64_t addr, unsigned size)
{
	if (addr < 0x80 && size != 4)
		return ~0ull; /* edu_check_range() */
	if (addr >= 0x80 && size != 4 && size != 8)
		return ~0ull;
	switch (addr) {
	case 0x00:
		return EDU_IDENT;
	case 0x04:
		return d->addr4;
	case 0x08:
		return d->fact;
	case 0x20:
		return d->status;
	case 0x24:
		return d->irq_status;
	case 0x80:
	case 0x88:
	case 0x90:
	case 0x98:
		return d->dma[(addr - 0x80) / 8];
	default:
		return ~0ull;
	}
}

static void edu_write(struct mdev *d, uint64_t addr, uint64_t val, unsigned size)
{
	if (addr < 0x80 && size != 4)
		return;
	if (addr >= 0x80 && size != 4 && size != 8)
		return;
	switch (addr) {
	case 0x04:
		d->addr4 = ~(uint32_t)val;
		break;
	case 0x08: {
		uint32_t f = 1;

		/* Computed at once (QEMU uses a thread); the IRQ follows if enabled. */
		for (uint32_t i = (uint32_t)val; i > 0; i--)
			f *= i;
		d->fact = f;
		if (d->status & 0x80)
			edu_irq(d, 0x1, true);
		break;
	}
	case 0x20:
		d->status = (d->status & ~0x80u) | ((uint32_t)val & 0x80);
		break;
	case 0x60:
		edu_irq(d, (uint32_t)val, true);
		break;
	case 0x64:
		edu_irq(d, (uint32_t)val, false);
		break;
	case 0x80:
	case 0x88:
	case 0x90:
	case 0x98:
		d->dma[(addr - 0x80) / 8] = val; /* (the DMA itself is not modelled) */
		break;
	default:
		break;
	}
}

/* vfio_pci_core_do_io_rw(): naturally aligned accesses of 8, 4, 2 or 1 bytes. */
static ssize_t bar0_rw(struct mdev *d, void *buf, size_t len, uint64_t pos, bool write)
{
	size_t done = 0;

	if (pos >= VFIO_MODEL_BAR0_SIZE)
		return -EINVAL;
	if (len > VFIO_MODEL_BAR0_SIZE - pos)
		len = VFIO_MODEL_BAR0_SIZE - pos;
	while (done < len) {
		uint64_t a = pos + done, v = 0;
		unsigned sz = 1;

		if (len - done >= 8 && !(a % 8))
			sz = 8;
		else if (len - done >= 4 && !(a % 4))
			sz = 4;
		else if (len - done >= 2 && !(a % 2))
			sz = 2;
		if (write) {
			memcpy(&v, (uint8_t *)buf + done, sz);
			edu_write(d, a, v, sz);
		} else {
			v = edu_read(d, a, sz);
			memcpy((uint8_t *)buf + done, &v, sz);
		}
		done += sz;
	}
	return (ssize_t)done;
}

/* Config space: writes reach the command register, BAR0 (sized) and the interrupt line. */
static ssize_t config_rw(struct mdev *d, void *buf, size_t len, uint64_t pos, bool write)
{
	if (pos >= sizeof(d->config))
		return -EINVAL;
	if (len > sizeof(d->config) - pos)
		len = sizeof(d->config) - pos;
	if (!write) {
		memcpy(buf, d->config + pos, len);
		return (ssize_t)len;
	}
	for (size_t i = 0; i < len; i++) {
		uint64_t a = pos + i;
		uint8_t b = ((const uint8_t *)buf)[i];

		if (a == 0x04 || a == 0x05 || a == 0x3c)
			d->config[a] = b;
		else if (a == 0x10 || a == 0x11) /* BAR0: 1 MiB, 32-bit memory */
			d->config[a] = 0;
		else if (a == 0x12)
			d->config[a] = b & 0xf0;
		else if (a == 0x13)
			d->config[a] = b;
	}
	return (ssize_t)len;
}

static int dev_get_info(struct vfio_device_info *arg)
{
	struct vfio_device_info info;

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, 16);
	if (info.argsz < 16) /* offsetofend(num_irqs) */
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	memcpy(arg, &info, 16);
	return 0;
}

/*
 * Region info: offset = index << 40. BAR0 is 1 MiB, read/write/mmap, with a
 * sparse-mmap capability (vfio-pci adds one only to a BAR holding an MSI-X
 * table; the model adds it to BAR0 so the chain is exercised). VGA: EINVAL
 * (edu is no VGA device); absent BARs and ROM: size 0, flags 0.
 */
static int dev_get_region_info(struct vfio_region_info *arg)
{
	struct vfio_region_info info;
	uint8_t caps[64];
	size_t used = 0, last = SIZE_MAX;
	struct {
		struct vfio_region_info_cap_sparse_mmap h;
		struct vfio_region_sparse_mmap_area a[1];
	} sparse = { .h = { .header = { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 }, .nr_areas = 1 },
		     .a = { { 0, VFIO_MODEL_BAR0_SIZE } } };

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, sizeof(info));
	if (info.argsz < 32) /* offsetofend(offset) */
		return -EINVAL;
	if (info.index >= VFIO_PCI_NUM_REGIONS || info.index == VFIO_PCI_VGA_REGION_INDEX)
		return -EINVAL;
	info.offset = (uint64_t)info.index << REGION_SHIFT;
	info.flags = 0;
	info.size = 0;
	info.cap_offset = 0;
	if (info.index == VFIO_PCI_CONFIG_REGION_INDEX) {
		info.size = 256;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	} else if (info.index == VFIO_PCI_BAR0_REGION_INDEX) {
		info.size = VFIO_MODEL_BAR0_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			     VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
		used = cap_add(caps, used, &last, &sparse, sizeof(sparse));
		info_with_caps(arg, &info, sizeof(info), &info.argsz, &info.cap_offset, caps, used,
			       sizeof(info));
		return 0;
	}
	memcpy(arg, &info, sizeof(info));
	return 0;
}

static uint32_t irq_count(const struct mdev *d, uint32_t index)
{
	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		return d->config[0x3d] ? 1 : 0;
	case VFIO_PCI_MSI_IRQ_INDEX:
		return 1; /* edu: msi_init(.., 1 vector, 64-bit, no masking) */
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	default:
		return 0; /* no MSI-X; ERR only on PCIe (edu is conventional PCI) */
	}
}

static int dev_get_irq_info(const struct mdev *d, struct vfio_irq_info *arg)
{
	struct vfio_irq_info info;

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, sizeof(info));
	if (info.argsz < 16 || info.index >= VFIO_PCI_NUM_IRQS ||
	    info.index == VFIO_PCI_ERR_IRQ_INDEX)
		return -EINVAL;
	info.flags = VFIO_IRQ_INFO_EVENTFD;
	info.count = irq_count(d, info.index);
	if (info.index == VFIO_PCI_INTX_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else
		info.flags |= VFIO_IRQ_INFO_NORESIZE;
	memcpy(arg, &info, 16);
	return 0;
}

/* eventfd_ctx_fdget(): EBADF if no fd, EINVAL if not an eventfd; the model keeps a dup. */
static int eventfd_hold(int fd, int *hold)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -EBADF;
	target[n] = '\0';
	if (strcmp(target, "anon_inode:[eventfd]") != 0)
		return -EINVAL;
	*hold = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return *hold < 0 ? -errno : 0;
}

static int set_trigger(struct mdev *d, uint32_t index, uint32_t slot, int32_t fd)
{
	int hold = -1, r;

	if (fd >= 0) {
		r = eventfd_hold(fd, &hold);
		if (r)
			return r;
	}
	if (d->holds[index][slot] >= 0)
		close(d->holds[index][slot]);
	d->holds[index][slot] = hold;
	d->irqs[index].trigger[slot] = fd >= 0 ? fd : -1;
	d->irqs[index].count = 0;
	for (int i = 0; i < 4; i++)
		if (d->holds[index][i] >= 0)
			d->irqs[index].count++;
	return 0;
}

static int set_irqs_intx(struct mdev *d, uint32_t flags, uint32_t start, uint32_t count,
			 const uint8_t *data)
{
	uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	uint32_t dt = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	struct vfio_model_irq *q = &d->irqs[VFIO_PCI_INTX_IRQ_INDEX];
	int32_t fd;
	int r;

	switch (action) {
	case VFIO_IRQ_SET_ACTION_MASK:
		if (d->irq_type != IRQ_INTX || start || count != 1)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_EVENTFD)
			return -ENOTTY;
		if (dt == VFIO_IRQ_SET_DATA_NONE || data[0])
			q->masked = true;
		return 0;
	case VFIO_IRQ_SET_ACTION_UNMASK:
		if (d->irq_type != IRQ_INTX || start || count != 1)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_EVENTFD) {
			int hold = -1;

			memcpy(&fd, data, sizeof(fd));
			if (fd >= 0 && (r = eventfd_hold(fd, &hold)))
				return r;
			if (d->unmask_hold >= 0)
				close(d->unmask_hold);
			d->unmask_hold = hold;
			q->unmask_fd = fd >= 0 ? fd : -1;
			return 0;
		}
		if (dt == VFIO_IRQ_SET_DATA_NONE || data[0]) {
			q->masked = false;
			if (d->irq_status) /* still asserted: fires again */
				intx_fire(d);
		}
		return 0;
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		if (d->irq_type == IRQ_INTX && !count && dt == VFIO_IRQ_SET_DATA_NONE) {
			irq_release(d, VFIO_PCI_INTX_IRQ_INDEX);
			d->irq_type = IRQ_NONE;
			return 0;
		}
		if ((d->irq_type != IRQ_INTX && d->irq_type != IRQ_NONE) || start || count != 1)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_EVENTFD) {
			memcpy(&fd, data, sizeof(fd));
			r = set_trigger(d, VFIO_PCI_INTX_IRQ_INDEX, 0, fd);
			if (r)
				return r;
			d->irq_type = IRQ_INTX;
			return 0;
		}
		if (d->irq_type != IRQ_INTX)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_NONE || data[0]) { /* loopback */
			signal_fd(d->holds[VFIO_PCI_INTX_IRQ_INDEX][0]);
			q->signals++;
		}
		return 0;
	default:
		return -EINVAL;
	}
}

static int set_irqs_msi(struct mdev *d, uint32_t index, uint32_t flags, uint32_t start,
			uint32_t count, const uint8_t *data)
{
	uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	uint32_t dt = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	enum irq_type want = index == VFIO_PCI_MSI_IRQ_INDEX ? IRQ_MSI : IRQ_NONE;

	if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
		return -ENOTTY; /* MSI masking is not exported */
	if (index != VFIO_PCI_MSI_IRQ_INDEX)
		return -EINVAL; /* MSI-X: edu has none (count 0 fails validation earlier) */
	if (d->irq_type == want && !count && dt == VFIO_IRQ_SET_DATA_NONE) {
		irq_release(d, index);
		d->irq_type = IRQ_NONE;
		return 0;
	}
	/* MSI cannot be enabled while INTx is: disable INTx first. */
	if (d->irq_type != want && d->irq_type != IRQ_NONE)
		return -EINVAL;
	if (dt == VFIO_IRQ_SET_DATA_EVENTFD) {
		for (uint32_t i = 0; i < count; i++) {
			int32_t fd;
			int r;

			memcpy(&fd, data + 4 * i, sizeof(fd));
			r = set_trigger(d, index, start + i, fd);
			if (r) {
				if (d->irq_type != want)
					irq_release(d, index);
				return r;
			}
		}
		d->irq_type = want;
		return 0;
	}
	if (d->irq_type != want)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++)
		if (dt == VFIO_IRQ_SET_DATA_NONE || data[i]) {
			signal_fd(d->holds[index][start + i]);
			d->irqs[index].signals++;
		}
	return 0;
}

/* vfio_set_irqs_validate_and_prepare(), then the per-index handlers of [intrs]. */
static int dev_set_irqs(struct mdev *d, struct vfio_irq_set *arg)
{
	struct vfio_irq_set hdr;
	uint32_t size = 0, max;
	int r;

	if (!arg)
		return -EFAULT;
	memcpy(&hdr, arg, sizeof(hdr));
	if (hdr.argsz < sizeof(hdr) || hdr.index >= VFIO_PCI_NUM_IRQS ||
	    hdr.count >= UINT32_MAX - hdr.start ||
	    (hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)))
		return -EINVAL;
	max = irq_count(d, hdr.index);
	if (hdr.start >= max || hdr.start + hdr.count > max)
		return -EINVAL;
	switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_NONE:
		size = 0;
		break;
	case VFIO_IRQ_SET_DATA_BOOL:
		size = 1;
		break;
	case VFIO_IRQ_SET_DATA_EVENTFD:
		size = 4;
		break;
	default:
		return -EINVAL;
	}
	if (size && hdr.argsz - sizeof(hdr) < (uint64_t)hdr.count * size)
		return -EINVAL;
	if (__builtin_popcount(hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) != 1)
		return -ENOTTY; /* no handler for that action */
	if (hdr.index == VFIO_PCI_INTX_IRQ_INDEX)
		r = set_irqs_intx(d, hdr.flags, hdr.start, hdr.count, arg->data);
	else if (hdr.index == VFIO_PCI_REQ_IRQ_INDEX) {
		if ((hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		if ((hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD) && hdr.count == 1) {
			int32_t fd;

			memcpy(&fd, arg->data, sizeof(fd));
			r = set_trigger(d, hdr.index, 0, fd);
		} else if (!hdr.count && (hdr.flags & VFIO_IRQ_SET_DATA_NONE)) {
			irq_release(d, hdr.index);
			r = 0;
		} else {
			r = 0;
		}
	} else
		r = set_irqs_msi(d, hdr.index, hdr.flags, hdr.start, hdr.count, arg->data);
	if (r == 0) {
		d->irqs[hdr.index].set_calls++;
		d->irqs[hdr.index].last_flags = hdr.flags;
	}
	return r;
}

static void edu_reset(struct mdev *d)
{
	d->addr4 = d->fact = d->status = d->irq_status = 0;
	memset(d->dma, 0, sizeof(d->dma));
	d->config[0x04] = d->config[0x05] = 0;
	d->resets++;
}

/* A device file; the last close disables interrupts (vfio_pci_core_disable). */
static int dev_open_file(struct vfio_model *m, struct mdev *d, struct mgroup *g)
{
	struct dfile *df = calloc(1, sizeof(*df));
	int fd;

	if (!df)
		return -ENOMEM;
	df->dev = d;
	df->group = g;
	df->access = g != NULL; /* group opens are usable at once; cdevs after BIND */
	fd = fd_alloc(m, FD_DEVICE, df);
	if (fd < 0) {
		free(df);
		return -EMFILE;
	}
	if (g) {
		g->dev_files++;
		d->open_count++;
	}
	return fd;
}

static void dev_close_file(struct vfio_model *m, struct dfile *df)
{
	struct mdev *d = df->dev;
	bool counted = df->access;

	if (df->group) {
		df->group->dev_files--;
		group_maybe_release(m, df->group);
	} else {
		cdev_unbind(m, df);
	}
	if (counted && --d->open_count == 0) {
		for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++)
			irq_release(d, i);
		d->irq_type = IRQ_NONE;
	}
	free(df);
}

static int dev_ioctl(struct vfio_model *m, struct dfile *df, unsigned long req, void *arg)
{
	struct mdev *d = df->dev;

	if (req == VFIO_DEVICE_BIND_IOMMUFD) {
		if (df->group)
			return -EINVAL; /* BIND_IOMMUFD only for cdev fds */
		return arg ? cdev_bind(m, df, arg) : -EFAULT;
	}
	if (!df->access)
		return -EINVAL; /* [vmain]: nothing works before BIND */
	if (!df->group) {
		if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT)
			return arg ? cdev_attach(m, df, arg) : -EFAULT;
		if (req == VFIO_DEVICE_DETACH_IOMMUFD_PT) {
			const struct vfio_device_detach_iommufd_pt *dt = arg;

			if (!dt)
				return -EFAULT;
			if (dt->argsz < 8 || dt->flags)
				return -EINVAL;
			idev_detach(m, df->ictx, df->idev);
			return 0;
		}
	}
	switch (req) {
	case VFIO_DEVICE_GET_INFO:
		return dev_get_info(arg);
	case VFIO_DEVICE_GET_REGION_INFO:
		return dev_get_region_info(arg);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return dev_get_irq_info(d, arg);
	case VFIO_DEVICE_SET_IRQS:
		return dev_set_irqs(d, arg);
	case VFIO_DEVICE_RESET:
		edu_reset(d);
		return 0;
	default:
		return -ENOTTY;
	}
}

static ssize_t dev_rw(struct dfile *df, void *buf, size_t len, off_t off, bool write)
{
	uint64_t index = (uint64_t)off >> REGION_SHIFT,
		 pos = (uint64_t)off & ((1ull << REGION_SHIFT) - 1);

	if (!df->access)
		return -EINVAL;
	if (off < 0)
		return -EINVAL;
	if (!len)
		return 0;
	if (index == VFIO_PCI_BAR0_REGION_INDEX)
		return bar0_rw(df->dev, buf, len, pos, write);
	if (index == VFIO_PCI_CONFIG_REGION_INDEX)
		return config_rw(df->dev, buf, len, pos, write);
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* The vfio_sys table: counting, fault injection, dispatch                   */
/* ------------------------------------------------------------------------ */

/* Counts a call; the armed one fails with its errno before doing anything. */
static int tick(struct vfio_model *m)
{
	m->calls++;
	if (m->fail_at && m->calls == m->fail_at) {
		m->fail_hit = true;
		return m->fail_err;
	}
	return 0;
}

static bool path_is(const char *path, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || path[n] != '/')
		return false;
	*rest = path + n + 1;
	return true;
}

static int parse_num(const char *s)
{
	char *end;
	long v;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	v = strtol(s, &end, 10);
	return *end || v < 0 || v > INT_MAX ? -1 : (int)v;
}

static int m_open(void *opaque, const char *path, int flags)
{
	struct vfio_model *m = opaque;
	const char *rest;
	int e = tick(m), n, fd;

	if (e)
		return fail(e);
	if (!path_is(path, m->dev, &rest))
		return open(path, flags | O_CLOEXEC, 0644);
	if (!strcmp(rest, "iommu")) {
		struct ictx *c;
		int slot = -1;

		if (!m->iommufd)
			return fail(ENOENT);
		for (int i = 0; i < MAX_CTX && slot < 0; i++)
			if (!m->ctx[i])
				slot = i;
		if (slot < 0 || !(c = calloc(1, sizeof(*c))))
			return fail(ENOMEM);
		fd = fd_alloc(m, FD_IOMMUFD, c);
		if (fd < 0) {
			free(c);
			return -1;
		}
		c->fd_open = true;
		c->serial = ++m->serial;
		m->ctx[slot] = c;
		return fd;
	}
	if (!strcmp(rest, "vfio/vfio")) {
		struct container *c;
		int slot = -1;

		for (int i = 0; i < MAX_CONTAINERS && slot < 0; i++)
			if (!m->cont[i])
				slot = i;
		if (slot < 0 || !(c = calloc(1, sizeof(*c))))
			return fail(ENOMEM);
		fd = fd_alloc(m, FD_CONTAINER, c);
		if (fd < 0) {
			free(c);
			return -1;
		}
		c->fd_open = true;
		c->serial = ++m->serial;
		m->cont[slot] = c;
		return fd;
	}
	if (!strncmp(rest, "vfio/devices/vfio", 17) && (n = parse_num(rest + 17)) >= 0) {
		for (int i = 0; i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].cdev == n &&
			    !strcmp(m->devs[i].driver, "vfio-pci")) {
				fd = dev_open_file(m, &m->devs[i], NULL);
				return fd < 0 ? fail(-fd) : fd;
			}
		return fail(ENOENT);
	}
	if (!strncmp(rest, "vfio/", 5) && (n = parse_num(rest + 5)) >= 0) {
		struct mgroup *g = group_find(m, n);
		bool has_vfio = false;

		for (int i = 0; g && i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].group == n &&
			    !strcmp(m->devs[i].driver, "vfio-pci"))
				has_vfio = true;
		if (!g || !has_vfio)
			return fail(ENOENT);
		/* vfio_group_fops_open(): one opener; not while a cdev of it is bound. */
		if (g->fd_open || g->dev_files)
			return fail(EBUSY);
		for (int i = 0; i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].group == n && m->devs[i].bound)
				return fail(EBUSY);
		fd = fd_alloc(m, FD_GROUP, g);
		if (fd < 0)
			return -1;
		g->fd_open = true;
		return fd;
	}
	return fail(ENOENT);
}

static void close_model_fd(struct vfio_model *m, struct mfd *f)
{
	void *p = f->p;
	enum fd_kind kind = f->kind;

	f->kind = FD_FREE;
	f->p = NULL;
	switch (kind) {
	case FD_IOMMUFD: {
		struct ictx *c = p;

		c->fd_open = false;
		ctx_maybe_free(m, c);
		break;
	}
	case FD_CONTAINER: {
		struct container *c = p;

		c->fd_open = false;
		container_maybe_free(m, c);
		break;
	}
	case FD_GROUP: {
		struct mgroup *g = p;

		g->fd_open = false;
		group_maybe_release(m, g);
		break;
	}
	case FD_DEVICE:
		dev_close_file(m, p);
		break;
	default:
		break;
	}
}

/* close(2) releases the descriptor even when it reports an error. */
static int m_close(void *opaque, int fd)
{
	struct vfio_model *m = opaque;
	int e = tick(m);
	struct mfd *f = fd_get(m, fd);

	if (f)
		close_model_fd(m, f);
	else if (model_fd_range(fd))
		return fail(EBADF);
	else if (close(fd) != 0 && !e)
		return -1;
	return e ? fail(e) : 0;
}

static int m_ioctl(void *opaque, int fd, unsigned long req, void *arg)
{
	struct vfio_model *m = opaque;
	int e = tick(m), r;
	struct mfd *f;

	if (e)
		return fail(e);
	f = fd_get(m, fd);
	if (!f) {
		if (model_fd_range(fd))
			return fail(EBADF);
		return ioctl(fd, req, arg);
	}
	switch (f->kind) {
	case FD_IOMMUFD:
		return iommufd_ioctl(m, f->p, req, arg);
	case FD_CONTAINER:
		r = container_ioctl(m, f->p, req, arg);
		break;
	case FD_GROUP:
		r = group_ioctl(m, f->p, req, arg);
		break;
	case FD_DEVICE:
		r = dev_ioctl(m, f->p, req, arg);
		break;
	default:
		r = -EBADF;
	}
	return r < 0 ? fail(-r) : r;
}

static ssize_t m_rw(struct vfio_model *m, int fd, void *buf, size_t len, off_t off, bool write)
{
	int e = tick(m);
	struct mfd *f;
	ssize_t r;

	if (e)
		return fail(e);
	f = fd_get(m, fd);
	if (!f) {
		if (model_fd_range(fd))
			return fail(EBADF);
		return write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
	}
	if (f->kind != FD_DEVICE)
		return fail(EINVAL);
	r = dev_rw(f->p, buf, len, off, write);
	return r < 0 ? fail((int)-r) : r;
}

static ssize_t m_pread(void *opaque, int fd, void *buf, size_t len, off_t off)
{
	return m_rw(opaque, fd, buf, len, off, false);
}

static ssize_t m_pwrite(void *opaque, int fd, const void *buf, size_t len, off_t off)
{
	return m_rw(opaque, fd, (void *)buf, len, off, true);
}

/*
 * mmap of BAR0 gives anonymous memory holding edu's ident: registers behind
 * an mmap cannot be live in a model. Other offsets: EINVAL, as for regions
 * without the MMAP flag.
 */
static void *m_mmap(void *opaque, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct vfio_model *m = opaque;
	int e = tick(m), slot = -1;
	struct mfd *f;
	struct dfile *df;
	uint64_t index, pos;
	void *p;

	if (e) {
		errno = e;
		return MAP_FAILED;
	}
	f = fd_get(m, fd);
	if (!f) {
		if (model_fd_range(fd)) {
			errno = EBADF;
			return MAP_FAILED;
		}
		return mmap(addr, len, prot, flags, fd, off);
	}
	df = f->p;
	index = (uint64_t)off >> REGION_SHIFT;
	pos = (uint64_t)off & ((1ull << REGION_SHIFT) - 1);
	if (f->kind != FD_DEVICE || !df->access || index != VFIO_PCI_BAR0_REGION_INDEX ||
	    (pos % PG) || !len || pos + len > VFIO_MODEL_BAR0_SIZE || !(flags & MAP_SHARED)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	for (int i = 0; i < MAX_MMAPS && slot < 0; i++)
		if (!m->mmaps[i].addr)
			slot = i;
	if (slot < 0) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return p;
	if (pos == 0 && len >= 4)
		*(uint32_t *)p = EDU_IDENT;
	if (!(prot & PROT_WRITE))
		mprotect(p, len, prot);
	m->mmaps[slot].addr = p;
	m->mmaps[slot].len = len;
	return p;
}

static int m_munmap(void *opaque, void *addr, size_t len)
{
	struct vfio_model *m = opaque;
	int e = tick(m);

	if (e)
		return fail(e);
	for (int i = 0; i < MAX_MMAPS; i++)
		if (m->mmaps[i].addr == addr) {
			m->mmaps[i].addr = NULL;
			break;
		}
	return munmap(addr, len);
}

/* ------------------------------------------------------------------------ */
/* Public: setup, configuration, inspection                                  */
/* ------------------------------------------------------------------------ */

struct vfio_model *vfio_model_new(void)
{
	struct vfio_model *m = calloc(1, sizeof(*m));
	char path[PATH_MAX + 32];

	if (!m)
		return NULL;
	snprintf(m->root, sizeof(m->root), "%s/vfio-model-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(m->root)) {
		free(m);
		return NULL;
	}
	snprintf(m->sysfs, sizeof(m->sysfs), "%s/sys", m->root);
	snprintf(m->dev, sizeof(m->dev), "%s/dev", m->root);
	snprintf(path, sizeof(path), "%s/bus/pci/drivers", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/devices", m->dev);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/vfio", m->dev);
	touch(path);
	m->iommufd = true;
	snprintf(path, sizeof(path), "%s/iommu", m->dev);
	touch(path);
	m->msi_isolated = true;
	m->memlock_pages = UINT64_MAX / PG;
	m->dma_entry_limit = 65535; /* type1 dma_entry_limit default (U16_MAX) */
	m->sys = (struct vfio_sys){
		.open = m_open,
		.close = m_close,
		.ioctl = m_ioctl,
		.pread = m_pread,
		.pwrite = m_pwrite,
		.mmap = m_mmap,
		.munmap = m_munmap,
		.opaque = m,
		.sysfs_root = m->sysfs,
		.dev_root = m->dev,
	};
	return m;
}

void vfio_model_free(struct vfio_model *m)
{
	if (!m)
		return;
	/* Device files first (they hold groups and contexts), then the rest. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < MAX_FDS; i++)
			if (m->fds[i].kind != FD_FREE && (pass == 1 || m->fds[i].kind == FD_DEVICE))
				close_model_fd(m, &m->fds[i]);
	for (int i = 0; i < MAX_MMAPS; i++)
		if (m->mmaps[i].addr)
			munmap(m->mmaps[i].addr, m->mmaps[i].len);
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used)
			for (int k = 0; k < VFIO_PCI_NUM_IRQS; k++)
				irq_release(&m->devs[i], k);
	nftw(m->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(m);
}

const struct vfio_sys *vfio_model_sys(struct vfio_model *m)
{
	return &m->sys;
}

const char *vfio_model_root(const struct vfio_model *m)
{
	return m->root;
}

int vfio_model_add_device(struct vfio_model *m, const char *bdf, int group, const char *driver)
{
	char path[PATH_MAX + 64], target[PATH_MAX + 64];
	struct mdev *d = NULL;
	struct mgroup *g = group_find(m, group);

	if (!bdf || strlen(bdf) >= sizeof(d->bdf) || group < 0 || strchr(bdf, '/'))
		return -EINVAL;
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && !strcmp(m->devs[i].bdf, bdf))
			return -EEXIST;
	for (int i = 0; i < MAX_DEVICES && !d; i++)
		if (!m->devs[i].used)
			d = &m->devs[i];
	if (!d)
		return -ENOSPC;
	if (!g) {
		for (int i = 0; i < MAX_GROUPS && !g; i++)
			if (!m->groups[i].used)
				g = &m->groups[i];
		if (!g)
			return -ENOSPC;
		*g = (struct mgroup){ .used = true, .num = group, .viable = -1 };
	}
	memset(d, 0, sizeof(*d));
	d->used = true;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	snprintf(d->driver, sizeof(d->driver), "%s", driver ? driver : "");
	d->group = group;
	d->cdev = -1;
	d->unmask_hold = -1;
	for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		for (int k = 0; k < 4; k++) {
			d->holds[i][k] = -1;
			d->irqs[i].trigger[k] = -1;
		}
		d->irqs[i].unmask_fd = -1;
	}
	edu_config_init(d);

	/* sys/devices/pci0000:00/BDF, linked from sys/bus/pci/devices/BDF. */
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s", m->sysfs, bdf);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/bus/pci/devices", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", m->sysfs, bdf);
	snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
	if (symlink(target, path) != 0)
		return -errno;
	if (d->driver[0]) {
		snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s", m->sysfs, d->driver);
		mkdirs(path);
		snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/driver", m->sysfs, bdf);
		snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", d->driver);
		symlink(target, path);
	}
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", m->sysfs, group);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/iommu_group", m->sysfs, bdf);
	snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", group);
	symlink(target, path);
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices/%s", m->sysfs, group, bdf);
	snprintf(target, sizeof(target), "../../../../devices/pci0000:00/%s", bdf);
	symlink(target, path);
	if (strcmp(d->driver, "vfio-pci") != 0)
		return 0;
	/* vfio-pci: a group node and the device's cdev. */
	d->cdev = m->next_cdev++;
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/vfio-dev/vfio%d", m->sysfs, bdf,
		 d->cdev);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/%d", m->dev, group);
	touch(path);
	snprintf(path, sizeof(path), "%s/vfio/devices/vfio%d", m->dev, d->cdev);
	touch(path);
	return d->cdev;
}

void vfio_model_set_group_viable(struct vfio_model *m, int group, bool viable)
{
	struct mgroup *g = group_find(m, group);

	if (g)
		g->viable = viable;
}

void vfio_model_set_iommufd(struct vfio_model *m, bool present)
{
	char path[PATH_MAX + 16];

	m->iommufd = present;
	snprintf(path, sizeof(path), "%s/iommu", m->dev);
	if (present)
		touch(path);
	else
		unlink(path);
}

void vfio_model_set_msi_isolated(struct vfio_model *m, bool isolated)
{
	m->msi_isolated = isolated;
}

void vfio_model_set_memlock_pages(struct vfio_model *m, uint64_t pages)
{
	m->memlock_pages = pages;
}

void vfio_model_set_dma_entry_limit(struct vfio_model *m, uint32_t limit)
{
	m->dma_entry_limit = limit;
}

void vfio_model_fail_nth(struct vfio_model *m, unsigned long n, int err)
{
	m->fail_at = n;
	m->fail_err = err;
	m->fail_hit = false;
}

unsigned long vfio_model_calls(const struct vfio_model *m)
{
	return m->calls;
}

bool vfio_model_fail_hit(const struct vfio_model *m)
{
	return m->fail_hit;
}

int vfio_model_open_fds(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_FDS; i++)
		n += m->fds[i].kind != FD_FREE;
	return n;
}

int vfio_model_iommufd_contexts(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_CTX; i++)
		n += m->ctx[i] != NULL;
	return n;
}

int vfio_model_iommufd_objects(const struct vfio_model *m)
{
	int n = 0;

	for (int c = 0; c < MAX_CTX; c++)
		for (int i = 0; m->ctx[c] && i < MAX_OBJS; i++)
			n += m->ctx[c]->objs[i] != NULL;
	return n;
}

static const struct ictx *latest_ctx(const struct vfio_model *m)
{
	const struct ictx *best = NULL;

	for (int i = 0; i < MAX_CTX; i++)
		if (m->ctx[i] && (!best || m->ctx[i]->serial > best->serial))
			best = m->ctx[i];
	return best;
}

size_t vfio_model_ioas_list(const struct vfio_model *m, uint32_t *ids, size_t max)
{
	const struct ictx *c = latest_ctx(m);
	size_t n = 0;

	for (int i = 0; c && i < MAX_OBJS; i++)
		if (c->objs[i] && c->objs[i]->type == OBJ_IOAS) {
			if (n < max)
				ids[n] = c->objs[i]->id;
			n++;
		}
	return n;
}

ssize_t vfio_model_ioas_mappings(const struct vfio_model *m, uint32_t ioas_id,
				 struct vfio_model_mapping *out, size_t max)
{
	const struct ictx *c = latest_ctx(m);
	const struct obj *io;

	if (!c || ioas_id == 0 || ioas_id > MAX_OBJS)
		return -ENOENT;
	io = c->objs[ioas_id - 1];
	if (!io || io->type != OBJ_IOAS)
		return -ENOENT;
	for (size_t i = 0; i < io->n_areas && i < max; i++)
		out[i] = (struct vfio_model_mapping){
			io->areas[i].iova, io->areas[i].last - io->areas[i].iova + 1,
			io->areas[i].pages->uptr + io->areas[i].start_byte, io->areas[i].write
		};
	return (ssize_t)io->n_areas;
}

ssize_t vfio_model_container_mappings(const struct vfio_model *m, struct vfio_model_mapping *out,
				      size_t max)
{
	const struct container *best = NULL;

	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (m->cont[i] && m->cont[i]->iommu && (!best || m->cont[i]->serial > best->serial))
			best = m->cont[i];
	if (!best)
		return -ENOENT;
	for (size_t i = 0; i < best->n_dmas && i < max; i++)
		out[i] = (struct vfio_model_mapping){ best->dmas[i].iova, best->dmas[i].size,
						      best->dmas[i].vaddr, best->dmas[i].write };
	return (ssize_t)best->n_dmas;
}

uint64_t vfio_model_pinned_pages(const struct vfio_model *m)
{
	return pinned_total(m);
}

int vfio_model_bar_mmaps(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_MMAPS; i++)
		n += m->mmaps[i].addr != NULL;
	return n;
}

static struct mdev *dev_by_bdf(const struct vfio_model *m, const char *bdf)
{
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && !strcmp(m->devs[i].bdf, bdf))
			return (struct mdev *)&m->devs[i];
	return NULL;
}

int vfio_model_device_state(const struct vfio_model *m, const char *bdf,
			    struct vfio_model_device *out)
{
	const struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->open_count = d->open_count;
	out->bound = d->bound != NULL;
	if (d->bound) {
		out->devid = d->bound->idev->id;
		if (d->bound->idev->hwpt) {
			out->hwpt_id = d->bound->idev->hwpt->id;
			out->ioas_id = d->bound->idev->hwpt->ioas->id;
		}
	}
	out->resets = d->resets;
	memcpy(out->irqs, d->irqs, sizeof(out->irqs));
	out->liveness = ~d->addr4;
	return 0;
}

int vfio_model_device_irq(struct vfio_model *m, const char *bdf, uint32_t status, bool raise)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	edu_irq(d, status, raise);
	return 0;
}
