#include "vfio_type1_dirty.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_caps.h"

int type1_dirty_probe(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		      struct mpdev_error *err)
{
	struct vfio_iommu_type1_info head = { .argsz = sizeof(head) };
	const struct vfio_iommu_type1_info_cap_migration *mig = NULL;
	struct vfio_iommu_type1_info *ti;
	void *buf;
	size_t len;
	int r;

	memset(d, 0, sizeof(*d));
	r = vfio_info_grow(sys, container_fd, VFIO_IOMMU_GET_INFO, &head, sizeof(head), &buf, &len,
			   "VFIO_IOMMU_GET_INFO", err);
	if (r < 0)
		return r;
	ti = buf;
	if (ti->flags & VFIO_IOMMU_INFO_CAPS)
		mig = vfio_find_cap(buf, len, ti->cap_offset, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
				    sizeof(*mig));
	if (mig && mig->pgsize_bitmap) {
		/* The kernel tracks at 1 << __ffs(pgsize_bitmap) and accepts nothing else. */
		d->pgsize = mig->pgsize_bitmap & -mig->pgsize_bitmap;
		d->max_bitmap = mig->max_dirty_bitmap_size;
		d->available = true;
	}
	free(buf);
	if (!d->available)
		return mpdev_error_set(err, ENOTSUP,
				       "the container has no dirty-page tracking (no MIGRATION "
				       "capability in VFIO_IOMMU_GET_INFO)");
	return 0;
}

static int dirty_ioctl(const struct vfio_sys *sys, int fd, uint32_t flags, void *data, size_t len)
{
	/* The header's data[] is a flexible array: the argument is built in a buffer. */
	uint64_t buf[(sizeof(struct vfio_iommu_type1_dirty_bitmap) +
		      sizeof(struct vfio_iommu_type1_dirty_bitmap_get) + 7) /
		     8] = { 0 };
	struct vfio_iommu_type1_dirty_bitmap *a = (struct vfio_iommu_type1_dirty_bitmap *)buf;

	if (len > sizeof(struct vfio_iommu_type1_dirty_bitmap_get))
		return -EINVAL;
	a->argsz = (uint32_t)(sizeof(*a) + len);
	a->flags = flags;
	if (len)
		memcpy(a->data, data, len);
	return sys->ioctl(sys->opaque, fd, VFIO_IOMMU_DIRTY_PAGES, a) < 0 ? -errno : 0;
}

int type1_dirty_start(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		      uint64_t page_size, struct mpdev_error *err)
{
	int r;

	if (!d->available)
		return mpdev_error_set(err, ENOTSUP, "the container has no dirty-page tracking");
	if (page_size != d->pgsize)
		return mpdev_error_set(err, EINVAL,
				       "the container tracks dirty pages at %llu bytes only "
				       "(asked %llu)",
				       (unsigned long long)d->pgsize,
				       (unsigned long long)page_size);
	r = dirty_ioctl(sys, container_fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, NULL, 0);
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_IOMMU_DIRTY_PAGES START: %s", strerror(-r));
	d->started = true;
	return 0;
}

int type1_dirty_stop(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		     struct mpdev_error *err)
{
	int r;

	if (!d->started)
		return 0;
	d->started = false;
	r = dirty_ioctl(sys, container_fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, NULL, 0);
	if (r < 0)
		return mpdev_error_set(err, -r, "VFIO_IOMMU_DIRTY_PAGES STOP: %s", strerror(-r));
	return 0;
}

/* [*lo, *hi) grown to the whole mappings its ends fall inside. */
static void widen(const struct type1_map *maps, size_t n, uint64_t *lo, uint64_t *hi)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t end = maps[i].iova + maps[i].size;

		if (maps[i].iova < *lo && *lo < end)
			*lo = maps[i].iova;
		if (maps[i].iova < *hi && *hi < end)
			*hi = end;
	}
}

int type1_dirty_report(const struct vfio_sys *sys, int container_fd, struct type1_dirty *d,
		       const struct type1_map *maps, size_t n, uint64_t iova, uint64_t size,
		       uint64_t page_size, uint8_t *bitmap, size_t len, struct mpdev_error *err)
{
	struct vfio_iommu_type1_dirty_bitmap_get get;
	uint64_t pages, all, bytes, lo = iova, hi = iova + size, skip;
	uint64_t *words;
	int r;

	if (!d->started)
		return mpdev_error_set(err, EINVAL, "dirty-page tracking is not started");
	if (page_size != d->pgsize || !size || (iova | size) % d->pgsize || hi < iova)
		return mpdev_error_set(err, EINVAL,
				       "the container reports [0x%llx, +0x%llx) only by %llu-byte "
				       "pages, aligned to them",
				       (unsigned long long)iova, (unsigned long long)size,
				       (unsigned long long)d->pgsize);
	pages = size / page_size;
	if (len < (pages + 7) / 8)
		return mpdev_error_set(err, EINVAL, "a bitmap of %zu bytes for %llu pages", len,
				       (unsigned long long)pages);
	widen(maps, n, &lo, &hi);
	all = (hi - lo) / page_size;
	skip = (iova - lo) / page_size;
	/* verify_bitmap_size(): whole u64 words, at most max_dirty_bitmap_size. */
	bytes = (all + 63) / 64 * 8;
	if (d->max_bitmap && bytes > d->max_bitmap)
		return mpdev_error_set(err, E2BIG,
				       "%llu pages need a %llu-byte bitmap; the kernel takes %llu "
				       "at a time",
				       (unsigned long long)all, (unsigned long long)bytes,
				       (unsigned long long)d->max_bitmap);
	words = calloc(1, (size_t)bytes); /* the kernel ORs into it: zeroed */
	if (!words)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	get = (struct vfio_iommu_type1_dirty_bitmap_get){
		.iova = lo,
		.size = hi - lo,
		.bitmap = { .pgsize = page_size, .size = bytes, .data = (__u64 *)words },
	};
	r = dirty_ioctl(sys, container_fd, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, &get,
			sizeof(get));
	if (r == 0) {
		memset(bitmap, 0, len);
		for (uint64_t i = 0; i < pages; i++)
			if (words[(skip + i) / 64] >> ((skip + i) % 64) & 1)
				bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	free(words);
	if (r < 0)
		return mpdev_error_set(err, -r,
				       "VFIO_IOMMU_DIRTY_PAGES GET_BITMAP [0x%llx, +0x%llx): "
				       "%s%s",
				       (unsigned long long)lo, (unsigned long long)(hi - lo),
				       strerror(-r),
				       r == -EINVAL ? " (the range must begin and end on mapping "
						      "boundaries)"
						    : "");
	return 0;
}
