#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixed_access.h"
#include "transport.h"

size_t wire_pack(Mpdev__Envelope *env, size_t nfds, uint8_t *buf, size_t cap)
{
	size_t len;

	env->nfds = (uint32_t)nfds;
	len = mpdev__envelope__get_packed_size(env);
	if (len > MPDEV_MAX_MSG_SIZE || len > cap)
		return 0;
	return mpdev__envelope__pack(env, buf);
}

int wire_send_timed(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms)
{
	uint8_t stackbuf[512];
	uint8_t *buf = stackbuf;
	size_t len;
	int r;

	if (nfds > MPDEV_MAX_FDS_PER_MSG)
		return -EINVAL;
	env->nfds = (uint32_t)nfds;
	len = mpdev__envelope__get_packed_size(env);
	if (len > MPDEV_MAX_MSG_SIZE)
		return -EMSGSIZE;
	if (len > sizeof(stackbuf)) {
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	mpdev__envelope__pack(env, buf);
	r = transport_send(sock, buf, len, fds, nfds, timeout_ms);
	if (buf != stackbuf)
		free(buf);
	return r;
}

int wire_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds)
{
	return wire_send_timed(sock, env, fds, nfds, MPDEV_SEND_TIMEOUT_MS);
}

static void *arena_alloc(void *opaque, size_t size)
{
	struct wire_msg *m = opaque;
	size_t need = (size + 15) & ~(size_t)15;

	if (need >= size && need <= WIRE_ARENA_SIZE - m->arena_used) {
		void *p = m->arena + m->arena_used;

		m->arena_used += need;
		return p;
	}
	return malloc(size);
}

static void arena_free(void *opaque, void *p)
{
	struct wire_msg *m = opaque;

	if ((uint8_t *)p < m->arena || (uint8_t *)p >= m->arena + WIRE_ARENA_SIZE)
		free(p);
}

static ProtobufCAllocator *msg_allocator(struct wire_msg *m)
{
	/* Lives in the message so that messages never share an arena. */
	static __thread ProtobufCAllocator a;

	a.alloc = arena_alloc;
	a.free = arena_free;
	a.allocator_data = m;
	return &a;
}

void wire_msg_init(struct wire_msg *m)
{
	m->env = NULL;
	m->nfds = 0;
	m->arena_used = 0;
	m->raw = NULL;
	m->raw_len = 0;
	for (size_t i = 0; i < MPDEV_MAX_FDS_PER_MSG; i++)
		m->fds[i] = -1;
}

int wire_decode(struct wire_msg *m, const uint8_t *buf, size_t len, struct mpdev_error *err)
{
	m->env = mpdev__envelope__unpack(msg_allocator(m), len, buf);
	if (!m->env) {
		transport_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		return mpdev_error_set(err, EBADMSG, "undecodable packet of %zu bytes", len);
	}
	if (m->env->nfds != m->nfds) {
		uint32_t declared = m->env->nfds;
		size_t carried = m->nfds;

		transport_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		return mpdev_error_set(err, EPROTO,
				       "message declares %u descriptors but carries %zu", declared,
				       carried);
	}
	return 1;
}

/* One buffer per thread: the remote is single-threaded, clients may not be. */
static __thread uint8_t recv_buf[MPDEV_MAX_MSG_SIZE];

static int recv_packet(int sock, struct wire_msg *m, struct mpdev_error *err, int flags)
{
	ssize_t n;

	wire_msg_init(m);
	n = transport_recv(sock, recv_buf, sizeof(recv_buf), m->fds, MPDEV_MAX_FDS_PER_MSG,
			   &m->nfds, flags);
	switch (n) {
	case 0:
		return 0;
	case -EMSGSIZE:
		return mpdev_error_set(err, EMSGSIZE, "packet larger than the %u-byte limit",
				       MPDEV_MAX_MSG_SIZE);
	case -EPROTO:
		return mpdev_error_set(
			err, EPROTO,
			"packet carried more than %u descriptors or a foreign control message",
			MPDEV_MAX_FDS_PER_MSG);
	case -EBADMSG:
		return mpdev_error_set(err, EBADMSG, "empty packet");
	case -EAGAIN:
		return -EAGAIN;
	default:
		break;
	}
	if (n < 0)
		return mpdev_error_set(err, (int)-n, "recvmsg: %s", strerror((int)-n));
	m->raw = recv_buf;
	m->raw_len = (size_t)n;
	return 1;
}

int wire_recv(int sock, struct wire_msg *m, struct mpdev_error *err, int flags)
{
	int r = recv_packet(sock, m, err, flags);

	if (r <= 0)
		return r;
	r = wire_decode(m, m->raw, m->raw_len, err);
	m->raw = NULL;
	m->raw_len = 0;
	return r;
}

int wire_decode_any(struct wire_msg *m, const uint8_t *buf, size_t len, struct mpdev_error *err)
{
	if (!fixed_access_is(buf, len))
		return wire_decode(m, buf, len, err);
	m->raw = buf;
	m->raw_len = len;
	if (m->nfds) {
		size_t carried = m->nfds;

		transport_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		return mpdev_error_set(
			err, EPROTO, "fixed-layout packet carries %zu descriptors: it carries none",
			carried);
	}
	return 2;
}

int wire_recv_any(int sock, struct wire_msg *m, struct mpdev_error *err, int flags)
{
	int r = recv_packet(sock, m, err, flags);
	const uint8_t *buf = m->raw;
	size_t len = m->raw_len;

	if (r <= 0)
		return r;
	m->raw = NULL;
	m->raw_len = 0;
	return wire_decode_any(m, buf, len, err);
}

int wire_take_fd(struct wire_msg *m, size_t i)
{
	int fd;

	if (i >= m->nfds || m->fds[i] < 0)
		return -EBADF;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

void wire_msg_release(struct wire_msg *m)
{
	transport_close_fds(m->fds, m->nfds);
	m->nfds = 0;
	if (m->env)
		mpdev__envelope__free_unpacked(m->env, msg_allocator(m));
	m->env = NULL;
	m->arena_used = 0;
}

void wire_init_error(Mpdev__Envelope *env, uint64_t id, int status, const char *message)
{
	mpdev__envelope__init(env);
	env->id = id;
	env->kind = MPDEV__KIND__KIND_REPLY;
	env->status = (uint32_t)(status < 0 ? -status : status);
	env->error = (char *)(message ? message : "");
}

void wire_init_notify(Mpdev__Envelope *env, Mpdev__Notify *n, Mpdev__NotifyType type, int status,
		      const char *message)
{
	mpdev__envelope__init(env);
	mpdev__notify__init(n);
	n->type = type;
	n->status = (uint32_t)(status < 0 ? -status : status);
	n->message = (char *)(message ? message : "");
	env->kind = MPDEV__KIND__KIND_NOTIFY;
	env->body_case = MPDEV__ENVELOPE__BODY_NOTIFY;
	env->notify = n;
}

int wire_send_error(int sock, uint64_t id, int status, const char *message)
{
	Mpdev__Envelope env;

	wire_init_error(&env, id, status, message);
	return wire_send(sock, &env, NULL, 0);
}

int wire_send_notify(int sock, Mpdev__NotifyType type, int status, const char *message)
{
	Mpdev__Envelope env;
	Mpdev__Notify n;

	wire_init_notify(&env, &n, type, status, message);
	return wire_send_timed(sock, &env, NULL, 0, 0);
}

const char *wire_body_name(const Mpdev__Envelope *env)
{
	const ProtobufCFieldDescriptor *f;

	if (!env || env->body_case == MPDEV__ENVELOPE__BODY__NOT_SET)
		return "none";
	f = protobuf_c_message_descriptor_get_field(&mpdev__envelope__descriptor,
						    (unsigned)env->body_case);
	return f ? f->name : "unknown";
}
