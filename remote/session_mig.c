/*
 * The migration requests: state transitions through the one FSM
 * (mig_fsm.h), the device state stream and precopy info. The stream goes
 * over the socket in MigData messages, whatever the backend: see
 * docs/protocol.md, "Migration", for why the VFIO data_fd is not handed out.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "mig_fsm.h"
#include "session_handlers.h"

#define COMP "remote"

void session_mig_init(struct session *s)
{
	const struct backend_ops *ops = s->backend->ops;

	/* All of the stream ops or no migration: a backend with half of them is not offered. */
	s->mig_flags = ops->mig_flags && ops->mig_arc && ops->mig_save && ops->mig_load
			       ? ops->mig_flags(s->backend)
			       : 0;
	if (!(s->mig_flags & BACKEND_MIG_FLAG_STOP_COPY))
		s->mig_flags = 0;
	s->mig_state = BACKEND_MIG_RUNNING;
}

static int need_migration(const struct session *s, struct mpdev_error *err)
{
	if (!s->mig_flags)
		return mpdev_error_set(err, ENOTSUP, "device '%s' does not support migration",
				       s->info.name);
	return 0;
}

static int send_state(struct session *s, uint64_t id, const struct mpdev_error *failure)
{
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__MigStateReply st = MPDEV__MIG_STATE_REPLY__INIT;

	st.state = s->mig_state;
	rep.body_case = MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY;
	rep.mig_state_reply = &st;
	if (failure)
		return session_send_error_reply(s, id, failure, &rep);
	return session_send_reply(s, id, &rep);
}

int handle_mig_get_state(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	int r = need_migration(s, err);

	return r < 0 ? r : send_state(s, req->id, NULL);
}

/*
 * A failed transition is answered with the state the device is in (the
 * reply's body) beside the error, so the VMM need not ask.
 */
int handle_mig_set_state(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	unsigned from = s->mig_state, to = req->mig_set_state->state;
	struct mpdev_error e = { 0 };
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	r = mig_fsm_run(s->backend, s->mig_flags, &s->mig_state, to, &e);
	if (r < 0) {
		log_info_rl(COMP, "migration %s -> %s refused or failed: %s",
			    mig_fsm_state_name(from), mig_fsm_state_name(to), e.msg);
		return send_state(s, req->id, &e);
	}
	s->stats->mig_transitions++;
	if (from != s->mig_state)
		log_info(COMP, "migration state %s -> %s", mig_fsm_state_name(from),
			 mig_fsm_state_name(s->mig_state));
	return send_state(s, req->id, NULL);
}

int handle_mig_data_read(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	static uint8_t buf[SESSION_MIG_CHUNK_MAX];
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__MigData data = MPDEV__MIG_DATA__INIT;
	size_t len = req->mig_data_read->max_bytes;
	ssize_t n;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (!mig_fsm_is_saving(s->mig_state))
		return mpdev_error_set(err, EINVAL,
				       "the device is in %s: the stream is read in STOP_COPY, "
				       "PRE_COPY or PRE_COPY_P2P",
				       mig_fsm_state_name(s->mig_state));
	/* 0 asks for as much as one reply carries. */
	if (len == 0 || len > sizeof(buf))
		len = sizeof(buf);
	n = s->backend->ops->mig_save(s->backend, buf, len, err);
	if (n < 0)
		return (int)n;
	if ((size_t)n > len)
		return mpdev_error_set(err, EIO, "device gave %zd stream bytes for %zu", n, len);
	s->stats->mig_bytes_saved += (uint64_t)n;
	data.data.data = buf;
	data.data.len = (size_t)n;
	data.eof = n == 0;
	rep.body_case = MPDEV__ENVELOPE__BODY_MIG_DATA;
	rep.mig_data = &data;
	return session_send_reply(s, req->id, &rep);
}

int handle_mig_data(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	const Mpdev__MigData *d = req->mig_data;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (s->mig_state != BACKEND_MIG_RESUMING)
		return mpdev_error_set(err, EINVAL,
				       "the device is in %s: the stream is written in RESUMING",
				       mig_fsm_state_name(s->mig_state));
	if (d->data.len > SESSION_MIG_CHUNK_MAX)
		return mpdev_error_set(err, EMSGSIZE, "%zu stream bytes in one message: at most %u",
				       d->data.len, SESSION_MIG_CHUNK_MAX);
	if (d->data.len) {
		enum backend_mig_state before = s->mig_state;

		r = s->backend->ops->mig_load(s->backend, d->data.data, d->data.len, err);
		if (r < 0) {
			/* A stream the device refused cannot be resumed: reset brings it back. */
			s->mig_state = BACKEND_MIG_ERROR;
			log_info_rl(COMP, "migration stream refused in %s, device now in ERROR: %s",
				    mig_fsm_state_name(before), err->msg);
			return r;
		}
	}
	s->stats->mig_bytes_loaded += d->data.len;
	return session_send_ok(s, req->id);
}

int handle_mig_precopy_info(struct session *s, const Mpdev__Envelope *req, struct mpdev_error *err)
{
	Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
	Mpdev__MigPrecopyInfo info = MPDEV__MIG_PRECOPY_INFO__INIT;
	uint64_t initial = 0, dirty = 0;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (s->mig_state != BACKEND_MIG_PRE_COPY && s->mig_state != BACKEND_MIG_PRE_COPY_P2P)
		return mpdev_error_set(err, EINVAL,
				       "the device is in %s: precopy info is for PRE_COPY and "
				       "PRE_COPY_P2P",
				       mig_fsm_state_name(s->mig_state));
	if (!s->backend->ops->mig_precopy_info)
		return mpdev_error_set(err, ENOTSUP, "device '%s' gives no precopy info",
				       s->info.name);
	r = s->backend->ops->mig_precopy_info(s->backend, &initial, &dirty, err);
	if (r < 0)
		return r;
	info.initial_bytes = initial;
	info.dirty_bytes = dirty;
	rep.body_case = MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO;
	rep.mig_precopy_info = &info;
	return session_send_reply(s, req->id, &rep);
}
