/*
 * Migration stream framing for emulated device models (docs/migration-edu.md).
 *
 * A stream is a sequence of records, each
 *   u16 type | u16 flags (0) | u32 length | payload[length] | u32 CRC-32C
 * little-endian, the CRC over type, flags, length and payload. The first
 * record is a header naming the framing version, the device model and its
 * PCI identity; the last is an empty END record, so a stream cut at a record
 * boundary is still seen to be incomplete. Record types from
 * MIG_REC_MODEL_BASE on belong to the device model.
 *
 * Everything is bounded: a record's payload by MIG_RECORD_MAX_PAYLOAD, a
 * whole stream by MIG_STREAM_MAX_BYTES, so a reader never buffers more than
 * one record and never accepts an endless stream.
 */
#ifndef MPDEV_MIG_STREAM_H
#define MPDEV_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define MIG_STREAM_VERSION	1u
#define MIG_STREAM_MAGIC	"MPDEVEMU" /* 8 bytes, no NUL in the stream */
#define MIG_STREAM_MAX_BYTES	16384u
#define MIG_RECORD_MAX_PAYLOAD	4096u
#define MIG_RECORD_HDR_SIZE	8u
#define MIG_RECORD_OVERHEAD	12u /* header + CRC */
#define MIG_STREAM_MODEL_LEN	16u
#define MIG_HEADER_PAYLOAD_SIZE 48u

enum mig_record_type {
	MIG_REC_HEADER = 1,
	MIG_REC_END = 2,
	MIG_REC_MODEL_BASE = 16,
};

/* Who a stream is from; a reader accepts only a stream from the same. */
struct mig_stream_id {
	char model[MIG_STREAM_MODEL_LEN]; /* NUL-padded, e.g. "edu" */
	uint32_t model_version;		  /* layout of the model's own records */
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint8_t revision;
	uint32_t class_code;
};

/* Little-endian fields of record payloads. */
static inline void mig_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void mig_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mig_put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t mig_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t mig_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t mig_get64(const uint8_t *p)
{
	return (uint64_t)mig_get32(p) | (uint64_t)mig_get32(p + 4) << 32;
}

uint32_t mig_crc32c(uint32_t crc, const void *data, size_t len);

/* A stream being produced: records appended, read out from the front. */
struct mig_writer {
	uint8_t buf[MIG_STREAM_MAX_BYTES];
	size_t len;	 /* bytes written */
	size_t read_off; /* bytes taken */
};

void mig_writer_init(struct mig_writer *w);
int mig_writer_header(struct mig_writer *w, const struct mig_stream_id *id,
		      struct mpdev_error *err);
/* payload_off (may be NULL): where the payload landed in w->buf. */
int mig_writer_record(struct mig_writer *w, uint16_t type, const void *payload, uint32_t len,
		      size_t *payload_off, struct mpdev_error *err);
int mig_writer_end(struct mig_writer *w, struct mpdev_error *err);
/* Copies out up to len unread bytes; returns how many. */
size_t mig_writer_take(struct mig_writer *w, void *buf, size_t len);

/* Called for each complete, CRC-checked model record; 0 or a negative errno. */
typedef int (*mig_record_fn)(void *opaque, uint16_t type, const uint8_t *payload, uint32_t len,
			     struct mpdev_error *err);

/* A stream being consumed, in any segmentation. */
struct mig_reader {
	const struct mig_stream_id *expect;
	mig_record_fn fn;
	void *opaque;
	size_t total; /* stream bytes accepted */
	size_t got;   /* bytes of the current record */
	uint32_t len; /* the current record's payload length, once its header is in */
	unsigned nrec;
	bool header_seen, ended, failed;
	uint8_t rec[MIG_RECORD_HDR_SIZE + MIG_RECORD_MAX_PAYLOAD + 4];
};

void mig_reader_init(struct mig_reader *r, const struct mig_stream_id *expect, mig_record_fn fn,
		     void *opaque);
/* -EINVAL (and the reader stays failed) on anything but a well-formed stream from expect. */
int mig_reader_feed(struct mig_reader *r, const void *data, size_t len, struct mpdev_error *err);
/* The stream is complete: its END record arrived and nothing was refused. */
int mig_reader_finish(const struct mig_reader *r, struct mpdev_error *err);

#endif
