/*
 * Fixed-layout region accesses (FEATURE_FIXED_ACCESS) against a real
 * mpdev-remote: the records libmpdev sends by default give the answers the
 * Envelope path gives, and every malformed record gets an error Envelope
 * with its id and words (or a notification when no id can be read), after
 * which the remote answers the next request and holds its baseline
 * descriptors. The same width and bounds rules as the Envelope table in
 * test_bad_input.c, through the other decoder.
 */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fixed_access.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"

#define EDU_ID	      0x00
#define EDU_LIVENESS  0x04
#define EDU_ID_VALUE  0x010000edu
#define EDU_BAR0_SIZE (1u << 20)

static struct remote rem;

static void start(void)
{
	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
}

static void start_ungreeted(void)
{
	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_UNGREETED });
}

static void stop(void)
{
	remote_stop(&rem);
}

static uint64_t send_fixed(uint8_t op, uint8_t index, uint64_t offset, uint8_t size, uint64_t data)
{
	struct fixed_access a = { .op = op,
				  .index = index,
				  .size = size,
				  .offset = offset,
				  .data = data,
				  .id = rem.next_id++ };
	uint8_t buf[FIXED_ACCESS_REQ_SIZE];

	native_send_bytes(rem.sock, buf, fixed_access_pack_req(&a, buf), NULL, 0);
	return a.id;
}

static uint64_t fixed_call(uint8_t op, uint8_t index, uint64_t offset, uint8_t size, uint64_t data)
{
	uint64_t id = send_fixed(op, index, offset, size, data);
	struct fixed_access got;

	native_recv_fixed(rem.sock, &got);
	ck_assert_uint_eq(got.id, id);
	ck_assert_uint_eq(got.op, op == FIXED_OP_READ ? FIXED_OP_READ_REPLY : FIXED_OP_WRITE_REPLY);
	return got.data;
}

START_TEST(reads_and_writes)
{
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_ID, 4, 0), EDU_ID_VALUE);
	ck_assert_uint_eq(fixed_call(FIXED_OP_WRITE, 0, EDU_LIVENESS, 4, 0x12345678), 0);
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0), ~0x12345678u);
	/* Config space: the vendor/device word, and narrower reads of it, little-endian. */
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 7, 0, 4, 0), 0x11e81234);
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 7, 2, 2, 0), 0x11e8);
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 7, 1, 1, 0), 0x12);
	/* An 8-byte BAR access is carried whole (edu answers all-ones to that width, as QEMU's
	 * does). */
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_ID, 8, 0), UINT64_MAX);
	/* A posted write has no answer; the next request sees it done. */
	send_fixed(FIXED_OP_POSTED_WRITE, 0, EDU_LIVENESS, 4, 0xa5a5a5a5);
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0), ~0xa5a5a5a5u);
	remote_expect_alive(&rem);
}
END_TEST

/* A record wrong in its own layout: raw bytes, the expected status and words. */
struct layout_case {
	const char *what;
	size_t len;
	uint8_t patch_at, patch; /* a byte to set after packing a good read (0, 0: none) */
	int status;
	const char *words;
};

static const struct layout_case layout_cases[] = {
	{ "one byte short", FIXED_ACCESS_REQ_SIZE - 1, 0, 0, EBADMSG, "exactly" },
	{ "one byte long", FIXED_ACCESS_REQ_SIZE + 1, 0, 0, EBADMSG, "exactly" },
	{ "a reply's size", FIXED_ACCESS_REPLY_SIZE, 0, 0, EBADMSG, "exactly" },
	{ "op 0", FIXED_ACCESS_REQ_SIZE, 1, 0, EBADMSG, "unknown op" },
	{ "op 4", FIXED_ACCESS_REQ_SIZE, 1, 4, EBADMSG, "unknown op" },
	{ "a reply op", FIXED_ACCESS_REQ_SIZE, 1, FIXED_OP_READ_REPLY, EBADMSG, "unknown op" },
	{ "reserved byte 4", FIXED_ACCESS_REQ_SIZE, 4, 1, EBADMSG, "reserved" },
	{ "reserved byte 7", FIXED_ACCESS_REQ_SIZE, 7, 0x80, EBADMSG, "reserved" },
	{ "a read carrying data", FIXED_ACCESS_REQ_SIZE, 24, 1, EBADMSG, "carrying data" },
	{ "a read carrying data, high byte", FIXED_ACCESS_REQ_SIZE, 31, 0xff, EBADMSG,
	  "carrying data" },
};

START_TEST(layout_table)
{
	for (size_t i = 0; i < sizeof(layout_cases) / sizeof(layout_cases[0]); i++) {
		const struct layout_case *c = &layout_cases[i];
		struct fixed_access a = { .op = FIXED_OP_READ, .size = 4, .id = rem.next_id++ };
		uint8_t buf[FIXED_ACCESS_REQ_SIZE + 8] = { 0 };

		fixed_access_pack_req(&a, buf);
		if (c->patch_at)
			buf[c->patch_at] = c->patch;
		native_send_bytes(rem.sock, buf, c->len, NULL, 0);
		native_expect_reply(rem.sock, a.id, c->status, c->words);
		remote_expect_alive(&rem);
	}
}
END_TEST

/* A well-formed record asking for what the device does not allow. */
struct access_case {
	const char *what;
	uint8_t op, index;
	uint64_t offset;
	uint8_t size;
	uint64_t data;
	int status;
	const char *words;
};

static const struct access_case access_cases[] = {
	{ "region index out of range", FIXED_OP_READ, 99, 0, 4, 0, EINVAL, "does not exist" },
	{ "region index 255", FIXED_OP_WRITE, 255, 0, 4, 0, EINVAL, "does not exist" },
	{ "region the device lacks", FIXED_OP_READ, 1, 0, 4, 0, EINVAL, "does not exist" },
	{ "ROM absent, posted", FIXED_OP_POSTED_WRITE, 6, 0, 4, 0, EINVAL, "does not exist" },
	{ "offset past the end", FIXED_OP_READ, 0, EDU_BAR0_SIZE, 4, 0, ERANGE, "outside region" },
	{ "access straddles the end", FIXED_OP_READ, 0, EDU_BAR0_SIZE - 2, 4, 0, ERANGE,
	  "outside region" },
	{ "offset overflow", FIXED_OP_READ, 0, UINT64_MAX - 1, 4, 0, ERANGE, "outside region" },
	{ "write offset overflow", FIXED_OP_WRITE, 0, UINT64_MAX, 8, 0, ERANGE, "outside region" },
	{ "width 0", FIXED_OP_READ, 0, 0, 0, 0, EINVAL, "width" },
	{ "width 3", FIXED_OP_READ, 0, 0, 3, 0, EINVAL, "width" },
	{ "width 5", FIXED_OP_WRITE, 0, 0, 5, 0, EINVAL, "width" },
	{ "width 16", FIXED_OP_READ, 0, 0, 16, 0, EINVAL, "width" },
	{ "width 255, posted", FIXED_OP_POSTED_WRITE, 0, 0, 255, 0, EINVAL, "width" },
	{ "config past 256", FIXED_OP_READ, 7, 256, 1, 0, ERANGE, "outside region" },
	{ "config straddle", FIXED_OP_WRITE, 7, 255, 2, 0, ERANGE, "outside region" },
	{ "config 8-byte", FIXED_OP_READ, 7, 0, 8, 0, EINVAL, "config space" },
	{ "config 8-byte write", FIXED_OP_WRITE, 7, 0, 8, 0, EINVAL, "config space" },
	{ "1-byte write with 2 bytes of data", FIXED_OP_WRITE, 0, EDU_LIVENESS, 1, 0x1ff, EINVAL,
	  "past its width" },
	{ "4-byte posted write with 5 bytes", FIXED_OP_POSTED_WRITE, 0, EDU_LIVENESS, 4,
	  0x100000000ull, EINVAL, "past its width" },
};

START_TEST(access_table)
{
	uint64_t liveness = fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0);

	for (size_t i = 0; i < sizeof(access_cases) / sizeof(access_cases[0]); i++) {
		const struct access_case *c = &access_cases[i];
		uint64_t id = send_fixed(c->op, c->index, c->offset, c->size, c->data);

		native_expect_reply(rem.sock, id, c->status, c->words);
		remote_expect_alive(&rem);
	}
	/* Nothing above reached the register. */
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0), liveness);
}
END_TEST

START_TEST(id_zero_and_descriptors_refused)
{
	struct fixed_access a = { .op = FIXED_OP_READ, .size = 4 };
	uint8_t buf[FIXED_ACCESS_REQ_SIZE];
	int fd = testutil_eventfd();

	/* As for an Envelope: the error goes to id 0, which no request of the peer's has. */
	native_send_bytes(rem.sock, buf, fixed_access_pack_req(&a, buf), NULL, 0);
	native_expect_reply(rem.sock, 0, EPROTO, "reserved");
	remote_expect_alive(&rem);

	a.id = rem.next_id++;
	native_send_bytes(rem.sock, buf, fixed_access_pack_req(&a, buf), &fd, 1);
	native_expect_reply(rem.sock, a.id, EPROTO, "descriptors");
	remote_expect_alive(&rem);
	close(fd);
	/* The descriptor it carried was closed by the remote: back to the baseline. */
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(before_hello_refused)
{
	uint64_t id = 7;
	struct fixed_access a = { .op = FIXED_OP_READ, .size = 4, .id = id };
	uint8_t buf[FIXED_ACCESS_REQ_SIZE];

	native_send_bytes(rem.sock, buf, fixed_access_pack_req(&a, buf), NULL, 0);
	native_expect_reply(rem.sock, id, EPROTO, "hello first");
	native_hello(rem.sock, 8, MPDEV_PROTO_VERSION, ~0ull, 0);
	rem.next_id = 9;
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_ID, 4, 0), EDU_ID_VALUE);
}
END_TEST

START_TEST(without_the_feature_refused)
{
	uint64_t id;

	/* Every feature but fixed-layout access (and then also without posted writes). */
	native_hello(rem.sock, 8, MPDEV_PROTO_VERSION,
		     ~(uint64_t)(MPDEV__FEATURE__FEATURE_FIXED_ACCESS |
				 MPDEV__FEATURE__FEATURE_POSTED_WRITES),
		     0);
	rem.next_id = 9;
	id = send_fixed(FIXED_OP_READ, 0, EDU_ID, 4, 0);
	native_expect_reply(rem.sock, id, ENOTSUP, "not negotiated");
	native_ping(rem.sock, rem.next_id++);
}
END_TEST

START_TEST(posted_without_posted_writes_refused)
{
	uint64_t id, liveness;

	native_hello(rem.sock, 8, MPDEV_PROTO_VERSION,
		     MPDEV__FEATURE__FEATURE_FIXED_ACCESS | MPDEV__FEATURE__FEATURE_STATS, 0);
	rem.next_id = 9;
	liveness = fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0);
	id = send_fixed(FIXED_OP_POSTED_WRITE, 0, EDU_LIVENESS, 4, 1);
	native_expect_reply(rem.sock, id, ENOTSUP, "posted writes");
	ck_assert_uint_eq(fixed_call(FIXED_OP_READ, 0, EDU_LIVENESS, 4, 0), liveness);
}
END_TEST

/* libmpdev: the same answers with and without the feature, and the feature is the default. */
START_TEST(libmpdev_both_encodings)
{
	for (int fixed = 0; fixed < 2; fixed++) {
		struct mpdev_options o = { .timeout_ms = 3000 };
		uint32_t v = 0, cfg = 0;

		if (!fixed)
			o.features = ~0ull & ~MPDEV_FEATURE_FIXED_ACCESS & ~MPDEV_FEATURE_SHM_RING;
		remote_start(&rem, &(struct remote_opts){ .mpdev = &o });
		ck_assert_int_eq(!!(mpdev_features(rem.dev) & MPDEV_FEATURE_FIXED_ACCESS), fixed);
		ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, EDU_ID, &v, 4), 0);
		ck_assert_uint_eq(v, EDU_ID_VALUE);
		v = 0x0badf00d;
		ck_assert_int_eq(
			mpdev_region_write(rem.dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4), 0);
		ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4),
				 0);
		ck_assert_uint_eq(v, ~0x0badf00du);
		v = 7;
		ck_assert_int_eq(
			mpdev_region_write_posted(rem.dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4),
			0);
		/* A posted write that fails is reported by the next sync, with the remote's words.
		 */
		ck_assert_int_eq(
			mpdev_region_write_posted(rem.dev, MPDEV_REGION_BAR0, EDU_BAR0_SIZE, &v, 4),
			0);
		ck_assert_int_eq(mpdev_sync(rem.dev), -EIO);
		ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "outside region"));
		ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4),
				 0);
		ck_assert_uint_eq(v, ~7u);
		/* An error reply to a read carries the remote's words through either encoding. */
		ck_assert_int_eq(
			mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, EDU_BAR0_SIZE, &v, 4),
			-ERANGE);
		ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "outside region"));
		ck_assert_int_eq(mpdev_config_read(rem.dev, 0, 4, &cfg), 0);
		ck_assert_uint_eq(cfg, 0x11e81234);
		remote_stop(&rem);
	}
}
END_TEST

static Suite *fixed_access_suite(void)
{
	Suite *s = suite_create("fixed_access");
	TCase *tc = tcase_create("greeted");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reads_and_writes);
	tcase_add_test(tc, layout_table);
	tcase_add_test(tc, access_table);
	tcase_add_test(tc, id_zero_and_descriptors_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshake");
	tcase_add_checked_fixture(tc, start_ungreeted, stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, before_hello_refused);
	tcase_add_test(tc, without_the_feature_refused);
	tcase_add_test(tc, posted_without_posted_writes_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("libmpdev");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, libmpdev_both_encodings);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(fixed_access_suite());
}
