/*
 * Migration costs, each beside a baseline taken in the same run:
 *  - downtime of edu's STOP_COPY through two mpdev-remote processes (source
 *    to STOP_COPY, stream read, target RESUMING, stream written, target
 *    RUNNING) beside bringing the same device back from scratch: reset and
 *    reconfigured (memory table, BAR and command register, registers);
 *  - stream throughput of a large synthetic device state (a server in a
 *    child process with a backend whose state is STATE_MB of bytes) beside
 *    a raw copy of the same bytes through a socketpair and through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench_util.h"
#include "host.h"
#include "libmpdev.h"
#include "server.h"
#include "spawn.h"

#define ROUNDS	    200
#define TP_ROUNDS   5
#define STATE_MB    64
#define CHUNK	    (60u * 1024u)
#define RAM_GPA	    0x100000u
#define RAM_SIZE    (1u << 20)
#define STREAM_MAX  (256u * 1024u)
#define EDU_LIVE    0x04
#define EDU_DMA_SRC 0x80

static void die(const char *what, struct mpdev *dev)
{
	fprintf(stderr, "bench_migration: %s: %s\n", what,
		dev ? mpdev_last_error(dev) : mpdev_connect_error());
	exit(1);
}

/* ---- downtime ---- */

struct peer {
	pid_t pid;
	struct mpdev *dev;
	int ram_fd;
};

static void peer_start(struct peer *p, const char *bin)
{
	const char *args[] = { "--device", "edu", NULL };
	int sock;

	if (spawn_remote(bin, args, &p->pid, &sock) < 0 ||
	    mpdev_connect_fd(sock, NULL, &p->dev) < 0)
		die("start a remote", NULL);
	p->ram_fd = memfd_create("bench-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (p->ram_fd < 0 || ftruncate(p->ram_fd, RAM_SIZE) < 0 ||
	    fcntl(p->ram_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		die("guest RAM", NULL);
}

static void peer_stop(struct peer *p)
{
	int status;

	mpdev_close(p->dev);
	spawn_wait(p->pid, 5000, &status);
	close(p->ram_fd);
}

/* What a VMM does to a device it configures from nothing. */
static void configure(struct peer *p)
{
	struct mpdev_mem_region reg = { .gpa = RAM_GPA, .size = RAM_SIZE, .fd = p->ram_fd };
	uint32_t v = 0x5a5a5a5a;
	uint64_t a = RAM_GPA;

	if (mpdev_mem_set_table(p->dev, &reg, 1) < 0 ||
	    mpdev_config_write(p->dev, 0x10, 4, 0xfe000000u) < 0 ||
	    mpdev_config_write(p->dev, 0x04, 2, 0x0006) < 0 ||
	    mpdev_region_write(p->dev, 0, EDU_LIVE, &v, 4) < 0 ||
	    mpdev_region_write(p->dev, 0, EDU_DMA_SRC, &a, 8) < 0)
		die("configure", p->dev);
}

static void set(struct peer *p, enum mpdev_mig_state s)
{
	if (mpdev_mig_set_state(p->dev, s, NULL) < 0)
		die(mpdev_mig_state_name(s), p->dev);
}

static double stop_copy_once(struct peer *src, struct peer *dst, uint8_t *buf, size_t *len_out)
{
	size_t len = 0;
	uint64_t t0;
	int n;

	set(src, MPDEV_MIG_RUNNING_P2P);
	t0 = bench_now_ns();
	set(src, MPDEV_MIG_STOP_COPY);
	while ((n = mpdev_mig_read(src->dev, buf + len, STREAM_MAX - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		die("stream read", src->dev);
	set(dst, MPDEV_MIG_RESUMING);
	if (mpdev_mig_write(dst->dev, buf, len) < 0)
		die("stream write", dst->dev);
	set(dst, MPDEV_MIG_RUNNING);
	*len_out = len;
	return (double)(bench_now_ns() - t0) / 1000.0;
}

static void bench_downtime(const char *bin)
{
	static double mig[ROUNDS], scratch[ROUNDS];
	struct peer a, b;
	uint8_t *buf = malloc(STREAM_MAX);
	size_t len = 0;

	if (!buf)
		die("memory", NULL);
	peer_start(&a, bin);
	peer_start(&b, bin);
	configure(&a);
	configure(&b);
	for (int i = 0; i < ROUNDS; i++) {
		/* Back and forth, so both sides serve as source and target alike. */
		struct peer *src = i & 1 ? &b : &a, *dst = i & 1 ? &a : &b;
		uint64_t t0;

		mig[i] = stop_copy_once(src, dst, buf, &len);
		set(src, MPDEV_MIG_RUNNING);
		t0 = bench_now_ns();
		if (mpdev_reset(src->dev) < 0)
			die("reset", src->dev);
		configure(src);
		scratch[i] = (double)(bench_now_ns() - t0) / 1000.0;
	}
	printf("%-44s %12s %12s %8s\n", "edu downtime (median, us)", "from scratch", "STOP_COPY",
	       "ratio");
	printf("%-44s %12.1f %12.1f %8.2f   (%zu-byte stream)\n",
	       "  stop -> read -> resume -> RUNNING", bench_median(scratch, ROUNDS),
	       bench_median(mig, ROUNDS), bench_median(mig, ROUNDS) / bench_median(scratch, ROUNDS),
	       len);
	peer_stop(&a);
	peer_stop(&b);
	free(buf);
}

/* ---- throughput: a synthetic device whose whole state is STATE_MB of bytes ---- */

struct synth {
	struct backend be;
	uint64_t pos, size, loaded, sum;
};

static struct synth *to_synth(struct backend *b)
{
	return (struct synth *)b;
}

static void synth_info(struct backend *b, struct backend_device_info *info)
{
	(void)b;
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "bench:synth");
	info->reset_supported = true;
	info->regions[BACKEND_REGION_CONFIG].flags = BACKEND_REGION_READ;
	info->regions[BACKEND_REGION_CONFIG].size = 256;
}

static int synth_rd(struct backend *b, uint32_t i, uint64_t o, void *d, uint32_t s,
		    struct mpdev_error *e)
{
	(void)b, (void)i, (void)o, (void)e;
	memset(d, 0, s);
	return 0;
}

static int synth_wr(struct backend *b, uint32_t i, uint64_t o, const void *d, uint32_t s,
		    struct mpdev_error *e)
{
	(void)b, (void)i, (void)o, (void)d, (void)s;
	return mpdev_error_set(e, EACCES, "read-only");
}

static int synth_reset(struct backend *b, struct mpdev_error *e)
{
	(void)e;
	to_synth(b)->pos = to_synth(b)->loaded = 0;
	return 0;
}

static uint32_t synth_flags(struct backend *b)
{
	(void)b;
	return BACKEND_MIG_FLAG_STOP_COPY;
}

static int synth_arc(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		     enum backend_mig_state *now, struct mpdev_error *e)
{
	(void)from, (void)e;
	to_synth(b)->pos = to_synth(b)->loaded = 0;
	*now = to;
	return 0;
}

/* The state is generated as it is read: the bench measures the path, not memcpy from RAM. */
static ssize_t synth_save(struct backend *b, void *buf, size_t len, struct mpdev_error *e)
{
	struct synth *s = to_synth(b);
	size_t n = len < s->size - s->pos ? len : s->size - s->pos;

	(void)e;
	memset(buf, (int)(s->pos >> 16) & 0xff, n);
	s->pos += n;
	return (ssize_t)n;
}

static int synth_load(struct backend *b, const void *buf, size_t len, struct mpdev_error *e)
{
	(void)buf, (void)e;
	to_synth(b)->loaded += len;
	return 0;
}

static const struct backend_ops synth_ops = {
	.name = "bench:synth",
	.get_info = synth_info,
	.region_read = synth_rd,
	.region_write = synth_wr,
	.reset = synth_reset,
	.mig_flags = synth_flags,
	.mig_arc = synth_arc,
	.mig_save = synth_save,
	.mig_load = synth_load,
};

static void serve_synth(int fd)
{
	struct event_base *base = event_base_new();
	struct synth s = { .be.ops = &synth_ops, .size = (uint64_t)STATE_MB << 20 };
	struct remote_host host;
	struct server_config cfg = { 0 };
	struct server *srv;
	struct mpdev_error err = { 0 };

	peercred_allow_default(&cfg.allow);
	s.be.base = base;
	if (!base || remote_host_init(&host, base, &err) < 0)
		_exit(1);
	s.be.host = &host.ops;
	if (remote_host_set_backend(&host, &s.be, &err) < 0 ||
	    server_create(base, &s.be, &host, &cfg, &srv, &err) < 0 ||
	    server_adopt_fd(srv, fd, &err) < 0) {
		fprintf(stderr, "bench_migration: synthetic server: %s\n", err.msg);
		_exit(1);
	}
	event_base_dispatch(base);
	_exit(0);
}

static double mpdev_stream_mbps(struct mpdev *dev, uint8_t *buf)
{
	uint64_t total = 0, t0;
	int n;

	if (mpdev_mig_set_state(dev, MPDEV_MIG_STOP, NULL) < 0 ||
	    mpdev_mig_set_state(dev, MPDEV_MIG_STOP_COPY, NULL) < 0)
		die("synthetic STOP_COPY", dev);
	t0 = bench_now_ns();
	while ((n = mpdev_mig_read(dev, buf, CHUNK)) > 0)
		total += (uint64_t)n;
	if (n < 0 || total != (uint64_t)STATE_MB << 20)
		die("synthetic stream", dev);
	return (double)total / ((double)(bench_now_ns() - t0) / 1e9) / 1048576.0;
}

/* The same bytes, the same chunks, written by a child as fast as it can. */
static double raw_mbps(int type, uint8_t *buf)
{
	int sv[2];
	uint64_t total = 0, t0;
	ssize_t n;
	pid_t pid;
	int status;

	if (type == 0 ? pipe(sv) < 0 : socketpair(AF_UNIX, type, 0, sv) < 0)
		die("raw pair", NULL);
	t0 = bench_now_ns();
	pid = fork();
	if (pid == 0) {
		uint8_t *out = malloc(CHUNK);
		uint64_t left = (uint64_t)STATE_MB << 20;

		close(sv[0]);
		while (out && left) {
			size_t c = left < CHUNK ? left : CHUNK;

			memset(out, (int)(left >> 16) & 0xff, c);
			if (write(sv[1], out, c) != (ssize_t)c)
				_exit(1);
			left -= c;
		}
		_exit(0);
	}
	close(sv[1]);
	while ((n = read(sv[0], buf, CHUNK)) > 0)
		total += (uint64_t)n;
	close(sv[0]);
	waitpid(pid, &status, 0);
	if (total != (uint64_t)STATE_MB << 20)
		die("raw copy", NULL);
	return (double)total / ((double)(bench_now_ns() - t0) / 1e9) / 1048576.0;
}

static void bench_throughput(void)
{
	double m[TP_ROUNDS], sp[TP_ROUNDS], p[TP_ROUNDS];
	uint8_t *buf = malloc(CHUNK);
	struct mpdev *dev;
	int sv[2], status;
	pid_t pid;

	if (!buf || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", NULL);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		serve_synth(sv[1]);
	}
	close(sv[1]);
	if (mpdev_connect_fd(sv[0], NULL, &dev) < 0)
		die("connect to the synthetic server", NULL);
	for (int i = 0; i < TP_ROUNDS; i++) {
		m[i] = mpdev_stream_mbps(dev, buf);
		sp[i] = raw_mbps(SOCK_SEQPACKET, buf);
		p[i] = raw_mbps(0, buf);
	}
	mpdev_close(dev);
	waitpid(pid, &status, 0);
	printf("%-44s %12s %12s %8s\n", "state stream, 64 MiB (median MiB/s)", "raw", "mpdev",
	       "ratio");
	printf("%-44s %12.0f %12.0f %8.2f\n", "  vs SEQPACKET socketpair, 60 KiB packets",
	       bench_median(sp, TP_ROUNDS), bench_median(m, TP_ROUNDS),
	       bench_median(m, TP_ROUNDS) / bench_median(sp, TP_ROUNDS));
	printf("%-44s %12.0f %12.0f %8.2f\n", "  vs pipe, 60 KiB writes",
	       bench_median(p, TP_ROUNDS), bench_median(m, TP_ROUNDS),
	       bench_median(m, TP_ROUNDS) / bench_median(p, TP_ROUNDS));
	free(buf);
}

int main(void)
{
	char bin[4096];

	signal(SIGPIPE, SIG_IGN);
	spawn_find_remote(bin, sizeof(bin));
	printf("bench_migration: %d rounds for downtime, %d for throughput, same run\n", ROUNDS,
	       TP_ROUNDS);
	bench_downtime(bin);
	bench_throughput();
	return 0;
}
