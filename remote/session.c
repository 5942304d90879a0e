#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "closer.h"
#include "efdio.h"
#include "log.h"
#include "session_handlers.h"
#include "transport.h"

#define COMP "remote"

/* Below this a peer could not even receive a device info reply. */
#define SESSION_MIN_PEER_MSG_SIZE 4096u

void session_init(struct session *s, int fd, struct backend *backend, struct remote_host *host,
		  struct server_stats *stats)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->backend = backend;
	s->host = host;
	s->stats = stats;
	s->max_table_fds = SESSION_MAX_TABLE_FDS;
	backend->ops->get_info(backend, &s->info);
	session_mig_init(s);
}

bool session_output_blocked(const struct session *s)
{
	return s->out_len != 0;
}

int session_flush(struct session *s)
{
	int r;

	if (!s->out_len)
		return 0;
	r = transport_send(s->fd, s->out, s->out_len, NULL, 0, 0);
	if (r == -ETIMEDOUT || r == -EAGAIN)
		return -EAGAIN;
	s->out_len = 0;
	return r;
}

/* Sends env now if the socket has room, else keeps it; never waits. */
static int session_send(struct session *s, Mpdev__Envelope *env)
{
	static uint8_t buf[MPDEV_MAX_MSG_SIZE];
	size_t len = wire_pack(env, 0, buf, sizeof(buf));
	int r;

	if (!len)
		return -EMSGSIZE;
	/* The server reads nothing while a reply is kept, so there is never a second. */
	if (s->out_len)
		return -ENOBUFS;
	r = transport_send(s->fd, buf, len, NULL, 0, 0);
	if (r != -ETIMEDOUT && r != -EAGAIN)
		return r;
	if (!s->out) {
		s->out = malloc(MPDEV_MAX_MSG_SIZE);
		if (!s->out)
			return -ENOMEM;
	}
	memcpy(s->out, buf, len);
	s->out_len = len;
	return 0;
}

int session_send_reply(struct session *s, uint64_t id, Mpdev__Envelope *rep)
{
	int r;

	rep->id = id;
	rep->kind = MPDEV__KIND__KIND_REPLY;
	r = session_send(s, rep);
	if (r < 0)
		log_warn_rl(COMP, "cannot send reply to request %llu: %s", (unsigned long long)id,
			    strerror(-r));
	return r;
}

/* An error reply that also carries a body (a failed MigSetState says where the device is). */
int session_send_error_reply(struct session *s, uint64_t id, const struct mpdev_error *e,
			     Mpdev__Envelope *rep)
{
	s->stats->error_replies++;
	rep->status = (uint32_t)e->code;
	rep->error = (char *)e->msg;
	return session_send_reply(s, id, rep);
}

static int send_status(struct session *s, uint64_t id, const struct mpdev_error *e)
{
	Mpdev__Envelope env;
	int r;

	s->stats->error_replies++;
	log_info_rl(COMP, "request %llu failed: %s (%s)", (unsigned long long)id, e->msg,
		    strerror(e->code));
	wire_init_error(&env, id, e->code, e->msg);
	r = session_send(s, &env);
	if (r < 0)
		log_warn_rl(COMP, "cannot send error reply: %s", strerror(-r));
	return r;
}

int session_send_ok(struct session *s, uint64_t id)
{
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;

	return session_send_reply(s, id, &rep);
}

static int handle_hello(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	const Mpdev__Hello *h = req->hello;
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__HelloReply hr = MPDEV__HELLO_REPLY__INIT;
	Mpdev__Limits lim = MPDEV__LIMITS__INIT;

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

	s->greeted = true;
	s->features = h->features & SESSION_FEATURES;
	if (!session_dirty_supported(s))
		s->features &= ~(uint64_t)MPDEV__FEATURE__FEATURE_DIRTY_TRACKING;
	lim.max_msg_size = MPDEV_MAX_MSG_SIZE;
	lim.max_fds_per_msg = MPDEV_MAX_FDS_PER_MSG;
	lim.max_mem_regions = MPDEV_MAX_MEM_REGIONS;
	hr.version = MPDEV_PROTO_VERSION;
	hr.features = s->features;
	hr.limits = &lim;
	hr.name = (char *)"mpdev-remote " MPDEV_VERSION_STRING;
	rep.body_case = MPDEV__ENVELOPE__BODY_HELLO_REPLY;
	rep.hello_reply = &hr;
	log_info(COMP, "handshake with '%s': features 0x%llx%s", h->name ? h->name : "",
		 (unsigned long long)s->features, h->resume ? ", resuming a session" : "");
	if (h->resume && s->backend->ops->resumed)
		s->backend->ops->resumed(s->backend);
	return session_send_reply(s, req->id, &rep);
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

static int handle_device_info(struct session *s, const Mpdev__Envelope *req)
{
	const struct backend_device_info *di = &s->info;
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__DeviceInfo info = MPDEV__DEVICE_INFO__INIT;
	Mpdev__RegionInfo regions[BACKEND_NUM_REGIONS];
	Mpdev__RegionInfo *region_ptrs[BACKEND_NUM_REGIONS];
	Mpdev__MmapArea areas[BACKEND_NUM_REGIONS][BACKEND_MAX_MMAP_AREAS];
	Mpdev__MmapArea *area_ptrs[BACKEND_NUM_REGIONS][BACKEND_MAX_MMAP_AREAS];
	Mpdev__IrqInfo irqs[BACKEND_NUM_IRQS];
	Mpdev__IrqInfo *irq_ptrs[BACKEND_NUM_IRQS];
	size_t nr = 0, ni = 0;

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
	rep.body_case = MPDEV__ENVELOPE__BODY_DEVICE_INFO;
	rep.device_info = &info;
	return session_send_reply(s, req->id, &rep);
}

static bool valid_width(uint64_t size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

static int check_access(const struct session *s, uint32_t index, uint64_t offset, uint64_t size,
			bool write, struct mpdev_error *err)
{
	const struct backend_region_info *r;

	if (index >= BACKEND_NUM_REGIONS || !s->info.regions[index].size)
		return mpdev_error_set(err, EINVAL, "region %u does not exist on this device",
				       index);
	r = &s->info.regions[index];
	if (!valid_width(size))
		return mpdev_error_set(err, EINVAL,
				       "access width %llu: region accesses are 1, 2, 4 or 8 bytes",
				       (unsigned long long)size);
	/* PCI config cycles are at most a dword; say so before any range check. */
	if (index == BACKEND_REGION_CONFIG && size == 8)
		return mpdev_error_set(err, EINVAL,
				       "access width 8: config space accesses are 1, 2 or 4 bytes");
	if (offset > r->size || size > r->size - offset)
		return mpdev_error_set(
			err, ERANGE,
			"%llu bytes at offset 0x%llx are outside region %u (size 0x%llx)",
			(unsigned long long)size, (unsigned long long)offset, index,
			(unsigned long long)r->size);
	if (!(r->flags & (write ? BACKEND_REGION_WRITE : BACKEND_REGION_READ)))
		return mpdev_error_set(err, EACCES, "region %u is not %s", index,
				       write ? "writable" : "readable");
	return 0;
}

static int handle_region_read(struct session *s, const Mpdev__Envelope *req,
			      struct mpdev_error *err)
{
	const Mpdev__RegionRead *rr = req->region_read;
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionReadReply data = MPDEV__REGION_READ_REPLY__INIT;
	uint8_t buf[8];
	int r;

	r = check_access(s, rr->index, rr->offset, rr->size, false, err);
	if (r < 0)
		return r;
	r = s->backend->ops->region_read(s->backend, rr->index, rr->offset, buf, rr->size, err);
	if (r < 0)
		return r;
	s->stats->region_reads++;
	data.data.data = buf;
	data.data.len = rr->size;
	rep.body_case = MPDEV__ENVELOPE__BODY_REGION_READ_REPLY;
	rep.region_read_reply = &data;
	return session_send_reply(s, req->id, &rep);
}

static int handle_region_write(struct session *s, const Mpdev__Envelope *req, bool posted,
			       struct mpdev_error *err)
{
	const Mpdev__RegionWrite *rw = req->region_write;
	int r;

	r = check_access(s, rw->index, rw->offset, rw->data.len, true, err);
	if (r < 0)
		return r;
	r = s->backend->ops->region_write(s->backend, rw->index, rw->offset, rw->data.data,
					  (uint32_t)rw->data.len, err);
	if (r < 0)
		return r;
	s->stats->region_writes++;
	if (posted) {
		s->stats->posted_writes++;
		return 0;
	}
	return session_send_ok(s, req->id);
}

static int handle_reset(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	int r;

	if (!s->info.reset_supported)
		return mpdev_error_set(err, ENOTTY, "device '%s' does not support reset",
				       s->info.name);
	r = s->backend->ops->reset(s->backend, err);
	if (r < 0)
		return r;
	/* The way out of ERROR, and back to RUNNING from anywhere, as VFIO_DEVICE_RESET. */
	s->mig_state = BACKEND_MIG_RUNNING;
	s->stats->resets++;
	return session_send_ok(s, req->id);
}

static int handle_stats(struct session *s, const Mpdev__Envelope *req)
{
	const struct server_stats *st = s->stats;
	const struct dma_stats *dma = &s->host->dma.stats;
	const struct iohub_stats *hub = iohub_get_stats(s->host->hub);
	const struct virq_stats *irq = &s->host->virq.stats;
	const struct efdio_stats *efd = efdio_get_stats();
	/* clang-format off: one counter a line, in the order docs/protocol.md lists them */
	const struct {
		const char *name;
		uint64_t value;
	} src[] = {
		{ "connections", st->connections },
		{ "refused_peers", st->refused_peers },
		{ "busy_refusals", st->busy_refusals },
		{ "messages", st->messages },
		{ "error_replies", st->error_replies },
		{ "protocol_errors", st->protocol_errors },
		{ "region_reads", st->region_reads },
		{ "region_writes", st->region_writes },
		{ "posted_writes", st->posted_writes },
		{ "resets", st->resets },
		{ "handshake_timeouts", st->handshake_timeouts },
		{ "accept_errors", st->accept_errors },
		{ "input_pauses", st->input_pauses },
		{ "mig_transitions", st->mig_transitions },
		{ "mig_bytes_saved", st->mig_bytes_saved },
		{ "mig_bytes_loaded", st->mig_bytes_loaded },
		{ "closes_pending", closer_backlog() },
		{ "mem_regions", s->host->dma.map.n },
		{ "dma_mmaps", dma->mmaps },
		{ "dma_munmaps", dma->munmaps },
		{ "dma_backend_maps", dma->backend_maps },
		{ "dma_backend_unmaps", dma->backend_unmaps },
		{ "dma_reads", dma->reads },
		{ "dma_writes", dma->writes },
		{ "dma_bytes_read", dma->bytes_read },
		{ "dma_bytes_written", dma->bytes_written },
		{ "dma_faults", dma->faults },
		{ "intx_changes", hub->source_changes },
		{ "iohub_irqfd_signals", hub->irqfd_signals },
		{ "iohub_resamples", hub->resamples },
		{ "iohub_reasserts", hub->reasserts },
		{ "iohub_lost_asserts", hub->lost_asserts },
		{ "vfio_intx_signals", irq->vfio_intx_signals },
		{ "vector_signals", irq->vector_signals },
		{ "vector_pending", irq->vector_pending },
		{ "vector_dropped", irq->vector_dropped },
		{ "eventfd_signals", efd->signals },
		{ "eventfd_signals_coalesced", efd->coalesced },
		{ "eventfd_signal_failures", efd->failures },
		{ "dirty_pages_marked", s->host->dma.dirty.stats.pages_marked },
		{ "dirty_reports", s->host->dma.dirty.stats.reports },
	};
	/* clang-format on */
	enum { N = sizeof(src) / sizeof(src[0]) };
	Mpdev__Counter counters[N];
	Mpdev__Counter *ptrs[N];
	Mpdev__Stats stats = MPDEV__STATS__INIT;
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;

	for (size_t i = 0; i < N; i++) {
		mpdev__counter__init(&counters[i]);
		counters[i].name = (char *)src[i].name;
		counters[i].value = src[i].value;
		ptrs[i] = &counters[i];
	}
	stats.n_counters = N;
	stats.counters = ptrs;
	rep.body_case = MPDEV__ENVELOPE__BODY_STATS;
	rep.stats = &stats;
	return session_send_reply(s, req->id, &rep);
}

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
		return true;
	default:
		return false;
	}
}

/* The feature a request needs; 0 if it is always available. */
static uint64_t required_feature(Mpdev__Envelope__BodyCase c)
{
	switch (c) {
	case MPDEV__ENVELOPE__BODY_MEM_TABLE_SET:
	case MPDEV__ENVELOPE__BODY_MEM_REGION_ADD:
	case MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE:
		return MPDEV__FEATURE__FEATURE_MEMORY_TABLE;
	case MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD:
		return MPDEV__FEATURE__FEATURE_INTX_IRQFD;
	case MPDEV__ENVELOPE__BODY_SET_IRQS:
		return MPDEV__FEATURE__FEATURE_SET_IRQS;
	case MPDEV__ENVELOPE__BODY_IOMMU_INFO_REQUEST:
		return MPDEV__FEATURE__FEATURE_IOMMU_INFO;
	case MPDEV__ENVELOPE__BODY_MIG_SET_STATE:
	case MPDEV__ENVELOPE__BODY_MIG_DATA_READ:
	case MPDEV__ENVELOPE__BODY_MIG_DATA:
	case MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO_REQUEST:
	case MPDEV__ENVELOPE__BODY_MIG_GET_STATE:
		return MPDEV__FEATURE__FEATURE_MIGRATION;
	case MPDEV__ENVELOPE__BODY_DIRTY_START:
	case MPDEV__ENVELOPE__BODY_DIRTY_STOP:
	case MPDEV__ENVELOPE__BODY_DIRTY_REPORT:
		return MPDEV__FEATURE__FEATURE_DIRTY_TRACKING;
	case MPDEV__ENVELOPE__BODY_STATS_REQUEST:
		return MPDEV__FEATURE__FEATURE_STATS;
	default:
		return 0;
	}
}

/* Bodies that may carry descriptors; every other body must carry none. */
static bool takes_fds(Mpdev__Envelope__BodyCase c)
{
	return c == MPDEV__ENVELOPE__BODY_MEM_TABLE_SET ||
	       c == MPDEV__ENVELOPE__BODY_MEM_REGION_ADD ||
	       c == MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD || c == MPDEV__ENVELOPE__BODY_SET_IRQS;
}

static int dispatch(struct session *s, struct wire_msg *m, bool posted, struct mpdev_error *err)
{
	const Mpdev__Envelope *env = m->env;
	Mpdev__Envelope__BodyCase c = env->body_case;
	const char *name = wire_body_name(env);
	uint64_t feature;

	if (c == MPDEV__ENVELOPE__BODY__NOT_SET)
		return mpdev_error_set(err, EOPNOTSUPP, "unknown or missing message body");
	if (is_reply_body(c))
		return mpdev_error_set(err, EPROTO, "'%s' is a reply, not a request", name);
	if (!s->greeted && c != MPDEV__ENVELOPE__BODY_HELLO)
		return mpdev_error_set(err, EPROTO, "'%s' before the handshake: send hello first",
				       name);
	if (posted && c != MPDEV__ENVELOPE__BODY_REGION_WRITE)
		return mpdev_error_set(err, EINVAL, "'%s' cannot be posted: only region writes can",
				       name);
	if (posted && !(s->features & MPDEV__FEATURE__FEATURE_POSTED_WRITES))
		return mpdev_error_set(err, ENOTSUP,
				       "posted writes need feature 0x%x, which was not negotiated",
				       MPDEV__FEATURE__FEATURE_POSTED_WRITES);
	if (m->nfds && !takes_fds(c))
		return mpdev_error_set(err, EINVAL, "'%s' carries no descriptors, got %zu", name,
				       m->nfds);
	feature = required_feature(c);
	if (feature && !(s->features & feature))
		return mpdev_error_set(err, ENOTSUP,
				       "'%s' needs feature 0x%llx, which was not negotiated", name,
				       (unsigned long long)feature);

	switch (c) {
	case MPDEV__ENVELOPE__BODY_HELLO:
		return handle_hello(s, env, err);
	case MPDEV__ENVELOPE__BODY_DEVICE_INFO_REQUEST:
		return handle_device_info(s, env);
	case MPDEV__ENVELOPE__BODY_REGION_READ:
		return handle_region_read(s, env, err);
	case MPDEV__ENVELOPE__BODY_REGION_WRITE:
		return handle_region_write(s, env, posted, err);
	case MPDEV__ENVELOPE__BODY_RESET:
		return handle_reset(s, env, err);
	case MPDEV__ENVELOPE__BODY_PING:
		return session_send_ok(s, env->id);
	case MPDEV__ENVELOPE__BODY_STATS_REQUEST:
		return handle_stats(s, env);
	case MPDEV__ENVELOPE__BODY_MEM_TABLE_SET:
		return handle_mem_table_set(s, m, err);
	case MPDEV__ENVELOPE__BODY_MEM_REGION_ADD:
		return handle_mem_region_add(s, m, err);
	case MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE:
		return handle_mem_region_remove(s, m, err);
	case MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD:
		return handle_set_intx_irqfd(s, m, err);
	case MPDEV__ENVELOPE__BODY_SET_IRQS:
		return handle_set_irqs(s, m, err);
	case MPDEV__ENVELOPE__BODY_IOMMU_INFO_REQUEST:
		return handle_iommu_info(s, m->env, err);
	case MPDEV__ENVELOPE__BODY_MIG_GET_STATE:
		return handle_mig_get_state(s, env, err);
	case MPDEV__ENVELOPE__BODY_MIG_SET_STATE:
		return handle_mig_set_state(s, env, err);
	case MPDEV__ENVELOPE__BODY_MIG_DATA_READ:
		return handle_mig_data_read(s, env, err);
	case MPDEV__ENVELOPE__BODY_MIG_DATA:
		return handle_mig_data(s, env, err);
	case MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO_REQUEST:
		return handle_mig_precopy_info(s, env, err);
	case MPDEV__ENVELOPE__BODY_DIRTY_START:
		return handle_dirty_start(s, env, err);
	case MPDEV__ENVELOPE__BODY_DIRTY_STOP:
		return handle_dirty_stop(s, env, err);
	case MPDEV__ENVELOPE__BODY_DIRTY_REPORT:
		return handle_dirty_report(s, env, err);
	default:
		/* Unreachable while SESSION_FEATURES gates every other body. */
		return mpdev_error_set(err, ENOTSUP, "'%s' is not implemented by this remote",
				       name);
	}
}

int session_handle(struct session *s, struct wire_msg *m)
{
	struct mpdev_error err = { 0 };
	const Mpdev__Envelope *env = m->env;
	bool posted = env->kind == MPDEV__KIND__KIND_POSTED;
	int r;

	s->stats->messages++;
	log_debug(COMP, "request %llu: %s (%zu fds)", (unsigned long long)env->id,
		  wire_body_name(env), m->nfds);
	if (env->kind != MPDEV__KIND__KIND_REQUEST && !posted) {
		mpdev_error_set(&err, EPROTO, "message kind %u is not a request", env->kind);
		return send_status(s, env->id, &err);
	}
	if (env->id == 0) {
		mpdev_error_set(&err, EPROTO, "request id 0 is reserved for notifications");
		return send_status(s, env->id, &err);
	}
	r = dispatch(s, m, posted, &err);
	if (r < 0 && err.code) /* a handler failure, not a failed send */
		return send_status(s, env->id, &err);
	return r;
}

int session_handle_bad_packet(struct session *s, struct wire_msg *m, const struct mpdev_error *e)
{
	Mpdev__Envelope env;
	Mpdev__Notify n;
	int r;

	s->stats->protocol_errors++;
	log_info_rl(COMP, "bad packet: %s", e->msg);
	/* Answer the request when its id is known; otherwise tell the peer it was lost. */
	if (m->env)
		return send_status(s, m->env->id, e);
	wire_init_notify(&env, &n, MPDEV__NOTIFY_TYPE__NOTIFY_PROTOCOL_ERROR, e->code, e->msg);
	r = session_send(s, &env);
	return r;
}
