/*
 * mpdev-proxy across remote restarts (issue 10, point 3): the remote dies
 * under a live QEMU connection and comes back (systemd restarts it at the
 * same socket; --spawn-remote starts another), and the proxy reconnects and
 * replays what QEMU had set up -- memory table, BAR placement, command
 * register, the INTx irqfd pair -- while QEMU's socket stays open and its
 * requests wait. What the restart cannot keep (device registers) is reset,
 * and edu says so with Signaled System Error in its status register.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edu.h"
#include "mpqemu_raw.h"
#include "proxy_fixture.h"
#include "remote_fixture.h"
#include "testutil.h"

#define PCI_STATUS_SERR 0x4000u
#define BAR0_ADDR	0xfea00000u
#define RAM_SIZE	0x200000u
/* The proxy's default --reconnect-timeout is 10 s: a restart is seen well within. */
#define RESTART_MS 10000

static struct proxy px = PROXY_INIT;
/* The remote as systemd runs it, and the one that takes its place. */
static struct remote first, second;

static void teardown(void)
{
	proxy_release(&px);
	remote_release(&second);
	remote_release(&first);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* QEMU's connection is still open: nothing to read, no hang-up. */
static void expect_qemu_connected(void)
{
	struct pollfd p = { .fd = px.q, .events = POLLIN };

	ck_assert_int_eq(poll(&p, 1, 0), 0);
}

static uint32_t rd32(uint32_t off)
{
	return (uint32_t)proxy_bar_read(&px, BAR0_ADDR + off, 4, true);
}

static void wr(uint32_t off, uint64_t val, uint32_t size)
{
	ck_assert_uint_eq(proxy_bar_write(&px, BAR0_ADDR + off, val, size, true), 0);
}

static void edu_dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram)
{
	wr(EDU_REG_DMA_SRC, src, 8);
	wr(EDU_REG_DMA_DST, dst, 8);
	wr(EDU_REG_DMA_COUNT, count, 8);
	wr(EDU_REG_DMA_CMD, to_ram ? 3 : 1, 8);
	for (int i = 0; i < 2000 && (proxy_bar_read(&px, BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & 1);
	     i++)
		usleep(500);
	ck_assert_uint_eq(proxy_bar_read(&px, BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & 1, 0);
}

/* Guest RAM -> edu -> elsewhere in guest RAM, through the memory table the remote holds. */
static void expect_dma_works(uint8_t *ram, uint8_t salt)
{
	for (int i = 0; i < 256; i++)
		ram[0x1000 + i] = (uint8_t)(i ^ salt);
	memset(ram + 0x3000, 0, 256);
	edu_dma(0x1000, EDU_DMA_BUF_ADDR, 256, false);
	edu_dma(EDU_DMA_BUF_ADDR, 0x3000, 256, true);
	ck_assert_int_eq(memcmp(ram + 0x1000, ram + 0x3000, 256), 0);
}

/* What a guest's driver does once: place BAR0, enable memory and bus mastering. */
static void program_device(void)
{
	proxy_cfg_write(&px, 0x10, BAR0_ADDR, 4);
	proxy_cfg_write(&px, 0x04, 0x0006, 2);
	ck_assert_uint_eq(rd32(0), EDU_IDENT);
}

/* The restarted device: placed and enabled as before, its reset flagged, then cleared. */
static void expect_replayed_and_flagged(void)
{
	ck_assert_uint_eq(proxy_cfg_read(&px, 0x10, 4) & 0xfffffff0u, BAR0_ADDR);
	ck_assert_uint_eq(proxy_cfg_read(&px, 0x04, 2) & 0x6, 0x6);
	ck_assert_uint_eq(rd32(0), EDU_IDENT);
	ck_assert_msg(proxy_cfg_read(&px, 0x06, 2) & PCI_STATUS_SERR,
		      "the restarted device does not flag its reset (SERR in PCI status)");
	proxy_cfg_write(&px, 0x06, PCI_STATUS_SERR, 2); /* write-1-to-clear */
	ck_assert_uint_eq(proxy_cfg_read(&px, 0x06, 2) & PCI_STATUS_SERR, 0);
}

/* A remote listening at path (NULL: a new one), as systemd's mpdev-remote@.service runs it. */
static void start_listening(struct remote *r, const char *path)
{
	remote_start(r, &(struct remote_opts){
				.listen = true, .path = path, .greet = REMOTE_UNGREETED });
}

static void start_proxy_on(const char *path, const char *timeout_ms)
{
	const char *args[] = { "--remote-socket",
			       path,
			       "-v",
			       "--reconnect-timeout",
			       timeout_ms ? timeout_ms : "10000",
			       NULL };

	proxy_start(&px, args);
	ck_assert_uint_eq(proxy_cfg_read(&px, 0x00, 4), 0x11e81234);
}

START_TEST(a_remote_restarted_at_its_socket_is_replayed)
{
	int mem = testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	int irqfd = eventfd(0, EFD_CLOEXEC), resample = eventfd(0, EFD_CLOEXEC);
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
	struct proxy_mem table[] = { { 0, RAM_SIZE, 0, mem } };
	struct raw r = raw_msg(CMD_SET_IRQFD, 0);
	int fds[2] = { irqfd, resample }, proxy_fds_before;
	const char *line;
	uint64_t v;
	size_t from;

	ck_assert_ptr_ne(ram, MAP_FAILED);
	start_listening(&first, NULL);
	start_proxy_on(first.path, NULL);
	ck_assert_uint_eq(proxy_sync_sysmem(&px, table, 1), 0x1234);
	proxy_send(&px, &r, fds, 2);
	program_device();
	expect_dma_works(ram, 0x5a);
	wr(EDU_REG_LIVENESS, 0x12345678, 4);
	ck_assert_uint_eq(rd32(EDU_REG_LIVENESS), ~0x12345678u);
	proxy_fds_before = proxy_fds(&px);

	/* The remote dies; systemd starts a new one at the same socket. */
	from = px.log_len;
	remote_kill(&first);
	start_listening(&second, first.path);
	ck_assert_msg(proxy_wait_log(&px, "the remote restarted (restart 1)", from, RESTART_MS),
		      "the proxy did not reconnect to the restarted remote");
	expect_qemu_connected();

	expect_replayed_and_flagged();
	/* Device registers came back from reset (edu's liveness: 0), not from before. */
	ck_assert_uint_eq(rd32(EDU_REG_LIVENESS), 0);
	/* The memory table was replayed: DMA reaches the same guest RAM. */
	line = proxy_remote_counters(&px);
	ck_assert_uint_eq(proxy_counter(line, "mem_regions"), 1);
	expect_dma_works(ram, 0xa5);
	/* So was the INTx pair: edu's interrupt reaches QEMU's irqfd. */
	wr(EDU_REG_IRQ_RAISE, 0x1, 4);
	ck_assert_msg(readable(irqfd, PROXY_WAIT_MS), "no interrupt after the restart");
	ck_assert_int_eq(read(irqfd, &v, 8), 8);
	ck_assert_uint_eq(rd32(EDU_REG_IRQ_STATUS), 0x1);
	wr(EDU_REG_IRQ_ACK, 0x1, 4);
	/* One connection for another: the proxy holds what it held before. */
	ck_assert_int_eq(proxy_fds(&px), proxy_fds_before);
	ck_assert_int_eq(proxy_log_count(&px, "the remote restarted"), 1);

	proxy_stop(&px);
	remote_stop(&second);
	remote_release(&first);
	munmap(ram, RAM_SIZE);
	close(mem);
	close(irqfd);
	close(resample);
}
END_TEST

START_TEST(requests_during_the_outage_wait_for_the_new_remote)
{
	struct raw r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, 1);
	uint64_t v = 0;

	start_listening(&first, NULL);
	start_proxy_on(first.path, NULL);
	program_device();
	remote_kill(&first);
	/* Let the proxy see the death and start waiting, then ask. */
	usleep(100 * 1000);
	proxy_send(&px, &r, NULL, 0);
	ck_assert_msg(raw_await_ret(px.q, 300, &v) != 0, "answered 0x%llx with no remote to ask",
		      (unsigned long long)v);
	start_listening(&second, first.path);
	ck_assert_int_eq(raw_await_ret(px.q, RESTART_MS, &v), 0);
	/* The read was sent to the new remote, not answered for it. */
	ck_assert_uint_eq(v, EDU_IDENT);
	ck_assert_ptr_nonnull(proxy_wait_log(&px, "the remote restarted (restart 1)", 0, 1000));
	expect_replayed_and_flagged();
	ck_assert_ptr_null(strstr(px.log, "was in flight"));
	proxy_stop(&px);
	remote_stop(&second);
	remote_release(&first);
}
END_TEST

START_TEST(an_access_in_flight_is_answered_as_by_a_device_in_reset)
{
	struct raw r = raw_bar(CMD_BAR_READ, BAR0_ADDR + EDU_REG_FACTORIAL, 0, 4, 1);
	uint64_t v = 0;

	start_listening(&first, NULL);
	start_proxy_on(first.path, NULL);
	program_device();
	/* Stopped, the remote takes the read and never answers; then it dies. */
	ck_assert_int_eq(kill(first.pid, SIGSTOP), 0);
	proxy_send(&px, &r, NULL, 0);
	ck_assert_int_ne(raw_await_ret(px.q, 200, &v), 0);
	remote_kill(&first);
	start_listening(&second, first.path);
	ck_assert_int_eq(raw_await_ret(px.q, RESTART_MS, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_ptr_nonnull(proxy_wait_log(&px, "was in flight when the remote died", 0, 1000));
	ck_assert_ptr_nonnull(proxy_wait_log(&px, "the remote restarted (restart 1)", 0, 1000));
	/* The next access is an ordinary one again. */
	expect_replayed_and_flagged();
	proxy_stop(&px);
	remote_stop(&second);
	remote_release(&first);
}
END_TEST

/* The pid in the n-th "started ... (pid N)" line the proxy logged. */
static pid_t spawned_pid(int n)
{
	static const char key[] = "--device edu (pid ";
	const char *s = px.log;

	for (;; s++) {
		s = strstr(s, key);
		if (!s)
			return -1;
		if (n-- == 0)
			return (pid_t)strtol(s + strlen(key), NULL, 10);
	}
}

START_TEST(a_spawned_remote_that_dies_is_spawned_again)
{
	pid_t old, new;

	proxy_start(&px, (const char *const[]){ "--spawn-remote", "-v", NULL });
	program_device();
	ck_assert_ptr_nonnull(proxy_wait_log(&px, "--device edu (pid ", 0, PROXY_WAIT_MS));
	old = spawned_pid(0);
	ck_assert_int_gt(old, 0);
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	ck_assert(proxy_wait_log(&px, "the remote restarted (restart 1)", 0, RESTART_MS));
	new = spawned_pid(1);
	ck_assert_int_gt(new, 0);
	ck_assert_int_ne(new, old);
	expect_qemu_connected();
	expect_replayed_and_flagged();
	/* The dead one was reaped, not left a zombie. */
	ck_assert_int_eq(kill(old, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	proxy_stop(&px);
}
END_TEST

START_TEST(a_remote_that_does_not_come_back_ends_the_proxy)
{
	char c;

	start_listening(&first, NULL);
	start_proxy_on(first.path, "500");
	remote_kill(&first);
	/* QEMU's connection closes once the wait is over, not before. */
	ck_assert(!readable(px.q, 300));
	ck_assert_msg(readable(px.q, PROXY_WAIT_MS), "the proxy still waits after its timeout");
	ck_assert_int_le(recv(px.q, &c, 1, MSG_DONTWAIT), 0);
	ck_assert_int_eq(proxy_wait_exit(&px, PROXY_WAIT_MS), 1);
	ck_assert_ptr_nonnull(strstr(px.log, "the remote went away"));
	remote_release(&first);
}
END_TEST

START_TEST(bad_reconnect_timeouts_are_refused)
{
	static const char *const bad[] = { "-1", "x", "", "600001", "10s" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		proxy_start(&px, (const char *const[]){ "--spawn-remote", "--reconnect-timeout",
							bad[i], NULL });
		ck_assert_int_eq(proxy_wait_exit(&px, PROXY_WAIT_MS), 2);
		ck_assert_msg(strstr(px.log, "bad --reconnect-timeout"), "'%s': %s", bad[i],
			      px.log);
		proxy_release(&px);
	}
}
END_TEST

static Suite *restart_suite(void)
{
	Suite *s = suite_create("proxy_restart");
	TCase *tc = tcase_create("restart");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_remote_restarted_at_its_socket_is_replayed);
	tcase_add_test(tc, requests_during_the_outage_wait_for_the_new_remote);
	tcase_add_test(tc, an_access_in_flight_is_answered_as_by_a_device_in_reset);
	tcase_add_test(tc, a_spawned_remote_that_dies_is_spawned_again);
	tcase_add_test(tc, a_remote_that_does_not_come_back_ends_the_proxy);
	tcase_add_test(tc, bad_reconnect_timeouts_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(restart_suite());
}
