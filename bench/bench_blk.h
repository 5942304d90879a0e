/*
 * bench_blk's pieces: the figures of one run, the device side (an
 * mpdev-remote serving virtio-blk, driven through tests/lib/virtio_drv), and
 * the fio baseline with as much of a JSON reader as its report needs.
 */
#ifndef MPDEV_BENCH_BLK_H
#define MPDEV_BENCH_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One timed run of one workload, on either side. */
struct blk_figures {
	double iops;
	double p50_us, p99_us; /* per request, submission to completion */
	/* fio only: its completion latency (clat), which leaves out submission (slat). */
	double clat_p50_us, clat_p99_us;
	uint64_t ios;
};

#define BLK_BS 4096u

/* Says why (printf-style, into why[0..len)) and returns code: every piece's way out. */
int blk_fail(char *why, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- the device side (bench_blk_dev.c) -------------------------------------------------- */

struct blk_dev;

/*
 * Writes size bytes of file (created, or truncated) with every 4 KiB block
 * holding its pattern of generation 0, and syncs it: reads then hit real
 * blocks, not holes, and a read can be checked against what it must hold.
 */
int blk_fill_file(const char *file, uint64_t size, char *why, size_t why_len);

/*
 * Starts mpdev-remote --device virtio-blk:FILE,direct=on (bin: its path),
 * connects, gives it guest RAM (a sealed memfd) and an MSI-X eventfd, and
 * brings up request queue 0 as a guest driver would; kicks go to a doorbell
 * eventfd when the remote offers one, else by posted BAR write. file holds
 * size bytes as blk_fill_file left them.
 */
int blk_dev_open(const char *bin, const char *file, uint64_t size, struct blk_dev **out, char *why,
		 size_t why_len);

/*
 * Kicks queue 0 through its doorbell eventfd (on, when the remote gave one)
 * or by posted BAR write (off): the same device, both kicks, in one run.
 */
void blk_dev_use_doorbell(struct blk_dev *d, bool on);

/* How queue 0 is kicked and how its completions are awaited, in words. */
const char *blk_dev_kick(const struct blk_dev *d);

/*
 * 4 KiB random reads (or writes) at queue depth qd for seconds: qd
 * requests kept outstanding on queue 0, one kick per batch of resubmitted
 * requests, completions awaited on the MSI-X eventfd (poll: by spinning on
 * the used ring with interrupts suppressed). Every request's status must be
 * OK; a read of a block whose contents are known is checked; a write
 * carries its block's pattern of a new generation. -EIO and why on a
 * failed or wrong request, -ETIMEDOUT on one that never completes.
 */
int blk_dev_run(struct blk_dev *d, bool write, int qd, bool poll, int seconds,
		struct blk_figures *out, char *why, size_t why_len);

/*
 * Reads back up to n blocks the last write run wrote, through the device
 * and from the file itself, and compares both with what was written.
 * *checked gets how many; -EIO and why at the first mismatch.
 */
int blk_dev_verify(struct blk_dev *d, unsigned n, unsigned *checked, char *why, size_t why_len);

/* Someone else (fio) wrote the file: reads can no longer be checked. */
void blk_dev_forget(struct blk_dev *d);

/* Stops the remote and frees everything: 0, or -EIO if the remote did not exit cleanly. */
int blk_dev_close(struct blk_dev *d);

/* ---- the fio baseline (bench_blk_fio.c) ------------------------------------------------- */

/* The fio job of one run: one file, 4 KiB random I/O. */
struct blk_fio_job {
	const char *fio;  /* the program, "fio" from PATH by default */
	const char *file; /* the backing file */
	uint64_t size;	  /* the bytes of it to use */
	bool write;	  /* randwrite, else randread */
	int qd;
	int seconds;
};

/*
 * fio's version line ("fio-3.33") into buf: 0, or -ENOENT when fio cannot be
 * run (why says what happened).
 */
int blk_fio_version(const char *fio, char *buf, size_t len, char *why, size_t why_len);

/* Runs the job as a child and reads its figures: 0 or -errno, why filled. */
int blk_fio_run(const struct blk_fio_job *job, struct blk_figures *out, char *why, size_t why_len);

/*
 * Reads the figures of jobs[0].read (or .write) out of fio's JSON in
 * text[0..len): iops, lat_ns (or, without --lat_percentiles, clat_ns)
 * percentiles 50 and 99, clat_ns percentiles 50 and 99, total_ios, and
 * checks jobs[0].error is 0. 0 or -EPROTO/-EIO with why filled.
 */
int blk_fio_parse(const char *text, size_t len, bool write, struct blk_figures *out, char *why,
		  size_t why_len);

#endif
