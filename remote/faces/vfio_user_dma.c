/*
 * DMA_MAP / DMA_UNMAP. A range that comes with a descriptor joins the memory
 * table (devops_mem_add: the descriptor is checked there, and borrowed); one
 * without is memory the client keeps and serves by DMA_READ / DMA_WRITE
 * messages, recorded here so that overlaps and unmaps are judged against
 * both kinds alike.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "memtable.h"
#include "vfio_user_internal.h"

#define COMP "vfio-user"

static bool overlaps(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
	return a < b + bn && b < a + an;
}

static const struct vfu_range *range_overlap(const struct vfu_conn *c, uint64_t addr, uint64_t size)
{
	for (size_t i = 0; i < c->nranges; i++)
		if (overlaps(addr, size, c->ranges[i].addr, c->ranges[i].size))
			return &c->ranges[i];
	return NULL;
}

/* The checks of a range that are the protocol's, before either kind of mapping. */
static int check_range(struct vfu_req *r, uint64_t addr, uint64_t size)
{
	if (size == 0)
		return vfu_fail(r, EINVAL, "a DMA range of 0 bytes");
	if (addr + size < addr)
		return vfu_fail(r, EINVAL, "DMA range 0x%llx+0x%llx wraps",
				(unsigned long long)addr, (unsigned long long)size);
	if ((addr | size) & (VFU_DEF_PGSIZES - 1))
		return vfu_fail(r, EINVAL, "DMA range 0x%llx+0x%llx is not page aligned",
				(unsigned long long)addr, (unsigned long long)size);
	return 0;
}

static int map_by_message(struct session *s, struct vfu_conn *c, struct vfu_req *r,
			  const struct vfu_dma_map *m)
{
	if (m->offset)
		return vfu_fail(r, EINVAL, "offset 0x%llx without a descriptor",
				(unsigned long long)m->offset);
	if (memtable_find_overlap(&s->host->dma.map, m->addr, m->size))
		return vfu_fail(r, EEXIST, "0x%llx+0x%llx overlaps a mapped region",
				(unsigned long long)m->addr, (unsigned long long)m->size);
	if (c->nranges == VFU_MAX_MSG_RANGES)
		return vfu_fail(r, ENOSPC, "%u ranges served by message already",
				VFU_MAX_MSG_RANGES);
	/*
	 * Kept, so that the client's unmaps and overlaps stay consistent; but a
	 * device behind an IOMMU (vfio) does its DMA without us and cannot
	 * reach memory that exists only as messages.
	 */
	if (s->backend->ops->dma_map)
		log_warn_rl(COMP,
			    "0x%llx+0x%llx has no descriptor: the device's own DMA cannot reach it",
			    (unsigned long long)m->addr, (unsigned long long)m->size);
	c->ranges[c->nranges++] = (struct vfu_range){
		.addr = m->addr, .size = m->size, .read_only = !(m->flags & VFU_DMA_FLAG_WRITE)
	};
	return 0;
}

int vfu_handle_dma_map(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_dma_map m;
	struct dma_new_region nr;
	int rc;

	if (vfu_decode_dma_map(r->payload, r->len, &m) < 0)
		return vfu_fail(r, EINVAL, "DMA_MAP: %zu bytes (32), or argsz or flags wrong",
				r->len);
	if ((rc = check_range(r, m.addr, m.size)) < 0)
		return rc;
	if (range_overlap(c, m.addr, m.size))
		return vfu_fail(r, EEXIST, "0x%llx+0x%llx overlaps a range served by message",
				(unsigned long long)m.addr, (unsigned long long)m.size);
	if (r->nfds == 0)
		return map_by_message(s, c, r, &m);
	nr = (struct dma_new_region){ .gpa = m.addr,
				      .size = m.size,
				      .fd_offset = m.offset,
				      .read_only = !(m.flags & VFU_DMA_FLAG_WRITE),
				      .fd = r->fds[0] };
	/* The descriptor stays ours (borrowed) and is closed with the message. */
	return devops_mem_add(s, &nr, &r->err);
}

int vfu_handle_dma_unmap(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_dma_unmap u;
	int rc;

	if (vfu_decode_dma_unmap(r->payload, r->len, &u) < 0)
		return vfu_fail(r, EINVAL, "DMA_UNMAP: %zu bytes, argsz or flags wrong", r->len);
	if (u.flags & VFU_DMA_UNMAP_FLAG_ALL) {
		rc = devops_mem_set(s, NULL, 0, &r->err);
		if (rc < 0)
			return rc;
		c->nranges = 0;
	} else {
		size_t i;

		if ((rc = check_range(r, u.addr, u.size)) < 0)
			return rc;
		for (i = 0; i < c->nranges; i++)
			if (c->ranges[i].addr == u.addr && c->ranges[i].size == u.size)
				break;
		if (i < c->nranges) {
			c->ranges[i] = c->ranges[--c->nranges];
		} else {
			rc = devops_mem_remove(s, u.addr, u.size, &r->err);
			if (rc < 0)
				return rc;
		}
	}
	/* The reply is the request's entry, as the spec says. */
	memcpy(r->reply, r->payload, VFU_DMA_UNMAP_SIZE);
	r->reply_len = VFU_DMA_UNMAP_SIZE;
	return 0;
}

void vfu_dma_release(struct vfu_conn *c)
{
	c->nranges = 0;
}
