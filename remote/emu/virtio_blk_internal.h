/*
 * The virtio-blk device's state, shared by the device (virtio_blk.c) and its
 * request handling (virtio_blk_req.c) and by nothing else.
 */
#ifndef MPDEV_VIRTIO_BLK_INTERNAL_H
#define MPDEV_VIRTIO_BLK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/util.h>

#include "backend.h"
#include "blk_io.h"
#include "virtio_blk.h"
#include "virtio_pci.h"
#include "virtq.h"

#define VBLK_LOG "virtio-blk"

/* Spec §5.2.3. */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (spec §5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2

#define VIRTIO_BLK_ID_BYTES	   20
#define VIRTIO_BLK_HDR_SIZE	   16
#define VIRTIO_BLK_DWZ_SIZE	   16 /* one discard / write zeroes segment */
#define VIRTIO_BLK_WZ_FLAG_UNMAP   1u
#define VIRTIO_BLK_SECTOR	   512u
#define VIRTIO_BLK_SEG_MAX	   (VIRTQ_MAX_IOV - 2)
#define VIRTIO_BLK_MAX_DWZ_SECTORS 4194303u /* QEMU's: INT_MAX bytes in sectors */
#define VIRTIO_BLK_CONFIG_SIZE	   60
#define VIRTIO_BLK_MAX_QUEUES	   16
/* How long a quiesce or reset waits for the disk; then it logs and goes on. */
#define VIRTIO_BLK_DRAIN_MS 10000

struct vblk_opts {
	char path[4096];
	bool read_only;
	bool direct;
	unsigned queues;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
};

struct vblk;

struct vblk_req {
	struct vblk_req *next; /* free list, or the wait list */
	struct vblk *dev;
	unsigned q;
	uint32_t gen; /* the device's reset generation when it was taken */
	enum blk_io_op op;
	uint64_t offset, len;
	uint8_t *status;  /* the last writable byte of the chain */
	uint32_t written; /* used length on success, the status byte included */
	unsigned n_data;
	struct iovec data[VIRTQ_MAX_IOV];
	struct virtq_chain chain;
};

struct vblk {
	struct backend be;
	struct virtio_pci vp;
	struct vblk_opts opts;
	struct blk_io *io;
	struct blk_io_info info;
	uint64_t capacity; /* sectors */
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
	uint32_t gen;
	struct vblk_req *free_reqs;
	struct vblk_req *wait_head, *wait_tail; /* taken, not yet in the ring (it was full) */
	bool stalled[VIRTIO_BLK_MAX_QUEUES];	/* has a request on the wait list */
	bool touched[VIRTIO_BLK_MAX_QUEUES];	/* pushed since the driver was last told */
	struct event *after_ev;			/* after a batch of completions */
	unsigned live_reqs;
};

/* virtio_blk_req.c */
void vblk_queue_notify(void *opaque, unsigned q);
void vblk_io_done(void *opaque, uint64_t tag, int res);
void vblk_after_completions(evutil_socket_t fd, short what, void *opaque);
/* Every request taken finished (or, past the bound, given up): nothing touches guest RAM. */
void vblk_finish_all(struct vblk *dev);
/* Forgets every request (after vblk_finish_all) and what queues were waiting for. */
void vblk_drop_all(struct vblk *dev);
void vblk_free_reqs(struct vblk *dev);

#endif
