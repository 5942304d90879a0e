/*
 * What dirty tracking costs, in-process, each figure beside its baseline
 * measured in the same run:
 *
 * 1. The DMA path: dma_write() of 4 KiB and of 64 B into a memfd-backed
 *    dma_table (no backend), stepping 4 KiB so that every write dirties a
 *    page of its own, with tracking off and with tracking on (bitmaps
 *    cleared before each batch, untimed: every write sets a new bit, the
 *    worst case), and once more over the same pages (already dirty: the
 *    bit is only tested). Ratios on/off.
 * 2. A report: dirty_report() over 64 GiB tracked at 4 KiB pages, in
 *    chunks of one reply's worth of pages as the remote answers them, with
 *    no page dirty and with every page dirty; beside memcpy + memset of the
 *    same bitmap bytes (the least a copy-and-clear can cost). Per GiB.
 *
 * Batches alternate off and on (raw and report) within each round; one
 * warm-up round is dropped and each figure is the median over the others.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_util.h"
#include "dirty.h"
#include "dma.h"
#include "wire.h"

#define ROUNDS	 11
#define GPA	 0x100000000ull
#define RAM_SIZE (64ull << 20)
#define STEP	 4096ull
#define WRITES	 (RAM_SIZE / STEP) /* per batch: one per page */

#define REPORT_GIB  64ull
#define REPORT_SIZE (REPORT_GIB << 30)
#define PAGE	    4096ull

static int sealed_memfd(uint64_t size)
{
	int fd = memfd_create("bench-dirty", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		perror("bench_dirty: memfd");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* ns per dma_write of len bytes, over one batch; < 0 on failure. */
static double write_batch(struct dma_table *t, const uint8_t *buf, size_t len)
{
	struct mpdev_error err;
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < WRITES; i++)
		if (dma_write(t, GPA + i * STEP, buf, len, &err) < 0) {
			fprintf(stderr, "bench_dirty: dma_write: %s\n", err.msg);
			return -1;
		}
	return (double)(bench_now_ns() - t0) / WRITES;
}

static int track(struct dma_table *t)
{
	const struct backend_dirty_range r = { GPA, RAM_SIZE };
	struct mpdev_error err;

	if (dirty_start(&t->dirty, &r, 1, PAGE, &err) < 0) {
		fprintf(stderr, "bench_dirty: dirty_start: %s\n", err.msg);
		return -1;
	}
	return 0;
}

struct write_row {
	const char *what;
	size_t len;
	double off[ROUNDS], on[ROUNDS], again[ROUNDS];
};

static int run_writes(struct write_row *rows, int n)
{
	static struct dma_table t;
	struct dma_new_region reg = { .gpa = GPA, .size = RAM_SIZE };
	struct mpdev_error err;
	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t marked = 0;
	int fd = sealed_memfd(RAM_SIZE), ret = -1;

	if (fd < 0 || !buf)
		goto out;
	memset(buf, 0x5a, 4096);
	dma_table_init(&t, NULL, 16);
	reg.fd = fd;
	if (dma_table_add(&t, &reg, &err) < 0) {
		fprintf(stderr, "bench_dirty: %s\n", err.msg);
		goto out;
	}
	for (int round = 0; round <= ROUNDS; round++) {
		int r = round ? round - 1 : 0; /* round 0 warms up and faults the pages in */

		for (int i = 0; i < n; i++) {
			uint64_t before = t.dirty.stats.pages_marked;

			rows[i].off[r] = write_batch(&t, buf, rows[i].len);
			if (track(&t) < 0)
				goto out;
			rows[i].on[r] = write_batch(&t, buf, rows[i].len);
			marked = t.dirty.stats.pages_marked - before;
			/* The same pages again: already dirty, the bit is only tested. */
			rows[i].again[r] = write_batch(&t, buf, rows[i].len);
			dirty_stop(&t.dirty);
			if (rows[i].off[r] < 0 || rows[i].on[r] < 0 || rows[i].again[r] < 0)
				goto out;
			/* Honest figures only: every write of the on batch set its own bit. */
			if (marked != WRITES) {
				fprintf(stderr, "bench_dirty: %" PRIu64 " pages marked, not %llu\n",
					marked, WRITES);
				goto out;
			}
		}
	}
	ret = 0;
out:
	dma_table_clear(&t);
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* us per GiB for one whole report of the range, chunk by chunk. */
static double report_once(struct dirty_tracker *d, uint8_t *out, bool *all_set)
{
	const uint64_t chunk = MPDEV_DIRTY_REPORT_MAX_PAGES * PAGE;
	struct mpdev_error err;
	uint64_t t0 = bench_now_ns();

	for (uint64_t off = 0; off < REPORT_SIZE; off += chunk) {
		uint64_t size = REPORT_SIZE - off < chunk ? REPORT_SIZE - off : chunk;

		if (dirty_report(d, off, size, PAGE, out + off / PAGE / 8,
				 MPDEV_DIRTY_BITMAP_MAX_BYTES, &err) < 0) {
			fprintf(stderr, "bench_dirty: dirty_report: %s\n", err.msg);
			return -1;
		}
	}
	t0 = bench_now_ns() - t0;
	/* Read back outside the clock: the bits were all there, or all clear. */
	*all_set = true;
	for (uint64_t i = 0; i < REPORT_SIZE / PAGE / 8; i++)
		*all_set &= out[i] == 0xff;
	return (double)t0 / 1e3 / REPORT_GIB;
}

/* The same bytes copied out and cleared with memcpy + memset: us per GiB. */
static double raw_copy_clear(uint8_t *src, uint8_t *out, uint64_t bytes)
{
	uint64_t t0 = bench_now_ns();

	memcpy(out, src, bytes);
	memset(src, 0, bytes);
	return (double)(bench_now_ns() - t0) / 1e3 / REPORT_GIB;
}

struct report_rows {
	double clean[ROUNDS], dirty[ROUNDS], raw[ROUNDS];
};

static int run_reports(struct report_rows *rr)
{
	const struct backend_dirty_range r = { 0, REPORT_SIZE };
	const uint64_t bytes = REPORT_SIZE / PAGE / 8;
	struct dirty_tracker d;
	struct mpdev_error err;
	uint8_t *out = malloc(bytes + MPDEV_DIRTY_BITMAP_MAX_BYTES), *src = malloc(bytes);
	bool all;
	int ret = -1;

	dirty_init(&d);
	if (!out || !src || dirty_start(&d, &r, 1, PAGE, &err) < 0) {
		fprintf(stderr, "bench_dirty: cannot set up the report (%s)\n",
			out && src ? err.msg : "out of memory");
		goto out;
	}
	memset(out, 0, bytes);
	for (int round = 0; round <= ROUNDS; round++) {
		int k = round ? round - 1 : 0;

		rr->clean[k] = report_once(&d, out, &all);
		if (rr->clean[k] < 0 || out[0] || out[bytes - 1])
			goto out;
		/* Every page dirty: one mark over the whole range (untimed). */
		dirty_mark(&d, 0, REPORT_SIZE);
		rr->dirty[k] = report_once(&d, out, &all);
		if (rr->dirty[k] < 0 || !all) {
			fprintf(stderr, "bench_dirty: the full report is not all ones\n");
			goto out;
		}
		memset(src, 0xff, bytes);
		rr->raw[k] = raw_copy_clear(src, out, bytes);
	}
	ret = 0;
out:
	dirty_stop(&d);
	free(out);
	free(src);
	return ret;
}

int main(void)
{
	struct write_row rows[] = {
		{ .what = "dma_write 4 KiB", .len = 4096 },
		{ .what = "dma_write 64 B", .len = 64 },
	};
	static struct report_rows rr;
	int n = sizeof(rows) / sizeof(rows[0]);

	if (bench_pin(0, 0) < 0)
		fprintf(stderr, "bench_dirty: cannot pin to CPU 0; unpinned figures\n");
	if (run_writes(rows, n) < 0 || run_reports(&rr) < 0)
		return 1;
	printf("DMA path, %llu writes a batch, 4 KiB apart (median of %d batches)\n", WRITES,
	       ROUNDS);
	printf("%-18s %13s %13s %8s %15s %8s\n", "", "tracking off", "on, new page", "on/off",
	       "on, page dirty", "on/off");
	for (int i = 0; i < n; i++) {
		double off = bench_median(rows[i].off, ROUNDS),
		       on = bench_median(rows[i].on, ROUNDS),
		       again = bench_median(rows[i].again, ROUNDS);

		printf("%-18s %10.1f ns %10.1f ns %8.2f %12.1f ns %8.2f\n", rows[i].what, off, on,
		       on / off, again, again / off);
	}
	printf("\nReport of %llu GiB at 4 KiB pages, in chunks of %llu pages (median of %d)\n",
	       REPORT_GIB, (unsigned long long)MPDEV_DIRTY_REPORT_MAX_PAGES, ROUNDS);
	{
		double raw = bench_median(rr.raw, ROUNDS), clean = bench_median(rr.clean, ROUNDS),
		       dirty = bench_median(rr.dirty, ROUNDS);

		printf("%-36s %9.2f us/GiB\n", "raw memcpy + memset of the bitmap", raw);
		printf("%-36s %9.2f us/GiB %6.2f x raw\n", "dirty_report, no page dirty", clean,
		       clean / raw);
		printf("%-36s %9.2f us/GiB %6.2f x raw\n", "dirty_report, every page dirty", dirty,
		       dirty / raw);
	}
	return 0;
}
