#include "mpqemu_direct.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "edu.h"
#include "transport.h"

#define MAX_ARGS 16

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mpq_start(struct mpq *m, const char *const *args)
{
	const char *argv[MAX_ARGS + 4] = { "--face", "mpqemu", "-v" };
	size_t n = 3;

	for (size_t i = 0; args && args[i]; i++) {
		ck_assert_uint_lt(n, MAX_ARGS + 3);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	m->q = -1;
	remote_start(&m->rem, &(struct remote_opts){ .listen = true,
						     .capture_stderr = true,
						     .greet = REMOTE_UNGREETED,
						     .args = argv });
	mpq_reconnect(m);
	remote_take_baseline(&m->rem);
}

void mpq_stop(struct mpq *m)
{
	if (m->q >= 0)
		close(m->q);
	m->q = -1;
	remote_stop(&m->rem);
}

int mpq_connect_raw(const struct mpq *m)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* A blocking send to a remote that reads nothing fails the test instead of hanging it. */
	struct timeval tv = { .tv_sec = MPQ_WAIT_MS / 1000 * 2 };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->rem.path);
	ck_assert_msg(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to %s: %s",
		      m->rem.path, strerror(errno));
	return s;
}

void mpq_reconnect(struct mpq *m)
{
	int64_t deadline = now_ms() + REMOTE_SETTLE_MS;
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, 0, 0, 2);

	if (m->q >= 0)
		close(m->q);
	m->q = -1;
	for (;;) {
		int s = mpq_connect_raw(m), ret;
		uint64_t v = 0;

		mpq_send(s, &r, NULL, 0);
		ret = mpq_try_ret(s, MPQ_WAIT_MS, &v);
		if (ret == 0) {
			ck_assert_uint_eq(v, EDU_VENDOR_ID);
			m->q = s;
			return;
		}
		close(s);
		/* Refused while the last connection is still being let go: again. */
		ck_assert_msg(ret == -EPIPE && now_ms() < deadline,
			      "the remote serves no new connection: %s", strerror(-ret));
		usleep(10000);
	}
}

void mpq_send(int sock, const struct raw *r, const int *fds, size_t nfds)
{
	ck_assert_int_eq(transport_send(sock, r->b, r->len, fds, nfds, 1000), 0);
}

static bool wait_readable(int sock, int ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r == 1;
}

int mpq_try_ret(int sock, int ms, uint64_t *val)
{
	uint8_t h[HDR + 8];
	size_t got = 0;
	int64_t deadline = now_ms() + ms;

	/* A RET may arrive in pieces; each wait is bounded by the one deadline. */
	while (got < sizeof(h)) {
		int left = (int)(deadline - now_ms());
		ssize_t n;

		if (left < 0 || !wait_readable(sock, left)) {
			ck_assert_msg(got == 0, "a RET cut short after %zu bytes", got);
			return -ETIMEDOUT;
		}
		n = recv(sock, h + got, sizeof(h) - got, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			ck_assert_msg(got == 0, "the connection ended %zu bytes into a RET", got);
			return -EPIPE;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		ck_assert_msg(n > 0, "recv: %s", strerror(errno));
		got += (size_t)n;
	}
	ck_assert_uint_eq(raw_get(h, 4), CMD_RET);
	ck_assert_uint_eq(raw_get(h + 8, 8), 8);
	*val = raw_get(h + HDR, 8);
	return 0;
}

uint64_t mpq_request(int sock, const struct raw *r)
{
	uint64_t v = 0;
	int ret;

	mpq_send(sock, r, NULL, 0);
	ret = mpq_try_ret(sock, MPQ_WAIT_MS, &v);
	ck_assert_msg(ret == 0, "no RET within %d ms: %s", MPQ_WAIT_MS, strerror(-ret));
	return v;
}

void mpq_expect_silence(int sock, int ms)
{
	/* Neither bytes nor the end of the connection. */
	ck_assert_msg(!wait_readable(sock, ms),
		      "an answer (or a close) after a message that has none");
}

void mpq_expect_closed(int sock)
{
	char buf[256];
	int64_t deadline = now_ms() + MPQ_WAIT_MS;

	for (;;) {
		int left = (int)(deadline - now_ms());
		ssize_t n;

		ck_assert_msg(left > 0 && wait_readable(sock, left),
			      "the remote kept the connection open for %d ms", MPQ_WAIT_MS);
		n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return;
		ck_assert_msg(n < 0 && errno == EAGAIN, "bytes from the remote before it closed");
	}
}

uint32_t mpq_cfg_read(struct mpq *m, uint32_t addr, int len)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, addr, 0, len);

	return (uint32_t)mpq_request(m->q, &r);
}

void mpq_cfg_write(struct mpq *m, uint32_t addr, uint32_t val, int len)
{
	struct raw r = raw_cfg(CMD_PCI_CFGWRITE, addr, val, len);

	ck_assert_uint_eq(mpq_request(m->q, &r), 0);
}

uint64_t mpq_bar_read(struct mpq *m, uint64_t addr, uint32_t size, bool memory)
{
	struct raw r = raw_bar(CMD_BAR_READ, addr, 0, size, memory);

	return mpq_request(m->q, &r);
}

uint64_t mpq_bar_write(struct mpq *m, uint64_t addr, uint64_t val, uint32_t size, bool memory)
{
	struct raw r = raw_bar(CMD_BAR_WRITE, addr, val, size, memory);

	return mpq_request(m->q, &r);
}

void mpq_program_bar0(struct mpq *m, uint32_t addr)
{
	uint32_t orig = mpq_cfg_read(m, 0x10, 4);

	mpq_cfg_write(m, 0x10, 0xffffffff, 4);
	ck_assert_uint_eq(mpq_cfg_read(m, 0x10, 4) & 0xfffffff0u, (uint32_t)-EDU_BAR0_SIZE);
	mpq_cfg_write(m, 0x10, orig, 4);
	mpq_cfg_write(m, 0x10, addr, 4);
	ck_assert_uint_eq(mpq_cfg_read(m, 0x10, 4), addr);
	mpq_cfg_write(m, 0x04, 0x0006, 2); /* memory space + bus master */
}

void mpq_sync_sysmem(struct mpq *m, const struct mpq_mem *e, int n)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[8];

	ck_assert_int_le(n, 8);
	for (int i = 0; i < n; i++) {
		raw_sysmem_entry(&r, i, e[i].gpa, e[i].size, e[i].offset);
		fds[i] = e[i].fd;
	}
	mpq_send(m->q, &r, fds, (size_t)n);
	ck_assert_uint_eq(mpq_cfg_read(m, 0x00, 2), EDU_VENDOR_ID);
}

int mpq_memfd(const char *name, size_t size, bool sealed)
{
	int fd = memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	/* memory-backend-memfd's seal=on (the default): it never shrinks or grows. */
	if (sealed)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
				 0);
	return fd;
}

int mpq_mappings(const struct mpq *m, const char *name, uint64_t *starts, int max)
{
	char path[64], line[512], want[128];
	unsigned long long start;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)m->rem.pid);
	snprintf(want, sizeof(want), "/memfd:%s ", name);
	f = fopen(path, "r");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, want))
			continue;
		if (starts && n < max && sscanf(line, "%llx-", &start) == 1)
			starts[n] = start;
		n++;
	}
	fclose(f);
	return n;
}
