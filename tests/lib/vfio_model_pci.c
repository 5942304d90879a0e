/*
 * The device file of edu behind vfio-pci: which ioctls work before BIND,
 * device and region info (offset = index << 40, a sparse-mmap capability),
 * pread / pwrite of BAR0 and config space, RESET, and disabling interrupts
 * on the last close. Mirrors drivers/vfio/vfio_main.c (device fd gating),
 * drivers/vfio/pci/vfio_pci_core.c and drivers/vfio/pci/vfio_pci_rdwr.c.
 */
#include "vfio_model_internal.h"

#include <string.h>
#include <unistd.h>

/* vfio_pci_core_do_io_rw(): naturally aligned accesses of 8, 4, 2 or 1 bytes. */
static ssize_t bar0_rw(struct mdev *d, void *buf, size_t len, uint64_t pos, bool write)
{
	size_t done = 0;

	if (pos >= VFIO_MODEL_BAR0_SIZE)
		return -EINVAL;
	if (len > VFIO_MODEL_BAR0_SIZE - pos)
		len = VFIO_MODEL_BAR0_SIZE - pos;
	while (done < len) {
		uint64_t a = pos + done, v = 0;
		unsigned sz = 1;

		if (len - done >= 8 && !(a % 8))
			sz = 8;
		else if (len - done >= 4 && !(a % 4))
			sz = 4;
		else if (len - done >= 2 && !(a % 2))
			sz = 2;
		if (write) {
			memcpy(&v, (uint8_t *)buf + done, sz);
			vfm_edu_write(d, a, v, sz);
		} else {
			v = vfm_edu_read(d, a, sz);
			memcpy((uint8_t *)buf + done, &v, sz);
		}
		done += sz;
	}
	return (ssize_t)done;
}

/* Config space: writes reach the command register, BAR0 (sized) and the interrupt line. */
static ssize_t config_rw(struct mdev *d, void *buf, size_t len, uint64_t pos, bool write)
{
	if (pos >= sizeof(d->config))
		return -EINVAL;
	if (len > sizeof(d->config) - pos)
		len = sizeof(d->config) - pos;
	if (!write) {
		memcpy(buf, d->config + pos, len);
		return (ssize_t)len;
	}
	for (size_t i = 0; i < len; i++) {
		uint64_t a = pos + i;
		uint8_t b = ((const uint8_t *)buf)[i];

		if (a == 0x04 || a == 0x05 || a == 0x3c)
			d->config[a] = b;
		else if (a == 0x10 || a == 0x11) /* BAR0: 1 MiB, 32-bit memory */
			d->config[a] = 0;
		else if (a == 0x12)
			d->config[a] = b & 0xf0;
		else if (a == 0x13)
			d->config[a] = b;
	}
	return (ssize_t)len;
}

static int dev_get_info(struct vfio_device_info *arg)
{
	struct vfio_device_info info;

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, 16);
	if (info.argsz < 16) /* offsetofend(num_irqs) */
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	memcpy(arg, &info, 16);
	return 0;
}

/*
 * Region info: offset = index << 40. BAR0 is 1 MiB, read/write/mmap, with a
 * sparse-mmap capability (vfio-pci adds one only to a BAR holding an MSI-X
 * table; the model adds it to BAR0 so the chain is exercised). VGA: EINVAL
 * (edu is no VGA device); absent BARs and ROM: size 0, flags 0.
 */
static int dev_get_region_info(struct vfio_region_info *arg)
{
	struct vfio_region_info info;
	uint8_t caps[64];
	size_t used = 0, last = SIZE_MAX;
	struct {
		struct vfio_region_info_cap_sparse_mmap h;
		struct vfio_region_sparse_mmap_area a[1];
	} sparse = { .h = { .header = { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 }, .nr_areas = 1 },
		     .a = { { 0, VFIO_MODEL_BAR0_SIZE } } };

	if (!arg)
		return -EFAULT;
	memcpy(&info, arg, sizeof(info));
	if (info.argsz < 32) /* offsetofend(offset) */
		return -EINVAL;
	if (info.index >= VFIO_PCI_NUM_REGIONS || info.index == VFIO_PCI_VGA_REGION_INDEX)
		return -EINVAL;
	info.offset = (uint64_t)info.index << REGION_SHIFT;
	info.flags = 0;
	info.size = 0;
	info.cap_offset = 0;
	if (info.index == VFIO_PCI_CONFIG_REGION_INDEX) {
		info.size = 256;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	} else if (info.index == VFIO_PCI_BAR0_REGION_INDEX) {
		info.size = VFIO_MODEL_BAR0_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			     VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
		used = vfm_cap_add(caps, used, &last, &sparse, sizeof(sparse));
		vfm_info_with_caps(arg, &info, sizeof(info), &info.argsz, &info.cap_offset, caps,
				   used, sizeof(info));
		return 0;
	}
	memcpy(arg, &info, sizeof(info));
	return 0;
}

/* A device file; the last close disables interrupts (vfio_pci_core_disable). */
int vfm_dev_open_file(struct vfio_model *m, struct mdev *d, struct mgroup *g)
{
	struct dfile *df = calloc(1, sizeof(*df));
	int fd;

	if (!df)
		return -ENOMEM;
	df->dev = d;
	df->group = g;
	df->access = g != NULL; /* group opens are usable at once; cdevs after BIND */
	fd = vfm_fd_alloc(m, FD_DEVICE, df);
	if (fd < 0) {
		free(df);
		return -EMFILE;
	}
	if (g) {
		g->dev_files++;
		d->open_count++;
	}
	return fd;
}

void vfm_dev_close_file(struct vfio_model *m, struct dfile *df)
{
	struct mdev *d = df->dev;
	bool counted = df->access;

	if (df->group) {
		df->group->dev_files--;
		vfm_group_maybe_release(m, df->group);
	} else {
		vfm_cdev_unbind(m, df);
	}
	if (counted && --d->open_count == 0) {
		for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++)
			vfm_irq_release(d, i);
		d->irq_type = IRQ_NONE;
		vfm_mig_reset(m, d); /* close_device: the driver drops its migration files */
	}
	free(df);
}

int vfm_dev_ioctl(struct vfio_model *m, struct dfile *df, unsigned long req, void *arg)
{
	struct mdev *d = df->dev;

	if (req == VFIO_DEVICE_BIND_IOMMUFD) {
		if (df->group)
			return -EINVAL; /* BIND_IOMMUFD only for cdev fds */
		return arg ? vfm_cdev_bind(m, df, arg) : -EFAULT;
	}
	if (!df->access)
		return -EINVAL; /* [vmain]: nothing works before BIND */
	if (!df->group) {
		if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT)
			return arg ? vfm_cdev_attach(m, df, arg) : -EFAULT;
		if (req == VFIO_DEVICE_DETACH_IOMMUFD_PT) {
			const struct vfio_device_detach_iommufd_pt *dt = arg;

			if (!dt)
				return -EFAULT;
			if (dt->argsz < 8 || dt->flags)
				return -EINVAL;
			vfm_idev_detach(m, df->ictx, df->idev);
			return 0;
		}
	}
	switch (req) {
	case VFIO_DEVICE_GET_INFO:
		return dev_get_info(arg);
	case VFIO_DEVICE_GET_REGION_INFO:
		return dev_get_region_info(arg);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return vfm_dev_get_irq_info(d, arg);
	case VFIO_DEVICE_SET_IRQS:
		return vfm_dev_set_irqs(d, arg);
	case VFIO_DEVICE_RESET:
		vfm_edu_reset(d);
		vfm_mig_reset(m, d); /* mtty_reset(): RUNNING, files disabled */
		return 0;
	case VFIO_DEVICE_FEATURE:
		return vfm_dev_feature(m, d, arg);
	default:
		return -ENOTTY;
	}
}

ssize_t vfm_dev_rw(struct dfile *df, void *buf, size_t len, off_t off, bool write)
{
	uint64_t index = (uint64_t)off >> REGION_SHIFT,
		 pos = (uint64_t)off & ((1ull << REGION_SHIFT) - 1);

	if (!df->access)
		return -EINVAL;
	if (off < 0)
		return -EINVAL;
	if (!len)
		return 0;
	if (index == VFIO_PCI_BAR0_REGION_INDEX)
		return bar0_rw(df->dev, buf, len, pos, write);
	if (index == VFIO_PCI_CONFIG_REGION_INDEX)
		return config_rw(df->dev, buf, len, pos, write);
	return -EINVAL;
}
