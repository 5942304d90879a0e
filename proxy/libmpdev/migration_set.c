/*
 * Several devices of one VM change migration state together: no device
 * stops while a peer could still DMA into it, and none runs again while a
 * peer is stopped. That is what VFIO's P2P states are for (the RFC's NDMA):
 * every device first goes to its P2P state, where it starts no DMA, and
 * only then does any go further.
 */
#include <errno.h>
#include <stdlib.h>

#include "client.h"

static bool is_stopped(enum mpdev_mig_state s)
{
	return s == MPDEV_MIG_STOP || s == MPDEV_MIG_STOP_COPY || s == MPDEV_MIG_RESUMING;
}

static bool is_running(enum mpdev_mig_state s)
{
	return s == MPDEV_MIG_RUNNING || s == MPDEV_MIG_PRE_COPY;
}

/* Where a device waits for its peers: its state's P2P twin, or RUNNING_P2P. */
static enum mpdev_mig_state quiesced(enum mpdev_mig_state s)
{
	return s == MPDEV_MIG_PRE_COPY ? MPDEV_MIG_PRE_COPY_P2P : MPDEV_MIG_RUNNING_P2P;
}

struct set_run {
	struct mpdev *const *devs;
	size_t n;
	const struct mpdev_mig_set_options *opts;
	enum mpdev_mig_state *now;
};

static int step(struct set_run *run, size_t i, enum mpdev_mig_state to)
{
	enum mpdev_mig_state from = run->now[i], reached = from;
	int r;

	if (from == to)
		return 0;
	r = mpdev_mig_set_state(run->devs[i], to, &reached);
	run->now[i] = reached;
	if (run->opts && run->opts->on_step)
		run->opts->on_step(run->opts->opaque, i, from, reached, r);
	return r;
}

/* Best effort, in the same two phases, back to where each device started. */
static void roll_back(struct set_run *run, const enum mpdev_mig_state *start)
{
	for (size_t i = 0; i < run->n; i++)
		if (run->now[i] != start[i] && run->now[i] != MPDEV_MIG_ERROR &&
		    !is_stopped(start[i]) && is_stopped(run->now[i]))
			step(run, i, quiesced(start[i]));
	for (size_t i = 0; i < run->n; i++)
		if (run->now[i] != start[i] && run->now[i] != MPDEV_MIG_ERROR &&
		    is_stopped(start[i]))
			step(run, i, start[i]);
	for (size_t i = 0; i < run->n; i++)
		if (run->now[i] != start[i] && run->now[i] != MPDEV_MIG_ERROR)
			step(run, i, start[i]);
}

static int check_set(struct mpdev *const *devs, size_t n, enum mpdev_mig_state *now, long *failed)
{
	for (size_t i = 0; i < n; i++) {
		struct mpdev_device_info info;
		int r;

		*failed = (long)i;
		if (!devs[i])
			return -EINVAL;
		r = mpdev_get_device_info(devs[i], &info);
		if (r == 0)
			r = mpdev_mig_get_state(devs[i], &now[i]);
		if (r < 0)
			return r;
		if (n > 1 && !(info.migration_flags & MPDEV_MIG_FLAG_P2P))
			return mpdev_error_set(
				&devs[i]->err, ENOTSUP,
				"device %zu ('%s') has no P2P state: it could DMA into "
				"a stopped peer, so it cannot migrate in a set",
				i, info.name);
	}
	*failed = -1;
	return 0;
}

int mpdev_mig_set_state_all(struct mpdev *const *devs, size_t n, enum mpdev_mig_state state,
			    const struct mpdev_mig_set_options *opts, long *failed)
{
	enum mpdev_mig_state *start, *now;
	struct set_run run = { devs, n, opts, NULL };
	long bad = -1;
	int r = 0;

	if (failed)
		*failed = -1;
	if (!devs || !n)
		return n ? -EINVAL : 0;
	start = calloc(n, sizeof(*start));
	now = calloc(n, sizeof(*now));
	if (!start || !now) {
		free(start);
		free(now);
		return -ENOMEM;
	}
	run.now = now;
	r = check_set(devs, n, now, &bad);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		start[i] = now[i];

	/* Phase 1: every device quiesced before any stops, or before any runs again. */
	for (size_t i = 0; i < n && r == 0; i++) {
		bool stopping = is_stopped(state) && is_running(now[i]);
		bool starting = is_running(state) && is_stopped(now[i]);

		if (stopping || starting) {
			r = step(&run, i, stopping ? quiesced(now[i]) : MPDEV_MIG_RUNNING_P2P);
			bad = r < 0 ? (long)i : -1;
		}
	}
	/* Phase 2: where it was asked to go. */
	for (size_t i = 0; i < n && r == 0; i++) {
		r = step(&run, i, state);
		bad = r < 0 ? (long)i : -1;
	}
	if (r < 0) {
		struct mpdev_error keep = devs[bad]->err;

		roll_back(&run, start);
		devs[bad]->err = keep;
	}
out:
	if (failed)
		*failed = bad;
	free(start);
	free(now);
	return r;
}
