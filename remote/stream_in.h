/*
 * Buffered, non-blocking input from a SOCK_STREAM peer (the mpqemu and
 * vfio-user faces). The loop must never wait for the rest of a message: a
 * peer that sends half of one stalls only its own connection. So a face
 * fills this from a readable socket, parses whole messages out of it, and
 * leaves a partial one in the buffer for the next wakeup.
 *
 * Descriptors (SCM_RIGHTS) travel with the packet (sendmsg) they were sent
 * with; the kernel ends a recvmsg with the first packet that carries any,
 * though it may begin with earlier packets that carry none. So each batch
 * is tagged with the stream position of the read's last byte, which is in
 * the packet that brought them, and a face takes the descriptors tagged
 * within one message's bytes.
 */
#ifndef MPDEV_STREAM_IN_H
#define MPDEV_STREAM_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_IN_MAX_FDS 16 /* queued descriptors; a peer sending more is dropped */

struct stream_in_fd {
	uint64_t pos; /* stream offset of the byte the descriptor came with */
	int fd;
};

struct stream_in {
	uint8_t *buf;
	size_t cap;   /* the largest message a face accepts, plus its header */
	size_t len;   /* bytes buffered, from buf[0] */
	uint64_t pos; /* stream offset of buf[0] */
	struct stream_in_fd fds[STREAM_IN_MAX_FDS];
	size_t nfds;
	bool eof;
};

/* cap: the largest whole message the face will ever accept. */
int stream_in_init(struct stream_in *in, size_t cap);
/* Closes every queued descriptor and frees the buffer. */
void stream_in_release(struct stream_in *in);

/*
 * One recvmsg(MSG_DONTWAIT) into the free space. Returns the bytes read (> 0),
 * 0 at end of stream (in->eof set), -EAGAIN, -ENOBUFS when the buffer is full
 * (the face must consume first), -EPROTO for more than STREAM_IN_MAX_FDS
 * queued descriptors or a control message that is not SCM_RIGHTS (nothing
 * kept of that read's descriptors), or the socket's error.
 */
int stream_in_fill(struct stream_in *in, int sock);

/*
 * Drops the first n buffered bytes (one message) and moves the descriptors
 * that arrived with them to fds[0..*nfds) (at most max; the rest, and any
 * beyond max, are closed, with -EPROTO returned so the face can refuse the
 * message). Descriptors are the caller's afterwards.
 */
int stream_in_consume(struct stream_in *in, size_t n, int *fds, size_t max, size_t *nfds);

#endif
