/*
 * Hostile peers that do not need descriptors: floods of what the remote
 * logs, a hello name with a newline in it, a second remote started on a live
 * remote's socket, a client that connects and never says hello, and one that
 * sends requests without ever reading the replies.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile_util.h"

static struct remote rem, second;

static void teardown(void)
{
	remote_release(&second);
	remote_release(&rem);
}

static void start(const char *const *args)
{
	struct remote_opts o = { .listen = true, .args = args };

	hostile_start(&rem, &o);
}

/* Expects a notification of type on sock within ms (the message lives in its own arena). */
static void expect_notify(int sock, uint32_t type, int ms)
{
	struct wire_msg m;
	int r = native_try_recv(sock, &m, ms);

	ck_assert_msg(r == 1, "no notification within %d ms (%d)", ms, r);
	ck_assert_uint_eq(m.env->kind, MPDEV__KIND__KIND_NOTIFY);
	ck_assert_uint_eq(m.env->notify->type, type);
	wire_msg_release(&m);
}

START_TEST(peer_triggered_warnings_are_rate_limited)
{
	int c, lines;

	start(NULL);
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	/* Each refused second client is a warning the peer can cause at will. */
	for (int i = 0; i < 3000; i++)
		close(remote_connect_raw(&rem));
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	lines = hostile_log_lines(&rem);
	ck_assert_msg(lines < 50, "3000 refusals made %d log lines", lines);
	ck_assert_msg(hostile_log_contains(&rem, "suppressed"),
		      "the log does not say that lines were suppressed");
	close(c);
}
END_TEST

START_TEST(hello_name_cannot_forge_a_log_line)
{
	const char *args[] = { "-v", NULL };
	int c;

	start(args);
	c = remote_connect_raw(&rem);
	hostile_hello(c, "evil\nmpdev-remote[1] remote: error: forged line\x1b[2J");
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	close(c);
	ck_assert_msg(!hostile_log_line_starts(&rem, "mpdev-remote[1] remote: error: forged"),
		      "the hello name forged a log line");
	ck_assert_msg(hostile_log_contains(&rem, "evil\\nmpdev-remote[1]"),
		      "the hello name is not logged escaped");
	ck_assert_msg(!hostile_log_contains(&rem, "\x1b"), "a control character reached the log");
}
END_TEST

START_TEST(second_remote_on_a_live_socket_is_refused)
{
	struct remote_opts o = { .listen = true };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int c, status = 0;

	start(NULL);
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	close(c);
	/* The same path again: the second remote must say so and exit. */
	o.path = rem.path;
	hostile_start(&second, &o);
	status = remote_wait_exit(&second, 3000); /* fails if it kept running */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
		      "the second remote exited with status 0x%x", status);
	ck_assert_msg(hostile_log_contains(&second, "another"),
		      "the second remote does not say why it refused");
	/* The first still owns the path. */
	c = remote_connect_raw(&rem);
	ck_assert_int_eq(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
	ck_assert_int_eq(cred.pid, rem.pid);
	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	close(c);
}
END_TEST

START_TEST(idle_peer_is_dropped_at_the_handshake_deadline)
{
	const char *args[] = { "--handshake-timeout", "500", NULL };
	struct wire_msg m;
	int idle, busy, c;
	int64_t t0;

	start(args);
	idle = remote_connect_raw(&rem);
	t0 = hostile_now_ms();
	busy = remote_connect_raw(&rem);
	expect_notify(busy, MPDEV__NOTIFY_TYPE__NOTIFY_BUSY, HOSTILE_ANSWER_MS);
	close(busy);
	/* The idle one hears why, then the connection ends. */
	expect_notify(idle, MPDEV__NOTIFY_TYPE__NOTIFY_HANDSHAKE_TIMEOUT, HOSTILE_ANSWER_MS);
	ck_assert_msg(hostile_now_ms() - t0 >= 400, "dropped after %lld ms, before the deadline",
		      (long long)(hostile_now_ms() - t0));
	ck_assert_int_eq(native_try_recv(idle, &m, HOSTILE_ANSWER_MS), -EPIPE);
	close(idle);
	/* A peer that greets is fine idle for as long as it likes. */
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	usleep(1000 * 1000);
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	close(c);
}
END_TEST

START_TEST(peer_that_never_reads_cannot_stall)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;
	int small = 4096, c, busy, status;
	uint8_t buf[64];
	size_t len;
	int64_t t0;

	start(NULL);
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	env.kind = MPDEV__KIND__KIND_REQUEST;
	/* Requests until our own socket says stop, reading nothing back. */
	for (int i = 0; i < 100000; i++) {
		env.id = (uint64_t)i + 1;
		len = mpdev__envelope__get_packed_size(&env);
		mpdev__envelope__pack(&env, buf);
		if (send(c, buf, len, MSG_DONTWAIT) < 0)
			break;
	}
	usleep(200 * 1000);
	t0 = hostile_now_ms();
	busy = remote_connect_raw(&rem);
	expect_notify(busy, MPDEV__NOTIFY_TYPE__NOTIFY_BUSY, 1000);
	ck_assert_msg(hostile_now_ms() - t0 < 1000, "BUSY took %lld ms",
		      (long long)(hostile_now_ms() - t0));
	close(busy);
	t0 = hostile_now_ms();
	status = remote_terminate(&rem, 1000);
	ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the remote did not exit within 1 s of SIGTERM (status %d)", status);
	close(c);
}
END_TEST

static Suite *hostile_peer_suite(void)
{
	Suite *s = suite_create("hostile_peer");
	TCase *tc = tcase_create("peer");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, peer_triggered_warnings_are_rate_limited);
	tcase_add_test(tc, hello_name_cannot_forge_a_log_line);
	tcase_add_test(tc, second_remote_on_a_live_socket_is_refused);
	tcase_add_test(tc, idle_peer_is_dropped_at_the_handshake_deadline);
	tcase_add_test(tc, peer_that_never_reads_cannot_stall);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return hostile_run_suite(hostile_peer_suite());
}
