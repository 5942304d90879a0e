/*
 * Writes the fuzz targets' seed inputs (tests/fuzz/corpus/<target>/seed-*):
 * the cases of the bad-input tables (tests/integration/test_bad_input.c,
 * tests/unit/test_mpqemu.c) and whole sessions that get past the handshake
 * into memory tables, interrupts and edu's DMA, in the record format of
 * fuzz_input.h. The committed seeds are this program's output; the ctest
 * fuzz_seeds_current checks that they still are.
 *
 *   fuzz_seeds OUTDIR   writes OUTDIR/native, OUTDIR/mpqemu, OUTDIR/client, OUTDIR/edu_mig,
 *                       OUTDIR/vfio_user (fuzz_seeds_vfio_user.c), OUTDIR/virtq
 *                       (fuzz_seeds_virtq.c)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "backend.h"
#include "edu.h"
#include "fuzz_input.h"
#include "fixed_access.h"
#include "seed_writer.h"
#include "mpqemu_raw.h"
#include "wire.h"

#define EVENTFD	      FUZZ_KIND(FUZZ_FD_EVENTFD, 0)
#define MEMFD(pages)  FUZZ_KIND(FUZZ_FD_MEMFD_SEALED, (pages)-1)
#define POSTED_BIT    (1ull << 63)
#define CONFIG_REGION 7

/* An envelope declaring `declared` descriptors, with the kinds it carries. */
static void envelope(uint8_t flags, const uint8_t *kinds, size_t nk, Mpdev__Envelope *env,
		     uint32_t declared)
{
	static uint8_t buf[SEED_MAX];
	size_t len;

	env->nfds = declared;
	len = mpdev__envelope__get_packed_size(env);
	if (len > sizeof(buf))
		seed_die("envelope too large");
	mpdev__envelope__pack(env, buf);
	seed_record(flags, kinds, nk, buf, len);
}

/* ---- native: envelopes the way a client would send them ---- */

static uint64_t next_id;

static void env_init(Mpdev__Envelope *env, uint64_t id, Mpdev__Kind kind)
{
	mpdev__envelope__init(env);
	env->id = id;
	env->kind = kind;
}

static void hello_full(uint32_t version, uint64_t features, uint32_t max_msg, bool resume)
{
	Mpdev__Envelope env;
	Mpdev__Hello h = MPDEV__HELLO__INIT;
	Mpdev__Limits lim = MPDEV__LIMITS__INIT;

	lim.max_msg_size = max_msg;
	lim.max_fds_per_msg = MPDEV_MAX_FDS_PER_MSG;
	lim.max_mem_regions = MPDEV_MAX_MEM_REGIONS;
	h.version = version;
	h.features = features;
	h.limits = &lim;
	h.name = (char *)"fuzz";
	h.resume = resume;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	envelope(0, NULL, 0, &env, 0);
}

static void hello(void)
{
	hello_full(MPDEV_PROTO_VERSION, 0xff, MPDEV_MAX_MSG_SIZE, false);
}

/* A body-less request of the given body case (Ping, Reset, DeviceInfoRequest, ...). */
static void simple(Mpdev__Envelope__BodyCase c, uint8_t flags)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(&mpdev__envelope__descriptor, (unsigned)c);
	uint8_t body[256] = { 0 }; /* every empty body message is smaller */
	void *ptr = body;
	Mpdev__Envelope env;

	protobuf_c_message_init(f->descriptor, body);
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = c;
	memcpy((uint8_t *)&env + f->offset, &ptr, sizeof(ptr));
	envelope(flags, NULL, 0, &env, 0);
}

static void ping(void)
{
	simple(MPDEV__ENVELOPE__BODY_PING, 0);
}

static void region_read(uint32_t index, uint64_t offset, uint32_t size)
{
	Mpdev__Envelope env;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;

	rr.index = index;
	rr.offset = offset;
	rr.size = size;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	env.region_read = &rr;
	envelope(0, NULL, 0, &env, 0);
}

static void region_write_kind(uint32_t kind, uint32_t index, uint64_t offset, uint64_t val,
			      uint32_t width, uint8_t flags)
{
	Mpdev__Envelope env;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t data[4096];

	memset(data, 0, sizeof(data));
	for (uint32_t i = 0; i < width && i < 8; i++)
		data[i] = (uint8_t)(val >> (8 * i));
	rw.index = index;
	rw.offset = offset;
	rw.data.data = data;
	rw.data.len = width;
	env_init(&env, next_id++, (Mpdev__Kind)kind);
	if (kind == MPDEV__KIND__KIND_POSTED)
		env.id |= POSTED_BIT;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env.region_write = &rw;
	envelope(flags, NULL, 0, &env, 0);
}

static void region_write(uint32_t index, uint64_t offset, uint64_t val, uint32_t width)
{
	region_write_kind(MPDEV__KIND__KIND_REQUEST, index, offset, val, width, 0);
}

static void bar0_write(uint64_t offset, uint64_t val, uint32_t width)
{
	region_write_kind(MPDEV__KIND__KIND_POSTED, 0, offset, val, width, 0);
}

static void mem_region(Mpdev__MemRegion *r, uint64_t gpa, uint64_t size, uint64_t off, bool ro,
		       uint32_t fd_index)
{
	mpdev__mem_region__init(r);
	r->gpa = gpa;
	r->size = size;
	r->fd_offset = off;
	r->read_only = ro;
	r->fd_index = fd_index;
}

/* MemTableSet of n regions, the descriptors of the given kinds. */
static void mem_table_set(Mpdev__MemRegion *regions, size_t n, const uint8_t *kinds, size_t nk,
			  bool more)
{
	Mpdev__Envelope env;
	Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;
	Mpdev__MemRegion *ptrs[16];

	for (size_t i = 0; i < n; i++)
		ptrs[i] = &regions[i];
	set.n_regions = n;
	set.regions = ptrs;
	set.more = more;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
	env.mem_table_set = &set;
	envelope(0, kinds, nk, &env, (uint32_t)nk);
}

static void mem_add(uint64_t gpa, uint64_t size, uint64_t off, bool ro, uint8_t kind)
{
	Mpdev__Envelope env;
	Mpdev__MemRegionAdd add = MPDEV__MEM_REGION_ADD__INIT;
	Mpdev__MemRegion r;

	mem_region(&r, gpa, size, off, ro, 0);
	add.region = &r;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_REGION_ADD;
	env.mem_region_add = &add;
	envelope(0, &kind, 1, &env, 1);
}

static void mem_remove(uint64_t gpa, uint64_t size)
{
	Mpdev__Envelope env;
	Mpdev__MemRegionRemove rm = MPDEV__MEM_REGION_REMOVE__INIT;

	rm.gpa = gpa;
	rm.size = size;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE;
	env.mem_region_remove = &rm;
	envelope(0, NULL, 0, &env, 0);
}

static void intx_irqfd(uint32_t pin, uint32_t pirq, const uint8_t *kinds, size_t nk)
{
	Mpdev__Envelope env;
	Mpdev__SetIntxIrqfd b = MPDEV__SET_INTX_IRQFD__INIT;

	b.pin = pin;
	b.pirq = pirq;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	env.set_intx_irqfd = &b;
	envelope(0, kinds, nk, &env, (uint32_t)nk);
}

static void set_irqs(uint32_t index, uint32_t action, uint32_t data, uint32_t start, uint32_t count,
		     protobuf_c_boolean *values, size_t n_values, int32_t *fds, size_t n_fds,
		     const uint8_t *kinds, size_t nk)
{
	Mpdev__Envelope env;
	Mpdev__SetIrqs b = MPDEV__SET_IRQS__INIT;

	b.index = index;
	b.action = action;
	b.data = data;
	b.start = start;
	b.count = count;
	b.values = values;
	b.n_values = n_values;
	b.fds = fds;
	b.n_fds = n_fds;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_SET_IRQS;
	env.set_irqs = &b;
	envelope(0, kinds, nk, &env, (uint32_t)nk);
}

static void native_begin(void)
{
	seed_begin();
	next_id = 1;
}

/* test_bad_input.c: undecodable_packets */
static void native_undecodable(void)
{
	const uint8_t garbage[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
	};
	const uint8_t ev = EVENTFD;
	uint8_t many[FUZZ_MAX_FDS];

	memset(many, EVENTFD, sizeof(many));
	native_begin();
	hello();
	seed_record(0, &ev, 1, garbage, sizeof(garbage));
	ping();
	seed_record(0, NULL, 0, "\x82\x01\x10\x08", 4);
	ping();
	seed_record(0, &ev, 1, "", 0);
	ping();
	seed_record(0, many, sizeof(many), "\x08\x01", 2);
	ping();
	seed_finish("undecodable");
}

/* test_bad_input.c: every_body_with_wrong_fd_count and every_request_body_is_answered */
static void native_every_body(void)
{
	const ProtobufCMessageDescriptor *ed = &mpdev__envelope__descriptor;
	const uint8_t three[3] = { EVENTFD, EVENTFD, EVENTFD };

	for (int pass = 0; pass < 2; pass++) {
		native_begin();
		hello();
		for (unsigned i = 0; i < ed->n_fields; i++) {
			const ProtobufCFieldDescriptor *f = &ed->fields[i];
			uint8_t body[256] = { 0 };
			void *ptr = body;
			Mpdev__Envelope env;

			if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
				continue;
			protobuf_c_message_init(f->descriptor, body);
			env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
			env.body_case = (Mpdev__Envelope__BodyCase)f->id;
			memcpy((uint8_t *)&env + f->offset, &ptr, sizeof(ptr));
			if (pass == 0) {
				envelope(0, NULL, 0, &env, 0);
				continue;
			}
			/* Declares three, carries two; declares none, carries one; three honest. */
			envelope(0, three, 2, &env, 3);
			env.id = next_id++;
			envelope(0, three, 1, &env, 0);
			env.id = next_id++;
			envelope(0, three, 3, &env, 3);
		}
		ping();
		seed_finish(pass == 0 ? "every-body-answered" : "every-body-wrong-fds");
	}
}

/* test_bad_input.c: region_access_table */
static void native_access_table(void)
{
	static const struct {
		int write;
		uint32_t index;
		uint64_t offset;
		uint32_t size;
	} cases[] = {
		{ 0, 99, 0, 4 },
		{ 0, 1, 0, 4 },
		{ 1, 6, 0, 4 },
		{ 0, 0, 1u << 20, 4 },
		{ 0, 0, (1u << 20) - 2, 4 },
		{ 0, 0, UINT64_MAX - 1, 4 },
		{ 1, 0, UINT64_MAX, 8 },
		{ 0, 0, 0, 0 },
		{ 0, 0, 0, 3 },
		{ 1, 0, 0, 5 },
		{ 0, 0, 0, 16 },
		{ 1, 0, 0, 0 },
		{ 1, 0, 0, 9 },
		{ 1, 0, 0, 4096 },
		{ 0, 7, 256, 1 },
		{ 1, 7, 255, 2 },
		{ 0, 7, 0, 8 },
		{ 1, 7, 0, 8 },
		{ 0, 7, 252, 8 },
	};

	native_begin();
	hello();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].write)
			region_write(cases[i].index, cases[i].offset, 0, cases[i].size);
		else
			region_read(cases[i].index, cases[i].offset, cases[i].size);
	}
	ping();
	seed_finish("access-table");
}

static void fixed_record(uint8_t op, uint8_t index, uint64_t offset, uint8_t size, uint64_t data)
{
	struct fixed_access a = { .op = op,
				  .index = index,
				  .size = size,
				  .offset = offset,
				  .data = data,
				  .id = next_id++ };
	uint8_t buf[FIXED_ACCESS_REQ_SIZE];

	seed_record(0, NULL, 0, buf, fixed_access_pack_req(&a, buf));
}

/* test_fixed_access.c: reads_and_writes, access_table and layout_table */
static void native_fixed(void)
{
	uint8_t bad[FIXED_ACCESS_REQ_SIZE + 1] = { 0, FIXED_OP_READ, 0, 4 };

	native_begin();
	hello();
	fixed_record(FIXED_OP_READ, 0, 0, 4, 0);
	fixed_record(FIXED_OP_WRITE, 0, 4, 4, 0x12345678);
	fixed_record(FIXED_OP_POSTED_WRITE, 0, 4, 4, 1);
	fixed_record(FIXED_OP_READ, 7, 0, 2, 0);
	fixed_record(FIXED_OP_POSTED_WRITE, 0, 0x60, 4, 1);
	fixed_record(FIXED_OP_READ, 99, 0, 4, 0);
	fixed_record(FIXED_OP_READ, 0, UINT64_MAX - 1, 4, 0);
	fixed_record(FIXED_OP_WRITE, 0, 4, 3, 0);
	fixed_record(FIXED_OP_WRITE, 0, 4, 1, 0x1ff);
	fixed_record(FIXED_OP_READ, 7, 0, 8, 0);
	bad[8] = (uint8_t)next_id++;
	seed_record(0, NULL, 0, bad, sizeof(bad));
	bad[8] = (uint8_t)next_id++;
	seed_record(0, NULL, 0, bad, FIXED_ACCESS_REQ_SIZE - 1);
	bad[4] = 1;
	seed_record(0, NULL, 0, bad, FIXED_ACCESS_REQ_SIZE);
	ping();
	seed_finish("fixed-access");
}

/* test_bad_input.c: message_kinds, unknown_and_missing_bodies, request_id_zero_refused */
static void native_kinds(void)
{
	const uint8_t future[] = { 0x08, 0x05, 0x10, 0x01, 0x18, 0x00, 0xa0, 0x38, 0x01 };
	const uint8_t none[] = { 0x08, 0x06, 0x10, 0x01 };
	Mpdev__Envelope env;
	Mpdev__Ping p = MPDEV__PING__INIT;

	native_begin();
	hello();
	region_write_kind(MPDEV__KIND__KIND_UNSPECIFIED, 0, 4, 0, 4, 0);
	region_write_kind(MPDEV__KIND__KIND_REPLY, 0, 4, 0, 4, 0);
	region_write_kind(MPDEV__KIND__KIND_NOTIFY, 0, 4, 0, 4, 0);
	region_write_kind(77, 0, 4, 0, 4, 0);
	region_write_kind(MPDEV__KIND__KIND_POSTED, 0, 4, 0, 4, 0);
	region_write_kind(MPDEV__KIND__KIND_POSTED, 0, 0x200000, 0, 4, 0);
	simple(MPDEV__ENVELOPE__BODY_RESET, 0);
	seed_record(0, NULL, 0, future, sizeof(future));
	seed_record(0, NULL, 0, none, sizeof(none));
	env_init(&env, 0, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &p;
	envelope(0, NULL, 0, &env, 0);
	hello(); /* second_hello_refused */
	simple(MPDEV__ENVELOPE__BODY_MIG_SET_STATE, 0);
	simple(MPDEV__ENVELOPE__BODY_DIRTY_STOP, 0);
	ping();
	seed_finish("kinds-and-bodies");
}

/* test_bad_input.c: the "handshake" cases, each on a fresh connection */
static void native_handshake(void)
{
	native_begin();
	region_read(0, 0, 4);
	hello_full(2, 0xff, MPDEV_MAX_MSG_SIZE, false);
	hello_full(0, 0xff, MPDEV_MAX_MSG_SIZE, false);
	hello();
	ping();
	seed_finish("before-hello");

	native_begin();
	hello_full(MPDEV_PROTO_VERSION, 0xff, 100, false);
	hello();
	seed_finish("tiny-limits");

	native_begin();
	hello_full(MPDEV_PROTO_VERSION, MPDEV__FEATURE__FEATURE_STATS, MPDEV_MAX_MSG_SIZE, false);
	bar0_write(EDU_REG_LIVENESS, 1, 4);
	simple(MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE, 0);
	ping();
	seed_finish("posted-without-feature");

	native_begin();
	hello_full(MPDEV_PROTO_VERSION, 0xff, MPDEV_MAX_MSG_SIZE, true);
	region_read(CONFIG_REGION, 4, 4); /* status: SERR after a resume */
	seed_finish("resume");
}

/* A whole session: memory table, bus mastering, DMA both ways with its interrupt. */
static void native_dma(void)
{
	Mpdev__MemRegion r[2];
	const uint8_t kinds[1] = { MEMFD(4) };

	native_begin();
	hello();
	simple(MPDEV__ENVELOPE__BODY_DEVICE_INFO_REQUEST, 0);
	mem_region(&r[0], 0x100000, 0x2000, 0, false, 0);
	mem_region(&r[1], 0x200000, 0x2000, 0x2000, true, 0);
	mem_table_set(r, 2, kinds, 1, false);
	region_write(CONFIG_REGION, 4, 0x0006, 2); /* memory + bus master */
	bar0_write(EDU_REG_DMA_SRC, 0x200000, 8);
	bar0_write(EDU_REG_DMA_DST, EDU_DMA_BUF_ADDR, 8);
	bar0_write(EDU_REG_DMA_COUNT, 64, 8);
	bar0_write(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | EDU_DMA_CMD_IRQ, 8);
	region_read(0, EDU_REG_IRQ_STATUS, 4);
	bar0_write(EDU_REG_IRQ_ACK, EDU_IRQ_DMA, 4);
	bar0_write(EDU_REG_DMA_SRC, EDU_DMA_BUF_ADDR, 8);
	bar0_write(EDU_REG_DMA_DST, 0x100ff0, 8);
	bar0_write(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | EDU_DMA_CMD_TO_RAM | EDU_DMA_CMD_IRQ, 8);
	/* Into the read-only region: refused. */
	bar0_write(EDU_REG_DMA_DST, 0x200000, 8);
	bar0_write(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | EDU_DMA_CMD_TO_RAM, 8);
	simple(MPDEV__ENVELOPE__BODY_STATS_REQUEST, 0);
	simple(MPDEV__ENVELOPE__BODY_IOMMU_INFO_REQUEST, 0);
	ping();
	seed_finish("session-dma");
}

/* INTx through the IOHUB: an irqfd pair, raise, the guest's EOI, factorial, ack. */
static void native_intx(void)
{
	const uint8_t pair[2] = { EVENTFD, EVENTFD };
	const uint8_t one = EVENTFD;
	const uint8_t reuse[2] = { FUZZ_KIND(FUZZ_FD_KEPT, 0), EVENTFD };

	native_begin();
	hello();
	intx_irqfd(0, 3, pair, 2);
	bar0_write(EDU_REG_IRQ_RAISE, 1, 4);
	region_write_kind(MPDEV__KIND__KIND_POSTED, 0, EDU_REG_STATUS, EDU_STATUS_IRQFACT, 4,
			  FUZZ_CTL_POKE);
	bar0_write(EDU_REG_FACTORIAL, 6, 4);
	region_read(0, EDU_REG_FACTORIAL, 4);
	bar0_write(EDU_REG_IRQ_ACK, 0xffffffff, 4);
	intx_irqfd(1, 4, &one, 1);
	intx_irqfd(0, 3, reuse, 2); /* a descriptor the remote already holds */
	intx_irqfd(0, 31, NULL, 0);
	intx_irqfd(0, 32, pair, 2);
	region_write(CONFIG_REGION, 4, 0x0400, 2); /* interrupt disable */
	bar0_write(EDU_REG_IRQ_RAISE, 1, 4);
	simple(MPDEV__ENVELOPE__BODY_RESET, FUZZ_CTL_POKE);
	ping();
	seed_finish("session-intx");
}

/* SetIrqs: MSI trigger, MSI enabled in config space, masks; INTx trigger and unmask. */
static void native_set_irqs(void)
{
	const uint8_t one = EVENTFD;
	const uint8_t two[2] = { EVENTFD, EVENTFD };
	protobuf_c_boolean yes = 1, no = 0;
	int32_t slot0 = 0, slot1 = 1, none = -1;

	native_begin();
	hello();
	set_irqs(1, 0, 2, 0, 1, NULL, 0, &slot0, 1, &one, 1);
	region_write(CONFIG_REGION, EDU_MSI_CAP_OFFSET + 2, 1, 2);
	bar0_write(EDU_REG_IRQ_RAISE, 1, 4);
	set_irqs(1, 1, 1, 0, 1, &yes, 1, NULL, 0, NULL, 0);
	bar0_write(EDU_REG_IRQ_RAISE, 2, 4);
	set_irqs(1, 2, 1, 0, 1, &no, 1, NULL, 0, NULL, 0);
	set_irqs(1, 2, 0, 0, 1, NULL, 0, NULL, 0, NULL, 0);
	set_irqs(1, 0, 2, 0, 1, NULL, 0, &none, 1, NULL, 0);
	region_write(CONFIG_REGION, EDU_MSI_CAP_OFFSET + 2, 0, 2);
	set_irqs(0, 0, 2, 0, 1, NULL, 0, &slot0, 1, &one, 1);
	set_irqs(0, 2, 2, 0, 1, NULL, 0, &slot0, 1, &one, 1);
	bar0_write(EDU_REG_IRQ_RAISE, 1, 4);
	set_irqs(0, 2, 1, 0, 1, &yes, 1, NULL, 0, NULL, 0);
	set_irqs(0, 1, 0, 0, 1, NULL, 0, NULL, 0, NULL, 0);
	simple(MPDEV__ENVELOPE__BODY_PING, FUZZ_CTL_POKE);
	set_irqs(2, 0, 2, 0, 1, NULL, 0, &slot0, 1, &one, 1);
	set_irqs(1, 0, 2, 0, 2, NULL, 0, (int32_t[]){ 0, 1 }, 2, two, 2);
	set_irqs(1, 0, 2, 0, 1, NULL, 0, &slot1, 1, two, 2);
	set_irqs(1, 0, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0);
	simple(MPDEV__ENVELOPE__BODY_STATS_REQUEST, 0);
	seed_finish("session-set-irqs");
}

/* The memory table's paths: chunks, add and remove, every wrong kind of descriptor. */
static void native_memtable(void)
{
	static const uint8_t bad[] = {
		FUZZ_KIND(FUZZ_FD_MEMFD_UNSEALED, 0), FUZZ_KIND(FUZZ_FD_MEMFD_RDONLY, 0),
		FUZZ_KIND(FUZZ_FD_MEMFD_WRONLY, 0),   FUZZ_KIND(FUZZ_FD_PIPE_READ, 0),
		FUZZ_KIND(FUZZ_FD_PIPE_WRITE, 0),     FUZZ_KIND(FUZZ_FD_SOCKET, 0),
		FUZZ_KIND(FUZZ_FD_DEVNULL, 0),	      FUZZ_KIND(FUZZ_FD_DIRECTORY, 0),
		FUZZ_KIND(FUZZ_FD_TMPFILE, 0),	      EVENTFD,
	};
	const uint8_t two[2] = { MEMFD(2), MEMFD(8) };
	const uint8_t same[2] = { MEMFD(2), FUZZ_KIND(FUZZ_FD_DUP_PREV, 0) };
	Mpdev__MemRegion r[3];

	native_begin();
	hello();
	mem_region(&r[0], 0x100000, 0x2000, 0, false, 0);
	mem_region(&r[1], 0x300000, 0x1000, 0x1000, false, 1);
	mem_table_set(r, 2, two, 2, true);
	mem_add(0x500000, 0x1000, 0, false, MEMFD(1)); /* refused while pending */
	mem_region(&r[0], 0x400000, 0x1000, 0, true, 0);
	mem_table_set(r, 1, two, 1, false);
	mem_add(0x500000, 0x1000, 0, false, MEMFD(1));
	mem_add(0x500000, 0x1000, 0, false, MEMFD(1)); /* overlaps */
	mem_add(0x600000, 0x2000, 0, false, MEMFD(1)); /* past the file's end */
	mem_add(0x600001, 0x1000, 0, false, MEMFD(1));
	mem_add(UINT64_MAX - 0xfff, 0x2000, 0, false, MEMFD(2));
	for (size_t i = 0; i < sizeof(bad); i++)
		mem_add(0x700000 + 0x10000 * i, 0x1000, 0, false, bad[i]);
	mem_add(0x800000, 0x1000, 0, true, FUZZ_KIND(FUZZ_FD_MEMFD_RDONLY, 0));
	mem_remove(0x500000, 0x1000);
	mem_remove(0x500000, 0x1000);
	mem_remove(0x100000, 0x1000);
	mem_region(&r[0], 0x100000, 0x1000, 0, false, 0);
	mem_region(&r[1], 0x100000, 0x1000, 0, false, 1);
	mem_table_set(r, 2, same, 2, false); /* overlap within the table */
	mem_region(&r[1], 0x200000, 0x1000, 0, false, 2);
	mem_table_set(r, 2, same, 2, false); /* fd_index past the descriptors */
	mem_table_set(r, 1, same, 2, false); /* a descriptor no region names */
	mem_table_set(NULL, 0, NULL, 0, false);
	simple(MPDEV__ENVELOPE__BODY_IOMMU_INFO_REQUEST, 0);
	seed_finish("session-memtable");
}

static void dirty_start(uint64_t start, uint64_t last, uint64_t start2, uint64_t last2, size_t n,
			uint64_t page_size)
{
	Mpdev__Envelope env;
	Mpdev__DirtyStart ds = MPDEV__DIRTY_START__INIT;
	Mpdev__IovaRange r[2] = { MPDEV__IOVA_RANGE__INIT, MPDEV__IOVA_RANGE__INIT };
	Mpdev__IovaRange *ptrs[2] = { &r[0], &r[1] };

	r[0].start = start;
	r[0].last = last;
	r[1].start = start2;
	r[1].last = last2;
	ds.ranges = ptrs;
	ds.n_ranges = n;
	ds.page_size = page_size;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_START;
	env.dirty_start = &ds;
	envelope(0, NULL, 0, &env, 0);
}

static void dirty_report(uint64_t iova, uint64_t size, uint64_t page_size)
{
	Mpdev__Envelope env;
	Mpdev__DirtyReport dr = MPDEV__DIRTY_REPORT__INIT;

	dr.iova = iova;
	dr.size = size;
	dr.page_size = page_size;
	env_init(&env, next_id++, MPDEV__KIND__KIND_REQUEST);
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_REPORT;
	env.dirty_report = &dr;
	envelope(0, NULL, 0, &env, 0);
}

/* test_bad_input.c: dirty_start_table and dirty_report_table (a few of each) */
static void native_dirty(void)
{
	const uint64_t P = 0x1000, base = 0x10000, size = 1ull << 32;

	native_begin();
	hello();
	dirty_report(base, P, P); /* not started */
	dirty_start(0, P - 1, 0, 0, 1, 0);
	dirty_start(0, 3 * P - 1, 0, 0, 1, 3 * P);
	dirty_start(2 * P, P - 1, 0, 0, 1, P);
	dirty_start(0, UINT64_MAX, 0, 0, 1, P);
	dirty_start(0x800, 0x17ff, 0, 0, 1, P);
	dirty_start(0, (1ull << 44) - 1, 0, 0, 1, P);
	dirty_start(0x10000, 0x1ffff, 0, 0x10fff, 2, P);
	dirty_start(0, 0, 0, 0, 0, P);
	dirty_start(base, base + size - 1, 0, 0, 1, P);
	dirty_start(1ull << 40, (1ull << 40) + P - 1, 0, 0, 1, P); /* busy */
	dirty_report(base, 0, P);
	dirty_report(base + 1, P, P);
	dirty_report(base, 0x10000, 0x10000);
	dirty_report(base, size, P);
	dirty_report(base, UINT64_MAX & ~(P - 1), P);
	dirty_report(0, P, P);
	dirty_report(base + size - P, 2 * P, P);
	dirty_report(UINT64_MAX & ~(P - 1), 2 * P, P);
	dirty_report(base, MPDEV_DIRTY_REPORT_MAX_PAGES * P, P);
	dirty_report(base + size - P, P, P);
	simple(MPDEV__ENVELOPE__BODY_DIRTY_STOP, 0);
	simple(MPDEV__ENVELOPE__BODY_DIRTY_STOP, 0);
	ping();
	seed_finish("dirty-tables");
}

static void write_native(const char *root)
{
	seed_open_dir(root, "native");
	native_undecodable();
	native_every_body();
	native_access_table();
	native_fixed();
	native_kinds();
	native_handshake();
	native_dma();
	native_intx();
	native_set_irqs();
	native_memtable();
	native_dirty();
}

/* ---- mpqemu: test_mpqemu.c's messages, good and bad ---- */

static void qmsg(struct raw r, int nfds, uint8_t kind)
{
	uint8_t kinds[FUZZ_MAX_FDS];

	memset(kinds, kind, sizeof(kinds));
	seed_record(0, kinds, (size_t)nfds, r.b, r.len);
}

static void one_mpqemu(const char *name, struct raw r, int nfds)
{
	seed_begin();
	qmsg(r, nfds, EVENTFD);
	seed_finish(name);
}

static struct raw sysmem2(void)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);

	raw_sysmem_entry(&r, 0, 0x100000, 0x1000, 0);
	raw_sysmem_entry(&r, 1, 0x200000, 0x1000, 0);
	return r;
}

static void write_mpqemu(const char *root)
{
	struct raw r;

	seed_open_dir(root, "mpqemu");
	/* The good messages, and a guest placing BARs and reaching them. */
	seed_begin();
	r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	raw_sysmem_entry(&r, 0, 0, 0xa0000, 0);
	raw_sysmem_entry(&r, 1, 0xc0000, 0x20000, 0xc0000);
	raw_sysmem_entry(&r, 2, 0x100000, 0x1ff00000, 0x100000);
	qmsg(r, 3, MEMFD(1));
	qmsg(raw_msg(CMD_SET_IRQFD, 0), 2, EVENTFD);
	qmsg(raw_cfg(CMD_PCI_CFGREAD, 0x10, 0, 4), 0, 0);
	qmsg(raw_cfg(CMD_PCI_CFGWRITE, 0x10, 0xfea00000, 4), 0, 0);
	qmsg(raw_cfg(CMD_PCI_CFGWRITE, 0x18, 0xc000000c, 4), 0, 0);
	qmsg(raw_cfg(CMD_PCI_CFGWRITE, 0x1c, 0x1, 4), 0, 0);
	qmsg(raw_cfg(CMD_PCI_CFGWRITE, 0x20, 0xc041, 4), 0, 0);
	qmsg(raw_cfg(CMD_PCI_CFGWRITE, 0x04, 0x0107, 2), 0, 0);
	qmsg(raw_bar(CMD_BAR_READ, 0xfea00000, 0, 4, 1), 0, 0);
	qmsg(raw_bar(CMD_BAR_WRITE, 0xfeaffff8, 0x1122334455667788ull, 8, 1), 0, 0);
	qmsg(raw_bar(CMD_BAR_READ, 0xfeaffffc, 0, 8, 1), 0, 0);
	qmsg(raw_bar(CMD_BAR_READ, 0x1c0000010ull, 0, 4, 1), 0, 0);
	qmsg(raw_bar(CMD_BAR_WRITE, 0xc0ff, 1, 1, 0), 0, 0);
	qmsg(raw_bar(CMD_BAR_READ, 0xc040, 0, 2, 1), 0, 0);
	qmsg(raw_msg(CMD_DEVICE_RESET, 0), 0, 0);
	qmsg(raw_bar(CMD_BAR_READ, 0xfea00000, 0, 4, 1), 0, 0);
	qmsg(raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM), 0, 0);
	seed_finish("session");

	/* Each of test_mpqemu.c's malformed messages, with its descriptors. */
	one_mpqemu("ret", raw_msg(CMD_RET, 8), 0);
	one_mpqemu("cmd8", raw_msg(8, 0), 0);
	one_mpqemu("cmd-neg", raw_msg(-1, 0), 0);
	one_mpqemu("cfg-short", raw_msg(CMD_PCI_CFGREAD, 8), 0);
	one_mpqemu("cfg-long", raw_msg(CMD_PCI_CFGWRITE, 24), 0);
	one_mpqemu("bar-cfgsized", raw_msg(CMD_BAR_READ, SZ_PCI_CONF), 0);
	one_mpqemu("sysmem-short", raw_msg(CMD_SYNC_SYSMEM, 64), 1);
	one_mpqemu("reset-data", raw_msg(CMD_DEVICE_RESET, 8), 0);
	one_mpqemu("irqfd-data", raw_msg(CMD_SET_IRQFD, 8), 2);
	one_mpqemu("irqfd-1fd", raw_msg(CMD_SET_IRQFD, 0), 1);
	one_mpqemu("irqfd-3fds", raw_msg(CMD_SET_IRQFD, 0), 3);
	one_mpqemu("irqfd-0fds", raw_msg(CMD_SET_IRQFD, 0), 0);
	one_mpqemu("bar-with-fd", raw_bar(CMD_BAR_READ, 0x1000, 0, 4, 1), 1);
	one_mpqemu("cfgw-with-fds", raw_cfg(CMD_PCI_CFGWRITE, 4, 6, 2), 2);
	one_mpqemu("reset-with-fd", raw_msg(CMD_DEVICE_RESET, 0), 1);
	one_mpqemu("cfg-len3", raw_cfg(CMD_PCI_CFGREAD, 0, 0, 3), 0);
	one_mpqemu("cfg-len8", raw_cfg(CMD_PCI_CFGWRITE, 0, 0, 8), 0);
	one_mpqemu("cfg-len-neg", raw_cfg(CMD_PCI_CFGREAD, 0, 0, -4), 0);
	one_mpqemu("cfg-beyond", raw_cfg(CMD_PCI_CFGREAD, 4094, 0, 4), 0);
	one_mpqemu("cfg-huge", raw_cfg(CMD_PCI_CFGREAD, 0xfffffffe, 0, 4), 0);
	one_mpqemu("bar3", raw_bar(CMD_BAR_READ, 0x1000, 0, 3, 1), 0);
	one_mpqemu("bar16", raw_bar(CMD_BAR_WRITE, 0x1000, 0, 16, 1), 0);
	one_mpqemu("bar0", raw_bar(CMD_BAR_READ, 0x1000, 0, 0, 1), 0);
	one_mpqemu("bar-mem2", raw_bar(CMD_BAR_READ, 0x1000, 0, 4, 2), 0);
	one_mpqemu("bar-wraps", raw_bar(CMD_BAR_READ, UINT64_MAX - 1, 0, 4, 1), 0);
	r = sysmem2();
	raw_sysmem_entry(&r, 1, UINT64_MAX - 0xfff, 0x2000, 0);
	one_mpqemu("sysmem-wraps", r, 2);
	r = sysmem2();
	raw_sysmem_entry(&r, 0, 0x100000, 0, 0);
	one_mpqemu("sysmem-size0", r, 2);
	r = sysmem2();
	raw_sysmem_entry(&r, 0, 0, 0x1000, -4096);
	one_mpqemu("sysmem-neg-offset", r, 2);
	r = sysmem2();
	raw_sysmem_entry(&r, 1, 0x1000, 0x2000, INT64_MAX - 0xfff);
	one_mpqemu("sysmem-offset-wraps", r, 2);
	/* The receive path's own refusals: oversize, truncated, too many descriptors. */
	r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM + 1);
	r.len = HDR;
	one_mpqemu("oversize", r, 1);
	r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	r.len = 10;
	one_mpqemu("truncated-header", r, 1);
	r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	r.len = HDR + 100;
	one_mpqemu("truncated-data", r, 2);
	one_mpqemu("nine-fds", raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM), 9);
}

/* ---- client: what a remote answers to fuzz_client.c's script ---- */

static void reply(uint64_t id, uint32_t status, const char *error)
{
	Mpdev__Envelope env;

	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.status = status;
	if (error)
		env.error = (char *)error;
	envelope(0, NULL, 0, &env, 0);
}

static void hello_reply(uint64_t id, uint32_t version, uint64_t features)
{
	Mpdev__Envelope env;
	Mpdev__HelloReply hr = MPDEV__HELLO_REPLY__INIT;
	Mpdev__Limits lim = MPDEV__LIMITS__INIT;

	lim.max_msg_size = MPDEV_MAX_MSG_SIZE;
	lim.max_fds_per_msg = MPDEV_MAX_FDS_PER_MSG;
	lim.max_mem_regions = MPDEV_MAX_MEM_REGIONS;
	hr.version = version;
	hr.features = features;
	hr.limits = &lim;
	hr.name = (char *)"mpdev-remote 0.1.0";
	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &hr;
	envelope(0, NULL, 0, &env, 0);
}

/* edu's device info, or one with indexes and counts past every limit (odd). */
static void device_info(uint64_t id, bool odd)
{
	Mpdev__Envelope env;
	Mpdev__DeviceInfo di = MPDEV__DEVICE_INFO__INIT;
	Mpdev__RegionInfo ri[3], *rp[3];
	Mpdev__MmapArea ma[12], *mp[12];
	Mpdev__IrqInfo ii[3], *ip[3];

	for (int i = 0; i < 3; i++) {
		mpdev__region_info__init(&ri[i]);
		mpdev__irq_info__init(&ii[i]);
		rp[i] = &ri[i];
		ip[i] = &ii[i];
	}
	for (int i = 0; i < 12; i++) {
		mpdev__mmap_area__init(&ma[i]);
		ma[i].offset = 0x1000u * (unsigned)i;
		ma[i].size = 0x1000;
		mp[i] = &ma[i];
	}
	ri[0].index = 0;
	ri[0].flags = 0x7;
	ri[0].size = EDU_BAR0_SIZE;
	ri[0].n_mmap_areas = odd ? 12 : 1;
	ri[0].mmap_areas = mp;
	ri[1].index = 7;
	ri[1].flags = 0x3;
	ri[1].size = 256;
	ri[2].index = odd ? 99 : 2;
	ri[2].size = 0x4000;
	ii[0].index = 0;
	ii[0].count = 1;
	ii[0].flags = 1;
	ii[1].index = 1;
	ii[1].count = 1;
	ii[1].flags = 1;
	ii[2].index = odd ? 77 : 2;
	ii[2].count = odd ? UINT32_MAX : 0;
	di.name = (char *)"emu:edu";
	di.vendor_id = odd ? 0x123456 : EDU_VENDOR_ID;
	di.device_id = EDU_DEVICE_ID;
	di.class_code = odd ? 0xffffffff : 0xff00;
	di.revision = 0x10;
	di.reset_supported = true;
	di.n_regions = 3;
	di.regions = rp;
	di.n_irqs = 3;
	di.irqs = ip;
	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.body_case = MPDEV__ENVELOPE__BODY_DEVICE_INFO;
	env.device_info = &di;
	envelope(0, NULL, 0, &env, 0);
}

static void read_reply(uint64_t id, size_t len)
{
	Mpdev__Envelope env;
	Mpdev__RegionReadReply rr = MPDEV__REGION_READ_REPLY__INIT;
	uint8_t data[16] = { 0xed, 0, 0, 1, 0x34, 0x12, 0xe8, 0x11 };

	rr.data.data = data;
	rr.data.len = len;
	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ_REPLY;
	env.region_read_reply = &rr;
	envelope(0, NULL, 0, &env, 0);
}

static void iommu_info(uint64_t id, size_t n_ranges)
{
	Mpdev__Envelope env;
	Mpdev__IommuInfo ii = MPDEV__IOMMU_INFO__INIT;
	Mpdev__IovaRange r[40], *rp[40];

	for (size_t i = 0; i < n_ranges; i++) {
		mpdev__iova_range__init(&r[i]);
		r[i].start = i << 32;
		r[i].last = (i << 32) + 0xffffffff;
		rp[i] = &r[i];
	}
	ii.kind = 1;
	ii.pgsize_bitmap = 4096;
	ii.n_iova_ranges = n_ranges;
	ii.iova_ranges = rp;
	ii.dma_avail = 1024;
	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.body_case = MPDEV__ENVELOPE__BODY_IOMMU_INFO;
	env.iommu_info = &ii;
	envelope(0, NULL, 0, &env, 0);
}

static void stats_reply(uint64_t id)
{
	Mpdev__Envelope env;
	Mpdev__Stats st = MPDEV__STATS__INIT;
	Mpdev__Counter c[3], *cp[3];
	const char *names[3] = { "connections", "messages", "from_the_future" };

	for (int i = 0; i < 3; i++) {
		mpdev__counter__init(&c[i]);
		c[i].name = (char *)names[i];
		c[i].value = (uint64_t)i * 1000;
		cp[i] = &c[i];
	}
	st.n_counters = 3;
	st.counters = cp;
	env_init(&env, id, MPDEV__KIND__KIND_REPLY);
	env.body_case = MPDEV__ENVELOPE__BODY_STATS;
	env.stats = &st;
	envelope(0, NULL, 0, &env, 0);
}

static void notify(uint32_t type, uint32_t status, const char *message)
{
	Mpdev__Envelope env;
	Mpdev__Notify n = MPDEV__NOTIFY__INIT;

	n.type = type;
	n.status = status;
	n.message = (char *)message;
	env_init(&env, 0, MPDEV__KIND__KIND_NOTIFY);
	env.body_case = MPDEV__ENVELOPE__BODY_NOTIFY;
	env.notify = &n;
	envelope(0, NULL, 0, &env, 0);
}

/*
 * Answers to the script in fuzz_client.c, in its order, with its ids:
 * 1 hello, 2 device info, 3 BAR0 read, 4 config read, 5 posted write,
 * 6 sync, 7 IOMMU info, 8 stats, 9 table set, 10 add, 11 INTx irqfd,
 * 12 MSI trigger, 13 MSI mask, 14 config write, 15 reset, 16 remove,
 * 17 MSI disable, 18 sync. A failing step gets status `fail_at`'s errno.
 */
static void client_session(uint64_t fail_at, int status)
{
	for (uint64_t id = 1; id <= 18; id++) {
		if (id == fail_at) {
			reply(id, (uint32_t)status, "refused by a fuzz seed");
			continue;
		}
		switch (id) {
		case 1:
			hello_reply(id, MPDEV_PROTO_VERSION, 0x9f);
			break;
		case 2:
			device_info(id, false);
			break;
		case 3:
		case 4:
			read_reply(id, 4);
			break;
		case 5: /* posted: no answer when it succeeds */
			break;
		case 7:
			iommu_info(id, 1);
			break;
		case 8:
			stats_reply(id);
			break;
		default:
			reply(id, 0, NULL);
			break;
		}
	}
}

static void write_client(const char *root)
{
	const uint8_t ev = EVENTFD;

	seed_open_dir(root, "client");
	seed_begin();
	client_session(0, 0);
	seed_finish("session");

	for (uint64_t id = 1; id <= 18; id++) {
		char name[32];

		seed_begin();
		client_session(id, id == 5 ? EINVAL : id == 1 ? EPROTONOSUPPORT : EIO);
		snprintf(name, sizeof(name), "fail-%02llu", (unsigned long long)id);
		seed_finish(name);
	}

	/* A posted write's failure before the sync's reply; a late answer; a notification. */
	seed_begin();
	hello_reply(1, MPDEV_PROTO_VERSION, 0x9f);
	device_info(2, true);
	read_reply(3, 3);
	read_reply(4, 8);
	reply(5 | POSTED_BIT, ERANGE, "outside region");
	reply(99, 0, NULL);
	notify(MPDEV__NOTIFY_TYPE__NOTIFY_DEVICE_ERROR, EIO, "device error");
	notify(99, 0, "from the future");
	reply(6, 0, NULL);
	iommu_info(7, 40);
	stats_reply(8);
	seed_finish("odd-replies");

	seed_begin();
	notify(MPDEV__NOTIFY_TYPE__NOTIFY_BUSY, EBUSY, "another proxy is connected");
	seed_finish("busy");
	seed_begin();
	notify(MPDEV__NOTIFY_TYPE__NOTIFY_ACCESS_DENIED, EACCES, "peer uid 1000 not allowed");
	seed_finish("access-denied");
	seed_begin();
	hello_reply(1, 2, 0x9f);
	seed_finish("wrong-version");

	/* Wrong bodies, descriptors with replies, garbage, and a shutdown notice. */
	seed_begin();
	hello_reply(1, MPDEV_PROTO_VERSION, 0xff);
	read_reply(2, 4);
	seed_record(0, &ev, 1, "\x08\x03\x10\x03", 4);
	stats_reply(4);
	notify(MPDEV__NOTIFY_TYPE__NOTIFY_SHUTDOWN, 0, "the remote is shutting down");
	seed_record(0, NULL, 0, "\xff\xff\xff", 3);
	seed_finish("wrong-bodies");
}

/* ---- edu_mig: streams a real edu writes, for fuzz_edu_mig (its control byte first) ---- */

static uint8_t mig_ram[0x10000];

static int mig_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			struct mpdev_error *err)
{
	if (gpa > sizeof(mig_ram) || len > sizeof(mig_ram) - gpa)
		return mpdev_error_set(err, EFAULT, "outside RAM");
	memcpy(buf, mig_ram + gpa, len);
	return 0;
}

static int mig_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			 struct mpdev_error *err)
{
	if (gpa > sizeof(mig_ram) || len > sizeof(mig_ram) - gpa)
		return mpdev_error_set(err, EFAULT, "outside RAM");
	memcpy(mig_ram + gpa, buf, len);
	return 0;
}

static int mig_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	return 0;
}

static int mig_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			     struct mpdev_error *err)
{
	return 0;
}

static void mig_wr(struct backend *dev, uint32_t index, uint64_t off, uint32_t size, uint64_t v)
{
	struct mpdev_error err = { 0 };
	uint8_t b[8];

	for (uint32_t i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	if (dev->ops->region_write(dev, index, off, b, size, &err) < 0)
		seed_die(err.msg);
}

static void mig_arc(struct backend *dev, enum backend_mig_state from, enum backend_mig_state to)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now;

	if (dev->ops->mig_arc(dev, from, to, &now, &err) < 0)
		seed_die(err.msg);
}

/* The device's stream from its current state on, read out until it says no more. */
static void mig_drain(struct backend *dev)
{
	struct mpdev_error err = { 0 };
	uint8_t buf[4096];
	ssize_t n;

	while ((n = dev->ops->mig_save(dev, buf, sizeof(buf), &err)) > 0)
		seed_put(buf, (size_t)n);
	if (n < 0)
		seed_die(err.msg);
}

static void mig_run(struct event_base *base)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static void write_edu_mig(const char *root)
{
	struct backend_host host = {
		.dma_read = mig_dma_read,
		.dma_write = mig_dma_write,
		.set_intx = mig_set_intx,
		.signal_vector = mig_signal_vector,
	};
	struct event_base *base = event_base_new();
	struct mpdev_error err = { 0 };
	struct backend *dev;
	const uint8_t whole = 0, bytewise = 1, odd = 13, fix_crcs = 0x80;

	if (!base || edu_create(base, &host, &dev, &err) < 0)
		seed_die("edu for migration seeds");
	seed_open_dir(root, "edu_mig");
	for (size_t i = 0; i < sizeof(mig_ram); i++)
		mig_ram[i] = (uint8_t)(i * 13 + 5);

	/* Everything a guest set, then held work: a factorial, a DMA, INTx asserted. */
	mig_wr(dev, CONFIG_REGION, 0x04, 2, 0x0006);
	mig_wr(dev, CONFIG_REGION, 0x10, 4, 0xfe000000);
	mig_wr(dev, CONFIG_REGION, 0x3c, 1, 10);
	mig_wr(dev, 0, 0x04, 4, 0x1234);
	mig_wr(dev, 0, 0x80, 8, 0x1000);
	mig_wr(dev, 0, 0x88, 8, 0x40000);
	mig_wr(dev, 0, 0x90, 8, 256);
	mig_wr(dev, 0, 0x98, 4, 0x1);
	mig_run(base);
	mig_wr(dev, 0, 0x60, 4, 0x8);
	mig_arc(dev, BACKEND_MIG_RUNNING, BACKEND_MIG_RUNNING_P2P);
	mig_wr(dev, 0, 0x20, 4, 0x80);
	mig_wr(dev, 0, 0x08, 4, 9);
	mig_wr(dev, 0, 0x80, 8, 0x40000);
	mig_wr(dev, 0, 0x88, 8, 0x2000);
	mig_wr(dev, 0, 0x98, 4, 0x1 | 0x2 | 0x4);
	mig_arc(dev, BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_STOP);
	mig_arc(dev, BACKEND_MIG_STOP, BACKEND_MIG_STOP_COPY);
	seed_begin();
	seed_put(&whole, 1);
	mig_drain(dev);
	seed_finish("stop-copy");
	mig_arc(dev, BACKEND_MIG_STOP_COPY, BACKEND_MIG_STOP);
	mig_arc(dev, BACKEND_MIG_STOP, BACKEND_MIG_STOP_COPY);
	seed_begin();
	seed_put(&odd, 1);
	mig_drain(dev);
	seed_finish("stop-copy-chunked");
	mig_arc(dev, BACKEND_MIG_STOP_COPY, BACKEND_MIG_STOP);
	mig_arc(dev, BACKEND_MIG_STOP, BACKEND_MIG_STOP_COPY);
	seed_begin();
	seed_put(&fix_crcs, 1);
	mig_drain(dev);
	seed_finish("stop-copy-crcs-fixed");

	/* Precopy with MSI: the first pass, a dirtied buffer and config, the final pass. */
	if (dev->ops->reset(dev, &err) < 0)
		seed_die(err.msg);
	mig_wr(dev, CONFIG_REGION, 0x04, 2, 0x0006);
	mig_wr(dev, CONFIG_REGION, 0x44, 4, 0xfee00000);
	mig_wr(dev, CONFIG_REGION, 0x42, 2, 0x0001);
	mig_arc(dev, BACKEND_MIG_RUNNING, BACKEND_MIG_PRE_COPY);
	seed_begin();
	seed_put(&bytewise, 1);
	mig_drain(dev);
	mig_wr(dev, 0, 0x80, 8, 0x3000);
	mig_wr(dev, 0, 0x88, 8, 0x40800);
	mig_wr(dev, 0, 0x90, 8, 64);
	mig_wr(dev, 0, 0x98, 4, 0x1);
	mig_run(base);
	mig_wr(dev, CONFIG_REGION, 0x3c, 1, 11);
	mig_arc(dev, BACKEND_MIG_PRE_COPY, BACKEND_MIG_PRE_COPY_P2P);
	mig_wr(dev, 0, 0x60, 4, 0x2);
	mig_arc(dev, BACKEND_MIG_PRE_COPY_P2P, BACKEND_MIG_STOP_COPY);
	mig_drain(dev);
	seed_finish("precopy");

	dev->ops->destroy(dev);
	event_base_free(base);
}

/* fuzz_seeds_vfio_user.c */
void write_vfio_user(const char *root);
void write_virtq(const char *root);

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST)
		seed_die(argv[1]);
	write_native(argv[1]);
	write_mpqemu(argv[1]);
	write_client(argv[1]);
	write_edu_mig(argv[1]);
	write_vfio_user(argv[1]);
	write_virtq(argv[1]);
	printf("fuzz_seeds: %u seeds in %s\n", seed_count(), argv[1]);
	return 0;
}
