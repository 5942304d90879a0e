/*
 * virtio-blk requests: from a chain taken off a queue to a blk_io request
 * and back to the used ring. Per notification every available chain is
 * taken and queued, then submitted with one io_uring_enter; completions
 * push their chains and the driver gets one interrupt per batch (when it
 * asked for one). A chain that does not fit the ring waits here, and its
 * queue with it, until completions make room.
 */
#include "virtio_blk_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct vblk_req *req_get(struct vblk *dev)
{
	struct vblk_req *r = dev->free_reqs;

	if (r) {
		dev->free_reqs = r->next;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
	}
	r->next = NULL;
	r->dev = dev;
	dev->live_reqs++;
	return r;
}

static void req_put(struct vblk *dev, struct vblk_req *r)
{
	r->next = dev->free_reqs;
	dev->free_reqs = r;
	dev->live_reqs--;
}

void vblk_free_reqs(struct vblk *dev)
{
	while (dev->free_reqs) {
		struct vblk_req *r = dev->free_reqs;

		dev->free_reqs = r->next;
		free(r);
	}
}

/* Copies up to len bytes from the start of iov into buf; returns how many. */
static size_t iov_gather(const struct iovec *iov, unsigned n, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy((uint8_t *)buf + done, iov[i].iov_base, k);
		done += k;
	}
	return done;
}

static size_t iov_scatter(const struct iovec *iov, unsigned n, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy(iov[i].iov_base, (const uint8_t *)buf + done, k);
		done += k;
	}
	return done;
}

/* [skip, skip + len) of iov as iovecs in dst (at most VIRTQ_MAX_IOV). */
static unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
			  struct iovec *dst)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		dst[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[k].iov_len = (size_t)(l - skip < len ? l - skip : len);
		len -= dst[k].iov_len;
		skip = 0;
		k++;
	}
	return k;
}

static void after_soon(struct vblk *dev)
{
	event_active(dev->after_ev, EV_TIMEOUT, 0);
}

/* The request is done: status byte, used ring; the interrupt comes with the batch. */
static void complete(struct vblk *dev, struct vblk_req *r, uint8_t status)
{
	struct virtio_pci_queue *q = &dev->vp.q[r->q];
	struct mpdev_error err = { 0 };

	/* A reset or a broken queue in between: its used ring is not ours to write any more. */
	if (r->gen != dev->gen || !q->enabled || q->broken) {
		req_put(dev, r);
		return;
	}
	*r->status = status;
	if (virtq_push(&q->vq, r->chain.head, status == VIRTIO_BLK_S_OK ? r->written : 1, &err) < 0)
		virtio_pci_queue_error(&dev->vp, r->q, &err);
	else
		dev->touched[r->q] = true;
	req_put(dev, r);
}

static void flush_notify(struct vblk *dev)
{
	for (unsigned q = 0; q < dev->vp.dev.num_queues; q++) {
		struct virtq *vq;

		if (!dev->touched[q])
			continue;
		dev->touched[q] = false;
		vq = virtio_pci_queue(&dev->vp, q);
		if (vq && virtq_should_notify(vq))
			virtio_pci_notify_queue(&dev->vp, q);
	}
}

static bool range_ok(const struct vblk *dev, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / VIRTIO_BLK_SECTOR;

	return sector <= dev->capacity && n <= dev->capacity - sector;
}

/* DISCARD and WRITE_ZEROES: one segment (max_*_seg = 1), as QEMU. 0: queued; else a status. */
static int parse_dwz(struct vblk *dev, struct vblk_req *r, uint32_t type)
{
	const struct virtq_chain *c = &r->chain;
	bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint8_t seg[VIRTIO_BLK_DWZ_SIZE], all[VIRTIO_BLK_HDR_SIZE + VIRTIO_BLK_DWZ_SIZE];
	uint64_t sector;
	uint32_t nsec, flags;

	if (!virtio_pci_has_feature(&dev->vp,
				    wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD))
		return VIRTIO_BLK_S_UNSUPP;
	if (c->out_len - VIRTIO_BLK_HDR_SIZE > VIRTIO_BLK_DWZ_SIZE)
		return VIRTIO_BLK_S_UNSUPP;
	if (c->out_len - VIRTIO_BLK_HDR_SIZE < VIRTIO_BLK_DWZ_SIZE)
		return VIRTIO_BLK_S_IOERR;
	iov_gather(c->iov, c->n_out, all, sizeof(all));
	memcpy(seg, all + VIRTIO_BLK_HDR_SIZE, sizeof(seg));
	sector = get_le(seg, 8);
	nsec = (uint32_t)get_le(seg + 8, 4);
	flags = (uint32_t)get_le(seg + 12, 4);
	if (flags & ~(wz ? VIRTIO_BLK_WZ_FLAG_UNMAP : 0u))
		return VIRTIO_BLK_S_UNSUPP;
	if (dev->info.read_only || nsec > VIRTIO_BLK_MAX_DWZ_SECTORS ||
	    !range_ok(dev, sector, (uint64_t)nsec * VIRTIO_BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (nsec == 0)
		return VIRTIO_BLK_S_OK;
	/* Punching reads back zeroes too, and frees the space when the driver allows it. */
	r->op = wz && !((flags & VIRTIO_BLK_WZ_FLAG_UNMAP) && dev->info.discard)
			? BLK_IO_WRITE_ZEROES
			: BLK_IO_DISCARD;
	r->offset = sector * VIRTIO_BLK_SECTOR;
	r->len = (uint64_t)nsec * VIRTIO_BLK_SECTOR;
	r->n_data = 0;
	r->written = 1;
	return -1;
}

/* IN and OUT. -1: to be queued; else a status. */
static int parse_rw(struct vblk *dev, struct vblk_req *r, uint32_t type, uint64_t sector)
{
	const struct virtq_chain *c = &r->chain;
	bool in = type == VIRTIO_BLK_T_IN;
	uint64_t len = in ? c->in_len - 1 : c->out_len - VIRTIO_BLK_HDR_SIZE;

	if (!in && dev->info.read_only)
		return VIRTIO_BLK_S_IOERR;
	if (len % VIRTIO_BLK_SECTOR || !range_ok(dev, sector, len))
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	if (in)
		r->n_data = iov_slice(c->iov + c->n_out, c->n_in, 0, len, r->data);
	else
		r->n_data = iov_slice(c->iov, c->n_out, VIRTIO_BLK_HDR_SIZE, len, r->data);
	r->op = in ? BLK_IO_READ : BLK_IO_WRITE;
	r->offset = sector * VIRTIO_BLK_SECTOR;
	r->len = len;
	r->written = in ? (uint32_t)(len + 1) : 1;
	return -1;
}

static int get_id(struct vblk *dev, struct vblk_req *r)
{
	const struct virtq_chain *c = &r->chain;
	char id[VIRTIO_BLK_ID_BYTES] = { 0 };
	uint64_t room = c->in_len - 1;
	struct iovec v[VIRTQ_MAX_IOV];
	unsigned n;

	/* Zero-padded, no terminator at 20 bytes (spec §5.2.6). */
	memcpy(id, dev->opts.serial, strnlen(dev->opts.serial, sizeof(id)));
	if (room > sizeof(id))
		room = sizeof(id);
	n = iov_slice(c->iov + c->n_out, c->n_in, 0, room, v);
	r->written = (uint32_t)iov_scatter(v, n, id, (size_t)room) + 1;
	return VIRTIO_BLK_S_OK;
}

/* The status byte: the last byte of the last writable buffer. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	for (unsigned i = c->n_out + c->n_in; i > c->n_out; i--) {
		const struct iovec *v = &c->iov[i - 1];

		if (v->iov_len)
			return (uint8_t *)v->iov_base + v->iov_len - 1;
	}
	return NULL;
}

/*
 * What the chain asks: -1 when it goes to the disk, else the status to
 * complete it with now. -EINVAL (with err) when it has no header or no
 * status byte: nothing can be reported through it, so the queue breaks
 * (as QEMU's virtio_error).
 */
static int parse(struct vblk *dev, struct vblk_req *r, struct mpdev_error *err)
{
	const struct virtq_chain *c = &r->chain;
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
	uint32_t type;

	if (c->out_len < VIRTIO_BLK_HDR_SIZE)
		return mpdev_error_set(err, EINVAL,
				       "request %u: %" PRIu64 " readable bytes, the header is %u",
				       c->head, c->out_len, VIRTIO_BLK_HDR_SIZE);
	r->status = status_byte(c);
	if (!r->status)
		return mpdev_error_set(err, EINVAL, "request %u: no writable status byte", c->head);
	iov_gather(c->iov, c->n_out, hdr, sizeof(hdr));
	type = (uint32_t)get_le(hdr, 4);
	r->written = 1;
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return parse_rw(dev, r, type, get_le(hdr + 8, 8));
	case VIRTIO_BLK_T_FLUSH:
		r->op = BLK_IO_FLUSH;
		r->offset = r->len = 0;
		r->n_data = 0;
		return -1;
	case VIRTIO_BLK_T_GET_ID:
		return get_id(dev, r);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_dwz(dev, r, type);
	}
	log_debug(VBLK_LOG, "request type %u: unsupported", type);
	return VIRTIO_BLK_S_UNSUPP;
}

static void wait_append(struct vblk *dev, struct vblk_req *r)
{
	r->next = NULL;
	if (dev->wait_tail)
		dev->wait_tail->next = r;
	else
		dev->wait_head = r;
	dev->wait_tail = r;
	dev->stalled[r->q] = true;
}

/* Into the ring, or onto the wait list when it is full (or others wait already: order). */
static void start(struct vblk *dev, struct vblk_req *r)
{
	int res;

	if (dev->wait_head) {
		wait_append(dev, r);
		return;
	}
	res = blk_io_queue(dev->io, r->op, r->offset, r->data, r->n_data, r->len, (uintptr_t)r);
	if (res == -EAGAIN) {
		wait_append(dev, r);
	} else if (res < 0) {
		log_debug(VBLK_LOG, "request %u on queue %u refused by the disk: %s", r->chain.head,
			  r->q, strerror(-res));
		complete(dev, r, res == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR);
	}
}

/* Takes every available chain of q; false when the queue cannot go on (broken, stalled). */
static bool take_all(struct vblk *dev, unsigned qi, struct virtq *vq)
{
	struct mpdev_error err = { 0 };

	for (;;) {
		struct vblk_req *r;
		int res;

		if (dev->stalled[qi] || !virtio_pci_queue(&dev->vp, qi))
			return false;
		r = req_get(dev);
		if (!r) {
			/* Nothing is lost: the chains stay in the ring for the next notification.
			 */
			log_warn_rl(VBLK_LOG, "out of memory for requests on queue %u", qi);
			return false;
		}
		res = virtq_pop(vq, &r->chain, &err);
		if (res <= 0) {
			req_put(dev, r);
			if (res < 0)
				virtio_pci_queue_error(&dev->vp, qi, &err);
			return res == 0;
		}
		r->q = qi;
		r->gen = dev->gen;
		res = parse(dev, r, &err);
		if (res < -1) {
			req_put(dev, r);
			virtio_pci_queue_error(&dev->vp, qi, &err);
			return false;
		}
		if (res >= 0)
			complete(dev, r, (uint8_t)res);
		else
			start(dev, r);
	}
}

void vblk_queue_notify(void *opaque, unsigned qi)
{
	struct vblk *dev = opaque;
	struct virtq *vq = virtio_pci_queue(&dev->vp, qi);
	bool more;

	if (!vq)
		return;
	do
		more = take_all(dev, qi, vq) && virtq_enable_notify(vq);
	while (more);
	blk_io_submit(dev->io);
	flush_notify(dev);
}

void vblk_io_done(void *opaque, uint64_t tag, int res)
{
	struct vblk *dev = opaque;
	struct vblk_req *r = (struct vblk_req *)(uintptr_t)tag;
	bool rw = r->op == BLK_IO_READ || r->op == BLK_IO_WRITE;
	bool ok = rw ? res >= 0 && (uint64_t)res == r->len : res == 0;

	if (!ok)
		log_debug(VBLK_LOG, "request %u on queue %u: %s", r->chain.head, r->q,
			  res < 0 ? strerror(-res) : "short transfer");
	complete(dev, r, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
	after_soon(dev);
}

/* Waiting requests into the ring as far as it takes them; true when none wait any more. */
static bool resume_waiting(struct vblk *dev)
{
	while (dev->wait_head) {
		struct vblk_req *r = dev->wait_head;
		int res = blk_io_queue(dev->io, r->op, r->offset, r->data, r->n_data, r->len,
				       (uintptr_t)r);

		if (res == -EAGAIN)
			break;
		dev->wait_head = r->next;
		if (!dev->wait_head)
			dev->wait_tail = NULL;
		if (res < 0)
			complete(dev, r,
				 res == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR);
	}
	blk_io_submit(dev->io);
	return !dev->wait_head;
}

void vblk_after_completions(evutil_socket_t fd, short what, void *opaque)
{
	struct vblk *dev = opaque;

	(void)fd;
	(void)what;
	if (resume_waiting(dev)) {
		for (unsigned q = 0; q < dev->vp.dev.num_queues; q++) {
			if (!dev->stalled[q])
				continue;
			dev->stalled[q] = false;
			vblk_queue_notify(dev, q);
		}
	}
	flush_notify(dev);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vblk_finish_all(struct vblk *dev)
{
	int64_t end = now_ms() + VIRTIO_BLK_DRAIN_MS;

	for (;;) {
		int64_t left = end - now_ms();

		resume_waiting(dev);
		if (!dev->wait_head && !blk_io_inflight(dev->io))
			break;
		if (left <= 0 || blk_io_drain(dev->io, (int)left) < 0) {
			if (blk_io_inflight(dev->io) || dev->wait_head) {
				log_error(VBLK_LOG,
					  "%s: %u requests still in flight after %d ms: guest "
					  "memory they name may still be accessed",
					  dev->opts.path, blk_io_inflight(dev->io),
					  VIRTIO_BLK_DRAIN_MS);
				break;
			}
		}
	}
	flush_notify(dev);
}

void vblk_drop_all(struct vblk *dev)
{
	/* Waiting requests never reached the disk: they can go now. */
	while (dev->wait_head) {
		struct vblk_req *r = dev->wait_head;

		dev->wait_head = r->next;
		req_put(dev, r);
	}
	dev->wait_tail = NULL;
	memset(dev->stalled, 0, sizeof(dev->stalled));
	memset(dev->touched, 0, sizeof(dev->touched));
	/* Any completion still to come belongs to the old generation and is dropped. */
	dev->gen++;
}
