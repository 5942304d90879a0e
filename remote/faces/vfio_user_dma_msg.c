/*
 * DMA to memory the client serves by message (DMA_MAP without a
 * descriptor): the device's synchronous dma_read / dma_write becomes
 * DMA_READ / DMA_WRITE requests on the connection, each answered within
 * VFU_DMA_MSG_TIMEOUT_MS or failed.
 *
 * The wait reads the stream, where the client's own commands may come
 * before our reply: they stay buffered, in order, and only the reply is
 * taken out from among them. They are handled once the device's work is
 * over (the server calls the face again), never inside it: the device model
 * is in the middle of its DMA and is not re-entered.
 *
 * A client that handles our request only after we answer one of its own
 * (QEMU does, when its vCPU waits on a BAR access that starts a DMA) cannot
 * answer in time: the DMA fails after the bound, the remote carries on.
 * Twin-socket mode would lift this and is not done yet.
 *
 * Layout: the spec's and libvfio-user's (address u64, count u64, data at
 * 16). QEMU 10.1/11.1 (hw/vfio-user/protocol.h, VFIOUserDMARW) still has the
 * older 4-byte count with data at 12, so its client would misplace the data
 * by 4 bytes; QEMU gives guest RAM as descriptors (memory-backend-memfd,
 * share=on), which never comes here.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "fdrelease.h"
#include "log.h"
#include "vfio_user_internal.h"

#define COMP "vfio-user"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int64_t left = deadline - now_ms();
	int r;

	if (left <= 0)
		return -ETIMEDOUT;
	r = poll(&p, 1, (int)left);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Whatever is kept for the socket goes out first: our request must follow it, whole. */
static int flush_bounded(struct session *s, int64_t deadline)
{
	int r;

	while (session_output_blocked(s)) {
		r = session_flush(s);
		if (r == 0)
			break;
		if (r != -EAGAIN)
			return r;
		if ((r = wait_fd(s->fd, POLLOUT, deadline)) < 0)
			return r;
	}
	return 0;
}

/*
 * Takes the n bytes at offset off out of the stream buffer (our reply, from
 * among the client's commands). Descriptors after them move up; any that
 * came with them are closed (a reply carries none).
 */
static void cut(struct stream_in *in, size_t off, size_t n)
{
	uint64_t start = in->pos + off, end = start + n;
	size_t kept = 0;

	for (size_t i = 0; i < in->nfds; i++) {
		struct stream_in_fd f = in->fds[i];

		if (f.pos >= start && f.pos < end) {
			fd_release(f.fd);
			continue;
		}
		if (f.pos >= end)
			f.pos -= n;
		in->fds[kept++] = f;
	}
	in->nfds = kept;
	memmove(in->buf + off, in->buf + off + n, in->len - off - n);
	in->len -= n;
}

/*
 * Looks for the reply to (id, cmd) among whole messages in the buffer.
 * Returns 1 with its header and payload copied out, 0 if it is not there
 * yet, or -EPROTO when a message in front of it cannot be framed.
 */
static int find_reply(struct vfu_conn *c, uint16_t id, uint16_t cmd, struct vfu_hdr *h,
		      uint8_t *out, size_t room, size_t *len)
{
	size_t off = 0;

	while (off + VFU_HDR_SIZE <= c->in.len) {
		vfu_hdr_get(c->in.buf + off, h);
		if (h->size < VFU_HDR_SIZE || h->size > VFU_MAX_MSG)
			return -EPROTO;
		if (off + h->size > c->in.len)
			return 0;
		if ((h->flags & VFU_FLAG_TYPE_MASK) == VFU_TYPE_REPLY && h->msg_id == id &&
		    h->cmd == cmd) {
			*len = h->size - VFU_HDR_SIZE;
			if (*len > room)
				*len = room;
			memcpy(out, c->in.buf + off + VFU_HDR_SIZE, *len);
			cut(&c->in, off, h->size);
			return 1;
		}
		off += h->size;
	}
	return 0;
}

static int wait_reply(struct session *s, struct vfu_conn *c, uint16_t id, uint16_t cmd,
		      int64_t deadline, struct vfu_hdr *h, uint8_t *out, size_t room, size_t *len)
{
	int r;

	for (;;) {
		/* The tail of a message being dropped is not a place to look. */
		while (c->skip && vfu_skip_bytes(c))
			;
		if (!c->skip && (r = find_reply(c, id, cmd, h, out, room, len)) != 0)
			return r < 0 ? r : 0;
		if (c->in.eof)
			return -ECONNRESET;
		if (c->in.len == c->in.cap)
			return -ENOBUFS; /* a buffer full of commands and no reply */
		r = stream_in_fill(&c->in, s->fd);
		if (r == -EAGAIN) {
			if ((r = wait_fd(s->fd, POLLIN, deadline)) < 0)
				return r;
			continue;
		}
		if (r < 0) {
			c->fatal = r; /* bytes were lost with the descriptors: the stream is gone */
			return r;
		}
	}
}

/* One request of at most the client's transfer size, and its reply. */
static int round_trip(struct session *s, struct vfu_conn *c, bool write, uint64_t addr,
		      uint8_t *buf, size_t n, struct mpdev_error *err)
{
	uint16_t cmd = write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ;
	struct vfu_hdr h = { .msg_id = c->next_id++, .cmd = cmd, .flags = VFU_TYPE_COMMAND };
	struct vfu_dma_access a = { .addr = addr, .count = n }, back;
	int64_t deadline = now_ms() + VFU_DMA_MSG_TIMEOUT_MS;
	struct vfu_hdr rh;
	size_t len = 0, room = VFU_DMA_ACCESS_SIZE + (write ? 0 : n);
	uint16_t id = h.msg_id;
	int r;

	h.size = (uint32_t)(VFU_HDR_SIZE + VFU_DMA_ACCESS_SIZE + (write ? n : 0));
	vfu_hdr_put(c->dma_buf, &h);
	memcpy(c->dma_buf + VFU_HDR_SIZE, &a, sizeof(a));
	if (write)
		memcpy(c->dma_buf + VFU_HDR_SIZE + VFU_DMA_ACCESS_SIZE, buf, n);
	r = flush_bounded(s, deadline);
	if (r == 0)
		r = session_output(s, c->dma_buf, h.size, NULL, 0);
	if (r == 0)
		r = flush_bounded(s, deadline);
	if (r < 0)
		return mpdev_error_set(err, -r, "%s of %zu bytes at 0x%llx: cannot send: %s",
				       vfu_cmd_name(cmd), n, (unsigned long long)addr,
				       strerror(-r));
	/* The reply lands in dma_buf: the request is out and no longer needed. */
	r = wait_reply(s, c, id, cmd, deadline, &rh, c->dma_buf, room, &len);
	/* Commands that came meanwhile, or an end to report: the server calls the face again. */
	if (c->in.len || c->fatal || c->in.eof)
		session_input_pending(s);
	if (r < 0)
		return mpdev_error_set(err, r == -ETIMEDOUT ? ETIMEDOUT : -r,
				       "%s of %zu bytes at 0x%llx: no reply%s: %s",
				       vfu_cmd_name(cmd), n, (unsigned long long)addr,
				       r == -ETIMEDOUT ? " within the bound" : "", strerror(-r));
	if (rh.flags & VFU_FLAG_ERROR)
		return mpdev_error_set(err, rh.error_no ? (int)rh.error_no : EIO,
				       "%s at 0x%llx: the client answered errno %u",
				       vfu_cmd_name(cmd), (unsigned long long)addr, rh.error_no);
	/*
	 * A DMA_WRITE reply is the access (the spec's has a 4-byte count,
	 * libvfio-user's an 8-byte one) or, from QEMU, the bare header.
	 */
	if (write && len == 0)
		return 0;
	if (len < (write ? 12u : VFU_DMA_ACCESS_SIZE))
		return mpdev_error_set(err, EPROTO, "%s reply of %zu bytes", vfu_cmd_name(cmd),
				       len);
	memset(&back, 0, sizeof(back));
	memcpy(&back, c->dma_buf, len < sizeof(back) ? len : sizeof(back));
	if (back.addr != addr || (uint32_t)back.count != (uint32_t)n ||
	    (!write && len != VFU_DMA_ACCESS_SIZE + n))
		return mpdev_error_set(err, EPROTO, "%s reply for 0x%llx+%llu, asked 0x%llx+%zu",
				       vfu_cmd_name(cmd), (unsigned long long)back.addr,
				       (unsigned long long)back.count, (unsigned long long)addr, n);
	if (!write)
		memcpy(buf, c->dma_buf + VFU_DMA_ACCESS_SIZE, n);
	return 0;
}

int vfu_dma_msg(void *opaque, bool write, uint64_t gpa, void *buf, size_t len,
		struct mpdev_error *err)
{
	struct session *s = opaque;
	struct vfu_conn *c = s->face_state;
	const struct vfu_range *range = NULL;
	size_t chunk, done = 0;
	int r;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < c->nranges; i++)
		if (gpa >= c->ranges[i].addr && gpa - c->ranges[i].addr < c->ranges[i].size &&
		    len <= c->ranges[i].size - (gpa - c->ranges[i].addr))
			range = &c->ranges[i];
	if (!range)
		return mpdev_error_set(err, EFAULT, "%zu bytes at 0x%llx are not mapped", len,
				       (unsigned long long)gpa);
	if (write && range->read_only)
		return mpdev_error_set(err, EACCES, "0x%llx is mapped read-only",
				       (unsigned long long)gpa);
	if (c->fatal || c->in.eof)
		return mpdev_error_set(err, EPIPE, "the client's connection is ending");
	chunk = c->peer.max_data_xfer_size < VFU_OUR_MAX_XFER ? (size_t)c->peer.max_data_xfer_size
							      : VFU_OUR_MAX_XFER;
	if (chunk == 0)
		return mpdev_error_set(err, EINVAL,
				       "the client takes no data (max_data_xfer_size 0)");
	while (done < len) {
		size_t n = len - done < chunk ? len - done : chunk;

		r = round_trip(s, c, write, gpa + done, (uint8_t *)buf + done, n, err);
		if (r < 0) {
			log_info_rl(COMP, "%s", err->msg);
			return r;
		}
		done += n;
	}
	return 0;
}
