/*
 * What the targets that drive one of the remote's faces share (fuzz_native,
 * fuzz_mpqemu's face pass, fuzz_vfio_user): the remote process's lasting
 * state — its loop, its host, an emulated edu — set up as mpdev-remote's
 * main() does, and the end of each input's connection as the server's
 * conn_close() ends one, with the checks that nothing stays mapped.
 */
#ifndef MPDEV_FUZZ_REMOTE_H
#define MPDEV_FUZZ_REMOTE_H

#include "backend.h"
#include "host.h"
#include "server.h"
#include "session.h"

struct event_base;

struct fuzz_remote {
	struct event_base *base;
	struct remote_host host;
	struct backend *backend;
	struct server_stats stats;
};

/* Once per process; fuzz_fail()s on any error, naming target. */
void fuzz_remote_init(struct fuzz_remote *r, const char *target);

/* Lets deferred device work and eventfd callbacks run, without waiting for any. */
void fuzz_remote_run_loop(struct fuzz_remote *r);

/*
 * Ends s's connection: closes its socket and tears the session down
 * (session_teardown: reset, interrupts, memory). A failed reset fails.
 */
void fuzz_remote_end_connection(struct fuzz_remote *r, struct session *s, const char *target);

/* Once the peer's side is gone too: runs the loop, then nothing may be left mapped. */
void fuzz_remote_check_released(struct fuzz_remote *r, const char *target);

#endif
