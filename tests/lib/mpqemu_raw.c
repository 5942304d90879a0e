#include "mpqemu_raw.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "transport.h"

void raw_put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t raw_get(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

struct raw raw_msg(int cmd, uint64_t size)
{
	struct raw r;

	memset(&r, 0, sizeof(r));
	raw_put(r.b, (uint32_t)cmd, 4);
	raw_put(r.b + 8, size, 8);
	r.len = HDR + (size <= sizeof(r.b) - HDR ? size : 0);
	return r;
}

struct raw raw_cfg(int cmd, uint32_t addr, uint32_t val, int32_t len)
{
	struct raw r = raw_msg(cmd, SZ_PCI_CONF);

	raw_put(r.b + HDR, addr, 4);
	raw_put(r.b + HDR + 4, val, 4);
	raw_put(r.b + HDR + 8, (uint32_t)len, 4);
	return r;
}

struct raw raw_bar(int cmd, uint64_t addr, uint64_t val, uint32_t size, uint8_t memory)
{
	struct raw r = raw_msg(cmd, SZ_BAR_ACCESS);

	raw_put(r.b + HDR, addr, 8);
	raw_put(r.b + HDR + 8, val, 8);
	raw_put(r.b + HDR + 16, size, 4);
	r.b[HDR + 20] = memory;
	return r;
}

void raw_sysmem_entry(struct raw *r, int i, uint64_t gpa, uint64_t size, int64_t off)
{
	raw_put(r->b + HDR + 8 * i, gpa, 8);
	raw_put(r->b + HDR + 64 + 8 * i, size, 8);
	raw_put(r->b + HDR + 128 + 8 * i, (uint64_t)off, 8);
}

void raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	/* As QEMU's qio_channel_writev_full_all: the bytes and the fds in one sendmsg. */
	ck_assert_int_eq(transport_send(sock, buf, len, fds, nfds, 1000), 0);
}

int raw_await_ret(int sock, int timeout_ms, uint64_t *val)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	uint8_t h[HDR + 8];
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		return -ETIMEDOUT;
	ck_assert_int_eq(recv(sock, h, HDR, MSG_WAITALL), HDR);
	ck_assert_uint_eq(raw_get(h, 4), CMD_RET);
	ck_assert_uint_eq(raw_get(h + 8, 8), 8);
	ck_assert_int_eq(recv(sock, h + HDR, 8, MSG_WAITALL), 8);
	*val = raw_get(h + HDR, 8);
	return 0;
}
