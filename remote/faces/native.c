/*
 * The native face: protobuf-c envelopes on SOCK_SEQPACKET, one packet one
 * message (docs/protocol.md). Decoding is wire.c's, the request table
 * session.c's.
 */
#include <errno.h>
#include <sys/socket.h>

#include "face.h"
#include "fixed_access.h"
#include "session.h"
#include "wire.h"

/* While read-aheads miss, one request in this many still tries, to notice when they would not. */
#define READAHEAD_PROBE_EVERY 16

/*
 * Whether to read again right after answering a request. When the peer runs
 * on the same CPU, it is woken by our reply, preempts us, and has queued its
 * next request before our send() returns: reading it directly spares the
 * loop's epoll_wait. When it runs elsewhere the read says EAGAIN, which
 * costs as much as that epoll_wait: so only while it pays, with a probe now
 * and then. Other events wait at most the server's per-wakeup budget.
 */
static bool readahead_wanted(struct session *s)
{
	if (s->readahead.paying || ++s->readahead.skipped >= READAHEAD_PROBE_EVERY) {
		s->readahead.skipped = 0;
		s->readahead.armed = true;
	}
	return s->readahead.armed;
}

static int native_readable(struct session *s)
{
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	bool posted, ahead = s->readahead.armed;
	int r;

	s->readahead.armed = false;
	r = wire_recv_any(s->fd, &m, &err, 0);
	if (ahead)
		s->readahead.paying = r != -EAGAIN;
	if (r == -EAGAIN) {
		wire_msg_release(&m);
		return 0;
	}
	if (r == 0 || r == -ECONNRESET) {
		wire_msg_release(&m);
		return -ECONNRESET;
	}
	if (r == 2) {
		/* A fixed-layout access: its op says whether the peer waits. */
		posted = m.raw_len > 1 && m.raw[1] == FIXED_OP_POSTED_WRITE;
		r = session_handle_fixed(s, &m);
	} else {
		posted = r > 0 && m.env->kind == MPDEV__KIND__KIND_POSTED;
		r = r < 0 ? session_handle_bad_packet(s, &m, &err) : session_handle(s, &m);
	}
	wire_msg_release(&m);
	if (r < 0)
		return r;
	/* Posted writes come in bursts: the server drains those. */
	return posted || readahead_wanted(s) ? 1 : 0;
}

const struct face face_native = {
	.name = "native",
	.sock_type = SOCK_SEQPACKET,
	.handshake = true,
	.readable = native_readable,
};
