/*
 * The vfio-user face: framing on the stream, VERSION negotiation, the request
 * table and the one place a reply is built. A peer that sends half a message
 * stalls only itself (the rest waits in the stream buffer); a message that
 * cannot be taken is answered with an error and dropped as it arrives, so the
 * stream stays in step and the connection lives on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "face.h"
#include "fdrelease.h"
#include "log.h"
#include "vfio_user_internal.h"

#define COMP "vfio-user"

struct row {
	vfu_handler_fn fn;
	uint8_t max_fds;
};

/* A new command is one row. */
static const struct row rows[VFU_CMD_MAX] = {
	[VFU_CMD_DMA_MAP] = { vfu_handle_dma_map, 1 },
	[VFU_CMD_DMA_UNMAP] = { vfu_handle_dma_unmap, 0 },
	[VFU_CMD_DEVICE_GET_INFO] = { vfu_handle_device_info, 0 },
	[VFU_CMD_DEVICE_GET_REGION_INFO] = { vfu_handle_region_info, 0 },
	[VFU_CMD_DEVICE_GET_REGION_IO_FDS] = { vfu_handle_region_io_fds, 0 },
	[VFU_CMD_DEVICE_GET_IRQ_INFO] = { vfu_handle_irq_info, 0 },
	[VFU_CMD_DEVICE_SET_IRQS] = { vfu_handle_set_irqs, VFU_OUR_MAX_FDS },
	[VFU_CMD_REGION_READ] = { vfu_handle_region_read, 0 },
	[VFU_CMD_REGION_WRITE] = { vfu_handle_region_write, 0 },
	[VFU_CMD_REGION_WRITE_MULTI] = { vfu_handle_write_multi, 0 },
	[VFU_CMD_DEVICE_RESET] = { vfu_handle_reset, 0 },
	[VFU_CMD_DEVICE_FEATURE] = { vfu_handle_device_feature, 0 },
	[VFU_CMD_MIG_DATA_READ] = { vfu_handle_mig_data_read, 0 },
	[VFU_CMD_MIG_DATA_WRITE] = { vfu_handle_mig_data_write, 0 },
};

static struct vfu_conn *conn_of(struct session *s)
{
	return s->face_state;
}

static uint64_t our_pgsizes(const struct backend_iommu_info *io)
{
	/* QEMU refuses page sizes below 4 KiB; ours are never smaller anyway. */
	if (io->pgsize_bitmap && !(io->pgsize_bitmap & (VFU_DEF_PGSIZES - 1)))
		return io->pgsize_bitmap;
	return VFU_DEF_PGSIZES;
}

static int handle_version(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct backend_iommu_info io = { 0 };
	struct vfu_version v, ours = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
	struct vfu_caps peer, caps;
	const char *text, *why = NULL;
	size_t text_len;
	int n;

	if (s->greeted)
		return vfu_fail(r, EINVAL, "VERSION again");
	if (vfu_decode_version(r->payload, r->len, &v, &text, &text_len) < 0)
		return vfu_fail(r, EINVAL, "VERSION of %zu bytes: no NUL-terminated capabilities",
				r->len);
	if (v.major != VFU_VERSION_MAJOR)
		return vfu_fail(r, ENOTSUP, "version %u.%u: this server speaks %u.x", v.major,
				v.minor, VFU_VERSION_MAJOR);
	if (text) {
		if (vfu_caps_parse(text, text_len, &peer, &why) < 0)
			return vfu_fail(r, EINVAL, "capabilities: %s", why);
	} else {
		vfu_caps_default(&peer);
	}
	if (devops_iommu_info(s, &io, &r->err) < 0)
		return -r->err.code;
	vfu_caps_default(&caps);
	caps.max_msg_fds = VFU_OUR_MAX_FDS;
	caps.max_data_xfer_size = VFU_OUR_MAX_XFER;
	caps.pgsizes = our_pgsizes(&io);
	caps.max_dma_maps = (uint64_t)io.mappings_used + io.dma_avail;
	if (caps.max_dma_maps > VFU_DEF_MAX_DMA_MAPS)
		caps.max_dma_maps = VFU_DEF_MAX_DMA_MAPS;
	/* A reply's capabilities are a subset of the proposal. */
	caps.write_multiple = peer.write_multiple;
	/* Our minor (0) is never above the proposal's: the reply's must not be. */
	ours.minor = VFU_VERSION_MINOR;
	memcpy(r->reply, &ours, VFU_VERSION_SIZE);
	n = vfu_caps_format(&caps, (char *)r->reply + VFU_VERSION_SIZE, r->room - VFU_VERSION_SIZE);
	if (n < 0)
		return vfu_fail(r, ENOSPC, "our capabilities do not fit");
	r->reply_len = VFU_VERSION_SIZE + (size_t)n;
	c->peer = peer;
	c->write_multi = caps.write_multiple;
	s->greeted = true;
	log_info(COMP, "client version %u.%u, max_msg_fds %llu, max_data_xfer_size %llu%s", v.major,
		 v.minor, (unsigned long long)peer.max_msg_fds,
		 (unsigned long long)peer.max_data_xfer_size,
		 c->write_multi ? ", write_multiple" : "");
	return 0;
}

static int dispatch(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	uint32_t cmd = r->hdr.cmd;
	const struct row *row = cmd < VFU_CMD_MAX ? &rows[cmd] : NULL;

	if (!s->greeted && cmd != VFU_CMD_VERSION)
		return vfu_fail(r, EINVAL, "%s before VERSION", vfu_cmd_name(cmd));
	if (cmd == VFU_CMD_VERSION) {
		if (r->nfds)
			return vfu_fail(r, EINVAL, "VERSION with %zu descriptors", r->nfds);
		return handle_version(s, c, r);
	}
	if (!row || !row->fn) {
		/* Known but not served here (dirty pages, server-to-client). */
		if (cmd < VFU_CMD_MAX && cmd != 0)
			return vfu_fail(r, ENOTSUP, "%s is not supported", vfu_cmd_name(cmd));
		return vfu_fail(r, ENOSYS, "unknown command %u", cmd);
	}
	if (r->nfds > row->max_fds)
		return vfu_fail(r, EINVAL, "%s with %zu descriptors (at most %u)",
				vfu_cmd_name(cmd), r->nfds, row->max_fds);
	return row->fn(s, c, r);
}

/* Header-only error replies and whole replies alike leave here. */
static int send_reply(struct session *s, struct vfu_conn *c, const struct vfu_hdr *req, int rc,
		      struct vfu_req *r)
{
	struct vfu_hdr h = { .msg_id = req->msg_id, .cmd = req->cmd, .flags = VFU_TYPE_REPLY };
	size_t len = 0, nfds = 0;

	if (rc < 0) {
		h.flags |= VFU_FLAG_ERROR;
		h.error_no = (uint32_t)-rc;
		s->stats->error_replies++;
	} else if (r) {
		len = r->reply_len;
		nfds = r->reply_nfds;
	}
	h.size = (uint32_t)(VFU_HDR_SIZE + len);
	vfu_hdr_put(c->out, &h);
	return session_output(s, c->out, VFU_HDR_SIZE + len, r ? r->reply_fds : NULL, nfds);
}

static void release_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0) {
			fd_release(fds[i]);
			fds[i] = -1;
		}
}

/* One whole message of h.size bytes at the front of the stream. *answered: a reply went out. */
static int handle_message(struct session *s, struct vfu_conn *c, const struct vfu_hdr *h,
			  bool *answered)
{
	int fds[STREAM_IN_MAX_FDS];
	size_t nfds = 0;
	struct vfu_req r = { .hdr = *h };
	int got, rc, out;

	memcpy(c->msg, c->in.buf, h->size);
	got = stream_in_consume(&c->in, h->size, fds, STREAM_IN_MAX_FDS, &nfds);
	s->stats->messages++;
	r.payload = c->msg + VFU_HDR_SIZE;
	r.len = h->size - VFU_HDR_SIZE;
	r.fds = fds;
	r.nfds = nfds;
	r.reply = c->out + VFU_HDR_SIZE;
	r.room = VFU_MAX_MSG - VFU_HDR_SIZE;
	r.reply_fds[0] = -1;
	if (got < 0)
		rc = vfu_fail(&r, EINVAL, "more than %u descriptors with one message",
			      STREAM_IN_MAX_FDS);
	else
		rc = dispatch(s, c, &r);
	release_fds(fds, nfds);
	if (rc < 0)
		log_info_rl(COMP, "%s (id %u): %s", vfu_cmd_name(h->cmd), h->msg_id, r.err.msg);
	if (h->flags & VFU_FLAG_NO_REPLY) {
		/* The client asked for no answer, so a failure is only logged and counted. */
		if (rc < 0)
			s->stats->error_replies++;
		release_fds(r.reply_fds, r.reply_nfds);
		return 0;
	}
	out = send_reply(s, c, h, rc, &r);
	release_fds(r.reply_fds, r.reply_nfds);
	*answered = true;
	return out;
}

/*
 * A header that cannot start a message we take: answered, then the bytes it
 * claims are dropped as they come (a size below the header claims only the
 * header), so that the next message is found where the client put it.
 */
static int refuse_framing(struct session *s, struct vfu_conn *c, const struct vfu_hdr *h, int rc,
			  bool *answered)
{
	struct vfu_req r = { .hdr = *h };
	uint64_t claim = h->size < VFU_HDR_SIZE ? VFU_HDR_SIZE : h->size;

	s->stats->protocol_errors++;
	c->skip = claim;
	log_info_rl(COMP, "message id %u (%s) of %u bytes refused: %s", h->msg_id,
		    vfu_cmd_name(h->cmd), h->size,
		    rc == -E2BIG ? "larger than the largest we take" : "bad header");
	if ((h->flags & VFU_FLAG_TYPE_MASK) == VFU_TYPE_REPLY)
		return 0; /* a reply is never answered */
	*answered = true;
	return send_reply(s, c, h, rc, &r);
}

int vfu_skip_bytes(struct vfu_conn *c)
{
	size_t n = c->in.len < c->skip ? c->in.len : (size_t)c->skip;
	size_t nfds = 0;

	if (!n)
		return 0;
	stream_in_consume(&c->in, n, NULL, 0, &nfds); /* closes what came with them */
	c->skip -= n;
	return 1;
}

/* A message was taken (1), unless sending its answer ended the connection. */
static int taken(int r)
{
	return r < 0 ? r : 1;
}

/*
 * The message at the front of the buffer, if whole. Returns 1 when one was
 * taken (answered says whether it was replied to), 0 when more bytes are
 * needed, or a negative errno to end the connection.
 */
int vfu_take_one(struct session *s, struct vfu_conn *c, bool *answered)
{
	struct vfu_hdr h;
	int r;

	*answered = false;
	if (c->skip)
		return vfu_skip_bytes(c);
	if (c->in.len < VFU_HDR_SIZE)
		return 0;
	vfu_hdr_get(c->in.buf, &h);
	if ((h.flags & VFU_FLAG_TYPE_MASK) == VFU_TYPE_REPLY) {
		/* We send no requests, so no reply is expected: dropped whole. */
		if (h.size < VFU_HDR_SIZE || h.size > VFU_MAX_MSG)
			return taken(refuse_framing(s, c, &h, -EINVAL, answered));
		log_info_rl(COMP, "unexpected reply id %u (%s) dropped", h.msg_id,
			    vfu_cmd_name(h.cmd));
		s->stats->protocol_errors++;
		c->skip = h.size;
		vfu_skip_bytes(c);
		return 1;
	}
	r = vfu_hdr_check_command(&h, VFU_MAX_MSG);
	if (r < 0 && (h.size < VFU_HDR_SIZE || h.size > VFU_MAX_MSG))
		return taken(refuse_framing(s, c, &h, r, answered));
	if (c->in.len < h.size)
		return 0;
	if (r < 0) {
		/* Framing is sound but the flags are not: the whole message goes, answered. */
		struct vfu_req req = { .hdr = h };
		size_t nfds = 0;

		stream_in_consume(&c->in, h.size, NULL, 0, &nfds);
		s->stats->messages++;
		s->stats->protocol_errors++;
		log_info_rl(COMP, "message id %u (%s): flags 0x%x refused", h.msg_id,
			    vfu_cmd_name(h.cmd), h.flags);
		*answered = true;
		return taken(send_reply(s, c, &h, -EINVAL, &req));
	}
	return taken(handle_message(s, c, &h, answered));
}

static int vfu_readable(struct session *s)
{
	struct vfu_conn *c = conn_of(s);
	bool answered;
	int r;

	if (c->fatal)
		return c->fatal;
	for (;;) {
		r = vfu_take_one(s, c, &answered);
		if (r < 0)
			return r;
		if (r == 1) {
			/*
			 * After an answer the client usually waits for it, so with nothing
			 * buffered, back to the loop rather than paying for a recv that says
			 * EAGAIN; what is buffered the server comes back for.
			 */
			if (answered)
				return c->in.len || c->skip ? 1 : 0;
			continue;
		}
		if (c->in.eof)
			return -ECONNRESET;
		r = stream_in_fill(&c->in, s->fd);
		if (r == -EAGAIN)
			return 0;
		if (r == -ENOBUFS)
			return -EPROTO; /* a whole message always fits: cannot happen */
		if (r < 0)
			return r; /* -EPROTO: descriptors we could not tie to a message */
	}
}

static int vfu_conn_init(struct session *s)
{
	struct vfu_conn *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = stream_in_init(&c->in, VFU_MAX_MSG);
	if (r < 0) {
		free(c);
		return r;
	}
	c->msg = malloc(VFU_MAX_MSG);
	c->out = malloc(VFU_MAX_MSG);
	c->dma_buf = malloc(VFU_MAX_MSG);
	if (!c->msg || !c->out || !c->dma_buf) {
		stream_in_release(&c->in);
		free(c->msg);
		free(c->out);
		free(c->dma_buf);
		free(c);
		return -ENOMEM;
	}
	vfu_caps_default(&c->peer);
	c->next_id = 1;
	s->face_state = c;
	s->greeted = false;
	/* The device's DMA to ranges this client serves by message comes here. */
	if (s->host) {
		s->host->dma_msg = vfu_dma_msg;
		s->host->dma_msg_opaque = s;
	}
	return 0;
}

static void vfu_conn_release(struct session *s)
{
	struct vfu_conn *c = conn_of(s);

	if (!c)
		return;
	if (s->host && s->host->dma_msg_opaque == s) {
		s->host->dma_msg = NULL;
		s->host->dma_msg_opaque = NULL;
	}
	vfu_dma_release(c);
	stream_in_release(&c->in);
	free(c->msg);
	free(c->out);
	free(c->dma_buf);
	free(c);
	s->face_state = NULL;
}

const struct face face_vfio_user = {
	.name = "vfio-user",
	.sock_type = SOCK_STREAM,
	.handshake = true,
	.conn_init = vfu_conn_init,
	.readable = vfu_readable,
	.conn_release = vfu_conn_release,
};
