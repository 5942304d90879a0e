/*
 * The VFIO backend reaches the kernel only through this table of system
 * calls, so that tests can put a faithful model of the uAPI under it
 * (Debian's kernels lack iommufd) and fail any call on purpose. Calls keep
 * the libc convention: -1 (or MAP_FAILED) with errno set.
 */
#ifndef MPDEV_VFIO_SYS_H
#define MPDEV_VFIO_SYS_H

#include <stddef.h>
#include <sys/types.h>

struct vfio_sys {
	int (*open)(void *opaque, const char *path, int flags);
	int (*close)(void *opaque, int fd);
	int (*ioctl)(void *opaque, int fd, unsigned long request, void *arg);
	ssize_t (*pread)(void *opaque, int fd, void *buf, size_t len, off_t offset);
	ssize_t (*pwrite)(void *opaque, int fd, const void *buf, size_t len, off_t offset);
	/* A migration data_fd is a stream (the kernel's ESPIPE for pread): read and write. */
	ssize_t (*read)(void *opaque, int fd, void *buf, size_t len);
	ssize_t (*write)(void *opaque, int fd, const void *buf, size_t len);
	void *(*mmap)(void *opaque, void *addr, size_t len, int prot, int flags, int fd,
		      off_t offset);
	int (*munmap)(void *opaque, void *addr, size_t len);
	void *opaque;
	/* Where sysfs and the device nodes are: "/sys" and "/dev" for real. */
	const char *sysfs_root;
	const char *dev_root;
};

/* The real kernel. */
extern const struct vfio_sys vfio_sys_kernel;

#endif
