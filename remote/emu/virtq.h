/*
 * The device side of a virtio 1.x split virtqueue (virtio spec 2.7) in guest
 * memory that the remote reaches only through its backend_host. Every
 * descriptor chain is validated whole (indexes below the queue size, no
 * loop, at most one level of indirection, lengths that add up without
 * overflow, readable-before-writable order, every buffer inside the memory
 * table) before the device sees any of it: a chain that breaks a rule is a
 * device error (the transport sets DEVICE_NEEDS_RESET), never an access
 * outside guest memory. Buffers come back as iovecs straight into the
 * remote's mapping of guest RAM (zero copy).
 */
#ifndef MPDEV_VIRTQ_H
#define MPDEV_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend.h"
#include "error.h"

#define VIRTQ_MAX_SIZE 32768u /* the spec's bound on a split queue */
/* Buffers one chain may name; a request with more is refused (seg_max + 2). */
#define VIRTQ_MAX_IOV 256u
/* The bytes one chain may name, readable and writable together (used.len is 32-bit). */
#define VIRTQ_MAX_CHAIN_BYTES (UINT64_C(1) << 32)

/* Ring flags (virtio spec 2.7.5, 2.7.6, 2.7.8), as the driver writes them. */
#define VIRTQ_DESC_F_NEXT	   1u
#define VIRTQ_DESC_F_WRITE	   2u
#define VIRTQ_DESC_F_INDIRECT	   4u
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define VIRTQ_USED_F_NO_NOTIFY	   1u

/* Bytes of each ring of a queue of size entries, event idx fields included. */
#define VIRTQ_DESC_BYTES(size)	(16u * (uint64_t)(size))
#define VIRTQ_AVAIL_BYTES(size) (6u + 2u * (uint64_t)(size))
#define VIRTQ_USED_BYTES(size)	(6u + 8u * (uint64_t)(size))

struct virtq {
	/* Guest-physical addresses and size the driver programmed. */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t size; /* a power of 2, <= VIRTQ_MAX_SIZE */
	bool event_idx;	 /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;	 /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	bool ready;
	uint16_t last_avail; /* next avail ring entry the device takes */
	uint16_t used_idx;   /* the device's copy of used->idx */
	uint16_t signalled_used; /* used_idx when the driver was last interrupted */
	bool signalled_valid;
	struct backend_host *host;
};

/* One chain taken from the avail ring. out: driver -> device, in: device -> driver. */
struct virtq_chain {
	uint16_t head; /* what goes back in the used ring */
	unsigned n_out, n_in;
	uint64_t out_len, in_len;		 /* byte totals */
	struct iovec iov[VIRTQ_MAX_IOV];	 /* the n_out readable ones, then the n_in writable */
};

void virtq_init(struct virtq *q, struct backend_host *host);
/* Back to reset state (not ready, indexes 0). */
void virtq_reset(struct virtq *q);

/*
 * The driver enabled the queue: checks its size and that the three rings
 * lie in guest memory (with event_idx's extra fields; the used ring
 * writable): -EINVAL (size, alignment), -EFAULT, -EACCES; -ENOSYS when the
 * host has no dma_iov. The indexes are left as they are (0 after reset).
 */
int virtq_enable(struct virtq *q, struct mpdev_error *err);

/*
 * The next available chain into c: 1 when one was taken, 0 when the ring
 * is empty, negative (-EINVAL, -EFAULT, -E2BIG, -EACCES) when what the
 * driver wrote breaks a rule (err says which): the queue is then broken.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c, struct mpdev_error *err);

/* Chain head is done, len bytes written into its in buffers. */
int virtq_push(struct virtq *q, uint16_t head, uint32_t len, struct mpdev_error *err);

/*
 * After a batch of pushes: whether the driver wants an interrupt now
 * (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with event_idx).
 */
bool virtq_should_notify(struct virtq *q);

/*
 * With event_idx: tells the driver (avail_event) to notify at the next
 * buffer, then whether more arrived meanwhile (true: pop again before
 * sleeping). Without event_idx: whether the avail ring has more.
 */
bool virtq_enable_notify(struct virtq *q);

#endif
