/*
 * libmpdev's device calls: info, region access, reset, stats. Each public
 * call is its one-shot version plus what to do when the connection died
 * under it (client_retry / client_no_retry): config space and queries are
 * idempotent, BAR accesses are not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define CFG_STATUS     0x06 /* PCI status: write-1-to-clear */
#define CFG_STATUS_END 0x08

static void copy_region(struct mpdev_region_info *dst, const Mpdev__RegionInfo *src)
{
	dst->flags = src->flags;
	dst->size = src->size;
	dst->type = src->type;
	dst->subtype = src->subtype;
	dst->n_mmap_areas = 0;
	for (size_t i = 0; i < src->n_mmap_areas && i < MPDEV_MAX_MMAP_AREAS; i++) {
		dst->mmap_areas[i].offset = src->mmap_areas[i]->offset;
		dst->mmap_areas[i].size = src->mmap_areas[i]->size;
		dst->n_mmap_areas++;
	}
}

int client_device_info(struct mpdev *dev, struct mpdev_device_info *info)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__DeviceInfoRequest body = MPDEV__DEVICE_INFO_REQUEST__INIT;
	const Mpdev__DeviceInfo *di;
	struct wire_msg reply;
	int r;

	req.body_case = MPDEV__ENVELOPE__BODY_DEVICE_INFO_REQUEST;
	req.device_info_request = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_DEVICE_INFO);
	if (r < 0)
		goto out;
	di = reply.env->device_info;
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", di->name);
	info->vendor_id = (uint16_t)di->vendor_id;
	info->device_id = (uint16_t)di->device_id;
	info->subsystem_vendor_id = (uint16_t)di->subsystem_vendor_id;
	info->subsystem_id = (uint16_t)di->subsystem_id;
	info->class_code = di->class_code & 0xffffff;
	info->revision = (uint8_t)di->revision;
	info->reset_supported = di->reset_supported;
	info->migration_flags = di->migration_flags;
	/* Entries for indexes this library does not know are skipped, not an error. */
	for (size_t i = 0; i < di->n_regions; i++)
		if (di->regions[i]->index < MPDEV_NUM_REGIONS)
			copy_region(&info->regions[di->regions[i]->index], di->regions[i]);
	for (size_t i = 0; i < di->n_irqs; i++) {
		const Mpdev__IrqInfo *irq = di->irqs[i];

		if (irq->index < MPDEV_NUM_IRQS) {
			info->irqs[irq->index].count = irq->count;
			info->irqs[irq->index].flags = irq->flags;
		}
	}
out:
	wire_msg_release(&reply);
	return r;
}

int mpdev_get_device_info(struct mpdev *dev, struct mpdev_device_info *info)
{
	int r, tries = 0;

	do
		r = client_device_info(dev, info);
	while (client_retry(dev, &r, &tries));
	return r;
}

/*
 * A fixed-layout record holds up to 8 bytes: a wider access (devops takes
 * any length, the protocol only 1/2/4/8) goes as an Envelope and gets the
 * remote's own words for why not.
 */
static bool use_fixed(const struct mpdev *dev, uint32_t region, uint32_t size)
{
	return (dev->features & MPDEV_FEATURE_FIXED_ACCESS) && size <= 8 && region <= UINT8_MAX;
}

static int fixed_access(struct mpdev *dev, uint8_t op, uint32_t region, uint64_t offset, void *data,
			uint32_t size)
{
	struct fixed_access a = {
		.op = op, .index = (uint8_t)region, .size = (uint8_t)size, .offset = offset
	};
	const uint8_t *in = data;
	uint8_t *out = data;
	int r;

	for (uint32_t i = 0; op != FIXED_OP_READ && i < size; i++)
		a.data |= (uint64_t)in[i] << (8 * i);
	r = client_fixed_call(dev, &a);
	for (uint32_t i = 0; r == 0 && op == FIXED_OP_READ && i < size; i++)
		out[i] = (uint8_t)(a.data >> (8 * i));
	return r;
}

int client_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data,
		       uint32_t size)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
	struct wire_msg reply;
	int r;

	if (use_fixed(dev, region, size))
		return fixed_access(dev, FIXED_OP_READ, region, offset, data, size);
	rr.index = region;
	rr.offset = offset;
	rr.size = size;
	req.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	req.region_read = &rr;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_REGION_READ_REPLY);
	if (r == 0 && reply.env->region_read_reply->data.len != size)
		r = mpdev_error_set(&dev->err, EPROTO,
				    "remote returned %zu bytes for a %u-byte read",
				    reply.env->region_read_reply->data.len, size);
	if (r == 0)
		memcpy(data, reply.env->region_read_reply->data.data, size);
	wire_msg_release(&reply);
	return r;
}

static void fill_write(Mpdev__Envelope *req, Mpdev__RegionWrite *rw, uint32_t region,
		       uint64_t offset, const void *data, uint32_t size)
{
	rw->index = region;
	rw->offset = offset;
	rw->data.data = (uint8_t *)data;
	rw->data.len = size;
	req->body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	req->region_write = rw;
}

int client_region_write(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
			uint32_t size)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;

	if (use_fixed(dev, region, size))
		return fixed_access(dev, FIXED_OP_WRITE, region, offset, (void *)data, size);
	fill_write(&req, &rw, region, offset, data, size);
	return client_request_ok(dev, &req, NULL, 0);
}

/* "BAR2 read", for the words of a request that was not repeated. */
static const char *access_name(uint32_t region, bool write, char *buf, size_t len)
{
	static const char *const names[] = { "BAR0", "BAR1", "BAR2",   "BAR3", "BAR4",
					     "BAR5", "ROM",  "config", "VGA" };

	snprintf(buf, len, "%s %s", region < MPDEV_NUM_REGIONS ? names[region] : "region",
		 write ? "write" : "read");
	return buf;
}

int mpdev_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data,
		      uint32_t size)
{
	char what[32];
	int r, tries = 0;

	if (dev->ring && region != MPDEV_REGION_CONFIG)
		return ring_region_read(dev, region, offset, data, size);
	if (region != MPDEV_REGION_CONFIG) {
		/* Named only when it failed: formatting costs the hot path. */
		r = client_region_read(dev, region, offset, data, size);
		return r < 0 ? client_no_retry(dev, r,
					       access_name(region, false, what, sizeof(what)))
			     : 0;
	}
	do
		r = client_region_read(dev, region, offset, data, size);
	while (client_retry(dev, &r, &tries));
	return r;
}

int mpdev_region_write(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
		       uint32_t size)
{
	char what[32];
	int r, tries = 0;

	if (dev->ring && region != MPDEV_REGION_CONFIG)
		return ring_region_write(dev, region, offset, data, size, false);
	if (region != MPDEV_REGION_CONFIG) {
		r = client_region_write(dev, region, offset, data, size);
		return r < 0 ? client_no_retry(dev, r,
					       access_name(region, true, what, sizeof(what)))
			     : 0;
	}
	r = client_region_write(dev, region, offset, data, size);
	if (client_retry(dev, &r, &tries)) {
		/*
		 * Sent again to a restarted remote: not with the status register's
		 * bits, which are write-1-to-clear. They were meant for the old
		 * device; on the new one they would clear the Signaled System Error
		 * that tells the guest its device was reset. Zeroes there write
		 * nothing.
		 */
		uint8_t small[8], *copy = NULL;
		const void *again = data;

		if (offset < CFG_STATUS_END && offset + size > CFG_STATUS) {
			copy = size <= sizeof(small) ? small : malloc(size);
			if (!copy)
				return mpdev_error_set(&dev->err, ENOMEM, "out of memory");
			memcpy(copy, data, size);
			for (uint64_t i = offset; i < offset + size; i++)
				if (i >= CFG_STATUS && i < CFG_STATUS_END)
					copy[i - offset] = 0;
			again = copy;
		}
		do
			r = client_region_write(dev, region, offset, again, size);
		while (client_retry(dev, &r, &tries));
		if (copy != small)
			free(copy);
	}
	if (r == 0)
		config_shadow_record(dev, offset, data, size);
	return r;
}

int mpdev_region_write_posted(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
			      uint32_t size)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	char what[32];
	int r;

	if (dev->ring && region != MPDEV_REGION_CONFIG)
		return ring_region_write(dev, region, offset, data, size, true);
	/*
	 * Config writes are non-posted on PCI too, and the replay shadow must
	 * hold only writes the remote accepted.
	 */
	if (!(dev->features & MPDEV_FEATURE_POSTED_WRITES) || region == MPDEV_REGION_CONFIG)
		return mpdev_region_write(dev, region, offset, data, size);
	if (use_fixed(dev, region, size))
		r = fixed_access(dev, FIXED_OP_POSTED_WRITE, region, offset, (void *)data, size);
	else {
		fill_write(&req, &rw, region, offset, data, size);
		r = client_post(dev, &req);
	}
	return r < 0 ? client_no_retry(dev, r, access_name(region, true, what, sizeof(what))) : 0;
}

int mpdev_config_read(struct mpdev *dev, uint32_t offset, uint32_t size, uint32_t *value)
{
	uint8_t buf[4] = { 0 };
	int r;

	if (size != 1 && size != 2 && size != 4)
		return mpdev_error_set(&dev->err, EINVAL, "config access width %u", size);
	r = mpdev_region_read(dev, MPDEV_REGION_CONFIG, offset, buf, size);
	if (r == 0)
		*value = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
			 (uint32_t)buf[3] << 24;
	return r;
}

int mpdev_config_write(struct mpdev *dev, uint32_t offset, uint32_t size, uint32_t value)
{
	uint8_t buf[4] = { (uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
			   (uint8_t)(value >> 24) };

	if (size != 1 && size != 2 && size != 4)
		return mpdev_error_set(&dev->err, EINVAL, "config access width %u", size);
	return mpdev_region_write(dev, MPDEV_REGION_CONFIG, offset, buf, size);
}

static int reset_once(struct mpdev *dev)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__Reset body = MPDEV__RESET__INIT;

	req.body_case = MPDEV__ENVELOPE__BODY_RESET;
	req.reset = &body;
	return client_request_ok(dev, &req, NULL, 0);
}

int mpdev_reset(struct mpdev *dev)
{
	int r, tries = 0;

	do
		r = reset_once(dev);
	while (client_retry(dev, &r, &tries));
	/* Config space is back at power-on: nothing written before is to be replayed. */
	if (r == 0)
		config_shadow_clear(&dev->cfg);
	return r;
}

static int iommu_info_once(struct mpdev *dev, struct mpdev_iommu_info *info)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__IommuInfoRequest body = MPDEV__IOMMU_INFO_REQUEST__INIT;
	const Mpdev__IommuInfo *ii;
	struct wire_msg reply;
	int r;

	if (!(dev->features & MPDEV_FEATURE_IOMMU_INFO))
		return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not report IOMMU info");
	req.body_case = MPDEV__ENVELOPE__BODY_IOMMU_INFO_REQUEST;
	req.iommu_info_request = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_IOMMU_INFO);
	if (r == 0) {
		ii = reply.env->iommu_info;
		memset(info, 0, sizeof(*info));
		info->kind = ii->kind;
		info->pgsize_bitmap = ii->pgsize_bitmap;
		for (size_t i = 0; i < ii->n_iova_ranges && i < MPDEV_MAX_IOVA_RANGES; i++) {
			info->ranges[i].start = ii->iova_ranges[i]->start;
			info->ranges[i].last = ii->iova_ranges[i]->last;
			info->n_ranges++;
		}
		info->dma_avail = ii->dma_avail;
		info->mappings_used = ii->mappings_used;
		info->dirty_tracking = ii->dirty_tracking;
	}
	wire_msg_release(&reply);
	return r;
}

int mpdev_get_iommu_info(struct mpdev *dev, struct mpdev_iommu_info *info)
{
	int r, tries = 0;

	do
		r = iommu_info_once(dev, info);
	while (client_retry(dev, &r, &tries));
	return r;
}

static int stats_once(struct mpdev *dev, void (*fn)(void *opaque, const char *name, uint64_t value),
		      void *opaque)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__StatsRequest body = MPDEV__STATS_REQUEST__INIT;
	struct wire_msg reply;
	int r;

	req.body_case = MPDEV__ENVELOPE__BODY_STATS_REQUEST;
	req.stats_request = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_STATS);
	if (r == 0) {
		const Mpdev__Stats *st = reply.env->stats;

		for (size_t i = 0; i < st->n_counters; i++)
			fn(opaque, st->counters[i]->name, st->counters[i]->value);
		r = (int)st->n_counters;
	}
	wire_msg_release(&reply);
	return r;
}

int mpdev_get_stats(struct mpdev *dev, void (*fn)(void *opaque, const char *name, uint64_t value),
		    void *opaque)
{
	int r, tries = 0;

	do
		r = stats_once(dev, fn, opaque);
	while (client_retry(dev, &r, &tries));
	return r;
}
