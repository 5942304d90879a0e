/*
 * DEVICE_GET_INFO, GET_REGION_INFO and GET_IRQ_INFO: the device info the
 * session read once, in VFIO's structures, with VFIO's argsz rule (a short
 * buffer gets the size it needs back).
 */
#include <errno.h>
#include <string.h>

#include "vfio_user_internal.h"

int vfu_handle_device_info(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_device_info d;

	(void)c;
	if (vfu_decode_device_info(r->payload, r->len, &d) < 0)
		return vfu_fail(r, EINVAL, "DEVICE_GET_INFO: %zu bytes or argsz below %u", r->len,
				VFU_DEVICE_INFO_SIZE);
	d = (struct vfu_device_info){
		.argsz = VFU_DEVICE_INFO_SIZE,
		.flags = VFU_DEVICE_FLAGS_PCI |
			 (s->info.reset_supported ? VFU_DEVICE_FLAGS_RESET : 0),
		.num_regions = VFU_PCI_NUM_REGIONS,
		.num_irqs = VFU_PCI_NUM_IRQS,
	};
	memcpy(r->reply, &d, sizeof(d));
	r->reply_len = sizeof(d);
	return 0;
}

_Static_assert(BACKEND_NUM_REGIONS == VFU_PCI_NUM_REGIONS, "VFIO's PCI region indexes");
_Static_assert(BACKEND_NUM_IRQS == VFU_PCI_NUM_IRQS, "VFIO's PCI IRQ indexes");

int vfu_handle_region_info(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_region_info req, info = { 0 };
	const struct backend_region_info *ri;
	int n;

	(void)c;
	if (vfu_decode_region_info(r->payload, r->len, &req) < 0)
		return vfu_fail(r, EINVAL, "GET_REGION_INFO: %zu bytes or argsz below %u", r->len,
				VFU_REGION_INFO_SIZE);
	if (req.index >= VFU_PCI_NUM_REGIONS)
		return vfu_fail(r, EINVAL, "no region %u (the device has %u)", req.index,
				VFU_PCI_NUM_REGIONS);
	ri = &s->info.regions[req.index];
	info.index = req.index;
	info.size = ri->size;
	if (ri->flags & BACKEND_REGION_READ)
		info.flags |= VFU_REGION_FLAG_READ;
	if (ri->flags & BACKEND_REGION_WRITE)
		info.flags |= VFU_REGION_FLAG_WRITE;
	/*
	 * No MMAP flag and no sparse areas: sharing a region needs a descriptor
	 * for its pages, which no backend hands out (a VFIO device fd would give
	 * the client the whole device). Every access comes by message instead.
	 */
	n = vfu_encode_region_info(&info, NULL, 0, req.argsz, r->reply, r->room);
	if (n < 0)
		return vfu_fail(r, ENOSPC, "region info does not fit");
	r->reply_len = (size_t)n;
	return 0;
}

/* VFIO's IRQ info flags from the session's (which state virq's where it serves the device). */
static uint32_t irq_flags(const struct session *s, uint32_t index)
{
	uint32_t f = 0, b = s->info.irqs[index].flags;

	if (b & BACKEND_IRQ_EVENTFD)
		f |= VFU_IRQ_INFO_EVENTFD;
	if (b & BACKEND_IRQ_MASKABLE)
		f |= VFU_IRQ_INFO_MASKABLE;
	if (b & BACKEND_IRQ_AUTOMASKED)
		f |= VFU_IRQ_INFO_AUTOMASKED;
	if (b & BACKEND_IRQ_NORESIZE)
		f |= VFU_IRQ_INFO_NORESIZE;
	return f;
}

int vfu_handle_irq_info(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_irq_info i;

	(void)c;
	if (vfu_decode_irq_info(r->payload, r->len, &i) < 0)
		return vfu_fail(r, EINVAL, "GET_IRQ_INFO: %zu bytes or argsz below %u", r->len,
				VFU_IRQ_INFO_SIZE);
	if (i.index >= VFU_PCI_NUM_IRQS)
		return vfu_fail(r, EINVAL, "no IRQ index %u (the device has %u)", i.index,
				VFU_PCI_NUM_IRQS);
	i = (struct vfu_irq_info){ .argsz = VFU_IRQ_INFO_SIZE,
				   .flags = irq_flags(s, i.index),
				   .index = i.index,
				   .count = s->info.irqs[i.index].count };
	memcpy(r->reply, &i, sizeof(i));
	r->reply_len = sizeof(i);
	return 0;
}
