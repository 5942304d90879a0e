/*
 * QEMU's mpqemu message format (proto/mpqemu/mpqemu.c) against hand-built byte
 * streams: the layout QEMU puts on the wire, RET as QEMU reads it, and every
 * malformed message QEMU would never send — truncated, oversize, wrong data
 * sizes, wrong descriptor counts, bad widths — each refused with every
 * received descriptor closed; the same decoding without a socket
 * (mpqemu_decode). And the BAR window (proto/mpqemu/bar_window.c) that
 * turns QEMU's absolute BAR addresses into BAR and offset.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bar_window.h"
#include "mpqemu.h"
#include "mpqemu_raw.h"
#include "sysmem.h"
#include "testutil.h"

static int sv[2];
static int baseline_fds;

static void setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	baseline_fds = testutil_count_fds(0);
}

static void teardown(void)
{
	close(sv[0]);
	close(sv[1]);
}

/* ---- hand-built messages ---- */

static void send_raw(const struct raw *r, const int *fds, size_t nfds)
{
	raw_send(sv[0], r->b, r->len, fds, nfds);
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Receives one message that must be refused with want; nothing may stay open. */
static void expect_refused(int want, const char *words)
{
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;

	ck_assert_int_eq(mpqemu_recv(sv[1], &m, 1000, &err), want);
	ck_assert_int_eq(err.code, -want);
	ck_assert_msg(strstr(err.msg, words), "'%s' lacks '%s'", err.msg, words);
	ck_assert_int_eq(m.num_fds, 0);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}

static void expect_ok(struct mpqemu_msg *m)
{
	struct mpdev_error err = { 0 };

	ck_assert_msg(mpqemu_recv(sv[1], m, 1000, &err) == 1, "%s", err.msg);
}

/* ---- the layout ---- */

START_TEST(layout_matches_qemu)
{
	ck_assert_uint_eq(MPQEMU_HDR_SIZE, HDR);
	ck_assert_uint_eq(MPQEMU_MAX_DATA, SZ_SYNC_SYSMEM);
	ck_assert_uint_eq(sizeof(struct mpqemu_pci_conf), SZ_PCI_CONF);
	ck_assert_uint_eq(sizeof(struct mpqemu_bar_access), SZ_BAR_ACCESS);
	ck_assert_str_eq(mpqemu_cmd_name(CMD_BAR_READ), "BAR_READ");
	ck_assert_str_eq(mpqemu_cmd_name(99), "unknown");
}
END_TEST

START_TEST(config_read_and_write_decode)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0x10, 0, 4);
	struct mpqemu_msg m;

	send_raw(&r, NULL, 0);
	r = raw_cfg(CMD_PCI_CFGWRITE, 0x04, 0x0106, 2);
	send_raw(&r, NULL, 0);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_PCI_CFGREAD);
	ck_assert_uint_eq(m.size, SZ_PCI_CONF);
	ck_assert_uint_eq(m.data.pci_conf.addr, 0x10);
	ck_assert_int_eq(m.data.pci_conf.len, 4);
	ck_assert_int_eq(m.num_fds, 0);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_PCI_CFGWRITE);
	ck_assert_uint_eq(m.data.pci_conf.addr, 0x04);
	ck_assert_uint_eq(m.data.pci_conf.val, 0x0106);
	ck_assert_int_eq(m.data.pci_conf.len, 2);
}
END_TEST

START_TEST(bar_access_decodes)
{
	struct raw r = raw_bar(CMD_BAR_WRITE, 0xfea00008, 0x1122334455667788ull, 8, 1);
	struct mpqemu_msg m;

	send_raw(&r, NULL, 0);
	r = raw_bar(CMD_BAR_READ, 0xc040, 0, 2, 0);
	send_raw(&r, NULL, 0);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_BAR_WRITE);
	ck_assert_uint_eq(m.data.bar_access.addr, 0xfea00008);
	ck_assert_uint_eq(m.data.bar_access.val, 0x1122334455667788ull);
	ck_assert_uint_eq(m.data.bar_access.size, 8);
	ck_assert_uint_eq(m.data.bar_access.memory, 1);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_BAR_READ);
	ck_assert_uint_eq(m.data.bar_access.addr, 0xc040);
	ck_assert_uint_eq(m.data.bar_access.memory, 0);
}
END_TEST

START_TEST(sync_sysmem_brings_its_fds)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() };
	struct mpqemu_msg m;

	raw_sysmem_entry(&r, 0, 0, 0xa0000, 0);
	raw_sysmem_entry(&r, 1, 0xc0000, 0x20000, 0xc0000);
	raw_sysmem_entry(&r, 2, 0x100000, 0x1ff00000, 0x100000);
	send_raw(&r, fds, 3);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_SYNC_SYSMEM);
	ck_assert_int_eq(m.num_fds, 3);
	ck_assert_uint_eq(m.data.sync_sysmem.gpas[1], 0xc0000);
	ck_assert_uint_eq(m.data.sync_sysmem.sizes[2], 0x1ff00000);
	ck_assert_int_eq(m.data.sync_sysmem.offsets[2], 0x100000);
	for (int i = 0; i < 3; i++) {
		ck_assert(testutil_same_file(fds[i], m.fds[i]));
		ck_assert(fcntl(m.fds[i], F_GETFD) & FD_CLOEXEC);
	}
	close_all(fds, 3);
	mpqemu_msg_close_fds(&m);
	ck_assert_int_eq(m.num_fds, 0);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}
END_TEST

START_TEST(sync_sysmem_may_carry_no_ram)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	struct mpqemu_msg m;

	send_raw(&r, NULL, 0);
	expect_ok(&m);
	ck_assert_int_eq(m.num_fds, 0);
}
END_TEST

START_TEST(set_irqfd_and_reset_decode)
{
	struct raw r = raw_msg(CMD_SET_IRQFD, 0);
	int fds[2] = { testutil_eventfd(), testutil_eventfd() };
	struct mpqemu_msg m;

	send_raw(&r, fds, 2);
	r = raw_msg(CMD_DEVICE_RESET, 0);
	send_raw(&r, NULL, 0);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_SET_IRQFD);
	ck_assert_int_eq(m.num_fds, 2);
	mpqemu_msg_close_fds(&m);
	expect_ok(&m);
	ck_assert_int_eq(m.cmd, CMD_DEVICE_RESET);
	close_all(fds, 2);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}
END_TEST

/* A message that arrives in pieces (a stream has no message boundaries). */
START_TEST(message_in_pieces)
{
	struct raw r = raw_bar(CMD_BAR_READ, 0x1000, 0, 4, 1);
	struct mpqemu_msg m;

	raw_send(sv[0], r.b, 5, NULL, 0);
	raw_send(sv[0], r.b + 5, 14, NULL, 0);
	raw_send(sv[0], r.b + 19, r.len - 19, NULL, 0);
	expect_ok(&m);
	ck_assert_uint_eq(m.data.bar_access.addr, 0x1000);
}
END_TEST

START_TEST(end_between_messages_is_zero)
{
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;

	shutdown(sv[0], SHUT_WR);
	ck_assert_int_eq(mpqemu_recv(sv[1], &m, 1000, &err), 0);
}
END_TEST

/* ---- RET, as QEMU's mpqemu_msg_recv + mpqemu_msg_valid read it ---- */

START_TEST(ret_is_what_qemu_reads)
{
	struct mpdev_error err = { 0 };
	uint8_t b[48];

	ck_assert_int_eq(mpqemu_send_ret(sv[1], 0x11e81234, 1000, &err), 0);
	ck_assert_int_eq(mpqemu_send_ret(sv[1], UINT64_MAX, 1000, &err), 0);
	ck_assert_int_eq(recv(sv[0], b, sizeof(b), MSG_WAITALL), 48);
	ck_assert_uint_eq(raw_get(b, 4), CMD_RET);
	ck_assert_uint_eq(raw_get(b + 8, 8), 8);
	ck_assert_uint_eq(raw_get(b + 16, 8), 0x11e81234);
	ck_assert_uint_eq(raw_get(b + 24, 4), CMD_RET);
	ck_assert_uint_eq(raw_get(b + 40, 8), UINT64_MAX);
}
END_TEST

START_TEST(send_to_a_gone_peer_fails)
{
	struct mpdev_error err = { 0 };

	close(sv[0]);
	sv[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(mpqemu_send_ret(sv[1], 0, 1000, &err), -EPIPE);
}
END_TEST

/* ---- malformed messages: refused, every fd closed, nothing crashes ---- */

START_TEST(truncated_header)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	int fd = testutil_eventfd();

	raw_send(sv[0], r.b, 10, &fd, 1);
	close(fd);
	shutdown(sv[0], SHUT_WR);
	expect_refused(-EBADMSG, "truncated");
}
END_TEST

START_TEST(truncated_data)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[2] = { testutil_eventfd(), testutil_eventfd() };

	raw_send(sv[0], r.b, HDR + 100, fds, 2);
	close_all(fds, 2);
	shutdown(sv[0], SHUT_WR);
	expect_refused(-EBADMSG, "truncated");
}
END_TEST

START_TEST(stalled_message_times_out)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;
	struct timespec a, b;

	raw_send(sv[0], r.b, HDR + 4, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(mpqemu_recv(sv[1], &m, 200, &err), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_int_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 2000);
	ck_assert_msg(strstr(err.msg, "no complete message within 200 ms"), "%s", err.msg);
	ck_assert_int_eq(m.num_fds, 0);
}
END_TEST

START_TEST(oversize_is_refused_before_reading_data)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM + 1);
	int fd = testutil_eventfd();

	raw_send(sv[0], r.b, HDR, &fd, 1);
	close(fd);
	expect_refused(-EMSGSIZE, "at most 192");
	r = raw_msg(CMD_BAR_READ, 1ull << 40);
	raw_send(sv[0], r.b, HDR, NULL, 0);
	expect_refused(-EMSGSIZE, "at most 192");
}
END_TEST

START_TEST(more_than_eight_fds)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[9];

	for (int i = 0; i < 9; i++)
		fds[i] = testutil_eventfd();
	send_raw(&r, fds, 9);
	close_all(fds, 9);
	expect_refused(-EPROTO, "more than 8 descriptors");
}
END_TEST

START_TEST(fds_split_over_two_sends_still_counted)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[8];

	for (int i = 0; i < 8; i++)
		fds[i] = testutil_eventfd();
	/* 8 with the header, 1 more with the data: 9 for one message. */
	raw_send(sv[0], r.b, HDR, fds, 8);
	raw_send(sv[0], r.b + HDR, SZ_SYNC_SYSMEM, fds, 1);
	close_all(fds, 8);
	expect_refused(-EPROTO, "more than 8 descriptors");
}
END_TEST

START_TEST(credentials_are_not_descriptors)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	int on = 1;

	/* With SO_PASSCRED every packet brings SCM_CREDENTIALS: not ours to accept. */
	ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	send_raw(&r, NULL, 0);
	expect_refused(-EPROTO, "only SCM_RIGHTS");
}
END_TEST

/* Each builds one complete message that QEMU would never send. */
static struct raw b_ret(void)
{
	return raw_msg(CMD_RET, 8);
}
static struct raw b_cmd8(void)
{
	return raw_msg(8, 0);
}
static struct raw b_cmd_neg(void)
{
	return raw_msg(-1, 0);
}
static struct raw b_cfg_short(void)
{
	return raw_msg(CMD_PCI_CFGREAD, 8);
}
static struct raw b_cfg_long(void)
{
	return raw_msg(CMD_PCI_CFGWRITE, 24);
}
static struct raw b_bar_cfgsized(void)
{
	return raw_msg(CMD_BAR_READ, SZ_PCI_CONF);
}
static struct raw b_sysmem_short(void)
{
	return raw_msg(CMD_SYNC_SYSMEM, 64);
}
static struct raw b_reset_data(void)
{
	return raw_msg(CMD_DEVICE_RESET, 8);
}
static struct raw b_reset(void)
{
	return raw_msg(CMD_DEVICE_RESET, 0);
}
static struct raw b_irqfd_data(void)
{
	return raw_msg(CMD_SET_IRQFD, 8);
}
static struct raw b_irqfd(void)
{
	return raw_msg(CMD_SET_IRQFD, 0);
}
static struct raw b_bar_ok(void)
{
	return raw_bar(CMD_BAR_READ, 0x1000, 0, 4, 1);
}
static struct raw b_cfgw_ok(void)
{
	return raw_cfg(CMD_PCI_CFGWRITE, 4, 6, 2);
}
static struct raw b_cfg_len3(void)
{
	return raw_cfg(CMD_PCI_CFGREAD, 0, 0, 3);
}
static struct raw b_cfg_len8(void)
{
	return raw_cfg(CMD_PCI_CFGWRITE, 0, 0, 8);
}
static struct raw b_cfg_len_neg(void)
{
	return raw_cfg(CMD_PCI_CFGREAD, 0, 0, -4);
}
static struct raw b_cfg_beyond(void)
{
	return raw_cfg(CMD_PCI_CFGREAD, 4094, 0, 4);
}
static struct raw b_cfg_huge(void)
{
	return raw_cfg(CMD_PCI_CFGREAD, 0xfffffffe, 0, 4);
}
static struct raw b_bar3(void)
{
	return raw_bar(CMD_BAR_READ, 0x1000, 0, 3, 1);
}
static struct raw b_bar16(void)
{
	return raw_bar(CMD_BAR_WRITE, 0x1000, 0, 16, 1);
}
static struct raw b_bar0(void)
{
	return raw_bar(CMD_BAR_READ, 0x1000, 0, 0, 1);
}
static struct raw b_bar_mem2(void)
{
	return raw_bar(CMD_BAR_READ, 0x1000, 0, 4, 2);
}
static struct raw b_bar_wraps(void)
{
	return raw_bar(CMD_BAR_READ, UINT64_MAX - 1, 0, 4, 1);
}

static struct raw sysmem2(void)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);

	raw_sysmem_entry(&r, 0, 0x100000, 0x1000, 0);
	raw_sysmem_entry(&r, 1, 0x200000, 0x1000, 0);
	return r;
}
static struct raw b_sysmem_wraps(void)
{
	struct raw r = sysmem2();

	raw_sysmem_entry(&r, 1, UINT64_MAX - 0xfff, 0x2000, 0);
	return r;
}
static struct raw b_sysmem_size0(void)
{
	struct raw r = sysmem2();

	raw_sysmem_entry(&r, 0, 0x100000, 0, 0);
	return r;
}
static struct raw b_sysmem_neg_offset(void)
{
	struct raw r = sysmem2();

	raw_sysmem_entry(&r, 0, 0, 0x1000, -4096);
	return r;
}
static struct raw b_sysmem_offset_wraps(void)
{
	struct raw r = sysmem2();

	raw_sysmem_entry(&r, 1, 0x1000, 0x2000, INT64_MAX - 0xfff);
	return r;
}

static const struct bad_case {
	const char *name;
	struct raw (*build)(void);
	int nfds;
	const char *words;
} bad_cases[] = {
	{ "RET from QEMU", b_ret, 0, "out of place" },
	{ "unknown command 8", b_cmd8, 0, "unknown command" },
	{ "negative command", b_cmd_neg, 0, "unknown command" },
	{ "config read, data too short", b_cfg_short, 0, "data size must be 12" },
	{ "config write, data too long", b_cfg_long, 0, "data size must be 12" },
	{ "BAR read, config-sized data", b_bar_cfgsized, 0, "data size must be 24" },
	{ "SYNC_SYSMEM, short data", b_sysmem_short, 1, "data size must be 192" },
	{ "reset with data", b_reset_data, 0, "data size must be 0" },
	{ "SET_IRQFD with data", b_irqfd_data, 2, "data size must be 0" },
	{ "SET_IRQFD with 1 fd", b_irqfd, 1, "must carry 2 descriptors" },
	{ "SET_IRQFD with 3 fds", b_irqfd, 3, "must carry 2 descriptors" },
	{ "SET_IRQFD without fds", b_irqfd, 0, "must carry 2 descriptors" },
	{ "BAR read with an fd", b_bar_ok, 1, "must carry 0 descriptors" },
	{ "config write with fds", b_cfgw_ok, 2, "must carry 0 descriptors" },
	{ "reset with an fd", b_reset, 1, "must carry 0 descriptors" },
	{ "config read of 3 bytes", b_cfg_len3, 0, "width must be 1, 2 or 4" },
	{ "config write of 8 bytes", b_cfg_len8, 0, "width must be 1, 2 or 4" },
	{ "config read of -4 bytes", b_cfg_len_neg, 0, "width must be 1, 2 or 4" },
	{ "config read past 4096", b_cfg_beyond, 0, "beyond 4096" },
	{ "config read at 0xfffffffe", b_cfg_huge, 0, "beyond 4096" },
	{ "BAR read of 3 bytes", b_bar3, 0, "width must be 1, 2, 4 or 8" },
	{ "BAR write of 16 bytes", b_bar16, 0, "width must be 1, 2, 4 or 8" },
	{ "BAR read of 0 bytes", b_bar0, 0, "width must be 1, 2, 4 or 8" },
	{ "BAR read, memory flag 2", b_bar_mem2, 0, "neither 0 nor 1" },
	{ "BAR read that wraps", b_bar_wraps, 0, "wraps" },
	{ "SYNC_SYSMEM entry that wraps", b_sysmem_wraps, 2, "wraps" },
	{ "SYNC_SYSMEM entry of size 0", b_sysmem_size0, 2, "size 0" },
	{ "SYNC_SYSMEM negative offset", b_sysmem_neg_offset, 2, "file offset" },
	{ "SYNC_SYSMEM offset that wraps", b_sysmem_offset_wraps, 2, "file offset" },
};

START_TEST(malformed_is_refused_and_fds_closed)
{
	const struct bad_case *c = &bad_cases[_i];
	struct raw r = c->build();
	int fds[4];

	for (int i = 0; i < c->nfds; i++)
		fds[i] = testutil_eventfd();
	send_raw(&r, fds, (size_t)c->nfds);
	close_all(fds, (size_t)c->nfds);
	expect_refused(-EBADMSG, c->words);
}
END_TEST

/* ---- decoding without a socket (mpqemu_decode: what the fuzzer drives) ---- */

/* A message with n fresh eventfds, as if they had arrived with it. */
static void msg_with_fds(struct mpqemu_msg *m, int n)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < MPQEMU_MAX_FDS; i++)
		m->fds[i] = i < n ? testutil_eventfd() : -1;
	m->num_fds = n;
}

START_TEST(decode_accepts_a_whole_message)
{
	struct raw r = raw_bar(CMD_BAR_WRITE, 0xfea00008, 5, 4, 1);
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;

	msg_with_fds(&m, 0);
	ck_assert_int_eq(mpqemu_decode(&m, r.b, r.len, &err), 1);
	ck_assert_int_eq(m.cmd, CMD_BAR_WRITE);
	ck_assert_uint_eq(m.data.bar_access.addr, 0xfea00008);
	ck_assert_uint_eq(m.data.bar_access.val, 5);
	ck_assert_uint_eq(mpqemu_declared_size(r.b), SZ_BAR_ACCESS);

	r = raw_msg(CMD_SET_IRQFD, 0);
	msg_with_fds(&m, 2);
	ck_assert_int_eq(mpqemu_decode(&m, r.b, r.len, &err), 1);
	ck_assert_int_eq(m.num_fds, 2);
	mpqemu_msg_close_fds(&m);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}
END_TEST

/* Bytes that are not exactly one message: refused, the descriptors closed. */
START_TEST(decode_refuses_a_wrong_length)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 4);
	struct raw big = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM + 1);
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;

	msg_with_fds(&m, 1);
	ck_assert_int_eq(mpqemu_decode(&m, r.b, HDR - 1, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "header"), "%s", err.msg);
	ck_assert_int_eq(m.num_fds, 0);
	msg_with_fds(&m, 2);
	ck_assert_int_eq(mpqemu_decode(&m, r.b, r.len - 1, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "declares 12 bytes of data but 11"), "%s", err.msg);
	ck_assert_int_eq(m.num_fds, 0);
	msg_with_fds(&m, 0);
	ck_assert_int_eq(mpqemu_decode(&m, r.b, r.len + 4, &err), -EBADMSG);
	msg_with_fds(&m, 3);
	ck_assert_int_eq(mpqemu_decode(&m, big.b, HDR, &err), -EMSGSIZE);
	ck_assert_msg(strstr(err.msg, "at most 192"), "%s", err.msg);
	ck_assert_int_eq(m.num_fds, 0);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}
END_TEST

/* ---- framing a buffered stream (the remote's face reads without waiting) ---- */

START_TEST(frame_says_when_a_message_is_whole)
{
	struct raw r = raw_bar(CMD_BAR_READ, 0xfea00000, 0, 4, 1);
	struct raw big = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM + 1);
	uint8_t two[2 * (HDR + SZ_BAR_ACCESS)];

	for (size_t n = 0; n < r.len; n++)
		ck_assert_int_eq(mpqemu_frame(r.b, n), 0);
	ck_assert_int_eq(mpqemu_frame(r.b, r.len), HDR + SZ_BAR_ACCESS);
	/* The first of two messages buffered together. */
	memcpy(two, r.b, r.len);
	memcpy(two + r.len, r.b, r.len);
	ck_assert_int_eq(mpqemu_frame(two, sizeof(two)), HDR + SZ_BAR_ACCESS);
	/* No data: the header is the message. */
	r = raw_msg(CMD_DEVICE_RESET, 0);
	ck_assert_int_eq(mpqemu_frame(r.b, HDR), HDR);
	/* Oversize is known from the header alone. */
	ck_assert_int_eq(mpqemu_frame(big.b, HDR), -EMSGSIZE);
	big = raw_msg(CMD_BAR_READ, UINT64_MAX);
	ck_assert_int_eq(mpqemu_frame(big.b, HDR), -EMSGSIZE);
}
END_TEST

START_TEST(encoded_ret_is_what_qemu_reads)
{
	uint8_t b[MPQEMU_RET_SIZE];

	ck_assert_uint_eq(mpqemu_encode_ret(b, 0x11e81234), HDR + 8);
	ck_assert_uint_eq(raw_get(b, 4), CMD_RET);
	ck_assert_uint_eq(raw_get(b + 8, 8), 8);
	ck_assert_uint_eq(raw_get(b + HDR, 8), 0x11e81234);
	ck_assert(mpqemu_cmd_wants_ret(CMD_PCI_CFGREAD));
	ck_assert(mpqemu_cmd_wants_ret(CMD_PCI_CFGWRITE));
	ck_assert(mpqemu_cmd_wants_ret(CMD_BAR_READ));
	ck_assert(mpqemu_cmd_wants_ret(CMD_BAR_WRITE));
	ck_assert(mpqemu_cmd_wants_ret(CMD_DEVICE_RESET));
	ck_assert(!mpqemu_cmd_wants_ret(CMD_SYNC_SYSMEM));
	ck_assert(!mpqemu_cmd_wants_ret(CMD_SET_IRQFD));
	ck_assert(!mpqemu_cmd_wants_ret(CMD_RET));
	ck_assert(!mpqemu_cmd_wants_ret(42));
	ck_assert(!mpqemu_cmd_wants_ret(-1));
}
END_TEST

/* ---- SYNC_SYSMEM -> whole-page regions (both sides) ---- */

START_TEST(sysmem_keeps_whole_pages)
{
	struct mpqemu_msg m;
	struct mpqemu_ram out[MPQEMU_MAX_FDS];
	uint32_t left_out = 0;
	size_t n;

	memset(&m, 0, sizeof(m));
	m.cmd = MPQEMU_CMD_SYNC_SYSMEM;
	m.size = sizeof(m.data.sync_sysmem);
	m.num_fds = 5;
	for (int i = 0; i < 5; i++)
		m.fds[i] = 10 + i;
	/* Aligned: kept as is. */
	m.data.sync_sysmem.gpas[0] = 0x0;
	m.data.sync_sysmem.sizes[0] = 0xa0000;
	/* Ragged ends: trimmed inwards, the file offset moving with the start. */
	m.data.sync_sysmem.gpas[1] = 0x100800;
	m.data.sync_sysmem.sizes[1] = 0x3000;
	m.data.sync_sysmem.offsets[1] = 0x100800;
	/* Less than a page. */
	m.data.sync_sysmem.gpas[2] = 0x200000;
	m.data.sync_sysmem.sizes[2] = 0xfff;
	/* Address and offset disagree within a page: no page can be mapped. */
	m.data.sync_sysmem.gpas[3] = 0x300000;
	m.data.sync_sysmem.sizes[3] = 0x10000;
	m.data.sync_sysmem.offsets[3] = 0x800;
	/* The very top of the address space. */
	m.data.sync_sysmem.gpas[4] = 0xfffffffffffff000ull;
	m.data.sync_sysmem.sizes[4] = 0x1000;
	m.data.sync_sysmem.offsets[4] = 0x1000;
	ck_assert_int_eq(mpqemu_validate(&m, NULL), 0);
	n = mpqemu_sysmem_regions(&m, 0x1000, out, &left_out);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(left_out, 0x1c);
	ck_assert_uint_eq(out[0].gpa, 0);
	ck_assert_uint_eq(out[0].size, 0xa0000);
	ck_assert_int_eq(out[0].fd, 10);
	ck_assert_int_eq(out[0].entry, 0);
	ck_assert_uint_eq(out[1].gpa, 0x101000);
	ck_assert_uint_eq(out[1].size, 0x2000);
	ck_assert_uint_eq(out[1].fd_offset, 0x101000);
	ck_assert_int_eq(out[1].fd, 11);
	ck_assert_int_eq(out[1].entry, 1);
	m.num_fds = 0;
	ck_assert_uint_eq(mpqemu_sysmem_regions(&m, 0x1000, out, &left_out), 0);
	ck_assert_uint_eq(left_out, 0);
}
END_TEST

/* ---- the BAR window ---- */

static struct bar_window edu_like(void)
{
	/* BAR0 1 MiB memory, BAR2+3 64-bit 16 KiB, BAR4 256 ports of I/O. */
	const uint64_t sizes[6] = { 0x100000, 0, 0x4000, 0, 0x100, 0 };
	struct bar_window w;

	bar_window_init(&w, sizes);
	return w;
}

START_TEST(bar_window_finds_bar_and_offset)
{
	struct bar_window w = edu_like();
	const uint32_t regs[6] = { 0xfea00000, 0, 0xc000000c, 0x1, 0xc041, 0 };
	uint64_t off = 99;

	ck_assert_int_eq(bar_window_lookup(&w, 0xfea00000, 4, true, &off), -1); /* not loaded */
	bar_window_load(&w, regs);
	ck_assert_int_eq(bar_window_lookup(&w, 0xfea00000, 4, true, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(bar_window_lookup(&w, 0xfeaffff8, 8, true, &off), 0);
	ck_assert_uint_eq(off, 0xffff8);
	/* Crossing the end, past the end, below the start. */
	ck_assert_int_eq(bar_window_lookup(&w, 0xfeaffffc, 8, true, &off), -1);
	ck_assert_int_eq(bar_window_lookup(&w, 0xfeb00000, 1, true, &off), -1);
	ck_assert_int_eq(bar_window_lookup(&w, 0xfe9fffff, 1, true, &off), -1);
	/* The same address as I/O hits nothing. */
	ck_assert_int_eq(bar_window_lookup(&w, 0xfea00000, 4, false, &off), -1);
	/* 64-bit BAR: base from both halves, prefetch/type bits stripped. */
	ck_assert_int_eq(bar_window_lookup(&w, 0x1c0000010ull, 4, true, &off), 2);
	ck_assert_uint_eq(off, 0x10);
	ck_assert_int_eq(bar_window_lookup(&w, 0xc0000010ull, 4, true, &off), -1);
	/* I/O BAR: flag bits stripped, only for I/O accesses. */
	ck_assert_int_eq(bar_window_lookup(&w, 0xc0ff, 1, false, &off), 4);
	ck_assert_uint_eq(off, 0xbf);
	ck_assert_int_eq(bar_window_lookup(&w, 0xc040, 2, true, &off), -1);
	ck_assert_int_eq(bar_window_lookup(&w, 0xc13f, 2, false, &off), -1);
	bar_window_invalidate(&w);
	ck_assert_int_eq(bar_window_lookup(&w, 0xfea00000, 4, true, &off), -1);
}
END_TEST

START_TEST(bar_window_unplaced_bars_hit_nothing)
{
	struct bar_window w = edu_like();
	const uint32_t regs[6] = { 0, 0, 0x4, 0, 0x1, 0 };
	uint64_t off;

	bar_window_load(&w, regs);
	ck_assert_int_eq(bar_window_lookup(&w, 0, 4, true, &off), -1);
	ck_assert_int_eq(bar_window_lookup(&w, 0x10, 4, true, &off), -1);
	ck_assert_int_eq(bar_window_lookup(&w, 0x0, 1, false, &off), -1);
	/* A register where the device has no BAR is ignored, whatever it holds. */
	{
		const uint32_t junk[6] = { 0xfea00000, 0xfe000000, 0, 0, 0, 0xfd000000 };

		bar_window_load(&w, junk);
		ck_assert_int_eq(bar_window_lookup(&w, 0xfe000000, 4, true, &off), -1);
		ck_assert_int_eq(bar_window_lookup(&w, 0xfd000000, 4, true, &off), -1);
		ck_assert_int_eq(bar_window_lookup(&w, 0xfea00004, 4, true, &off), 0);
	}
}
END_TEST

START_TEST(bar_window_config_overlap)
{
	ck_assert(!bar_window_config_overlaps(0x0c, 4));
	ck_assert(bar_window_config_overlaps(0x0e, 4));
	ck_assert(bar_window_config_overlaps(0x10, 1));
	ck_assert(bar_window_config_overlaps(0x27, 1));
	ck_assert(!bar_window_config_overlaps(0x28, 4));
	ck_assert(!bar_window_config_overlaps(0x04, 2));
}
END_TEST

START_TEST(bar_window_reloads_after_bar_or_command_writes)
{
	struct bar_window w = edu_like();
	const uint32_t regs[6] = { 0xfea00000, 0, 0xc000000c, 0x1, 0xc041, 0 };

	bar_window_load(&w, regs);
	bar_window_config_written(&w, 0x3c, 1); /* interrupt line: the BARs stay */
	ck_assert(w.valid);
	bar_window_config_written(&w, 0x02, 2); /* device id: read-only anyway */
	ck_assert(w.valid);
	bar_window_config_written(&w, 0x04, 2); /* command: decoding on or off */
	ck_assert(!w.valid);
	bar_window_load(&w, regs);
	bar_window_config_written(&w, 0x05, 1);
	ck_assert(!w.valid);
	bar_window_load(&w, regs);
	bar_window_config_written(&w, 0x06, 2); /* status: W1C bits only */
	ck_assert(w.valid);
	bar_window_config_written(&w, 0x24, 4); /* BAR5 */
	ck_assert(!w.valid);
}
END_TEST

/* A config space for bar_window_resolve to read, failing on demand. */
struct fake_config {
	uint32_t regs[6];
	int reads, fail;
};

static int fake_read(void *opaque, uint32_t offset, uint32_t *val)
{
	struct fake_config *c = opaque;

	ck_assert_uint_ge(offset, 0x10);
	ck_assert_uint_lt(offset, 0x28);
	ck_assert_uint_eq(offset % 4, 0);
	c->reads++;
	if (c->fail)
		return c->fail;
	*val = c->regs[(offset - 0x10) / 4];
	return 0;
}

START_TEST(bar_window_resolve_reads_bases_once)
{
	struct bar_window w = edu_like();
	struct fake_config c = { .regs = { 0xfea00000, 0, 0xc000000c, 0x1, 0xc041, 0 } };
	uint64_t off = 0;
	bool moved;

	/* BAR1, BAR3 and BAR5 are read as possible upper halves: all six. */
	ck_assert_int_eq(bar_window_resolve(&w, 0xfea00010, 4, true, fake_read, &c, &off, &moved),
			 0);
	ck_assert(moved);
	ck_assert_uint_eq(off, 0x10);
	ck_assert_int_eq(c.reads, 6);
	ck_assert_int_eq(bar_window_resolve(&w, 0xc042, 1, false, fake_read, &c, &off, &moved), 4);
	ck_assert(!moved);
	ck_assert_uint_eq(off, 2);
	ck_assert_int_eq(c.reads, 6);
	ck_assert_int_eq(bar_window_resolve(&w, 0x1000, 4, true, fake_read, &c, &off, &moved),
			 -ENXIO);
	/* A failed read: its error, and the next access reads again. */
	bar_window_invalidate(&w);
	c.fail = -EIO;
	ck_assert_int_eq(bar_window_resolve(&w, 0xfea00010, 4, true, fake_read, &c, &off, &moved),
			 -EIO);
	ck_assert(!w.valid);
	c.fail = 0;
	/* Read again, nothing moved (a command register write, say): not "moved". */
	ck_assert_int_eq(bar_window_resolve(&w, 0xfea00010, 4, true, fake_read, &c, &off, &moved),
			 0);
	ck_assert(!moved);
	ck_assert_int_eq(c.reads, 13);
	bar_window_invalidate(&w);
	c.regs[0] = 0xfd000000;
	ck_assert_int_eq(bar_window_resolve(&w, 0xfd000000, 4, true, fake_read, &c, &off, &moved),
			 0);
	ck_assert(moved);
}
END_TEST

static Suite *mpqemu_suite(void)
{
	Suite *s = suite_create("mpqemu");
	TCase *tc = tcase_create("codec");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, layout_matches_qemu);
	tcase_add_test(tc, config_read_and_write_decode);
	tcase_add_test(tc, bar_access_decodes);
	tcase_add_test(tc, sync_sysmem_brings_its_fds);
	tcase_add_test(tc, sync_sysmem_may_carry_no_ram);
	tcase_add_test(tc, set_irqfd_and_reset_decode);
	tcase_add_test(tc, message_in_pieces);
	tcase_add_test(tc, end_between_messages_is_zero);
	tcase_add_test(tc, ret_is_what_qemu_reads);
	tcase_add_test(tc, send_to_a_gone_peer_fails);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, truncated_header);
	tcase_add_test(tc, truncated_data);
	tcase_add_test(tc, stalled_message_times_out);
	tcase_add_test(tc, oversize_is_refused_before_reading_data);
	tcase_add_test(tc, more_than_eight_fds);
	tcase_add_test(tc, fds_split_over_two_sends_still_counted);
	tcase_add_test(tc, credentials_are_not_descriptors);
	tcase_add_loop_test(tc, malformed_is_refused_and_fds_closed, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, decode_accepts_a_whole_message);
	tcase_add_test(tc, decode_refuses_a_wrong_length);
	tcase_add_test(tc, frame_says_when_a_message_is_whole);
	tcase_add_test(tc, encoded_ret_is_what_qemu_reads);
	tcase_add_test(tc, sysmem_keeps_whole_pages);
	suite_add_tcase(s, tc);

	tc = tcase_create("bar_window");
	tcase_add_test(tc, bar_window_finds_bar_and_offset);
	tcase_add_test(tc, bar_window_unplaced_bars_hit_nothing);
	tcase_add_test(tc, bar_window_config_overlap);
	tcase_add_test(tc, bar_window_reloads_after_bar_or_command_writes);
	tcase_add_test(tc, bar_window_resolve_reads_bases_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mpqemu_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
