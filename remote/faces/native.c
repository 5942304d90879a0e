/*
 * The native face: protobuf-c envelopes on SOCK_SEQPACKET, one packet one
 * message (docs/protocol.md). Decoding is wire.c's, the request table
 * session.c's.
 */
#include <errno.h>
#include <sys/socket.h>

#include "face.h"
#include "session.h"
#include "wire.h"

static int native_readable(struct session *s)
{
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	bool posted;
	int r;

	r = wire_recv(s->fd, &m, &err, 0);
	if (r == -EAGAIN) {
		wire_msg_release(&m);
		return 0;
	}
	if (r == 0 || r == -ECONNRESET) {
		wire_msg_release(&m);
		return -ECONNRESET;
	}
	posted = r > 0 && m.env->kind == MPDEV__KIND__KIND_POSTED;
	r = r < 0 ? session_handle_bad_packet(s, &m, &err) : session_handle(s, &m);
	wire_msg_release(&m);
	if (r < 0)
		return r;
	/*
	 * After a request the peer is waiting for our reply, so nothing else is
	 * queued: back to the loop instead of paying for a recv that says
	 * EAGAIN. Posted writes come in bursts: the server drains those.
	 */
	return posted ? 1 : 0;
}

const struct face face_native = {
	.name = "native",
	.sock_type = SOCK_SEQPACKET,
	.handshake = true,
	.readable = native_readable,
};
