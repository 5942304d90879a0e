/*
 * The vfio-user face's own pieces, one file per concern:
 *   vfio_user.c        framing, VERSION negotiation, the request table, replies
 *   vfio_user_dma.c    DMA_MAP / DMA_UNMAP (the memory table, and ranges the
 *                      client serves by message)
 *   vfio_user_info.c   DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO
 *   vfio_user_io_fds.c GET_REGION_IO_FDS (the device's doorbells as ioeventfds)
 *   vfio_user_irq.c    DEVICE_SET_IRQS
 *   vfio_user_access.c REGION_READ / WRITE / WRITE_MULTI, DEVICE_RESET
 *   vfio_user_mig.c    DEVICE_FEATURE (migration), MIG_DATA_READ / WRITE
 *   vfio_user_dma_msg.c the device's DMA to memory the client serves by message
 * Handlers decode with proto/vfio-user and call devops.h; every check of a
 * device fact (index, bounds, descriptor kind) is devops' own.
 */
#ifndef MPDEV_FACE_VFIO_USER_INTERNAL_H
#define MPDEV_FACE_VFIO_USER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "session.h"
#include "stream_in.h"
#include "vfio_user.h"

/* What we announce and accept. */
#define VFU_OUR_MAX_FDS	 8u		   /* per message we receive (SET_IRQS chunks) */
#define VFU_OUR_MAX_XFER DEVOPS_MAX_ACCESS /* 1 MiB: the spec's default */
/* Descriptors in one reply: a region's doorbells at most (and the client's max_msg_fds). */
#define VFU_MAX_REPLY_FDS BACKEND_MAX_IOEVENTFDS
/* The largest message either way: a region access of the largest transfer. */
#define VFU_MAX_MSG (VFU_HDR_SIZE + VFU_REGION_ACCESS_SIZE + VFU_OUR_MAX_XFER)
/* DMA ranges the client serves by DMA_READ / DMA_WRITE (no descriptor). */
#define VFU_MAX_MSG_RANGES 64u

struct vfu_range {
	uint64_t addr, size;
	bool read_only;
};

struct vfu_conn {
	struct stream_in in;
	struct vfu_caps peer; /* what the client said in VERSION */
	bool write_multi;     /* both sides said write_multiple */
	/* Bytes of a message too large to take that are still to be dropped as they arrive. */
	uint64_t skip;
	uint8_t *msg; /* the message being handled, copied out of the stream */
	uint8_t *out; /* the reply being built */
	struct vfu_range ranges[VFU_MAX_MSG_RANGES];
	size_t nranges;
	/* Our own requests (DMA_READ / DMA_WRITE): ids, and their buffer. */
	uint16_t next_id;
	uint8_t *dma_buf;
	/* Set when the connection must end at the next readable call. */
	int fatal;
};

/* One request as a handler sees it. */
struct vfu_req {
	struct vfu_hdr hdr;
	const uint8_t *payload;
	size_t len;
	/* Descriptors that came with it: a handler that keeps one sets its slot to -1. */
	int *fds;
	size_t nfds;
	/* The reply payload goes here (room bytes); the handler sets reply_len. */
	uint8_t *reply;
	size_t room, reply_len;
	/* Sent with the reply, then closed (the handler's own, dup'd where it lends them). */
	int reply_fds[VFU_MAX_REPLY_FDS];
	size_t reply_nfds;
	struct mpdev_error err;
};

typedef int (*vfu_handler_fn)(struct session *s, struct vfu_conn *c, struct vfu_req *r);

int vfu_handle_dma_map(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_dma_unmap(struct session *s, struct vfu_conn *c, struct vfu_req *r);
/* The disconnect: client-served ranges go (the memory table is the server's to clear). */
void vfu_dma_release(struct vfu_conn *c);

/*
 * The device's DMA to a range the client serves (remote_host.dma_msg):
 * DMA_READ / DMA_WRITE requests of at most the client's max_data_xfer_size,
 * each waited for at most VFU_DMA_MSG_TIMEOUT_MS (vfio_user_dma_msg.c).
 */
#define VFU_DMA_MSG_TIMEOUT_MS 1000
int vfu_dma_msg(void *opaque, bool write, uint64_t gpa, void *buf, size_t len,
		struct mpdev_error *err);

/*
 * vfio_user.c's framing, for the wait above: the message at the front of
 * the stream, if whole (1: taken, 0: more bytes needed, < 0: the end).
 */
int vfu_take_one(struct session *s, struct vfu_conn *c, bool *answered);
/* Drops the bytes of a message being skipped that are buffered; 1 if any were. */
int vfu_skip_bytes(struct vfu_conn *c);

int vfu_handle_device_info(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_region_info(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_irq_info(struct session *s, struct vfu_conn *c, struct vfu_req *r);

int vfu_handle_region_io_fds(struct session *s, struct vfu_conn *c, struct vfu_req *r);

int vfu_handle_set_irqs(struct session *s, struct vfu_conn *c, struct vfu_req *r);

int vfu_handle_region_read(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_region_write(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_write_multi(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_reset(struct session *s, struct vfu_conn *c, struct vfu_req *r);

int vfu_handle_device_feature(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_mig_data_read(struct session *s, struct vfu_conn *c, struct vfu_req *r);
int vfu_handle_mig_data_write(struct session *s, struct vfu_conn *c, struct vfu_req *r);

/* Sets r->err and returns -code; the words go to the log (vfio-user replies carry only errno). */
#define vfu_fail(r, code, ...) mpdev_error_set(&(r)->err, code, __VA_ARGS__)

#endif
