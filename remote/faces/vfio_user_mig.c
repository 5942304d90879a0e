/*
 * Migration as vfio-user carries it: DEVICE_FEATURE for VFIO's MIGRATION
 * (what the device supports) and MIG_DEVICE_STATE (the v2 state machine,
 * devops_mig_set_state walking it an arc at a time), and MIG_DATA_READ /
 * MIG_DATA_WRITE for the stream in place of VFIO's data_fd. The P2P states
 * are not used in vfio-user: they are neither offered nor accepted as a
 * target. Dirty logging (DMA_LOGGING_*) is not served here.
 */
#include <errno.h>
#include <string.h>

#include "vfio_user_internal.h"

/* What vfio-user may use of what the device supports. */
static uint32_t mig_flags(const struct session *s)
{
	return devops_mig_flags(s) & (BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_PRE_COPY);
}

/* A probe's reply is its request. */
static int echo(struct vfu_req *r)
{
	memcpy(r->reply, r->payload, r->len);
	r->reply_len = r->len;
	return 0;
}

/* A GET's reply: the header, argsz now covering the data, then the data. */
static int reply_data(struct vfu_req *r, const struct vfu_device_feature *f, const void *data,
		      size_t n)
{
	struct vfu_device_feature h = { .argsz = (uint32_t)(VFU_DEVICE_FEATURE_SIZE + n),
					.flags = f->flags };

	if (f->argsz < VFU_DEVICE_FEATURE_SIZE + n)
		return vfu_fail(r, EINVAL, "argsz %u: the reply needs %zu", f->argsz,
				VFU_DEVICE_FEATURE_SIZE + n);
	memcpy(r->reply, &h, sizeof(h));
	memcpy(r->reply + sizeof(h), data, n);
	r->reply_len = sizeof(h) + n;
	return 0;
}

static bool valid_target(uint32_t state)
{
	return state == BACKEND_MIG_STOP || state == BACKEND_MIG_RUNNING ||
	       state == BACKEND_MIG_STOP_COPY || state == BACKEND_MIG_RESUMING ||
	       state == BACKEND_MIG_PRE_COPY;
}

static int device_state(struct session *s, struct vfu_req *r, const struct vfu_device_feature *f,
			const uint8_t *data, size_t dlen)
{
	struct vfu_mig_state ms;
	enum backend_mig_state reached;
	int rc;

	if (f->flags & VFU_FEATURE_PROBE)
		return echo(r);
	if (f->flags & VFU_FEATURE_GET) {
		if (dlen)
			return vfu_fail(r, EINVAL, "a GET of the device state carries no data");
		ms = (struct vfu_mig_state){ .device_state = devops_mig_state(s),
					     .data_fd = UINT32_MAX };
		return reply_data(r, f, &ms, sizeof(ms));
	}
	if (dlen != sizeof(ms) || f->argsz < VFU_DEVICE_FEATURE_SIZE + sizeof(ms))
		return vfu_fail(r, EINVAL, "MIG_DEVICE_STATE SET: %zu bytes of data, argsz %u",
				dlen, f->argsz);
	memcpy(&ms, data, sizeof(ms));
	if (!valid_target(ms.device_state) || (ms.device_state == BACKEND_MIG_PRE_COPY &&
					       !(mig_flags(s) & BACKEND_MIG_FLAG_PRE_COPY)))
		return vfu_fail(r, EINVAL, "device state %u is no target here", ms.device_state);
	rc = devops_mig_set_state(s, ms.device_state, &reached, &r->err);
	if (rc < 0)
		return rc;
	return echo(r);
}

int vfu_handle_device_feature(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_device_feature f;
	const uint8_t *data;
	size_t dlen;
	uint64_t flags;

	(void)c;
	if (vfu_decode_device_feature(r->payload, r->len, &f, &data, &dlen) < 0)
		return vfu_fail(r, EINVAL, "DEVICE_FEATURE: %zu bytes, or its argsz or flags wrong",
				r->len);
	switch (f.flags & VFU_FEATURE_MASK) {
	case VFU_FEATURE_MIGRATION:
		if (!mig_flags(s))
			return vfu_fail(r, ENOTTY, "the device does not migrate");
		if (f.flags & VFU_FEATURE_SET)
			return vfu_fail(r, EINVAL, "MIGRATION is only read");
		if (f.flags & VFU_FEATURE_PROBE)
			return echo(r);
		if (dlen)
			return vfu_fail(r, EINVAL, "a GET of MIGRATION carries no data");
		flags = mig_flags(s);
		return reply_data(r, &f, &flags, sizeof(flags));
	case VFU_FEATURE_MIG_DEVICE_STATE:
		if (!mig_flags(s))
			return vfu_fail(r, ENOTTY, "the device does not migrate");
		return device_state(s, r, &f, data, dlen);
	default:
		return vfu_fail(r, ENOTTY, "device feature %u is not supported",
				f.flags & VFU_FEATURE_MASK);
	}
}

/* The largest stream piece either way: ours, and what the client takes. */
static uint32_t xfer_max(const struct vfu_conn *c)
{
	return c->peer.max_data_xfer_size < VFU_OUR_MAX_XFER ? (uint32_t)c->peer.max_data_xfer_size
							     : VFU_OUR_MAX_XFER;
}

int vfu_handle_mig_data_read(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_mig_data m;
	uint8_t *out = r->reply + VFU_MIG_DATA_SIZE;
	size_t n = 0;

	if (vfu_decode_mig_data_read(r->payload, r->len, xfer_max(c), &m) < 0)
		return vfu_fail(r, EINVAL,
				"MIG_DATA_READ: %zu bytes, or a size of 0, past %u or past argsz",
				r->len, xfer_max(c));
	/* Less than asked means the end of what there is: the device is asked until it says so. */
	while (n < m.size) {
		ssize_t k = devops_mig_read(s, out + n, m.size - n, &r->err);

		if (k < 0)
			return (int)k;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	m = (struct vfu_mig_data){ .argsz = (uint32_t)(VFU_MIG_DATA_SIZE + n),
				   .size = (uint32_t)n };
	memcpy(r->reply, &m, sizeof(m));
	r->reply_len = VFU_MIG_DATA_SIZE + n;
	return 0;
}

int vfu_handle_mig_data_write(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_mig_data m;
	const uint8_t *data;

	if (vfu_decode_mig_data_write(r->payload, r->len, VFU_OUR_MAX_XFER, &m, &data) < 0)
		return vfu_fail(r, EINVAL,
				"MIG_DATA_WRITE: %zu bytes do not carry its size (1..%u) of data",
				r->len, VFU_OUR_MAX_XFER);
	(void)c;
	return devops_mig_write(s, data, m.size, &r->err);
}
