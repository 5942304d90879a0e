/*
 * fuzz_virtq's seeds (the input format is fuzz_virtq.c's): queues a driver
 * would build, so that mutation starts from chains that get all the way
 * through virtq_pop — direct, indirect, across the two regions, with event
 * idx and with 16-bit indexes about to wrap.
 */
#include <string.h>

#include "seed_writer.h"
#include "virtq.h"

#define RAM_GPA UINT64_C(0x10000)
#define RAM_LEN 0x3000u /* what the seeds set; the rest of guest RAM stays zero */
#define DESC	0x0000u
#define AVAIL	0x0800u
#define USED	0x0a00u
#define IND	0x1000u
#define BUF	0x2000u

static uint8_t ram[RAM_LEN];

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void desc(uint32_t table, unsigned i, uint64_t gpa, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *d = ram + table + 16 * i;

	put32(d, (uint32_t)gpa);
	put32(d + 4, (uint32_t)(gpa >> 32));
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

/* Makes heads[0..n) available after last_avail, then writes the seed. */
static void finish(const char *name, unsigned log2_size, uint8_t flags, uint16_t last_avail,
		   const uint16_t *heads, unsigned n)
{
	uint8_t hdr[9];
	uint16_t size = (uint16_t)(1u << log2_size);

	for (unsigned i = 0; i < n; i++)
		put16(ram + AVAIL + 4 + 2 * ((last_avail + i) & (size - 1)), heads[i]);
	put16(ram + AVAIL + 2, (uint16_t)(last_avail + n));
	hdr[0] = (uint8_t)(log2_size | flags);
	put16(hdr + 1, last_avail);
	put16(hdr + 3, DESC);
	put16(hdr + 5, AVAIL);
	put16(hdr + 7, USED);
	seed_begin();
	seed_put(hdr, sizeof(hdr));
	seed_put(ram, sizeof(ram));
	seed_finish(name);
	memset(ram, 0, sizeof(ram));
}

#define EVENT_IDX 0x10
#define INDIRECT  0x20

void write_virtq(const char *root); /* fuzz_seeds.c calls it */

void write_virtq(const char *root)
{
	static const uint16_t h0[] = { 0 }, h03[] = { 0, 3 };

	seed_open_dir(root, "virtq");

	/* A block request's shape: header out, data in, status in. */
	desc(DESC, 0, RAM_GPA + BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, RAM_GPA + BUF + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	desc(DESC, 2, RAM_GPA + BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	desc(DESC, 3, RAM_GPA + BUF + 0x500, 64, 0, 0);
	finish("direct", 3, 0, 0, h03, 2);

	desc(DESC, 0, RAM_GPA + IND, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(IND, 0, RAM_GPA + BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(IND, 1, RAM_GPA + BUF + 0x100, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	desc(IND, 2, RAM_GPA + BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	finish("indirect", 4, INDIRECT | EVENT_IDX, 0, h0, 1);

	/* The last writable page and the read-only region after it, read by the device. */
	desc(DESC, 0, RAM_GPA + 0xe000, 0x2000, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, RAM_GPA + BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	finish("across-regions", 2, 0, 0, h0, 1);

	desc(DESC, 0, RAM_GPA + BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, RAM_GPA + BUF + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	desc(DESC, 3, RAM_GPA + BUF + 0x500, 32, VIRTQ_DESC_F_WRITE, 0);
	finish("wrapping", 3, EVENT_IDX, 0xfffe, h03, 2);
}
