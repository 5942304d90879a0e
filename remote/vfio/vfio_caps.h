/*
 * VFIO's extensible info structs: call with argsz = the struct's size; the
 * kernel raises argsz when capabilities follow; call again with that much.
 * Then walk the capability chain (offsets from the start of the buffer).
 */
#ifndef MPDEV_VFIO_CAPS_H
#define MPDEV_VFIO_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "vfio_sys.h"

/*
 * Runs ioctl(fd, request) on a buffer that starts as a copy of head (hsize
 * bytes, whose first u32 is argsz), growing it as the kernel asks (at most
 * 64 KiB). On success *out is a malloc'd buffer of *len bytes.
 */
int vfio_info_grow(const struct vfio_sys *sys, int fd, unsigned long request, const void *head,
		   size_t hsize, void **out, size_t *len, const char *what,
		   struct mpdev_error *err);

/*
 * The capability with this id in the chain starting at offset first of buf
 * (len bytes), or NULL. Every offset is bounds-checked: a malformed chain
 * ends the walk.
 */
const void *vfio_find_cap(const void *buf, size_t len, uint32_t first, uint16_t id,
			  size_t min_size);

#endif
