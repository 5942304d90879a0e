/*
 * Round trip of a 4-byte BAR read through libmpdev -> mpdev-remote -> reply,
 * beside a raw SOCK_SEQPACKET ping-pong between two processes with packets of
 * the same sizes, in the same run; and posted BAR writes per second beside
 * raw one-way packets per second. Both sides pinned to one CPU, and unpinned.
 *
 * Rounds alternate raw and mpdev so that machine noise hits both alike; each
 * figure is the median over rounds.
 */
#include <errno.h>
#include <sched.h>
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
#include "libmpdev.h"
#include "spawn.h"
#include "wire.h"

#define ROUNDS	     7
#define RTT_ITERS    20000
#define POSTED_ITERS 100000

/* The packet sizes mpdev really uses for a 4-byte read and its reply. */
static void mpdev_packet_sizes(size_t *req, size_t *rep, size_t *posted)
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

struct result {
	double raw_rtt, loop_rtt, mpdev_rtt, raw_rate, mpdev_rate;
};

static int run(int cpu, struct result *res)
{
	const char *args[] = { "--device", "edu", NULL };
	double raw_rtt[ROUNDS], loop_rtt[ROUNDS], mp_rtt[ROUNDS], raw_rate[ROUNDS], mp_rate[ROUNDS];
	size_t req_len, rep_len, posted_len;
	struct mpdev *dev = NULL;
	char bin[4096];
	int raw_sock, loop_sock, mp_sock, st;
	pid_t raw_pid, loop_pid, mp_pid;

	mpdev_packet_sizes(&req_len, &rep_len, &posted_len);
	spawn_find_remote(bin, sizeof(bin));
	raw_pid = start_raw_peer(&raw_sock, rep_len, 0);
	loop_pid = start_raw_peer(&loop_sock, rep_len, 1);
	if (raw_pid < 0 || loop_pid < 0 || spawn_remote(bin, args, &mp_pid, &mp_sock) < 0) {
		fprintf(stderr, "bench_rtt: cannot start peers\n");
		return 1;
	}
	bench_pin(0, cpu);
	bench_pin(raw_pid, cpu);
	bench_pin(loop_pid, cpu);
	bench_pin(mp_pid, cpu);
	if (mpdev_connect_fd(mp_sock, NULL, &dev) < 0) {
		fprintf(stderr, "bench_rtt: connect: %s\n", mpdev_connect_error());
		return 1;
	}
	/* Warm up both paths. */
	raw_rtt_us(raw_sock, req_len, rep_len);
	raw_rtt_us(loop_sock, req_len, rep_len);
	mpdev_rtt_us(dev);
	for (int r = 0; r < ROUNDS; r++) {
		raw_rtt[r] = raw_rtt_us(raw_sock, req_len, rep_len);
		loop_rtt[r] = raw_rtt_us(loop_sock, req_len, rep_len);
		mp_rtt[r] = mpdev_rtt_us(dev);
		raw_rate[r] = raw_oneway_per_s(raw_sock, posted_len);
		mp_rate[r] = mpdev_posted_per_s(dev);
		if (raw_rtt[r] < 0 || loop_rtt[r] < 0 || mp_rtt[r] < 0 || raw_rate[r] < 0 ||
		    mp_rate[r] < 0) {
			fprintf(stderr, "bench_rtt: round %d failed: %s\n", r,
				mpdev_last_error(dev));
			return 1;
		}
	}
	res->raw_rtt = bench_median(raw_rtt, ROUNDS);
	res->loop_rtt = bench_median(loop_rtt, ROUNDS);
	res->mpdev_rtt = bench_median(mp_rtt, ROUNDS);
	res->raw_rate = bench_median(raw_rate, ROUNDS);
	res->mpdev_rate = bench_median(mp_rate, ROUNDS);
	mpdev_close(dev);
	close(raw_sock);
	close(loop_sock);
	spawn_wait(mp_pid, 5000, &st);
	spawn_wait(raw_pid, 5000, &st);
	spawn_wait(loop_pid, 5000, &st);
	bench_pin(0, -1);
	return 0;
}

int main(void)
{
	struct result pinned, unpinned;
	size_t req_len, rep_len, posted_len;

	mpdev_packet_sizes(&req_len, &rep_len, &posted_len);
	if (run(0, &pinned) || run(-1, &unpinned))
		return 1;
	printf("bench_rtt: median of %d rounds; packets %zu B request, %zu B reply, %zu B posted "
	       "write\n",
	       ROUNDS, req_len, rep_len, posted_len);
	printf("%-34s %12s %12s %8s\n", "4-byte BAR read round trip", "raw", "mpdev", "ratio");
	printf("%-34s %9.2f us %9.2f us %8.2f\n", "  pinned to cpu 0", pinned.raw_rtt,
	       pinned.mpdev_rtt, pinned.mpdev_rtt / pinned.raw_rtt);
	printf("%-34s %9.2f us %9.2f us %8.2f\n", "  unpinned", unpinned.raw_rtt,
	       unpinned.mpdev_rtt, unpinned.mpdev_rtt / unpinned.raw_rtt);
	printf("%-34s %9.2f us %9.2f us %8.2f   (server loop alone: raw echo served by libevent)\n",
	       "  pinned, libevent echo", pinned.raw_rtt, pinned.loop_rtt,
	       pinned.loop_rtt / pinned.raw_rtt);
	printf("%-34s %12s %12s %8s\n", "posted BAR writes (per second)", "raw 1-way", "mpdev",
	       "raw/mpdev");
	printf("%-34s %12.0f %12.0f %8.2f\n", "  pinned to cpu 0", pinned.raw_rate,
	       pinned.mpdev_rate, pinned.raw_rate / pinned.mpdev_rate);
	printf("%-34s %12.0f %12.0f %8.2f\n", "  unpinned", unpinned.raw_rate, unpinned.mpdev_rate,
	       unpinned.raw_rate / unpinned.mpdev_rate);
	return 0;
}
