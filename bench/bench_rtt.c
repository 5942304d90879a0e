/*
 * Round trip of a 4-byte BAR read through libmpdev -> mpdev-remote -> reply,
 * beside a raw SOCK_SEQPACKET ping-pong between two processes with packets of
 * the same sizes, in the same run; and posted BAR writes per second beside
 * raw one-way packets per second. Both sides pinned to one CPU, and unpinned.
 * mpdev runs twice, on two connections to one remote: with accesses as
 * protobuf Envelopes ("envelope", what every access was before issue 15) and
 * as fixed-layout records (FEATURE_FIXED_ACCESS, the default now).
 *
 * Rounds alternate raw and mpdev so that machine noise hits both alike; each
 * figure is the median over rounds.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define ROUNDS	     7
#define MAX_ROUNDS   31
#define RTT_ITERS    20000
#define POSTED_ITERS 100000

/* The packet sizes mpdev's Envelopes have for a 4-byte read, its reply and a posted write. */
static void envelope_packet_sizes(size_t *req, size_t *rep, size_t *posted)
{
	Mpdev__Envelope e = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
	Mpdev__RegionReadReply rd = MPDEV__REGION_READ_REPLY__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t data[4] = { 1, 2, 3, 4 };

	e.id = 1000000;
	e.kind = MPDEV__KIND__KIND_REQUEST;
	rr.size = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	e.region_read = &rr;
	*req = mpdev__envelope__get_packed_size(&e);
	e.kind = MPDEV__KIND__KIND_REPLY;
	rd.data.data = data;
	rd.data.len = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_READ_REPLY;
	e.region_read_reply = &rd;
	*rep = mpdev__envelope__get_packed_size(&e);
	e.kind = MPDEV__KIND__KIND_POSTED;
	/* libmpdev marks posted ids with bit 63 (see proxy/client.h): a 10-byte varint. */
	e.id = 1000000 | (1ull << 63);
	rw.offset = 4;
	rw.data.data = data;
	rw.data.len = 4;
	e.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	e.region_write = &rw;
	*posted = mpdev__envelope__get_packed_size(&e);
}

struct echo {
	size_t rep_len;
	struct event_base *base;
};

static void echo_readable(evutil_socket_t fd, short what, void *arg)
{
	struct echo *e = arg;
	char buf[256], out[256] = { 0 };
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	if (n <= 0) {
		event_base_loopbreak(e->base);
		return;
	}
	if (buf[0] != 'B')
		send(fd, out, e->rep_len, 0);
}

/*
 * Raw peer: answers every request-sized packet; burst packets (first byte
 * 'B') get no answer, the end-of-burst packet does. With use_loop it serves
 * from a libevent loop, to show what the event loop alone costs.
 */
static pid_t start_raw_peer(int *sock, size_t rep_len, int use_loop)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char buf[256], out[256] = { 0 };
		ssize_t n;

		close(sv[0]);
		if (use_loop) {
			struct echo e = { .rep_len = rep_len, .base = event_base_new() };
			struct event *ev =
				event_new(e.base, sv[1], EV_READ | EV_PERSIST, echo_readable, &e);

			event_add(ev, NULL);
			event_base_dispatch(e.base);
			_exit(0);
		}
		while ((n = recv(sv[1], buf, sizeof(buf), 0)) > 0) {
			/* First byte 'B': a burst packet, no answer; 'E': end of burst. */
			if (buf[0] == 'B')
				continue;
			if (send(sv[1], out, rep_len, 0) < 0)
				break;
		}
		_exit(0);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static double raw_rtt_us(int sock, size_t req_len, size_t rep_len)
{
	char buf[256] = { 0 };
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < RTT_ITERS; i++) {
		if (send(sock, buf, req_len, 0) < 0 ||
		    recv(sock, buf, sizeof(buf), 0) != (ssize_t)rep_len)
			return -1;
	}
	return (bench_now_ns() - t0) / 1e3 / RTT_ITERS;
}

static double raw_oneway_per_s(int sock, size_t len)
{
	char buf[256] = { 'B' };
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < POSTED_ITERS; i++)
		if (send(sock, buf, len, 0) < 0)
			return -1;
	buf[0] = 'E';
	if (send(sock, buf, len, 0) < 0 || recv(sock, buf, sizeof(buf), 0) < 0)
		return -1;
	return POSTED_ITERS / ((bench_now_ns() - t0) / 1e9);
}

static double mpdev_rtt_us(struct mpdev *dev)
{
	uint32_t v;
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < RTT_ITERS; i++)
		if (mpdev_region_read(dev, MPDEV_REGION_BAR0, 0, &v, 4) < 0)
			return -1;
	return (bench_now_ns() - t0) / 1e3 / RTT_ITERS;
}

static double mpdev_posted_per_s(struct mpdev *dev)
{
	uint64_t t0 = bench_now_ns();

	for (uint32_t i = 0; i < POSTED_ITERS; i++)
		if (mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, 4, &i, 4) < 0)
			return -1;
	if (mpdev_sync(dev) < 0)
		return -1;
	return POSTED_ITERS / ((bench_now_ns() - t0) / 1e9);
}

static int rounds = ROUNDS;

struct result {
	double raw_rtt, loop_rtt, env_rtt, fix_rtt, raw_rate, env_rate, fix_rate;
};

static int connect_mode(int sock, bool fixed, struct mpdev **dev)
{
	struct mpdev_options o = { .features = ~0ull & ~MPDEV_FEATURE_SHM_RING };

	if (!fixed)
		o.features &= ~MPDEV_FEATURE_FIXED_ACCESS;
	if (mpdev_connect_fd(sock, &o, dev) < 0) {
		fprintf(stderr, "bench_rtt: connect: %s\n", mpdev_connect_error());
		return -1;
	}
	if (!!(mpdev_features(*dev) & MPDEV_FEATURE_FIXED_ACCESS) != fixed) {
		fprintf(stderr, "bench_rtt: the remote %s FEATURE_FIXED_ACCESS\n",
			fixed ? "does not offer" : "forced");
		return -1;
	}
	return 0;
}

/* One remote per mode: a remote serves one proxy at a time. */
static int start_remote(const char *bin, bool fixed, pid_t *pid, struct mpdev **dev, int cpu)
{
	const char *args[] = { "--device", "edu", NULL };
	int sock;

	if (spawn_remote(bin, args, pid, &sock) < 0)
		return -1;
	bench_pin(*pid, cpu);
	return connect_mode(sock, fixed, dev);
}

static int run(int cpu, struct result *res)
{
	double raw_rtt[MAX_ROUNDS], loop_rtt[MAX_ROUNDS], env_rtt[MAX_ROUNDS], fix_rtt[MAX_ROUNDS];
	double raw_rate[MAX_ROUNDS], env_rate[MAX_ROUNDS], fix_rate[MAX_ROUNDS];
	struct mpdev *env = NULL, *fix = NULL;
	char bin[4096];
	int raw_sock, loop_sock, st;
	pid_t raw_pid, loop_pid, env_pid, fix_pid;

	spawn_find_remote(bin, sizeof(bin));
	raw_pid = start_raw_peer(&raw_sock, FIXED_ACCESS_REPLY_SIZE, 0);
	loop_pid = start_raw_peer(&loop_sock, FIXED_ACCESS_REPLY_SIZE, 1);
	if (raw_pid < 0 || loop_pid < 0) {
		fprintf(stderr, "bench_rtt: cannot start peers\n");
		return 1;
	}
	bench_pin(0, cpu);
	bench_pin(raw_pid, cpu);
	bench_pin(loop_pid, cpu);
	if (start_remote(bin, false, &env_pid, &env, cpu) < 0 ||
	    start_remote(bin, true, &fix_pid, &fix, cpu) < 0)
		return 1;
	/* Warm up every path. */
	raw_rtt_us(raw_sock, FIXED_ACCESS_REQ_SIZE, FIXED_ACCESS_REPLY_SIZE);
	raw_rtt_us(loop_sock, FIXED_ACCESS_REQ_SIZE, FIXED_ACCESS_REPLY_SIZE);
	mpdev_rtt_us(env);
	mpdev_rtt_us(fix);
	for (int r = 0; r < rounds; r++) {
		raw_rtt[r] = raw_rtt_us(raw_sock, FIXED_ACCESS_REQ_SIZE, FIXED_ACCESS_REPLY_SIZE);
		loop_rtt[r] = raw_rtt_us(loop_sock, FIXED_ACCESS_REQ_SIZE, FIXED_ACCESS_REPLY_SIZE);
		env_rtt[r] = mpdev_rtt_us(env);
		fix_rtt[r] = mpdev_rtt_us(fix);
		raw_rate[r] = raw_oneway_per_s(raw_sock, FIXED_ACCESS_REQ_SIZE);
		env_rate[r] = mpdev_posted_per_s(env);
		fix_rate[r] = mpdev_posted_per_s(fix);
		if (raw_rtt[r] < 0 || loop_rtt[r] < 0 || env_rtt[r] < 0 || fix_rtt[r] < 0 ||
		    raw_rate[r] < 0 || env_rate[r] < 0 || fix_rate[r] < 0) {
			fprintf(stderr, "bench_rtt: round %d failed: %s / %s\n", r,
				mpdev_last_error(env), mpdev_last_error(fix));
			return 1;
		}
	}
	res->raw_rtt = bench_median(raw_rtt, rounds);
	res->loop_rtt = bench_median(loop_rtt, rounds);
	res->env_rtt = bench_median(env_rtt, rounds);
	res->fix_rtt = bench_median(fix_rtt, rounds);
	res->raw_rate = bench_median(raw_rate, rounds);
	res->env_rate = bench_median(env_rate, rounds);
	res->fix_rate = bench_median(fix_rate, rounds);
	mpdev_close(env);
	mpdev_close(fix);
	close(raw_sock);
	close(loop_sock);
	spawn_wait(env_pid, 5000, &st);
	spawn_wait(fix_pid, 5000, &st);
	spawn_wait(raw_pid, 5000, &st);
	spawn_wait(loop_pid, 5000, &st);
	bench_pin(0, -1);
	return 0;
}

static void print_rtt(const char *what, const struct result *r)
{
	printf("%-26s %9.2f us %9.2f us %5.2f %9.2f us %5.2f\n", what, r->raw_rtt, r->env_rtt,
	       r->env_rtt / r->raw_rtt, r->fix_rtt, r->fix_rtt / r->raw_rtt);
}

static void print_rate(const char *what, const struct result *r)
{
	printf("%-26s %12.0f %12.0f %5.2f %12.0f %5.2f\n", what, r->raw_rate, r->env_rate,
	       r->env_rate / r->raw_rate, r->fix_rate, r->fix_rate / r->raw_rate);
}

int main(int argc, char **argv)
{
	struct result pinned, unpinned;
	size_t req_len, rep_len, posted_len;
	bool pinned_only = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pinned-only"))
			pinned_only = true;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_rtt [--pinned-only] [--rounds N (1-%d)]\n",
				MAX_ROUNDS);
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "bench_rtt: --rounds is 1 to %d\n", MAX_ROUNDS);
		return 2;
	}
	envelope_packet_sizes(&req_len, &rep_len, &posted_len);
	if (run(0, &pinned) || (!pinned_only && run(-1, &unpinned)))
		return 1;
	printf("bench_rtt: median of %d rounds; fixed-layout packets %u B request, %u B reply "
	       "(the raw peer's sizes); envelopes %zu B, %zu B, %zu B posted\n",
	       rounds, FIXED_ACCESS_REQ_SIZE, FIXED_ACCESS_REPLY_SIZE, req_len, rep_len,
	       posted_len);
	printf("%-26s %12s %12s %5s %12s %5s\n", "4-byte BAR read", "raw", "envelope", "ratio",
	       "fixed", "ratio");
	print_rtt("  pinned to cpu 0", &pinned);
	if (!pinned_only)
		print_rtt("  unpinned", &unpinned);
	printf("%-26s %9.2f us %9.2f us %5.2f   (the server loop alone: raw echo served by "
	       "libevent)\n",
	       "  pinned, libevent echo", pinned.raw_rtt, pinned.loop_rtt,
	       pinned.loop_rtt / pinned.raw_rtt);
	printf("%-26s %12s %12s %5s %12s %5s\n", "posted BAR writes / s", "raw 1-way", "envelope",
	       "ratio", "fixed", "ratio");
	print_rate("  pinned to cpu 0", &pinned);
	if (!pinned_only)
		print_rate("  unpinned", &unpinned);
	return 0;
}
