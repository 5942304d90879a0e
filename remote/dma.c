#include "dma.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma_fd.h"
#include "log.h"

#define COMP "dma"

void dma_table_init(struct dma_table *t, struct backend *backend, size_t max_regions)
{
	memset(t, 0, sizeof(*t));
	memtable_init(&t->map);
	guest_mem_init(&t->own);
	t->gm = &t->own;
	t->backend = backend;
	t->max_regions = max_regions;
	dirty_init(&t->dirty);
}

void dma_table_share(struct dma_table *t, struct guest_mem *gm)
{
	t->gm = gm ? gm : &t->own;
}

static int backend_map(struct dma_table *t, const struct memtable_entry *e, struct mpdev_error *err)
{
	int ret = guest_mem_iommu_get(t->gm, t->backend, e, err);

	if (ret == 0 && t->backend && t->backend->ops->dma_map)
		t->stats.backend_maps++;
	return ret;
}

static int backend_unmap(struct dma_table *t, const struct memtable_entry *e,
			 struct mpdev_error *err)
{
	int ret = guest_mem_iommu_put(t->gm, t->backend, e, err);

	if (ret == 0 && t->backend && t->backend->ops->dma_unmap)
		t->stats.backend_unmaps++;
	return ret;
}

static void host_unmap(struct dma_table *t, struct memtable_entry *e)
{
	if (e->host) {
		guest_mem_host_put(t->gm, e);
		t->stats.munmaps++;
	}
}

static int host_map(struct dma_table *t, struct memtable_entry *e, int fd, struct mpdev_error *err)
{
	int ret = guest_mem_host_get(t->gm, e, fd, err);

	if (ret == 0)
		t->stats.mmaps++;
	return ret;
}

/*
 * Before any region's mapping goes (backend unmap or munmap): the backend may
 * have I/O in flight (io_uring) into dma_iov addresses inside it, which must
 * finish or be cancelled first, or the kernel would complete it into memory
 * that is no longer guest RAM (or is something else by then).
 */
static void quiesce(struct dma_table *t)
{
	if (t->backend && t->backend->ops->dma_quiesce)
		t->backend->ops->dma_quiesce(t->backend);
}

/* Checks one region's shape, without its fd. */
static int check_shape(const struct dma_new_region *r, struct mpdev_error *err)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (!r->size)
		return mpdev_error_set(err, EINVAL, "region at 0x%llx has size 0",
				       (unsigned long long)r->gpa);
	if ((r->gpa | r->size | r->fd_offset) & (page - 1))
		return mpdev_error_set(
			err, EINVAL,
			"region gpa 0x%llx size 0x%llx fd offset 0x%llx: each must be "
			"a multiple of the page size 0x%llx",
			(unsigned long long)r->gpa, (unsigned long long)r->size,
			(unsigned long long)r->fd_offset, (unsigned long long)page);
	if (r->gpa + r->size - 1 < r->gpa)
		return mpdev_error_set(err, EINVAL, "region at 0x%llx size 0x%llx wraps around",
				       (unsigned long long)r->gpa, (unsigned long long)r->size);
	return 0;
}

/* Checks one region against what its fd is, and fills e (without mapping it). */
static int describe_region(const struct dma_new_region *r, const struct dma_fd_info *fi,
			   struct memtable_entry *e, struct mpdev_error *err)
{
	int ret = check_shape(r, err);

	if (ret == 0)
		ret = dma_fd_check_range(fi, r->fd_offset, r->size, r->read_only, err);
	if (ret < 0)
		return ret;
	memset(e, 0, sizeof(*e));
	e->gpa = r->gpa;
	e->size = r->size;
	e->fd_offset = r->fd_offset;
	e->read_only = r->read_only;
	e->dev = fi->dev;
	e->ino = fi->ino;
	return 0;
}

static int overlap_error(const struct memtable_entry *a, const struct memtable_entry *b,
			 struct mpdev_error *err)
{
	return mpdev_error_set(err, EEXIST,
			       "region [0x%llx, 0x%llx) overlaps region [0x%llx, 0x%llx)",
			       (unsigned long long)a->gpa, (unsigned long long)(a->gpa + a->size),
			       (unsigned long long)b->gpa, (unsigned long long)(b->gpa + b->size));
}

int dma_table_add(struct dma_table *t, const struct dma_new_region *r, struct mpdev_error *err)
{
	const struct memtable_entry *other;
	struct mpdev_error ignored;
	struct memtable_entry e;
	struct dma_fd_info fi;
	int ret;

	ret = check_shape(r, err);
	if (ret == 0)
		ret = dma_fd_inspect(r->fd, &fi, err);
	if (ret == 0)
		ret = describe_region(r, &fi, &e, err);
	if (ret < 0)
		return ret;
	other = memtable_find_overlap(&t->map, e.gpa, e.size);
	if (other)
		return overlap_error(&e, other, err);
	if (t->map.n >= t->max_regions)
		return mpdev_error_set(err, ENOSPC, "the memory table is full (%zu regions)",
				       t->max_regions);
	ret = host_map(t, &e, r->fd, err);
	if (ret < 0)
		return ret;
	ret = backend_map(t, &e, err);
	if (ret < 0)
		goto unmap_host;
	ret = memtable_insert(&t->map, &e);
	if (ret == 0) {
		log_debug(COMP, "added [0x%llx, 0x%llx)%s", (unsigned long long)e.gpa,
			  (unsigned long long)(e.gpa + e.size), e.read_only ? " read-only" : "");
		return 0;
	}
	mpdev_error_set(err, -ret, "cannot record the region: %s", strerror(-ret));
	backend_unmap(t, &e, &ignored);
unmap_host:
	host_unmap(t, &e);
	return ret;
}

int dma_table_remove(struct dma_table *t, uint64_t gpa, uint64_t size, struct mpdev_error *err)
{
	const struct memtable_entry *found = memtable_lookup(&t->map, gpa);
	struct memtable_entry e;
	int ret;

	if (!found || found->gpa != gpa)
		return mpdev_error_set(err, ENOENT, "no region starts at 0x%llx",
				       (unsigned long long)gpa);
	if (found->size != size)
		return mpdev_error_set(err, EINVAL,
				       "region at 0x%llx has size 0x%llx, not 0x%llx: regions are "
				       "removed whole",
				       (unsigned long long)gpa, (unsigned long long)found->size,
				       (unsigned long long)size);
	quiesce(t);
	/* The backend lets go first, so that nothing maps pages we unmap. */
	ret = backend_unmap(t, found, err);
	if (ret < 0)
		return ret;
	memtable_remove(&t->map, gpa, size, &e);
	host_unmap(t, &e);
	return 0;
}

void dma_table_clear(struct dma_table *t)
{
	struct mpdev_error err;

	if (t->map.n)
		quiesce(t);
	for (size_t i = 0; i < t->map.n; i++) {
		if (backend_unmap(t, &t->map.v[i], &err) < 0)
			log_error(COMP, "backend unmap of 0x%llx failed: %s",
				  (unsigned long long)t->map.v[i].gpa, err.msg);
		host_unmap(t, &t->map.v[i]);
	}
	memtable_free(&t->map);
	dirty_stop(&t->dirty);
	/* The table's own store is empty now; free its array. A shared one is the VM's. */
	guest_mem_destroy(&t->own);
}

static int cmp_gpa(const void *pa, const void *pb)
{
	const struct memtable_entry *a = pa, *b = pb;

	return a->gpa < b->gpa ? -1 : a->gpa > b->gpa;
}

/* Working state of one dma_table_set: the new entries and what happens to each. */
struct table_change {
	struct memtable_entry *next; /* the new table, sorted by gpa */
	int *fd;		     /* backing fd of next[i] */
	bool *kept;		     /* next[i] equals a live entry */
	bool *removed;		     /* live entry i is not in the new table */
	size_t n;
};

static void change_free(struct table_change *c)
{
	free(c->next);
	free(c->fd);
	free(c->kept);
	free(c->removed);
}

static int change_prepare(struct dma_table *t, const struct dma_new_region *v, size_t n,
			  struct table_change *c, struct mpdev_error *err)
{
	struct {
		struct memtable_entry e;
		int fd;
	} *sorted = NULL;
	struct dma_fd_info *infos = NULL;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	if (n > t->max_regions)
		return mpdev_error_set(err, ENOSPC, "%zu regions exceed the limit of %zu", n,
				       t->max_regions);
	c->n = n;
	c->next = calloc(n ? n : 1, sizeof(*c->next));
	c->fd = calloc(n ? n : 1, sizeof(*c->fd));
	c->kept = calloc(n ? n : 1, sizeof(*c->kept));
	c->removed = calloc(t->map.n ? t->map.n : 1, sizeof(*c->removed));
	sorted = calloc(n ? n : 1, sizeof(*sorted));
	infos = calloc(n ? n : 1, sizeof(*infos));
	if (!c->next || !c->fd || !c->kept || !c->removed || !sorted || !infos) {
		ret = mpdev_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* A table usually shares a few fds among many regions: inspect each fd once. */
	for (size_t i = 0; i < n; i++) {
		size_t k;

		ret = check_shape(&v[i], err);
		if (ret < 0)
			goto out;
		for (k = 0; k < i && v[k].fd != v[i].fd; k++)
			;
		if (k == i)
			ret = dma_fd_inspect(v[i].fd, &infos[i], err);
		else
			infos[i] = infos[k];
		if (ret == 0)
			ret = describe_region(&v[i], &infos[i], &sorted[i].e, err);
		if (ret < 0)
			goto out;
		sorted[i].fd = v[i].fd;
	}
	/* The entry is the first member, so entries sort by gpa as the pairs do. Ends are
	 * compared inclusively: a region may end at the top of the address space. */
	qsort(sorted, n, sizeof(*sorted), cmp_gpa);
	for (size_t i = 0; i < n; i++) {
		c->next[i] = sorted[i].e;
		c->fd[i] = sorted[i].fd;
		if (i && c->next[i - 1].gpa + (c->next[i - 1].size - 1) >= c->next[i].gpa) {
			ret = overlap_error(&c->next[i], &c->next[i - 1], err);
			goto out;
		}
	}
	for (size_t j = 0; j < t->map.n; j++)
		c->removed[j] = true;
	for (size_t i = 0; i < n; i++) {
		const struct memtable_entry *live = memtable_lookup(&t->map, c->next[i].gpa);

		if (live && memtable_entry_same(live, &c->next[i])) {
			c->kept[i] = true;
			c->next[i].host = live->host;
			c->removed[live - t->map.v] = false;
		}
	}
out:
	free(sorted);
	free(infos);
	return ret;
}

/* Undoes the first n backend maps of added entries and re-maps removed ones. */
static void change_rollback_backend(struct dma_table *t, struct table_change *c, size_t mapped,
				    size_t unmapped_live)
{
	struct mpdev_error e;

	for (size_t i = 0; i < mapped; i++)
		if (!c->kept[i])
			backend_unmap(t, &c->next[i], &e);
	for (size_t j = 0; j < unmapped_live; j++)
		if (c->removed[j] && backend_map(t, &t->map.v[j], &e) < 0)
			log_error(COMP, "rollback: cannot restore region 0x%llx: %s",
				  (unsigned long long)t->map.v[j].gpa, e.msg);
}

int dma_table_set(struct dma_table *t, const struct dma_new_region *v, size_t n,
		  struct mpdev_error *err)
{
	struct table_change c;
	struct memtable next;
	size_t i = 0, j = 0, added = 0, removed = 0;
	int ret;

	ret = change_prepare(t, v, n, &c, err);
	if (ret < 0)
		goto out;
	/* 1. The remote's own mappings of what is new. */
	for (i = 0; i < n; i++) {
		if (c.kept[i])
			continue;
		ret = host_map(t, &c.next[i], c.fd[i], err);
		if (ret < 0)
			goto unmap_new;
		added++;
	}
	/* 2. The backend: what goes away first (the new may reuse its addresses), then what is new.
	 */
	for (j = 0; j < t->map.n && !c.removed[j]; j++)
		;
	if (j < t->map.n)
		quiesce(t);
	for (j = 0; j < t->map.n; j++) {
		if (!c.removed[j])
			continue;
		ret = backend_unmap(t, &t->map.v[j], err);
		if (ret < 0) {
			change_rollback_backend(t, &c, 0, j);
			goto unmap_new;
		}
		removed++;
	}
	for (i = 0; i < n; i++) {
		if (c.kept[i])
			continue;
		ret = backend_map(t, &c.next[i], err);
		if (ret < 0) {
			change_rollback_backend(t, &c, i, t->map.n);
			i = n;
			goto unmap_new;
		}
	}
	/* 3. Commit: the new table takes over the array; removed mappings go. */
	for (j = 0; j < t->map.n; j++)
		if (c.removed[j])
			host_unmap(t, &t->map.v[j]);
	next.v = c.next;
	next.n = n;
	next.cap = n ? n : 1;
	c.next = NULL;
	memtable_free(&t->map);
	t->map = next;
	log_debug(COMP, "table set: %zu regions, %zu added, %zu removed", n, added, removed);
	ret = 0;
	goto out;

unmap_new:
	for (size_t k = 0; k < n && k < i + 1; k++)
		if (!c.kept[k])
			host_unmap(t, &c.next[k]);
out:
	change_free(&c);
	return ret;
}

/*
 * One piece of a guest range: the part inside one memory table region, as
 * the remote maps it. A walk hands them out in order.
 */
typedef void (*piece_fn)(void *ctx, uint8_t *host, uint64_t len);

/*
 * Walks [gpa, gpa + len) region by region: the whole range must be mapped,
 * writable for a write, in at most max pieces. With piece
 * NULL it only checks; a caller checks first and then walks again with its
 * piece function, so a refused range touches nothing. what names the access
 * in the words ("read", "writable buffer"). Returns the number of pieces.
 * dma_read/dma_write and dma_iov share it, so the three refuse alike.
 */
static int walk(struct dma_table *t, uint64_t gpa, uint64_t len, bool write, const char *what,
		unsigned max, piece_fn piece, void *ctx, struct mpdev_error *err)
{
	uint64_t cur = gpa, left = len;
	unsigned k = 0;

	if (len && gpa + len - 1 < gpa)
		return mpdev_error_set(err, EFAULT, "%llu bytes at 0x%llx wrap around",
				       (unsigned long long)len, (unsigned long long)gpa);
	while (left) {
		const struct memtable_entry *e = memtable_lookup(&t->map, cur);
		uint64_t chunk;

		if (!e)
			return mpdev_error_set(
				err, EFAULT,
				"guest address 0x%llx (in a %llu-byte %s at 0x%llx) is "
				"not in the memory table",
				(unsigned long long)cur, (unsigned long long)len, what,
				(unsigned long long)gpa);
		if (write && e->read_only)
			return mpdev_error_set(err, EACCES,
					       "guest address 0x%llx (in a %llu-byte %s at 0x%llx) "
					       "is in a read-only region",
					       (unsigned long long)cur, (unsigned long long)len,
					       what, (unsigned long long)gpa);
		if (k == max)
			return mpdev_error_set(
				err, E2BIG, "%llu bytes at 0x%llx span more than %u regions",
				(unsigned long long)len, (unsigned long long)gpa, max);
		k++;
		chunk = e->gpa + e->size - cur; /* cannot overflow: cur is inside e */
		if (chunk > left)
			chunk = left;
		if (piece)
			piece(ctx, (uint8_t *)e->host + (cur - e->gpa), chunk);
		cur += chunk;
		left -= chunk;
	}
	return (int)k;
}

static void note_access(struct dma_table *t, bool write, uint64_t len)
{
	if (write) {
		t->stats.writes++;
		t->stats.bytes_written += len;
	} else {
		t->stats.reads++;
		t->stats.bytes_read += len;
	}
}

struct copy_ctx {
	uint8_t *buf;
	bool write;
};

static void copy_piece(void *ctx, uint8_t *host, uint64_t len)
{
	struct copy_ctx *c = ctx;

	if (c->write)
		memcpy(host, c->buf, len);
	else
		memcpy(c->buf, host, len);
	c->buf += len;
}

static int access_checked(struct dma_table *t, uint64_t gpa, uint8_t *buf, size_t len, bool write,
			  struct mpdev_error *err)
{
	struct copy_ctx c = { buf, write };
	const char *what = write ? "write" : "read";
	/* No bound on the pieces: a copy may span the whole table. */
	int ret = walk(t, gpa, len, write, what, UINT_MAX, NULL, NULL, err);

	if (ret < 0) {
		t->stats.faults++;
		return ret;
	}
	/* Checked whole first: a refused access copies nothing at all. */
	walk(t, gpa, len, write, what, UINT_MAX, copy_piece, &c, err);
	note_access(t, write, len);
	return 0;
}

int dma_read(struct dma_table *t, uint64_t gpa, void *buf, size_t len, struct mpdev_error *err)
{
	return access_checked(t, gpa, buf, len, false, err);
}

int dma_write(struct dma_table *t, uint64_t gpa, const void *buf, size_t len,
	      struct mpdev_error *err)
{
	int ret = access_checked(t, gpa, (uint8_t *)buf, len, true, err);

	if (ret == 0)
		dirty_note_write(&t->dirty, gpa, len);
	return ret;
}

static void iov_piece(void *ctx, uint8_t *host, uint64_t len)
{
	struct iovec **next = ctx;

	(*next)->iov_base = host;
	(*next)->iov_len = (size_t)len;
	(*next)++;
}

int dma_iov(struct dma_table *t, uint64_t gpa, uint64_t len, bool write, struct iovec *iov,
	    unsigned max, unsigned *n, struct mpdev_error *err)
{
	const char *what = write ? "writable buffer" : "readable buffer";
	struct iovec *next = iov;
	int ret;

	*n = 0;
	ret = walk(t, gpa, len, write, what, max, NULL, NULL, err);
	if (ret < 0) {
		t->stats.faults++;
		return ret;
	}
	/* Checked whole first: a refused range fills nothing. */
	walk(t, gpa, len, write, what, max, iov_piece, &next, err);
	*n = (unsigned)(next - iov);
	note_access(t, write, len);
	if (write && len)
		dirty_note_write(&t->dirty, gpa, len);
	return 0;
}
