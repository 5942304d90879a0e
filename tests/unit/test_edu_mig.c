/*
 * Live migration of the emulated edu device: two devices, each with its own
 * fake host (guest RAM, interrupt pins), driven arc by arc as the FSM would.
 * Stream sizes are spelled out (docs/migration-edu.md), so a format change
 * fails here.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "edu.h"
#include "log.h"
#include "mig_stream.h"

#define RAM_SIZE 0x10000
#define BUF	 0x40000ull /* device buffer, in BAR offsets */

/* Record sizes: 12 bytes of framing plus payload. */
#define HDR_REC	   (12 + 48)
#define CFG_REC	   (12 + 256)
#define BUF_REC	   (12 + 4096)
#define REGS_REC   (12 + 52)
#define END_REC	   12
#define FULL_LEN   (HDR_REC + CFG_REC + BUF_REC + REGS_REC + END_REC)
#define INITIAL	   (HDR_REC + CFG_REC + BUF_REC)
#define TAIL	   (REGS_REC + END_REC)
#define STREAM_CAP 20000

#define ERROR	     BACKEND_MIG_ERROR
#define STOP	     BACKEND_MIG_STOP
#define RUNNING	     BACKEND_MIG_RUNNING
#define STOP_COPY    BACKEND_MIG_STOP_COPY
#define RESUMING     BACKEND_MIG_RESUMING
#define RUNNING_P2P  BACKEND_MIG_RUNNING_P2P
#define PRE_COPY     BACKEND_MIG_PRE_COPY
#define PRE_COPY_P2P BACKEND_MIG_PRE_COPY_P2P

struct side {
	struct backend_host ops;
	uint8_t ram[RAM_SIZE];
	int dma_calls;
	int intx_calls;
	bool intx;
	int msi_calls;
	struct backend *dev;
};

static struct event_base *base;
static struct side *src, *dst;
static uint8_t good[STREAM_CAP];
static size_t good_len;

static int fake_ram_check(struct side *s, uint64_t gpa, size_t len, struct mpdev_error *err)
{
	s->dma_calls++;
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return mpdev_error_set(err, EFAULT, "outside RAM");
	return 0;
}

static int fake_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			 struct mpdev_error *err)
{
	struct side *s = (struct side *)h;
	int r = fake_ram_check(s, gpa, len, err);

	if (r == 0)
		memcpy(buf, s->ram + gpa, len);
	return r;
}

static int fake_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			  struct mpdev_error *err)
{
	struct side *s = (struct side *)h;
	int r = fake_ram_check(s, gpa, len, err);

	if (r == 0)
		memcpy(s->ram + gpa, buf, len);
	return r;
}

static int fake_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	struct side *s = (struct side *)h;

	ck_assert_uint_eq(pin, 0);
	s->intx_calls++;
	s->intx = level;
	return 0;
}

static int fake_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			      struct mpdev_error *err)
{
	struct side *s = (struct side *)h;

	ck_assert_uint_eq(irq_index, BACKEND_IRQ_MSI);
	ck_assert_uint_eq(vector, 0);
	s->msi_calls++;
	return 0;
}

static struct side *side_new(void)
{
	struct mpdev_error err = { 0 };
	struct side *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	s->ops.dma_read = fake_dma_read;
	s->ops.dma_write = fake_dma_write;
	s->ops.set_intx = fake_set_intx;
	s->ops.signal_vector = fake_signal_vector;
	ck_assert_int_eq(edu_create(base, &s->ops, &s->dev, &err), 0);
	return s;
}

static void side_free(struct side *s)
{
	s->dev->ops->destroy(s->dev);
	free(s);
}

static void setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	src = side_new();
	dst = side_new();
}

static void teardown(void)
{
	side_free(src);
	side_free(dst);
	event_base_free(base);
}

static void run_loop(void)
{
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(event_base_loop(base, EVLOOP_NONBLOCK), 0);
}

static int region_wr_r(struct side *s, uint32_t index, uint64_t off, uint32_t size, uint64_t val,
		       struct mpdev_error *err)
{
	uint8_t buf[8];

	for (uint32_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	return s->dev->ops->region_write(s->dev, index, off, buf, size, err);
}

static uint64_t region_rd(struct side *s, uint32_t index, uint64_t off, uint32_t size)
{
	struct mpdev_error err = { 0 };
	uint8_t buf[8] = { 0 };
	uint64_t v = 0;

	ck_assert_int_eq(s->dev->ops->region_read(s->dev, index, off, buf, size, &err), 0);
	for (uint32_t i = 0; i < size; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	return v;
}

static void region_wr(struct side *s, uint32_t index, uint64_t off, uint32_t size, uint64_t val)
{
	struct mpdev_error err = { 0 };

	ck_assert_int_eq(region_wr_r(s, index, off, size, val, &err), 0);
}

static uint32_t rd32(struct side *s, uint64_t off)
{
	return (uint32_t)region_rd(s, BACKEND_REGION_BAR0, off, 4);
}

static void wr32(struct side *s, uint64_t off, uint32_t val)
{
	region_wr(s, BACKEND_REGION_BAR0, off, 4, val);
}

static uint32_t cfg_rd(struct side *s, uint64_t off, uint32_t size)
{
	return (uint32_t)region_rd(s, BACKEND_REGION_CONFIG, off, size);
}

static void cfg_wr(struct side *s, uint64_t off, uint32_t size, uint32_t val)
{
	region_wr(s, BACKEND_REGION_CONFIG, off, size, val);
}

static void start_dma(struct side *s, uint64_t from, uint64_t to, uint64_t cnt, uint32_t cmd)
{
	region_wr(s, BACKEND_REGION_BAR0, 0x80, 8, from);
	region_wr(s, BACKEND_REGION_BAR0, 0x88, 8, to);
	region_wr(s, BACKEND_REGION_BAR0, 0x90, 8, cnt);
	wr32(s, 0x98, cmd);
}

static void fill(struct side *s, uint64_t gpa, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		s->ram[gpa + i] = (uint8_t)(seed + i * 7);
}

static void check_pattern(const uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(p[i], (uint8_t)(seed + i * 7));
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static uint32_t factorial_of(struct side *s, uint32_t n)
{
	wr32(s, 0x08, n);
	run_loop();
	ck_assert_uint_eq(rd32(s, 0x20) & 0x01, 0);
	return rd32(s, 0x08);
}

static int arc_r(struct side *s, int from, int to, enum backend_mig_state *now,
		 struct mpdev_error *err)
{
	return s->dev->ops->mig_arc(s->dev, from, to, now, err);
}

static void arc(struct side *s, int from, int to)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now = 99;

	ck_assert_msg(arc_r(s, from, to, &now, &err) == 0, "arc %d -> %d: %s", from, to, err.msg);
	ck_assert_int_eq(now, to);
}

static size_t save_chunked(struct side *s, uint8_t *out, size_t cap, size_t chunk)
{
	struct mpdev_error err = { 0 };
	size_t len = 0;
	ssize_t n;

	do {
		size_t want = chunk < cap - len ? chunk : cap - len;

		n = s->dev->ops->mig_save(s->dev, out + len, want, &err);
		ck_assert_msg(n >= 0, "mig_save: %s", err.msg);
		len += (size_t)n;
	} while (n > 0 && len < cap);
	return len;
}

static size_t save(struct side *s, uint8_t *out, size_t cap)
{
	return save_chunked(s, out, cap, 1000);
}

/* Source from RUNNING or RUNNING_P2P through STOP_COPY; the stream lands in out. */
static size_t save_stop_copy(struct side *s, int from, uint8_t *out)
{
	size_t len;

	if (from == RUNNING)
		arc(s, RUNNING, RUNNING_P2P);
	arc(s, RUNNING_P2P, STOP);
	arc(s, STOP, STOP_COPY);
	len = save(s, out, STREAM_CAP);
	ck_assert_uint_lt(len, STREAM_CAP);
	arc(s, STOP_COPY, STOP);
	return len;
}

static void to_resuming(struct side *s)
{
	arc(s, RUNNING, RUNNING_P2P);
	arc(s, RUNNING_P2P, STOP);
	arc(s, STOP, RESUMING);
}

static void load(struct side *s, const uint8_t *p, size_t len)
{
	struct mpdev_error err = { 0 };

	ck_assert_msg(s->dev->ops->mig_load(s->dev, p, len, &err) == 0, "mig_load: %s", err.msg);
}

/* Target from RUNNING through RESUMING to STOP, then RUNNING_P2P: not yet running. */
static void restore_to_p2p(struct side *s, const uint8_t *p, size_t len)
{
	to_resuming(s);
	load(s, p, len);
	arc(s, RESUMING, STOP);
	arc(s, STOP, RUNNING_P2P);
}

static void migrate(int src_from)
{
	uint8_t buf[STREAM_CAP];
	size_t len = save_stop_copy(src, src_from, buf);

	ck_assert_uint_eq(len, FULL_LEN);
	restore_to_p2p(dst, buf, len);
	arc(dst, RUNNING_P2P, RUNNING);
}

/* A source with some of everything: liveness, a result, a programmed buffer, config. */
static void make_good_stream(void)
{
	cfg_wr(src, 0x04, 2, 0x0006);
	cfg_wr(src, 0x10, 4, 0xfe000000);
	wr32(src, 0x04, 0x12345678);
	ck_assert_uint_eq(factorial_of(src, 5), 120);
	fill(src, 0x1000, 64, 3);
	start_dma(src, 0x1000, BUF, 64, 0x1);
	run_loop();
	good_len = save_stop_copy(src, RUNNING, good);
	ck_assert_uint_eq(good_len, FULL_LEN);
}

/* What make_good_stream's state looks like on a device that loaded it and runs. */
static void check_good_state(struct side *s)
{
	ck_assert_uint_eq(rd32(s, 0x04), ~0x12345678u);
	ck_assert_uint_eq(rd32(s, 0x08), 120);
	ck_assert_uint_eq(cfg_rd(s, 0x04, 2), 0x0006);
	ck_assert_uint_eq(cfg_rd(s, 0x10, 4), 0xfe000000);
	start_dma(s, BUF, 0x3000, 64, 0x1 | 0x2);
	run_loop();
	check_pattern(s->ram + 0x3000, 64, 3);
}

/* The device refused the stream: ERROR; reset brings it back, working and able to load. */
static void check_refused_then_recovers(struct side *s, int load_r, const char *what)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now = 99;
	int r;

	ck_assert_msg(load_r == 0 || load_r == -EINVAL, "%s: mig_load returned %d", what, load_r);
	r = arc_r(s, RESUMING, STOP, &now, &err);
	ck_assert_msg(r == -EINVAL, "%s: RESUMING -> STOP returned %d", what, r);
	ck_assert_msg(now == ERROR, "%s: device in state %d, not ERROR", what, now);
	ck_assert_msg(err.msg[0], "%s: no message", what);

	ck_assert_int_eq(s->dev->ops->reset(s->dev, &err), 0);
	ck_assert_uint_eq(factorial_of(s, 4), 24);
	restore_to_p2p(s, good, good_len);
	arc(s, RUNNING_P2P, RUNNING);
	check_good_state(s);
	ck_assert_int_eq(s->dev->ops->reset(s->dev, &err), 0);
}

static int try_load(struct side *s, const uint8_t *p, size_t len, struct mpdev_error *err)
{
	to_resuming(s);
	return s->dev->ops->mig_load(s->dev, p, len, err);
}

/* Offset of the n-th record of a stream. */
static size_t record_at(const uint8_t *p, unsigned n)
{
	size_t off = 0;

	while (n--)
		off += 12 + mig_get32(p + off + 4);
	return off;
}

static void recrc(uint8_t *p, size_t off)
{
	uint32_t len = mig_get32(p + off + 4);

	mig_put32(p + off + 8 + len, mig_crc32c(0, p + off, 8 + len));
}

START_TEST(test_crc32c)
{
	/* The check value of CRC-32C (RFC 3720, B.4). */
	ck_assert_uint_eq(mig_crc32c(0, "123456789", 9), 0xe3069283);
	ck_assert_uint_eq(mig_crc32c(mig_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
	ck_assert_uint_eq(mig_crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_flags)
{
	ck_assert_uint_eq(src->dev->ops->mig_flags(src->dev), 0x7);
}
END_TEST

START_TEST(test_mid_factorial)
{
	wr32(src, 0x20, 0x80);
	arc(src, RUNNING, RUNNING_P2P);
	wr32(src, 0x08, 10);
	run_loop();
	/* Held: accepted, registers answer, nothing computed. */
	ck_assert_uint_eq(rd32(src, 0x20), 0x81);
	ck_assert_uint_eq(rd32(src, 0x08), 10);
	ck_assert_uint_eq(rd32(src, 0x24), 0);

	uint8_t buf[STREAM_CAP];
	size_t len = save_stop_copy(src, RUNNING_P2P, buf);

	ck_assert_uint_eq(len, FULL_LEN);
	restore_to_p2p(dst, buf, len);
	run_loop();
	ck_assert_uint_eq(rd32(dst, 0x20), 0x81);
	ck_assert_uint_eq(rd32(dst, 0x08), 10);
	ck_assert_int_eq(dst->intx_calls, 0);

	arc(dst, RUNNING_P2P, RUNNING);
	run_loop();
	ck_assert_uint_eq(rd32(dst, 0x08), 3628800);
	ck_assert_uint_eq(rd32(dst, 0x20), 0x80);
	ck_assert_uint_eq(rd32(dst, 0x24), 0x1);
	ck_assert(dst->intx);
	ck_assert_uint_eq(cfg_rd(dst, 0x06, 2) & 0x08, 0x08);
	/* The source never finished it. */
	ck_assert_uint_eq(rd32(src, 0x08), 10);
	ck_assert_int_eq(src->intx_calls, 0);
}
END_TEST

START_TEST(test_mid_dma)
{
	cfg_wr(src, 0x04, 2, 0x0006);
	fill(src, 0x1000, 256, 9);
	start_dma(src, 0x1000, BUF + 0x100, 256, 0x1);
	run_loop();
	memset(src->ram, 0, sizeof(src->ram));

	arc(src, RUNNING, RUNNING_P2P);
	start_dma(src, BUF + 0x100, 0x2000, 256, 0x1 | 0x2 | 0x4);
	run_loop();
	ck_assert_uint_eq(rd32(src, 0x98), 0x7);
	ck_assert(all_zero(src->ram, sizeof(src->ram)));

	uint8_t buf[STREAM_CAP];
	size_t len = save_stop_copy(src, RUNNING_P2P, buf);
	int src_dma_calls = src->dma_calls;

	restore_to_p2p(dst, buf, len);
	run_loop();
	ck_assert_uint_eq(rd32(dst, 0x98), 0x7);
	ck_assert(all_zero(dst->ram, sizeof(dst->ram)));
	ck_assert_int_eq(dst->dma_calls, 0);

	arc(dst, RUNNING_P2P, RUNNING);
	run_loop();
	check_pattern(dst->ram + 0x2000, 256, 9);
	ck_assert_uint_eq(rd32(dst, 0x98), 0x6);
	ck_assert_uint_eq(rd32(dst, 0x24), 0x100);
	ck_assert(dst->intx);
	ck_assert(all_zero(src->ram, sizeof(src->ram)));
	ck_assert_int_eq(src->dma_calls, src_dma_calls);
}
END_TEST

/* Work the device had accepted but not yet done when it quiesced stays undone until it runs. */
START_TEST(test_in_flight_at_quiesce)
{
	int dma_calls;

	cfg_wr(src, 0x04, 2, 0x0006);
	fill(src, 0x1000, 64, 4);
	start_dma(src, 0x1000, BUF, 64, 0x1);
	run_loop();
	memset(src->ram, 0, sizeof(src->ram));
	dma_calls = src->dma_calls;

	start_dma(src, BUF, 0x2000, 64, 0x1 | 0x2);
	wr32(src, 0x08, 7);
	arc(src, RUNNING, RUNNING_P2P);
	run_loop();
	ck_assert_int_eq(src->dma_calls, dma_calls);
	ck_assert(all_zero(src->ram, sizeof(src->ram)));
	ck_assert_uint_eq(rd32(src, 0x20) & 0x1, 0x1);

	migrate(RUNNING_P2P);
	run_loop();
	check_pattern(dst->ram + 0x2000, 64, 4);
	ck_assert_uint_eq(rd32(dst, 0x08), 5040);
	ck_assert(all_zero(src->ram, sizeof(src->ram)));
}
END_TEST

START_TEST(test_config_and_msi)
{
	cfg_wr(src, 0x04, 2, 0x0006);
	cfg_wr(src, 0x10, 4, 0xfebf0000);
	cfg_wr(src, 0x3c, 1, 11);
	cfg_wr(src, 0x44, 4, 0xfee00000);
	cfg_wr(src, 0x4c, 2, 0x4041);
	cfg_wr(src, 0x42, 2, 0x0001);
	wr32(src, 0x04, 0xa5a5a5a5);
	wr32(src, 0x20, 0x80);
	migrate(RUNNING);

	for (uint64_t off = 0; off < 256; off += 4)
		ck_assert_uint_eq(cfg_rd(dst, off, 4), cfg_rd(src, off, 4));
	ck_assert_uint_eq(cfg_rd(dst, 0x10, 4), 0xfeb00000); /* 1 MiB BAR: low bits read-only */
	ck_assert_uint_eq(cfg_rd(dst, 0x04, 2), 0x0006);
	ck_assert_uint_eq(cfg_rd(dst, 0x42, 2) & 0x1, 0x1);
	ck_assert_uint_eq(rd32(dst, 0x04), 0x5a5a5a5a);
	ck_assert_uint_eq(rd32(dst, 0x20), 0x80);
	/* MSI is on: an interrupt is a message, not a pin. */
	wr32(dst, 0x60, 0x2);
	ck_assert_int_eq(dst->msi_calls, 1);
	ck_assert(!dst->intx);
}
END_TEST

START_TEST(test_intx_level_carried)
{
	wr32(src, 0x60, 0x4);
	ck_assert(src->intx);

	uint8_t buf[STREAM_CAP];
	size_t len = save_stop_copy(src, RUNNING, buf);

	restore_to_p2p(dst, buf, len);
	/* Not running yet: the host has not been told. */
	ck_assert_int_eq(dst->intx_calls, 0);
	ck_assert_uint_eq(cfg_rd(dst, 0x06, 2) & 0x08, 0x08);
	arc(dst, RUNNING_P2P, RUNNING);
	ck_assert(dst->intx);
	ck_assert_uint_eq(rd32(dst, 0x24), 0x4);
	wr32(dst, 0x64, 0x4);
	ck_assert(!dst->intx);
	ck_assert_uint_eq(cfg_rd(dst, 0x06, 2) & 0x08, 0);
}
END_TEST

START_TEST(test_p2p_holds_work)
{
	cfg_wr(src, 0x04, 2, 0x0006);
	fill(src, 0x1000, 16, 1);
	arc(src, RUNNING, RUNNING_P2P);
	ck_assert_uint_eq(rd32(src, 0x00), 0x010000ed);
	wr32(src, 0x04, 0x0f0f0f0f);
	ck_assert_uint_eq(rd32(src, 0x04), 0xf0f0f0f0);
	wr32(src, 0x20, 0x80);
	wr32(src, 0x08, 5);
	start_dma(src, 0x1000, BUF, 16, 0x1);
	wr32(src, 0x60, 0x8); /* INTx raise: the register changes, the pin waits */
	run_loop();
	ck_assert_uint_eq(rd32(src, 0x08), 5);
	ck_assert_uint_eq(rd32(src, 0x98), 0x1);
	ck_assert_uint_eq(rd32(src, 0x24), 0x8);
	ck_assert_int_eq(src->dma_calls, 0);
	ck_assert_int_eq(src->intx_calls, 0);

	arc(src, RUNNING_P2P, RUNNING);
	ck_assert(src->intx);
	run_loop();
	ck_assert_uint_eq(rd32(src, 0x08), 120);
	ck_assert_uint_eq(rd32(src, 0x98), 0x0);
	ck_assert_uint_eq(rd32(src, 0x24), 0x9);
	ck_assert_int_eq(src->dma_calls, 1);
}
END_TEST

START_TEST(test_p2p_holds_msi)
{
	cfg_wr(src, 0x44, 4, 0xfee00000);
	cfg_wr(src, 0x42, 2, 0x0001);
	/* Work in flight when the device quiesces is held too. */
	wr32(src, 0x20, 0x80);
	wr32(src, 0x08, 3);
	arc(src, RUNNING, RUNNING_P2P);
	wr32(src, 0x60, 0x2);
	run_loop();
	ck_assert_int_eq(src->msi_calls, 0);
	ck_assert_uint_eq(rd32(src, 0x24), 0x2);

	/* The held message travels with the device. */
	uint8_t buf[STREAM_CAP];
	size_t len = save_stop_copy(src, RUNNING_P2P, buf);

	restore_to_p2p(dst, buf, len);
	run_loop();
	ck_assert_int_eq(dst->msi_calls, 0);
	arc(dst, RUNNING_P2P, RUNNING);
	ck_assert_int_eq(dst->msi_calls, 1);
	run_loop();
	ck_assert_uint_eq(rd32(dst, 0x08), 6);
	ck_assert_int_eq(dst->msi_calls, 2);
	ck_assert_int_eq(src->msi_calls, 0);
}
END_TEST

START_TEST(test_p2p_bad_dma_refused_at_once)
{
	cfg_wr(src, 0x04, 2, 0x0006);
	arc(src, RUNNING, RUNNING_P2P);
	start_dma(src, 0x1000, BUF + 4000, 200, 0x1 | 0x4);
	ck_assert_uint_eq(rd32(src, 0x98), 0x4);
	ck_assert_uint_eq(rd32(src, 0x24), 0);
	ck_assert_int_eq(src->dma_calls, 0);
}
END_TEST

START_TEST(test_stopped_refuses_bar_writes)
{
	struct mpdev_error err = { 0 };
	int states[] = { STOP, STOP_COPY, RESUMING };

	for (unsigned i = 0; i < 3; i++) {
		arc(src, RUNNING, RUNNING_P2P);
		arc(src, RUNNING_P2P, STOP);
		if (states[i] != STOP)
			arc(src, STOP, states[i]);
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(region_wr_r(src, BACKEND_REGION_BAR0, 0x04, 4, 1, &err), -EBUSY);
		ck_assert_ptr_nonnull(strstr(err.msg, "refused"));
		ck_assert_uint_eq(rd32(src, 0x00), 0x010000ed);
		cfg_wr(src, 0x3c, 1, 5);
		ck_assert_uint_eq(cfg_rd(src, 0x3c, 1), 5);
		ck_assert_int_eq(src->dev->ops->reset(src->dev, &err), 0);
		wr32(src, 0x04, 1);
	}
}
END_TEST

/* Whether (from, to) is one of the kernel's single arcs. */
static bool is_arc(int from, int to)
{
	static const int arcs[][2] = {
		{ RUNNING, RUNNING_P2P },
		{ RUNNING_P2P, RUNNING },
		{ RUNNING_P2P, STOP },
		{ STOP, RUNNING_P2P },
		{ STOP, STOP_COPY },
		{ STOP_COPY, STOP },
		{ STOP, RESUMING },
		{ RESUMING, STOP },
		{ RUNNING, PRE_COPY },
		{ PRE_COPY, RUNNING },
		{ PRE_COPY, PRE_COPY_P2P },
		{ PRE_COPY_P2P, PRE_COPY },
		{ PRE_COPY_P2P, RUNNING_P2P },
		{ RUNNING_P2P, PRE_COPY_P2P },
		{ PRE_COPY_P2P, STOP_COPY },
	};

	for (unsigned i = 0; i < sizeof(arcs) / sizeof(arcs[0]); i++) {
		if (arcs[i][0] == from && arcs[i][1] == to)
			return true;
	}
	return false;
}

static void go_to(struct side *s, int state)
{
	struct mpdev_error err = { 0 };

	switch (state) {
	case RUNNING:
		return;
	case PRE_COPY:
	case PRE_COPY_P2P:
		arc(s, RUNNING, PRE_COPY);
		if (state == PRE_COPY_P2P)
			arc(s, PRE_COPY, PRE_COPY_P2P);
		return;
	case ERROR:
		to_resuming(s);
		ck_assert_int_eq(s->dev->ops->mig_load(s->dev, "garbage!garbage!", 16, &err),
				 -EINVAL);
		return;
	}
	arc(s, RUNNING, RUNNING_P2P);
	if (state == RUNNING_P2P)
		return;
	arc(s, RUNNING_P2P, STOP);
	if (state != STOP)
		arc(s, STOP, state);
}

START_TEST(test_bad_arcs)
{
	struct mpdev_error err;
	enum backend_mig_state now;
	int n = 0;

	for (int from = 0; from < BACKEND_MIG_NUM_STATES; from++) {
		for (int to = 0; to < BACKEND_MIG_NUM_STATES; to++) {
			if (is_arc(from, to))
				continue;
			go_to(src, from);
			memset(&err, 0, sizeof(err));
			now = 99;
			ck_assert_msg(arc_r(src, from, to, &now, &err) == -EINVAL, "%d -> %d", from,
				      to);
			ck_assert_int_eq(now, from);
			ck_assert(err.msg[0]);
			/* An arc from a state the device is not in. */
			now = 99;
			ck_assert_int_eq(arc_r(src, from == RUNNING ? STOP : RUNNING,
					       from == RUNNING ? STOP_COPY : RUNNING_P2P, &now,
					       &err),
					 -EINVAL);
			ck_assert_int_eq(now, from);
			ck_assert_int_eq(src->dev->ops->reset(src->dev, &err), 0);
			n++;
		}
	}
	ck_assert_int_eq(n, 64 - 15);
	ck_assert_uint_eq(factorial_of(src, 3), 6);
}
END_TEST

START_TEST(test_ops_outside_their_states)
{
	struct mpdev_error err = { 0 };
	uint64_t a, b;
	uint8_t byte = 0;

	ck_assert_int_eq(src->dev->ops->mig_save(src->dev, &byte, 1, &err), -EINVAL);
	ck_assert_int_eq(src->dev->ops->mig_load(src->dev, &byte, 1, &err), -EINVAL);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &a, &b, &err), -EINVAL);
	go_to(src, STOP_COPY);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &a, &b, &err), -EINVAL);
	ck_assert_int_eq(src->dev->ops->mig_load(src->dev, &byte, 1, &err), -EINVAL);
	arc(src, STOP_COPY, STOP);
	ck_assert_int_eq(src->dev->ops->mig_save(src->dev, &byte, 1, &err), -EINVAL);
	/* Still usable as a source of a complete stream. */
	arc(src, STOP, STOP_COPY);
	ck_assert_uint_eq(save(src, good, STREAM_CAP), FULL_LEN);
}
END_TEST

START_TEST(test_stop_copy_stream)
{
	uint8_t one[STREAM_CAP];
	size_t len;

	make_good_stream();
	/* Read a byte at a time, the same stream comes out. */
	arc(src, STOP, STOP_COPY);
	len = save_chunked(src, one, STREAM_CAP, 1);
	ck_assert_uint_eq(len, good_len);
	ck_assert_mem_eq(one, good, len);
	/* 0 at the end, and again. */
	ck_assert_uint_eq(save(src, one, STREAM_CAP), 0);
	ck_assert_mem_eq(good,
			 "\x01\x00\x00\x00\x30\x00\x00\x00MPDEVEMU\x01\x00\x00\x00"
			 "edu",
			 23);

	restore_to_p2p(dst, good, good_len);
	ck_assert_int_eq(dst->intx_calls, 0);
	arc(dst, RUNNING_P2P, RUNNING);
	/* A loaded device tells its host the line level once it runs, low as well. */
	ck_assert_int_eq(dst->intx_calls, 1);
	ck_assert(!dst->intx);
	check_good_state(dst);
}
END_TEST

START_TEST(test_segmentation)
{
	static const size_t chunks[] = { 1, 7, 12, 13, 4095, 4108 };

	make_good_stream();
	for (unsigned c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct mpdev_error err = { 0 };

		to_resuming(dst);
		for (size_t off = 0; off < good_len; off += chunks[c]) {
			size_t n = good_len - off < chunks[c] ? good_len - off : chunks[c];

			load(dst, good + off, n);
		}
		arc(dst, RESUMING, STOP);
		arc(dst, STOP, RUNNING_P2P);
		arc(dst, RUNNING_P2P, RUNNING);
		check_good_state(dst);
		ck_assert_int_eq(dst->dev->ops->reset(dst->dev, &err), 0);
	}
}
END_TEST

START_TEST(test_resuming_resets)
{
	wr32(dst, 0x04, 7);
	ck_assert_uint_eq(factorial_of(dst, 4), 24);
	wr32(dst, 0x60, 1);
	ck_assert(dst->intx);
	to_resuming(dst);
	ck_assert_uint_eq(rd32(dst, 0x04), 0);
	ck_assert_uint_eq(rd32(dst, 0x08), 0);
	ck_assert_uint_eq(rd32(dst, 0x24), 0);
}
END_TEST

START_TEST(test_precopy)
{
	struct mpdev_error err = { 0 };
	uint8_t stream[STREAM_CAP];
	uint64_t initial, dirty;
	size_t len;

	cfg_wr(src, 0x04, 2, 0x0006);
	fill(src, 0x1000, 4096, 1);
	start_dma(src, 0x1000, BUF, 4096, 0x1);
	run_loop();

	arc(src, RUNNING, PRE_COPY);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, INITIAL);
	ck_assert_uint_eq(dirty, TAIL);
	len = save_chunked(src, stream, 100, 100);
	ck_assert_uint_eq(len, 100);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, INITIAL - 100);
	len += save(src, stream + len, STREAM_CAP - len);
	ck_assert_uint_eq(len, INITIAL);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, 0);
	ck_assert_uint_eq(dirty, TAIL);

	/* The device keeps running: a DMA into its buffer dirties it... */
	fill(src, 0x1000, 16, 200);
	start_dma(src, 0x1000, BUF + 0x800, 16, 0x1);
	run_loop();
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, 0);
	ck_assert_uint_eq(dirty, TAIL + BUF_REC);
	/* ...and so does the guest writing config space. */
	cfg_wr(src, 0x3c, 1, 9);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(dirty, TAIL + BUF_REC + CFG_REC);
	ck_assert_uint_eq(save(src, stream + len, STREAM_CAP - len), 0);

	arc(src, PRE_COPY, PRE_COPY_P2P);
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(dirty, TAIL + BUF_REC + CFG_REC);
	arc(src, PRE_COPY_P2P, STOP_COPY);
	len += save(src, stream + len, STREAM_CAP - len);
	ck_assert_uint_eq(len, INITIAL + CFG_REC + BUF_REC + TAIL);

	restore_to_p2p(dst, stream, len);
	arc(dst, RUNNING_P2P, RUNNING);
	ck_assert_uint_eq(cfg_rd(dst, 0x3c, 1), 9);
	start_dma(dst, BUF, 0x4000, 4096, 0x1 | 0x2);
	run_loop();
	check_pattern(dst->ram + 0x4000 + 0x800, 16, 200);
	check_pattern(dst->ram + 0x4000, 0x800, 1);
}
END_TEST

START_TEST(test_precopy_unchanged_buffer)
{
	struct mpdev_error err = { 0 };
	uint8_t stream[STREAM_CAP];
	uint64_t initial, dirty;
	size_t len;

	cfg_wr(src, 0x04, 2, 0x0006);
	fill(src, 0x1000, 4096, 5);
	start_dma(src, 0x1000, BUF, 4096, 0x1);
	run_loop();

	/* From RUNNING_P2P: PRE_COPY_P2P starts the stream too. */
	arc(src, RUNNING, RUNNING_P2P);
	arc(src, RUNNING_P2P, PRE_COPY_P2P);
	len = save(src, stream, STREAM_CAP);
	ck_assert_uint_eq(len, INITIAL);
	/* The device writes RAM from its buffer: the buffer itself is unchanged. */
	arc(src, PRE_COPY_P2P, PRE_COPY);
	wr32(src, 0x04, 0x77);
	start_dma(src, BUF, 0x8000, 4096, 0x1 | 0x2);
	run_loop();
	ck_assert_int_eq(src->dev->ops->mig_precopy_info(src->dev, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, 0);
	ck_assert_uint_eq(dirty, TAIL);
	arc(src, PRE_COPY, PRE_COPY_P2P);
	arc(src, PRE_COPY_P2P, STOP_COPY);
	ck_assert_uint_eq(save(src, stream + len, STREAM_CAP - len), TAIL);
	/* The stopped phase moved TAIL bytes where STOP -> STOP_COPY moves FULL_LEN. */
	len += TAIL;

	restore_to_p2p(dst, stream, len);
	arc(dst, RUNNING_P2P, RUNNING);
	ck_assert_uint_eq(rd32(dst, 0x04), ~0x77u);
	start_dma(dst, BUF, 0x4000, 4096, 0x1 | 0x2);
	run_loop();
	check_pattern(dst->ram + 0x4000, 4096, 5);
}
END_TEST

START_TEST(test_precopy_abandoned)
{
	uint8_t stream[STREAM_CAP];

	arc(src, RUNNING, PRE_COPY);
	ck_assert_uint_eq(save(src, stream, STREAM_CAP), INITIAL);
	arc(src, PRE_COPY, RUNNING);
	ck_assert_uint_eq(factorial_of(src, 6), 720);
	/* A new precopy starts over. */
	arc(src, RUNNING, PRE_COPY);
	ck_assert_uint_eq(save(src, stream, STREAM_CAP), INITIAL);
	arc(src, PRE_COPY, PRE_COPY_P2P);
	arc(src, PRE_COPY_P2P, RUNNING_P2P);
	arc(src, RUNNING_P2P, RUNNING);
}
END_TEST

START_TEST(test_refuse_truncated)
{
	make_good_stream();
	for (size_t cut = 0; cut < good_len; cut++) {
		struct mpdev_error err = { 0 };
		int r = try_load(dst, good, cut, &err);

		ck_assert_msg(r == 0, "prefix of %zu: %s", cut, err.msg);
		check_refused_then_recovers(dst, r, "truncated");
	}
}
END_TEST

START_TEST(test_refuse_corrupted)
{
	uint8_t bad[STREAM_CAP];

	make_good_stream();
	for (size_t i = 0; i < good_len; i++) {
		struct mpdev_error err = { 0 };
		int r;

		memcpy(bad, good, good_len);
		bad[i] ^= 0xff;
		r = try_load(dst, bad, good_len, &err);
		check_refused_then_recovers(dst, r, "flipped byte");
	}
}
END_TEST

/* Loads a stream, expects refusal naming why, and the target recovering. */
static void refuse(const uint8_t *p, size_t len, const char *why)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now = 99;
	int r = try_load(dst, p, len, &err);

	if (r == 0)
		r = arc_r(dst, RESUMING, STOP, &now, &err);
	ck_assert_msg(r == -EINVAL, "%s: accepted", why);
	ck_assert_msg(strstr(err.msg, why), "expected \"%s\", got \"%s\"", why, err.msg);
	/* Whichever call refused it, the device is in ERROR now. */
	ck_assert_int_eq(arc_r(dst, RESUMING, STOP, &now, &err), -EINVAL);
	ck_assert_int_eq(now, ERROR);
	check_refused_then_recovers(dst, 0 /* unused */, why);
}

static void refuse_patched(size_t rec, size_t off, const void *val, size_t n, const char *why)
{
	uint8_t bad[STREAM_CAP];
	size_t at = record_at(good, rec);

	memcpy(bad, good, good_len);
	memcpy(bad + at + 8 + off, val, n);
	recrc(bad, at);
	refuse(bad, good_len, why);
}

START_TEST(test_refuse_table)
{
	uint8_t bad[STREAM_CAP];
	uint8_t v8[8];

	make_good_stream();
	/* Header record (0): version, model, identity. */
	mig_put32(v8, 2);
	refuse_patched(0, 8, v8, 4, "unknown format version 2");
	refuse_patched(0, 12, "edv", 3, "from device model \"edv\"");
	refuse_patched(0, 28, v8, 4, "unknown edu state version 2");
	mig_put16(v8, 0x11e9);
	refuse_patched(0, 34, v8, 2, "from device 1234:11e9");
	refuse_patched(0, 40, "\x11", 1, "revision 0x11");
	refuse_patched(0, 0, "MPDEVEMV", 8, "bad magic");
	/* Config (1): identity and layout bits are not state. */
	mig_put16(v8, 0x11e9);
	refuse_patched(1, 2, v8, 2, "config byte 0x02");
	refuse_patched(1, 0x34, "\x50", 1, "config byte 0x34");
	/* Registers (3): values edu cannot hold. */
	mig_put32(v8, 0x2);
	refuse_patched(3, 8, v8, 4, "impossible status");
	mig_put32(v8, 0x4);
	refuse_patched(3, 48, v8, 4, "unknown register flags");
	mig_put32(v8, 0x1);
	refuse_patched(3, 48, v8, 4, "INTx asserted with nothing pending");
	memcpy(bad, good, good_len);
	{
		size_t at = record_at(good, 3) + 8;

		mig_put64(bad + at + 24, 0x40f00); /* dst in the buffer, 0x200 bytes past its end */
		mig_put64(bad + at + 32, 0x300);
		mig_put64(bad + at + 40, 0x1);
		recrc(bad, at - 8);
		refuse(bad, good_len, "outside the device buffer");
	}
	/* Framing. */
	refuse((const uint8_t *)"garbage, not a stream at all....", 32, "not an mpdev");
	memcpy(bad, good, good_len);
	bad[good_len] = 0;
	refuse(bad, good_len + 1, "after its end");
	memcpy(bad, good, good_len);
	bad[record_at(good, 1) + 2] = 1;
	recrc(bad, record_at(good, 1));
	refuse(bad, good_len, "reserved flags");
	/* The END record first: no state at all. */
	memcpy(bad, good, HDR_REC);
	memcpy(bad + HDR_REC, good + good_len - END_REC, END_REC);
	refuse(bad, HDR_REC + END_REC, "no config space record");
	/* Two register records. */
	memcpy(bad, good, good_len - END_REC);
	memcpy(bad + good_len - END_REC, good + record_at(good, 3), REGS_REC);
	memcpy(bad + good_len - END_REC + REGS_REC, good + good_len - END_REC, END_REC);
	refuse(bad, good_len + REGS_REC, "second register record");
	/* Unknown record type with a good CRC. */
	memcpy(bad, good, good_len);
	bad[record_at(good, 2)] = 19;
	recrc(bad, record_at(good, 2));
	refuse(bad, good_len, "unknown record type 19");
	/* Config status INTx bit against the register record's level. */
	memcpy(bad, good, good_len);
	bad[record_at(good, 1) + 8 + 6] |= 0x08;
	recrc(bad, record_at(good, 1));
	refuse(bad, good_len, "config status says INTx asserted");
}
END_TEST

START_TEST(test_refuse_oversized)
{
	uint8_t bad[STREAM_CAP];
	size_t len = HDR_REC;

	make_good_stream();
	/* Header, then DMA buffer records until past the bound: each well-formed. */
	memcpy(bad, good, HDR_REC);
	while (len + BUF_REC <= sizeof(bad)) {
		memcpy(bad + len, good + record_at(good, 2), BUF_REC);
		len += BUF_REC;
	}
	ck_assert_uint_gt(len, MIG_STREAM_MAX_BYTES);
	refuse(bad, len, "longer than the 16384 bytes");
	/* A record claiming more than any record may have. */
	memcpy(bad, good, good_len);
	mig_put32(bad + record_at(good, 2) + 4, 4097);
	refuse(bad, good_len, "claims 4097 bytes");
}
END_TEST

START_TEST(test_error_state)
{
	struct mpdev_error err = { 0 };

	go_to(dst, ERROR);
	ck_assert_int_eq(region_wr_r(dst, BACKEND_REGION_BAR0, 0x08, 4, 3, &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.msg, "ERROR"));
	ck_assert_uint_eq(rd32(dst, 0x00), 0x010000ed);
	ck_assert_int_eq(dst->dev->ops->mig_load(dst->dev, "x", 1, &err), -EINVAL);
	ck_assert_int_eq(dst->dev->ops->reset(dst->dev, &err), 0);
	ck_assert_uint_eq(factorial_of(dst, 3), 6);
}
END_TEST

static Suite *edu_mig_suite(void)
{
	Suite *s = suite_create("edu_mig");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_crc32c);
	tcase_add_test(tc, test_flags);
	tcase_add_test(tc, test_mid_factorial);
	tcase_add_test(tc, test_mid_dma);
	tcase_add_test(tc, test_in_flight_at_quiesce);
	tcase_add_test(tc, test_config_and_msi);
	tcase_add_test(tc, test_intx_level_carried);
	tcase_add_test(tc, test_p2p_holds_work);
	tcase_add_test(tc, test_p2p_holds_msi);
	tcase_add_test(tc, test_p2p_bad_dma_refused_at_once);
	tcase_add_test(tc, test_stopped_refuses_bar_writes);
	tcase_add_test(tc, test_bad_arcs);
	tcase_add_test(tc, test_ops_outside_their_states);
	tcase_add_test(tc, test_stop_copy_stream);
	tcase_add_test(tc, test_segmentation);
	tcase_add_test(tc, test_resuming_resets);
	tcase_add_test(tc, test_precopy);
	tcase_add_test(tc, test_precopy_unchanged_buffer);
	tcase_add_test(tc, test_precopy_abandoned);
	tcase_add_test(tc, test_refuse_truncated);
	tcase_add_test(tc, test_refuse_corrupted);
	tcase_add_test(tc, test_refuse_table);
	tcase_add_test(tc, test_refuse_oversized);
	tcase_add_test(tc, test_error_state);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(edu_mig_suite());
	int failed;

	/* Refused streams warn by design; keep the test output readable. */
	log_set_level(MPDEV_LOG_ERROR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
