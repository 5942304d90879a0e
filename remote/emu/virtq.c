#include "virtq.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Ring layout (virtio spec 2.7): every field little-endian.
 *   desc[i]:  addr le64 | len le32 | flags le16 | next le16     (16 bytes)
 *   avail:    flags le16 | idx le16 | ring[size] le16 | used_event le16
 *   used:     flags le16 | idx le16 | ring[size] {id le32, len le32} | avail_event le16
 */
#define DESC_SIZE      16u
#define AVAIL_IDX_OFF  2u
#define AVAIL_RING_OFF 4u
#define USED_IDX_OFF   2u
#define USED_RING_OFF  4u
#define USED_ELEM_SIZE 8u
/* Spec 2.7.2's alignment of each ring. */
#define DESC_ALIGN  16u
#define AVAIL_ALIGN 2u
#define USED_ALIGN  4u
/*
 * An indirect table's next field is 16-bit, so 2^16 entries would be
 * addressable; we take at most VIRTQ_MAX_SIZE, the largest queue's worth.
 * What a chain can use is bounded tighter anyway: VIRTQ_MAX_IOV buffers of
 * non-zero length.
 */
#define INDIRECT_MAX_ENTRIES VIRTQ_MAX_SIZE
/* Regions one ring or indirect table may span when checked (rings are small). */
#define CHECK_IOV 64u

/* One non-empty buffer of a chain, as the driver described it. */
struct piece {
	uint64_t addr;
	uint32_t len;
	bool write;
};

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

void virtq_init(struct virtq *q, struct backend_host *host)
{
	memset(q, 0, sizeof(*q));
	q->host = host;
}

void virtq_reset(struct virtq *q)
{
	virtq_init(q, q->host);
}

/* Error paths only: says which ring access failed in front of the memory table's reason. */
__attribute__((format(printf, 3, 4), cold)) static int context(struct mpdev_error *err, int ret,
							       const char *fmt, ...)
{
	struct mpdev_error why;
	char what[128];
	va_list ap;

	if (!err)
		return ret;
	why = *err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return mpdev_error_set(err, -ret, "%s: %s", what, why.msg);
}

static int rd16(struct virtq *q, uint64_t gpa, uint16_t *v, struct mpdev_error *err)
{
	uint16_t le = 0;
	int ret = q->host->dma_read(q->host, gpa, &le, sizeof(le), err);

	*v = ret == 0 ? le16toh(le) : 0;
	return ret;
}

static int wr16(struct virtq *q, uint64_t gpa, uint16_t v, struct mpdev_error *err)
{
	uint16_t le = htole16(v);

	return q->host->dma_write(q->host, gpa, &le, sizeof(le), err);
}

/* Whether [gpa, gpa + len) is all guest memory (writable for write), without copying. */
static int range_ok(struct virtq *q, uint64_t gpa, uint64_t len, bool write, const char *what,
		    struct mpdev_error *err)
{
	struct iovec iov[CHECK_IOV];
	struct mpdev_error why;
	unsigned n;
	int ret = q->host->dma_iov(q->host, gpa, len, write, iov, CHECK_IOV, &n, &why);

	if (ret < 0)
		return mpdev_error_set(err, -ret, "%s at 0x%llx (%llu bytes): %s", what,
				       (unsigned long long)gpa, (unsigned long long)len, why.msg);
	return 0;
}

static int check_ring(struct virtq *q, uint64_t gpa, uint64_t len, uint64_t align, bool write,
		      const char *what, struct mpdev_error *err)
{
	if (gpa & (align - 1))
		return mpdev_error_set(err, EINVAL, "%s at 0x%llx is not %llu-byte aligned", what,
				       (unsigned long long)gpa, (unsigned long long)align);
	return range_ok(q, gpa, len, write, what, err);
}

int virtq_enable(struct virtq *q, struct mpdev_error *err)
{
	int ret;

	q->ready = false;
	if (!q->size || (q->size & (q->size - 1)) || q->size > VIRTQ_MAX_SIZE)
		return mpdev_error_set(err, EINVAL,
				       "queue size %u: must be a power of 2 from 1 to %u", q->size,
				       VIRTQ_MAX_SIZE);
	if (!q->host || !q->host->dma_read || !q->host->dma_write || !q->host->dma_iov)
		return mpdev_error_set(err, ENOSYS, "no guest memory access for the queue");
	/* The event idx fields are checked whether or not negotiated: the spec sizes them in. */
	ret = check_ring(q, q->desc_gpa, VIRTQ_DESC_BYTES(q->size), DESC_ALIGN, false,
			 "the descriptor table", err);
	if (ret == 0)
		ret = check_ring(q, q->avail_gpa, VIRTQ_AVAIL_BYTES(q->size), AVAIL_ALIGN, false,
				 "the available ring", err);
	if (ret == 0)
		ret = check_ring(q, q->used_gpa, VIRTQ_USED_BYTES(q->size), USED_ALIGN, true,
				 "the used ring", err);
	if (ret < 0)
		return ret;
	/* The indexes stay as they are: 0 after reset, or what a restore set. */
	q->signalled_valid = false;
	q->ready = true;
	return 0;
}

static int read_desc(struct virtq *q, uint64_t table, uint32_t i, struct desc *d,
		     struct mpdev_error *err)
{
	uint8_t raw[DESC_SIZE];
	uint64_t a;
	uint32_t l;
	uint16_t f, n;
	/* One copy out of guest memory; everything after looks at the copy only. */
	int ret =
		q->host->dma_read(q->host, table + (uint64_t)i * DESC_SIZE, raw, sizeof(raw), err);

	if (ret < 0)
		return ret;
	memcpy(&a, raw, 8);
	memcpy(&l, raw + 8, 4);
	memcpy(&f, raw + 12, 2);
	memcpy(&n, raw + 14, 2);
	d->addr = le64toh(a);
	d->len = le32toh(l);
	d->flags = le16toh(f);
	d->next = le16toh(n);
	return 0;
}

/* The walk of one chain: where descriptors come from and what was seen so far. */
struct walk {
	uint16_t head;
	uint64_t table;	  /* the descriptor table being walked */
	uint32_t entries; /* its entries */
	bool indirect;	  /* inside an indirect table */
	unsigned seen;	  /* descriptors of the current table visited */
	unsigned n_pieces;
	bool seen_write;
	uint64_t out_len, in_len;
	struct piece p[VIRTQ_MAX_IOV];
};

static int take_buffer(struct walk *w, const struct desc *d, uint16_t head, struct mpdev_error *err)
{
	bool write = d->flags & VIRTQ_DESC_F_WRITE;

	if (!write && w->seen_write)
		return mpdev_error_set(
			err, EINVAL, "chain %u: a device-readable descriptor after a writable one",
			head);
	w->seen_write |= write;
	if (write)
		w->in_len += d->len;
	else
		w->out_len += d->len;
	/* Each step adds < 2^32 to a sum <= VIRTQ_MAX_CHAIN_BYTES: no wrap in 64 bits. */
	if (w->out_len + w->in_len > VIRTQ_MAX_CHAIN_BYTES)
		return mpdev_error_set(err, EINVAL, "chain %u: more than %llu bytes", head,
				       (unsigned long long)VIRTQ_MAX_CHAIN_BYTES);
	if (!d->len)
		return 0; /* allowed, and nothing to map */
	if (w->n_pieces == VIRTQ_MAX_IOV)
		return mpdev_error_set(err, E2BIG, "chain %u: more than %u buffers", head,
				       VIRTQ_MAX_IOV);
	w->p[w->n_pieces++] = (struct piece){ .addr = d->addr, .len = d->len, .write = write };
	return 0;
}

static int enter_indirect(struct virtq *q, struct walk *w, const struct desc *d, uint16_t head,
			  struct mpdev_error *err)
{
	int ret;

	if (!q->indirect)
		return mpdev_error_set(err, EINVAL,
				       "chain %u: indirect descriptor, but INDIRECT_DESC was not "
				       "negotiated",
				       head);
	if (w->indirect)
		return mpdev_error_set(err, EINVAL, "chain %u: nested indirect descriptor", head);
	/* Spec 2.7.5.3.1: the driver must not set both. */
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return mpdev_error_set(err, EINVAL,
				       "chain %u: descriptor is both INDIRECT and NEXT", head);
	if (!d->len || d->len % DESC_SIZE)
		return mpdev_error_set(err, EINVAL,
				       "chain %u: indirect table of %u bytes (a non-zero multiple "
				       "of %u)",
				       head, d->len, DESC_SIZE);
	if (d->len / DESC_SIZE > INDIRECT_MAX_ENTRIES)
		return mpdev_error_set(err, EINVAL,
				       "chain %u: indirect table of %u entries (at most %u)", head,
				       d->len / DESC_SIZE, INDIRECT_MAX_ENTRIES);
	ret = range_ok(q, d->addr, d->len, false, "indirect table", err);
	if (ret < 0)
		return ret;
	w->table = d->addr;
	w->entries = d->len / DESC_SIZE;
	w->indirect = true;
	w->seen = 0;
	return 0;
}

/* Reads and checks the whole chain at head into w; touches no buffer. */
static int walk_chain(struct virtq *q, uint16_t head, struct walk *w, struct mpdev_error *err)
{
	uint32_t i = head;
	struct desc d;
	int ret;

	w->head = head;
	w->table = q->desc_gpa;
	w->entries = q->size;
	w->indirect = false;
	w->seen = 0;
	w->n_pieces = 0;
	w->seen_write = false;
	w->out_len = w->in_len = 0;
	for (;;) {
		if (i >= w->entries)
			return mpdev_error_set(
				err, EINVAL, "chain %u: descriptor index %u beyond the %s of %u",
				head, i, w->indirect ? "indirect table" : "queue size", w->entries);
		/* Each descriptor of a table at most once: more is a loop. */
		if (++w->seen > w->entries)
			return mpdev_error_set(err, EINVAL,
					       "chain %u: more than %u descriptors (a loop)", head,
					       w->entries);
		ret = read_desc(q, w->table, i, &d, err);
		if (ret < 0)
			return context(err, ret, "chain %u: %s %u", head,
				       w->indirect ? "indirect descriptor" : "descriptor", i);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			ret = enter_indirect(q, w, &d, head, err);
			if (ret < 0)
				return ret;
			i = 0;
			continue;
		}
		ret = take_buffer(w, &d, head, err);
		if (ret < 0)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

/* Maps every buffer of w into c; nothing of c is valid on failure. */
static int map_chain(struct virtq *q, const struct walk *w, struct virtq_chain *c,
		     struct mpdev_error *err)
{
	unsigned n = 0;

	c->n_out = c->n_in = 0;
	for (unsigned k = 0; k < w->n_pieces; k++) {
		const struct piece *p = &w->p[k];
		unsigned got;
		int ret = q->host->dma_iov(q->host, p->addr, p->len, p->write, c->iov + n,
					   VIRTQ_MAX_IOV - n, &got, err);

		if (ret == -E2BIG)
			return mpdev_error_set(
				err, E2BIG,
				"chain %u: more than %u iovecs (buffer %u splits at a "
				"memory region boundary)",
				w->head, VIRTQ_MAX_IOV, k);
		if (ret < 0)
			return context(err, ret, "chain %u: buffer %u", w->head, k);
		n += got;
		if (p->write)
			c->n_in += got;
		else
			c->n_out += got;
	}
	c->out_len = w->out_len;
	c->in_len = w->in_len;
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c, struct mpdev_error *err)
{
	struct walk w;
	uint16_t avail_idx, pending, head;
	int ret;

	if (!q->ready)
		return mpdev_error_set(err, EINVAL, "the queue is not enabled");
	ret = rd16(q, q->avail_gpa + AVAIL_IDX_OFF, &avail_idx, err);
	if (ret < 0)
		return context(err, ret, "avail idx");
	pending = (uint16_t)(avail_idx - q->last_avail);
	if (!pending)
		return 0;
	if (pending > q->size)
		return mpdev_error_set(
			err, EINVAL, "avail idx %u is %u ahead of the device's %u (queue size %u)",
			avail_idx, pending, q->last_avail, q->size);
	/* The ring entries the driver wrote before it published avail idx. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	ret = rd16(q,
		   q->avail_gpa + AVAIL_RING_OFF + 2u * (uint64_t)(q->last_avail & (q->size - 1)),
		   &head, err);
	if (ret < 0)
		return context(err, ret, "avail ring entry %u", q->last_avail & (q->size - 1));
	ret = walk_chain(q, head, &w, err);
	if (ret == 0)
		ret = map_chain(q, &w, c, err);
	if (ret < 0)
		return ret;
	c->head = head;
	q->last_avail++;
	return 1;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t len, struct mpdev_error *err)
{
	uint32_t elem[2] = { htole32(head), htole32(len) };
	uint64_t slot;
	int ret;

	if (!q->ready)
		return mpdev_error_set(err, EINVAL, "the queue is not enabled");
	if (head >= q->size)
		return mpdev_error_set(err, EINVAL, "used head %u beyond the queue size %u", head,
				       q->size);
	slot = q->used_gpa + USED_RING_OFF +
	       USED_ELEM_SIZE * (uint64_t)(q->used_idx & (q->size - 1));
	ret = q->host->dma_write(q->host, slot, elem, sizeof(elem), err);
	if (ret < 0)
		return context(err, ret, "used ring entry %u", q->used_idx & (q->size - 1));
	/* The element is visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	ret = wr16(q, q->used_gpa + USED_IDX_OFF, (uint16_t)(q->used_idx + 1), err);
	if (ret < 0)
		return context(err, ret, "used idx");
	q->used_idx++;
	return 0;
}

/* virtio spec 2.7.10 (Linux's vring_need_event): whether new_idx passed event since old. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t v;
	bool valid = q->signalled_valid;
	uint16_t old = q->signalled_used;

	if (!q->ready)
		return false;
	/* used idx is written before the driver's suppression is read (pairs with the driver's). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx) {
		/* Unreadable: interrupt anyway; the driver sees its own broken ring. */
		if (rd16(q, q->avail_gpa, &v, NULL) < 0)
			return true;
		return !(v & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	if (!valid)
		return true;
	if (rd16(q, q->avail_gpa + AVAIL_RING_OFF + 2u * (uint64_t)q->size, &v, NULL) < 0)
		return true;
	return need_event(v, q->used_idx, old);
}

bool virtq_enable_notify(struct virtq *q)
{
	uint16_t idx;

	if (!q->ready)
		return false;
	if (q->event_idx &&
	    wr16(q, q->used_gpa + USED_RING_OFF + USED_ELEM_SIZE * (uint64_t)q->size, q->last_avail,
		 NULL) < 0)
		return true; /* pop again: it reports the broken ring */
	/* avail_event is visible before avail idx is read again (pairs with the driver's). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (rd16(q, q->avail_gpa + AVAIL_IDX_OFF, &idx, NULL) < 0)
		return true;
	return idx != q->last_avail;
}
