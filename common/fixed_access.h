/*
 * Fixed-layout region accesses (FEATURE_FIXED_ACCESS, docs/protocol.md 4.3):
 * the hottest messages, a BAR read, a BAR write and its answer, as fixed
 * little-endian records instead of protobuf envelopes. A packet is one of
 * these when its first byte is 0, which no protobuf message can start with
 * (field number 0 is invalid); everything else stays an Envelope, including
 * every error reply, so errors keep their words.
 */
#ifndef MPDEV_FIXED_ACCESS_H
#define MPDEV_FIXED_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define FIXED_ACCESS_MARK	0u
#define FIXED_ACCESS_REQ_SIZE	32u
#define FIXED_ACCESS_REPLY_SIZE 24u

enum fixed_access_op {
	FIXED_OP_READ = 1,	   /* answered by FIXED_OP_READ_REPLY or an error Envelope */
	FIXED_OP_WRITE = 2,	   /* answered by FIXED_OP_WRITE_REPLY or an error Envelope */
	FIXED_OP_POSTED_WRITE = 3, /* answered only if it fails, by an error Envelope */
	FIXED_OP_READ_REPLY = 0x81,
	FIXED_OP_WRITE_REPLY = 0x82,
};

/* One access, decoded; data holds up to 8 bytes, little-endian, in the low bytes. */
struct fixed_access {
	uint8_t op;
	uint8_t index;
	uint8_t size;
	uint64_t id;
	uint64_t offset;
	uint64_t data;
};

/* Whether a packet's bytes are a fixed-layout record rather than an Envelope. */
static inline bool fixed_access_is(const uint8_t *buf, size_t len)
{
	return len > 0 && buf[0] == FIXED_ACCESS_MARK;
}

/* Encodes a request into buf (FIXED_ACCESS_REQ_SIZE bytes); returns that size. */
size_t fixed_access_pack_req(const struct fixed_access *a, uint8_t *buf);
/* Encodes a reply (op READ_REPLY or WRITE_REPLY, id, data) into buf; returns its size. */
size_t fixed_access_pack_reply(const struct fixed_access *a, uint8_t *buf);

/*
 * Decodes a request: exactly FIXED_ACCESS_REQ_SIZE bytes, a request op, the
 * reserved bytes zero, no data on a read. The access itself (index, width,
 * offset) is the session's to check, the same way for both encodings.
 * 0, or -EBADMSG with err saying what was wrong; a->id is set whenever the
 * packet was long enough to carry one, so that the error can answer it.
 */
int fixed_access_unpack_req(const uint8_t *buf, size_t len, struct fixed_access *a,
			    struct mpdev_error *err);
/* Decodes a reply the same way (exactly FIXED_ACCESS_REPLY_SIZE bytes, a reply op). */
int fixed_access_unpack_reply(const uint8_t *buf, size_t len, struct fixed_access *a,
			      struct mpdev_error *err);

#endif
