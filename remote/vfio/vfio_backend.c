#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fdrelease.h"
#include "iohub.h"
#include "log.h"
#include "vfio.h"
#include "vfio_device.h"
#include "vfio_iommu.h"
#include "vfio_mig.h"

#define COMP "vfio"

enum intx_mode {
	INTX_OFF,
	INTX_DIRECT, /* the proxy's irqfd is VFIO's trigger, its resamplefd VFIO's unmask */
	INTX_ROUTED, /* VFIO's trigger is ours; the IOHUB drives the proxy's irqfd */
};

struct vfio_backend {
	struct backend be;
	char bdf[40]; /* PCI address, or a mediated device's UUID */
	bool mdev;
	const struct vfio_sys *sys;
	struct vfio_iommu *iommu;
	struct vfio_dev dev;
	struct backend_device_info info;
	struct vfio_iommu_info iinfo; /* read once: ranges and the initial budget */
	struct vfio_mig mig;
	/* Dirty tracking: the device's own DMA logging first (as QEMU prefers), else the IOMMU's.
	 */
	bool iommu_dirty;
	char dirty_why[MPDEV_ERROR_MSG_MAX + 64]; /* why the IOMMU cannot, from realize */
	enum { DIRTY_OFF, DIRTY_DEVICE, DIRTY_IOMMU } dirty;
	bool shares_iommu; /* the VM's IOMMU (backend_config.shared_iommu): not ours to destroy */
	bool prefer_routed;
	bool intx_auto; /* --intx auto: direct, or routed where the device cannot do direct */
	/* Indexes VFIO has triggers for: it allows one type at a time. */
	bool enabled[BACKEND_NUM_IRQS];
	struct {
		enum intx_mode mode;
		int trigger; /* routed: the eventfd VFIO signals */
		struct event *ev;
	} intx;
};

static struct vfio_backend *to_vb(struct backend *b)
{
	return (struct vfio_backend *)b;
}

/* Little-endian config-space read for the identity fields. */
static uint32_t cfg_read(struct vfio_backend *vb, uint32_t off, uint32_t size)
{
	uint8_t b[4] = { 0 };
	struct mpdev_error err;

	if (vfio_dev_rw(&vb->dev, BACKEND_REGION_CONFIG, off, b, size, false, &err) < 0)
		return 0;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void build_info(struct vfio_backend *vb)
{
	struct backend_device_info *di = &vb->info;

	memset(di, 0, sizeof(*di));
	snprintf(di->name, sizeof(di->name), "%s:%s", vb->mdev ? "vfio-mdev" : "vfio", vb->bdf);
	di->vendor_id = (uint16_t)cfg_read(vb, 0x00, 2);
	di->device_id = (uint16_t)cfg_read(vb, 0x02, 2);
	di->revision = (uint8_t)cfg_read(vb, 0x08, 1);
	di->class_code = cfg_read(vb, 0x08, 4) >> 8;
	di->subsystem_vendor_id = (uint16_t)cfg_read(vb, 0x2c, 2);
	di->subsystem_id = (uint16_t)cfg_read(vb, 0x2e, 2);
	di->reset_supported = (vb->dev.flags & VFIO_DEVICE_FLAGS_RESET) != 0;
	for (int i = 0; i < BACKEND_NUM_REGIONS; i++) {
		const struct vfio_dev_region *r = &vb->dev.regions[i];
		struct backend_region_info *o = &di->regions[i];

		if (!r->size)
			continue;
		/* VFIO's READ/WRITE/MMAP bits are the protocol's. */
		o->flags = r->flags &
			   (BACKEND_REGION_READ | BACKEND_REGION_WRITE | BACKEND_REGION_MMAP);
		o->size = r->size;
		o->type = r->type;
		o->subtype = r->subtype;
		o->n_mmap = r->n_mmap;
		memcpy(o->mmap, r->mmap, sizeof(o->mmap));
		if (i <= BACKEND_REGION_BAR5) {
			uint32_t bar = cfg_read(vb, 0x10 + 4 * (uint32_t)i, 4);

			if (bar & 1)
				o->flags |= BACKEND_REGION_IO;
			else if (((bar >> 1) & 3) == 2)
				o->flags |= BACKEND_REGION_MEM64;
			if (!(bar & 1) && (bar & 8))
				o->flags |= BACKEND_REGION_PREFETCH;
		}
	}
	/* VFIO's IRQ info bits are the protocol's too. */
	for (int i = 0; i < BACKEND_NUM_IRQS; i++) {
		di->irqs[i].count = vb->dev.irqs[i].count;
		di->irqs[i].flags = vb->dev.irqs[i].flags & 0xf;
	}
}

static void vb_get_info(struct backend *b, struct backend_device_info *info)
{
	*info = to_vb(b)->info;
}

static int vb_region_read(struct backend *b, uint32_t index, uint64_t offset, void *data,
			  uint32_t size, struct mpdev_error *err)
{
	return vfio_dev_rw(&to_vb(b)->dev, index, offset, data, size, false, err);
}

static int vb_region_write(struct backend *b, uint32_t index, uint64_t offset, const void *data,
			   uint32_t size, struct mpdev_error *err)
{
	return vfio_dev_rw(&to_vb(b)->dev, index, offset, (void *)data, size, true, err);
}

static int vb_reset(struct backend *b, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	int r = vfio_dev_reset(&vb->dev, err);

	/* The kernel puts the device back to RUNNING and disables the session's file. */
	if (r == 0)
		vfio_mig_after_reset(&vb->mig);
	return r;
}

/* --- migration (vfio_mig.c) --- */

static uint32_t vb_mig_flags(struct backend *b)
{
	return to_vb(b)->mig.flags;
}

static int vb_mig_arc(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		      enum backend_mig_state *now, struct mpdev_error *err)
{
	return vfio_mig_arc(&to_vb(b)->mig, from, to, now, err);
}

static ssize_t vb_mig_save(struct backend *b, void *buf, size_t len, struct mpdev_error *err)
{
	return vfio_mig_save(&to_vb(b)->mig, buf, len, err);
}

static int vb_mig_load(struct backend *b, const void *buf, size_t len, struct mpdev_error *err)
{
	return vfio_mig_load(&to_vb(b)->mig, buf, len, err);
}

static int vb_mig_precopy_info(struct backend *b, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			       struct mpdev_error *err)
{
	return vfio_mig_precopy_info(&to_vb(b)->mig, initial_bytes, dirty_bytes, err);
}

/* --- dirty tracking --- */

static int vb_dirty_start(struct backend *b, const struct backend_dirty_range *ranges, size_t n,
			  uint64_t page_size, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	int r;

	if (vb->dirty != DIRTY_OFF)
		return mpdev_error_set(err, EBUSY, "dirty tracking is started already");
	if (vb->mig.dma_logging) {
		r = vfio_mig_log_start(&vb->mig, ranges, n, page_size, err);
		if (r == 0)
			vb->dirty = DIRTY_DEVICE;
		return r;
	}
	/* The reason from realize: probing again would be a call the sandbox forbids. */
	if (!vb->iommu_dirty)
		return mpdev_error_set(err, ENOTSUP, "%.200s", vb->dirty_why);
	/* The IOMMU tracks every mapping of the container: the ranges add nothing. */
	r = vb->iommu->ops->dirty_start(vb->iommu, page_size, err);
	if (r == 0)
		vb->dirty = DIRTY_IOMMU;
	return r;
}

static int vb_dirty_stop(struct backend *b, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	int r = 0;

	if (vb->dirty == DIRTY_DEVICE)
		r = vfio_mig_log_stop(&vb->mig, err);
	else if (vb->dirty == DIRTY_IOMMU)
		r = vb->iommu->ops->dirty_stop(vb->iommu, err);
	vb->dirty = DIRTY_OFF;
	return r;
}

static int vb_dirty_report(struct backend *b, uint64_t iova, uint64_t size, uint64_t page_size,
			   uint8_t *bitmap, size_t len, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);

	if (vb->dirty == DIRTY_DEVICE)
		return vfio_mig_log_report(&vb->mig, iova, size, page_size, bitmap, len, err);
	if (vb->dirty == DIRTY_IOMMU)
		return vb->iommu->ops->dirty_report(vb->iommu, iova, size, page_size, bitmap, len,
						    err);
	return mpdev_error_set(err, EINVAL, "dirty tracking is not started");
}

/* The usable IOVA ranges, in words, for error messages. */
static void ranges_str(const struct vfio_iommu_info *ii, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ii->n_ranges && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s[0x%llx, 0x%llx]", i ? ", " : "",
				 (unsigned long long)ii->ranges[i].start,
				 (unsigned long long)ii->ranges[i].last);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static bool inside_a_range(const struct vfio_iommu_info *ii, uint64_t iova, uint64_t size)
{
	uint64_t last = iova + size - 1;

	for (size_t i = 0; i < ii->n_ranges; i++)
		if (iova >= ii->ranges[i].start && last <= ii->ranges[i].last)
			return true;
	return false;
}

static int vb_dma_map(struct backend *b, const struct backend_dma_region *r,
		      struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	char ranges[160];
	int ret;

	if (!inside_a_range(&vb->iinfo, r->iova, r->size)) {
		ranges_str(&vb->iinfo, ranges, sizeof(ranges));
		return mpdev_error_set(err, ERANGE,
				       "IOVA range [0x%llx, 0x%llx) is outside what the IOMMU can "
				       "map: %s",
				       (unsigned long long)r->iova,
				       (unsigned long long)(r->iova + r->size), ranges);
	}
	if (vb->iinfo.dma_avail != UINT32_MAX && vb->iommu->mappings >= vb->iinfo.dma_avail)
		return mpdev_error_set(
			err, ENOSPC,
			"the IOMMU accepts no more mappings (%u in use, the kernel's "
			"dma_entry_limit allows %u)",
			vb->iommu->mappings, vb->iinfo.dma_avail);
	ret = vb->iommu->ops->map(vb->iommu, r->iova, r->size, r->vaddr, !r->read_only, err);
	if (ret == 0)
		vb->iommu->mappings++;
	return ret;
}

static int vb_dma_unmap(struct backend *b, const struct backend_dma_region *r,
			struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	int ret = vb->iommu->ops->unmap(vb->iommu, r->iova, r->size, err);

	if (ret == 0 && vb->iommu->mappings)
		vb->iommu->mappings--;
	return ret;
}

static int vb_iommu_info(struct backend *b, struct backend_iommu_info *info,
			 struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	const struct vfio_iommu_info *ii = &vb->iinfo;

	memset(info, 0, sizeof(*info));
	info->kind = ii->kind;
	info->pgsize_bitmap = ii->pgsize_bitmap;
	info->n_ranges =
		ii->n_ranges < BACKEND_MAX_IOVA_RANGES ? ii->n_ranges : BACKEND_MAX_IOVA_RANGES;
	for (size_t i = 0; i < info->n_ranges; i++) {
		info->ranges[i].start = ii->ranges[i].start;
		info->ranges[i].last = ii->ranges[i].last;
	}
	info->mappings_used = vb->iommu->mappings;
	info->dirty_tracking = vb->mig.dma_logging || vb->iommu_dirty;
	info->dma_avail =
		ii->dma_avail == UINT32_MAX ? UINT32_MAX : ii->dma_avail - vb->iommu->mappings;
	return 0;
}

/* --- interrupts --- */

static int set_irqs_none(struct vfio_backend *vb, uint32_t index, uint32_t action, uint32_t start,
			 uint32_t count, struct mpdev_error *err)
{
	return vfio_dev_set_irqs(&vb->dev, index, VFIO_IRQ_SET_DATA_NONE | action, start, count,
				 NULL, 0, err);
}

static int set_irq_eventfd(struct vfio_backend *vb, uint32_t index, uint32_t action, int fd,
			   struct mpdev_error *err)
{
	int32_t v = fd;

	return vfio_dev_set_irqs(&vb->dev, index, VFIO_IRQ_SET_DATA_EVENTFD | action, 0, 1, &v,
				 sizeof(v), err);
}

/* The peer's descriptors, after the kernel took its own references: closed off the loop. */
static void close_fd(int *fd)
{
	fd_release(*fd);
	*fd = -1;
}

/* The device is the remote's device 0: its INTA is IOHUB source 0. */
#define VFIO_INTX_SOURCE 0

static void on_intx_resample(void *opaque, unsigned source);
static const struct iohub_source_ops intx_source_ops = { .resampled = on_intx_resample };

/* Drops whatever INTx setup there is; the line is disabled in VFIO. */
static void intx_off(struct vfio_backend *vb)
{
	struct mpdev_error err;

	if (vb->intx.mode == INTX_OFF)
		return;
	if (set_irqs_none(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, &err) < 0)
		log_warn(COMP, "disabling INTx: %s", err.msg);
	vb->enabled[BACKEND_IRQ_INTX] = false;
	if (vb->intx.mode == INTX_ROUTED) {
		struct iohub *hub = vb->be.host->hub;

		iohub_set_source(hub, VFIO_INTX_SOURCE, false);
		iohub_watch_source(hub, VFIO_INTX_SOURCE, NULL, NULL);
		iohub_route_source(hub, VFIO_INTX_SOURCE, 0, -1, -1, NULL);
		if (vb->intx.ev)
			event_free(vb->intx.ev);
		vb->intx.ev = NULL;
		close(vb->intx.trigger); /* ours, not a peer's */
		vb->intx.trigger = -1;
	}
	vb->intx.mode = INTX_OFF;
}

/* Routed: VFIO signalled our trigger: the line is asserted (and automasked). */
static void on_intx_trigger(evutil_socket_t fd, short what, void *arg)
{
	struct vfio_backend *vb = arg;
	uint64_t cnt;

	/* Our own non-blocking eventfd: only VFIO writes it. */
	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return;
	iohub_set_source(vb->be.host->hub, VFIO_INTX_SOURCE, true);
}

/*
 * Routed: the guest EOI'd. Lower our level and unmask: the kernel re-checks
 * the line and signals the trigger again if the device still asserts it.
 */
static void on_intx_resample(void *opaque, unsigned source)
{
	struct vfio_backend *vb = opaque;
	struct mpdev_error err;

	iohub_set_source(vb->be.host->hub, source, false);
	if (set_irqs_none(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, &err) < 0)
		log_warn_rl(COMP, "INTx unmask: %s", err.msg);
}

static int intx_routed(struct vfio_backend *vb, uint32_t pirq, int irqfd, int resamplefd,
		       struct mpdev_error *err)
{
	struct iohub *hub = vb->be.host->hub;
	int trigger, r;

	r = iohub_route_source(hub, VFIO_INTX_SOURCE, pirq, irqfd, resamplefd, err); /* owns both */
	if (r < 0)
		return r;
	trigger = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (trigger < 0) {
		r = mpdev_error_set(err, errno, "eventfd: %s", strerror(errno));
		goto unset;
	}
	vb->intx.ev = event_new(vb->be.base, trigger, EV_READ | EV_PERSIST, on_intx_trigger, vb);
	if (!vb->intx.ev || event_add(vb->intx.ev, NULL) < 0) {
		r = mpdev_error_set(err, ENOMEM, "cannot watch the INTx trigger");
		goto close_trigger;
	}
	r = iohub_watch_source(hub, VFIO_INTX_SOURCE, &intx_source_ops, vb);
	if (r < 0) {
		mpdev_error_set(err, -r, "the device's INTA is watched already");
		goto free_event;
	}
	r = set_irq_eventfd(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, trigger, err);
	if (r < 0)
		goto remove_notifier;
	vb->intx.trigger = trigger;
	vb->intx.mode = INTX_ROUTED;
	vb->enabled[BACKEND_IRQ_INTX] = true;
	log_info(COMP, "INTx routed through IOHUB pirq %u", pirq);
	return 0;
remove_notifier:
	iohub_watch_source(hub, VFIO_INTX_SOURCE, NULL, NULL);
free_event:
	if (vb->intx.ev)
		event_free(vb->intx.ev);
	vb->intx.ev = NULL;
close_trigger:
	close(trigger);
unset:
	iohub_route_source(hub, VFIO_INTX_SOURCE, 0, -1, -1, NULL);
	return r;
}

/*
 * 1 (descriptors still ours) when the device takes no unmask eventfd and
 * the mode is auto: the caller routes INTx through the IOHUB instead.
 */
static int intx_direct(struct vfio_backend *vb, int irqfd, int resamplefd, struct mpdev_error *err)
{
	bool no_unmask_fd = false;
	int r;

	/* The kernel takes its own references: no user-space hop remains. */
	r = set_irq_eventfd(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, irqfd, err);
	if (r == 0 && resamplefd >= 0) {
		r = set_irq_eventfd(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK,
				    resamplefd, err);
		/* mtty, for one, unmasks only with DATA_NONE/BOOL (ENOTTY for an eventfd). */
		no_unmask_fd = r == -ENOTTY || r == -EINVAL;
	}
	if (r < 0)
		set_irqs_none(vb, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0,
			      &(struct mpdev_error){ 0 });
	if (r < 0 && no_unmask_fd && vb->intx_auto) {
		log_info(COMP,
			 "INTx: the device takes no unmask eventfd (%s); routing through "
			 "the IOHUB",
			 err->msg);
		return 1;
	}
	if (r >= 0) {
		vb->intx.mode = INTX_DIRECT;
		vb->enabled[BACKEND_IRQ_INTX] = true;
	}
	close_fd(&irqfd);
	close_fd(&resamplefd);
	if (r == 0)
		log_info(COMP, "INTx direct: the proxy's irqfd is VFIO's trigger");
	return r;
}

static int vb_set_intx_irqfd(struct backend *b, uint32_t pin, uint32_t pirq, int irqfd,
			     int resamplefd, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);

	if (pin != 0 || !vb->info.irqs[BACKEND_IRQ_INTX].count ||
	    pirq >= iohub_npirqs(b->host->hub) || (irqfd >= 0 && !iohub_is_eventfd(irqfd)) ||
	    (resamplefd >= 0 && !iohub_is_eventfd(resamplefd))) {
		close_fd(&irqfd);
		close_fd(&resamplefd);
		if (!vb->info.irqs[BACKEND_IRQ_INTX].count)
			return mpdev_error_set(err, EINVAL, "the device has no INTx");
		return mpdev_error_set(
			err, EINVAL,
			"pin %u / pirq %u: a VFIO device has pin 0 only, pirqs 0-%u, "
			"and both descriptors must be eventfds",
			pin, pirq, iohub_npirqs(b->host->hub) - 1);
	}
	intx_off(vb);
	if (irqfd < 0) {
		close_fd(&resamplefd);
		return 0;
	}
	if (!vb->prefer_routed) {
		int r = intx_direct(vb, irqfd, resamplefd, err);

		if (r <= 0)
			return r;
	}
	return intx_routed(vb, pirq, irqfd, resamplefd, err);
}

static uint32_t vfio_action(uint32_t action)
{
	switch (action) {
	case BACKEND_IRQ_ACTION_MASK:
		return VFIO_IRQ_SET_ACTION_MASK;
	case BACKEND_IRQ_ACTION_UNMASK:
		return VFIO_IRQ_SET_ACTION_UNMASK;
	default:
		return VFIO_IRQ_SET_ACTION_TRIGGER;
	}
}

static int vb_set_irqs(struct backend *b, struct backend_irq_request *req, struct mpdev_error *err)
{
	struct vfio_backend *vb = to_vb(b);
	int32_t *fds = NULL;
	uint8_t *bools = NULL;
	int r = 0;

	if (req->index >= BACKEND_NUM_IRQS || !vb->info.irqs[req->index].count ||
	    req->action > BACKEND_IRQ_ACTION_UNMASK || req->data > BACKEND_IRQ_DATA_EVENTFD) {
		r = mpdev_error_set(err, EINVAL, "IRQ index %u / action %u / data %u not available",
				    req->index, req->action, req->data);
		goto out;
	}
	if (req->count && (req->start >= vb->info.irqs[req->index].count ||
			   req->count > vb->info.irqs[req->index].count - req->start)) {
		r = mpdev_error_set(err, EINVAL, "IRQ index %u vectors %u+%u: the device has %u",
				    req->index, req->start, req->count,
				    vb->info.irqs[req->index].count);
		goto out;
	}
	/*
	 * SetIrqs on INTx takes over from a SetIntxIrqfd setup. VFIO drives one
	 * interrupt type at a time: MSI or MSI-X triggers replace INTx, as
	 * QEMU's vfio does when the guest enables MSI.
	 */
	if (req->action == BACKEND_IRQ_ACTION_TRIGGER && req->count &&
	    (req->index == BACKEND_IRQ_INTX || req->index == BACKEND_IRQ_MSI ||
	     req->index == BACKEND_IRQ_MSIX) &&
	    req->data == BACKEND_IRQ_DATA_EVENTFD)
		intx_off(vb);
	/* Disabling what is not enabled is done already (VFIO would say EINVAL). */
	if (req->action == BACKEND_IRQ_ACTION_TRIGGER && !req->count && !vb->enabled[req->index])
		goto out;
	switch (req->data) {
	case BACKEND_IRQ_DATA_EVENTFD:
		fds = calloc(req->count ? req->count : 1, sizeof(*fds));
		if (!fds) {
			r = mpdev_error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < req->count; i++) {
			if (req->fds[i] >= 0 && !iohub_is_eventfd(req->fds[i])) {
				r = mpdev_error_set(err, EINVAL,
						    "descriptor for vector %u is not an eventfd",
						    req->start + i);
				goto out;
			}
			fds[i] = req->fds[i];
		}
		r = vfio_dev_set_irqs(&vb->dev, req->index,
				      VFIO_IRQ_SET_DATA_EVENTFD | vfio_action(req->action),
				      req->start, req->count, fds, req->count * sizeof(*fds), err);
		if (r == 0 && req->action == BACKEND_IRQ_ACTION_TRIGGER)
			vb->enabled[req->index] = true;
		break;
	case BACKEND_IRQ_DATA_BOOL:
		bools = calloc(req->count ? req->count : 1, 1);
		if (!bools) {
			r = mpdev_error_set(err, ENOMEM, "out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < req->count; i++)
			bools[i] = req->values[i];
		r = vfio_dev_set_irqs(&vb->dev, req->index,
				      VFIO_IRQ_SET_DATA_BOOL | vfio_action(req->action), req->start,
				      req->count, bools, req->count, err);
		break;
	default:
		r = set_irqs_none(vb, req->index, vfio_action(req->action), req->start, req->count,
				  err);
		if (r == 0 && req->action == BACKEND_IRQ_ACTION_TRIGGER && !req->count)
			vb->enabled[req->index] = false;
		break;
	}
out:
	/* The kernel took its own references to the eventfds: ours go in every case. */
	for (uint32_t i = 0; req->data == BACKEND_IRQ_DATA_EVENTFD && i < req->count; i++)
		close_fd(&req->fds[i]);
	free(fds);
	free(bools);
	return r;
}

static void vb_release(struct backend *b)
{
	struct vfio_backend *vb = to_vb(b);
	struct mpdev_error err;

	if (vb_dirty_stop(b, &err) < 0)
		log_warn(COMP, "%s", err.msg);
	vfio_mig_release(&vb->mig);
	intx_off(vb);
	for (uint32_t i = 0; i < BACKEND_NUM_IRQS; i++) {
		if (!vb->enabled[i])
			continue;
		if (set_irqs_none(vb, i, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, &err) < 0)
			log_warn(COMP, "disabling IRQ index %u: %s", i, err.msg);
		vb->enabled[i] = false;
	}
}

static void vb_destroy(struct backend *b)
{
	struct vfio_backend *vb = to_vb(b);

	vb_release(b);
	vfio_mig_close(&vb->mig);
	vfio_dev_close(&vb->dev);
	if (vb->iommu && !vb->shares_iommu)
		vb->iommu->ops->destroy(vb->iommu);
	free(vb);
}

static const struct backend_ops vfio_backend_ops = {
	.name = "vfio",
	.get_info = vb_get_info,
	.region_read = vb_region_read,
	.region_write = vb_region_write,
	.reset = vb_reset,
	.dma_map = vb_dma_map,
	.dma_unmap = vb_dma_unmap,
	.iommu_info = vb_iommu_info,
	.set_irqs = vb_set_irqs,
	.set_intx_irqfd = vb_set_intx_irqfd,
	.mig_flags = vb_mig_flags,
	.mig_arc = vb_mig_arc,
	.mig_save = vb_mig_save,
	.mig_load = vb_mig_load,
	.mig_precopy_info = vb_mig_precopy_info,
	.dirty_start = vb_dirty_start,
	.dirty_stop = vb_dirty_stop,
	.dirty_report = vb_dirty_report,
	.release = vb_release,
	.destroy = vb_destroy,
};

static int create_iommu(const struct backend_config *cfg, const struct vfio_sys *sys,
			struct vfio_iommu **out, struct mpdev_error *err)
{
	const char *kind = cfg->iommu ? cfg->iommu : "auto";
	const char *pins = cfg->pin_accounting ? cfg->pin_accounting : "user";
	int r;

	if (strcmp(pins, "user") && strcmp(pins, "process"))
		return mpdev_error_set(err, EINVAL, "unknown pin accounting '%s' (user, process)",
				       pins);
	if (!strcmp(kind, "auto"))
		kind = vfio_iommufd_available(sys) ? "iommufd" : "container";
	if (!strcmp(kind, "container")) {
		if (cfg->pin_accounting && strcmp(pins, "process"))
			return mpdev_error_set(err, EINVAL,
					       "the container always charges pins to the process "
					       "(--pin-accounting user is iommufd's)");
		return vfio_container_create(sys, out, err);
	}
	if (strcmp(kind, "iommufd"))
		return mpdev_error_set(
			err, EINVAL, "unknown IOMMU backend '%s' (auto, container, iommufd)", kind);
	r = vfio_iommufd_create(sys, cfg->nr_ioas ? cfg->nr_ioas : 1, out, err);
	if (r == 0 && !strcmp(pins, "process")) {
		r = vfio_iommufd_set_pin_accounting(*out, true, err);
		if (r < 0) {
			(*out)->ops->destroy(*out);
			*out = NULL;
		}
	}
	return r;
}

/* What the VMM gets for DirtyStart: said once, at realize. */
static void probe_iommu_dirty(struct vfio_backend *vb)
{
	struct mpdev_error err = { 0 };

	vb->iommu_dirty =
		vb->iommu->ops->dirty_probe && vb->iommu->ops->dirty_probe(vb->iommu, &err) == 0;
	snprintf(vb->dirty_why, sizeof(vb->dirty_why), "the %s IOMMU cannot track dirty pages: %s",
		 vb->iommu->ops->name, err.msg[0] ? err.msg : "no probe");
	if (vb->iommu_dirty)
		log_info(COMP, "%s: the %s IOMMU can track dirty pages", vb->bdf,
			 vb->iommu->ops->name);
	else
		log_info(COMP, "%s: %s", vb->bdf, vb->dirty_why);
	log_info(COMP, "%s: DirtyStart uses %s", vb->bdf,
		 vb->mig.dma_logging ? "the device's DMA logging"
		 : vb->iommu_dirty   ? "the IOMMU"
				     : "nothing: it is refused");
}

/* 8-4-4-4-12 hex digits, as the kernel names mediated devices. */
static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

int vfio_backend_create(const struct backend_config *cfg, struct event_base *base,
			struct backend_host *host, struct backend **out, struct mpdev_error *err)
{
	bool mdev = strncmp(cfg->device, "vfio-mdev:", 10) == 0;
	const char *bdf = cfg->device + (mdev ? 10 : 5);
	struct vfio_backend *vb;
	int fd = -1, r;

	*out = NULL;
	if (mdev && !is_uuid(bdf))
		return mpdev_error_set(err, EINVAL, "'%s': expected vfio-mdev:UUID", cfg->device);
	/* The name picks the sysfs bus (vfio_name_is_mdev): a PCI address has a ':'. */
	if (!mdev && (!strchr(bdf, ':') || strlen(bdf) >= sizeof(vb->bdf) ||
		      strspn(bdf, "0123456789abcdefABCDEF:.") != strlen(bdf)))
		return mpdev_error_set(err, EINVAL, "'%s': expected vfio:DDDD:BB:DD.F",
				       cfg->device);
	if (!host->hub)
		return mpdev_error_set(err, EINVAL, "the vfio backend needs the remote's IOHUB");
	if (cfg->intx && strcmp(cfg->intx, "auto") && strcmp(cfg->intx, "direct") &&
	    strcmp(cfg->intx, "routed"))
		return mpdev_error_set(err, EINVAL, "unknown INTx mode '%s' (auto, direct, routed)",
				       cfg->intx);
	vb = calloc(1, sizeof(*vb));
	if (!vb)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	vb->be.ops = &vfio_backend_ops;
	vb->be.base = base;
	vb->be.host = host;
	vb->sys = cfg->sys ? cfg->sys : &vfio_sys_kernel;
	vb->dev.fd = -1;
	vb->mig.data_fd = -1;
	vb->intx.trigger = -1;
	vb->prefer_routed = cfg->intx && !strcmp(cfg->intx, "routed");
	vb->intx_auto = !cfg->intx || !strcmp(cfg->intx, "auto");
	snprintf(vb->bdf, sizeof(vb->bdf), "%s", bdf);
	vb->mdev = mdev;

	if (cfg->shared_iommu && *cfg->shared_iommu) {
		vb->iommu = *cfg->shared_iommu;
		vb->shares_iommu = true;
	} else {
		r = create_iommu(cfg, vb->sys, &vb->iommu, err);
		if (r < 0)
			goto fail;
		if (cfg->shared_iommu) {
			/* The VM's from now on, also if this device fails to open below. */
			*cfg->shared_iommu = vb->iommu;
			vb->shares_iommu = true;
		}
	}
	r = vb->iommu->ops->open_device(vb->iommu, vb->bdf, &fd, err);
	if (r < 0)
		goto fail;
	r = vfio_dev_init(&vb->dev, vb->sys, fd, err);
	if (r < 0)
		goto fail;
	r = vb->iommu->ops->get_info(vb->iommu, &vb->iinfo, err);
	if (r < 0)
		goto fail;
	build_info(vb);
	r = vfio_mig_init(&vb->mig, vb->sys, vb->dev.fd, vb->bdf, err);
	if (r < 0)
		goto fail;
	probe_iommu_dirty(vb);
	log_info(COMP, "%s: %04x:%04x, %s IOMMU, %zu usable IOVA range(s), dma_avail %u", vb->bdf,
		 vb->info.vendor_id, vb->info.device_id, vb->iommu->ops->name, vb->iinfo.n_ranges,
		 vb->iinfo.dma_avail);
	*out = &vb->be;
	return 0;
fail:
	vb_destroy(&vb->be);
	return r;
}
