/*
 * Migration against real mpdev-remote processes serving edu: every pair of
 * states through the socket; edu moved mid-factorial and mid-DMA from one
 * remote to another, with and without precopy, arriving with identical
 * results; streams a target must refuse (and stays usable after); the
 * stream and precopy requests outside their states; and a set of devices
 * quiesced in P2P before any stops, with a DMA started in that window
 * landing only after resume.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bar_access.h"
#include "edu.h"
#include "libmpdev.h"
#include "mig_fsm.h"
#include "remote_fixture.h"
#include "testutil.h"

#define PAGE	 0x1000u
#define RAM_GPA	 0x100000u
#define RAM_SIZE (1u << 20)

#define PCI_COMMAND	 0x04
#define PCI_BAR0	 0x10
#define PCI_COMMAND_MEMB 0x0006u

#define STREAM_MAX (256u * 1024u)

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_migration" };

struct vm_dev {
	struct remote rem;
	int ram_fd;
	uint8_t *ram;
};

static void dev_start(struct vm_dev *d, int shared_ram_fd)
{
	struct mpdev_mem_region reg;

	remote_start(&d->rem, &(struct remote_opts){ .mpdev = &opts });
	d->ram_fd = shared_ram_fd >= 0 ? dup(shared_ram_fd)
				       : testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
	ck_assert_int_ge(d->ram_fd, 0);
	d->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->ram_fd, 0);
	ck_assert_ptr_ne(d->ram, MAP_FAILED);
	reg = (struct mpdev_mem_region){ .gpa = RAM_GPA, .size = RAM_SIZE, .fd = d->ram_fd };
	ck_assert_msg(mpdev_mem_set_table(d->rem.dev, &reg, 1) == 0, "table: %s",
		      mpdev_last_error(d->rem.dev));
}

static void dev_stop(struct vm_dev *d)
{
	munmap(d->ram, RAM_SIZE);
	close(d->ram_fd);
	remote_stop(&d->rem);
}

static enum mpdev_mig_state state_of(struct vm_dev *d)
{
	enum mpdev_mig_state s = 99;

	ck_assert_msg(mpdev_mig_get_state(d->rem.dev, &s) == 0, "get state: %s",
		      mpdev_last_error(d->rem.dev));
	return s;
}

static void set_ok(struct vm_dev *d, enum mpdev_mig_state s)
{
	enum mpdev_mig_state reached = 99;
	int r = mpdev_mig_set_state(d->rem.dev, s, &reached);

	ck_assert_msg(r == 0, "-> %s: %s", mpdev_mig_state_name(s), mpdev_last_error(d->rem.dev));
	ck_assert_uint_eq(reached, s);
}

/* Reads the stream until the device says there is no more now; returns its length. */
static size_t read_stream(struct vm_dev *d, uint8_t *buf, size_t cap)
{
	size_t len = 0;
	int n;

	while ((n = mpdev_mig_read(d->rem.dev, buf + len, cap - len > 4096 ? 4096 : cap - len)) >
	       0) {
		len += (size_t)n;
		ck_assert_uint_lt(len, cap);
	}
	ck_assert_msg(n == 0, "stream read: %s", mpdev_last_error(d->rem.dev));
	return len;
}

static void wait_fact_done(struct vm_dev *d)
{
	for (int i = 0; i < 2000 && (bar_rd32(d->rem.dev, EDU_REG_STATUS) & EDU_STATUS_COMPUTING);
	     i++)
		usleep(1000);
	ck_assert(!(bar_rd32(d->rem.dev, EDU_REG_STATUS) & EDU_STATUS_COMPUTING));
}

static void wait_dma_done(struct vm_dev *d)
{
	for (int i = 0; i < 2000 && (bar_rd64(d->rem.dev, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN); i++)
		usleep(1000);
	ck_assert(!(bar_rd64(d->rem.dev, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN));
}

static void start_dma(struct vm_dev *d, uint64_t src, uint64_t dst, uint64_t cnt, uint64_t cmd)
{
	bar_wr64(d->rem.dev, EDU_REG_DMA_SRC, src);
	bar_wr64(d->rem.dev, EDU_REG_DMA_DST, dst);
	bar_wr64(d->rem.dev, EDU_REG_DMA_COUNT, cnt);
	bar_wr64(d->rem.dev, EDU_REG_DMA_CMD, cmd | EDU_DMA_CMD_RUN | EDU_DMA_CMD_IRQ);
}

static void pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 17) % 251);
}

static bool eventfd_fires(int efd, int ms)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, ms) != 1)
		return false;
	return read(efd, &v, sizeof(v)) == sizeof(v);
}

/* ---- every pair of states ---- */

/* A whole stream of the device, for RESUMING to have something to leave with. */
static uint8_t walk_stream[STREAM_MAX];
static size_t walk_len;

/*
 * Drives a fresh device (reset: RUNNING) to s: RESUMING with a good stream
 * loaded (leaving RESUMING checks it), ERROR through a stream it refuses.
 */
static void drive_to(struct vm_dev *d, unsigned s)
{
	static const uint8_t garbage[64] = { 0xde, 0xad, 0xbe, 0xef };

	ck_assert_int_eq(mpdev_reset(d->rem.dev), 0);
	if (s == MPDEV_MIG_ERROR) {
		set_ok(d, MPDEV_MIG_RESUMING);
		ck_assert_int_lt(mpdev_mig_write(d->rem.dev, garbage, sizeof(garbage)), 0);
	} else {
		set_ok(d, s);
		if (s == MPDEV_MIG_RESUMING)
			ck_assert_int_eq(mpdev_mig_write(d->rem.dev, walk_stream, walk_len), 0);
	}
	ck_assert_uint_eq(state_of(d), s);
}

static uint64_t transitions;

static void pick_transitions(void *opaque, const char *name, uint64_t value)
{
	(void)opaque;
	if (!strcmp(name, "mig_transitions"))
		transitions = value;
}

START_TEST(every_pair_of_states)
{
	struct mpdev_device_info info;
	struct vm_dev d;
	unsigned ok = 0, refused = 0;

	dev_start(&d, -1);
	ck_assert_int_eq(mpdev_get_device_info(d.rem.dev, &info), 0);
	ck_assert_uint_eq(info.migration_flags,
			  MPDEV_MIG_FLAG_STOP_COPY | MPDEV_MIG_FLAG_P2P | MPDEV_MIG_FLAG_PRE_COPY);
	set_ok(&d, MPDEV_MIG_STOP_COPY);
	walk_len = read_stream(&d, walk_stream, sizeof(walk_stream));
	for (unsigned from = 0; from < 8; from++) {
		for (unsigned to = 0; to < 8; to++) {
			enum backend_mig_state path[MIG_FSM_MAX_PATH];
			struct mpdev_error e = { 0 };
			enum mpdev_mig_state reached = 99;
			size_t n;
			int want = mig_fsm_path(from, to, info.migration_flags, path, &n, &e);
			int r;

			drive_to(&d, from);
			r = mpdev_mig_set_state(d.rem.dev, to, &reached);
			if (want < 0) {
				ck_assert_msg(r == want, "%s -> %s: %d, want %d (%s)",
					      mpdev_mig_state_name(from), mpdev_mig_state_name(to),
					      r, want, mpdev_last_error(d.rem.dev));
				ck_assert_uint_eq(reached, from);
				ck_assert(mpdev_last_error(d.rem.dev)[0]);
				refused++;
			} else {
				ck_assert_msg(r == 0, "%s -> %s: %s", mpdev_mig_state_name(from),
					      mpdev_mig_state_name(to),
					      mpdev_last_error(d.rem.dev));
				ck_assert_uint_eq(reached, to);
				ok++;
			}
			ck_assert_uint_eq(state_of(&d), want < 0 ? from : to);
		}
	}
	/* 7 states reach each other but for STOP_COPY -> PRE_COPY(_P2P); nothing leaves ERROR. */
	ck_assert_uint_eq(ok, 7 * 7 - 2);
	ck_assert_uint_eq(refused, 64 - ok);
	ck_assert_int_gt(mpdev_get_stats(d.rem.dev, pick_transitions, NULL), 0);
	ck_assert_uint_gt(transitions, ok);
	dev_stop(&d);
}
END_TEST

/* ---- edu moved mid-work ---- */

static void migrate(struct vm_dev *src, struct vm_dev *dst, bool precopy, size_t *stream_len)
{
	uint8_t *stream = malloc(STREAM_MAX);
	size_t len = 0;

	ck_assert_ptr_nonnull(stream);
	if (precopy) {
		uint64_t initial = 0, dirty = 0;

		set_ok(src, MPDEV_MIG_PRE_COPY_P2P);
		ck_assert_int_eq(mpdev_mig_precopy_info(src->rem.dev, &initial, &dirty), 0);
		ck_assert_uint_gt(initial, 0);
		len = read_stream(src, stream, STREAM_MAX);
		ck_assert_uint_ge(len, initial);
		ck_assert_int_eq(mpdev_mig_precopy_info(src->rem.dev, &initial, &dirty), 0);
		ck_assert_uint_eq(initial, 0);
	}
	set_ok(src, MPDEV_MIG_STOP_COPY);
	len += read_stream(src, stream + len, STREAM_MAX - len);
	/* The VMM's part: guest memory goes across with the device. */
	memcpy(dst->ram, src->ram, RAM_SIZE);
	set_ok(dst, MPDEV_MIG_RESUMING);
	ck_assert_msg(mpdev_mig_write(dst->rem.dev, stream, len) == 0, "load: %s",
		      mpdev_last_error(dst->rem.dev));
	set_ok(dst, MPDEV_MIG_RUNNING_P2P);
	set_ok(src, MPDEV_MIG_STOP);
	if (stream_len)
		*stream_len = len;
	free(stream);
}

START_TEST(edu_moves_mid_factorial_and_mid_dma)
{
	const bool precopy = _i;
	struct vm_dev src, dst;
	uint8_t want[1024];
	uint32_t bar0 = 0, cmd = 0;
	size_t len;
	int efd = testutil_eventfd(), rfd = testutil_eventfd();

	dev_start(&src, -1);
	dev_start(&dst, -1);
	ck_assert_int_eq(mpdev_config_write(src.rem.dev, PCI_BAR0, 4, 0xfe000000u), 0);
	ck_assert_int_eq(mpdev_config_write(src.rem.dev, PCI_COMMAND, 2, PCI_COMMAND_MEMB), 0);
	bar_wr32(src.rem.dev, EDU_REG_LIVENESS, 0x12345678);
	/* The device buffer gets 1 KiB of RAM while running. */
	pattern(src.ram, sizeof(want), 7);
	memcpy(want, src.ram, sizeof(want));
	start_dma(&src, RAM_GPA, EDU_DMA_BUF_ADDR, sizeof(want), 0);
	wait_dma_done(&src);
	bar_wr32(src.rem.dev, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);

	/* Quiesced: work the guest starts now is accepted and held. */
	set_ok(&src, MPDEV_MIG_RUNNING_P2P);
	bar_wr32(src.rem.dev, EDU_REG_STATUS, EDU_STATUS_IRQFACT);
	bar_wr32(src.rem.dev, EDU_REG_FACTORIAL, 10);
	start_dma(&src, EDU_DMA_BUF_ADDR, RAM_GPA + 0x8000, sizeof(want), EDU_DMA_CMD_TO_RAM);
	usleep(20000);
	ck_assert(bar_rd32(src.rem.dev, EDU_REG_STATUS) & EDU_STATUS_COMPUTING);
	ck_assert(bar_rd64(src.rem.dev, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN);
	ck_assert_uint_eq(bar_rd32(src.rem.dev, EDU_REG_LIVENESS), ~0x12345678u);
	for (size_t i = 0; i < sizeof(want); i++)
		ck_assert_uint_eq(src.ram[0x8000 + i], 0);

	migrate(&src, &dst, precopy, &len);
	/* The target's interrupts are wired before it runs, as a VMM does. */
	ck_assert_int_eq(mpdev_set_intx_irqfd(dst.rem.dev, 0, 0, efd, rfd), 0);
	ck_assert_uint_eq(bar_rd32(dst.rem.dev, EDU_REG_LIVENESS), ~0x12345678u);
	ck_assert_int_eq(mpdev_config_read(dst.rem.dev, PCI_BAR0, 4, &bar0), 0);
	ck_assert_uint_eq(bar0 & ~0xfu, 0xfe000000u);
	ck_assert_int_eq(mpdev_config_read(dst.rem.dev, PCI_COMMAND, 2, &cmd), 0);
	ck_assert_uint_eq(cmd & PCI_COMMAND_MEMB, PCI_COMMAND_MEMB);
	/* Still held on the target in RUNNING_P2P: nothing has landed. */
	ck_assert(bar_rd32(dst.rem.dev, EDU_REG_STATUS) & EDU_STATUS_COMPUTING);
	for (size_t i = 0; i < sizeof(want); i++)
		ck_assert_uint_eq(dst.ram[0x8000 + i], 0);

	set_ok(&dst, MPDEV_MIG_RUNNING);
	wait_fact_done(&dst);
	wait_dma_done(&dst);
	ck_assert_uint_eq(bar_rd32(dst.rem.dev, EDU_REG_FACTORIAL), 3628800);
	ck_assert_uint_eq(bar_rd32(dst.rem.dev, EDU_REG_IRQ_STATUS), EDU_IRQ_FACT | EDU_IRQ_DMA);
	ck_assert_mem_eq(dst.ram + 0x8000, want, sizeof(want));
	ck_assert_msg(eventfd_fires(efd, 2000), "no INTx on the target");
	/* The source stayed stopped: its copy never happened. */
	for (size_t i = 0; i < sizeof(want); i++)
		ck_assert_uint_eq(src.ram[0x8000 + i], 0);
	printf("edu %s precopy: %zu stream bytes\n", precopy ? "with" : "without", len);
	close(efd);
	close(rfd);
	dev_stop(&src);
	dev_stop(&dst);
}
END_TEST

/* ---- streams the target refuses ---- */

static void expect_refused(struct vm_dev *dst, const uint8_t *s, size_t len, const char *what)
{
	enum mpdev_mig_state reached = 99;
	int r;

	ck_assert_int_eq(mpdev_reset(dst->rem.dev), 0);
	set_ok(dst, MPDEV_MIG_RESUMING);
	r = mpdev_mig_write(dst->rem.dev, s, len);
	if (r == 0)
		r = mpdev_mig_set_state(dst->rem.dev, MPDEV_MIG_RUNNING, &reached);
	ck_assert_msg(r < 0, "%s: accepted", what);
	ck_assert_msg(mpdev_last_error(dst->rem.dev)[0], "%s: no words", what);
	ck_assert_uint_eq(state_of(dst), MPDEV_MIG_ERROR);
	/* Nothing but a reset leaves ERROR; after it the device works. */
	ck_assert_int_eq(mpdev_mig_set_state(dst->rem.dev, MPDEV_MIG_RUNNING, NULL), -EINVAL);
	ck_assert_int_eq(mpdev_reset(dst->rem.dev), 0);
	ck_assert_uint_eq(state_of(dst), MPDEV_MIG_RUNNING);
	bar_wr32(dst->rem.dev, EDU_REG_FACTORIAL, 5);
	wait_fact_done(dst);
	ck_assert_uint_eq(bar_rd32(dst->rem.dev, EDU_REG_FACTORIAL), 120);
}

START_TEST(bad_streams_refused_target_usable)
{
	struct vm_dev src, dst;
	uint8_t *good = malloc(STREAM_MAX), *bad = malloc(STREAM_MAX);
	size_t len;
	char what[64];

	ck_assert_ptr_nonnull(good);
	ck_assert_ptr_nonnull(bad);
	dev_start(&src, -1);
	dev_start(&dst, -1);
	bar_wr32(src.rem.dev, EDU_REG_LIVENESS, 0xa5a5a5a5);
	set_ok(&src, MPDEV_MIG_STOP_COPY);
	len = read_stream(&src, good, STREAM_MAX);
	ck_assert_uint_gt(len, 64);

	for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 509)) {
		snprintf(what, sizeof(what), "truncated to %zu of %zu", cut, len);
		expect_refused(&dst, good, cut, what);
	}
	for (size_t at = 0; at < len; at += (at < 64 ? 1 : 257)) {
		memcpy(bad, good, len);
		bad[at] ^= 0x20;
		snprintf(what, sizeof(what), "byte %zu flipped", at);
		expect_refused(&dst, bad, len, what);
	}
	memset(bad, 0x5a, len);
	expect_refused(&dst, bad, len, "garbage");
	memcpy(bad, good, len);
	memcpy(bad + len, good, len);
	expect_refused(&dst, bad, 2 * len, "the stream twice");

	/* And the good one still loads after all that. */
	ck_assert_int_eq(mpdev_reset(dst.rem.dev), 0);
	set_ok(&dst, MPDEV_MIG_RESUMING);
	ck_assert_int_eq(mpdev_mig_write(dst.rem.dev, good, len), 0);
	set_ok(&dst, MPDEV_MIG_RUNNING);
	ck_assert_uint_eq(bar_rd32(dst.rem.dev, EDU_REG_LIVENESS), ~0xa5a5a5a5u);
	free(good);
	free(bad);
	dev_stop(&src);
	dev_stop(&dst);
}
END_TEST

START_TEST(requests_outside_their_states)
{
	struct vm_dev d;
	uint8_t buf[64] = { 0 };
	uint64_t a, b;

	dev_start(&d, -1);
	ck_assert_int_eq(mpdev_mig_read(d.rem.dev, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(mpdev_mig_write(d.rem.dev, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(mpdev_mig_precopy_info(d.rem.dev, &a, &b), -EINVAL);
	ck_assert_int_eq(mpdev_mig_set_state(d.rem.dev, 8, NULL), -EINVAL);
	ck_assert_int_eq(mpdev_mig_set_state(d.rem.dev, MPDEV_MIG_ERROR, NULL), -EINVAL);
	set_ok(&d, MPDEV_MIG_STOP);
	/* Stopped: the device changes nothing, so it takes no register writes. */
	ck_assert_int_eq(mpdev_region_write(d.rem.dev, 0, EDU_REG_FACTORIAL, &(uint32_t){ 4 }, 4),
			 -EBUSY);
	ck_assert_int_eq(mpdev_mig_precopy_info(d.rem.dev, &a, &b), -EINVAL);
	set_ok(&d, MPDEV_MIG_RUNNING);
	remote_expect_alive(&d.rem);
	dev_stop(&d);
}
END_TEST

/* ---- several devices ---- */

struct step_log {
	struct {
		size_t index;
		enum mpdev_mig_state from, to;
		int result;
	} steps[32];
	size_t n;
	struct vm_dev *devs;
	bool start_dma_in_window;
};

static void on_step(void *opaque, size_t index, enum mpdev_mig_state from, enum mpdev_mig_state to,
		    int result)
{
	struct step_log *log = opaque;

	ck_assert_uint_lt(log->n, 32);
	log->steps[log->n].index = index;
	log->steps[log->n].from = from;
	log->steps[log->n].to = to;
	log->steps[log->n].result = result;
	log->n++;
	/* Device 0 is quiesced, device 1 still runs: the guest starts a DMA on device 0. */
	if (log->start_dma_in_window && index == 0 && to == MPDEV_MIG_RUNNING_P2P) {
		start_dma(&log->devs[0], EDU_DMA_BUF_ADDR, RAM_GPA + 0x4000, 512,
			  EDU_DMA_CMD_TO_RAM);
		log->start_dma_in_window = false;
	}
}

/* Every device reached `quiet` before any reached `beyond`. */
static void expect_ordered(const struct step_log *log, enum mpdev_mig_state quiet,
			   enum mpdev_mig_state beyond, size_t ndev)
{
	size_t quiet_seen = 0;

	for (size_t i = 0; i < log->n; i++) {
		ck_assert_int_eq(log->steps[i].result, 0);
		if (log->steps[i].to == quiet)
			quiet_seen++;
		if (log->steps[i].to == beyond)
			ck_assert_msg(quiet_seen == ndev,
				      "device %zu reached %s with only %zu of %zu in %s",
				      log->steps[i].index, mpdev_mig_state_name(beyond), quiet_seen,
				      ndev, mpdev_mig_state_name(quiet));
	}
	ck_assert_uint_eq(quiet_seen, ndev);
}

START_TEST(set_quiesces_all_before_any_stops)
{
	struct vm_dev devs[2];
	struct mpdev *h[2];
	struct step_log log = { .devs = devs, .start_dma_in_window = true };
	struct mpdev_mig_set_options so = { .on_step = on_step, .opaque = &log };
	uint8_t want[512];
	long failed = 7;
	int shared;

	/* Two devices of one VM: one guest RAM, two remotes. */
	shared = testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
	dev_start(&devs[0], shared);
	dev_start(&devs[1], shared);
	close(shared);
	h[0] = devs[0].rem.dev;
	h[1] = devs[1].rem.dev;
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(mpdev_config_write(h[i], PCI_COMMAND, 2, PCI_COMMAND_MEMB), 0);
	pattern(devs[0].ram, sizeof(want), 3);
	memcpy(want, devs[0].ram, sizeof(want));
	start_dma(&devs[0], RAM_GPA, EDU_DMA_BUF_ADDR, sizeof(want), 0);
	wait_dma_done(&devs[0]);

	ck_assert_int_eq(mpdev_mig_set_state_all(h, 2, MPDEV_MIG_STOP, &so, &failed), 0);
	ck_assert_int_eq(failed, -1);
	expect_ordered(&log, MPDEV_MIG_RUNNING_P2P, MPDEV_MIG_STOP, 2);
	ck_assert(!log.start_dma_in_window);
	usleep(20000);
	for (size_t i = 0; i < sizeof(want); i++)
		ck_assert_uint_eq(devs[1].ram[0x4000 + i], 0);

	log.n = 0;
	ck_assert_int_eq(mpdev_mig_set_state_all(h, 2, MPDEV_MIG_RUNNING, &so, &failed), 0);
	expect_ordered(&log, MPDEV_MIG_RUNNING_P2P, MPDEV_MIG_RUNNING, 2);
	wait_dma_done(&devs[0]);
	/* Landed after resume, seen through the other device's mapping of the same RAM. */
	ck_assert_mem_eq(devs[1].ram + 0x4000, want, sizeof(want));

	/* A device that cannot move: the other is brought back to where it was. */
	drive_to(&devs[1], MPDEV_MIG_ERROR);
	log.n = 0;
	ck_assert_int_eq(mpdev_mig_set_state_all(h, 2, MPDEV_MIG_STOP_COPY, &so, &failed), -EINVAL);
	ck_assert_int_eq(failed, 1);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(h[1]), "ERROR"));
	ck_assert_uint_eq(state_of(&devs[0]), MPDEV_MIG_RUNNING);
	ck_assert_uint_eq(state_of(&devs[1]), MPDEV_MIG_ERROR);
	ck_assert_int_eq(mpdev_reset(h[1]), 0);
	dev_stop(&devs[0]);
	dev_stop(&devs[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("migration");
	TCase *tc = tcase_create("edu");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, every_pair_of_states);
	tcase_add_loop_test(tc, edu_moves_mid_factorial_and_mid_dma, 0, 2);
	tcase_add_test(tc, bad_streams_refused_target_usable);
	tcase_add_test(tc, requests_outside_their_states);
	tcase_add_test(tc, set_quiesces_all_before_any_stops);
	suite_add_tcase(s, tc);
	return testutil_run_suite(s);
}
