/*
 * The polled shared-memory ring (FEATURE_SHM_RING) beside its floor, in the
 * same run: a 4-byte BAR read round trip through libmpdev's ring to
 * mpdev-remote, and a raw shared-memory spin ping-pong of the same payload
 * (4 bytes of request, 4 of answer) between two processes. The socket read
 * of a second remote is measured in the same rounds, for reference; and
 * posted ring writes per second beside posted socket writes.
 *
 * The client is pinned to CPU 0, the remotes and the raw peer to CPU 1: a
 * spin ping-pong on one CPU measures the scheduler, not the memory. Rounds
 * alternate (raw, ring, socket) so that machine noise hits all alike; each
 * figure is the median over rounds. The raw peer sleeps between its rounds
 * so that it does not take CPU 1 from the remote.
 *
 * CPU cost: the ring remote's CPU time (/proc/PID/stat, user + system, in
 * clock ticks: summed over all rounds to be worth reading) over its rounds' wall time — while
 * polling, the remote is a core — and over a quiet stretch after the spin gave up, when it must be
 * nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "libmpdev.h"
#include "spawn.h"

#define ROUNDS	     7
#define RAW_ITERS    200000
#define RING_ITERS   100000
#define SOCK_ITERS   20000
#define POSTED_ITERS 200000
#define BATCH	     100
#define RING_SLOTS   256
#define RING_SPIN_US 200
#define QUIET_MS     300
#define CLIENT_CPU   0
#define PEER_CPU     1

/* The raw ping-pong's shared page: each side's fields on a cache line of its own. */
struct pingpong {
	_Alignas(64) _Atomic uint32_t req_seq;
	uint32_t req_data;
	_Alignas(64) _Atomic uint32_t rep_seq;
	uint32_t rep_data;
	_Alignas(64) _Atomic int state; /* 0 pause, 1 spin, 2 exit */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void raw_peer(struct pingpong *pp)
{
	uint32_t seen = 0;

	for (;;) {
		int st = atomic_load_explicit(&pp->state, memory_order_acquire);

		if (st == 2)
			_exit(0);
		if (st == 0) {
			sleep_ms(1);
			continue;
		}
		for (int spins = 0; spins < 1000000; spins++) {
			uint32_t s = atomic_load_explicit(&pp->req_seq, memory_order_acquire);

			if (s != seen) {
				seen = s;
				pp->rep_data = ~pp->req_data;
				atomic_store_explicit(&pp->rep_seq, s, memory_order_release);
				spins = 0;
			}
		}
	}
}

/*
 * A round's two figures: the mean over the whole round (what a caller sees,
 * the remote's preemptions on a shared machine included) and the median of
 * its batches of BATCH accesses (what the path costs while both sides run).
 */
struct lat {
	double mean, batch;
};

static double batch_ns[RAW_ITERS / BATCH];

static struct lat raw_rtt_us(struct pingpong *pp)
{
	static uint32_t seq;
	uint64_t t0, tb;
	struct lat l = { -1, -1 };

	atomic_store(&pp->state, 1);
	t0 = tb = bench_now_ns();
	for (int i = 0; i < RAW_ITERS; i++) {
		pp->req_data = (uint32_t)i;
		atomic_store_explicit(&pp->req_seq, ++seq, memory_order_release);
		while (atomic_load_explicit(&pp->rep_seq, memory_order_acquire) != seq)
			;
		if (pp->rep_data != ~(uint32_t)i)
			return l;
		if ((i + 1) % BATCH == 0) {
			uint64_t t = bench_now_ns();

			batch_ns[i / BATCH] = (double)(t - tb);
			tb = t;
		}
	}
	l.mean = (bench_now_ns() - t0) / 1e3 / RAW_ITERS;
	atomic_store(&pp->state, 0);
	l.batch = bench_median(batch_ns, RAW_ITERS / BATCH) / 1e3 / BATCH;
	return l;
}

static struct lat read_rtt_us(struct mpdev *dev, int iters)
{
	struct lat l = { -1, -1 };
	uint64_t t0 = bench_now_ns(), tb = t0;
	uint32_t v;

	for (int i = 0; i < iters; i++) {
		if (mpdev_region_read(dev, MPDEV_REGION_BAR0, 0, &v, 4) < 0 || v != 0x010000ed)
			return l;
		if ((i + 1) % BATCH == 0) {
			uint64_t t = bench_now_ns();

			batch_ns[i / BATCH] = (double)(t - tb);
			tb = t;
		}
	}
	l.mean = (bench_now_ns() - t0) / 1e3 / iters;
	l.batch = bench_median(batch_ns, iters / BATCH) / 1e3 / BATCH;
	return l;
}

static double posted_per_s(struct mpdev *dev)
{
	uint64_t t0 = bench_now_ns();

	for (uint32_t i = 0; i < POSTED_ITERS; i++)
		if (mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, 4, &i, 4) < 0)
			return -1;
	if (mpdev_sync(dev) < 0)
		return -1;
	return POSTED_ITERS / ((bench_now_ns() - t0) / 1e9);
}

/* User plus system time pid has used, in ns (clock ticks of /proc/PID/stat), or -1. */
static int64_t cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "pid (comm) ": state, then 10 fields; utime and stime are fields 14 and 15. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (int64_t)((ut + st) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

static int connect_remote(const char *bin, bool ring, pid_t *pid, struct mpdev **dev)
{
	const char *args[] = { "--device", "edu", NULL };
	struct mpdev_options o = { .timeout_ms = 5000, .client_name = "bench_ring" };
	int sock;

	if (spawn_remote(bin, args, pid, &sock) < 0)
		return -1;
	bench_pin(*pid, PEER_CPU);
	if (ring)
		o.features =
			MPDEV_FEATURE_POSTED_WRITES | MPDEV_FEATURE_STATS | MPDEV_FEATURE_SHM_RING;
	if (mpdev_connect_fd(sock, &o, dev) < 0) {
		fprintf(stderr, "bench_ring: connect: %s\n", mpdev_connect_error());
		return -1;
	}
	if (ring && mpdev_ring_enable(*dev, RING_SLOTS, RING_SPIN_US) < 0) {
		fprintf(stderr, "bench_ring: ring: %s\n", mpdev_last_error(*dev));
		return -1;
	}
	return 0;
}

static void print_row(const char *what, double *a, double *b)
{
	double ma = bench_median(a, ROUNDS), mb = bench_median(b, ROUNDS);

	printf("%-34s %9.3f us %9.3f us %8.2f\n", what, ma, mb, mb / ma);
}

int main(void)
{
	double raw[ROUNDS], ring[ROUNDS], sock[ROUNDS], rpost[ROUNDS], spost[ROUNDS];
	double raw_b[ROUNDS], ring_b[ROUNDS], sock_b[ROUNDS];
	struct lat l;
	int64_t busy_cpu = 0, busy_wall = 0, quiet_cpu, t, c;
	struct mpdev *rdev = NULL, *sdev = NULL;
	pid_t raw_pid, ring_pid, sock_pid;
	struct pingpong *pp;
	char bin[4096];
	int st;

	pp = mmap(NULL, sizeof(*pp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pp == MAP_FAILED)
		return 1;
	memset(pp, 0, sizeof(*pp));
	raw_pid = fork();
	if (raw_pid == 0)
		raw_peer(pp);
	bench_pin(raw_pid, PEER_CPU);
	bench_pin(0, CLIENT_CPU);
	spawn_find_remote(bin, sizeof(bin));
	if (raw_pid < 0 || connect_remote(bin, true, &ring_pid, &rdev) < 0 ||
	    connect_remote(bin, false, &sock_pid, &sdev) < 0) {
		fprintf(stderr, "bench_ring: cannot start peers\n");
		return 1;
	}
	/* Warm up every path. */
	raw_rtt_us(pp);
	read_rtt_us(rdev, RING_ITERS);
	read_rtt_us(sdev, SOCK_ITERS);
	for (int r = 0; r < ROUNDS; r++) {
		l = raw_rtt_us(pp);
		raw[r] = l.mean;
		raw_b[r] = l.batch;
		t = bench_now_ns();
		c = cpu_ns(ring_pid);
		l = read_rtt_us(rdev, RING_ITERS);
		ring[r] = l.mean;
		ring_b[r] = l.batch;
		rpost[r] = posted_per_s(rdev);
		busy_wall += (int64_t)bench_now_ns() - t;
		busy_cpu += cpu_ns(ring_pid) - c;
		l = read_rtt_us(sdev, SOCK_ITERS);
		sock[r] = l.mean;
		sock_b[r] = l.batch;
		spost[r] = posted_per_s(sdev);
		if (raw[r] < 0 || ring[r] < 0 || sock[r] < 0 || rpost[r] < 0 || spost[r] < 0) {
			fprintf(stderr, "bench_ring: round %d failed: %s / %s\n", r,
				mpdev_last_error(rdev), mpdev_last_error(sdev));
			atomic_store(&pp->state, 2); /* the raw peer exits; the remotes with us */
			return 1;
		}
	}
	/* After its spin the ring remote sleeps: what it costs then. */
	sleep_ms(50);
	c = cpu_ns(ring_pid);
	sleep_ms(QUIET_MS);
	quiet_cpu = cpu_ns(ring_pid) - c;

	printf("bench_ring: median of %d rounds; client on cpu %d, remote and raw peer on cpu %d; "
	       "ring of %d slots, spin %d us\n",
	       ROUNDS, CLIENT_CPU, PEER_CPU, RING_SLOTS, RING_SPIN_US);
	printf("%-34s %12s %12s %8s\n", "4-byte BAR read round trip", "raw shm", "mpdev ring",
	       "ratio");
	print_row("  pinned, mean of the round", raw, ring);
	print_row("  pinned, median 100-read batch", raw_b, ring_b);
	printf("%-34s %12s %12s %8s\n", "  socket read, same run", "mpdev ring", "socket", "ratio");
	print_row("    mean of the round", ring, sock);
	print_row("    median 100-read batch", ring_b, sock_b);
	printf("%-34s %12s %12s %8s\n", "posted BAR writes (per second)", "socket", "ring",
	       "ring/sock");
	printf("%-34s %12.0f %12.0f %8.2f\n", "  pinned, 2 cpus", bench_median(spost, ROUNDS),
	       bench_median(rpost, ROUNDS),
	       bench_median(rpost, ROUNDS) / bench_median(spost, ROUNDS));
	if (busy_cpu >= 0 && quiet_cpu >= 0)
		printf("remote CPU: %.0f %% of a core during the ring rounds (polling), %.2f %% "
		       "over "
		       "%d ms idle after the spin (asleep)\n",
		       100.0 * (double)busy_cpu / (double)busy_wall,
		       100.0 * (double)quiet_cpu / (QUIET_MS * 1e6), QUIET_MS);
	else
		printf("remote CPU: /proc/PID/stat unreadable here\n");

	mpdev_close(rdev);
	mpdev_close(sdev);
	atomic_store(&pp->state, 2);
	spawn_wait(ring_pid, 5000, &st);
	spawn_wait(sock_pid, 5000, &st);
	waitpid(raw_pid, &st, 0);
	return 0;
}
