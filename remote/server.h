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
};

struct server_config {
	struct peercred_allow allow;
	/* Leave the listening socket's file in place at exit (the sandbox forbids unlink). */
	bool keep_socket_file;
};

/* host holds the memory table that the connected proxy sets up. */
int server_create(struct event_base *base, struct backend *backend, struct remote_host *host,
		  const struct server_config *cfg, struct server **out, struct mpdev_error *err);
void server_destroy(struct server *srv);

/* Creates a listening socket at path (a stale socket file is replaced). */
int server_listen_path(struct server *srv, const char *path, struct mpdev_error *err);

/*
 * Takes over fd: a listening socket is accepted on; a connected one is
 * served, and the loop exits when that connection ends.
 */
int server_adopt_fd(struct server *srv, int fd, struct mpdev_error *err);

const struct server_stats *server_get_stats(const struct server *srv);

#endif
