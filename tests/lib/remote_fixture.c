#include "remote_fixture.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "native_raw.h"
#include "spawn.h"
#include "testutil.h"
#include "wire.h"

#define MAX_ARGS	  32
#define POLL_US		  10000
#define SETTLE_GAP_US	  50000 /* two equal counts this far apart: nothing is closing */
#define LISTEN_WAIT_MS	  5000
#define SO_ACCEPTCON_FLAG 0x10000 /* __SO_ACCEPTCON in /proc/net/unix: listening */

static const struct mpdev_options default_opts = { .timeout_ms = 3000,
						   .client_name = "remote_fixture" };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
	usleep(POLL_US);
}

/* A directory for the socket and the log that other uids may enter (test_sandbox connects as
 * 65534). */
static void make_dir(struct remote *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/mpdev-test-XXXXXX");
	ck_assert_msg(mkdtemp(r->dir), "mkdtemp: %s", strerror(errno));
	ck_assert_int_eq(chmod(r->dir, 0755), 0);
	snprintf(r->path, sizeof(r->path), "%s/remote.sock", r->dir);
	snprintf(r->log_path, sizeof(r->log_path), "%s/stderr", r->dir);
}

/* The listening socket systemd would hand over (activate). */
static int bind_listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s, 4), 0);
	return s;
}

/*
 * Whether a socket bound at path is listening, from /proc/net/unix: a probe
 * connection would be a connection the remote serves (and resets for).
 */
static bool listening_at(const char *path)
{
	char line[512], p[256];
	unsigned long flags;
	bool found = false;
	FILE *f = fopen("/proc/net/unix", "r");

	ck_assert_msg(f, "/proc/net/unix: %s", strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %255s", &flags, p) == 2 &&
		    !strcmp(p, path) && (flags & SO_ACCEPTCON_FLAG))
			found = true;
	fclose(f);
	return found;
}

static void wait_listening(struct remote *r)
{
	int64_t deadline = now_ms() + LISTEN_WAIT_MS;

	while (!listening_at(r->path)) {
		int st;

		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			r->reaped = true;
			r->status = st;
			ck_abort_msg("the remote exited (status 0x%x) before listening at %s", st,
				     r->path);
		}
		ck_assert_msg(now_ms() < deadline, "nobody listens at %s after %d ms", r->path,
			      LISTEN_WAIT_MS);
		nap();
	}
}

const char *remote_default_bin(void)
{
	const char *env = getenv("MPDEV_TEST_REMOTE");

	/* To run a suite against another build of the remote (an older one, say). */
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

/* Child side: never returns. */
static void exec_child(const struct remote_opts *o, const char *bin, const char *const *argv,
		       int fd3, int logfd)
{
	char pid[32];

	/* Should the test die on a failed check, the remote goes with it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (logfd >= 0 && dup2(logfd, 2) < 0)
		_exit(126);
	if (fd3 == 3)
		fcntl(3, F_SETFD, 0);
	else if (fd3 >= 0 && dup2(fd3, 3) < 0)
		_exit(126);
	/* Nothing else of the test's (or of whoever started it): the counts are exact. */
	close_range(fd3 >= 0 ? 4 : 3, ~0u, 0);
	if (o->nofile) {
		struct rlimit rl = { o->nofile, o->nofile };

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
	}
	/* Inherited, not close-on-exec: they count against the remote's limit. */
	for (int i = 0; i < o->fill_fds; i++)
		if (open("/dev/null", O_RDONLY) < 0)
			break;
	if (o->block_kcmp)
		block_kcmp();
	if (o->activate) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "1", 1);
	}
	if (o->notify_socket)
		setenv("NOTIFY_SOCKET", o->notify_socket, 1);
	execv(bin, (char *const *)argv);
	fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
	_exit(127);
}

static void greet(struct remote *r, const struct remote_opts *o, int sock)
{
	const struct mpdev_options *mo = o->mpdev ? o->mpdev : &default_opts;

	switch (o->greet) {
	case REMOTE_LIBMPDEV:
		if (r->listening)
			r->dev = remote_connect(r, mo);
		else
			ck_assert_msg(mpdev_connect_fd(sock, mo, &r->dev) == 0, "connect: %s",
				      mpdev_connect_error());
		break;
	case REMOTE_RAW_HELLO:
		r->sock = r->listening ? remote_connect_raw(r) : sock;
		native_hello(r->sock, r->next_id++, MPDEV_PROTO_VERSION,
			     o->features ? o->features : ~0ull, 0);
		break;
	case REMOTE_UNGREETED:
		r->sock = sock; /* -1 when listening */
		return;
	}
	remote_take_baseline(r);
}

void remote_start(struct remote *r, const struct remote_opts *opts)
{
	const struct remote_opts none = { 0 };
	const struct remote_opts *o = opts ? opts : &none;
	const char *bin = o->bin ? o->bin : remote_default_bin();
	const char *argv[MAX_ARGS + 8];
	int sv[2] = { -1, -1 }, lsock = -1, logfd = -1, fd3 = -1;
	size_t n = 0;

	*r = (struct remote){ .pid = -1, .sock = -1, .baseline_fds = -1, .next_id = 1 };
	r->listening = o->listen || o->activate;
	argv[n++] = bin;
	argv[n++] = "--device";
	argv[n++] = o->device ? o->device : "edu";
	if (r->listening || o->capture_stderr)
		make_dir(r);
	if (o->path) {
		ck_assert_msg(o->listen, "a socket path without listen");
		ck_assert_uint_lt(strlen(o->path), sizeof(r->path));
		snprintf(r->path, sizeof(r->path), "%s", o->path);
	}
	if (o->listen) {
		argv[n++] = "--socket";
		argv[n++] = r->path;
	} else if (o->activate) {
		lsock = bind_listener(r->path);
		fd3 = lsock;
	} else {
		argv[n++] = "--fd";
		argv[n++] = "3";
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
		fd3 = sv[1];
	}
	for (size_t i = 0; o->args && o->args[i]; i++) {
		ck_assert_msg(i < MAX_ARGS, "more than %d remote arguments", MAX_ARGS);
		argv[n++] = o->args[i];
	}
	argv[n] = NULL;
	if (o->capture_stderr) {
		logfd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			     0644);
		ck_assert_int_ge(logfd, 0);
	}
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0)
		exec_child(o, bin, argv, fd3, logfd);
	r->started = true;
	if (sv[1] >= 0)
		close(sv[1]);
	if (lsock >= 0)
		close(lsock); /* the remote holds the listening socket alone, as under systemd */
	if (logfd >= 0)
		close(logfd);
	if (r->listening)
		wait_listening(r);
	greet(r, o, sv[0]);
}

int remote_fds(const struct remote *r)
{
	int n = testutil_count_fds(r->pid);

	ck_assert_msg(n > 0, "cannot count the remote's descriptors: %s", strerror(-n));
	return n;
}

int remote_settled_fds(const struct remote *r)
{
	int64_t deadline = now_ms() + REMOTE_SETTLE_MS;
	int last = remote_fds(r), now;

	for (;;) {
		usleep(SETTLE_GAP_US);
		now = remote_fds(r);
		if (now == last || now_ms() >= deadline)
			return now;
		last = now;
	}
}

void remote_take_baseline(struct remote *r)
{
	r->baseline_fds = remote_settled_fds(r);
	r->baseline_rss_kb = remote_rss_kb(r);
}

void remote_expect_fds_within_at(const struct remote *r, int want, int ms, const char *file,
				 int line)
{
	/* The closer thread closes what a peer passed shortly after the reply: poll. */
	int now = testutil_wait_fds(r->pid, want, ms);

	ck_assert_msg(now >= 0, "%s:%d: cannot count the remote's descriptors: %s", file, line,
		      strerror(-now));
	ck_assert_msg(now == want, "%s:%d: the remote holds %d fds, expected %d (waited %d ms)",
		      file, line, now, want, ms);
}

void remote_expect_fds_at(const struct remote *r, int want, const char *file, int line)
{
	remote_expect_fds_within_at(r, want, REMOTE_SETTLE_MS, file, line);
}

void remote_expect_alive_at(struct remote *r, const char *file, int line)
{
	uint32_t v;

	if (r->sock >= 0) {
		native_ping(r->sock, r->next_id++);
	} else {
		ck_assert_msg(r->dev, "%s:%d: no connection to the remote", file, line);
		ck_assert_msg(mpdev_config_read(r->dev, 0, 2, &v) == 0, "%s:%d: %s", file, line,
			      mpdev_last_error(r->dev));
	}
	remote_expect_fds_at(r, r->baseline_fds, file, line);
}

long remote_rss_kb(const struct remote *r)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)r->pid);
	f = fopen(path, "r");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	while (kb < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) != 1)
			kb = -1;
	fclose(f);
	ck_assert_msg(kb >= 0, "%s has no VmRSS", path);
	return kb;
}

void remote_expect_rss_at(const struct remote *r, long base_kb, const char *file, int line)
{
	int64_t deadline = now_ms() + REMOTE_SETTLE_MS;
	long now;

	while ((now = remote_rss_kb(r)) > base_kb + REMOTE_RSS_SLACK_KB && now_ms() < deadline)
		nap();
	ck_assert_msg(now <= base_kb + REMOTE_RSS_SLACK_KB,
		      "%s:%d: the remote's RSS is %ld KiB, baseline %ld + %d", file, line, now,
		      base_kb, REMOTE_RSS_SLACK_KB);
}

struct mpdev *remote_connect(const struct remote *r, const struct mpdev_options *opts)
{
	int64_t deadline = now_ms() + REMOTE_SETTLE_MS;
	struct mpdev *d = NULL;
	int ret;

	ck_assert_msg(r->listening, "the remote does not listen");
	/* Right after a disconnect the remote may still be busy with the last proxy. */
	while ((ret = mpdev_connect(r->path, opts ? opts : &default_opts, &d)) != 0 &&
	       now_ms() < deadline)
		nap();
	ck_assert_msg(ret == 0, "connect to %s: %s", r->path, mpdev_connect_error());
	return d;
}

int remote_connect_raw(const struct remote *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + REMOTE_CONNECT_MS;

	ck_assert_msg(r->listening, "the remote does not listen");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), e;

		ck_assert_int_ge(s, 0);
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return s;
		e = errno;
		close(s);
		/* A full backlog (EAGAIN) drains as the remote accepts; anything else is final. */
		ck_assert_msg(e == EAGAIN && now_ms() < deadline, "connect to %s: %s", r->path,
			      strerror(e));
		nap();
	}
}

const char *remote_log(struct remote *r)
{
	struct stat st;
	ssize_t n = 0;
	int fd;

	ck_assert_msg(r->log_path[0], "the remote's stderr is not captured");
	fd = open(r->log_path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	free(r->log);
	r->log = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(r->log);
	if (st.st_size)
		n = read(fd, r->log, (size_t)st.st_size);
	close(fd);
	ck_assert_int_ge(n, 0);
	r->log[n] = '\0';
	return r->log;
}

bool remote_wait_log(struct remote *r, const char *needle, int ms)
{
	int64_t deadline = now_ms() + ms;

	while (!strstr(remote_log(r), needle)) {
		if (now_ms() >= deadline)
			return false;
		nap();
	}
	return true;
}

static void disconnect(struct remote *r)
{
	mpdev_close(r->dev);
	r->dev = NULL;
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
}

int remote_wait_exit(struct remote *r, int timeout_ms)
{
	int st = 0, ret;

	ck_assert_msg(r->started, "no remote was started");
	if (r->reaped)
		return r->status;
	ret = spawn_wait(r->pid, timeout_ms, &st);
	r->reaped = true;
	r->status = st;
	ck_assert_msg(ret == 0, "the remote did not exit within %d ms (killed: status 0x%x)",
		      timeout_ms, st);
	return st;
}

void remote_stop(struct remote *r)
{
	int st;

	disconnect(r);
	/* One adopted connection ends the remote; a listening one ends on SIGTERM. */
	if (r->listening && !r->reaped)
		kill(r->pid, SIGTERM);
	st = remote_wait_exit(r, REMOTE_EXIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "remote died: status 0x%x", st);
	if (r->listening) {
		/* The sandboxed remote may not unlink its socket; it must not be served. */
		struct mpdev *d = NULL;

		ck_assert_int_lt(mpdev_connect(r->path, &default_opts, &d), 0);
		ck_assert_ptr_null(d);
	}
	remote_release(r);
}

int remote_terminate(struct remote *r, int timeout_ms)
{
	int st = -1;

	ck_assert_msg(r->started, "no remote was started");
	if (!r->reaped) {
		/* Connections stay open until it is gone: the exit must be the signal's doing. */
		kill(r->pid, SIGTERM);
		if (spawn_wait(r->pid, timeout_ms, &st) < 0)
			st = -1; /* killed and reaped by spawn_wait */
		r->reaped = true;
		r->status = st;
	}
	disconnect(r);
	return r->status;
}

void remote_kill(struct remote *r)
{
	ck_assert_msg(r->started, "no remote was started");
	if (r->reaped)
		return;
	kill(r->pid, SIGKILL);
	remote_wait_exit(r, REMOTE_EXIT_MS);
}

void remote_release(struct remote *r)
{
	/* A zeroed struct (never started) holds nothing; its sock 0 is not ours. */
	if (r->started) {
		if (!r->reaped)
			remote_kill(r);
		disconnect(r);
	}
	free(r->log);
	r->log = NULL;
	if (r->dir[0]) {
		char own[sizeof(r->dir) + 16];

		/* Only the socket in our own directory is ours to remove (opts.path is not). */
		snprintf(own, sizeof(own), "%s/remote.sock", r->dir);
		unlink(own);
		unlink(r->log_path);
		rmdir(r->dir);
		r->dir[0] = '\0';
	}
	r->started = false;
}
