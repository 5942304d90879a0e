/*
 * An emulated virtio-blk device (virtio spec 1.2 §5.2) on the modern PCI
 * transport (virtio_pci.h), its disk a file or block device driven through
 * io_uring (blk_io.h) with buffers straight from guest memory. docs/virtio-blk.md
 * has the layout, features, limits and what is validated.
 */
#ifndef MPDEV_VIRTIO_BLK_H
#define MPDEV_VIRTIO_BLK_H

#include "backend.h"

#define VIRTIO_BLK_DEFAULT_QUEUES 2
#define VIRTIO_BLK_QUEUE_SIZE	  256

/*
 * A virtio-blk device in power-on state. opts is what follows
 * "virtio-blk:" in --device: PATH[,ro][,queues=N][,direct=on|off][,serial=S]
 * (PATH may not contain a comma). The backing is opened here, before the
 * remote enters its sandbox. Destroy with (*out)->ops->destroy.
 */
int virtio_blk_create(const char *opts, struct event_base *base, struct backend_host *host,
		      struct backend **out, struct mpdev_error *err);

#endif
