#include "fixed_access.h"

#include <errno.h>
#include <string.h>

/*
 * Request:  [0] 0  [1] op  [2] region index  [3] size  [4..7] 0
 *           [8..15] id  [16..23] offset  [24..31] data (0 for a read)
 * Reply:    [0] 0  [1] op  [2..7] 0  [8..15] id  [16..23] data (0 for a write)
 * Little-endian throughout, like the region data itself.
 */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

size_t fixed_access_pack_req(const struct fixed_access *a, uint8_t *buf)
{
	memset(buf, 0, FIXED_ACCESS_REQ_SIZE);
	buf[1] = a->op;
	buf[2] = a->index;
	buf[3] = a->size;
	put_le64(buf + 8, a->id);
	put_le64(buf + 16, a->offset);
	put_le64(buf + 24, a->data);
	return FIXED_ACCESS_REQ_SIZE;
}

size_t fixed_access_pack_reply(const struct fixed_access *a, uint8_t *buf)
{
	memset(buf, 0, FIXED_ACCESS_REPLY_SIZE);
	buf[1] = a->op;
	put_le64(buf + 8, a->id);
	put_le64(buf + 16, a->data);
	return FIXED_ACCESS_REPLY_SIZE;
}

int fixed_access_unpack_req(const uint8_t *buf, size_t len, struct fixed_access *a,
			    struct mpdev_error *err)
{
	memset(a, 0, sizeof(*a));
	if (len >= 16)
		a->id = get_le64(buf + 8);
	if (len != FIXED_ACCESS_REQ_SIZE || buf[0] != FIXED_ACCESS_MARK)
		return mpdev_error_set(err, EBADMSG,
				       "fixed-layout request of %zu bytes: it has exactly %u", len,
				       FIXED_ACCESS_REQ_SIZE);
	a->op = buf[1];
	a->index = buf[2];
	a->size = buf[3];
	a->offset = get_le64(buf + 16);
	a->data = get_le64(buf + 24);
	if (a->op != FIXED_OP_READ && a->op != FIXED_OP_WRITE && a->op != FIXED_OP_POSTED_WRITE)
		return mpdev_error_set(err, EBADMSG, "fixed-layout request with unknown op 0x%x",
				       a->op);
	if (!all_zero(buf + 4, 4))
		return mpdev_error_set(err, EBADMSG,
				       "fixed-layout request with reserved bytes 4..7 not zero");
	if (a->op == FIXED_OP_READ && a->data)
		return mpdev_error_set(err, EBADMSG, "fixed-layout read carrying data");
	return 0;
}

int fixed_access_unpack_reply(const uint8_t *buf, size_t len, struct fixed_access *a,
			      struct mpdev_error *err)
{
	memset(a, 0, sizeof(*a));
	if (len >= 16)
		a->id = get_le64(buf + 8);
	if (len != FIXED_ACCESS_REPLY_SIZE || buf[0] != FIXED_ACCESS_MARK)
		return mpdev_error_set(err, EBADMSG,
				       "fixed-layout reply of %zu bytes: it has exactly %u", len,
				       FIXED_ACCESS_REPLY_SIZE);
	a->op = buf[1];
	a->data = get_le64(buf + 16);
	if (a->op != FIXED_OP_READ_REPLY && a->op != FIXED_OP_WRITE_REPLY)
		return mpdev_error_set(err, EBADMSG, "fixed-layout reply with unknown op 0x%x",
				       a->op);
	if (!all_zero(buf + 2, 6))
		return mpdev_error_set(err, EBADMSG,
				       "fixed-layout reply with reserved bytes 2..7 not zero");
	return 0;
}
