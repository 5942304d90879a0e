/*
 * The bad-input table: malformed packets of every kind sent raw to a real
 * mpdev-remote. Each must get an error reply (or a protocol-error
 * notification when no request id can be known), the remote must stay up
 * and answer the next request, and its open descriptor count must return to
 * the baseline taken after the handshake.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "transport.h"
#include "wire.h"

static struct remote rem;

static void send_raw(const void *buf, size_t len, const int *fds, size_t nfds)
{
	native_send_bytes(rem.sock, buf, len, fds, nfds);
}

/* Sends env, declaring `declared` descriptors while carrying nfds. */
static void send_env(Mpdev__Envelope *env, uint32_t declared, const int *fds, size_t nfds)
{
	native_send_env(rem.sock, env, declared, fds, nfds);
}

static void expect_reply(uint64_t id, int status, const char *words)
{
	native_expect_reply(rem.sock, id, status, words);
}

/* No request id could be known: a protocol-error notification. */
static void expect_notify(int status, const char *words)
{
	native_expect_notify(rem.sock, MPDEV__NOTIFY_TYPE__NOTIFY_PROTOCOL_ERROR, status, words);
}

/* The remote is still up, answers in order, and holds its baseline descriptors. */
static void expect_alive(void)
{
	remote_expect_alive(&rem);
}

static void hello(uint32_t version, int want_status)
{
	native_hello(rem.sock, rem.next_id++, version, ~0ull, want_status);
}

/* Greeted with every feature; the baseline taken once the remote is fully up. */
static void start(void)
{
	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	ck_assert_int_gt(rem.baseline_fds, 0);
}

static void stop(void)
{
	remote_stop(&rem);
}

/* ---- packets that cannot be decoded: no id, so a notification ---- */

START_TEST(undecodable_packets)
{
	static uint8_t big[MPDEV_MAX_MSG_SIZE + 1];
	const uint8_t garbage[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
	};
	int fd = testutil_eventfd();
	int many[MPDEV_MAX_FDS_PER_MSG + 6];

	send_raw(garbage, sizeof(garbage), &fd, 1);
	expect_notify(EBADMSG, "undecodable");
	expect_alive();

	/* A length-delimited field cut short. */
	send_raw("\x82\x01\x10\x08", 4, NULL, 0);
	expect_notify(EBADMSG, "undecodable");
	expect_alive();

	send_raw(big, sizeof(big), &fd, 1);
	expect_notify(EMSGSIZE, "larger than");
	expect_alive();

	send_raw("", 0, NULL, 0);
	expect_notify(EBADMSG, "empty");
	expect_alive();

	for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = fd;
	send_raw("\x08\x01", 2, many, sizeof(many) / sizeof(many[0]));
	expect_notify(EPROTO, "more than");
	expect_alive();
	close(fd);
}
END_TEST

/* ---- every body of the schema, wrong in the generic ways ---- */

/* A zeroed instance of the body message for field `f` of the envelope. */
static void *new_body(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *d = f->descriptor;
	ProtobufCMessage *msg = calloc(1, d->sizeof_message);

	protobuf_c_message_init(d, msg);
	return msg;
}

static void set_body(Mpdev__Envelope *env, const ProtobufCFieldDescriptor *f, void *body)
{
	env->body_case = (Mpdev__Envelope__BodyCase)f->id;
	memcpy((uint8_t *)env + f->offset, &body, sizeof(body));
}

static int is_request_body(Mpdev__Envelope__BodyCase c)
{
	switch (c) {
	case MPDEV__ENVELOPE__BODY_HELLO_REPLY:
	case MPDEV__ENVELOPE__BODY_DEVICE_INFO:
	case MPDEV__ENVELOPE__BODY_REGION_READ_REPLY:
	case MPDEV__ENVELOPE__BODY_IOMMU_INFO:
	case MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY:
	case MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO:
	case MPDEV__ENVELOPE__BODY_DIRTY_BITMAP:
	case MPDEV__ENVELOPE__BODY_STATS:
	case MPDEV__ENVELOPE__BODY_NOTIFY:
	case MPDEV__ENVELOPE__BODY_IO_EVENTFDS:
	case MPDEV__ENVELOPE__BODY_RING_SETUP_REPLY:
		return 0;
	default:
		return 1;
	}
}

START_TEST(every_body_with_wrong_fd_count)
{
	const ProtobufCMessageDescriptor *ed = &mpdev__envelope__descriptor;
	int fds[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() };
	unsigned bodies = 0;

	for (unsigned i = 0; i < ed->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &ed->fields[i];
		Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
		void *body;

		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		body = new_body(f);
		set_body(&env, f, body);
		env.kind = MPDEV__KIND__KIND_REQUEST;

		/* Declares three descriptors, carries two. */
		env.id = rem.next_id++;
		send_env(&env, 3, fds, 2);
		expect_reply(env.id, EPROTO, "declares 3");
		expect_alive();

		/* Declares none, carries one. */
		env.id = rem.next_id++;
		send_env(&env, 0, fds, 1);
		expect_reply(env.id, EPROTO, "declares 0");
		expect_alive();

		/* Honest count, but descriptors it cannot use: refused, and closed. */
		env.id = rem.next_id++;
		send_env(&env, 3, fds, 3);
		native_expect_error(rem.sock, env.id);
		expect_alive();

		free(body);
		bodies++;
	}
	ck_assert_uint_ge(bodies, 28);
	transport_close_fds(fds, 3);
}
END_TEST

START_TEST(every_request_body_is_answered)
{
	const ProtobufCMessageDescriptor *ed = &mpdev__envelope__descriptor;
	unsigned answered = 0;

	/* Empty bodies, correct framing: each gets exactly one reply with its id. */
	for (unsigned i = 0; i < ed->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &ed->fields[i];
		Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
		struct wire_msg m;
		void *body;

		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		body = new_body(f);
		set_body(&env, f, body);
		env.kind = MPDEV__KIND__KIND_REQUEST;
		env.id = rem.next_id++;
		send_env(&env, 0, NULL, 0);
		native_recv(rem.sock, &m);
		ck_assert_uint_eq(m.env->kind, MPDEV__KIND__KIND_REPLY);
		ck_assert_uint_eq(m.env->id, env.id);
		if (!is_request_body(env.body_case))
			ck_assert_uint_eq(m.env->status, EPROTO);
		if (m.env->status)
			ck_assert(m.env->error && *m.env->error);
		/* Region 0's doorbells: edu's one eventfd, kept by the remote for the connection.
		 */
		if (env.body_case == MPDEV__ENVELOPE__BODY_GET_IO_EVENTFDS && !m.env->status) {
			ck_assert_uint_eq(m.nfds, 1);
			rem.baseline_fds++;
		}
		wire_msg_release(&m);
		expect_alive();
		free(body);
		answered++;
	}
	ck_assert_uint_ge(answered, 28);
}
END_TEST

struct access_case {
	const char *what;
	int write;
	uint32_t index;
	uint64_t offset;
	uint32_t size;
	int status;
	const char *words;
};

static const struct access_case access_cases[] = {
	{ "region index out of range", 0, 99, 0, 4, EINVAL, "does not exist" },
	{ "region the device lacks", 0, 1, 0, 4, EINVAL, "does not exist" },
	{ "ROM absent", 1, 6, 0, 4, EINVAL, "does not exist" },
	{ "offset past the end", 0, 0, 1u << 20, 4, ERANGE, "outside region" },
	{ "access straddles the end", 0, 0, (1u << 20) - 2, 4, ERANGE, "outside region" },
	{ "offset overflow", 0, 0, UINT64_MAX - 1, 4, ERANGE, "outside region" },
	{ "write offset overflow", 1, 0, UINT64_MAX, 8, ERANGE, "outside region" },
	{ "width 0", 0, 0, 0, 0, EINVAL, "width" },
	{ "width 3", 0, 0, 0, 3, EINVAL, "width" },
	{ "width 5", 1, 0, 0, 5, EINVAL, "width" },
	{ "width 16", 0, 0, 0, 16, EINVAL, "width" },
	{ "write width 0", 1, 0, 0, 0, EINVAL, "width" },
	{ "write width 9", 1, 0, 0, 9, EINVAL, "width" },
	{ "huge write", 1, 0, 0, 4096, EINVAL, "width" },
	{ "config past 256", 0, 7, 256, 1, ERANGE, "outside region" },
	{ "config straddle", 1, 7, 255, 2, ERANGE, "outside region" },
	{ "config 8-byte", 0, 7, 0, 8, EINVAL, "config space" },
	{ "config 8-byte write", 1, 7, 0, 8, EINVAL, "config space" },
	{ "config 8-byte near the end", 0, 7, 252, 8, EINVAL, "config space" },
};

START_TEST(region_access_table)
{
	uint8_t data[4096] = { 0 };

	for (size_t i = 0; i < sizeof(access_cases) / sizeof(access_cases[0]); i++) {
		const struct access_case *c = &access_cases[i];
		Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
		Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
		Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;

		env.id = rem.next_id++;
		env.kind = MPDEV__KIND__KIND_REQUEST;
		if (c->write) {
			rw.index = c->index;
			rw.offset = c->offset;
			rw.data.data = data;
			rw.data.len = c->size;
			env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
			env.region_write = &rw;
		} else {
			rr.index = c->index;
			rr.offset = c->offset;
			rr.size = c->size;
			env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
			env.region_read = &rr;
		}
		send_env(&env, 0, NULL, 0);
		expect_reply(env.id, c->status, c->words);
		expect_alive();
	}
}
END_TEST

static void send_body_kind(uint32_t kind, uint64_t id, int write_ok)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint32_t v = 0;

	rw.index = 0;
	rw.offset = write_ok ? 4 : 0x200000;
	rw.data.data = (uint8_t *)&v;
	rw.data.len = 4;
	env.id = id;
	env.kind = kind;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env.region_write = &rw;
	send_env(&env, 0, NULL, 0);
}

START_TEST(message_kinds)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Reset reset = MPDEV__RESET__INIT;
	uint64_t id;

	id = rem.next_id++;
	send_body_kind(MPDEV__KIND__KIND_UNSPECIFIED, id, 1);
	expect_reply(id, EPROTO, "not a request");
	expect_alive();

	id = rem.next_id++;
	send_body_kind(MPDEV__KIND__KIND_REPLY, id, 1);
	expect_reply(id, EPROTO, "not a request");
	expect_alive();

	id = rem.next_id++;
	send_body_kind(MPDEV__KIND__KIND_NOTIFY, id, 1);
	expect_reply(id, EPROTO, "not a request");
	expect_alive();

	id = rem.next_id++;
	send_body_kind(77, id, 1);
	expect_reply(id, EPROTO, "not a request");
	expect_alive();

	/* A good posted write gets no reply: the ping's reply comes next. */
	send_body_kind(MPDEV__KIND__KIND_POSTED, rem.next_id++, 1);
	expect_alive();

	/* A bad posted write is answered with its id. */
	id = rem.next_id++;
	send_body_kind(MPDEV__KIND__KIND_POSTED, id, 0);
	expect_reply(id, ERANGE, "outside region");
	expect_alive();

	/* Only writes can be posted. */
	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_POSTED;
	env.body_case = MPDEV__ENVELOPE__BODY_RESET;
	env.reset = &reset;
	send_env(&env, 0, NULL, 0);
	expect_reply(env.id, EINVAL, "cannot be posted");
	expect_alive();
}
END_TEST

START_TEST(unknown_and_missing_bodies)
{
	/* id 5, kind REQUEST, nfds 0, then field 900 (varint 1): a body from the future. */
	const uint8_t future[] = { 0x08, 0x05, 0x10, 0x01, 0x18, 0x00, 0xa0, 0x38, 0x01 };
	const uint8_t none[] = { 0x08, 0x06, 0x10, 0x01 };

	send_raw(future, sizeof(future), NULL, 0);
	expect_reply(5, EOPNOTSUPP, "unknown or missing");
	expect_alive();
	send_raw(none, sizeof(none), NULL, 0);
	expect_reply(6, EOPNOTSUPP, "unknown or missing");
	expect_alive();
}
END_TEST

START_TEST(request_id_zero_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;

	env.id = 0;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	send_env(&env, 0, NULL, 0);
	expect_reply(0, EPROTO, "reserved");
	expect_alive();
}
END_TEST

START_TEST(second_hello_refused)
{
	hello(MPDEV_PROTO_VERSION, EPROTO);
	expect_alive();
}
END_TEST

START_TEST(features_not_negotiated_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__MigSetState mig = MPDEV__MIG_SET_STATE__INIT;

	/* A session of its own that asks for neither feature. */
	remote_stop(&rem);
	remote_start(&rem,
		     &(struct remote_opts){
			     .greet = REMOTE_RAW_HELLO,
			     .features = 0xffull &
					 ~(uint64_t)(MPDEV__FEATURE__FEATURE_MIGRATION |
						     MPDEV__FEATURE__FEATURE_DIRTY_TRACKING) });

	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_MIG_SET_STATE;
	env.mig_set_state = &mig;
	send_env(&env, 0, NULL, 0);
	expect_reply(env.id, ENOTSUP, "not negotiated");
	expect_alive();

	/* 0xff: everything up to STATS, so no doorbells either. */
	{
		Mpdev__GetIoEventfds g = MPDEV__GET_IO_EVENTFDS__INIT;

		env = (Mpdev__Envelope)MPDEV__ENVELOPE__INIT;
		env.id = rem.next_id++;
		env.kind = MPDEV__KIND__KIND_REQUEST;
		env.body_case = MPDEV__ENVELOPE__BODY_GET_IO_EVENTFDS;
		env.get_io_eventfds = &g;
		send_env(&env, 0, NULL, 0);
		expect_reply(env.id, ENOTSUP, "not negotiated");
		expect_alive();
	}
}
END_TEST

/* ---- GetIoEventfds: region indexes, and what a reply carries ---- */

static void get_io_eventfds(uint32_t region, struct wire_msg *m)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__GetIoEventfds g = MPDEV__GET_IO_EVENTFDS__INIT;

	g.region = region;
	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_GET_IO_EVENTFDS;
	env.get_io_eventfds = &g;
	send_env(&env, 0, NULL, 0);
	native_recv(rem.sock, m);
	ck_assert_uint_eq(m->env->id, env.id);
}

START_TEST(get_io_eventfds_table)
{
	static const struct {
		uint32_t region;
		int status;
	} rows[] = {
		{ 99, EINVAL }, { 9, EINVAL }, { 1, EINVAL }, { 6, EINVAL }, { UINT32_MAX, EINVAL }
	};
	struct wire_msg m;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		get_io_eventfds(rows[i].region, &m);
		ck_assert_msg(m.env->status == (uint32_t)rows[i].status,
			      "region %u: status %u, expected %d", rows[i].region, m.env->status,
			      rows[i].status);
		ck_assert(strstr(m.env->error, "does not exist"));
		ck_assert_uint_eq(m.nfds, 0);
		wire_msg_release(&m);
		expect_alive(); /* a refused ask makes no doorbells */
	}
	/* Config space: a region without doorbells is an empty answer, no descriptors. */
	get_io_eventfds(7, &m);
	ck_assert_uint_eq(m.env->status, 0);
	ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_IO_EVENTFDS);
	ck_assert_uint_eq(m.env->io_eventfds->n_entries, 0);
	ck_assert_uint_eq(m.env->io_eventfds->total, 0);
	ck_assert_uint_eq(m.nfds, 0);
	wire_msg_release(&m);
	/* That ask made the connection's set: edu's one eventfd. */
	rem.baseline_fds++;
	expect_alive();
	get_io_eventfds(0, &m);
	ck_assert_uint_eq(m.env->status, 0);
	ck_assert_uint_eq(m.env->io_eventfds->n_entries, 1);
	ck_assert_uint_eq(m.env->io_eventfds->total, 1);
	ck_assert_uint_eq(m.env->nfds, 1);
	ck_assert_uint_eq(m.nfds, 1);
	wire_msg_release(&m);
	expect_alive(); /* asked again: the same set, nothing more */
}
END_TEST

/* ---- dirty tracking: malformed starts and reports (edu: the remote's own tracker) ---- */

#define DPAGE 0x1000ull

static void dirty_start_raw(const Mpdev__IovaRange *const *ranges, size_t n, uint64_t page_size,
			    int status, const char *words)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyStart ds = MPDEV__DIRTY_START__INIT;

	ds.ranges = (Mpdev__IovaRange **)ranges;
	ds.n_ranges = n;
	ds.page_size = page_size;
	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_START;
	env.dirty_start = &ds;
	send_env(&env, 0, NULL, 0);
	expect_reply(env.id, status, words);
	expect_alive();
}

static void dirty_start1(uint64_t start, uint64_t last, uint64_t page_size, int status,
			 const char *words)
{
	Mpdev__IovaRange r = MPDEV__IOVA_RANGE__INIT;
	const Mpdev__IovaRange *v[] = { &r };

	r.start = start;
	r.last = last;
	dirty_start_raw(v, 1, page_size, status, words);
}

struct dirty_start_case {
	const char *what;
	uint64_t start, last, page_size;
	int status;
	const char *words;
};

static const struct dirty_start_case dirty_start_cases[] = {
	{ "page size 0", 0, DPAGE - 1, 0, EINVAL, "power of two" },
	{ "page size 2048", 0, DPAGE - 1, 2048, EINVAL, "power of two" },
	{ "page size 12288", 0, 3 * DPAGE - 1, 3 * DPAGE, EINVAL, "power of two" },
	{ "page size 2^63 + 4096", 0, DPAGE - 1, (1ull << 63) | DPAGE, EINVAL, "power of two" },
	{ "last before start", 2 * DPAGE, DPAGE - 1, DPAGE, EINVAL, "range 0" },
	{ "all of the space", 0, UINT64_MAX, DPAGE, EINVAL, "range 0" },
	{ "unaligned start", 0x800, 0x17ff, DPAGE, EINVAL, "multiples" },
	{ "unaligned end", 0, 0x17ff, DPAGE, EINVAL, "multiples" },
	{ "aligned to 4K, not to 64K", DPAGE, 0x10fff, 0x10000, EINVAL, "multiples" },
	{ "16 TiB at 4K: 512 MiB of bitmap", 0, (1ull << 44) - 1, DPAGE, E2BIG, "bitmap" },
};

START_TEST(dirty_start_table)
{
	Mpdev__IovaRange a = MPDEV__IOVA_RANGE__INIT, b = MPDEV__IOVA_RANGE__INIT;
	const Mpdev__IovaRange *two[] = { &a, &b };
	Mpdev__IovaRange **many;
	size_t n_many = 1025;

	for (size_t i = 0; i < sizeof(dirty_start_cases) / sizeof(dirty_start_cases[0]); i++) {
		const struct dirty_start_case *c = &dirty_start_cases[i];

		dirty_start1(c->start, c->last, c->page_size, c->status, c->words);
	}
	/* Overlapping by one page, listed in reverse. */
	a.start = 0x10000;
	a.last = 0x1ffff;
	b.start = 0;
	b.last = 0x10fff;
	dirty_start_raw(two, 2, DPAGE, EINVAL, "overlaps");
	dirty_start_raw(NULL, 0, DPAGE, EINVAL, "no ranges");
	/* More ranges than allowed, each fine on its own. */
	many = calloc(n_many, sizeof(*many));
	ck_assert_ptr_nonnull(many);
	for (size_t i = 0; i < n_many; i++) {
		many[i] = calloc(1, sizeof(**many));
		ck_assert_ptr_nonnull(many[i]);
		mpdev__iova_range__init(many[i]);
		many[i]->start = i * 2 * DPAGE;
		many[i]->last = many[i]->start + DPAGE - 1;
	}
	dirty_start_raw((const Mpdev__IovaRange *const *)many, n_many, DPAGE, ENOSPC, "at most");
	for (size_t i = 0; i < n_many; i++)
		free(many[i]);
	free(many);
	/* After all that, a good start works, and a second one is refused. */
	dirty_start1(0, (1ull << 30) - 1, DPAGE, 0, NULL);
	dirty_start1(1ull << 32, (1ull << 32) + DPAGE - 1, DPAGE, EBUSY, "already started");
}
END_TEST

static void dirty_report_raw(uint64_t iova, uint64_t size, uint64_t page_size, int status,
			     const char *words)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__DirtyReport dr = MPDEV__DIRTY_REPORT__INIT;

	dr.iova = iova;
	dr.size = size;
	dr.page_size = page_size;
	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_REPORT;
	env.dirty_report = &dr;
	send_env(&env, 0, NULL, 0);
	if (status) {
		expect_reply(env.id, status, words);
	} else {
		struct wire_msg m;

		native_recv(rem.sock, &m);
		ck_assert_uint_eq(m.env->id, env.id);
		ck_assert_uint_eq(m.env->status, 0);
		ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_DIRTY_BITMAP);
		ck_assert_uint_eq(m.env->dirty_bitmap->bitmap.len, (size / page_size + 7) / 8);
		wire_msg_release(&m);
	}
	expect_alive();
}

struct dirty_report_case {
	const char *what;
	uint64_t iova, size, page_size;
	int status;
	const char *words;
};

/* Tracking [64 KiB, 64 KiB + 4 GiB) at 4 KiB pages. */
#define DBASE 0x10000ull
#define DSIZE (1ull << 32)

static const struct dirty_report_case dirty_report_cases[] = {
	{ "size 0", DBASE, 0, DPAGE, EINVAL, "multiples" },
	{ "unaligned iova", DBASE + 1, DPAGE, DPAGE, EINVAL, "multiples" },
	{ "unaligned size", DBASE, DPAGE + 1, DPAGE, EINVAL, "multiples" },
	{ "page size 0", DBASE, DPAGE, 0, EINVAL, "power of two" },
	{ "page size 3", DBASE, DPAGE, 3, EINVAL, "power of two" },
	{ "page size other than started", DBASE, 0x10000, 0x10000, EINVAL, "started with" },
	{ "all of the range: too big for a reply", DBASE, DSIZE, DPAGE, E2BIG, "at most" },
	{ "huge size", DBASE, UINT64_MAX & ~(DPAGE - 1), DPAGE, E2BIG, "at most" },
	{ "before the range", 0, DPAGE, DPAGE, EINVAL, "within one started range" },
	{ "straddles the start", DBASE - DPAGE, 2 * DPAGE, DPAGE, EINVAL, "within one" },
	{ "straddles the end", DBASE + DSIZE - DPAGE, 2 * DPAGE, DPAGE, EINVAL, "within one" },
	{ "after the range", DBASE + DSIZE, DPAGE, DPAGE, EINVAL, "within one" },
	{ "wraps around", UINT64_MAX & ~(DPAGE - 1), 2 * DPAGE, DPAGE, EINVAL, "wrapping" },
	/* The limit exactly fits; one page more does not. */
	{ "the most pages a reply holds", DBASE, MPDEV_DIRTY_REPORT_MAX_PAGES *DPAGE, DPAGE, 0,
	  NULL },
	{ "one page more", DBASE, (MPDEV_DIRTY_REPORT_MAX_PAGES + 1) * DPAGE, DPAGE, E2BIG,
	  "at most" },
	{ "one page, at the end", DBASE + DSIZE - DPAGE, DPAGE, DPAGE, 0, NULL },
};

START_TEST(dirty_report_table)
{
	dirty_report_raw(DBASE, DPAGE, DPAGE, EINVAL, "not started");
	dirty_start1(DBASE, DBASE + DSIZE - 1, DPAGE, 0, NULL);
	for (size_t i = 0; i < sizeof(dirty_report_cases) / sizeof(dirty_report_cases[0]); i++) {
		const struct dirty_report_case *c = &dirty_report_cases[i];

		dirty_report_raw(c->iova, c->size, c->page_size, c->status, c->words);
	}
}
END_TEST

/* ---- before and during the handshake: a fresh remote each ---- */

static void start_ungreeted(void)
{
	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_UNGREETED });
}

START_TEST(requests_before_hello_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;

	rr.size = 4;
	env.id = 11;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	env.region_read = &rr;
	send_env(&env, 0, NULL, 0);
	expect_reply(11, EPROTO, "hello first");

	hello(2, EPROTONOSUPPORT);
	hello(0, EPROTONOSUPPORT);
	hello(MPDEV_PROTO_VERSION, 0);
	remote_take_baseline(&rem);
	expect_alive();
}
END_TEST

START_TEST(tiny_peer_limits_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello h = MPDEV__HELLO__INIT;
	Mpdev__Limits lim = MPDEV__LIMITS__INIT;

	lim.max_msg_size = 100;
	h.version = MPDEV_PROTO_VERSION;
	h.limits = &lim;
	env.id = 12;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(&env, 0, NULL, 0);
	expect_reply(12, EINVAL, "max message size");
	hello(MPDEV_PROTO_VERSION, 0);
}
END_TEST

START_TEST(posted_write_without_the_feature_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello h = MPDEV__HELLO__INIT;
	struct wire_msg m;
	uint64_t id;

	h.version = MPDEV_PROTO_VERSION;
	h.features = MPDEV__FEATURE__FEATURE_STATS; /* no posted writes */
	env.id = rem.next_id++;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(&env, 0, NULL, 0);
	native_recv(rem.sock, &m);
	ck_assert_uint_eq(m.env->status, 0);
	ck_assert_uint_eq(m.env->hello_reply->features, MPDEV__FEATURE__FEATURE_STATS);
	wire_msg_release(&m);
	remote_take_baseline(&rem);

	id = rem.next_id++;
	send_body_kind(MPDEV__KIND__KIND_POSTED, id, 1);
	expect_reply(id, ENOTSUP, "not negotiated");
	expect_alive();
}
END_TEST

static Suite *bad_input_suite(void)
{
	Suite *s = suite_create("bad_input");
	TCase *tc = tcase_create("greeted");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, undecodable_packets);
	tcase_add_test(tc, every_body_with_wrong_fd_count);
	tcase_add_test(tc, every_request_body_is_answered);
	tcase_add_test(tc, region_access_table);
	tcase_add_test(tc, message_kinds);
	tcase_add_test(tc, unknown_and_missing_bodies);
	tcase_add_test(tc, second_hello_refused);
	tcase_add_test(tc, request_id_zero_refused);
	tcase_add_test(tc, features_not_negotiated_refused);
	tcase_add_test(tc, get_io_eventfds_table);
	tcase_add_test(tc, dirty_start_table);
	tcase_add_test(tc, dirty_report_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshake");
	tcase_add_checked_fixture(tc, start_ungreeted, stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, requests_before_hello_refused);
	tcase_add_test(tc, tiny_peer_limits_refused);
	tcase_add_test(tc, posted_write_without_the_feature_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(bad_input_suite());
}
