/*
 * The memory table against a real mpdev-remote serving edu: DMA end to end,
 * verified byte for byte in guest RAM from the VMM side; edu's 28-bit DMA
 * mask; failed DMAs that write nothing; every refused region with its errno
 * and words; sealing; incremental and atomic table changes seen through the
 * remote's counters; libmpdev's kept copy of the table; and what a
 * disconnect (or a half-sent chunked table) leaves behind: nothing.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "wire.h"

#define PAGE 0x1000u

/* edu's BAR0 registers and DMA bits (remote/emu/edu.h, QEMU's hw/misc/edu.c). */
#define EDU_IDENT	   0x00
#define EDU_IRQ_STATUS	   0x24
#define EDU_IRQ_ACK	   0x64
#define EDU_DMA_SRC	   0x80
#define EDU_DMA_DST	   0x88
#define EDU_DMA_COUNT	   0x90
#define EDU_DMA_CMD	   0x98
#define EDU_CMD_RUN	   0x1u
#define EDU_CMD_TO_RAM	   0x2u
#define EDU_CMD_IRQ	   0x4u
#define EDU_IRQ_DMA	   0x100u
#define EDU_DMA_BUF	   0x40000u
#define EDU_DMA_BUF_SIZE   4096u
#define EDU_IDENT_VALUE	   0x010000edu
#define PCI_COMMAND_MEM_BM 0x0006u

static struct remote rem;
static unsigned next_seed = 1;

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_memory" };

/* ---- guest RAM: sealed memfds, mapped here too so bytes can be checked ---- */

struct guest_ram {
	int fd;
	uint8_t *p;
	size_t size;
};

static struct guest_ram ram_new(size_t size)
{
	struct guest_ram r = { .fd = testutil_memfd(size, F_SEAL_SHRINK | F_SEAL_GROW),
			       .size = size };

	r.p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	ck_assert_ptr_ne(r.p, MAP_FAILED);
	return r;
}

static void ram_free(struct guest_ram *r)
{
	munmap(r->p, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Bytes 0..250, never 0xff: an all-ones read can never be mistaken for data. */
static void fill(uint8_t *p, size_t len)
{
	unsigned seed = next_seed++;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 17 + (i >> 8)) % 251);
}

static struct mpdev_mem_region region(uint64_t gpa, uint64_t size, int fd, uint64_t fd_offset,
				      bool read_only)
{
	return (struct mpdev_mem_region){
		.gpa = gpa, .size = size, .fd = fd, .fd_offset = fd_offset, .read_only = read_only
	};
}

static ino_t ino_of(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_ino;
}

static void set_table_ok(const struct mpdev_mem_region *v, size_t n)
{
	ck_assert_msg(mpdev_mem_set_table(rem.dev, v, n) == 0, "set table: %s",
		      mpdev_last_error(rem.dev));
}

static void add_ok(const struct mpdev_mem_region *r)
{
	ck_assert_msg(mpdev_mem_add(rem.dev, r) == 0, "add: %s", mpdev_last_error(rem.dev));
}

static void remove_ok(uint64_t gpa, uint64_t size)
{
	ck_assert_msg(mpdev_mem_remove(rem.dev, gpa, size) == 0, "remove: %s",
		      mpdev_last_error(rem.dev));
}

/* ---- edu registers and DMA ---- */

static void enable_bus_master(void)
{
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x04, 2, PCI_COMMAND_MEM_BM), 0);
}

/*
 * Runs one edu DMA and waits (bounded) for the device to finish with it.
 * Returns whether the transfer happened: edu raises its DMA interrupt status
 * only for a transfer that completed.
 */
static bool edu_dma(uint64_t src, uint64_t dst, uint64_t count, uint64_t cmd)
{
	uint64_t c = EDU_CMD_RUN;
	bool done;

	bar_wr64(rem.dev, EDU_DMA_SRC, src);
	bar_wr64(rem.dev, EDU_DMA_DST, dst);
	bar_wr64(rem.dev, EDU_DMA_COUNT, count);
	bar_wr64(rem.dev, EDU_DMA_CMD, cmd | EDU_CMD_RUN | EDU_CMD_IRQ);
	for (int i = 0; i < 2000 && (c & EDU_CMD_RUN); i++) {
		if (i > 10)
			usleep(1000);
		c = bar_rd64(rem.dev, EDU_DMA_CMD);
	}
	ck_assert_msg(!(c & EDU_CMD_RUN), "DMA still running after ~2 s (cmd 0x%llx)",
		      (unsigned long long)c);
	done = bar_rd32(rem.dev, EDU_IRQ_STATUS) & EDU_IRQ_DMA;
	if (done)
		bar_wr32(rem.dev, EDU_IRQ_ACK, EDU_IRQ_DMA);
	return done;
}

/* RAM -> the device's buffer. */
static bool dma_to_device(uint64_t gpa, uint64_t count)
{
	return edu_dma(gpa, EDU_DMA_BUF, count, 0);
}

/* The device's buffer -> RAM. */
static bool dma_to_ram(uint64_t gpa, uint64_t count)
{
	return edu_dma(EDU_DMA_BUF, gpa, count, EDU_CMD_TO_RAM);
}

/*
 * Moves len fresh bytes from RAM at from (our mapping from_p) through the
 * device into RAM at to (to_p), and checks they arrived, byte for byte.
 */
static void expect_round_trip(uint64_t from, uint8_t *from_p, uint64_t to, uint8_t *to_p,
			      size_t len)
{
	uint8_t want[EDU_DMA_BUF_SIZE];

	ck_assert_uint_le(len, sizeof(want));
	fill(from_p, len);
	memcpy(want, from_p, len);
	memset(to_p, 0, len);
	ck_assert_msg(dma_to_device(from, len), "DMA from RAM at 0x%llx failed",
		      (unsigned long long)from);
	ck_assert_msg(dma_to_ram(to, len), "DMA to RAM at 0x%llx failed", (unsigned long long)to);
	ck_assert_msg(memcmp(to_p, want, len) == 0, "bytes DMAed to 0x%llx differ",
		      (unsigned long long)to);
}

/* ---- the remote's counters ---- */

struct dma_counters {
	uint64_t mmaps, munmaps, faults, regions;
	unsigned found;
};

static const char *const dma_counter_names[] = { "dma_mmaps", "dma_munmaps", "dma_faults",
						 "mem_regions" };

static void pick_dma_counter(void *opaque, const char *name, uint64_t value)
{
	struct dma_counters *c = opaque;
	uint64_t *slot[] = { &c->mmaps, &c->munmaps, &c->faults, &c->regions };

	for (size_t i = 0; i < sizeof(slot) / sizeof(slot[0]); i++) {
		if (!strcmp(name, dma_counter_names[i])) {
			*slot[i] = value;
			c->found |= 1u << i;
		}
	}
}

static struct dma_counters dma_counters(void)
{
	struct dma_counters c = { 0 };

	ck_assert_msg(mpdev_get_stats(rem.dev, pick_dma_counter, &c) > 0, "stats: %s",
		      mpdev_last_error(rem.dev));
	for (size_t i = 0; i < 4; i++)
		ck_assert_msg(c.found & (1u << i), "the remote does not report counter '%s'",
			      dma_counter_names[i]);
	return c;
}

/* Exactly mmaps new mappings and munmaps dropped ones since before; regions now in the table. */
static void expect_mapping_changes(const struct dma_counters *before, uint64_t mmaps,
				   uint64_t munmaps, uint64_t regions)
{
	struct dma_counters now = dma_counters();

	ck_assert_uint_eq(now.mmaps - before->mmaps, mmaps);
	ck_assert_uint_eq(now.munmaps - before->munmaps, munmaps);
	ck_assert_uint_eq(now.regions, regions);
}

/* ---- the remote's health ---- */

/* After a round trip through the device, the remote holds want fds. */
static void expect_remote_fds(int want)
{
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IDENT), EDU_IDENT_VALUE);
	remote_expect_fds(&rem, want);
}

/* The remote still serves requests, and holds exactly the fds it held after the handshake. */
static void expect_alive(void)
{
	expect_remote_fds(rem.baseline_fds);
}

/* libmpdev's kept table is exactly want[0..n) (any order), its fds naming the files in ino[]. */
static void expect_kept_table(const struct mpdev_mem_region *want, const ino_t *ino, size_t n)
{
	struct mpdev_mem_region got[16];
	size_t k = mpdev_mem_get_table(rem.dev, got, 16);

	ck_assert_uint_eq(k, n);
	ck_assert_uint_le(n, 16);
	for (size_t i = 0; i < n; i++) {
		const struct mpdev_mem_region *g = NULL;

		for (size_t j = 0; j < k && !g; j++)
			if (got[j].gpa == want[i].gpa)
				g = &got[j];
		ck_assert_msg(g, "kept table lacks the region at 0x%llx",
			      (unsigned long long)want[i].gpa);
		ck_assert_uint_eq(g->size, want[i].size);
		ck_assert_uint_eq(g->fd_offset, want[i].fd_offset);
		ck_assert_int_eq(g->read_only, want[i].read_only);
		ck_assert_msg(fcntl(g->fd, F_GETFD) >= 0, "kept fd %d is closed", g->fd);
		ck_assert_uint_eq(ino_of(g->fd), ino[i]);
	}
}

/* ---- fixture: a remote on an adopted socket, as the VMM starts it ---- */

static void start(void)
{
	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
	ck_assert_int_gt(rem.baseline_fds, 0);
	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_MEMORY_TABLE);
	enable_bus_master();
}

static void stop(void)
{
	expect_alive();
	remote_stop(&rem);
}

/* ---- A. DMA end to end ---- */

START_TEST(dma_spanning_two_regions_round_trips)
{
	struct guest_ram lo = ram_new(0x10000), hi = ram_new(0x10000);
	const struct mpdev_mem_region t[] = { region(0x100000, 0x10000, lo.fd, 0, false),
					      region(0x110000, 0x10000, hi.fd, 0, false) };
	const uint64_t src = 0x110000 - 2000, dst = 0x118000, back = 0x110000 - 1000;
	uint8_t want[4000], lo_before[0x10000];

	set_table_ok(t, 2);
	fill(lo.p, lo.size);
	fill(hi.p, hi.size);
	memcpy(want, lo.p + lo.size - 2000, 2000);
	memcpy(want + 2000, hi.p, 2000);
	memset(hi.p + 0x8000, 0, 4000 + 64);
	memcpy(lo_before, lo.p, sizeof(lo_before));

	/* RAM -> device across the boundary of two regions backed by two files. */
	ck_assert(dma_to_device(src, 4000));
	ck_assert_int_eq(memcmp(lo.p, lo_before, sizeof(lo_before)), 0); /* a read writes nothing */

	/* The device buffer is not in BAR0 (as in QEMU): all ones there, never the data. */
	for (uint64_t off = 0; off < EDU_DMA_BUF_SIZE; off += 500) {
		ck_assert_uint_eq(bar_rd32(rem.dev, EDU_DMA_BUF + (off & ~7ull)), 0xffffffffu);
		ck_assert_uint_eq(bar_rd64(rem.dev, EDU_DMA_BUF + (off & ~7ull)), ~0ull);
	}

	/* Device -> RAM inside one region, then across the boundary again. */
	ck_assert(dma_to_ram(dst, 4000));
	ck_assert_int_eq(memcmp(hi.p + 0x8000, want, 4000), 0);
	for (size_t i = 0; i < 64; i++)
		ck_assert_uint_eq(hi.p[0x8000 + 4000 + i], 0); /* nothing past the count */

	memset(lo.p + lo.size - 1000, 0, 1000);
	memset(hi.p, 0, 3000);
	ck_assert(dma_to_ram(back, 4000));
	ck_assert_int_eq(memcmp(lo.p + lo.size - 1000, want, 1000), 0);
	ck_assert_int_eq(memcmp(hi.p, want + 1000, 3000), 0);

	ram_free(&lo);
	ram_free(&hi);
}
END_TEST

/* ---- B. edu's 28-bit DMA mask ---- */

START_TEST(dma_addresses_are_masked_to_28_bits)
{
	struct guest_ram low = ram_new(4 * PAGE), src = ram_new(4 * PAGE), high = ram_new(4 * PAGE);
	const struct mpdev_mem_region t[] = { region(0x100000, 4 * PAGE, low.fd, 0, false),
					      region(0x200000, 4 * PAGE, src.fd, 0, false) };
	const struct mpdev_mem_region only_high = region(0x10100000, 4 * PAGE, high.fd, 0, false);
	uint8_t want[PAGE];

	set_table_ok(t, 2);
	fill(src.p, PAGE);
	memcpy(want, src.p, PAGE);
	memset(low.p, 0, low.size);
	ck_assert(dma_to_device(0x200000, PAGE));
	/* 0x10100000 is 0x00100000 to edu. */
	ck_assert(dma_to_ram(0x10100000, PAGE));
	ck_assert_int_eq(memcmp(low.p, want, PAGE), 0);
	/* Reads are masked the same way: 0xf0200000 is 0x00200000. */
	fill(src.p + PAGE, PAGE);
	memcpy(want, src.p + PAGE, PAGE);
	ck_assert(dma_to_device(0xf0201000, PAGE));
	ck_assert(dma_to_ram(0x101000, PAGE));
	ck_assert_int_eq(memcmp(low.p + PAGE, want, PAGE), 0);

	/* A region above 256 MiB is out of edu's reach: its address lands below. */
	set_table_ok(&only_high, 1);
	memset(high.p, 0, high.size);
	ck_assert(!dma_to_ram(0x10100000, PAGE));
	for (size_t i = 0; i < high.size; i++)
		ck_assert_uint_eq(high.p[i], 0);

	ram_free(&low);
	ram_free(&src);
	ram_free(&high);
}
END_TEST

/* ---- C. failed DMAs write nothing ---- */

START_TEST(dma_to_an_unmapped_address_writes_nothing)
{
	struct guest_ram ram = ram_new(16 * PAGE);
	const struct mpdev_mem_region t = region(0x100000, 16 * PAGE, ram.fd, 0, false);
	static uint8_t snapshot[16 * PAGE];
	uint8_t want[4000];
	struct dma_counters before;

	set_table_ok(&t, 1);
	fill(ram.p, ram.size);
	memcpy(want, ram.p, sizeof(want));
	ck_assert(dma_to_device(0x100000, 4000));
	memcpy(snapshot, ram.p, ram.size);
	before = dma_counters();

	ck_assert(!dma_to_ram(0x500000, 4000));	   /* nowhere */
	ck_assert(!dma_to_device(0x500000, 4000)); /* a failed read leaves the buffer alone */
	ck_assert(!dma_to_ram(0x0ffff000, 4000));  /* the top of edu's reach */
	ck_assert_int_eq(memcmp(ram.p, snapshot, ram.size), 0);
	expect_alive();
	ck_assert_uint_eq(dma_counters().faults - before.faults, 3);

	/* The buffer still holds what the good read put there. */
	memset(ram.p + 8 * PAGE, 0, 4000);
	ck_assert(dma_to_ram(0x108000, 4000));
	ck_assert_int_eq(memcmp(ram.p + 8 * PAGE, want, 4000), 0);
	ram_free(&ram);
}
END_TEST

START_TEST(dma_into_a_read_only_region_writes_nothing)
{
	struct guest_ram rw = ram_new(16 * PAGE), ro = ram_new(16 * PAGE);
	const struct mpdev_mem_region t[] = { region(0x100000, 16 * PAGE, rw.fd, 0, false),
					      region(0x200000, 16 * PAGE, ro.fd, 0, true) };
	static uint8_t snapshot[16 * PAGE];
	struct dma_counters before;

	set_table_ok(t, 2);
	fill(rw.p, rw.size);
	fill(ro.p, ro.size);
	memcpy(snapshot, ro.p, ro.size);
	ck_assert(dma_to_device(0x100000, 4000));
	before = dma_counters();

	ck_assert(!dma_to_ram(0x200000, 4000));
	ck_assert(!dma_to_ram(0x20f000, PAGE));
	ck_assert_int_eq(memcmp(ro.p, snapshot, ro.size), 0);
	ck_assert_uint_eq(dma_counters().faults - before.faults, 2);

	/* The device may still read it. */
	memset(rw.p + 8 * PAGE, 0, 4000);
	ck_assert(dma_to_device(0x200000, 4000));
	ck_assert(dma_to_ram(0x108000, 4000));
	ck_assert_int_eq(memcmp(rw.p + 8 * PAGE, ro.p, 4000), 0);
	ck_assert_int_eq(memcmp(ro.p, snapshot, ro.size), 0);
	ram_free(&rw);
	ram_free(&ro);
}
END_TEST

START_TEST(dma_running_past_a_region_writes_nothing)
{
	struct guest_ram ram = ram_new(16 * PAGE), ro = ram_new(16 * PAGE);
	const struct mpdev_mem_region t = region(0x100000, 16 * PAGE, ram.fd, 0, false);
	const struct mpdev_mem_region neighbour = region(0x110000, 16 * PAGE, ro.fd, 0, true);
	static uint8_t snapshot[16 * PAGE];
	uint8_t want[4000];
	struct dma_counters before;

	set_table_ok(&t, 1);
	fill(ram.p, ram.size);
	memcpy(want, ram.p, sizeof(want));
	ck_assert(dma_to_device(0x100000, 4000));
	memcpy(snapshot, ram.p, ram.size);
	before = dma_counters();

	/* Starts 2000 bytes before the end, runs 2000 into unmapped space. */
	ck_assert(!dma_to_ram(0x110000 - 2000, 4000));
	ck_assert_int_eq(memcmp(ram.p, snapshot, ram.size), 0);
	/* The same for a read: the buffer must not take the mapped half. */
	ck_assert(!dma_to_device(0x110000 - 2000, 4000));

	/* Runs into an adjacent read-only region: the writable part is not written either. */
	add_ok(&neighbour);
	ck_assert(!dma_to_ram(0x110000 - 2000, 4000));
	ck_assert_int_eq(memcmp(ram.p, snapshot, ram.size), 0);
	ck_assert_uint_eq(dma_counters().faults - before.faults, 3);

	memset(ram.p + 8 * PAGE, 0, 4000);
	ck_assert(dma_to_ram(0x108000, 4000));
	ck_assert_int_eq(memcmp(ram.p + 8 * PAGE, want, 4000), 0);
	ram_free(&ram);
	ram_free(&ro);
}
END_TEST

/* ---- D. bad regions: errno and words, the remote up, no fd kept ---- */

static void check_refusal(const char *what, const char *how, int ret, int err, const char *words)
{
	const char *msg = mpdev_last_error(rem.dev);

	ck_assert_msg(ret == -err, "%s (%s): got %d (%s), wanted %d (%s): '%s'", what, how, ret,
		      strerror(-ret), -err, strerror(err), msg);
	ck_assert_msg(*msg, "%s (%s): refused without words", what, how);
	if (words)
		ck_assert_msg(strstr(msg, words), "%s (%s): '%s' lacks '%s'", what, how, msg,
			      words);
	expect_alive();
}

/*
 * r is refused with err and words both as an added region and as a whole
 * table; the remote stays up and keeps no fd, and libmpdev's table stays.
 */
static void expect_refused(const char *what, const struct mpdev_mem_region *r, int err,
			   const char *words)
{
	size_t kept = mpdev_mem_get_table(rem.dev, NULL, 0);

	check_refusal(what, "add", mpdev_mem_add(rem.dev, r), err, words);
	check_refusal(what, "set table", mpdev_mem_set_table(rem.dev, r, 1), err, words);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), kept);
}

static const struct shape_case {
	const char *what;
	uint64_t gpa, size, fd_offset;
	int err;
	const char *words;
} shape_cases[] = {
	{ "gpa not page aligned", 0x100800, PAGE, 0, EINVAL, "multiple of the page size" },
	{ "size not page aligned", 0x100000, 0x1800, 0, EINVAL, "multiple of the page size" },
	{ "fd offset not page aligned", 0x100000, PAGE, 0x200, EINVAL,
	  "multiple of the page size" },
	{ "size 0", 0x100000, 0, 0, EINVAL, "size 0" },
	{ "gpa + size wraps", 0xfffffffffffff000ull, 2 * PAGE, 0, EINVAL, "wraps" },
	{ "offset + size past the end of the file", 0x100000, 2 * PAGE, 3 * PAGE, ERANGE,
	  "past the end" },
	{ "offset past the end of the file", 0x100000, PAGE, 16 * PAGE, ERANGE, "past the end" },
	{ "size beyond the file", 0x100000, 1ull << 40, 0, ERANGE, "past the end" },
	{ "offset + size overflowing", 0x100000, 2 * PAGE, 0xfffffffffffff000ull, ERANGE,
	  "past the end" },
};

START_TEST(badly_shaped_regions_refused)
{
	int fd = testutil_memfd(4 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	const struct mpdev_mem_region top = region(0xfffffffffffff000ull, PAGE, fd, 0, false);

	for (size_t i = 0; i < sizeof(shape_cases) / sizeof(shape_cases[0]); i++) {
		const struct shape_case *c = &shape_cases[i];
		const struct mpdev_mem_region r = region(c->gpa, c->size, fd, c->fd_offset, false);

		expect_refused(c->what, &r, c->err, c->words);
	}
	/* The last page of the address space does not wrap: it is fine. */
	add_ok(&top);
	remove_ok(top.gpa, top.size);
	expect_alive();
	close(fd);
}
END_TEST

START_TEST(overlapping_regions_refused)
{
	int fd = testutil_memfd(32 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	const struct mpdev_mem_region base = region(0x100000, 8 * PAGE, fd, 0, false);
	const struct mpdev_mem_region inside = region(0x104000, 8 * PAGE, fd, 8 * PAGE, false);
	const struct mpdev_mem_region around = region(0xff000, 10 * PAGE, fd, 0, false);
	const struct mpdev_mem_region below = region(0xfc000, 5 * PAGE, fd, 16 * PAGE, false);
	const struct mpdev_mem_region adjacent = region(0x108000, 8 * PAGE, fd, 8 * PAGE, false);
	const struct mpdev_mem_region pair[] = { region(0x200000, 2 * PAGE, fd, 0, false),
						 region(0x201000, 2 * PAGE, fd, 8 * PAGE, false) };
	const struct mpdev_mem_region twice[] = { region(0x300000, PAGE, fd, 0, false),
						  region(0x300000, PAGE, fd, 0, false) };
	/* Given out of order: the remote must sort before it looks for overlaps. */
	const struct mpdev_mem_region unsorted[] = { region(0x500000, 4 * PAGE, fd, 0, false),
						     region(0x400000, PAGE, fd, 0, false),
						     region(0x4ff000, 2 * PAGE, fd, 0, false) };

	set_table_ok(&base, 1);
	check_refusal("inside", "add", mpdev_mem_add(rem.dev, &inside), EEXIST, "overlaps");
	check_refusal("same", "add", mpdev_mem_add(rem.dev, &base), EEXIST, "overlaps");
	check_refusal("around", "add", mpdev_mem_add(rem.dev, &around), EEXIST, "overlaps");
	check_refusal("below", "add", mpdev_mem_add(rem.dev, &below), EEXIST, "overlaps");
	check_refusal("pair", "set table", mpdev_mem_set_table(rem.dev, pair, 2), EEXIST,
		      "overlaps");
	check_refusal("twice", "set table", mpdev_mem_set_table(rem.dev, twice, 2), EEXIST,
		      "overlaps");
	check_refusal("unsorted", "set table", mpdev_mem_set_table(rem.dev, unsorted, 3), EEXIST,
		      "overlaps");
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 1);
	/* Touching is not overlapping. */
	add_ok(&adjacent);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 2);
	expect_alive();
	close(fd);
}
END_TEST

/*
 * What the remote says of a regular file that is not a memfd: "only memfds"
 * when it cannot be sealed at all. A tmpfs file (/dev/shm, or /tmp where it
 * is tmpfs) answers F_GET_SEALS like an unsealed memfd, and is told so; both
 * texts say why it matters.
 */
static const char *not_memfd_words(int fd)
{
	struct statfs sf;

	ck_assert_int_eq(fstatfs(fd, &sf), 0);
	return sf.f_type == TMPFS_MAGIC ? "truncate" : "only memfds";
}

START_TEST(descriptors_that_cannot_back_memory_refused)
{
	char path[] = "/tmp/mpdev-memtest-XXXXXX";
	int sv[2], pipefd[2], efd, dirfd, nullfd, rwfd, wofd, shmfd, unsealed, nosealing, sealed,
		rdonly;
	char proc[64], shm_path[64];
	struct mpdev_mem_region r;

	snprintf(shm_path, sizeof(shm_path), "/dev/shm/mpdev-memtest-%d", (int)getpid());
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r = region(0x100000, PAGE, sv[0], 0, false);
	expect_refused("socket", &r, EINVAL, "a socket");

	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	r = region(0x100000, PAGE, pipefd[0], 0, false);
	expect_refused("pipe", &r, EINVAL, "a pipe");

	efd = testutil_eventfd();
	r = region(0x100000, PAGE, efd, 0, false);
	expect_refused("eventfd", &r, EINVAL, "eventfd");

	dirfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd, 0);
	r = region(0x100000, PAGE, dirfd, 0, false);
	expect_refused("directory", &r, EINVAL, "a directory");

	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(nullfd, 0);
	r = region(0x100000, PAGE, nullfd, 0, false);
	expect_refused("/dev/null", &r, EINVAL, "a device node");

	/* A regular file: write-only is refused for access, read-write for not being a memfd. */
	rwfd = mkostemp(path, O_CLOEXEC);
	ck_assert_int_ge(rwfd, 0);
	ck_assert_int_eq(ftruncate(rwfd, 4 * PAGE), 0);
	wofd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(wofd, 0);
	unlink(path);
	r = region(0x100000, PAGE, wofd, 0, false);
	expect_refused("write-only file", &r, EACCES, "write-only");
	r = region(0x100000, PAGE, rwfd, 0, false);
	expect_refused("regular file", &r, EPERM, not_memfd_words(rwfd));
	r.read_only = true;
	expect_refused("regular file, read-only region", &r, EPERM, not_memfd_words(rwfd));
	/* A tmpfs file answers F_GET_SEALS, but it is not a memfd and cannot be sealed. */
	shmfd = open(shm_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (shmfd >= 0) {
		unlink(shm_path);
		ck_assert_int_eq(ftruncate(shmfd, 4 * PAGE), 0);
		r = region(0x100000, PAGE, shmfd, 0, false);
		expect_refused("/dev/shm file", &r, EPERM, not_memfd_words(shmfd));
		close(shmfd);
	}

	/* Memfds that could shrink under the remote. */
	unsealed = memfd_create("guest", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	ck_assert_int_ge(unsealed, 0);
	ck_assert_int_eq(ftruncate(unsealed, 4 * PAGE), 0);
	r = region(0x100000, PAGE, unsealed, 0, false);
	expect_refused("unsealed memfd", &r, EPERM, "F_SEAL_SHRINK");
	nosealing = memfd_create("guest", MFD_CLOEXEC);
	ck_assert_int_ge(nosealing, 0);
	ck_assert_int_eq(ftruncate(nosealing, 4 * PAGE), 0);
	r = region(0x100000, PAGE, nosealing, 0, false);
	expect_refused("memfd without sealing", &r, EPERM, "F_SEAL_SHRINK");

	/* A sealed memfd opened read-only: not for a writable region, fine for a read-only one. */
	sealed = testutil_memfd(4 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", sealed);
	rdonly = open(proc, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(rdonly, 0);
	r = region(0x100000, PAGE, rdonly, 0, false);
	expect_refused("read-only memfd, writable region", &r, EACCES, "read-only");
	r.read_only = true;
	add_ok(&r);
	remove_ok(r.gpa, r.size);
	set_table_ok(&r, 1);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 1);
	expect_alive();

	close(sv[0]);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
	close(efd);
	close(dirfd);
	close(nullfd);
	close(rwfd);
	close(wofd);
	close(unsealed);
	close(nosealing);
	close(sealed);
	close(rdonly);
}
END_TEST

START_TEST(table_limit_is_1024_regions)
{
	const size_t limit = 1024;
	struct guest_ram ram = ram_new((limit + 1) * PAGE);
	struct mpdev_mem_region *v = calloc(limit + 1, sizeof(*v));
	uint8_t want[4000];
	struct dma_counters before;

	ck_assert_ptr_nonnull(v);
	/* One-page regions, adjacent in guest memory, all from one memfd. */
	for (size_t i = 0; i <= limit; i++)
		v[i] = region(0x1000000 + i * PAGE, PAGE, ram.fd, i * PAGE, false);
	check_refusal("1025 regions", "set table", mpdev_mem_set_table(rem.dev, v, limit + 1),
		      ENOSPC, "limit");
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 0);

	set_table_ok(v, limit);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), limit);
	check_refusal("1025th region", "add", mpdev_mem_add(rem.dev, &v[limit]), ENOSPC, "full");
	expect_alive();

	/* The table works: across two one-page regions near the end, into the first. */
	fill(ram.p, ram.size);
	memcpy(want, ram.p + 1021 * PAGE + 2048, sizeof(want));
	memset(ram.p, 0, 4000);
	ck_assert(dma_to_device(0x1000000 + 1021 * PAGE + 2048, 4000));
	ck_assert(dma_to_ram(0x1000000, 4000));
	ck_assert_int_eq(memcmp(ram.p, want, 4000), 0);

	before = dma_counters();
	ck_assert_uint_eq(before.regions, limit);
	set_table_ok(NULL, 0);
	expect_mapping_changes(&before, 0, limit, 0);
	free(v);
	ram_free(&ram);
}
END_TEST

START_TEST(remove_needs_the_exact_region)
{
	int fd = testutil_memfd(4 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	const struct mpdev_mem_region r = region(0x100000, 4 * PAGE, fd, 0, false);

	set_table_ok(&r, 1);
	check_refusal("nothing there", "remove", mpdev_mem_remove(rem.dev, 0x200000, PAGE), ENOENT,
		      "no region");
	check_refusal("not its start", "remove", mpdev_mem_remove(rem.dev, 0x101000, PAGE), ENOENT,
		      "no region");
	check_refusal("part of it", "remove", mpdev_mem_remove(rem.dev, 0x100000, PAGE), EINVAL,
		      "removed whole");
	check_refusal("more than it", "remove", mpdev_mem_remove(rem.dev, 0x100000, 8 * PAGE),
		      EINVAL, "removed whole");
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 1);
	remove_ok(0x100000, 4 * PAGE);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 0);
	check_refusal("already gone", "remove", mpdev_mem_remove(rem.dev, 0x100000, 4 * PAGE),
		      ENOENT, "no region");
	close(fd);
}
END_TEST

/* ---- E. truncation cannot hurt the remote ---- */

START_TEST(sealed_memory_cannot_be_truncated_after_hand_over)
{
	struct guest_ram ram = ram_new(4 * PAGE);
	const struct mpdev_mem_region r = region(0x100000, 4 * PAGE, ram.fd, 0, false);

	set_table_ok(&r, 1);
	errno = 0;
	ck_assert_int_eq(ftruncate(ram.fd, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_int_eq(ftruncate(ram.fd, PAGE), -1);
	ck_assert_int_eq(errno, EPERM);
	/* The seals cannot be lifted either: sealing is one-way. */
	ck_assert_int_eq(fcntl(ram.fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW),
			 F_SEAL_SHRINK | F_SEAL_GROW);
	expect_round_trip(0x100000, ram.p, 0x102000, ram.p + 2 * PAGE, PAGE);
	expect_round_trip(0x103000, ram.p + 3 * PAGE, 0x100000, ram.p, PAGE);
	ram_free(&ram);
}
END_TEST

START_TEST(unsealed_memfd_refused_at_hand_over)
{
	int fd = memfd_create("guest", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	struct mpdev_mem_region r;
	struct dma_counters before;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 4 * PAGE), 0);
	r = region(0x100000, 4 * PAGE, fd, 0, false);
	expect_refused("unsealed memfd", &r, EPERM, "F_SEAL_SHRINK");
	/* Truncating it now cannot matter: the remote never mapped it. */
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert(!dma_to_ram(0x100000, PAGE));
	expect_alive();
	before = dma_counters();
	ck_assert_uint_eq(before.regions, 0);
	ck_assert_uint_eq(before.mmaps, 0);
	ck_assert_uint_ge(before.faults, 1);
	close(fd);
}
END_TEST

/* ---- F. whole-table replacement and incremental updates ---- */

START_TEST(table_changes_map_only_the_difference)
{
	struct guest_ram a = ram_new(16 * PAGE), b = ram_new(16 * PAGE), c = ram_new(16 * PAGE),
			 d = ram_new(16 * PAGE), d2 = ram_new(16 * PAGE), e = ram_new(16 * PAGE);
	const struct mpdev_mem_region A = region(0x100000, 16 * PAGE, a.fd, 0, false);
	const struct mpdev_mem_region B = region(0x200000, 16 * PAGE, b.fd, 0, false);
	const struct mpdev_mem_region B_ro = region(0x200000, 16 * PAGE, b.fd, 0, true);
	const struct mpdev_mem_region C = region(0x300000, 16 * PAGE, c.fd, 0, false);
	const struct mpdev_mem_region D = region(0x400000, 16 * PAGE, d.fd, 0, false);
	/* D's range, offset and access, but another file. */
	const struct mpdev_mem_region D2 = region(0x400000, 16 * PAGE, d2.fd, 0, false);
	const struct mpdev_mem_region E = region(0x500000, 16 * PAGE, e.fd, 0, false);
	const struct mpdev_mem_region t1[] = { A, B, C }, t2[] = { A, B_ro, D },
				      t3[] = { D2, B_ro, A };
	static uint8_t snapshot[16 * PAGE];
	struct dma_counters before = dma_counters();

	ck_assert_uint_eq(before.mmaps, 0);
	set_table_ok(t1, 3);
	expect_mapping_changes(&before, 3, 0, 3);

	/* B -> B' (read-only now), C -> D: A stays mapped. */
	before = dma_counters();
	set_table_ok(t2, 3);
	expect_mapping_changes(&before, 2, 2, 3);
	expect_round_trip(0x100000, a.p, 0x400000, d.p, 4000);
	memcpy(snapshot, b.p, b.size);
	ck_assert(!dma_to_ram(0x200000, 4000));
	ck_assert_int_eq(memcmp(b.p, snapshot, b.size), 0);

	/* The same table again (in another order): nothing to do. */
	before = dma_counters();
	set_table_ok((const struct mpdev_mem_region[]){ D, A, B_ro }, 3);
	expect_mapping_changes(&before, 0, 0, 3);

	/* Same range, other file: remapped, and DMA lands in the new file. */
	before = dma_counters();
	set_table_ok(t3, 3);
	expect_mapping_changes(&before, 1, 1, 3);
	memset(d.p, 0, d.size);
	expect_round_trip(0x100000, a.p, 0x400000, d2.p, 4000);
	for (size_t i = 0; i < d.size; i++)
		ck_assert_uint_eq(d.p[i], 0);

	/* Incremental: one mapping each way. */
	before = dma_counters();
	add_ok(&E);
	expect_mapping_changes(&before, 1, 0, 4);
	expect_round_trip(0x500000, e.p, 0x100000, a.p, 4000);
	before = dma_counters();
	remove_ok(E.gpa, E.size);
	expect_mapping_changes(&before, 0, 1, 3);
	ck_assert(!dma_to_ram(0x500000, 4000));

	before = dma_counters();
	set_table_ok(NULL, 0);
	expect_mapping_changes(&before, 0, 3, 0);
	ram_free(&a);
	ram_free(&b);
	ram_free(&c);
	ram_free(&d);
	ram_free(&d2);
	ram_free(&e);
}
END_TEST

START_TEST(failed_table_change_leaves_the_old_table)
{
	struct guest_ram a = ram_new(16 * PAGE), b = ram_new(16 * PAGE), c = ram_new(16 * PAGE);
	/* A memfd that cannot be mapped writable (F_SEAL_WRITE): it passes every check but mmap. */
	int efd = testutil_eventfd(),
	    wsealed = testutil_memfd(16 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	const struct mpdev_mem_region old[] = { region(0x100000, 16 * PAGE, a.fd, 0, false),
						region(0x200000, 16 * PAGE, b.fd, 0, false) };
	const ino_t ino[] = { ino_of(a.fd), ino_of(b.fd) };
	/* Each changes A and brings C, then fails on its last region. */
	const struct mpdev_mem_region A_ro = region(0x100000, 16 * PAGE, a.fd, 0, true);
	const struct mpdev_mem_region C = region(0x300000, 16 * PAGE, c.fd, 0, false);
	const struct {
		const char *what;
		struct mpdev_mem_region last;
		int err;
		bool maps_first; /* gets as far as mapping A' and C */
	} bad[] = {
		{ "eventfd", region(0x400000, PAGE, efd, 0, false), EINVAL, false },
		{ "overlap", region(0x30f000, 2 * PAGE, c.fd, 0, false), EEXIST, false },
		{ "unmappable", region(0x400000, PAGE, wsealed, 0, false), EPERM, true },
	};

	set_table_ok(old, 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct mpdev_mem_region v[] = { A_ro, C, bad[i].last };
		struct dma_counters before = dma_counters(), after;

		check_refusal(bad[i].what, "set table", mpdev_mem_set_table(rem.dev, v, 3),
			      bad[i].err, NULL);
		after = dma_counters();
		ck_assert_uint_eq(after.regions, 2);
		ck_assert_msg(after.mmaps - before.mmaps == after.munmaps - before.munmaps,
			      "%s: %llu mmaps but %llu munmaps", bad[i].what,
			      (unsigned long long)(after.mmaps - before.mmaps),
			      (unsigned long long)(after.munmaps - before.munmaps));
		if (bad[i].maps_first)
			ck_assert_uint_eq(after.mmaps - before.mmaps, 2);
		expect_kept_table(old, ino, 2);
		/* A is still writable, B still there, C never arrived. */
		expect_round_trip(0x200000, b.p, 0x100000, a.p, 4000);
		expect_round_trip(0x100000, a.p, 0x200000, b.p, 4000);
		ck_assert(!dma_to_ram(0x300000, 16));
	}
	ram_free(&a);
	ram_free(&b);
	ram_free(&c);
	close(efd);
	close(wsealed);
}
END_TEST

/* ---- G. libmpdev keeps what the remote accepted ---- */

START_TEST(library_keeps_what_the_remote_accepted)
{
	int test_fds = testutil_count_fds(0), efd = testutil_eventfd();
	struct guest_ram a = ram_new(16 * PAGE), b = ram_new(16 * PAGE), c = ram_new(16 * PAGE);
	const struct mpdev_mem_region A = region(0x100000, 16 * PAGE, a.fd, 0, false),
				      B = region(0x200000, 8 * PAGE, b.fd, 8 * PAGE, true),
				      C = region(0x300000, 16 * PAGE, c.fd, 0, false);
	const struct mpdev_mem_region ab[] = { A, B }, abc[] = { A, B, C }, ac[] = { A, C };
	const struct mpdev_mem_region clash = region(0x108000, PAGE, c.fd, 0, false);
	const struct mpdev_mem_region bad = region(0x400000, PAGE, efd, 0, false);
	const ino_t ino_ab[] = { ino_of(a.fd), ino_of(b.fd) },
		    ino_abc[] = { ino_of(a.fd), ino_of(b.fd), ino_of(c.fd) },
		    ino_ac[] = { ino_of(a.fd), ino_of(c.fd) };
	struct mpdev_mem_region kept[4], again[4];
	size_t n;
	int b_kept = -1;

	set_table_ok(ab, 2);
	expect_kept_table(ab, ino_ab, 2);
	add_ok(&C);
	expect_kept_table(abc, ino_abc, 3);

	/* The library's fds are its own duplicates, close-on-exec. */
	n = mpdev_mem_get_table(rem.dev, kept, 4);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert(kept[i].fd != a.fd && kept[i].fd != b.fd && kept[i].fd != c.fd);
		ck_assert(fcntl(kept[i].fd, F_GETFD) & FD_CLOEXEC);
		if (kept[i].gpa == B.gpa)
			b_kept = kept[i].fd;
	}
	ck_assert_int_ge(b_kept, 0);

	/* Refused changes leave it exactly as it was, fds included. */
	ck_assert_int_eq(mpdev_mem_add(rem.dev, &clash), -EEXIST);
	ck_assert_int_eq(mpdev_mem_set_table(rem.dev, &bad, 1), -EINVAL);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, again, 4), 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(again[i].gpa, kept[i].gpa);
		ck_assert_int_eq(again[i].fd, kept[i].fd);
	}

	/* The caller's fds may go: the library's copies stay valid, the remote keeps working. */
	close(a.fd);
	close(b.fd);
	close(c.fd);
	a.fd = b.fd = c.fd = -1;
	expect_kept_table(abc, ino_abc, 3);
	expect_round_trip(0x300000, c.p, 0x100000, a.p, 4000);

	remove_ok(B.gpa, B.size);
	expect_kept_table(ac, ino_ac, 2);
	ck_assert_int_eq(fcntl(b_kept, F_GETFD), -1); /* its copy is closed */
	ck_assert_int_eq(errno, EBADF);

	/* Cleared, the library holds nothing more than before. */
	set_table_ok(NULL, 0);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, kept, 4), 0);
	ram_free(&a);
	ram_free(&b);
	ram_free(&c);
	close(efd);
	ck_assert_int_eq(testutil_count_fds(0), test_fds);
}
END_TEST

/* The kept table can be replayed: given back to set_table, the remote takes it as it is. */
static void expect_replayable(void)
{
	struct mpdev_mem_region kept[4];
	size_t n = mpdev_mem_get_table(rem.dev, kept, 4);

	ck_assert_uint_le(n, 4);
	for (size_t i = 0; i < n; i++)
		if (!kept[i].read_only)
			ck_assert_msg((fcntl(kept[i].fd, F_GETFL) & O_ACCMODE) == O_RDWR,
				      "the kept fd of writable region 0x%llx is not read-write",
				      (unsigned long long)kept[i].gpa);
	ck_assert_msg(mpdev_mem_set_table(rem.dev, kept, n) == 0, "replay: %s",
		      mpdev_last_error(rem.dev));
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), n);
}

START_TEST(kept_fds_keep_their_access_mode)
{
	struct guest_ram ram = ram_new(16 * PAGE);
	char proc[64];
	int rdonly;
	struct mpdev_mem_region ro, rw;

	/* One memfd handed over twice: read-only for one region, read-write for another. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", ram.fd);
	rdonly = open(proc, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(rdonly, 0);
	ro = region(0x100000, 8 * PAGE, rdonly, 0, true);
	rw = region(0x200000, 8 * PAGE, ram.fd, 8 * PAGE, false);

	add_ok(&ro);
	add_ok(&rw);
	expect_replayable();
	expect_round_trip(0x100000, ram.p, 0x200000, ram.p + 8 * PAGE, 4000);

	set_table_ok(NULL, 0);
	set_table_ok((const struct mpdev_mem_region[]){ ro, rw }, 2);
	expect_replayable();
	expect_round_trip(0x100000, ram.p, 0x200000, ram.p + 8 * PAGE, 4000);
	close(rdonly);
	ram_free(&ram);
}
END_TEST

START_TEST(table_beyond_one_packet_of_fds_goes_in_chunks)
{
	enum { N = MPDEV_MAX_FDS_PER_MSG + 36 }; /* 100 regions, 100 files: two chunks */
	int test_fds = testutil_count_fds(0);
	struct guest_ram ram[N];
	struct mpdev_mem_region v[N];
	static struct mpdev_mem_region got[N + 1];
	const uint64_t boundary = 0x100000 + (uint64_t)MPDEV_MAX_FDS_PER_MSG * PAGE;
	uint8_t want[4000];

	/* Adjacent one-page regions, each its own memfd. */
	for (size_t i = 0; i < N; i++) {
		ram[i] = ram_new(PAGE);
		fill(ram[i].p, PAGE);
		v[i] = region(0x100000 + i * PAGE, PAGE, ram[i].fd, 0, false);
	}
	set_table_ok(v, N);
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, got, N + 1), N);
	expect_alive();

	/* A DMA across the regions of the first and the second chunk. */
	memcpy(want, ram[MPDEV_MAX_FDS_PER_MSG - 1].p + PAGE - 2000, 2000);
	memcpy(want + 2000, ram[MPDEV_MAX_FDS_PER_MSG].p, 2000);
	memset(ram[N - 1].p, 0, PAGE);
	ck_assert(dma_to_device(boundary - 2000, 4000));
	ck_assert(dma_to_ram(0x100000 + (N - 1) * PAGE, 4000));
	ck_assert_int_eq(memcmp(ram[N - 1].p, want, 4000), 0);
	ck_assert_uint_eq(dma_counters().regions, N);

	for (size_t i = 0; i < N; i++)
		ram_free(&ram[i]);
	set_table_ok(NULL, 0);
	ck_assert_int_eq(testutil_count_fds(0), test_fds);
}
END_TEST

/* ---- H. a disconnect drops the table; a half-sent table does not leak ---- */

/* A listening remote, nobody connected: its idle fds are the baseline. */
static void start_listener(void)
{
	remote_start(&rem, &(struct remote_opts){ .listen = true, .greet = REMOTE_UNGREETED });
	remote_take_baseline(&rem);
}

START_TEST(disconnect_drops_the_table)
{
	struct guest_ram ram = ram_new(16 * PAGE);
	const struct mpdev_mem_region r = region(0x100000, 16 * PAGE, ram.fd, 0, false);
	static uint8_t snapshot[16 * PAGE];
	struct dma_counters before;

	start_listener();
	rem.dev = remote_connect(&rem, &opts);
	enable_bus_master();
	set_table_ok(&r, 1);
	expect_round_trip(0x100000, ram.p, 0x108000, ram.p + 8 * PAGE, 4000);
	ck_assert_uint_eq(dma_counters().regions, 1);
	mpdev_close(rem.dev);
	rem.dev = NULL;
	remote_expect_fds(&rem, rem.baseline_fds);
	remote_expect_rss_back(&rem, rem.baseline_rss_kb);

	/* The next proxy finds no table: the old address is not reachable. */
	rem.dev = remote_connect(&rem, &opts);
	enable_bus_master(); /* the disconnect reset the device */
	ck_assert_uint_eq(mpdev_mem_get_table(rem.dev, NULL, 0), 0);
	before = dma_counters();
	ck_assert_uint_eq(before.regions, 0);
	ck_assert_uint_eq(before.mmaps, before.munmaps);
	memcpy(snapshot, ram.p, ram.size);
	ck_assert(!dma_to_ram(0x100000, 4000));
	ck_assert_int_eq(memcmp(ram.p, snapshot, ram.size), 0);
	ck_assert_uint_eq(dma_counters().faults - before.faults, 1);
	mpdev_close(rem.dev);
	rem.dev = NULL;
	remote_expect_fds(&rem, rem.baseline_fds);
	remote_stop(&rem);
	ram_free(&ram);
}
END_TEST

/* Raw wire: requests as a misbehaving proxy would send them. */

/* The first chunk of a table (more = true), two regions on two memfds; the rest never comes. */
static void raw_half_table(int sock, uint64_t id, const int fds[2])
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;
	Mpdev__MemRegion r[2], *ptrs[2] = { &r[0], &r[1] };

	for (uint32_t i = 0; i < 2; i++) {
		mpdev__mem_region__init(&r[i]);
		r[i].gpa = 0x100000 + i * 0x100000;
		r[i].size = PAGE;
		r[i].fd_index = i;
	}
	set.n_regions = 2;
	set.regions = ptrs;
	set.more = true;
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
	env.mem_table_set = &set;
	native_call(sock, &env, id, fds, 2, 0, NULL);
}

static void raw_remove_refused_while_pending(int sock, uint64_t id)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__MemRegionRemove rm = MPDEV__MEM_REGION_REMOVE__INIT;

	rm.gpa = 0x100000;
	rm.size = PAGE;
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE;
	env.mem_region_remove = &rm;
	native_call(sock, &env, id, NULL, 0, EBUSY, "finish it first");
}

START_TEST(half_sent_table_ends_with_the_connection)
{
	int fds[2] = { testutil_memfd(PAGE, F_SEAL_SHRINK | F_SEAL_GROW),
		       testutil_memfd(PAGE, F_SEAL_SHRINK | F_SEAL_GROW) };

	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	raw_half_table(rem.sock, 2, fds);
	native_ping(rem.sock, 3);
	/* The remote holds the chunk's two fds until the table is complete... */
	remote_expect_fds(&rem, rem.baseline_fds + 2);
	raw_remove_refused_while_pending(rem.sock, 4);
	remote_expect_fds(&rem, rem.baseline_fds + 2);
	/* ...which it never is: the remote exits cleanly, not with fds on its hands. */
	remote_stop(&rem);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(half_sent_table_does_not_leak_in_a_listening_remote)
{
	int fds[2] = { testutil_memfd(PAGE, F_SEAL_SHRINK | F_SEAL_GROW),
		       testutil_memfd(PAGE, F_SEAL_SHRINK | F_SEAL_GROW) };
	struct guest_ram ram = ram_new(4 * PAGE);
	const struct mpdev_mem_region r = region(0x100000, 4 * PAGE, ram.fd, 0, false);
	int sock;

	start_listener();
	sock = remote_connect_raw(&rem);
	native_hello(sock, 1, MPDEV_PROTO_VERSION, ~0ull, 0);
	raw_half_table(sock, 2, fds);
	native_ping(sock, 3);
	remote_expect_fds(&rem, rem.baseline_fds + 1 + 2); /* connection + pending fds */
	close(sock);
	remote_expect_fds(&rem, rem.baseline_fds);

	/* The next proxy starts clean: nothing pending, so regions can be added. */
	rem.dev = remote_connect(&rem, &opts);
	enable_bus_master();
	add_ok(&r);
	expect_round_trip(0x100000, ram.p, 0x102000, ram.p + 2 * PAGE, PAGE);
	expect_remote_fds(rem.baseline_fds + 1);
	mpdev_close(rem.dev);
	rem.dev = NULL;
	remote_expect_fds(&rem, rem.baseline_fds);
	remote_stop(&rem);
	ram_free(&ram);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

static Suite *memory_suite(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("dma");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, dma_spanning_two_regions_round_trips);
	tcase_add_test(tc, dma_addresses_are_masked_to_28_bits);
	tcase_add_test(tc, dma_to_an_unmapped_address_writes_nothing);
	tcase_add_test(tc, dma_into_a_read_only_region_writes_nothing);
	tcase_add_test(tc, dma_running_past_a_region_writes_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_regions");
	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, badly_shaped_regions_refused);
	tcase_add_test(tc, overlapping_regions_refused);
	tcase_add_test(tc, descriptors_that_cannot_back_memory_refused);
	tcase_add_test(tc, table_limit_is_1024_regions);
	tcase_add_test(tc, remove_needs_the_exact_region);
	tcase_add_test(tc, sealed_memory_cannot_be_truncated_after_hand_over);
	tcase_add_test(tc, unsealed_memfd_refused_at_hand_over);
	suite_add_tcase(s, tc);

	tc = tcase_create("table_changes");
	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, table_changes_map_only_the_difference);
	tcase_add_test(tc, failed_table_change_leaves_the_old_table);
	tcase_add_test(tc, library_keeps_what_the_remote_accepted);
	tcase_add_test(tc, kept_fds_keep_their_access_mode);
	tcase_add_test(tc, table_beyond_one_packet_of_fds_goes_in_chunks);
	suite_add_tcase(s, tc);

	tc = tcase_create("connections");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, disconnect_drops_the_table);
	tcase_add_test(tc, half_sent_table_ends_with_the_connection);
	tcase_add_test(tc, half_sent_table_does_not_leak_in_a_listening_remote);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(memory_suite());
}
