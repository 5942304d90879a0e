#include "vfio_device.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_caps.h"

static int read_region(struct vfio_dev *d, uint32_t index, struct mpdev_error *err)
{
	struct vfio_region_info head = { .argsz = sizeof(head), .index = index };
	struct vfio_dev_region *r = &d->regions[index];
	struct vfio_region_info *ri;
	const struct vfio_region_info_cap_sparse_mmap *sparse;
	const struct vfio_region_info_cap_type *type;
	void *buf;
	size_t len;
	int ret;

	ret = vfio_info_grow(d->sys, d->fd, VFIO_DEVICE_GET_REGION_INFO, &head, sizeof(head), &buf,
			     &len, "VFIO_DEVICE_GET_REGION_INFO", err);
	if (ret < 0)
		return ret;
	ri = buf;
	memset(r, 0, sizeof(*r));
	r->flags = ri->flags;
	r->size = ri->size;
	r->offset = ri->offset;
	if (ri->flags & VFIO_REGION_INFO_FLAG_CAPS) {
		sparse = vfio_find_cap(buf, len, ri->cap_offset, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
				       sizeof(*sparse));
		if (sparse) {
			size_t room =
				(len - (size_t)((const uint8_t *)sparse - (const uint8_t *)buf) -
				 sizeof(*sparse)) /
				sizeof(sparse->areas[0]);

			for (uint32_t i = 0;
			     i < sparse->nr_areas && i < room && r->n_mmap < BACKEND_MAX_MMAP_AREAS;
			     i++) {
				r->mmap[r->n_mmap].offset = sparse->areas[i].offset;
				r->mmap[r->n_mmap].size = sparse->areas[i].size;
				r->n_mmap++;
			}
		}
		type = vfio_find_cap(buf, len, ri->cap_offset, VFIO_REGION_INFO_CAP_TYPE,
				     sizeof(*type));
		if (type) {
			r->type = type->type;
			r->subtype = type->subtype;
		}
		r->msix_mappable =
			vfio_find_cap(buf, len, ri->cap_offset, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
				      sizeof(struct vfio_info_cap_header)) != NULL;
	}
	/* mmap-able without a sparse list: the whole region is one area. */
	if ((r->flags & VFIO_REGION_INFO_FLAG_MMAP) && !r->n_mmap && r->size) {
		r->mmap[0].offset = 0;
		r->mmap[0].size = r->size;
		r->n_mmap = 1;
	}
	free(buf);
	return 0;
}

int vfio_dev_init(struct vfio_dev *d, const struct vfio_sys *sys, int fd, struct mpdev_error *err)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int r;

	memset(d, 0, sizeof(*d));
	d->sys = sys;
	d->fd = fd;
	if (sys->ioctl(sys->opaque, fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
		r = mpdev_error_set(err, errno, "VFIO_DEVICE_GET_INFO: %s", strerror(errno));
		goto fail;
	}
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
		r = mpdev_error_set(err, ENODEV, "the VFIO device is not a PCI device");
		goto fail;
	}
	d->flags = info.flags;
	d->num_regions = info.num_regions;
	d->num_irqs = info.num_irqs;
	for (uint32_t i = 0; i < info.num_regions && i < BACKEND_NUM_REGIONS; i++) {
		r = read_region(d, i, err);
		/* vfio-pci reports VGA only where the device has it: EINVAL means absent. */
		if (r == -EINVAL && i == BACKEND_REGION_VGA)
			continue;
		if (r < 0)
			goto fail;
	}
	for (uint32_t i = 0; i < info.num_irqs && i < BACKEND_NUM_IRQS; i++) {
		struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = i };

		if (sys->ioctl(sys->opaque, fd, VFIO_DEVICE_GET_IRQ_INFO, &irq) < 0) {
			/*
			 * ERR and REQ exist only where the device has them (AER,
			 * hot-unplug), and a mediated device may lack MSI-X too
			 * (mtty answers EINVAL): count 0, like a device that
			 * reports none.
			 */
			if (errno == EINVAL && i >= VFIO_PCI_MSIX_IRQ_INDEX)
				continue;
			r = mpdev_error_set(err, errno, "VFIO_DEVICE_GET_IRQ_INFO(%u): %s", i,
					    strerror(errno));
			goto fail;
		}
		d->irqs[i].count = irq.count;
		d->irqs[i].flags = irq.flags;
	}
	return 0;
fail:
	vfio_dev_close(d);
	return r;
}

void vfio_dev_close(struct vfio_dev *d)
{
	if (d->fd >= 0)
		d->sys->close(d->sys->opaque, d->fd);
	d->fd = -1;
}

int vfio_dev_rw(struct vfio_dev *d, uint32_t index, uint64_t offset, void *buf, uint32_t size,
		bool write, struct mpdev_error *err)
{
	const struct vfio_dev_region *r = &d->regions[index];
	ssize_t n;

	/* The server checked bounds against the same info; this is the last line. */
	if (index >= BACKEND_NUM_REGIONS || offset > r->size || size > r->size - offset)
		return mpdev_error_set(err, ERANGE, "region %u access out of range", index);
	if (write)
		n = d->sys->pwrite(d->sys->opaque, d->fd, buf, size, (off_t)(r->offset + offset));
	else
		n = d->sys->pread(d->sys->opaque, d->fd, buf, size, (off_t)(r->offset + offset));
	if (n < 0)
		return mpdev_error_set(err, errno, "region %u %s at 0x%llx: %s", index,
				       write ? "write" : "read", (unsigned long long)offset,
				       strerror(errno));
	if ((uint32_t)n != size)
		return mpdev_error_set(err, EIO, "region %u %s at 0x%llx: %zd of %u bytes", index,
				       write ? "write" : "read", (unsigned long long)offset, n,
				       size);
	return 0;
}

int vfio_dev_reset(struct vfio_dev *d, struct mpdev_error *err)
{
	if (!(d->flags & VFIO_DEVICE_FLAGS_RESET))
		return mpdev_error_set(err, ENOTTY,
				       "the device does not support VFIO_DEVICE_RESET");
	if (d->sys->ioctl(d->sys->opaque, d->fd, VFIO_DEVICE_RESET, NULL) < 0)
		return mpdev_error_set(err, errno, "VFIO_DEVICE_RESET: %s", strerror(errno));
	return 0;
}

int vfio_dev_set_irqs(struct vfio_dev *d, uint32_t index, uint32_t flags, uint32_t start,
		      uint32_t count, const void *data, size_t data_size, struct mpdev_error *err)
{
	size_t size = sizeof(struct vfio_irq_set) + data_size;
	struct vfio_irq_set *set = calloc(1, size);
	int r = 0;

	if (!set)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	set->argsz = (uint32_t)size;
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (data_size)
		memcpy(set->data, data, data_size);
	if (d->sys->ioctl(d->sys->opaque, d->fd, VFIO_DEVICE_SET_IRQS, set) < 0)
		r = mpdev_error_set(err, errno,
				    "VFIO_DEVICE_SET_IRQS(index %u, flags 0x%x, %u+%u): %s", index,
				    flags, start, count, strerror(errno));
	free(set);
	return r;
}
