/*
 * The IOMMU side of a VFIO device: the legacy container (TYPE1v2) or
 * iommufd. Both open a device by PCI address and attach it, map and unmap
 * IOVA ranges one memory-table region at a time, and report what the kernel
 * says about usable IOVA ranges and the mapping budget.
 */
#ifndef MPDEV_VFIO_IOMMU_H
#define MPDEV_VFIO_IOMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "vfio_sys.h"

#define VFIO_IOMMU_MAX_RANGES 32

enum vfio_iommu_kind {
	VFIO_IOMMU_CONTAINER = 2, /* the protocol's IOMMU_TYPE1 */
	VFIO_IOMMU_IOMMUFD = 3,	  /* the protocol's IOMMU_IOMMUFD */
};

struct vfio_iommu_range {
	uint64_t start;
	uint64_t last; /* inclusive */
};

struct vfio_iommu_info {
	enum vfio_iommu_kind kind;
	uint64_t pgsize_bitmap;
	size_t n_ranges;
	struct vfio_iommu_range ranges[VFIO_IOMMU_MAX_RANGES];
	/* Mappings the kernel still accepts; UINT32_MAX when it states no limit. */
	uint32_t dma_avail;
};

struct vfio_iommu;

struct vfio_iommu_ops {
	const char *name;
	/*
	 * Opens the PCI device at bdf ("0000:00:03.0") and attaches it to this
	 * IOMMU; returns the VFIO device fd in *device_fd. Clear errors for the
	 * usual mistakes: not bound to vfio-pci, group not viable (naming the
	 * devices that make it so), no IOMMU, interrupt remapping refused.
	 */
	int (*open_device)(struct vfio_iommu *io, const char *bdf, int *device_fd,
			   struct mpdev_error *err);
	int (*map)(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *vaddr, bool writable,
		   struct mpdev_error *err);
	/* Unmaps exactly [iova, iova + size), which must be one earlier map. */
	int (*unmap)(struct vfio_iommu *io, uint64_t iova, uint64_t size, struct mpdev_error *err);
	int (*get_info)(struct vfio_iommu *io, struct vfio_iommu_info *info,
			struct mpdev_error *err);
	/*
	 * Dirty tracking of the DMA this IOMMU translates, for every mapping at
	 * once. dirty_probe: 0 where the kernel can, else -ENOTSUP and why.
	 * The others fail with that reason where it cannot.
	 */
	int (*dirty_probe)(struct vfio_iommu *io, struct mpdev_error *err);
	int (*dirty_start)(struct vfio_iommu *io, uint64_t page_size, struct mpdev_error *err);
	int (*dirty_stop)(struct vfio_iommu *io, struct mpdev_error *err);
	/* bitmap: len bytes, bit i = page i of [iova, iova + size). Clears what it reports. */
	int (*dirty_report)(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t page_size,
			    uint8_t *bitmap, size_t len, struct mpdev_error *err);
	/* Detaches and closes everything (the device fds are the caller's to close first). */
	void (*destroy)(struct vfio_iommu *io);
};

struct vfio_iommu {
	const struct vfio_iommu_ops *ops;
	const struct vfio_sys *sys;
	/* Live maps, whichever of the devices attached to it asked for them. */
	uint32_t mappings;
};

/* The legacy container: /dev/vfio/vfio + groups, TYPE1v2. */
int vfio_container_create(const struct vfio_sys *sys, struct vfio_iommu **out,
			  struct mpdev_error *err);

/*
 * iommufd: /dev/iommu, devices by their cdev (/dev/vfio/devices/vfioN).
 * With nr_ioas > 1 each opened device gets its own IOAS (up to nr_ioas) and a
 * map is made once, in the first IOAS, and IOMMU_IOAS_COPY'd into the others,
 * sharing one set of pinned pages.
 */
int vfio_iommufd_create(const struct vfio_sys *sys, unsigned nr_ioas, struct vfio_iommu **out,
			struct mpdev_error *err);

/*
 * How the kernel charges what iommufd pins (IOMMU_OPTION_RLIMIT_MODE): false,
 * the kernel's default, to the user's locked_vm; true to the process (its
 * locked_vm, against its own RLIMIT_MEMLOCK, as the type1 container does).
 * Pinned pages show in the process's VmPin either way. Needs
 * CAP_SYS_RESOURCE and must come before the first device or IOAS.
 */
int vfio_iommufd_set_pin_accounting(struct vfio_iommu *io, bool per_process,
				    struct mpdev_error *err);

/* Whether the kernel offers iommufd (for --iommu auto). */
bool vfio_iommufd_available(const struct vfio_sys *sys);

/* Shared helpers for both kinds (vfio_pci_sysfs.c). */

/*
 * A device is named by its PCI address (DDDD:BB:DD.F) or, for a mediated
 * device, by its UUID. UUIDs have no ':' and PCI addresses always do, so
 * the name says which bus it lives on.
 */
bool vfio_name_is_mdev(const char *name);
/* The device's sysfs directory: SYSFS/bus/pci/devices/BDF or SYSFS/bus/mdev/devices/UUID. */
void vfio_sysfs_dev_dir(const struct vfio_sys *sys, const char *name, char *buf, size_t len);

/* -ENODEV unless /sys/bus/pci/devices/bdf exists and is bound to vfio-pci (err says which driver).
 */
int vfio_check_bound(const struct vfio_sys *sys, const char *bdf, struct mpdev_error *err);
/* The IOMMU group number of bdf; -ENODEV with "no IOMMU" when it has none. */
int vfio_group_of(const struct vfio_sys *sys, const char *bdf, struct mpdev_error *err);
/*
 * -EBUSY if a device in group is bound to a driver other than vfio-pci (or
 * pci-stub/none), with err naming them.
 */
int vfio_group_check_viable(const struct vfio_sys *sys, int group, struct mpdev_error *err);
/* Checks RLIMIT_MEMLOCK against bytes about to be pinned: -ENOMEM saying how much is needed. */
int vfio_check_memlock(uint64_t pinned_after, struct mpdev_error *err);

#endif
