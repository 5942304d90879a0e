/*
 * libmpdev's dirty tracking: DirtyStart, DirtyReport, DirtyStop.
 *
 * A report larger than one reply holds is split into several DirtyReport
 * requests of MPDEV_DIRTY_REPORT_MAX_PAGES pages (a multiple of 8), whose
 * bitmaps concatenate at byte boundaries: the caller never sees the
 * message limit.
 *
 * Started ranges are NOT replayed into a restarted remote: the bits the old
 * one had gathered died with it, and a new start would report a clean
 * bitmap for pages the device wrote before the restart. Instead, once the
 * handle has reconnected (mpdev_replay_info.restarts moved) since the
 * start, mpdev_dirty_report() fails with -ESTALE; the VMM must then treat
 * every tracked page as dirty, and may stop and start again.
 *
 * A report that fails after some of its requests succeeded has cleared
 * those pages in the remote (their bits are in bitmap, but the call
 * failed): the caller treats the whole range as dirty, as for -ESTALE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static int need_feature(struct mpdev *dev)
{
	if (dev->features & MPDEV_FEATURE_DIRTY_TRACKING)
		return 0;
	return mpdev_error_set(&dev->err, ENOTSUP,
			       "the remote does not track dirty pages (feature not negotiated)");
}

static int start_once(struct mpdev *dev, const struct mpdev_dirty_range *ranges, size_t n,
		      uint64_t page_size)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyStart ds = MPDEV__DIRTY_START__INIT;
	Mpdev__IovaRange *v, **ptrs;
	int r;

	v = calloc(n ? n : 1, sizeof(*v));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!v || !ptrs) {
		free(v);
		free(ptrs);
		return mpdev_error_set(&dev->err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		mpdev__iova_range__init(&v[i]);
		v[i].start = ranges[i].iova;
		v[i].last = ranges[i].iova + (ranges[i].size - 1);
		ptrs[i] = &v[i];
	}
	ds.n_ranges = n;
	ds.ranges = ptrs;
	ds.page_size = page_size;
	req.body_case = MPDEV__ENVELOPE__BODY_DIRTY_START;
	req.dirty_start = &ds;
	r = client_request_ok(dev, &req, NULL, 0);
	free(v);
	free(ptrs);
	return r;
}

int mpdev_dirty_start(struct mpdev *dev, const struct mpdev_dirty_range *ranges, size_t n,
		      uint64_t page_size)
{
	int r, tries = 0;

	r = need_feature(dev);
	if (r < 0)
		return r;
	if (n && !ranges)
		return mpdev_error_set(&dev->err, EINVAL, "%zu ranges, but no array", n);
	/* The wire says [start, last]: a range of size 0, or one that wraps, has no such form. */
	for (size_t i = 0; i < n; i++)
		if (!ranges[i].size || ranges[i].iova + (ranges[i].size - 1) < ranges[i].iova)
			return mpdev_error_set(&dev->err, EINVAL,
					       "range %zu at 0x%llx has size 0x%llx", i,
					       (unsigned long long)ranges[i].iova,
					       (unsigned long long)ranges[i].size);
	/* Safe to send again after a restart: the new remote tracks nothing yet. */
	do
		r = start_once(dev, ranges, n, page_size);
	while (client_retry(dev, &r, &tries));
	if (r == 0) {
		dev->dirty.active = true;
		dev->dirty.restarts = dev->replay.restarts;
	}
	return r;
}

/* One DirtyReport of pages pages (at most one reply's worth) into out. */
static int report_once(struct mpdev *dev, uint64_t iova, uint64_t pages, uint64_t page_size,
		       uint8_t *out)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyReport dr = MPDEV__DIRTY_REPORT__INIT;
	struct wire_msg reply;
	size_t want = (size_t)(pages / 8 + (pages % 8 != 0));
	int r;

	dr.iova = iova;
	dr.size = pages * page_size;
	dr.page_size = page_size;
	req.body_case = MPDEV__ENVELOPE__BODY_DIRTY_REPORT;
	req.dirty_report = &dr;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_DIRTY_BITMAP);
	if (r == 0 && reply.env->dirty_bitmap->bitmap.len != want)
		r = mpdev_error_set(&dev->err, EPROTO,
				    "remote returned %zu bitmap bytes for %llu pages, not %zu",
				    reply.env->dirty_bitmap->bitmap.len, (unsigned long long)pages,
				    want);
	if (r == 0)
		memcpy(out, reply.env->dirty_bitmap->bitmap.data, want);
	wire_msg_release(&reply);
	return r;
}

static int stale(struct mpdev *dev)
{
	return mpdev_error_set(&dev->err, ESTALE,
			       "the remote restarted since dirty tracking was started: its bits "
			       "are lost; treat every tracked page as dirty, then stop and start "
			       "again");
}

int mpdev_dirty_report(struct mpdev *dev, uint64_t iova, uint64_t size, uint64_t page_size,
		       uint8_t *bitmap, size_t len)
{
	uint64_t pages, done = 0;
	int r, tries = 0;

	r = need_feature(dev);
	if (r < 0)
		return r;
	if (page_size < 4096 || (page_size & (page_size - 1)) || !size || size % page_size)
		return mpdev_error_set(&dev->err, EINVAL,
				       "size 0x%llx, page size 0x%llx: a non-zero multiple of a "
				       "power of two of at least 4096",
				       (unsigned long long)size, (unsigned long long)page_size);
	pages = size / page_size;
	if (!bitmap || len < pages / 8 + (pages % 8 != 0))
		return mpdev_error_set(&dev->err, EINVAL,
				       "bitmap of %zu bytes for %llu pages: %llu needed", len,
				       (unsigned long long)pages,
				       (unsigned long long)(pages / 8 + (pages % 8 != 0)));
	if (dev->dirty.active && dev->dirty.restarts != dev->replay.restarts)
		return stale(dev);
	/* A chunk is a multiple of 8 pages: each lands on a byte boundary of bitmap. */
	while (done < pages) {
		uint64_t n = pages - done < MPDEV_DIRTY_REPORT_MAX_PAGES
				     ? pages - done
				     : MPDEV_DIRTY_REPORT_MAX_PAGES;

		r = report_once(dev, iova + done * page_size, n, page_size, bitmap + done / 8);
		/* Reconnected: the restarted remote never saw the writes. Not sent again. */
		if (client_retry(dev, &r, &tries))
			return stale(dev);
		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

static int stop_once(struct mpdev *dev)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyStop body = MPDEV__DIRTY_STOP__INIT;

	req.body_case = MPDEV__ENVELOPE__BODY_DIRTY_STOP;
	req.dirty_stop = &body;
	return client_request_ok(dev, &req, NULL, 0);
}

int mpdev_dirty_stop(struct mpdev *dev)
{
	int r, tries = 0;

	r = need_feature(dev);
	if (r < 0)
		return r;
	/* Stopping is a no-op on a remote that is not tracking: safe to repeat. */
	do
		r = stop_once(dev);
	while (client_retry(dev, &r, &tries));
	if (r == 0)
		dev->dirty.active = false;
	return r;
}
