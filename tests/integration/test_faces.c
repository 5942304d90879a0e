/*
 * Choosing a face: --face, the name systemd gives a socket
 * (FileDescriptorName=, LISTEN_FDNAMES), and the socket's type must agree;
 * a disagreement stops the remote at start with a reason, before it serves
 * anything, instead of speaking the wrong protocol to a peer.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"
#include "testutil.h"
#include "vfio_user_client.h"

#define EXIT_MS 5000

/*
 * Runs the remote with args (NULL-terminated, after --device edu
 * --no-sandbox) and fd as its descriptor 3, as systemd passes a socket when
 * fdname is not NULL (LISTEN_FDS=1, LISTEN_FDNAMES=fdname) or for --fd 3.
 * Returns the exit status; its stderr goes to errbuf.
 */
static int run_remote(int fd, const char *fdname, const char *const *args, char *errbuf,
		      size_t errlen)
{
	char bin[4096];
	int errpipe[2], status = 0;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	ck_assert_int_eq(pipe2(errpipe, O_CLOEXEC), 0);
	snprintf(bin, sizeof(bin), "%s", MPDEV_REMOTE_BIN);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *argv[16] = { bin, "--device", "edu", "--no-sandbox" };
		char pidbuf[32];
		size_t k = 4;

		for (size_t i = 0; args && args[i] && k < 15; i++)
			argv[k++] = args[i];
		dup2(errpipe[1], 2);
		if (fd >= 0 && dup2(fd, 3) < 0)
			_exit(126);
		if (fdname) {
			snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_PID", pidbuf, 1);
			setenv("LISTEN_FDNAMES", fdname, 1);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(errpipe[1]);
	/* The remote must give up by itself; spawn_wait kills it past the bound. */
	ck_assert_int_eq(spawn_wait(pid, EXIT_MS, &status), 0);
	while (got + 1 < errlen && (n = read(errpipe[0], errbuf + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	errbuf[got] = '\0';
	close(errpipe[0]);
	return status;
}

static int listening(int type, char *dir, size_t dirlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	snprintf(dir, dirlen, "/tmp/mpdev-faces-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/s.sock", dir);
	fd = socket(AF_UNIX, type, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

static void unlisten(int fd, const char *dir)
{
	char p[4200];

	close(fd);
	snprintf(p, sizeof(p), "%s/s.sock", dir);
	unlink(p);
	rmdir(dir);
}

/* The name alone selects the face: a vfio-user client is served on systemd's socket. */
START_TEST(socket_name_selects_the_face)
{
	char dir[64], path[128], bin[4096];
	struct vfu_client c;
	uint32_t ident = 0;
	int l = listening(SOCK_STREAM, dir, sizeof(dir)), status;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s", MPDEV_REMOTE_BIN);
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char pidbuf[32];

		if (dup2(l, 3) < 0)
			_exit(126);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pidbuf, 1);
		setenv("LISTEN_FDNAMES", "vfio-user", 1);
		execl(bin, bin, "--device", "edu", "--no-sandbox", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(vfu_client_connect(&c, path), 0);
	ck_assert_int_eq(vfu_client_version(&c, VFU_CLIENT_QEMU_CAPS), 0);
	ck_assert_int_eq(vfu_client_read32(&c, 0, 0x0, &ident), 0);
	ck_assert_uint_eq(ident, 0x010000ed);
	vfu_client_close(&c);
	kill(pid, SIGTERM);
	ck_assert_int_eq(spawn_wait(pid, EXIT_MS, &status), 0);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlisten(l, dir);
}
END_TEST

START_TEST(unknown_face_is_a_usage_error)
{
	char err[4096];
	int st = run_remote(-1, NULL, (const char *const[]){ "--face", "9p", "--fd", "3", NULL },
			    err, sizeof(err));

	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 2);
	ck_assert_ptr_nonnull(strstr(err, "--face '9p'"));
}
END_TEST

START_TEST(stream_face_refuses_a_seqpacket_socket)
{
	char err[4096];
	int sv[2], st;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	st = run_remote(sv[1], NULL,
			(const char *const[]){ "--face", "vfio-user", "--fd", "3", NULL }, err,
			sizeof(err));
	close(sv[0]);
	close(sv[1]);
	ck_assert(WIFEXITED(st));
	ck_assert_int_ne(WEXITSTATUS(st), 0);
	ck_assert_msg(strstr(err, "SOCK_STREAM"), "stderr: %s", err);
}
END_TEST

START_TEST(native_face_refuses_a_stream_socket_from_systemd)
{
	char dir[64], err[4096];
	int l = listening(SOCK_STREAM, dir, sizeof(dir));
	int st = run_remote(l, "native", NULL, err, sizeof(err));

	unlisten(l, dir);
	ck_assert(WIFEXITED(st));
	ck_assert_int_ne(WEXITSTATUS(st), 0);
	ck_assert_msg(strstr(err, "SOCK_SEQPACKET"), "stderr: %s", err);
}
END_TEST

START_TEST(socket_name_and_option_must_agree)
{
	char dir[64], err[4096];
	int l = listening(SOCK_STREAM, dir, sizeof(dir));
	int st = run_remote(l, "mpqemu", (const char *const[]){ "--face", "vfio-user", NULL }, err,
			    sizeof(err));

	unlisten(l, dir);
	ck_assert(WIFEXITED(st));
	ck_assert_int_ne(WEXITSTATUS(st), 0);
	ck_assert_msg(strstr(err, "named for the mpqemu face but --face says vfio-user"),
		      "stderr: %s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faces");
	TCase *tc = tcase_create("choose");

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, socket_name_selects_the_face);
	tcase_add_test(tc, unknown_face_is_a_usage_error);
	tcase_add_test(tc, stream_face_refuses_a_seqpacket_socket);
	tcase_add_test(tc, native_face_refuses_a_stream_socket_from_systemd);
	tcase_add_test(tc, socket_name_and_option_must_agree);
	suite_add_tcase(s, tc);
	return testutil_run_suite(s);
}
