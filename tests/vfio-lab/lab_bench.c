/*
 * vfio-lab bench: the time to apply a memory table through mpdev-remote
 * (libmpdev -> remote -> mmap + VFIO_IOMMU_MAP_DMA per region) beside a raw
 * VFIO_IOMMU_MAP_DMA loop over the same memory, in the same guest run.
 * A benchmark, never a test: run it with bench/vfio-lab-bench.sh.
 *
 *   vfio_lab_bench [REMOTE [ROUNDS [CYCLES [unpinned] [no-sandbox]]]]
 *       (device from LAB_EDU_BDF, set by the lab's /init; by default 5 rounds
 *       a set, 4 cycles, pinned, the remote sandboxed)
 *
 * The remote runs as in production: sandboxed (seccomp, privileges dropped,
 * here to uid 999 since the guest has no user database), unless no-sandbox
 * is given.
 *
 * Pinned (the default), the bench and the remote it starts run on guest
 * CPU 0: a request then wakes the remote on the same vCPU. Unpinned, each
 * wakeup across the guest's vCPUs waits for QEMU's other vCPU thread, which
 * on a busy 2-CPU host costs milliseconds at random.
 *
 * Memory: sealed memfds of 64 MiB and 512 MiB, with 4 KiB pages and with
 * hugetlb 2 MiB pages (the huge pages are reserved through
 * /proc/sys/vm/nr_hugepages; if that fails the bench says why and skips
 * those rows). Every page is touched before anything is timed. The table has
 * two regions, laid out as a VMM lays out guest RAM: the first half of the
 * memfd at IOVA 0, the second half at IOVA 4 GiB. The bench keeps no mapping
 * of its own: like the remote, it maps the memory only in each round.
 *
 * For each memory, one memfd serves every set (the same pages for both
 * sides), in the order raw, then CYCLES times (mpdev, raw):
 *   raw    the bench opens the container and group itself; per round, for
 *          each region mmap(MAP_SHARED) of its memfd slice and
 *          VFIO_IOMMU_MAP_DMA (timed together: "map"), then
 *          VFIO_IOMMU_UNMAP_DMA and munmap ("unmap"); then it closes the
 *          group, which frees the device for the remote.
 *   mpdev  mpdev-remote --device vfio:BDF --iommu container; per round,
 *          mpdev_mem_set_table(the two regions) ("map") and
 *          mpdev_mem_set_table(empty) ("unmap"); the remote makes the same
 *          mmap + MAP_DMA per region (checked with its counters); then the
 *          remote is stopped, which frees the group.
 * The group admits one process at a time, so raw and mpdev alternate by
 * sets, not by rounds. One untimed warm-up round precedes each set. Each
 * figure is the median of all rounds of its side; ratio is mpdev / raw
 * (target <= 1.05); the lowest and highest set medians show the drift.
 * Result lines start with "bench:", every round's time with "detail:".
 * Ends with "LAB RESULT: PASS", or "LAB RESULT: FAIL <why>" (exit 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libmpdev.h"
#include "spawn.h"

#ifndef MPDEV_REMOTE_BIN
#define MPDEV_REMOTE_BIN "/work/main/build/bin/mpdev-remote"
#endif

/* glibc's sys/mman.h lacks it; linux/memfd.h: log2(2 MiB) << MFD_HUGE_SHIFT */
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif

#define MIB	    (1ull << 20)
#define HUGE_2M	    (2ull << 20)
#define HIGH_IOVA   (4ull << 30)
#define N_REGIONS   2
#define MAX_ROUNDS  20
#define MAX_CYCLES  10
#define MAX_SAMPLES ((MAX_CYCLES + 1) * MAX_ROUNDS)
#define SOCK_PATH   "/tmp/mpdev-lab-bench.sock"
#define HUGEPAGES   300 /* 600 MiB: the 512 MiB memfd and some to spare */

static const char *remote_bin = MPDEV_REMOTE_BIN;
static bool sandbox = true;
static const char *bdf;
static pid_t remote_pid = -1;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	if (remote_pid > 0) {
		kill(remote_pid, SIGKILL);
		waitpid(remote_pid, NULL, 0);
	}
	printf("LAB RESULT: FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_SAMPLES];

	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* --- memory ---------------------------------------------------------------- */

struct mem {
	const char *name; /* "64 MiB, 4 KiB pages" */
	uint64_t size;
	bool huge;
	int fd;
	struct mpdev_mem_region reg[N_REGIONS];
};

static void mem_create(struct mem *m)
{
	unsigned flags = MFD_ALLOW_SEALING | MFD_CLOEXEC;
	uint64_t page = m->huge ? HUGE_2M : 4096, half = m->size / 2;
	struct stat st;
	uint8_t *map;

	if (m->huge)
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	m->fd = memfd_create("lab-bench-ram", flags);
	if (m->fd < 0)
		fail("memfd_create(%s): %s", m->name, strerror(errno));
	if (ftruncate(m->fd, (off_t)m->size) < 0)
		fail("ftruncate(%s): %s", m->name, strerror(errno));
	if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail("F_ADD_SEALS(%s): %s", m->name, strerror(errno));
	/*
	 * Every page allocated before anything is timed. A shared hugetlb
	 * mapping reserves its pages here (ENOMEM, not SIGBUS later). The pages
	 * stay in the file when the mapping goes: the bench, like the remote,
	 * then has no mapping of the memory but the ones each round makes.
	 */
	map = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (map == MAP_FAILED)
		fail("mmap(%s): %s", m->name, strerror(errno));
	for (uint64_t off = 0; off < m->size; off += page)
		map[off] = (uint8_t)(off / page);
	munmap(map, m->size);
	if (fstat(m->fd, &st) < 0 || (uint64_t)st.st_blocks * 512 < m->size)
		fail("%s: only %lld of %llu bytes allocated after touching every page", m->name,
		     (long long)st.st_blocks * 512, (unsigned long long)m->size);
	m->reg[0] = (struct mpdev_mem_region){ .gpa = 0, .size = half, .fd = m->fd };
	m->reg[1] = (struct mpdev_mem_region){
		.gpa = HIGH_IOVA, .size = half, .fd = m->fd, .fd_offset = half
	};
}

static void mem_free(struct mem *m)
{
	close(m->fd);
	m->fd = -1;
}

/* --- raw VFIO ---------------------------------------------------------------- */

struct raw {
	int container, group;
};

static void raw_open(struct raw *r)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	const char *gdev = getenv("LAB_VFIO_GROUP_DEV");

	if (!gdev || !*gdev)
		fail("raw: no LAB_VFIO_GROUP_DEV in the environment");
	r->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (r->container < 0)
		fail("raw: open /dev/vfio/vfio: %s", strerror(errno));
	if (ioctl(r->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(r->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1)
		fail("raw: no VFIO API %d with TYPE1v2", VFIO_API_VERSION);
	/* The remote may take a moment to let go of the group after it exits. */
	for (int i = 0;; i++) {
		r->group = open(gdev, O_RDWR | O_CLOEXEC);
		if (r->group >= 0 || errno != EBUSY || i == 100)
			break;
		usleep(20000);
	}
	if (r->group < 0)
		fail("raw: open %s: %s", gdev, strerror(errno));
	if (ioctl(r->group, VFIO_GROUP_GET_STATUS, &gs) < 0 ||
	    !(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		fail("raw: group %s not viable (flags 0x%x): %s", gdev, gs.flags, strerror(errno));
	if (ioctl(r->group, VFIO_GROUP_SET_CONTAINER, &r->container) < 0)
		fail("raw: VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
	if (ioctl(r->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		fail("raw: VFIO_SET_IOMMU(TYPE1v2): %s", strerror(errno));
}

static void raw_close(struct raw *r)
{
	if (ioctl(r->group, VFIO_GROUP_UNSET_CONTAINER) < 0)
		fail("raw: VFIO_GROUP_UNSET_CONTAINER: %s", strerror(errno));
	close(r->group);
	close(r->container);
}

/* One round: map (mmap + MAP_DMA per region), then unmap; times in ms. */
static void raw_round(const struct raw *r, const struct mem *m, double *t_map, double *t_unmap)
{
	void *va[N_REGIONS];
	double t0, t1, t2;

	t0 = now_ms();
	for (int i = 0; i < N_REGIONS; i++) {
		struct vfio_iommu_type1_dma_map map = {
			.argsz = sizeof(map),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.iova = m->reg[i].gpa,
			.size = m->reg[i].size,
		};

		va[i] = mmap(NULL, m->reg[i].size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd,
			     (off_t)m->reg[i].fd_offset);
		if (va[i] == MAP_FAILED)
			fail("raw: mmap of region %d (%s): %s", i, m->name, strerror(errno));
		map.vaddr = (uintptr_t)va[i];
		if (ioctl(r->container, VFIO_IOMMU_MAP_DMA, &map) < 0)
			fail("raw: VFIO_IOMMU_MAP_DMA iova 0x%llx size 0x%llx (%s): %s",
			     (unsigned long long)map.iova, (unsigned long long)map.size, m->name,
			     strerror(errno));
	}
	t1 = now_ms();
	for (int i = 0; i < N_REGIONS; i++) {
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = sizeof(unmap),
			.iova = m->reg[i].gpa,
			.size = m->reg[i].size,
		};

		if (ioctl(r->container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0 ||
		    unmap.size != m->reg[i].size)
			fail("raw: VFIO_IOMMU_UNMAP_DMA iova 0x%llx (%s): %s (unmapped 0x%llx)",
			     (unsigned long long)unmap.iova, m->name, strerror(errno),
			     (unsigned long long)unmap.size);
		munmap(va[i], m->reg[i].size);
	}
	t2 = now_ms();
	*t_map = t1 - t0;
	*t_unmap = t2 - t1;
}

static void raw_set(struct mem *m, int rounds, double *map, double *unmap)
{
	struct raw r;
	double w1, w2;

	raw_open(&r);
	raw_round(&r, m, &w1, &w2); /* warm-up */
	for (int i = 0; i < rounds; i++)
		raw_round(&r, m, &map[i], &unmap[i]);
	raw_close(&r);
}

/* --- through mpdev-remote ------------------------------------------------------ */

struct counters {
	uint64_t maps, unmaps, mmaps;
};

static void on_stat(void *opaque, const char *name, uint64_t value)
{
	struct counters *c = opaque;

	if (!strcmp(name, "dma_backend_maps"))
		c->maps = value;
	else if (!strcmp(name, "dma_backend_unmaps"))
		c->unmaps = value;
	else if (!strcmp(name, "dma_mmaps"))
		c->mmaps = value;
}

static struct counters stats(struct mpdev *d)
{
	struct counters c = { 0 };

	if (mpdev_get_stats(d, on_stat, &c) < 0)
		fail("mpdev_get_stats: %s", mpdev_last_error(d));
	return c;
}

static struct mpdev *remote_start(void)
{
	/* A 512 MiB map under TCG takes seconds: a generous per-request timeout. */
	const struct mpdev_options o = { .timeout_ms = 120000, .client_name = "vfio-lab-bench" };
	char spec[96];
	struct mpdev *d = NULL;

	snprintf(spec, sizeof(spec), "vfio:%s", bdf);
	unlink(SOCK_PATH);
	remote_pid = fork();
	if (remote_pid < 0)
		fail("fork: %s", strerror(errno));
	if (remote_pid == 0) {
		/* The guest has no user database: the sandbox drops to a plain uid. */
		if (sandbox)
			execl(remote_bin, remote_bin, "--device", spec, "--iommu", "container",
			      "--socket", SOCK_PATH, "--user", "999", (char *)NULL);
		else
			execl(remote_bin, remote_bin, "--device", spec, "--iommu", "container",
			      "--socket", SOCK_PATH, "--no-sandbox", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", remote_bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (mpdev_connect(SOCK_PATH, &o, &d) == 0)
			break;
		if (waitpid(remote_pid, NULL, WNOHANG) == remote_pid) {
			remote_pid = -1;
			fail("mpdev-remote (%s) exited before accepting a connection", remote_bin);
		}
		usleep(20000);
	}
	if (!d)
		fail("connect to mpdev-remote: %s", mpdev_connect_error());
	if (!(mpdev_features(d) & MPDEV_FEATURE_MEMORY_TABLE) ||
	    !(mpdev_features(d) & MPDEV_FEATURE_STATS))
		fail("the remote offers no memory table or no stats");
	return d;
}

static void remote_stop(struct mpdev *d)
{
	int st = -1, r;

	mpdev_close(d);
	kill(remote_pid, SIGTERM);
	r = spawn_wait(remote_pid, 10000, &st);
	remote_pid = -1;
	if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("mpdev-remote did not exit cleanly on SIGTERM (status 0x%x)", st);
}

static void mpdev_round(struct mpdev *d, const struct mem *m, double *t_map, double *t_unmap)
{
	double t0, t1, t2;

	t0 = now_ms();
	if (mpdev_mem_set_table(d, m->reg, N_REGIONS) < 0)
		fail("mpdev_mem_set_table(%s): %s", m->name, mpdev_last_error(d));
	t1 = now_ms();
	if (mpdev_mem_set_table(d, NULL, 0) < 0)
		fail("mpdev_mem_set_table(empty) after %s: %s", m->name, mpdev_last_error(d));
	t2 = now_ms();
	*t_map = t1 - t0;
	*t_unmap = t2 - t1;
}

static void mpdev_set(struct mem *m, int rounds, double *map, double *unmap, double *rtt_ms,
		      double *same_ms)
{
	struct mpdev *d = remote_start();
	struct mpdev_iommu_info ii;
	struct counters c0, c1;
	double w1, w2, rtt[21];
	uint64_t want;

	if (mpdev_get_iommu_info(d, &ii) < 0)
		fail("mpdev_get_iommu_info: %s", mpdev_last_error(d));
	if (ii.kind != MPDEV_IOMMU_TYPE1)
		fail("the remote's IOMMU is kind %u, not the VFIO container (TYPE1)", ii.kind);
	/* What one request costs by itself: an empty round trip (median of 21). */
	for (int i = 0; i < 21; i++) {
		double t0 = now_ms();

		if (mpdev_sync(d) < 0)
			fail("mpdev_sync: %s", mpdev_last_error(d));
		rtt[i] = now_ms() - t0;
	}
	*rtt_ms = median(rtt, 21);
	/*
	 * What a table message costs without any mapping: the same table set
	 * again (the remote maps only the difference, here none).
	 */
	if (mpdev_mem_set_table(d, m->reg, N_REGIONS) < 0)
		fail("mpdev_mem_set_table(%s): %s", m->name, mpdev_last_error(d));
	for (int i = 0; i < 21; i++) {
		double t0 = now_ms();

		if (mpdev_mem_set_table(d, m->reg, N_REGIONS) < 0)
			fail("mpdev_mem_set_table(%s) again: %s", m->name, mpdev_last_error(d));
		rtt[i] = now_ms() - t0;
	}
	*same_ms = median(rtt, 21);
	if (mpdev_mem_set_table(d, NULL, 0) < 0)
		fail("mpdev_mem_set_table(empty): %s", mpdev_last_error(d));
	c0 = stats(d);
	mpdev_round(d, m, &w1, &w2); /* warm-up */
	for (int i = 0; i < rounds; i++)
		mpdev_round(d, m, &map[i], &unmap[i]);
	c1 = stats(d);
	/* The remote did what raw does: one mmap and one MAP_DMA/UNMAP_DMA per region. */
	want = (uint64_t)N_REGIONS * (uint64_t)(rounds + 1);
	if (c1.maps - c0.maps != want || c1.unmaps - c0.unmaps != want ||
	    c1.mmaps - c0.mmaps != want)
		fail("%s: the remote made %" PRIu64 " IOMMU maps, %" PRIu64 " unmaps, %" PRIu64
		     " mmaps; want %" PRIu64 " each",
		     m->name, c1.maps - c0.maps, c1.unmaps - c0.unmaps, c1.mmaps - c0.mmaps, want);
	remote_stop(d);
}

/* --- huge pages ---------------------------------------------------------------- */

static long meminfo(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/*
 * Asks for n huge pages; false (and why) when the kernel gave none of them
 * (or, for n = 0, did not release them all). A partial reservation is true:
 * each row checks HugePages_Free for itself.
 */
static bool set_hugepages(long n, char *why, size_t len)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	long total;

	if (!f) {
		snprintf(why, len, "open /proc/sys/vm/nr_hugepages: %s", strerror(errno));
		return false;
	}
	fprintf(f, "%ld\n", n);
	if (fclose(f) != 0) {
		snprintf(why, len, "write %ld to /proc/sys/vm/nr_hugepages: %s", n,
			 strerror(errno));
		return false;
	}
	total = meminfo("HugePages_Total");
	if (n ? total <= 0 : total != 0) {
		snprintf(why, len,
			 "asked for %ld huge pages, /proc/meminfo HugePages_Total says %ld", n,
			 total);
		return false;
	}
	return true;
}

/* --- main ---------------------------------------------------------------------- */

struct row {
	struct mem m;
	bool skipped;
	char why[160];
	double raw_map[MAX_SAMPLES], raw_unmap[MAX_SAMPLES];
	double mp_map[MAX_SAMPLES], mp_unmap[MAX_SAMPLES];
	double rtt[MAX_CYCLES];	 /* median mpdev_sync round trip of each mpdev set, ms */
	double same[MAX_CYCLES]; /* median time to set the same table again, ms */
};

/* Every round, for the serial log (the script shows only "bench:" lines). */
static void print_detail(const char *name, const char *what, const double *v, int n)
{
	printf("detail: %s, %s:", name, what);
	for (int i = 0; i < n; i++)
		printf(" %.2f", v[i]);
	printf(" ms\n");
}

/* The lowest and highest of the sets' medians: how far the sets drift apart. */
static void set_spread(const double *v, int sets, int rounds, double *lo, double *hi)
{
	for (int i = 0; i < sets; i++) {
		double m = median(v + i * rounds, rounds);

		if (i == 0 || m < *lo)
			*lo = m;
		if (i == 0 || m > *hi)
			*hi = m;
	}
}

static void print_line(const char *what, const double *raw, const double *mp, int rounds,
		       int cycles)
{
	double r = median(raw, (cycles + 1) * rounds), m = median(mp, cycles * rounds);
	double rlo = 0, rhi = 0, mlo = 0, mhi = 0;

	set_spread(raw, cycles + 1, rounds, &rlo, &rhi);
	set_spread(mp, cycles, rounds, &mlo, &mhi);
	printf("bench: | %-30s | %8.2f ms | %8.2f ms | %5.3f | %+6.2f ms | %7.2f-%-7.2f | "
	       "%7.2f-%-7.2f |\n",
	       what, r, m, m / r, m - r, rlo, rhi, mlo, mhi);
}

int main(int argc, char **argv)
{
	static struct row rows[] = {
		{ .m = { .name = "64 MiB, 4 KiB pages", .size = 64 * MIB } },
		{ .m = { .name = "512 MiB, 4 KiB pages", .size = 512 * MIB } },
		{ .m = { .name = "64 MiB, 2 MiB hugetlb", .size = 64 * MIB, .huge = true } },
		{ .m = { .name = "512 MiB, 2 MiB hugetlb", .size = 512 * MIB, .huge = true } },
	};
	enum { N_ROWS = sizeof(rows) / sizeof(rows[0]) };
	int rounds = 5, cycles = 4;
	bool pinned = true;
	bool huge_ok = false;
	char huge_why[160] = "";
	double t_start = now_ms();

	setvbuf(stdout, NULL, _IOLBF, 0);
	bdf = getenv("LAB_EDU_BDF");
	if (!bdf || !*bdf) {
		fprintf(stderr,
			"usage: LAB_EDU_BDF=BDF %s [REMOTE [ROUNDS [CYCLES [unpinned] "
			"[no-sandbox]]]]\n",
			argv[0]);
		return 2;
	}
	if (argc > 1 && *argv[1])
		remote_bin = argv[1];
	if (argc > 2)
		rounds = atoi(argv[2]);
	if (argc > 3)
		cycles = atoi(argv[3]);
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "unpinned"))
			pinned = false;
		else if (!strcmp(argv[i], "no-sandbox"))
			sandbox = false;
		else if (strcmp(argv[i], "pinned") && strcmp(argv[i], "sandbox"))
			fail("unknown option %s (unpinned, no-sandbox)", argv[i]);
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || cycles < 1 || cycles > MAX_CYCLES)
		fail("ROUNDS must be 1..%d and CYCLES 1..%d", MAX_ROUNDS, MAX_CYCLES);
	if (pinned) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		/* The remote inherits it through fork and exec. */
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			fail("sched_setaffinity(CPU 0): %s", strerror(errno));
	}
	printf("bench: edu %s, remote %s (%s), %s\n", bdf, remote_bin,
	       sandbox ? "sandboxed" : "--no-sandbox",
	       pinned ? "bench and remote pinned to guest CPU 0" : "unpinned");
	printf("bench: per memory: raw set, then %d x (mpdev set, raw set); %d rounds a set after "
	       "1 warm-up; a table of 2 regions (half the memfd each, at IOVA 0 and 4 GiB)\n",
	       cycles, rounds);

	for (int k = 0; k < N_ROWS; k++) {
		struct row *w = &rows[k];
		double t0 = now_ms();

		if (w->m.huge && !huge_ok && !huge_why[0]) {
			huge_ok = set_hugepages(HUGEPAGES, huge_why, sizeof(huge_why));
			if (huge_ok)
				printf("bench: asked for %d huge pages of 2 MiB: HugePages_Total "
				       "%ld, HugePages_Free %ld\n",
				       HUGEPAGES, meminfo("HugePages_Total"),
				       meminfo("HugePages_Free"));
			else
				printf("bench: no huge pages: %s; skipping the hugetlb rows\n",
				       huge_why);
		}
		if (w->m.huge && !huge_ok) {
			w->skipped = true;
			snprintf(w->why, sizeof(w->why), "%s", huge_why);
			continue;
		}
		if (w->m.huge && meminfo("HugePages_Free") * (long)HUGE_2M < (long)w->m.size) {
			w->skipped = true;
			snprintf(w->why, sizeof(w->why), "only %ld huge pages free",
				 meminfo("HugePages_Free"));
			printf("bench: skipping %s: %s\n", w->m.name, w->why);
			continue;
		}
		mem_create(&w->m);
		raw_set(&w->m, rounds, w->raw_map, w->raw_unmap);
		for (int c = 0; c < cycles; c++) {
			mpdev_set(&w->m, rounds, w->mp_map + c * rounds, w->mp_unmap + c * rounds,
				  &w->rtt[c], &w->same[c]);
			raw_set(&w->m, rounds, w->raw_map + (c + 1) * rounds,
				w->raw_unmap + (c + 1) * rounds);
		}
		mem_free(&w->m);
		print_detail(w->m.name, "raw map, set by set", w->raw_map, (cycles + 1) * rounds);
		print_detail(w->m.name, "mpdev map, set by set", w->mp_map, cycles * rounds);
		print_detail(w->m.name, "raw unmap, set by set", w->raw_unmap,
			     (cycles + 1) * rounds);
		print_detail(w->m.name, "mpdev unmap, set by set", w->mp_unmap, cycles * rounds);
		printf("bench: %s done in %.1f s; through mpdev, an empty round trip "
		       "(mpdev_sync) took %.2f ms, setting the same table again (nothing to map) "
		       "%.2f ms\n",
		       w->m.name, (now_ms() - t0) / 1e3, median(w->rtt, cycles),
		       median(w->same, cycles));
	}
	if (huge_ok && !set_hugepages(0, huge_why, sizeof(huge_why)))
		printf("bench: releasing the huge pages: %s\n", huge_why);

	printf("bench: medians of all rounds (raw: %d, mpdev: %d); ratio = mpdev / raw; sets: "
	       "lowest-highest of the sets' medians\n",
	       (cycles + 1) * rounds, cycles * rounds);
	printf("bench: | %-30s | %11s | %11s | %5s | %9s | %15s | %15s |\n", "what", "raw", "mpdev",
	       "ratio", "mpdev-raw", "raw sets (ms)", "mpdev sets (ms)");
	printf("bench: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int k = 0; k < N_ROWS; k++) {
		struct row *w = &rows[k];
		char what[64];

		if (w->skipped) {
			printf("bench: | %-30s | skipped: %s |\n", w->m.name, w->why);
			continue;
		}
		snprintf(what, sizeof(what), "map %s", w->m.name);
		print_line(what, w->raw_map, w->mp_map, rounds, cycles);
		snprintf(what, sizeof(what), "unmap %s", w->m.name);
		print_line(what, w->raw_unmap, w->mp_unmap, rounds, cycles);
	}
	printf("bench: total %.1f s\n", (now_ms() - t_start) / 1e3);
	printf("LAB RESULT: PASS\n");
	return 0;
}
