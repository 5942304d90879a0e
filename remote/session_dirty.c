/*
 * DirtyStart, DirtyStop, DirtyReport. Whose bits they are: a backend with
 * dirty ops sees its own DMA (vfio: the kernel's tracking) and is asked; a
 * backend without an IOMMU of its own (dma_map) writes guest memory only
 * through the memory table, so the remote's tracker (dirty.h) sees every
 * write; any other backend cannot say and is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirty.h"
#include "log.h"
#include "session_handlers.h"

#define COMP "remote"

enum dirty_source {
	DIRTY_SOURCE_NONE,
	DIRTY_SOURCE_REMOTE,
	DIRTY_SOURCE_BACKEND,
};

static enum dirty_source dirty_source(const struct session *s)
{
	const struct backend_ops *o = s->backend->ops;

	if (o->dirty_start && o->dirty_stop && o->dirty_report)
		return DIRTY_SOURCE_BACKEND;
	if (!o->dma_map)
		return DIRTY_SOURCE_REMOTE;
	return DIRTY_SOURCE_NONE;
}

bool session_dirty_supported(const struct session *s)
{
	return dirty_source(s) != DIRTY_SOURCE_NONE;
}

/* Not offered in the handshake then; this answers a peer that asks anyway. */
static int refuse(const struct session *s, struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOTSUP, "device '%s' cannot track the pages it writes",
			       s->info.name);
}

int handle_dirty_start(struct session *s, struct wire_msg *m, struct session_reply *rep,
		       struct mpdev_error *err)
{
	const Mpdev__DirtyStart *ds = m->env->dirty_start;
	enum dirty_source src = dirty_source(s);
	struct backend_dirty_range *v;
	int r = 0;

	if (src == DIRTY_SOURCE_NONE)
		return refuse(s, err);
	/* Bounded before anything is allocated for them. */
	if (ds->n_ranges > DIRTY_MAX_RANGES)
		return mpdev_error_set(err, ENOSPC, "%zu ranges: at most %u", ds->n_ranges,
				       DIRTY_MAX_RANGES);
	v = calloc(ds->n_ranges ? ds->n_ranges : 1, sizeof(*v));
	if (!v)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < ds->n_ranges && r == 0; i++) {
		const Mpdev__IovaRange *ir = ds->ranges[i];

		/* [0, UINT64_MAX] has no size in 64 bits: no VMM tracks all of it. */
		if (ir->last < ir->start || (ir->start == 0 && ir->last == UINT64_MAX))
			r = mpdev_error_set(err, EINVAL, "range %zu is [0x%llx, 0x%llx]", i,
					    (unsigned long long)ir->start,
					    (unsigned long long)ir->last);
		v[i].iova = ir->start;
		v[i].size = ir->last - ir->start + 1;
	}
	if (r == 0)
		r = src == DIRTY_SOURCE_BACKEND
			    ? s->backend->ops->dirty_start(s->backend, v, ds->n_ranges,
							   ds->page_size, err)
			    : dirty_start(&s->host->dma.dirty, v, ds->n_ranges, ds->page_size, err);
	free(v);
	if (r < 0)
		return r;
	log_info(COMP, "dirty tracking started: %zu ranges, page size 0x%llx", ds->n_ranges,
		 (unsigned long long)ds->page_size);
	return 0;
}

int handle_dirty_stop(struct session *s, struct wire_msg *m, struct session_reply *rep,
		      struct mpdev_error *err)
{
	int r;

	switch (dirty_source(s)) {
	case DIRTY_SOURCE_BACKEND:
		r = s->backend->ops->dirty_stop(s->backend, err);
		if (r < 0)
			return r;
		break;
	case DIRTY_SOURCE_REMOTE:
		dirty_stop(&s->host->dma.dirty);
		break;
	default:
		return refuse(s, err);
	}
	return 0;
}

int handle_dirty_report(struct session *s, struct wire_msg *m, struct session_reply *rep,
			struct mpdev_error *err)
{
	/* One reply's worth; the loop is single-threaded and a report is answered at once. */
	static uint8_t bitmap[MPDEV_DIRTY_BITMAP_MAX_BYTES];
	const Mpdev__DirtyReport *dr = m->env->dirty_report;
	enum dirty_source src = dirty_source(s);
	Mpdev__DirtyBitmap *body = session_reply_alloc(rep, sizeof(*body));
	uint64_t pages;
	size_t len;
	int r;

	if (src == DIRTY_SOURCE_NONE)
		return refuse(s, err);
	if (!body)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	mpdev__dirty_bitmap__init(body);
	/* The size of the answer needs a sane page size; the rest is checked by who reports. */
	if (dr->page_size < DIRTY_MIN_PAGE_SIZE || (dr->page_size & (dr->page_size - 1)))
		return mpdev_error_set(err, EINVAL,
				       "page size 0x%llx: a power of two of at least 0x%x",
				       (unsigned long long)dr->page_size, DIRTY_MIN_PAGE_SIZE);
	pages = dr->size >> __builtin_ctzll(dr->page_size);
	if (pages > MPDEV_DIRTY_REPORT_MAX_PAGES)
		return mpdev_error_set(err, E2BIG,
				       "%llu pages in one report: at most %llu pages fit a reply; "
				       "split the range",
				       (unsigned long long)pages,
				       (unsigned long long)MPDEV_DIRTY_REPORT_MAX_PAGES);
	len = (size_t)dirty_bitmap_bytes(pages);
	memset(bitmap, 0, len);
	if (src == DIRTY_SOURCE_BACKEND) {
		r = s->backend->ops->dirty_report(s->backend, dr->iova, dr->size, dr->page_size,
						  bitmap, len, err);
		if (r == 0)
			s->host->dma.dirty.stats.reports++;
	} else {
		r = dirty_report(&s->host->dma.dirty, dr->iova, dr->size, dr->page_size, bitmap,
				 len, err);
	}
	if (r < 0)
		return r;
	body->bitmap.data = bitmap;
	body->bitmap.len = len;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_DIRTY_BITMAP;
	rep->env.dirty_bitmap = body;
	return 0;
}
