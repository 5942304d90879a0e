/*
 * The remote's end of the polled shared-memory ring (FEATURE_SHM_RING,
 * common/shm_ring.h, docs/protocol.md 5.13): the memfd's checks, its
 * mapping, and the poller that runs on the session's libevent loop.
 *
 * The peer can write anything into the ring at any time, so each slot is
 * read once into a local copy and only the copy is checked and executed,
 * through the same devops calls as the socket. The ring's own state (the
 * consumer index, the slot count) lives here, never in shared memory: what
 * the remote reads back from the ring is only the producer index and the
 * requests. A producer index that cannot be right breaks the ring (BROKEN);
 * the socket is served on. What the ring does is counted in the server's
 * stats (ring_*), so that it outlives the connection.
 */
#ifndef MPDEV_RING_H
#define MPDEV_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct session;
struct ring;

/*
 * Checks fd (a memfd sealed at least with F_SEAL_SHRINK, open read-write,
 * of exactly shm_ring_size(nslots) bytes, its header saying version and
 * nslots), maps it and makes the poller. fd stays the caller's. spin_us 0
 * asks for SHM_RING_DEFAULT_SPIN_US; more than SHM_RING_MAX_SPIN_US is cut
 * to it; *granted says what it is. Polling starts at once.
 *   -EPROTONOSUPPORT another layout version
 *   -EINVAL  a slot count the protocol does not allow, a file of another
 *            size, a header that does not match; not a regular file
 *   -EPERM   not a memfd sealed with F_SEAL_SHRINK
 *   -EACCES  not open read-write
 */
int ring_create(struct session *s, int fd, uint32_t version, uint32_t nslots, uint32_t spin_us,
		uint32_t *granted, struct ring **out, struct mpdev_error *err);

/* Polling again (RingWake): a no-op on a ring already polling. -EPROTO on a broken ring. */
int ring_wake(struct ring *r, struct mpdev_error *err);

/* Stops polling and unmaps the ring (NULL is fine). */
void ring_destroy(struct ring *r);

#endif
