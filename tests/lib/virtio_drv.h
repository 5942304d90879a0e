/*
 * The driver side of a virtio 1.x modern PCI device (virtio spec 1.2 §4.1),
 * over libmpdev, for tests and benches: what a guest's virtio-pci driver
 * does, with guest RAM being a memfd the caller mapped and registered as the
 * memory table. Everything here is checked: a device that lays out its
 * capabilities wrongly, refuses a feature set or completes something that
 * was never submitted shows as a negative errno with vdrv_error() saying
 * why, so a test can both rely on it and use it to poke at bad devices.
 *
 * Guest memory is handed out by a bump allocator (vdrv_alloc) from the
 * region given to vdrv_init; rings come from there too. Raw ring access
 * (vdrv_desc, vdrv_avail_publish) lets bad-input tests build any chain.
 *
 *	struct vdrv d;
 *	vdrv_init(&d, dev, mem, MEM_GPA, MEM_SIZE);
 *	vdrv_reset(&d);
 *	vdrv_negotiate(&d, VIRTIO_F_VERSION_1 | ...);
 *	vdrv_queue_setup(&d, 0, 128, 0);   // MSI-X vector 0
 *	vdrv_driver_ok(&d);
 *	head = vdrv_submit(&d, 0, out, 1, in, 2, cookie);
 *	vdrv_kick(&d, 0);
 *	vdrv_wait_used(&d, 0, 2000, &used);
 */
#ifndef MPDEV_VIRTIO_DRV_H
#define MPDEV_VIRTIO_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libmpdev.h"

/*
 * The spec's numbers are written here from the spec, not taken from the
 * device model (remote/emu/virtio_pci.*): a driver that shared the device's
 * constants could not notice a wrong one.
 *
 * Feature bits (spec §6, §5.2.3).
 */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32
#define VDRV_F(bit)		    (1ull << (bit))

/* device_status bits (spec §2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE	 0x01
#define VIRTIO_STATUS_DRIVER		 0x02
#define VIRTIO_STATUS_DRIVER_OK		 0x04
#define VIRTIO_STATUS_FEATURES_OK	 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED		 0x80

/* virtio_pci_cap.cfg_type (spec §4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

/* struct virtio_pci_common_cfg offsets (spec §4.1.4.3). */
#define VIRTIO_COMMON_DFSELECT	    0x00 /* le32 device_feature_select */
#define VIRTIO_COMMON_DF	    0x04 /* le32 device_feature */
#define VIRTIO_COMMON_GFSELECT	    0x08 /* le32 driver_feature_select */
#define VIRTIO_COMMON_GF	    0x0c /* le32 driver_feature */
#define VIRTIO_COMMON_MSIX	    0x10 /* le16 config_msix_vector */
#define VIRTIO_COMMON_NUMQ	    0x12 /* le16 num_queues */
#define VIRTIO_COMMON_STATUS	    0x14 /* u8 device_status */
#define VIRTIO_COMMON_CFGGENERATION 0x15 /* u8 config_generation */
#define VIRTIO_COMMON_Q_SELECT	    0x16 /* le16 */
#define VIRTIO_COMMON_Q_SIZE	    0x18 /* le16 */
#define VIRTIO_COMMON_Q_MSIX	    0x1a /* le16 */
#define VIRTIO_COMMON_Q_ENABLE	    0x1c /* le16 */
#define VIRTIO_COMMON_Q_NOFF	    0x1e /* le16 queue_notify_off */
#define VIRTIO_COMMON_Q_DESCLO	    0x20
#define VIRTIO_COMMON_Q_DESCHI	    0x24
#define VIRTIO_COMMON_Q_AVAILLO	    0x28
#define VIRTIO_COMMON_Q_AVAILHI	    0x2c
#define VIRTIO_COMMON_Q_USEDLO	    0x30
#define VIRTIO_COMMON_Q_USEDHI	    0x34
#define VIRTIO_COMMON_SIZE	    0x38

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Split ring layout (spec §2.7). */
#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VRING_DESC_F_INDIRECT 4

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

#define VDRV_MAX_QUEUES 16

/* One buffer of a chain: guest-physical address and length. */
struct vdrv_buf {
	uint64_t gpa;
	uint32_t len;
};

/* Where a capability's structure lives. */
struct vdrv_cap {
	bool found;
	uint8_t cap_off; /* in config space */
	uint8_t bar;
	uint32_t offset, length;
};

struct vdrv_queue {
	bool ready;
	uint16_t size;
	uint16_t msix_vector;
	uint32_t notify_off; /* queue_notify_off * notify_off_multiplier: in the notify BAR */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc; /* our mapping of the rings */
	uint16_t *avail;	 /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;	 /* flags, idx, ring[size], avail_event */
	uint16_t avail_idx;	 /* what we published */
	uint16_t last_used;	 /* the next used entry we take */
	uint16_t free_head, num_free;
	uint16_t *next_free; /* free list, size entries */
	uint16_t *chain_len; /* descriptors each head took (to free them) */
	/* Indirect tables of heads that used one, to free nothing twice: gpa or 0. */
	uint64_t *indirect_gpa;
	int doorbell_fd;    /* -1: kick by posted BAR write */
	int irq_fd;	    /* -1: poll the used ring */
	uint64_t irq_count; /* signals vdrv_wait_used took from irq_fd */
};

struct vdrv {
	struct mpdev *dev;
	uint8_t *mem; /* the caller's mapping of guest RAM [mem_gpa, mem_gpa + mem_size) */
	uint64_t mem_gpa, mem_size;
	uint64_t brk; /* bump allocator: offset of the next free byte in mem */
	struct vdrv_cap common, notify, isr, device, pci_cfg;
	uint32_t notify_mult;
	uint8_t msix_cap; /* config offset, 0: none */
	uint16_t msix_table_size;
	uint16_t num_queues; /* what the device reports */
	uint64_t features;   /* negotiated */
	bool event_idx, indirect;
	struct vdrv_queue q[VDRV_MAX_QUEUES];
	char err[256];
};

/* Why the last call failed. */
const char *vdrv_error(const struct vdrv *d);

/*
 * Walks config space: the capability list, every virtio vendor capability
 * (common, notify, ISR, device, PCI cfg) and MSI-X; -ENODEV when a required
 * one is missing or malformed. mem is guest RAM the caller registered with
 * mpdev_mem_set_table at gpa; it must stay mapped until vdrv_fini. Enables
 * memory decoding and bus mastering in the command register.
 */
int vdrv_init(struct vdrv *d, struct mpdev *dev, void *mem, uint64_t gpa, uint64_t size);
/* Frees what vdrv_init and the queues allocated (not the fds given to it). */
void vdrv_fini(struct vdrv *d);

/* len bytes of guest RAM, aligned (a power of 2); NULL when full. *gpa gets its address. */
void *vdrv_alloc(struct vdrv *d, uint64_t len, uint64_t align, uint64_t *gpa);
/* Our pointer to guest-physical gpa (NULL outside the region). */
void *vdrv_gpa_ptr(struct vdrv *d, uint64_t gpa, uint64_t len);

/* Common cfg, ISR, device cfg and the raw BAR access behind them (size 1, 2, 4). */
int vdrv_common_read(struct vdrv *d, uint32_t off, uint32_t size, uint32_t *val);
int vdrv_common_write(struct vdrv *d, uint32_t off, uint32_t size, uint32_t val);
int vdrv_config_read(struct vdrv *d, uint32_t off, uint32_t size, uint32_t *val);
int vdrv_config_read64(struct vdrv *d, uint32_t off, uint64_t *val);
int vdrv_isr_read(struct vdrv *d, uint8_t *isr);
int vdrv_status(struct vdrv *d, uint8_t *status);
int vdrv_set_status(struct vdrv *d, uint8_t status);

/* Writes 0 to device_status and waits (bounded) until it reads back 0; forgets the queues. */
int vdrv_reset(struct vdrv *d);
int vdrv_device_features(struct vdrv *d, uint64_t *features);
/*
 * ACKNOWLEDGE, DRIVER, exactly these driver features, FEATURES_OK, and
 * reads FEATURES_OK back: -ENOTSUP when the device refused the set.
 */
int vdrv_negotiate(struct vdrv *d, uint64_t features);
int vdrv_driver_ok(struct vdrv *d);

/*
 * MSI-X: enables it in the capability (and unmasks the function), then hands
 * fds[0..n) to the remote as the triggers of vectors 0..n (SetIrqs). The
 * caller keeps the fds; vdrv uses fds[vector] of each queue to wait.
 */
int vdrv_msix_enable(struct vdrv *d, const int *fds, unsigned n);
/* config_msix_vector; returns what the device reads back in *got (NO_VECTOR if refused). */
int vdrv_set_config_vector(struct vdrv *d, uint16_t vector, uint16_t *got);

/*
 * Allocates rings for queue q (size entries, a power of 2 the device
 * accepts) and programs and enables it with the given MSI-X vector
 * (VIRTIO_MSI_NO_VECTOR for none). irq_fd: what to wait on for it (-1:
 * poll the used ring).
 */
int vdrv_queue_setup(struct vdrv *d, unsigned q, uint16_t size, uint16_t msix_vector, int irq_fd);
/* Kicks by writing this eventfd (a doorbell the remote gave) instead of the BAR. */
void vdrv_queue_set_doorbell(struct vdrv *d, unsigned q, int fd);

/*
 * Builds a chain of the out (device reads) then in (device writes)
 * buffers, indirect if asked (the table comes from guest RAM), and
 * publishes it in the avail ring. Returns the head, or -ENOSPC when the
 * ring has not enough free descriptors.
 */
int vdrv_submit(struct vdrv *d, unsigned q, const struct vdrv_buf *out, unsigned n_out,
		const struct vdrv_buf *in, unsigned n_in, bool indirect);
/* Notifies the device of queue q (posted write of q at its notify address, or the doorbell). */
int vdrv_kick(struct vdrv *d, unsigned q);

struct vdrv_used {
	uint16_t head;
	uint32_t len;
};
/*
 * Takes the next used entry of q, waiting up to timeout_ms (on the queue's
 * irq fd, or by polling the ring): 0 with *u filled, -ETIMEDOUT, or -EPROTO
 * for an entry naming a head that is not outstanding. Frees its descriptors.
 */
int vdrv_wait_used(struct vdrv *d, unsigned q, int timeout_ms, struct vdrv_used *u);
/* Used entries the device published that we have not taken. */
unsigned vdrv_used_pending(struct vdrv *d, unsigned q);

/* Raw ring access for tests that build what no driver would. */
struct vring_desc *vdrv_desc(struct vdrv *d, unsigned q, uint16_t i);
/* Puts head in the avail ring and bumps avail->idx (no descriptor bookkeeping). */
void vdrv_avail_publish(struct vdrv *d, unsigned q, uint16_t head);
/* The used ring's idx as the device last wrote it. */
uint16_t vdrv_used_idx(struct vdrv *d, unsigned q);

#endif
