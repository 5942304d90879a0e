/*
 * Fixed-layout region accesses (FEATURE_FIXED_ACCESS, docs/protocol.md 4.3):
 * the hot path's twin of session.c's RegionRead/RegionWrite rows. The rules
 * are the same ones (session_check_access, then devops); what differs is
 * that nothing here allocates, formats or touches protobuf on success.
 */
#include <errno.h>

#include "devops.h"
#include "fixed_access.h"
#include "session_handlers.h"

#define F(x) MPDEV__FEATURE__FEATURE_##x

/* The checks session.c's request table makes for a RegionRead/RegionWrite row. */
static int check_fixed(const struct session *s, const struct fixed_access *a,
		       struct mpdev_error *err)
{
	bool posted = a->op == FIXED_OP_POSTED_WRITE;

	if (!s->greeted)
		return mpdev_error_set(
			err, EPROTO, "fixed-layout access before the handshake: send hello first");
	if (!(s->features & F(FIXED_ACCESS)))
		return mpdev_error_set(err, ENOTSUP,
				       "fixed-layout access needs feature 0x%x, which was not "
				       "negotiated",
				       F(FIXED_ACCESS));
	if (a->id == 0)
		return mpdev_error_set(err, EPROTO, "request id 0 is reserved for notifications");
	if (posted && !(s->features & F(POSTED_WRITES)))
		return mpdev_error_set(err, ENOTSUP,
				       "posted writes need feature 0x%x, which was not negotiated",
				       F(POSTED_WRITES));
	if (session_check_access(a->index, a->size, err) < 0)
		return -EINVAL;
	/* The record has room for 8 bytes; a narrower write leaves the rest zero. */
	if (a->size < 8 && a->data >> (8 * a->size))
		return mpdev_error_set(err, EINVAL,
				       "%u-byte write with data 0x%llx: bytes past its width are "
				       "not zero",
				       a->size, (unsigned long long)a->data);
	return 0;
}

int session_handle_fixed(struct session *s, struct wire_msg *m)
{
	static uint8_t reply[FIXED_ACCESS_REPLY_SIZE];
	struct mpdev_error err = { 0 };
	struct fixed_access a;
	int r;

	s->stats->messages++;
	r = fixed_access_unpack_req(m->raw, m->raw_len, &a, &err);
	if (r < 0)
		return session_handle_bad_packet(s, m, &err);
	r = check_fixed(s, &a, &err);
	if (r == 0 && a.op == FIXED_OP_READ) {
		uint8_t buf[8] = { 0 };

		r = devops_region_read(s, a.index, a.offset, buf, a.size, &err);
		for (int i = 7; r == 0 && i >= 0; i--)
			a.data = a.data << 8 | buf[i];
	} else if (r == 0) {
		uint8_t buf[8];

		for (int i = 0; i < 8; i++)
			buf[i] = (uint8_t)(a.data >> (8 * i));
		r = devops_region_write(s, a.index, a.offset, buf, a.size, &err);
	}
	if (r < 0) {
		if (!err.code)
			mpdev_error_set(&err, EIO, "request failed without a reason");
		return session_send_status(s, a.id, &err, NULL);
	}
	if (a.op == FIXED_OP_POSTED_WRITE) {
		s->stats->posted_writes++;
		return 0;
	}
	a.op = a.op == FIXED_OP_READ ? FIXED_OP_READ_REPLY : FIXED_OP_WRITE_REPLY;
	if (a.op == FIXED_OP_WRITE_REPLY)
		a.data = 0;
	r = session_output(s, reply, fixed_access_pack_reply(&a, reply), NULL, 0);
	return r;
}
