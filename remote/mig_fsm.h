/*
 * VFIO's v2 migration state machine, once for every backend: which states a
 * device with given BACKEND_MIG_FLAG_* has, which arcs join them (exactly
 * the kernel's, include/uapi/linux/vfio.h), and the path of arcs a
 * requested transition takes.
 */
#ifndef MPDEV_MIG_FSM_H
#define MPDEV_MIG_FSM_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "error.h"

/* The longest path any transition takes (PRE_COPY -> RESUMING: 4 arcs) and then some. */
#define MIG_FSM_MAX_PATH 8

const char *mig_fsm_state_name(unsigned state);

/* A state that exists on a device with these flags (ERROR: on every migratable device). */
bool mig_fsm_state_supported(unsigned state, uint32_t flags);

/* STOP_COPY, PRE_COPY and PRE_COPY_P2P: they share one data transfer session. */
bool mig_fsm_is_saving(unsigned state);

/* from -> to is one of the kernel's arcs on a device with these flags. */
bool mig_fsm_is_arc(unsigned from, unsigned to, uint32_t flags);

/*
 * The arcs that take a device from `from` to `to`: path[0..*n) are the
 * states after each arc, the last one `to` (*n 0 when from == to). The
 * shortest path, never through RESUMING, and through a saving state only
 * while going from one saving state to another (so a session is never
 * ended and restarted on the way) — the paths vfio_mig_get_next_state()
 * takes. -ENOTSUP: the device has no such state (or no migration);
 * -EINVAL: no state by that number, ERROR requested, leaving ERROR (only
 * a reset does), or a transition the kernel refuses (STOP_COPY ->
 * PRE_COPY(_P2P)). err says which.
 */
int mig_fsm_path(unsigned from, unsigned to, uint32_t flags,
		 enum backend_mig_state path[MIG_FSM_MAX_PATH], size_t *n, struct mpdev_error *err);

/*
 * Takes device b (with these flags) from *state to `to`, one arc at a time
 * through b->ops->mig_arc. *state follows the device: on failure it is
 * where the last successful arc left it (or ERROR, as the backend says),
 * and err names the arc that failed and why.
 */
int mig_fsm_run(struct backend *b, uint32_t flags, enum backend_mig_state *state, unsigned to,
		struct mpdev_error *err);

#endif
