/*
 * Hostile peers and the interrupt eventfds they hand over. An eventfd the
 * peer passes is the same open file in both processes: the peer can clear
 * O_NONBLOCK on it, fill its counter, or drain it under the remote. None of
 * that may stall the remote: it still answers (the hostile peer, then a
 * second client) within a bound, obeys SIGTERM, and its descriptors and
 * memory come back to where they were.
 */
#include <check.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostile_util.h"
#include "mpqemu_raw.h"
#include "proxy_fixture.h"
#include "spawn.h"
#include "testutil.h"

#define REGION_BAR0	  0
#define REGION_CONFIG	  7
#define EDU_IRQ_RAISE	  0x60
#define EDU_IRQ_ACK	  0x64
#define EDU_MSI_FLAGS	  0x42 /* MSI capability at 0x40, its control word */
#define EVENTFD_MAX_COUNT 0xfffffffffffffffeull

static struct remote rem;

static void start_listening(const char *const *args, bool block_kcmp)
{
	struct remote_opts o = { .listen = true, .args = args, .block_kcmp = block_kcmp };
	int c;

	hostile_start(&rem, &o);
	/* Baseline: one greeted client, after a warm-up round trip. */
	c = remote_connect_raw(&rem);
	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_ping(c, HOSTILE_ANSWER_MS), 0);
	close(c);
	/* Disconnected again: the remote is back to what it holds between clients. */
	remote_take_baseline(&rem);
	ck_assert_int_gt(rem.baseline_fds, 0);
}

static void setup(void)
{
	start_listening(NULL, false);
}

static void teardown(void)
{
	remote_release(&rem);
}

/* A blocking eventfd the peer keeps, with its counter at the maximum. */
static void make_full_and_blocking(int fd)
{
	const uint64_t max = EVENTFD_MAX_COUNT;

	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
	ck_assert_int_eq(write(fd, &max, sizeof(max)), sizeof(max));
}

/*
 * After a hostile case: the peer still gets answers, a second client is
 * served, descriptors and memory are back at the baseline, SIGTERM works.
 */
static void expect_remote_survived(int hostile)
{
	int c;

	ck_assert_msg(hostile_ping(hostile, HOSTILE_ANSWER_MS) == 0,
		      "the remote does not answer the hostile peer within %d ms",
		      HOSTILE_ANSWER_MS);
	close(hostile);
	c = remote_connect_raw(&rem);
	hostile_hello(c, "second client");
	ck_assert_msg(hostile_ping(c, HOSTILE_ANSWER_MS) == 0,
		      "the remote does not answer a second client");
	close(c);
	remote_expect_fds_within(&rem, rem.baseline_fds, 3000);
	remote_expect_rss_back(&rem, rem.baseline_rss_kb);
	ck_assert_msg(WIFEXITED(remote_terminate(&rem, HOSTILE_ANSWER_MS)),
		      "the remote did not exit on SIGTERM");
}

START_TEST(full_irqfd_counter_cannot_stall_intx)
{
	int c = remote_connect_raw(&rem), irqfd = eventfd(0, EFD_CLOEXEC);

	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_set_intx_irqfd(c, &irqfd, 1), 0);
	make_full_and_blocking(irqfd);
	/* Each raise after an ack is a new rising edge: an irqfd write. */
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(hostile_write(c, REGION_BAR0, EDU_IRQ_RAISE, 1, 4) == 0,
			      "raise %d: no answer within %d ms", i, HOSTILE_ANSWER_MS);
		ck_assert_int_eq(hostile_write(c, REGION_BAR0, EDU_IRQ_ACK, 1, 4), 0);
	}
	close(irqfd);
	expect_remote_survived(c);
}
END_TEST

START_TEST(full_msi_trigger_cannot_stall)
{
	int c = remote_connect_raw(&rem), trig = eventfd(0, EFD_CLOEXEC);

	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_set_irqs_eventfd(c, 1 /* MSI */, 0 /* trigger */, trig), 0);
	ck_assert_int_eq(hostile_write(c, REGION_CONFIG, EDU_MSI_FLAGS, 1, 2), 0);
	make_full_and_blocking(trig);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(hostile_write(c, REGION_BAR0, EDU_IRQ_RAISE, 1, 4) == 0,
			      "MSI raise %d: no answer within %d ms", i, HOSTILE_ANSWER_MS);
	close(trig);
	expect_remote_survived(c);
}
END_TEST

#define TABLE_REGIONS 1024

/* A memory table of TABLE_REGIONS one-page regions at base: a request that takes milliseconds. */
static void send_big_table(int c, int memfd, uint64_t base)
{
	static Mpdev__MemRegion regs[TABLE_REGIONS];
	static Mpdev__MemRegion *ptrs[TABLE_REGIONS];
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;

	for (int i = 0; i < TABLE_REGIONS; i++) {
		mpdev__mem_region__init(&regs[i]);
		regs[i].gpa = base + (uint64_t)i * 8192;
		regs[i].size = 4096;
		regs[i].fd_offset = (uint64_t)i * 4096;
		ptrs[i] = &regs[i];
	}
	set.n_regions = TABLE_REGIONS;
	set.regions = ptrs;
	env.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
	env.mem_table_set = &set;
	env.id = 0;
	hostile_send(c, &env, &memfd, 1);
}

/*
 * Drains fd between the remote's wakeup and its read, deterministically:
 * with the remote stopped, a slow request and a write of fd become ready
 * together; the remote's loop handles the request first, and while it is
 * busy we empty fd. With the file made blocking, a plain read() of fd then
 * never returns. Several rounds, each remapping a whole table.
 */
static void drain_under_the_remote(int c, int fd)
{
	int memfd = testutil_memfd(TABLE_REGIONS * 4096, F_SEAL_SHRINK);
	const uint64_t one = 1;
	struct wire_msg m;
	uint64_t v;
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };

	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
	for (int round = 0; round < 4; round++) {
		ck_assert_int_eq(kill(rem.pid, SIGSTOP), 0);
		send_big_table(c, memfd, round % 2 ? 1ull << 32 : 0);
		ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
		ck_assert_int_eq(kill(rem.pid, SIGCONT), 0);
		usleep(300);
		(void)!preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
		ck_assert_msg(native_try_recv(c, &m, HOSTILE_ANSWER_MS) == 1,
			      "round %d: no answer to the table within %d ms", round,
			      HOSTILE_ANSWER_MS);
		ck_assert_uint_eq(m.env->status, 0);
		wire_msg_release(&m);
		ck_assert_msg(hostile_ping(c, HOSTILE_ANSWER_MS) == 0,
			      "round %d: the remote stalled on the drained eventfd", round);
	}
	close(memfd);
}

START_TEST(resamplefd_drained_under_the_remote)
{
	int c = remote_connect_raw(&rem);
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_set_intx_irqfd(c, fds, 2), 0);
	ck_assert_int_eq(hostile_write(c, REGION_BAR0, EDU_IRQ_RAISE, 1, 4), 0);
	drain_under_the_remote(c, fds[1]);
	close(fds[0]);
	close(fds[1]);
	expect_remote_survived(c);
}
END_TEST

START_TEST(intx_unmask_eventfd_drained_under_the_remote)
{
	int c = remote_connect_raw(&rem);
	int trig = eventfd(0, EFD_CLOEXEC), unmask = eventfd(0, EFD_CLOEXEC);

	hostile_hello(c, NULL);
	ck_assert_int_eq(hostile_set_irqs_eventfd(c, 0 /* INTx */, 0 /* trigger */, trig), 0);
	ck_assert_int_eq(hostile_set_irqs_eventfd(c, 0 /* INTx */, 2 /* unmask */, unmask), 0);
	ck_assert_int_eq(hostile_write(c, REGION_BAR0, EDU_IRQ_RAISE, 1, 4), 0);
	drain_under_the_remote(c, unmask);
	close(trig);
	close(unmask);
	expect_remote_survived(c);
}
END_TEST

/* The same with the io_uring fallback: a full counter parks a kernel worker, not the loop. */
static void setup_io_uring(void)
{
	static const char *const args[] = { "--eventfd-io", "io_uring", NULL };

	start_listening(args, false);
}

/* ---- kcmp unavailable: the distinctness check cannot be made, so it refuses ---- */

static void setup_no_kcmp(void)
{
	start_listening(NULL, true);
}

START_TEST(without_kcmp_eventfds_are_refused)
{
	int c = remote_connect_raw(&rem), e = eventfd(0, EFD_CLOEXEC), f = eventfd(0, EFD_CLOEXEC);
	int same[2] = { e, dup(e) }, distinct[2] = { e, f };
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIntxIrqfd body = MPDEV__SET_INTX_IRQFD__INIT;
	char words[256];
	double cpu;

	hostile_hello(c, NULL);
	env.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	env.set_intx_irqfd = &body;
	/* One eventfd as irqfd and resamplefd: the remote would wake itself forever. */
	ck_assert_int_eq(
		hostile_call_words(c, &env, same, 2, HOSTILE_ANSWER_MS, words, sizeof(words)),
		EINVAL);
	/* Distinct ones too: without kcmp nobody can tell, so nothing is taken on trust. */
	ck_assert_int_eq(
		hostile_call_words(c, &env, distinct, 2, HOSTILE_ANSWER_MS, words, sizeof(words)),
		EINVAL);
	ck_assert_msg(strstr(words, "kcmp"), "the refusal does not say why: '%s'", words);
	ck_assert_int_eq(hostile_set_irqs_eventfd(c, 1 /* MSI */, 0, f), EINVAL);
	/* Nothing was installed, so raising the line costs nothing. */
	cpu = hostile_cpu_seconds(rem.pid);
	ck_assert_int_eq(hostile_write(c, REGION_BAR0, EDU_IRQ_RAISE, 1, 4), 0);
	usleep(500 * 1000);
	ck_assert_msg(hostile_cpu_seconds(rem.pid) - cpu < 0.2,
		      "the remote burnt %.2f s of CPU in 0.5 s",
		      hostile_cpu_seconds(rem.pid) - cpu);
	close(same[1]);
	close(e);
	close(f);
	expect_remote_survived(c);
}
END_TEST

/* ---- the same through mpdev-proxy: QEMU's SET_IRQFD pair ---- */

#define BAR0_ADDR 0xfe000000u

/* A request and its RET; no RET within the bound reads as a value no register has. */
static uint64_t qemu_request(int q, struct raw r)
{
	uint64_t v;

	raw_send(q, r.b, r.len, NULL, 0);
	return raw_await_ret(q, HOSTILE_ANSWER_MS, &v) == 0 ? v : UINT64_MAX - 1;
}

START_TEST(qemu_set_irqfd_pair_through_the_proxy_cannot_stall)
{
	static struct proxy px = PROXY_INIT;
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	struct raw r;
	uint64_t ident;

	proxy_start(&px, (const char *const[]){ "--spawn-remote", NULL });
	r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	proxy_send(&px, &r, NULL, 0);
	ck_assert_uint_eq(qemu_request(px.q, raw_cfg(CMD_PCI_CFGWRITE, 0x10, BAR0_ADDR, 4)), 0);
	ck_assert_uint_eq(qemu_request(px.q, raw_cfg(CMD_PCI_CFGWRITE, 0x04, 0x2, 2)), 0);
	r = raw_msg(CMD_SET_IRQFD, 0);
	proxy_send(&px, &r, fds, 2);
	/* QEMU does not wait for SET_IRQFD; a read orders after it. */
	ck_assert_uint_eq(qemu_request(px.q, raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, 1)),
			  0x010000ed);
	make_full_and_blocking(fds[0]);
	ck_assert_uint_eq(
		qemu_request(px.q, raw_bar(CMD_BAR_WRITE, BAR0_ADDR + EDU_IRQ_RAISE, 1, 4, 1)), 0);
	ident = qemu_request(px.q, raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, 1));
	ck_assert_msg(ident == 0x010000ed,
		      "the device does not answer through mpdev-proxy within %d ms (0x%llx)",
		      HOSTILE_ANSWER_MS, (unsigned long long)ident);
	close(fds[0]);
	close(fds[1]);
	proxy_stop(&px);
}
END_TEST

static Suite *hostile_irq_suite(void)
{
	Suite *s = suite_create("hostile_irq");
	TCase *tc = tcase_create("eventfds");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, full_irqfd_counter_cannot_stall_intx);
	tcase_add_test(tc, full_msi_trigger_cannot_stall);
	tcase_add_test(tc, resamplefd_drained_under_the_remote);
	tcase_add_test(tc, intx_unmask_eventfd_drained_under_the_remote);
	suite_add_tcase(s, tc);

	tc = tcase_create("eventfds_io_uring");
	tcase_add_checked_fixture(tc, setup_io_uring, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, full_irqfd_counter_cannot_stall_intx);
	tcase_add_test(tc, full_msi_trigger_cannot_stall);
	suite_add_tcase(s, tc);

	tc = tcase_create("no_kcmp");
	tcase_add_checked_fixture(tc, setup_no_kcmp, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, without_kcmp_eventfds_are_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("proxy");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, qemu_set_irqfd_pair_through_the_proxy_cannot_stall);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return hostile_run_suite(hostile_irq_suite());
}
