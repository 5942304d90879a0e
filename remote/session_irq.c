/* The interrupt requests (SetIntxIrqfd, SetIrqs) and IommuInfo. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "session_handlers.h"

#define COMP "remote"

int handle_set_intx_irqfd(struct session *s, struct wire_msg *m, struct session_reply *rep,
			  struct mpdev_error *err)
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
	return devops_set_intx_irqfd(s, req->pin, req->pirq, irqfd, resamplefd, err);
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

int handle_set_irqs(struct session *s, struct wire_msg *m, struct session_reply *rep,
		    struct mpdev_error *err)
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
	r = devops_set_irqs(s, &vr, err);
out:
	free(fds);
	free(values);
	return r;
}

int handle_iommu_info(struct session *s, struct wire_msg *m, struct session_reply *rep,
		      struct mpdev_error *err)
{
	struct backend_iommu_info bi;
	/* Static: the reply points into them until it is sent, before the next request. */
	static Mpdev__IommuInfo info;
	static Mpdev__IovaRange ranges[BACKEND_MAX_IOVA_RANGES];
	static Mpdev__IovaRange *ptrs[BACKEND_MAX_IOVA_RANGES];
	int r = devops_iommu_info(s, &bi, err);

	if (r < 0)
		return r;
	mpdev__iommu_info__init(&info);
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
	rep->env.body_case = MPDEV__ENVELOPE__BODY_IOMMU_INFO;
	rep->env.iommu_info = &info;
	return 0;
}
