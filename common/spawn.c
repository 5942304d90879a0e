#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPAWN_MAX_ARGS 32

const char *spawn_find_remote(char *buf, size_t len)
{
	const char *env = getenv("MPDEV_REMOTE");
	char self[4096], *dir;
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		snprintf(buf, len, "%s/mpdev-remote", dir);
		if (access(buf, X_OK) == 0)
			return buf;
		snprintf(buf, len, "%s/../sbin/mpdev-remote", dir);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "mpdev-remote");
	return buf;
}

int spawn_remote(const char *bin, const char *const *args, pid_t *pid, int *sock)
{
	const char *argv[SPAWN_MAX_ARGS + 4];
	size_t argc = 0;
	int sv[2];
	pid_t p;

	argv[argc++] = bin;
	argv[argc++] = "--fd";
	argv[argc++] = "3";
	for (size_t i = 0; args && args[i]; i++) {
		if (i == SPAWN_MAX_ARGS)
			return -E2BIG;
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	p = fork();
	if (p < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (p == 0) {
		sigset_t none;

		/*
		 * A parent that takes its signals from a signalfd (mpdev-proxy
		 * respawning a remote) has them blocked; the remote must not
		 * start with SIGTERM blocked.
		 */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* dup2 clears close-on-exec on fd 3; every other fd of ours has it. */
		if (sv[1] == 3) {
			fcntl(3, F_SETFD, 0);
		} else if (dup2(sv[1], 3) < 0) {
			_exit(127);
		}
		execvp(bin, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	*pid = p;
	*sock = sv[0];
	return 0;
}

int spawn_wait(pid_t pid, int timeout_ms, int *status)
{
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 5 * 1000 * 1000 };
	int st = 0, waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return -errno;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			if (status)
				*status = st;
			return -ETIMEDOUT;
		}
		nanosleep(&tick, NULL);
		waited += 5;
	}
	if (status)
		*status = st;
	return 0;
}
