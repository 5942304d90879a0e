/*
 * What may back guest memory. The remote maps what the proxy hands over and
 * later touches it from device models; a mapping whose pages can be pulled
 * away (a file truncated by the peer) would kill the remote with SIGBUS. So
 * only memfds sealed against shrinking are accepted: their size can never go
 * below what was checked here.
 */
#ifndef MPDEV_DMA_FD_H
#define MPDEV_DMA_FD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* What dma_fd_inspect learnt about one descriptor; reusable for many ranges. */
struct dma_fd_info {
	dev_t dev;
	ino_t ino;
	uint64_t file_size;
	uint64_t align; /* the file's page size (huge page size on hugetlbfs) */
	bool writable;	/* opened read-write */
};

/*
 * The per-descriptor half of the check (type, access mode, seals): -EINVAL,
 * -EACCES (write-only) or -EPERM as below.
 */
int dma_fd_inspect(int fd, struct dma_fd_info *info, struct mpdev_error *err);

/* The per-range half: alignment, -ERANGE, and -EACCES for a writable range on a read-only fd. */
int dma_fd_check_range(const struct dma_fd_info *info, uint64_t fd_offset, uint64_t size,
		       bool read_only, struct mpdev_error *err);

/*
 * Both halves: checks that fd can back [fd_offset, fd_offset + size) of guest memory,
 * writable unless read_only, and returns its identity in *dev and *ino.
 *   -EINVAL  not a regular file (socket, pipe, eventfd, directory, device),
 *            or offset/size not aligned to the file's page size
 *   -EACCES  opened write-only, or read-only for a writable region
 *   -EPERM   not a memfd sealed with F_SEAL_SHRINK
 *   -ERANGE  the range runs past the end of the file
 */
int dma_fd_check(int fd, uint64_t fd_offset, uint64_t size, bool read_only, dev_t *dev, ino_t *ino,
		 struct mpdev_error *err);

#endif
