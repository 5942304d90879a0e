/*
 * One proxy connection: handshake state and the dispatch of every request
 * to the backend, with all validation of what the peer sent.
 */
#ifndef MPDEV_SESSION_H
#define MPDEV_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "devops.h"
#include "dma.h"
#include "doorbell.h"
#include "face.h"
#include "host.h"
#include "server.h"
#include "wire.h"

struct ring;

/*
 * What this remote implements; the handshake intersects it with the peer's.
 * FEATURE_DIRTY_TRACKING only where the device can honour it (session_dirty.c).
 */
#define SESSION_FEATURES                                                                           \
	((uint64_t)(MPDEV__FEATURE__FEATURE_POSTED_WRITES | MPDEV__FEATURE__FEATURE_STATS |        \
		    MPDEV__FEATURE__FEATURE_MEMORY_TABLE | MPDEV__FEATURE__FEATURE_INTX_IRQFD |    \
		    MPDEV__FEATURE__FEATURE_SET_IRQS | MPDEV__FEATURE__FEATURE_IOMMU_INFO |        \
		    MPDEV__FEATURE__FEATURE_MIGRATION | MPDEV__FEATURE__FEATURE_DIRTY_TRACKING |   \
		    MPDEV__FEATURE__FEATURE_IOEVENTFDS | MPDEV__FEATURE__FEATURE_FIXED_ACCESS |    \
		    MPDEV__FEATURE__FEATURE_SHM_RING))

/* Stream bytes in one MigData message: what a 64 KiB packet carries with room to spare. */
#define SESSION_MIG_CHUNK_MAX (60u * 1024u)

/* A memory table arriving in several MemTableSet chunks, applied with the last. */
struct session_pending_table {
	bool active;
	struct dma_new_region *regions;
	size_t n, cap;
	int *fds; /* taken from the chunks; regions point at these */
	size_t nfds, fds_cap;
};

struct session {
	int fd;
	/* The wire protocol this connection speaks, and what that face keeps for it. */
	const struct face *face;
	void *face_state;
	/* Handshake done (a face without one sets it in conn_init). */
	bool greeted;
	/*
	 * Set by whoever drives the connection (the server): called when the
	 * face holds whole messages that no socket event will announce.
	 */
	void (*wake)(void *owner);
	void *owner;
	uint64_t features;
	/* Descriptors the peer takes in one packet (its Hello's limits; ours when unstated). */
	unsigned peer_max_fds;
	struct backend *backend;
	struct backend_device_info info; /* static for a device: read once */
	struct remote_host *host;
	struct server_stats *stats;
	struct session_pending_table pending;
	/* Migration: what the device supports (0: nothing) and where it is. */
	uint32_t mig_flags;
	enum backend_mig_state mig_state;
	/* Descriptors a chunked memory table may hold until its last chunk arrives. */
	unsigned max_table_fds;
	/* Output the socket had no room for: flushed before anything more is read. */
	uint8_t *out;
	size_t out_len, out_cap;
	int out_fds[MPDEV_MAX_FDS_PER_MSG]; /* dup'd; sent with the first byte of out */
	size_t out_nfds;
	/* The device's doorbells as eventfds, made when the peer first asks (doorbell.h). */
	struct doorbell_set *doorbells;
	/*
	 * The native face reads again right after answering when that has been
	 * finding the peer's next request already queued (faces/native.c).
	 */
	struct {
		bool armed;	 /* the next read is such a read-ahead */
		bool paying;	 /* the last one found a request */
		uint8_t skipped; /* requests answered since the last probe */
	} readahead;
	/* The polled shared-memory ring (ring.h), from RingSetup to the end of the connection. */
	struct ring *ring;
};

/* Default for max_table_fds; the server sets it from the descriptor budget. */
#define SESSION_MAX_TABLE_FDS 256u

/* A connection on fd speaking face; the server calls face->conn_init next. */
void session_init(struct session *s, int fd, const struct face *face, struct backend *backend,
		  struct remote_host *host, struct server_stats *stats);
/*
 * Drops what the connection left half-done (its face's state, a pending
 * chunked table, unsent output) and its doorbells.
 */
void session_release(struct session *s);

/*
 * The end of a connection (its socket already closed): whatever the peer
 * left the device in, the next one finds it fresh. Resets the device, then,
 * with the device quiet, drops its interrupts and the guest memory, and
 * releases the session. All of it happens whatever the reset says; returns
 * 0, -ENOTTY for a device without reset, or the reset's error with err set.
 */
int session_teardown(struct session *s, struct mpdev_error *err);

/*
 * Replies never wait for room in the socket: one that does not fit is kept,
 * and the server reads nothing more from the peer until it is flushed. A
 * peer that does not read its replies stalls only itself.
 */
bool session_output_blocked(const struct session *s);
/* 0: nothing is kept any more; -EAGAIN: still no room; another negative errno: gone. */
int session_flush(struct session *s);

/*
 * The face holds whole messages that came in while it waited for a reply of
 * its own (vfio-user's DMA by message): whoever drives the connection calls
 * its readable again soon. A no-op where nobody set s->wake.
 */
void session_input_pending(struct session *s);

/*
 * The one place every face's output leaves: len bytes (one packet on a
 * SEQPACKET socket, bytes of the stream otherwise) with nfds descriptors
 * (borrowed, sent with the first byte). Never waits: what the socket has no
 * room for is kept (descriptors dup'd) and flushed before anything more is
 * read. Returns 0 or a negative errno (the connection must end).
 */
int session_output(struct session *s, const void *buf, size_t len, const int *fds, size_t nfds);

/*
 * The native face (faces/native.c) over this file's request table.
 * Handles one received message (taking its descriptors where used).
 * Returns 0 to go on, or a negative errno when the connection must end
 * (the reply could not be sent).
 */
int session_handle(struct session *s, struct wire_msg *m);

/*
 * A fixed-layout access packet (session_fixed.c; m->raw holds it): the same
 * checks and the same devops calls as its Envelope twin, answered with a
 * fixed-layout reply, or with an error Envelope that says why.
 */
int session_handle_fixed(struct session *s, struct wire_msg *m);

/* Answers a packet that could not be received or decoded. */
int session_handle_bad_packet(struct session *s, struct wire_msg *m, const struct mpdev_error *e);

#endif
