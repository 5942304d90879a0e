/*
 * The remote's privilege drop and seccomp allow list, its peer checks with
 * a client of another uid, and its systemd integration (socket activation,
 * sd_notify), against real mpdev-remote processes. Needs root (to drop
 * privileges and to change a client's uid): skipped, and says so, without.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libmpdev.h"
#include "spawn.h"

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_sandbox" };

/* Runs bin with args on a socketpair; returns the pid, *sock our end. */
static pid_t start(const char *bin, const char *const *args, int *sock)
{
	pid_t pid;

	ck_assert_int_eq(spawn_remote(bin, args, &pid, sock), 0);
	return pid;
}

static void expect_sigsys(const char *what)
{
	const char *args[] = { "--device", "edu", "--test-forbidden", what, NULL };
	int sock, st = 0;
	pid_t pid = start(MPDEV_SANDBOX_TEST_BIN, args, &sock);

	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
	close(sock);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		      "%s: the remote was not killed by SIGSYS (status 0x%x)", what, st);
}

START_TEST(execve_is_killed)
{
	expect_sigsys("execve");
}
END_TEST

START_TEST(inet_socket_is_killed)
{
	expect_sigsys("socket");
}
END_TEST

START_TEST(opening_a_file_is_killed)
{
#ifdef MPDEV_SANITIZE
	/* Sanitizer builds let ASan open files read-only for its reports: creating one still dies. */
	expect_sigsys("create");
#else
	expect_sigsys("open");
	expect_sigsys("create");
#endif
}
END_TEST

/* The value of a "Key:\t..." line of /proc/PID/status. */
static void status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			char *v = line + klen + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
			break;
		}
	}
	fclose(f);
}

START_TEST(the_drop_holds)
{
	const char *args[] = { "--device", "edu", NULL };
	struct passwd *pw = getpwnam("mpdev");
	char v[256], want[64];
	struct mpdev *d;
	int sock, st;
	pid_t pid;

	ck_assert_msg(pw, "the mpdev user is missing: scripts/setup.sh creates it");
	pid = start(MPDEV_REMOTE_BIN, args, &sock);
	/* Once it answers, it has dropped (the sandbox comes before serving). */
	ck_assert_msg(mpdev_connect_fd(sock, &opts, &d) == 0, "%s", mpdev_connect_error());
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", pw->pw_uid, pw->pw_uid, pw->pw_uid,
		 pw->pw_uid);
	status_field(pid, "Uid", v, sizeof(v));
	ck_assert_str_eq(v, want);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", pw->pw_gid, pw->pw_gid, pw->pw_gid,
		 pw->pw_gid);
	status_field(pid, "Gid", v, sizeof(v));
	ck_assert_str_eq(v, want);
	status_field(pid, "Groups", v, sizeof(v));
	ck_assert_str_eq(v, "");
	status_field(pid, "CapInh", v, sizeof(v));
	ck_assert_str_eq(v, "0000000000000000");
	status_field(pid, "CapPrm", v, sizeof(v));
	ck_assert_str_eq(v, "0000000000000000");
	status_field(pid, "CapEff", v, sizeof(v));
	ck_assert_str_eq(v, "0000000000000000");
	status_field(pid, "CapBnd", v, sizeof(v));
	ck_assert_str_eq(v, "0000000000000000");
	status_field(pid, "CapAmb", v, sizeof(v));
	ck_assert_str_eq(v, "0000000000000000");
	status_field(pid, "NoNewPrivs", v, sizeof(v));
	ck_assert_str_eq(v, "1");
	status_field(pid, "Seccomp", v, sizeof(v));
	ck_assert_str_eq(v, "2"); /* filter mode */
	mpdev_close(d);
	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(unknown_user_is_refused)
{
	const char *args[] = { "--device", "edu", "--user", "no-such-user-here", NULL };
	int sock, st;
	pid_t pid = start(MPDEV_REMOTE_BIN, args, &sock);

	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
	close(sock);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
END_TEST

START_TEST(no_sandbox_keeps_root)
{
	const char *args[] = { "--device", "edu", "--no-sandbox", NULL };
	struct mpdev *d;
	char v[64];
	int sock, st;
	pid_t pid = start(MPDEV_REMOTE_BIN, args, &sock);

	ck_assert_int_eq(mpdev_connect_fd(sock, &opts, &d), 0);
	status_field(pid, "Uid", v, sizeof(v));
	ck_assert_str_eq(v, "0\t0\t0\t0");
	status_field(pid, "Seccomp", v, sizeof(v));
	ck_assert_str_eq(v, "0");
	mpdev_close(d);
	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
}
END_TEST

static char sock_path[108];

static pid_t start_listener(const char *extra_uid)
{
	const char *argv[12] = { MPDEV_REMOTE_BIN, "--device", "edu", "--socket", sock_path };
	size_t n = 5;
	pid_t pid;

	if (extra_uid) {
		argv[n++] = "--allow-uid";
		argv[n++] = extra_uid;
	}
	argv[n] = NULL;
	snprintf(sock_path, sizeof(sock_path), "/tmp/mpdev-sandbox-%d.sock", (int)getpid());
	unlink(sock_path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execv(MPDEV_REMOTE_BIN, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock_path, F_OK) != 0; i++)
		usleep(10000);
	/* Let the other uid reach it, as a group of proxies would be given access. */
	chmod(sock_path, 0666);
	return pid;
}

/* Connects from a child that changed its uid; returns the child's errno (0: connected). */
static int connect_as(uid_t uid)
{
	int st = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mpdev *d = NULL;
		int r;

		if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
			_exit(100);
		r = mpdev_connect(sock_path, &opts, &d);
		if (r == -EACCES && !strstr(mpdev_connect_error(), "not on the allow list"))
			_exit(101);
		mpdev_close(d);
		_exit(r < 0 ? -r : 0);
	}
	ck_assert_int_eq(spawn_wait(pid, 10000, &st), 0);
	ck_assert(WIFEXITED(st));
	ck_assert_int_lt(WEXITSTATUS(st), 100);
	return WEXITSTATUS(st);
}

START_TEST(peer_with_another_uid_is_refused)
{
	pid_t pid = start_listener(NULL);
	int st;

	/* Default allow list: root and the invoking user (root here); 65534 is neither. */
	ck_assert_int_eq(connect_as(65534), EACCES);
	kill(pid, SIGTERM);
	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);

	/* Allowed when listed. */
	pid = start_listener("65534");
	ck_assert_int_eq(connect_as(65534), 0);
	kill(pid, SIGTERM);
	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
}
END_TEST

/*
 * systemd's side of socket activation and sd_notify, played by the test: a
 * listening socket as fd 3 with LISTEN_FDS/LISTEN_PID, and a NOTIFY_SOCKET.
 */
START_TEST(socket_activation_and_readiness)
{
	struct sockaddr_un la = { .sun_family = AF_UNIX }, na = { .sun_family = AF_UNIX };
	char notify_path[108], buf[512];
	struct pollfd p;
	struct mpdev *d;
	int lsock, nsock, st;
	ssize_t n;
	pid_t pid;

	snprintf(sock_path, sizeof(sock_path), "/tmp/mpdev-act-%d.sock", (int)getpid());
	snprintf(notify_path, sizeof(notify_path), "/tmp/mpdev-notify-%d", (int)getpid());
	unlink(sock_path);
	unlink(notify_path);
	strcpy(la.sun_path, sock_path);
	strcpy(na.sun_path, notify_path);
	lsock = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ck_assert_int_eq(bind(lsock, (struct sockaddr *)&la, sizeof(la)), 0);
	ck_assert_int_eq(listen(lsock, 4), 0);
	nsock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(nsock, (struct sockaddr *)&na, sizeof(na)), 0);
	chmod(notify_path, 0666); /* the remote sends its status after dropping to mpdev */

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char pidbuf[32];

		if (dup2(lsock, 3) < 0)
			_exit(127);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
		setenv("LISTEN_PID", pidbuf, 1);
		setenv("LISTEN_FDS", "1", 1);
		setenv("NOTIFY_SOCKET", notify_path, 1);
		execl(MPDEV_REMOTE_BIN, MPDEV_REMOTE_BIN, "--device", "edu", (char *)NULL);
		_exit(127);
	}
	close(lsock);
	/* READY=1 arrives once the remote is set up and sandboxed. */
	p = (struct pollfd){ .fd = nsock, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	n = recv(nsock, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "READY=1"));
	ck_assert_ptr_nonnull(strstr(buf, "STATUS="));
	/* And it serves the socket systemd handed it. */
	ck_assert_msg(mpdev_connect(sock_path, &opts, &d) == 0, "%s", mpdev_connect_error());
	mpdev_close(d);
	kill(pid, SIGTERM);
	ck_assert_int_eq(spawn_wait(pid, 5000, &st), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(nsock);
	unlink(notify_path);
	unlink(sock_path);
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("seccomp");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, execve_is_killed);
	tcase_add_test(tc, inet_socket_is_killed);
	tcase_add_test(tc, opening_a_file_is_killed);
	suite_add_tcase(s, tc);

	tc = tcase_create("drop");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, the_drop_holds);
	tcase_add_test(tc, unknown_user_is_refused);
	tcase_add_test(tc, no_sandbox_keeps_root);
	tcase_add_test(tc, peer_with_another_uid_is_refused);
	tcase_add_test(tc, socket_activation_and_readiness);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (geteuid() != 0) {
		printf("SKIP: the sandbox tests need root (to drop privileges and change a "
		       "client's uid)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(sandbox_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
