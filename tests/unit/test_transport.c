/* SOCK_SEQPACKET + SCM_RIGHTS transport and the envelope framing on top. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "native_raw.h"
#include "testutil.h"
#include "transport.h"
#include "wire.h"

static int sv[2];

static void setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
	close(sv[0]);
	close(sv[1]);
}

START_TEST(fds_arrive_as_the_same_files)
{
	int out[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() };
	int in[8];
	size_t n = 99;
	char buf[16];

	ck_assert_int_eq(transport_send(sv[0], "abc", 3, out, 3, 1000), 0);
	ck_assert_int_eq(transport_recv(sv[1], buf, sizeof(buf), in, 8, &n, 0), 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(buf, "abc", 3);
	for (int i = 0; i < 3; i++) {
		ck_assert(testutil_same_file(out[i], in[i]));
		ck_assert_int_ne(out[i], in[i]);
		/* MSG_CMSG_CLOEXEC: nothing we receive leaks into an exec'd child. */
		ck_assert(fcntl(in[i], F_GETFD) & FD_CLOEXEC);
	}
	transport_close_fds(out, 3);
	transport_close_fds(in, 3);
}
END_TEST

START_TEST(truncated_packet_is_an_error_and_closes_its_fds)
{
	char big[200], small[16];
	int out = testutil_eventfd(), in[4];
	int base;
	size_t n = 99;

	memset(big, 'x', sizeof(big));
	base = testutil_count_fds(0);
	ck_assert_int_eq(transport_send(sv[0], big, sizeof(big), &out, 1, 1000), 0);
	ck_assert_int_eq(transport_recv(sv[1], small, sizeof(small), in, 4, &n, 0), -EMSGSIZE);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(testutil_count_fds(0), base);
	close(out);
}
END_TEST

START_TEST(too_many_fds_is_ctrunc_and_nothing_leaks)
{
	int out[6], in[2];
	int base;
	size_t n = 99;
	char buf[8];

	for (int i = 0; i < 6; i++)
		out[i] = testutil_eventfd();
	base = testutil_count_fds(0);
	ck_assert_int_eq(transport_send(sv[0], "x", 1, out, 6, 1000), 0);
	ck_assert_int_eq(transport_recv(sv[1], buf, sizeof(buf), in, 2, &n, 0), -EPROTO);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(testutil_count_fds(0), base);
	transport_close_fds(out, 6);
}
END_TEST

START_TEST(empty_packet_is_not_end_of_connection)
{
	char buf[8];
	int in[2];
	size_t n;

	ck_assert_int_eq(transport_send(sv[0], "", 0, NULL, 0, 1000), 0);
	ck_assert_int_eq(transport_recv(sv[1], buf, sizeof(buf), in, 2, &n, 0), -EBADMSG);
	close(sv[0]);
	ck_assert_int_eq(transport_recv(sv[1], buf, sizeof(buf), in, 2, &n, 0), 0);
	sv[0] = open("/dev/null", O_RDONLY);
}
END_TEST

START_TEST(nonblocking_recv_says_eagain)
{
	char buf[8];
	int in[2];
	size_t n;

	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	ck_assert_int_eq(transport_recv(sv[1], buf, sizeof(buf), in, 2, &n, 0), -EAGAIN);
}
END_TEST

START_TEST(send_to_a_full_socket_times_out)
{
	char buf[4096] = { 0 };
	int r = 0, sent = 0;

	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	/* Nobody reads sv[1]: the buffer fills and the bounded wait gives up. */
	while ((r = transport_send(sv[0], buf, sizeof(buf), NULL, 0, 50)) == 0 && sent < 100000)
		sent++;
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_int_gt(sent, 0);
}
END_TEST

START_TEST(send_to_a_closed_peer_is_epipe)
{
	close(sv[1]);
	ck_assert_int_eq(transport_send(sv[0], "x", 1, NULL, 0, 100), -EPIPE);
	sv[1] = open("/dev/null", O_RDONLY);
}
END_TEST

START_TEST(wire_roundtrip_with_fds)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	int fds[2] = { testutil_eventfd(), testutil_eventfd() };
	int got;

	env.id = 42;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	ck_assert_int_eq(wire_send(sv[0], &env, fds, 2), 0);
	ck_assert_int_eq(wire_recv(sv[1], &m, &err, 0), 1);
	ck_assert_uint_eq(m.env->id, 42);
	ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_PING);
	ck_assert_uint_eq(m.nfds, 2);
	got = wire_take_fd(&m, 1);
	ck_assert(testutil_same_file(got, fds[1]));
	ck_assert_int_eq(wire_take_fd(&m, 1), -EBADF);
	ck_assert_int_eq(wire_take_fd(&m, 2), -EBADF);
	wire_msg_release(&m);
	close(got);
	transport_close_fds(fds, 2);
}
END_TEST

START_TEST(wire_fd_count_mismatch_closes_everything)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	int fd = testutil_eventfd();
	int base = testutil_count_fds(0);

	env.id = 7;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	/* Declares two, carries one. */
	native_send_env(sv[0], &env, 2, &fd, 1);
	ck_assert_int_eq(wire_recv(sv[1], &m, &err, 0), -EPROTO);
	ck_assert_ptr_nonnull(m.env); /* the id is known, so the error can be answered */
	ck_assert_uint_eq(m.env->id, 7);
	ck_assert_ptr_nonnull(strstr(err.msg, "declares 2"));
	wire_msg_release(&m);
	ck_assert_int_eq(testutil_count_fds(0), base);

	/* Declares none, carries one. */
	native_send_env(sv[0], &env, 0, &fd, 1);
	ck_assert_int_eq(wire_recv(sv[1], &m, &err, 0), -EPROTO);
	wire_msg_release(&m);
	ck_assert_int_eq(testutil_count_fds(0), base);
	close(fd);
}
END_TEST

START_TEST(wire_oversize_refused_both_ways)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	static uint8_t big[MPDEV_MAX_MSG_SIZE + 100];
	int fd = testutil_eventfd();
	int base = testutil_count_fds(0);

	rw.data.data = big;
	rw.data.len = sizeof(big);
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env.region_write = &rw;
	ck_assert_int_eq(wire_send(sv[0], &env, NULL, 0), -EMSGSIZE);

	/* A raw sender ignoring the limit: the receiver sees MSG_TRUNC. */
	ck_assert_int_eq(transport_send(sv[0], big, sizeof(big), &fd, 1, 1000), 0);
	ck_assert_int_eq(wire_recv(sv[1], &m, &err, 0), -EMSGSIZE);
	ck_assert_ptr_null(m.env);
	wire_msg_release(&m);
	ck_assert_int_eq(testutil_count_fds(0), base);
	close(fd);
}
END_TEST

START_TEST(wire_garbage_never_crashes_or_leaks)
{
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	uint8_t buf[256];
	unsigned seed = 12345;
	int base = testutil_count_fds(0), decoded = 0, refused = 0;

	for (int iter = 0; iter < 5000; iter++) {
		size_t len = 1 + (size_t)(rand_r(&seed) % sizeof(buf));
		int fd = testutil_eventfd();
		int r;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		ck_assert_int_eq(transport_send(sv[0], buf, len, &fd, iter % 2, 1000), 0);
		close(fd);
		r = wire_recv(sv[1], &m, &err, 0);
		ck_assert(r == 1 || r == -EBADMSG || r == -EPROTO);
		if (r == 1)
			decoded++;
		else
			refused++;
		wire_msg_release(&m);
	}
	ck_assert_int_eq(testutil_count_fds(0), base);
	ck_assert_int_gt(refused, 0);
	(void)decoded;
}
END_TEST

START_TEST(wire_truncated_encodings_are_refused)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	struct mpdev_error err = { 0 };
	struct wire_msg m;
	uint8_t data[64] = { 1 }, buf[256];
	size_t len;
	int refused = 0;

	rw.index = 0;
	rw.offset = 0x1000;
	rw.data.data = data;
	rw.data.len = sizeof(data);
	env.id = 3;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env.region_write = &rw;
	len = mpdev__envelope__pack(&env, buf);
	/* Every proper prefix that cuts a field short must fail to decode. */
	for (size_t cut = 1; cut < len; cut++) {
		int r;

		ck_assert_int_eq(transport_send(sv[0], buf, cut, NULL, 0, 1000), 0);
		r = wire_recv(sv[1], &m, &err, 0);
		if (r == -EBADMSG)
			refused++;
		else
			ck_assert_int_eq(r, 1); /* a prefix ending on a field boundary */
		wire_msg_release(&m);
	}
	ck_assert_int_ge(refused, (int)len - 8);
}
END_TEST

static Suite *transport_suite(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("seqpacket");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, fds_arrive_as_the_same_files);
	tcase_add_test(tc, truncated_packet_is_an_error_and_closes_its_fds);
	tcase_add_test(tc, too_many_fds_is_ctrunc_and_nothing_leaks);
	tcase_add_test(tc, empty_packet_is_not_end_of_connection);
	tcase_add_test(tc, nonblocking_recv_says_eagain);
	tcase_add_test(tc, send_to_a_full_socket_times_out);
	tcase_add_test(tc, send_to_a_closed_peer_is_epipe);
	suite_add_tcase(s, tc);

	tc = tcase_create("wire");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, wire_roundtrip_with_fds);
	tcase_add_test(tc, wire_fd_count_mismatch_closes_everything);
	tcase_add_test(tc, wire_oversize_refused_both_ways);
	tcase_add_test(tc, wire_garbage_never_crashes_or_leaks);
	tcase_add_test(tc, wire_truncated_encodings_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(transport_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
