#include "virtio_blk.h"
#include "virtio_blk_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"

/* PCI_CLASS_STORAGE_OTHER, as QEMU's virtio-blk-pci. */
#define VIRTIO_BLK_CLASS_CODE 0x018000
#define VIRTIO_ID_BLOCK	      2
#define VIRTIO_BLK_RING_DEPTH 256

/* struct virtio_blk_config offsets (spec §5.2.4). */
#define CFG_CAPACITY	     0
#define CFG_SEG_MAX	     12
#define CFG_BLK_SIZE	     20
#define CFG_PHYS_BLOCK_EXP   24
#define CFG_MIN_IO_SIZE	     26
#define CFG_NUM_QUEUES	     34
#define CFG_MAX_DISCARD_SECT 36
#define CFG_MAX_DISCARD_SEG  40
#define CFG_DISCARD_ALIGN    44
#define CFG_MAX_WZ_SECT	     48
#define CFG_MAX_WZ_SEG	     52
#define CFG_WZ_MAY_UNMAP     56

static struct vblk *to_vblk(struct backend *b)
{
	return (struct vblk *)b;
}

static void put_le(uint8_t *p, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- options ---- */

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* FNV-1a: a stable default serial for a path. */
static uint32_t path_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int parse_opt(struct vblk_opts *o, const char *opt, struct mpdev_error *err)
{
	const char *eq = strchr(opt, '=');
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	const char *val = eq ? eq + 1 : NULL;
	char *end;

	if (klen == 2 && !strncmp(opt, "ro", 2) && !val) {
		o->read_only = true;
	} else if (klen == 2 && !strncmp(opt, "ro", 2)) {
		if (parse_bool(val, &o->read_only) < 0)
			return mpdev_error_set(err, EINVAL, "virtio-blk: ro=%s (on or off)", val);
	} else if (klen == 6 && !strncmp(opt, "queues", 6) && val) {
		unsigned long n;

		errno = 0;
		n = strtoul(val, &end, 10);
		if (errno || *end || end == val || n < 1 || n > VIRTIO_BLK_MAX_QUEUES)
			return mpdev_error_set(err, EINVAL, "virtio-blk: queues=%s (1 to %u)", val,
					       VIRTIO_BLK_MAX_QUEUES);
		o->queues = (unsigned)n;
	} else if (klen == 6 && !strncmp(opt, "direct", 6) && val) {
		if (parse_bool(val, &o->direct) < 0)
			return mpdev_error_set(err, EINVAL, "virtio-blk: direct=%s (on or off)",
					       val);
	} else if (klen == 6 && !strncmp(opt, "serial", 6) && val) {
		if (strlen(val) > VIRTIO_BLK_ID_BYTES)
			return mpdev_error_set(err, EINVAL,
					       "virtio-blk: serial '%s' is longer than %u bytes",
					       val, VIRTIO_BLK_ID_BYTES);
		snprintf(o->serial, sizeof(o->serial), "%s", val);
	} else {
		return mpdev_error_set(err, EINVAL,
				       "virtio-blk: unknown option '%s' (ro, queues=N, "
				       "direct=on|off, serial=S)",
				       opt);
	}
	return 0;
}

static int parse_opts(const char *spec, struct vblk_opts *o, struct mpdev_error *err)
{
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);
	char buf[512];
	int r;

	memset(o, 0, sizeof(*o));
	o->queues = VIRTIO_BLK_DEFAULT_QUEUES;
	o->direct = true;
	if (plen == 0)
		return mpdev_error_set(err, EINVAL,
				       "virtio-blk: no backing path "
				       "(--device virtio-blk:PATH[,options])");
	if (plen >= sizeof(o->path))
		return mpdev_error_set(err, ENAMETOOLONG, "virtio-blk: path too long");
	memcpy(o->path, spec, plen);
	o->path[plen] = '\0';
	while (comma) {
		const char *opt = comma + 1;
		size_t len;

		comma = strchr(opt, ',');
		len = comma ? (size_t)(comma - opt) : strlen(opt);
		if (len >= sizeof(buf))
			return mpdev_error_set(err, EINVAL, "virtio-blk: option too long");
		memcpy(buf, opt, len);
		buf[len] = '\0';
		if ((r = parse_opt(o, buf, err)) < 0)
			return r;
	}
	if (!o->serial[0])
		snprintf(o->serial, sizeof(o->serial), "mpdev-%08x", path_hash(o->path));
	return 0;
}

/* ---- config space and features ---- */

static unsigned log2u(uint32_t v)
{
	unsigned n = 0;

	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static uint64_t features(const struct vblk *dev)
{
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
		     VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
		     VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
		     VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_MQ);

	if (dev->info.read_only)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	/* Neither is any use on a disk that cannot be written. */
	if (dev->info.discard && !dev->info.read_only)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	if (dev->info.write_zeroes && !dev->info.read_only)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

static void build_config(struct vblk *dev)
{
	uint8_t *c = dev->config;
	uint32_t lb = dev->info.logical_block ? dev->info.logical_block : VIRTIO_BLK_SECTOR;
	uint32_t pb = dev->info.physical_block > lb ? dev->info.physical_block : lb;

	memset(c, 0, sizeof(dev->config));
	put_le(c + CFG_CAPACITY, 8, dev->capacity);
	put_le(c + CFG_SEG_MAX, 4, VIRTIO_BLK_SEG_MAX);
	put_le(c + CFG_BLK_SIZE, 4, lb);
	c[CFG_PHYS_BLOCK_EXP] = (uint8_t)log2u(pb / lb);
	put_le(c + CFG_MIN_IO_SIZE, 2, 1);
	put_le(c + CFG_NUM_QUEUES, 2, dev->opts.queues);
	put_le(c + CFG_MAX_DISCARD_SECT, 4, VIRTIO_BLK_MAX_DWZ_SECTORS);
	put_le(c + CFG_MAX_DISCARD_SEG, 4, 1);
	put_le(c + CFG_DISCARD_ALIGN, 4, lb / VIRTIO_BLK_SECTOR);
	put_le(c + CFG_MAX_WZ_SECT, 4, VIRTIO_BLK_MAX_DWZ_SECTORS);
	put_le(c + CFG_MAX_WZ_SEG, 4, 1);
	c[CFG_WZ_MAY_UNMAP] = dev->info.discard ? 1 : 0;
}

static int config_read(void *opaque, uint32_t off, uint32_t size, uint64_t *val)
{
	struct vblk *dev = opaque;

	*val = 0;
	for (uint32_t i = 0; i < size; i++)
		*val |= (uint64_t)dev->config[off + i] << (8 * i);
	return 0;
}

/* ---- backend ops ---- */

/* Before the transport resets: nothing may be in flight, nothing may complete later. */
static void vblk_reset_cb(void *opaque)
{
	struct vblk *dev = opaque;

	vblk_finish_all(dev);
	vblk_drop_all(dev);
}

static void vblk_get_info(struct backend *b, struct backend_device_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "virtio-blk");
	virtio_pci_get_info(&to_vblk(b)->vp, info);
}

static int vblk_region_read(struct backend *b, uint32_t index, uint64_t offset, void *data,
			    uint32_t size, struct mpdev_error *err)
{
	return virtio_pci_region_read(&to_vblk(b)->vp, index, offset, data, size, err);
}

static int vblk_region_write(struct backend *b, uint32_t index, uint64_t offset, const void *data,
			     uint32_t size, struct mpdev_error *err)
{
	return virtio_pci_region_write(&to_vblk(b)->vp, index, offset, data, size, err);
}

static int vblk_reset(struct backend *b, struct mpdev_error *err)
{
	(void)err;
	virtio_pci_reset(&to_vblk(b)->vp);
	return 0;
}

/* A region goes: every buffer taken from guest memory is finished first. */
static void vblk_dma_quiesce(struct backend *b)
{
	vblk_finish_all(to_vblk(b));
}

static unsigned vblk_ioeventfds(struct backend *b, struct backend_ioeventfd *v, unsigned max)
{
	return virtio_pci_ioeventfds(&to_vblk(b)->vp, v, max);
}

static void vblk_release(struct backend *b)
{
	virtio_pci_release(&to_vblk(b)->vp);
}

/*
 * A replayed session: the queues and what was in flight died with the old
 * remote. DEVICE_NEEDS_RESET is how virtio tells the driver to start over.
 */
static void vblk_resumed(struct backend *b)
{
	to_vblk(b)->vp.needs_reset = true;
}

static void vblk_destroy(struct backend *b)
{
	struct vblk *dev = to_vblk(b);

	if (dev->io) {
		vblk_finish_all(dev);
		vblk_drop_all(dev);
		blk_io_close(dev->io);
	}
	if (dev->after_ev)
		event_free(dev->after_ev);
	vblk_free_reqs(dev);
	free(dev);
}

static const struct backend_ops vblk_ops = {
	.name = "emu:virtio-blk",
	.get_info = vblk_get_info,
	.region_read = vblk_region_read,
	.region_write = vblk_region_write,
	.reset = vblk_reset,
	.resumed = vblk_resumed,
	.dma_quiesce = vblk_dma_quiesce,
	.ioeventfds = vblk_ioeventfds,
	.release = vblk_release,
	.destroy = vblk_destroy,
};

int virtio_blk_create(const char *spec, struct event_base *base, struct backend_host *host,
		      struct backend **out, struct mpdev_error *err)
{
	struct blk_io_config bc = { 0 };
	struct virtio_pci_dev vd = { 0 };
	struct vblk *dev;
	int r;

	if (!base || !host || !host->dma_iov || !host->dma_read || !host->dma_write ||
	    !host->set_intx || !host->signal_vector)
		return mpdev_error_set(err, EINVAL,
				       "virtio-blk needs an event loop and a complete host");
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return mpdev_error_set(err, ENOMEM, "virtio-blk: out of memory");
	dev->be.ops = &vblk_ops;
	dev->be.base = base;
	dev->be.host = host;
	if ((r = parse_opts(spec ? spec : "", &dev->opts, err)) < 0)
		goto fail;
	dev->after_ev = event_new(base, -1, 0, vblk_after_completions, dev);
	if (!dev->after_ev) {
		r = mpdev_error_set(err, ENOMEM, "virtio-blk: cannot create an event");
		goto fail;
	}
	bc.path = dev->opts.path;
	bc.read_only = dev->opts.read_only;
	bc.direct = dev->opts.direct;
	bc.depth = VIRTIO_BLK_RING_DEPTH;
	bc.done = vblk_io_done;
	bc.opaque = dev;
	if ((r = blk_io_open(&bc, base, &dev->io, &dev->info, err)) < 0)
		goto fail;
	dev->capacity = dev->info.size / VIRTIO_BLK_SECTOR;
	build_config(dev);

	vd.name = "virtio-blk";
	vd.virtio_id = VIRTIO_ID_BLOCK;
	vd.class_code = VIRTIO_BLK_CLASS_CODE;
	vd.features = features(dev);
	vd.num_queues = (uint16_t)dev->opts.queues;
	vd.queue_max_size = VIRTIO_BLK_QUEUE_SIZE;
	vd.config_size = VIRTIO_BLK_CONFIG_SIZE;
	vd.config_read = config_read;
	vd.queue_notify = vblk_queue_notify;
	vd.reset = vblk_reset_cb;
	vd.opaque = dev;
	if ((r = virtio_pci_init(&dev->vp, &vd, host, err)) < 0)
		goto fail;
	log_info(VBLK_LOG, "%s: %" PRIu64 " sectors, %u queue(s), serial %s%s", dev->opts.path,
		 dev->capacity, dev->opts.queues, dev->opts.serial,
		 dev->info.read_only ? ", read-only" : "");
	*out = &dev->be;
	return 0;
fail:
	vblk_destroy(&dev->be);
	return r;
}
