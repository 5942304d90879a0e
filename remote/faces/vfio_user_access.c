/*
 * REGION_READ, REGION_WRITE (posted when the client sets No_reply),
 * REGION_WRITE_MULTI (where both sides said write_multiple) and
 * DEVICE_RESET. Lengths, ranges and access rights are devops' to judge.
 */
#include <errno.h>
#include <string.h>

#include "vfio_user_internal.h"

int vfu_handle_region_read(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_region_access a;
	int rc;

	(void)c;
	if (vfu_decode_region_read(r->payload, r->len, VFU_OUR_MAX_XFER, &a) < 0)
		return vfu_fail(r, EINVAL, "REGION_READ: %zu bytes, or a count of 0 or above %u",
				r->len, VFU_OUR_MAX_XFER);
	rc = devops_region_read(s, a.region, a.offset, r->reply + VFU_REGION_ACCESS_SIZE, a.count,
				&r->err);
	if (rc < 0)
		return rc;
	s->stats->region_reads++;
	memcpy(r->reply, &a, sizeof(a));
	r->reply_len = VFU_REGION_ACCESS_SIZE + a.count;
	return 0;
}

int vfu_handle_region_write(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_region_access a;
	const uint8_t *data;
	int rc;

	(void)c;
	if (vfu_decode_region_write(r->payload, r->len, VFU_OUR_MAX_XFER, &a, &data) < 0)
		return vfu_fail(r, EINVAL,
				"REGION_WRITE: %zu bytes do not carry its count (1..%u) of data",
				r->len, VFU_OUR_MAX_XFER);
	rc = devops_region_write(s, a.region, a.offset, data, a.count, &r->err);
	if (rc < 0)
		return rc;
	s->stats->region_writes++;
	if (r->hdr.flags & VFU_FLAG_NO_REPLY)
		s->stats->posted_writes++;
	memcpy(r->reply, &a, sizeof(a));
	r->reply_len = VFU_REGION_ACCESS_SIZE;
	return 0;
}

int vfu_handle_write_multi(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_write_one w;
	uint64_t n;
	int rc;

	if (!c->write_multi)
		return vfu_fail(r, ENOTSUP, "REGION_WRITE_MULTI without write_multiple agreed");
	if (vfu_decode_write_multi(r->payload, r->len, &n) < 0)
		return vfu_fail(r, EINVAL, "REGION_WRITE_MULTI: %zu bytes are not 1..%u writes",
				r->len, VFU_MULTI_MAX);
	/* In order, as the client issued them; the first refused one ends the batch. */
	for (uint64_t i = 0; i < n; i++) {
		vfu_write_multi_get(r->payload, i, &w);
		rc = devops_region_write(s, w.region, w.offset, w.data, w.count, &r->err);
		if (rc < 0)
			return rc;
		s->stats->region_writes++;
		s->stats->posted_writes++;
	}
	memcpy(r->reply, &n, sizeof(n));
	r->reply_len = sizeof(n);
	return 0;
}

int vfu_handle_reset(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	int rc;

	(void)c;
	if (r->len)
		return vfu_fail(r, EINVAL, "DEVICE_RESET carries no payload (%zu bytes)", r->len);
	rc = devops_reset(s, &r->err);
	if (rc == 0)
		s->stats->resets++;
	return rc;
}
