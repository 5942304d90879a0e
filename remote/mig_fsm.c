#include "mig_fsm.h"

#include <errno.h>
#include <string.h>

static const char *const state_names[BACKEND_MIG_NUM_STATES] = {
	[BACKEND_MIG_ERROR] = "ERROR",	     [BACKEND_MIG_STOP] = "STOP",
	[BACKEND_MIG_RUNNING] = "RUNNING",   [BACKEND_MIG_STOP_COPY] = "STOP_COPY",
	[BACKEND_MIG_RESUMING] = "RESUMING", [BACKEND_MIG_RUNNING_P2P] = "RUNNING_P2P",
	[BACKEND_MIG_PRE_COPY] = "PRE_COPY", [BACKEND_MIG_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

/* The flags a state needs, as the kernel's state_flags_table. */
static const uint32_t state_needs[BACKEND_MIG_NUM_STATES] = {
	[BACKEND_MIG_ERROR] = BACKEND_MIG_FLAG_STOP_COPY,
	[BACKEND_MIG_STOP] = BACKEND_MIG_FLAG_STOP_COPY,
	[BACKEND_MIG_RUNNING] = BACKEND_MIG_FLAG_STOP_COPY,
	[BACKEND_MIG_STOP_COPY] = BACKEND_MIG_FLAG_STOP_COPY,
	[BACKEND_MIG_RESUMING] = BACKEND_MIG_FLAG_STOP_COPY,
	[BACKEND_MIG_RUNNING_P2P] = BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P,
	[BACKEND_MIG_PRE_COPY] = BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_PRE_COPY,
	[BACKEND_MIG_PRE_COPY_P2P] =
		BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P | BACKEND_MIG_FLAG_PRE_COPY,
};

const char *mig_fsm_state_name(unsigned state)
{
	return state < BACKEND_MIG_NUM_STATES ? state_names[state] : "?";
}

bool mig_fsm_state_supported(unsigned state, uint32_t flags)
{
	return state < BACKEND_MIG_NUM_STATES && (state_needs[state] & flags) == state_needs[state];
}

bool mig_fsm_is_saving(unsigned state)
{
	return state == BACKEND_MIG_STOP_COPY || state == BACKEND_MIG_PRE_COPY ||
	       state == BACKEND_MIG_PRE_COPY_P2P;
}

/*
 * The arcs the kernel's drivers implement (the comment above
 * vfio_mig_get_next_state()): without P2P, RUNNING and STOP (and PRE_COPY
 * and STOP_COPY) are joined directly; with it, through the P2P states.
 */
bool mig_fsm_is_arc(unsigned from, unsigned to, uint32_t flags)
{
	bool p2p = flags & BACKEND_MIG_FLAG_P2P;
	bool pre = flags & BACKEND_MIG_FLAG_PRE_COPY;

	if (!mig_fsm_state_supported(from, flags) || !mig_fsm_state_supported(to, flags) ||
	    from == BACKEND_MIG_ERROR || to == BACKEND_MIG_ERROR || from == to)
		return false;
#define ARC(a, b) (from == BACKEND_MIG_##a && to == BACKEND_MIG_##b)
	if (ARC(STOP, STOP_COPY) || ARC(STOP_COPY, STOP) || ARC(STOP, RESUMING) ||
	    ARC(RESUMING, STOP))
		return true;
	if (p2p && (ARC(RUNNING, RUNNING_P2P) || ARC(RUNNING_P2P, RUNNING) ||
		    ARC(RUNNING_P2P, STOP) || ARC(STOP, RUNNING_P2P)))
		return true;
	if (!p2p && (ARC(RUNNING, STOP) || ARC(STOP, RUNNING)))
		return true;
	if (pre && (ARC(RUNNING, PRE_COPY) || ARC(PRE_COPY, RUNNING)))
		return true;
	if (pre && p2p &&
	    (ARC(PRE_COPY, PRE_COPY_P2P) || ARC(PRE_COPY_P2P, PRE_COPY) ||
	     ARC(PRE_COPY_P2P, RUNNING_P2P) || ARC(RUNNING_P2P, PRE_COPY_P2P) ||
	     ARC(PRE_COPY_P2P, STOP_COPY)))
		return true;
	if (pre && !p2p && ARC(PRE_COPY, STOP_COPY))
		return true;
#undef ARC
	return false;
}

/* May the path pass through s on its way from one state to another? */
static bool may_pass(unsigned s, bool within_saving)
{
	if (s == BACKEND_MIG_RESUMING || s == BACKEND_MIG_ERROR)
		return false;
	return mig_fsm_is_saving(s) == within_saving;
}

int mig_fsm_path(unsigned from, unsigned to, uint32_t flags,
		 enum backend_mig_state path[MIG_FSM_MAX_PATH], size_t *n, struct mpdev_error *err)
{
	unsigned prev[BACKEND_MIG_NUM_STATES], queue[BACKEND_MIG_NUM_STATES];
	bool seen[BACKEND_MIG_NUM_STATES] = { false };
	size_t head = 0, tail = 0, len = 0;
	bool within_saving;

	*n = 0;
	if (!(flags & BACKEND_MIG_FLAG_STOP_COPY))
		return mpdev_error_set(err, ENOTSUP, "the device does not support migration");
	if (to >= BACKEND_MIG_NUM_STATES)
		return mpdev_error_set(err, EINVAL, "%u is no migration state", to);
	if (to == BACKEND_MIG_ERROR)
		return mpdev_error_set(err, EINVAL, "ERROR cannot be requested");
	if (!mig_fsm_state_supported(to, flags))
		return mpdev_error_set(err, ENOTSUP, "the device does not support state %s",
				       state_names[to]);
	if (from == BACKEND_MIG_ERROR)
		return mpdev_error_set(err, EINVAL,
				       "the device is in ERROR: only a reset brings it back");
	if (from == to)
		return 0;
	within_saving = mig_fsm_is_saving(from) && mig_fsm_is_saving(to);

	/* Breadth first over at most 8 states: the first path found is a shortest one. */
	seen[from] = true;
	queue[tail++] = from;
	while (head < tail && !seen[to]) {
		unsigned s = queue[head++];

		for (unsigned t = 0; t < BACKEND_MIG_NUM_STATES; t++) {
			if (seen[t] || !mig_fsm_is_arc(s, t, flags))
				continue;
			if (t != to && !may_pass(t, within_saving))
				continue;
			seen[t] = true;
			prev[t] = s;
			queue[tail++] = t;
		}
	}
	if (!seen[to])
		return mpdev_error_set(err, EINVAL, "%s -> %s is not a permitted transition",
				       state_names[from], state_names[to]);
	for (unsigned s = to; s != from; s = prev[s])
		len++;
	*n = len;
	for (unsigned s = to; s != from; s = prev[s])
		path[--len] = (enum backend_mig_state)s;
	return 0;
}

int mig_fsm_run(struct backend *b, uint32_t flags, enum backend_mig_state *state, unsigned to,
		struct mpdev_error *err)
{
	enum backend_mig_state path[MIG_FSM_MAX_PATH];
	size_t n;
	int r;

	if (!b->ops->mig_arc)
		return mpdev_error_set(err, ENOTSUP, "the device does not support migration");
	r = mig_fsm_path(*state, to, flags, path, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		enum backend_mig_state from = *state, now = from;
		struct mpdev_error e = { 0 };

		r = b->ops->mig_arc(b, from, path[i], &now, &e);
		if (r == 0) {
			*state = path[i];
			continue;
		}
		/* A backend that did not say where it is cannot be trusted to be anywhere. */
		*state = now < BACKEND_MIG_NUM_STATES ? now : BACKEND_MIG_ERROR;
		return mpdev_error_set(err, e.code ? e.code : -r, "%s -> %s failed (now %s): %s",
				       state_names[from], state_names[path[i]], state_names[*state],
				       e.msg[0] ? e.msg : strerror(-r));
	}
	return 0;
}
