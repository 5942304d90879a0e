#include "virtio_pci.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "log.h"

#define VP_LOG "virtio-pci"

/* Capability ids and virtio_pci_cap.cfg_type (spec §4.1.4). */
#define CAP_ID_VNDR	 0x09
#define CAP_ID_MSIX	 0x11
#define CFG_TYPE_COMMON	 1
#define CFG_TYPE_NOTIFY	 2
#define CFG_TYPE_ISR	 3
#define CFG_TYPE_DEVICE	 4
#define CFG_TYPE_PCI_CFG 5
#define VCAP_SIZE	 16
#define VCAP_NOTIFY_SIZE 20
#define VCAP_PCICFG_SIZE 20
#define VCAP_BAR	 4
#define VCAP_OFFSET	 8
#define VCAP_LENGTH	 12
#define VCAP_PCICFG_DATA 16

#define MSIX_CAP_SIZE	  12
#define MSIX_CTRL	  2
#define MSIX_CTRL_ENABLE  0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_ENTRY_SIZE	  16

/* struct virtio_pci_common_cfg (spec §4.1.4.3). */
#define CC_DFSELECT 0x00
#define CC_DF	    0x04
#define CC_GFSELECT 0x08
#define CC_GF	    0x0c
#define CC_MSIX	    0x10
#define CC_NUMQ	    0x12
#define CC_STATUS   0x14
#define CC_CFGGEN   0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE   0x18
#define CC_Q_MSIX   0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF   0x1e
#define CC_Q_ADDR   0x20 /* desc, driver (avail), device (used): 64 bits each */
#define CC_END	    0x38

#define ISR_QUEUE  0x1
#define ISR_CONFIG 0x2

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static unsigned nvectors(const struct virtio_pci *vp)
{
	return vp->dev.num_queues + 1u;
}

/* ---- interrupts ---- */

static bool msix_enabled(const struct virtio_pci *vp)
{
	return pci_load_le(vp->cfg.data + VIRTIO_PCI_CAP_MSIX_OFF + MSIX_CTRL, 2) & MSIX_CTRL_ENABLE;
}

/*
 * The pin follows the ISR, gated by config space: INTX_DISABLE, or MSI-X
 * enabled (which forbids INTx). Re-evaluated after every config write.
 */
static void update_intx(struct virtio_pci *vp)
{
	bool level = vp->isr && !pci_config_intx_disabled(&vp->cfg) && !msix_enabled(vp);
	struct mpdev_error err = { 0 };
	int r;

	pci_config_set_intx_status(&vp->cfg, vp->isr != 0);
	if (level == vp->intx_pin)
		return;
	vp->intx_pin = level;
	r = vp->host->set_intx(vp->host, 0, level, &err);
	if (r < 0)
		log_warn_rl(VP_LOG, "%s: cannot %s INTx: %s", vp->dev.name,
			    level ? "assert" : "deassert", err.msg[0] ? err.msg : strerror(-r));
}

/*
 * With MSI-X enabled a vector (or none: NO_VECTOR means the driver wants no
 * interrupt); without, the ISR bit and INTx. Vector masking is the remote's
 * interrupt layer's (SetIrqs mask/unmask), as QEMU's vfio-pci emulates the
 * table itself and programs vectors through SET_IRQS.
 */
static void interrupt(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	struct mpdev_error err = { 0 };
	int r;

	if (!msix_enabled(vp)) {
		vp->isr |= isr_bit;
		update_intx(vp);
		return;
	}
	if (vector == VIRTIO_NO_VECTOR)
		return;
	r = vp->host->signal_vector(vp->host, BACKEND_IRQ_MSIX, vector, &err);
	if (r < 0)
		log_warn_rl(VP_LOG, "%s: cannot signal MSI-X vector %u: %s", vp->dev.name, vector,
			    err.msg[0] ? err.msg : strerror(-r));
}

void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned q)
{
	if (q < vp->dev.num_queues)
		interrupt(vp, vp->q[q].msix_vector, ISR_QUEUE);
}

static void set_needs_reset(struct virtio_pci *vp)
{
	bool was = vp->needs_reset;

	vp->needs_reset = true;
	/* Spec §2.1.2: with DRIVER_OK the driver hears of it by a config change interrupt. */
	if (!was && (vp->status & VIRTIO_STATUS_DRIVER_OK))
		interrupt(vp, vp->msix_config, ISR_CONFIG);
}

void virtio_pci_queue_error(struct virtio_pci *vp, unsigned q, const struct mpdev_error *err)
{
	if (q < vp->dev.num_queues) {
		if (vp->q[q].broken)
			return;
		vp->q[q].broken = true;
	}
	log_warn_rl(VP_LOG, "%s: queue %u: %s: DEVICE_NEEDS_RESET", vp->dev.name, q,
		    err && err->msg[0] ? err->msg : "driver error");
	set_needs_reset(vp);
}

/* ---- state ---- */

static void reset_queues(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		virtq_reset(&q->vq);
		q->vq.desc_gpa = q->vq.avail_gpa = q->vq.used_gpa = 0;
		q->size = i < vp->dev.num_queues ? vp->dev.queue_max_size : 0;
		q->msix_vector = VIRTIO_NO_VECTOR;
		q->enabled = false;
		q->broken = false;
	}
}

/* Device status 0 (spec §4.1.4.3.1): nothing in flight afterwards, everything as at power-on. */
static void virtio_reset(struct virtio_pci *vp)
{
	if (vp->dev.reset)
		vp->dev.reset(vp->dev.opaque);
	reset_queues(vp);
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->msix_config = VIRTIO_NO_VECTOR;
	vp->status = 0;
	vp->needs_reset = false;
	vp->queue_select = 0;
	vp->isr = 0;
	update_intx(vp);
}

static void msix_table_reset(struct virtio_pci *vp)
{
	memset(vp->msix_table, 0, sizeof(vp->msix_table));
	/* Vector control: masked at reset (PCI spec 6.8.2.9). */
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		vp->msix_table[i * 4 + 3] = 1;
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	virtio_reset(vp);
	pci_config_reset(&vp->cfg);
	msix_table_reset(vp);
	update_intx(vp);
}

void virtio_pci_release(struct virtio_pci *vp)
{
	virtio_reset(vp);
}

bool virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit)
{
	return bit < 64 && (vp->driver_features & (1ull << bit));
}

struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->dev.num_queues || !(vp->status & VIRTIO_STATUS_DRIVER_OK))
		return NULL;
	if (!vp->q[q].enabled || vp->q[q].broken)
		return NULL;
	return &vp->q[q].vq;
}

unsigned virtio_pci_ioeventfds(const struct virtio_pci *vp, struct backend_ioeventfd *v,
			       unsigned max)
{
	unsigned n = 0;

	for (unsigned q = 0; q < vp->dev.num_queues && n < max; q++, n++) {
		v[n] = (struct backend_ioeventfd){
			.region = BACKEND_REGION_BAR0,
			.offset = VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULT,
			.size = 2,
			.datamatch = false,
			.data = q,
		};
	}
	return n;
}

/* ---- common cfg ---- */

static void enable_queue(struct virtio_pci *vp)
{
	unsigned qi = vp->queue_select;
	struct mpdev_error err = { 0 };
	struct virtio_pci_queue *q;

	if (qi >= vp->dev.num_queues) {
		mpdev_error_set(&err, EINVAL, "queue_enable of queue %u (the device has %u)", qi,
				vp->dev.num_queues);
		virtio_pci_queue_error(vp, qi, &err);
		return;
	}
	q = &vp->q[qi];
	if (q->enabled || q->broken)
		return;
	if (!is_pow2(q->size) || q->size > vp->dev.queue_max_size) {
		mpdev_error_set(&err, EINVAL, "queue_size %u (a power of 2 up to %u)", q->size,
				vp->dev.queue_max_size);
		virtio_pci_queue_error(vp, qi, &err);
		return;
	}
	q->vq.size = q->size;
	q->vq.event_idx = virtio_pci_has_feature(vp, VIRTIO_F_EVENT_IDX);
	q->vq.indirect = virtio_pci_has_feature(vp, VIRTIO_F_INDIRECT_DESC);
	if (virtq_enable(&q->vq, &err) < 0) {
		virtio_pci_queue_error(vp, qi, &err);
		return;
	}
	q->enabled = true;
}

static bool features_acceptable(const struct virtio_pci *vp)
{
	if (vp->driver_features & ~vp->dev.features) {
		log_warn_rl(VP_LOG,
			    "%s: FEATURES_OK refused: driver features 0x%" PRIx64
			    " include bits the device does not offer (0x%" PRIx64 ")",
			    vp->dev.name, vp->driver_features, vp->dev.features);
		return false;
	}
	/* A modern-only device: a legacy driver cannot work with it (spec §7.2.1). */
	if (!(vp->driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		log_warn_rl(VP_LOG, "%s: FEATURES_OK refused: no VERSION_1", vp->dev.name);
		return false;
	}
	return true;
}

static void write_status(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status;

	if (v == 0) {
		virtio_reset(vp);
		return;
	}
	/* DEVICE_NEEDS_RESET is the device's; FEATURES_OK only the device may grant. */
	v &= (uint8_t)~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_acceptable(vp))
		v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	/* The driver never clears a bit but by reset (spec §2.1.2): keep what was granted. */
	v |= old & VIRTIO_STATUS_FEATURES_OK;
	vp->status = v;
	/* Kicks before DRIVER_OK were not processed (spec §3.1.1): look at every queue now. */
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    vp->dev.queue_notify) {
		for (unsigned q = 0; q < vp->dev.num_queues; q++) {
			if (virtio_pci_queue(vp, q))
				vp->dev.queue_notify(vp->dev.opaque, q);
		}
	}
}

static struct virtio_pci_queue *selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->dev.num_queues ? &vp->q[vp->queue_select] : NULL;
}

static uint64_t *queue_addr(struct virtio_pci_queue *q, unsigned which)
{
	return which == 0 ? &q->vq.desc_gpa : which == 1 ? &q->vq.avail_gpa : &q->vq.used_gpa;
}

/* Natural width of each field; the 64-bit ones also as two 32-bit halves (spec §4.1.3.1). */
static bool common_width_ok(uint32_t off, uint32_t size)
{
	if (off >= CC_Q_ADDR && off < CC_END)
		return (size == 4 && !(off & 3)) || (size == 8 && !(off & 7));
	switch (off) {
	case CC_DFSELECT:
	case CC_DF:
	case CC_GFSELECT:
	case CC_GF:
		return size == 4;
	case CC_STATUS:
	case CC_CFGGEN:
		return size == 1;
	case CC_MSIX:
	case CC_NUMQ:
	case CC_Q_SELECT:
	case CC_Q_SIZE:
	case CC_Q_MSIX:
	case CC_Q_ENABLE:
	case CC_Q_NOFF:
		return size == 2;
	}
	return false;
}

static uint64_t common_read(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	struct virtio_pci_queue *q = selected(vp);

	if (!common_width_ok(off, size)) {
		log_warn_rl(VP_LOG, "%s: common cfg read of %u bytes at 0x%x ignored", vp->dev.name,
			    size, off);
		return 0;
	}
	if (off >= CC_Q_ADDR) {
		uint64_t a = q ? *queue_addr(q, (off - CC_Q_ADDR) / 8) : 0;

		return size == 8 ? a : (off & 4) ? a >> 32 : (uint32_t)a;
	}
	switch (off) {
	case CC_DFSELECT:
		return vp->dfselect;
	case CC_DF:
		return vp->dfselect < 2 ? (uint32_t)(vp->dev.features >> (32 * vp->dfselect)) : 0;
	case CC_GFSELECT:
		return vp->gfselect;
	case CC_GF:
		return vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect))
					: 0;
	case CC_MSIX:
		return vp->msix_config;
	case CC_NUMQ:
		return vp->dev.num_queues;
	case CC_STATUS:
		return vp->status | (vp->needs_reset ? VIRTIO_STATUS_DEVICE_NEEDS_RESET : 0);
	case CC_CFGGEN:
		return vp->config_generation;
	case CC_Q_SELECT:
		return vp->queue_select;
	case CC_Q_SIZE:
		return q ? q->size : 0;
	case CC_Q_MSIX:
		return q ? q->msix_vector : VIRTIO_NO_VECTOR;
	case CC_Q_ENABLE:
		return q ? q->enabled : 0;
	case CC_Q_NOFF:
		return q ? vp->queue_select : 0;
	}
	return 0;
}

/* A vector the table does not have reads back as NO_VECTOR: the driver sees the refusal. */
static uint16_t checked_vector(const struct virtio_pci *vp, uint64_t v)
{
	return v < nvectors(vp) ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void queue_field_write(struct virtio_pci *vp, uint32_t off, uint32_t size, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);

	if (!q) {
		log_warn_rl(VP_LOG, "%s: write at 0x%x for queue %u, which does not exist",
			    vp->dev.name, off, vp->queue_select);
		return;
	}
	if (off == CC_Q_MSIX) {
		q->msix_vector = checked_vector(vp, v);
		return;
	}
	/* The rings may not move under a running queue (spec §4.1.4.3.2). */
	if (q->enabled) {
		log_warn_rl(VP_LOG, "%s: queue %u is enabled: write at 0x%x ignored", vp->dev.name,
			    vp->queue_select, off);
		return;
	}
	if (off == CC_Q_SIZE) {
		q->size = (uint16_t)v;
	} else {
		uint64_t *a = queue_addr(q, (off - CC_Q_ADDR) / 8);

		if (size == 8)
			*a = v;
		else if (off & 4)
			*a = (*a & 0xffffffffull) | v << 32;
		else
			*a = (*a & ~0xffffffffull) | (uint32_t)v;
	}
}

static void common_write(struct virtio_pci *vp, uint32_t off, uint32_t size, uint64_t v)
{
	if (!common_width_ok(off, size)) {
		log_warn_rl(VP_LOG, "%s: common cfg write of %u bytes at 0x%x ignored",
			    vp->dev.name, size, off);
		return;
	}
	if (off >= CC_Q_ADDR) {
		queue_field_write(vp, off, size, v);
		return;
	}
	switch (off) {
	case CC_DFSELECT:
		vp->dfselect = (uint32_t)v;
		break;
	case CC_GFSELECT:
		vp->gfselect = (uint32_t)v;
		break;
	case CC_GF:
		if (vp->status & VIRTIO_STATUS_FEATURES_OK) {
			log_warn_rl(VP_LOG, "%s: driver_feature written after FEATURES_OK: ignored",
				    vp->dev.name);
			break;
		}
		if (vp->gfselect < 2) {
			unsigned sh = 32 * vp->gfselect;

			vp->driver_features = (vp->driver_features & ~(0xffffffffull << sh)) |
					      ((uint64_t)(uint32_t)v << sh);
		}
		break;
	case CC_MSIX:
		vp->msix_config = checked_vector(vp, v);
		break;
	case CC_STATUS:
		write_status(vp, (uint8_t)v);
		break;
	case CC_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		break;
	case CC_Q_SIZE:
	case CC_Q_MSIX:
		queue_field_write(vp, off, size, v);
		break;
	case CC_Q_ENABLE:
		/* Only 1 means anything; the driver never writes 0 (spec §4.1.4.3.2). */
		if (v == 1)
			enable_queue(vp);
		break;
	default: /* device_feature, num_queues, config_generation, queue_notify_off: RO */
		log_warn_rl(VP_LOG, "%s: write to read-only common cfg 0x%x ignored", vp->dev.name,
			    off);
		break;
	}
}

/* ---- BAR0 ---- */

static uint64_t isr_read(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	uint8_t v = vp->isr;

	if (off != 0 || size != 1)
		return 0;
	/* Read-to-clear, and the read lowers INTx (spec §4.1.4.5). */
	vp->isr = 0;
	update_intx(vp);
	return v;
}

static bool device_width_ok(uint32_t off, uint32_t size)
{
	return (size == 1 || size == 2 || size == 4) && !(off & (size - 1));
}

static uint64_t device_read(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	uint64_t v = 0;

	if (!device_width_ok(off, size) || off >= vp->dev.config_size ||
	    size > vp->dev.config_size - off) {
		log_warn_rl(VP_LOG, "%s: device cfg read of %u bytes at 0x%x ignored", vp->dev.name,
			    size, off);
		return 0;
	}
	if (vp->dev.config_read && vp->dev.config_read(vp->dev.opaque, off, size, &v) < 0)
		return 0;
	return v;
}

static void device_write(struct virtio_pci *vp, uint32_t off, uint32_t size, uint64_t v)
{
	if (!device_width_ok(off, size) || off >= vp->dev.config_size ||
	    size > vp->dev.config_size - off || !vp->dev.config_write) {
		log_warn_rl(VP_LOG, "%s: device cfg write of %u bytes at 0x%x ignored",
			    vp->dev.name, size, off);
		return;
	}
	vp->dev.config_write(vp->dev.opaque, off, size, v);
}

/*
 * The notify address names the queue (queue_notify_off = index); the value
 * written is the same index and carries nothing more without
 * NOTIFICATION_DATA, which is not offered.
 */
static void notify_write(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	unsigned q = off / VIRTIO_PCI_NOTIFY_MULT;
	struct mpdev_error err = { 0 };

	if ((size != 2 && size != 4) || (off % VIRTIO_PCI_NOTIFY_MULT)) {
		log_warn_rl(VP_LOG, "%s: notify write of %u bytes at 0x%x ignored", vp->dev.name,
			    size, off);
		return;
	}
	if (q >= vp->dev.num_queues) {
		mpdev_error_set(&err, EINVAL, "notify for queue %u (the device has %u)", q,
				vp->dev.num_queues);
		virtio_pci_queue_error(vp, q, &err);
		return;
	}
	/* A queue not enabled yet, or not DRIVER_OK: seen again at DRIVER_OK. */
	if (virtio_pci_queue(vp, q) && vp->dev.queue_notify)
		vp->dev.queue_notify(vp->dev.opaque, q);
}

static uint64_t bar0_read(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	uint32_t in = off % VIRTIO_PCI_STRUCT_SIZE;

	switch (off / VIRTIO_PCI_STRUCT_SIZE) {
	case VIRTIO_PCI_COMMON_OFF / VIRTIO_PCI_STRUCT_SIZE:
		return in < CC_END ? common_read(vp, in, size) : 0;
	case VIRTIO_PCI_ISR_OFF / VIRTIO_PCI_STRUCT_SIZE:
		return isr_read(vp, in, size);
	case VIRTIO_PCI_DEVICE_OFF / VIRTIO_PCI_STRUCT_SIZE:
		return device_read(vp, in, size);
	}
	return 0; /* notify: write-only */
}

static void bar0_write(struct virtio_pci *vp, uint32_t off, uint32_t size, uint64_t v)
{
	uint32_t in = off % VIRTIO_PCI_STRUCT_SIZE;

	switch (off / VIRTIO_PCI_STRUCT_SIZE) {
	case VIRTIO_PCI_COMMON_OFF / VIRTIO_PCI_STRUCT_SIZE:
		if (in < CC_END)
			common_write(vp, in, size, v);
		break;
	case VIRTIO_PCI_DEVICE_OFF / VIRTIO_PCI_STRUCT_SIZE:
		device_write(vp, in, size, v);
		break;
	case VIRTIO_PCI_NOTIFY_OFF / VIRTIO_PCI_STRUCT_SIZE:
		notify_write(vp, in, size);
		break;
	default: /* ISR: read-only */
		break;
	}
}

/* ---- BAR2: MSI-X table and PBA ---- */

static uint64_t msix_read(struct virtio_pci *vp, uint32_t off, uint32_t size)
{
	uint64_t v = 0;

	/* Pending bits are the interrupt layer's (a masked vector's message waits there). */
	if ((size != 4 && size != 8) || (off & (size - 1)) ||
	    off + size > nvectors(vp) * MSIX_ENTRY_SIZE)
		return 0;
	for (uint32_t i = 0; i < size / 4; i++)
		v |= (uint64_t)vp->msix_table[off / 4 + i] << (32 * i);
	return v;
}

static void msix_write(struct virtio_pci *vp, uint32_t off, uint32_t size, uint64_t v)
{
	if ((size != 4 && size != 8) || (off & (size - 1)) ||
	    off + size > nvectors(vp) * MSIX_ENTRY_SIZE)
		return;
	for (uint32_t i = 0; i < size / 4; i++)
		vp->msix_table[off / 4 + i] = (uint32_t)(v >> (32 * i));
}

/* ---- config space, with the PCI cfg access window (spec §4.1.4.9) ---- */

static bool overlaps_window(uint64_t off, uint32_t size)
{
	uint64_t w = VIRTIO_PCI_CAP_PCICFG_OFF + VCAP_PCICFG_DATA;

	return off < w + 4 && off + size > w;
}

/* The BAR access the window's bar, offset and length name; false if they name none. */
static bool window_target(struct virtio_pci *vp, uint32_t *index, uint32_t *off, uint32_t *len)
{
	const uint8_t *cap = vp->cfg.data + VIRTIO_PCI_CAP_PCICFG_OFF;
	uint32_t bar = cap[VCAP_BAR];
	uint64_t size = bar == 0		     ? VIRTIO_PCI_BAR0_SIZE
			: bar == VIRTIO_PCI_MSIX_BAR ? VIRTIO_PCI_MSIX_BAR_SIZE
						     : 0;

	*off = (uint32_t)pci_load_le(cap + VCAP_OFFSET, 4);
	*len = (uint32_t)pci_load_le(cap + VCAP_LENGTH, 4);
	*index = bar;
	if (!size || (*len != 1 && *len != 2 && *len != 4) || *off >= size || *len > size - *off ||
	    (*off & (*len - 1))) {
		log_warn_rl(VP_LOG, "%s: PCI cfg window names BAR %u, 0x%x+%u: no access",
			    vp->dev.name, bar, *off, *len);
		return false;
	}
	return true;
}

static void window_read(struct virtio_pci *vp)
{
	uint8_t *data = vp->cfg.data + VIRTIO_PCI_CAP_PCICFG_OFF + VCAP_PCICFG_DATA;
	uint32_t index, off, len;
	uint64_t v = 0;

	if (window_target(vp, &index, &off, &len))
		v = index == 0 ? bar0_read(vp, off, len) : msix_read(vp, off, len);
	pci_store_le(data, 4, v);
}

static void window_write(struct virtio_pci *vp)
{
	const uint8_t *data = vp->cfg.data + VIRTIO_PCI_CAP_PCICFG_OFF + VCAP_PCICFG_DATA;
	uint32_t index, off, len;

	if (!window_target(vp, &index, &off, &len))
		return;
	if (index == 0)
		bar0_write(vp, off, len, pci_load_le(data, len));
	else
		msix_write(vp, off, len, pci_load_le(data, len));
}

static int config_read(struct virtio_pci *vp, uint64_t off, uint32_t size, void *data,
		       struct mpdev_error *err)
{
	uint32_t v;
	int r;

	if (off < PCI_CONFIG_SPACE_SIZE && overlaps_window(off, size))
		window_read(vp);
	r = pci_config_read(&vp->cfg, off, size, &v);
	if (r < 0)
		return mpdev_error_set(err, -r, "%s config: bad read of %u bytes at 0x%" PRIx64,
				       vp->dev.name, size, off);
	pci_store_le(data, size, v);
	return 0;
}

static int config_write(struct virtio_pci *vp, uint64_t off, uint32_t size, const void *data,
			struct mpdev_error *err)
{
	int r = pci_config_write(&vp->cfg, off, size, (uint32_t)pci_load_le(data, size));

	if (r < 0)
		return mpdev_error_set(err, -r, "%s config: bad write of %u bytes at 0x%" PRIx64,
				       vp->dev.name, size, off);
	if (overlaps_window(off, size))
		window_write(vp);
	/* INTX_DISABLE or MSI-X enable may have changed what the pin may show. */
	update_intx(vp);
	return 0;
}

static int check_access(const struct virtio_pci *vp, uint32_t index, uint64_t offset, uint32_t size,
			struct mpdev_error *err)
{
	uint64_t region;

	switch (index) {
	case BACKEND_REGION_BAR0:
		region = VIRTIO_PCI_BAR0_SIZE;
		break;
	case BACKEND_REGION_BAR0 + VIRTIO_PCI_MSIX_BAR:
		region = VIRTIO_PCI_MSIX_BAR_SIZE;
		break;
	case BACKEND_REGION_CONFIG:
		region = PCI_CONFIG_SPACE_SIZE;
		break;
	default:
		return mpdev_error_set(err, EINVAL, "%s has no region %u", vp->dev.name, index);
	}
	if (size == 0 || size > 8 || offset > region || size > region - offset)
		return mpdev_error_set(err, EINVAL,
				       "%s region %u: bad access of %u bytes at 0x%" PRIx64,
				       vp->dev.name, index, size, offset);
	return 0;
}

int virtio_pci_region_read(struct virtio_pci *vp, uint32_t index, uint64_t offset, void *data,
			   uint32_t size, struct mpdev_error *err)
{
	int r = check_access(vp, index, offset, size, err);

	if (r < 0)
		return r;
	if (index == BACKEND_REGION_CONFIG)
		return config_read(vp, offset, size, data, err);
	if (index == BACKEND_REGION_BAR0)
		pci_store_le(data, size, bar0_read(vp, (uint32_t)offset, size));
	else
		pci_store_le(data, size, msix_read(vp, (uint32_t)offset, size));
	return 0;
}

int virtio_pci_region_write(struct virtio_pci *vp, uint32_t index, uint64_t offset,
			    const void *data, uint32_t size, struct mpdev_error *err)
{
	int r = check_access(vp, index, offset, size, err);

	if (r < 0)
		return r;
	if (index == BACKEND_REGION_CONFIG)
		return config_write(vp, offset, size, data, err);
	if (index == BACKEND_REGION_BAR0)
		bar0_write(vp, (uint32_t)offset, size, pci_load_le(data, size));
	else
		msix_write(vp, (uint32_t)offset, size, pci_load_le(data, size));
	return 0;
}

void virtio_pci_get_info(const struct virtio_pci *vp, struct backend_device_info *info)
{
	struct backend_region_info *bar0 = &info->regions[BACKEND_REGION_BAR0];
	struct backend_region_info *bar2 =
		&info->regions[BACKEND_REGION_BAR0 + VIRTIO_PCI_MSIX_BAR];
	struct backend_region_info *config = &info->regions[BACKEND_REGION_CONFIG];

	info->vendor_id = VIRTIO_PCI_VENDOR_ID;
	info->device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + vp->dev.virtio_id);
	info->subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID;
	info->subsystem_id = VIRTIO_PCI_SUBSYS_ID;
	info->class_code = vp->dev.class_code;
	info->revision = VIRTIO_PCI_REVISION;
	info->reset_supported = true;
	/* Every register has side effects (ISR read-to-clear, notify): nothing is mmap-able. */
	bar0->flags = BACKEND_REGION_READ | BACKEND_REGION_WRITE;
	bar0->size = VIRTIO_PCI_BAR0_SIZE;
	bar2->flags = BACKEND_REGION_READ | BACKEND_REGION_WRITE;
	bar2->size = VIRTIO_PCI_MSIX_BAR_SIZE;
	config->flags = BACKEND_REGION_READ | BACKEND_REGION_WRITE;
	config->size = PCI_CONFIG_SPACE_SIZE;
	info->irqs[BACKEND_IRQ_INTX].count = 1;
	info->irqs[BACKEND_IRQ_INTX].flags = BACKEND_IRQ_EVENTFD;
	info->irqs[BACKEND_IRQ_MSIX].count = nvectors(vp);
	info->irqs[BACKEND_IRQ_MSIX].flags = BACKEND_IRQ_EVENTFD | BACKEND_IRQ_NORESIZE;
}

/* ---- layout ---- */

static int add_vendor_cap(struct pci_config *cfg, uint8_t off, uint8_t type, uint8_t bar,
			  uint32_t offset, uint32_t length, unsigned size)
{
	int r = pci_config_add_cap(cfg, CAP_ID_VNDR, off, size);

	if (r < 0)
		return r;
	cfg->data[off + 2] = (uint8_t)size; /* cap_len */
	cfg->data[off + 3] = type;
	cfg->data[off + VCAP_BAR] = bar;
	pci_store_le(cfg->data + off + VCAP_OFFSET, 4, offset);
	pci_store_le(cfg->data + off + VCAP_LENGTH, 4, length);
	return 0;
}

static int build_config(struct virtio_pci *vp)
{
	const struct pci_config_identity id = {
		.vendor_id = VIRTIO_PCI_VENDOR_ID,
		.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + vp->dev.virtio_id),
		.subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
		.subsystem_id = VIRTIO_PCI_SUBSYS_ID,
		.class_code = vp->dev.class_code,
		.revision = VIRTIO_PCI_REVISION,
		.interrupt_pin = 1,
	};
	struct pci_config *cfg = &vp->cfg;
	uint8_t *p;
	int r;

	if ((r = pci_config_init(cfg, &id)) < 0 ||
	    (r = pci_config_add_bar(cfg, 0, VIRTIO_PCI_BAR0_SIZE, 0)) < 0 ||
	    (r = pci_config_add_bar(cfg, VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_BAR_SIZE, 0)) < 0)
		return r;
	/* Each one goes at the head of the list: last first, so the list ascends. */
	if ((r = pci_config_add_cap(cfg, CAP_ID_MSIX, VIRTIO_PCI_CAP_MSIX_OFF, MSIX_CAP_SIZE)) < 0)
		return r;
	p = cfg->data + VIRTIO_PCI_CAP_MSIX_OFF;
	pci_store_le(p + MSIX_CTRL, 2, nvectors(vp) - 1);
	pci_store_le(p + 4, 4, 0 | VIRTIO_PCI_MSIX_BAR);
	pci_store_le(p + 8, 4, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
	pci_store_le(cfg->wmask + VIRTIO_PCI_CAP_MSIX_OFF + MSIX_CTRL, 2,
		 MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);

	/* The window's bar, offset, length and data are the driver's to write. */
	if ((r = add_vendor_cap(cfg, VIRTIO_PCI_CAP_PCICFG_OFF, CFG_TYPE_PCI_CFG, 0, 0, 0,
				VCAP_PCICFG_SIZE)) < 0)
		return r;
	p = cfg->wmask + VIRTIO_PCI_CAP_PCICFG_OFF;
	p[VCAP_BAR] = 0xff;
	memset(p + VCAP_OFFSET, 0xff, 4);
	memset(p + VCAP_LENGTH, 0xff, 4);
	memset(p + VCAP_PCICFG_DATA, 0xff, 4);

	if ((r = add_vendor_cap(cfg, VIRTIO_PCI_CAP_DEVICE_OFF, CFG_TYPE_DEVICE, 0,
				VIRTIO_PCI_DEVICE_OFF, vp->dev.config_size, VCAP_SIZE)) < 0 ||
	    (r = add_vendor_cap(cfg, VIRTIO_PCI_CAP_ISR_OFF, CFG_TYPE_ISR, 0, VIRTIO_PCI_ISR_OFF, 1,
				VCAP_SIZE)) < 0 ||
	    (r = add_vendor_cap(cfg, VIRTIO_PCI_CAP_NOTIFY_OFF, CFG_TYPE_NOTIFY, 0,
				VIRTIO_PCI_NOTIFY_OFF, vp->dev.num_queues * VIRTIO_PCI_NOTIFY_MULT,
				VCAP_NOTIFY_SIZE)) < 0 ||
	    (r = add_vendor_cap(cfg, VIRTIO_PCI_CAP_COMMON_OFF, CFG_TYPE_COMMON, 0,
				VIRTIO_PCI_COMMON_OFF, CC_END, VCAP_SIZE)) < 0)
		return r;
	pci_store_le(cfg->data + VIRTIO_PCI_CAP_NOTIFY_OFF + VCAP_SIZE, 4, VIRTIO_PCI_NOTIFY_MULT);
	return 0;
}

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_dev *dev,
		    struct backend_host *host, struct mpdev_error *err)
{
	int r;

	memset(vp, 0, sizeof(*vp));
	if (!dev->num_queues || dev->num_queues > VIRTIO_PCI_MAX_QUEUES ||
	    !is_pow2(dev->queue_max_size) || dev->queue_max_size > VIRTQ_MAX_SIZE ||
	    dev->config_size > VIRTIO_PCI_STRUCT_SIZE ||
	    !(dev->features & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return mpdev_error_set(err, EINVAL, "%s: bad virtio device description", dev->name);
	vp->dev = *dev;
	vp->host = host;
	r = build_config(vp);
	if (r < 0)
		return mpdev_error_set(err, -r, "%s: config space layout: %s", dev->name,
				       strerror(-r));
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++)
		virtq_init(&vp->q[i].vq, host);
	reset_queues(vp);
	msix_table_reset(vp);
	vp->msix_config = VIRTIO_NO_VECTOR;
	return 0;
}
