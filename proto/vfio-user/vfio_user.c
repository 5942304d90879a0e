#include "vfio_user.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

_Static_assert(sizeof(struct vfu_hdr) == VFU_HDR_SIZE, "header layout");
_Static_assert(sizeof(struct vfu_dma_map) == VFU_DMA_MAP_SIZE, "dma_map layout");
_Static_assert(sizeof(struct vfu_dma_unmap) == VFU_DMA_UNMAP_SIZE, "dma_unmap layout");
_Static_assert(sizeof(struct vfu_region_info) == VFU_REGION_INFO_SIZE, "region_info layout");
_Static_assert(sizeof(struct vfu_irq_set) == VFU_IRQ_SET_SIZE, "irq_set layout");
_Static_assert(sizeof(struct vfu_region_access) == VFU_REGION_ACCESS_SIZE, "access layout");
_Static_assert(sizeof(struct vfu_write_one) == VFU_WRITE_ONE_SIZE, "write_one layout");
_Static_assert(sizeof(struct vfu_cap_header) == 8, "cap header layout");
_Static_assert(sizeof(struct vfu_region_io_fds) == VFU_REGION_IO_FDS_SIZE, "io_fds layout");
_Static_assert(sizeof(struct vfu_sub_region_ioeventfd) == VFU_SUB_REGION_IO_FD_SIZE,
	       "sub-region layout");

static const char *const cmd_names[VFU_CMD_MAX] = {
	[VFU_CMD_VERSION] = "VERSION",
	[VFU_CMD_DMA_MAP] = "DMA_MAP",
	[VFU_CMD_DMA_UNMAP] = "DMA_UNMAP",
	[VFU_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
	[VFU_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
	[VFU_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
	[VFU_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
	[VFU_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
	[VFU_CMD_REGION_READ] = "REGION_READ",
	[VFU_CMD_REGION_WRITE] = "REGION_WRITE",
	[VFU_CMD_DMA_READ] = "DMA_READ",
	[VFU_CMD_DMA_WRITE] = "DMA_WRITE",
	[VFU_CMD_DEVICE_RESET] = "DEVICE_RESET",
	[VFU_CMD_DIRTY_PAGES] = "DIRTY_PAGES",
	[VFU_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
	[VFU_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
	[VFU_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
	[VFU_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
};

const char *vfu_cmd_name(uint32_t cmd)
{
	return cmd < VFU_CMD_MAX && cmd_names[cmd] ? cmd_names[cmd] : "unknown";
}

void vfu_hdr_get(const void *p, struct vfu_hdr *h)
{
	memcpy(h, p, sizeof(*h));
}

void vfu_hdr_put(void *p, const struct vfu_hdr *h)
{
	memcpy(p, h, sizeof(*h));
}

int vfu_hdr_check_command(const struct vfu_hdr *h, uint32_t max_size)
{
	if (h->size < VFU_HDR_SIZE)
		return -EINVAL;
	if (h->size > max_size)
		return -E2BIG;
	/* The error bit and error_no mean something only in a reply. */
	if ((h->flags & ~VFU_FLAGS_KNOWN) || (h->flags & VFU_FLAG_TYPE_MASK) != VFU_TYPE_COMMAND ||
	    (h->flags & VFU_FLAG_ERROR))
		return -EINVAL;
	return 0;
}

int vfu_decode_version(const void *p, size_t len, struct vfu_version *v, const char **caps,
		       size_t *caps_len)
{
	const char *text = (const char *)p + VFU_VERSION_SIZE;
	size_t n;

	if (len < VFU_VERSION_SIZE)
		return -EINVAL;
	memcpy(v, p, VFU_VERSION_SIZE);
	*caps = NULL;
	*caps_len = 0;
	n = len - VFU_VERSION_SIZE;
	if (n == 0)
		return 0;
	/* One NUL, at the very end: nothing may hide behind the text. */
	if (text[n - 1] != '\0' || memchr(text, '\0', n - 1) || n - 1 > VFU_CAPS_MAX_LEN)
		return -EINVAL;
	*caps = text;
	*caps_len = n - 1;
	return 0;
}

int vfu_decode_dma_map(const void *p, size_t len, struct vfu_dma_map *m)
{
	if (len != VFU_DMA_MAP_SIZE)
		return -EINVAL;
	memcpy(m, p, sizeof(*m));
	/* argsz describes this request (there is no reply payload). */
	if (m->argsz != VFU_DMA_MAP_SIZE)
		return -EINVAL;
	if ((m->flags & ~(VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)) ||
	    !(m->flags & VFU_DMA_FLAG_READ))
		return -EINVAL;
	return 0;
}

int vfu_decode_dma_unmap(const void *p, size_t len, struct vfu_dma_unmap *u)
{
	if (len != VFU_DMA_UNMAP_SIZE)
		return -EINVAL;
	memcpy(u, p, sizeof(*u));
	/* argsz is the room for the reply, which echoes the request. */
	if (u->argsz < VFU_DMA_UNMAP_SIZE)
		return -EINVAL;
	if (u->flags & ~VFU_DMA_UNMAP_FLAG_ALL)
		return -EINVAL;
	if ((u->flags & VFU_DMA_UNMAP_FLAG_ALL) && (u->addr || u->size))
		return -EINVAL;
	return 0;
}

int vfu_decode_device_info(const void *p, size_t len, struct vfu_device_info *d)
{
	if (len != VFU_DEVICE_INFO_SIZE)
		return -EINVAL;
	memcpy(d, p, sizeof(*d));
	return d->argsz < VFU_DEVICE_INFO_SIZE ? -EINVAL : 0;
}

int vfu_decode_region_info(const void *p, size_t len, struct vfu_region_info *r)
{
	if (len != VFU_REGION_INFO_SIZE)
		return -EINVAL;
	memcpy(r, p, sizeof(*r));
	return r->argsz < VFU_REGION_INFO_SIZE ? -EINVAL : 0;
}

int vfu_decode_irq_info(const void *p, size_t len, struct vfu_irq_info *i)
{
	if (len != VFU_IRQ_INFO_SIZE)
		return -EINVAL;
	memcpy(i, p, sizeof(*i));
	return i->argsz < VFU_IRQ_INFO_SIZE ? -EINVAL : 0;
}

int vfu_decode_region_io_fds(const void *p, size_t len, struct vfu_region_io_fds *r)
{
	if (len != VFU_REGION_IO_FDS_SIZE)
		return -EINVAL;
	memcpy(r, p, sizeof(*r));
	/* "All other fields must be zero." */
	if (r->flags || r->count || r->argsz < VFU_REGION_IO_FDS_SIZE)
		return -EINVAL;
	return 0;
}

int vfu_encode_region_io_fds(uint32_t index, const struct vfu_sub_region_ioeventfd *subs,
			     uint32_t n, uint32_t argsz, void *out, size_t out_len)
{
	size_t need = VFU_REGION_IO_FDS_SIZE + (size_t)n * VFU_SUB_REGION_IO_FD_SIZE;
	struct vfu_region_io_fds h = { .argsz = (uint32_t)need, .index = index, .count = n };
	uint8_t *o = out;

	if (need > UINT32_MAX || out_len < VFU_REGION_IO_FDS_SIZE)
		return -ENOSPC;
	memcpy(o, &h, sizeof(h));
	if (argsz < need)
		return VFU_REGION_IO_FDS_SIZE; /* the size to come back with, and no entries */
	if (out_len < need)
		return -ENOSPC;
	/* memcpy's source may not be NULL even for 0 bytes, and a region without doorbells has none. */
	if (n)
		memcpy(o + VFU_REGION_IO_FDS_SIZE, subs, (size_t)n * VFU_SUB_REGION_IO_FD_SIZE);
	return (int)need;
}

int vfu_decode_region_io_fds_reply(const void *p, size_t len, struct vfu_region_io_fds *r)
{
	if (len < VFU_REGION_IO_FDS_SIZE)
		return -EINVAL;
	memcpy(r, p, sizeof(*r));
	/* A short argsz got the fixed part alone; otherwise exactly count entries follow. */
	if (len == VFU_REGION_IO_FDS_SIZE)
		return 0;
	if ((len - VFU_REGION_IO_FDS_SIZE) / VFU_SUB_REGION_IO_FD_SIZE != r->count ||
	    (len - VFU_REGION_IO_FDS_SIZE) % VFU_SUB_REGION_IO_FD_SIZE || r->argsz != len)
		return -EINVAL;
	return 0;
}

void vfu_sub_region_get(const void *p, uint32_t i, struct vfu_sub_region_ioeventfd *s)
{
	memcpy(s,
	       (const uint8_t *)p + VFU_REGION_IO_FDS_SIZE + (size_t)i * VFU_SUB_REGION_IO_FD_SIZE,
	       sizeof(*s));
}

static bool one_bit(uint32_t v)
{
	return v && !(v & (v - 1));
}

int vfu_decode_irq_set(const void *p, size_t len, size_t nfds, struct vfu_irq_set *s,
		       const uint8_t **bools)
{
	uint32_t data, action;

	*bools = NULL;
	if (len < VFU_IRQ_SET_SIZE)
		return -EINVAL;
	memcpy(s, p, sizeof(*s));
	data = s->flags & VFU_IRQ_SET_DATA_MASK;
	action = s->flags & VFU_IRQ_SET_ACTION_MASK_ALL;
	if ((s->flags & ~(VFU_IRQ_SET_DATA_MASK | VFU_IRQ_SET_ACTION_MASK_ALL)) || !one_bit(data) ||
	    !one_bit(action))
		return -EINVAL;
	if (s->argsz != len)
		return -EINVAL;
	switch (data) {
	case VFU_IRQ_SET_DATA_BOOL:
		if (len - VFU_IRQ_SET_SIZE != s->count || nfds)
			return -EINVAL;
		*bools = (const uint8_t *)p + VFU_IRQ_SET_SIZE;
		break;
	case VFU_IRQ_SET_DATA_EVENTFD:
		if (len != VFU_IRQ_SET_SIZE || (nfds && nfds != s->count))
			return -EINVAL;
		break;
	default:
		if (len != VFU_IRQ_SET_SIZE || nfds)
			return -EINVAL;
		break;
	}
	return 0;
}

static int check_access(const struct vfu_region_access *a, uint32_t max_xfer)
{
	return a->count == 0 || a->count > max_xfer ? -EINVAL : 0;
}

int vfu_decode_region_read(const void *p, size_t len, uint32_t max_xfer,
			   struct vfu_region_access *a)
{
	if (len != VFU_REGION_ACCESS_SIZE)
		return -EINVAL;
	memcpy(a, p, sizeof(*a));
	return check_access(a, max_xfer);
}

int vfu_decode_region_write(const void *p, size_t len, uint32_t max_xfer,
			    struct vfu_region_access *a, const uint8_t **data)
{
	if (len < VFU_REGION_ACCESS_SIZE)
		return -EINVAL;
	memcpy(a, p, sizeof(*a));
	*data = (const uint8_t *)p + VFU_REGION_ACCESS_SIZE;
	if (check_access(a, max_xfer) < 0 || len - VFU_REGION_ACCESS_SIZE != a->count)
		return -EINVAL;
	return 0;
}

void vfu_write_multi_get(const void *p, uint64_t i, struct vfu_write_one *w)
{
	memcpy(w, (const uint8_t *)p + VFU_WRITE_MULTI_HDR_SIZE + i * VFU_WRITE_ONE_SIZE,
	       sizeof(*w));
}

int vfu_decode_write_multi(const void *p, size_t len, uint64_t *n)
{
	struct vfu_write_one w;

	if (len < VFU_WRITE_MULTI_HDR_SIZE)
		return -EINVAL;
	memcpy(n, p, sizeof(*n));
	if (*n == 0 || *n > VFU_MULTI_MAX ||
	    len != VFU_WRITE_MULTI_HDR_SIZE + *n * VFU_WRITE_ONE_SIZE)
		return -EINVAL;
	/* All or nothing: every entry is checked before the first is applied. */
	for (uint64_t i = 0; i < *n; i++) {
		vfu_write_multi_get(p, i, &w);
		if (w.count == 0 || w.count > VFU_MULTI_DATA)
			return -EINVAL;
	}
	return 0;
}

int vfu_decode_dma_access(const void *p, size_t len, struct vfu_dma_access *a)
{
	if (len < VFU_DMA_ACCESS_SIZE)
		return -EINVAL;
	memcpy(a, p, sizeof(*a));
	return 0;
}

int vfu_encode_region_info(const struct vfu_region_info *r,
			   const struct vfu_sparse_mmap_area *areas, uint32_t n, uint32_t argsz,
			   void *out, size_t out_len)
{
	struct vfu_region_info info = *r;
	uint8_t *o = out;
	size_t need = VFU_REGION_INFO_SIZE;

	if (n)
		need += VFU_SPARSE_MMAP_HDR_SIZE + (size_t)n * sizeof(*areas);
	info.argsz = (uint32_t)need;
	info.cap_offset = 0;
	if (n)
		info.flags |= VFU_REGION_FLAG_CAPS;
	if (argsz < need) {
		/* VFIO's answer to a short buffer: the size to come back with. */
		if (out_len < VFU_REGION_INFO_SIZE)
			return -ENOSPC;
		memcpy(o, &info, VFU_REGION_INFO_SIZE);
		return VFU_REGION_INFO_SIZE;
	}
	if (out_len < need)
		return -ENOSPC;
	if (n) {
		struct vfu_cap_header ch = { .id = VFU_REGION_CAP_SPARSE_MMAP,
					     .version = 1,
					     .next = 0 };
		uint32_t nr[2] = { n, 0 };

		info.cap_offset = VFU_REGION_INFO_SIZE;
		memcpy(o + VFU_REGION_INFO_SIZE, &ch, sizeof(ch));
		memcpy(o + VFU_REGION_INFO_SIZE + sizeof(ch), nr, sizeof(nr));
		memcpy(o + VFU_REGION_INFO_SIZE + VFU_SPARSE_MMAP_HDR_SIZE, areas,
		       (size_t)n * sizeof(*areas));
	}
	memcpy(o, &info, VFU_REGION_INFO_SIZE);
	return (int)need;
}

int vfu_decode_device_feature(const void *p, size_t len, struct vfu_device_feature *f,
			      const uint8_t **data, size_t *dlen)
{
	uint32_t ops;

	if (len < VFU_DEVICE_FEATURE_SIZE)
		return -EINVAL;
	memcpy(f, p, sizeof(*f));
	*data = (const uint8_t *)p + VFU_DEVICE_FEATURE_SIZE;
	*dlen = len - VFU_DEVICE_FEATURE_SIZE;
	ops = f->flags & ~VFU_FEATURE_MASK;
	if (ops & ~(VFU_FEATURE_GET | VFU_FEATURE_SET | VFU_FEATURE_PROBE) || !ops)
		return -EINVAL;
	/* GET and SET together only ask whether both would work. */
	if ((ops & VFU_FEATURE_GET) && (ops & VFU_FEATURE_SET) && !(ops & VFU_FEATURE_PROBE))
		return -EINVAL;
	return f->argsz < VFU_DEVICE_FEATURE_SIZE ? -EINVAL : 0;
}

int vfu_decode_mig_data_read(const void *p, size_t len, uint32_t max_xfer, struct vfu_mig_data *m)
{
	if (len != VFU_MIG_DATA_SIZE)
		return -EINVAL;
	memcpy(m, p, sizeof(*m));
	if (m->size == 0 || m->size > max_xfer || m->argsz < VFU_MIG_DATA_SIZE + (uint64_t)m->size)
		return -EINVAL;
	return 0;
}

int vfu_decode_mig_data_write(const void *p, size_t len, uint32_t max_xfer, struct vfu_mig_data *m,
			      const uint8_t **data)
{
	if (len < VFU_MIG_DATA_SIZE)
		return -EINVAL;
	memcpy(m, p, sizeof(*m));
	*data = (const uint8_t *)p + VFU_MIG_DATA_SIZE;
	if (m->size == 0 || m->size > max_xfer || len - VFU_MIG_DATA_SIZE != m->size ||
	    m->argsz < VFU_MIG_DATA_SIZE)
		return -EINVAL;
	return 0;
}
