#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fixed_access.h"
#include "log.h"
#include "transport.h"

#define ALL_FEATURES 0x3ffull /* MPDEV_FEATURE_POSTED_WRITES ... MPDEV_FEATURE_FIXED_ACCESS */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mark_dead(struct mpdev *dev, int code, const char *what)
{
	if (!dev->dead) {
		dev->dead = code;
		if (!dev->err.code || code != EPIPE)
			mpdev_error_set(&dev->err, code, "%s", what);
	}
	return -dev->dead;
}

/* Linux's largest errno value (MAX_ERRNO): a status beyond it cannot be one. */
#define MAX_ERRNO 4095

/*
 * A status from the wire as the positive errno the API returns negated. The
 * remote is not trusted to send an errno: anything else (a value that would
 * turn negative, or past INT_MAX, as an int) becomes EPROTO, so that a call
 * never "fails" with 0 or a positive return.
 */
static int wire_status(uint32_t status)
{
	return status <= MAX_ERRNO ? (int)status : EPROTO;
}

static void handle_notify(struct mpdev *dev, const Mpdev__Notify *n)
{
	if (n->type == MPDEV__NOTIFY_TYPE__NOTIFY_BUSY ||
	    n->type == MPDEV__NOTIFY_TYPE__NOTIFY_ACCESS_DENIED ||
	    n->type == MPDEV__NOTIFY_TYPE__NOTIFY_HANDSHAKE_TIMEOUT) {
		int code = n->status ? wire_status(n->status) : EPIPE;

		/* The remote closes right after these: keep its reason, not "EOF". */
		mpdev_error_set(&dev->err, code, "remote refused the connection: %s",
				n->message[0] ? n->message : "no reason given");
		dev->dead = code;
	}
	if (dev->opts.on_notify)
		dev->opts.on_notify(dev->opts.opaque, (enum mpdev_notify_type)n->type,
				    (int)n->status, n->message);
}

/*
 * Handles one message that is not the awaited reply. Returns 1 if it is the
 * reply with id `want` (left in m for the caller), 0 otherwise.
 */
static int absorb(struct mpdev *dev, struct wire_msg *m, uint64_t want)
{
	const Mpdev__Envelope *env = m->env;

	if (env->kind == MPDEV__KIND__KIND_NOTIFY) {
		if (env->body_case == MPDEV__ENVELOPE__BODY_NOTIFY)
			handle_notify(dev, env->notify);
		return 0;
	}
	if (env->kind != MPDEV__KIND__KIND_REPLY)
		return 0;
	if (want && env->id == want)
		return 1;
	/* An unasked reply is the error of a posted write, or a late answer (dropped). */
	if (env->status && (env->id & CLIENT_POSTED_ID_BIT)) {
		if (dev->posted_unsynced)
			dev->posted_unsynced--;
		if (!dev->posted_failures++)
			mpdev_error_set(&dev->first_posted_failure, wire_status(env->status),
					"posted request %llu: %s",
					(unsigned long long)(env->id & ~CLIENT_POSTED_ID_BIT),
					env->error[0] ? env->error : "no reason given");
	}
	return 0;
}

/*
 * Receives until the reply to `want` arrives (want 0: only what is queued
 * now, without blocking). Returns 1 with the reply in m, 0 if nothing more
 * (want 0 only), or a negative errno. Each blocking receive is bounded by
 * SO_RCVTIMEO; the loop as a whole by the deadline.
 */
static int pump_any(struct mpdev *dev, uint64_t want, struct wire_msg *m, int *handled,
		    struct fixed_access *fx)
{
	int64_t deadline = now_ms() + dev->timeout_ms;
	struct mpdev_error e = { 0 };
	bool reset_seen = false;
	int r;

	if (dev->dead)
		return -dev->dead;
	for (;;) {
		r = wire_recv_any(dev->fd, m, &e, want && !reset_seen ? 0 : MSG_DONTWAIT);
		if (r == 2) {
			struct fixed_access got;

			/* A garbled record is a garbled packet: the remote's state is unknown. */
			if (fixed_access_unpack_reply(m->raw, m->raw_len, &got, &e) < 0) {
				wire_msg_release(m);
				return mark_dead(dev, EPROTO, e.msg);
			}
			wire_msg_release(m);
			if (fx && want && got.id == want) {
				*fx = got;
				return 2;
			}
			/* A late answer to a request that timed out: dropped, as below. */
			if (want && now_ms() > deadline)
				goto timeout;
			continue;
		}
		if (r == 1) {
			if (absorb(dev, m, want))
				return 1;
			wire_msg_release(m);
			if (handled)
				(*handled)++;
			if (dev->dead)
				return -dev->dead;
			if (want && now_ms() > deadline)
				goto timeout;
			continue;
		}
		wire_msg_release(m);
		/*
		 * A peer that closes with our request unread makes the kernel
		 * report ECONNRESET ahead of what it sent before closing (a busy
		 * or access-denied notification): read that before giving up.
		 */
		if (r == -ECONNRESET && !reset_seen) {
			reset_seen = true;
			continue;
		}
		if (r == 0 || r == -ECONNRESET || r == -EPIPE || (r == -EAGAIN && reset_seen))
			return mark_dead(dev, EPIPE, "remote closed the connection");
		if (r == -EAGAIN) {
			if (!want)
				return 0;
			goto timeout;
		}
		if (r == -EINTR)
			continue;
		/* A garbled packet from the remote: its state is unknown now. */
		return mark_dead(dev, EPROTO, e.msg);
	}
timeout:
	return mpdev_error_set(&dev->err, ETIMEDOUT, "no reply from the remote within %d ms",
			       dev->timeout_ms);
}

static int pump(struct mpdev *dev, uint64_t want, struct wire_msg *m, int *handled)
{
	return pump_any(dev, want, m, handled, NULL);
}

static int send_env(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds)
{
	struct wire_msg m;
	int r;

	if (dev->dead)
		return -dev->dead;
	r = wire_send(dev->fd, req, fds, nfds);
	if (r == -EPIPE || r == -ECONNRESET) {
		/* The remote may have said why before it closed (busy, not allowed). */
		pump(dev, 0, &m, NULL);
		return mark_dead(dev, EPIPE, "remote closed the connection");
	}
	if (r < 0)
		return mpdev_error_set(&dev->err, -r, "sending '%s': %s", wire_body_name(req),
				       strerror(-r));
	return 0;
}

/* An error REPLY's status and words into dev->err; returns the negated errno. */
static int reply_error(struct mpdev *dev, const Mpdev__Envelope *env)
{
	int status = wire_status(env->status);

	/* The caller's message is all it has: a remote that sent no words still gets some. */
	if (env->error[0])
		mpdev_error_set(&dev->err, status, "%s", env->error);
	else
		mpdev_error_set(&dev->err, status, "remote error %u, no reason given (%s)",
				env->status, strerror(status));
	return -status;
}

int client_request(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds,
		   struct wire_msg *reply)
{
	return client_request_ex(dev, req, fds, nfds, reply, false);
}

int client_request_ex(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds,
		      struct wire_msg *reply, bool keep_error_reply)
{
	int r;

	ring_drain(dev); /* ring accesses before this one are done first */
	mpdev_error_clear(&dev->err);
	req->id = dev->next_id++;
	req->kind = MPDEV__KIND__KIND_REQUEST;
	r = send_env(dev, req, fds, nfds);
	if (r < 0)
		return r;
	r = pump(dev, req->id, reply, NULL);
	if (r < 0)
		return r;
	/* The remote works in order: every posted write before this has been done. */
	dev->posted_unsynced = 0;
	if (reply->env->status) {
		int status = -reply_error(dev, reply->env);

		if (!keep_error_reply)
			wire_msg_release(reply);
		return -status;
	}
	return 0;
}

int client_request_ok(struct mpdev *dev, Mpdev__Envelope *req, const int *fds, size_t nfds)
{
	struct wire_msg reply;
	int r = client_request(dev, req, fds, nfds, &reply);

	if (r == 0)
		wire_msg_release(&reply);
	return r;
}

int client_post(struct mpdev *dev, Mpdev__Envelope *req)
{
	int r;

	ring_drain(dev); /* ring accesses before this one are done first */
	mpdev_error_clear(&dev->err);
	req->id = (dev->next_id++) | CLIENT_POSTED_ID_BIT;
	req->kind = MPDEV__KIND__KIND_POSTED;
	r = send_env(dev, req, NULL, 0);
	if (r == 0)
		dev->posted_unsynced++;
	return r;
}

/* The error an Envelope reply to a fixed-layout access states (it states nothing else). */
static int fixed_error_reply(struct mpdev *dev, struct wire_msg *reply)
{
	int r;

	if (reply->env->status) {
		r = reply_error(dev, reply->env);
		wire_msg_release(reply);
		return r;
	}
	r = mpdev_error_set(&dev->err, EPROTO,
			    "remote answered a fixed-layout access with '%s' and no error",
			    wire_body_name(reply->env));
	wire_msg_release(reply);
	return r;
}

static int fixed_reply(struct mpdev *dev, struct fixed_access *a, const struct fixed_access *got)
{
	uint8_t want = a->op == FIXED_OP_READ ? FIXED_OP_READ_REPLY : FIXED_OP_WRITE_REPLY;

	/* The remote works in order: every posted write before this has been done. */
	dev->posted_unsynced = 0;
	if (got->op != want)
		return mpdev_error_set(&dev->err, EPROTO,
				       "remote answered a fixed-layout access with op 0x%x",
				       got->op);
	a->data = got->data;
	return 0;
}

/*
 * The usual case in one recv(): the next packet is our answer. recv(), not
 * recvmsg(): no msghdr and iovec for the kernel to copy in, which on these
 * machines is a third of a receive. No answer to a region access carries
 * descriptors; should a remote send some anyway, the kernel drops them (and
 * the Envelope, declaring them, is refused below). Anything other than our
 * answer goes through pump_any() as every other reply does.
 */
static int fixed_fast_reply(struct mpdev *dev, struct fixed_access *a)
{
	static __thread uint8_t buf[MPDEV_MAX_MSG_SIZE];
	struct mpdev_error e = { 0 };
	struct fixed_access got;
	struct wire_msg m;
	ssize_t n;
	int r;

	do
		n = recv(dev->fd, buf, sizeof(buf), MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n > 0 && (size_t)n <= sizeof(buf) && fixed_access_is(buf, (size_t)n)) {
		if (fixed_access_unpack_reply(buf, (size_t)n, &got, &e) < 0)
			return mark_dead(dev, EPROTO, e.msg);
		if (got.id == a->id)
			return fixed_reply(dev, a, &got);
	} else if (n > 0 && (size_t)n <= sizeof(buf)) {
		wire_msg_init(&m);
		if (wire_decode(&m, buf, (size_t)n, &e) != 1) {
			wire_msg_release(&m);
			return mark_dead(dev, EPROTO, e.msg);
		}
		if (absorb(dev, &m, a->id)) {
			dev->posted_unsynced = 0;
			return fixed_error_reply(dev, &m);
		}
		wire_msg_release(&m);
		if (dev->dead)
			return -dev->dead;
	} else if (n > 0) {
		return mark_dead(dev, EPROTO, "packet larger than the 64 KiB limit");
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return mpdev_error_set(&dev->err, ETIMEDOUT,
				       "no reply from the remote within %d ms", dev->timeout_ms);
	}
	/* Not our answer (a notification, a posted write's failure, a late reply) or end of file.
	 */
	r = pump_any(dev, a->id, &m, NULL, &got);
	if (r < 0)
		return r;
	if (r == 2)
		return fixed_reply(dev, a, &got);
	dev->posted_unsynced = 0;
	return fixed_error_reply(dev, &m);
}

int client_fixed_call(struct mpdev *dev, struct fixed_access *a)
{
	uint8_t buf[FIXED_ACCESS_REQ_SIZE];
	bool posted = a->op == FIXED_OP_POSTED_WRITE;
	struct wire_msg m;
	ssize_t n;
	int r = 0;

	mpdev_error_clear(&dev->err);
	if (dev->dead)
		return -dev->dead;
	a->id = dev->next_id++ | (posted ? CLIENT_POSTED_ID_BIT : 0);
	fixed_access_pack_req(a, buf);
	/* A blocking socket with SO_SNDTIMEO: a full buffer is waited out by the kernel. */
	do
		n = send(dev->fd, buf, sizeof(buf), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		r = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	else if (n != (ssize_t)sizeof(buf))
		r = -EIO;
	if (r == -EPIPE || r == -ECONNRESET) {
		pump(dev, 0, &m, NULL);
		return mark_dead(dev, EPIPE, "remote closed the connection");
	}
	if (r < 0)
		return mpdev_error_set(&dev->err, -r, "sending a fixed-layout access: %s",
				       strerror(-r));
	if (posted) {
		dev->posted_unsynced++;
		return 0;
	}
	return fixed_fast_reply(dev, a);
}

void client_drain(struct mpdev *dev)
{
	struct mpdev_error e = { 0 };
	struct wire_msg m;

	bool reset_seen = false;
	int r;

	if (dev->fd < 0)
		return;
	/* As in pump(): a reset may be reported ahead of what the peer sent before it. */
	while ((r = wire_recv(dev->fd, &m, &e, MSG_DONTWAIT)) == 1 ||
	       (r == -ECONNRESET && !reset_seen)) {
		if (r == 1)
			absorb(dev, &m, 0);
		else
			reset_seen = true;
		wire_msg_release(&m);
	}
	wire_msg_release(&m);
}

int client_error_wrap(struct mpdev *dev, int r, const char *fmt, ...)
{
	char inner[MPDEV_ERROR_MSG_MAX], outer[MPDEV_ERROR_MSG_MAX];
	va_list ap;

	memcpy(inner, dev->err.msg, sizeof(inner));
	va_start(ap, fmt);
	vsnprintf(outer, sizeof(outer), fmt, ap);
	va_end(ap);
	mpdev_error_set(&dev->err, -r, "%s: %s", outer, inner);
	return r;
}

int client_expect_body(struct mpdev *dev, const struct wire_msg *reply,
		       Mpdev__Envelope__BodyCase body)
{
	if (reply->env->body_case == body)
		return 0;
	return mpdev_error_set(&dev->err, EPROTO, "remote answered with '%s'",
			       wire_body_name(reply->env));
}

int client_handshake(struct mpdev *dev, uint64_t features, bool resume)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello hello = MPDEV__HELLO__INIT;
	Mpdev__Limits lim = MPDEV__LIMITS__INIT;
	const Mpdev__HelloReply *hr;
	struct wire_msg reply;
	int r;

	lim.max_msg_size = MPDEV_MAX_MSG_SIZE;
	lim.max_fds_per_msg = MPDEV_MAX_FDS_PER_MSG;
	lim.max_mem_regions = MPDEV_MAX_MEM_REGIONS;
	hello.version = MPDEV_PROTO_VERSION;
	hello.features = features;
	hello.resume = resume;
	hello.limits = &lim;
	hello.name = (char *)(dev->opts.client_name ? dev->opts.client_name : "libmpdev");
	req.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	req.hello = &hello;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_HELLO_REPLY);
	if (r == 0) {
		hr = reply.env->hello_reply;
		if (hr->version != MPDEV_PROTO_VERSION)
			r = mpdev_error_set(&dev->err, EPROTONOSUPPORT,
					    "remote speaks protocol version %u, we speak %u",
					    hr->version, MPDEV_PROTO_VERSION);
		else if (resume && (hr->features & features) != features)
			/* Replayed state may need them, and the caller goes on using them. */
			r = mpdev_error_set(
				&dev->err, ENOTSUP,
				"the restarted remote does not offer feature(s) 0x%llx, "
				"which this session uses (it offers 0x%llx)",
				(unsigned long long)(features & ~hr->features),
				(unsigned long long)hr->features);
		else
			dev->features = hr->features & features;
	}
	wire_msg_release(&reply);
	return r;
}

/* The handle is gone when connecting fails, so the reason is kept here. */
static __thread struct mpdev_error connect_err;

const char *mpdev_connect_error(void)
{
	return connect_err.msg;
}

/* The VMM side needs no privilege: say so once, where it has some anyway. */
static void warn_if_root(void)
{
	static bool warned;

	if (!warned && geteuid() == 0) {
		warned = true;
		log_warn("libmpdev", "running as root; the VMM side of mpdev needs no privilege");
	}
}

int client_setup_socket(struct mpdev *dev, int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	/*
	 * Blocking with kernel timeouts: a request costs one sendmsg and one
	 * recvmsg, as little as a raw ping-pong, and no wait is unbounded.
	 */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return mpdev_error_set(&dev->err, errno, "fcntl: %s", strerror(errno));
	dev->fd = fd;
	return 0;
}

int client_dial(const char *path, int timeout_ms, struct mpdev_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return mpdev_error_set(err, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mpdev_error_set(err, errno, "socket: %s", strerror(errno));
	/* Bounds connect() when the remote's backlog is full. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;

		close(fd);
		return mpdev_error_set(err, e, "cannot reach the remote at %s: %s", path,
				       strerror(e));
	}
	return fd;
}

/* Takes fd (closed on failure), greets the remote and, for a handle that can reconnect, reads what
 * device it serves. */
static int connect_common(int fd, const struct mpdev_options *opts, const char *path,
			  struct mpdev **out)
{
	struct mpdev *dev;
	int r;

	dev = calloc(1, sizeof(*dev));
	if (!dev || (path && !(dev->path = strdup(path)))) {
		free(dev);
		close(fd);
		return mpdev_error_set(&connect_err, ENOMEM, "out of memory");
	}
	dev->fd = -1;
	dev->next_id = 1;
	dev->intx_unmask_fd = -1;
	for (int i = 0; i < 4; i++)
		dev->intx[i].irqfd = dev->intx[i].resamplefd = -1;
	if (opts)
		dev->opts = *opts;
	dev->timeout_ms =
		dev->opts.timeout_ms > 0 ? dev->opts.timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	r = client_setup_socket(dev, fd, dev->timeout_ms);
	if (r < 0) {
		close(fd);
		goto fail;
	}
	r = client_handshake(dev, dev->opts.features ? dev->opts.features : ALL_FEATURES, false);
	/* A restarted remote must serve this same device: remember which it is. */
	if (r == 0 && (dev->path || dev->opts.reconnect_fd)) {
		r = client_device_info(dev, &dev->info);
		dev->have_info = r == 0;
	}
	if (r < 0)
		goto fail;
	*out = dev;
	return 0;
fail:
	connect_err = dev->err;
	mpdev_close(dev);
	return r;
}

int mpdev_connect_fd(int fd, const struct mpdev_options *opts, struct mpdev **out)
{
	*out = NULL;
	warn_if_root();
	mpdev_error_clear(&connect_err);
	if (fd < 0)
		return mpdev_error_set(&connect_err, EBADF, "no socket");
	return connect_common(fd, opts, NULL, out);
}

int mpdev_connect(const char *path, const struct mpdev_options *opts, struct mpdev **out)
{
	int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	int fd;

	*out = NULL;
	warn_if_root();
	mpdev_error_clear(&connect_err);
	fd = client_dial(path, timeout, &connect_err);
	if (fd < 0)
		return fd;
	return connect_common(fd, opts, path, out);
}

void mpdev_close(struct mpdev *dev)
{
	if (!dev)
		return;
	if (dev->fd >= 0)
		close(dev->fd);
	ring_forget(dev);
	client_mem_forget(dev);
	client_irq_forget(dev);
	config_shadow_free(&dev->cfg);
	free(dev->path);
	free(dev);
}

const char *mpdev_last_error(const struct mpdev *dev)
{
	return dev ? dev->err.msg : "";
}

uint64_t mpdev_features(const struct mpdev *dev)
{
	return dev->features;
}

int mpdev_fd(const struct mpdev *dev)
{
	return dev->fd;
}

int mpdev_process_events(struct mpdev *dev)
{
	struct wire_msg m;
	int handled, r, tries = 0;

	do {
		handled = 0;
		r = pump(dev, 0, &m, &handled);
	} while (client_retry(dev, &r, &tries));
	return r < 0 ? r : handled;
}

static int ping(struct mpdev *dev)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping body = MPDEV__PING__INIT;

	req.body_case = MPDEV__ENVELOPE__BODY_PING;
	req.ping = &body;
	return client_request_ok(dev, &req, NULL, 0);
}

int mpdev_sync(struct mpdev *dev)
{
	uint64_t failed, lost;
	int r, tries = 0;

	do
		r = ping(dev);
	while (client_retry(dev, &r, &tries));
	if (r < 0)
		return r;
	failed = dev->posted_failures;
	lost = dev->posted_lost;
	dev->posted_failures = dev->posted_lost = 0;
	if (failed && lost)
		return mpdev_error_set(&dev->err, EIO,
				       "%llu posted write(s) failed; first: %s; and %llu were lost "
				       "with a remote that died before confirming them",
				       (unsigned long long)failed, dev->first_posted_failure.msg,
				       (unsigned long long)lost);
	if (failed)
		return mpdev_error_set(&dev->err, EIO, "%llu posted write(s) failed; first: %s",
				       (unsigned long long)failed, dev->first_posted_failure.msg);
	if (lost)
		return mpdev_error_set(&dev->err, EIO,
				       "%llu posted write(s) were lost: the remote died before "
				       "confirming them, and the restarted one never saw them",
				       (unsigned long long)lost);
	return 0;
}
