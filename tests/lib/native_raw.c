#include "native_raw.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fixed_access.h"
#include "transport.h"

void native_send_bytes(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	ck_assert_int_eq(transport_send(sock, buf, len, fds, nfds, 1000), 0);
}

void native_send_env(int sock, Mpdev__Envelope *env, uint32_t declared, const int *fds, size_t nfds)
{
	/* Room for one byte past the limit, so that oversize envelopes can be sent too. */
	static uint8_t buf[MPDEV_MAX_MSG_SIZE + 1];
	size_t len;

	env->nfds = declared;
	len = mpdev__envelope__get_packed_size(env);
	ck_assert_uint_le(len, sizeof(buf));
	mpdev__envelope__pack(env, buf);
	native_send_bytes(sock, buf, len, fds, nfds);
}

void native_request(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds)
{
	env->id = id;
	env->kind = MPDEV__KIND__KIND_REQUEST;
	native_send_env(sock, env, (uint32_t)nfds, fds, nfds);
}

void native_recv_fixed(int sock, struct fixed_access *a)
{
	struct mpdev_error err = { 0 };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	struct wire_msg m;
	int r;

	do
		r = poll(&p, 1, NATIVE_RAW_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	ck_assert_msg(r == 1, "remote did not answer within %d ms", NATIVE_RAW_TIMEOUT_MS);
	r = wire_recv_any(sock, &m, &err, 0);
	if (r == 1)
		ck_abort_msg("expected a fixed-layout reply, got an Envelope ('%s', status %u: %s)",
			     wire_body_name(m.env), m.env->status, m.env->error);
	ck_assert_msg(r == 2, "bad packet from remote (%d): %s", r, r ? err.msg : "end of connection");
	r = fixed_access_unpack_reply(m.raw, m.raw_len, a, &err);
	wire_msg_release(&m);
	ck_assert_msg(r == 0, "bad fixed-layout reply: %s", err.msg);
}

void native_recv(int sock, struct wire_msg *m)
{
	struct mpdev_error err = { 0 };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, NATIVE_RAW_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	ck_assert_msg(r == 1, "remote did not answer within %d ms", NATIVE_RAW_TIMEOUT_MS);
	r = wire_recv(sock, m, &err, 0);
	if (r != 1)
		wire_msg_release(m);
	ck_assert_msg(r == 1, "bad packet from remote (%d): %s", r,
		      r ? err.msg : "end of connection");
}

int native_try_recv(int sock, struct wire_msg *m, int timeout_ms)
{
	struct mpdev_error err = { 0 };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	wire_msg_init(m);
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	r = wire_recv(sock, m, &err, MSG_DONTWAIT);
	return r == 0 ? -EPIPE : r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int native_try_call(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		    int timeout_ms, char *words, size_t len)
{
	int64_t deadline = now_ms() + timeout_ms;

	native_request(sock, env, id, fds, nfds);
	for (;;) {
		struct wire_msg m;
		int left = (int)(deadline - now_ms()), r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = native_try_recv(sock, &m, left);
		if (r <= 0) {
			wire_msg_release(&m);
			return r == 0 ? -ETIMEDOUT : r;
		}
		if (m.env->kind == MPDEV__KIND__KIND_REPLY && m.env->id == id) {
			r = (int)m.env->status;
			if (words)
				snprintf(words, len, "%s", m.env->error ? m.env->error : "");
			wire_msg_release(&m);
			return r;
		}
		wire_msg_release(&m); /* a notification, or the error of a posted write */
	}
}

/* The reply to id with status; returned for the caller to look at and release. */
static void recv_reply(int sock, uint64_t id, int status, const char *words, struct wire_msg *m)
{
	const char *e;

	native_recv(sock, m);
	ck_assert_msg(m->env->kind == MPDEV__KIND__KIND_REPLY, "request %llu: kind %u, not a reply",
		      (unsigned long long)id, m->env->kind);
	ck_assert_msg(m->env->id == id, "a reply to %llu, wanted %llu",
		      (unsigned long long)m->env->id, (unsigned long long)id);
	e = m->env->error ? m->env->error : "";
	ck_assert_msg(m->env->status == (uint32_t)status,
		      "request %llu: status %u (%s), wanted %d: %s", (unsigned long long)id,
		      m->env->status, strerror((int)m->env->status), status, e);
	ck_assert_msg(!status || *e, "request %llu: error reply without words",
		      (unsigned long long)id);
	if (words)
		ck_assert_msg(strstr(e, words), "request %llu: '%s' lacks '%s'",
			      (unsigned long long)id, e, words);
}

void native_expect_reply(int sock, uint64_t id, int status, const char *words)
{
	struct wire_msg m;

	recv_reply(sock, id, status, words, &m);
	wire_msg_release(&m);
}

void native_expect_error(int sock, uint64_t id)
{
	struct wire_msg m;

	native_recv(sock, &m);
	ck_assert_uint_eq(m.env->kind, MPDEV__KIND__KIND_REPLY);
	ck_assert_uint_eq(m.env->id, id);
	ck_assert_msg(m.env->status != 0, "request %llu succeeded, an error was wanted",
		      (unsigned long long)id);
	ck_assert_msg(m.env->error && *m.env->error, "request %llu: error reply without words",
		      (unsigned long long)id);
	wire_msg_release(&m);
}

void native_expect_notify(int sock, Mpdev__NotifyType type, int status, const char *words)
{
	struct wire_msg m;
	const char *msg;

	native_recv(sock, &m);
	ck_assert_uint_eq(m.env->kind, MPDEV__KIND__KIND_NOTIFY);
	ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_NOTIFY);
	ck_assert_uint_eq(m.env->notify->type, type);
	msg = m.env->notify->message ? m.env->notify->message : "";
	ck_assert_msg(m.env->notify->status == (uint32_t)status, "notify status %u, wanted %d: %s",
		      m.env->notify->status, status, msg);
	if (words)
		ck_assert_msg(strstr(msg, words), "'%s' lacks '%s'", msg, words);
	wire_msg_release(&m);
}

void native_call(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		 int status, const char *words)
{
	native_request(sock, env, id, fds, nfds);
	native_expect_reply(sock, id, status, words);
}

void native_call_reply(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		       struct wire_msg *reply)
{
	native_request(sock, env, id, fds, nfds);
	recv_reply(sock, id, 0, NULL, reply);
}

void native_hello(int sock, uint64_t id, uint32_t version, uint64_t features, int status)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello h = MPDEV__HELLO__INIT;

	h.version = version;
	h.features = features;
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	native_call(sock, &env, id, NULL, 0, status, NULL);
}

void native_ping(int sock, uint64_t id)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;

	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	native_call(sock, &env, id, NULL, 0, 0, NULL);
}
