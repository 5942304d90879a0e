/*
 * The device side of split virtqueues (remote/emu/virtq.c) over a real
 * memory table: a remote_host whose dma_table maps regions of a sealed
 * memfd, which the test maps too and writes the driver's side through. The
 * memfd's pages outside every region are canaries; a chain that breaks a
 * rule must leave the whole memfd (rings, buffers and canaries) unchanged.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host.h"
#include "testutil.h"
#include "virtq.h"

#define QSIZE	 8u
#define G	 UINT64_C(0x100000)
#define N_PAGES	 48u
#define N_REGION 3u

static uint64_t P;

/* Guest RAM: A [G, G+16P) rw, B [G+16P, G+20P) rw, hole, R [G+24P, G+26P) read-only. */
struct region {
	uint64_t gpa, size, off;
	bool ro;
};

static struct region regions[N_REGION];

struct fx {
	struct event_base *base;
	struct remote_host rh;
	struct virtq q;
	int fd;
	uint8_t *mem; /* the test's own mapping of the whole memfd */
	uint64_t desc, avail, used, ind, buf;
	uint16_t drv_avail; /* the driver's avail idx */
	uint8_t *saved;
};

static struct fx f;

/*
 * The queue's host: the remote_host's, with copying writes counted (a
 * refused chain must make none). dma_iov marks pages dirty for the device's
 * later writes; those are not writes.
 */
static struct backend_host spy;
static unsigned spy_writes;

static int spy_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			struct mpdev_error *err)
{
	return f.rh.ops.dma_read(&f.rh.ops, gpa, buf, len, err);
}

static int spy_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			 struct mpdev_error *err)
{
	spy_writes++;
	return f.rh.ops.dma_write(&f.rh.ops, gpa, buf, len, err);
}

static int spy_dma_iov(struct backend_host *h, uint64_t gpa, uint64_t len, bool write,
		       struct iovec *iov, unsigned max, unsigned *n, struct mpdev_error *err)
{
	return f.rh.ops.dma_iov(&f.rh.ops, gpa, len, write, iov, max, n, err);
}

static uint64_t A_END(void)
{
	return G + 16 * P;
}

static uint64_t HOLE(void)
{
	return G + 20 * P;
}

static uint64_t RO(void)
{
	return G + 24 * P;
}

/* The test's pointer to guest address gpa (inside a region, n bytes). */
static uint8_t *gp(uint64_t gpa, uint64_t n)
{
	for (unsigned i = 0; i < N_REGION; i++)
		if (gpa >= regions[i].gpa && gpa + n <= regions[i].gpa + regions[i].size)
			return f.mem + regions[i].off + (gpa - regions[i].gpa);
	ck_abort_msg("test bug: 0x%llx is not guest RAM", (unsigned long long)gpa);
	return NULL;
}

/* The remote's pointer to gpa: what an iovec must point at. */
static uint8_t *remote_ptr(uint64_t gpa)
{
	const struct memtable_entry *e = memtable_lookup(&f.rh.dma.map, gpa);

	ck_assert_ptr_nonnull(e);
	return (uint8_t *)e->host + (gpa - e->gpa);
}

static void put16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(gp(gpa, 2), &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, gp(gpa, 2), 2);
	return le16toh(v);
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, gp(gpa, 4), 4);
	return le32toh(v);
}

static void put_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *p = gp(table + 16u * i, 16);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), n = htole16(next);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &fl, 2);
	memcpy(p + 14, &n, 2);
}

/* The driver makes head available and publishes it. */
static void avail_add(uint16_t head)
{
	put16(f.avail + 4 + 2u * (f.drv_avail & (f.q.size - 1)), head);
	f.drv_avail++;
	put16(f.avail + 2, f.drv_avail);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void setup(void)
{
	struct mpdev_error err;

	P = (uint64_t)sysconf(_SC_PAGESIZE);
	regions[0] = (struct region){ G, 16 * P, 0, false };
	regions[1] = (struct region){ G + 16 * P, 4 * P, 32 * P, false };
	regions[2] = (struct region){ G + 24 * P, 2 * P, 40 * P, true };
	memset(&f, 0, sizeof(f));
	f.base = event_base_new();
	ck_assert_ptr_nonnull(f.base);
	ck_assert_int_eq(remote_host_init(&f.rh, f.base, &err), 0);
	f.fd = testutil_memfd(N_PAGES * P, F_SEAL_SHRINK | F_SEAL_GROW);
	f.mem = mmap(NULL, N_PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0);
	ck_assert_ptr_ne(f.mem, MAP_FAILED);
	/* Canaries everywhere, rings included: the driver writes what it means. */
	fill(f.mem, N_PAGES * P, 77);
	for (unsigned i = 0; i < N_REGION; i++) {
		struct dma_new_region r = { .gpa = regions[i].gpa,
					    .size = regions[i].size,
					    .fd_offset = regions[i].off,
					    .read_only = regions[i].ro,
					    .fd = f.fd };

		ck_assert_int_eq(dma_table_add(&f.rh.dma, &r, &err), 0);
	}
	f.desc = G;
	f.avail = G + P;
	f.used = G + 2 * P;
	f.ind = G + 3 * P;
	f.buf = G + 6 * P;
	memset(gp(f.desc, 16 * QSIZE), 0, 16 * QSIZE);
	memset(gp(f.avail, VIRTQ_AVAIL_BYTES(QSIZE)), 0, VIRTQ_AVAIL_BYTES(QSIZE));
	memset(gp(f.used, VIRTQ_USED_BYTES(QSIZE)), 0, VIRTQ_USED_BYTES(QSIZE));
	spy = f.rh.ops;
	spy.dma_read = spy_dma_read;
	spy.dma_write = spy_dma_write;
	spy.dma_iov = spy_dma_iov;
	spy_writes = 0;
	virtq_init(&f.q, &spy);
	f.q.desc_gpa = f.desc;
	f.q.avail_gpa = f.avail;
	f.q.used_gpa = f.used;
	f.q.size = QSIZE;
}

static void teardown(void)
{
	remote_host_destroy(&f.rh);
	event_base_free(f.base);
	munmap(f.mem, N_PAGES * P);
	close(f.fd);
	free(f.saved);
}

static void enable(void)
{
	struct mpdev_error err;

	mpdev_error_clear(&err);
	ck_assert_msg(virtq_enable(&f.q, &err) == 0, "enable: %s", err.msg);
	ck_assert(f.q.ready);
}

static int pop(struct virtq_chain *c)
{
	struct mpdev_error err;
	int r;

	mpdev_error_clear(&err);
	r = virtq_pop(&f.q, c, &err);
	ck_assert_msg(r >= 0, "pop: %d %s", r, err.msg);
	return r;
}

static void push(uint16_t head, uint32_t len)
{
	struct mpdev_error err;

	ck_assert_int_eq(virtq_push(&f.q, head, len, &err), 0);
}

static void check_used(uint16_t slot_idx, uint16_t head, uint32_t len)
{
	uint64_t e = f.used + 4 + 8u * (slot_idx & (f.q.size - 1));

	ck_assert_uint_eq(get32(e), head);
	ck_assert_uint_eq(get32(e + 4), len);
}

static void check_iov(const struct iovec *v, uint64_t gpa, size_t len)
{
	ck_assert_ptr_eq(v->iov_base, remote_ptr(gpa));
	ck_assert_uint_eq(v->iov_len, len);
	/* The remote's mapping shows the bytes the test put there (same memory). */
	ck_assert_mem_eq(v->iov_base, gp(gpa, len), len);
}

/* ---- good chains ---- */

START_TEST(simple_chain)
{
	struct virtq_chain c;

	enable();
	ck_assert_int_eq(pop(&c), 0);
	put_desc(f.desc, 3, f.buf, 512, 0, 0);
	avail_add(3);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.head, 3);
	ck_assert_uint_eq(c.n_out, 1);
	ck_assert_uint_eq(c.n_in, 0);
	ck_assert_uint_eq(c.out_len, 512);
	ck_assert_uint_eq(c.in_len, 0);
	check_iov(&c.iov[0], f.buf, 512);
	ck_assert_uint_eq(f.q.last_avail, 1);
	ck_assert_int_eq(pop(&c), 0);

	ck_assert_uint_eq(get16(f.used + 2), 0);
	push(3, 0);
	ck_assert_uint_eq(get16(f.used + 2), 1);
	check_used(0, 3, 0);
	ck_assert_uint_eq(f.q.used_idx, 1);
}
END_TEST

START_TEST(multi_desc_chain)
{
	struct virtq_chain c;
	const uint64_t hdr = f.buf, data = f.buf + 64, status = f.buf + 3 * P;

	enable();
	/* Out of order in the table: 5 -> 2 -> 7 -> 0, with a zero-length one. */
	put_desc(f.desc, 5, hdr, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.desc, 2, data, 2 * P, VIRTQ_DESC_F_NEXT, 7);
	put_desc(f.desc, 7, status + 8, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	put_desc(f.desc, 0, status, 1, VIRTQ_DESC_F_WRITE, 0);
	avail_add(5);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.head, 5);
	ck_assert_uint_eq(c.n_out, 2);
	ck_assert_uint_eq(c.n_in, 1);
	ck_assert_uint_eq(c.out_len, 16 + 2 * P);
	ck_assert_uint_eq(c.in_len, 1);
	check_iov(&c.iov[0], hdr, 16);
	check_iov(&c.iov[1], data, 2 * P);
	check_iov(&c.iov[2], status, 1);
	/* Zero copy: what the device writes through the iovec is in guest RAM. */
	*(uint8_t *)c.iov[2].iov_base = 0x42;
	ck_assert_uint_eq(*gp(status, 1), 0x42);
	push(5, 1);
	check_used(0, 5, 1);
	ck_assert_uint_eq(get16(f.used + 2), 1);
}
END_TEST

START_TEST(chain_as_long_as_the_queue)
{
	struct virtq_chain c;

	enable();
	for (unsigned i = 0; i < QSIZE; i++)
		put_desc(f.desc, i, f.buf + 16u * i, 16,
			 i + 1 < QSIZE ? VIRTQ_DESC_F_NEXT : VIRTQ_DESC_F_WRITE, (uint16_t)(i + 1));
	/* The last is writable, the others readable: legal order. */
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.n_out, QSIZE - 1);
	ck_assert_uint_eq(c.n_in, 1);
	for (unsigned i = 0; i < QSIZE; i++)
		check_iov(&c.iov[i], f.buf + 16u * i, 16);
}
END_TEST

START_TEST(indirect_chain)
{
	struct virtq_chain c;

	f.q.indirect = true;
	enable();
	put_desc(f.ind, 0, f.buf, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.ind, 2, f.buf + P, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(f.ind, 1, f.buf + 3 * P, 1, VIRTQ_DESC_F_WRITE, 0);
	/* The write flag of the descriptor naming the table is ignored (spec 2.7.5.3.2). */
	put_desc(f.desc, 6, f.ind, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	avail_add(6);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.head, 6);
	ck_assert_uint_eq(c.n_out, 1);
	ck_assert_uint_eq(c.n_in, 2);
	ck_assert_uint_eq(c.out_len, 16);
	ck_assert_uint_eq(c.in_len, 4097);
	check_iov(&c.iov[0], f.buf, 16);
	check_iov(&c.iov[1], f.buf + P, 4096);
	check_iov(&c.iov[2], f.buf + 3 * P, 1);

	/* An indirect descriptor may end a direct chain too. */
	put_desc(f.desc, 1, f.buf + 100, 8, VIRTQ_DESC_F_NEXT, 4);
	put_desc(f.desc, 4, f.ind, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(f.ind, 0, f.buf + 200, 8, VIRTQ_DESC_F_WRITE, 0);
	avail_add(1);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.head, 1);
	ck_assert_uint_eq(c.n_out, 1);
	ck_assert_uint_eq(c.n_in, 1);
	check_iov(&c.iov[0], f.buf + 100, 8);
	check_iov(&c.iov[1], f.buf + 200, 8);
}
END_TEST

START_TEST(chain_spanning_two_regions)
{
	struct virtq_chain c;
	const uint64_t start = A_END() - 100;

	enable();
	put_desc(f.desc, 0, start, 300, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.n_out, 0);
	ck_assert_uint_eq(c.n_in, 2);
	ck_assert_uint_eq(c.in_len, 300);
	check_iov(&c.iov[0], start, 100);
	check_iov(&c.iov[1], A_END(), 200);
	/* Not one piece in the remote's address space: two mappings. */
	ck_assert_ptr_ne((uint8_t *)c.iov[0].iov_base + 100, c.iov[1].iov_base);
}
END_TEST

START_TEST(readable_buffer_in_read_only_region)
{
	struct virtq_chain c;

	enable();
	put_desc(f.desc, 0, RO(), 2 * P, 0, 0);
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.n_out, 1);
	check_iov(&c.iov[0], RO(), 2 * P);
}
END_TEST

START_TEST(event_idx_suppression)
{
	struct virtq_chain c;
	const uint64_t used_event = f.avail + 4 + 2 * QSIZE;
	const uint64_t avail_event = f.used + 4 + 8 * QSIZE;

	f.q.event_idx = true;
	enable();
	for (unsigned i = 0; i < 4; i++)
		put_desc(f.desc, i, f.buf + 64u * i, 64, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned i = 0; i < 4; i++)
		avail_add((uint16_t)i);

	/* Nothing new: the driver is told to notify at the next buffer (avail_event). */
	put16(avail_event, 0xdead);
	ck_assert(virtq_enable_notify(&f.q)); /* four are there */
	ck_assert_uint_eq(get16(avail_event), 0);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(pop(&c), 1);
	ck_assert_int_eq(pop(&c), 0);
	ck_assert(!virtq_enable_notify(&f.q));
	ck_assert_uint_eq(get16(avail_event), 4);

	/* The first time always interrupts. */
	put16(used_event, 100);
	push(0, 64);
	ck_assert(virtq_should_notify(&f.q));
	ck_assert_uint_eq(f.q.signalled_used, 1);
	/* used_event 100: the driver does not want one yet. */
	push(1, 64);
	ck_assert(!virtq_should_notify(&f.q));
	ck_assert_uint_eq(f.q.signalled_used, 2);
	/* used_event 2: once used idx passes 2, i.e. the entry at 2 is written. */
	put16(used_event, 2);
	push(2, 64);
	ck_assert(virtq_should_notify(&f.q));
	/* Already passed: no second interrupt for the same event. */
	push(3, 64);
	ck_assert(!virtq_should_notify(&f.q));
	/* A batch that crosses the event interrupts once. */
	for (unsigned i = 0; i < 4; i++) {
		put_desc(f.desc, i, f.buf + 64u * i, 64, VIRTQ_DESC_F_WRITE, 0);
		avail_add((uint16_t)i);
	}
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(pop(&c), 1);
	put16(used_event, 5);
	for (unsigned i = 0; i < 4; i++)
		push((uint16_t)i, 1);
	ck_assert(virtq_should_notify(&f.q));
	ck_assert(!virtq_should_notify(&f.q));
	ck_assert_uint_eq(get16(f.used + 2), 8);

	/* The flag does not count with event idx. */
	put16(f.avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
	put16(used_event, 8);
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	push(0, 1);
	ck_assert(virtq_should_notify(&f.q));

	/* A buffer arriving after avail_event was written: enable_notify sees it. */
	ck_assert(!virtq_enable_notify(&f.q));
	ck_assert_uint_eq(get16(avail_event), 9);
	avail_add(1);
	ck_assert(virtq_enable_notify(&f.q));
}
END_TEST

START_TEST(no_interrupt_flag)
{
	struct virtq_chain c;

	enable();
	put_desc(f.desc, 0, f.buf, 64, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	push(0, 64);
	ck_assert(virtq_should_notify(&f.q));
	put16(f.avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
	ck_assert(!virtq_should_notify(&f.q));
	put16(f.avail, 0);
	ck_assert(virtq_should_notify(&f.q));
	/* Without event idx, avail_event is not the device's to write. */
	put16(f.used + 4 + 8 * QSIZE, 0xbeef);
	ck_assert(!virtq_enable_notify(&f.q));
	ck_assert_uint_eq(get16(f.used + 4 + 8 * QSIZE), 0xbeef);
	avail_add(0);
	ck_assert(virtq_enable_notify(&f.q));
}
END_TEST

START_TEST(indexes_wrap_around)
{
	struct virtq_chain c;
	const uint16_t start = 65530;

	f.q.event_idx = true;
	enable();
	f.q.last_avail = f.q.used_idx = start;
	f.drv_avail = start;
	put16(f.avail + 2, start);
	put16(f.used + 2, start);
	for (unsigned i = 0; i < QSIZE; i++)
		put_desc(f.desc, i, f.buf + 32u * i, 32, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned round = 0; round < 3; round++) {
		uint16_t first = f.drv_avail;

		for (unsigned i = 0; i < 5; i++)
			avail_add((uint16_t)((first + i) % QSIZE));
		for (unsigned i = 0; i < 5; i++) {
			ck_assert_int_eq(pop(&c), 1);
			ck_assert_uint_eq(c.head, (uint16_t)(first + i) % QSIZE);
			check_iov(&c.iov[0], f.buf + 32u * c.head, 32);
		}
		ck_assert_int_eq(pop(&c), 0);
		for (unsigned i = 0; i < 5; i++) {
			push((uint16_t)((first + i) % QSIZE), 10 + i);
			check_used((uint16_t)(first + i), (uint16_t)((first + i) % QSIZE), 10 + i);
		}
		ck_assert_uint_eq(get16(f.used + 2), (uint16_t)(first + 5));
	}
	ck_assert_uint_eq(f.q.last_avail, (uint16_t)(start + 15));
	ck_assert_uint_eq(f.q.used_idx, 9);
	/* used_event across the wrap: 65534 was passed on the way to 9. */
	put16(f.avail + 4 + 2 * QSIZE, 65534);
	f.q.signalled_used = 65533;
	f.q.signalled_valid = true;
	ck_assert(virtq_should_notify(&f.q));
	/* A full ring (avail idx size ahead, across the wrap) is fine. */
	for (unsigned i = 0; i < QSIZE; i++)
		avail_add((uint16_t)i);
	for (unsigned i = 0; i < QSIZE; i++)
		ck_assert_int_eq(pop(&c), 1);
}
END_TEST

START_TEST(reset_and_push_errors)
{
	struct mpdev_error err;
	struct virtq_chain c;

	ck_assert_int_eq(virtq_pop(&f.q, &c, &err), -EINVAL);
	ck_assert_int_eq(virtq_push(&f.q, 0, 0, &err), -EINVAL);
	ck_assert(!virtq_should_notify(&f.q));
	enable();
	ck_assert_int_eq(virtq_push(&f.q, QSIZE, 0, &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_uint_eq(get16(f.used + 2), 0);
	f.q.last_avail = 3;
	virtq_reset(&f.q);
	ck_assert(!f.q.ready);
	ck_assert_uint_eq(f.q.last_avail, 0);
	ck_assert_uint_eq(f.q.size, 0);
	ck_assert_ptr_eq(f.q.host, &spy);
	/* Guest RAM that went after enable: the next pop says so, and takes nothing. */
	f.q.desc_gpa = f.desc;
	f.q.avail_gpa = f.avail;
	f.q.used_gpa = f.used;
	f.q.size = QSIZE;
	enable();
	ck_assert_int_eq(dma_table_remove(&f.rh.dma, regions[1].gpa, regions[1].size, &err), 0);
	put_desc(f.desc, 0, A_END() - 8, 16, 0, 0);
	avail_add(0);
	ck_assert_int_eq(virtq_pop(&f.q, &c, &err), -EFAULT);
	ck_assert_uint_eq(f.q.last_avail, 0);
	put_desc(f.desc, 0, A_END() - 8, 8, 0, 0);
	ck_assert_int_eq(pop(&c), 1);
	check_iov(&c.iov[0], A_END() - 8, 8);
	/* The rings themselves gone: -EFAULT from pop and push. */
	ck_assert_int_eq(dma_table_remove(&f.rh.dma, regions[0].gpa, regions[0].size, &err), 0);
	ck_assert_int_eq(virtq_pop(&f.q, &c, &err), -EFAULT);
	ck_assert_int_eq(virtq_push(&f.q, 0, 8, &err), -EFAULT);
	ck_assert_uint_eq(f.q.used_idx, 0);
	/* Notification checks that cannot read the ring err on the side of waking up. */
	ck_assert(virtq_should_notify(&f.q));
	ck_assert(virtq_enable_notify(&f.q));
}
END_TEST

/* ---- the bad-input table ---- */

enum stage { AT_ENABLE, AT_POP };

struct bad_case {
	const char *name;
	enum stage stage;
	int err; /* the errno expected */
	bool indirect;
	void (*prepare)(void);
};

static void head_too_big(void)
{
	avail_add(QSIZE);
}

static void next_too_big(void)
{
	put_desc(f.desc, 0, f.buf, 8, VIRTQ_DESC_F_NEXT, QSIZE + 1);
	avail_add(0);
}

static void loop(void)
{
	put_desc(f.desc, 0, f.buf, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.desc, 1, f.buf, 8, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.desc, 2, f.buf, 8, VIRTQ_DESC_F_NEXT, 0);
	avail_add(1);
}

static void self_loop(void)
{
	put_desc(f.desc, 4, f.buf, 0, VIRTQ_DESC_F_NEXT, 4);
	avail_add(4);
}

static void indirect_desc(uint32_t len, uint16_t flags)
{
	put_desc(f.desc, 0, f.ind, len, VIRTQ_DESC_F_INDIRECT | flags, 0);
	avail_add(0);
}

static void good_indirect(void)
{
	put_desc(f.ind, 0, f.buf, 8, 0, 0);
	indirect_desc(16, 0);
}

static void nested_indirect(void)
{
	put_desc(f.ind, 0, f.buf, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.ind, 1, f.ind + 64, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(f.ind, 4, f.buf, 8, 0, 0);
	indirect_desc(32, 0);
}

static void indirect_and_next(void)
{
	put_desc(f.ind, 0, f.buf, 8, 0, 0);
	put_desc(f.desc, 1, f.buf, 8, 0, 0);
	put_desc(f.desc, 0, f.ind, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	avail_add(0);
}

static void indirect_len_0(void)
{
	indirect_desc(0, 0);
}

static void indirect_len_24(void)
{
	put_desc(f.ind, 0, f.buf, 8, 0, 0);
	indirect_desc(24, 0);
}

static void indirect_huge(void)
{
	indirect_desc(16u * (VIRTQ_MAX_SIZE + 1), 0);
}

static void indirect_in_hole(void)
{
	put_desc(f.desc, 0, HOLE(), 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
}

static void indirect_straddles_hole(void)
{
	put_desc(f.desc, 0, HOLE() - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(HOLE() - 16, 0, f.buf, 8, 0, 0);
	avail_add(0);
}

static void indirect_next_too_big(void)
{
	put_desc(f.ind, 0, f.buf, 8, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.ind, 2, f.buf, 8, 0, 0); /* beyond the table's two entries */
	indirect_desc(32, 0);
}

static void indirect_loop(void)
{
	put_desc(f.ind, 0, f.buf, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.ind, 1, f.buf, 8, VIRTQ_DESC_F_NEXT, 0);
	indirect_desc(32, 0);
}

static void one_buffer(uint64_t addr, uint32_t len, uint16_t flags)
{
	put_desc(f.desc, 0, addr, len, flags, 0);
	avail_add(0);
}

static void buffer_in_hole(void)
{
	one_buffer(HOLE() + 8, 8, 0);
}

static void buffer_below_memory(void)
{
	one_buffer(G - 8, 8, VIRTQ_DESC_F_WRITE);
}

static void buffer_straddles_end(void)
{
	one_buffer(HOLE() - 10, 20, VIRTQ_DESC_F_WRITE);
}

static void buffer_wraps(void)
{
	one_buffer(UINT64_MAX - 7, 16, 0);
}

static void writable_in_read_only(void)
{
	one_buffer(RO() + 8, 8, VIRTQ_DESC_F_WRITE);
}

static void second_writable_read_only(void)
{
	put_desc(f.desc, 0, f.buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(f.desc, 1, RO() + 2 * P - 8, 8, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
}

static void readable_after_writable(void)
{
	put_desc(f.desc, 0, f.buf, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.desc, 1, f.buf + 8, 8, 0, 0);
	avail_add(0);
}

static void readable_after_writable_indirect(void)
{
	put_desc(f.ind, 0, f.buf, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.ind, 1, f.buf + 8, 0, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.ind, 2, f.buf + 16, 8, VIRTQ_DESC_F_WRITE, 0);
	indirect_desc(48, 0);
}

/* n entries of one byte each in an indirect table (at most 2 pages + 16 bytes). */
static void indirect_of(unsigned n, uint64_t first)
{
	for (unsigned i = 0; i < n; i++)
		put_desc(f.ind, i, i ? f.buf + i : first, i ? 1 : 2,
			 i + 1 < n ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	indirect_desc(16u * n, 0);
}

static void too_many_buffers(void)
{
	indirect_of(VIRTQ_MAX_IOV + 1, f.buf);
}

static void too_many_iovecs(void)
{
	/* VIRTQ_MAX_IOV buffers, the first spanning two regions: one iovec too many. */
	indirect_of(VIRTQ_MAX_IOV, A_END() - 1);
}

static void avail_jump(void)
{
	f.drv_avail = QSIZE + 1;
	put16(f.avail + 2, f.drv_avail);
}

static void avail_behind(void)
{
	f.drv_avail = (uint16_t)-1;
	put16(f.avail + 2, f.drv_avail);
}

static void length_overflow(void)
{
	put_desc(f.desc, 0, f.buf, UINT32_MAX, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.desc, 1, f.buf, 2, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
}

static void length_overflow_mixed(void)
{
	put_desc(f.desc, 0, f.buf, 0x80000000u, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.desc, 1, f.buf, 0x80000000u, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.desc, 2, f.buf, 1, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
}

static void length_4g(void)
{
	put_desc(f.desc, 0, f.buf, UINT32_MAX, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f.desc, 1, f.buf, 1, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
}

static void desc_in_hole(void)
{
	f.q.desc_gpa = HOLE();
}

static void desc_straddles(void)
{
	f.q.desc_gpa = HOLE() - 64; /* 128 bytes needed */
}

static void desc_misaligned(void)
{
	f.q.desc_gpa = f.desc + 8;
}

static void avail_straddles(void)
{
	/* 6 + 2 * 8 = 22 bytes: used_event (the last two) falls in the hole. */
	f.q.avail_gpa = HOLE() - 20;
}

static void avail_misaligned(void)
{
	f.q.avail_gpa = f.avail + 1;
}

static void used_read_only(void)
{
	f.q.used_gpa = RO();
}

static void used_straddles(void)
{
	/* 6 + 8 * 8 = 70 bytes: avail_event falls in the hole. */
	f.q.used_gpa = HOLE() - 68;
}

static void used_misaligned(void)
{
	f.q.used_gpa = f.used + 2;
}

static void ring_wraps(void)
{
	f.q.used_gpa = UINT64_MAX - 31;
}

static void size_6(void)
{
	f.q.size = 6;
}

static void size_0(void)
{
	f.q.size = 0;
}

static void size_too_big(void)
{
	/* 2^15 is the largest power of 2 a uint16_t holds; above it nothing is a power of 2. */
	f.q.size = 40000;
}

static const struct bad_case bad[] = {
	{ "head >= size", AT_POP, EINVAL, false, head_too_big },
	{ "next >= size", AT_POP, EINVAL, false, next_too_big },
	{ "loop of three", AT_POP, EINVAL, false, loop },
	{ "descriptor naming itself", AT_POP, EINVAL, false, self_loop },
	{ "indirect not negotiated", AT_POP, EINVAL, false, good_indirect },
	{ "nested indirect", AT_POP, EINVAL, true, nested_indirect },
	{ "INDIRECT | NEXT", AT_POP, EINVAL, true, indirect_and_next },
	{ "indirect len 0", AT_POP, EINVAL, true, indirect_len_0 },
	{ "indirect len 24", AT_POP, EINVAL, true, indirect_len_24 },
	{ "indirect over the entry bound", AT_POP, EINVAL, true, indirect_huge },
	{ "indirect table not in memory", AT_POP, EFAULT, true, indirect_in_hole },
	{ "indirect table straddling a hole", AT_POP, EFAULT, true, indirect_straddles_hole },
	{ "indirect next >= entries", AT_POP, EINVAL, true, indirect_next_too_big },
	{ "indirect loop", AT_POP, EINVAL, true, indirect_loop },
	{ "buffer not in memory", AT_POP, EFAULT, false, buffer_in_hole },
	{ "buffer below memory", AT_POP, EFAULT, false, buffer_below_memory },
	{ "buffer straddling the end of a region", AT_POP, EFAULT, false, buffer_straddles_end },
	{ "buffer wrapping the address space", AT_POP, EFAULT, false, buffer_wraps },
	{ "writable buffer in a read-only region", AT_POP, EACCES, false, writable_in_read_only },
	{ "second writable buffer read-only", AT_POP, EACCES, false, second_writable_read_only },
	{ "readable after writable", AT_POP, EINVAL, false, readable_after_writable },
	{ "readable (empty) after writable, indirect", AT_POP, EINVAL, true,
	  readable_after_writable_indirect },
	{ "more buffers than VIRTQ_MAX_IOV", AT_POP, E2BIG, true, too_many_buffers },
	{ "more iovecs than VIRTQ_MAX_IOV", AT_POP, E2BIG, true, too_many_iovecs },
	{ "avail idx size + 1 ahead", AT_POP, EINVAL, false, avail_jump },
	{ "avail idx behind", AT_POP, EINVAL, false, avail_behind },
	{ "lengths over 4 GiB", AT_POP, EINVAL, false, length_overflow },
	{ "exactly 4 GiB passes the length check, not memory", AT_POP, EFAULT, false, length_4g },
	{ "readable + writable over 4 GiB", AT_POP, EINVAL, false, length_overflow_mixed },
	{ "descriptor table not in memory", AT_ENABLE, EFAULT, false, desc_in_hole },
	{ "descriptor table straddling a hole", AT_ENABLE, EFAULT, false, desc_straddles },
	{ "descriptor table misaligned", AT_ENABLE, EINVAL, false, desc_misaligned },
	{ "avail ring's used_event in a hole", AT_ENABLE, EFAULT, false, avail_straddles },
	{ "avail ring misaligned", AT_ENABLE, EINVAL, false, avail_misaligned },
	{ "used ring read-only", AT_ENABLE, EACCES, false, used_read_only },
	{ "used ring's avail_event in a hole", AT_ENABLE, EFAULT, false, used_straddles },
	{ "used ring misaligned", AT_ENABLE, EINVAL, false, used_misaligned },
	{ "used ring wrapping the address space", AT_ENABLE, EFAULT, false, ring_wraps },
	{ "size not a power of 2", AT_ENABLE, EINVAL, false, size_6 },
	{ "size 0", AT_ENABLE, EINVAL, false, size_0 },
	{ "size above VIRTQ_MAX_SIZE", AT_ENABLE, EINVAL, false, size_too_big },
};

#define N_BAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(bad_input)
{
	const struct bad_case *b = &bad[_i];
	struct mpdev_error err;
	struct virtq_chain c;
	unsigned written;
	int r;

	f.q.indirect = b->indirect;
	f.q.event_idx = true;
	if (b->stage == AT_POP)
		enable();
	b->prepare();
	f.saved = malloc(N_PAGES * P);
	ck_assert_ptr_nonnull(f.saved);
	memcpy(f.saved, f.mem, N_PAGES * P);
	written = spy_writes;
	mpdev_error_clear(&err);
	if (b->stage == AT_ENABLE) {
		r = virtq_enable(&f.q, &err);
		ck_assert(!f.q.ready);
	} else {
		r = virtq_pop(&f.q, &c, &err);
		ck_assert_uint_eq(f.q.last_avail, 0);
	}
	ck_assert_msg(r == -b->err, "%s: got %d (%s), want %d", b->name, r, err.msg, -b->err);
	ck_assert_int_eq(err.code, b->err);
	ck_assert_msg(err.msg[0], "%s: no message", b->name);
	/* Nothing written anywhere: rings, buffers, the canaries between regions. */
	ck_assert_msg(memcmp(f.saved, f.mem, N_PAGES * P) == 0, "%s: guest memory changed",
		      b->name);
	ck_assert_uint_eq(spy_writes, written);
	ck_assert_uint_eq(f.q.used_idx, 0);
	ck_assert_uint_eq(get16(f.used + 2), 0);
	/* Still refused the second time, with nothing taken. */
	if (b->stage == AT_POP)
		ck_assert_int_eq(virtq_pop(&f.q, &c, &err), -b->err);
}
END_TEST

/* The same rows' neighbours that are legal: the checks are not over-strict. */
START_TEST(limits_that_are_legal)
{
	struct virtq_chain c;

	f.q.indirect = true;
	enable();
	/* Exactly VIRTQ_MAX_IOV buffers, each one iovec. */
	indirect_of(VIRTQ_MAX_IOV, f.buf);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.n_out, VIRTQ_MAX_IOV);
	ck_assert_uint_eq(c.out_len, VIRTQ_MAX_IOV + 1);
	/* Two adjacent buffers stay two iovecs (one per descriptor). */
	put_desc(f.desc, 1, G, 8 * P, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f.desc, 2, G + 8 * P, 8 * P, 0, 0);
	avail_add(1);
	ck_assert_int_eq(pop(&c), 1);
	ck_assert_uint_eq(c.n_out, 2);
	check_iov(&c.iov[0], G, 8 * P);
	check_iov(&c.iov[1], G + 8 * P, 8 * P);
	/* avail idx exactly size ahead. */
	for (unsigned i = 0; i < QSIZE; i++) {
		put_desc(f.desc, i, f.buf, 1, 0, 0);
		avail_add((uint16_t)i);
	}
	for (unsigned i = 0; i < QSIZE; i++)
		ck_assert_int_eq(pop(&c), 1);
	ck_assert_int_eq(pop(&c), 0);
	/* A buffer ending at the very end of a region. */
	put_desc(f.desc, 0, HOLE() - 16, 16, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	ck_assert_int_eq(pop(&c), 1);
	check_iov(&c.iov[0], HOLE() - 16, 16);
}
END_TEST

START_TEST(queue_sizes_at_enable)
{
	struct mpdev_error err;

	/* 32768 is a legal size: refused only because region A cannot hold its 512 KiB table. */
	f.q.size = VIRTQ_MAX_SIZE;
	ck_assert_int_eq(virtq_enable(&f.q, &err), -EFAULT);
	f.q.size = 512;
	f.q.desc_gpa = G + 4 * P;
	f.q.avail_gpa = G + 6 * P;
	f.q.used_gpa = G + 7 * P;
	enable();
	f.q.size = 1;
	f.q.desc_gpa = f.desc;
	f.q.avail_gpa = f.avail;
	f.q.used_gpa = f.used;
	enable();
}
END_TEST

static Suite *virtq_suite(void)
{
	Suite *s = suite_create("virtq");
	TCase *tc = tcase_create("chains");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, simple_chain);
	tcase_add_test(tc, multi_desc_chain);
	tcase_add_test(tc, chain_as_long_as_the_queue);
	tcase_add_test(tc, indirect_chain);
	tcase_add_test(tc, chain_spanning_two_regions);
	tcase_add_test(tc, readable_buffer_in_read_only_region);
	tcase_add_test(tc, indexes_wrap_around);
	tcase_add_test(tc, reset_and_push_errors);
	tcase_add_test(tc, queue_sizes_at_enable);
	suite_add_tcase(s, tc);

	tc = tcase_create("notify");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, event_idx_suppression);
	tcase_add_test(tc, no_interrupt_flag);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, bad_input, 0, N_BAD);
	tcase_add_test(tc, limits_that_are_legal);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(virtq_suite());
}
