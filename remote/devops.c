/* Region access, the memory table, interrupts, reset and IOMMU info, checked once for every face.
 */
#include "devops.h"

#include <errno.h>
#include <string.h>

#include "fdrelease.h"
#include "session.h"

static int check_region(const struct session *s, uint32_t index, uint64_t offset, size_t len,
			bool write, struct mpdev_error *err)
{
	const struct backend_region_info *r;

	if (index >= BACKEND_NUM_REGIONS || !s->info.regions[index].size)
		return mpdev_error_set(err, EINVAL, "region %u does not exist on this device",
				       index);
	r = &s->info.regions[index];
	if (len == 0 || len > DEVOPS_MAX_ACCESS)
		return mpdev_error_set(err, EINVAL, "access of %zu bytes: 1 to %u at a time", len,
				       DEVOPS_MAX_ACCESS);
	if (offset > r->size || len > r->size - offset)
		return mpdev_error_set(
			err, ERANGE,
			"%zu bytes at offset 0x%llx are outside region %u (size 0x%llx)", len,
			(unsigned long long)offset, index, (unsigned long long)r->size);
	if (!(r->flags & (write ? BACKEND_REGION_WRITE : BACKEND_REGION_READ)))
		return mpdev_error_set(err, EACCES, "region %u is not %s", index,
				       write ? "writable" : "readable");
	return 0;
}

/*
 * The next piece of an access the device sees: the widest naturally aligned
 * width that fits, as a CPU splits a copy into bus cycles. Config cycles are
 * at most a dword.
 */
static uint32_t piece(uint32_t index, uint64_t offset, size_t left)
{
	uint32_t max = index == BACKEND_REGION_CONFIG ? 4 : 8;

	for (uint32_t w = max; w > 1; w /= 2)
		if (left >= w && !(offset & (w - 1)))
			return w;
	return 1;
}

int devops_check_one_write(const struct session *s, uint32_t index, uint64_t offset, uint32_t size,
			   struct mpdev_error *err)
{
	int r = check_region(s, index, offset, size, true, err);

	if (r == 0 && piece(index, offset, size) != size)
		r = mpdev_error_set(err, EINVAL,
				    "%u bytes at offset 0x%llx of region %u are not one naturally "
				    "aligned access",
				    size, (unsigned long long)offset, index);
	return r;
}

int devops_region_read(struct session *s, uint32_t index, uint64_t offset, void *buf, size_t len,
		       struct mpdev_error *err)
{
	uint8_t *p = buf;
	int r = check_region(s, index, offset, len, false, err);

	while (r == 0 && len) {
		uint32_t w = piece(index, offset, len);

		r = s->backend->ops->region_read(s->backend, index, offset, p, w, err);
		offset += w;
		p += w;
		len -= w;
	}
	if (r == 0)
		s->stats->region_reads++;
	return r;
}

int devops_region_write(struct session *s, uint32_t index, uint64_t offset, const void *buf,
			size_t len, struct mpdev_error *err)
{
	const uint8_t *p = buf;
	int r = check_region(s, index, offset, len, true, err);

	while (r == 0 && len) {
		uint32_t w = piece(index, offset, len);

		r = s->backend->ops->region_write(s->backend, index, offset, p, w, err);
		offset += w;
		p += w;
		len -= w;
	}
	if (r == 0)
		s->stats->region_writes++;
	return r;
}

int devops_ioeventfds(struct session *s, uint32_t region, struct doorbell_info *out, unsigned max,
		      unsigned *total, struct mpdev_error *err)
{
	return doorbell_query(s, region, out, max, total, err);
}

int devops_mem_add(struct session *s, const struct dma_new_region *r, struct mpdev_error *err)
{
	return dma_table_add(&s->host->dma, r, err);
}

int devops_mem_remove(struct session *s, uint64_t gpa, uint64_t size, struct mpdev_error *err)
{
	return dma_table_remove(&s->host->dma, gpa, size, err);
}

int devops_mem_set(struct session *s, const struct dma_new_region *v, size_t n,
		   struct mpdev_error *err)
{
	if (n > MPDEV_MAX_MEM_REGIONS)
		return mpdev_error_set(err, ENOSPC,
				       "memory table of %zu regions exceeds the limit of %u", n,
				       MPDEV_MAX_MEM_REGIONS);
	return dma_table_set(&s->host->dma, v, n, err);
}

int devops_set_intx_irqfd(struct session *s, uint32_t pin, uint32_t pirq, int irqfd, int resamplefd,
			  struct mpdev_error *err)
{
	/* The callee owns both from here, on success and failure alike. */
	if (s->backend->ops->set_intx_irqfd) {
		if (s->backend->ops->set_intx_irqfd(s->backend, pin, pirq, irqfd, resamplefd, err) <
		    0)
			return -err->code;
		return 0;
	}
	if (remote_host_route_intx(s->host, pin, pirq, irqfd, resamplefd, err) < 0)
		return -err->code;
	return 0;
}

static void close_req_fds(struct backend_irq_request *req)
{
	for (uint32_t i = 0; req->data == BACKEND_IRQ_DATA_EVENTFD && i < req->count; i++)
		if (req->fds[i] >= 0) {
			fd_release(req->fds[i]);
			req->fds[i] = -1;
		}
}

int devops_set_irqs(struct session *s, struct backend_irq_request *req, struct mpdev_error *err)
{
	/*
	 * Only the bound every face needs before it allocates; the index, range,
	 * action and data checks are the backend's (virq.c for emulated devices,
	 * the kernel for VFIO), which knows the device's state.
	 */
	if (req->count > VIRQ_MAX_VECTORS) {
		if (req->fds)
			close_req_fds(req);
		return mpdev_error_set(err, EINVAL, "count %u: at most %u vectors", req->count,
				       VIRQ_MAX_VECTORS);
	}
	if (s->backend->ops->set_irqs)
		return s->backend->ops->set_irqs(s->backend, req, err);
	return virq_set_irqs(&s->host->virq, req, err);
}

int devops_reset(struct session *s, struct mpdev_error *err)
{
	int r;

	if (!s->info.reset_supported)
		return mpdev_error_set(err, ENOTTY, "device '%s' does not support reset",
				       s->info.name);
	r = s->backend->ops->reset(s->backend, err);
	if (r < 0)
		return r;
	/* The way out of ERROR, and back to RUNNING from anywhere, as VFIO_DEVICE_RESET. */
	s->mig_state = BACKEND_MIG_RUNNING;
	s->stats->resets++;
	return 0;
}

/* Without a backend IOMMU the remote's own bounds checks are the IOMMU. */
static void emulated_iommu_info(const struct session *s, struct backend_iommu_info *info)
{
	memset(info, 0, sizeof(*info));
	info->kind = MPDEV__IOMMU_KIND__IOMMU_EMULATED;
	info->pgsize_bitmap = 4096;
	info->n_ranges = 1;
	info->ranges[0].start = 0;
	info->ranges[0].last = UINT64_MAX;
	info->mappings_used = (uint32_t)s->host->dma.map.n;
	info->dma_avail = (uint32_t)(s->host->dma.max_regions - s->host->dma.map.n);
	info->dirty_tracking = true; /* the remote sees every write (session_dirty.c) */
}

int devops_iommu_info(struct session *s, struct backend_iommu_info *bi, struct mpdev_error *err)
{
	int r;

	if (s->backend->ops->iommu_info) {
		r = s->backend->ops->iommu_info(s->backend, bi, err);
		if (r < 0)
			return r;
	} else {
		emulated_iommu_info(s, bi);
	}
	/* The memory table's own limit applies on top of the IOMMU's. */
	if (bi->dma_avail > s->host->dma.max_regions - s->host->dma.map.n)
		bi->dma_avail = (uint32_t)(s->host->dma.max_regions - s->host->dma.map.n);
	return 0;
}
