/*
 * Migration for every face: transitions through the one FSM (mig_fsm.h),
 * and the device state stream in whatever pieces a face carries.
 */
#include <errno.h>

#include "devops.h"
#include "log.h"
#include "mig_fsm.h"
#include "session.h"

#define COMP "remote"

uint32_t devops_mig_flags(const struct session *s)
{
	return s->mig_flags;
}

enum backend_mig_state devops_mig_state(const struct session *s)
{
	return s->mig_state;
}

static int need_migration(const struct session *s, struct mpdev_error *err)
{
	if (!s->mig_flags)
		return mpdev_error_set(err, ENOTSUP, "device '%s' does not support migration",
				       s->info.name);
	return 0;
}

int devops_mig_set_state(struct session *s, enum backend_mig_state target,
			 enum backend_mig_state *reached, struct mpdev_error *err)
{
	enum backend_mig_state from = s->mig_state;
	int r = need_migration(s, err);

	if (r < 0) {
		*reached = s->mig_state;
		return r;
	}
	r = mig_fsm_run(s->backend, s->mig_flags, &s->mig_state, target, err);
	*reached = s->mig_state;
	if (r < 0) {
		log_info_rl(COMP, "migration %s -> %s refused or failed: %s",
			    mig_fsm_state_name(from), mig_fsm_state_name(target), err->msg);
		return r;
	}
	s->stats->mig_transitions++;
	if (from != s->mig_state)
		log_info(COMP, "migration state %s -> %s", mig_fsm_state_name(from),
			 mig_fsm_state_name(s->mig_state));
	return 0;
}

ssize_t devops_mig_read(struct session *s, void *buf, size_t len, struct mpdev_error *err)
{
	ssize_t n;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (!mig_fsm_is_saving(s->mig_state))
		return mpdev_error_set(err, EINVAL,
				       "the device is in %s: the stream is read in STOP_COPY, "
				       "PRE_COPY or PRE_COPY_P2P",
				       mig_fsm_state_name(s->mig_state));
	n = s->backend->ops->mig_save(s->backend, buf, len, err);
	if (n < 0)
		return n;
	if ((size_t)n > len)
		return mpdev_error_set(err, EIO, "device gave %zd stream bytes for %zu", n, len);
	s->stats->mig_bytes_saved += (uint64_t)n;
	return n;
}

int devops_mig_write(struct session *s, const void *buf, size_t len, struct mpdev_error *err)
{
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (s->mig_state != BACKEND_MIG_RESUMING)
		return mpdev_error_set(err, EINVAL,
				       "the device is in %s: the stream is written in RESUMING",
				       mig_fsm_state_name(s->mig_state));
	if (len) {
		r = s->backend->ops->mig_load(s->backend, buf, len, err);
		if (r < 0) {
			/* A stream the device refused cannot be resumed: reset brings it back. */
			s->mig_state = BACKEND_MIG_ERROR;
			log_info_rl(COMP,
				    "migration stream refused in RESUMING, device now in ERROR: %s",
				    err->msg);
			return r;
		}
	}
	s->stats->mig_bytes_loaded += len;
	return 0;
}
