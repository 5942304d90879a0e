/*
 * The native protocol as the remote receives it: each input is one
 * connection to an emulated edu device. Every packet record (fuzz_input.h)
 * is decoded by wire_decode_any() with the descriptors the record asks for,
 * then dispatched as the remote's native face does (session_handle(),
 * session_handle_fixed() for a fixed-layout record, or
 * session_handle_bad_packet()), the replies are read back and checked, and
 * the event loop runs so that edu's deferred DMA and factorial work and the
 * eventfd callbacks happen. At the end of the input the connection ends as
 * in the server's conn_close(), and nothing may be left open or mapped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "fixed_access.h"
#include "fuzz_input.h"
#include "fuzz_remote.h"
#include "host.h"
#include "log.h"
#include "session.h"
#include "transport.h"
#include "wire.h"

#define TARGET "fuzz_native"

static struct fuzz_remote w;
static int baseline_fds;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_remote_init(&w, TARGET);
	return 0;
}

/*
 * Reads what the session sent for one message and checks what the protocol
 * promises (docs/protocol.md sections 2, 3 and 6): every packet decodes and
 * carries no descriptors; a message gets at most one answer, and exactly
 * one unless it is a posted write, with its id; an error reply has words and no body; a
 * notification has id 0 and a Notify body.
 */
/* A fixed-layout reply: only ever the success of the fixed request just sent. */
static void check_fixed_reply(const struct wire_msg *rep, const struct fixed_access *req)
{
	struct mpdev_error err = { 0 };
	struct fixed_access got;

	if (fixed_access_unpack_reply(rep->raw, rep->raw_len, &got, &err) < 0)
		fuzz_fail(TARGET, "fixed-layout reply", err.msg);
	if (!req || got.id != req->id)
		fuzz_fail(TARGET, "fixed-layout reply", "not to the fixed request just sent");
	if (got.op != (req->op == FIXED_OP_READ ? FIXED_OP_READ_REPLY : FIXED_OP_WRITE_REPLY))
		fuzz_fail(TARGET, "fixed-layout reply", "op does not answer the request's");
	if (got.op == FIXED_OP_WRITE_REPLY && got.data)
		fuzz_fail(TARGET, "fixed-layout reply", "a write's answer carries data");
}

static void check_replies(int peer, const struct wire_msg *m, bool decoded,
			  const struct fixed_access *fx)
{
	const Mpdev__Envelope *req = m->env;
	/* Only a posted write that succeeds goes unanswered. */
	bool must_answer = !decoded || (fx ? fx->op != FIXED_OP_POSTED_WRITE
					   : req->kind != MPDEV__KIND__KIND_POSTED);
	int answers = 0;

	for (;;) {
		struct mpdev_error err = { 0 };
		struct wire_msg rep;
		const Mpdev__Envelope *e;
		int r = wire_recv_any(peer, &rep, &err, MSG_DONTWAIT);

		if (r == -EAGAIN) {
			wire_msg_release(&rep);
			break;
		}
		if (r == 2) {
			check_fixed_reply(&rep, fx);
			answers++;
			wire_msg_release(&rep);
			continue;
		}
		if (r != 1)
			fuzz_fail(TARGET, "the remote sent a bad packet", err.msg);
		e = rep.env;
		if (rep.nfds)
			fuzz_fail(TARGET, "reply", "the remote sent descriptors");
		if (e->kind == MPDEV__KIND__KIND_NOTIFY) {
			if (e->id != 0 || e->body_case != MPDEV__ENVELOPE__BODY_NOTIFY)
				fuzz_fail(TARGET, "notify", "not id 0 with a Notify body");
		} else if (e->kind == MPDEV__KIND__KIND_REPLY) {
			if (e->status && (!e->error || !*e->error))
				fuzz_fail(TARGET, "error reply", "no words");
			/* The one error reply with a body: a failed MigSetState says the state. */
			if (e->status && e->body_case != MPDEV__ENVELOPE__BODY__NOT_SET &&
			    !(req && req->body_case == MPDEV__ENVELOPE__BODY_MIG_SET_STATE &&
			      e->body_case == MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY))
				fuzz_fail(TARGET, "error reply", "carries a body");
			if (req && e->id != req->id)
				fuzz_fail(TARGET, "reply", "id is not the request's");
			if (fx && fx->id && e->id != fx->id)
				fuzz_fail(TARGET, "reply", "id is not the fixed request's");
		} else {
			fuzz_fail(TARGET, "reply", "kind is neither REPLY nor NOTIFY");
		}
		answers++;
		wire_msg_release(&rep);
	}
	if (answers > 1)
		fuzz_fail(TARGET, "replies", "more than one answer to one message");
	if (must_answer && answers != 1)
		fuzz_fail(TARGET, "replies", "a message that is no posted write went unanswered");
}

/* One packet as the server's conn_readable() handles it; < 0 ends the connection. */
static int handle_packet(struct session *s, int peer, struct fuzz_fds *fds,
			 const struct fuzz_packet *pkt)
{
	struct mpdev_error err = { 0 }, ignored = { 0 };
	struct fixed_access fx = { 0 };
	struct wire_msg m;
	bool decoded, fixed;
	int r;

	wire_msg_init(&m);
	fuzz_make_fds(fds, pkt, m.fds);
	m.nfds = pkt->nfds;
	if (pkt->len == 0) {
		/* transport_recv refuses an empty packet before any decoding. */
		transport_close_fds(m.fds, m.nfds);
		m.nfds = 0;
		r = mpdev_error_set(&err, EBADMSG, "empty packet");
	} else {
		r = wire_decode_any(&m, pkt->data, pkt->len, &err);
	}
	/* A fixed record the remote can read (it answers its id): what the replies must match. */
	fixed = m.raw && fixed_access_unpack_req(m.raw, m.raw_len, &fx, &ignored) == 0;
	if (!fixed && m.raw)
		fx.op = 0; /* an unreadable record is answered like any bad packet */
	decoded = r == 1 || (r == 2 && fixed);
	if (r == 1)
		r = session_handle(s, &m);
	else if (r == 2)
		r = session_handle_fixed(s, &m);
	else
		r = session_handle_bad_packet(s, &m, &err);
	/* Checked before the release: the replies are matched against the request. */
	if (r == 0)
		check_replies(peer, &m, decoded, m.raw ? &fx : NULL);
	wire_msg_release(&m);
	if (pkt->ctl & FUZZ_CTL_POKE)
		fuzz_poke(fds);
	fuzz_remote_run_loop(&w);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;
	struct session s;
	int sv[2];

	baseline_fds = fuzz_count_fds();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fuzz_fail(TARGET, "socketpair", strerror(errno));
	session_init(&s, sv[0], &face_native, w.backend, &w.host, &w.stats);
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (fuzz_next_packet(&rd, &pkt))
		if (handle_packet(&s, sv[1], &fds, &pkt) < 0)
			break;
	fuzz_remote_end_connection(&w, &s, TARGET);
	close(sv[1]);
	fuzz_fds_reset(&fds);
	fuzz_remote_check_released(&w, TARGET);
	fuzz_check_fds(baseline_fds, TARGET);
	return 0;
}
