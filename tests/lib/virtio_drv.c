#include "virtio_drv.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PCI_STATUS	       0x06
#define PCI_STATUS_CAP_LIST    0x10
#define PCI_COMMAND	       0x04
#define PCI_COMMAND_MEMORY     0x0002
#define PCI_COMMAND_MASTER     0x0004
#define PCI_CAPABILITY_LIST    0x34
#define PCI_CAP_ID_VNDR	       0x09
#define PCI_CAP_ID_MSIX	       0x11
#define PCI_MSIX_FLAGS	       0x02
#define PCI_MSIX_FLAGS_QSIZE   0x07ff
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE  0x8000

/* struct virtio_pci_cap offsets. */
#define VCAP_LEN      2
#define VCAP_TYPE     3
#define VCAP_BAR      4
#define VCAP_OFFSET   8
#define VCAP_LENGTH   12
#define VCAP_NOTIFY_M 16

#define RESET_WAIT_MS 2000

static int fail(struct vdrv *d, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	return -code;
}

const char *vdrv_error(const struct vdrv *d)
{
	return d->err;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cfg_rd(struct vdrv *d, uint32_t off, uint32_t size, uint32_t *v)
{
	int r = mpdev_config_read(d->dev, off, size, v);

	if (r < 0)
		return fail(d, -r, "config read at 0x%x: %s", off, mpdev_last_error(d->dev));
	return 0;
}

static int cfg_wr(struct vdrv *d, uint32_t off, uint32_t size, uint32_t v)
{
	int r = mpdev_config_write(d->dev, off, size, v);

	if (r < 0)
		return fail(d, -r, "config write at 0x%x: %s", off, mpdev_last_error(d->dev));
	return 0;
}

static int bar_rd(struct vdrv *d, const struct vdrv_cap *c, uint32_t off, uint32_t size,
		  uint32_t *v)
{
	uint8_t b[4] = { 0 };
	int r;

	if (off > c->length || size > c->length - off)
		return fail(d, EINVAL, "read of %u at 0x%x is outside the structure (%u bytes)",
			    size, off, c->length);
	r = mpdev_region_read(d->dev, MPDEV_REGION_BAR0 + c->bar, c->offset + off, b, size);
	if (r < 0)
		return fail(d, -r, "BAR%u read at 0x%x: %s", c->bar, c->offset + off,
			    mpdev_last_error(d->dev));
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 0;
}

static int bar_wr(struct vdrv *d, const struct vdrv_cap *c, uint32_t off, uint32_t size, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	int r;

	if (off > c->length || size > c->length - off)
		return fail(d, EINVAL, "write of %u at 0x%x is outside the structure (%u bytes)",
			    size, off, c->length);
	r = mpdev_region_write(d->dev, MPDEV_REGION_BAR0 + c->bar, c->offset + off, b, size);
	if (r < 0)
		return fail(d, -r, "BAR%u write at 0x%x: %s", c->bar, c->offset + off,
			    mpdev_last_error(d->dev));
	return 0;
}

static int read_vendor_cap(struct vdrv *d, uint8_t pos)
{
	uint32_t len, type, bar, off, length, mult = 0;
	struct vdrv_cap *c;
	int r;

	if ((r = cfg_rd(d, pos + VCAP_LEN, 1, &len)) < 0 ||
	    (r = cfg_rd(d, pos + VCAP_TYPE, 1, &type)) < 0 ||
	    (r = cfg_rd(d, pos + VCAP_BAR, 1, &bar)) < 0 ||
	    (r = cfg_rd(d, pos + VCAP_OFFSET, 4, &off)) < 0 ||
	    (r = cfg_rd(d, pos + VCAP_LENGTH, 4, &length)) < 0)
		return r;
	if (len < 16)
		return fail(d, ENODEV, "virtio cap at 0x%x is %u bytes", pos, len);
	switch (type) {
	case VIRTIO_PCI_CAP_COMMON_CFG:
		c = &d->common;
		break;
	case VIRTIO_PCI_CAP_NOTIFY_CFG:
		c = &d->notify;
		if (len < 20)
			return fail(d, ENODEV, "notify cap at 0x%x is %u bytes", pos, len);
		if ((r = cfg_rd(d, pos + VCAP_NOTIFY_M, 4, &mult)) < 0)
			return r;
		break;
	case VIRTIO_PCI_CAP_ISR_CFG:
		c = &d->isr;
		break;
	case VIRTIO_PCI_CAP_DEVICE_CFG:
		c = &d->device;
		break;
	case VIRTIO_PCI_CAP_PCI_CFG:
		c = &d->pci_cfg;
		break;
	default:
		return 0; /* the spec says: ignore types we do not know */
	}
	/* The first of each type is the one to use (spec §4.1.4). */
	if (c->found)
		return 0;
	/* BARs 0-5 only; the PCI cfg cap's fields are the driver's to fill. */
	if (type != VIRTIO_PCI_CAP_PCI_CFG && bar > 5)
		return fail(d, ENODEV, "virtio cap type %u names BAR %u", type, bar);
	c->found = true;
	c->cap_off = pos;
	c->bar = (uint8_t)bar;
	c->offset = off;
	c->length = length;
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		d->notify_mult = mult;
	return 0;
}

static int find_caps(struct vdrv *d)
{
	uint32_t status, pos, id, next, ctrl;
	unsigned seen = 0;
	int r;

	if ((r = cfg_rd(d, PCI_STATUS, 2, &status)) < 0)
		return r;
	if (!(status & PCI_STATUS_CAP_LIST))
		return fail(d, ENODEV, "no capability list");
	if ((r = cfg_rd(d, PCI_CAPABILITY_LIST, 1, &pos)) < 0)
		return r;
	while (pos) {
		if (pos < 0x40 || (pos & 3) || pos > 0xfc || ++seen > 48)
			return fail(d, ENODEV, "bad capability pointer 0x%x", pos);
		if ((r = cfg_rd(d, pos, 1, &id)) < 0 || (r = cfg_rd(d, pos + 1, 1, &next)) < 0)
			return r;
		if (id == PCI_CAP_ID_VNDR && (r = read_vendor_cap(d, (uint8_t)pos)) < 0)
			return r;
		if (id == PCI_CAP_ID_MSIX && !d->msix_cap) {
			if ((r = cfg_rd(d, pos + PCI_MSIX_FLAGS, 2, &ctrl)) < 0)
				return r;
			d->msix_cap = (uint8_t)pos;
			d->msix_table_size = (uint16_t)((ctrl & PCI_MSIX_FLAGS_QSIZE) + 1);
		}
		pos = next;
	}
	if (!d->common.found || !d->notify.found || !d->isr.found)
		return fail(d, ENODEV, "missing virtio capability (common %d notify %d isr %d)",
			    d->common.found, d->notify.found, d->isr.found);
	if (d->common.length < VIRTIO_COMMON_SIZE)
		return fail(d, ENODEV, "common cfg is %u bytes", d->common.length);
	return 0;
}

int vdrv_init(struct vdrv *d, struct mpdev *dev, void *mem, uint64_t gpa, uint64_t size)
{
	uint32_t cmd, numq;
	int r;

	memset(d, 0, sizeof(*d));
	d->dev = dev;
	d->mem = mem;
	d->mem_gpa = gpa;
	d->mem_size = size;
	for (unsigned i = 0; i < VDRV_MAX_QUEUES; i++) {
		d->q[i].doorbell_fd = -1;
		d->q[i].irq_fd = -1;
	}
	if ((r = find_caps(d)) < 0)
		return r;
	if ((r = cfg_rd(d, PCI_COMMAND, 2, &cmd)) < 0 ||
	    (r = cfg_wr(d, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) < 0)
		return r;
	if ((r = vdrv_common_read(d, VIRTIO_COMMON_NUMQ, 2, &numq)) < 0)
		return r;
	d->num_queues = (uint16_t)numq;
	return 0;
}

static void queue_free(struct vdrv_queue *q)
{
	free(q->next_free);
	free(q->chain_len);
	free(q->indirect_gpa);
	q->next_free = q->chain_len = NULL;
	q->indirect_gpa = NULL;
	q->ready = false;
}

void vdrv_fini(struct vdrv *d)
{
	for (unsigned i = 0; i < VDRV_MAX_QUEUES; i++)
		queue_free(&d->q[i]);
}

void *vdrv_alloc(struct vdrv *d, uint64_t len, uint64_t align, uint64_t *gpa)
{
	uint64_t at = (d->brk + align - 1) & ~(align - 1);

	if (at > d->mem_size || len > d->mem_size - at) {
		fail(d, ENOMEM, "guest RAM full (%llu bytes asked)", (unsigned long long)len);
		return NULL;
	}
	d->brk = at + len;
	*gpa = d->mem_gpa + at;
	return d->mem + at;
}

void *vdrv_gpa_ptr(struct vdrv *d, uint64_t gpa, uint64_t len)
{
	if (gpa < d->mem_gpa || gpa - d->mem_gpa > d->mem_size ||
	    len > d->mem_size - (gpa - d->mem_gpa))
		return NULL;
	return d->mem + (gpa - d->mem_gpa);
}

int vdrv_common_read(struct vdrv *d, uint32_t off, uint32_t size, uint32_t *val)
{
	return bar_rd(d, &d->common, off, size, val);
}

int vdrv_common_write(struct vdrv *d, uint32_t off, uint32_t size, uint32_t val)
{
	return bar_wr(d, &d->common, off, size, val);
}

int vdrv_config_read(struct vdrv *d, uint32_t off, uint32_t size, uint32_t *val)
{
	if (!d->device.found)
		return fail(d, ENODEV, "the device has no device cfg");
	return bar_rd(d, &d->device, off, size, val);
}

/* Two halves under config_generation, as the spec asks for fields wider than 32 bits. */
int vdrv_config_read64(struct vdrv *d, uint32_t off, uint64_t *val)
{
	uint32_t gen0, gen1, lo, hi;
	int r;

	for (int tries = 0; tries < 100; tries++) {
		if ((r = vdrv_common_read(d, VIRTIO_COMMON_CFGGENERATION, 1, &gen0)) < 0 ||
		    (r = vdrv_config_read(d, off, 4, &lo)) < 0 ||
		    (r = vdrv_config_read(d, off + 4, 4, &hi)) < 0 ||
		    (r = vdrv_common_read(d, VIRTIO_COMMON_CFGGENERATION, 1, &gen1)) < 0)
			return r;
		if (gen0 == gen1) {
			*val = (uint64_t)hi << 32 | lo;
			return 0;
		}
	}
	return fail(d, EAGAIN, "config_generation never settled");
}

int vdrv_isr_read(struct vdrv *d, uint8_t *isr)
{
	uint32_t v;
	int r = bar_rd(d, &d->isr, 0, 1, &v);

	*isr = (uint8_t)v;
	return r;
}

int vdrv_status(struct vdrv *d, uint8_t *status)
{
	uint32_t v = 0;
	int r = vdrv_common_read(d, VIRTIO_COMMON_STATUS, 1, &v);

	*status = (uint8_t)v;
	return r;
}

int vdrv_set_status(struct vdrv *d, uint8_t status)
{
	return vdrv_common_write(d, VIRTIO_COMMON_STATUS, 1, status);
}

int vdrv_reset(struct vdrv *d)
{
	int64_t end = now_ms() + RESET_WAIT_MS;
	uint8_t st;
	int r;

	if ((r = vdrv_set_status(d, 0)) < 0)
		return r;
	/* The device may take its time to finish what was in flight (spec §4.1.4.3.2). */
	for (;;) {
		if ((r = vdrv_status(d, &st)) < 0)
			return r;
		if (st == 0)
			break;
		if (now_ms() > end)
			return fail(d, ETIMEDOUT, "device_status still 0x%x after reset", st);
		usleep(1000);
	}
	for (unsigned i = 0; i < VDRV_MAX_QUEUES; i++)
		queue_free(&d->q[i]);
	d->features = 0;
	return 0;
}

int vdrv_device_features(struct vdrv *d, uint64_t *features)
{
	uint32_t lo, hi;
	int r;

	if ((r = vdrv_common_write(d, VIRTIO_COMMON_DFSELECT, 4, 0)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_DF, 4, &lo)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_DFSELECT, 4, 1)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_DF, 4, &hi)) < 0)
		return r;
	*features = (uint64_t)hi << 32 | lo;
	return 0;
}

int vdrv_negotiate(struct vdrv *d, uint64_t features)
{
	uint8_t st;
	int r;

	if ((r = vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE)) < 0 ||
	    (r = vdrv_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER)) < 0)
		return r;
	if ((r = vdrv_common_write(d, VIRTIO_COMMON_GFSELECT, 4, 0)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_GF, 4, (uint32_t)features)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_GFSELECT, 4, 1)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_GF, 4, (uint32_t)(features >> 32))) < 0)
		return r;
	st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	if ((r = vdrv_set_status(d, st)) < 0 || (r = vdrv_status(d, &st)) < 0)
		return r;
	if (!(st & VIRTIO_STATUS_FEATURES_OK))
		return fail(d, ENOTSUP, "the device refused features 0x%llx (status 0x%x)",
			    (unsigned long long)features, st);
	d->features = features;
	d->event_idx = features & VDRV_F(VIRTIO_F_RING_EVENT_IDX);
	d->indirect = features & VDRV_F(VIRTIO_F_RING_INDIRECT_DESC);
	return 0;
}

int vdrv_driver_ok(struct vdrv *d)
{
	uint8_t st;
	int r;

	if ((r = vdrv_status(d, &st)) < 0 ||
	    (r = vdrv_set_status(d, st | VIRTIO_STATUS_DRIVER_OK)) < 0)
		return r;
	return 0;
}

int vdrv_msix_enable(struct vdrv *d, const int *fds, unsigned n)
{
	uint32_t ctrl;
	int r;

	if (!d->msix_cap)
		return fail(d, ENODEV, "the device has no MSI-X capability");
	if (n > d->msix_table_size)
		return fail(d, EINVAL, "%u vectors, the table has %u", n, d->msix_table_size);
	if ((r = cfg_rd(d, d->msix_cap + PCI_MSIX_FLAGS, 2, &ctrl)) < 0)
		return r;
	ctrl = (ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL;
	if ((r = cfg_wr(d, d->msix_cap + PCI_MSIX_FLAGS, 2, ctrl)) < 0)
		return r;
	if (n && (r = mpdev_set_irqs_eventfd(d->dev, MPDEV_IRQ_MSIX, MPDEV_IRQ_ACTION_TRIGGER, 0, n,
					     fds)) < 0)
		return fail(d, -r, "SetIrqs MSI-X: %s", mpdev_last_error(d->dev));
	return 0;
}

int vdrv_set_config_vector(struct vdrv *d, uint16_t vector, uint16_t *got)
{
	uint32_t v;
	int r;

	if ((r = vdrv_common_write(d, VIRTIO_COMMON_MSIX, 2, vector)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_MSIX, 2, &v)) < 0)
		return r;
	*got = (uint16_t)v;
	return 0;
}

/* Ring sizes (spec §2.7): desc 16*n (align 16), avail 6+2n (align 2), used 6+8n (align 4). */
static int alloc_rings(struct vdrv *d, struct vdrv_queue *q, uint16_t size)
{
	if (!(q->desc = vdrv_alloc(d, 16ull * size, 4096, &q->desc_gpa)))
		return -ENOMEM;
	if (!(q->avail = vdrv_alloc(d, 6 + 2ull * size, 4096, &q->avail_gpa)))
		return -ENOMEM;
	if (!(q->used = vdrv_alloc(d, 6 + 8ull * size, 4096, &q->used_gpa)))
		return -ENOMEM;
	memset(q->desc, 0, 16ull * size);
	memset(q->avail, 0, 6 + 2ull * size);
	memset((void *)q->used, 0, 6 + 8ull * size);
	q->next_free = calloc(size, sizeof(*q->next_free));
	q->chain_len = calloc(size, sizeof(*q->chain_len));
	q->indirect_gpa = calloc(size, sizeof(*q->indirect_gpa));
	if (!q->next_free || !q->chain_len || !q->indirect_gpa) {
		queue_free(q);
		return fail(d, ENOMEM, "out of memory");
	}
	for (uint16_t i = 0; i < size; i++)
		q->next_free[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = size;
	q->size = size;
	q->avail_idx = q->last_used = 0;
	return 0;
}

static int write64(struct vdrv *d, uint32_t lo_off, uint64_t v)
{
	int r = vdrv_common_write(d, lo_off, 4, (uint32_t)v);

	return r < 0 ? r : vdrv_common_write(d, lo_off + 4, 4, (uint32_t)(v >> 32));
}

int vdrv_queue_setup(struct vdrv *d, unsigned qi, uint16_t size, uint16_t msix_vector, int irq_fd)
{
	struct vdrv_queue *q;
	uint32_t max, noff, en, vec;
	int r;

	if (qi >= VDRV_MAX_QUEUES)
		return fail(d, EINVAL, "queue %u: vdrv handles %u", qi, VDRV_MAX_QUEUES);
	q = &d->q[qi];
	queue_free(q);
	if ((r = vdrv_common_write(d, VIRTIO_COMMON_Q_SELECT, 2, qi)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_Q_SIZE, 2, &max)) < 0)
		return r;
	if (max == 0)
		return fail(d, ENOENT, "queue %u does not exist (size 0)", qi);
	if (size == 0 || size > max)
		return fail(d, EINVAL, "queue %u: size %u, the device allows %u", qi, size, max);
	if ((r = alloc_rings(d, q, size)) < 0)
		return r;
	if ((r = vdrv_common_write(d, VIRTIO_COMMON_Q_SIZE, 2, size)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_Q_MSIX, 2, msix_vector)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_Q_MSIX, 2, &vec)) < 0 ||
	    (r = write64(d, VIRTIO_COMMON_Q_DESCLO, q->desc_gpa)) < 0 ||
	    (r = write64(d, VIRTIO_COMMON_Q_AVAILLO, q->avail_gpa)) < 0 ||
	    (r = write64(d, VIRTIO_COMMON_Q_USEDLO, q->used_gpa)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_Q_NOFF, 2, &noff)) < 0 ||
	    (r = vdrv_common_write(d, VIRTIO_COMMON_Q_ENABLE, 2, 1)) < 0 ||
	    (r = vdrv_common_read(d, VIRTIO_COMMON_Q_ENABLE, 2, &en)) < 0)
		return r;
	if (vec != msix_vector)
		return fail(d, ENOSPC, "queue %u: vector %u refused (reads 0x%x)", qi, msix_vector,
			    vec);
	if (en != 1)
		return fail(d, EIO, "queue %u: enable did not stick", qi);
	q->notify_off = noff * d->notify_mult;
	q->msix_vector = msix_vector;
	q->irq_fd = irq_fd;
	q->ready = true;
	return 0;
}

void vdrv_queue_set_doorbell(struct vdrv *d, unsigned q, int fd)
{
	if (q < VDRV_MAX_QUEUES)
		d->q[q].doorbell_fd = fd;
}

struct vring_desc *vdrv_desc(struct vdrv *d, unsigned q, uint16_t i)
{
	return &d->q[q].desc[i % d->q[q].size];
}

void vdrv_avail_publish(struct vdrv *d, unsigned qi, uint16_t head)
{
	struct vdrv_queue *q = &d->q[qi];

	q->avail[2 + q->avail_idx % q->size] = head;
	/* The ring entry before the index that makes it visible. */
	__atomic_store_n(&q->avail[1], (uint16_t)(q->avail_idx + 1), __ATOMIC_RELEASE);
	q->avail_idx++;
}

uint16_t vdrv_used_idx(struct vdrv *d, unsigned qi)
{
	return __atomic_load_n((uint16_t *)(d->q[qi].used + 2), __ATOMIC_ACQUIRE);
}

static uint16_t take_desc(struct vdrv_queue *q)
{
	uint16_t i = q->free_head;

	q->free_head = q->next_free[i];
	q->num_free--;
	return i;
}

static void fill(struct vring_desc *dsc, const struct vdrv_buf *b, uint16_t flags)
{
	dsc->addr = b->gpa;
	dsc->len = b->len;
	dsc->flags = flags;
}

int vdrv_submit(struct vdrv *d, unsigned qi, const struct vdrv_buf *out, unsigned n_out,
		const struct vdrv_buf *in, unsigned n_in, bool indirect)
{
	struct vdrv_queue *q = &d->q[qi];
	unsigned n = n_out + n_in, need = indirect ? 1 : n;
	struct vring_desc *tbl = NULL;
	uint64_t tbl_gpa = 0;
	uint16_t head, prev = 0, i;

	if (qi >= VDRV_MAX_QUEUES || !q->ready)
		return fail(d, EINVAL, "queue %u is not set up", qi);
	if (n == 0 || n > q->size)
		return fail(d, EINVAL, "a chain of %u buffers", n);
	if (q->num_free < need)
		return fail(d, ENOSPC, "queue %u: %u descriptors free, %u needed", qi, q->num_free,
			    need);
	if (indirect) {
		/* Freed by nobody: the bump allocator only grows; tests are short. */
		tbl = vdrv_alloc(d, 16ull * n, 16, &tbl_gpa);
		if (!tbl)
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			bool w = i >= n_out;

			fill(&tbl[i], w ? &in[i - n_out] : &out[i],
			     (uint16_t)((w ? VRING_DESC_F_WRITE : 0) |
					(i + 1u < n ? VRING_DESC_F_NEXT : 0)));
			tbl[i].next = (uint16_t)(i + 1u < n ? i + 1 : 0);
		}
		head = take_desc(q);
		q->desc[head].addr = tbl_gpa;
		q->desc[head].len = (uint32_t)(16 * n);
		q->desc[head].flags = VRING_DESC_F_INDIRECT;
		q->desc[head].next = 0;
	} else {
		head = q->free_head;
		for (i = 0; i < n; i++) {
			bool w = i >= n_out;
			uint16_t di = take_desc(q);

			fill(&q->desc[di], w ? &in[i - n_out] : &out[i],
			     w ? VRING_DESC_F_WRITE : 0);
			if (i > 0) {
				q->desc[prev].flags |= VRING_DESC_F_NEXT;
				q->desc[prev].next = di;
			}
			prev = di;
		}
	}
	q->chain_len[head] = (uint16_t)need;
	q->indirect_gpa[head] = tbl_gpa;
	vdrv_avail_publish(d, qi, head);
	return head;
}

int vdrv_kick(struct vdrv *d, unsigned qi)
{
	struct vdrv_queue *q = &d->q[qi];
	uint16_t v = (uint16_t)qi;
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	int r;

	if (qi >= VDRV_MAX_QUEUES)
		return fail(d, EINVAL, "queue %u", qi);
	if (q->doorbell_fd >= 0) {
		uint64_t one = 1;

		if (write(q->doorbell_fd, &one, sizeof(one)) != sizeof(one))
			return fail(d, errno, "doorbell of queue %u: %s", qi, strerror(errno));
		return 0;
	}
	r = mpdev_region_write_posted(d->dev, MPDEV_REGION_BAR0 + d->notify.bar,
				      d->notify.offset + q->notify_off, b, 2);
	if (r < 0)
		return fail(d, -r, "notify of queue %u: %s", qi, mpdev_last_error(d->dev));
	return 0;
}

unsigned vdrv_used_pending(struct vdrv *d, unsigned qi)
{
	return (uint16_t)(vdrv_used_idx(d, qi) - d->q[qi].last_used);
}

static void free_chain(struct vdrv_queue *q, uint16_t head)
{
	uint16_t i = head, n = q->chain_len[head];

	for (uint16_t k = 0; k < n; k++) {
		uint16_t next = q->desc[i].next;

		q->next_free[i] = q->free_head;
		q->free_head = i;
		q->num_free++;
		i = next % q->size;
	}
	q->chain_len[head] = 0;
	q->indirect_gpa[head] = 0;
}

static void wait_signal(struct vdrv *d, struct vdrv_queue *q, int ms)
{
	struct pollfd p = { .fd = q->irq_fd, .events = POLLIN };
	uint64_t cnt;

	/* Events the remote sent unasked (a failed posted write) must not pile up. */
	mpdev_process_events(d->dev);
	if (q->irq_fd < 0) {
		usleep(200);
		return;
	}
	if (poll(&p, 1, ms) == 1 && (p.revents & POLLIN))
		if (read(q->irq_fd, &cnt, sizeof(cnt)) == sizeof(cnt))
			q->irq_count += cnt;
}

int vdrv_wait_used(struct vdrv *d, unsigned qi, int timeout_ms, struct vdrv_used *u)
{
	struct vdrv_queue *q = &d->q[qi];
	int64_t end = now_ms() + timeout_ms;
	volatile struct vring_used_elem *e;

	if (qi >= VDRV_MAX_QUEUES || !q->ready)
		return fail(d, EINVAL, "queue %u is not set up", qi);
	while (vdrv_used_idx(d, qi) == q->last_used) {
		int64_t left = end - now_ms();

		if (left <= 0)
			return fail(d, ETIMEDOUT, "queue %u: nothing used within %d ms", qi,
				    timeout_ms);
		/* Short waits: an interrupt the device coalesced away must not cost the test. */
		wait_signal(d, q, left < 20 ? (int)left : 20);
	}
	e = (volatile struct vring_used_elem *)(q->used + 4) + q->last_used % q->size;
	u->head = (uint16_t)e->id;
	u->len = e->len;
	if (e->id >= q->size || q->chain_len[e->id] == 0)
		return fail(d, EPROTO, "queue %u: used entry names head %u, not outstanding", qi,
			    e->id);
	q->last_used++;
	if (d->event_idx)
		__atomic_store_n(&q->avail[2 + q->size], q->last_used, __ATOMIC_RELEASE);
	free_chain(q, u->head);
	return 0;
}
