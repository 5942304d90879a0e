/* The interrupt requests (SetIntxIrqfd, SetIrqs) and IommuInfo. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "session_handlers.h"

#define COMP "remote"

int handle_set_intx_irqfd(struct session *s, struct wire_msg *m, struct mpdev_error *err)
{
	const Mpdev__SetIntxIrqfd *req = m->env->set_intx_irqfd;
	int irqfd, resamplefd;

	if (m->nfds > 2)
		return mpdev_error_set(
			err, EINVAL,
			"set_intx_irqfd carries %zu descriptors: 0 (remove), 1 (irqfd) "
			"or 2 (irqfd, resamplefd)",
			m->nfds);
	irqfd = m->nfds > 0 ? wire_take_fd(m, 0) : -1;
	resamplefd = m->nfds > 1 ? wire_take_fd(m, 1) : -1;
	/* The callee owns both from here, on success and failure alike. */
	if (s->backend->ops->set_intx_irqfd) {
		if (s->backend->ops->set_intx_irqfd(s->backend, req->pin, req->pirq, irqfd,
						    resamplefd, err) < 0)
			return -err->code;
	} else if (remote_host_route_intx(s->host, req->pin, req->pirq, irqfd, resamplefd, err) <
		   0) {
		return -err->code;
	}
	return session_send_ok(s, m->env->id);
}

/* Checks SetIrqs' data against count and the packet's descriptors, then takes those. */
static int take_set_irqs(const Mpdev__SetIrqs *req, struct wire_msg *m, int *fds,
			 struct mpdev_error *err)
{
	bool used[MPDEV_MAX_FDS_PER_MSG] = { false };

	switch (req->data) {
	case MPDEV__IRQ_DATA__IRQ_DATA_NONE:
		if (req->n_values || req->n_fds || m->nfds)
			return mpdev_error_set(err, EINVAL,
					       "data type none carries no values or fds");
		return 0;
	case MPDEV__IRQ_DATA__IRQ_DATA_BOOL:
		if (req->n_values != req->count || req->n_fds || m->nfds)
			return mpdev_error_set(err, EINVAL, "%zu bool values for count %u",
					       req->n_values, req->count);
		return 0;
	case MPDEV__IRQ_DATA__IRQ_DATA_EVENTFD:
		break;
	default:
		return mpdev_error_set(err, EINVAL, "unknown data type %u", req->data);
	}
	if (req->n_fds != req->count || req->n_values)
		return mpdev_error_set(err, EINVAL, "%zu fd slots for count %u", req->n_fds,
				       req->count);
	for (size_t i = 0; i < req->n_fds; i++) {
		int32_t k = req->fds[i];

		if (k < -1 || (k >= 0 && (size_t)k >= m->nfds) || (k >= 0 && used[k]))
			return mpdev_error_set(err, EINVAL,
					       "fd slot %zu names descriptor %d: each of the %zu "
					       "descriptors once, or -1",
					       i, k, m->nfds);
		if (k >= 0)
			used[k] = true;
	}
	for (size_t i = 0; i < m->nfds; i++)
		if (!used[i])
			return mpdev_error_set(err, EINVAL,
					       "descriptor %zu is not used by any vector", i);
	for (size_t i = 0; i < req->n_fds; i++)
		fds[i] = req->fds[i] >= 0 ? wire_take_fd(m, (size_t)req->fds[i]) : -1;
	return 0;
}

int handle_set_irqs(struct session *s, struct wire_msg *m, struct mpdev_error *err)
{
	const Mpdev__SetIrqs *req = m->env->set_irqs;
	struct backend_irq_request vr = { .index = req->index,
					  .action = req->action,
					  .data = req->data,
					  .start = req->start,
					  .count = req->count };
	bool *values = NULL;
	int *fds = NULL;
	int r;

	/* Bounded before anything is allocated for it. */
	if (req->count > VIRQ_MAX_VECTORS)
		return mpdev_error_set(err, EINVAL, "count %u: at most %u vectors", req->count,
				       VIRQ_MAX_VECTORS);
	fds = calloc(req->count ? req->count : 1, sizeof(*fds));
	values = calloc(req->count ? req->count : 1, sizeof(*values));
	if (!fds || !values) {
		r = mpdev_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	r = take_set_irqs(req, m, fds, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < req->n_values; i++)
		values[i] = req->values[i];
	vr.values = values;
	vr.fds = fds;
	r = s->backend->ops->set_irqs ? s->backend->ops->set_irqs(s->backend, &vr, err)
				      : virq_set_irqs(&s->host->virq, &vr, err);
	if (r == 0)
		r = session_send_ok(s, m->env->id);
out:
	free(fds);
	free(values);
	return r;
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

int handle_iommu_info(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	struct backend_iommu_info bi;
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__IommuInfo info = MPDEV__IOMMU_INFO__INIT;
	Mpdev__IovaRange ranges[BACKEND_MAX_IOVA_RANGES];
	Mpdev__IovaRange *ptrs[BACKEND_MAX_IOVA_RANGES];
	int r;

	if (s->backend->ops->iommu_info) {
		r = s->backend->ops->iommu_info(s->backend, &bi, err);
		if (r < 0)
			return r;
	} else {
		emulated_iommu_info(s, &bi);
	}
	/* The memory table's own limit applies on top of the IOMMU's. */
	if (bi.dma_avail > s->host->dma.max_regions - s->host->dma.map.n)
		bi.dma_avail = (uint32_t)(s->host->dma.max_regions - s->host->dma.map.n);
	for (size_t i = 0; i < bi.n_ranges; i++) {
		mpdev__iova_range__init(&ranges[i]);
		ranges[i].start = bi.ranges[i].start;
		ranges[i].last = bi.ranges[i].last;
		ptrs[i] = &ranges[i];
	}
	info.kind = bi.kind;
	info.pgsize_bitmap = bi.pgsize_bitmap;
	info.n_iova_ranges = bi.n_ranges;
	info.iova_ranges = ptrs;
	info.dma_avail = bi.dma_avail;
	info.mappings_used = bi.mappings_used;
	info.dirty_tracking = bi.dirty_tracking;
	rep.body_case = MPDEV__ENVELOPE__BODY_IOMMU_INFO;
	rep.iommu_info = &info;
	return session_send_reply(s, req->id, &rep);
}
