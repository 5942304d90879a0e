/*
 * The stream faces' input buffer: whole messages parsed out of partial
 * reads, descriptors handed to the message whose bytes they came with, and
 * every descriptor closed when it is refused or left behind.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream_in.h"
#include "testutil.h"

static void send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ck_assert_int_eq(sendmsg(sock, &mh, 0), (ssize_t)len);
}

/* Reads until the socket is drained. */
static void fill_all(struct stream_in *in, int sock)
{
	int r;

	while ((r = stream_in_fill(in, sock)) > 0)
		;
	ck_assert_int_eq(r, -EAGAIN);
}

START_TEST(descriptors_go_with_their_message)
{
	struct stream_in in;
	int sv[2], a = testutil_eventfd(), b[2] = { testutil_eventfd(), testutil_eventfd() };
	int got[4];
	size_t n;
	int before;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	before = testutil_count_fds(getpid());
	ck_assert_int_eq(stream_in_init(&in, 64), 0);
	send_with_fds(sv[0], "AAAAAAAAAA", 10, &a, 1);
	send_with_fds(sv[0], "BBBBB", 5, b, 2);
	send_with_fds(sv[0], "CCC", 3, NULL, 0);
	fill_all(&in, sv[1]);
	ck_assert_uint_eq(in.len, 18);
	ck_assert_int_eq(stream_in_consume(&in, 10, got, 4, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(testutil_same_file(got[0], a));
	close(got[0]);
	ck_assert_int_eq(memcmp(in.buf, "BBBBBCCC", 8), 0);
	ck_assert_int_eq(stream_in_consume(&in, 5, got, 4, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(testutil_same_file(got[0], b[0]) && testutil_same_file(got[1], b[1]));
	close(got[0]);
	close(got[1]);
	ck_assert_int_eq(stream_in_consume(&in, 3, got, 4, &n), 0);
	ck_assert_uint_eq(n, 0);
	stream_in_release(&in);
	ck_assert_int_eq(testutil_count_fds(getpid()), before);
	close(a);
	close(b[0]);
	close(b[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A read may glue a message without descriptors to the next one, which has some. */
START_TEST(descriptors_skip_a_message_without_any)
{
	struct stream_in in;
	int sv[2], b = testutil_eventfd(), got[2];
	size_t n;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(stream_in_init(&in, 64), 0);
	send_with_fds(sv[0], "AAAAAAAA", 8, NULL, 0);
	send_with_fds(sv[0], "BBBBBBBB", 8, &b, 1);
	fill_all(&in, sv[1]);
	ck_assert_int_eq(stream_in_consume(&in, 8, got, 2, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(stream_in_consume(&in, 8, got, 2, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(testutil_same_file(got[0], b));
	close(got[0]);
	stream_in_release(&in);
	close(b);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(too_many_for_a_message_are_closed)
{
	struct stream_in in;
	int sv[2], e[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() }, got[1];
	size_t n;
	int before;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	before = testutil_count_fds(getpid());
	ck_assert_int_eq(stream_in_init(&in, 64), 0);
	send_with_fds(sv[0], "XXXX", 4, e, 3);
	fill_all(&in, sv[1]);
	ck_assert_int_eq(stream_in_consume(&in, 4, got, 1, &n), -EPROTO);
	ck_assert_uint_eq(n, 1);
	close(got[0]);
	ck_assert_int_eq(testutil_count_fds(getpid()), before);
	stream_in_release(&in);
	for (int i = 0; i < 3; i++)
		close(e[i]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(a_partial_message_waits_and_a_full_buffer_says_so)
{
	struct stream_in in;
	int sv[2], e = testutil_eventfd(), before;
	char big[40];

	memset(big, 'Z', sizeof(big));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	before = testutil_count_fds(getpid());
	ck_assert_int_eq(stream_in_init(&in, 32), 0);
	send_with_fds(sv[0], big, sizeof(big), &e, 1);
	for (;;) {
		int r = stream_in_fill(&in, sv[1]);

		if (r == -ENOBUFS)
			break;
		ck_assert_int_gt(r, 0);
	}
	ck_assert_uint_eq(in.len, 32);
	ck_assert_uint_eq(in.nfds, 1);
	/* Queued descriptors are closed with the buffer. */
	stream_in_release(&in);
	ck_assert_int_eq(testutil_count_fds(getpid()), before);
	close(e);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(end_of_stream)
{
	struct stream_in in;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(stream_in_init(&in, 16), 0);
	send_with_fds(sv[0], "ab", 2, NULL, 0);
	close(sv[0]);
	ck_assert_int_eq(stream_in_fill(&in, sv[1]), 2);
	ck_assert_int_eq(stream_in_fill(&in, sv[1]), 0);
	ck_assert(in.eof);
	ck_assert_uint_eq(in.len, 2);
	stream_in_release(&in);
	close(sv[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stream_in");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, descriptors_go_with_their_message);
	tcase_add_test(tc, descriptors_skip_a_message_without_any);
	tcase_add_test(tc, too_many_for_a_message_are_closed);
	tcase_add_test(tc, a_partial_message_waits_and_a_full_buffer_says_so);
	tcase_add_test(tc, end_of_stream);
	suite_add_tcase(s, tc);
	return testutil_run_suite(s);
}
