/*
 * mpdev-remote's mpqemu face, driven directly as stock QEMU's
 * x-pci-proxy-dev drives it (no mpdev-proxy): a SOCK_STREAM connection,
 * hand-encoded mpqemu messages (tests/lib/mpqemu_raw.h), RETs read as QEMU
 * reads them. Config space; BAR programming and edu's registers at QEMU's
 * absolute BAR addresses, the BAR moving with its register; SYNC_SYSMEM as
 * the memory table, changed minimally (the remote's own mappings, seen in
 * /proc/PID/maps, stay put when QEMU resends a table), then edu's DMA
 * through it byte for byte; SET_IRQFD: edu's INTx on our irqfd, the
 * resamplefd re-asserting a line still held, a new pair replacing the old;
 * reset; one connection at a time; the whole set-up gone on disconnect.
 * Bad input is test_mpqemu_face_bad.c.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edu.h"
#include "mpqemu_direct.h"
#include "testutil.h"
#include "transport.h"

#define BAR0_ADDR  0xfea00000u
#define BAR0_ADDR2 0xfd000000u
#define RAM_SIZE   0x200000u

static struct mpq mq;

static void start(void)
{
	mpq_start(&mq, NULL);
}

static void stop(void)
{
	mpq_stop(&mq);
}

static uint32_t rd32(uint64_t base, uint32_t off)
{
	return (uint32_t)mpq_bar_read(&mq, base + off, 4, true);
}

static void wr(uint32_t off, uint64_t val, uint32_t size)
{
	ck_assert_uint_eq(mpq_bar_write(&mq, BAR0_ADDR + off, val, size, true), 0);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void take(int fd)
{
	uint64_t v;

	ck_assert_int_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
}

/* ---- config space ---- */

START_TEST(config_space)
{
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 2), EDU_VENDOR_ID);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x02, 2), EDU_DEVICE_ID);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 4), 0x11e81234);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x01, 1), 0x12);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x3d, 1), 0x01); /* INTA */
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0xff, 1), mpq_cfg_read(&mq, 0xfc, 4) >> 24);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x14, 4), 0); /* no BAR1 */
	/* The interrupt line register is the guest's to write. */
	mpq_cfg_write(&mq, 0x3c, 0x0b, 1);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x3c, 1), 0x0b);
	/* Past edu's 256 bytes: all-ones, as QEMU's own remote answers, and on it goes. */
	{
		struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0x100, 0, 4);

		ck_assert_uint_eq(mpq_request(mq.q, &r), UINT64_MAX);
		r = raw_cfg(CMD_PCI_CFGWRITE, 0xfe, 0, 4);
		ck_assert_uint_eq(mpq_request(mq.q, &r), UINT64_MAX);
	}
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x00, 2), EDU_VENDOR_ID);
}
END_TEST

/* ---- BARs at QEMU's absolute addresses ---- */

START_TEST(bar_programming_and_edu_registers)
{
	/* Before the guest places it, BAR0 is nowhere. */
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), UINT64_MAX);
	mpq_program_bar0(&mq, BAR0_ADDR);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_IDENT), EDU_IDENT);
	wr(EDU_REG_LIVENESS, 0x12345678, 4);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_LIVENESS), ~0x12345678u);
	wr(EDU_REG_FACTORIAL, 10, 4);
	for (int i = 0; i < 1000 && (rd32(BAR0_ADDR, EDU_REG_STATUS) & EDU_STATUS_COMPUTING); i++)
		usleep(1000);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_FACTORIAL), 3628800);
	/* 8-byte accesses (edu's DMA registers take them). */
	wr(EDU_REG_DMA_SRC, 0x0123456789abcull, 8);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR + EDU_REG_DMA_SRC, 8, true),
			  0x0123456789abcull);
	/* A width edu does not decode: its own answer (all-ones, as QEMU's edu), one byte of it. */
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR + EDU_REG_DMA_SRC + 1, 1, true), 0xff);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_IDENT), EDU_IDENT);
	/* Misses: past the BAR, below it, across its end, the same address as I/O. */
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR + EDU_BAR0_SIZE, 4, true), UINT64_MAX);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR - 4, 4, true), UINT64_MAX);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR + EDU_BAR0_SIZE - 4, 8, true), UINT64_MAX);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, false), UINT64_MAX);
	ck_assert_uint_eq(mpq_bar_write(&mq, 0x1000, 1, 4, true), UINT64_MAX);
	ck_assert(remote_wait_log(&mq.rem, "hits no BAR of the device", MPQ_WAIT_MS));
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_IDENT), EDU_IDENT);
}
END_TEST

START_TEST(bar_moves_with_its_register)
{
	mpq_program_bar0(&mq, BAR0_ADDR);
	ck_assert_uint_eq(rd32(BAR0_ADDR, 0), EDU_IDENT);
	mpq_cfg_write(&mq, 0x10, BAR0_ADDR2, 4);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), UINT64_MAX);
	ck_assert_uint_eq(rd32(BAR0_ADDR2, 0), EDU_IDENT);
	/* A 2-byte write to the register's upper half moves it back. */
	mpq_cfg_write(&mq, 0x12, BAR0_ADDR >> 16, 2);
	ck_assert_uint_eq(rd32(BAR0_ADDR, 0), EDU_IDENT);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR2, 4, true), UINT64_MAX);
}
END_TEST

/* ---- guest RAM ---- */

static void edu_dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram)
{
	wr(EDU_REG_DMA_SRC, src, 8);
	wr(EDU_REG_DMA_DST, dst, 8);
	wr(EDU_REG_DMA_COUNT, count, 8);
	wr(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | (to_ram ? EDU_DMA_CMD_TO_RAM : 0), 8);
	for (int i = 0; i < 2000 &&
			(mpq_bar_read(&mq, BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & EDU_DMA_CMD_RUN);
	     i++)
		usleep(500);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR + EDU_REG_DMA_CMD, 8, true) & 1, 0);
}

START_TEST(sync_sysmem_then_dma_byte_for_byte)
{
	int a = mpq_memfd("mpq-ram-a", RAM_SIZE, true), b = mpq_memfd("mpq-ram-b", 0x10000, true);
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	uint64_t before[4], after[4];

	ck_assert_ptr_ne(ram, MAP_FAILED);
	/* Like QEMU's pc machine: low RAM split by the VGA hole, one more block. */
	struct mpq_mem t1[] = {
		{ 0x0, 0xa0000, 0x0, a },
		{ 0x100000, 0x100000, 0x100000, a },
		{ 0x1000000, 0x10000, 0, b },
	};
	mpq_sync_sysmem(&mq, t1, 3);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-a", before, 4), 2);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-b", NULL, 0), 1);
	/* Every received descriptor was closed: the mappings hold the memory, not fds. */
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);

	/* QEMU resends the same table on every memory commit: nothing is remapped. */
	mpq_sync_sysmem(&mq, t1, 3);
	mpq_sync_sysmem(&mq, t1, 3);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-a", after, 4), 2);
	ck_assert_mem_eq(before, after, 2 * sizeof(before[0]));

	/* One entry moves: only it is mapped again; the others stay where they are. */
	struct mpq_mem t2[] = {
		{ 0x0, 0xa0000, 0x0, a },
		{ 0x100000, 0x100000, 0x100000, a },
		{ 0x2000000, 0x10000, 0, b },
	};
	mpq_sync_sysmem(&mq, t2, 3);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-a", after, 4), 2);
	ck_assert_mem_eq(before, after, 2 * sizeof(before[0]));
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-b", NULL, 0), 1);

	/* edu copies guest RAM to its buffer and back elsewhere, byte for byte. */
	mpq_program_bar0(&mq, BAR0_ADDR);
	for (int i = 0; i < 4096; i++)
		ram[0x10000 + i] = (uint8_t)(i * 7 + 3);
	memset(ram + 0x150000, 0, 4096 + 16);
	edu_dma(0x10000, EDU_DMA_BUF_ADDR, 4096, false);
	edu_dma(EDU_DMA_BUF_ADDR, 0x150000, 4096, true);
	ck_assert_mem_eq(ram + 0x150000, ram + 0x10000, 4096);
	for (int i = 0; i < 16; i++)
		ck_assert_uint_eq(ram[0x150000 + 4096 + i], 0);
	/* The VGA hole is no guest RAM: a DMA from there copies nothing into edu's buffer. */
	memset(ram + 0xa0000, 0x77, 64);
	edu_dma(0xa0000, EDU_DMA_BUF_ADDR, 64, false);
	edu_dma(EDU_DMA_BUF_ADDR, 0x160000, 64, true);
	ck_assert_mem_eq(ram + 0x160000, ram + 0x10000, 64);

	/* Nothing shareable left: everything goes, with a hint why. */
	mpq_sync_sysmem(&mq, NULL, 0);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-a", NULL, 0), 0);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-ram-b", NULL, 0), 0);
	ck_assert(remote_wait_log(&mq.rem, "memory-backend-memfd", MPQ_WAIT_MS));
	munmap(ram, RAM_SIZE);
	close(a);
	close(b);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

START_TEST(a_table_that_cannot_be_installed_leaves_no_stale_memory)
{
	int good = mpq_memfd("mpq-good", 0x10000, true), bad = mpq_memfd("mpq-bad", 0x10000, false);
	struct mpq_mem ok[] = { { 0x100000, 0x10000, 0, good } };
	struct mpq_mem t[] = { { 0x100000, 0x10000, 0, good }, { 0x200000, 0x10000, 0, bad } };

	mpq_sync_sysmem(&mq, ok, 1);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-good", NULL, 0), 1);
	/* An unsealed memfd could shrink under the remote: the whole table is refused. */
	mpq_sync_sysmem(&mq, t, 2);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-good", NULL, 0), 0);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-bad", NULL, 0), 0);
	ck_assert(remote_wait_log(&mq.rem, "guest memory table of 2 regions refused", MPQ_WAIT_MS));
	/* A table that works comes back. */
	mpq_sync_sysmem(&mq, ok, 1);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-good", NULL, 0), 1);
	/* Sub-page pieces are left out, the whole pages of an entry kept. */
	struct mpq_mem t2[] = { { 0x100000, 0x10000, 0, good }, { 0x200800, 0x2000, 0x800, good } };
	mpq_sync_sysmem(&mq, t2, 2);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-good", NULL, 0), 2);
	ck_assert_ptr_null(strstr(remote_log(&mq.rem), "holds no whole page"));
	/* Less than a page: left out, and said so. */
	struct mpq_mem t3[] = { { 0x100000, 0x10000, 0, good }, { 0x300000, 0x800, 0, good } };
	mpq_sync_sysmem(&mq, t3, 2);
	ck_assert_int_eq(mpq_mappings(&mq, "mpq-good", NULL, 0), 1);
	ck_assert(remote_wait_log(&mq.rem, "holds no whole page: left out", MPQ_WAIT_MS));
	close(good);
	close(bad);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

/* ---- INTx through SET_IRQFD ---- */

START_TEST(set_irqfd_intx_and_resample)
{
	int irqfd = eventfd(0, EFD_CLOEXEC), resample = eventfd(0, EFD_CLOEXEC);
	int irqfd2 = eventfd(0, EFD_CLOEXEC), resample2 = eventfd(0, EFD_CLOEXEC);
	struct raw r = raw_msg(CMD_SET_IRQFD, 0);
	int fds[2] = { irqfd, resample }, n;
	const uint64_t one = 1;

	mpq_send(mq.q, &r, fds, 2);
	mpq_program_bar0(&mq, BAR0_ADDR); /* also shows SET_IRQFD was handled */
	ck_assert(remote_wait_log(&mq.rem, "INTA wired to QEMU's irqfd", MPQ_WAIT_MS));
	/* The remote holds the pair now: two more than without it. */
	n = remote_settled_fds(&mq.rem);
	ck_assert_int_eq(n, mq.rem.baseline_fds + 2);
	ck_assert(!readable(irqfd, 0));

	/* edu raises INTx: the irqfd fires, once. */
	wr(EDU_REG_IRQ_RAISE, 0x1, 4);
	ck_assert_msg(readable(irqfd, MPQ_WAIT_MS), "edu's interrupt did not reach the irqfd");
	take(irqfd);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_IRQ_STATUS), 0x1);
	/* The guest EOIs while edu still holds the line: the IOHUB asserts it again. */
	ck_assert_int_eq(write(resample, &one, sizeof(one)), (ssize_t)sizeof(one));
	ck_assert_msg(readable(irqfd, MPQ_WAIT_MS), "no re-assert after the resample");
	take(irqfd);
	/* Acked, then EOI'd: quiet. */
	wr(EDU_REG_IRQ_ACK, 0x1, 4);
	ck_assert_int_eq(write(resample, &one, sizeof(one)), (ssize_t)sizeof(one));
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_IRQ_STATUS), 0);
	ck_assert(!readable(irqfd, 200));

	/* A new pair replaces the old one (QEMU sends one again after a reset). */
	fds[0] = irqfd2;
	fds[1] = resample2;
	mpq_send(mq.q, &r, fds, 2);
	ck_assert_uint_eq(rd32(BAR0_ADDR, 0), EDU_IDENT);
	remote_expect_fds(&mq.rem, n);
	wr(EDU_REG_IRQ_RAISE, 0x2, 4);
	ck_assert(readable(irqfd2, MPQ_WAIT_MS));
	ck_assert(!readable(irqfd, 100));
	take(irqfd2);
	wr(EDU_REG_IRQ_ACK, 0x2, 4);
	close(irqfd);
	close(resample);
	close(irqfd2);
	close(resample2);
	/* Disconnecting drops the pair with everything else. */
	mpq_reconnect(&mq);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

/* ---- reset ---- */

START_TEST(device_reset)
{
	struct raw r = raw_msg(CMD_DEVICE_RESET, 0);

	mpq_program_bar0(&mq, BAR0_ADDR);
	wr(EDU_REG_LIVENESS, 0x1, 4);
	ck_assert_uint_eq(mpq_request(mq.q, &r), 0);
	/* At power-on: unplaced, disabled; the old address hits nothing. */
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x04, 2), 0);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x10, 4), 0);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), UINT64_MAX);
	mpq_program_bar0(&mq, BAR0_ADDR);
	ck_assert_uint_ne(rd32(BAR0_ADDR, EDU_REG_LIVENESS), ~0x1u);
	ck_assert_uint_eq(rd32(BAR0_ADDR, 0), EDU_IDENT);
}
END_TEST

/* ---- connections ---- */

START_TEST(one_connection_at_a_time_and_a_fresh_device_for_the_next)
{
	int second;

	mpq_program_bar0(&mq, BAR0_ADDR);
	wr(EDU_REG_LIVENESS, 0x5, 4);
	/* A second QEMU is turned away; the first is served on. */
	second = mpq_connect_raw(&mq);
	mpq_expect_closed(second);
	close(second);
	ck_assert_uint_eq(rd32(BAR0_ADDR, EDU_REG_LIVENESS), ~0x5u);
	/* The next connection finds the device reset: nothing of the last one's set-up. */
	mpq_reconnect(&mq);
	ck_assert_uint_eq(mpq_cfg_read(&mq, 0x10, 4), 0);
	ck_assert_uint_eq(mpq_bar_read(&mq, BAR0_ADDR, 4, true), UINT64_MAX);
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

/* As QEMU gets the fd from mpdev-connect: a message in pieces is still one message. */
START_TEST(messages_in_pieces_and_back_to_back)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0x02, 0, 2);
	uint8_t two[2 * (HDR + SZ_PCI_CONF)];
	uint64_t v;

	for (size_t i = 0; i < r.len; i++) {
		ck_assert_int_eq(send(mq.q, r.b + i, 1, MSG_NOSIGNAL), 1);
		if (i + 1 < r.len)
			mpq_expect_silence(mq.q, 5);
	}
	ck_assert_int_eq(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v), 0);
	ck_assert_uint_eq(v, EDU_DEVICE_ID);
	/* Two requests in one send: two RETs, in order. */
	memcpy(two, r.b, r.len);
	r = raw_cfg(CMD_PCI_CFGREAD, 0x00, 0, 2);
	memcpy(two + HDR + SZ_PCI_CONF, r.b, r.len);
	ck_assert_int_eq(send(mq.q, two, sizeof(two), MSG_NOSIGNAL), (ssize_t)sizeof(two));
	ck_assert_int_eq(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v), 0);
	ck_assert_uint_eq(v, EDU_DEVICE_ID);
	ck_assert_int_eq(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v), 0);
	ck_assert_uint_eq(v, EDU_VENDOR_ID);
}
END_TEST

/*
 * QEMU sends its memory table on every commit without waiting, then a request
 * it waits on: however long the burst (the server's loop stops after 64
 * rounds), the request is answered.
 */
START_TEST(a_burst_of_tables_then_a_request)
{
	struct raw t = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0x02, 0, 2);
	static uint8_t burst[200 * (HDR + SZ_SYNC_SYSMEM) + HDR + SZ_PCI_CONF];
	uint64_t v;

	for (int n = 56; n <= 200; n += (n < 72 ? 1 : 64)) {
		size_t len = 0;

		for (int i = 0; i < n; i++) {
			memcpy(burst + len, t.b, t.len);
			len += t.len;
		}
		memcpy(burst + len, r.b, r.len);
		len += r.len;
		ck_assert_int_eq(transport_send(mq.q, burst, len, NULL, 0, 1000), 0);
		ck_assert_msg(mpq_try_ret(mq.q, MPQ_WAIT_MS, &v) == 0,
			      "no RET after %d tables and a request", n);
		ck_assert_uint_eq(v, EDU_DEVICE_ID);
	}
	ck_assert(remote_wait_log(&mq.rem, "QEMU sent a memory table without guest RAM",
				  MPQ_WAIT_MS));
	remote_expect_fds(&mq.rem, mq.rem.baseline_fds);
}
END_TEST

static Suite *face_suite(void)
{
	Suite *s = suite_create("mpqemu_face");
	TCase *tc = tcase_create("direct");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, config_space);
	tcase_add_test(tc, bar_programming_and_edu_registers);
	tcase_add_test(tc, bar_moves_with_its_register);
	tcase_add_test(tc, sync_sysmem_then_dma_byte_for_byte);
	tcase_add_test(tc, a_table_that_cannot_be_installed_leaves_no_stale_memory);
	tcase_add_test(tc, set_irqfd_intx_and_resample);
	tcase_add_test(tc, device_reset);
	tcase_add_test(tc, one_connection_at_a_time_and_a_fresh_device_for_the_next);
	tcase_add_test(tc, messages_in_pieces_and_back_to_back);
	tcase_add_test(tc, a_burst_of_tables_then_a_request);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(face_suite());
}
