/*
 * The vfio-user face as the remote receives it: each input is one
 * connection to an emulated edu device over a SOCK_STREAM socketpair. Each
 * packet record (fuzz_input.h) is written to the stream as bytes with its
 * descriptors, however it cuts the messages; the face is driven as the
 * server drives it (readable until it has nothing more, output flushed),
 * the event loop runs edu's deferred work, and everything the remote sends
 * is parsed and checked: whole vfio-user replies, an error reply only a
 * header, no descriptors. At the end the connection ends as in the server's
 * conn_close(), and nothing may be left open or mapped.
 *
 * Not here: DMA by message (each request would wait out its bound for a
 * reply this harness does not give): the host's hook is unset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "face.h"
#include "fuzz_input.h"
#include "fuzz_remote.h"
#include "host.h"
#include "session.h"
#include "vfio_user.h"

#define TARGET "fuzz_vfio_user"
/* What the remote may send at most: a region read reply of 1 MiB. */
#define OUT_MAX (16u + 16u + (1u << 20))

static struct {
	int baseline_fds;
	uint8_t in[2 * OUT_MAX]; /* what the remote sent, not yet parsed */
	size_t in_len;
} w;
static struct fuzz_remote rem;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_remote_init(&rem, TARGET);
	return 0;
}

/* Reads what the remote sent and checks every whole message of it. */
static void check_output(int peer)
{
	size_t off = 0;

	for (;;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * 16)];
		} u;
		struct iovec iov = { w.in + w.in_len, sizeof(w.in) - w.in_len };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b) };
		ssize_t n;

		if (iov.iov_len == 0)
			fuzz_fail(TARGET, "output", "more than two replies' worth unparsed");
		n = recvmsg(peer, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		if (m.msg_controllen)
			fuzz_fail(TARGET, "output", "the remote sent descriptors");
		w.in_len += (size_t)n;
	}
	while (w.in_len - off >= VFU_HDR_SIZE) {
		struct vfu_hdr h;

		vfu_hdr_get(w.in + off, &h);
		if (h.size < VFU_HDR_SIZE || h.size > OUT_MAX)
			fuzz_fail(TARGET, "output", "a message size no reply can have");
		if ((h.flags & VFU_FLAG_TYPE_MASK) != VFU_TYPE_REPLY ||
		    (h.flags & ~(VFU_FLAG_TYPE_MASK | VFU_FLAG_ERROR)))
			fuzz_fail(TARGET, "output", "not a reply (we send no requests here)");
		if ((h.flags & VFU_FLAG_ERROR) && (h.size != VFU_HDR_SIZE || h.error_no == 0))
			fuzz_fail(TARGET, "output", "an error reply with a payload or no errno");
		if (w.in_len - off < h.size)
			break;
		off += h.size;
	}
	memmove(w.in, w.in + off, w.in_len - off);
	w.in_len -= off;
}

/* The server's conn_readable() and conn_writable(), until the face has nothing more. */
static int pump(struct session *s, int peer)
{
	for (int i = 0; i < 100000; i++) {
		int r;

		if (session_output_blocked(s)) {
			check_output(peer);
			r = session_flush(s);
			if (r == -EAGAIN)
				continue;
			if (r < 0)
				return r;
		}
		r = s->face->readable(s);
		check_output(peer);
		if (r < 0)
			return r;
		if (r == 0 && !session_output_blocked(s))
			return 0;
	}
	fuzz_fail(TARGET, "pump", "the face never settled");
}

/* One record: its bytes into the stream, descriptors with the first. */
static int feed(struct session *s, int peer, struct fuzz_fds *fds, const struct fuzz_packet *pkt)
{
	int f[FUZZ_MAX_FDS];
	size_t done = 0;
	int r = 0;

	fuzz_make_fds(fds, pkt, f);
	while (done < pkt->len && r == 0) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * FUZZ_MAX_FDS)];
		} u;
		struct iovec iov = { (void *)(pkt->data + done), pkt->len - done };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (done == 0 && pkt->nfds) {
			memset(&u, 0, sizeof(u));
			m.msg_control = u.b;
			m.msg_controllen = CMSG_SPACE(sizeof(int) * pkt->nfds);
			u.h.cmsg_level = SOL_SOCKET;
			u.h.cmsg_type = SCM_RIGHTS;
			u.h.cmsg_len = CMSG_LEN(sizeof(int) * pkt->nfds);
			memcpy(CMSG_DATA(&u.h), f, sizeof(int) * pkt->nfds);
		}
		n = sendmsg(peer, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			break;	   /* the remote ended the connection */
		r = pump(s, peer); /* full: the remote must read */
	}
	for (size_t i = 0; i < pkt->nfds; i++)
		close(f[i]);
	if (r == 0)
		r = pump(s, peer);
	if (r == 0 && (pkt->ctl & FUZZ_CTL_POKE)) {
		fuzz_poke(fds);
		fuzz_remote_run_loop(&rem);
		r = pump(s, peer);
	}
	fuzz_remote_run_loop(&rem);
	return r == 0 ? pump(s, peer) : r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;
	struct session s;
	int sv[2];

	w.baseline_fds = fuzz_count_fds();
	w.in_len = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		fuzz_fail(TARGET, "socketpair", strerror(errno));
	session_init(&s, sv[0], &face_vfio_user, rem.backend, &rem.host, &rem.stats);
	if (face_vfio_user.conn_init(&s) < 0)
		fuzz_fail(TARGET, "setup", "conn_init");
	rem.host.dma_msg = NULL; /* see above */
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (fuzz_next_packet(&rd, &pkt))
		if (feed(&s, sv[1], &fds, &pkt) < 0)
			break;
	fuzz_remote_end_connection(&rem, &s, TARGET);
	close(sv[1]);
	fuzz_fds_reset(&fds);
	fuzz_remote_check_released(&rem, TARGET);
	fuzz_check_fds(w.baseline_fds, TARGET);
	return 0;
}
