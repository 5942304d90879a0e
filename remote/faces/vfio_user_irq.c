/*
 * DEVICE_SET_IRQS: VFIO's struct vfio_irq_set, with its eventfds as the
 * message's descriptors, becomes devops_set_irqs (VFIO_DEVICE_SET_IRQS
 * semantics, the descriptors taken there). An eventfd request without
 * descriptors de-assigns the vectors, as QEMU sends it.
 */
#include <errno.h>

#include "virq.h"
#include "vfio_user_internal.h"

static uint32_t action_of(uint32_t flags)
{
	if (flags & VFU_IRQ_SET_ACTION_MASK)
		return BACKEND_IRQ_ACTION_MASK;
	if (flags & VFU_IRQ_SET_ACTION_UNMASK)
		return BACKEND_IRQ_ACTION_UNMASK;
	return BACKEND_IRQ_ACTION_TRIGGER;
}

static uint32_t data_of(uint32_t flags)
{
	if (flags & VFU_IRQ_SET_DATA_BOOL)
		return BACKEND_IRQ_DATA_BOOL;
	if (flags & VFU_IRQ_SET_DATA_EVENTFD)
		return BACKEND_IRQ_DATA_EVENTFD;
	return BACKEND_IRQ_DATA_NONE;
}

int vfu_handle_set_irqs(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	static bool values[VIRQ_MAX_VECTORS];
	static int fds[VIRQ_MAX_VECTORS];
	struct backend_irq_request req;
	struct vfu_irq_set set;
	const uint8_t *bools;

	(void)c;
	if (vfu_decode_irq_set(r->payload, r->len, r->nfds, &set, &bools) < 0)
		return vfu_fail(r, EINVAL,
				"SET_IRQS: %zu bytes with %zu descriptors do not match its "
				"argsz, flags and count",
				r->len, r->nfds);
	if (set.index >= VFU_PCI_NUM_IRQS)
		return vfu_fail(r, EINVAL, "no IRQ index %u", set.index);
	/* Bounded before anything is built; devops checks the index's own count. */
	if (set.count > VIRQ_MAX_VECTORS)
		return vfu_fail(r, EINVAL, "%u vectors: at most %u", set.count, VIRQ_MAX_VECTORS);
	req = (struct backend_irq_request){ .index = set.index,
					    .action = action_of(set.flags),
					    .data = data_of(set.flags),
					    .start = set.start,
					    .count = set.count };
	if (req.data == BACKEND_IRQ_DATA_BOOL) {
		for (uint32_t i = 0; i < set.count; i++) {
			if (bools[i] > 1)
				return vfu_fail(r, EINVAL, "bool %u is %u", i, bools[i]);
			values[i] = bools[i];
		}
		req.values = values;
	}
	if (req.data == BACKEND_IRQ_DATA_EVENTFD) {
		for (uint32_t i = 0; i < set.count; i++) {
			fds[i] = r->nfds ? r->fds[i] : -1;
			if (r->nfds)
				r->fds[i] = -1; /* devops takes them, on failure too */
		}
		req.fds = fds;
	}
	return devops_set_irqs(s, &req, &r->err);
}
