#include "transport.h"

#include "fdrelease.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* SCM_MAX_FD in the kernel: no packet can carry more. */
#define TRANSPORT_FD_CAP 253

void transport_close_fds(int *fds, size_t n)
{
	/* Received descriptors: whatever the peer sent may block on close. */
	for (size_t i = 0; i < n; i++) {
		fd_release(fds[i]);
		fds[i] = -1;
	}
}

static int wait_writable(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLOUT };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
		return -EPIPE;
	return 0;
}

int transport_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds,
		   int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * TRANSPORT_FD_CAP)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r;

	if (nfds > TRANSPORT_FD_CAP)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		/* send() spares the kernel the msghdr copy when there is no control data. */
		n = nfds ? sendmsg(sock, &msg, MSG_NOSIGNAL) : send(sock, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		r = wait_writable(sock, timeout_ms);
		if (r < 0)
			return r;
	}
	/* SEQPACKET is all or nothing; a short count would be a kernel bug. */
	return (size_t)n == len ? 0 : -EIO;
}

static size_t collect_fds(struct msghdr *msg, int *fds, size_t max_fds, int *foreign)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t cnt;
		const unsigned char *data;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			*foreign = 1;
			continue;
		}
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		data = CMSG_DATA(c);
		for (size_t i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			if (n < max_fds) {
				fds[n++] = fd;
			} else {
				/* Past what the caller takes: ours to close, off the loop. */
				fd_release(fd);
				*foreign = 1;
			}
		}
	}
	return n;
}

static int peer_hung_up(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };

	if (poll(&p, 1, 0) <= 0)
		return 0;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

ssize_t transport_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds, size_t *nfds,
		       int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * TRANSPORT_FD_CAP)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf };
	int foreign = 0;
	ssize_t n;

	*nfds = 0;
	if (max_fds > TRANSPORT_FD_CAP)
		max_fds = TRANSPORT_FD_CAP;
	/*
	 * Room for every descriptor a packet can carry, whatever the caller
	 * takes: descriptors the kernel cannot deliver (MSG_CTRUNC) it closes
	 * itself, in our thread, and the last close of a peer's lingering
	 * socket would block right here. The excess is closed by collect_fds.
	 */
	msg.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	*nfds = collect_fds(&msg, fds, max_fds, &foreign);
	if (msg.msg_flags & MSG_TRUNC) {
		transport_close_fds(fds, *nfds);
		*nfds = 0;
		return -EMSGSIZE;
	}
	if ((msg.msg_flags & MSG_CTRUNC) || foreign) {
		transport_close_fds(fds, *nfds);
		*nfds = 0;
		return -EPROTO;
	}
	if (n == 0) {
		int hup = peer_hung_up(sock);

		transport_close_fds(fds, *nfds);
		*nfds = 0;
		return hup ? 0 : -EBADMSG;
	}
	return n;
}
