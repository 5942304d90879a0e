/* The memory-table requests: MemTableSet (chunked), MemRegionAdd, MemRegionRemove. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dma_fd.h"
#include "fdrelease.h"
#include "log.h"
#include "session_handlers.h"

#define COMP "remote"

static void pending_drop(struct session_pending_table *p)
{
	for (size_t i = 0; i < p->nfds; i++)
		fd_release(p->fds[i]);
	free(p->regions);
	free(p->fds);
	memset(p, 0, sizeof(*p));
}

void session_mem_release(struct session *s)
{
	pending_drop(&s->pending);
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *nv;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	nv = realloc(*v, ncap * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

static int check_fd_index(const Mpdev__MemRegion *r, size_t i, size_t nfds, struct mpdev_error *err)
{
	if (r->fd_index >= nfds)
		return mpdev_error_set(err, EINVAL,
				       "region %zu names descriptor %u but the message carries %zu",
				       i, r->fd_index, nfds);
	return 0;
}

/*
 * Appends one chunk's regions and descriptors to the pending table. Each
 * descriptor is checked as it arrives (only sealed memfds can back guest
 * memory), so that the table never holds anything a close could block on,
 * and never more than max_fds of them.
 */
static int pending_append(struct session_pending_table *p, const Mpdev__MemTableSet *set,
			  struct wire_msg *m, unsigned max_fds, struct mpdev_error *err)
{
	bool used[MPDEV_MAX_FDS_PER_MSG] = { false };
	size_t base = p->nfds;

	for (size_t i = 0; i < set->n_regions; i++) {
		if (!set->regions[i])
			return mpdev_error_set(err, EINVAL, "region %zu is empty", i);
		if (check_fd_index(set->regions[i], i, m->nfds, err) < 0)
			return -EINVAL;
		used[set->regions[i]->fd_index] = true;
	}
	/* A descriptor that no region names is a sender's mistake, not something to keep. */
	for (size_t i = 0; i < m->nfds; i++)
		if (!used[i])
			return mpdev_error_set(err, EINVAL,
					       "descriptor %zu is not used by any region", i);
	if (p->n + set->n_regions > MPDEV_MAX_MEM_REGIONS)
		return mpdev_error_set(err, ENOSPC,
				       "memory table of %zu+ regions exceeds the limit of %u",
				       p->n + set->n_regions, MPDEV_MAX_MEM_REGIONS);
	if (p->nfds + m->nfds > max_fds)
		return mpdev_error_set(err, ENOSPC,
				       "a chunked memory table may hold at most %u descriptors "
				       "until its last chunk; this chunk makes it %zu",
				       max_fds, p->nfds + m->nfds);
	for (size_t i = 0; i < m->nfds; i++) {
		struct mpdev_error why = { 0 };
		struct dma_fd_info fi;
		int r = dma_fd_inspect(m->fds[i], &fi, &why);

		if (r < 0)
			return mpdev_error_set(err, -r, "descriptor %zu: %s", i, why.msg);
	}
	if (grow((void **)&p->regions, &p->cap, p->n + set->n_regions, sizeof(*p->regions)) < 0 ||
	    grow((void **)&p->fds, &p->fds_cap, p->nfds + m->nfds, sizeof(*p->fds)) < 0)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < m->nfds; i++)
		p->fds[p->nfds++] = wire_take_fd(m, i);
	for (size_t i = 0; i < set->n_regions; i++) {
		const Mpdev__MemRegion *r = set->regions[i];

		p->regions[p->n++] = (struct dma_new_region){ .gpa = r->gpa,
							      .size = r->size,
							      .fd_offset = r->fd_offset,
							      .read_only = r->read_only,
							      .fd = p->fds[base + r->fd_index] };
	}
	return 0;
}

int handle_mem_table_set(struct session *s, struct wire_msg *m, struct session_reply *rep,
			 struct mpdev_error *err)
{
	const Mpdev__MemTableSet *set = m->env->mem_table_set;
	struct session_pending_table *p = &s->pending;
	int r;

	r = pending_append(p, set, m, s->max_table_fds, err);
	if (r == 0 && set->more) {
		p->active = true;
		return 0;
	}
	if (r == 0)
		r = devops_mem_set(s, p->regions, p->n, err);
	/* Applied or refused, the chunks are done with; the remote's mappings keep the memory. */
	pending_drop(p);
	if (r < 0)
		return r;
	log_info(COMP, "memory table set: %zu regions", s->host->dma.map.n);
	return 0;
}

static int refuse_while_pending(const struct session *s, struct mpdev_error *err)
{
	if (s->pending.active)
		return mpdev_error_set(err, EBUSY,
				       "a chunked memory table is being sent: finish it first");
	return 0;
}

int handle_mem_region_add(struct session *s, struct wire_msg *m, struct session_reply *rep,
			  struct mpdev_error *err)
{
	const Mpdev__MemRegion *r = m->env->mem_region_add->region;
	struct dma_new_region nr;
	int ret;

	if ((ret = refuse_while_pending(s, err)) < 0)
		return ret;
	if (!r)
		return mpdev_error_set(err, EINVAL, "mem_region_add without a region");
	if (m->nfds != 1)
		return mpdev_error_set(err, EINVAL, "mem_region_add carries %zu descriptors, not 1",
				       m->nfds);
	if ((ret = check_fd_index(r, 0, m->nfds, err)) < 0)
		return ret;
	nr = (struct dma_new_region){ .gpa = r->gpa,
				      .size = r->size,
				      .fd_offset = r->fd_offset,
				      .read_only = r->read_only,
				      .fd = m->fds[0] };
	/* The descriptor stays the message's: released (closed) with it, the mapping lives on. */
	ret = devops_mem_add(s, &nr, err);
	if (ret < 0)
		return ret;
	return 0;
}

int handle_mem_region_remove(struct session *s, struct wire_msg *m, struct session_reply *rep,
			     struct mpdev_error *err)
{
	const Mpdev__MemRegionRemove *rm = m->env->mem_region_remove;
	int ret;

	if ((ret = refuse_while_pending(s, err)) < 0)
		return ret;
	ret = devops_mem_remove(s, rm->gpa, rm->size, err);
	if (ret < 0)
		return ret;
	return 0;
}
