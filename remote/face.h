/*
 * A face: one wire protocol the remote speaks to the VMM side. The server
 * owns sockets, credentials, the handshake deadline, descriptor back-pressure
 * and the output queue; a face decodes what arrives on one connection into
 * devops.h calls and encodes the answers through session_output(). Which face
 * a socket speaks is explicit (--face on the command line, one per socket).
 */
#ifndef MPDEV_FACE_H
#define MPDEV_FACE_H

#include <stdbool.h>
#include <stddef.h>

struct session;

struct face {
	const char *name; /* "native", "mpqemu", "vfio-user": what --face takes */
	int sock_type;	  /* SOCK_SEQPACKET (native) or SOCK_STREAM */
	/* The peer must complete a handshake (session->greeted) within the deadline. */
	bool handshake;
	/*
	 * After session_init, before anything is read: sets up s->face_state.
	 * Returns 0 or a negative errno (the connection is refused).
	 */
	int (*conn_init)(struct session *s);
	/*
	 * The socket is readable: read and handle at most one request that
	 * expects an answer (posted writes and other one-way messages may be
	 * several). Returns 1 if it handled something and more may be waiting,
	 * 0 if the socket has nothing more for now, or a negative errno to drop
	 * the connection (-ECONNRESET: the peer closed it).
	 */
	int (*readable)(struct session *s);
	/* Frees s->face_state and whatever it holds (descriptors included). */
	void (*conn_release)(struct session *s);
};

extern const struct face face_native;
extern const struct face face_mpqemu;
extern const struct face face_vfio_user;

/* The face called name, or NULL. */
const struct face *face_by_name(const char *name);

#endif
