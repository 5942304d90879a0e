/*
 * The remote's server: one libevent loop, one device backend, one proxy
 * connection at a time. It accepts on a listening socket (a path, or an
 * inherited fd) or serves one already-connected socket.
 */
#ifndef MPDEV_SERVER_H
#define MPDEV_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "host.h"
#include "peercred.h"

struct event_base;
struct server;

struct server_stats {
	uint64_t connections;
	uint64_t refused_peers;
	uint64_t busy_refusals;
	uint64_t messages;
	uint64_t error_replies;
	uint64_t protocol_errors;
	uint64_t region_reads;
	uint64_t region_writes;
	uint64_t posted_writes;
	uint64_t resets;
	uint64_t handshake_timeouts;
	uint64_t accept_errors;
	uint64_t input_pauses;	  /* times reading stopped: too many descriptors waiting to close */
	uint64_t mig_transitions; /* MigSetState requests carried out */
	uint64_t mig_bytes_saved, mig_bytes_loaded;
	/* Doorbell eventfds read (each one region write) and those whose write failed. */
	uint64_t doorbell_rings, doorbell_failures;
	/*
	 * The shared-memory ring (ring.h): rings set up, slots executed and of
	 * those failed, polling (re)started, SLEEPING announced, loop passes
	 * given back while busy, rings broken by a corrupt index.
	 */
	uint64_t ring_setups, ring_requests, ring_errors, ring_wakes, ring_sleeps, ring_yields,
		ring_broken;
};

struct face;

struct server_config {
	struct peercred_allow allow;
	/* The wire protocol its socket speaks (NULL: face_native). */
	const struct face *face;
	/* Leave the listening socket's file in place at exit (the sandbox forbids unlink). */
	bool keep_socket_file;
	/* A peer that has not said hello by then is dropped (0: SERVER_HANDSHAKE_TIMEOUT_MS). */
	int handshake_timeout_ms;
	/* Descriptor budget (0: the defaults): see server_budget(). */
	unsigned max_table_fds;	     /* held by a chunked memory table */
	unsigned max_pending_closes; /* queued on the closer before input stops */
};

#define SERVER_HANDSHAKE_TIMEOUT_MS 5000
#define SERVER_MAX_PENDING_CLOSES   512u

/*
 * Splits what RLIMIT_NOFILE allows between a chunked table and descriptors
 * waiting to be closed, after what the remote keeps for itself: one packet's
 * worth (SCM_MAX_FD, so the kernel never has to drop one), its own, and the
 * interrupt eventfds of vectors vectors. Returns 0, or -ENOSPC if the limit
 * leaves less than the minimum (the caller warns; the budget is then minimal).
 */
int server_budget(unsigned long nofile, unsigned vectors, struct server_config *cfg);

/* host holds the memory table that the connected proxy sets up. */
int server_create(struct event_base *base, struct backend *backend, struct remote_host *host,
		  const struct server_config *cfg, struct server **out, struct mpdev_error *err);
void server_destroy(struct server *srv);

/*
 * Creates a listening socket at path. A stale socket file (nobody accepts
 * on it) is replaced; a live one is another remote's: -EADDRINUSE.
 */
int server_listen_path(struct server *srv, const char *path, struct mpdev_error *err);

/*
 * Takes over fd: a listening socket is accepted on; a connected one is
 * served, and the loop exits when that connection ends.
 */
int server_adopt_fd(struct server *srv, int fd, struct mpdev_error *err);

const struct server_stats *server_get_stats(const struct server *srv);

#endif
