/*
 * Device backend ops table. The server drives every device through these
 * calls and never learns which backend it talks to. Requests reach a backend
 * already validated against its own device info (region index, bounds,
 * access width, flags), so backends check only what is device-specific.
 */
#ifndef MPDEV_BACKEND_H
#define MPDEV_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "error.h"

struct event_base;
struct iohub;
struct vfio_iommu;
struct vfio_sys;

/* Region and IRQ numbering match VFIO's PCI indexes (and the protocol's). */
enum backend_region_index {
	BACKEND_REGION_BAR0 = 0,
	BACKEND_REGION_BAR5 = 5,
	BACKEND_REGION_ROM = 6,
	BACKEND_REGION_CONFIG = 7,
	BACKEND_REGION_VGA = 8,
	BACKEND_NUM_REGIONS = 9,
};

enum backend_irq_index {
	BACKEND_IRQ_INTX = 0,
	BACKEND_IRQ_MSI = 1,
	BACKEND_IRQ_MSIX = 2,
	BACKEND_IRQ_ERR = 3,
	BACKEND_IRQ_REQ = 4,
	BACKEND_NUM_IRQS = 5,
};

/* Same bit values as the protocol's RegionFlag / IrqFlag. */
#define BACKEND_REGION_READ	0x1u
#define BACKEND_REGION_WRITE	0x2u
#define BACKEND_REGION_MMAP	0x4u
#define BACKEND_REGION_IO	0x8u
#define BACKEND_REGION_MEM64	0x10u
#define BACKEND_REGION_PREFETCH 0x20u

#define BACKEND_IRQ_EVENTFD    0x1u
#define BACKEND_IRQ_MASKABLE   0x2u
#define BACKEND_IRQ_AUTOMASKED 0x4u
#define BACKEND_IRQ_NORESIZE   0x8u

#define BACKEND_MAX_MMAP_AREAS 8

struct backend_region_info {
	uint32_t flags; /* 0 (and size 0) for a region the device does not have */
	uint64_t size;
	uint32_t n_mmap;
	struct {
		uint64_t offset;
		uint64_t size;
	} mmap[BACKEND_MAX_MMAP_AREAS];
	uint32_t type, subtype;
};

struct backend_irq_info {
	uint32_t count;
	uint32_t flags;
};

struct backend_device_info {
	char name[64];
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	uint8_t revision;
	bool reset_supported;
	struct backend_region_info regions[BACKEND_NUM_REGIONS];
	struct backend_irq_info irqs[BACKEND_NUM_IRQS];
};

/*
 * What the server offers a device model: guest memory through the memory
 * table and interrupt delivery. Until the memory table and IOHUB exist these
 * fail with -ENOSYS and say so; a device model reports the failure in its
 * own way (edu: the DMA does not happen).
 */
struct backend_host {
	int (*dma_read)(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			struct mpdev_error *err);
	int (*dma_write)(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			 struct mpdev_error *err);
	/* Level of INTx pin (0 = INTA) as the device drives it. */
	int (*set_intx)(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err);
	/* Fires MSI/MSI-X vector of the given IRQ index. */
	int (*signal_vector)(struct backend_host *h, unsigned irq_index, unsigned vector,
			     struct mpdev_error *err);
	/*
	 * Zero-copy access: the remote's own addresses of [gpa, gpa + len), one
	 * iovec per memory table region the range spans, at most max (-E2BIG
	 * beyond; *n says how many were filled). -EFAULT (not all in the table)
	 * and -EACCES (write into a read-only region) as dma_read/dma_write, and
	 * nothing is filled. write: the device will write there (the pages are
	 * marked dirty now). The addresses stay valid until the backend's
	 * dma_quiesce returns, which the remote calls before any region goes.
	 */
	int (*dma_iov)(struct backend_host *h, uint64_t gpa, uint64_t len, bool write,
		       struct iovec *iov, unsigned max, unsigned *n, struct mpdev_error *err);
	/* The remote's IOHUB, for backends that route INTx themselves (vfio). */
	struct iohub *hub;
};

/*
 * A doorbell: a write the device accepts as an eventfd signal instead of a
 * message (vfio-user's GET_REGION_IO_FDS ioeventfd, the native protocol's
 * GetIoEventfds). A signalled eventfd is region_write(region, offset, data,
 * size). datamatch: a client routes only writes of exactly data there;
 * without it, any write of size bytes at offset.
 */
struct backend_ioeventfd {
	uint32_t region;
	uint64_t offset;
	uint32_t size; /* 1, 2, 4 or 8 */
	bool datamatch;
	uint64_t data;
};

#define BACKEND_MAX_IOEVENTFDS 64

/* A VFIO_DEVICE_SET_IRQS request with its descriptors already taken. */
struct backend_irq_request {
	uint32_t index, action, data, start, count;
	const bool *values; /* data BOOL: count entries */
	int *fds;	    /* data EVENTFD: count entries, -1 or owned by the callee */
};

#define BACKEND_IRQ_ACTION_TRIGGER 0u
#define BACKEND_IRQ_ACTION_MASK	   1u
#define BACKEND_IRQ_ACTION_UNMASK  2u
#define BACKEND_IRQ_DATA_NONE	   0u
#define BACKEND_IRQ_DATA_BOOL	   1u
#define BACKEND_IRQ_DATA_EVENTFD   2u

#define BACKEND_MAX_IOVA_RANGES 32

/* What the protocol's IommuInfo reports. kind uses the protocol's IommuKind numbers. */
struct backend_iommu_info {
	uint32_t kind;
	uint64_t pgsize_bitmap;
	size_t n_ranges;
	struct {
		uint64_t start, last; /* inclusive */
	} ranges[BACKEND_MAX_IOVA_RANGES];
	uint32_t dma_avail; /* further mappings accepted */
	uint32_t mappings_used;
	bool dirty_tracking;
};

/* How to create a backend (mpdev-remote's command line). */
struct backend_config {
	const char *device; /* "edu", or "vfio:0000:00:03.0" */
	const char *iommu; /* vfio: "auto" (iommufd if the kernel has it), "container", "iommufd" */
	const char *intx;  /* vfio: "auto" (direct), "direct" or "routed" (through the IOHUB) */
	unsigned nr_ioas;  /* vfio+iommufd: IOASes for the VM's devices; 1 (0): all share one */
	/* vfio+iommufd: "user" (NULL, the kernel's default) or "process" (IOMMU_OPTION_RLIMIT_MODE)
	 */
	const char *pin_accounting;
	/*
	 * vfio: the VM's IOMMU, which every vfio device of the remote attaches
	 * to (one container, or one iommufd with its IOASes): the first device
	 * creates it here, later ones join it. NULL: the device's own. The
	 * caller destroys it with backend_iommu_destroy after the backends.
	 */
	struct vfio_iommu **shared_iommu;
	const struct vfio_sys *sys; /* vfio: the kernel, or a model in tests (NULL: kernel) */
};

/* One memory table region as a backend sees it: the vfio backend maps it in the IOMMU. */
struct backend_dma_region {
	uint64_t iova; /* the guest-physical address */
	uint64_t size;
	void *vaddr; /* the remote's own mapping of the region */
	bool read_only;
};

/*
 * Migration (VFIO's v2 state machine, numbered as in linux/vfio.h). What a
 * device supports is a set of BACKEND_MIG_* flags, VFIO_MIGRATION_*'s bits.
 */
enum backend_mig_state {
	BACKEND_MIG_ERROR = 0,
	BACKEND_MIG_STOP = 1,
	BACKEND_MIG_RUNNING = 2,
	BACKEND_MIG_STOP_COPY = 3,
	BACKEND_MIG_RESUMING = 4,
	BACKEND_MIG_RUNNING_P2P = 5,
	BACKEND_MIG_PRE_COPY = 6,
	BACKEND_MIG_PRE_COPY_P2P = 7,
	BACKEND_MIG_NUM_STATES = 8,
};

#define BACKEND_MIG_FLAG_STOP_COPY 0x1u /* STOP, STOP_COPY, RESUMING */
#define BACKEND_MIG_FLAG_P2P	   0x2u /* RUNNING_P2P (+ PRE_COPY_P2P with PRE_COPY) */
#define BACKEND_MIG_FLAG_PRE_COPY  0x4u /* PRE_COPY (+ PRE_COPY_P2P with P2P) */

/* A range of guest-physical space to track writes in (DirtyStart). */
struct backend_dirty_range {
	uint64_t iova, size;
};

struct backend;

struct backend_ops {
	const char *name;
	void (*get_info)(struct backend *b, struct backend_device_info *info);
	int (*region_read)(struct backend *b, uint32_t index, uint64_t offset, void *data,
			   uint32_t size, struct mpdev_error *err);
	int (*region_write)(struct backend *b, uint32_t index, uint64_t offset, const void *data,
			    uint32_t size, struct mpdev_error *err);
	/* Back to power-on state; also called when a proxy disconnects. */
	int (*reset)(struct backend *b, struct mpdev_error *err);
	/*
	 * Optional: a memory table region appears or goes away. Called once per
	 * region change, never for the whole table; the remote's own mapping
	 * exists before map and after unmap.
	 */
	int (*dma_map)(struct backend *b, const struct backend_dma_region *r,
		       struct mpdev_error *err);
	int (*dma_unmap)(struct backend *b, const struct backend_dma_region *r,
			 struct mpdev_error *err);
	/* Optional: IOMMU facts; without it the remote reports its own bounds checks. */
	int (*iommu_info)(struct backend *b, struct backend_iommu_info *info,
			  struct mpdev_error *err);
	/*
	 * Optional: interrupts handled by the backend itself (vfio); without these
	 * the remote's own emulated-interrupt layer serves the device model.
	 * Both own the descriptors they are given, on success and failure.
	 */
	int (*set_irqs)(struct backend *b, struct backend_irq_request *req,
			struct mpdev_error *err);
	int (*set_intx_irqfd)(struct backend *b, uint32_t pin, uint32_t pirq, int irqfd,
			      int resamplefd, struct mpdev_error *err);
	/*
	 * Optional: the peer says (Hello.resume) it is replaying a session into
	 * this freshly started remote. State the replay cannot bring back is
	 * lost; the device reports that through its own error path.
	 */
	void (*resumed)(struct backend *b);
	/*
	 * Optional, all or none: migration. mig_flags says what the device
	 * supports (0: nothing). mig_arc carries out exactly one arc of the
	 * FSM (remote/mig_fsm.h picks them; a backend never sees a combined
	 * transition) and sets *now to the state the device is in afterwards:
	 * to on success; on failure from, or BACKEND_MIG_ERROR if the device
	 * could not stay there. Entering a saving state (STOP_COPY, PRE_COPY,
	 * PRE_COPY_P2P from outside that group) starts a new stream, entering
	 * RESUMING a new load; leaving the group ends it.
	 */
	uint32_t (*mig_flags)(struct backend *b);
	int (*mig_arc)(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		       enum backend_mig_state *now, struct mpdev_error *err);
	/*
	 * Saving states only: the next at most len bytes of the stream. 0 means
	 * no more now: the end of the stream in STOP_COPY, the end of what is
	 * ready in PRE_COPY(_P2P) (more may come later, or in STOP_COPY).
	 */
	ssize_t (*mig_save)(struct backend *b, void *buf, size_t len, struct mpdev_error *err);
	/* RESUMING only: the next len bytes of the stream, in order, any segmentation. */
	int (*mig_load)(struct backend *b, const void *buf, size_t len, struct mpdev_error *err);
	/* PRE_COPY(_P2P) only: VFIO_MIG_GET_PRECOPY_INFO. */
	int (*mig_precopy_info)(struct backend *b, uint64_t *initial_bytes, uint64_t *dirty_bytes,
				struct mpdev_error *err);
	/*
	 * Optional, all or none: dirty tracking of the device's own DMA, for
	 * backends whose DMA the remote does not see (vfio). Without them the
	 * remote tracks what the device model writes through the memory
	 * table. dirty_report fills bitmap (len bytes, one bit per page of
	 * [iova, iova + size), VFIO's layout) and clears what it reported.
	 */
	int (*dirty_start)(struct backend *b, const struct backend_dirty_range *ranges, size_t n,
			   uint64_t page_size, struct mpdev_error *err);
	int (*dirty_stop)(struct backend *b, struct mpdev_error *err);
	int (*dirty_report)(struct backend *b, uint64_t iova, uint64_t size, uint64_t page_size,
			    uint8_t *bitmap, size_t len, struct mpdev_error *err);
	/*
	 * Optional: a memory table region is about to go (remove, replace,
	 * disconnect): finish or cancel every access in flight through dma_iov
	 * addresses before returning. Called before the backend's dma_unmap and
	 * before the remote's munmap.
	 */
	void (*dma_quiesce)(struct backend *b);
	/* Optional: the device's doorbells, at most max; returns how many (0: none). */
	unsigned (*ioeventfds)(struct backend *b, struct backend_ioeventfd *v, unsigned max);
	/* Optional: the proxy is gone; drop interrupt setup (DMA goes with the table). */
	void (*release)(struct backend *b);
	void (*destroy)(struct backend *b);
};

/* Every backend embeds this as its first member. */
struct backend {
	const struct backend_ops *ops;
	struct event_base *base; /* the remote's loop, for deferred device work */
	struct backend_host *host;
};

/*
 * Creates the backend cfg->device names ("edu": the emulated edu device;
 * "vfio:BDF": a host device through VFIO). The host must outlive it.
 */
int backend_create(const struct backend_config *cfg, struct event_base *base,
		   struct backend_host *host, struct backend **out, struct mpdev_error *err);
void backend_destroy(struct backend *b);
/* The VM's IOMMU of backend_config.shared_iommu, once every device on it is destroyed. */
void backend_iommu_destroy(struct vfio_iommu *io);

#endif
