/*
 * mpdev-proxy between a fake QEMU written here (hand-encoded mpqemu messages
 * on a stream socketpair, as x-pci-proxy-dev sends them) and a real
 * mpdev-remote serving edu: config space, BAR programming and BAR accesses
 * at absolute addresses (ident, liveness, factorial, DMA), SYNC_SYSMEM turned
 * into the minimal add/remove set (seen in the remote's counters), SET_IRQFD
 * wiring edu's INTx to our irqfd, reset, the messages for QEMU set-ups
 * without shareable RAM, the ways to start it, and malformed messages: each
 * closes the connection, the proxy exits 1 with the reason logged.
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edu.h"
#include "mpqemu_raw.h"
#include "native_raw.h"
#include "proxy_fixture.h"
#include "remote_fixture.h"
#include "spawn.h"
#include "testutil.h"
#include "wire.h"

#define BAR0_ADDR  0xfea00000u
#define BAR0_ADDR2 0xfd000000u
#define PAGE	   0x1000u
#define WAIT_MS	   PROXY_WAIT_MS

/* ---- the proxy (tests/lib/proxy_fixture.h), as every case here uses it ---- */

static struct proxy px = PROXY_INIT;

/* A remote of the test's own, for the cases that do not let the proxy spawn one. */
static struct remote rem;

static const char *wait_log(const char *needle, size_t from, int ms)
{
	return proxy_wait_log(&px, needle, from, ms);
}

static void start_proxy_fd(int child_fd3, const char *const *args)
{
	proxy_start_fd(&px, child_fd3, args);
}

/* The usual set-up: --fd 3 on a stream socketpair, its own remote, verbose. */
static void start_proxy(void)
{
	proxy_start(&px, (const char *const[]){ "--spawn-remote", "-v", NULL });
}

static int wait_proxy(void)
{
	return proxy_wait_exit(&px, WAIT_MS);
}

static void stop_proxy(void)
{
	proxy_stop(&px);
}

static void teardown_any(void)
{
	proxy_release(&px);
	remote_release(&rem); /* a remote of the test's own, if a check failed before its end */
}

static void send_raw(const struct raw *r, const int *fds, size_t nfds)
{
	proxy_send(&px, r, fds, nfds);
}

static uint64_t request(const struct raw *r)
{
	return proxy_request(&px, r);
}

static uint32_t cfg_read(uint32_t addr, int len)
{
	return proxy_cfg_read(&px, addr, len);
}

static void cfg_write(uint32_t addr, uint32_t val, int len)
{
	proxy_cfg_write(&px, addr, val, len);
}

static uint64_t bar_read(uint64_t addr, uint32_t size, bool memory)
{
	return proxy_bar_read(&px, addr, size, memory);
}

static uint64_t bar_write(uint64_t addr, uint64_t val, uint32_t size, bool memory)
{
	return proxy_bar_write(&px, addr, val, size, memory);
}

static uint32_t rd32(uint32_t off)
{
	return (uint32_t)bar_read(BAR0_ADDR + off, 4, true);
}

static void wr(uint32_t off, uint64_t val, uint32_t size)
{
	ck_assert_uint_eq(bar_write(BAR0_ADDR + off, val, size, true), 0);
}

/* What the guest's firmware does: size BAR0 as QEMU's probe does, place it, enable. */
static void program_bar0(uint32_t addr)
{
	uint32_t orig = cfg_read(0x10, 4);

	cfg_write(0x10, 0xffffffff, 4);
	ck_assert_uint_eq(cfg_read(0x10, 4) & 0xfffffff0u, (uint32_t)-EDU_BAR0_SIZE);
	cfg_write(0x10, orig, 4);
	cfg_write(0x10, addr, 4);
	ck_assert_uint_eq(cfg_read(0x10, 4), addr);
	/* memory space + bus master */
	cfg_write(0x04, 0x0006, 2);
}

/* ---- guest RAM and the remote's counters ---- */

static void sync_sysmem(const struct proxy_mem *e, int n)
{
	ck_assert_uint_eq(proxy_sync_sysmem(&px, e, n), 0x1234);
}

static uint64_t counter(const char *line, const char *name)
{
	return proxy_counter(line, name);
}

static const char *remote_counters(void)
{
	return proxy_remote_counters(&px);
}

/* ---- translation ---- */

START_TEST(config_identity)
{
	ck_assert_uint_eq(cfg_read(0x00, 2), 0x1234);
	ck_assert_uint_eq(cfg_read(0x02, 2), 0x11e8);
	ck_assert_uint_eq(cfg_read(0x00, 4), 0x11e81234);
	ck_assert_uint_eq(cfg_read(0x0b, 1), 0x00); /* class: unclassified, as QEMU's edu */
	ck_assert_uint_eq(cfg_read(0x3d, 1), 0x01); /* INTA */
	/* The last byte of the 256; a BAR the device does not have reads 0. */
	ck_assert_uint_eq(cfg_read(0xff, 1), cfg_read(0xfc, 4) >> 24);
	ck_assert_uint_eq(cfg_read(0x14, 4), 0);
}
END_TEST

START_TEST(bar_mmio_at_absolute_addresses)
{
	uint32_t fact = 0;

	program_bar0(BAR0_ADDR);
	ck_assert_uint_eq(rd32(0x00), EDU_IDENT);
	wr(EDU_REG_LIVENESS, 0x12345678, 4);
	ck_assert_uint_eq(rd32(EDU_REG_LIVENESS), ~0x12345678u);
	wr(EDU_REG_FACTORIAL, 10, 4);
	for (int i = 0; i < 1000 && (rd32(EDU_REG_STATUS) & 1); i++)
		usleep(1000);
	fact = rd32(EDU_REG_FACTORIAL);
	ck_assert_uint_eq(fact, 3628800);
	/* 8-byte accesses (edu's DMA registers take them). */
	wr(EDU_REG_DMA_SRC, 0x0123456789abcull, 8);
	ck_assert_uint_eq(bar_read(BAR0_ADDR + EDU_REG_DMA_SRC, 8, true), 0x0123456789abcull);
	/* Misses: past the BAR, below it, across its end, the same address as I/O. */
	ck_assert_uint_eq(bar_read(BAR0_ADDR + EDU_BAR0_SIZE, 4, true), UINT64_MAX);
	ck_assert_uint_eq(bar_read(BAR0_ADDR - 4, 4, true), UINT64_MAX);
	ck_assert_uint_eq(bar_read(BAR0_ADDR + EDU_BAR0_SIZE - 4, 8, true), UINT64_MAX);
	ck_assert_uint_eq(bar_read(BAR0_ADDR, 4, false), UINT64_MAX);
	ck_assert_uint_eq(bar_write(0x1000, 1, 4, true), UINT64_MAX);
	ck_assert_ptr_nonnull(wait_log("hits no BAR of the device", 0, WAIT_MS));
	/* Still serving. */
	ck_assert_uint_eq(rd32(0x00), EDU_IDENT);
}
END_TEST

START_TEST(bar_moves_with_its_register)
{
	program_bar0(BAR0_ADDR);
	ck_assert_uint_eq(rd32(0x00), EDU_IDENT);
	cfg_write(0x10, BAR0_ADDR2, 4);
	ck_assert_uint_eq(bar_read(BAR0_ADDR, 4, true), UINT64_MAX);
	ck_assert_uint_eq(bar_read(BAR0_ADDR2, 4, true), EDU_IDENT);
	/* A 2-byte write to the BAR's upper half moves it too. */
	cfg_write(0x12, BAR0_ADDR >> 16, 2);
	ck_assert_uint_eq(bar_read(BAR0_ADDR, 4, true), EDU_IDENT);
	ck_assert_uint_eq(bar_read(BAR0_ADDR2, 4, true), UINT64_MAX);
}
END_TEST

/* edu's DMA engine: RAM -> buffer, then buffer -> RAM, polled to completion. */
static void edu_dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram)
{
	wr(EDU_REG_DMA_SRC, src, 8);
	wr(EDU_REG_DMA_DST, dst, 8);
	wr(EDU_REG_DMA_COUNT, count, 8);
	wr(EDU_REG_DMA_CMD, to_ram ? 3 : 1, 8);
	for (int i = 0; i < 2000 && (bar_read(BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & 1); i++)
		usleep(500);
	ck_assert_uint_eq(bar_read(BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & 1, 0);
}

START_TEST(memory_table_minimal_changes)
{
	int a = testutil_memfd(0x200000, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
	    b = testutil_memfd(0x10000, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	uint8_t *ram = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	const char *line;
	int fds_after;

	ck_assert_ptr_ne(ram, MAP_FAILED);
	/* Like QEMU's pc machine: low RAM split by the VGA hole, one more block. */
	struct proxy_mem t1[] = {
		{ 0x0, 0xa0000, 0x0, a },
		{ 0x100000, 0x100000, 0x100000, a },
		{ 0x1000000, 0x10000, 0, b },
	};
	sync_sysmem(t1, 3);
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "dma_mmaps"), 3);
	ck_assert_uint_eq(counter(line, "dma_munmaps"), 0);
	ck_assert_uint_eq(counter(line, "mem_regions"), 3);

	/* One entry moves; the others stay: one unmap, one map. */
	struct proxy_mem t2[] = {
		{ 0x0, 0xa0000, 0x0, a },
		{ 0x100000, 0x100000, 0x100000, a },
		{ 0x2000000, 0x10000, 0, b },
	};
	sync_sysmem(t2, 3);
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "dma_mmaps"), 4);
	ck_assert_uint_eq(counter(line, "dma_munmaps"), 1);

	/* The same table again (QEMU resends it on every memory commit): nothing. */
	fds_after = proxy_fds(&px);
	sync_sysmem(t2, 3);
	sync_sysmem(t2, 3);
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "dma_mmaps"), 4);
	ck_assert_uint_eq(counter(line, "dma_munmaps"), 1);
	/* Every received descriptor was closed: the proxy holds no more than before. */
	ck_assert_int_eq(proxy_fds(&px), fds_after);

	/* The table works: edu copies guest RAM to its buffer and back elsewhere. */
	program_bar0(BAR0_ADDR);
	for (int i = 0; i < 4096; i++)
		ram[0x10000 + i] = (uint8_t)(i * 7 + 3);
	memset(ram + 0x150000, 0, 4096);
	edu_dma(0x10000, EDU_DMA_BUF_ADDR, 4096, false);
	edu_dma(EDU_DMA_BUF_ADDR, 0x150000, 4096, true);
	ck_assert_mem_eq(ram + 0x150000, ram + 0x10000, 4096);

	/* QEMU with nothing shareable left: everything goes, with a hint why. */
	sync_sysmem(NULL, 0);
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "dma_munmaps"), 4);
	ck_assert_uint_eq(counter(line, "mem_regions"), 0);
	ck_assert_ptr_nonnull(wait_log("memory-backend-memfd", 0, WAIT_MS));
	munmap(ram, 0x200000);
	close(a);
	close(b);
}
END_TEST

START_TEST(memory_that_is_no_sealed_memfd_gets_a_hint)
{
	int m = memfd_create("unsealed", MFD_CLOEXEC),
	    good = testutil_memfd(0x10000, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	const char *line;

	ck_assert_int_eq(ftruncate(m, 0x10000), 0);
	struct proxy_mem t[] = { { 0x0, 0x10000, 0, m }, { 0x100000, 0x10000, 0, good } };
	sync_sysmem(t, 2);
	ck_assert_ptr_nonnull(wait_log("not sealed against shrinking", 0, WAIT_MS));
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "mem_regions"), 1);
	/* Sub-page pieces are left out, whole pages of an entry kept. */
	struct proxy_mem t2[] = { { 0x100000, 0x10000, 0, good },
				  { 0x200800, 0x2000, 0x800, good } };
	sync_sysmem(t2, 2);
	line = remote_counters();
	ck_assert_uint_eq(counter(line, "mem_regions"), 2);
	close(m);
	close(good);
}
END_TEST

START_TEST(no_memory_table_before_other_messages_is_explained)
{
	ck_assert_uint_eq(cfg_read(0x00, 2), 0x1234);
	ck_assert_ptr_nonnull(wait_log("guest RAM is not shareable", 0, WAIT_MS));
	ck_assert_ptr_nonnull(wait_log("share=on", 0, WAIT_MS));
}
END_TEST

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

START_TEST(set_irqfd_wires_intx)
{
	int irqfd = eventfd(0, EFD_CLOEXEC), resample = eventfd(0, EFD_CLOEXEC);
	int irqfd2 = eventfd(0, EFD_CLOEXEC), resample2 = eventfd(0, EFD_CLOEXEC);
	struct raw r = raw_msg(CMD_SET_IRQFD, 0);
	int fds[2] = { irqfd, resample }, n;
	uint64_t v;

	send_raw(&r, fds, 2);
	program_bar0(BAR0_ADDR); /* also shows SET_IRQFD was handled */
	n = proxy_fds(&px);
	wr(EDU_REG_IRQ_RAISE, 0x1, 4);
	ck_assert_msg(readable(irqfd, WAIT_MS), "edu's interrupt did not reach the irqfd");
	ck_assert_int_eq(read(irqfd, &v, 8), 8);
	ck_assert_uint_eq(rd32(EDU_REG_IRQ_STATUS), 0x1);
	wr(EDU_REG_IRQ_ACK, 0x1, 4);

	/* A new pair replaces the old one (QEMU re-sends after a reset). */
	fds[0] = irqfd2;
	fds[1] = resample2;
	send_raw(&r, fds, 2);
	ck_assert_uint_eq(rd32(0), EDU_IDENT);
	ck_assert_int_eq(proxy_fds(&px), n);
	wr(EDU_REG_IRQ_RAISE, 0x2, 4);
	ck_assert(readable(irqfd2, WAIT_MS));
	ck_assert(!readable(irqfd, 100));
	wr(EDU_REG_IRQ_ACK, 0x2, 4);
	close(irqfd);
	close(resample);
	close(irqfd2);
	close(resample2);
}
END_TEST

START_TEST(device_reset)
{
	struct raw r = raw_msg(CMD_DEVICE_RESET, 0);

	program_bar0(BAR0_ADDR);
	wr(EDU_REG_LIVENESS, 0x1, 4);
	ck_assert_uint_eq(request(&r), 0);
	/* The device is at power-on: unplaced, disabled; the old address hits nothing. */
	ck_assert_uint_eq(cfg_read(0x04, 2), 0);
	ck_assert_uint_eq(cfg_read(0x10, 4), 0);
	ck_assert_uint_eq(bar_read(BAR0_ADDR, 4, true), UINT64_MAX);
	program_bar0(BAR0_ADDR);
	/* The register state is gone too. */
	ck_assert_uint_ne(rd32(EDU_REG_LIVENESS), ~0x1u);
	ck_assert_uint_eq(rd32(0x00), EDU_IDENT);
}
END_TEST

START_TEST(sigterm_ends_it_cleanly)
{
	ck_assert_uint_eq(cfg_read(0x00, 2), 0x1234);
	kill(px.pid, SIGTERM);
	ck_assert_int_eq(wait_proxy(), 0);
}
END_TEST

/* ---- malformed messages: the connection closes, the proxy exits 1, no crash ---- */

static void send_malformed(int i);

static const char *const malformed_names[] = {
	"truncated header",	  "truncated data",
	"oversize data",	  "RET from QEMU",
	"unknown command",	  "BAR read with an fd",
	"SET_IRQFD with 1 fd",	  "SYNC_SYSMEM with 9 fds",
	"config read of 3 bytes", "config read past the device's 256 bytes",
	"BAR read of 16 bytes",	  "BAR write, memory flag 7",
	"reset with data",
};
#define NUM_MALFORMED ((int)(sizeof(malformed_names) / sizeof(malformed_names[0])))

static void send_malformed(int i)
{
	int fds[9];
	struct raw r;

	for (int k = 0; k < 9; k++)
		fds[k] = eventfd(0, EFD_CLOEXEC);
	switch (i) {
	case 0:
		r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
		raw_send(px.q, r.b, 10, NULL, 0);
		shutdown(px.q, SHUT_WR);
		break;
	case 1:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		raw_send(px.q, r.b, HDR + 40, fds, 2);
		shutdown(px.q, SHUT_WR);
		break;
	case 2:
		r = raw_msg(CMD_BAR_READ, 4096);
		send_raw(&r, NULL, 0);
		break;
	case 3:
		r = raw_msg(CMD_RET, 8);
		send_raw(&r, NULL, 0);
		break;
	case 4:
		r = raw_msg(42, 0);
		send_raw(&r, NULL, 0);
		break;
	case 5:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 4, true);
		send_raw(&r, fds, 1);
		break;
	case 6:
		r = raw_msg(CMD_SET_IRQFD, 0);
		send_raw(&r, fds, 1);
		break;
	case 7:
		r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
		send_raw(&r, fds, 9);
		break;
	case 8:
		r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 3);
		send_raw(&r, NULL, 0);
		break;
	case 9:
		r = raw_cfg(CMD_PCI_CFGREAD, 0x100, 0, 4);
		send_raw(&r, NULL, 0);
		break;
	case 10:
		r = raw_bar(CMD_BAR_READ, BAR0_ADDR, 0, 16, true);
		send_raw(&r, NULL, 0);
		break;
	case 11:
		r = raw_bar(CMD_BAR_WRITE, BAR0_ADDR, 0, 4, true);
		r.b[HDR + 20] = 7;
		send_raw(&r, NULL, 0);
		break;
	case 12:
		r = raw_msg(CMD_DEVICE_RESET, 8);
		send_raw(&r, NULL, 0);
		break;
	default:
		ck_abort();
	}
	for (int k = 0; k < 9; k++)
		close(fds[k]);
}

START_TEST(malformed_closes_the_connection)
{
	struct pollfd p;
	char c;

	/* A healthy start: a few good messages first. */
	ck_assert_uint_eq(cfg_read(0x00, 2), 0x1234);
	program_bar0(BAR0_ADDR);
	ck_assert_uint_eq(rd32(0), EDU_IDENT);
	send_malformed(_i);
	/* QEMU sees the connection end (no RET, no hang). */
	p = (struct pollfd){ .fd = px.q, .events = POLLIN };
	ck_assert_msg(poll(&p, 1, WAIT_MS) == 1, "%s: the proxy kept the connection open",
		      malformed_names[_i]);
	ck_assert_int_le(recv(px.q, &c, 1, MSG_DONTWAIT), 0);
	ck_assert_int_eq(wait_proxy(), 1);
	ck_assert_msg(strstr(px.log, "malformed message from QEMU"), "%s: no reason logged",
		      malformed_names[_i]);
	ck_assert_msg(!strstr(px.log, "died of signal"), "%s: the remote crashed",
		      malformed_names[_i]);
}
END_TEST

/* ---- ways to start it, and what users are told ---- */

static char path_buf[108], remote_path[108];

START_TEST(listen_accepts_one_connection)
{
	const char *args[] = { "--listen", path_buf, "--spawn-remote", NULL };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd = -1;

	snprintf(path_buf, sizeof(path_buf), "/tmp/mpdev-proxy-test-%d.sock", (int)getpid());
	unlink(path_buf);
	start_proxy_fd(-1, args);
	strcpy(addr.sun_path, path_buf);
	for (int i = 0; i < 500; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		close(fd);
		fd = -1;
		usleep(10000);
	}
	ck_assert_msg(fd >= 0, "nobody listens at %s", path_buf);
	px.q = fd;
	ck_assert_uint_eq(cfg_read(0x02, 2), 0x11e8);
	/* One connection only: the socket file is gone once it is accepted. */
	ck_assert_int_ne(stat(path_buf, &st), 0);
	stop_proxy();
}
END_TEST

START_TEST(remote_socket_and_a_remote_that_goes_away)
{
	/* Without reconnecting (test_proxy_restart has the rest). */
	const char *args[] = { "--fd", "3", "--remote-socket", rem.path, "--reconnect-timeout",
			       "0",    NULL };
	int sv[2];
	char c;

	remote_start(&rem, &(struct remote_opts){ .listen = true, .greet = REMOTE_UNGREETED });
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	start_proxy_fd(sv[1], args);
	close(sv[1]);
	px.q = sv[0];
	ck_assert_uint_eq(cfg_read(0x00, 4), 0x11e81234);
	/* The remote dies: the proxy says so, closes QEMU's connection, exits 1. */
	remote_kill(&rem);
	ck_assert(readable(px.q, WAIT_MS));
	ck_assert_int_le(recv(px.q, &c, 1, MSG_DONTWAIT), 0);
	ck_assert_int_eq(wait_proxy(), 1);
	ck_assert_ptr_nonnull(strstr(px.log, "the remote went away"));
	remote_release(&rem);
}
END_TEST

START_TEST(unreachable_remote_is_explained)
{
	const char *args[] = { "--fd", "3", "--remote-socket", "/nonexistent/mpdev.sock", NULL };
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	start_proxy_fd(sv[1], args);
	close(sv[1]);
	px.q = sv[0];
	ck_assert_int_eq(wait_proxy(), 1);
	ck_assert_ptr_nonnull(
		strstr(px.log, "cannot use the mpdev-remote at /nonexistent/mpdev.sock"));
	ck_assert_ptr_nonnull(strstr(px.log, "is mpdev-remote running?"));
}
END_TEST

/* A remote of another protocol version refuses our Hello: the user is told so. */
START_TEST(version_mismatch_is_explained)
{
	const char *args[] = { "--fd", "3", "--remote-socket", remote_path, NULL };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct wire_msg m;
	int lfd, fd, sv[2];

	snprintf(remote_path, sizeof(remote_path), "/tmp/mpdev-proxy-v2-%d.sock", (int)getpid());
	unlink(remote_path);
	strcpy(addr.sun_path, remote_path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	start_proxy_fd(sv[1], args);
	close(sv[1]);
	px.q = sv[0];
	ck_assert_msg(readable(lfd, WAIT_MS), "the proxy did not connect within %d ms", WAIT_MS);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	native_recv(fd, &m);
	ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_HELLO);
	ck_assert_int_eq(
		wire_send_error(fd, m.env->id, EPROTONOSUPPORT,
				"protocol version 1 is not supported; this remote speaks 2"),
		0);
	wire_msg_release(&m);
	ck_assert_int_eq(wait_proxy(), 1);
	ck_assert_ptr_nonnull(strstr(px.log, "this remote speaks 2"));
	ck_assert_ptr_nonnull(strstr(px.log, "protocol version mismatch"));
	close(fd);
	close(lfd);
	unlink(remote_path);
}
END_TEST

START_TEST(seqpacket_fd_is_refused)
{
	const char *args[] = { "--fd", "3", "--spawn-remote", NULL };
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	start_proxy_fd(sv[1], args);
	close(sv[1]);
	px.q = sv[0];
	ck_assert_int_eq(wait_proxy(), 1);
	ck_assert_ptr_nonnull(strstr(px.log, "not a stream socket"));
}
END_TEST

START_TEST(bad_usage)
{
	const char *none[] = { "--spawn-remote", NULL };
	const char *both[] = { "--fd", "3", "--spawn-remote", "--remote-socket", "/x", NULL };

	start_proxy_fd(-1, none);
	ck_assert_int_eq(wait_proxy(), 2);
	start_proxy_fd(-1, both);
	ck_assert_int_eq(wait_proxy(), 2);
}
END_TEST

START_TEST(warns_when_root)
{
	start_proxy();
	ck_assert_uint_eq(cfg_read(0x00, 2), 0x1234);
	if (geteuid() == 0)
		ck_assert_ptr_nonnull(
			wait_log("running as root: mpdev-proxy needs no privilege", 0, WAIT_MS));
	else
		ck_assert_ptr_null(strstr(px.log, "running as root"));
	stop_proxy();
}
END_TEST

static Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("translate");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start_proxy, stop_proxy);
	tcase_add_test(tc, config_identity);
	tcase_add_test(tc, bar_mmio_at_absolute_addresses);
	tcase_add_test(tc, bar_moves_with_its_register);
	tcase_add_test(tc, memory_table_minimal_changes);
	tcase_add_test(tc, memory_that_is_no_sealed_memfd_gets_a_hint);
	tcase_add_test(tc, no_memory_table_before_other_messages_is_explained);
	tcase_add_test(tc, set_irqfd_wires_intx);
	tcase_add_test(tc, device_reset);
	tcase_add_test(tc, sigterm_ends_it_cleanly);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start_proxy, teardown_any);
	tcase_add_loop_test(tc, malformed_closes_the_connection, 0, NUM_MALFORMED);
	suite_add_tcase(s, tc);

	tc = tcase_create("start");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown_any);
	tcase_add_test(tc, listen_accepts_one_connection);
	tcase_add_test(tc, remote_socket_and_a_remote_that_goes_away);
	tcase_add_test(tc, unreachable_remote_is_explained);
	tcase_add_test(tc, version_mismatch_is_explained);
	tcase_add_test(tc, seqpacket_fd_is_refused);
	tcase_add_test(tc, bad_usage);
	tcase_add_test(tc, warns_when_root);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(proxy_suite());
}
