/*
 * The native face's request table (docs/protocol.md): one row per request
 * body says what it needs (a feature, descriptors, whether it may be
 * posted) and which handler fills its reply; dispatch() checks the row and
 * sends the one reply. A new message is one row and one handler.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "closer.h"
#include "efdio.h"
#include "fdrelease.h"
#include "fixed_access.h"
#include "log.h"
#include "ring.h"
#include "session_handlers.h"
#include "transport.h"

#define COMP "remote"

/* Below this a peer could not even receive a device info reply. */
#define SESSION_MIN_PEER_MSG_SIZE 4096u
/* The reply arena: every message of one reply, which fits one packet. */
#define SESSION_REPLY_ARENA (2u * MPDEV_MAX_MSG_SIZE)

/*
 * Where the remote's own interrupt layer (virq) serves the device, what
 * SET_IRQS can do is virq's, not the device model's: INTx is VFIO's,
 * automasked on every trigger and unmasked by action or eventfd, and a
 * masked MSI/MSI-X vector keeps its message pending. Stated here once, in
 * the info every face reports. A backend with its own set_irqs (vfio)
 * reports what the kernel said.
 */
static void note_virq_flags(struct session *s)
{
	struct backend_irq_info *irqs = s->info.irqs;

	if (!s->host || !s->host->virq_ready)
		return;
	if (irqs[BACKEND_IRQ_INTX].count)
		irqs[BACKEND_IRQ_INTX].flags |=
			BACKEND_IRQ_EVENTFD | BACKEND_IRQ_MASKABLE | BACKEND_IRQ_AUTOMASKED;
	if (irqs[BACKEND_IRQ_MSI].count)
		irqs[BACKEND_IRQ_MSI].flags |= BACKEND_IRQ_EVENTFD | BACKEND_IRQ_MASKABLE;
	if (irqs[BACKEND_IRQ_MSIX].count)
		irqs[BACKEND_IRQ_MSIX].flags |= BACKEND_IRQ_EVENTFD | BACKEND_IRQ_MASKABLE;
}

void session_init(struct session *s, int fd, const struct face *face, struct backend *backend,
		  struct remote_host *host, struct server_stats *stats)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->face = face;
	s->backend = backend;
	s->host = host;
	s->stats = stats;
	s->max_table_fds = SESSION_MAX_TABLE_FDS;
	backend->ops->get_info(backend, &s->info);
	note_virq_flags(s);
	session_mig_init(s);
}

static void out_drop_fds(struct session *s)
{
	for (size_t i = 0; i < s->out_nfds; i++)
		close(s->out_fds[i]); /* our own dups: closing them cannot block */
	s->out_nfds = 0;
}

void session_release(struct session *s)
{
	if (s->face && s->face->conn_release)
		s->face->conn_release(s);
	s->face_state = NULL;
	session_mem_release(s);
	ring_destroy(s->ring);
	s->ring = NULL;
	doorbell_set_free(s->doorbells);
	s->doorbells = NULL;
	out_drop_fds(s);
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_cap = 0;
}

void session_input_pending(struct session *s)
{
	if (s->wake)
		s->wake(s->owner);
}

int session_teardown(struct session *s, struct mpdev_error *err)
{
	int r = s->info.reset_supported ? s->backend->ops->reset(s->backend, err) : -ENOTTY;

	/* The device is quiet now: its interrupts, then the guest memory, can go. */
	if (s->backend->ops->release)
		s->backend->ops->release(s->backend);
	session_release(s);
	remote_host_release(s->host);
	return r;
}

bool session_output_blocked(const struct session *s)
{
	return s->out_len != 0;
}

/* One attempt: the bytes sent (a stream may take part), or a negative errno. */
static ssize_t out_send(struct session *s, const void *buf, size_t len, const int *fds, size_t nfds)
{
	int r;

	if (s->face->sock_type == SOCK_SEQPACKET) {
		r = transport_send(s->fd, buf, len, fds, nfds, 0);
		if (r == -ETIMEDOUT)
			r = -EAGAIN;
		return r < 0 ? r : (ssize_t)len;
	}
	{
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
		union {
			char buf[CMSG_SPACE(sizeof(int) * MPDEV_MAX_FDS_PER_MSG)];
			struct cmsghdr align;
		} u;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (nfds) {
			struct cmsghdr *c;

			mh.msg_control = u.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		return n;
	}
}

int session_output(struct session *s, const void *buf, size_t len, const int *fds, size_t nfds)
{
	ssize_t n;

	if (nfds > MPDEV_MAX_FDS_PER_MSG)
		return -EINVAL;
	/* The server reads nothing while output is kept, so a face never stacks a second. */
	if (s->out_len)
		return -ENOBUFS;
	n = out_send(s, buf, len, fds, nfds);
	if (n < 0 && n != -EAGAIN)
		return (int)n;
	if (n == (ssize_t)len)
		return 0;
	if (n < 0)
		n = 0;
	if (len - (size_t)n > s->out_cap) {
		uint8_t *nb = realloc(s->out, len - (size_t)n);

		if (!nb)
			return -ENOMEM;
		s->out = nb;
		s->out_cap = len - (size_t)n;
	}
	memcpy(s->out, (const uint8_t *)buf + n, len - (size_t)n);
	s->out_len = len - (size_t)n;
	/* Descriptors went with the first byte; only an untouched message keeps them. */
	for (size_t i = 0; n == 0 && i < nfds; i++) {
		int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (d < 0) {
			out_drop_fds(s);
			s->out_len = 0;
			return -errno;
		}
		s->out_fds[s->out_nfds++] = d;
	}
	return 0;
}

int session_flush(struct session *s)
{
	ssize_t n;

	if (!s->out_len)
		return 0;
	n = out_send(s, s->out, s->out_len, s->out_fds, s->out_nfds);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n < 0) {
		out_drop_fds(s);
		s->out_len = 0;
		return (int)n;
	}
	out_drop_fds(s);
	memmove(s->out, s->out + n, s->out_len - (size_t)n);
	s->out_len -= (size_t)n;
	return s->out_len ? -EAGAIN : 0;
}

static int send_envelope(struct session *s, Mpdev__Envelope *env, const int *fds, size_t nfds)
{
	static uint8_t buf[MPDEV_MAX_MSG_SIZE];
	size_t len = wire_pack(env, nfds, buf, sizeof(buf));

	if (!len)
		return -EMSGSIZE;
	return session_output(s, buf, len, fds, nfds);
}

static struct {
	size_t used;
	_Alignas(max_align_t) uint8_t mem[SESSION_REPLY_ARENA];
} arena;

void *session_reply_alloc(struct session_reply *rep, size_t size)
{
	size_t at = (arena.used + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
	void *p;

	if (at > sizeof(arena.mem) || size > sizeof(arena.mem) - at)
		return NULL;
	p = arena.mem + at;
	memset(p, 0, size);
	arena.used = at + size;
	return p;
}

/* An error reply, with rep's body where the handler asked for one (rep may be NULL). */
int session_send_status(struct session *s, uint64_t id, const struct mpdev_error *e,
			struct session_reply *rep)
{
	Mpdev__Envelope env;
	int r;

	s->stats->error_replies++;
	log_info_rl(COMP, "request %llu failed: %s (%s)", (unsigned long long)id, e->msg,
		    strerror(e->code));
	if (rep && rep->body_on_error) {
		rep->env.id = id;
		rep->env.kind = MPDEV__KIND__KIND_REPLY;
		rep->env.status = (uint32_t)e->code;
		rep->env.error = (char *)e->msg;
		r = send_envelope(s, &rep->env, NULL, 0);
	} else {
		wire_init_error(&env, id, e->code, e->msg);
		r = send_envelope(s, &env, NULL, 0);
	}
	if (r < 0)
		log_warn_rl(COMP, "cannot send error reply: %s", strerror(-r));
	return r;
}

static int handle_hello(struct session *s, struct wire_msg *m, struct session_reply *rep,
			struct mpdev_error *err)
{
	const Mpdev__Hello *h = m->env->hello;
	Mpdev__HelloReply *hr = session_reply_alloc(rep, sizeof(*hr));
	Mpdev__Limits *lim = session_reply_alloc(rep, sizeof(*lim));

	if (s->greeted)
		return mpdev_error_set(err, EPROTO, "handshake already done on this connection");
	if (h->version != MPDEV_PROTO_VERSION)
		return mpdev_error_set(err, EPROTONOSUPPORT,
				       "protocol version %u not supported: this remote speaks %u",
				       h->version, MPDEV_PROTO_VERSION);
	if (h->limits && h->limits->max_msg_size &&
	    h->limits->max_msg_size < SESSION_MIN_PEER_MSG_SIZE)
		return mpdev_error_set(
			err, EINVAL,
			"peer's max message size %u is below the %u bytes replies need",
			h->limits->max_msg_size, SESSION_MIN_PEER_MSG_SIZE);

	if (!hr || !lim)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	mpdev__hello_reply__init(hr);
	mpdev__limits__init(lim);
	s->greeted = true;
	s->features = h->features & SESSION_FEATURES;
	s->peer_max_fds = MPDEV_MAX_FDS_PER_MSG;
	if (h->limits && h->limits->max_fds_per_msg &&
	    h->limits->max_fds_per_msg < MPDEV_MAX_FDS_PER_MSG)
		s->peer_max_fds = h->limits->max_fds_per_msg;
	if (!session_dirty_supported(s))
		s->features &= ~(uint64_t)MPDEV__FEATURE__FEATURE_DIRTY_TRACKING;
	lim->max_msg_size = MPDEV_MAX_MSG_SIZE;
	lim->max_fds_per_msg = MPDEV_MAX_FDS_PER_MSG;
	lim->max_mem_regions = MPDEV_MAX_MEM_REGIONS;
	hr->version = MPDEV_PROTO_VERSION;
	hr->features = s->features;
	hr->limits = lim;
	hr->name = (char *)"mpdev-remote " MPDEV_VERSION_STRING;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_HELLO_REPLY;
	rep->env.hello_reply = hr;
	log_info(COMP, "handshake with '%s': features 0x%llx%s", h->name ? h->name : "",
		 (unsigned long long)s->features, h->resume ? ", resuming a session" : "");
	if (h->resume && s->backend->ops->resumed)
		s->backend->ops->resumed(s->backend);
	return 0;
}

static void fill_region(Mpdev__RegionInfo *ri, Mpdev__MmapArea *areas, Mpdev__MmapArea **area_ptrs,
			uint32_t index, const struct backend_region_info *bi)
{
	ri->index = index;
	ri->flags = bi->flags;
	ri->size = bi->size;
	ri->type = bi->type;
	ri->subtype = bi->subtype;
	ri->n_mmap_areas = bi->n_mmap;
	ri->mmap_areas = area_ptrs;
	for (uint32_t i = 0; i < bi->n_mmap; i++) {
		mpdev__mmap_area__init(&areas[i]);
		areas[i].offset = bi->mmap[i].offset;
		areas[i].size = bi->mmap[i].size;
		area_ptrs[i] = &areas[i];
	}
}

static int handle_device_info(struct session *s, struct wire_msg *m, struct session_reply *rep,
			      struct mpdev_error *err)
{
	const struct backend_device_info *di = &s->info;
	/* Static: the reply points into them until it is sent, before the next request. */
	static Mpdev__DeviceInfo info;
	static Mpdev__RegionInfo regions[BACKEND_NUM_REGIONS];
	static Mpdev__RegionInfo *region_ptrs[BACKEND_NUM_REGIONS];
	static Mpdev__MmapArea areas[BACKEND_NUM_REGIONS][BACKEND_MAX_MMAP_AREAS];
	static Mpdev__MmapArea *area_ptrs[BACKEND_NUM_REGIONS][BACKEND_MAX_MMAP_AREAS];
	static Mpdev__IrqInfo irqs[BACKEND_NUM_IRQS];
	static Mpdev__IrqInfo *irq_ptrs[BACKEND_NUM_IRQS];
	size_t nr = 0, ni = 0;

	mpdev__device_info__init(&info);
	info.name = (char *)di->name;
	info.vendor_id = di->vendor_id;
	info.device_id = di->device_id;
	info.subsystem_vendor_id = di->subsystem_vendor_id;
	info.subsystem_id = di->subsystem_id;
	info.class_code = di->class_code;
	info.revision = di->revision;
	info.reset_supported = di->reset_supported;
	info.migration_flags = s->mig_flags;
	/* Only regions and IRQs the device has are listed. */
	for (uint32_t i = 0; i < BACKEND_NUM_REGIONS; i++) {
		if (!di->regions[i].size)
			continue;
		mpdev__region_info__init(&regions[nr]);
		fill_region(&regions[nr], areas[nr], area_ptrs[nr], i, &di->regions[i]);
		region_ptrs[nr] = &regions[nr];
		nr++;
	}
	for (uint32_t i = 0; i < BACKEND_NUM_IRQS; i++) {
		if (!di->irqs[i].count)
			continue;
		mpdev__irq_info__init(&irqs[ni]);
		irqs[ni].index = i;
		irqs[ni].count = di->irqs[i].count;
		irqs[ni].flags = di->irqs[i].flags;
		irq_ptrs[ni] = &irqs[ni];
		ni++;
	}
	info.n_regions = nr;
	info.regions = region_ptrs;
	info.n_irqs = ni;
	info.irqs = irq_ptrs;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_DEVICE_INFO;
	rep->env.device_info = &info;
	return 0;
}

int session_check_access(uint32_t index, size_t size, struct mpdev_error *err)
{
	/* The native protocol reads what one CPU access reads; devops takes any length. */
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return mpdev_error_set(err, EINVAL,
				       "access width %zu: region accesses are 1, 2, 4 or 8 bytes",
				       size);
	if (index == BACKEND_REGION_CONFIG && size == 8)
		return mpdev_error_set(err, EINVAL,
				       "access width 8: config space accesses are 1, 2 or 4 bytes");
	return 0;
}

static int handle_region_read(struct session *s, struct wire_msg *m, struct session_reply *rep,
			      struct mpdev_error *err)
{
	static uint8_t buf[8];
	const Mpdev__RegionRead *rr = m->env->region_read;
	Mpdev__RegionReadReply *data = session_reply_alloc(rep, sizeof(*data));
	int r;

	r = session_check_access(rr->index, rr->size, err);
	if (r < 0)
		return r;
	r = devops_region_read(s, rr->index, rr->offset, buf, rr->size, err);
	if (r < 0)
		return r;
	mpdev__region_read_reply__init(data);
	data->data.data = buf;
	data->data.len = rr->size;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ_REPLY;
	rep->env.region_read_reply = data;
	return 0;
}

static int handle_region_write(struct session *s, struct wire_msg *m, struct session_reply *rep,
			       struct mpdev_error *err)
{
	const Mpdev__RegionWrite *rw = m->env->region_write;
	int r = session_check_access(rw->index, rw->data.len, err);

	if (r < 0)
		return r;
	return devops_region_write(s, rw->index, rw->offset, rw->data.data, rw->data.len, err);
}

static int handle_reset(struct session *s, struct wire_msg *m, struct session_reply *rep,
			struct mpdev_error *err)
{
	return devops_reset(s, err);
}

static int handle_ping(struct session *s, struct wire_msg *m, struct session_reply *rep,
		       struct mpdev_error *err)
{
	return 0;
}

/* What a request body needs before its handler runs. */
#define REQ_TAKES_FDS	 0x1u /* may carry descriptors (all others must carry none) */
#define REQ_POSTABLE	 0x2u /* may be sent posted (no reply) */
#define REQ_BEFORE_HELLO 0x4u

struct native_request {
	uint64_t feature; /* 0: always available */
	unsigned flags;
	session_handler_fn *handle;
};

#define ROW(body, feat, fl, fn) [MPDEV__ENVELOPE__BODY_##body] = { (feat), (fl), (fn) }
#define F(x)			MPDEV__FEATURE__FEATURE_##x

/* clang-format off: one request a row */
static const struct native_request requests[] = {
	ROW(HELLO, 0, 0, handle_hello),
	ROW(DEVICE_INFO_REQUEST, 0, 0, handle_device_info),
	ROW(REGION_READ, 0, 0, handle_region_read),
	ROW(REGION_WRITE, 0, REQ_POSTABLE, handle_region_write),
	ROW(RESET, 0, 0, handle_reset),
	ROW(PING, 0, 0, handle_ping),
	ROW(STATS_REQUEST, F(STATS), 0, handle_stats),
	ROW(MEM_TABLE_SET, F(MEMORY_TABLE), REQ_TAKES_FDS, handle_mem_table_set),
	ROW(MEM_REGION_ADD, F(MEMORY_TABLE), REQ_TAKES_FDS, handle_mem_region_add),
	ROW(MEM_REGION_REMOVE, F(MEMORY_TABLE), 0, handle_mem_region_remove),
	ROW(SET_INTX_IRQFD, F(INTX_IRQFD), REQ_TAKES_FDS, handle_set_intx_irqfd),
	ROW(SET_IRQS, F(SET_IRQS), REQ_TAKES_FDS, handle_set_irqs),
	ROW(IOMMU_INFO_REQUEST, F(IOMMU_INFO), 0, handle_iommu_info),
	ROW(MIG_GET_STATE, F(MIGRATION), 0, handle_mig_get_state),
	ROW(MIG_SET_STATE, F(MIGRATION), 0, handle_mig_set_state),
	ROW(MIG_DATA_READ, F(MIGRATION), 0, handle_mig_data_read),
	ROW(MIG_DATA, F(MIGRATION), 0, handle_mig_data),
	ROW(MIG_PRECOPY_INFO_REQUEST, F(MIGRATION), 0, handle_mig_precopy_info),
	ROW(DIRTY_START, F(DIRTY_TRACKING), 0, handle_dirty_start),
	ROW(DIRTY_STOP, F(DIRTY_TRACKING), 0, handle_dirty_stop),
	ROW(DIRTY_REPORT, F(DIRTY_TRACKING), 0, handle_dirty_report),
	ROW(GET_IO_EVENTFDS, F(IOEVENTFDS), 0, handle_get_io_eventfds),
	ROW(RING_SETUP, F(SHM_RING), REQ_TAKES_FDS, handle_ring_setup),
	ROW(RING_WAKE, F(SHM_RING), REQ_POSTABLE, handle_ring_wake),
};
/* clang-format on */

/* Bodies that are answers, never requests: a peer sending one is confused. */
static bool is_reply_body(Mpdev__Envelope__BodyCase c)
{
	switch (c) {
	case MPDEV__ENVELOPE__BODY_HELLO_REPLY:
	case MPDEV__ENVELOPE__BODY_DEVICE_INFO:
	case MPDEV__ENVELOPE__BODY_REGION_READ_REPLY:
	case MPDEV__ENVELOPE__BODY_IOMMU_INFO:
	case MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY:
	case MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO:
	case MPDEV__ENVELOPE__BODY_DIRTY_BITMAP:
	case MPDEV__ENVELOPE__BODY_STATS:
	case MPDEV__ENVELOPE__BODY_NOTIFY:
	case MPDEV__ENVELOPE__BODY_IO_EVENTFDS:
	case MPDEV__ENVELOPE__BODY_RING_SETUP_REPLY:
		return true;
	default:
		return false;
	}
}

/* The row for a request body, after every check the row implies; NULL with err set. */
static const struct native_request *check_request(const struct session *s, const struct wire_msg *m,
						  bool posted, struct mpdev_error *err)
{
	Mpdev__Envelope__BodyCase c = m->env->body_case;
	const char *name = wire_body_name(m->env);
	const struct native_request *row =
		(size_t)c < sizeof(requests) / sizeof(requests[0]) ? &requests[c] : NULL;

	if (c == MPDEV__ENVELOPE__BODY__NOT_SET)
		return mpdev_error_set(err, EOPNOTSUPP, "unknown or missing message body"), NULL;
	if (is_reply_body(c))
		return mpdev_error_set(err, EPROTO, "'%s' is a reply, not a request", name), NULL;
	if (!row || !row->handle)
		return mpdev_error_set(err, ENOTSUP, "'%s' is not implemented by this remote",
				       name),
		       NULL;
	if (!s->greeted && c != MPDEV__ENVELOPE__BODY_HELLO)
		return mpdev_error_set(err, EPROTO, "'%s' before the handshake: send hello first",
				       name),
		       NULL;
	if (posted && !(row->flags & REQ_POSTABLE))
		return mpdev_error_set(err, EINVAL,
				       "'%s' cannot be posted: only region writes and RingWake can",
				       name),
		       NULL;
	if (posted && !(s->features & F(POSTED_WRITES)))
		return mpdev_error_set(err, ENOTSUP,
				       "posted writes need feature 0x%x, which was not negotiated",
				       F(POSTED_WRITES)),
		       NULL;
	if (m->nfds && !(row->flags & REQ_TAKES_FDS))
		return mpdev_error_set(err, EINVAL, "'%s' carries no descriptors, got %zu", name,
				       m->nfds),
		       NULL;
	if (row->feature && !(s->features & row->feature))
		return mpdev_error_set(err, ENOTSUP,
				       "'%s' needs feature 0x%llx, which was not negotiated", name,
				       (unsigned long long)row->feature),
		       NULL;
	return row;
}

int session_handle(struct session *s, struct wire_msg *m)
{
	struct mpdev_error err = { 0 };
	const Mpdev__Envelope *env = m->env;
	bool posted = env->kind == MPDEV__KIND__KIND_POSTED;
	const struct native_request *row;
	struct session_reply rep = { .env = MPDEV__ENVELOPE__INIT };
	int r;

	s->stats->messages++;
	log_debug(COMP, "request %llu: %s (%zu fds)", (unsigned long long)env->id,
		  wire_body_name(env), m->nfds);
	if (env->kind != MPDEV__KIND__KIND_REQUEST && !posted)
		mpdev_error_set(&err, EPROTO, "message kind %u is not a request", env->kind);
	else if (env->id == 0)
		mpdev_error_set(&err, EPROTO, "request id 0 is reserved for notifications");
	if (err.code)
		return session_send_status(s, env->id, &err, NULL);
	row = check_request(s, m, posted, &err);
	arena.used = 0;
	if (row && row->handle(s, m, &rep, &err) == 0) {
		if (posted) {
			s->stats->posted_writes++;
			return 0;
		}
		rep.env.id = env->id;
		rep.env.kind = MPDEV__KIND__KIND_REPLY;
		r = send_envelope(s, &rep.env, rep.fds, rep.nfds);
		if (r < 0)
			log_warn_rl(COMP, "cannot send reply to request %llu: %s",
				    (unsigned long long)env->id, strerror(-r));
		return r;
	}
	if (!err.code) /* a handler must say why; never answer "success" for a failure */
		mpdev_error_set(&err, EIO, "request failed without a reason");
	return session_send_status(s, env->id, &err, row ? &rep : NULL);
}

int session_handle_bad_packet(struct session *s, struct wire_msg *m, const struct mpdev_error *e)
{
	Mpdev__Envelope env;
	Mpdev__Notify n;

	s->stats->protocol_errors++;
	log_info_rl(COMP, "bad packet: %s", e->msg);
	/* Answer the request when its id is known; otherwise tell the peer it was lost. */
	if (m->env)
		return session_send_status(s, m->env->id, e, NULL);
	if (m->raw && m->raw_len >= 16) {
		struct fixed_access a;
		struct mpdev_error ignored = { 0 };

		fixed_access_unpack_req(m->raw, m->raw_len, &a, &ignored);
		if (a.id)
			return session_send_status(s, a.id, e, NULL);
	}
	wire_init_notify(&env, &n, MPDEV__NOTIFY_TYPE__NOTIFY_PROTOCOL_ERROR, e->code, e->msg);
	return send_envelope(s, &env, NULL, 0);
}
