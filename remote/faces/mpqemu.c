/*
 * The mpqemu face: QEMU's x-pci-proxy-dev stream, read without waiting.
 *
 * Bytes and their SCM_RIGHTS descriptors are buffered (stream_in.h); a
 * message is handled once all of it is there, so a peer that sends half of
 * one and goes silent holds only its own connection, never the loop.
 * Framing errors that lose the stream end the connection: a header that
 * declares more data than any message has (nothing after it can be found
 * again), more descriptors queued than any message carries, the peer closing
 * in the middle of a message. A message that is framed right but is not what
 * QEMU sends (mpqemu_validate: unknown command, wrong data size, wrong
 * descriptor count, bad width) is refused alone: its descriptors closed, a
 * RET of all-ones if QEMU would be waiting for one, as a PCI device answers
 * what it cannot decode; the connection goes on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "face.h"
#include "fdrelease.h"
#include "log.h"
#include "mpqemu_face.h"
#include "session.h"

#define COMP MPQEMU_FACE_COMP

int mpqemu_face_reply(struct session *s, uint64_t value)
{
	uint8_t buf[MPQEMU_RET_SIZE];
	size_t len = mpqemu_encode_ret(buf, value);

	return session_output(s, buf, len, NULL, 0);
}

static int mpqemu_conn_init(struct session *s)
{
	struct mpqemu_face *f = calloc(1, sizeof(*f));
	uint64_t sizes[BAR_WINDOW_NUM_BARS];
	long page = sysconf(_SC_PAGESIZE);
	int r;

	if (!f)
		return -ENOMEM;
	r = stream_in_init(&f->in, MPQEMU_MAX_MSG);
	if (r < 0) {
		free(f);
		return r;
	}
	for (int i = 0; i < BAR_WINDOW_NUM_BARS; i++)
		sizes[i] = s->info.regions[BACKEND_REGION_BAR0 + i].size;
	bar_window_init(&f->bars, sizes);
	f->page = page > 0 ? (uint64_t)page : 4096;
	s->face_state = f;
	/* QEMU says no hello: the first message is already a request. */
	s->greeted = true;
	return 0;
}

static void mpqemu_conn_release(struct session *s)
{
	struct mpqemu_face *f = s->face_state;

	if (!f)
		return;
	if (f->refused || f->bar_misses)
		log_info(COMP, "connection ended: %llu messages, %llu refused, %llu BAR misses",
			 (unsigned long long)f->messages, (unsigned long long)f->refused,
			 (unsigned long long)f->bar_misses);
	stream_in_release(&f->in);
	free(f);
	s->face_state = NULL;
}

/* A framed message QEMU would never send: refused alone, the stream goes on. */
static int refuse(struct session *s, struct mpqemu_face *f, int cmd, const char *why)
{
	f->refused++;
	s->stats->protocol_errors++;
	log_warn_rl(COMP, "refused a message: %s%s", why,
		    mpqemu_cmd_wants_ret(cmd) ? "; answered with all-ones" : "");
	return mpqemu_cmd_wants_ret(cmd) ? mpqemu_face_reply(s, UINT64_MAX) : 0;
}

/* The first n buffered bytes are one whole message: take it (and its descriptors) and handle it. */
static int take_message(struct session *s, struct mpqemu_face *f, size_t n)
{
	struct mpdev_error err = { 0 };
	uint8_t bytes[MPQEMU_MAX_MSG];
	int fds[MPQEMU_MAX_FDS];
	struct mpqemu_msg m;
	size_t nfds = 0;
	int cmd, r;

	memcpy(bytes, f->in.buf, n);
	memcpy(&cmd, bytes, sizeof(cmd));
	/* Past MPQEMU_MAX_FDS the rest are closed: no message QEMU sends has more. */
	r = stream_in_consume(&f->in, n, fds, MPQEMU_MAX_FDS, &nfds);
	f->messages++;
	if (r < 0) {
		for (size_t i = 0; i < nfds; i++)
			fd_release(fds[i]);
		return refuse(s, f, cmd, "more than 8 descriptors with one message");
	}
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < MPQEMU_MAX_FDS; i++)
		m.fds[i] = i < (int)nfds ? fds[i] : -1;
	m.num_fds = (int)nfds;
	/* Checks everything QEMU can legitimately send; closes the descriptors if not. */
	r = mpqemu_decode(&m, bytes, n, &err);
	if (r < 0)
		return refuse(s, f, cmd, err.msg);
	s->stats->messages++;
	log_debug(COMP, "%s, %zu bytes, %d fds", mpqemu_cmd_name(m.cmd), m.size, m.num_fds);
	r = mpqemu_face_dispatch(s, f, &m);
	/* Whatever the handler did not take. */
	mpqemu_msg_close_fds(&m);
	return r;
}

static int mpqemu_readable(struct session *s)
{
	struct mpqemu_face *f = s->face_state;
	int one_way = 0;

	for (;;) {
		ssize_t n = mpqemu_frame(f->in.buf, f->in.len);
		int cmd, r;

		if (n < 0) {
			s->stats->protocol_errors++;
			log_warn_rl(COMP,
				    "a message declaring %zu bytes of data (at most %zu fit): the "
				    "stream cannot be followed past it; dropping the connection",
				    mpqemu_declared_size(f->in.buf), (size_t)MPQEMU_MAX_DATA);
			return -EMSGSIZE;
		}
		if (n > 0) {
			memcpy(&cmd, f->in.buf, sizeof(cmd));
			r = take_message(s, f, (size_t)n);
			if (r < 0)
				return r;
			/*
			 * QEMU sends SYNC_SYSMEM and SET_IRQFD in bursts without
			 * waiting, then a request it waits on: all of them in this
			 * call, so that a request never waits in our buffer for a
			 * wakeup the socket will not give (its bytes are read).
			 */
			/*
			 * After a request QEMU waits for our answer, so the socket
			 * is most likely empty: say "more" only for a whole message
			 * already buffered, instead of paying for a recvmsg that
			 * says EAGAIN (the socket's readiness brings the rest).
			 */
			if (mpqemu_cmd_wants_ret(cmd) || session_output_blocked(s) ||
			    ++one_way == MPQEMU_FACE_ONE_WAY_BUDGET)
				return mpqemu_frame(f->in.buf, f->in.len) != 0;
			continue;
		}
		if (f->in.eof) {
			if (f->in.len)
				log_warn_rl(COMP,
					    "the peer closed the connection %zu bytes into a "
					    "message",
					    f->in.len);
			return -ECONNRESET;
		}
		r = stream_in_fill(&f->in, s->fd);
		if (r == -EAGAIN)
			return 0;
		if (r == -EPROTO) {
			s->stats->protocol_errors++;
			log_warn_rl(COMP, "more descriptors than any message carries, or a control "
					  "message other than SCM_RIGHTS: dropping the connection");
			return r;
		}
		if (r < 0)
			return r;
		/* r == 0 is the end of the stream: in.eof, seen above next time round. */
	}
}

const struct face face_mpqemu = {
	.name = "mpqemu",
	.sock_type = SOCK_STREAM,
	.handshake = false,
	.conn_init = mpqemu_conn_init,
	.readable = mpqemu_readable,
	.conn_release = mpqemu_conn_release,
};
