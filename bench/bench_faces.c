/*
 * One client harness, six paths, same run (issue 13, point 5): the round
 * trip of a 4-byte BAR0 read of edu (the ident register) and of an
 * acknowledged 4-byte BAR0 write (the liveness register) through
 *
 *   (a) raw socket ping-pongs of exactly each protocol's message sizes, with
 *       a trivial echo server process of the same shape (blocking recv and
 *       send): native (SOCK_SEQPACKET, mpdev's packet sizes), mpqemu
 *       (SOCK_STREAM, QEMU's MPQemuMsg header + BarAccessMsg, 8-byte RET) and
 *       vfio-user (SOCK_STREAM, 16-byte header + region access); and the
 *       same echo served from a libevent loop on a non-blocking socket, as
 *       mpdev-remote serves, to show what the loop alone costs;
 *   (b) QEMU's own x-remote machine serving its edu over mpqemu;
 *   (c) mpdev-remote --face mpqemu, one hop;
 *   (d) mpdev-proxy + mpdev-remote (mpqemu in front, native behind);
 *   (e) mpdev-remote --face vfio-user;
 *   (f) mpdev-remote's native face through libmpdev.
 *
 * (b), (c) and (d) are driven by the same mpqemu client code, as QEMU's
 * x-pci-proxy-dev drives them: BAR0 placed by a config write to 0x10, memory
 * decoding enabled in the command register, then BAR_READ / BAR_WRITE at the
 * absolute address, each answered by a RET. The stream baselines run the
 * very same client code against the echo servers; the native one sends
 * unencoded packets of libmpdev's sizes (as bench_rtt). So a ratio is what
 * the server side (and for (f) libmpdev) adds over two context switches and
 * the socket calls.
 *
 * Every path is checked before it is timed (the ident reads back as edu's,
 * the liveness register inverts what was written), so a path that answers
 * but misses the device cannot pass as fast. A path that cannot be started
 * (no QEMU, a remote without the face) is printed as unavailable, with the
 * reason, and the others go on.
 *
 * Rounds alternate every path (forwards, then backwards) so that the
 * machine's noise hits all of them alike; each figure is the median over
 * rounds. Once with every process pinned to CPU 0 (the bench pins itself
 * before it starts anything, so every child and thread inherits it), once
 * unpinned. Beside each round trip: the time the bench and the server's
 * processes spent on a CPU per operation (schedstat), which, pinned, is the
 * round trip less what other processes of a shared machine took.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench_util.h"
#include "libmpdev.h"
#include "mpqemu.h"
#include "spawn.h"
#include "wire.h"

#define DEFAULT_ROUNDS 7
#define DEFAULT_ITERS  4000
#define MAX_ROUNDS     64
#define OP_MS	       5000   /* any one answer */
#define START_MS       15000  /* the first answer of a process just started */
#define STOP_MS	       3000   /* a child to exit once its socket is closed */
#define IDLE_MS	       120000 /* an echo server that hears nothing this long ends */

/* edu's register layout (QEMU's hw/misc/edu.c, remote/emu/edu.h). */
#define EDU_REG_IDENT	 0x00
#define EDU_REG_LIVENESS 0x04
#define EDU_IDENT	 0x010000edu
/* Where the mpqemu paths place BAR0 (1 MiB, so 1 MiB aligned), as a BIOS would. */
#define BAR0_ADDR 0xfe000000u

/* vfio-user (QEMU's docs/interop/vfio-user.rst; numbering as hw/vfio-user/protocol.h). */
#define VFU_HDR		  16
#define VFU_ACCESS	  16 /* u64 offset, u32 region, u32 count */
#define VFU_CMD_VERSION	  1
#define VFU_CMD_REGION_RD 9
#define VFU_CMD_REGION_WR 10
#define VFU_FLAG_REPLY	  0x1u
#define VFU_FLAG_ERROR	  0x20u
#define VFU_REGION_BAR0	  0
#define VFU_MAX_MSG	  4096

enum op { OP_READ, OP_WRITE, NOPS };
static const char *const op_name[NOPS] = { "read", "write" };

/* What a path's client speaks. */
enum wire {
	WIRE_NATIVE_RAW, /* fixed-size packets, no encoding: the native baseline */
	WIRE_LIBMPDEV,
	WIRE_MPQEMU,
	WIRE_VFU,
};

enum path_id {
	RAW_NATIVE,
	RAW_MPQEMU,
	RAW_VFU,
	LOOP_NATIVE,
	LOOP_MPQEMU,
	LOOP_VFU,
	XREMOTE,
	MPQ_DIRECT,
	VIA_PROXY,
	VFU_FACE,
	NATIVE_FACE,
	NPATHS,
};

/* One figure of one path in one run: medians over rounds, in µs per operation. */
struct stats {
	double wall, lo, hi;   /* the round trip, and its lowest and highest round */
	double client, server; /* time on a CPU: the bench's, the server's processes' */
};

struct path {
	const char *label;
	enum wire wire;
	int baseline; /* the raw path to compare with, or -1 */
	bool loop;    /* (a) only: the echo server runs a libevent loop */
	/* per run */
	pid_t pid;
	int sock;
	int log_fd; /* memfd: the child's stderr, for the reason it failed */
	struct mpdev *dev;
	uint16_t msg_id;
	char why[240]; /* not empty: unavailable, and why */
	double us[NOPS][MAX_ROUNDS], client[NOPS][MAX_ROUNDS], server[NOPS][MAX_ROUNDS];
	struct stats st[NOPS];
};

static struct path paths[NPATHS] = {
	[RAW_NATIVE] = { .label = "(a) raw native SEQPACKET",
			 .wire = WIRE_NATIVE_RAW,
			 .baseline = -1 },
	[RAW_MPQEMU] = { .label = "(a) raw mpqemu STREAM", .wire = WIRE_MPQEMU, .baseline = -1 },
	[RAW_VFU] = { .label = "(a) raw vfio-user STREAM", .wire = WIRE_VFU, .baseline = -1 },
	/* Not baselines: what the event loop the remote requires costs on its own. */
	[LOOP_NATIVE] = { .label = "(a) raw native, libevent echo",
			  .wire = WIRE_NATIVE_RAW,
			  .baseline = RAW_NATIVE,
			  .loop = true },
	[LOOP_MPQEMU] = { .label = "(a) raw mpqemu, libevent echo",
			  .wire = WIRE_MPQEMU,
			  .baseline = RAW_MPQEMU,
			  .loop = true },
	[LOOP_VFU] = { .label = "(a) raw vfio-user, libevent echo",
		       .wire = WIRE_VFU,
		       .baseline = RAW_VFU,
		       .loop = true },
	[XREMOTE] = { .label = "(b) QEMU x-remote, mpqemu",
		      .wire = WIRE_MPQEMU,
		      .baseline = RAW_MPQEMU },
	[MPQ_DIRECT] = { .label = "(c) mpdev-remote --face mpqemu",
			 .wire = WIRE_MPQEMU,
			 .baseline = RAW_MPQEMU },
	[VIA_PROXY] = { .label = "(d) mpdev-proxy + mpdev-remote",
			.wire = WIRE_MPQEMU,
			.baseline = RAW_MPQEMU },
	[VFU_FACE] = { .label = "(e) mpdev-remote --face vfio-user",
		       .wire = WIRE_VFU,
		       .baseline = RAW_VFU },
	[NATIVE_FACE] = { .label = "(f) mpdev-remote native, libmpdev",
			  .wire = WIRE_LIBMPDEV,
			  .baseline = RAW_NATIVE },
};

/* The (a) rows: an echo server, no device behind it (they come first in enum path_id). */
static bool is_echo(const struct path *p)
{
	return p - paths <= LOOP_VFU;
}

/* Message sizes, for the header line and the raw servers. */
static size_t native_req[NOPS], native_rep[NOPS];
#define MPQ_REQ (MPQEMU_HDR_SIZE + sizeof(struct mpqemu_bar_access))
#define MPQ_RET (MPQEMU_HDR_SIZE + sizeof(uint64_t))
static const size_t vfu_req[NOPS] = { VFU_HDR + VFU_ACCESS, VFU_HDR + VFU_ACCESS + 4 };
static const size_t vfu_rep[NOPS] = { VFU_HDR + VFU_ACCESS + 4, VFU_HDR + VFU_ACCESS };

static char qemu_version[64];

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The packet sizes libmpdev and the remote really use for these two requests and replies. */
static void native_sizes(void)
{
	Mpdev__Envelope e = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
	Mpdev__RegionReadReply rd = MPDEV__REGION_READ_REPLY__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t data[4] = { 1, 2, 3, 4 };

	/* Ids of this run's magnitude (tens of thousands): 3-byte varints. */
	e.id = 100000;
	e.kind = MPDEV__KIND__KIND_REQUEST;
	rr.offset = EDU_REG_IDENT;
	rr.size = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	e.region_read = &rr;
	native_req[OP_READ] = mpdev__envelope__get_packed_size(&e);
	rw.offset = EDU_REG_LIVENESS;
	rw.data.data = data;
	rw.data.len = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	e.region_write = &rw;
	native_req[OP_WRITE] = mpdev__envelope__get_packed_size(&e);
	e.kind = MPDEV__KIND__KIND_REPLY;
	rd.data.data = data;
	rd.data.len = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_READ_REPLY;
	e.region_read_reply = &rd;
	native_rep[OP_READ] = mpdev__envelope__get_packed_size(&e);
	e.body_case = MPDEV__ENVELOPE__BODY__NOT_SET;
	native_rep[OP_WRITE] = mpdev__envelope__get_packed_size(&e);
}

/* ---- sockets ---------------------------------------------------------------------------- */

static int set_timeout(int sock, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int send_all(int sock, const void *buf, size_t len)
{
	ssize_t n = send(sock, buf, len, MSG_NOSIGNAL);

	if (n == (ssize_t)len)
		return 0;
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	return -EIO; /* a short send on a blocking socket: only past the timeout */
}

/*
 * Exactly len bytes, in one recv as a client that knows the reply's size
 * makes it (the kernel's timeout bounds the wait; a short count is one).
 * *got (if not NULL): how many bytes did arrive.
 */
static int recv_exact(int sock, void *buf, size_t len, size_t *got)
{
	ssize_t n = recv(sock, buf, len, MSG_WAITALL);

	if (got)
		*got = n > 0 ? (size_t)n : 0;
	if (n == (ssize_t)len)
		return 0;
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	return -ETIMEDOUT;
}

/* ---- the mpqemu client: (b), (c), (d) and their raw baseline ---------------------------- */

static int mpq_request(struct path *p, const struct mpqemu_msg *m, uint64_t *ret)
{
	struct mpqemu_msg r;
	int e;

	/* QEMU sends header and data as one piece of its MPQemuMsg, and so do we. */
	e = send_all(p->sock, m, MPQEMU_HDR_SIZE + m->size);
	if (e < 0)
		return e;
	e = recv_exact(p->sock, &r, MPQ_RET, NULL);
	if (e < 0)
		return e;
	if (r.cmd != MPQEMU_CMD_RET || r.size != sizeof(uint64_t))
		return -EPROTO;
	*ret = r.data.u64;
	return 0;
}

static int mpq_bar(struct path *p, int cmd, uint64_t off, uint64_t val, uint64_t *ret)
{
	struct mpqemu_msg m = { .cmd = cmd, .size = sizeof(struct mpqemu_bar_access) };

	m.data.bar_access.addr = BAR0_ADDR + off;
	m.data.bar_access.val = val;
	m.data.bar_access.size = 4;
	m.data.bar_access.memory = 1;
	return mpq_request(p, &m, ret);
}

static int mpq_cfg(struct path *p, int cmd, uint32_t addr, uint32_t val, int len, uint64_t *ret)
{
	struct mpqemu_msg m = { .cmd = cmd, .size = sizeof(struct mpqemu_pci_conf) };

	m.data.pci_conf.addr = addr;
	m.data.pci_conf.val = val;
	m.data.pci_conf.len = len;
	return mpq_request(p, &m, ret);
}

/* ---- the vfio-user client: (e) and its raw baseline ------------------------------------- */

static void vfu_header(uint8_t *b, uint16_t id, uint16_t cmd, uint32_t size, uint32_t flags)
{
	put_le(b, id, 2);
	put_le(b + 2, cmd, 2);
	put_le(b + 4, size, 4);
	put_le(b + 8, flags, 4);
	put_le(b + 12, 0, 4);
}

/* A reply header that answers request id/cmd with size bytes and no error. */
static int vfu_check_reply(const uint8_t *b, uint16_t id, uint16_t cmd, size_t size)
{
	uint32_t flags = (uint32_t)get_le(b + 8, 4);

	if (flags & VFU_FLAG_ERROR)
		return -(int)(get_le(b + 12, 4) ? get_le(b + 12, 4) : EIO);
	if (get_le(b, 2) != id || get_le(b + 2, 2) != cmd || (flags & 0xf) != VFU_FLAG_REPLY ||
	    (size && get_le(b + 4, 4) != size))
		return -EPROTO;
	return 0;
}

static int vfu_region(struct path *p, enum op op, uint64_t off, uint32_t *val)
{
	uint16_t cmd = op == OP_READ ? VFU_CMD_REGION_RD : VFU_CMD_REGION_WR;
	uint16_t id = ++p->msg_id;
	uint8_t b[VFU_HDR + VFU_ACCESS + 8];
	size_t got;
	int e;

	vfu_header(b, id, cmd, (uint32_t)vfu_req[op], 0);
	put_le(b + VFU_HDR, off, 8);
	put_le(b + VFU_HDR + 8, VFU_REGION_BAR0, 4);
	put_le(b + VFU_HDR + 12, 4, 4);
	if (op == OP_WRITE)
		put_le(b + VFU_HDR + VFU_ACCESS, *val, 4);
	e = send_all(p->sock, b, vfu_req[op]);
	if (e < 0)
		return e;
	e = recv_exact(p->sock, b, vfu_rep[op], &got);
	/* An error reply is a bare header: its errno, not the timeout that ended the wait. */
	if (e < 0 && got >= VFU_HDR && (get_le(b + 8, 4) & VFU_FLAG_ERROR))
		return vfu_check_reply(b, id, cmd, 0);
	if (e < 0)
		return e;
	e = vfu_check_reply(b, id, cmd, vfu_rep[op]);
	if (e < 0)
		return e;
	if (get_le(b + VFU_HDR, 8) != off || get_le(b + VFU_HDR + 12, 4) != 4)
		return -EPROTO;
	if (op == OP_READ)
		*val = (uint32_t)get_le(b + VFU_HDR + VFU_ACCESS, 4);
	return 0;
}

/* VERSION 0.1, as QEMU's vfio-user-pci opens a connection. */
static int vfu_handshake(struct path *p)
{
	static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"max_data_xfer_size\":1048576}}";
	uint8_t b[VFU_MAX_MSG];
	size_t len = VFU_HDR + 4 + sizeof(caps), rest;
	uint16_t id = ++p->msg_id;
	int e;

	vfu_header(b, id, VFU_CMD_VERSION, (uint32_t)len, 0);
	put_le(b + VFU_HDR, 0, 2);
	put_le(b + VFU_HDR + 2, 1, 2);
	memcpy(b + VFU_HDR + 4, caps, sizeof(caps));
	e = send_all(p->sock, b, len);
	if (e < 0)
		return e;
	e = recv_exact(p->sock, b, VFU_HDR, NULL);
	if (e < 0)
		return e;
	e = vfu_check_reply(b, id, VFU_CMD_VERSION, 0);
	if (e < 0)
		return e;
	len = get_le(b + 4, 4);
	if (len < VFU_HDR + 4 || len > sizeof(b))
		return -EPROTO;
	rest = len - VFU_HDR;
	e = recv_exact(p->sock, b + VFU_HDR, rest, NULL);
	if (e < 0)
		return e;
	return get_le(b + VFU_HDR, 2) == 0 ? 0 : -EPROTONOSUPPORT;
}

/* ---- one operation on any path ---------------------------------------------------------- */

static int path_read(struct path *p, uint64_t off, uint32_t *v)
{
	uint8_t b[256] = { 'R' };
	uint64_t ret;
	int e;

	switch (p->wire) {
	case WIRE_NATIVE_RAW:
		e = send_all(p->sock, b, native_req[OP_READ]);
		if (e < 0)
			return e;
		if (recv(p->sock, b, sizeof(b), 0) != (ssize_t)native_rep[OP_READ])
			return errno == EAGAIN ? -ETIMEDOUT : -EPROTO;
		*v = EDU_IDENT;
		return 0;
	case WIRE_LIBMPDEV:
		return mpdev_region_read(p->dev, MPDEV_REGION_BAR0, off, v, 4);
	case WIRE_MPQEMU:
		e = mpq_bar(p, MPQEMU_CMD_BAR_READ, off, 0, &ret);
		*v = (uint32_t)ret;
		return e;
	case WIRE_VFU:
		return vfu_region(p, OP_READ, off, v);
	}
	return -EINVAL;
}

static int path_write(struct path *p, uint64_t off, uint32_t v)
{
	uint8_t b[256] = { 'W' };
	uint64_t ret;

	switch (p->wire) {
	case WIRE_NATIVE_RAW:
		if (send_all(p->sock, b, native_req[OP_WRITE]) < 0 ||
		    recv(p->sock, b, sizeof(b), 0) != (ssize_t)native_rep[OP_WRITE])
			return -EPROTO;
		return 0;
	case WIRE_LIBMPDEV:
		return mpdev_region_write(p->dev, MPDEV_REGION_BAR0, off, &v, 4);
	case WIRE_MPQEMU:
		return mpq_bar(p, MPQEMU_CMD_BAR_WRITE, off, v, &ret);
	case WIRE_VFU:
		return vfu_region(p, OP_WRITE, off, &v);
	}
	return -EINVAL;
}

/* Adds the first field of /proc/PID/task/TID/schedstat, ns on a CPU, of every thread of pid. */
static uint64_t threads_cpu_ns(pid_t pid)
{
	char path[64], line[128];
	struct dirent *t;
	uint64_t ns = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((t = readdir(d)) != NULL) {
		FILE *f;

		if (t->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/schedstat", (int)pid, t->d_name);
		f = fopen(path, "re");
		if (f) {
			if (fgets(line, sizeof(line), f))
				ns += strtoull(line, NULL, 10);
			fclose(f);
		}
	}
	closedir(d);
	return ns;
}

/*
 * How long a path's server has been on a CPU: all its threads and, one
 * level down, its children's (mpdev-proxy's remote). Unlike wall time this
 * leaves out what other processes on a shared machine took.
 */
static uint64_t server_cpu_ns(const struct path *p)
{
	char path[64];
	uint64_t ns;
	FILE *f;
	int child;

	if (p->pid <= 0)
		return 0;
	ns = threads_cpu_ns(p->pid);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)p->pid, (int)p->pid);
	f = fopen(path, "re");
	if (f) {
		while (fscanf(f, "%d", &child) == 1)
			ns += threads_cpu_ns(child);
		fclose(f);
	}
	return ns;
}

/* iters operations: 0 with µs per operation (wall, ours on a CPU, the server's), or -errno. */
static int time_ops(struct path *p, enum op op, int iters, double us[3])
{
	uint64_t c0 = threads_cpu_ns(getpid()), s0 = server_cpu_ns(p), t0 = bench_now_ns();
	uint32_t v;
	int e;

	for (int i = 0; i < iters; i++) {
		e = op == OP_READ ? path_read(p, EDU_REG_IDENT, &v)
				  : path_write(p, EDU_REG_LIVENESS, (uint32_t)i);
		if (e < 0)
			return e;
	}
	us[0] = (double)(bench_now_ns() - t0) / 1e3 / iters;
	us[1] = (double)(threads_cpu_ns(getpid()) - c0) / 1e3 / iters;
	us[2] = (double)(server_cpu_ns(p) - s0) / 1e3 / iters;
	return 0;
}

/* ---- the raw echo servers (a) ----------------------------------------------------------- */

/* The length of the message at the start of buf (have bytes): 0 if not known yet, -1 if bad. */
static ssize_t stream_msg_len(enum wire w, const uint8_t *buf, size_t have)
{
	uint64_t n;

	if (have < 16)
		return 0;
	if (w == WIRE_MPQEMU) {
		n = get_le(buf + 8, 8);
		return n <= MPQEMU_MAX_DATA ? (ssize_t)(MPQEMU_HDR_SIZE + n) : -1;
	}
	n = get_le(buf + 4, 4);
	return n >= VFU_HDR && n <= VFU_MAX_MSG ? (ssize_t)n : -1;
}

/*
 * The answer a real server gives to a BAR access in req: RET (mpqemu), or
 * the reply header with the access echoed and the data (vfio-user). The
 * raw paths skip the set-up, so nothing else is asked of an echo server.
 */
static size_t stream_reply(enum wire w, const uint8_t *req, uint8_t *out)
{
	uint16_t cmd = (uint16_t)get_le(req + 2, 2);
	size_t len;

	if (w == WIRE_MPQEMU) {
		struct mpqemu_msg r = { .cmd = MPQEMU_CMD_RET, .size = sizeof(uint64_t) };

		r.data.u64 = get_le(req, 4) == MPQEMU_CMD_BAR_READ ? EDU_IDENT : 0;
		memcpy(out, &r, MPQ_RET);
		return MPQ_RET;
	}
	len = vfu_rep[cmd == VFU_CMD_REGION_RD ? OP_READ : OP_WRITE];
	vfu_header(out, (uint16_t)get_le(req, 2), cmd, (uint32_t)len, VFU_FLAG_REPLY);
	memcpy(out + VFU_HDR, req + VFU_HDR, VFU_ACCESS);
	if (cmd == VFU_CMD_REGION_RD)
		put_le(out + VFU_HDR + VFU_ACCESS, EDU_IDENT, 4);
	return len;
}

struct echo {
	int sock;
	enum wire wire;
	int recv_flags; /* MSG_DONTWAIT when served from the event loop */
	struct event_base *base;
	size_t have;
	uint8_t buf[VFU_MAX_MSG * 2];
};

/*
 * One recv, and an answer to every whole request it completed (a request
 * arriving in pieces takes more than one). 0, or -1 when the connection
 * ends (EOF, an error, a message no client of ours sends).
 */
static int echo_feed(struct echo *e)
{
	uint8_t out[VFU_MAX_MSG];
	ssize_t n, need;

	n = recv(e->sock, e->buf + e->have, sizeof(e->buf) - e->have, e->recv_flags);
	if (n < 0 && errno == EAGAIN)
		return e->recv_flags ? 0 : -1; /* blocking: SO_RCVTIMEO, idle too long */
	if (n <= 0)
		return -1;
	if (e->wire == WIRE_NATIVE_RAW) {
		/* A packet is a message; its first byte says which reply size. */
		memset(out, 0, sizeof(out));
		return send_all(e->sock, out, native_rep[e->buf[0] == 'R' ? OP_READ : OP_WRITE]) < 0
			       ? -1
			       : 0;
	}
	e->have += (size_t)n;
	while ((need = stream_msg_len(e->wire, e->buf, e->have)) > 0 && (size_t)need <= e->have) {
		if (send_all(e->sock, out, stream_reply(e->wire, e->buf, out)) < 0)
			return -1;
		memmove(e->buf, e->buf + need, e->have - (size_t)need);
		e->have -= (size_t)need;
	}
	return need < 0 ? -1 : 0;
}

static void echo_readable(evutil_socket_t fd, short what, void *arg)
{
	struct echo *e = arg;

	if ((what & EV_TIMEOUT) || echo_feed(e) < 0)
		event_base_loopbreak(e->base);
}

/*
 * Blocking recv/send (the raw baseline), or, with loop, the same served
 * from a libevent loop on a non-blocking socket as mpdev-remote serves:
 * what the event loop alone costs.
 */
static void echo_serve(int sock, enum wire w, bool loop)
{
	struct timeval idle = { .tv_sec = IDLE_MS / 1000 };
	static struct echo e;
	struct event *ev;

	e.sock = sock;
	e.wire = w;
	if (!loop) {
		if (set_timeout(sock, IDLE_MS) < 0)
			return;
		while (echo_feed(&e) == 0)
			;
		return;
	}
	e.recv_flags = MSG_DONTWAIT;
	e.base = event_base_new();
	ev = e.base ? event_new(e.base, sock, EV_READ | EV_PERSIST, echo_readable, &e) : NULL;
	/* With EV_PERSIST the timeout is an idle timeout, re-armed by every request. */
	if (ev && event_add(ev, &idle) == 0)
		event_base_dispatch(e.base);
	if (ev)
		event_free(ev);
	if (e.base)
		event_base_free(e.base);
}

static void child_common(void)
{
	sigset_t none;

	/* If the bench dies, so does every child: nothing is left serving a dead socket. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static int start_echo(struct path *p)
{
	int type = p->wire == WIRE_NATIVE_RAW ? SOCK_SEQPACKET : SOCK_STREAM, sv[2];

	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	p->pid = fork();
	if (p->pid < 0) {
		int e = -errno;

		close(sv[0]);
		close(sv[1]);
		return e;
	}
	if (p->pid == 0) {
		child_common();
		/*
		 * Forked, not exec'd: drop every other descriptor of the bench
		 * (the other paths' sockets among them), or a server would keep
		 * another's peer open and that one would never see its EOF.
		 */
		if (dup2(sv[1], 3) < 0 || close_range(4, ~0u, 0) < 0)
			_exit(126);
		echo_serve(3, p->wire, p->loop);
		_exit(0);
	}
	close(sv[1]);
	p->sock = sv[0];
	return 0;
}

/* ---- the real servers ------------------------------------------------------------------- */

/*
 * Runs argv with one end of a socketpair of type as fd 3, stdin from
 * /dev/null, stdout and stderr into a memfd (read back only to say why a
 * path is unavailable; a file never blocks the child as a full pipe would,
 * and our stdout stays the table's alone). env
 * (NAME=VALUE or NULL) is added to the child's environment.
 */
static int start_exec(struct path *p, const char *const *argv, int type, const char *env)
{
	int sv[2], e;

	p->log_fd = memfd_create("bench_faces-stderr", MFD_CLOEXEC);
	if (p->log_fd < 0)
		return -errno;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	p->pid = fork();
	if (p->pid < 0) {
		e = -errno;
		close(sv[0]);
		close(sv[1]);
		return e;
	}
	if (p->pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		child_common();
		/* dup2 clears close-on-exec on 0-3; every other fd of ours has it. */
		if (null < 0 || dup2(null, 0) < 0 || dup2(p->log_fd, 1) < 0 ||
		    dup2(p->log_fd, 2) < 0)
			_exit(126);
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(sv[1], 3) < 0)
			_exit(126);
		if (env)
			putenv((char *)env);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	p->sock = sv[0];
	return 0;
}

/* The first line the child wrote to stderr, or "". */
static const char *child_said(const struct path *p, char *buf, size_t len)
{
	ssize_t n = p->log_fd >= 0 ? pread(p->log_fd, buf, len - 1, 0) : -1;
	char *nl;

	buf[n > 0 ? n : 0] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	return buf;
}

static void set_why(struct path *p, const char *what, int e)
{
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 5 * 1000 * 1000 };
	char said[160];
	pid_t r = 0;
	int st;

	/* A child that closed the connection is usually exiting: give it 200 ms to say how. */
	for (int i = 0; p->pid > 0 && i < 40; i++) {
		r = waitpid(p->pid, &st, WNOHANG);
		if (r != 0)
			break;
		nanosleep(&tick, NULL);
	}
	child_said(p, said, sizeof(said));
	if (p->pid > 0 && r == p->pid) {
		p->pid = -1;
		snprintf(p->why, sizeof(p->why), "%s: %s (exited %d)%s%s", what, strerror(-e),
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), *said ? ": " : "",
			 said);
	} else {
		snprintf(p->why, sizeof(p->why), "%s: %s%s%s", what, strerror(-e),
			 *said ? ": " : "", said);
	}
}

/* Closes the connection (the servers exit on EOF) and reaps the child, killing it if slow. */
static void stop_path(struct path *p)
{
	if (p->dev)
		mpdev_close(p->dev); /* it owns the socket */
	else if (p->sock >= 0)
		close(p->sock);
	p->dev = NULL;
	p->sock = -1;
	if (p->pid > 0)
		spawn_wait(p->pid, STOP_MS, NULL);
	p->pid = -1;
	if (p->log_fd >= 0)
		close(p->log_fd);
	p->log_fd = -1;
}

/* The edu behind the path answers as edu: ident, and liveness inverting what was written. */
static int check_device(struct path *p)
{
	uint32_t v = 0;
	int e;

	e = path_read(p, EDU_REG_IDENT, &v);
	if (e < 0)
		return e;
	if (v != EDU_IDENT)
		return -ENODEV;
	if (is_echo(p))
		return 0; /* an echo server has no device: the reply's shape was checked */
	e = path_write(p, EDU_REG_LIVENESS, 0x12345678u);
	if (e < 0)
		return e;
	e = path_read(p, EDU_REG_LIVENESS, &v);
	if (e < 0)
		return e;
	return v == ~0x12345678u ? 0 : -ENODEV;
}

/*
 * Program BAR0 and enable memory decoding, as the guest's firmware would
 * through x-pci-proxy-dev, and read the BAR back.
 *
 * QEMU's x-remote starts serving its socket from a machine-init-done
 * notifier and resets the machine right after that notifier returns, i.e.
 * once it first waits for a message: configuration that arrived before
 * then is wiped (its next BAR access fails, "Bad address"). With
 * x-pci-proxy-dev the guest programs the BAR long after; here one request
 * answered, then a pause, stands for that.
 */
static int mpq_setup(struct path *p, bool settle)
{
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };
	uint64_t v;
	int e;

	e = mpq_cfg(p, MPQEMU_CMD_PCI_CFGREAD, 0x00, 0, 2, &v);
	if (e < 0)
		return e;
	if (v != 0x1234)
		return -ENODEV;
	if (settle)
		nanosleep(&pause, NULL);
	e = mpq_cfg(p, MPQEMU_CMD_PCI_CFGWRITE, 0x10, BAR0_ADDR, 4, &v);
	if (e == 0)
		e = mpq_cfg(p, MPQEMU_CMD_PCI_CFGWRITE, 0x04, 0x0002, 2, &v);
	if (e == 0)
		e = mpq_cfg(p, MPQEMU_CMD_PCI_CFGREAD, 0x10, 0, 4, &v);
	if (e < 0)
		return e;
	return v == BAR0_ADDR ? 0 : -ENODEV;
}

static void find_beside(const char *env, const char *name, char *buf, size_t len)
{
	const char *v = getenv(env);
	char self[4096];
	ssize_t n;

	if (v && *v) {
		snprintf(buf, len, "%s", v);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(buf, len, "%s/%s", dirname(self), name);
		if (access(buf, X_OK) == 0)
			return;
	}
	snprintf(buf, len, "%s", name);
}

static char remote_bin[4096], proxy_bin[4096], qemu_bin[4096], remote_env[4200];

static void start_path(enum path_id id)
{
	const char *native[] = { remote_bin, "--fd", "3", "--device", "edu", NULL };
	const char *mpq[] = {
		remote_bin, "--fd", "3", "--device", "edu", "--face", "mpqemu", NULL
	};
	const char *vfu[] = { remote_bin, "--fd",   "3",	 "--device",
			      "edu",	  "--face", "vfio-user", NULL };
	const char *proxy[] = { proxy_bin, "--fd", "3", "--spawn-remote", "--device", "edu", NULL };
	/*
	 * QEMU 7.2's edu refuses to realize without MSI, and the x-remote
	 * machine declares MSI working only with vfio-user=on; that switch
	 * changes DMA and interrupt routing, not the mpqemu BAR access path.
	 */
	const char *xremote[] = { qemu_bin,
				  "-machine",
				  "x-remote,vfio-user=on",
				  "-device",
				  "edu,id=edu0",
				  "-object",
				  "x-remote-object,id=robj1,devid=edu0,fd=3",
				  "-nographic",
				  "-nodefaults",
				  NULL };
	struct path *p = &paths[id];
	int e;

	p->why[0] = '\0';
	p->pid = -1;
	p->sock = p->log_fd = -1;
	p->dev = NULL;
	p->msg_id = 0;
	switch (id) {
	case RAW_NATIVE:
	case RAW_MPQEMU:
	case RAW_VFU:
	case LOOP_NATIVE:
	case LOOP_MPQEMU:
	case LOOP_VFU:
		e = start_echo(p);
		break;
	case XREMOTE:
		e = start_exec(p, xremote, SOCK_STREAM, NULL);
		break;
	case MPQ_DIRECT:
		e = start_exec(p, mpq, SOCK_STREAM, NULL);
		break;
	case VIA_PROXY:
		e = start_exec(p, proxy, SOCK_STREAM, remote_env);
		break;
	case VFU_FACE:
		e = start_exec(p, vfu, SOCK_STREAM, NULL);
		break;
	case NATIVE_FACE:
		e = start_exec(p, native, SOCK_SEQPACKET, NULL);
		break;
	default:
		e = -EINVAL;
	}
	if (e < 0) {
		set_why(p, "cannot start", e);
		stop_path(p);
		return;
	}
	e = set_timeout(p->sock, START_MS);
	if (e == 0 && p->wire == WIRE_LIBMPDEV) {
		int sock = p->sock;

		p->sock = -1; /* libmpdev owns it from here, also on failure */
		e = mpdev_connect_fd(sock, NULL, &p->dev);
		if (e < 0) {
			snprintf(p->why, sizeof(p->why), "connect: %s", mpdev_connect_error());
			stop_path(p);
			return;
		}
	} else if (e == 0 && p->wire == WIRE_MPQEMU && !is_echo(p)) {
		e = mpq_setup(p, id == XREMOTE);
	} else if (e == 0 && p->wire == WIRE_VFU && !is_echo(p)) {
		e = vfu_handshake(p);
	}
	if (e == 0 && p->sock >= 0)
		e = set_timeout(p->sock, OP_MS);
	if (e == 0)
		e = check_device(p);
	if (e < 0) {
		set_why(p, e == -ENODEV ? "not edu's answers" : "set-up", e);
		stop_path(p);
	}
}

/* ---- runs and report -------------------------------------------------------------------- */

static void run(int cpu, int rounds, int iters, const char *only)
{
	int order[NPATHS];
	double us[3];

	/* Children inherit the affinity: all of them, and all their threads, land on cpu. */
	bench_pin(0, cpu);
	for (int i = 0; i < NPATHS; i++) {
		if (strchr(only, paths[i].label[1])) {
			start_path((enum path_id)i);
		} else {
			snprintf(paths[i].why, sizeof(paths[i].why), "not selected (-p)");
			paths[i].pid = paths[i].sock = paths[i].log_fd = -1;
		}
	}
	for (int i = 0; i < NPATHS; i++)
		for (int op = 0; op < NOPS; op++)
			if (!paths[i].why[0])
				time_ops(&paths[i], (enum op)op, iters / 4 + 1, us); /* warm-up */
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < NPATHS; i++)
			order[i] = r % 2 ? NPATHS - 1 - i : i;
		for (int k = 0; k < NPATHS; k++) {
			struct path *p = &paths[order[k]];

			for (int op = 0; op < NOPS && !p->why[0]; op++) {
				int e = time_ops(p, (enum op)op, iters, us);

				if (e < 0) {
					char what[64];

					snprintf(what, sizeof(what), "%s in round %d", op_name[op],
						 r);
					set_why(p, what, e);
					stop_path(p);
				}
				p->us[op][r] = us[0];
				p->client[op][r] = us[1];
				p->server[op][r] = us[2];
			}
		}
	}
	for (int i = 0; i < NPATHS; i++) {
		struct path *p = &paths[i];

		for (int op = 0; op < NOPS && !p->why[0]; op++) {
			struct stats *st = &p->st[op];

			st->wall = bench_median(p->us[op], rounds);
			st->client = bench_median(p->client[op], rounds);
			st->server = bench_median(p->server[op], rounds);
			st->lo = st->hi = p->us[op][0];
			for (int r = 1; r < rounds; r++) {
				st->lo = p->us[op][r] < st->lo ? p->us[op][r] : st->lo;
				st->hi = p->us[op][r] > st->hi ? p->us[op][r] : st->hi;
			}
		}
		stop_path(p);
	}
	bench_pin(0, -1);
}

static const char *path_sizes(enum path_id id, enum op op, char *buf, size_t len)
{
	switch (paths[id].wire) {
	case WIRE_NATIVE_RAW:
	case WIRE_LIBMPDEV:
		snprintf(buf, len, "%zu/%zu B", native_req[op], native_rep[op]);
		break;
	case WIRE_MPQEMU:
		snprintf(buf, len, "%zu/%zu B", MPQ_REQ, MPQ_RET);
		break;
	case WIRE_VFU:
		snprintf(buf, len, "%zu/%zu B", vfu_req[op], vfu_rep[op]);
		break;
	}
	return buf;
}

struct result {
	struct stats st[NPATHS][NOPS];
	char why[NPATHS][240];
};

static void save(struct result *res)
{
	for (int i = 0; i < NPATHS; i++) {
		memcpy(res->st[i], paths[i].st, sizeof(res->st[i]));
		snprintf(res->why[i], sizeof(res->why[i]), "%s", paths[i].why);
	}
}

/*
 * The ratio of the time both sides spent on a CPU: pinned, that is the round
 * trip less what other processes took meanwhile, so it moves less with the
 * machine's load than the wall-clock ratio (which the targets are about).
 */
static double cpu_ratio(const struct result *res, int a, int b, int op)
{
	const struct stats *x = &res->st[a][op], *y = &res->st[b][op];

	return (x->client + x->server) / (y->client + y->server);
}

static void print_table(const char *title, const struct result *res)
{
	char sz[32];

	printf("\n%s\n", title);
	printf("%-36s %-5s %9s %9s %13s %8s %6s %8s %8s %6s\n", "path", "op", "req/rep", "us/op",
	       "rounds lo-hi", "raw us", "ratio", "cpu: us", "server", "ratio");
	for (int i = 0; i < NPATHS; i++) {
		for (int op = 0; op < NOPS; op++) {
			const struct stats *st = &res->st[i][op];
			int b = paths[i].baseline;

			printf("%-36s %-5s %9s ", op == 0 ? paths[i].label : "", op_name[op],
			       path_sizes((enum path_id)i, (enum op)op, sz, sizeof(sz)));
			if (res->why[i][0]) {
				printf("unavailable: %s\n", res->why[i]);
				break;
			}
			snprintf(sz, sizeof(sz), "%.2f-%.2f", st->lo, st->hi);
			printf("%9.2f %13s", st->wall, sz);
			if (b >= 0 && !res->why[b][0])
				printf(" %8.2f %6.2f", res->st[b][op].wall,
				       st->wall / res->st[b][op].wall);
			else
				printf(" %8s %6s", "", "");
			printf(" %8.2f %8.2f", st->client, st->server);
			if (b >= 0 && !res->why[b][0])
				printf(" %6.2f", cpu_ratio(res, i, b, op));
			printf("\n");
		}
	}
}

/* Prints one target line; returns 1 if it was measured and missed. */
static void target(const char *mode, const struct result *res, enum path_id a, enum path_id b,
		   double limit, const char *what)
{
	for (int op = 0; op < NOPS; op++) {
		double r;

		printf("  %-9s %-5s %-30s ", mode, op_name[op], what);
		if (res->why[a][0] || res->why[b][0]) {
			printf("not measured (%s unavailable)\n",
			       res->why[a][0] ? paths[a].label : paths[b].label);
			continue;
		}
		r = res->st[a][op].wall / res->st[b][op].wall;
		printf("%5.3f  %-8s (on-CPU ratio %.3f)\n", r, r <= limit ? "met" : "NOT met",
		       cpu_ratio(res, a, b, op));
	}
}

static void print_targets(const char *mode, const struct result *res)
{
	target(mode, res, MPQ_DIRECT, XREMOTE, 0.8, "(c) <= 0.8 x (b)");
	target(mode, res, MPQ_DIRECT, RAW_MPQEMU, 1.1, "(c) <= 1.1 x raw mpqemu");
	target(mode, res, VFU_FACE, RAW_VFU, 1.1, "(e) <= 1.1 x raw vfio-user");
	target(mode, res, NATIVE_FACE, RAW_NATIVE, 1.1, "(f) <= 1.1 x raw native");
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "re");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, " ")] = '\0';
}

/* "7.2.22" from `qemu --version`, bounded like every other wait; "" if it cannot run. */
static void find_qemu_version(void)
{
	const char *argv[] = { qemu_bin, "--version", NULL };
	struct path p = { .sock = -1, .log_fd = -1, .pid = -1 };
	char out[256], *v;

	qemu_version[0] = '\0';
	if (start_exec(&p, argv, SOCK_STREAM, NULL) == 0) {
		spawn_wait(p.pid, OP_MS, NULL);
		p.pid = -1;
	}
	v = strstr(child_said(&p, out, sizeof(out)), "version ");
	if (v)
		sscanf(v + 8, "%63[0-9.]", qemu_version);
	stop_path(&p);
}

int main(int argc, char **argv)
{
	int rounds = DEFAULT_ROUNDS, iters = DEFAULT_ITERS, c, modes = 3;
	const char *only = "abcdef";
	struct result pinned = { 0 }, unpinned = { 0 };
	char la0[32], la1[32], date[64];
	struct utsname u;
	time_t now = time(NULL);

	while ((c = getopt(argc, argv, "r:n:m:p:h")) != -1) {
		switch (c) {
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'n':
			iters = atoi(optarg);
			break;
		case 'p':
			only = optarg; /* for profiling one path: the (a) rows always run */
			break;
		case 'm':
			modes = !strcmp(optarg, "pinned") ? 1 : !strcmp(optarg, "unpinned") ? 2 : 3;
			break;
		default:
			fprintf(stderr,
				"usage: bench_faces [-r ROUNDS] [-n OPS_PER_ROUND] "
				"[-m pinned|unpinned|both] [-p abcdef]\n"
				"  $MPDEV_REMOTE, $MPDEV_PROXY, $MPDEV_QEMU name the binaries\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!strchr(only, 'a')) {
		static char with_a[16];

		snprintf(with_a, sizeof(with_a), "a%.14s", only);
		only = with_a;
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || iters < 1) {
		fprintf(stderr, "bench_faces: 1 <= rounds <= %d, ops >= 1\n", MAX_ROUNDS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	native_sizes();
	spawn_find_remote(remote_bin, sizeof(remote_bin));
	find_beside("MPDEV_PROXY", "mpdev-proxy", proxy_bin, sizeof(proxy_bin));
	snprintf(qemu_bin, sizeof(qemu_bin), "%s",
		 getenv("MPDEV_QEMU") && *getenv("MPDEV_QEMU") ? getenv("MPDEV_QEMU")
							       : "qemu-system-x86_64");
	snprintf(remote_env, sizeof(remote_env), "MPDEV_REMOTE=%s", remote_bin);
	find_qemu_version();
	if (qemu_version[0]) {
		static char label[96];

		snprintf(label, sizeof(label), "(b) QEMU %s x-remote, mpqemu", qemu_version);
		paths[XREMOTE].label = label;
	}
	loadavg(la0, sizeof(la0));
	if (modes & 1)
		run(0, rounds, iters, only);
	save(&pinned);
	if (modes & 2)
		run(-1, rounds, iters, only);
	save(&unpinned);
	loadavg(la1, sizeof(la1));

	uname(&u);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("bench_faces: 4-byte BAR0 read (edu ident) and acknowledged 4-byte write "
	       "(liveness)\n");
	printf("%s, %s %s, %ld CPUs online, load %s -> %s; median of %d alternating rounds of "
	       "%d ops\n",
	       date, u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), la0, la1, rounds, iters);
	printf("raw baselines: the same client code against a blocking echo server of the same "
	       "message sizes;\n\"libevent echo\": that server run from a libevent loop, as the "
	       "remote runs\n");
	if (modes & 1)
		print_table("pinned: every process on CPU 0", &pinned);
	if (modes & 2)
		print_table("unpinned", &unpinned);
	printf("\ntargets (issue 13)\n");
	if (modes & 1)
		print_targets("pinned", &pinned);
	if (modes & 2)
		print_targets("unpinned", &unpinned);
	return 0;
}
