#include "stream_in.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fdrelease.h"

int stream_in_init(struct stream_in *in, size_t cap)
{
	memset(in, 0, sizeof(*in));
	in->buf = malloc(cap);
	if (!in->buf)
		return -ENOMEM;
	in->cap = cap;
	return 0;
}

void stream_in_release(struct stream_in *in)
{
	for (size_t i = 0; i < in->nfds; i++)
		fd_release(in->fds[i].fd);
	free(in->buf);
	memset(in, 0, sizeof(*in));
}

/* Closes every descriptor a control message carried. */
static void drop_cmsg_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			fd_release(fd);
		}
	}
}

int stream_in_fill(struct stream_in *in, int sock)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * STREAM_IN_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = in->buf + in->len, .iov_len = in->cap - in->len };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	bool bad = false;
	ssize_t n;

	if (in->len == in->cap)
		return -ENOBUFS;
	n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (mh.msg_flags & MSG_CTRUNC)
		bad = true;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c && !bad; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = true;
			break;
		}
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (in->nfds + k > STREAM_IN_MAX_FDS)
			bad = true;
	}
	if (bad) {
		drop_cmsg_fds(&mh);
		return -EPROTO;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < k; i++) {
			memcpy(&in->fds[in->nfds].fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			/*
			 * A read that brings descriptors ends with the packet they
			 * came with, but may begin with earlier packets that had
			 * none: they belong to the message of the read's last byte.
			 */
			in->fds[in->nfds++].pos = in->pos + in->len + (n > 0 ? (size_t)n - 1 : 0);
		}
	}
	if (n == 0) {
		in->eof = true;
		return 0;
	}
	in->len += (size_t)n;
	return (int)n;
}

int stream_in_consume(struct stream_in *in, size_t n, int *fds, size_t max, size_t *nfds)
{
	uint64_t end = in->pos + n;
	size_t kept = 0;
	int r = 0;

	*nfds = 0;
	if (n > in->len)
		n = in->len;
	for (size_t i = 0; i < in->nfds; i++) {
		if (in->fds[i].pos >= end) {
			in->fds[kept++] = in->fds[i];
			continue;
		}
		if (*nfds < max) {
			fds[(*nfds)++] = in->fds[i].fd;
		} else {
			fd_release(in->fds[i].fd);
			r = -EPROTO;
		}
	}
	in->nfds = kept;
	memmove(in->buf, in->buf + n, in->len - n);
	in->len -= n;
	in->pos += n;
	return r;
}
