#include "dma_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the fd is, in words, for error messages ("anon_inode:[eventfd]"). */
static const char *describe(int fd, const struct stat *st, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	if (S_ISSOCK(st->st_mode))
		return "a socket";
	if (S_ISFIFO(st->st_mode))
		return "a pipe";
	if (S_ISDIR(st->st_mode))
		return "a directory";
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		return "a device node";
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	if (n <= 0)
		return "not a regular file";
	buf[n] = '\0';
	return buf;
}

int dma_fd_inspect(int fd, struct dma_fd_info *info, struct mpdev_error *err)
{
	char what[128];
	struct stat st;
	int fl, seals;

	if (fstat(fd, &st) < 0)
		return mpdev_error_set(err, EBADF, "fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mpdev_error_set(err, EINVAL, "this descriptor cannot back guest memory: %s",
				       describe(fd, &st, what, sizeof(what)));
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return mpdev_error_set(err, EBADF, "F_GETFL: %s", strerror(errno));
	if ((fl & O_ACCMODE) == O_WRONLY)
		return mpdev_error_set(
			err, EACCES,
			"descriptor is open write-only: guest memory must be readable");
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return mpdev_error_set(err, EPERM,
				       "only memfds can back guest memory: %s could be truncated "
				       "under the remote's mapping",
				       describe(fd, &st, what, sizeof(what)));
	if (!(seals & F_SEAL_SHRINK))
		return mpdev_error_set(err, EPERM,
				       "not a memfd sealed with F_SEAL_SHRINK (%s): the peer could "
				       "truncate it under the remote's mapping (QEMU: use "
				       "memory-backend-memfd, which seals by default)",
				       (seals & F_SEAL_SEAL)
					       ? "a shared-memory file that cannot be sealed"
					       : "an unsealed memfd");
	info->dev = st.st_dev;
	info->ino = st.st_ino;
	info->file_size = (uint64_t)st.st_size;
	/* hugetlbfs memfds report their huge page size here. */
	info->align = st.st_blksize > 4096 ? (uint64_t)st.st_blksize : 4096;
	info->writable = (fl & O_ACCMODE) == O_RDWR;
	return 0;
}

int dma_fd_check_range(const struct dma_fd_info *info, uint64_t fd_offset, uint64_t size,
		       bool read_only, struct mpdev_error *err)
{
	if (!read_only && !info->writable)
		return mpdev_error_set(err, EACCES,
				       "descriptor is open read-only but the region is writable");
	if ((fd_offset | size) & (info->align - 1))
		return mpdev_error_set(err, EINVAL,
				       "fd offset 0x%llx and size 0x%llx must be multiples of the "
				       "file's page size 0x%llx",
				       (unsigned long long)fd_offset, (unsigned long long)size,
				       (unsigned long long)info->align);
	if (fd_offset > info->file_size || size > info->file_size - fd_offset)
		return mpdev_error_set(err, ERANGE,
				       "fd range [0x%llx, 0x%llx) runs past the end of the file "
				       "(size 0x%llx)",
				       (unsigned long long)fd_offset,
				       (unsigned long long)(fd_offset + size),
				       (unsigned long long)info->file_size);
	return 0;
}

int dma_fd_check(int fd, uint64_t fd_offset, uint64_t size, bool read_only, dev_t *dev, ino_t *ino,
		 struct mpdev_error *err)
{
	struct dma_fd_info info;
	int r;

	r = dma_fd_inspect(fd, &info, err);
	if (r == 0)
		r = dma_fd_check_range(&info, fd_offset, size, read_only, err);
	if (r == 0) {
		*dev = info.dev;
		*ino = info.ino;
	}
	return r;
}
