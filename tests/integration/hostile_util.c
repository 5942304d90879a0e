#include "hostile_util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "spawn.h"
#include "testutil.h"
#include "transport.h"

#define MAX_ARGS 40

int64_t hostile_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *hostile_remote_bin(void)
{
	const char *env = getenv("MPDEV_TEST_REMOTE");

	return env && *env ? env : MPDEV_REMOTE_BIN;
}

/* In the child, before exec: kcmp answers ENOSYS, as in a container that filters it. */
static void block_kcmp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);

	if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(kcmp), 0) < 0 ||
	    seccomp_load(ctx) < 0)
		_exit(126);
	seccomp_release(ctx);
}

static void child(const struct hostile_remote *r, const struct hostile_opts *o, int sockfd)
{
	const char *argv[MAX_ARGS];
	int n = 0, log;

	log = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log < 0 || dup2(log, 2) < 0)
		_exit(125);
	if (sockfd >= 0 && (sockfd == 3 ? fcntl(3, F_SETFD, 0) : dup2(sockfd, 3)) < 0)
		_exit(125);
	/* Nothing else of ours (or of whoever started us) is inherited: counts are exact. */
	close_range(sockfd >= 0 ? 4 : 3, ~0u, 0);
	if (o->nofile) {
		struct rlimit rl = { .rlim_cur = o->nofile, .rlim_max = o->nofile };

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(125);
	}
	/* Inherited, not close-on-exec: they count against the remote's limit. */
	for (int i = 0; i < o->fill_fds; i++)
		if (open("/dev/null", O_RDONLY) < 0)
			break;
	if (o->block_kcmp)
		block_kcmp();
	argv[n++] = hostile_remote_bin();
	argv[n++] = "--device";
	argv[n++] = "edu";
	if (o->listen) {
		argv[n++] = "--socket";
		argv[n++] = r->path;
	} else {
		argv[n++] = "--fd";
		argv[n++] = "3";
	}
	for (int i = 0; o->args && o->args[i] && n < MAX_ARGS - 1; i++)
		argv[n++] = o->args[i];
	argv[n] = NULL;
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

void hostile_start(struct hostile_remote *r, const struct hostile_opts *o)
{
	int sv[2] = { -1, -1 };
	pid_t p;

	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->sock = -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/mpdev-hostile-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	if (o->path)
		snprintf(r->path, sizeof(r->path), "%s", o->path);
	else
		snprintf(r->path, sizeof(r->path), "%s/remote.sock", r->dir);
	snprintf(r->log, sizeof(r->log), "%s/remote.log", r->dir);
	if (!o->listen)
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0)
		child(r, o, sv[1]);
	if (sv[1] >= 0)
		close(sv[1]);
	r->pid = p;
	r->sock = sv[0];
}

static void remove_dir(struct hostile_remote *r)
{
	char own[160];

	if (!r->dir[0])
		return;
	/* Only a socket in our own directory is ours to remove. */
	snprintf(own, sizeof(own), "%s/remote.sock", r->dir);
	unlink(own);
	unlink(r->log);
	rmdir(r->dir);
	r->dir[0] = '\0';
}

void hostile_kill(struct hostile_remote *r)
{
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	r->pid = -1;
	remove_dir(r);
}

int hostile_stop(struct hostile_remote *r, int timeout_ms)
{
	int status = -1;

	if (r->pid <= 0)
		return -1;
	kill(r->pid, SIGTERM);
	if (spawn_wait(r->pid, timeout_ms, &status) < 0)
		status = -1;
	r->pid = -1;
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	return status;
}

int hostile_connect(const struct hostile_remote *r)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int64_t deadline = hostile_now_ms() + 3000;

	ck_assert_uint_lt(strlen(r->path), sizeof(addr.sun_path));
	memcpy(addr.sun_path, r->path, strlen(r->path) + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

		ck_assert_int_ge(fd, 0);
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		close(fd);
		ck_assert_msg(hostile_now_ms() < deadline, "cannot connect to %s: %s", r->path,
			      strerror(errno));
		usleep(10000);
	}
}

void hostile_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds)
{
	static uint64_t next_id = 1000;
	static uint8_t buf[MPDEV_MAX_MSG_SIZE];
	size_t len;

	if (!env->id)
		env->id = next_id++;
	if (!env->kind)
		env->kind = MPDEV__KIND__KIND_REQUEST;
	env->nfds = (uint32_t)nfds;
	len = mpdev__envelope__get_packed_size(env);
	ck_assert_uint_le(len, sizeof(buf));
	mpdev__envelope__pack(env, buf);
	ck_assert_int_eq(transport_send(sock, buf, len, fds, nfds, 1000), 0);
}

int hostile_recv(int sock, struct wire_msg *m, int timeout_ms)
{
	struct mpdev_error err = { 0 };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	wire_msg_init(m);
	r = poll(&p, 1, timeout_ms);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	r = wire_recv(sock, m, &err, MSG_DONTWAIT);
	if (r == 0)
		return -EPIPE;
	return r;
}

int hostile_call(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms)
{
	return hostile_call_words(sock, env, fds, nfds, timeout_ms, NULL, 0);
}

int hostile_call_words(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms,
		       char *words, size_t len)
{
	int64_t deadline = hostile_now_ms() + timeout_ms;

	env->id = 0;
	hostile_send(sock, env, fds, nfds);
	for (;;) {
		struct wire_msg m;
		int left = (int)(deadline - hostile_now_ms()), r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = hostile_recv(sock, &m, left);
		if (r <= 0) {
			wire_msg_release(&m);
			return r == 0 ? -ETIMEDOUT : r;
		}
		if (m.env && m.env->kind == MPDEV__KIND__KIND_REPLY && m.env->id == env->id) {
			r = (int)m.env->status;
			if (words)
				snprintf(words, len, "%s", m.env->error ? m.env->error : "");
			wire_msg_release(&m);
			return r;
		}
		wire_msg_release(&m); /* a notification or the error of a posted write */
	}
}

void hostile_hello(int sock, const char *name)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Hello h = MPDEV__HELLO__INIT;

	h.version = MPDEV_PROTO_VERSION;
	h.features = ~0ull;
	h.name = (char *)(name ? name : "hostile");
	env.body_case = MPDEV__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	ck_assert_int_eq(hostile_call(sock, &env, NULL, 0, HOSTILE_ANSWER_MS), 0);
}

int hostile_ping(int sock, int timeout_ms)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__Ping ping = MPDEV__PING__INIT;

	env.body_case = MPDEV__ENVELOPE__BODY_PING;
	env.ping = &ping;
	return hostile_call(sock, &env, NULL, 0, timeout_ms);
}

static void fill_write(Mpdev__Envelope *env, Mpdev__RegionWrite *rw, uint8_t *b, uint32_t region,
		       uint64_t offset, uint32_t value, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	rw->index = region;
	rw->offset = offset;
	rw->data.data = b;
	rw->data.len = size;
	env->body_case = MPDEV__ENVELOPE__BODY_REGION_WRITE;
	env->region_write = rw;
}

int hostile_write(int sock, uint32_t region, uint64_t offset, uint32_t value, uint32_t size)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t b[4];

	fill_write(&env, &rw, b, region, offset, value, size);
	return hostile_call(sock, &env, NULL, 0, HOSTILE_ANSWER_MS);
}

void hostile_write_posted(int sock, uint32_t region, uint64_t offset, uint32_t value, uint32_t size)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionWrite rw = MPDEV__REGION_WRITE__INIT;
	uint8_t b[4];

	fill_write(&env, &rw, b, region, offset, value, size);
	env.kind = MPDEV__KIND__KIND_POSTED;
	hostile_send(sock, &env, NULL, 0);
}

int hostile_set_intx_irqfd(int sock, const int *fds, size_t nfds)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIntxIrqfd body = MPDEV__SET_INTX_IRQFD__INIT;

	env.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	env.set_intx_irqfd = &body;
	return hostile_call(sock, &env, fds, nfds, HOSTILE_ANSWER_MS);
}

int hostile_set_irqs_eventfd(int sock, uint32_t index, uint32_t action, int fd)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;
	int32_t slot = 0;

	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_EVENTFD;
	body.count = 1;
	body.n_fds = 1;
	body.fds = &slot;
	env.body_case = MPDEV__ENVELOPE__BODY_SET_IRQS;
	env.set_irqs = &body;
	return hostile_call(sock, &env, &fd, 1, HOSTILE_ANSWER_MS);
}

bool hostile_fds_settle(pid_t pid, int want, int timeout_ms, int *last)
{
	int64_t deadline = hostile_now_ms() + timeout_ms;

	for (;;) {
		*last = testutil_count_fds(pid);
		if (*last == want)
			return true;
		if (hostile_now_ms() >= deadline)
			return false;
		usleep(20000);
	}
}

long hostile_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

double hostile_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the command name. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int hostile_log_lines(const struct hostile_remote *r)
{
	FILE *f = fopen(r->log, "r");
	int n = 0, c;

	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static bool scan_log(const struct hostile_remote *r, const char *s, bool at_start)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(r->log, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = at_start ? strncmp(line, s, strlen(s)) == 0 : strstr(line, s) != NULL;
	fclose(f);
	return found;
}

bool hostile_log_contains(const struct hostile_remote *r, const char *s)
{
	return scan_log(r, s, false);
}

bool hostile_log_line_starts(const struct hostile_remote *r, const char *s)
{
	return scan_log(r, s, true);
}

int hostile_settled_fds(pid_t pid)
{
	int prev = testutil_count_fds(pid), cur;

	/* Two equal counts 50 ms apart: nothing is being closed behind our back. */
	for (int i = 0; i < 40; i++) {
		usleep(50000);
		cur = testutil_count_fds(pid);
		if (cur == prev)
			return cur;
		prev = cur;
	}
	return cur;
}

void hostile_become_subreaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

void hostile_reap_all(void)
{
	pid_t self = getpid();
	struct dirent *de;
	DIR *d = opendir("/proc");

	/* A failed check leaves its children behind: they were reparented to us. */
	while (d && (de = readdir(d))) {
		char path[300], buf[512], *p;
		int ppid = 0;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
		fclose(f);
		p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == self)
			kill(atoi(de->d_name), SIGKILL);
	}
	if (d)
		closedir(d);
	for (int i = 0; i < 200; i++) {
		pid_t r = waitpid(-1, NULL, WNOHANG);

		if (r < 0)
			break;
		if (r == 0)
			usleep(10000);
	}
}
