/* A VFIO device fd: what the kernel says it has, and access to it. */
#ifndef MPDEV_VFIO_DEVICE_H
#define MPDEV_VFIO_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "vfio_sys.h"

struct vfio_dev_region {
	uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
	uint64_t size;
	uint64_t offset; /* of the region within the device fd */
	uint32_t n_mmap;
	struct {
		uint64_t offset, size;
	} mmap[BACKEND_MAX_MMAP_AREAS];
	uint32_t type, subtype;
	bool msix_mappable;
};

struct vfio_dev {
	const struct vfio_sys *sys;
	int fd;
	uint32_t flags; /* VFIO_DEVICE_FLAGS_* */
	uint32_t num_regions, num_irqs;
	struct vfio_dev_region regions[BACKEND_NUM_REGIONS];
	struct {
		uint32_t count, flags; /* VFIO_IRQ_INFO_* */
	} irqs[BACKEND_NUM_IRQS];
};

/* Reads device, region (with capability chains) and IRQ info. Takes fd. */
int vfio_dev_init(struct vfio_dev *d, const struct vfio_sys *sys, int fd, struct mpdev_error *err);
void vfio_dev_close(struct vfio_dev *d);

int vfio_dev_rw(struct vfio_dev *d, uint32_t index, uint64_t offset, void *buf, uint32_t size,
		bool write, struct mpdev_error *err);
int vfio_dev_reset(struct vfio_dev *d, struct mpdev_error *err);

/* VFIO_DEVICE_SET_IRQS; data is count int32 eventfds, count bools, or nothing. */
int vfio_dev_set_irqs(struct vfio_dev *d, uint32_t index, uint32_t flags, uint32_t start,
		      uint32_t count, const void *data, size_t data_size, struct mpdev_error *err);

#endif
