/*
 * The model's public face (vfio_model.h): a fresh model with its fake sysfs
 * tree and device nodes, devices added to it, configuration, and the
 * inspection the tests check the "kernel" with. The sysfs layout follows
 * drivers/pci/pci-sysfs.c, drivers/iommu/iommu-sysfs.c and
 * drivers/vfio/device_cdev.c (vfio-dev/vfioN).
 */
#include "vfio_model_internal.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the fake sysfs tree and device nodes ---- */

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int touch(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- setup, configuration, inspection ---- */

struct vfio_model *vfio_model_new(void)
{
	struct vfio_model *m = calloc(1, sizeof(*m));
	char path[PATH_MAX + 32];

	if (!m)
		return NULL;
	snprintf(m->root, sizeof(m->root), "%s/vfio-model-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(m->root)) {
		free(m);
		return NULL;
	}
	snprintf(m->sysfs, sizeof(m->sysfs), "%s/sys", m->root);
	snprintf(m->dev, sizeof(m->dev), "%s/dev", m->root);
	snprintf(path, sizeof(path), "%s/bus/pci/drivers", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/devices", m->dev);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/vfio", m->dev);
	touch(path);
	m->iommufd = true;
	snprintf(path, sizeof(path), "%s/iommu", m->dev);
	touch(path);
	m->msi_isolated = true;
	m->memlock_pages = UINT64_MAX / PG;
	m->dma_entry_limit = 65535; /* type1 dma_entry_limit default (U16_MAX) */
	vfm_sys_init(m);
	return m;
}

void vfio_model_free(struct vfio_model *m)
{
	if (!m)
		return;
	/* Device files first (they hold groups and contexts), then the rest. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < MAX_FDS; i++)
			if (m->fds[i].kind != FD_FREE && (pass == 1 || m->fds[i].kind == FD_DEVICE))
				vfm_close_fd(m, &m->fds[i]);
	for (int i = 0; i < MAX_MMAPS; i++)
		if (m->mmaps[i].addr)
			munmap(m->mmaps[i].addr, m->mmaps[i].len);
	for (int i = 0; i < MAX_MIGF; i++)
		if (m->migfs[i].used)
			vfm_migf_close(&m->migfs[i]);
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used)
			for (int k = 0; k < VFIO_PCI_NUM_IRQS; k++)
				vfm_irq_release(&m->devs[i], k);
	nftw(m->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(m);
}

const struct vfio_sys *vfio_model_sys(struct vfio_model *m)
{
	return &m->sys;
}

const char *vfio_model_root(const struct vfio_model *m)
{
	return m->root;
}

int vfio_model_add_device(struct vfio_model *m, const char *bdf, int group, const char *driver)
{
	char path[PATH_MAX + 64], target[PATH_MAX + 64];
	struct mdev *d = NULL;
	struct mgroup *g = vfm_group_find(m, group);

	if (!bdf || strlen(bdf) >= sizeof(d->bdf) || group < 0 || strchr(bdf, '/'))
		return -EINVAL;
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && !strcmp(m->devs[i].bdf, bdf))
			return -EEXIST;
	for (int i = 0; i < MAX_DEVICES && !d; i++)
		if (!m->devs[i].used)
			d = &m->devs[i];
	if (!d)
		return -ENOSPC;
	if (!g) {
		for (int i = 0; i < MAX_GROUPS && !g; i++)
			if (!m->groups[i].used)
				g = &m->groups[i];
		if (!g)
			return -ENOSPC;
		*g = (struct mgroup){ .used = true, .num = group, .viable = -1 };
	}
	memset(d, 0, sizeof(*d));
	d->used = true;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	snprintf(d->driver, sizeof(d->driver), "%s", driver ? driver : "");
	d->group = group;
	d->cdev = -1;
	d->unmask_hold = -1;
	for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		for (int k = 0; k < 4; k++) {
			d->holds[i][k] = -1;
			d->irqs[i].trigger[k] = -1;
		}
		d->irqs[i].unmask_fd = -1;
	}
	vfm_edu_config_init(d);

	/* sys/devices/pci0000:00/BDF, linked from sys/bus/pci/devices/BDF. */
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s", m->sysfs, bdf);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/bus/pci/devices", m->sysfs);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", m->sysfs, bdf);
	snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
	if (symlink(target, path) != 0)
		return -errno;
	if (d->driver[0]) {
		snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s", m->sysfs, d->driver);
		mkdirs(path);
		snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/driver", m->sysfs, bdf);
		snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", d->driver);
		symlink(target, path);
	}
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", m->sysfs, group);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/iommu_group", m->sysfs, bdf);
	snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", group);
	symlink(target, path);
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices/%s", m->sysfs, group, bdf);
	snprintf(target, sizeof(target), "../../../../devices/pci0000:00/%s", bdf);
	symlink(target, path);
	if (strcmp(d->driver, "vfio-pci") != 0)
		return 0;
	/* vfio-pci: a group node and the device's cdev. */
	d->cdev = m->next_cdev++;
	snprintf(path, sizeof(path), "%s/devices/pci0000:00/%s/vfio-dev/vfio%d", m->sysfs, bdf,
		 d->cdev);
	mkdirs(path);
	snprintf(path, sizeof(path), "%s/vfio/%d", m->dev, group);
	touch(path);
	snprintf(path, sizeof(path), "%s/vfio/devices/vfio%d", m->dev, d->cdev);
	touch(path);
	return d->cdev;
}

void vfio_model_set_group_viable(struct vfio_model *m, int group, bool viable)
{
	struct mgroup *g = vfm_group_find(m, group);

	if (g)
		g->viable = viable;
}

void vfio_model_set_iommufd(struct vfio_model *m, bool present)
{
	char path[PATH_MAX + 16];

	m->iommufd = present;
	snprintf(path, sizeof(path), "%s/iommu", m->dev);
	if (present)
		touch(path);
	else
		unlink(path);
}

void vfio_model_set_msi_isolated(struct vfio_model *m, bool isolated)
{
	m->msi_isolated = isolated;
}

void vfio_model_set_memlock_pages(struct vfio_model *m, uint64_t pages)
{
	m->memlock_pages = pages;
}

void vfio_model_set_dma_entry_limit(struct vfio_model *m, uint32_t limit)
{
	m->dma_entry_limit = limit;
}

int vfio_model_open_fds(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_FDS; i++)
		n += m->fds[i].kind != FD_FREE;
	return n;
}

int vfio_model_iommufd_contexts(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_CTX; i++)
		n += m->ctx[i] != NULL;
	return n;
}

int vfio_model_iommufd_objects(const struct vfio_model *m)
{
	int n = 0;

	for (int c = 0; c < MAX_CTX; c++)
		for (int i = 0; m->ctx[c] && i < MAX_OBJS; i++)
			n += m->ctx[c]->objs[i] != NULL;
	return n;
}

static const struct ictx *latest_ctx(const struct vfio_model *m)
{
	const struct ictx *best = NULL;

	for (int i = 0; i < MAX_CTX; i++)
		if (m->ctx[i] && (!best || m->ctx[i]->serial > best->serial))
			best = m->ctx[i];
	return best;
}

size_t vfio_model_ioas_list(const struct vfio_model *m, uint32_t *ids, size_t max)
{
	const struct ictx *c = latest_ctx(m);
	size_t n = 0;

	for (int i = 0; c && i < MAX_OBJS; i++)
		if (c->objs[i] && c->objs[i]->type == OBJ_IOAS) {
			if (n < max)
				ids[n] = c->objs[i]->id;
			n++;
		}
	return n;
}

ssize_t vfio_model_ioas_mappings(const struct vfio_model *m, uint32_t ioas_id,
				 struct vfio_model_mapping *out, size_t max)
{
	const struct ictx *c = latest_ctx(m);
	const struct obj *io;

	if (!c || ioas_id == 0 || ioas_id > MAX_OBJS)
		return -ENOENT;
	io = c->objs[ioas_id - 1];
	if (!io || io->type != OBJ_IOAS)
		return -ENOENT;
	for (size_t i = 0; i < io->n_areas && i < max; i++)
		out[i] = (struct vfio_model_mapping){
			io->areas[i].iova, io->areas[i].last - io->areas[i].iova + 1,
			io->areas[i].pages->uptr + io->areas[i].start_byte, io->areas[i].write
		};
	return (ssize_t)io->n_areas;
}

ssize_t vfio_model_container_mappings(const struct vfio_model *m, struct vfio_model_mapping *out,
				      size_t max)
{
	const struct container *best = NULL;

	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (m->cont[i] && m->cont[i]->iommu && (!best || m->cont[i]->serial > best->serial))
			best = m->cont[i];
	if (!best)
		return -ENOENT;
	for (size_t i = 0; i < best->n_dmas && i < max; i++)
		out[i] = (struct vfio_model_mapping){ best->dmas[i].iova, best->dmas[i].size,
						      best->dmas[i].vaddr, best->dmas[i].write };
	return (ssize_t)best->n_dmas;
}

uint64_t vfio_model_pinned_pages(const struct vfio_model *m)
{
	return vfm_pinned_total(m);
}

int vfio_model_bar_mmaps(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_MMAPS; i++)
		n += m->mmaps[i].addr != NULL;
	return n;
}

static struct mdev *dev_by_bdf(const struct vfio_model *m, const char *bdf)
{
	for (int i = 0; i < MAX_DEVICES; i++)
		if (m->devs[i].used && !strcmp(m->devs[i].bdf, bdf))
			return (struct mdev *)&m->devs[i];
	return NULL;
}

int vfio_model_device_state(const struct vfio_model *m, const char *bdf,
			    struct vfio_model_device *out)
{
	const struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->open_count = d->open_count;
	out->bound = d->bound != NULL;
	if (d->bound) {
		out->devid = d->bound->idev->id;
		if (d->bound->idev->hwpt) {
			out->hwpt_id = d->bound->idev->hwpt->id;
			out->ioas_id = d->bound->idev->hwpt->ioas->id;
		}
	}
	out->resets = d->resets;
	memcpy(out->irqs, d->irqs, sizeof(out->irqs));
	out->liveness = ~d->addr4;
	return 0;
}

int vfio_model_device_irq(struct vfio_model *m, const char *bdf, uint32_t status, bool raise)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	vfm_device_irq(d, status, raise);
	return 0;
}

int vfio_model_set_migration(struct vfio_model *m, const char *bdf, uint32_t flags)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	d->mig_flags = flags;
	d->mig_state = VFIO_DEVICE_STATE_RUNNING;
	return 0;
}

int vfio_model_set_dma_logging(struct vfio_model *m, const char *bdf, bool present)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	d->dma_logging = present;
	return 0;
}

int vfio_model_mig_fail_next(struct vfio_model *m, const char *bdf, int err, bool to_error)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	d->mig_fail_err = err;
	d->mig_fail_error = to_error;
	return 0;
}

int vfio_model_mig_state(const struct vfio_model *m, const char *bdf)
{
	const struct mdev *d = dev_by_bdf(m, bdf);

	return d ? (int)d->mig_state : -ENOENT;
}

int vfio_model_migfs(const struct vfio_model *m)
{
	int n = 0;

	for (int i = 0; i < MAX_MIGF; i++)
		n += m->migfs[i].used;
	return n;
}

int vfio_model_device_dirty(struct vfio_model *m, const char *bdf, uint64_t iova)
{
	struct mdev *d = dev_by_bdf(m, bdf);

	if (!d)
		return -ENOENT;
	if (d->logging && d->n_dirty < sizeof(d->dirty_pages) / sizeof(d->dirty_pages[0]))
		d->dirty_pages[d->n_dirty++] = iova & ~(d->log_page_size - 1);
	return 0;
}

bool vfio_model_device_logging(const struct vfio_model *m, const char *bdf)
{
	const struct mdev *d = dev_by_bdf(m, bdf);

	return d && d->logging;
}

bool vfio_model_container_dirty_tracking(const struct vfio_model *m)
{
	for (int i = 0; i < MAX_CONTAINERS; i++)
		if (m->cont[i] && m->cont[i]->dirty_tracking)
			return true;
	return false;
}
