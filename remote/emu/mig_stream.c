#include "mig_stream.h"

#include <errno.h>
#include <string.h>

/* CRC-32C (Castagnoli, reflected 0x82f63b78), as iSCSI and ext4 use: one table lookup per byte. */
static const uint32_t crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8,
	0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3,
	0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070,
	0x25afd373, 0x36ff2087, 0xc494a384, 0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54,
	0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29,
	0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa, 0x30e349b1,
	0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
	0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696,
	0x6ef07595, 0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0,
	0x67dafa54, 0x95b17957, 0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c,
	0xfe53516f, 0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f, 0x3ac7f2eb,
	0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7, 0x61c69362, 0x93ad1061,
	0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789, 0xeb1fcbad,
	0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
	0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5,
	0xa55230e6, 0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67,
	0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043,
	0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c, 0x92a8fc17, 0x60c37f14, 0x73938ce0,
	0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db,
	0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6,
	0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81,
	0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5,
	0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19,
	0x0d3d3e1a, 0x1e6dcdee, 0xec064eed, 0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530,
	0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc,
	0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540, 0x590ab964,
	0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
	0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2,
	0x37faccf1, 0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9,
	0x4f48173d, 0xbd23943e, 0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a,
	0xc69f7b69, 0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t mig_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void mig_writer_init(struct mig_writer *w)
{
	w->len = 0;
	w->read_off = 0;
}

int mig_writer_record(struct mig_writer *w, uint16_t type, const void *payload, uint32_t len,
		      size_t *payload_off, struct mpdev_error *err)
{
	uint8_t *p;

	if (len > MIG_RECORD_MAX_PAYLOAD || MIG_RECORD_OVERHEAD + len > sizeof(w->buf) - w->len)
		return mpdev_error_set(err, ENOSPC,
				       "migration stream: record type %u of %u bytes does not fit "
				       "(%zu of %u bytes used)",
				       type, len, w->len, MIG_STREAM_MAX_BYTES);
	p = w->buf + w->len;
	mig_put16(p, type);
	mig_put16(p + 2, 0);
	mig_put32(p + 4, len);
	if (len)
		memcpy(p + MIG_RECORD_HDR_SIZE, payload, len);
	mig_put32(p + MIG_RECORD_HDR_SIZE + len, mig_crc32c(0, p, MIG_RECORD_HDR_SIZE + len));
	if (payload_off)
		*payload_off = w->len + MIG_RECORD_HDR_SIZE;
	w->len += MIG_RECORD_OVERHEAD + len;
	return 0;
}

static void encode_header(uint8_t *p, const struct mig_stream_id *id)
{
	memset(p, 0, MIG_HEADER_PAYLOAD_SIZE);
	memcpy(p, MIG_STREAM_MAGIC, 8);
	mig_put32(p + 8, MIG_STREAM_VERSION);
	memcpy(p + 12, id->model, MIG_STREAM_MODEL_LEN);
	mig_put32(p + 28, id->model_version);
	mig_put16(p + 32, id->vendor_id);
	mig_put16(p + 34, id->device_id);
	mig_put16(p + 36, id->subsystem_vendor_id);
	mig_put16(p + 38, id->subsystem_id);
	p[40] = id->revision;
	mig_put32(p + 44, id->class_code);
}

int mig_writer_header(struct mig_writer *w, const struct mig_stream_id *id, struct mpdev_error *err)
{
	uint8_t p[MIG_HEADER_PAYLOAD_SIZE];

	encode_header(p, id);
	return mig_writer_record(w, MIG_REC_HEADER, p, sizeof(p), NULL, err);
}

int mig_writer_end(struct mig_writer *w, struct mpdev_error *err)
{
	return mig_writer_record(w, MIG_REC_END, NULL, 0, NULL, err);
}

size_t mig_writer_take(struct mig_writer *w, void *buf, size_t len)
{
	size_t n = w->len - w->read_off;

	if (n > len)
		n = len;
	if (!n)
		return 0;
	memcpy(buf, w->buf + w->read_off, n);
	w->read_off += n;
	return n;
}

void mig_reader_init(struct mig_reader *r, const struct mig_stream_id *expect, mig_record_fn fn,
		     void *opaque)
{
	memset(r, 0, offsetof(struct mig_reader, rec));
	r->expect = expect;
	r->fn = fn;
	r->opaque = opaque;
}

static int check_header(const uint8_t *p, uint32_t len, const struct mig_stream_id *e,
			struct mpdev_error *err)
{
	char model[MIG_STREAM_MODEL_LEN + 1] = { 0 };
	uint32_t version;

	/* The magic and version sit first in every version's header, so both can be named. */
	if (len < 12 || memcmp(p, MIG_STREAM_MAGIC, 8) != 0)
		return mpdev_error_set(
			err, EINVAL,
			"migration stream: not an mpdev device-state stream (bad magic)");
	version = mig_get32(p + 8);
	if (version != MIG_STREAM_VERSION)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: unknown format version %u (this remote "
				       "reads version %u)",
				       version, MIG_STREAM_VERSION);
	if (len != MIG_HEADER_PAYLOAD_SIZE || p[41] || p[42] || p[43])
		return mpdev_error_set(err, EINVAL,
				       "migration stream: malformed version %u header (%u bytes)",
				       version, len);
	memcpy(model, p + 12, MIG_STREAM_MODEL_LEN);
	if (memcmp(p + 12, e->model, MIG_STREAM_MODEL_LEN) != 0)
		return mpdev_error_set(
			err, EINVAL, "migration stream is from device model \"%s\", this is \"%s\"",
			model, e->model);
	if (mig_get32(p + 28) != e->model_version)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: unknown %s state version %u (this remote "
				       "reads version %u)",
				       e->model, mig_get32(p + 28), e->model_version);
	if (mig_get16(p + 32) != e->vendor_id || mig_get16(p + 34) != e->device_id ||
	    mig_get16(p + 36) != e->subsystem_vendor_id || mig_get16(p + 38) != e->subsystem_id ||
	    p[40] != e->revision || mig_get32(p + 44) != e->class_code)
		return mpdev_error_set(err, EINVAL,
				       "migration stream is from device %04x:%04x (subsystem "
				       "%04x:%04x, revision 0x%02x, class 0x%06x); this is "
				       "%04x:%04x (subsystem %04x:%04x, revision 0x%02x, class "
				       "0x%06x)",
				       mig_get16(p + 32), mig_get16(p + 34), mig_get16(p + 36),
				       mig_get16(p + 38), p[40], mig_get32(p + 44), e->vendor_id,
				       e->device_id, e->subsystem_vendor_id, e->subsystem_id,
				       e->revision, e->class_code);
	return 0;
}

/* The record header is in: refuse what can never become a good record before buffering it. */
static int check_record_header(struct mig_reader *r, struct mpdev_error *err)
{
	uint16_t type = mig_get16(r->rec), flags = mig_get16(r->rec + 2);

	r->len = mig_get32(r->rec + 4);
	/* First, so that anything but a stream of ours is called that. */
	if (!r->header_seen && type != MIG_REC_HEADER)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: not an mpdev device-state stream (first "
				       "record has type %u)",
				       type);
	if (flags)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: record %u has reserved flags 0x%x",
				       r->nrec, flags);
	if (r->len > MIG_RECORD_MAX_PAYLOAD)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: record %u claims %u bytes (at most %u)",
				       r->nrec, r->len, MIG_RECORD_MAX_PAYLOAD);
	if (r->header_seen && type == MIG_REC_HEADER)
		return mpdev_error_set(err, EINVAL, "migration stream: second header (record %u)",
				       r->nrec);
	if (type == MIG_REC_END && r->len)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: END record with %u bytes of payload",
				       r->len);
	return 0;
}

static int complete_record(struct mig_reader *r, struct mpdev_error *err)
{
	uint16_t type = mig_get16(r->rec);
	const uint8_t *payload = r->rec + MIG_RECORD_HDR_SIZE;
	uint32_t want = mig_get32(payload + r->len);
	uint32_t crc = mig_crc32c(0, r->rec, MIG_RECORD_HDR_SIZE + r->len);

	if (crc != want)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: record %u (type %u, %u bytes) is corrupt "
				       "(CRC-32C 0x%08x, expected 0x%08x)",
				       r->nrec, type, r->len, crc, want);
	if (type == MIG_REC_HEADER) {
		r->header_seen = true;
		return check_header(payload, r->len, r->expect, err);
	}
	if (type == MIG_REC_END) {
		r->ended = true;
		return 0;
	}
	return r->fn(r->opaque, type, payload, r->len, err);
}

static int feed(struct mig_reader *r, const uint8_t *p, size_t len, struct mpdev_error *err)
{
	size_t need, n;
	int ret;

	if (r->ended && len)
		return mpdev_error_set(err, EINVAL, "migration stream: %zu bytes after its end",
				       len);
	if (len > MIG_STREAM_MAX_BYTES - r->total)
		return mpdev_error_set(err, EINVAL,
				       "migration stream: longer than the %u bytes an emulated "
				       "device's stream may have",
				       MIG_STREAM_MAX_BYTES);
	r->total += len;
	while (len) {
		if (r->ended)
			return mpdev_error_set(err, EINVAL,
					       "migration stream: %zu bytes after its end", len);
		need = r->got < MIG_RECORD_HDR_SIZE ? MIG_RECORD_HDR_SIZE
						    : MIG_RECORD_HDR_SIZE + r->len + 4;
		n = need - r->got < len ? need - r->got : len;
		memcpy(r->rec + r->got, p, n);
		r->got += n;
		p += n;
		len -= n;
		if (r->got == MIG_RECORD_HDR_SIZE) {
			ret = check_record_header(r, err);
			if (ret < 0)
				return ret;
		} else if (r->got == MIG_RECORD_HDR_SIZE + r->len + 4) {
			ret = complete_record(r, err);
			if (ret < 0)
				return ret;
			r->got = 0;
			r->nrec++;
		}
	}
	return 0;
}

int mig_reader_feed(struct mig_reader *r, const void *data, size_t len, struct mpdev_error *err)
{
	int ret;

	if (r->failed)
		return mpdev_error_set(err, EINVAL, "migration stream: already refused");
	ret = feed(r, data, len, err);
	if (ret < 0)
		r->failed = true;
	return ret;
}

int mig_reader_finish(const struct mig_reader *r, struct mpdev_error *err)
{
	if (r->failed)
		return mpdev_error_set(err, EINVAL, "migration stream: already refused");
	if (r->got)
		return mpdev_error_set(
			err, EINVAL,
			"migration stream truncated inside record %u (%zu bytes in all)", r->nrec,
			r->total);
	if (!r->ended)
		return mpdev_error_set(err, EINVAL,
				       "migration stream truncated: %zu bytes, %u records, no END "
				       "record",
				       r->total, r->nrec);
	return 0;
}
