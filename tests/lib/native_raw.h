/*
 * The native protocol by hand, for tests that send what libmpdev never
 * would: envelopes declaring N descriptors while carrying M, raw bytes, and
 * replies and notifications checked field by field. Every receive waits at
 * most NATIVE_RAW_TIMEOUT_MS; any mismatch fails the test, quoting the words
 * that came back. (QEMU's mpqemu format has its own: mpqemu_raw.h.)
 */
#ifndef MPDEV_NATIVE_RAW_H
#define MPDEV_NATIVE_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define NATIVE_RAW_TIMEOUT_MS 3000

/* One packet of len bytes with nfds descriptors, whatever the bytes are. */
void native_send_bytes(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* Packs env declaring `declared` descriptors (env->nfds) and sends it carrying nfds. */
void native_send_env(int sock, Mpdev__Envelope *env, uint32_t declared, const int *fds,
		     size_t nfds);

/* env as a REQUEST with id, its descriptor count honest. */
void native_request(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds);

/* The next packet, which must be a fixed-layout reply (fixed_access.h), decoded into a. */
struct fixed_access;
void native_recv_fixed(int sock, struct fixed_access *a);

/* The next message, decoded, into m (the caller releases it). */
void native_recv(int sock, struct wire_msg *m);

/*
 * A REPLY to id with status (0 or a positive errno). An error reply must
 * carry words; when words is not NULL they must be in it.
 */
void native_expect_reply(int sock, uint64_t id, int status, const char *words);

/* An error REPLY to id, whatever the errno, with words. */
void native_expect_error(int sock, uint64_t id);

/* A NOTIFY (id 0) of type with status, words (if not NULL) in its message. */
void native_expect_notify(int sock, Mpdev__NotifyType type, int status, const char *words);

/* native_request(), then native_expect_reply(). */
void native_call(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		 int status, const char *words);

/* native_request(), then its successful reply into *reply (the caller releases it). */
void native_call_reply(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		       struct wire_msg *reply);

/*
 * The same without asserting, for tests whose point is whether the remote
 * answers at all (a stalled remote must fail the check that says so, not an
 * assertion deep in here).
 *
 * native_try_recv: the next message within timeout_ms into m: 1, 0 on timeout,
 * -EPIPE at the end of the connection, or another negative errno. m is always
 * safe to release.
 */
int native_try_recv(int sock, struct wire_msg *m, int timeout_ms);

/*
 * native_request(), then the reply to id within timeout_ms, passing over
 * notifications and the errors of posted writes: the reply's status (>= 0,
 * its words into words/len when not NULL), -ETIMEDOUT, or a negative errno.
 */
int native_try_call(int sock, Mpdev__Envelope *env, uint64_t id, const int *fds, size_t nfds,
		    int timeout_ms, char *words, size_t len);

/* A Hello of version with features, answered with status. */
void native_hello(int sock, uint64_t id, uint32_t version, uint64_t features, int status);

/* A Ping, answered in order: the remote is up and has handled everything before it. */
void native_ping(int sock, uint64_t id);

#endif
