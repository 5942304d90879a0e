/*
 * Memory table updates through a real mpdev-remote, and the copy throughput
 * of the DMA accessors, each beside a raw baseline measured in the same run.
 *
 * 1. Through mpdev-remote: a table of 1,000 regions of 64 KiB (slices of one
 *    sealed memfd at distinct offsets, a 64 KiB gap after each region in
 *    guest-physical space) is set on an empty table, one region is added and
 *    removed, a table that differs in 10 regions is set, and the table is
 *    cleared. For each change: the remote's mmap and munmap calls (deltas of
 *    its dma_mmaps/dma_munmaps counters, which must be exactly the
 *    difference) and the wall time of the call, beside the same mmap/munmap
 *    calls of the same memfd slices made by this process.
 * 2. In-process: dma_read/dma_write on a table without a backend, beside
 *    memcpy between the same buffer and the same memfd pages.
 *
 * Rounds alternate raw and mpdev so that machine noise hits both alike; one
 * warm-up round is dropped and each figure is the median over the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "dma.h"
#include "bench_util.h"
#include "libmpdev.h"
#include "spawn.h"
#include "wire.h"

#define ROUNDS 11

/* Part 1: the table through mpdev-remote. */
#define N_REGIONS   1000
#define N_DIFF	    10
#define REGION_SIZE (64ull << 10)
#define GPA_BASE    0x100000000ull
#define GPA_STRIDE  (2 * REGION_SIZE) /* a 64 KiB gap after each region */
#define ADD_REPS    50		      /* add/remove pairs per round */
/* memfd slices: table A's, then the N_DIFF that table B uses instead, then the added region's. */
#define SLICE_DIFF N_REGIONS
#define SLICE_ADD  (N_REGIONS + N_DIFF)
#define N_SLICES   (N_REGIONS + N_DIFF + 1)

/* Part 2: the accessors in-process. One 8 MiB region, then 128 adjacent 64 KiB ones. */
#define BIG_GPA	     0x40000000ull
#define BIG_SIZE     (8ull << 20)
#define SMALL_GPA    0x80000000ull
#define SMALL_SIZE   (64ull << 10)
#define SMALL_N	     128
#define COPY_FD_SIZE (BIG_SIZE + SMALL_N * SMALL_SIZE)
#define COPY_BYTES   (256ull << 20) /* copied per measurement */
#define MAX_COPY     (1ull << 20)

/* A memfd of size bytes sealed against shrinking, as the remote requires. */
static int sealed_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0) {
		perror("bench_memtable: memfd_create");
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		perror("bench_memtable: sizing or sealing the memfd");
		close(fd);
		return -1;
	}
	return fd;
}

static void *map_slice(int fd, uint64_t offset, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);

	if (p == MAP_FAILED) {
		perror("bench_memtable: mmap");
		return NULL;
	}
	return p;
}

static int unmap_slice(void *p, uint64_t size)
{
	if (munmap(p, size) < 0) {
		perror("bench_memtable: munmap");
		return -1;
	}
	return 0;
}

/* ---- Part 1: memory table changes through mpdev-remote ---- */

/* Pins pid (0: ourselves) to cpu, or lets it run anywhere with cpu < 0. */
struct counts {
	uint64_t mmaps, munmaps;
	unsigned int found;
};

static void on_counter(void *opaque, const char *name, uint64_t value)
{
	struct counts *c = opaque;

	if (!strcmp(name, "dma_mmaps")) {
		c->mmaps = value;
		c->found |= 1;
	} else if (!strcmp(name, "dma_munmaps")) {
		c->munmaps = value;
		c->found |= 2;
	}
}

static int mp_fail(struct mpdev *dev, const char *what)
{
	fprintf(stderr, "bench_memtable: %s: %s\n", what, mpdev_last_error(dev));
	return -1;
}

static int get_counts(struct mpdev *dev, struct counts *c)
{
	memset(c, 0, sizeof(*c));
	if (mpdev_get_stats(dev, on_counter, c) < 0)
		return mp_fail(dev, "reading the remote's counters");
	if (c->found != 3) {
		fprintf(stderr, "bench_memtable: the remote reports no dma_mmaps/dma_munmaps "
				"counters (docs/protocol.md 5.5)\n");
		return -1;
	}
	return 0;
}

/* One kind of change: its times per round and the mmap/munmap calls it must take. */
struct change_row {
	const char *what;
	uint64_t want_maps, want_unmaps;
	uint64_t maps, unmaps; /* seen: the first wrong pair if any, else the right one */
	bool wrong;
	double raw[ROUNDS], mp[ROUNDS]; /* microseconds */
};

static void row_check(struct change_row *row, uint64_t maps, uint64_t unmaps)
{
	if (row->wrong)
		return;
	row->maps = maps;
	row->unmaps = unmaps;
	row->wrong = maps != row->want_maps || unmaps != row->want_unmaps;
}

enum { ROW_SET, ROW_ADD, ROW_REMOVE, ROW_DIFF, ROW_CLEAR, N_ROWS };

struct tables {
	int fd;
	struct mpdev_mem_region a[N_REGIONS], b[N_REGIONS], add;
	void *raw[N_REGIONS];
	int diff_index[N_DIFF];
};

static void tables_init(struct tables *t, int fd)
{
	for (int i = 0; i < N_REGIONS; i++)
		t->a[i] = (struct mpdev_mem_region){ .gpa = GPA_BASE + i * GPA_STRIDE,
						     .size = REGION_SIZE,
						     .fd = fd,
						     .fd_offset = i * REGION_SIZE };
	memcpy(t->b, t->a, sizeof(t->a));
	/* Table B: 10 regions spread over the table, backed by other slices. */
	for (int k = 0; k < N_DIFF; k++) {
		t->diff_index[k] = k * (N_REGIONS / N_DIFF) + N_REGIONS / N_DIFF / 2;
		t->b[t->diff_index[k]].fd_offset = (SLICE_DIFF + k) * REGION_SIZE;
	}
	t->add = (struct mpdev_mem_region){ .gpa = GPA_BASE + N_REGIONS * GPA_STRIDE,
					    .size = REGION_SIZE,
					    .fd = fd,
					    .fd_offset = SLICE_ADD * REGION_SIZE };
	t->fd = fd;
}

/* mpdev: one table change, timed, with the remote's mmap/munmap calls it took. */
static int mp_set(struct mpdev *dev, const struct mpdev_mem_region *v, size_t n,
		  struct change_row *row, int r)
{
	struct counts c0, c1;
	uint64_t t0, t1;

	if (get_counts(dev, &c0) < 0)
		return -1;
	t0 = bench_now_ns();
	if (mpdev_mem_set_table(dev, v, n) < 0)
		return mp_fail(dev, "mpdev_mem_set_table");
	t1 = bench_now_ns();
	if (get_counts(dev, &c1) < 0)
		return -1;
	row->mp[r] = (t1 - t0) / 1e3;
	row_check(row, c1.mmaps - c0.mmaps, c1.munmaps - c0.munmaps);
	return 0;
}

static int mp_add_remove(struct mpdev *dev, const struct tables *t, struct change_row *add,
			 struct change_row *rm, int r)
{
	uint64_t add_ns = 0, rm_ns = 0, t0, t1;
	struct counts c0, c1, c2;

	for (int i = 0; i < ADD_REPS; i++) {
		if (get_counts(dev, &c0) < 0)
			return -1;
		t0 = bench_now_ns();
		if (mpdev_mem_add(dev, &t->add) < 0)
			return mp_fail(dev, "mpdev_mem_add");
		t1 = bench_now_ns();
		add_ns += t1 - t0;
		if (get_counts(dev, &c1) < 0)
			return -1;
		t0 = bench_now_ns();
		if (mpdev_mem_remove(dev, t->add.gpa, t->add.size) < 0)
			return mp_fail(dev, "mpdev_mem_remove");
		t1 = bench_now_ns();
		rm_ns += t1 - t0;
		if (get_counts(dev, &c2) < 0)
			return -1;
		row_check(add, c1.mmaps - c0.mmaps, c1.munmaps - c0.munmaps);
		row_check(rm, c2.mmaps - c1.mmaps, c2.munmaps - c1.munmaps);
	}
	add->mp[r] = add_ns / 1e3 / ADD_REPS;
	rm->mp[r] = rm_ns / 1e3 / ADD_REPS;
	return 0;
}

/* Raw: the same mmap/munmap calls of the same slices, in this process. */
static int raw_set(struct tables *t, struct change_row *row, int r)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < N_REGIONS; i++) {
		t->raw[i] = map_slice(t->fd, t->a[i].fd_offset, REGION_SIZE);
		if (!t->raw[i])
			return -1;
	}
	row->raw[r] = (bench_now_ns() - t0) / 1e3;
	return 0;
}

static int raw_add_remove(struct tables *t, struct change_row *add, struct change_row *rm, int r)
{
	uint64_t add_ns = 0, rm_ns = 0, t0, t1;

	for (int i = 0; i < ADD_REPS; i++) {
		void *p;

		t0 = bench_now_ns();
		p = map_slice(t->fd, t->add.fd_offset, REGION_SIZE);
		t1 = bench_now_ns();
		if (!p)
			return -1;
		add_ns += t1 - t0;
		t0 = bench_now_ns();
		if (unmap_slice(p, REGION_SIZE) < 0)
			return -1;
		rm_ns += bench_now_ns() - t0;
	}
	add->raw[r] = add_ns / 1e3 / ADD_REPS;
	rm->raw[r] = rm_ns / 1e3 / ADD_REPS;
	return 0;
}

static int raw_diff(struct tables *t, struct change_row *row, int r)
{
	uint64_t t0 = bench_now_ns();

	for (int k = 0; k < N_DIFF; k++) {
		int i = t->diff_index[k];

		if (unmap_slice(t->raw[i], REGION_SIZE) < 0)
			return -1;
		t->raw[i] = map_slice(t->fd, t->b[i].fd_offset, REGION_SIZE);
		if (!t->raw[i])
			return -1;
	}
	row->raw[r] = (bench_now_ns() - t0) / 1e3;
	return 0;
}

static int raw_clear(struct tables *t, struct change_row *row, int r)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < N_REGIONS; i++)
		if (unmap_slice(t->raw[i], REGION_SIZE) < 0)
			return -1;
	row->raw[r] = (bench_now_ns() - t0) / 1e3;
	return 0;
}

static int count_open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Rounds of: set A on an empty table, add and remove one, set B, clear. Round 0 is warm-up. */
static int measure_tables(struct mpdev *dev, struct tables *t, struct change_row *rows,
			  int *table_fds)
{
	for (int round = 0; round <= ROUNDS; round++) {
		int r = round ? round - 1 : 0;

		if (mpdev_mem_set_table(dev, NULL, 0) < 0)
			return mp_fail(dev, "setting an empty table");
		if (raw_set(t, &rows[ROW_SET], r) < 0 ||
		    mp_set(dev, t->a, N_REGIONS, &rows[ROW_SET], r) < 0)
			return -1;
		if (round == 1)
			*table_fds = count_open_fds();
		if (raw_add_remove(t, &rows[ROW_ADD], &rows[ROW_REMOVE], r) < 0 ||
		    mp_add_remove(dev, t, &rows[ROW_ADD], &rows[ROW_REMOVE], r) < 0)
			return -1;
		if (raw_diff(t, &rows[ROW_DIFF], r) < 0 ||
		    mp_set(dev, t->b, N_REGIONS, &rows[ROW_DIFF], r) < 0)
			return -1;
		if (raw_clear(t, &rows[ROW_CLEAR], r) < 0 ||
		    mp_set(dev, NULL, 0, &rows[ROW_CLEAR], r) < 0)
			return -1;
	}
	return 0;
}

static void rows_init(struct change_row *rows)
{
	memset(rows, 0, N_ROWS * sizeof(*rows));
	rows[ROW_SET].what = "  set 1,000 regions on an empty table";
	rows[ROW_SET].want_maps = N_REGIONS;
	rows[ROW_ADD].what = "  add 1 region";
	rows[ROW_ADD].want_maps = 1;
	rows[ROW_REMOVE].what = "  remove 1 region";
	rows[ROW_REMOVE].want_unmaps = 1;
	rows[ROW_DIFF].what = "  set a table differing in 10";
	rows[ROW_DIFF].want_maps = N_DIFF;
	rows[ROW_DIFF].want_unmaps = N_DIFF;
	rows[ROW_CLEAR].what = "  set an empty table (clear 1,000)";
	rows[ROW_CLEAR].want_unmaps = N_REGIONS;
}

/* Both processes on cpu (or unpinned with cpu < 0). */
static int run_tables(int cpu, struct change_row *rows, int *base_fds, int *table_fds)
{
	const char *args[] = { "--device", "edu", NULL };
	static struct tables t;
	struct mpdev *dev = NULL;
	char bin[4096];
	int sock, st, ret, fd;
	pid_t pid;

	fd = sealed_memfd("bench-memtable", N_SLICES * REGION_SIZE);
	if (fd < 0)
		return -1;
	tables_init(&t, fd);
	spawn_find_remote(bin, sizeof(bin));
	if (spawn_remote(bin, args, &pid, &sock) < 0) {
		fprintf(stderr, "bench_memtable: cannot start %s\n", bin);
		close(fd);
		return -1;
	}
	rows_init(rows);
	/* The handle owns sock from here on, also when connecting fails. */
	if (mpdev_connect_fd(sock, NULL, &dev) < 0) {
		fprintf(stderr, "bench_memtable: connect: %s\n", mpdev_connect_error());
		ret = -1;
	} else if (!(mpdev_features(dev) & MPDEV_FEATURE_MEMORY_TABLE) ||
		   !(mpdev_features(dev) & MPDEV_FEATURE_STATS)) {
		fprintf(stderr, "bench_memtable: the remote offers no memory table or no stats\n");
		ret = -1;
	} else if (bench_pin(0, cpu) < 0 || bench_pin(pid, cpu) < 0) {
		ret = -1;
	} else {
		*base_fds = count_open_fds();
		ret = measure_tables(dev, &t, rows, table_fds);
	}
	mpdev_close(dev);
	close(fd);
	if (spawn_wait(pid, 5000, &st) < 0) {
		fprintf(stderr, "bench_memtable: mpdev-remote did not exit\n");
		ret = -1;
	}
	if (bench_pin(0, -1) < 0)
		ret = -1;
	return ret;
}

/* ---- Part 2: the DMA accessors, in-process ---- */

struct copy_case {
	const char *what;
	size_t len;
	bool write;
	bool span;			/* each access spans two adjacent 64 KiB regions */
	double raw[ROUNDS], mp[ROUNDS]; /* GB/s */
};

/* Where access i goes, as an offset into the memfd (= into raw) and as a gpa. */
static uint64_t copy_offset(const struct copy_case *c, size_t i, uint64_t *gpa)
{
	if (c->span) {
		uint64_t k = i % (SMALL_N - 1);
		uint64_t in_small = k * SMALL_SIZE + SMALL_SIZE - c->len / 2;

		*gpa = SMALL_GPA + in_small;
		return BIG_SIZE + in_small;
	}
	*gpa = BIG_GPA + (i * c->len) % BIG_SIZE;
	return *gpa - BIG_GPA;
}

static double raw_copy(const struct copy_case *c, uint8_t *raw, uint8_t *buf)
{
	size_t iters = COPY_BYTES / c->len;
	uint64_t gpa, t0 = bench_now_ns();

	for (size_t i = 0; i < iters; i++) {
		uint8_t *p = raw + copy_offset(c, i, &gpa);

		if (c->write)
			memcpy(p, buf, c->len);
		else
			memcpy(buf, p, c->len);
	}
	__asm__ volatile("" : : "r"(raw), "r"(buf) : "memory");
	return (double)(iters * c->len) / (double)(bench_now_ns() - t0);
}

static double dma_copy(const struct copy_case *c, struct dma_table *t, uint8_t *buf)
{
	size_t iters = COPY_BYTES / c->len;
	uint64_t gpa, t0 = bench_now_ns();
	struct mpdev_error err;

	for (size_t i = 0; i < iters; i++) {
		int ret;

		copy_offset(c, i, &gpa);
		if (c->write)
			ret = dma_write(t, gpa, buf, c->len, &err);
		else
			ret = dma_read(t, gpa, buf, c->len, &err);
		if (ret < 0) {
			fprintf(stderr, "bench_memtable: %s: %s\n", c->what, err.msg);
			return -1;
		}
	}
	__asm__ volatile("" : : "r"(buf) : "memory");
	return (double)(iters * c->len) / (double)(bench_now_ns() - t0);
}

static int add_region(struct dma_table *t, int fd, uint64_t gpa, uint64_t size, uint64_t offset)
{
	struct dma_new_region r = { .gpa = gpa, .size = size, .fd_offset = offset, .fd = fd };
	struct mpdev_error err;

	if (dma_table_add(t, &r, &err) < 0) {
		fprintf(stderr, "bench_memtable: dma_table_add at 0x%" PRIx64 ": %s\n", gpa,
			err.msg);
		return -1;
	}
	return 0;
}

/* The accessors see the same bytes as the raw mapping, across a region boundary too. */
static int check_same_memory(struct dma_table *t, uint8_t *raw, uint8_t *buf)
{
	uint64_t gpa = SMALL_GPA + SMALL_SIZE - 8192, off = BIG_SIZE + SMALL_SIZE - 8192;
	struct mpdev_error err;

	for (size_t i = 0; i < COPY_FD_SIZE; i++)
		raw[i] = (uint8_t)(i * 7 + (i >> 12));
	if (dma_read(t, gpa, buf, 16384, &err) < 0 || memcmp(buf, raw + off, 16384) ||
	    dma_read(t, BIG_GPA + 4096, buf, 4096, &err) < 0 || memcmp(buf, raw + 4096, 4096)) {
		fprintf(stderr, "bench_memtable: dma_read does not match the memfd%s%s\n",
			err.code ? ": " : "", err.code ? err.msg : "");
		return -1;
	}
	memset(buf, 0x5a, 16384);
	if (dma_write(t, gpa, buf, 16384, &err) < 0 || memcmp(buf, raw + off, 16384)) {
		fprintf(stderr, "bench_memtable: dma_write does not reach the memfd%s%s\n",
			err.code ? ": " : "", err.code ? err.msg : "");
		return -1;
	}
	return 0;
}

static int run_copies(struct copy_case *cases, int n_cases)
{
	static struct dma_table t;
	uint8_t *raw = NULL, *buf = NULL;
	int fd, ret = -1;

	fd = sealed_memfd("bench-dma", COPY_FD_SIZE);
	if (fd < 0)
		return -1;
	dma_table_init(&t, NULL, MPDEV_MAX_MEM_REGIONS);
	buf = aligned_alloc(4096, MAX_COPY);
	raw = map_slice(fd, 0, COPY_FD_SIZE);
	if (!buf || !raw) {
		fprintf(stderr, "bench_memtable: out of memory\n");
		goto out;
	}
	memset(buf, 1, MAX_COPY);
	if (add_region(&t, fd, BIG_GPA, BIG_SIZE, 0) < 0)
		goto out;
	for (uint64_t k = 0; k < SMALL_N; k++)
		if (add_region(&t, fd, SMALL_GPA + k * SMALL_SIZE, SMALL_SIZE,
			       BIG_SIZE + k * SMALL_SIZE) < 0)
			goto out;
	if (check_same_memory(&t, raw, buf) < 0)
		goto out;
	/* Round 0 is warm-up: it also faults in the table's own mappings. */
	for (int round = 0; round <= ROUNDS; round++) {
		int r = round ? round - 1 : 0;

		for (int i = 0; i < n_cases; i++) {
			cases[i].raw[r] = raw_copy(&cases[i], raw, buf);
			cases[i].mp[r] = dma_copy(&cases[i], &t, buf);
			if (cases[i].mp[r] < 0)
				goto out;
		}
	}
	if (t.stats.faults || t.stats.mmaps != SMALL_N + 1) {
		fprintf(stderr, "bench_memtable: %" PRIu64 " faults, %" PRIu64 " mmaps\n",
			t.stats.faults, t.stats.mmaps);
		goto out;
	}
	ret = 0;
out:
	dma_table_clear(&t);
	if (raw)
		munmap(raw, COPY_FD_SIZE);
	free(buf);
	close(fd);
	return ret;
}

/* libmpdev keeps one descriptor per region: allow two tables of them at once. */
static int raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("bench_memtable: getrlimit");
		return -1;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("bench_memtable: setrlimit");
		return -1;
	}
	if (rl.rlim_cur < 2 * N_REGIONS + 100) {
		fprintf(stderr,
			"bench_memtable: RLIMIT_NOFILE %llu is too low for two %d-region "
			"tables\n",
			(unsigned long long)rl.rlim_cur, N_REGIONS);
		return -1;
	}
	return 0;
}

static void print_change(const struct change_row *row)
{
	double raw = bench_median(row->raw, ROUNDS), mp = bench_median(row->mp, ROUNDS);

	printf("%-38s %10.2f us %10.2f us %9.2f   %" PRIu64 "/%" PRIu64 " %s\n", row->what, raw, mp,
	       mp / raw, row->maps, row->unmaps, row->wrong ? "WRONG" : "OK");
}

int main(void)
{
	static struct change_row pinned[N_ROWS], unpinned[N_ROWS];
	struct copy_case cases[] = {
		{ .what = "  dma_read 4 KiB", .len = 4096 },
		{ .what = "  dma_read 64 KiB", .len = 65536 },
		{ .what = "  dma_read 1 MiB", .len = 1 << 20 },
		{ .what = "  dma_write 4 KiB", .len = 4096, .write = true },
		{ .what = "  dma_write 64 KiB", .len = 65536, .write = true },
		{ .what = "  dma_write 1 MiB", .len = 1 << 20, .write = true },
		{ .what = "  dma_read 4 KiB across 2 regions", .len = 4096, .span = true },
		{ .what = "  dma_read 64 KiB across 2 regions", .len = 65536, .span = true },
		{ .what = "  dma_write 4 KiB across 2 regions",
		  .len = 4096,
		  .write = true,
		  .span = true },
		{ .what = "  dma_write 64 KiB across 2 regions",
		  .len = 65536,
		  .write = true,
		  .span = true },
	};
	int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
	int base_fds = 0, table_fds = 0;
	bool wrong = false;

	if (raise_fd_limit() < 0 || run_tables(0, pinned, &base_fds, &table_fds) < 0 ||
	    run_tables(-1, unpinned, &base_fds, &table_fds) < 0 || run_copies(cases, n_cases) < 0)
		return 1;

	printf("bench_memtable: median of %d rounds; table changes through mpdev-remote (1,000 "
	       "regions of 64 KiB, one sealed memfd) beside the same mmap/munmap calls made here; "
	       "DMA accessors beside memcpy of the same memory\n",
	       ROUNDS);
	printf("%-38s %13s %13s %9s   %s\n", "memory table change (wall time)", "raw", "mpdev",
	       "ratio", "remote mmaps/munmaps");
	printf(" pinned to cpu 0 (both processes)\n");
	for (int i = 0; i < N_ROWS; i++) {
		print_change(&pinned[i]);
		wrong |= pinned[i].wrong;
	}
	printf(" unpinned\n");
	for (int i = 0; i < N_ROWS; i++) {
		print_change(&unpinned[i]);
		wrong |= unpinned[i].wrong;
	}
	printf("  (raw: the same mmaps/munmaps in one process; add/remove: mean of %d per round; "
	       "libmpdev holds %d descriptors for the 1,000-region table)\n",
	       ADD_REPS, table_fds - base_fds);
	printf("%-38s %13s %13s %9s\n", "DMA copy throughput", "raw memcpy", "mpdev", "raw/mpdev");
	for (int i = 0; i < n_cases; i++) {
		double raw = bench_median(cases[i].raw, ROUNDS), mp = bench_median(cases[i].mp, ROUNDS);

		printf("%-38s %8.2f GB/s %8.2f GB/s %9.2f\n", cases[i].what, raw, mp, raw / mp);
	}
	return wrong ? 1 : 0;
}
