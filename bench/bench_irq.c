/*
 * INTx delivery latency through mpdev-remote's IOHUB, beside raw baselines of
 * the same shape between two processes, in the same run:
 *
 *  1. raise -> irqfd: the VMM posts a write of 0x60 to edu's BAR0 (libmpdev
 *     encodes it, one sendmsg); the remote wakes in its loop, recvmsg, decodes
 *     it, edu raises INTx, the IOHUB writes the irqfd; the VMM's poll() on the
 *     irqfd returns and read() drains it. The ack (posted 0x64) and a sync
 *     that follow each cycle are outside the timed interval, so every cycle
 *     starts with the remote idle in epoll_wait. Raw: A sends one packet of
 *     the posted write's size on a SOCK_SEQPACKET socket, B (blocking recv,
 *     or a libevent loop) writes an eventfd, A's poll() + read() returns; the
 *     ack and the sync have raw twins outside the interval too.
 *  2. resample -> re-assert: with the line held (raised, not acked) the VMM
 *     writes the resamplefd, as KVM does on the guest's EOI; the remote's
 *     IOHUB drains it and, the level being still 1, writes the irqfd again;
 *     the VMM's poll() + read() returns. Raw: A writes an eventfd, B reads it
 *     and writes a second eventfd, A waits for that one the same way.
 *
 * Both with every process pinned to CPU 0, and unpinned. Rounds alternate raw
 * and mpdev so that machine noise hits both alike; each figure is the median
 * over rounds of the mean per cycle. The remote's IOHUB counters are checked
 * in every round: one irqfd signal per raise, one re-assert per resample.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench_util.h"
#include "fixed_access.h"
#include "libmpdev.h"
#include "spawn.h"
#include "wire.h"

#define ROUNDS	       7
#define IRQ_ITERS      2000 /* raise -> irqfd cycles a round */
#define RESAMPLE_ITERS 4000 /* resample -> re-assert cycles a round */
#define WARMUP_ITERS   500
#define QUIT_MARK      1000000 /* eventfd value that tells a resample peer to exit */
#define WAIT_MS	       5000

#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK   0x64

/* libmpdev tags the id of a posted write with bit 63 (proxy/client.h). */
#define POSTED_ID_BIT (1ull << 63)

/* Raw peer packets: first byte says what the mpdev twin is. */
#define PKT_RAISE 'R'
#define PKT_ACK	  'A'
#define PKT_SYNC  'S'

static char errbuf[256];

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

/* The size of the Envelope libmpdev sends for a posted 4-byte write to 0x60 without FIXED_ACCESS. */
static size_t envelope_posted_size(void)
{
	Mpdev__Envelope e = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t data[4] = { 1, 0, 0, 0 };

	e.id = POSTED_ID_BIT | 1000;
	e.kind = MPDEV__KIND__KIND_POSTED;
	rw.offset = EDU_IRQ_RAISE;
	rw.data.data = data;
	rw.data.len = sizeof(data);
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	e.region_write = &rw;
	return mpdev__envelope__get_packed_size(&e);
}

static int efd_signal(int fd, uint64_t v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v)) {
		set_err("eventfd write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Waits until fd is readable (poll, bounded: a lost signal fails instead of
 * hanging), then reads it, which resets the count: exactly one signal is
 * expected. poll, not a blocking read: the remote's IOHUB makes its irqfd
 * non-blocking, and that flag is shared with our descriptor (same open file).
 * The raw baselines wait the same way.
 */
static int efd_wait(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t v;
	int r;

	do
		r = poll(&pfd, 1, WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		set_err("eventfd poll: %s", r == 0 ? "no signal within 5 s" : strerror(errno));
		return -1;
	}
	if (read(fd, &v, sizeof(v)) != sizeof(v)) {
		set_err("eventfd read: %s", strerror(errno));
		return -1;
	}
	if (v != 1) {
		set_err("eventfd count %llu, expected exactly 1", (unsigned long long)v);
		return -1;
	}
	return 0;
}

/* ---- raw peers (children) ---- */

struct raw_peer {
	pid_t pid;
	int sock;	/* raise peer: A's end of the socketpair */
	int efd_to_b;	/* resample peer: A writes, B reads */
	int efd_from_b; /* both: B writes, A reads */
};

struct loop_ctx {
	struct event_base *base;
	int sock, efd_in, efd_out;
	int status; /* exit status: 0 after a clean end, 1 after an error */
};

/*
 * B of the raise cycle: a raise packet writes the eventfd, a sync is answered.
 * 0: go on; 1: A closed the socket; -1: error.
 */
static int raise_peer_packet(int sock, int efd)
{
	char buf[256];
	ssize_t n = recv(sock, buf, sizeof(buf), 0);

	if (n <= 0)
		return n == 0 ? 1 : -1;
	if (buf[0] == PKT_RAISE)
		return efd_signal(efd, 1);
	if (buf[0] == PKT_SYNC)
		return send(sock, buf, (size_t)n, 0) == n ? 0 : -1;
	return 0; /* PKT_ACK: nothing to do, as edu's ack signals nothing */
}

/* B of the resample cycle: each signal is answered by one; QUIT_MARK ends it (1). */
static int resample_peer_signal(int efd_in, int efd_out)
{
	uint64_t v;

	if (read(efd_in, &v, sizeof(v)) != sizeof(v))
		return errno == EAGAIN ? 0 : -1;
	if (v >= QUIT_MARK)
		return 1;
	return efd_signal(efd_out, 1);
}

static void loop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_ctx *c = arg;
	int r = c->sock >= 0 ? raise_peer_packet(c->sock, c->efd_out)
			     : resample_peer_signal(c->efd_in, c->efd_out);

	if (r) {
		c->status = r < 0;
		event_base_loopbreak(c->base);
	}
}

/* A forked peer keeps only its own descriptors: others' would hide their EOF. */
static int close_others(const struct loop_ctx *c)
{
	int keep[3] = { c->sock, c->efd_in, c->efd_out };
	unsigned int lo = 3;

	for (int i = 1; i < 3; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];

			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (int i = 0; i < 3; i++) {
		if (keep[i] < (int)lo)
			continue;
		if (keep[i] > (int)lo && close_range(lo, (unsigned int)keep[i] - 1, 0) < 0)
			return -1;
		lo = (unsigned int)keep[i] + 1;
	}
	return close_range(lo, ~0u, 0);
}

static void peer_main(struct loop_ctx *c, int use_loop)
{
	struct event *ev;
	int r;

	/* Never outlive the bench, whatever happens to it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || close_others(c) < 0)
		_exit(1);
	if (!use_loop) {
		do
			r = c->sock >= 0 ? raise_peer_packet(c->sock, c->efd_out)
					 : resample_peer_signal(c->efd_in, c->efd_out);
		while (r == 0);
		_exit(r < 0);
	}
	c->base = event_base_new();
	if (!c->base)
		_exit(1);
	ev = event_new(c->base, c->sock >= 0 ? c->sock : c->efd_in, EV_READ | EV_PERSIST, loop_cb,
		       c);
	if (!ev || event_add(ev, NULL) < 0 || event_base_dispatch(c->base) < 0)
		_exit(1);
	_exit(c->status);
}

/*
 * Starts B: for the raise cycle (resample 0) it serves a socketpair, for the
 * resample cycle an eventfd; with use_loop from a libevent loop, as the remote.
 */
static int start_raw_peer(struct raw_peer *p, int resample, int use_loop)
{
	struct loop_ctx c = { .sock = -1, .efd_in = -1, .efd_out = -1 };
	int sv[2] = { -1, -1 };

	p->pid = -1;
	p->sock = p->efd_to_b = -1;
	p->efd_from_b = eventfd(0, EFD_CLOEXEC);
	if (p->efd_from_b < 0)
		goto fail;
	if (resample) {
		p->efd_to_b = eventfd(0, EFD_CLOEXEC | (use_loop ? EFD_NONBLOCK : 0));
		if (p->efd_to_b < 0)
			goto fail;
	} else if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		goto fail;
	}
	p->pid = fork();
	if (p->pid < 0)
		goto fail;
	if (p->pid == 0) {
		c.sock = sv[1];
		c.efd_in = p->efd_to_b;
		c.efd_out = p->efd_from_b;
		peer_main(&c, use_loop);
	}
	if (sv[1] >= 0)
		close(sv[1]);
	p->sock = sv[0];
	return 0;
fail:
	set_err("starting a raw peer: %s", strerror(errno));
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	return -1;
}

/* Ends B (EOF on its socket, or the quit mark) and reaps it; -1 unless it exited 0. */
static int stop_raw_peer(struct raw_peer *p)
{
	int st = 0, ret = 0;

	if (p->sock >= 0)
		close(p->sock);
	if (p->efd_to_b >= 0) {
		if (p->pid > 0 && efd_signal(p->efd_to_b, QUIT_MARK) < 0)
			ret = -1;
		close(p->efd_to_b);
	}
	if (p->pid > 0 &&
	    (spawn_wait(p->pid, WAIT_MS, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		set_err("raw peer %d did not end cleanly (wait status 0x%x)", (int)p->pid, st);
		ret = -1;
	}
	if (p->efd_from_b >= 0)
		close(p->efd_from_b);
	p->pid = -1;
	p->sock = p->efd_to_b = p->efd_from_b = -1;
	return ret;
}

static int send_pkt(int sock, char kind, size_t len)
{
	char buf[256] = { kind };

	if (send(sock, buf, len, 0) != (ssize_t)len) {
		set_err("send: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Raw raise -> eventfd, µs per cycle; ack and sync untimed, as for mpdev. */
static double raw_raise_us(struct raw_peer *p, size_t len, int iters)
{
	uint64_t sum = 0, t0;
	char buf[256];

	for (int i = 0; i < iters; i++) {
		t0 = bench_now_ns();
		if (send_pkt(p->sock, PKT_RAISE, len) < 0 || efd_wait(p->efd_from_b) < 0)
			return -1;
		sum += bench_now_ns() - t0;
		if (send_pkt(p->sock, PKT_ACK, len) < 0 || send_pkt(p->sock, PKT_SYNC, len) < 0)
			return -1;
		if (recv(p->sock, buf, sizeof(buf), 0) != (ssize_t)len) {
			set_err("raw sync reply: %s", strerror(errno));
			return -1;
		}
	}
	return sum / 1e3 / iters;
}

/* Raw eventfd -> eventfd ping-pong, µs per cycle. */
static double raw_resample_us(struct raw_peer *p, int iters)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < iters; i++)
		if (efd_signal(p->efd_to_b, 1) < 0 || efd_wait(p->efd_from_b) < 0)
			return -1;
	return (bench_now_ns() - t0) / 1e3 / iters;
}

/* ---- mpdev ---- */

struct hub_counters {
	uint64_t signals, resamples, reasserts;
	int found;
};

static void stat_cb(void *opaque, const char *name, uint64_t value)
{
	struct hub_counters *c = opaque;

	if (!strcmp(name, "iohub_irqfd_signals")) {
		c->signals = value;
		c->found++;
	} else if (!strcmp(name, "iohub_resamples")) {
		c->resamples = value;
		c->found++;
	} else if (!strcmp(name, "iohub_reasserts")) {
		c->reasserts = value;
		c->found++;
	}
}

static int hub_counters(struct mpdev *dev, struct hub_counters *c)
{
	memset(c, 0, sizeof(*c));
	if (mpdev_get_stats(dev, stat_cb, c) < 0) {
		set_err("mpdev_get_stats: %s", mpdev_last_error(dev));
		return -1;
	}
	if (c->found != 3) {
		set_err("the remote does not report the iohub_* counters");
		return -1;
	}
	return 0;
}

/* Checks the IOHUB did exactly what the cycles imply since *before. */
static int check_counters(struct mpdev *dev, const struct hub_counters *before, uint64_t signals,
			  uint64_t resamples, uint64_t reasserts)
{
	struct hub_counters now;

	if (hub_counters(dev, &now) < 0)
		return -1;
	if (now.signals - before->signals != signals ||
	    now.resamples - before->resamples != resamples ||
	    now.reasserts - before->reasserts != reasserts) {
		set_err("IOHUB counters: %llu signals, %llu resamples, %llu re-asserts; "
			"expected %llu, %llu, %llu",
			(unsigned long long)(now.signals - before->signals),
			(unsigned long long)(now.resamples - before->resamples),
			(unsigned long long)(now.reasserts - before->reasserts),
			(unsigned long long)signals, (unsigned long long)resamples,
			(unsigned long long)reasserts);
		return -1;
	}
	return 0;
}

static int edu_post(struct mpdev *dev, uint64_t reg)
{
	const uint32_t one = 1;

	if (mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, reg, &one, sizeof(one)) < 0) {
		set_err("posted write to 0x%llx: %s", (unsigned long long)reg,
			mpdev_last_error(dev));
		return -1;
	}
	return 0;
}

static int mp_sync(struct mpdev *dev)
{
	if (mpdev_sync(dev) < 0) {
		set_err("mpdev_sync: %s", mpdev_last_error(dev));
		return -1;
	}
	return 0;
}

/* Posted raise -> irqfd readable, µs per cycle; ack and sync untimed. */
static double mpdev_raise_us(struct mpdev *dev, int irqfd, int iters)
{
	struct hub_counters before;
	uint64_t sum = 0, t0;

	if (hub_counters(dev, &before) < 0)
		return -1;
	for (int i = 0; i < iters; i++) {
		t0 = bench_now_ns();
		if (edu_post(dev, EDU_IRQ_RAISE) < 0 || efd_wait(irqfd) < 0)
			return -1;
		sum += bench_now_ns() - t0;
		if (edu_post(dev, EDU_IRQ_ACK) < 0 || mp_sync(dev) < 0)
			return -1;
	}
	if (check_counters(dev, &before, (uint64_t)iters, 0, 0) < 0)
		return -1;
	return sum / 1e3 / iters;
}

/* With the line held: resamplefd write -> irqfd readable again, µs per cycle. */
static double mpdev_resample_us(struct mpdev *dev, int irqfd, int resamplefd, int iters)
{
	struct hub_counters before;
	uint64_t t0, t1;

	if (hub_counters(dev, &before) < 0)
		return -1;
	/* Raise and keep the line: the assert is consumed before the clock starts. */
	if (edu_post(dev, EDU_IRQ_RAISE) < 0 || efd_wait(irqfd) < 0 || mp_sync(dev) < 0)
		return -1;
	t0 = bench_now_ns();
	for (int i = 0; i < iters; i++)
		if (efd_signal(resamplefd, 1) < 0 || efd_wait(irqfd) < 0)
			return -1;
	t1 = bench_now_ns();
	if (edu_post(dev, EDU_IRQ_ACK) < 0 || mp_sync(dev) < 0)
		return -1;
	if (check_counters(dev, &before, (uint64_t)iters + 1, (uint64_t)iters, (uint64_t)iters) < 0)
		return -1;
	return (t1 - t0) / 1e3 / iters;
}

/* ---- one run: pinned (cpu >= 0) or unpinned (-1) ---- */

struct result {
	double raw_raise, loop_raise, mp_raise;
	double raw_res, loop_res, mp_res;
};

static int measure(struct mpdev *dev, int irqfd, int resamplefd, struct raw_peer *peers, size_t len,
		   struct result *res)
{
	double raw_raise[ROUNDS], loop_raise[ROUNDS], mp_raise[ROUNDS];
	double raw_res[ROUNDS], loop_res[ROUNDS], mp_res[ROUNDS];

	/* Warm up every path. */
	if (raw_raise_us(&peers[0], len, WARMUP_ITERS) < 0 ||
	    raw_raise_us(&peers[1], len, WARMUP_ITERS) < 0 ||
	    mpdev_raise_us(dev, irqfd, WARMUP_ITERS) < 0 ||
	    raw_resample_us(&peers[2], WARMUP_ITERS) < 0 ||
	    raw_resample_us(&peers[3], WARMUP_ITERS) < 0 ||
	    mpdev_resample_us(dev, irqfd, resamplefd, WARMUP_ITERS) < 0)
		return -1;
	for (int r = 0; r < ROUNDS; r++) {
		raw_raise[r] = raw_raise_us(&peers[0], len, IRQ_ITERS);
		loop_raise[r] = raw_raise_us(&peers[1], len, IRQ_ITERS);
		mp_raise[r] = mpdev_raise_us(dev, irqfd, IRQ_ITERS);
		raw_res[r] = raw_resample_us(&peers[2], RESAMPLE_ITERS);
		loop_res[r] = raw_resample_us(&peers[3], RESAMPLE_ITERS);
		mp_res[r] = mpdev_resample_us(dev, irqfd, resamplefd, RESAMPLE_ITERS);
		if (raw_raise[r] < 0 || loop_raise[r] < 0 || mp_raise[r] < 0 || raw_res[r] < 0 ||
		    loop_res[r] < 0 || mp_res[r] < 0)
			return -1;
	}
	res->raw_raise = bench_median(raw_raise, ROUNDS);
	res->loop_raise = bench_median(loop_raise, ROUNDS);
	res->mp_raise = bench_median(mp_raise, ROUNDS);
	res->raw_res = bench_median(raw_res, ROUNDS);
	res->loop_res = bench_median(loop_res, ROUNDS);
	res->mp_res = bench_median(mp_res, ROUNDS);
	return 0;
}

static int run(int cpu, bool fixed, struct result *res)
{
	const char *args[] = { "--device", "edu", NULL };
	struct raw_peer peers[4] = { { .pid = -1, .sock = -1, .efd_to_b = -1, .efd_from_b = -1 },
				     { .pid = -1, .sock = -1, .efd_to_b = -1, .efd_from_b = -1 },
				     { .pid = -1, .sock = -1, .efd_to_b = -1, .efd_from_b = -1 },
				     { .pid = -1, .sock = -1, .efd_to_b = -1, .efd_from_b = -1 } };
	struct mpdev *dev = NULL;
	int irqfd = -1, resamplefd = -1, mp_sock = -1, st = 0, ret = -1, reported, r;
	pid_t mp_pid = -1;
	struct mpdev_options opts = { 0 };
	char bin[4096];

	/* peers: raise plain, raise libevent, resample plain, resample libevent. */
	for (int i = 0; i < 4; i++)
		if (start_raw_peer(&peers[i], i >= 2, i & 1) < 0)
			goto out;
	spawn_find_remote(bin, sizeof(bin));
	if (spawn_remote(bin, args, &mp_pid, &mp_sock) < 0) {
		set_err("cannot start %s", bin);
		goto out;
	}
	if (bench_pin(0, cpu) < 0 || bench_pin(mp_pid, cpu) < 0)
		goto out;
	for (int i = 0; i < 4; i++)
		if (bench_pin(peers[i].pid, cpu) < 0)
			goto out;
	/* Before issue 15 every access was an Envelope; now libmpdev sends fixed-layout records. */
	opts.features = ~0ull & ~MPDEV_FEATURE_SHM_RING;
	if (!fixed)
		opts.features &= ~MPDEV_FEATURE_FIXED_ACCESS;
	r = mpdev_connect_fd(mp_sock, &opts, &dev);
	mp_sock = -1; /* the handle owns it now, or closed it */
	if (r < 0) {
		set_err("connect: %s", mpdev_connect_error());
		goto out;
	}
	irqfd = eventfd(0, EFD_CLOEXEC);
	resamplefd = eventfd(0, EFD_CLOEXEC);
	if (irqfd < 0 || resamplefd < 0) {
		set_err("eventfd: %s", strerror(errno));
		goto out;
	}
	if (mpdev_set_intx_irqfd(dev, 0, 0, irqfd, resamplefd) < 0) {
		set_err("mpdev_set_intx_irqfd: %s", mpdev_last_error(dev));
		goto out;
	}
	if (!!(mpdev_features(dev) & MPDEV_FEATURE_FIXED_ACCESS) != fixed) {
		set_err("FEATURE_FIXED_ACCESS not as asked");
		goto out;
	}
	/* The raw packet has the size of what mpdev sends in this mode. */
	ret = measure(dev, irqfd, resamplefd, peers,
		      fixed ? FIXED_ACCESS_REQ_SIZE : envelope_posted_size(), res);
out:
	reported = ret < 0;
	if (reported)
		fprintf(stderr, "bench_irq (%s): %s\n", cpu < 0 ? "unpinned" : "pinned", errbuf);
	mpdev_close(dev);
	if (mp_sock >= 0)
		close(mp_sock);
	if (irqfd >= 0)
		close(irqfd);
	if (resamplefd >= 0)
		close(resamplefd);
	if (mp_pid > 0 &&
	    (spawn_wait(mp_pid, WAIT_MS, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		set_err("mpdev-remote did not end cleanly (wait status 0x%x)", st);
		ret = -1;
	}
	for (int i = 0; i < 4; i++)
		if (stop_raw_peer(&peers[i]) < 0)
			ret = -1;
	if (bench_pin(0, -1) < 0)
		ret = -1;
	if (ret < 0 && !reported)
		fprintf(stderr, "bench_irq (%s): %s\n", cpu < 0 ? "unpinned" : "pinned", errbuf);
	return ret;
}

static void print_row(const char *label, double raw, double loop, double mp)
{
	printf("  %-18s %9.2f us %9.2f us %9.2f us %8.2f %8.2f\n", label, raw, loop, mp, mp / raw,
	       mp / loop);
}

int main(void)
{
	struct result pinned_env, pinned, unpinned;
	uint64_t t0 = bench_now_ns();

	if (run(0, false, &pinned_env) < 0 || run(0, true, &pinned) < 0 ||
	    run(-1, true, &unpinned) < 0)
		return 1;
	printf("bench_irq: median of %d rounds (mean per cycle in each round); %d raise cycles and "
	       "%d resample cycles a round; %.1f s\n",
	       ROUNDS, IRQ_ITERS, RESAMPLE_ITERS, (bench_now_ns() - t0) / 1e9);
	printf("raise -> irqfd: VMM posts a write of 0x60 (a %u B fixed-layout record, or a %zu B\n"
	       "  Envelope before issue 15) -> remote wakes in epoll_wait, recvmsg, decodes, edu\n"
	       "  raises INTx, the IOHUB signals the irqfd -> the VMM's poll() on the irqfd returns\n"
	       "  and read() drains it. Ack (posted 0x64) and a sync follow, untimed. Raw: A sends\n"
	       "  one SOCK_SEQPACKET packet of the same size, B writes an eventfd, A's poll() +\n"
	       "  read() returns.\n",
	       FIXED_ACCESS_REQ_SIZE, envelope_posted_size());
	printf("resample -> re-assert: line held; VMM writes the resamplefd (as KVM on EOI) -> "
	       "remote\n  wakes, drains it, the IOHUB sees level 1 and writes the irqfd -> the "
	       "VMM's poll() +\n  read() returns. Raw: A writes an eventfd, B reads it and writes "
	       "a second one, A waits\n  for it the same way.\n");
	printf("Raw B serves with a blocking call, or (\"raw+loop\") from a libevent loop as the "
	       "remote does.\n");
	printf("IOHUB counters checked every round: one irqfd signal per raise, one re-assert per "
	       "resample.\n\n");
	printf("  %-18s %12s %12s %12s %8s %8s\n", "us per cycle", "raw", "raw+loop", "mpdev",
	       "mp/raw", "mp/loop");
	printf("raise -> irqfd\n");
	print_row("pinned, envelope", pinned_env.raw_raise, pinned_env.loop_raise,
		  pinned_env.mp_raise);
	print_row("pinned, fixed", pinned.raw_raise, pinned.loop_raise, pinned.mp_raise);
	print_row("unpinned, fixed", unpinned.raw_raise, unpinned.loop_raise, unpinned.mp_raise);
	printf("resample -> re-assert\n");
	print_row("pinned", pinned.raw_res, pinned.loop_res, pinned.mp_res);
	print_row("pinned (again)", pinned_env.raw_res, pinned_env.loop_res, pinned_env.mp_res);
	print_row("unpinned", unpinned.raw_res, unpinned.loop_res, unpinned.mp_res);
	return 0;
}
