/*
 * virtio-blk on io_uring, host side (issue 14, point 5): 4 KiB random reads
 * and writes at queue depth 1 and 32 through mpdev — a virtio-blk driver in
 * this process (libmpdev, guest RAM as a memfd, the device's virtqueues
 * through tests/lib/virtio_drv) on an mpdev-remote child serving
 * --device virtio-blk:FILE,direct=on — beside fio --ioengine=io_uring
 * --direct=1 on the same backing file, in the same run: IOPS, per-request
 * latency p50/p99 and the ratios. Beside the queue-depth-1 latency: a raw
 * eventfd ping-pong between two threads measured in the same run, the round
 * trip a request through mpdev adds at least (a kick that wakes the remote,
 * an interrupt that wakes the driver).
 *
 * Rounds alternate the order of the workloads and of mpdev and fio within
 * each, so that the machine's noise hits both alike; each figure is the
 * median over rounds. Unpinned by default (the remote, its io_uring and
 * fio's job then spread over the CPUs as they would); --pin puts the bench
 * and everything it starts on CPU 0.
 *
 * The bench is also a check of the device: every request's status must be
 * OK, reads of blocks of known contents are compared with them, and after
 * every write run a sample of the blocks written is read back through the
 * device and from the file. A failed request or a mismatch ends the bench
 * with status 1; a missed target does not (it is printed). Without fio the
 * bench prints mpdev's figures alone, marked "no fio baseline", and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench_blk.h"
#include "bench_util.h"
#include "spawn.h"

#define MAX_ROUNDS	 64
#define PING_ITERS	 20000
#define EXT4_MAGIC	 0xef53
#define DEFAULT_SIZE_MIB 256
#define DEFAULT_VERIFY	 256

enum { W_READ1, W_READ32, W_WRITE1, W_WRITE32, W_READ1_POLL, W_WRITE1_POLL, W_READ1_POSTED,
       W_READ32_POSTED, NWORK };

static const struct workload {
	const char *name;
	bool write, poll;
	int qd;
	int fio_row; /* whose fio figures stand beside it */
	bool posted; /* kicked by posted BAR write though a doorbell is offered */
} work[NWORK] = {
	[W_READ1] = { "randread", false, false, 1, W_READ1 },
	[W_READ32] = { "randread", false, false, 32, W_READ32 },
	[W_WRITE1] = { "randwrite", true, false, 1, W_WRITE1 },
	[W_WRITE32] = { "randwrite", true, false, 32, W_WRITE32 },
	[W_READ1_POLL] = { "randread", false, true, 1, W_READ1 },
	[W_WRITE1_POLL] = { "randwrite", true, true, 1, W_WRITE1 },
	[W_READ1_POSTED] = { "randread", false, false, 1, W_READ1, true },
	[W_READ32_POSTED] = { "randread", false, false, 32, W_READ32, true },
};

static struct {
	int seconds, rounds, verify;
	uint64_t size;
	const char *file, *fio;
	bool no_fio, poll, posted, pin, keep;
} opt = { .seconds = 3, .rounds = 5, .verify = DEFAULT_VERIFY, .fio = "fio" };

/* Rows the options leave out. */
static bool skipped(const struct workload *k)
{
	return (k->poll && !opt.poll) || (k->posted && !opt.posted);
}

static const char *row_note(const struct workload *k)
{
	return k->poll ? " (poll)" : k->posted ? " (posted kick)" : "";
}

/* Per workload and round. */
static struct blk_figures mp[NWORK][MAX_ROUNDS], fio_fig[NWORK][MAX_ROUNDS];
static double ping_us[MAX_ROUNDS];
static unsigned verified;
static char file_buf[4096];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_blk [--seconds N] [--rounds N] [--file PATH] [--size MIB]\n"
		"                 [--fio PATH | --no-fio] [--poll] [--posted] [--pin]\n"
		"                 [--verify N] [--keep]\n"
		"  --seconds N  each timed run (default 3)\n"
		"  --rounds N   rounds, medians reported (default 5, at most %d)\n"
		"  --file PATH  the backing file (default /var/tmp/bench-blk-PID.img, removed "
		"after);\n"
		"               it is overwritten\n"
		"  --size MIB   of the backing file (default %d)\n"
		"  --fio PATH   the fio to run (default fio from PATH); --no-fio: mpdev alone\n"
		"  --poll       also queue depth 1 with the driver polling the used ring\n"
		"  --posted     also reads at queue depth 1 and 32 kicked by posted BAR write\n"
		"               instead of the doorbell eventfd: what the doorbell saves\n"
		"  --pin        the bench and everything it starts on CPU 0\n"
		"  --verify N   blocks read back after each write run (default %d)\n"
		"  --keep       keep the backing file\n",
		MAX_ROUNDS, DEFAULT_SIZE_MIB, DEFAULT_VERIFY);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = { { "seconds", required_argument, NULL, 's' },
					    { "rounds", required_argument, NULL, 'r' },
					    { "file", required_argument, NULL, 'f' },
					    { "size", required_argument, NULL, 'S' },
					    { "fio", required_argument, NULL, 'F' },
					    { "no-fio", no_argument, NULL, 'n' },
					    { "poll", no_argument, NULL, 'p' },
					    { "posted", no_argument, NULL, 'K' },
					    { "pin", no_argument, NULL, 'P' },
					    { "verify", required_argument, NULL, 'v' },
					    { "keep", no_argument, NULL, 'k' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int c, mib = DEFAULT_SIZE_MIB;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_int(optarg, 1, 3600, &opt.seconds) < 0)
				return -1;
			break;
		case 'r':
			if (parse_int(optarg, 1, MAX_ROUNDS, &opt.rounds) < 0)
				return -1;
			break;
		case 'f':
			opt.file = optarg;
			break;
		case 'S':
			/* At least a queue depth's worth of distinct blocks for the writes. */
			if (parse_int(optarg, 1, 1 << 20, &mib) < 0)
				return -1;
			break;
		case 'F':
			opt.fio = optarg;
			break;
		case 'n':
			opt.no_fio = true;
			break;
		case 'p':
			opt.poll = true;
			break;
		case 'K':
			opt.posted = true;
			break;
		case 'P':
			opt.pin = true;
			break;
		case 'v':
			if (parse_int(optarg, 0, 4096, &opt.verify) < 0)
				return -1;
			break;
		case 'k':
			opt.keep = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc)
		return -1;
	if (opt.poll && opt.pin) {
		/* The driver would spin on the one CPU the remote and its ring need. */
		fprintf(stderr, "bench_blk: --poll and --pin exclude each other\n");
		return -1;
	}
	opt.size = (uint64_t)mib << 20;
	return 0;
}

/* ---- the reference: an eventfd ping-pong between two threads ---------------------------- */

struct ping {
	int to_b, to_a;
};

static void *pong(void *arg)
{
	struct ping *p = arg;
	uint64_t v;

	for (int i = 0; i < PING_ITERS; i++) {
		if (read(p->to_b, &v, sizeof(v)) != sizeof(v) ||
		    write(p->to_a, &v, sizeof(v)) != sizeof(v))
			break;
	}
	return NULL;
}

/* µs per round trip: A writes, B's blocking read returns and B writes back, A reads. */
static double ping_pong(void)
{
	struct ping p = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	uint64_t v = 1, t0 = 0;
	double us = -1;
	pthread_t t;
	int i = 0;

	if (p.to_b < 0 || p.to_a < 0 || pthread_create(&t, NULL, pong, &p) != 0)
		goto out;
	t0 = bench_now_ns();
	for (i = 0; i < PING_ITERS; i++) {
		if (write(p.to_b, &v, sizeof(v)) != sizeof(v) ||
		    read(p.to_a, &v, sizeof(v)) != sizeof(v))
			break;
	}
	if (i == PING_ITERS)
		us = (double)(bench_now_ns() - t0) / 1e3 / PING_ITERS;
	else
		write(p.to_b, &v, sizeof(v)); /* let pong finish if it waits */
	pthread_join(t, NULL);
out:
	if (p.to_b >= 0)
		close(p.to_b);
	if (p.to_a >= 0)
		close(p.to_a);
	return us;
}

/* ---- output ----------------------------------------------------------------------------- */

static double med(const struct blk_figures *f, int n, size_t field)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&f[i] + field);
	return bench_median(v, n);
}

#define MED(arr, field) med(arr, opt.rounds, offsetof(struct blk_figures, field))

static void print_context(const char *fio_version, const char *kick)
{
	struct utsname u;
	struct statfs sf;
	const char *fs = "?";
	char fsbuf[32];

	uname(&u);
	if (statfs(opt.file, &sf) == 0) {
		snprintf(fsbuf, sizeof(fsbuf), "fs magic 0x%lx", (unsigned long)sf.f_type);
		fs = sf.f_type == EXT4_MAGIC ? "ext4" : fsbuf;
	}
	printf("bench_blk: 4 KiB random I/O, mpdev virtio-blk (mpdev-remote --device "
	       "virtio-blk:FILE,direct=on,\n  driver in this process over libmpdev) %s%s\n",
	       fio_version ? "beside " : "with no fio baseline", fio_version ? fio_version : "");
	if (fio_version)
		printf("  --ioengine=io_uring --direct=1 on the same file\n");
	printf("backing file: %s, %llu MiB, %s; kernel %s, %ld CPUs\n", opt.file,
	       (unsigned long long)(opt.size >> 20), fs, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%d rounds of %d s per run, medians; %s\n", opt.rounds, opt.seconds,
	       opt.pin ? "everything pinned to CPU 0" : "unpinned");
	printf("kick: %s\ncompletions: MSI-X vector eventfd (poll() on it)%s\n", kick,
	       opt.poll ? "; the \"poll\" rows spin on the used ring, interrupts suppressed" : "");
	printf("latency: per request, from just before its descriptors are written to when its\n"
	       "  used entry is taken; fio's: lat (submission + completion), clat beside it\n\n");
}

static void print_table(bool have_fio)
{
	double ping = bench_median(ping_us, opt.rounds);
	bool met32 = true, met1 = true;

	printf("| workload | QD | mpdev IOPS | fio IOPS | mpdev/fio | mpdev p50/p99 µs | fio "
	       "p50/p99 "
	       "µs | fio clat p50/p99 µs |\n");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int w = 0; w < NWORK; w++) {
		const struct workload *k = &work[w];
		int f = k->fio_row;

		if (skipped(k))
			continue;
		printf("| %s%s | %d | %.0f |", k->name, row_note(k), k->qd,
		       MED(mp[w], iops));
		if (have_fio)
			printf(" %.0f | **%.2f** |", MED(fio_fig[f], iops),
			       MED(mp[w], iops) / MED(fio_fig[f], iops));
		else
			printf(" no fio baseline | - |");
		printf(" %.1f / %.1f |", MED(mp[w], p50_us), MED(mp[w], p99_us));
		if (have_fio)
			printf(" %.1f / %.1f | %.1f / %.1f |\n", MED(fio_fig[f], p50_us),
			       MED(fio_fig[f], p99_us), MED(fio_fig[f], clat_p50_us),
			       MED(fio_fig[f], clat_p99_us));
		else
			printf(" - | - |\n");
		if (have_fio && k->qd == 32 && !k->poll && !k->posted &&
		    MED(mp[w], iops) < 0.9 * MED(fio_fig[f], iops))
			met32 = false;
		if (have_fio && k->qd == 1 && !k->poll && !k->posted &&
		    MED(mp[w], p50_us) - MED(fio_fig[f], p50_us) > ping)
			met1 = false;
	}
	printf("\neventfd ping-pong round trip, two threads, same run: %.2f µs (median of %d)\n",
	       ping, opt.rounds);
	if (!have_fio) {
		printf("no fio baseline: the targets cannot be judged\n");
		return;
	}
	for (int w = W_READ1; w <= W_WRITE1; w += 2)
		printf("QD1 %s: mpdev adds %.1f µs to fio's p50 (the ping-pong: %.2f µs)\n",
		       work[w].name, MED(mp[w], p50_us) - MED(fio_fig[w], p50_us), ping);
	printf("target QD32 >= 0.9x fio's IOPS: %s; QD1 latency within the eventfd round trip: "
	       "%s\n",
	       met32 ? "met" : "MISSED", met1 ? "met" : "MISSED");
}

int blk_fail(char *why, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return code;
}

/* ---- the rounds ------------------------------------------------------------------------- */

static int run_mpdev(struct blk_dev *dev, int w, int round, char *why, size_t len)
{
	const struct workload *k = &work[w];
	unsigned n;
	int r;

	if (k->posted)
		blk_dev_use_doorbell(dev, false);
	r = blk_dev_run(dev, k->write, k->qd, k->poll, opt.seconds, &mp[w][round], why, len);
	if (k->posted)
		blk_dev_use_doorbell(dev, true);
	if (r < 0 || !k->write)
		return r;
	r = blk_dev_verify(dev, (unsigned)opt.verify, &n, why, len);
	verified += n;
	return r;
}

static int run_fio(struct blk_dev *dev, int w, int round, char *why, size_t len)
{
	const struct workload *k = &work[w];
	struct blk_fio_job job = { .fio = opt.fio,
				   .file = opt.file,
				   .size = opt.size,
				   .write = k->write,
				   .qd = k->qd,
				   .seconds = opt.seconds };

	if (k->write)
		blk_dev_forget(dev); /* fio's data now, not ours: reads go unchecked */
	return blk_fio_run(&job, &fio_fig[w][round], why, len);
}

int main(int argc, char **argv)
{
	char bin[4096], fio_version[128], why[512];
	bool have_fio = false, made_file = false;
	struct blk_dev *dev = NULL;
	int status = 1, r;

	if (parse_args(argc, argv) < 0) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!opt.file) {
		snprintf(file_buf, sizeof(file_buf), "/var/tmp/bench-blk-%d.img", (int)getpid());
		opt.file = file_buf;
	}
	/* Before anything starts: children and threads inherit it. */
	if (opt.pin && bench_pin(0, 0) < 0) {
		perror("bench_blk: pinning to CPU 0");
		return 1;
	}
	if (!opt.no_fio) {
		r = blk_fio_version(opt.fio, fio_version, sizeof(fio_version), why, sizeof(why));
		have_fio = r == 0;
		if (!have_fio)
			printf("bench_blk: no fio baseline (%s): mpdev's figures only\n", why);
	} else {
		printf("bench_blk: no fio baseline (--no-fio): mpdev's figures only\n");
	}
	r = blk_fill_file(opt.file, opt.size, why, sizeof(why));
	made_file = true;
	if (r < 0) {
		fprintf(stderr, "bench_blk: backing file: %s\n", why);
		goto out;
	}
	spawn_find_remote(bin, sizeof(bin));
	r = blk_dev_open(bin, opt.file, opt.size, &dev, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "bench_blk: the device: %s\n", why);
		goto out;
	}
	print_context(have_fio ? fio_version : NULL, blk_dev_kick(dev));
	for (int round = 0; round < opt.rounds; round++) {
		bool back = round % 2;

		ping_us[round] = ping_pong();
		if (ping_us[round] < 0) {
			fprintf(stderr, "bench_blk: the eventfd ping-pong failed\n");
			goto out;
		}
		for (int i = 0; i < NWORK; i++) {
			int w = back ? NWORK - 1 - i : i;

			if (skipped(&work[w]))
				continue;
			/* fio first in odd rounds; a poll or posted row has no fio run of its own. */
			for (int side = 0; side < 2; side++) {
				bool is_fio = (side == 1) != back;

				if (is_fio && (!have_fio || work[w].poll || work[w].posted))
					continue;
				r = is_fio ? run_fio(dev, w, round, why, sizeof(why))
					   : run_mpdev(dev, w, round, why, sizeof(why));
				if (r < 0 && is_fio) {
					/* fio's failure is not the device's: go on without it. */
					printf("bench_blk: fio %s QD%d failed (%s): no fio "
					       "baseline "
					       "from here on\n",
					       work[w].name, work[w].qd, why);
					have_fio = false;
				} else if (r < 0) {
					fprintf(stderr,
						"bench_blk: mpdev %s QD%d%s, round %d: %s\n",
						work[w].name, work[w].qd,
						row_note(&work[w]), round + 1, why);
					goto out;
				}
			}
		}
		fprintf(stderr, "bench_blk: round %d of %d done\n", round + 1, opt.rounds);
	}
	print_table(have_fio);
	printf("data: %u written blocks read back through the device and from the file, all as "
	       "written\n",
	       verified);
	status = 0;
out:
	if (dev && blk_dev_close(dev) < 0) {
		fprintf(stderr, "bench_blk: mpdev-remote did not exit cleanly\n");
		status = 1;
	}
	if (made_file && !opt.keep)
		unlink(opt.file);
	return status;
}
