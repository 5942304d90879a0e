/*
 * A connection's doorbells: one eventfd per doorbell the device declares
 * (backend_ops.ioeventfds), made the first time the peer asks for them and
 * watched on the remote's loop. A peer hands an eventfd to KVM (or signals
 * it itself) so that a guest's doorbell write wakes the device without a
 * message. A signalled eventfd is the doorbell's write, through devops'
 * region write: the same bounds, width and flag rules as a message write.
 *
 * The eventfds are the remote's: a face sends them by SCM_RIGHTS (the peer
 * gets its own descriptors for the same files) and the set closes its own
 * when the connection ends. Signals that pile up before the loop reads the
 * counter are one doorbell write: a doorbell says "look again", and the
 * device looks once. They stay valid across a device reset, as KVM's
 * ioeventfds do: a reset changes the device's registers, not its doorbells.
 */
#ifndef MPDEV_DOORBELL_H
#define MPDEV_DOORBELL_H

#include <stdint.h>

#include "backend.h"
#include "error.h"

struct session;
struct doorbell_set;

/* One doorbell as a face reports it: fd is the set's own (borrowed). */
struct doorbell_info {
	struct backend_ioeventfd io;
	int fd;
};

/*
 * The doorbells of region (at most max into out; *total how many it has),
 * creating the session's set on first use. A doorbell the backend declares
 * outside what a region write accepts is left out (and logged). Returns 0,
 * or a negative errno with err set: -EINVAL for a region the device lacks,
 * -EMFILE/-ENOMEM/... when the set cannot be made (nothing is kept then).
 */
int doorbell_query(struct session *s, uint32_t region, struct doorbell_info *out, unsigned max,
		   unsigned *total, struct mpdev_error *err);

/* Deletes the events and closes the eventfds; NULL is fine. */
void doorbell_set_free(struct doorbell_set *d);

/* Doorbell writes done since the set was made (for tests and logs). */
uint64_t doorbell_set_rings(const struct doorbell_set *d);

#endif
