#include "vfio_caps.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>

#define VFIO_INFO_MAX 65536

int vfio_info_grow(const struct vfio_sys *sys, int fd, unsigned long request, const void *head,
		   size_t hsize, void **out, size_t *len, const char *what, struct mpdev_error *err)
{
	size_t size = hsize;
	uint8_t *buf = NULL;

	for (int tries = 0; tries < 4; tries++) {
		uint8_t *nbuf = realloc(buf, size);
		uint32_t argsz;

		if (!nbuf) {
			free(buf);
			return mpdev_error_set(err, ENOMEM, "%s: out of memory", what);
		}
		buf = nbuf;
		memset(buf, 0, size);
		memcpy(buf, head, hsize);
		argsz = (uint32_t)size;
		memcpy(buf, &argsz, sizeof(argsz));
		if (sys->ioctl(sys->opaque, fd, request, buf) < 0) {
			int e = errno;

			free(buf);
			return mpdev_error_set(err, e, "%s: %s", what, strerror(e));
		}
		memcpy(&argsz, buf, sizeof(argsz));
		if (argsz <= size) {
			*out = buf;
			*len = size;
			return 0;
		}
		if (argsz > VFIO_INFO_MAX) {
			free(buf);
			return mpdev_error_set(err, E2BIG, "%s: the kernel asks for %u bytes", what,
					       argsz);
		}
		size = argsz;
	}
	free(buf);
	return mpdev_error_set(err, EAGAIN, "%s: argsz kept growing", what);
}

const void *vfio_find_cap(const void *buf, size_t len, uint32_t first, uint16_t id, size_t min_size)
{
	const uint8_t *base = buf;
	uint32_t off = first;

	/* A chain longer than the buffer could hold is a loop: stop there. */
	for (size_t hops = 0; off && hops < len / sizeof(struct vfio_info_cap_header); hops++) {
		struct vfio_info_cap_header h;

		if (off < sizeof(h) || off > len || len - off < sizeof(h))
			return NULL;
		memcpy(&h, base + off, sizeof(h));
		if (h.id == id)
			return len - off >= min_size ? base + off : NULL;
		off = h.next;
	}
	return NULL;
}
