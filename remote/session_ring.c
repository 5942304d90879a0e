/*
 * RingSetup and RingWake (FEATURE_SHM_RING): the socket half of the polled
 * shared-memory ring; ring.c is the ring itself.
 */
#include <errno.h>

#include "ring.h"
#include "session_handlers.h"

int handle_ring_setup(struct session *s, struct wire_msg *m, struct session_reply *rep,
		      struct mpdev_error *err)
{
	const Mpdev__RingSetup *req = m->env->ring_setup;
	Mpdev__RingSetupReply *body = session_reply_alloc(rep, sizeof(*body));
	struct ring *r = NULL;
	uint32_t granted = 0;
	int rc;

	if (m->nfds != 1)
		return mpdev_error_set(
			err, EINVAL,
			"RingSetup carries exactly one descriptor (the ring's memfd), "
			"got %zu",
			m->nfds);
	if (!body)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	/* The memfd stays the message's (closed with it): the mapping is all we keep. */
	rc = ring_create(s, m->fds[0], req->version, req->slots, req->spin_us, &granted, &r, err);
	if (rc < 0) {
		ring_destroy(r);
		return rc;
	}
	/* A second ring replaces the first: the client dropped it (mpdev_ring_disable). */
	ring_destroy(s->ring);
	s->ring = r;
	mpdev__ring_setup_reply__init(body);
	body->spin_us = granted;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_RING_SETUP_REPLY;
	rep->env.ring_setup_reply = body;
	return 0;
}

int handle_ring_wake(struct session *s, struct wire_msg *m, struct session_reply *rep,
		     struct mpdev_error *err)
{
	if (!s->ring)
		return mpdev_error_set(err, EINVAL,
				       "RingWake without a ring: send RingSetup first");
	return ring_wake(s->ring, err);
}
