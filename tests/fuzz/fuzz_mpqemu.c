/*
 * QEMU's mpqemu messages as mpdev-proxy receives them. Each packet record
 * (fuzz_input.h) is one message's bytes with its descriptors, decoded and
 * validated by mpqemu_decode(); a valid message then goes through the part
 * of mpdev-proxy's translation that needs no remote: config writes that move
 * BARs, and the BAR window lookup of QEMU's absolute BAR addresses, against
 * a config space the input itself writes. Then the whole input goes once
 * more, as one byte stream with the records' descriptors attached, through
 * mpqemu_recv() on a stream socket, as far as mpdev-proxy would read it.
 *
 * The translation is proto/mpqemu/'s, which mpdev-proxy and the remote's
 * mpqemu face share: the BAR window (bar_window_config_written,
 * bar_window_resolve) and SYNC_SYSMEM's whole-page regions (sysmem.h).
 *
 * Last, the same stream goes to the remote's mpqemu face in-process, as one
 * connection to an emulated edu device (remote/faces/mpqemu.c over a
 * SOCK_STREAM socketpair, the event loop run between messages as in
 * fuzz_native): every answer must be a well-formed RET, and once the
 * connection ends as in the server's conn_close() nothing may be left open
 * or mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "bar_window.h"
#include "face.h"
#include "fuzz_input.h"
#include "fuzz_remote.h"
#include "host.h"
#include "log.h"
#include "mpqemu.h"
#include "session.h"
#include "sysmem.h"
#include "transport.h"

#define TARGET "fuzz_mpqemu"

/* Larger inputs skip the stream pass: they would only fill the socket buffer. */
#define STREAM_MAX 65536

static int baseline_fds;

/* What lives as long as the remote process: the loop, the host, the device (the face pass). */
static struct fuzz_remote w;

int LLVMFuzzerInitialize(int *argc, char ***argv);
/* ---- the remote's mpqemu face ---- */

/* Reads what the face answered; each answer is a whole RET of 8 bytes. */
static void drain_rets(int peer, uint8_t *pend, size_t *npend)
{
	for (;;) {
		ssize_t n = recv(peer, pend + *npend, MPQEMU_RET_SIZE - *npend, MSG_DONTWAIT);
		struct mpqemu_msg ret;

		if (n <= 0)
			return;
		*npend += (size_t)n;
		if (*npend < MPQEMU_RET_SIZE)
			continue;
		memcpy(&ret, pend, MPQEMU_RET_SIZE);
		if (ret.cmd != MPQEMU_CMD_RET || ret.size != sizeof(uint64_t))
			fuzz_fail(TARGET, "face", "an answer that is no RET of 8 bytes");
		*npend = 0;
	}
}

/* Lets the face read until it has nothing more; < 0: it ended the connection. */
static int face_read(struct session *s, int peer, uint8_t *pend, size_t *npend)
{
	for (int budget = 4096; budget > 0; budget--) {
		int r = s->face->readable(s);

		drain_rets(peer, pend, npend);
		if (session_output_blocked(s) && session_flush(s) < 0)
			return -EPIPE;
		fuzz_remote_run_loop(&w);
		if (r <= 0)
			return r;
	}
	fuzz_fail(TARGET, "face", "readable() never ran out of input");
	return -1;
}

static void face_pass(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;
	struct session s;
	uint8_t pend[MPQEMU_RET_SIZE];
	size_t npend = 0;
	int sv[2], r = 0;

	if (size > STREAM_MAX)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		fuzz_fail(TARGET, "socketpair", NULL);
	session_init(&s, sv[0], &face_mpqemu, w.backend, &w.host, &w.stats);
	if (face_mpqemu.conn_init(&s) < 0)
		fuzz_fail(TARGET, "face", "conn_init");
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (r >= 0 && fuzz_next_packet(&rd, &pkt)) {
		int got[FUZZ_MAX_FDS];
		int sent;

		fuzz_make_fds(&fds, &pkt, got);
		sent = pkt.len ? transport_send(sv[1], pkt.data, pkt.len, got, pkt.nfds, 0) : 0;
		transport_close_fds(got, pkt.nfds);
		if (pkt.ctl & FUZZ_CTL_POKE)
			fuzz_poke(&fds);
		r = face_read(&s, sv[1], pend, &npend);
		if (sent < 0)
			break;
	}
	/* QEMU goes away: whatever is left of a message is dropped with its descriptors. */
	shutdown(sv[1], SHUT_WR);
	if (r >= 0 && face_read(&s, sv[1], pend, &npend) >= 0)
		fuzz_fail(TARGET, "face", "the end of the connection went unnoticed");
	fuzz_remote_end_connection(&w, &s, TARGET);
	close(sv[1]);
	fuzz_fds_reset(&fds);
	fuzz_remote_check_released(&w, TARGET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_remote_init(&w, TARGET);
	return 0;
}

/* The proxy's view of the device: BAR sizes (from its device info) and config space. */
struct device_view {
	struct bar_window bars;
	uint8_t config[MPQEMU_MAX_CONFIG_SIZE];
};

static void view_init(struct device_view *v)
{
	/* Every kind of BAR the window knows: 32-bit memory, 64-bit memory, I/O. */
	const uint64_t sizes[BAR_WINDOW_NUM_BARS] = { 0x100000, 0, 0x4000, 0, 0x100, 0 };

	bar_window_init(&v->bars, sizes);
	memset(v->config, 0, sizeof(v->config));
}

static uint32_t config_dword(const struct device_view *v, uint32_t off)
{
	return (uint32_t)v->config[off] | (uint32_t)v->config[off + 1] << 8 |
	       (uint32_t)v->config[off + 2] << 16 | (uint32_t)v->config[off + 3] << 24;
}

static int read_register(void *opaque, uint32_t offset, uint32_t *val)
{
	*val = config_dword(opaque, offset);
	return 0;
}

/* What both sides (mpdev-proxy, the remote's mpqemu face) ask of the window, and its answer. */
static void bar_access(struct device_view *v, const struct mpqemu_bar_access *b)
{
	uint64_t off = 0;
	bool moved;
	int bar;

	bar = bar_window_resolve(&v->bars, b->addr, b->size, b->memory, read_register, v, &off,
				 &moved);
	if (bar == -ENXIO)
		return;
	if (bar < 0)
		fuzz_fail(TARGET, "resolve failed although config space always reads", NULL);
	if (bar >= BAR_WINDOW_NUM_BARS || !v->bars.size[bar] || !v->bars.base[bar])
		fuzz_fail(TARGET, "lookup hit a BAR that is not placed", NULL);
	if (v->bars.io[bar] == (b->memory != 0))
		fuzz_fail(TARGET, "lookup hit a BAR of the other kind", NULL);
	if (b->addr - v->bars.base[bar] != off || off > v->bars.size[bar] ||
	    b->size > v->bars.size[bar] - off)
		fuzz_fail(TARGET, "lookup's offset is outside the BAR", NULL);
}

/* The regions both sides install from SYNC_SYSMEM: whole pages inside their entries. */
static void sysmem(const struct mpqemu_msg *m)
{
	const struct mpqemu_sync_sysmem *s = &m->data.sync_sysmem;
	struct mpqemu_ram out[MPQEMU_MAX_FDS];
	uint32_t left_out;
	size_t n = mpqemu_sysmem_regions(m, 4096, out, &left_out);

	for (size_t k = 0; k < n; k++) {
		const struct mpqemu_ram *r = &out[k];
		int i = r->entry;

		if (i < 0 || i >= m->num_fds || (left_out & (1u << i)) || r->fd != m->fds[i])
			fuzz_fail(TARGET, "a region of no (or a left-out) entry", NULL);
		if ((r->gpa | r->size | r->fd_offset) & 4095 || !r->size)
			fuzz_fail(TARGET, "a region of no whole pages", NULL);
		if (r->gpa < s->gpas[i] || r->size > s->sizes[i] ||
		    r->gpa - s->gpas[i] > s->sizes[i] - r->size ||
		    r->fd_offset - (uint64_t)s->offsets[i] != r->gpa - s->gpas[i])
			fuzz_fail(TARGET, "a region outside its entry", NULL);
	}
}

static void translate(struct device_view *v, const struct mpqemu_msg *m)
{
	const struct mpqemu_pci_conf *c = &m->data.pci_conf;

	switch (m->cmd) {
	case MPQEMU_CMD_PCI_CFGWRITE:
		/* mpqemu_validate bounds it: the write fits config space. */
		for (int i = 0; i < c->len; i++)
			v->config[c->addr + (uint32_t)i] = (uint8_t)(c->val >> (8 * i));
		bar_window_config_written(&v->bars, c->addr, (uint32_t)c->len);
		break;
	case MPQEMU_CMD_SYNC_SYSMEM:
		sysmem(m);
		break;
	case MPQEMU_CMD_BAR_READ:
	case MPQEMU_CMD_BAR_WRITE:
		bar_access(v, &m->data.bar_access);
		break;
	case MPQEMU_CMD_DEVICE_RESET:
		view_init(v);
		break;
	default:
		break;
	}
}

static void decode_one(struct device_view *v, struct fuzz_fds *fds, const struct fuzz_packet *pkt)
{
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;
	int got[FUZZ_MAX_FDS];

	memset(&m, 0, sizeof(m));
	for (int i = 0; i < MPQEMU_MAX_FDS; i++)
		m.fds[i] = -1;
	fuzz_make_fds(fds, pkt, got);
	if (pkt->nfds > MPQEMU_MAX_FDS) {
		/* mpqemu_recv refuses these before decoding (EPROTO); so do we. */
		transport_close_fds(got, pkt->nfds);
		return;
	}
	memcpy(m.fds, got, pkt->nfds * sizeof(int));
	m.num_fds = (int)pkt->nfds;
	if (mpqemu_decode(&m, pkt->data, pkt->len, &err) < 0) {
		if (!err.code || !err.msg[0])
			fuzz_fail(TARGET, "a refused message without a reason", NULL);
		if (m.num_fds != 0)
			fuzz_fail(TARGET, "a refused message kept descriptors", NULL);
		return;
	}
	translate(v, &m);
	mpqemu_msg_close_fds(&m);
}

/* The same bytes as one stream, as mpdev-proxy's serve_one() reads it until it gives up. */
static void stream_pass(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;
	struct mpdev_error err;
	struct mpqemu_msg m;
	int sv[2], r;

	if (size > STREAM_MAX)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fuzz_fail(TARGET, "socketpair", NULL);
	/* Nothing reads while we write: a full buffer must end the stream, not block. */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		close(sv[0]);
		close(sv[1]);
		fuzz_fail(TARGET, "O_NONBLOCK", NULL);
	}
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (fuzz_next_packet(&rd, &pkt)) {
		int got[FUZZ_MAX_FDS];

		fuzz_make_fds(&fds, &pkt, got);
		/*
		 * Descriptors need a byte to travel with: an empty record's are
		 * dropped. A full socket buffer ends the stream early, which is
		 * just a shorter input.
		 */
		r = pkt.len ? transport_send(sv[0], pkt.data, pkt.len, got, pkt.nfds, 0) : 0;
		transport_close_fds(got, pkt.nfds);
		if (r < 0)
			break;
	}
	shutdown(sv[0], SHUT_WR);
	do {
		memset(&err, 0, sizeof(err));
		r = mpqemu_recv(sv[1], &m, 0, &err);
		if (r == 1)
			mpqemu_msg_close_fds(&m);
		else if (r < 0 && m.num_fds != 0)
			fuzz_fail(TARGET, "mpqemu_recv failed and kept descriptors", NULL);
	} while (r == 1);
	close(sv[0]);
	close(sv[1]);
	fuzz_fds_reset(&fds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct device_view view;
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;

	baseline_fds = fuzz_count_fds();
	view_init(&view);
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (fuzz_next_packet(&rd, &pkt))
		decode_one(&view, &fds, &pkt);
	fuzz_fds_reset(&fds);
	stream_pass(data, size);
	face_pass(data, size);
	fuzz_check_fds(baseline_fds, TARGET);
	return 0;
}
