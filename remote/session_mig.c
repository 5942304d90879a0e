/*
 * The native face's migration requests, over devops_mig_* (devops_mig.c):
 * state transitions, the device state stream in MigData messages, precopy
 * info. The stream goes over the socket whatever the backend: see
 * docs/protocol.md, "Migration", for why the VFIO data_fd is not handed out.
 */
#include <errno.h>
#include <string.h>

#include "mig_fsm.h"
#include "session_handlers.h"

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

/* The state the device is in, as a reply body (also on a failed transition's error). */
static int state_body(struct session *s, struct session_reply *rep, struct mpdev_error *err)
{
	Mpdev__MigStateReply *st = session_reply_alloc(rep, sizeof(*st));

	if (!st)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	mpdev__mig_state_reply__init(st);
	st->state = devops_mig_state(s);
	rep->env.body_case = MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY;
	rep->env.mig_state_reply = st;
	return 0;
}

static int need_migration(const struct session *s, struct mpdev_error *err)
{
	if (!devops_mig_flags(s))
		return mpdev_error_set(err, ENOTSUP, "device '%s' does not support migration",
				       s->info.name);
	return 0;
}

int handle_mig_get_state(struct session *s, struct wire_msg *m, struct session_reply *rep,
			 struct mpdev_error *err)
{
	int r = need_migration(s, err);

	return r < 0 ? r : state_body(s, rep, err);
}

/*
 * A failed transition is answered with the state the device is in (the
 * reply's body) beside the error, so the VMM need not ask.
 */
int handle_mig_set_state(struct session *s, struct wire_msg *m, struct session_reply *rep,
			 struct mpdev_error *err)
{
	enum backend_mig_state reached;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	r = devops_mig_set_state(s, m->env->mig_set_state->state, &reached, err);
	if (r < 0) {
		struct mpdev_error ignored = { 0 };

		if (state_body(s, rep, &ignored) == 0)
			rep->body_on_error = true;
		return r;
	}
	return state_body(s, rep, err);
}

int handle_mig_data_read(struct session *s, struct wire_msg *m, struct session_reply *rep,
			 struct mpdev_error *err)
{
	static uint8_t buf[SESSION_MIG_CHUNK_MAX];
	Mpdev__MigData *data = session_reply_alloc(rep, sizeof(*data));
	size_t len = m->env->mig_data_read->max_bytes;
	ssize_t n;

	if (!data)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	/* 0 asks for as much as one reply carries. */
	if (len == 0 || len > sizeof(buf))
		len = sizeof(buf);
	n = devops_mig_read(s, buf, len, err);
	if (n < 0)
		return (int)n;
	mpdev__mig_data__init(data);
	data->data.data = buf;
	data->data.len = (size_t)n;
	data->eof = n == 0;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_MIG_DATA;
	rep->env.mig_data = data;
	return 0;
}

int handle_mig_data(struct session *s, struct wire_msg *m, struct session_reply *rep,
		    struct mpdev_error *err)
{
	const Mpdev__MigData *d = m->env->mig_data;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (d->data.len > SESSION_MIG_CHUNK_MAX)
		return mpdev_error_set(err, EMSGSIZE, "%zu stream bytes in one message: at most %u",
				       d->data.len, SESSION_MIG_CHUNK_MAX);
	return devops_mig_write(s, d->data.data, d->data.len, err);
}

int handle_mig_precopy_info(struct session *s, struct wire_msg *m, struct session_reply *rep,
			    struct mpdev_error *err)
{
	Mpdev__MigPrecopyInfo *info = session_reply_alloc(rep, sizeof(*info));
	uint64_t initial = 0, dirty = 0;
	int r = need_migration(s, err);

	if (r < 0)
		return r;
	if (!info)
		return mpdev_error_set(err, ENOMEM, "reply too large");
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
	mpdev__mig_precopy_info__init(info);
	info->initial_bytes = initial;
	info->dirty_bytes = dirty;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO;
	rep->env.mig_precopy_info = info;
	return 0;
}
