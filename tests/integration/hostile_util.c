#include "hostile_util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t hostile_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hostile_start(struct remote *r, const struct remote_opts *o)
{
	struct remote_opts ro = o ? *o : (struct remote_opts){ 0 };

	ro.listen = true;
	ro.capture_stderr = true;
	ro.greet = REMOTE_UNGREETED;
	remote_start(r, &ro);
}

/* Ids of our own, far from the fixture's, so that a stray reply cannot pass for another. */
static uint64_t next_id(void)
{
	static uint64_t id = 1000;

	return id++;
}

void hostile_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds)
{
	native_request(sock, env, next_id(), fds, nfds);
}

int hostile_call(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms)
{
	return hostile_call_words(sock, env, fds, nfds, timeout_ms, NULL, 0);
}

int hostile_call_words(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms,
		       char *words, size_t len)
{
	return native_try_call(sock, env, next_id(), fds, nfds, timeout_ms, words, len);
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
	env.id = next_id();
	env.kind = MPDEV__KIND__KIND_POSTED;
	native_send_env(sock, &env, 0, NULL, 0);
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

int hostile_log_lines(struct remote *r)
{
	int n = 0;

	for (const char *p = remote_log(r); *p; p++)
		n += *p == '\n';
	return n;
}

bool hostile_log_contains(struct remote *r, const char *s)
{
	return strstr(remote_log(r), s) != NULL;
}

bool hostile_log_line_starts(struct remote *r, const char *s)
{
	size_t n = strlen(s);
	const char *p = remote_log(r);

	for (;;) {
		if (!strncmp(p, s, n))
			return true;
		p = strchr(p, '\n');
		if (!p)
			return false;
		p++;
	}
}

static void become_subreaper(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

static void reap_all(void)
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

int hostile_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	signal(SIGPIPE, SIG_IGN);
	become_subreaper();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	reap_all();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
