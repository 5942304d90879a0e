/*
 * Interrupts of edu behind vfio-pci: IRQ info, SET_IRQS validation and its
 * INTx (automasked; trigger, mask, unmask, unmask eventfd) and MSI handlers,
 * the eventfds the "kernel" holds, and what a raised interrupt signals.
 * Mirrors drivers/vfio/pci/vfio_pci_intrs.c and the irq info part of
 * drivers/vfio/pci/vfio_pci_core.c.
 */
#include "vfio_model_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void vfm_irq_release(struct mdev *d, int index)
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

void vfm_device_irq(struct mdev *d, uint32_t bits, bool raise)
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

int vfm_dev_get_irq_info(const struct mdev *d, struct vfio_irq_info *arg)
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
			vfm_irq_release(d, VFIO_PCI_INTX_IRQ_INDEX);
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
		vfm_irq_release(d, index);
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
					vfm_irq_release(d, index);
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
int vfm_dev_set_irqs(struct mdev *d, struct vfio_irq_set *arg)
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
			vfm_irq_release(d, hdr.index);
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
