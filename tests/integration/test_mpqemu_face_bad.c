/*
 * The mpqemu face's bad-input table: everything QEMU's x-pci-proxy-dev
 * never sends, sent raw to a real mpdev-remote --face mpqemu. Each case has
 * one of three outcomes:
 *   all-ones  a request QEMU would wait on, refused: a RET of all-ones (as
 *             a PCI master abort reads), the connection goes on;
 *   ignored   a message without a RET, refused: nothing comes back, the
 *             next request is answered as the next;
 *   closed    the stream itself is lost (a header declaring more than any
 *             message holds, a connection ending mid-message, more
 *             descriptors than any message carries): the remote drops the
 *             connection, resets the device and serves the next one.
 * After each, every descriptor the case sent is closed in the remote: its
 * count is back at the baseline taken when the connection was served. And
 * half a message followed by silence, or a peer that sends requests and
 * never reads the answers, stalls only its own connection.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edu.h"
#include "mpqemu_direct.h"
#include "testutil.h"
#include "transport.h"

#define BAR0_ADDR 0xfea00000u
#define NFDS	  17 /* one more than the remote queues (STREAM_IN_MAX_FDS) */

static struct mpq mq;

static void start(void)
{
	mpq_start(&mq, NULL);
	mpq_program_bar0(&mq, BAR0_ADDR);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), EDU_IDENT);
}

static void stop(void)
{
	mpq_stop(&mq);
}

enum outcome { ALL_ONES, IGNORED, CLOSED };

struct bad_case {
	const char *name;
	enum outcome out;
	const char *logged; /* words the remote's log must have */
};

static const struct bad_case cases[] = {
	{ "truncated header, then the end", CLOSED, "10 bytes into a message" },
	{ "truncated data with 2 fds, then the end", CLOSED, "56 bytes into a message" },
	{ "data larger than any message", CLOSED, "cannot be followed" },
	{ "data size 2^64-1", CLOSED, "cannot be followed" },
	{ "RET from QEMU", IGNORED, "out of place" },
	{ "unknown command", IGNORED, "unknown command" },
	{ "unknown command with data", IGNORED, "unknown command" },
	{ "negative command", IGNORED, "unknown command" },
	{ "BAR read with an fd", ALL_ONES, "must carry 0 descriptors" },
	{ "config write with 2 fds", ALL_ONES, "must carry 0 descriptors" },
	{ "SET_IRQFD with 1 fd", IGNORED, "must carry 2 descriptors" },
	{ "SET_IRQFD with 3 fds", IGNORED, "must carry 2 descriptors" },
	{ "SYNC_SYSMEM with 9 fds", IGNORED, "more than 8 descriptors" },
	{ "17 descriptors in one send", CLOSED, "more descriptors than any message" },
	{ "SYNC_SYSMEM of the wrong size", IGNORED, "data size must be 192" },
	{ "config read of 3 bytes", ALL_ONES, "width must be 1, 2 or 4" },
	{ "config read past the device's 256 bytes", ALL_ONES, "config read of 4 bytes at 0x100" },
	{ "config read beyond 4096 bytes", ALL_ONES, "beyond 4096" },
	{ "BAR read of 16 bytes", ALL_ONES, "width must be 1, 2, 4 or 8" },
	{ "BAR write, memory flag 7", ALL_ONES, "neither 0 nor 1" },
	{ "BAR access wrapping the address space", ALL_ONES, "wraps around" },
	{ "reset with data", ALL_ONES, "data size must be 0" },
	{ "BAR read below the BAR", ALL_ONES, "hits no BAR" },
	{ "BAR read across the BAR's end", ALL_ONES, "hits no BAR" },
	{ "I/O read at the memory BAR's address", ALL_ONES, "hits no BAR" },
	{ "BAR write past the BAR", ALL_ONES, "hits no BAR" },
	{ "SET_IRQFD with memfds", IGNORED, "INTx irqfd refused" },
	{ "SYNC_SYSMEM with an eventfd as RAM", IGNORED, "refused" },
	{ "SYNC_SYSMEM entry that wraps", IGNORED, "wraps around" },
	{ "SYNC_SYSMEM negative file offset", IGNORED, "bad file offset" },
	{ "SYNC_SYSMEM entry of size 0", IGNORED, "size 0" },
};
#define NUM_CASES ((int)(sizeof(cases) / sizeof(cases[0])))

static void send_case(int i, int *fds, int memfd)
{
	int q = mq.q;
	struct raw r;

	switch (i) {
	case 0:
		r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
		ck_assert_int_eq(send(q, r.b, 10, MSG_NOSIGNAL), 10);
		shutdown(q, SHUT_WR);
		break;
	case 1:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		r.len = HDR + 40;
		mpq_send(q, &r, fds, 2);
		shutdown(q, SHUT_WR);
		break;
	case 2:
		r = raw_msg(CMD_BAR_READ, 4096);
		mpq_send(q, &r, NULL, 0);
		break;
	case 3:
		r = raw_msg(CMD_BAR_READ, UINT64_MAX);
		mpq_send(q, &r, NULL, 0);
		break;
	case 4:
		r = raw_msg(CMD_RET, 8);
		mpq_send(q, &r, NULL, 0);
		break;
	case 5:
		r = raw_msg(42, 0);
		mpq_send(q, &r, NULL, 0);
		break;
	case 6:
		r = raw_msg(42, 24);
		mpq_send(q, &r, fds, 1);
		break;
	case 7:
		r = raw_msg(-1, 12);
		mpq_send(q, &r, NULL, 0);
		break;
	case 8:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, 1);
		mpq_send(q, &r, fds, 1);
		break;
	case 9:
		r = raw_cfg(CMD_PCI_CFGWRITE, 0x3c, 1, 1);
		mpq_send(q, &r, fds, 2);
		break;
	case 10:
		r = raw_msg(CMD_SET_IRQFD, 0);
		mpq_send(q, &r, fds, 1);
		break;
	case 11:
		r = raw_msg(CMD_SET_IRQFD, 0);
		mpq_send(q, &r, fds, 3);
		break;
	case 12:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		for (int k = 0; k < 8; k++)
			raw_sysmem_entry(&r, k, 0x100000ull * k, 0x1000, 0);
		mpq_send(q, &r, fds, 9);
		break;
	case 13:
		r = raw_msg(CMD_DEVICE_RESET, 0);
		mpq_send(q, &r, fds, NFDS);
		break;
	case 14:
		r = raw_msg(CMD_SYNC_SYSMEM, 100);
		mpq_send(q, &r, fds, 1);
		break;
	case 15:
		r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 3);
		mpq_send(q, &r, NULL, 0);
		break;
	case 16:
		r = raw_cfg(CMD_PCI_CFGREAD, 0x100, 0, 4);
		mpq_send(q, &r, NULL, 0);
		break;
	case 17:
		r = raw_cfg(CMD_PCI_CFGREAD, 0xffe, 0, 4);
		mpq_send(q, &r, NULL, 0);
		break;
	case 18:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 16, 1);
		mpq_send(q, &r, NULL, 0);
		break;
	case 19:
		r = raw_bar(CMD_BAR_WRITE, BAR0_ADDR, 0, 4, 1);
		r.b[HDR + 20] = 7;
		mpq_send(q, &r, NULL, 0);
		break;
	case 20:
		r = raw_bar(CMD_BAR_READ, UINT64_MAX - 1, 0, 4, 1);
		mpq_send(q, &r, NULL, 0);
		break;
	case 21:
		r = raw_msg(CMD_DEVICE_RESET, 8);
		mpq_send(q, &r, NULL, 0);
		break;
	case 22:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR - 4, 0, 4, 1);
		mpq_send(q, &r, NULL, 0);
		break;
	case 23:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR + EDU_BAR0_SIZE - 4, 0, 8, 1);
		mpq_send(q, &r, NULL, 0);
		break;
	case 24:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, 0);
		mpq_send(q, &r, NULL, 0);
		break;
	case 25:
		r = raw_bar(CMD_BAR_WRITE, BAR0_ADDR + EDU_BAR0_SIZE, 1, 4, 1);
		mpq_send(q, &r, NULL, 0);
		break;
	case 26: {
		int m2[2] = { memfd, memfd };

		r = raw_msg(CMD_SET_IRQFD, 0);
		mpq_send(q, &r, m2, 2);
		break;
	}
	case 27:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		raw_sysmem_entry(&r, 0, 0, 0x10000, 0);
		mpq_send(q, &r, fds, 1);
		break;
	case 28:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		raw_sysmem_entry(&r, 0, UINT64_MAX - 0xfff, 0x2000, 0);
		mpq_send(q, &r, &memfd, 1);
		break;
	case 29:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		raw_sysmem_entry(&r, 0, 0, 0x1000, -4096);
		mpq_send(q, &r, &memfd, 1);
		break;
	case 30:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		raw_sysmem_entry(&r, 0, 0x1000, 0, 0);
		mpq_send(q, &r, &memfd, 1);
		break;
	default:
		ck_abort();
	}
}

START_TEST(bad_input)
{
	const struct bad_case *c = &cases[_i];
	int fds[NFDS], memfd = mpq_memfd("mpq-bad-ram", 0x10000, true);
	uint64_t v = 0;
	int st;

	for (int k = 0; k < NFDS; k++)
		fds[k] = testutil_eventfd();
	send_case(_i, fds, memfd);
	for (int k = 0; k < NFDS; k++)
		close(fds[k]);
	close(memfd);
	switch (c->out) {
	case ALL_ONES:
		ck_assert_msg(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v) == 0, "%s: no RET", c->name);
		ck_assert_msg(v == UINT64_MAX, "%s: RET 0x%llx, not all-ones", c->name,
			      (unsigned long long)v);
		break;
	case IGNORED:
		/* The first RET is the next request's. */
		ck_assert_msg(mpq_cfg_read(&mq, 0x02, 2) == EDU_DEVICE_ID, "%s: out of step",
			      c->name);
		break;
	case CLOSED:
		mpq_expect_closed(mq.q);
		mpq_reconnect(&mq);
		break;
	}
	/* Served on (a refused reset resets nothing: BAR0 is where it was). */
	if (c->out != CLOSED)
		ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), EDU_IDENT);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 2), EDU_VENDOR_ID);
	ck_assert_msg(remote_wait_log(&mq.rem, c->logged, MPQ_WAIT_MS), "%s: no '%s' in: %s",
		      c->name, c->logged, remote_log(&mq.rem));
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
	ck_assert_int_eq(waitpid(mq.rem.pid, &st, WNOHANG), 0);
}
END_TEST

/* ---- half a message, then silence ---- */

START_TEST(half_a_message_stalls_only_its_own_connection)
{
	int ram = mpq_memfd("mpq-half", 0x10000, true), second;
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	struct timespec t0, t1;
	uint64_t v;

	raw_sysmem_entry(&r, 0, 0x100000, 0x10000, 0);
	/* The header and part of the data, the descriptor with them; then nothing. */
	ck_assert_int_eq(transport_send(mq.q, r.b, HDR + 30, &ram, 1, 1000), 0);
	close(ram);
	usleep(200 * 1000);
	/* The loop is free: the listening socket answers at once (one connection at a time). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	second = mpq_connect_raw(&mq);
	mpq_expect_closed(second);
	close(second);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
			 1000);
	/* The remote's counters and signals are the loop's too: SIGTERM would be handled; the
	 * stalled connection is still held, nothing of it applied yet. */
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-half", NULL, 0), 0);
	/* The rest, late: the message is whole, with the descriptor it started with. */
	ck_assert_int_eq(send(mq.q, r.b + HDR + 30, r.len - HDR - 30, MSG_NOSIGNAL),
			 (ssize_t)(r.len - HDR - 30));
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 2), EDU_VENDOR_ID);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-half", NULL, 0), 1);
	ck_assert_int_eq(mpq_try_ret(mq.q, 0, &v), -ETIMEDOUT);
	/* And half a message, then the end: dropped, its descriptor closed. */
	ram = mpq_memfd("mpq-half2", 0x10000, true);
	ck_assert_int_eq(transport_send(mq.q, r.b, HDR + 30, &ram, 1, 1000), 0);
	close(ram);
	shutdown(mq.q, SHUT_WR);
	mpq_expect_closed(mq.q);
	mpq_reconnect(&mq);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-half", NULL, 0), 0);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-half2", NULL, 0), 0);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

/* ---- a peer that never reads its answers ---- */

static bool wait_writable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, ms) == 1;
}

START_TEST(a_peer_that_reads_no_answers_stalls_only_itself)
{
	/* Alternating requests, so that the answers show their order. */
	struct raw req[2] = { raw_cfg(CMD_PCI_CFGREAD, 0x00, 0, 2),
			      raw_cfg(CMD_PCI_CFGREAD, 0x02, 0, 2) };
	const uint64_t want[2] = { EDU_VENDOR_ID, EDU_DEVICE_ID };
	size_t len = req[0].len, whole = 0, part = 0;
	int second, fl = fcntl(mq.q, F_GETFL);
	uint64_t v;

	/* Requests until neither direction's buffers take more: the remote's answers wait. */
	ck_assert_int_eq(fcntl(mq.q, F_SETFL, fl | O_NONBLOCK), 0);
	while (wait_writable(mq.q, 200)) {
		ssize_t n = send(mq.q, req[whole % 2].b + part, len - part, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			continue;
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		part += (size_t)n;
		if (part == len) {
			whole++;
			part = 0;
		}
		ck_assert_uint_lt(whole, 1000000);
	}
	ck_assert_uint_gt(whole, 100); /* each send its own skb: a few hundred fill the buffers */
	/* The loop is the remote's, not this peer's: the listening socket answers at once. */
	second = mpq_connect_raw(&mq);
	mpq_expect_closed(second);
	close(second);
	/*
	 * Reading again, every answer comes, in order; then the cut message
	 * completes. The last requests were read into the face's buffer before
	 * the output blocked and are no longer on the socket: the server must
	 * run the face again once the output drains (and when its budget ends),
	 * not wait for the socket to become readable.
	 */
	ck_assert_int_eq(fcntl(mq.q, F_SETFL, fl), 0);
	for (size_t i = 0; i < whole; i++) {
		ck_assert_msg(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v) == 0, "answer %zu of %zu missing",
			      i, whole);
		ck_assert_msg(v == want[i % 2], "answer %zu is 0x%llx", i, (unsigned long long)v);
		if (i == 0 && part)
			ck_assert_int_eq(
				send(mq.q, req[whole % 2].b + part, len - part, MSG_NOSIGNAL),
				(ssize_t)(len - part));
	}
	if (part) {
		ck_assert_int_eq(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v), 0);
		ck_assert_uint_eq(v, want[whole % 2]);
	}
	ck_assert_int_eq(mpq_try_ret(mq.q, 0, &v), -ETIMEDOUT);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 2), EDU_VENDOR_ID);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

/* A remote with a stalled half message still ends when told to. */
START_TEST(half_a_message_does_not_hold_up_shutdown)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	int st;

	ck_assert_int_eq(send(mq.q, r.b, 7, MSG_NOSIGNAL), 7);
	usleep(100 * 1000);
	st = remote_terminate(&mq.rem, REMOTE_EXIT_MS);
	ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the remote did not end on SIGTERM (status 0x%x)", st);
	close(mq.q);
	mq.q = -1;
	remote_release(&mq.rem);
}
END_TEST

static void stop_if_running(void)
{
	if (mq.q >= 0)
		close(mq.q);
	mq.q = -1;
	remote_release(&mq.rem);
}

static Suite *bad_suite(void)
{
	Suite *s = suite_create("mpqemu_face_bad");
	TCase *tc = tcase_create("table");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_loop_test(tc, bad_input, 0, NUM_CASES);
	tcase_add_test(tc, half_a_message_stalls_only_its_own_connection);
	tcase_add_test(tc, a_peer_that_reads_no_answers_stalls_only_itself);
	suite_add_tcase(s, tc);

	tc = tcase_create("shutdown");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop_if_running);
	tcase_add_test(tc, half_a_message_does_not_hold_up_shutdown);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(bad_suite());
}
