/*
 * Hostile peers and the descriptors they send. Whatever a peer passes is
 * checked when it arrives and closed at once if the message has no use for
 * it; a close that can block (a TCP socket lingering with unsent data) never
 * runs on the remote's loop; a chunked memory table cannot hold descriptors
 * without bound; and running out of descriptors makes the accept loop back
 * off, not spin. After each case the remote answers a second client within a
 * bound and its descriptors come back to the baseline.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostile_util.h"
#include "testutil.h"

#define LINGER_S 4

static struct remote rem;
static int listener = -1; /* keeps the lingering socket's peer alive */

static void start(unsigned long nofile)
{
	struct remote_opts o = { .listen = true, .nofile = nofile };
	int c;

	hostile_start(&rem, &o);
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	close(c);
	/* Disconnected again: what the remote holds between clients. */
	remote_take_baseline(&rem);
}

static void setup(void)
{
	start(0);
}

static void teardown(void)
{
	remote_release(&rem);
	if (listener >= 0)
		close(listener);
	listener = -1;
}

/*
 * A TCP socket whose close() waits LINGER_S seconds: connected on loopback
 * to a listener that never accepts, both buffers full, SO_LINGER set.
 */
static int lingering_socket(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger lg = { .l_onoff = 1, .l_linger = LINGER_S };
	socklen_t len = sizeof(a);
	int small = 4096, s;
	char junk[4096] = { 0 };

	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(listener, 0);
	setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	ck_assert_int_eq(bind(listener, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(listener, 1), 0);
	ck_assert_int_eq(getsockname(listener, (struct sockaddr *)&a, &len), 0);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	ck_assert_int_eq(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	while (send(s, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	return s;
}

/*
 * Hands sock over with env and lets go of our reference before the remote
 * reads the message, so that the remote's is the last: its close is the one
 * that lingers.
 */
static void send_last_reference(int c, Mpdev__Envelope *env, int *fds, size_t nfds, int *sock)
{
	ck_assert_int_eq(kill(rem.pid, SIGSTOP), 0);
	hostile_send(c, env, fds, nfds);
	close(*sock);
	*sock = -1;
	ck_assert_int_eq(kill(rem.pid, SIGCONT), 0);
}

static void expect_second_client_served(int64_t since)
{
	int c = remote_connect_raw(&rem);

	hostile_hello(c, "second client");
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	ck_assert_msg(hostile_now_ms() - since < HOSTILE_ANSWER_MS,
		      "the second client waited %lld ms", (long long)(hostile_now_ms() - since));
	close(c);
	/* The lingering close finishes on its own time, off the loop. */
	remote_expect_fds_within(&rem, rem.baseline_fds, (LINGER_S + 3) * 1000);
	remote_expect_rss_back(&rem, rem.baseline_rss_kb);
}

START_TEST(lingering_socket_in_a_chunked_table)
{
	int c = remote_connect_raw(&rem), sock = lingering_socket();
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;
	Mpdev__MemRegion reg = MPDEV__MEM_REGION__INIT, *regs[] = { &reg };
	int64_t t0;

	hostile_hello(c, NULL);
	reg.size = 4096;
	set.n_regions = 1;
	set.regions = regs;
	set.more = true;
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
	env.mem_table_set = &set;
	/* A socket is no guest memory: refused when it arrives, not held to the last chunk. */
	ck_assert_int_eq(hostile_call(c, &env, &sock, 1, HOSTILE_ANSWER_MS), EINVAL);
	close(sock);
	t0 = hostile_now_ms();
	close(c);
	expect_second_client_served(t0);
}
END_TEST

START_TEST(lingering_socket_on_a_message_that_takes_none)
{
	int c = remote_connect_raw(&rem), sock = lingering_socket();
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;
	struct wire_msg m;
	int64_t t0;

	hostile_hello(c, NULL);
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	send_last_reference(c, &env, &sock, 1, &sock);
	t0 = hostile_now_ms();
	ck_assert_int_eq(native_try_recv(c, &m, HOSTILE_ANSWER_MS), 1);
	ck_assert_uint_eq(m.env->status, EINVAL);
	wire_msg_release(&m);
	ck_assert_msg(hostile_ping(c, HOSTILE_ANSWER_MS) == 0,
		      "the remote stalls after refusing the socket");
	close(c);
	expect_second_client_served(t0);
}
END_TEST

START_TEST(lingering_socket_past_the_descriptor_limit)
{
	int c = remote_connect_raw(&rem), sock = lingering_socket(), fds[65];
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;
	struct wire_msg m;
	int64_t t0;

	hostile_hello(c, NULL);
	for (int i = 0; i < 64; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	fds[64] = sock;
	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	/* One more than a message may carry: the socket is the one too many. */
	send_last_reference(c, &env, fds, 65, &sock);
	t0 = hostile_now_ms();
	ck_assert_msg(native_try_recv(c, &m, HOSTILE_ANSWER_MS) == 1,
		      "no answer to a packet with 65 descriptors within %d ms", HOSTILE_ANSWER_MS);
	ck_assert_uint_eq(m.env->kind, MPDEV__KIND__KIND_NOTIFY);
	wire_msg_release(&m);
	for (int i = 0; i < 64; i++)
		close(fds[i]);
	close(c);
	expect_second_client_served(t0);
}
END_TEST

/* ---- a chunked table of ever more descriptors ---- */

static void setup_nofile_1024(void)
{
	start(1024);
}

START_TEST(chunked_table_cannot_exhaust_descriptors)
{
	int c = remote_connect_raw(&rem), busy, refused_at = -1;
	Mpdev__MemRegion regs[64], *ptrs[64];
	char words[256] = "";
	double cpu;
	int lines;

	hostile_hello(c, NULL);
	for (int chunk = 0; chunk < 20 && refused_at < 0; chunk++) {
		Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
		Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;
		int fds[64], r;

		for (int i = 0; i < 64; i++) {
			mpdev__mem_region__init(&regs[i]);
			regs[i].gpa = (uint64_t)(chunk * 64 + i) * 4096;
			regs[i].size = 4096;
			regs[i].fd_index = (uint32_t)i;
			ptrs[i] = &regs[i];
			fds[i] = testutil_memfd(4096, F_SEAL_SHRINK);
		}
		set.n_regions = 64;
		set.regions = ptrs;
		set.more = true;
		env.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
		env.mem_table_set = &set;
		r = hostile_call_words(c, &env, fds, 64, HOSTILE_ANSWER_MS, words, sizeof(words));
		for (int i = 0; i < 64; i++)
			close(fds[i]);
		ck_assert_msg(r >= 0, "chunk %d: no answer (%s)", chunk, strerror(-r));
		if (r) {
			ck_assert_msg(r == ENOSPC, "chunk %d refused with %s: %s", chunk,
				      strerror(r), words);
			refused_at = chunk;
		}
	}
	ck_assert_msg(refused_at > 0 && refused_at < 15,
		      "a 1024-descriptor remote took %d chunks of 64 descriptors", refused_at);
	ck_assert_msg(strstr(words, "descriptors"), "the refusal does not say why: '%s'", words);
	/* The refused table is dropped: nothing held, and the remote still says BUSY. */
	cpu = hostile_cpu_seconds(rem.pid);
	busy = remote_connect_raw(&rem);
	{
		struct wire_msg m;

		ck_assert_msg(native_try_recv(busy, &m, HOSTILE_ANSWER_MS) == 1,
			      "a second client got no BUSY within %d ms", HOSTILE_ANSWER_MS);
		ck_assert_uint_eq(m.env->notify->type, MPDEV__NOTIFY_TYPE__NOTIFY_BUSY);
		wire_msg_release(&m);
	}
	close(busy);
	usleep(500 * 1000);
	ck_assert_msg(hostile_cpu_seconds(rem.pid) - cpu < 0.25, "the remote burnt %.2f s of CPU",
		      hostile_cpu_seconds(rem.pid) - cpu);
	lines = hostile_log_lines(&rem);
	ck_assert_msg(lines < 50, "the remote logged %d lines", lines);
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	close(c);
	expect_second_client_served(hostile_now_ms());
}
END_TEST

/* ---- no descriptor left for accept(): back off, log once in a while ---- */

START_TEST(accept_without_descriptors_backs_off)
{
	struct remote_opts o = { .listen = true };
	int idle, c, waiting, lines;
	double cpu;

	/* What the remote holds between clients, with this very binary. */
	remote_release(&rem);
	hostile_start(&rem, &o);
	close(remote_connect_raw(&rem));
	idle = remote_settled_fds(&rem);
	remote_release(&rem);

	/* Room for exactly one client: the next accept() fails with EMFILE. */
	o.nofile = (unsigned long)idle + 1;
	hostile_start(&rem, &o);
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	waiting = remote_connect_raw(&rem);
	cpu = hostile_cpu_seconds(rem.pid);
	usleep(1500 * 1000);
	ck_assert_msg(hostile_cpu_seconds(rem.pid) - cpu < 0.3,
		      "the accept loop burnt %.2f s of CPU in 1.5 s",
		      hostile_cpu_seconds(rem.pid) - cpu);
	lines = hostile_log_lines(&rem);
	ck_assert_msg(lines < 20, "the remote logged %d lines in 1.5 s", lines);
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	/* A descriptor comes back: the waiting client is taken once the first is gone. */
	close(c);
	hostile_hello(waiting, "waiting client");
	ck_assert_int_eq(hostile_ping(waiting, HOSTILE_ANSWER_MS), 0);
	close(waiting);
}
END_TEST

static Suite *hostile_fds_suite(void)
{
	Suite *s = suite_create("hostile_fds");
	TCase *tc = tcase_create("lingering");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, lingering_socket_in_a_chunked_table);
	tcase_add_test(tc, lingering_socket_on_a_message_that_takes_none);
	tcase_add_test(tc, lingering_socket_past_the_descriptor_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("exhaustion");
	tcase_add_checked_fixture(tc, setup_nofile_1024, teardown);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, chunked_table_cannot_exhaust_descriptors);
	tcase_add_test(tc, accept_without_descriptors_backs_off);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return hostile_run_suite(hostile_fds_suite());
}
