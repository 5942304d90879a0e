/*
 * The model's entry points behind struct vfio_sys: open() of each device
 * node (/dev/iommu, /dev/vfio/vfio, /dev/vfio/N, /dev/vfio/devices/vfioN),
 * close, ioctl, pread / pwrite and mmap dispatched by descriptor kind, the
 * descriptor table, and the info capability chain helpers. Mirrors the
 * file_operations of drivers/iommu/iommufd/main.c, drivers/vfio/container.c,
 * drivers/vfio/group.c and drivers/vfio/vfio_main.c (vfio_info_cap_add,
 * vfio_info_cap_shift).
 */
#include "vfio_model_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- descriptors ---- */

int vfm_fd_alloc(struct vfio_model *m, enum fd_kind kind, void *p)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (m->fds[i].kind == FD_FREE) {
			m->fds[i].kind = kind;
			m->fds[i].p = p;
			return VFIO_MODEL_FD_BASE + i;
		}
	return fail(EMFILE);
}

struct mfd *vfm_fd_get(struct vfio_model *m, int fd)
{
	if (fd < VFIO_MODEL_FD_BASE || fd >= VFIO_MODEL_FD_BASE + MAX_FDS)
		return NULL;
	if (m->fds[fd - VFIO_MODEL_FD_BASE].kind == FD_FREE)
		return NULL;
	return &m->fds[fd - VFIO_MODEL_FD_BASE];
}

bool vfm_fd_in_range(int fd)
{
	return fd >= VFIO_MODEL_FD_BASE && fd < VFIO_MODEL_FD_BASE + MAX_FDS;
}

/* Appends one capability (8-byte aligned, as vfio_info_cap_add() does) and links it. */
size_t vfm_cap_add(uint8_t *caps, size_t used, size_t *last_hdr, const void *cap, size_t len)
{
	size_t size = (len + 7) & ~(size_t)7;

	memset(caps + used, 0, size);
	memcpy(caps + used, cap, len);
	if (*last_hdr != SIZE_MAX)
		((struct vfio_info_cap_header *)(caps + *last_hdr))->next = (uint32_t)used;
	*last_hdr = used;
	return used + size;
}

/*
 * Writes the info struct (head bytes) and the caps behind it when argsz has
 * room; otherwise raises argsz and leaves cap_offset 0 [pci] [type1].
 */
void vfm_info_with_caps(void *arg, void *head, size_t hsize, uint32_t *argszp, uint32_t *cap_offset,
			uint8_t *caps, size_t caps_len, size_t copy_len)
{
	if (*argszp < hsize + caps_len) {
		*argszp = (uint32_t)(hsize + caps_len);
		*cap_offset = 0;
	} else {
		for (size_t off = 0; off < caps_len;) {
			struct vfio_info_cap_header *h = (void *)(caps + off);
			size_t next = h->next;

			if (h->next)
				h->next += (uint32_t)hsize; /* vfio_info_cap_shift() */
			if (!next)
				break;
			off = next;
		}
		memcpy((uint8_t *)arg + hsize, caps, caps_len);
		*cap_offset = (uint32_t)hsize;
	}
	memcpy(arg, head, copy_len);
}

static bool path_is(const char *path, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || path[n] != '/')
		return false;
	*rest = path + n + 1;
	return true;
}

static int parse_num(const char *s)
{
	char *end;
	long v;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	v = strtol(s, &end, 10);
	return *end || v < 0 || v > INT_MAX ? -1 : (int)v;
}

static int m_open(void *opaque, const char *path, int flags)
{
	struct vfio_model *m = opaque;
	const char *rest;
	int e = vfm_tick(m), n, fd;

	if (e)
		return fail(e);
	if (!path_is(path, m->dev, &rest))
		return open(path, flags | O_CLOEXEC, 0644);
	if (!strcmp(rest, "iommu")) {
		struct ictx *c;
		int slot = -1;

		if (!m->iommufd)
			return fail(ENOENT);
		for (int i = 0; i < MAX_CTX && slot < 0; i++)
			if (!m->ctx[i])
				slot = i;
		if (slot < 0 || !(c = calloc(1, sizeof(*c))))
			return fail(ENOMEM);
		fd = vfm_fd_alloc(m, FD_IOMMUFD, c);
		if (fd < 0) {
			free(c);
			return -1;
		}
		c->fd_open = true;
		c->serial = ++m->serial;
		m->ctx[slot] = c;
		return fd;
	}
	if (!strcmp(rest, "vfio/vfio")) {
		struct container *c;
		int slot = -1;

		for (int i = 0; i < MAX_CONTAINERS && slot < 0; i++)
			if (!m->cont[i])
				slot = i;
		if (slot < 0 || !(c = calloc(1, sizeof(*c))))
			return fail(ENOMEM);
		fd = vfm_fd_alloc(m, FD_CONTAINER, c);
		if (fd < 0) {
			free(c);
			return -1;
		}
		c->fd_open = true;
		c->serial = ++m->serial;
		m->cont[slot] = c;
		return fd;
	}
	if (!strncmp(rest, "vfio/devices/vfio", 17) && (n = parse_num(rest + 17)) >= 0) {
		for (int i = 0; i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].cdev == n &&
			    !strcmp(m->devs[i].driver, "vfio-pci")) {
				fd = vfm_dev_open_file(m, &m->devs[i], NULL);
				return fd < 0 ? fail(-fd) : fd;
			}
		return fail(ENOENT);
	}
	if (!strncmp(rest, "vfio/", 5) && (n = parse_num(rest + 5)) >= 0) {
		struct mgroup *g = vfm_group_find(m, n);
		bool has_vfio = false;

		for (int i = 0; g && i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].group == n &&
			    !strcmp(m->devs[i].driver, "vfio-pci"))
				has_vfio = true;
		if (!g || !has_vfio)
			return fail(ENOENT);
		/* vfio_group_fops_open(): one opener; not while a cdev of it is bound. */
		if (g->fd_open || g->dev_files)
			return fail(EBUSY);
		for (int i = 0; i < MAX_DEVICES; i++)
			if (m->devs[i].used && m->devs[i].group == n && m->devs[i].bound)
				return fail(EBUSY);
		fd = vfm_fd_alloc(m, FD_GROUP, g);
		if (fd < 0)
			return -1;
		g->fd_open = true;
		return fd;
	}
	return fail(ENOENT);
}

void vfm_close_fd(struct vfio_model *m, struct mfd *f)
{
	void *p = f->p;
	enum fd_kind kind = f->kind;

	f->kind = FD_FREE;
	f->p = NULL;
	switch (kind) {
	case FD_IOMMUFD: {
		struct ictx *c = p;

		c->fd_open = false;
		vfm_ctx_maybe_free(m, c);
		break;
	}
	case FD_CONTAINER: {
		struct container *c = p;

		c->fd_open = false;
		vfm_container_maybe_free(m, c);
		break;
	}
	case FD_GROUP: {
		struct mgroup *g = p;

		g->fd_open = false;
		vfm_group_maybe_release(m, g);
		break;
	}
	case FD_DEVICE:
		vfm_dev_close_file(m, p);
		break;
	default:
		break;
	}
}

/* close(2) releases the descriptor even when it reports an error. */
static int m_close(void *opaque, int fd)
{
	struct vfio_model *m = opaque;
	int e = vfm_tick(m);
	struct mfd *f = vfm_fd_get(m, fd);
	struct migf *mf = vfm_migf_get(m, fd);

	if (mf)
		vfm_migf_close(mf);
	else if (f)
		vfm_close_fd(m, f);
	else if (vfm_fd_in_range(fd))
		return fail(EBADF);
	else if (close(fd) != 0 && !e)
		return -1;
	return e ? fail(e) : 0;
}

static int m_ioctl(void *opaque, int fd, unsigned long req, void *arg)
{
	struct vfio_model *m = opaque;
	int e = vfm_tick(m), r;
	struct mfd *f;

	if (e)
		return fail(e);
	f = vfm_fd_get(m, fd);
	if (!f) {
		struct migf *mf = vfm_migf_get(m, fd);

		if (mf) {
			r = vfm_migf_ioctl(mf, req, arg);
			return r < 0 ? fail(-r) : r;
		}
		if (vfm_fd_in_range(fd))
			return fail(EBADF);
		return ioctl(fd, req, arg);
	}
	switch (f->kind) {
	case FD_IOMMUFD:
		return vfm_iommufd_ioctl(m, f->p, req, arg);
	case FD_CONTAINER:
		r = vfm_container_ioctl(m, f->p, req, arg);
		break;
	case FD_GROUP:
		r = vfm_group_ioctl(m, f->p, req, arg);
		break;
	case FD_DEVICE:
		r = vfm_dev_ioctl(m, f->p, req, arg);
		break;
	default:
		r = -EBADF;
	}
	return r < 0 ? fail(-r) : r;
}

static ssize_t m_rw(struct vfio_model *m, int fd, void *buf, size_t len, off_t off, bool write)
{
	int e = vfm_tick(m);
	struct mfd *f;
	ssize_t r;

	if (e)
		return fail(e);
	f = vfm_fd_get(m, fd);
	if (!f) {
		if (vfm_fd_in_range(fd))
			return fail(EBADF);
		return write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
	}
	if (f->kind != FD_DEVICE)
		return fail(EINVAL);
	r = vfm_dev_rw(f->p, buf, len, off, write);
	return r < 0 ? fail((int)-r) : r;
}

/* read / write: the stream of a migration data_fd; other descriptors as the kernel's. */
static ssize_t m_stream(struct vfio_model *m, int fd, void *buf, size_t len, bool wr)
{
	int e = vfm_tick(m);
	struct migf *mf;
	ssize_t r;

	if (e)
		return fail(e);
	mf = vfm_migf_get(m, fd);
	if (!mf) {
		if (vfm_fd_get(m, fd) || vfm_fd_in_range(fd))
			return fail(EINVAL);
		return wr ? write(fd, buf, len) : read(fd, buf, len);
	}
	r = vfm_migf_rw(mf, buf, len, wr);
	return r < 0 ? fail((int)-r) : r;
}

static ssize_t m_read(void *opaque, int fd, void *buf, size_t len)
{
	return m_stream(opaque, fd, buf, len, false);
}

static ssize_t m_write(void *opaque, int fd, const void *buf, size_t len)
{
	return m_stream(opaque, fd, (void *)buf, len, true);
}

static ssize_t m_pread(void *opaque, int fd, void *buf, size_t len, off_t off)
{
	return m_rw(opaque, fd, buf, len, off, false);
}

static ssize_t m_pwrite(void *opaque, int fd, const void *buf, size_t len, off_t off)
{
	return m_rw(opaque, fd, (void *)buf, len, off, true);
}

/*
 * mmap of BAR0 gives anonymous memory holding edu's ident: registers behind
 * an mmap cannot be live in a model. Other offsets: EINVAL, as for regions
 * without the MMAP flag.
 */
static void *m_mmap(void *opaque, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct vfio_model *m = opaque;
	int e = vfm_tick(m), slot = -1;
	struct mfd *f;
	struct dfile *df;
	uint64_t index, pos;
	void *p;

	if (e) {
		errno = e;
		return MAP_FAILED;
	}
	f = vfm_fd_get(m, fd);
	if (!f) {
		if (vfm_fd_in_range(fd)) {
			errno = EBADF;
			return MAP_FAILED;
		}
		return mmap(addr, len, prot, flags, fd, off);
	}
	df = f->p;
	index = (uint64_t)off >> REGION_SHIFT;
	pos = (uint64_t)off & ((1ull << REGION_SHIFT) - 1);
	if (f->kind != FD_DEVICE || !df->access || index != VFIO_PCI_BAR0_REGION_INDEX ||
	    (pos % PG) || !len || pos + len > VFIO_MODEL_BAR0_SIZE || !(flags & MAP_SHARED)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	for (int i = 0; i < MAX_MMAPS && slot < 0; i++)
		if (!m->mmaps[i].addr)
			slot = i;
	if (slot < 0) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return p;
	if (pos == 0 && len >= 4)
		*(uint32_t *)p = EDU_IDENT;
	if (!(prot & PROT_WRITE))
		mprotect(p, len, prot);
	m->mmaps[slot].addr = p;
	m->mmaps[slot].len = len;
	return p;
}

static int m_munmap(void *opaque, void *addr, size_t len)
{
	struct vfio_model *m = opaque;
	int e = vfm_tick(m);

	if (e)
		return fail(e);
	for (int i = 0; i < MAX_MMAPS; i++)
		if (m->mmaps[i].addr == addr) {
			m->mmaps[i].addr = NULL;
			break;
		}
	return munmap(addr, len);
}

void vfm_sys_init(struct vfio_model *m)
{
	m->sys = (struct vfio_sys){
		.open = m_open,
		.close = m_close,
		.ioctl = m_ioctl,
		.pread = m_pread,
		.pwrite = m_pwrite,
		.read = m_read,
		.write = m_write,
		.mmap = m_mmap,
		.munmap = m_munmap,
		.opaque = m,
		.sysfs_root = m->sysfs,
		.dev_root = m->dev,
	};
}
