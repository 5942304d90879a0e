/* The legacy VFIO container: /dev/vfio/vfio, groups, TYPE1v2 IOMMU. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vfio_caps.h"
#include "vfio_iommu.h"
#include "vfio_type1_dirty.h"

#define COMP		     "vfio"
#define CONTAINER_MAX_GROUPS 8

struct container {
	struct vfio_iommu io;
	int fd;
	bool iommu_set;
	struct {
		int id;
		int fd;
	} groups[CONTAINER_MAX_GROUPS];
	size_t n_groups;
	uint64_t pinned; /* bytes mapped, for the memlock check */
	struct type1_dirty dirty;
	struct type1_map *maps; /* what MAP_DMA holds, for widening dirty reports */
	size_t n_maps, cap_maps;
};

static struct container *to_container(struct vfio_iommu *io)
{
	return (struct container *)io;
}

static int sys_ioctl(struct container *c, int fd, unsigned long req, void *arg)
{
	return c->io.sys->ioctl(c->io.sys->opaque, fd, req, arg);
}

static int open_group(struct container *c, int group, struct mpdev_error *err)
{
	const struct vfio_sys *sys = c->io.sys;
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[PATH_MAX];
	int fd, r;

	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i].id == group)
			return c->groups[i].fd;
	if (c->n_groups == CONTAINER_MAX_GROUPS)
		return mpdev_error_set(err, ENOSPC, "more than %d IOMMU groups",
				       CONTAINER_MAX_GROUPS);
	snprintf(path, sizeof(path), "%s/vfio/%d", sys->dev_root, group);
	fd = sys->open(sys->opaque, path, O_RDWR);
	if (fd < 0)
		return mpdev_error_set(err, errno, "%s: %s%s", path, strerror(errno),
				       errno == EBUSY ? " (another process holds the group)" : "");
	if (sys_ioctl(c, fd, VFIO_GROUP_GET_STATUS, &st) < 0) {
		r = mpdev_error_set(err, errno, "VFIO_GROUP_GET_STATUS on group %d: %s", group,
				    strerror(errno));
		goto fail;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		r = vfio_group_check_viable(sys, group, err);
		if (r == 0)
			r = mpdev_error_set(
				err, EBUSY,
				"IOMMU group %d is not viable (the kernel says so; "
				"check the drivers of /sys/kernel/iommu_groups/%d/devices)",
				group, group);
		goto fail;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET) &&
	    sys_ioctl(c, fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0) {
		r = mpdev_error_set(err, errno, "VFIO_GROUP_SET_CONTAINER on group %d: %s", group,
				    strerror(errno));
		goto fail;
	}
	/* The IOMMU model is chosen once, after the first group joined. */
	if (!c->iommu_set) {
		if (sys_ioctl(c, c->fd, VFIO_SET_IOMMU, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) <
		    0) {
			int e = errno;

			r = mpdev_error_set(
				err, e, "VFIO_SET_IOMMU(TYPE1v2): %s%s", strerror(e),
				e == EPERM
					? ": the IOMMU does not remap interrupts; enable interrupt "
					  "remapping, or (unsafe) allow_unsafe_interrupts=1 for "
					  "vfio_iommu_type1"
					: "");
			goto fail;
		}
		c->iommu_set = true;
	}
	c->groups[c->n_groups].id = group;
	c->groups[c->n_groups].fd = fd;
	c->n_groups++;
	return fd;
fail:
	sys->close(sys->opaque, fd);
	return r;
}

static int container_open_device(struct vfio_iommu *io, const char *bdf, int *device_fd,
				 struct mpdev_error *err)
{
	struct container *c = to_container(io);
	int group, gfd, fd, r;

	r = vfio_check_bound(io->sys, bdf, err);
	if (r < 0)
		return r;
	group = vfio_group_of(io->sys, bdf, err);
	if (group < 0)
		return group;
	gfd = open_group(c, group, err);
	if (gfd < 0)
		return gfd;
	fd = sys_ioctl(c, gfd, VFIO_GROUP_GET_DEVICE_FD, (void *)bdf);
	if (fd < 0)
		return mpdev_error_set(err, errno, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf,
				       strerror(errno));
	log_info(COMP, "%s: group %d, container (TYPE1v2)", bdf, group);
	*device_fd = fd;
	return 0;
}

static int container_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *vaddr,
			 bool writable, struct mpdev_error *err)
{
	struct container *c = to_container(io);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};
	int r = vfio_check_memlock(c->pinned + size, err);

	if (r < 0)
		return r;
	/* Room to remember it first: nothing may fail after the kernel said yes. */
	if (c->n_maps == c->cap_maps) {
		size_t cap = c->cap_maps ? c->cap_maps * 2 : 16;
		struct type1_map *p = realloc(c->maps, cap * sizeof(*p));

		if (!p)
			return mpdev_error_set(err, ENOMEM, "out of memory");
		c->maps = p;
		c->cap_maps = cap;
	}
	if (sys_ioctl(c, c->fd, VFIO_IOMMU_MAP_DMA, &map) < 0)
		return mpdev_error_set(err, errno, "VFIO_IOMMU_MAP_DMA [0x%llx, 0x%llx): %s",
				       (unsigned long long)iova, (unsigned long long)(iova + size),
				       strerror(errno));
	c->pinned += size;
	c->maps[c->n_maps++] = (struct type1_map){ iova, size };
	return 0;
}

static int container_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size,
			   struct mpdev_error *err)
{
	struct container *c = to_container(io);
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = size,
	};

	if (sys_ioctl(c, c->fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
		return mpdev_error_set(err, errno, "VFIO_IOMMU_UNMAP_DMA [0x%llx, 0x%llx): %s",
				       (unsigned long long)iova, (unsigned long long)(iova + size),
				       strerror(errno));
	/* The kernel says how much it unmapped: anything else is not the region we mapped. */
	if (unmap.size != size)
		return mpdev_error_set(
			err, EIO, "VFIO_IOMMU_UNMAP_DMA [0x%llx, 0x%llx) unmapped 0x%llx bytes",
			(unsigned long long)iova, (unsigned long long)(iova + size),
			(unsigned long long)unmap.size);
	c->pinned -= size < c->pinned ? size : c->pinned;
	for (size_t i = 0; i < c->n_maps; i++)
		if (c->maps[i].iova == iova && c->maps[i].size == size) {
			c->maps[i] = c->maps[--c->n_maps];
			break;
		}
	return 0;
}

static int container_get_info(struct vfio_iommu *io, struct vfio_iommu_info *info,
			      struct mpdev_error *err)
{
	struct container *c = to_container(io);
	struct vfio_iommu_type1_info head = { .argsz = sizeof(head) };
	const struct vfio_iommu_type1_info_cap_iova_range *ranges;
	const struct vfio_iommu_type1_info_dma_avail *avail;
	struct vfio_iommu_type1_info *ti;
	void *buf;
	size_t len;
	int r;

	r = vfio_info_grow(io->sys, c->fd, VFIO_IOMMU_GET_INFO, &head, sizeof(head), &buf, &len,
			   "VFIO_IOMMU_GET_INFO", err);
	if (r < 0)
		return r;
	ti = buf;
	memset(info, 0, sizeof(*info));
	info->kind = VFIO_IOMMU_CONTAINER;
	info->pgsize_bitmap = (ti->flags & VFIO_IOMMU_INFO_PGSIZES) ? ti->iova_pgsizes : 4096;
	info->dma_avail = UINT32_MAX;
	if (ti->flags & VFIO_IOMMU_INFO_CAPS) {
		ranges = vfio_find_cap(buf, len, ti->cap_offset,
				       VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, sizeof(*ranges));
		if (ranges) {
			size_t room =
				(len - (size_t)((const uint8_t *)ranges - (const uint8_t *)buf) -
				 sizeof(*ranges)) /
				sizeof(ranges->iova_ranges[0]);

			for (uint32_t i = 0; i < ranges->nr_iovas && i < room &&
					     info->n_ranges < VFIO_IOMMU_MAX_RANGES;
			     i++) {
				info->ranges[info->n_ranges].start = ranges->iova_ranges[i].start;
				info->ranges[info->n_ranges].last = ranges->iova_ranges[i].end;
				info->n_ranges++;
			}
		}
		avail = vfio_find_cap(buf, len, ti->cap_offset, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
				      sizeof(*avail));
		if (avail)
			info->dma_avail = avail->avail;
	}
	/* Older kernels give no range cap: the whole space (below the last page). */
	if (!info->n_ranges) {
		info->ranges[0].start = 0;
		info->ranges[0].last = UINT64_MAX;
		info->n_ranges = 1;
	}
	free(buf);
	return 0;
}

static int container_dirty_probe(struct vfio_iommu *io, struct mpdev_error *err)
{
	struct container *c = to_container(io);

	return type1_dirty_probe(io->sys, c->fd, &c->dirty, err);
}

static int container_dirty_start(struct vfio_iommu *io, uint64_t page_size, struct mpdev_error *err)
{
	struct container *c = to_container(io);

	return type1_dirty_start(io->sys, c->fd, &c->dirty, page_size, err);
}

static int container_dirty_stop(struct vfio_iommu *io, struct mpdev_error *err)
{
	struct container *c = to_container(io);

	return type1_dirty_stop(io->sys, c->fd, &c->dirty, err);
}

static int container_dirty_report(struct vfio_iommu *io, uint64_t iova, uint64_t size,
				  uint64_t page_size, uint8_t *bitmap, size_t len,
				  struct mpdev_error *err)
{
	struct container *c = to_container(io);

	return type1_dirty_report(io->sys, c->fd, &c->dirty, c->maps, c->n_maps, iova, size,
				  page_size, bitmap, len, err);
}

static void container_destroy(struct vfio_iommu *io)
{
	struct container *c = to_container(io);

	/* Closing a group takes it out of the container; its mappings go with the container. */
	for (size_t i = 0; i < c->n_groups; i++)
		io->sys->close(io->sys->opaque, c->groups[i].fd);
	if (c->fd >= 0)
		io->sys->close(io->sys->opaque, c->fd);
	free(c->maps);
	free(c);
}

static const struct vfio_iommu_ops container_ops = {
	.name = "container",
	.open_device = container_open_device,
	.map = container_map,
	.unmap = container_unmap,
	.get_info = container_get_info,
	.dirty_probe = container_dirty_probe,
	.dirty_start = container_dirty_start,
	.dirty_stop = container_dirty_stop,
	.dirty_report = container_dirty_report,
	.destroy = container_destroy,
};

int vfio_container_create(const struct vfio_sys *sys, struct vfio_iommu **out,
			  struct mpdev_error *err)
{
	struct container *c = calloc(1, sizeof(*c));
	char path[PATH_MAX];
	int v;

	*out = NULL;
	if (!c)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	c->io.ops = &container_ops;
	c->io.sys = sys;
	snprintf(path, sizeof(path), "%s/vfio/vfio", sys->dev_root);
	c->fd = sys->open(sys->opaque, path, O_RDWR);
	if (c->fd < 0) {
		int e = errno;

		free(c);
		return mpdev_error_set(err, e, "%s: %s (is the vfio module loaded?)", path,
				       strerror(e));
	}
	v = sys->ioctl(sys->opaque, c->fd, VFIO_GET_API_VERSION, NULL);
	if (v != VFIO_API_VERSION) {
		container_destroy(&c->io);
		return mpdev_error_set(err, EPROTONOSUPPORT, "VFIO API version %d, expected %d", v,
				       VFIO_API_VERSION);
	}
	if (sys->ioctl(sys->opaque, c->fd, VFIO_CHECK_EXTENSION,
		       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) <= 0) {
		container_destroy(&c->io);
		return mpdev_error_set(err, ENODEV,
				       "the VFIO container offers no TYPE1v2 IOMMU (is "
				       "vfio_iommu_type1 loaded, and is there an IOMMU?)");
	}
	*out = &c->io;
	return 0;
}
