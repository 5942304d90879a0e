/*
 * SOCK_SEQPACKET transport: one packet, one message, descriptors by
 * SCM_RIGHTS. Received descriptors are owned by the caller on success and
 * already closed on every error path.
 */
#ifndef MPDEV_TRANSPORT_H
#define MPDEV_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Sends one packet with nfds descriptors (nfds may be 0). A full socket
 * buffer is waited out for at most timeout_ms (-1: forever), then -ETIMEDOUT.
 * Returns 0 or a negative errno.
 */
int transport_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds,
		   int timeout_ms);

/*
 * Receives one packet into buf (cap bytes) and up to max_fds descriptors
 * (close-on-exec) into fds, storing their number in *nfds. flags are extra
 * recvmsg flags (MSG_DONTWAIT).
 * Returns the packet length (> 0), 0 at end of connection, or a negative errno:
 *   -EMSGSIZE  packet longer than cap (MSG_TRUNC)
 *   -EPROTO    more descriptors than max_fds (MSG_CTRUNC), or a control
 *              message that is not SCM_RIGHTS
 *   -EBADMSG   an empty packet on a live connection
 *   -EAGAIN    nothing to read (non-blocking), or SO_RCVTIMEO expired
 * On every error *nfds is 0 and no descriptor stays open.
 */
ssize_t transport_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds, size_t *nfds,
		       int flags);

/* Closes n descriptors, skipping negative entries, and sets them to -1. */
void transport_close_fds(int *fds, size_t n);

#endif
