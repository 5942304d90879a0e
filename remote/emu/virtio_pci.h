/*
 * The virtio 1.x modern PCI transport (virtio spec 1.2 §4.1) for emulated
 * device models: config space with the virtio vendor capabilities and
 * MSI-X, the common/ISR/device/notify structures in BAR0, the MSI-X table
 * and PBA in BAR2, feature negotiation, queue setup on struct virtq and
 * interrupt delivery (MSI-X vector or INTx with the ISR). A device model
 * embeds struct virtio_pci, describes itself in struct virtio_pci_dev and
 * sees only its own config space, its queues' notifications and resets.
 *
 * BAR0 (32-bit memory, 16 KiB): common cfg 0x0000, ISR 0x1000, device cfg
 * 0x2000, notify 0x3000 (queue q at 0x3000 + 4 q). BAR2 (32-bit memory,
 * 4 KiB): MSI-X table at 0, PBA at 0x800.
 *
 * A queue whose driver broke a rule (virtio_pci_queue_error) stops: the
 * device sets DEVICE_NEEDS_RESET, sends a configuration change interrupt
 * and processes nothing more on that queue until the driver resets it.
 */
#ifndef MPDEV_VIRTIO_PCI_H
#define MPDEV_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "pci_config.h"
#include "virtq.h"

#define VIRTIO_PCI_VENDOR_ID	  0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* + virtio device id */
#define VIRTIO_PCI_SUBSYS_ID	  0x1100
#define VIRTIO_PCI_REVISION	  1

#define VIRTIO_PCI_MAX_QUEUES  16
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_PCI_MAX_QUEUES + 1)
#define VIRTIO_NO_VECTOR       0xffff

/* BAR layout. */
#define VIRTIO_PCI_BAR0_SIZE	 0x4000u
#define VIRTIO_PCI_COMMON_OFF	 0x0000u
#define VIRTIO_PCI_ISR_OFF	 0x1000u
#define VIRTIO_PCI_DEVICE_OFF	 0x2000u
#define VIRTIO_PCI_NOTIFY_OFF	 0x3000u
#define VIRTIO_PCI_STRUCT_SIZE	 0x1000u
#define VIRTIO_PCI_NOTIFY_MULT	 4u
#define VIRTIO_PCI_MSIX_BAR	 2u
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000u
#define VIRTIO_PCI_MSIX_PBA_OFF	 0x800u

/* Config space: the capabilities, in list order. */
#define VIRTIO_PCI_CAP_COMMON_OFF 0x40
#define VIRTIO_PCI_CAP_NOTIFY_OFF 0x50
#define VIRTIO_PCI_CAP_ISR_OFF	  0x64
#define VIRTIO_PCI_CAP_DEVICE_OFF 0x74
#define VIRTIO_PCI_CAP_PCICFG_OFF 0x84
#define VIRTIO_PCI_CAP_MSIX_OFF	  0x98

/* Feature bits the transport itself knows (spec §6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_BIT(b)	       (1ull << (b))

#define VIRTIO_STATUS_ACKNOWLEDGE	 0x01
#define VIRTIO_STATUS_DRIVER		 0x02
#define VIRTIO_STATUS_DRIVER_OK		 0x04
#define VIRTIO_STATUS_FEATURES_OK	 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED		 0x80

/* What the device model is, and its callbacks (opaque is its own). */
struct virtio_pci_dev {
	const char *name;   /* for the log */
	uint16_t virtio_id; /* 2: block */
	uint32_t class_code;
	uint64_t features; /* offered, VERSION_1 and the ring features included */
	uint16_t num_queues;
	uint16_t queue_max_size; /* a power of 2 */
	uint32_t config_size;	 /* bytes of device config, at most VIRTIO_PCI_STRUCT_SIZE */
	/* Device config access, within config_size; an error is logged and ignored. */
	int (*config_read)(void *opaque, uint32_t off, uint32_t size, uint64_t *val);
	int (*config_write)(void *opaque, uint32_t off, uint32_t size, uint64_t val);
	/* The driver notified queue q (enabled, not broken, DRIVER_OK set). */
	void (*queue_notify)(void *opaque, unsigned q);
	/* Before the transport resets: finish or drop every request (nothing may complete later).
	 */
	void (*reset)(void *opaque);
	void *opaque;
};

struct virtio_pci_queue {
	struct virtq vq;
	uint16_t size; /* what the driver wrote (checked at enable) */
	uint16_t msix_vector;
	bool enabled;
	bool broken; /* a rule was broken: nothing is processed until reset */
};

struct virtio_pci {
	struct pci_config cfg;
	struct backend_host *host;
	struct virtio_pci_dev dev;
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config;
	uint8_t status; /* as the driver set it; DEVICE_NEEDS_RESET is needs_reset */
	bool needs_reset;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	bool intx_pin; /* the level the host was last told */
	struct virtio_pci_queue q[VIRTIO_PCI_MAX_QUEUES];
	uint32_t msix_table[VIRTIO_PCI_MAX_VECTORS * 4];
};

/* The transport for dev (copied) in power-on state; -EINVAL on a bad description. */
int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_dev *dev,
		    struct backend_host *host, struct mpdev_error *err);

/* Identity, BAR0, BAR2, config space and the interrupts (INTx, MSI-X); name is the caller's. */
void virtio_pci_get_info(const struct virtio_pci *vp, struct backend_device_info *info);

int virtio_pci_region_read(struct virtio_pci *vp, uint32_t index, uint64_t offset, void *data,
			   uint32_t size, struct mpdev_error *err);
int virtio_pci_region_write(struct virtio_pci *vp, uint32_t index, uint64_t offset,
			    const void *data, uint32_t size, struct mpdev_error *err);

/* Function level reset: the device's reset callback, then the virtio state and config space. */
void virtio_pci_reset(struct virtio_pci *vp);
/* The proxy is gone: the virtio state as after a driver reset, the pin low. */
void virtio_pci_release(struct virtio_pci *vp);

/* One doorbell per queue: BAR0, the queue's notify address, 2 bytes, data q. */
unsigned virtio_pci_ioeventfds(const struct virtio_pci *vp, struct backend_ioeventfd *v,
			       unsigned max);

/* The queue if it may be processed now (DRIVER_OK, enabled, not broken), else NULL. */
struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q);
bool virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit);

/* The used ring of q has something the driver wants to hear about. */
void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned q);
/*
 * The driver broke a rule on queue q (err says which): logged, the queue
 * stops, DEVICE_NEEDS_RESET and a configuration change interrupt.
 */
void virtio_pci_queue_error(struct virtio_pci *vp, unsigned q, const struct mpdev_error *err);

#endif
