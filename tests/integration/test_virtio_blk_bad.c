/*
 * The virtio-blk device's bad-input table: one row per rule a driver can
 * break, each through a real mpdev-remote with the test as the driver.
 * Every row expects what the spec says the device does (DEVICE_NEEDS_RESET
 * with a configuration change interrupt, or the request's status IOERR or
 * UNSUPP), and then: the remote answers the next BAR read, no byte of
 * guest RAM outside what the device may write changed (the whole of guest
 * RAM is compared with a snapshot), the backing file is unchanged (every
 * row's request is a write or names none), and after a reset the device
 * works again.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "vblk_fixture.h"

#define FILE_SIZE (1ull << 20)
#define CAPACITY  (FILE_SIZE / 512)
#define QSIZE	  16
#define MAX_IOV	  256 /* remote/emu/virtq.h VIRTQ_MAX_IOV */
#define OUTSIDE	  0x7fff00000000ull

enum expect { NEEDS_RESET, S_IOERR, S_UNSUPP };

/* Buffers of one row, in guest RAM. */
struct bufs {
	uint64_t hdr, data, status, table, table2;
	uint8_t *hdr_p, *data_p, *status_p, *table_p, *table2_p;
};

static struct vblk_fix f;
static struct bufs b;

static void D(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *d = vdrv_desc(&f.d, 0, i);

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void T(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next)
{
	struct vring_desc *d = (struct vring_desc *)table + i;

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

#define R 0
#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT
#define I VRING_DESC_F_INDIRECT

/* An OUT request of len bytes at sector: header, data, status. */
static void out_chain(uint64_t sector, uint32_t len)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, sector);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.data, len, R | N, 2);
	D(2, b.status, 1, W, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

/* ---- the rows that publish a chain ---- */

static void head_past_size(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.data, 512, R | N, 2);
	D(2, b.status, 1, W, 0);
	/* Head 19 of a 16-entry queue. */
	vdrv_avail_publish(&f.d, 0, QSIZE + 3);
}

static void next_past_size(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 40);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void chain_loop(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.data, 512, R | N, 2);
	D(2, b.data, 512, R | N, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void nested_indirect(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	T(b.table2_p, 0, b.data, 512, R, 0);
	T(b.table_p, 0, b.hdr, 16, R | N, 1);
	T(b.table_p, 1, b.table2, 16, I | N, 2);
	T(b.table_p, 2, b.status, 1, W, 0);
	D(0, b.table, 3 * 16, I, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void indirect_chain(uint64_t table_addr)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	T(b.table_p, 0, b.hdr, 16, R | N, 1);
	T(b.table_p, 1, b.data, 512, R | N, 2);
	T(b.table_p, 2, b.status, 1, W, 0);
	D(0, table_addr, 3 * 16, I, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void indirect_not_negotiated(void)
{
	indirect_chain(b.table);
}

static void indirect_table_outside(void)
{
	indirect_chain(OUTSIDE);
}

static void indirect_table_len_odd(void)
{
	indirect_chain(b.table);
	vdrv_desc(&f.d, 0, 0)->len = 3 * 16 + 5;
}

static void addr_outside_memory(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, OUTSIDE, 512, R | N, 2);
	D(2, b.status, 1, W, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void straddles_region_end(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, VF_GPA + VF_MEM_SIZE - 256, 512, R | N, 2);
	D(2, b.status, 1, W, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void len_wraps(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, UINT64_MAX - 255, 512, R | N, 2);
	D(2, b.status, 1, W, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void data_not_sector_multiple(void)
{
	out_chain(0, 1000);
}

static void sector_past_capacity(void)
{
	out_chain(CAPACITY, 512);
}

static void sector_end_past_capacity(void)
{
	out_chain(CAPACITY - 1, 1024);
}

static void sector_len_overflow(void)
{
	out_chain(UINT64_MAX, 512);
}

static void sector_bytes_overflow(void)
{
	/* sector * 512 wraps to a small offset. */
	out_chain(1ull << 55, 512);
}

static void header_too_short(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 8, R | N, 1);
	D(1, b.status, 1, W, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void status_read_only(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.data, 512, R | N, 2);
	D(2, b.status, 1, R, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void status_missing(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.data, 512, R, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void writable_before_readable(void)
{
	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	D(0, b.hdr, 16, R | N, 1);
	D(1, b.status, 1, W | N, 2);
	D(2, b.data, 512, R, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void too_many_buffers(void)
{
	unsigned n = MAX_IOV + 1;

	vf_put_hdr(b.hdr_p, VIRTIO_BLK_T_OUT, 0);
	T(b.table_p, 0, b.hdr, 16, R | N, 1);
	for (unsigned i = 1; i + 1 < n; i++)
		T(b.table_p, i, b.data + 512ull * (i % 16), 512, R | N, (uint16_t)(i + 1));
	T(b.table_p, n - 1, b.status, 1, W, 0);
	D(0, b.table, 16 * n, I, 0);
	vdrv_avail_publish(&f.d, 0, 0);
}

static void unknown_type(void)
{
	out_chain(0, 512);
	b.hdr_p[0] = 99;
}

static void discard_two_segments(void)
{
	/* max_discard_seg is 1 (QEMU: more is UNSUPP). */
	out_chain(0, 32);
	b.hdr_p[0] = VIRTIO_BLK_T_DISCARD;
	memset(b.data_p, 0, 32);
	b.data_p[8] = 8;
	b.data_p[24] = 8;
}

static void write_zeroes_past_capacity(void)
{
	out_chain(0, 16);
	b.hdr_p[0] = VIRTIO_BLK_T_WRITE_ZEROES;
	memset(b.data_p, 0, 16);
	for (int i = 0; i < 8; i++)
		b.data_p[i] = (uint8_t)((CAPACITY - 4) >> (8 * i));
	b.data_p[8] = 8;
}

static void avail_idx_runaway(void)
{
	out_chain(0, 512);
	/* More entries than the queue has: the index is nonsense. */
	f.d.q[0].avail[1] = QSIZE + 9;
}

/* ---- the rows on the transport ---- */

static void bar_wr(uint64_t off, uint32_t size, uint32_t v)
{
	uint8_t d[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	ck_assert_msg(mpdev_region_write(f.rem.dev, MPDEV_REGION_BAR0, off, d, size) == 0, "%s",
		      mpdev_last_error(f.rem.dev));
}

static void queue_select_past_end_enable(void)
{
	uint32_t v;

	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_SELECT, 2, 7), 0);
	ck_assert_int_eq(vdrv_common_read(&f.d, VIRTIO_COMMON_Q_SIZE, 2, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_ENABLE, 2, 1), 0);
}

static void program_queue1(uint16_t size, uint64_t desc)
{
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_SELECT, 2, 1), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_SIZE, 2, size), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)desc), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_DESCHI, 4, desc >> 32), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_AVAILLO, 4, (uint32_t)b.table), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_USEDLO, 4, (uint32_t)b.table2), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_Q_ENABLE, 2, 1), 0);
}

static void queue_size_not_pow2(void)
{
	uint32_t en;

	program_queue1(100, b.data);
	ck_assert_int_eq(vdrv_common_read(&f.d, VIRTIO_COMMON_Q_ENABLE, 2, &en), 0);
	ck_assert_uint_eq(en, 0);
}

static void queue_addr_outside(void)
{
	uint32_t en;

	program_queue1(16, OUTSIDE);
	ck_assert_int_eq(vdrv_common_read(&f.d, VIRTIO_COMMON_Q_ENABLE, 2, &en), 0);
	ck_assert_uint_eq(en, 0);
}

static void notify_past_end(void)
{
	bar_wr(0x3000 + 4 * 9, 2, 9);
}

struct row {
	const char *name;
	void (*run)(void);
	enum expect expect;
	bool transport;		/* BAR writes, no chain */
	uint64_t drop_features; /* not negotiated */
};

static const struct row rows[] = {
	{ "head index past the queue size", head_past_size, NEEDS_RESET, false, 0 },
	{ "next past the queue size", next_past_size, NEEDS_RESET, false, 0 },
	{ "descriptor loop", chain_loop, NEEDS_RESET, false, 0 },
	{ "nested indirect table", nested_indirect, NEEDS_RESET, false, 0 },
	{ "indirect not negotiated", indirect_not_negotiated, NEEDS_RESET, false,
	  VDRV_F(VIRTIO_F_RING_INDIRECT_DESC) },
	{ "indirect table outside guest memory", indirect_table_outside, NEEDS_RESET, false, 0 },
	{ "indirect table length not a multiple of 16", indirect_table_len_odd, NEEDS_RESET, false,
	  0 },
	{ "buffer outside guest memory", addr_outside_memory, NEEDS_RESET, false, 0 },
	{ "buffer straddling the end of the region", straddles_region_end, NEEDS_RESET, false, 0 },
	{ "buffer address + length wraps", len_wraps, NEEDS_RESET, false, 0 },
	{ "data length not a multiple of 512", data_not_sector_multiple, S_IOERR, false, 0 },
	{ "sector past the capacity", sector_past_capacity, S_IOERR, false, 0 },
	{ "sector + length past the capacity", sector_end_past_capacity, S_IOERR, false, 0 },
	{ "sector + length overflows", sector_len_overflow, S_IOERR, false, 0 },
	{ "sector * 512 overflows", sector_bytes_overflow, S_IOERR, false, 0 },
	{ "header too short", header_too_short, NEEDS_RESET, false, 0 },
	{ "status descriptor read-only", status_read_only, NEEDS_RESET, false, 0 },
	{ "status missing", status_missing, NEEDS_RESET, false, 0 },
	{ "writable before readable", writable_before_readable, NEEDS_RESET, false, 0 },
	{ "more buffers than VIRTQ_MAX_IOV (seg_max + 2)", too_many_buffers, NEEDS_RESET, false,
	  0 },
	{ "unknown request type", unknown_type, S_UNSUPP, false, 0 },
	{ "discard with two segments", discard_two_segments, S_UNSUPP, false, 0 },
	{ "write zeroes past the capacity", write_zeroes_past_capacity, S_IOERR, false, 0 },
	{ "avail idx more than the queue size ahead", avail_idx_runaway, NEEDS_RESET, false, 0 },
	{ "queue_select past num_queues, then enable", queue_select_past_end_enable, NEEDS_RESET,
	  true, 0 },
	{ "queue_size not a power of 2", queue_size_not_pow2, NEEDS_RESET, true, 0 },
	{ "queue addresses outside guest memory at enable", queue_addr_outside, NEEDS_RESET, true,
	  0 },
	{ "notify for a queue past the end", notify_past_end, NEEDS_RESET, true, 0 },
};

#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t wait_status_bit(uint8_t bit)
{
	int64_t end = now_ms() + VF_WAIT_MS;
	uint8_t st = 0;

	do {
		ck_assert_msg(vdrv_status(&f.d, &st) == 0, "%s", vdrv_error(&f.d));
		if (st & bit)
			break;
		usleep(1000);
	} while (now_ms() < end);
	return st;
}

/* The used entry of a chain built by hand (vdrv_wait_used knows only its own). */
static struct vring_used_elem raw_wait_used(const char *what)
{
	int64_t end = now_ms() + VF_WAIT_MS;

	while (vdrv_used_idx(&f.d, 0) == 0) {
		ck_assert_msg(now_ms() < end, "%s: nothing used within %d ms", what, VF_WAIT_MS);
		usleep(1000);
	}
	ck_assert_uint_eq(vdrv_used_idx(&f.d, 0), 1);
	return *(struct vring_used_elem *)(f.d.q[0].used + 4);
}

static bool allowed(uint64_t gpa, const struct row *row)
{
	const struct vdrv_queue *q = &f.d.q[0];

	/* The used ring (and avail_event in it) is the device's to write. */
	if (gpa >= q->used_gpa && gpa < q->used_gpa + 6 + 8ull * QSIZE)
		return true;
	return row->expect != NEEDS_RESET && gpa == b.status;
}

static void setup_row(const struct row *row)
{
	uint64_t dev_f;

	vf_start(&f, FILE_SIZE, "");
	ck_assert_int_eq(vdrv_device_features(&f.d, &dev_f), 0);
	vf_setup(&f, dev_f & ~row->drop_features, 1, QSIZE, NULL);
	b.hdr_p = vdrv_alloc(&f.d, 4096, 4096, &b.hdr);
	b.status_p = vdrv_alloc(&f.d, 4096, 4096, &b.status);
	b.data_p = vdrv_alloc(&f.d, 64 * 1024, 4096, &b.data);
	b.table_p = vdrv_alloc(&f.d, 16 * 4096, 4096, &b.table);
	b.table2_p = vdrv_alloc(&f.d, 4096, 4096, &b.table2);
	ck_assert(b.hdr_p && b.status_p && b.data_p && b.table_p && b.table2_p);
	vf_pattern(b.data_p, 64 * 1024, 42);
	*b.status_p = 0xee;
}

START_TEST(bad_row)
{
	const struct row *row = &rows[_i];
	uint8_t *snap = malloc(VF_MEM_SIZE), st, isr;

	ck_assert_ptr_nonnull(snap);
	printf("row %d: %s\n", _i, row->name);
	setup_row(row);
	/* Everything but the chain's own descriptors and avail ring is in the snapshot. */
	row->run();
	memcpy(snap, f.mem, VF_MEM_SIZE);
	if (!row->transport)
		ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);

	if (row->expect == NEEDS_RESET) {
		st = wait_status_bit(VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		ck_assert_msg(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "%s: status 0x%x", row->name,
			      st);
		ck_assert_uint_eq(vdrv_used_idx(&f.d, 0), 0);
		/* DRIVER_OK was set: the driver hears of it by a config change interrupt. */
		ck_assert_int_eq(vdrv_isr_read(&f.d, &isr), 0);
		ck_assert_msg(isr & 2, "%s: ISR 0x%x, no config change", row->name, isr);
	} else {
		struct vring_used_elem u = raw_wait_used(row->name);

		ck_assert_uint_eq(u.id, 0);
		ck_assert_uint_eq(u.len, 1);
		ck_assert_uint_eq(*b.status_p, row->expect == S_IOERR ? VIRTIO_BLK_S_IOERR
								      : VIRTIO_BLK_S_UNSUPP);
		ck_assert_int_eq(vdrv_status(&f.d, &st), 0);
		ck_assert_uint_eq(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	}
	vf_expect_alive(&f);
	for (uint64_t i = 0; i < VF_MEM_SIZE; i++) {
		if (f.mem[i] != snap[i] && !allowed(VF_GPA + i, row))
			ck_abort_msg("%s: guest RAM at 0x%llx changed (0x%02x -> 0x%02x)",
				     row->name, (unsigned long long)(VF_GPA + i), snap[i],
				     f.mem[i]);
	}
	vf_expect_file(&f);
	free(snap);

	/* A reset brings the device back. */
	vf_setup(&f, 0, 1, QSIZE, NULL);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 4, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f.data, f.image + 4 * 512, 4096);
	vf_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("virtio_blk_bad");
	TCase *tc = tcase_create("table");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, bad_row, 0, NROWS);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	vf_require_io_uring();
	return testutil_run_suite(suite());
}
