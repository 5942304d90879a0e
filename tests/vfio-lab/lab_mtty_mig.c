/*
 * vfio-lab: migrating an mtty mediated device between two mpdev-remote
 * processes on the real kernel (6.12's samples/vfio-mdev/mtty.c: STOP_COPY,
 * P2P and PRE_COPY). The source's serial ports are given line settings and
 * bytes in their loopback FIFOs; the stream goes PRE_COPY (the precopy pass
 * and VFIO_MIG_GET_PRECOPY_INFO's figures), PRE_COPY_P2P, STOP_COPY on the
 * source, and RESUMING -> STOP -> RUNNING on a second mtty device served by
 * another remote; the target then has the same registers and gives the same
 * bytes back. On the way: the stream in mtty's layout, the data_fd in the
 * source remote's descriptor table only while the session lasts, the state
 * re-saved from the target identical byte for byte, and what dirty
 * tracking the VMM is offered.
 */
#include "lab_mtty_mig.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lab_util.h"
#include "libmpdev.h"

#define UART_RBR_THR 0 /* DLL under DLAB */
#define UART_IER     1 /* DLM under DLAB */
#define UART_FCR     2
#define UART_LCR     3
#define UART_MCR     4
#define UART_LSR     5
#define UART_SCR     7

/* mtty's stream (struct mtty_data in mtty.c): a 24-byte header, then each port's state. */
#define MTTY_MAGIC     0x7e9d09898c3e2c4eull
#define MTTY_HDR       24
#define MTTY_PORT_SIZE 36 /* struct serial_port, 2-byte aligned */
#define MTTY_PORTS     2  /* type mtty-2 */
#define MTTY_STREAM    (MTTY_HDR + MTTY_PORTS * MTTY_PORT_SIZE)
/* Within struct serial_port. */
#define SP_REGS	   0
#define SP_FIFO	   8
#define SP_HEAD	   24
#define SP_TAIL	   25
#define SP_COUNT   26
#define SP_DLAB	   27
#define SP_DIVISOR 30

static const char payload0[] = "mpdev-mig"; /* into port 0's FIFO */
static const char payload1[] = "p1";	    /* into port 1's */

static int bar_wr(struct mpdev *d, unsigned bar, uint64_t off, uint8_t v)
{
	return mpdev_region_write(d, MPDEV_REGION_BAR0 + bar, off, &v, 1);
}

static uint8_t bar_rd(struct mpdev *d, unsigned bar, uint64_t off)
{
	uint8_t v = 0xff;

	if (mpdev_region_read(d, MPDEV_REGION_BAR0 + bar, off, &v, 1) < 0)
		printf("  read BAR%u+0x%llx: %s\n", bar, (unsigned long long)off,
		       mpdev_last_error(d));
	return v;
}

/* The session's data_fd, as the kernel names mtty's file in the remote's fd table. */
static int count_mig_fds(pid_t pid)
{
	char dir[64], path[320], link[128];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		n += strstr(link, "mtty_mig") != NULL;
	}
	closedir(d);
	return n;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool to_state(struct mpdev *d, enum mpdev_mig_state s, const char *who)
{
	enum mpdev_mig_state reached = MPDEV_MIG_ERROR, now = MPDEV_MIG_ERROR;
	char what[96];
	int r = mpdev_mig_set_state(d, s, &reached);

	mpdev_mig_get_state(d, &now);
	snprintf(what, sizeof(what), "%s -> %s", who, mpdev_mig_state_name(s));
	check(r == 0 && reached == s && now == s, what, "reached %s, the kernel says %s%s%s",
	      mpdev_mig_state_name(reached), mpdev_mig_state_name(now), r ? ": " : "",
	      r ? mpdev_last_error(d) : "");
	return r == 0;
}

/* Reads until 0, in small pieces (the stream has no boundaries); -1 on error. */
static long read_stream(struct mpdev *d, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		int n = mpdev_mig_read(d, buf + got, cap - got < 40 ? cap - got : 40);

		if (n < 0) {
			printf("  mpdev_mig_read: %s\n", mpdev_last_error(d));
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

/* Line settings and FIFO bytes the migration must carry. */
static void setup_source(struct mpdev *d)
{
	/* Port 0: 8E1 at divisor 12, IER/MCR/SCR set, bytes in the loopback FIFO. */
	bar_wr(d, 0, UART_FCR, 0x07); /* FIFO on (16 bytes) and cleared */
	bar_wr(d, 0, UART_LCR, 0x83); /* DLAB: mtty clears the divisor */
	bar_wr(d, 0, UART_RBR_THR, 0x0c);
	bar_wr(d, 0, UART_IER, 0x00);
	bar_wr(d, 0, UART_LCR, 0x1b);
	bar_wr(d, 0, UART_IER, 0x0d); /* RDI, RLSI, MSI (no IRQ set: mtty signals nothing) */
	bar_wr(d, 0, UART_MCR, 0x0b); /* DTR, RTS, OUT2 */
	bar_wr(d, 0, UART_SCR, 0xa5);
	for (size_t i = 0; i < sizeof(payload0) - 1; i++)
		bar_wr(d, 0, UART_RBR_THR, (uint8_t)payload0[i]);
	/* Port 1: left with DLAB on at divisor 0x0180, so the target can read it back. */
	bar_wr(d, 1, UART_FCR, 0x07);
	for (size_t i = 0; i < sizeof(payload1) - 1; i++)
		bar_wr(d, 1, UART_RBR_THR, (uint8_t)payload1[i]);
	bar_wr(d, 1, UART_SCR, 0x3c);
	bar_wr(d, 1, UART_LCR, 0x83);
	bar_wr(d, 1, UART_RBR_THR, 0x80);
	bar_wr(d, 1, UART_IER, 0x01);
}

/* The stream in mtty's layout: the header, and what setup_source put in port 0. */
static void check_stream(const uint8_t *s, long n)
{
	uint64_t magic = 0;
	uint32_t nr = 0;
	const uint8_t *p0 = s + MTTY_HDR, *p1 = s + MTTY_HDR + MTTY_PORT_SIZE;
	uint16_t div0 = 0, div1 = 0;
	char fifo[17] = { 0 };

	if (n != MTTY_STREAM)
		return;
	memcpy(&magic, s, 8);
	memcpy(&nr, s + 16, 4);
	memcpy(&div0, p0 + SP_DIVISOR, 2);
	memcpy(&div1, p1 + SP_DIVISOR, 2);
	for (unsigned i = 0; i < p0[SP_COUNT] && i < 16; i++)
		fifo[i] = (char)p0[SP_FIFO + (p0[SP_TAIL] + i) % 16];
	check(magic == MTTY_MAGIC && nr == MTTY_PORTS, "the stream: mtty's header",
	      "magic 0x%llx, %u ports", (unsigned long long)magic, nr);
	check(!strcmp(fifo, payload0) && p0[SP_REGS + UART_LCR] == 0x1b && div0 == 0x0c &&
		      p0[SP_REGS + UART_SCR] == 0xa5 && p1[SP_DLAB] == 1 && div1 == 0x0180,
	      "the stream: port 0's FIFO and line settings, port 1's DLAB and divisor",
	      "FIFO '%s' LCR 0x%02x divisor %u SCR 0x%02x; port 1 DLAB %u divisor 0x%04x", fifo,
	      p0[SP_REGS + UART_LCR], div0, p0[SP_REGS + UART_SCR], p1[SP_DLAB], div1);
}

static void check_target(struct mpdev *d)
{
	char got[16] = { 0 };
	size_t n = 0;
	uint8_t lsr;

	check(bar_rd(d, 0, UART_LCR) == 0x1b && bar_rd(d, 0, UART_IER) == 0x0d &&
		      bar_rd(d, 0, UART_MCR) == 0x0b && bar_rd(d, 0, UART_SCR) == 0xa5,
	      "target port 0: LCR, IER, MCR, scratch as the source had them",
	      "LCR 0x%02x IER 0x%02x MCR 0x%02x SCR 0x%02x", bar_rd(d, 0, UART_LCR),
	      bar_rd(d, 0, UART_IER), bar_rd(d, 0, UART_MCR), bar_rd(d, 0, UART_SCR));
	/* Under the migrated DLAB the divisor latch reads back without a write (which clears it).
	 */
	check(bar_rd(d, 1, UART_LCR) == 0x83 && bar_rd(d, 1, UART_RBR_THR) == 0x80 &&
		      bar_rd(d, 1, UART_IER) == 0x01 && bar_rd(d, 1, UART_SCR) == 0x3c,
	      "target port 1: DLAB on, divisor latch 0x0180, scratch", NULL);
	while (n < sizeof(got) - 1 && ((lsr = bar_rd(d, 0, UART_LSR)) & 1))
		got[n++] = (char)bar_rd(d, 0, UART_RBR_THR);
	check(!strcmp(got, payload0), "target port 0: the source's bytes come out of its FIFO",
	      "'%s' (%zu bytes)", got, n);
	check(!(bar_rd(d, 0, UART_LSR) & 1), "target port 0: FIFO empty afterwards", NULL);
}

void run_mtty_migrate(const char *uuid, const char *uuid2, const char *iommu)
{
	const char *pa = "/tmp/mpdev-lab-mig-src.sock", *pb = "/tmp/mpdev-lab-mig-dst.sock";
	struct mpdev_device_info ia = { 0 }, ib = { 0 };
	struct mpdev_iommu_info ii = { 0 };
	uint8_t s1[256], s2[256], junk[8];
	uint64_t initial = 0, dirty = 0, initial2 = 1, dirty2 = 1;
	struct mpdev *src = NULL, *dst = NULL;
	char spec_a[64], spec_b[64];
	long pre, n1 = 0, n2 = 0, rest;
	double t0 = now_ms(), t_stop = 0, t_run = 0;
	pid_t a, b;
	int r;

	printf("--- mtty migration %s -> %s, %s IOMMU ---\n", uuid, uuid2, iommu);
	snprintf(spec_a, sizeof(spec_a), "vfio-mdev:%s", uuid);
	snprintf(spec_b, sizeof(spec_b), "vfio-mdev:%s", uuid2);
	a = start_remote(spec_a, iommu, "auto", pa);
	b = start_remote(spec_b, iommu, "auto", pb);
	src = connect_remote(pa, a);
	dst = connect_remote(pb, b);
	check(src && dst, "two remotes, one mtty device each", NULL);
	if (!src || !dst)
		goto out;
	mpdev_get_device_info(src, &ia);
	mpdev_get_device_info(dst, &ib);
	check(ia.migration_flags == (MPDEV_MIG_FLAG_STOP_COPY | MPDEV_MIG_FLAG_P2P |
				     MPDEV_MIG_FLAG_PRE_COPY) &&
		      ib.migration_flags == ia.migration_flags,
	      "mtty's migration flags: STOP_COPY, P2P, PRE_COPY", "0x%x and 0x%x",
	      ia.migration_flags, ib.migration_flags);
	r = mpdev_get_iommu_info(src, &ii);
	check(r == 0 && ii.dirty_tracking,
	      "dirty tracking offered (mtty has DMA logging ops, which report nothing)",
	      "dirty_tracking %d", ii.dirty_tracking);
	if (r == 0 && ii.dirty_tracking) {
		const struct mpdev_dirty_range rg = { RAM_GPA, RAM_SIZE };
		uint8_t bm[RAM_SIZE / 4096 / 8];
		size_t set = 0;

		memset(bm, 0xff, sizeof(bm));
		r = mpdev_dirty_start(src, &rg, 1, 4096);
		if (r == 0)
			r = mpdev_dirty_report(src, RAM_GPA, RAM_SIZE, 4096, bm, sizeof(bm));
		for (size_t i = 0; r == 0 && i < sizeof(bm); i++)
			set += (size_t)__builtin_popcount(bm[i]);
		check(r == 0 && set == 0, "mtty's DMA log: started, reported, nothing dirty",
		      "%d: %s; %zu pages dirty", r, r ? mpdev_last_error(src) : "", set);
		check(mpdev_dirty_stop(src) == 0, "mtty's DMA log stopped", "%s",
		      mpdev_last_error(src));
	}

	setup_source(src);
	check(count_mig_fds(a) == 0, "source remote holds no data_fd before migrating", NULL);

	/* Source: PRE_COPY, the precopy pass and its figures. */
	if (!to_state(src, MPDEV_MIG_PRE_COPY, "source"))
		goto out;
	check(count_mig_fds(a) == 1, "source remote holds the session's data_fd", "%d",
	      count_mig_fds(a));
	r = mpdev_mig_precopy_info(src, &initial, &dirty);
	check(r == 0 && initial == MTTY_HDR && dirty == 0,
	      "VFIO_MIG_GET_PRECOPY_INFO in PRE_COPY: initial = mtty's header, dirty 0",
	      "%d: initial_bytes %llu dirty_bytes %llu", r, (unsigned long long)initial,
	      (unsigned long long)dirty);
	pre = read_stream(src, s1, sizeof(s1));
	r = mpdev_mig_precopy_info(src, &initial2, &dirty2);
	check(pre == MTTY_HDR && r == 0 && initial2 == 0 && dirty2 == 0,
	      "the precopy pass: the header, then no more; initial_bytes falls to 0",
	      "%ld bytes; then initial %llu dirty %llu", pre, (unsigned long long)initial2,
	      (unsigned long long)dirty2);
	if (!to_state(src, MPDEV_MIG_PRE_COPY_P2P, "source"))
		goto out;
	t_stop = now_ms();
	if (!to_state(src, MPDEV_MIG_STOP_COPY, "source"))
		goto out;
	r = mpdev_mig_precopy_info(src, &initial2, &dirty2);
	check(r < 0, "VFIO_MIG_GET_PRECOPY_INFO outside PRE_COPY is refused", "%d", r);
	rest = read_stream(src, s1 + (pre > 0 ? pre : 0), sizeof(s1) - (size_t)(pre > 0 ? pre : 0));
	n1 = (pre > 0 ? pre : 0) + (rest > 0 ? rest : 0);
	check(pre >= 0 && rest == MTTY_STREAM - MTTY_HDR && n1 == MTTY_STREAM,
	      "STOP_COPY: the rest of the stream on the same data_fd, then its end",
	      "%ld + %ld = %ld bytes", pre, rest, n1);
	check(mpdev_mig_read(src, junk, sizeof(junk)) == 0, "STOP_COPY: read after the end is 0",
	      NULL);
	check_stream(s1, n1);
	if (!to_state(src, MPDEV_MIG_STOP, "source"))
		goto out;
	check(count_mig_fds(a) == 0, "source remote closed the data_fd when the session ended",
	      "%d", count_mig_fds(a));

	/* Target: RESUMING, the stream in two pieces, STOP, RUNNING. */
	if (!to_state(dst, MPDEV_MIG_RESUMING, "target"))
		goto out;
	check(count_mig_fds(b) == 1, "target remote holds the resuming data_fd", NULL);
	r = mpdev_mig_write(dst, s1, 10);
	if (r == 0)
		r = mpdev_mig_write(dst, s1 + 10, (size_t)n1 - 10);
	check(r == 0, "target takes the stream", "%s", r ? mpdev_last_error(dst) : "");
	if (!to_state(dst, MPDEV_MIG_STOP, "target"))
		goto out;
	check(count_mig_fds(b) == 0, "target remote closed the data_fd after loading", NULL);
	/* Saved again from the target: the device state arrived byte for byte. */
	if (to_state(dst, MPDEV_MIG_STOP_COPY, "target (re-save)")) {
		n2 = read_stream(dst, s2, sizeof(s2));
		check(n2 == n1 && !memcmp(s1, s2, (size_t)n1),
		      "the target's state, saved again, is the source's byte for byte",
		      "%ld vs %ld bytes", n2, n1);
		to_state(dst, MPDEV_MIG_STOP, "target");
	}
	if (!to_state(dst, MPDEV_MIG_RUNNING, "target"))
		goto out;
	t_run = now_ms();
	check_target(dst);

	/*
	 * A refused stream: mtty says EFAULT to a bad header and stays in
	 * RESUMING, which no arc can leave with a partial stream. When the
	 * proxy goes, the remote resets the device (mtty handles the reset it
	 * does not advertise), so the next proxy finds it RUNNING.
	 */
	if (to_state(dst, MPDEV_MIG_RESUMING, "target (bad stream)")) {
		uint8_t zeros[MTTY_HDR] = { 0 };

		r = mpdev_mig_write(dst, zeros, sizeof(zeros));
		check(r < 0, "a stream with a bad header is refused", "%d: %s", r,
		      mpdev_last_error(dst));
		mpdev_close(dst);
		dst = NULL;
		for (int i = 0; i < 100 && count_mig_fds(b) != 0; i++)
			usleep(20000);
		dst = connect_remote(pb, b);
		if (dst && to_state(dst, MPDEV_MIG_PRE_COPY, "target (next proxy)")) {
			r = mpdev_mig_precopy_info(dst, &initial, &dirty);
			check(r == 0 && initial == MTTY_HDR,
			      "after a refused stream the next proxy finds the device RUNNING",
			      "%d: initial_bytes %llu", r, (unsigned long long)initial);
			to_state(dst, MPDEV_MIG_RUNNING, "target (next proxy)");
		}
	}

	/* The source can go on where it stopped (a migration abandoned late). */
	if (to_state(src, MPDEV_MIG_RUNNING, "source (resumes)"))
		check(bar_rd(src, 0, UART_LSR) & 1 && bar_rd(src, 0, UART_RBR_THR) == 'm',
		      "source still has its FIFO after saving", NULL);
	/*
	 * mtty handles VFIO_DEVICE_RESET but does not advertise
	 * VFIO_DEVICE_FLAGS_RESET, so the remote (like QEMU) does not reset it:
	 * the session goes on untouched.
	 */
	to_state(src, MPDEV_MIG_PRE_COPY, "source (again)");
	r = mpdev_reset(src);
	check(r == -ENOTTY && count_mig_fds(a) == 1,
	      "reset refused (mtty has no VFIO_DEVICE_FLAGS_RESET); the session goes on",
	      "%d, %d data_fd", r, count_mig_fds(a));
	/* The proxy leaving mid-session: the data_fd closed, the kernel device RUNNING again. */
	mpdev_close(src);
	src = NULL;
	for (int i = 0; i < 100 && count_mig_fds(a) != 0; i++)
		usleep(20000);
	check(count_mig_fds(a) == 0, "disconnect in PRE_COPY closes the data_fd", "%d",
	      count_mig_fds(a));
	src = connect_remote(pa, a);
	if (src && to_state(src, MPDEV_MIG_PRE_COPY, "source (next proxy)")) {
		r = mpdev_mig_precopy_info(src, &initial, &dirty);
		check(r == 0 && initial == MTTY_HDR && count_mig_fds(a) == 1,
		      "the next proxy gets a fresh session: the kernel was put back to RUNNING",
		      "%d: initial_bytes %llu, %d data_fd", r, (unsigned long long)initial,
		      count_mig_fds(a));
		to_state(src, MPDEV_MIG_RUNNING, "source (next proxy)");
	}
	printf("  migration: stream %ld bytes (precopy %ld); source STOP_COPY to target RUNNING "
	       "(with the re-save check) %.1f ms; the whole part %.1f ms\n",
	       n1, pre, t_run - t_stop, now_ms() - t0);
out:
	if (src)
		mpdev_close(src);
	if (dst)
		mpdev_close(dst);
	stop_remote(a);
	stop_remote(b);
}
