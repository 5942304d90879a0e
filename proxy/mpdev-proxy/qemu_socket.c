/*
 * QEMU's side: the stream socket x-pci-proxy-dev's fd is the other end of
 * (inherited, or accepted once at --listen PATH), the RETs QEMU waits for,
 * and the end of the connection when QEMU sends what it never sends.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"

int reply(struct proxy *p, uint64_t value)
{
	struct mpdev_error err = { 0 };

	if (mpqemu_send_ret(p->qfd, value, p->o.timeout_ms, &err) < 0) {
		log_error(COMP, "cannot answer QEMU: %s", err.msg);
		return -1;
	}
	return 0;
}

int malformed(struct proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int malformed(struct proxy *p, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	(void)p;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error(COMP, "malformed message from QEMU: %s; closing the connection", why);
	return -1;
}

static int check_stream(int fd, const char *what)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		log_error(COMP, "%s is not a socket: %s", what, strerror(errno));
		return -1;
	}
	if (type != SOCK_STREAM) {
		log_error(COMP,
			  "%s is not a stream socket: QEMU's x-pci-proxy-dev needs "
			  "SOCK_STREAM (e.g. socketpair(AF_UNIX, SOCK_STREAM, ...))",
			  what);
		return -1;
	}
	return 0;
}

/* Waits for one connection on lfd whose peer is us or root; SIGTERM/SIGINT end the wait. */
static int accept_one(struct proxy *p, int lfd)
{
	for (;;) {
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN },
					{ .fd = p->sigfd, .events = POLLIN } };
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error(COMP, "poll: %s", strerror(errno));
			return -1;
		}
		if (pf[1].revents) {
			struct signalfd_siginfo si;

			if (read(p->sigfd, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGUSR1) {
				log_info(COMP, "signal %u while waiting for QEMU", si.ssi_signo);
				return -2;
			}
			continue;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			log_error(COMP, "accept: %s", strerror(errno));
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != getuid() && cred.uid != 0)) {
			log_warn(COMP,
				 "refused a connection from uid %d: only uid %d (or root) may "
				 "connect",
				 (int)cred.uid, (int)getuid());
			close(fd);
			continue;
		}
		log_info(COMP, "QEMU connected (pid %d)", (int)cred.pid);
		return fd;
	}
}

/* Creates the listening socket at path (mode 0600), atomically ready when it appears. */
static int listen_at(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) + 16 >= sizeof(addr.sun_path)) {
		log_error(COMP, "--listen path too long (at most %zu bytes): %s",
			  sizeof(addr.sun_path) - 17, path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", path, (int)getpid());
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_error(COMP, "%s exists and is not a socket", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			close(probe);
			log_error(COMP, "%s is in use: another process listens there", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error(COMP, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 || chmod(tmp.sun_path, 0600) < 0 ||
	    listen(fd, 1) < 0 || rename(tmp.sun_path, path) < 0) {
		log_error(COMP, "listening at %s: %s", path, strerror(errno));
		unlink(tmp.sun_path);
		close(fd);
		return -1;
	}
	log_info(COMP, "waiting for QEMU at %s", path);
	return fd;
}

int open_qemu_side(struct proxy *p)
{
	if (p->o.listen_path) {
		int lfd = listen_at(p->o.listen_path);

		if (lfd < 0)
			return -1;
		p->qfd = accept_one(p, lfd);
		close(lfd);
		unlink(p->o.listen_path);
		return p->qfd < 0 ? p->qfd : 0;
	} else {
		int fd = (int)p->o.qemu_fd, listening = 0;
		socklen_t len = sizeof(listening);
		char what[32];

		snprintf(what, sizeof(what), "--fd %d", fd);
		if (fcntl(fd, F_GETFD) < 0) {
			log_error(COMP, "%s: no such open descriptor", what);
			return -1;
		}
		if (check_stream(fd, what) < 0)
			return -1;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
			p->qfd = accept_one(p, fd);
			close(fd);
			return p->qfd < 0 ? p->qfd : 0;
		}
		p->qfd = fd;
		return 0;
	}
}
