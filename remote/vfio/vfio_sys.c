#include "vfio_sys.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int k_open(void *opaque, const char *path, int flags)
{
	return open(path, flags | O_CLOEXEC);
}

static int k_close(void *opaque, int fd)
{
	return close(fd);
}

static int k_ioctl(void *opaque, int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

static ssize_t k_pread(void *opaque, int fd, void *buf, size_t len, off_t offset)
{
	return pread(fd, buf, len, offset);
}

static ssize_t k_pwrite(void *opaque, int fd, const void *buf, size_t len, off_t offset)
{
	return pwrite(fd, buf, len, offset);
}

static ssize_t k_read(void *opaque, int fd, void *buf, size_t len)
{
	return read(fd, buf, len);
}

static ssize_t k_write(void *opaque, int fd, const void *buf, size_t len)
{
	return write(fd, buf, len);
}

static void *k_mmap(void *opaque, void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	return mmap(addr, len, prot, flags, fd, offset);
}

static int k_munmap(void *opaque, void *addr, size_t len)
{
	return munmap(addr, len);
}

const struct vfio_sys vfio_sys_kernel = {
	.open = k_open,
	.close = k_close,
	.ioctl = k_ioctl,
	.pread = k_pread,
	.pwrite = k_pwrite,
	.read = k_read,
	.write = k_write,
	.mmap = k_mmap,
	.munmap = k_munmap,
	.opaque = NULL,
	.sysfs_root = "/sys",
	.dev_root = "/dev",
};
