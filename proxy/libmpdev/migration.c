/*
 * Migration: state transitions, the state stream and precopy info for one
 * device, and the ordered transition of a set of devices.
 *
 * None of these calls is retried after a remote restart: the device state
 * a migration works on died with the old remote, so a call that finds its
 * connection gone fails (-ECONNRESET after an automatic reconnect).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "client.h"

/* Stream bytes per MigData message; the remote's own limit (SESSION_MIG_CHUNK_MAX). */
#define MIG_CHUNK (60u * 1024u)

static const char *const state_names[] = {
	"ERROR",    "STOP",	   "RUNNING",  "STOP_COPY",
	"RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char *mpdev_mig_state_name(unsigned state)
{
	return state < N_STATES ? state_names[state] : "?";
}

static int need_migration(struct mpdev *dev)
{
	if (!(dev->features & MPDEV_FEATURE_MIGRATION))
		return mpdev_error_set(&dev->err, ENOTSUP,
				       "migration was not negotiated with the remote");
	return 0;
}

static int state_request(struct mpdev *dev, Mpdev__Envelope *req, enum mpdev_mig_state *state)
{
	struct wire_msg reply;
	int r, rb;

	r = client_request_ex(dev, req, NULL, 0, &reply, true);
	if (r < 0 && !reply.env)
		return r;
	/* A failed transition still says where the device is. */
	rb = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_MIG_STATE_REPLY);
	if (rb == 0 && state)
		*state = (enum mpdev_mig_state)reply.env->mig_state_reply->state;
	wire_msg_release(&reply);
	return r < 0 ? r : rb;
}

int mpdev_mig_get_state(struct mpdev *dev, enum mpdev_mig_state *state)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MigGetState body = MPDEV__MIG_GET_STATE__INIT;
	int r = need_migration(dev);

	if (r < 0)
		return r;
	req.body_case = MPDEV__ENVELOPE__BODY_MIG_GET_STATE;
	req.mig_get_state = &body;
	r = state_request(dev, &req, state);
	return client_no_retry(dev, r, "migration state");
}

int mpdev_mig_set_state(struct mpdev *dev, enum mpdev_mig_state state,
			enum mpdev_mig_state *reached)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MigSetState body = MPDEV__MIG_SET_STATE__INIT;
	enum mpdev_mig_state now = MPDEV_MIG_ERROR;
	int r = need_migration(dev);

	if (r < 0)
		return r;
	body.state = state;
	req.body_case = MPDEV__ENVELOPE__BODY_MIG_SET_STATE;
	req.mig_set_state = &body;
	r = state_request(dev, &req, &now);
	if (reached)
		*reached = now;
	return client_no_retry(dev, r, "migration state change");
}

int mpdev_mig_read(struct mpdev *dev, void *buf, size_t len)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MigDataRead body = MPDEV__MIG_DATA_READ__INIT;
	const Mpdev__MigData *d;
	struct wire_msg reply;
	int r = need_migration(dev);

	if (r < 0)
		return r;
	if (!buf || !len)
		return mpdev_error_set(&dev->err, EINVAL, "no buffer to read the stream into");
	body.max_bytes = len < MIG_CHUNK ? (uint32_t)len : MIG_CHUNK;
	req.body_case = MPDEV__ENVELOPE__BODY_MIG_DATA_READ;
	req.mig_data_read = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return client_no_retry(dev, r, "migration stream read");
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_MIG_DATA);
	if (r == 0) {
		d = reply.env->mig_data;
		if (d->data.len > body.max_bytes) {
			r = mpdev_error_set(&dev->err, EPROTO,
					    "remote sent %zu stream bytes for %u asked",
					    d->data.len, body.max_bytes);
		} else {
			/* An empty bytes field decodes as a NULL pointer. */
			if (d->data.len)
				memcpy(buf, d->data.data, d->data.len);
			r = (int)d->data.len;
		}
	}
	wire_msg_release(&reply);
	return r;
}

int mpdev_mig_write(struct mpdev *dev, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int r = need_migration(dev);

	if (r < 0)
		return r;
	if (len && !buf)
		return mpdev_error_set(&dev->err, EINVAL, "no stream bytes to write");
	while (len) {
		Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
		Mpdev__MigData body = MPDEV__MIG_DATA__INIT;
		size_t n = len < MIG_CHUNK ? len : MIG_CHUNK;

		body.data.data = (uint8_t *)p;
		body.data.len = n;
		req.body_case = MPDEV__ENVELOPE__BODY_MIG_DATA;
		req.mig_data = &body;
		r = client_request_ok(dev, &req, NULL, 0);
		if (r < 0)
			return client_no_retry(dev, r, "migration stream write");
		p += n;
		len -= n;
	}
	return 0;
}

int mpdev_mig_precopy_info(struct mpdev *dev, uint64_t *initial_bytes, uint64_t *dirty_bytes)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MigPrecopyInfoRequest body = MPDEV__MIG_PRECOPY_INFO_REQUEST__INIT;
	struct wire_msg reply;
	int r = need_migration(dev);

	if (r < 0)
		return r;
	req.body_case = MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO_REQUEST;
	req.mig_precopy_info_request = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return client_no_retry(dev, r, "precopy info");
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_MIG_PRECOPY_INFO);
	if (r == 0) {
		if (initial_bytes)
			*initial_bytes = reply.env->mig_precopy_info->initial_bytes;
		if (dirty_bytes)
			*dirty_bytes = reply.env->mig_precopy_info->dirty_bytes;
	}
	wire_msg_release(&reply);
	return r;
}
