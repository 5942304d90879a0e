/*
 * The model's iommufd character device: objects and contexts, the ucmd size
 * rules every iommufd ioctl shares, and the IOAS ioctls (ALLOC, DESTROY,
 * IOVA_RANGES with its EMSGSIZE protocol, MAP, COPY, UNMAP). Mirrors
 * drivers/iommu/iommufd/main.c (iommufd_fops_ioctl, iommufd_destroy,
 * object lifetime) and drivers/iommu/iommufd/ioas.c.
 */
#include "vfio_model_internal.h"

#include <string.h>

/* ---- objects and contexts [main] ---- */

struct obj *vfm_obj_new(struct ictx *c, enum obj_type type)
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

struct obj *vfm_obj_get(struct ictx *c, uint32_t id, enum obj_type type)
{
	struct obj *o;

	if (id == 0 || id > MAX_OBJS)
		return NULL;
	o = c->objs[id - 1];
	if (!o || (type && o->type != type))
		return NULL;
	return o;
}

void vfm_obj_free(struct vfio_model *m, struct ictx *c, struct obj *o)
{
	if (o->type == OBJ_IOAS)
		vfm_ioas_unmap_all(m, o);
	c->objs[o->id - 1] = NULL;
	free(o->areas);
	free(o->resv);
	free(o);
}

/* The context goes when its fd is closed and no device holds it [main: fops_release]. */
void vfm_ctx_maybe_free(struct vfio_model *m, struct ictx *c)
{
	if (c->fd_open || c->dev_refs)
		return;
	for (int i = 0; i < MAX_OBJS; i++)
		if (c->objs[i])
			vfm_obj_free(m, c, c->objs[i]);
	for (int i = 0; i < MAX_CTX; i++)
		if (m->ctx[i] == c)
			m->ctx[i] = NULL;
	free(c);
	vfm_pins_update(m);
}

/* ---- the ioctls [main] [ioas] ---- */

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
	struct obj *o = vfm_obj_get(c, cmd->id, 0);

	if (!o)
		return -ENOENT;
	/* iommufd_object_remove(): only the xarray may hold a reference. */
	if ((o->type == OBJ_IOAS && o->users) || o->type == OBJ_DEVICE ||
	    (o->type == OBJ_HWPT && o->ndevs))
		return -EBUSY;
	vfm_obj_free(m, c, o);
	vfm_pins_update(m);
	return 0;
}

static int ioas_alloc(struct ictx *c, struct iommu_ioas_alloc *cmd)
{
	struct obj *o;

	if (cmd->flags)
		return -EOPNOTSUPP;
	o = vfm_obj_new(c, OBJ_IOAS);
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
	io = vfm_obj_get(c, cmd->ioas_id, OBJ_IOAS);
	if (!io)
		return -ENOENT;
	if (max && !user)
		return -EFAULT;
	n = vfm_holes(io, false, 0, UINT64_MAX, user, max);
	cmd->num_iovas = (uint32_t)n;
	cmd->out_iova_alignment = io->align;
	*emsgsize = n > max;
	return 0;
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
	io = vfm_obj_get(c, cmd->ioas_id, OBJ_IOAS);
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
		r = vfm_check_iova(io, iova, cmd->length);
	else
		r = vfm_alloc_iova(io, cmd->user_va, cmd->length, &iova);
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
	r = vfm_area_insert(io, &a);
	if (r) {
		p->refs = 1;
		vfm_pages_put(m, p);
		return r;
	}
	/* iopt_fill_domains_pages(): pinned now if the IOAS has a domain. */
	r = vfm_pins_update(m);
	if (r) {
		vfm_area_remove(m, io, (size_t)vfm_area_first(io, iova, iova)); /* frees p */
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
	src = vfm_obj_get(c, cmd->src_ioas_id, OBJ_IOAS);
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
		ssize_t i = vfm_area_first(src, cur, cur);
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
	dst = vfm_obj_get(c, cmd->dst_ioas_id, OBJ_IOAS);
	if (!dst)
		return -ENOENT;
	/* iopt_map_pages() -> iopt_alloc_area_pages() */
	if (cmd->length & (dst->align - 1))
		return -EINVAL;
	if (cmd->flags & IOMMU_IOAS_MAP_FIXED_IOVA)
		r = vfm_check_iova(dst, iova, cmd->length);
	else
		r = vfm_alloc_iova(dst, slices[0].pages->uptr + slices[0].start_byte, cmd->length,
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
		r = vfm_area_insert(dst, &slices[i]);
		if (r)
			break;
		inserted++;
		cur += len;
	}
	if (r == 0)
		r = vfm_pins_update(m);
	if (r) {
		for (size_t i = 0; i < inserted; i++)
			vfm_area_remove(
				m, dst,
				(size_t)vfm_area_first(dst, slices[i].iova, slices[i].iova));
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
	struct obj *io = vfm_obj_get(c, cmd->ioas_id, OBJ_IOAS);
	uint64_t start = cmd->iova, last, unmapped = 0;
	bool split = false;
	ssize_t i;

	if (!io)
		return -ENOENT;
	if (cmd->iova == 0 && cmd->length == UINT64_MAX) {
		for (size_t k = 0; k < io->n_areas; k++)
			unmapped += io->areas[k].last - io->areas[k].iova + 1;
		vfm_ioas_unmap_all(m, io);
		vfm_pins_update(m);
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
	while ((i = vfm_area_first(io, start, last)) >= 0) {
		struct area *a = &io->areas[i];

		if (a->iova < start || a->last > last) {
			split = true; /* the areas already removed stay removed */
			break;
		}
		unmapped += a->last - a->iova + 1;
		vfm_area_remove(m, io, (size_t)i);
	}
	vfm_pins_update(m);
	if (split || !unmapped)
		return -ENOENT;
	cmd->length = unmapped;
	return 0;
}

int vfm_iommufd_ioctl(struct vfio_model *m, struct ictx *c, unsigned long req, void *arg)
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
