/*
 * The device side of a split virtqueue (remote/emu/virtq.c) against rings a
 * hostile driver wrote: each input is one queue and the guest RAM it lives
 * in (docs/fuzzing.md, "fuzz_virtq"):
 *
 *   u8   flags      bits 0-3: log2 of the queue size; bit 4: event_idx;
 *                   bit 5: indirect descriptors negotiated
 *   u16  last_avail the device's avail and used index to start from
 *   u16  desc, avail, used   ring offsets into guest RAM (little-endian)
 *   u8   ram[]      guest RAM from its first byte; the rest stays zero
 *
 * Guest RAM is a memfd in the memory table as two adjacent regions: 60 KiB
 * writable, then 4 KiB read-only. The harness pops every chain the queue
 * gives (at most 2 * size), pushes each back and asks whether to notify.
 * Whatever the rings say, every iovec a popped chain holds must lie inside
 * the remote's own mapping of a region, and every device-writable one inside
 * a writable region: anything else is an access outside guest memory and
 * aborts the run.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host.h"
#include "virq.h"
#include "virtq.h"

#define TARGET	 "fuzz_virtq"
#define RAM_GPA	 UINT64_C(0x10000)
#define RAM_SIZE 0x10000u
#define RO_SIZE	 0x1000u
#define HDR_SIZE 9u

static struct {
	struct event_base *base;
	struct remote_host rh;
	uint8_t *mem; /* the harness's own (the driver's) view of guest RAM */
	struct virtq_chain chain;
} w;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Noreturn void die(const char *what)
{
	fprintf(stderr, TARGET ": %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mpdev_error err;
	struct dma_new_region rw = { .gpa = RAM_GPA, .size = RAM_SIZE - RO_SIZE };
	struct dma_new_region ro = { .gpa = RAM_GPA + RAM_SIZE - RO_SIZE,
				     .size = RO_SIZE,
				     .fd_offset = RAM_SIZE - RO_SIZE,
				     .read_only = true };
	int fd;

	(void)argc;
	(void)argv;
	w.base = event_base_new();
	if (!w.base || remote_host_init(&w.rh, w.base, &err) < 0)
		die("no remote host");
	fd = memfd_create("fuzz-virtq-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, RAM_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		die("no guest RAM memfd");
	w.mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w.mem == MAP_FAILED)
		die("cannot map guest RAM");
	rw.fd = ro.fd = fd;
	if (dma_table_add(&w.rh.dma, &rw, &err) < 0 || dma_table_add(&w.rh.dma, &ro, &err) < 0)
		die(err.msg);
	close(fd); /* the table's mappings keep the memory */
	return 0;
}

/* The invariant: a chain names only the remote's mappings, writable ones only where writable. */
static void check_chain(const struct virtq_chain *c)
{
	unsigned n = c->n_out + c->n_in;

	if (n > VIRTQ_MAX_IOV)
		die("more iovecs than VIRTQ_MAX_IOV");
	for (unsigned i = 0; i < n; i++) {
		const struct memtable_entry *e = NULL;
		uintptr_t b = (uintptr_t)c->iov[i].iov_base;
		size_t len = c->iov[i].iov_len;

		for (size_t k = 0; k < w.rh.dma.map.n; k++) {
			const struct memtable_entry *x = &w.rh.dma.map.v[k];
			uintptr_t h = (uintptr_t)x->host;

			if (b >= h && b - h <= x->size && len <= x->size - (b - h))
				e = x;
		}
		if (!e)
			die("an iovec outside guest memory");
		if (i >= c->n_out && e->read_only)
			die("a device-writable iovec in a read-only region");
	}
}

static uint16_t le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtq *q = &(struct virtq){ 0 };
	struct mpdev_error err;
	size_t ram_len;

	if (size < HDR_SIZE)
		return 0;
	ram_len = size - HDR_SIZE < RAM_SIZE ? size - HDR_SIZE : RAM_SIZE;
	memset(w.mem, 0, RAM_SIZE);
	memcpy(w.mem, data + HDR_SIZE, ram_len);

	virtq_init(q, &w.rh.ops);
	q->size = (uint16_t)(1u << (data[0] & 0x0f));
	q->event_idx = data[0] & 0x10;
	q->indirect = data[0] & 0x20;
	q->desc_gpa = RAM_GPA + le16_at(data + 3);
	q->avail_gpa = RAM_GPA + le16_at(data + 5);
	q->used_gpa = RAM_GPA + le16_at(data + 7);
	if (virtq_enable(q, &err) < 0)
		return 0;
	q->last_avail = q->used_idx = le16_at(data + 1);

	for (unsigned i = 0; i < 2u * q->size; i++) {
		int r = virtq_pop(q, &w.chain, &err);

		if (r <= 0)
			break; /* empty, or broken: the transport would stop the queue */
		check_chain(&w.chain);
		if (virtq_push(q, w.chain.head, (uint32_t)w.chain.in_len, &err) < 0)
			break;
		if (i % 4 == 3)
			(void)virtq_enable_notify(q);
	}
	(void)virtq_should_notify(q);
	return 0;
}
