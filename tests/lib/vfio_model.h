/*
 * A model of the kernel's VFIO and iommufd uAPI behind a struct vfio_sys, for
 * testing the VFIO backend where the real thing cannot run (Debian's kernels
 * have no CONFIG_IOMMUFD; CI has no IOMMU). It fakes:
 *
 *  - a sysfs tree and device nodes in a temporary directory (vfio_model_root):
 *      sys/bus/pci/devices/BDF -> ../../../devices/pci0000:00/BDF, whose
 *      driver, iommu_group and vfio-dev/vfioN are what the kernel shows;
 *      sys/kernel/iommu_groups/N/devices/BDF;
 *      dev/iommu, dev/vfio/vfio, dev/vfio/N, dev/vfio/devices/vfioN (empty
 *      files: their existence is checkable, their open() is intercepted);
 *  - iommufd: IOAS objects with areas, reserved ranges, auto domains (HWPT),
 *    MAP/COPY/UNMAP/IOVA_RANGES/DESTROY with the kernel's checks and errnos,
 *    pinned pages shared between IOAS that COPY from one another, an
 *    RLIMIT_MEMLOCK budget;
 *  - VFIO device cdevs: BIND_IOMMUFD, ATTACH/DETACH_IOMMUFD_PT;
 *  - the legacy container: groups, SET_CONTAINER, SET_IOMMU(TYPE1v2),
 *    IOMMU_GET_INFO with its capability chain, MAP_DMA/UNMAP_DMA (type1 v2);
 *  - the device: QEMU's edu (1234:11e8) as vfio-pci presents it: device,
 *    region and IRQ info, SET_IRQS (recorded, and eventfds signalled when
 *    edu raises an interrupt), RESET, pread/pwrite of BAR0 and config space;
 *    optionally migration v2 and DMA logging (VFIO_DEVICE_FEATURE, a
 *    data_fd per session) and type1's VFIO_IOMMU_DIRTY_PAGES.
 *
 * Every call through the table is counted; vfio_model_fail_nth() makes one
 * of them fail with a chosen errno before it has any effect (a failing close
 * still releases the descriptor, as close(2) does).
 *
 * The semantics and their kernel source locations are in vfio_model_*.c, one
 * file per kernel file it mirrors (vfio_model_internal.h lists them).
 * Single-threaded, like the remote.
 */
#ifndef MPDEV_VFIO_MODEL_H
#define MPDEV_VFIO_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfio_sys.h"

struct fail_nth_injector;

/* Model descriptors are numbered from here; anything below is a real fd. */
#define VFIO_MODEL_FD_BASE   10000
#define VFIO_MODEL_PAGE_SIZE 4096ull

/* edu's BAR0 and the x86 MSI window, as the model's IOMMU reserves it. */
#define VFIO_MODEL_BAR0_SIZE	 0x100000ull
#define VFIO_MODEL_MSI_START	 0xfee00000ull
#define VFIO_MODEL_MSI_LAST	 0xfeefffffull
#define VFIO_MODEL_APERTURE_LAST ((1ull << 48) - 1) /* 4-level VT-d */

struct vfio_model;

/* A fresh model (with /dev/iommu present, no devices). NULL on failure. */
struct vfio_model *vfio_model_new(void);
/* Releases everything, model descriptors and the temporary directory too. */
void vfio_model_free(struct vfio_model *m);

const struct vfio_sys *vfio_model_sys(struct vfio_model *m);
/* The temporary directory holding sys/ and dev/. */
const char *vfio_model_root(const struct vfio_model *m);

/*
 * Adds an edu device at bdf in IOMMU group `group`, bound to driver
 * ("vfio-pci", another name, or NULL for none). Devices not bound to vfio-pci
 * have no cdev and cannot be opened through VFIO. Returns the cdev number N
 * (dev/vfio/devices/vfioN) for vfio-pci devices, 0 for others, or -errno.
 */
int vfio_model_add_device(struct vfio_model *m, const char *bdf, int group, const char *driver);

/* Configuration. */
void vfio_model_set_group_viable(struct vfio_model *m, int group, bool viable);
void vfio_model_set_iommufd(struct vfio_model *m, bool present);	   /* dev/iommu exists */
void vfio_model_set_msi_isolated(struct vfio_model *m, bool isolated);	   /* interrupt remapping */
void vfio_model_set_memlock_pages(struct vfio_model *m, uint64_t pages);   /* RLIMIT_MEMLOCK */
void vfio_model_set_dma_entry_limit(struct vfio_model *m, uint32_t limit); /* type1 */

/* Fault injection: call n (1-based, counting every call through the table) fails with err. */
void vfio_model_fail_nth(struct vfio_model *m, unsigned long n, int err);
unsigned long vfio_model_calls(const struct vfio_model *m);
/* Whether the armed failure has been delivered. */
bool vfio_model_fail_hit(const struct vfio_model *m);
/* The same for the fail-nth engine (fail_nth.h): the struct vfio_model is its inj. */
extern const struct fail_nth_injector vfio_model_fail_nth_injector;

/* Inspection. */
struct vfio_model_mapping {
	uint64_t iova, length;
	uint64_t vaddr;
	bool writable;
};

/* Open model descriptors (iommufd, container, group and device files). */
int vfio_model_open_fds(const struct vfio_model *m);
/* iommufd contexts still alive (an fd open, or a device bound to them). */
int vfio_model_iommufd_contexts(const struct vfio_model *m);
/* Live objects (IOAS, devices, HWPTs) over all iommufd contexts. */
int vfio_model_iommufd_objects(const struct vfio_model *m);
/* IOAS ids of the most recently opened live iommufd context, ascending. */
size_t vfio_model_ioas_list(const struct vfio_model *m, uint32_t *ids, size_t max);
/* The areas of an IOAS of that context, by IOVA; -ENOENT if no such IOAS. */
ssize_t vfio_model_ioas_mappings(const struct vfio_model *m, uint32_t ioas_id,
				 struct vfio_model_mapping *out, size_t max);
/* The DMA mappings of the most recently opened live container with an IOMMU. */
ssize_t vfio_model_container_mappings(const struct vfio_model *m, struct vfio_model_mapping *out,
				      size_t max);
/* Pages pinned (charged to the memlock budget) by iommufd and type1 together. */
uint64_t vfio_model_pinned_pages(const struct vfio_model *m);
/* Live BAR mmaps handed out by the model. */
int vfio_model_bar_mmaps(const struct vfio_model *m);

struct vfio_model_irq {
	uint32_t count;	    /* vectors with a trigger eventfd */
	int32_t trigger[4]; /* -1: none */
	int32_t unmask_fd;  /* INTx unmask eventfd, -1: none */
	bool masked;	    /* INTx */
	uint32_t set_calls; /* successful SET_IRQS on this index */
	uint32_t last_flags;
	uint32_t signals; /* times the model signalled a trigger */
};

struct vfio_model_device {
	int open_count;	  /* open device files (group path or bound cdev) */
	bool bound;	  /* bound to an iommufd through its cdev */
	uint32_t devid;	  /* iommufd device object id when bound */
	uint32_t hwpt_id; /* attached page table, 0: none */
	uint32_t ioas_id; /* the IOAS behind it, 0: none */
	unsigned resets;
	struct vfio_model_irq irqs[5];
	uint32_t liveness; /* edu register 0x04 as last written */
};

/* The state of the device at bdf; -ENOENT if there is none. */
int vfio_model_device_state(const struct vfio_model *m, const char *bdf,
			    struct vfio_model_device *out);
/* Makes edu raise (or lower) its interrupt status bits, as its DMA/factorial do. */
int vfio_model_device_irq(struct vfio_model *m, const char *bdf, uint32_t status, bool raise);

/*
 * Migration (vfio_model_mig.c): a small migration driver for edu with the
 * kernel's FSM. flags: VFIO_MIGRATION_* (0, the default: no mig_ops). The
 * stream carries edu's registers (liveness among them).
 */
int vfio_model_set_migration(struct vfio_model *m, const char *bdf, uint32_t flags);
/* The device's DMA logging (log_ops). */
int vfio_model_set_dma_logging(struct vfio_model *m, const char *bdf, bool present);
/* The driver's next FSM step fails with err, leaving the device in ERROR if to_error. */
int vfio_model_mig_fail_next(struct vfio_model *m, const char *bdf, int err, bool to_error);
/* The device's migration state (VFIO numbering), -ENOENT without such a device. */
int vfio_model_mig_state(const struct vfio_model *m, const char *bdf);
/* Migration files still open (each is a real descriptor, a memfd). */
int vfio_model_migfs(const struct vfio_model *m);
/* The device wrote the page at iova (what DMA logging reports next). */
int vfio_model_device_dirty(struct vfio_model *m, const char *bdf, uint64_t iova);
bool vfio_model_device_logging(const struct vfio_model *m, const char *bdf);
/* Whether some container has VFIO_IOMMU_DIRTY_PAGES tracking started. */
bool vfio_model_container_dirty_tracking(const struct vfio_model *m);

#endif
