/*
 * The native face's request handlers, one file per concern: session.c (the
 * request table, handshake, device info, region access, reset, stats),
 * session_mem.c (the memory table), session_irq.c (interrupts, IOMMU info),
 * session_mig.c (migration), session_dirty.c (dirty tracking),
 * session_doorbell.c (doorbells as eventfds), session_ring.c (the
 * shared-memory ring's setup and wake-ups).
 *
 * A handler decodes its request into devops.h calls and fills the reply in
 * rep; it sends nothing. It returns 0 (rep is sent), or a negative errno
 * with err set (an error reply is sent, with rep's body where the handler
 * set rep->body_on_error). The table in session.c says which feature, which
 * descriptors and which kinds each request may have, so no handler checks
 * those.
 */
#ifndef MPDEV_SESSION_HANDLERS_H
#define MPDEV_SESSION_HANDLERS_H

#include "session.h"

struct session_reply {
	Mpdev__Envelope env; /* the handler sets body_case and its member */
	/* A failed request's error reply still carries env's body (MigSetState: the state). */
	bool body_on_error;
	/* Descriptors sent with a successful reply (borrowed: the handler's owner keeps them). */
	int fds[MPDEV_MAX_FDS_PER_MSG];
	size_t nfds;
};

/*
 * Zeroed memory for the reply's messages, valid until the reply is sent:
 * the loop answers one request at a time, so one arena serves them all.
 * NULL (the handler says ENOMEM) when a reply would not fit a packet anyway.
 */
void *session_reply_alloc(struct session_reply *rep, size_t size);

typedef int session_handler_fn(struct session *s, struct wire_msg *m, struct session_reply *rep,
			       struct mpdev_error *err);

session_handler_fn handle_mem_table_set, handle_mem_region_add, handle_mem_region_remove;
session_handler_fn handle_set_intx_irqfd, handle_set_irqs, handle_iommu_info;
session_handler_fn handle_mig_get_state, handle_mig_set_state, handle_mig_data_read,
	handle_mig_data, handle_mig_precopy_info;
session_handler_fn handle_dirty_start, handle_dirty_stop, handle_dirty_report;
session_handler_fn handle_stats;
session_handler_fn handle_get_io_eventfds;
session_handler_fn handle_ring_setup, handle_ring_wake;

/*
 * The width rules every region access obeys, whatever carried it (an
 * Envelope, a fixed-layout packet, the polled ring): 0 or -EINVAL with err.
 */
int session_check_access(uint32_t index, size_t size, struct mpdev_error *err);

/* An error REPLY to request id, with rep's body where the handler asked for one (rep may be NULL). */
int session_send_status(struct session *s, uint64_t id, const struct mpdev_error *e,
			struct session_reply *rep);

/* session_mem.c: drops a chunked table that never got its last chunk. */
void session_mem_release(struct session *s);

/* session_mig.c: reads the device's flags; the device is RUNNING. */
void session_mig_init(struct session *s);

/* Whether this session's device can track dirty pages (the handshake offers the feature then). */
bool session_dirty_supported(const struct session *s);

#endif
