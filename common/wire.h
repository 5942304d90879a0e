/*
 * The native protocol's framing: one protobuf-c Envelope per packet, with
 * the descriptors it declares. Protocol constants live here too.
 */
#ifndef MPDEV_WIRE_H
#define MPDEV_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "mpdev.pb-c.h"

#define MPDEV_PROTO_VERSION 1u
/* Limits this implementation accepts; the handshake reports them. */
#define MPDEV_MAX_MSG_SIZE    65536u
#define MPDEV_MAX_FDS_PER_MSG 64u
#define MPDEV_MAX_MEM_REGIONS 1024u
/*
 * The largest DirtyBitmap a reply carries: the message less room for the
 * envelope around it (id, kind, body tags and lengths: under 32 bytes).
 * A multiple of 8 bytes, so that reports split at it stay byte-aligned.
 */
#define MPDEV_DIRTY_BITMAP_MAX_BYTES (MPDEV_MAX_MSG_SIZE - 64u)
#define MPDEV_DIRTY_REPORT_MAX_PAGES ((uint64_t)MPDEV_DIRTY_BITMAP_MAX_BYTES * 8u)
/* How long a sender waits for room in a full socket buffer. */
#define MPDEV_SEND_TIMEOUT_MS 5000

/* Decoded messages usually fit here, sparing malloc/free on the hot path. */
#define WIRE_ARENA_SIZE 2048

struct wire_msg {
	Mpdev__Envelope *env; /* NULL when the packet could not be decoded */
	int fds[MPDEV_MAX_FDS_PER_MSG];
	size_t nfds;
	/* Backs env; allocations that do not fit go to malloc. */
	size_t arena_used;
	/* wire_recv_any: a fixed-layout packet's bytes (its buffer is per thread). */
	const uint8_t *raw;
	size_t raw_len;
	_Alignas(16) uint8_t arena[WIRE_ARENA_SIZE];
};

/*
 * Encodes env (setting env->nfds to nfds) and sends it with the descriptors,
 * which stay owned by the caller. -EMSGSIZE if the encoding exceeds
 * MPDEV_MAX_MSG_SIZE.
 */
int wire_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds);
/* The same, waiting at most timeout_ms for room (0: not at all; -ETIMEDOUT then). */
int wire_send_timed(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms);

/* Encodes env (declaring nfds descriptors) into buf; its length, or 0 if it does not fit. */
size_t wire_pack(Mpdev__Envelope *env, size_t nfds, uint8_t *buf, size_t cap);

/*
 * Receives and decodes one packet into m (flags as for transport_recv), which the caller must later
 * pass to wire_msg_release(). Returns 1 for a message, 0 at end of connection, or a negative errno
 * with err saying why. On error every descriptor is already closed; m->env is set when the envelope
 * decoded but was wrong (descriptor count), so that the caller can answer its id.
 */
int wire_recv(int sock, struct wire_msg *m, struct mpdev_error *err, int flags);

/*
 * Like wire_recv, but a fixed-layout packet (fixed_access.h) is not decoded:
 * its bytes are left in m->raw / m->raw_len, valid until the thread's next
 * receive, and 2 is returned. One that carries descriptors is -EPROTO (they
 * are closed), with m->raw set so that its id can still be answered.
 */
int wire_recv_any(int sock, struct wire_msg *m, struct mpdev_error *err, int flags);

/*
 * wire_decode for either encoding: 2 for a fixed-layout packet (its bytes,
 * which must outlive m's use, in m->raw), as wire_recv_any answers.
 */
int wire_decode_any(struct wire_msg *m, const uint8_t *buf, size_t len, struct mpdev_error *err);

/* An empty message: no envelope, no descriptors. */
void wire_msg_init(struct wire_msg *m);

/*
 * Decodes one packet's bytes into m, whose descriptors (m->fds[0..nfds), owned
 * by m) arrived with it: the receive path without the socket, for wire_recv
 * and for fuzzing. Returns 1, or a negative errno with err set and every
 * descriptor closed (m->env stays set when only the descriptor count was wrong).
 */
int wire_decode(struct wire_msg *m, const uint8_t *buf, size_t len, struct mpdev_error *err);

/* Hands descriptor i over to the caller; -EBADF if absent or taken. */
int wire_take_fd(struct wire_msg *m, size_t i);

/* Closes every descriptor not taken and frees the envelope. */
void wire_msg_release(struct wire_msg *m);

/* A REPLY to request id with status (an errno, either sign) and message. */
void wire_init_error(Mpdev__Envelope *env, uint64_t id, int status, const char *message);
/* A NOTIFY (id 0) whose body is n. */
void wire_init_notify(Mpdev__Envelope *env, Mpdev__Notify *n, Mpdev__NotifyType type, int status,
		      const char *message);

/* Sends a REPLY with status (positive errno) and message for request id. */
int wire_send_error(int sock, uint64_t id, int status, const char *message);

/* Sends a NOTIFY (id 0), best effort: it never waits for room (-ETIMEDOUT then). */
int wire_send_notify(int sock, Mpdev__NotifyType type, int status, const char *message);

/* Name of the envelope's body for logs, "none" when absent. */
const char *wire_body_name(const Mpdev__Envelope *env);

#endif
