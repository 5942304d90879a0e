/*
 * iommufd: /dev/iommu, devices by their cdev (/dev/vfio/devices/vfioN), and
 * one or more IOAS (I/O address spaces) that hold the same mappings.
 *
 * A map goes into ioas[0] with IOMMU_IOAS_MAP and is IOMMU_IOAS_COPY'd into
 * every other IOAS: the copies share ioas[0]'s pinned pages instead of
 * pinning them again. Every change is all-or-nothing: a failure part way is
 * undone before the error is returned, so the IOMMU never holds half of one.
 * Unmap goes the other way (others first, ioas[0] last) so that whatever
 * has to be restored can be copied back from ioas[0].
 *
 * Kernel facts relied on (include/uapi/linux/iommufd.h, drivers/iommu/iommufd):
 * - IOMMU_IOAS_UNMAP of a range must cover whole areas; splitting one fails
 *   with ENOENT (io_pagetable.c, iopt_unmap_iova_range), so we unmap exactly
 *   the ranges we mapped.
 * - IOMMU_IOAS_COPY needs READABLE/WRITEABLE in flags (ioas.c) and a source
 *   range covered by areas (iopt_get_pages); a writable copy of a read-only
 *   map is EPERM (iopt_insert_area).
 * - VFIO_DEVICE_ATTACH_IOMMUFD_PT takes an IOAS id and returns the id of the
 *   page table (auto domain) it attached to in pt_id (device.c).
 * - An IOAS with a device attached cannot be destroyed (EBUSY): the device
 *   fds must be closed first; IOMMU_DESTROY of an IOAS unmaps its areas.
 * - IOMMU_IOAS_IOVA_RANGES answers EMSGSIZE with num_iovas set when the
 *   buffer is short (ioas.c, iommufd_ioas_iova_ranges).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iommufd_uapi.h"
#include "log.h"
#include "vfio_mig_uapi.h"
#include "vfio_iommu.h"

#define COMP "vfio"

#define IOFD_MAX_DEVS 16

struct iofd_map {
	uint64_t iova, size;
	bool writable;
};

struct iofd {
	struct vfio_iommu io;
	int fd; /* /dev/iommu */
	unsigned nr_ioas;
	unsigned n_ioas;
	uint32_t *ioas; /* nr_ioas slots, n_ioas used */
	unsigned n_devs;
	struct iofd_map *maps; /* what every IOAS holds */
	size_t n_maps, cap_maps;
	uint64_t pinned;		/* bytes mapped: copies share pages, so counted once */
	uint32_t devids[IOFD_MAX_DEVS]; /* n_devs of them: for IOMMU_GET_HW_INFO */
	char dirty_why[160];		/* why there is no dirty tracking */
};

static struct iofd *to_iofd(struct vfio_iommu *io)
{
	return (struct iofd *)io;
}

static int sys_ioctl(struct iofd *f, int fd, unsigned long req, void *arg)
{
	return f->io.sys->ioctl(f->io.sys->opaque, fd, req, arg);
}

static void sys_close(struct iofd *f, int fd)
{
	f->io.sys->close(f->io.sys->opaque, fd);
}

/* --- single IOAS operations --- */

static int ioas_alloc(struct iofd *f, uint32_t *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

	if (sys_ioctl(f, f->fd, IOMMU_IOAS_ALLOC, &cmd) < 0)
		return -errno;
	*id = cmd.out_ioas_id;
	return 0;
}

static int ioas_destroy(struct iofd *f, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return sys_ioctl(f, f->fd, IOMMU_DESTROY, &cmd) < 0 ? -errno : 0;
}

static uint32_t map_flags(bool writable)
{
	return IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
	       (writable ? IOMMU_IOAS_MAP_WRITEABLE : 0);
}

/* Copies exactly [iova, iova + size) of ioas[0] to the same IOVA in dst. */
static int ioas_copy(struct iofd *f, uint32_t dst, uint64_t iova, uint64_t size, bool writable)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd),
		.flags = map_flags(writable),
		.dst_ioas_id = dst,
		.src_ioas_id = f->ioas[0],
		.length = size,
		.dst_iova = iova,
		.src_iova = iova,
	};

	return sys_ioctl(f, f->fd, IOMMU_IOAS_COPY, &cmd) < 0 ? -errno : 0;
}

static int ioas_unmap(struct iofd *f, uint32_t id, uint64_t iova, uint64_t size)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = id,
		.iova = iova,
		.length = size,
	};

	if (sys_ioctl(f, f->fd, IOMMU_IOAS_UNMAP, &cmd) < 0)
		return -errno;
	if (cmd.length != size)
		log_warn(COMP, "IOMMU_IOAS_UNMAP [0x%llx, 0x%llx) of IOAS %u unmapped 0x%llx bytes",
			 (unsigned long long)iova, (unsigned long long)(iova + size), id,
			 (unsigned long long)cmd.length);
	return 0;
}

/* Undo helpers: a failure here leaves the IOMMU out of step; all we can do is say so. */
static void undo_unmap(struct iofd *f, uint32_t id, uint64_t iova, uint64_t size)
{
	int r = ioas_unmap(f, id, iova, size);

	if (r < 0)
		log_error(COMP, "undo: IOMMU_IOAS_UNMAP [0x%llx, 0x%llx) of IOAS %u: %s",
			  (unsigned long long)iova, (unsigned long long)(iova + size), id,
			  strerror(-r));
}

static void undo_copy(struct iofd *f, uint32_t dst, const struct iofd_map *m)
{
	int r = ioas_copy(f, dst, m->iova, m->size, m->writable);

	if (r < 0)
		log_error(COMP, "undo: IOMMU_IOAS_COPY [0x%llx, 0x%llx) into IOAS %u: %s",
			  (unsigned long long)m->iova, (unsigned long long)(m->iova + m->size), dst,
			  strerror(-r));
}

static void undo_destroy(struct iofd *f, uint32_t id)
{
	int r = ioas_destroy(f, id);

	if (r < 0)
		log_error(COMP, "undo: IOMMU_DESTROY of IOAS %u: %s", id, strerror(-r));
}

/* --- open_device --- */

/* The device's cdev name ("vfioN") from sysfs <bdf>/vfio-dev/. */
static int find_cdev(const struct vfio_sys *sys, const char *bdf, char *name, size_t len,
		     struct mpdev_error *err)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int r = -ENODEV;

	vfio_sysfs_dev_dir(sys, bdf, dir, sizeof(dir));
	strncat(dir, "/vfio-dev", sizeof(dir) - strlen(dir) - 1);
	d = opendir(dir);
	if (!d)
		return mpdev_error_set(err, ENODEV,
				       "%s has no VFIO device cdev (%s: %s): the kernel needs "
				       "CONFIG_VFIO_DEVICE_CDEV for iommufd; use --iommu container",
				       bdf, dir, strerror(errno));
	while ((de = readdir(d))) {
		const char *p = de->d_name + 4;

		if (strncmp(de->d_name, "vfio", 4) != 0 || !*p ||
		    strspn(p, "0123456789") != strlen(p))
			continue;
		snprintf(name, len, "%s", de->d_name);
		r = 0;
		break;
	}
	closedir(d);
	if (r < 0)
		return mpdev_error_set(err, ENODEV, "%s: no vfioN entry in %s", bdf, dir);
	return 0;
}

static int bind_error(struct iofd *f, const char *bdf, int e, struct mpdev_error *err)
{
	const struct vfio_sys *sys = f->io.sys;
	int group;

	if (e == EPERM)
		return mpdev_error_set(err, e,
				       "VFIO_DEVICE_BIND_IOMMUFD(%s): %s: the IOMMU cannot isolate "
				       "MSI (interrupt remapping is off); enable it, or (unsafe) "
				       "set iommufd's allow_unsafe_interrupts=1",
				       bdf, strerror(e));
	if (e == EBUSY) {
		/* Name the group members that keep it busy, if sysfs shows any. */
		group = vfio_group_of(sys, bdf, NULL);
		if (group >= 0 && vfio_group_check_viable(sys, group, err) < 0)
			return -EBUSY;
		return mpdev_error_set(err, e,
				       "VFIO_DEVICE_BIND_IOMMUFD(%s): %s: the device or its IOMMU "
				       "group is in use (another VFIO user, or the group opened "
				       "through /dev/vfio)",
				       bdf, strerror(e));
	}
	return mpdev_error_set(err, e, "VFIO_DEVICE_BIND_IOMMUFD(%s): %s", bdf, strerror(e));
}

static int iofd_open_device(struct vfio_iommu *io, const char *bdf, int *device_fd,
			    struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	const struct vfio_sys *sys = io->sys;
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	char cdev[NAME_MAX + 1], path[PATH_MAX];
	bool new_ioas = f->n_ioas == 0 || f->n_ioas < f->nr_ioas;
	uint32_t ioas_id = 0;
	int fd, r;

	r = vfio_check_bound(sys, bdf, err);
	if (r < 0)
		return r;
	r = find_cdev(sys, bdf, cdev, sizeof(cdev), err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/vfio/devices/%s", sys->dev_root, cdev);
	fd = sys->open(sys->opaque, path, O_RDWR);
	if (fd < 0)
		return mpdev_error_set(err, errno, "%s (%s): %s", path, bdf, strerror(errno));

	bind.iommufd = f->fd;
	if (sys_ioctl(f, fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
		r = bind_error(f, bdf, errno, err);
		goto close_fd;
	}

	if (new_ioas) {
		r = ioas_alloc(f, &ioas_id);
		if (r < 0) {
			mpdev_error_set(err, r, "IOMMU_IOAS_ALLOC for %s: %s", bdf, strerror(-r));
			goto close_fd;
		}
		/* A later IOAS starts with what the others hold. */
		for (size_t i = 0; f->n_ioas && i < f->n_maps; i++) {
			const struct iofd_map *m = &f->maps[i];

			r = ioas_copy(f, ioas_id, m->iova, m->size, m->writable);
			if (r < 0) {
				mpdev_error_set(
					err, r,
					"IOMMU_IOAS_COPY [0x%llx, 0x%llx) into the new IOAS "
					"for %s: %s",
					(unsigned long long)m->iova,
					(unsigned long long)(m->iova + m->size), bdf, strerror(-r));
				goto destroy_ioas; /* destroying an IOAS unmaps its copies */
			}
		}
	} else {
		ioas_id = f->ioas[f->n_ioas - 1];
	}

	attach.pt_id = ioas_id;
	if (sys_ioctl(f, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
		int e = errno;

		r = mpdev_error_set(err, e, "VFIO_DEVICE_ATTACH_IOMMUFD_PT(%s, IOAS %u): %s%s", bdf,
				    ioas_id, strerror(e),
				    e == EADDRINUSE ? ": a mapping overlaps an IOVA range the "
						      "device reserves (such as the MSI window)"
						    : "");
		goto destroy_ioas;
	}
	if (new_ioas)
		f->ioas[f->n_ioas++] = ioas_id;
	if (f->n_devs < IOFD_MAX_DEVS)
		f->devids[f->n_devs] = bind.out_devid;
	f->n_devs++;
	log_info(COMP, "%s: %s bound to iommufd as device %u, IOAS %u (page table %u)", bdf, cdev,
		 bind.out_devid, ioas_id, attach.pt_id);
	*device_fd = fd;
	return 0;

destroy_ioas:
	if (new_ioas)
		undo_destroy(f, ioas_id);
close_fd:
	sys_close(f, fd); /* closing the cdev unbinds it */
	return r;
}

/* --- map / unmap --- */

static ssize_t find_map(const struct iofd *f, uint64_t iova, uint64_t size)
{
	for (size_t i = 0; i < f->n_maps; i++)
		if (f->maps[i].iova == iova && f->maps[i].size == size)
			return (ssize_t)i;
	return -1;
}

static int iofd_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *vaddr, bool writable,
		    struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = map_flags(writable),
		.user_va = (uintptr_t)vaddr,
		.length = size,
	};
	unsigned k;
	int r = 0;

	if (!f->n_ioas)
		return mpdev_error_set(err, ENODEV,
				       "iommufd: no device is attached yet, so there is no IOAS "
				       "to map [0x%llx, 0x%llx) into",
				       (unsigned long long)iova, (unsigned long long)(iova + size));
	r = vfio_check_memlock(f->pinned + size, err);
	if (r < 0)
		return r;
	/* Room to remember it first: nothing may fail after the kernel said yes. */
	if (f->n_maps == f->cap_maps) {
		size_t cap = f->cap_maps ? f->cap_maps * 2 : 16;
		struct iofd_map *p = realloc(f->maps, cap * sizeof(*p));

		if (!p)
			return mpdev_error_set(err, ENOMEM, "out of memory");
		f->maps = p;
		f->cap_maps = cap;
	}

	cmd.ioas_id = f->ioas[0];
	cmd.iova = iova;
	if (sys_ioctl(f, f->fd, IOMMU_IOAS_MAP, &cmd) < 0) {
		int e = errno;

		return mpdev_error_set(err, e, "IOMMU_IOAS_MAP [0x%llx, 0x%llx): %s%s",
				       (unsigned long long)iova, (unsigned long long)(iova + size),
				       strerror(e),
				       e == ENOMEM ? " (pinned memory is charged to RLIMIT_MEMLOCK)"
				       : e == EEXIST ? " (overlaps an existing mapping)"
				       : e == EINVAL ? " (unaligned, or in a reserved IOVA range)"
						     : "");
	}
	for (k = 1; k < f->n_ioas; k++) {
		r = ioas_copy(f, f->ioas[k], iova, size, writable);
		if (r < 0)
			break;
	}
	if (k < f->n_ioas) {
		mpdev_error_set(err, r, "IOMMU_IOAS_COPY [0x%llx, 0x%llx) into IOAS %u: %s",
				(unsigned long long)iova, (unsigned long long)(iova + size),
				f->ioas[k], strerror(-r));
		while (k-- > 1)
			undo_unmap(f, f->ioas[k], iova, size);
		undo_unmap(f, f->ioas[0], iova, size);
		return r;
	}
	f->maps[f->n_maps++] = (struct iofd_map){ iova, size, writable };
	f->pinned += size;
	return 0;
}

static int iofd_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size, struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	ssize_t i = find_map(f, iova, size);
	unsigned k;
	int r = 0;

	if (i < 0)
		return mpdev_error_set(err, ENOENT,
				       "iommufd: [0x%llx, 0x%llx) is not a mapping made earlier "
				       "(unmap takes exactly one earlier map)",
				       (unsigned long long)iova, (unsigned long long)(iova + size));
	/* The copies first, ioas[0] last: it is the source to restore from. */
	for (k = f->n_ioas; k-- > 0;) {
		r = ioas_unmap(f, f->ioas[k], iova, size);
		if (r < 0)
			break;
	}
	if (r < 0) {
		mpdev_error_set(err, r, "IOMMU_IOAS_UNMAP [0x%llx, 0x%llx) of IOAS %u: %s",
				(unsigned long long)iova, (unsigned long long)(iova + size),
				f->ioas[k], strerror(-r));
		for (unsigned j = k + 1; j < f->n_ioas; j++)
			undo_copy(f, f->ioas[j], &f->maps[i]);
		return r;
	}
	f->maps[i] = f->maps[--f->n_maps];
	f->pinned -= size < f->pinned ? size : f->pinned;
	return 0;
}

/* --- get_info --- */

/* IOMMU_IOAS_IOVA_RANGES, growing the buffer as the kernel asks (EMSGSIZE). */
static int ioas_ranges(struct iofd *f, uint32_t id, struct iommu_iova_range **out, size_t *n,
		       uint64_t *align, struct mpdev_error *err)
{
	struct iommu_ioas_iova_ranges cmd = { .size = sizeof(cmd), .ioas_id = id };
	struct iommu_iova_range *buf = NULL;

	for (int tries = 0; tries < 8; tries++) {
		if (sys_ioctl(f, f->fd, IOMMU_IOAS_IOVA_RANGES, &cmd) == 0) {
			*out = buf;
			*n = cmd.num_iovas;
			*align = cmd.out_iova_alignment;
			return 0;
		}
		if (errno != EMSGSIZE) {
			int e = errno;

			free(buf);
			return mpdev_error_set(err, e, "IOMMU_IOAS_IOVA_RANGES of IOAS %u: %s", id,
					       strerror(e));
		}
		/* num_iovas now says how many there are; ask again with room for them. */
		free(buf);
		buf = calloc(cmd.num_iovas ? cmd.num_iovas : 1, sizeof(*buf));
		if (!buf)
			return mpdev_error_set(err, ENOMEM, "out of memory");
		cmd.allowed_iovas = (uintptr_t)buf;
	}
	free(buf);
	return mpdev_error_set(err, EAGAIN, "IOMMU_IOAS_IOVA_RANGES of IOAS %u kept changing size",
			       id);
}

/* Keeps in info only what is also inside one of ranges[0..n). */
static void intersect(struct vfio_iommu_info *info, const struct iommu_iova_range *r, size_t n)
{
	struct vfio_iommu_range out[VFIO_IOMMU_MAX_RANGES];
	size_t k = 0;

	for (size_t i = 0; i < info->n_ranges; i++)
		for (size_t j = 0; j < n; j++) {
			uint64_t s = info->ranges[i].start > r[j].start ? info->ranges[i].start
									: r[j].start;
			uint64_t l =
				info->ranges[i].last < r[j].last ? info->ranges[i].last : r[j].last;

			if (s <= l && k < VFIO_IOMMU_MAX_RANGES)
				out[k++] = (struct vfio_iommu_range){ s, l };
		}
	memcpy(info->ranges, out, k * sizeof(out[0]));
	info->n_ranges = k;
}

static int iofd_get_info(struct vfio_iommu *io, struct vfio_iommu_info *info,
			 struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	uint64_t align = 4096;

	if (!f->n_ioas)
		return mpdev_error_set(err, ENODEV,
				       "iommufd: no device is attached yet (no IOAS to ask)");
	memset(info, 0, sizeof(*info));
	info->kind = VFIO_IOMMU_IOMMUFD;
	/* iommufd counts no mappings; pinning is charged to RLIMIT_MEMLOCK instead. */
	info->dma_avail = UINT32_MAX;
	/* A map goes into every IOAS, so only what all of them allow is usable. */
	for (unsigned k = 0; k < f->n_ioas; k++) {
		struct iommu_iova_range *r = NULL;
		uint64_t a = 0;
		size_t n = 0;
		int ret = ioas_ranges(f, f->ioas[k], &r, &n, &a, err);

		if (ret < 0)
			return ret;
		if (k == 0) {
			for (size_t j = 0; j < n; j++) {
				if (j == VFIO_IOMMU_MAX_RANGES) {
					log_warn(COMP,
						 "IOAS %u has %zu usable IOVA ranges; using "
						 "the first %d",
						 f->ioas[0], n, VFIO_IOMMU_MAX_RANGES);
					break;
				}
				info->ranges[j].start = r[j].start;
				info->ranges[j].last = r[j].last;
				info->n_ranges++;
			}
		} else {
			intersect(info, r, n);
		}
		free(r);
		if (a > align)
			align = a;
	}
	/* iommufd states one granule (out_iova_alignment), not a set of page sizes. */
	info->pgsize_bitmap = align;
	return 0;
}

/* --- dirty tracking --- */

/*
 * iommufd tracks dirty pages per HWPT, and only in one allocated with
 * IOMMU_HWPT_ALLOC_DIRTY_TRACKING on an IOMMU that reports
 * IOMMU_HW_CAP_DIRTY_TRACKING (VT-d: second-stage A/D bits, ecap SSADS).
 * The remote attaches devices to the IOAS, i.e. to the auto domain the
 * kernel allocates without that flag; so even on capable hardware this
 * backend cannot track yet. The probe tells the two cases apart.
 */
static int iofd_dirty_probe(struct vfio_iommu *io, struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	unsigned n = f->n_devs < IOFD_MAX_DEVS ? f->n_devs : IOFD_MAX_DEVS;

	for (unsigned i = 0; i < n; i++) {
		struct iommu_hw_info_vtd vtd = { 0 };
		struct iommu_hw_info hw = {
			.size = sizeof(hw),
			.dev_id = f->devids[i],
			.data_len = sizeof(vtd),
			.data_uptr = (uintptr_t)&vtd,
		};

		if (sys_ioctl(f, f->fd, IOMMU_GET_HW_INFO, &hw) < 0) {
			snprintf(f->dirty_why, sizeof(f->dirty_why),
				 "IOMMU_GET_HW_INFO of device %u: %s", f->devids[i],
				 strerror(errno));
			break;
		}
		if (hw.out_data_type == IOMMU_HW_INFO_TYPE_INTEL_VTD)
			log_info(COMP,
				 "iommufd device %u: VT-d cap 0x%llx ecap 0x%llx, capabilities "
				 "0x%llx",
				 f->devids[i], (unsigned long long)vtd.cap_reg,
				 (unsigned long long)vtd.ecap_reg,
				 (unsigned long long)hw.out_capabilities);
		if (!(hw.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING)) {
			snprintf(f->dirty_why, sizeof(f->dirty_why),
				 "the IOMMU of iommufd device %u has no dirty tracking "
				 "(IOMMU_GET_HW_INFO capabilities 0x%llx)",
				 f->devids[i], (unsigned long long)hw.out_capabilities);
			break;
		}
		snprintf(f->dirty_why, sizeof(f->dirty_why),
			 "the IOMMU can track dirty pages, but the remote attaches to the IOAS's "
			 "auto domain, allocated without IOMMU_HWPT_ALLOC_DIRTY_TRACKING "
			 "(not implemented)");
	}
	if (!n)
		snprintf(f->dirty_why, sizeof(f->dirty_why), "iommufd: no device attached");
	return mpdev_error_set(err, ENOTSUP, "%s", f->dirty_why);
}

static int iofd_dirty_start(struct vfio_iommu *io, uint64_t page_size, struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOTSUP, "%s", to_iofd(io)->dirty_why);
}

static int iofd_dirty_stop(struct vfio_iommu *io, struct mpdev_error *err)
{
	return 0; /* never started */
}

static int iofd_dirty_report(struct vfio_iommu *io, uint64_t iova, uint64_t size,
			     uint64_t page_size, uint8_t *bitmap, size_t len,
			     struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOTSUP, "%s", to_iofd(io)->dirty_why);
}

/* --- lifetime --- */

static void iofd_destroy(struct vfio_iommu *io)
{
	struct iofd *f = to_iofd(io);

	/* Destroying an IOAS unmaps it; EBUSY means a device is still attached. */
	for (unsigned k = f->n_ioas; k-- > 0;) {
		int r = ioas_destroy(f, f->ioas[k]);

		if (r < 0)
			log_warn(COMP, "IOMMU_DESTROY of IOAS %u: %s%s", f->ioas[k], strerror(-r),
				 r == -EBUSY ? " (a device fd is still open; the kernel frees it "
					       "when that closes)"
					     : "");
	}
	if (f->fd >= 0)
		sys_close(f, f->fd);
	free(f->maps);
	free(f->ioas);
	free(f);
}

static const struct vfio_iommu_ops iofd_ops = {
	.name = "iommufd",
	.open_device = iofd_open_device,
	.map = iofd_map,
	.unmap = iofd_unmap,
	.get_info = iofd_get_info,
	.dirty_probe = iofd_dirty_probe,
	.dirty_start = iofd_dirty_start,
	.dirty_stop = iofd_dirty_stop,
	.dirty_report = iofd_dirty_report,
	.destroy = iofd_destroy,
};

int vfio_iommufd_create(const struct vfio_sys *sys, unsigned nr_ioas, struct vfio_iommu **out,
			struct mpdev_error *err)
{
	struct iofd *f = calloc(1, sizeof(*f));
	char path[PATH_MAX];

	*out = NULL;
	if (!nr_ioas)
		nr_ioas = 1;
	if (f)
		f->ioas = calloc(nr_ioas, sizeof(*f->ioas));
	if (!f || !f->ioas) {
		free(f);
		return mpdev_error_set(err, ENOMEM, "out of memory");
	}
	f->io.ops = &iofd_ops;
	f->io.sys = sys;
	f->nr_ioas = nr_ioas;
	snprintf(path, sizeof(path), "%s/iommu", sys->dev_root);
	f->fd = sys->open(sys->opaque, path, O_RDWR);
	if (f->fd < 0) {
		int e = errno;

		free(f->ioas);
		free(f);
		return mpdev_error_set(err, e, "%s: %s%s", path, strerror(e),
				       e == ENOENT ? " (the kernel has no CONFIG_IOMMUFD; use "
						     "--iommu container)"
						   : "");
	}
	*out = &f->io;
	return 0;
}

int vfio_iommufd_set_pin_accounting(struct vfio_iommu *io, bool per_process,
				    struct mpdev_error *err)
{
	struct iofd *f = to_iofd(io);
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_SET,
		.val64 = per_process ? 1 : 0,
	};

	if (io->ops != &iofd_ops)
		return mpdev_error_set(err, EINVAL, "pin accounting is an iommufd option");
	if (sys_ioctl(f, f->fd, IOMMU_OPTION, &cmd) < 0) {
		int e = errno;

		return mpdev_error_set(err, e, "IOMMU_OPTION RLIMIT_MODE=%s: %s%s",
				       per_process ? "process" : "user", strerror(e),
				       e == EPERM   ? " (needs CAP_SYS_RESOURCE)"
				       : e == EBUSY ? " (must precede every device and IOAS)"
						    : "");
	}
	return 0;
}

bool vfio_iommufd_available(const struct vfio_sys *sys)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/iommu", sys->dev_root);
	return access(path, F_OK) == 0;
}
