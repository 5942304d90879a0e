/* One mpdev-proxy for a test (proxy_fixture.h). */
#include "proxy_fixture.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "testutil.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *proxy_default_bin(void)
{
	const char *env = getenv("MPDEV_TEST_PROXY");

	return env && *env ? env : PROXY_BIN;
}

void proxy_start_fd(struct proxy *p, int child_fd3, const char *const *args)
{
	const char *argv[32] = { proxy_default_bin() };
	int errp[2];
	size_t n = 1;

	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(errp, O_CLOEXEC), 0);
	p->log_len = 0;
	p->log[0] = '\0';
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		if (child_fd3 >= 0) {
			if (child_fd3 == 3)
				fcntl(3, F_SETFD, 0);
			else if (dup2(child_fd3, 3) < 0)
				_exit(126);
		}
		dup2(errp[1], 2);
		setenv("MPDEV_REMOTE", MPDEV_REMOTE_BIN, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(errp[1]);
	p->err_fd = errp[0];
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
}

void proxy_start(struct proxy *p, const char *const *args)
{
	const char *argv[30] = { "--fd", "3" };
	size_t n = 2;
	int sv[2];

	for (size_t i = 0; args && args[i]; i++) {
		ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	proxy_start_fd(p, sv[1], argv);
	close(sv[1]);
	p->q = sv[0];
}

void proxy_log_pump(struct proxy *p, int ms)
{
	struct pollfd pfd = { .fd = p->err_fd, .events = POLLIN };

	if (p->err_fd < 0)
		return;
	while (poll(&pfd, 1, ms) > 0) {
		char buf[4096];
		ssize_t n = read(p->err_fd, buf, sizeof(buf));

		if (n <= 0) {
			close(p->err_fd);
			p->err_fd = -1;
			return;
		}
		fwrite(buf, 1, (size_t)n, stderr);
		/* Keep the log's start: the lines tests look for come early, floods later. */
		if (p->log_len + (size_t)n < sizeof(p->log)) {
			memcpy(p->log + p->log_len, buf, (size_t)n);
			p->log_len += (size_t)n;
			p->log[p->log_len] = '\0';
		}
		ms = 0;
	}
}

const char *proxy_wait_log(struct proxy *p, const char *needle, size_t from, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		const char *hit = from <= p->log_len ? strstr(p->log + from, needle) : NULL;

		if (hit)
			return hit;
		if (now_ms() >= deadline || p->err_fd < 0)
			return NULL;
		proxy_log_pump(p, 20);
	}
}

int proxy_log_count(const struct proxy *p, const char *needle)
{
	const char *s = p->log;
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

int proxy_wait_exit(struct proxy *p, int ms)
{
	int status = 0;

	ck_assert_msg(spawn_wait(p->pid, ms, &status) == 0, "mpdev-proxy did not exit within %d ms",
		      ms);
	p->pid = -1;
	/* A remote it spawned may hold the log pipe a moment longer: read to the end, bounded. */
	for (int64_t end = now_ms() + ms; p->err_fd >= 0 && now_ms() < end;)
		proxy_log_pump(p, 100);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void proxy_stop(struct proxy *p)
{
	if (p->q >= 0)
		close(p->q);
	p->q = -1;
	if (p->pid > 0)
		ck_assert_int_eq(proxy_wait_exit(p, PROXY_WAIT_MS), 0);
}

void proxy_release(struct proxy *p)
{
	if (p->q >= 0)
		close(p->q);
	p->q = -1;
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		spawn_wait(p->pid, PROXY_WAIT_MS, NULL);
		p->pid = -1;
	}
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->err_fd = -1;
}

void proxy_send(struct proxy *p, const struct raw *r, const int *fds, size_t nfds)
{
	raw_send(p->q, r->b, r->len, fds, nfds);
}

uint64_t proxy_await_ret(struct proxy *p)
{
	uint64_t v = 0;

	ck_assert_msg(raw_await_ret(p->q, PROXY_WAIT_MS, &v) == 0,
		      "no RET from the proxy within %d ms", PROXY_WAIT_MS);
	return v;
}

uint64_t proxy_request(struct proxy *p, const struct raw *r)
{
	proxy_send(p, r, NULL, 0);
	return proxy_await_ret(p);
}

uint32_t proxy_cfg_read(struct proxy *p, uint32_t addr, int len)
{
	struct raw r = raw_cfg(CMD_PCI_CFGREAD, addr, 0, len);

	return (uint32_t)proxy_request(p, &r);
}

void proxy_cfg_write(struct proxy *p, uint32_t addr, uint32_t val, int len)
{
	struct raw r = raw_cfg(CMD_PCI_CFGWRITE, addr, val, len);

	ck_assert_uint_eq(proxy_request(p, &r), 0);
}

uint64_t proxy_bar_read(struct proxy *p, uint64_t addr, uint32_t size, bool memory)
{
	struct raw r = raw_bar(CMD_BAR_READ, addr, 0, size, memory);

	return proxy_request(p, &r);
}

uint64_t proxy_bar_write(struct proxy *p, uint64_t addr, uint64_t val, uint32_t size, bool memory)
{
	struct raw r = raw_bar(CMD_BAR_WRITE, addr, val, size, memory);

	return proxy_request(p, &r);
}

uint32_t proxy_sync_sysmem(struct proxy *p, const struct proxy_mem *e, int n)
{
	struct raw r = raw_msg(CMD_SYNC_SYSMEM, SZ_SYNC_SYSMEM);
	int fds[8];

	ck_assert_int_le(n, 8);
	for (int i = 0; i < n; i++) {
		raw_sysmem_entry(&r, i, e[i].gpa, e[i].size, e[i].offset);
		fds[i] = e[i].fd;
	}
	proxy_send(p, &r, fds, (size_t)n);
	/* No RET for SYNC_SYSMEM: a request behind it shows it was handled. */
	return proxy_cfg_read(p, 0x00, 2);
}

uint64_t proxy_counter(const char *line, const char *name)
{
	char key[64];
	const char *s;

	snprintf(key, sizeof(key), " %s=", name);
	s = strstr(line, key);
	ck_assert_msg(s != NULL, "no counter %s in: %.300s", name, line);
	return strtoull(s + strlen(key), NULL, 10);
}

const char *proxy_remote_counters(struct proxy *p)
{
	size_t from;
	const char *line;

	proxy_log_pump(p, 0);
	from = p->log_len;
	ck_assert_int_eq(kill(p->pid, SIGUSR1), 0);
	line = proxy_wait_log(p, "remote counters:", from, PROXY_WAIT_MS);
	ck_assert_msg(line != NULL, "the proxy logged no counters after SIGUSR1");
	ck_assert_ptr_nonnull(proxy_wait_log(p, "\n", (size_t)(line - p->log), PROXY_WAIT_MS));
	return line;
}

int proxy_fds(const struct proxy *p)
{
	return testutil_count_fds(p->pid);
}
