/*
 * Who answers DirtyStart / DirtyReport / DirtyStop (remote/session_dirty.c),
 * with a session in-process over a socketpair and fake backends: a backend
 * with dirty ops gets the requests, converted exactly, and its bitmap and
 * its errors go back unchanged; a backend with its own IOMMU (dma_map) and
 * no dirty ops is not offered the feature and is refused; a backend
 * without dma_map (an emulated device) is served by the remote's tracker.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host.h"
#include "session.h"
#include "testutil.h"
#include "wire.h"

/* ---- a fake backend that records what it is asked ---- */

static struct {
	int starts, stops, reports;
	struct backend_dirty_range ranges[4];
	size_t n;
	uint64_t page_size, iova, size;
	size_t len;
	int fail; /* errno the next dirty call fails with */
} calls;

static void fake_info(struct backend *b, struct backend_device_info *info)
{
	(void)b;
	memset(info, 0, sizeof(*info));
	strcpy(info->name, "fake");
}

static int fake_rw(struct backend *b, uint32_t index, uint64_t offset, const void *data,
		   uint32_t size, struct mpdev_error *err)
{
	(void)b, (void)index, (void)offset, (void)data, (void)size;
	return mpdev_error_set(err, EIO, "not used");
}

static int fake_read(struct backend *b, uint32_t index, uint64_t offset, void *data, uint32_t size,
		     struct mpdev_error *err)
{
	return fake_rw(b, index, offset, data, size, err);
}

static int fake_reset(struct backend *b, struct mpdev_error *err)
{
	(void)b, (void)err;
	return 0;
}

static int fake_map(struct backend *b, const struct backend_dma_region *r, struct mpdev_error *err)
{
	(void)b, (void)r, (void)err;
	return 0;
}

static void fake_destroy(struct backend *b)
{
	(void)b;
}

static int fake_dirty_start(struct backend *b, const struct backend_dirty_range *r, size_t n,
			    uint64_t page_size, struct mpdev_error *err)
{
	(void)b;
	calls.starts++;
	calls.n = n;
	memcpy(calls.ranges, r, (n < 4 ? n : 4) * sizeof(*r));
	calls.page_size = page_size;
	return calls.fail ? mpdev_error_set(err, calls.fail, "the kernel says no") : 0;
}

static int fake_dirty_stop(struct backend *b, struct mpdev_error *err)
{
	(void)b;
	calls.stops++;
	return calls.fail ? mpdev_error_set(err, calls.fail, "the kernel says no") : 0;
}

/* Page n is dirty when n % 3 == 0. */
static int fake_dirty_report(struct backend *b, uint64_t iova, uint64_t size, uint64_t page_size,
			     uint8_t *bitmap, size_t len, struct mpdev_error *err)
{
	(void)b;
	calls.reports++;
	calls.iova = iova;
	calls.size = size;
	calls.page_size = page_size;
	calls.len = len;
	if (calls.fail)
		return mpdev_error_set(err, calls.fail, "the kernel says no");
	for (uint64_t n = 0; n < size / page_size; n++)
		if (n % 3 == 0)
			bitmap[n / 8] |= (uint8_t)(1u << (n % 8));
	return 0;
}

static const struct backend_ops with_dirty_ops = {
	.name = "fake-vfio-dirty",
	.get_info = fake_info,
	.region_read = fake_read,
	.region_write = fake_rw,
	.reset = fake_reset,
	.dma_map = fake_map,
	.dma_unmap = fake_map,
	.dirty_start = fake_dirty_start,
	.dirty_stop = fake_dirty_stop,
	.dirty_report = fake_dirty_report,
	.destroy = fake_destroy,
};

static const struct backend_ops iommu_no_dirty_ops = {
	.name = "fake-vfio",
	.get_info = fake_info,
	.region_read = fake_read,
	.region_write = fake_rw,
	.reset = fake_reset,
	.dma_map = fake_map,
	.dma_unmap = fake_map,
	.destroy = fake_destroy,
};

static const struct backend_ops emulated_ops = {
	.name = "fake-emu",
	.get_info = fake_info,
	.region_read = fake_read,
	.region_write = fake_rw,
	.reset = fake_reset,
	.destroy = fake_destroy,
};

/* ---- a session on one end of a socketpair, the test on the other ---- */

static struct {
	struct event_base *base;
	struct remote_host host;
	struct backend be;
	struct server_stats stats;
	struct session s;
	int sv[2];
	uint64_t id;
} x;

/* Sends env as a request and returns the reply in rep (release it). */
static void call(Mpdev__Envelope *env, struct wire_msg *rep)
{
	static uint8_t buf[MPDEV_MAX_MSG_SIZE];
	struct mpdev_error err = { 0 };
	struct wire_msg in;
	size_t len;

	env->id = x.id++;
	env->kind = MPDEV__KIND__KIND_REQUEST;
	len = wire_pack(env, 0, buf, sizeof(buf));
	ck_assert_uint_gt(len, 0);
	wire_msg_init(&in);
	ck_assert_int_eq(wire_decode(&in, buf, len, &err), 1);
	ck_assert_int_eq(session_handle(&x.s, &in), 0);
	wire_msg_release(&in);
	ck_assert_int_eq(wire_recv(x.sv[1], rep, &err, MSG_DONTWAIT), 1);
	ck_assert_uint_eq(rep->env->id, env->id);
}

static void open_session(const struct backend_ops *ops, uint64_t features, uint64_t want)
{
	struct mpdev_error err = { 0 };
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello h = MPDEV__HELLO__INIT;
	struct wire_msg rep;

	memset(&calls, 0, sizeof(calls));
	memset(&x, 0, sizeof(x));
	x.base = event_base_new();
	ck_assert_ptr_nonnull(x.base);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, x.sv), 0);
	ck_assert_msg(remote_host_init(&x.host, x.base, &err) == 0, "%s", err.msg);
	x.be.ops = ops;
	x.be.base = x.base;
	x.be.host = &x.host.ops;
	ck_assert_msg(remote_host_set_backend(&x.host, &x.be, &err) == 0, "%s", err.msg);
	session_init(&x.s, x.sv[0], &face_native, &x.be, &x.host, &x.stats);
	x.id = 1;
	h.version = MPDEV_PROTO_VERSION;
	h.features = features;
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	call(&env, &rep);
	ck_assert_uint_eq(rep.env->status, 0);
	ck_assert_uint_eq(rep.env->hello_reply->features, want);
	wire_msg_release(&rep);
}

static void close_session(void)
{
	session_release(&x.s);
	remote_host_destroy(&x.host);
	close(x.sv[0]);
	close(x.sv[1]);
	event_base_free(x.base);
}

static void expect_status(Mpdev__Envelope *env, int status, const char *words)
{
	struct wire_msg rep;

	call(env, &rep);
	ck_assert_uint_eq(rep.env->status, status);
	if (words)
		ck_assert_msg(strstr(rep.env->error, words), "'%s' lacks '%s'", rep.env->error,
			      words);
	wire_msg_release(&rep);
}

static void start_env(Mpdev__Envelope *env, Mpdev__DirtyStart *ds, Mpdev__IovaRange *r,
		      Mpdev__IovaRange **ptrs, size_t n, uint64_t page_size)
{
	mpdev__envelope__init(env);
	mpdev__dirty_start__init(ds);
	for (size_t i = 0; i < n; i++)
		ptrs[i] = &r[i];
	ds->ranges = ptrs;
	ds->n_ranges = n;
	ds->page_size = page_size;
	env->body_case = MPDEV__ENVELOPE__BODY_DIRTY_START;
	env->dirty_start = ds;
}

static void report_env(Mpdev__Envelope *env, Mpdev__DirtyReport *dr, uint64_t iova, uint64_t size,
		       uint64_t page_size)
{
	mpdev__envelope__init(env);
	mpdev__dirty_report__init(dr);
	dr->iova = iova;
	dr->size = size;
	dr->page_size = page_size;
	env->body_case = MPDEV__ENVELOPE__BODY_DIRTY_REPORT;
	env->dirty_report = dr;
}

static void stop_env(Mpdev__Envelope *env, Mpdev__DirtyStop *st)
{
	mpdev__envelope__init(env);
	mpdev__dirty_stop__init(st);
	env->body_case = MPDEV__ENVELOPE__BODY_DIRTY_STOP;
	env->dirty_stop = st;
}

#define ALL	 0xffull
#define NO_DIRTY (ALL & ~(uint64_t)MPDEV__FEATURE__FEATURE_DIRTY_TRACKING)

START_TEST(backend_with_dirty_ops_is_asked)
{
	Mpdev__Envelope env;
	Mpdev__DirtyStart ds;
	Mpdev__DirtyReport dr;
	Mpdev__DirtyStop st;
	Mpdev__IovaRange r[2] = { MPDEV__IOVA_RANGE__INIT, MPDEV__IOVA_RANGE__INIT };
	Mpdev__IovaRange *ptrs[2];
	struct wire_msg rep;

	open_session(&with_dirty_ops, ALL, ALL & SESSION_FEATURES);
	r[0].start = 0x100000;
	r[0].last = 0x1fffff;
	r[1].start = 1ull << 32;
	r[1].last = (1ull << 33) - 1;
	start_env(&env, &ds, r, ptrs, 2, 0x1000);
	expect_status(&env, 0, NULL);
	ck_assert_int_eq(calls.starts, 1);
	ck_assert_uint_eq(calls.n, 2);
	ck_assert_uint_eq(calls.ranges[0].iova, 0x100000);
	ck_assert_uint_eq(calls.ranges[0].size, 0x100000);
	ck_assert_uint_eq(calls.ranges[1].iova, 1ull << 32);
	ck_assert_uint_eq(calls.ranges[1].size, 1ull << 32);
	ck_assert_uint_eq(calls.page_size, 0x1000);
	ck_assert(!x.host.dma.dirty.active); /* the remote's own tracker is not involved */

	/* 20 pages: a 3-byte bitmap, as the backend filled it (pages 0, 3, ..., 18). */
	report_env(&env, &dr, 0x100000, 20 * 0x1000, 0x1000);
	call(&env, &rep);
	ck_assert_uint_eq(rep.env->status, 0);
	ck_assert_int_eq(rep.env->body_case, MPDEV__ENVELOPE__BODY_DIRTY_BITMAP);
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.len, 3);
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.data[0], 0x49); /* 0, 3, 6 */
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.data[1], 0x92); /* 9, 12, 15 */
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.data[2], 0x04); /* 18 */
	wire_msg_release(&rep);
	ck_assert_uint_eq(calls.iova, 0x100000);
	ck_assert_uint_eq(calls.size, 20 * 0x1000);
	ck_assert_uint_eq(calls.len, 3);
	ck_assert_uint_eq(x.host.dma.dirty.stats.reports, 1);

	/* The reply limit holds for a backend too: it is not asked. */
	report_env(&env, &dr, 0, (MPDEV_DIRTY_REPORT_MAX_PAGES + 1) * 0x1000, 0x1000);
	expect_status(&env, E2BIG, "at most 523776 pages");
	ck_assert_int_eq(calls.reports, 1);

	/* Its errors travel unchanged. */
	calls.fail = EOPNOTSUPP;
	report_env(&env, &dr, 0x100000, 0x1000, 0x1000);
	expect_status(&env, EOPNOTSUPP, "the kernel says no");
	stop_env(&env, &st);
	expect_status(&env, EOPNOTSUPP, "the kernel says no");
	calls.fail = 0;
	expect_status(&env, 0, NULL);
	ck_assert_int_eq(calls.stops, 2);
	close_session();
}
END_TEST

START_TEST(backend_with_an_iommu_and_no_dirty_ops_is_refused)
{
	Mpdev__Envelope env;
	Mpdev__DirtyStop st;

	/* Not offered in the handshake: the dispatcher's feature check refuses. */
	open_session(&iommu_no_dirty_ops, ALL, NO_DIRTY & SESSION_FEATURES);
	stop_env(&env, &st);
	expect_status(&env, ENOTSUP, "not negotiated");
	ck_assert_int_eq(calls.stops, 0);
	close_session();
}
END_TEST

START_TEST(emulated_device_uses_the_remote_tracker)
{
	Mpdev__Envelope env;
	Mpdev__DirtyStart ds;
	Mpdev__DirtyReport dr;
	Mpdev__DirtyStop st;
	Mpdev__IovaRange r = MPDEV__IOVA_RANGE__INIT;
	Mpdev__IovaRange *ptrs[1];
	struct wire_msg rep;

	open_session(&emulated_ops, ALL, ALL & SESSION_FEATURES);
	r.start = 0x100000;
	r.last = 0x10ffff;
	start_env(&env, &ds, &r, ptrs, 1, 0x1000);
	expect_status(&env, 0, NULL);
	ck_assert(x.host.dma.dirty.active);
	dirty_mark(&x.host.dma.dirty, 0x100000 + 5 * 0x1000, 1);
	report_env(&env, &dr, 0x100000, 16 * 0x1000, 0x1000);
	call(&env, &rep);
	ck_assert_uint_eq(rep.env->status, 0);
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.len, 2);
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.data[0], 0x20);
	ck_assert_uint_eq(rep.env->dirty_bitmap->bitmap.data[1], 0);
	wire_msg_release(&rep);
	/* [start, last] with last < start, and the whole space, have no size. */
	r.start = 0x2000;
	r.last = 0x1fff;
	stop_env(&env, &st);
	expect_status(&env, 0, NULL);
	start_env(&env, &ds, &r, ptrs, 1, 0x1000);
	expect_status(&env, EINVAL, "range 0");
	r.start = 0;
	r.last = UINT64_MAX;
	expect_status(&env, EINVAL, "range 0");
	ck_assert(!x.host.dma.dirty.active);
	close_session();
}
END_TEST

static Suite *session_dirty_suite(void)
{
	Suite *s = suite_create("session_dirty");
	TCase *tc = tcase_create("sources");

	tcase_add_test(tc, backend_with_dirty_ops_is_asked);
	tcase_add_test(tc, backend_with_an_iommu_and_no_dirty_ops_is_refused);
	tcase_add_test(tc, emulated_device_uses_the_remote_tracker);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(session_dirty_suite());
}
