/*
 * The dma module: sealed-memfd regions mapped once by the remote and once by
 * the backend, incremental add/remove, diff-applied table sets that roll back
 * completely on any failure, and bounds-checked guest-memory access. The
 * backend is a fake IOMMU with fault injection; no sockets, no other process.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma.h"
#include "fail_nth.h"
#include "testutil.h"

#define MAX_FAKE 64
#define MAX_SNAP 32
#define TOP	 UINT64_MAX

static uint64_t pg(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ---- the fake backend: an IOMMU that records its mappings ---- */

struct fake_mapping {
	uint64_t iova, size;
	void *vaddr;
	bool read_only;
};

struct fake {
	struct backend b; /* first member: the dma module sees only this */
	struct fake_mapping m[MAX_FAKE];
	size_t n;
	unsigned map_calls, unmap_calls;     /* every call, failed ones included */
	unsigned fail_map_at, fail_unmap_at; /* call number to fail, 0: none */
	int fail_err;			     /* with this errno */
	unsigned faults_hit;
	/* Contract breaches: vaddr not mapped by the remote when the backend is
	 * told about it, or an unmap that describes a mapping differently. */
	unsigned violations;
};

static struct fake *fake_of(struct backend *b)
{
	return (struct fake *)b;
}

/* Whether all of [p, p + size) is mapped (mincore fails with ENOMEM if not). */
static bool remote_mapped(void *p, uint64_t size)
{
	unsigned char vec[64];
	uint64_t step = (uint64_t)sizeof(vec) * pg();

	for (uint64_t off = 0; off < size; off += step) {
		uint64_t len = size - off < step ? size - off : step;

		if (mincore((uint8_t *)p + off, len, vec) < 0)
			return false;
	}
	return true;
}

static int fake_dma_map(struct backend *b, const struct backend_dma_region *r,
			struct mpdev_error *err)
{
	struct fake *f = fake_of(b);
	uint64_t last = r->iova + r->size - 1;

	f->map_calls++;
	if (f->map_calls == f->fail_map_at) {
		f->faults_hit++;
		return mpdev_error_set(err, f->fail_err, "injected failure of dma_map call %u",
				       f->map_calls);
	}
	if (!r->size || last < r->iova || !r->vaddr || !remote_mapped(r->vaddr, r->size)) {
		f->violations++;
		return mpdev_error_set(err, EINVAL, "fake: bad dma_map");
	}
	for (size_t i = 0; i < f->n; i++) {
		uint64_t ilast = f->m[i].iova + f->m[i].size - 1;

		if (r->iova <= ilast && f->m[i].iova <= last)
			return mpdev_error_set(err, EEXIST, "fake: iova 0x%llx overlaps 0x%llx",
					       (unsigned long long)r->iova,
					       (unsigned long long)f->m[i].iova);
	}
	ck_assert_uint_lt(f->n, MAX_FAKE);
	f->m[f->n++] = (struct fake_mapping){
		.iova = r->iova, .size = r->size, .vaddr = r->vaddr, .read_only = r->read_only
	};
	return 0;
}

static int fake_dma_unmap(struct backend *b, const struct backend_dma_region *r,
			  struct mpdev_error *err)
{
	struct fake *f = fake_of(b);

	f->unmap_calls++;
	if (f->unmap_calls == f->fail_unmap_at) {
		f->faults_hit++;
		return mpdev_error_set(err, f->fail_err, "injected failure of dma_unmap call %u",
				       f->unmap_calls);
	}
	for (size_t i = 0; i < f->n; i++) {
		if (f->m[i].iova != r->iova || f->m[i].size != r->size)
			continue;
		if (f->m[i].vaddr != r->vaddr || f->m[i].read_only != r->read_only ||
		    !remote_mapped(r->vaddr, r->size))
			f->violations++;
		f->m[i] = f->m[--f->n];
		return 0;
	}
	return mpdev_error_set(err, ENOENT, "fake: nothing mapped exactly at 0x%llx size 0x%llx",
			       (unsigned long long)r->iova, (unsigned long long)r->size);
}

static void fake_get_info(struct backend *b, struct backend_device_info *info)
{
}

static int fake_region_read(struct backend *b, uint32_t index, uint64_t offset, void *data,
			    uint32_t size, struct mpdev_error *err)
{
	return -EINVAL;
}

static int fake_region_write(struct backend *b, uint32_t index, uint64_t offset, const void *data,
			     uint32_t size, struct mpdev_error *err)
{
	return -EINVAL;
}

static int fake_reset(struct backend *b, struct mpdev_error *err)
{
	return 0;
}

static void fake_destroy(struct backend *b)
{
}

static const struct backend_ops fake_ops = {
	.name = "fake-iommu",
	.get_info = fake_get_info,
	.region_read = fake_region_read,
	.region_write = fake_region_write,
	.reset = fake_reset,
	.dma_map = fake_dma_map,
	.dma_unmap = fake_dma_unmap,
	.destroy = fake_destroy,
};

/* Same device, no IOMMU: what the emulated devices look like. */
static const struct backend_ops no_dma_ops = {
	.name = "fake-emu",
	.get_info = fake_get_info,
	.region_read = fake_region_read,
	.region_write = fake_region_write,
	.reset = fake_reset,
	.destroy = fake_destroy,
};

static void fake_init(struct fake *f, const struct backend_ops *ops)
{
	memset(f, 0, sizeof(*f));
	f->b.ops = ops;
}

/* Fail the k-th dma_map (dma_unmap) call from now on (k >= 1). */
static void fake_fail_map_in(struct fake *f, unsigned k)
{
	f->fail_err = ENOSPC;
	f->fail_map_at = f->map_calls + k;
}

static void fake_fail_unmap_in(struct fake *f, unsigned k)
{
	f->fail_err = ENOSPC;
	f->fail_unmap_at = f->unmap_calls + k;
}

static void fake_disarm(struct fake *f)
{
	f->fail_map_at = f->fail_unmap_at = 0;
}

static const struct fake_mapping *fake_find(const struct fake *f, uint64_t iova)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->m[i].iova == iova)
			return &f->m[i];
	return NULL;
}

/* The backend maps exactly the table's regions, at the remote's addresses. */
static void check_fake_is_table(const struct fake *f, const struct dma_table *t)
{
	ck_assert_uint_eq(f->violations, 0);
	ck_assert_uint_eq(f->n, t->map.n);
	for (size_t i = 0; i < t->map.n; i++) {
		const struct memtable_entry *e = &t->map.v[i];
		const struct fake_mapping *m = fake_find(f, e->gpa);

		ck_assert_ptr_nonnull(m);
		ck_assert_uint_eq(m->size, e->size);
		ck_assert_ptr_eq(m->vaddr, e->host);
		ck_assert_int_eq(m->read_only, e->read_only);
	}
}

/* Every live region has exactly one mapping of the remote's; nothing else does. */
static void check_no_leak(const struct dma_table *t)
{
	ck_assert_uint_eq(t->stats.mmaps, t->stats.munmaps + t->map.n);
	for (size_t i = 0; i < t->map.n; i++) {
		ck_assert_ptr_nonnull(t->map.v[i].host);
		ck_assert(remote_mapped(t->map.v[i].host, t->map.v[i].size));
	}
}

static void check_consistent(const struct dma_table *t, const struct fake *f)
{
	check_no_leak(t);
	for (size_t i = 1; i < t->map.n; i++)
		ck_assert_uint_le(t->map.v[i - 1].gpa + (t->map.v[i - 1].size - 1),
				  t->map.v[i].gpa - 1);
	if (f)
		check_fake_is_table(f, t);
}

struct snap {
	size_t n;
	struct memtable_entry v[MAX_SNAP];
};

static void snap_take(struct snap *s, const struct dma_table *t)
{
	ck_assert_uint_le(t->map.n, MAX_SNAP);
	s->n = t->map.n;
	if (t->map.n)
		memcpy(s->v, t->map.v, t->map.n * sizeof(*s->v));
}

static void snap_check(const struct snap *s, const struct dma_table *t)
{
	ck_assert_uint_eq(t->map.n, s->n);
	for (size_t i = 0; i < s->n; i++) {
		ck_assert_uint_eq(t->map.v[i].gpa, s->v[i].gpa);
		ck_assert_uint_eq(t->map.v[i].size, s->v[i].size);
		ck_assert_uint_eq(t->map.v[i].fd_offset, s->v[i].fd_offset);
		ck_assert_int_eq(t->map.v[i].read_only, s->v[i].read_only);
		ck_assert_ptr_eq(t->map.v[i].host, s->v[i].host);
		ck_assert_uint_eq(t->map.v[i].dev, s->v[i].dev);
		ck_assert_uint_eq(t->map.v[i].ino, s->v[i].ino);
	}
}

/* ---- guest memory: sealed memfds the test maps too ---- */

struct mem {
	int fd;
	uint8_t *p;
	uint64_t size;
};

static struct mem mem_new(uint64_t pages)
{
	struct mem m = { .size = pages * pg() };

	m.fd = testutil_memfd(m.size, F_SEAL_SHRINK | F_SEAL_GROW);
	m.p = mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	ck_assert_ptr_ne(m.p, MAP_FAILED);
	for (uint64_t i = 0; i < m.size; i++)
		m.p[i] = (uint8_t)(0xa5 ^ (i >> 12));
	return m;
}

static void mem_free(struct mem *m)
{
	ck_assert_int_eq(munmap(m->p, m->size), 0);
	ck_assert_int_eq(close(m->fd), 0);
}

static struct dma_new_region reg(uint64_t gpa, uint64_t size, int fd, uint64_t fd_offset,
				 bool read_only)
{
	return (struct dma_new_region){
		.gpa = gpa, .size = size, .fd_offset = fd_offset, .read_only = read_only, .fd = fd
	};
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static uint8_t *xmalloc(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	return p;
}

/* Copies of both memfds' bytes, to see that a refused access wrote nothing. */
static uint8_t *save(const struct mem *m)
{
	uint8_t *p = xmalloc(m->size);

	memcpy(p, m->p, m->size);
	return p;
}

/* The region at gpa is the memfd's bytes at off, both ways, through the table. */
static void check_dma_roundtrip(struct dma_table *t, uint64_t gpa, uint64_t size, struct mem *m,
				uint64_t off, unsigned seed)
{
	struct mpdev_error err;
	uint8_t *want = xmalloc(size), *got = xmalloc(size);

	fill(want, size, seed);
	mpdev_error_clear(&err);
	ck_assert_int_eq(dma_write(t, gpa, want, size, &err), 0);
	ck_assert_mem_eq(m->p + off, want, size);
	fill(m->p + off, size, seed + 1);
	ck_assert_int_eq(dma_read(t, gpa, got, size, &err), 0);
	ck_assert_mem_eq(got, m->p + off, size);
	free(want);
	free(got);
}

static void check_dma_reads(struct dma_table *t, uint64_t gpa, uint64_t size, struct mem *m,
			    uint64_t off)
{
	struct mpdev_error err;
	uint8_t *got = xmalloc(size);

	ck_assert_int_eq(dma_read(t, gpa, got, size, &err), 0);
	ck_assert_mem_eq(got, m->p + off, size);
	free(got);
}

/* ---- 1. one region ---- */

START_TEST(add_and_remove_one_region)
{
	const uint64_t P = pg(), gpa = 0x4000000, gpa_ro = gpa + 0x40 * P;
	int fds = testutil_count_fds(0), fds_mem;
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	struct dma_new_region r, ro;
	const struct memtable_entry *e;
	void *host;
	uint8_t buf[512], *page_before;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(4);
	fds_mem = testutil_count_fds(0);
	page_before = save(&m);

	r = reg(gpa, 2 * P, m.fd, P, false);
	mpdev_error_clear(&err);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);
	ck_assert_uint_eq(t.stats.mmaps, 1);
	ck_assert_uint_eq(t.stats.munmaps, 0);
	ck_assert_uint_eq(t.stats.backend_maps, 1);
	ck_assert_uint_eq(t.stats.backend_unmaps, 0);
	ck_assert_uint_eq(f.map_calls, 1);
	ck_assert_uint_eq(f.unmap_calls, 0);
	ck_assert_uint_eq(t.map.n, 1);
	e = memtable_lookup(&t.map, gpa);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_eq(memtable_lookup(&t.map, gpa + 2 * P - 1), e);
	ck_assert_ptr_null(memtable_lookup(&t.map, gpa + 2 * P));
	ck_assert_ptr_null(memtable_lookup(&t.map, gpa - 1));
	ck_assert_uint_eq(e->gpa, gpa);
	ck_assert_uint_eq(e->size, 2 * P);
	ck_assert_uint_eq(e->fd_offset, P);
	ck_assert(!e->read_only);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_uint_eq(f.m[0].iova, gpa);
	ck_assert_uint_eq(f.m[0].size, 2 * P);
	ck_assert_ptr_nonnull(f.m[0].vaddr);
	ck_assert_ptr_eq(f.m[0].vaddr, e->host);
	ck_assert(!f.m[0].read_only);
	/* Its own mapping, not the test's, of the same memory. */
	ck_assert_ptr_ne(e->host, m.p + P);
	ck_assert_mem_eq(e->host, m.p + P, 2 * P);

	/* The test's writes are seen by dma_read and the other way round. */
	check_dma_roundtrip(&t, gpa, 2 * P, &m, P, 1);
	fill(buf, sizeof(buf), 9);
	ck_assert_int_eq(dma_write(&t, gpa + P - 100, buf, sizeof(buf), &err), 0);
	ck_assert_mem_eq(m.p + 2 * P - 100, buf, sizeof(buf));
	/* The memfd's first and last pages are not part of the region. */
	ck_assert_mem_eq(m.p, page_before, P);
	ck_assert_mem_eq(m.p + 3 * P, page_before + 3 * P, P);
	ck_assert_uint_eq(t.stats.faults, 0);

	ro = reg(gpa_ro, P, m.fd, 0, true);
	ck_assert_int_eq(dma_table_add(&t, &ro, &err), 0);
	ck_assert_uint_eq(t.stats.mmaps, 2);
	ck_assert_uint_eq(t.stats.backend_maps, 2);
	ck_assert_uint_eq(f.map_calls, 2);
	ck_assert_ptr_nonnull(fake_find(&f, gpa_ro));
	ck_assert(fake_find(&f, gpa_ro)->read_only);
	ck_assert(memtable_lookup(&t.map, gpa_ro)->read_only);
	fill(m.p, P, 3);
	check_dma_reads(&t, gpa_ro, P, &m, 0);
	check_consistent(&t, &f);
	/* The module keeps no descriptors of its own. */
	ck_assert_int_eq(testutil_count_fds(0), fds_mem);

	host = e->host;
	ck_assert_int_eq(dma_table_remove(&t, gpa, 2 * P, &err), 0);
	ck_assert_uint_eq(t.stats.munmaps, 1);
	ck_assert_uint_eq(t.stats.backend_unmaps, 1);
	ck_assert_uint_eq(f.unmap_calls, 1);
	ck_assert_uint_eq(f.n, 1);
	ck_assert_ptr_null(fake_find(&f, gpa));
	ck_assert_ptr_null(memtable_lookup(&t.map, gpa));
	ck_assert(!remote_mapped(host, 2 * P));
	ck_assert_int_eq(dma_read(&t, gpa, buf, 1, &err), -EFAULT);
	ck_assert_int_eq(err.code, EFAULT);

	ck_assert_int_eq(dma_table_remove(&t, gpa_ro, P, &err), 0);
	ck_assert_uint_eq(t.map.n, 0);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_uint_eq(t.stats.mmaps, 2);
	ck_assert_uint_eq(t.stats.munmaps, 2);
	ck_assert_uint_eq(t.stats.backend_maps, 2);
	ck_assert_uint_eq(t.stats.backend_unmaps, 2);
	ck_assert_uint_eq(f.violations, 0);

	dma_table_clear(&t);
	free(page_before);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 2. accessors ---- */

START_TEST(access_spans_adjacent_regions_and_refusals_copy_nothing)
{
	const uint64_t P = pg(), G = 0x1000000;
	int fds = testutil_count_fds(0), fds_mem;
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m1, m2;
	uint8_t *buf, *want, *s1, *s2;
	uint64_t faults = 0, reads = 0, writes = 0;
	/* G: [R0 m1@0][R1 m2@P, 2 pages][R2 m1@5P] hole [R3 m2@0][R4 m1@7P ro] */
	struct dma_new_region v[] = {
		reg(G, P, 0, 0, false),
		reg(G + P, 2 * P, 0, P, false),
		reg(G + 3 * P, P, 0, 5 * P, false),
		reg(G + 5 * P, P, 0, 0, false),
		reg(G + 6 * P, P, 0, 7 * P, true),
	};

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m1 = mem_new(8);
	m2 = mem_new(4);
	fds_mem = testutil_count_fds(0);
	v[0].fd = v[2].fd = v[4].fd = m1.fd;
	v[1].fd = v[3].fd = m2.fd;
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_eq(dma_table_add(&t, &v[i], &err), 0);
	buf = xmalloc(8 * P);
	want = xmalloc(8 * P);

	/* Two regions, two memfds. */
	fill(want, P, 11);
	ck_assert_int_eq(dma_write(&t, G + P / 2, want, P, &err), 0);
	writes++;
	ck_assert_mem_eq(m1.p + P / 2, want, P / 2);
	ck_assert_mem_eq(m2.p + P, want + P / 2, P / 2);
	ck_assert_int_eq(dma_read(&t, G + P / 2, buf, P, &err), 0);
	reads++;
	ck_assert_mem_eq(buf, want, P);

	/* Three regions: m1 at 0, m2, m1 again at another offset. */
	fill(want, 2 * P + 32, 12);
	ck_assert_int_eq(dma_write(&t, G + P - 16, want, 2 * P + 32, &err), 0);
	writes++;
	ck_assert_mem_eq(m1.p + P - 16, want, 16);
	ck_assert_mem_eq(m2.p + P, want + 16, 2 * P);
	ck_assert_mem_eq(m1.p + 5 * P, want + 16 + 2 * P, 16);
	/* And read the whole run of four pages back from the memfds' view. */
	fill(m1.p, P, 13);
	fill(m2.p + P, 2 * P, 14);
	fill(m1.p + 5 * P, P, 15);
	ck_assert_int_eq(dma_read(&t, G, buf, 4 * P, &err), 0);
	reads++;
	ck_assert_mem_eq(buf, m1.p, P);
	ck_assert_mem_eq(buf + P, m2.p + P, 2 * P);
	ck_assert_mem_eq(buf + 3 * P, m1.p + 5 * P, P);
	ck_assert_uint_eq(t.stats.bytes_read, P + 4 * P);
	ck_assert_uint_eq(t.stats.bytes_written, P + 2 * P + 32);

	/* A hole in the middle: nothing written on either side of it. */
	s1 = save(&m1);
	s2 = save(&m2);
	fill(want, 2 * P, 16);
	ck_assert_int_eq(dma_write(&t, G + 3 * P + P / 2, want, 2 * P, &err), -EFAULT);
	ck_assert_int_eq(err.code, EFAULT);
	faults++;
	ck_assert_int_eq(dma_write(&t, G + 2 * P, want, 3 * P, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_write(&t, G + 4 * P, want, 1, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_write(&t, G - 1, want, 2, &err), -EFAULT);
	faults++;
	ck_assert_mem_eq(m1.p, s1, m1.size);
	ck_assert_mem_eq(m2.p, s2, m2.size);
	/* Reads across it copy nothing either. */
	memset(buf, 0x5c, 3 * P);
	ck_assert_int_eq(dma_read(&t, G + 3 * P, buf, 3 * P, &err), -EFAULT);
	faults++;
	for (uint64_t i = 0; i < 3 * P; i++)
		ck_assert_uint_eq(buf[i], 0x5c);

	/* A write touching the read-only region: -EACCES, nothing written. */
	ck_assert_int_eq(dma_write(&t, G + 5 * P + 8, want, P, &err), -EACCES);
	ck_assert_int_eq(err.code, EACCES);
	faults++;
	ck_assert_int_eq(dma_write(&t, G + 6 * P, want, 1, &err), -EACCES);
	faults++;
	ck_assert_mem_eq(m1.p, s1, m1.size);
	ck_assert_mem_eq(m2.p, s2, m2.size);
	/* Reading it is fine. */
	ck_assert_int_eq(dma_read(&t, G + 5 * P, buf, 2 * P, &err), 0);
	reads++;
	ck_assert_mem_eq(buf, m2.p, P);
	ck_assert_mem_eq(buf + P, m1.p + 7 * P, P);

	/* Zero-length accesses succeed and touch nothing. */
	ck_assert_int_eq(dma_read(&t, G, buf, 0, &err), 0);
	reads++;
	ck_assert_int_eq(dma_write(&t, G + 6 * P, want, 0, &err), 0);
	writes++;
	ck_assert_int_eq(dma_read(&t, TOP, buf, 0, &err), 0);
	reads++;
	ck_assert_mem_eq(m1.p, s1, m1.size);

	/* Ranges that wrap around the address space. */
	ck_assert_int_eq(dma_read(&t, TOP, buf, 2, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_write(&t, TOP - 10, want, 100, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_read(&t, G, buf, SIZE_MAX, &err), -EFAULT);
	faults++;

	ck_assert_uint_eq(t.stats.faults, faults);
	ck_assert_uint_eq(t.stats.reads, reads);
	ck_assert_uint_eq(t.stats.writes, writes);
	ck_assert_mem_eq(m1.p, s1, m1.size);
	ck_assert_mem_eq(m2.p, s2, m2.size);
	check_consistent(&t, &f);
	ck_assert_int_eq(testutil_count_fds(0), fds_mem);

	dma_table_clear(&t);
	free(s1);
	free(s2);
	free(buf);
	free(want);
	mem_free(&m1);
	mem_free(&m2);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

START_TEST(region_at_the_top_of_the_address_space)
{
	const uint64_t P = pg(), gpa = TOP - 2 * P + 1;
	int fds = testutil_count_fds(0);
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	struct dma_new_region r;
	uint8_t buf[32], want[32], *saved;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(3);
	r = reg(gpa, 2 * P, m.fd, 0, false);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);
	/* And one at the bottom, which an access wrapping around would reach. */
	r = reg(0, P, m.fd, 2 * P, false);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);
	check_dma_roundtrip(&t, 0, P, &m, 2 * P, 20);
	check_dma_roundtrip(&t, gpa, 2 * P, &m, 0, 21);
	fill(want, sizeof(want), 22);
	ck_assert_int_eq(dma_write(&t, TOP - 31, want, 32, &err), 0);
	ck_assert_mem_eq(m.p + 2 * P - 32, want, 32);
	ck_assert_int_eq(dma_read(&t, TOP, buf, 1, &err), 0);
	ck_assert_uint_eq(buf[0], want[31]);

	/* Through the top and on at 0: refused although both ends are mapped. */
	saved = save(&m);
	memset(buf, 0x3c, sizeof(buf));
	ck_assert_int_eq(dma_read(&t, TOP - 15, buf, 32, &err), -EFAULT);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0x3c);
	ck_assert_int_eq(dma_write(&t, TOP - 15, want, 32, &err), -EFAULT);
	ck_assert_int_eq(dma_write(&t, TOP, want, 2, &err), -EFAULT);
	ck_assert_mem_eq(m.p, saved, m.size);
	ck_assert_uint_eq(t.stats.faults, 3);
	check_consistent(&t, &f);

	ck_assert_int_eq(dma_table_remove(&t, gpa, 2 * P, &err), 0);
	ck_assert_int_eq(dma_table_remove(&t, 0, P, &err), 0);
	ck_assert_uint_eq(f.n, 0);
	dma_table_clear(&t);
	free(saved);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 3. table sets apply the difference ---- */

struct counts {
	uint64_t mmaps, munmaps, bmaps, bunmaps;
};

static struct counts counts_of(const struct dma_table *t)
{
	return (struct counts){ t->stats.mmaps, t->stats.munmaps, t->stats.backend_maps,
				t->stats.backend_unmaps };
}

static void check_delta(const struct dma_table *t, const struct counts *before, uint64_t maps,
			uint64_t unmaps)
{
	ck_assert_uint_eq(t->stats.mmaps - before->mmaps, maps);
	ck_assert_uint_eq(t->stats.munmaps - before->munmaps, unmaps);
	ck_assert_uint_eq(t->stats.backend_maps - before->bmaps, maps);
	ck_assert_uint_eq(t->stats.backend_unmaps - before->bunmaps, unmaps);
}

static void *host_at(const struct dma_table *t, uint64_t gpa)
{
	const struct memtable_entry *e = memtable_lookup(&t->map, gpa);

	ck_assert_ptr_nonnull(e);
	return e->host;
}

START_TEST(set_maps_and_unmaps_only_the_difference)
{
	const uint64_t P = pg(), A = 0x100000, B = 0x200000, C = 0x300000, D = 0x380000;
	int fds = testutil_count_fds(0), fds_mem, dupfd;
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m1, m2, m3;
	struct counts c;
	void *host_a, *host_b, *host_d;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m1 = mem_new(16);
	m2 = mem_new(4);
	m3 = mem_new(2);
	fds_mem = testutil_count_fds(0);

	struct dma_new_region first[] = {
		reg(C, P, m2.fd, 0, true),
		reg(A, 2 * P, m1.fd, 0, false),
		reg(B, P, m1.fd, 4 * P, false),
	};
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, first, 3, &err), 0);
	check_delta(&t, &c, 3, 0);
	ck_assert_uint_eq(t.map.n, 3);
	ck_assert_uint_eq(t.map.v[0].gpa, A);
	ck_assert_uint_eq(t.map.v[1].gpa, B);
	ck_assert_uint_eq(t.map.v[2].gpa, C);
	check_consistent(&t, &f);
	host_a = host_at(&t, A);
	host_b = host_at(&t, B);
	check_dma_roundtrip(&t, A, 2 * P, &m1, 0, 31);
	check_dma_roundtrip(&t, B, P, &m1, 4 * P, 32);
	check_dma_reads(&t, C, P, &m2, 0);

	/* {A, B', D}: B' moves to another offset; C goes; D comes. */
	struct dma_new_region second[] = {
		reg(A, 2 * P, m1.fd, 0, false),
		reg(B, P, m1.fd, 6 * P, false),
		reg(D, 2 * P, m2.fd, 2 * P, false),
	};
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 3, &err), 0);
	check_delta(&t, &c, 2, 2);
	ck_assert_uint_eq(t.map.n, 3);
	ck_assert_ptr_eq(host_at(&t, A), host_a);
	ck_assert_ptr_null(memtable_lookup(&t.map, C));
	ck_assert_uint_eq(memtable_lookup(&t.map, B)->fd_offset, 6 * P);
	check_consistent(&t, &f);
	check_dma_roundtrip(&t, A, 2 * P, &m1, 0, 33);
	check_dma_roundtrip(&t, B, P, &m1, 6 * P, 34);
	check_dma_roundtrip(&t, D, 2 * P, &m2, 2 * P, 35);

	/* The identical table again, then permuted with another fd for the same file. */
	host_b = host_at(&t, B);
	host_d = host_at(&t, D);
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 3, &err), 0);
	check_delta(&t, &c, 0, 0);
	dupfd = dup(m1.fd);
	ck_assert_int_ge(dupfd, 0);
	struct dma_new_region permuted[] = {
		reg(D, 2 * P, m2.fd, 2 * P, false),
		reg(B, P, dupfd, 6 * P, false),
		reg(A, 2 * P, m1.fd, 0, false),
	};
	ck_assert_int_eq(dma_table_set(&t, permuted, 3, &err), 0);
	check_delta(&t, &c, 0, 0);
	ck_assert_ptr_eq(host_at(&t, A), host_a);
	ck_assert_ptr_eq(host_at(&t, B), host_b);
	ck_assert_ptr_eq(host_at(&t, D), host_d);
	ck_assert_int_eq(close(dupfd), 0);
	ck_assert_uint_eq(f.map_calls, 5);
	ck_assert_uint_eq(f.unmap_calls, 2);

	/* Only the access changes: one region out, one in. */
	second[1].read_only = true;
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 3, &err), 0);
	check_delta(&t, &c, 1, 1);
	ck_assert(fake_find(&f, B)->read_only);
	ck_assert_int_eq(dma_write(&t, B, "x", 1, &err), -EACCES);
	ck_assert_ptr_eq(host_at(&t, A), host_a);
	check_consistent(&t, &f);

	/* Only the backing file changes (same gpa, size, offset). */
	second[0] = reg(A, 2 * P, m3.fd, 0, false);
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 3, &err), 0);
	check_delta(&t, &c, 1, 1);
	check_dma_roundtrip(&t, A, 2 * P, &m3, 0, 36);
	check_consistent(&t, &f);

	/* A new region overlapping one that goes: the backend lets go first. */
	second[2] = reg(D + P, 2 * P, m2.fd, 0, false);
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 3, &err), 0);
	check_delta(&t, &c, 1, 1);
	check_dma_roundtrip(&t, D + P, 2 * P, &m2, 0, 37);
	ck_assert_ptr_null(memtable_lookup(&t.map, D));
	check_consistent(&t, &f);
	ck_assert_int_eq(testutil_count_fds(0), fds_mem);

	/* The empty table, and the table is usable again after it. */
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, NULL, 0, &err), 0);
	check_delta(&t, &c, 0, 3);
	ck_assert_uint_eq(t.map.n, 0);
	ck_assert_uint_eq(f.n, 0);
	check_no_leak(&t);
	ck_assert_int_eq(dma_table_set(&t, first, 3, &err), 0);
	ck_assert_int_eq(dma_table_add(&t,
				       &(struct dma_new_region){ .gpa = D, .size = P, .fd = m3.fd },
				       &err),
			 0);
	ck_assert_uint_eq(t.map.n, 4);
	check_consistent(&t, &f);
	check_dma_roundtrip(&t, D, P, &m3, 0, 38);

	dma_table_clear(&t);
	mem_free(&m1);
	mem_free(&m2);
	mem_free(&m3);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 4. fault injection ---- */

/*
 * The sweep's world: {A, B, C, D(ro)} in force, about to become
 * {A, B, C', E}: C' is C at another offset, D goes, E comes. Two backend
 * unmaps (C, D) and two maps (C', E).
 */
struct table_change {
	struct dma_table t;
	struct fake f;
	struct mem m1, m2, m3;
	struct dma_new_region first[4], second[4];
	struct snap before;
	struct counts c;
	struct mpdev_error err;
	/* The injector's: the fake's counters when it was armed. */
	bool unmap;
	unsigned base, faults_base;
};

/* Where the regions of the change sit. */
#define GPA_A 0x10000000ull
#define GPA_B 0x10100000ull
#define GPA_C 0x10200000ull
#define GPA_D 0x10300000ull
#define GPA_E 0x10400000ull

/* The fake as a fail-nth injector of its dma_map calls (unmap: of its dma_unmap calls). */
static void fake_arm(void *inj, unsigned long n, int err)
{
	struct table_change *x = inj;
	unsigned *calls = x->unmap ? &x->f.unmap_calls : &x->f.map_calls;
	unsigned *at = x->unmap ? &x->f.fail_unmap_at : &x->f.fail_map_at;

	fake_disarm(&x->f);
	x->base = *calls;
	x->faults_base = x->f.faults_hit;
	x->f.fail_err = err;
	*at = n ? *calls + (unsigned)n : 0;
}

static unsigned long fake_passed(const void *inj)
{
	const struct table_change *x = inj;

	return (x->unmap ? x->f.unmap_calls : x->f.map_calls) - x->base;
}

static bool fake_hit(const void *inj)
{
	const struct table_change *x = inj;

	return x->f.faults_hit != x->faults_base;
}

static const struct fail_nth_injector fake_injector = {
	.arm = fake_arm,
	.passed = fake_passed,
	.hit = fake_hit,
};

static void change_setup(struct fail_nth *nth)
{
	struct table_change *x = nth->ctx;
	const uint64_t P = pg();

	fake_init(&x->f, &fake_ops);
	dma_table_init(&x->t, &x->f.b, 16);
	x->m1 = mem_new(16);
	x->m2 = mem_new(8);
	x->m3 = mem_new(2);
	x->first[0] = reg(GPA_A, 2 * P, x->m1.fd, 0, false);
	x->first[1] = reg(GPA_B, P, x->m2.fd, 0, false);
	x->first[2] = reg(GPA_C, 2 * P, x->m1.fd, 4 * P, false);
	x->first[3] = reg(GPA_D, P, x->m3.fd, P, true);
	x->second[0] = reg(GPA_E, 3 * P, x->m2.fd, 4 * P, false);
	x->second[1] = reg(GPA_C, 2 * P, x->m1.fd, 8 * P, false);
	x->second[2] = reg(GPA_B, P, x->m2.fd, 0, false);
	x->second[3] = reg(GPA_A, 2 * P, x->m1.fd, 0, false);
	ck_assert_int_eq(dma_table_set(&x->t, x->first, 4, &x->err), 0);
	check_consistent(&x->t, &x->f);
	snap_take(&x->before, &x->t);
	x->c = counts_of(&x->t);
	nth->inj = x;
}

static int change_run(struct fail_nth *nth)
{
	struct table_change *x = nth->ctx;

	fail_nth_step(nth, "set");
	mpdev_error_clear(&x->err);
	return dma_table_set(&x->t, x->second, 4, &x->err);
}

/* Without the fault the change goes through, and the new regions work. */
static void check_changed(struct table_change *x, unsigned seed)
{
	const uint64_t P = pg();

	ck_assert_uint_eq(x->t.map.n, 4);
	ck_assert_ptr_null(memtable_lookup(&x->t.map, GPA_D));
	check_consistent(&x->t, &x->f);
	check_dma_roundtrip(&x->t, GPA_C, 2 * P, &x->m1, 8 * P, 70 + seed);
	check_dma_roundtrip(&x->t, GPA_E, 3 * P, &x->m2, 4 * P, 80 + seed);
	check_dma_roundtrip(&x->t, GPA_A, 2 * P, &x->m1, 0, 90 + seed);
	dma_table_clear(&x->t);
	ck_assert_uint_eq(x->f.n, 0);
	ck_assert_uint_eq(x->t.stats.mmaps, x->t.stats.munmaps);
}

static void change_check(struct fail_nth *nth, int ret)
{
	struct table_change *x = nth->ctx;
	const unsigned k = (unsigned)nth->n;
	const uint64_t P = pg();

	if (!nth->hit) {
		ck_assert_int_eq(ret, 0);
		check_delta(&x->t, &x->c, 2, 2);
		check_changed(x, k);
		return;
	}
	ck_assert_uint_eq(x->f.faults_hit, 1); /* a fresh fake each run: exactly one fault */
	ck_assert_int_eq(ret, -ENOSPC);
	ck_assert_int_eq(x->err.code, ENOSPC);
	ck_assert_ptr_nonnull(strstr(x->err.msg, "injected"));
	/* Everything as before: table, backend, the remote's mappings. */
	snap_check(&x->before, &x->t);
	check_consistent(&x->t, &x->f);
	ck_assert_ptr_null(memtable_lookup(&x->t.map, GPA_E));
	ck_assert_ptr_nonnull(fake_find(&x->f, GPA_D));
	ck_assert(fake_find(&x->f, GPA_D)->read_only);
	ck_assert_uint_eq(x->t.stats.mmaps - x->c.mmaps, x->t.stats.munmaps - x->c.munmaps);
	/* And the old regions still work. */
	check_dma_roundtrip(&x->t, GPA_A, 2 * P, &x->m1, 0, 40 + k);
	check_dma_roundtrip(&x->t, GPA_B, P, &x->m2, 0, 50 + k);
	check_dma_roundtrip(&x->t, GPA_C, 2 * P, &x->m1, 4 * P, 60 + k);
	check_dma_reads(&x->t, GPA_D, P, &x->m3, P);
	ck_assert_int_eq(dma_write(&x->t, GPA_D, "x", 1, &x->err), -EACCES);

	/* Without the fault the same set goes through. */
	ck_assert_int_eq(dma_table_set(&x->t, x->second, 4, &x->err), 0);
	check_changed(x, k);
}

static void change_teardown(struct fail_nth *nth)
{
	struct table_change *x = nth->ctx;

	dma_table_clear(&x->t);
	mem_free(&x->m1);
	mem_free(&x->m2);
	mem_free(&x->m3);
}

/* Fails each backend dma_map (unmap: dma_unmap) call of the change in turn; returns K. */
static unsigned long fault_sweep(bool unmap)
{
	static const int enospc[] = { ENOSPC };
	struct table_change x = { .unmap = unmap };
	struct fail_nth nth = {
		.name = unmap ? "set (dma_unmap fails)" : "set (dma_map fails)",
		.injector = &fake_injector,
		.errs = enospc,
		.n_errs = 1,
		.setup = change_setup,
		.run = change_run,
		.check = change_check,
		.teardown = change_teardown,
		.ctx = &x,
	};

	return fail_nth_sweep(&nth);
}

START_TEST(set_rolls_back_every_injected_backend_failure)
{
	int fds = testutil_count_fds(0);

	ck_assert_uint_eq(fault_sweep(false), 2);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	ck_assert_uint_eq(fault_sweep(true), 2);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

START_TEST(add_and_remove_survive_backend_failures)
{
	const uint64_t P = pg(), A = 0x100000, B = 0x200000;
	int fds = testutil_count_fds(0);
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	struct snap before;
	struct dma_new_region a, b;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(4);
	a = reg(A, P, m.fd, 0, false);
	b = reg(B, 2 * P, m.fd, 2 * P, false);
	ck_assert_int_eq(dma_table_add(&t, &a, &err), 0);
	snap_take(&before, &t);

	/* Backend map fails: no mapping of the remote's left behind. */
	fake_fail_map_in(&f, 1);
	ck_assert_int_eq(dma_table_add(&t, &b, &err), -ENOSPC);
	ck_assert_int_eq(err.code, ENOSPC);
	ck_assert_uint_eq(f.faults_hit, 1);
	snap_check(&before, &t);
	check_consistent(&t, &f);
	ck_assert_uint_eq(t.stats.mmaps, 2);
	ck_assert_uint_eq(t.stats.munmaps, 1);
	ck_assert_uint_eq(t.stats.backend_maps, 1);
	ck_assert_int_eq(dma_read(&t, B, &(char){ 0 }, 1, &err), -EFAULT);
	fake_disarm(&f);
	ck_assert_int_eq(dma_table_add(&t, &b, &err), 0);
	check_consistent(&t, &f);
	check_dma_roundtrip(&t, B, 2 * P, &m, 2 * P, 101);

	/* Backend unmap fails: the region stays, mapped and usable. */
	snap_take(&before, &t);
	fake_fail_unmap_in(&f, 1);
	ck_assert_int_eq(dma_table_remove(&t, B, 2 * P, &err), -ENOSPC);
	ck_assert_int_eq(err.code, ENOSPC);
	ck_assert_uint_eq(f.faults_hit, 2);
	snap_check(&before, &t);
	check_consistent(&t, &f);
	check_dma_roundtrip(&t, B, 2 * P, &m, 2 * P, 102);
	check_dma_roundtrip(&t, A, P, &m, 0, 103);
	fake_disarm(&f);
	ck_assert_int_eq(dma_table_remove(&t, B, 2 * P, &err), 0);
	ck_assert_uint_eq(t.map.n, 1);
	check_consistent(&t, &f);

	dma_table_clear(&t);
	ck_assert_uint_eq(f.n, 0);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/*
 * The remote's own mmap can fail too: a memfd sealed against writes passes
 * the fd check (it is open read-write) but cannot be mapped writable.
 */
START_TEST(set_rolls_back_a_failed_mmap)
{
	const uint64_t P = pg();
	int fds = testutil_count_fds(0), sealed;
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	struct snap before;
	struct counts c;
	void *p;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(8);
	sealed = testutil_memfd(P, 0);
	p = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, sealed, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	memset(p, 0x77, P);
	ck_assert_int_eq(munmap(p, P), 0);
	ck_assert_int_eq(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE), 0);

	struct dma_new_region first[] = { reg(0x100000, P, m.fd, 0, false),
					  reg(0x200000, P, m.fd, P, false) };
	struct dma_new_region second[] = { reg(0x100000, P, m.fd, 0, false),
					   reg(0x300000, P, m.fd, 2 * P, false),
					   reg(0x400000, P, m.fd, 3 * P, false),
					   reg(0x500000, P, sealed, 0, false) };
	ck_assert_int_eq(dma_table_set(&t, first, 2, &err), 0);
	snap_take(&before, &t);
	c = counts_of(&t);
	ck_assert_int_lt(dma_table_set(&t, second, 4, &err), 0);
	ck_assert_int_ne(err.code, 0);
	snap_check(&before, &t);
	check_consistent(&t, &f);
	ck_assert_uint_eq(t.stats.backend_maps, c.bmaps);
	ck_assert_uint_eq(t.stats.backend_unmaps, c.bunmaps);
	ck_assert_uint_eq(t.stats.mmaps - c.mmaps, 2);
	ck_assert_uint_eq(t.stats.munmaps - c.munmaps, 2);
	check_dma_roundtrip(&t, 0x200000, P, &m, P, 111);

	/* Read-only it maps, and reads the sealed bytes. */
	second[3].read_only = true;
	c = counts_of(&t);
	ck_assert_int_eq(dma_table_set(&t, second, 4, &err), 0);
	check_delta(&t, &c, 3, 1);
	check_consistent(&t, &f);
	{
		uint8_t b[64];

		ck_assert_int_eq(dma_read(&t, 0x500000 + P - 64, b, 64, &err), 0);
		for (int i = 0; i < 64; i++)
			ck_assert_uint_eq(b[i], 0x77);
	}
	ck_assert_int_eq(close(sealed), 0);

	dma_table_clear(&t);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 5. validation ---- */

/* A refusal changes nothing and maps nothing. */
#define REFUSED(t, f, call, errno_)                                                                \
	do {                                                                                       \
		struct snap s_;                                                                    \
		struct counts c_ = counts_of(t);                                                   \
		unsigned maps_ = (f)->map_calls, unmaps_ = (f)->unmap_calls;                       \
		snap_take(&s_, t);                                                                 \
		mpdev_error_clear(&err);                                                           \
		ck_assert_int_eq((call), -(errno_));                                               \
		ck_assert_int_eq(err.code, (errno_));                                              \
		ck_assert_int_ne(err.msg[0], '\0');                                                \
		snap_check(&s_, t);                                                                \
		check_delta(t, &c_, 0, 0);                                                         \
		ck_assert_uint_eq((f)->map_calls, maps_);                                          \
		ck_assert_uint_eq((f)->unmap_calls, unmaps_);                                      \
		check_consistent(t, f);                                                            \
	} while (0)

START_TEST(invalid_regions_are_refused_and_change_nothing)
{
	const uint64_t P = pg(), G = 0x1000000;
	int fds = testutil_count_fds(0), fds_mem;
	int unsealed, unsealable, efd, pipefd[2], rdonly, wronly;
	char path[64];
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	struct dma_new_region r;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 4);
	m = mem_new(8);
	r = reg(G, P, m.fd, 0, false);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);
	r = reg(G + 4 * P, 2 * P, m.fd, 2 * P, false);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);

	unsealed = testutil_memfd(4 * P, 0);
	unsealable = memfd_create("dma-test-nosealing", MFD_CLOEXEC);
	ck_assert_int_ge(unsealable, 0);
	ck_assert_int_eq(ftruncate(unsealable, (off_t)(4 * P)), 0);
	efd = testutil_eventfd();
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m.fd);
	rdonly = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(rdonly, 0);
	wronly = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(wronly, 0);
	fds_mem = testutil_count_fds(0);

	/* Each with the errno it must be refused with. */
	struct dma_new_region bad[] = {
#define BAD(errno_, ...) reg(__VA_ARGS__)
		BAD(EINVAL, G + 8 * P + 1, P, m.fd, 0, false),
		BAD(EINVAL, G + 8 * P + P / 2, P, m.fd, 0, false),
		BAD(EINVAL, G + 8 * P, P / 2, m.fd, 0, false),
		BAD(EINVAL, G + 8 * P, P + 1, m.fd, 0, false),
		BAD(EINVAL, G + 8 * P, P, m.fd, 1, false),
		BAD(EINVAL, G + 8 * P, P, m.fd, P / 2, false),
		BAD(EINVAL, G + 8 * P, 0, m.fd, 0, false),
		BAD(EINVAL, TOP - P + 1, 2 * P, m.fd, 0, false),
		BAD(EINVAL, 2 * P, TOP - P + 1, m.fd, 0, false),
		BAD(EPERM, G + 8 * P, P, unsealed, 0, false),
		BAD(EPERM, G + 8 * P, P, unsealable, 0, true),
		BAD(EINVAL, G + 8 * P, P, efd, 0, false),
		BAD(EINVAL, G + 8 * P, P, pipefd[0], 0, true),
		BAD(EACCES, G + 8 * P, P, rdonly, 0, false),
		BAD(EACCES, G + 8 * P, P, wronly, 0, true),
		BAD(ERANGE, G + 8 * P, 9 * P, m.fd, 0, false),
		BAD(ERANGE, G + 8 * P, 2 * P, m.fd, 7 * P, false),
		BAD(ERANGE, G + 8 * P, P, m.fd, 8 * P, false),
		BAD(ERANGE, G + 8 * P, P, m.fd, 64 * P, false),
		BAD(ERANGE, G + 8 * P, P, m.fd, TOP - P + 1, false),
		BAD(EEXIST, G, P, m.fd, 0, false),
		BAD(EEXIST, G + 5 * P, P, m.fd, 0, false),
		BAD(EEXIST, G - P, 2 * P, m.fd, 0, false),
		BAD(EEXIST, G + 3 * P, 2 * P, m.fd, 0, false),
		BAD(EEXIST, G - P, 8 * P, m.fd, 0, false),
#undef BAD
	};
	static const int want[] = {
		EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL,
		EPERM,	EPERM,	EINVAL, EINVAL, EACCES, EACCES, ERANGE, ERANGE, ERANGE,
		ERANGE, ERANGE, EEXIST, EEXIST, EEXIST, EEXIST, EEXIST,
	};
	ck_assert_uint_eq(sizeof(bad) / sizeof(bad[0]), sizeof(want) / sizeof(want[0]));

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		/* Alone through add... */
		REFUSED(&t, &f, dma_table_add(&t, &bad[i], &err), want[i]);
		/* ...and among valid regions (including the live ones) through set. */
		if (want[i] != EEXIST) {
			struct dma_new_region v[] = { reg(G, P, m.fd, 0, false), bad[i],
						      reg(G + 4 * P, 2 * P, m.fd, 2 * P, false) };

			REFUSED(&t, &f, dma_table_set(&t, v, 3, &err), want[i]);
		}
	}

	/* The same fds that were refused writable are fine read-only. */
	r = reg(G + 8 * P, P, rdonly, 3 * P, true);
	ck_assert_int_eq(dma_table_add(&t, &r, &err), 0);
	check_dma_reads(&t, G + 8 * P, P, &m, 3 * P);
	ck_assert_int_eq(dma_table_remove(&t, G + 8 * P, P, &err), 0);

	/* Overlap within one set, and against a live region that stays. */
	{
		struct dma_new_region v1[] = { reg(G + 16 * P, 2 * P, m.fd, 0, false),
					       reg(G, P, m.fd, 0, false),
					       reg(G + 17 * P, P, m.fd, 4 * P, false) };
		struct dma_new_region v2[] = { reg(G, P, m.fd, 0, false),
					       reg(G + 20 * P, P, m.fd, 0, false),
					       reg(G + 20 * P, P, m.fd, 0, false) };
		struct dma_new_region v3[] = { reg(G, 2 * P, m.fd, 0, false),
					       reg(G + P, P, m.fd, P, false) };

		REFUSED(&t, &f, dma_table_set(&t, v1, 3, &err), EEXIST);
		REFUSED(&t, &f, dma_table_set(&t, v2, 3, &err), EEXIST);
		REFUSED(&t, &f, dma_table_set(&t, v3, 2, &err), EEXIST);
	}

	/* Too many: max_regions is 4. */
	{
		struct dma_new_region v[] = {
			reg(G, P, m.fd, 0, false),
			reg(G + 4 * P, 2 * P, m.fd, 2 * P, false),
			reg(G + 8 * P, P, m.fd, 0, false),
			reg(G + 9 * P, P, m.fd, P, false),
			reg(G + 10 * P, P, m.fd, 0, false),
		};

		REFUSED(&t, &f, dma_table_set(&t, v, 5, &err), ENOSPC);
		ck_assert_int_eq(dma_table_add(&t, &v[2], &err), 0);
		ck_assert_int_eq(dma_table_add(&t, &v[3], &err), 0);
		ck_assert_uint_eq(t.map.n, 4);
		REFUSED(&t, &f, dma_table_add(&t, &v[4], &err), ENOSPC);
		/* Exactly the limit through set is fine, replacing what is there. */
		ck_assert_int_eq(dma_table_set(&t, v + 1, 4, &err), 0);
		ck_assert_uint_eq(t.map.n, 4);
		check_consistent(&t, &f);
	}

	/* Removes that do not match a region whole. */
	REFUSED(&t, &f, dma_table_remove(&t, G + 5 * P, P, &err), ENOENT);
	REFUSED(&t, &f, dma_table_remove(&t, G + 4 * P, P, &err), EINVAL);
	REFUSED(&t, &f, dma_table_remove(&t, G + 4 * P, 4 * P, &err), EINVAL);
	REFUSED(&t, &f, dma_table_remove(&t, G, P, &err), ENOENT);
	check_dma_roundtrip(&t, G + 4 * P, 2 * P, &m, 2 * P, 121);
	ck_assert_int_eq(testutil_count_fds(0), fds_mem);

	dma_table_clear(&t);
	ck_assert_uint_eq(f.n, 0);
	close(unsealed);
	close(unsealable);
	close(efd);
	close(pipefd[0]);
	close(pipefd[1]);
	close(rdonly);
	close(wronly);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/*
 * Two new regions that overlap, the lower one ending exactly at the top of
 * the address space: its end (gpa + size) is 0 in 64 bits.
 */
START_TEST(set_refuses_overlap_ending_at_the_top_of_the_address_space)
{
	const uint64_t P = pg();
	int fds = testutil_count_fds(0);
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	uint64_t mmaps;
	size_t n;
	int ret;

	fake_init(&f, &fake_ops);
	m = mem_new(4);
	struct dma_new_region v[] = { reg(TOP - 2 * P + 1, 2 * P, m.fd, 0, false),
				      reg(TOP - P + 1, P, m.fd, 2 * P, false) };

	/* Without an IOMMU, where nothing else would notice... */
	dma_table_init(&t, NULL, 16);
	mpdev_error_clear(&err);
	ret = dma_table_set(&t, v, 2, &err);
	n = t.map.n;
	mmaps = t.stats.mmaps;
	dma_table_clear(&t); /* before asserting: nothing leaks if this fails */
	ck_assert_int_eq(ret, -EEXIST);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(mmaps, 0);

	/* ...and with one: refused before anything is mapped. */
	dma_table_init(&t, &f.b, 16);
	REFUSED(&t, &f, dma_table_set(&t, v, 2, &err), EEXIST);
	dma_table_clear(&t);

	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 6. clear ---- */

START_TEST(clear_unmaps_everything_and_the_table_is_reusable)
{
	const uint64_t P = pg();
	int fds = testutil_count_fds(0);
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	void *hosts[3];
	uint8_t b;

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(8);
	struct dma_new_region v[] = { reg(0x100000, P, m.fd, 0, false),
				      reg(0x100000 + P, 2 * P, m.fd, P, true),
				      reg(0x900000, 4 * P, m.fd, 4 * P, false) };
	ck_assert_int_eq(dma_table_set(&t, v, 3, &err), 0);
	for (int i = 0; i < 3; i++)
		hosts[i] = host_at(&t, v[i].gpa);
	check_consistent(&t, &f);

	dma_table_clear(&t);
	ck_assert_uint_eq(t.map.n, 0);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_uint_eq(f.violations, 0);
	ck_assert_uint_eq(f.unmap_calls, 3);
	ck_assert_uint_eq(t.stats.backend_unmaps, 3);
	ck_assert_uint_eq(t.stats.mmaps, 3);
	ck_assert_uint_eq(t.stats.munmaps, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert(!remote_mapped(hosts[i], v[i].size));
		ck_assert_ptr_null(memtable_lookup(&t.map, v[i].gpa));
		ck_assert_int_eq(dma_read(&t, v[i].gpa, &b, 1, &err), -EFAULT);
	}
	/* Twice is harmless. */
	dma_table_clear(&t);
	ck_assert_uint_eq(f.unmap_calls, 3);

	/* Reusable: the same regions go back in, by add and by set. */
	ck_assert_int_eq(dma_table_add(&t, &v[2], &err), 0);
	ck_assert_int_eq(dma_table_set(&t, v, 3, &err), 0);
	ck_assert_uint_eq(t.map.n, 3);
	check_consistent(&t, &f);
	check_dma_roundtrip(&t, v[0].gpa, P, &m, 0, 131);
	check_dma_roundtrip(&t, v[2].gpa, 4 * P, &m, 4 * P, 132);
	check_dma_reads(&t, v[1].gpa, 2 * P, &m, P);
	dma_table_clear(&t);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_uint_eq(t.stats.mmaps, t.stats.munmaps);

	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 7. no IOMMU ---- */

static void exercise_without_backend_dma(struct dma_table *t, struct mem *m)
{
	const uint64_t P = pg();
	struct mpdev_error err;
	struct dma_new_region a = reg(0x100000, P, m->fd, 0, false),
			      b = reg(0x100000 + P, P, m->fd, P, false),
			      c = reg(0x200000, 2 * P, m->fd, 2 * P, true);
	struct dma_new_region v[] = { a, c };
	uint8_t want[64], got[64];

	ck_assert_int_eq(dma_table_add(t, &a, &err), 0);
	ck_assert_int_eq(dma_table_add(t, &b, &err), 0);
	ck_assert_int_eq(dma_table_add(t, &b, &err), -EEXIST);
	fill(want, sizeof(want), 141);
	ck_assert_int_eq(dma_write(t, b.gpa - 32, want, 64, &err), 0);
	ck_assert_mem_eq(m->p + P - 32, want, 64);
	ck_assert_int_eq(dma_read(t, a.gpa + P - 32, got, 64, &err), 0);
	ck_assert_mem_eq(got, want, 64);
	ck_assert_int_eq(dma_table_set(t, v, 2, &err), 0);
	ck_assert_uint_eq(t->map.n, 2);
	check_dma_reads(t, c.gpa, 2 * P, m, 2 * P);
	ck_assert_int_eq(dma_write(t, c.gpa, want, 1, &err), -EACCES);
	ck_assert_int_eq(dma_table_remove(t, c.gpa, 2 * P, &err), 0);
	check_no_leak(t);
	ck_assert_uint_eq(t->stats.mmaps, 3);
	ck_assert_uint_eq(t->stats.munmaps, 2);
	ck_assert_uint_eq(t->stats.backend_maps, 0);
	ck_assert_uint_eq(t->stats.backend_unmaps, 0);
	dma_table_clear(t);
	ck_assert_uint_eq(t->stats.mmaps, t->stats.munmaps);
}

START_TEST(backend_without_dma_ops_and_no_backend_work)
{
	int fds = testutil_count_fds(0);
	struct dma_table t;
	struct fake f;
	struct mem m;

	m = mem_new(4);
	fake_init(&f, &no_dma_ops);
	dma_table_init(&t, &f.b, 16);
	exercise_without_backend_dma(&t, &m);
	dma_table_init(&t, NULL, 16);
	exercise_without_backend_dma(&t, &m);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 5. several devices of one VM: tables sharing the VM's guest memory ---- */

/* Two tables (two devices' connections) on one guest_mem and one IOMMU (the fake). */
struct vm_pair {
	struct guest_mem gm;
	struct dma_table a, b;
	struct fake f;
};

static void vm_pair_init(struct vm_pair *v, const struct backend_ops *ops_b)
{
	guest_mem_init(&v->gm);
	fake_init(&v->f, &fake_ops);
	dma_table_init(&v->a, &v->f.b, 16);
	/* b's backend: the same IOMMU, or (ops_b) a device without one. */
	dma_table_init(&v->b, &v->f.b, 16);
	if (ops_b) {
		static struct fake emu;

		fake_init(&emu, ops_b);
		v->b.backend = &emu.b;
	}
	dma_table_share(&v->a, &v->gm);
	dma_table_share(&v->b, &v->gm);
}

static void vm_pair_clear(struct vm_pair *v)
{
	dma_table_clear(&v->a);
	dma_table_clear(&v->b);
	ck_assert_uint_eq(v->gm.n, 0);
	ck_assert_uint_eq(v->f.n, 0);
	ck_assert_uint_eq(v->gm.stats.mmaps, v->gm.stats.munmaps);
	guest_mem_destroy(&v->gm);
}

START_TEST(two_tables_of_one_vm_map_and_pin_once)
{
	const uint64_t P = pg(), g1 = 0x100000, g2 = 0x800000;
	int fds = testutil_count_fds(0);
	struct mem m = mem_new(32);
	struct mpdev_error err;
	struct vm_pair v;
	struct dma_new_region ra[2], rb[2];
	int dupfd = dup(m.fd);

	ck_assert_int_ge(dupfd, 0);
	vm_pair_init(&v, NULL);
	ra[0] = reg(g1, 8 * P, m.fd, 0, false);
	ra[1] = reg(g2, 8 * P, m.fd, 16 * P, false);
	/* The other device's proxy sends the same table through other descriptors. */
	rb[0] = reg(g2, 8 * P, dupfd, 16 * P, false);
	rb[1] = reg(g1, 8 * P, dupfd, 0, false);
	ck_assert_msg(dma_table_set(&v.a, ra, 2, &err) == 0, "%s", err.msg);
	ck_assert_msg(dma_table_set(&v.b, rb, 2, &err) == 0, "%s", err.msg);
	/* Mapped once by the remote and once in the IOMMU, though both tables hold them. */
	ck_assert_uint_eq(v.gm.stats.mmaps, 2);
	ck_assert_uint_eq(v.gm.stats.iommu_maps, 2);
	ck_assert_uint_eq(v.gm.stats.shared_mmaps, 2);
	ck_assert_uint_eq(v.gm.stats.shared_iommu_maps, 2);
	ck_assert_uint_eq(v.f.map_calls, 2);
	ck_assert_uint_eq(v.f.n, 2);
	ck_assert_uint_eq(v.f.violations, 0);
	for (size_t i = 0; i < 2; i++)
		ck_assert_ptr_eq(v.a.map.v[i].host, v.b.map.v[i].host);
	/* What one device writes, the other reads: the same pages. */
	check_dma_roundtrip(&v.a, g2, 4 * P, &m, 16 * P, 3);
	check_dma_reads(&v.b, g2, 4 * P, &m, 16 * P);
	/* One device leaves: the other keeps its mappings, in the IOMMU too. */
	dma_table_clear(&v.a);
	ck_assert_uint_eq(v.f.n, 2);
	ck_assert_uint_eq(v.f.unmap_calls, 0);
	ck_assert_uint_eq(v.gm.stats.munmaps, 0);
	check_fake_is_table(&v.f, &v.b);
	check_dma_roundtrip(&v.b, g1, 8 * P, &m, 0, 5);
	vm_pair_clear(&v);
	ck_assert_uint_eq(v.f.unmap_calls, 2);
	close(dupfd);
	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

START_TEST(tables_that_disagree_are_refused_and_change_nothing)
{
	const uint64_t P = pg(), g = 0x100000;
	struct mem m1 = mem_new(16), m2 = mem_new(16);
	struct mpdev_error err;
	struct vm_pair v;
	struct dma_new_region r;

	vm_pair_init(&v, NULL);
	r = reg(g, 8 * P, m1.fd, 0, false);
	ck_assert_int_eq(dma_table_set(&v.a, &r, 1, &err), 0);
	/* Another file at an overlapping range: one IOMMU cannot map both. */
	r = reg(g + 4 * P, 8 * P, m2.fd, 0, false);
	mpdev_error_clear(&err);
	ck_assert_int_eq(dma_table_set(&v.b, &r, 1, &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.msg, "another device of this VM"));
	ck_assert_uint_eq(v.b.map.n, 0);
	ck_assert_uint_eq(v.gm.n, 1); /* b's mmap was taken back */
	ck_assert_uint_eq(v.gm.stats.mmaps, v.gm.stats.munmaps + 1);
	check_fake_is_table(&v.f, &v.a);
	/* The same range read-only is another mapping too. */
	r = reg(g, 8 * P, m1.fd, 0, true);
	ck_assert_int_eq(dma_table_add(&v.b, &r, &err), -EBUSY);
	ck_assert_uint_eq(v.b.map.n, 0);
	/* Once a has moved on, b's table maps. */
	dma_table_clear(&v.a);
	r = reg(g + 4 * P, 8 * P, m2.fd, 0, false);
	ck_assert_msg(dma_table_set(&v.b, &r, 1, &err) == 0, "%s", err.msg);
	check_fake_is_table(&v.f, &v.b);
	vm_pair_clear(&v);
	mem_free(&m1);
	mem_free(&m2);
}
END_TEST

START_TEST(a_change_by_one_device_keeps_what_the_other_holds)
{
	const uint64_t P = pg(), g1 = 0x100000, g2 = 0x200000, g3 = 0x300000;
	struct mem m = mem_new(48);
	struct mpdev_error err;
	struct vm_pair v;
	struct dma_new_region old[2], next[2];

	vm_pair_init(&v, NULL);
	old[0] = reg(g1, 16 * P, m.fd, 0, false);
	old[1] = reg(g2, 16 * P, m.fd, 16 * P, false);
	next[0] = old[0];
	next[1] = reg(g3, 16 * P, m.fd, 32 * P, false);
	ck_assert_int_eq(dma_table_set(&v.a, old, 2, &err), 0);
	ck_assert_int_eq(dma_table_set(&v.b, old, 2, &err), 0);
	/* a moves first: g2 stays in the IOMMU for b, g3 comes in. */
	ck_assert_msg(dma_table_set(&v.a, next, 2, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(v.f.n, 3);
	ck_assert_uint_eq(v.f.unmap_calls, 0);
	check_dma_reads(&v.b, g2, 16 * P, &m, 16 * P);
	/* b follows: now g2 goes. */
	ck_assert_msg(dma_table_set(&v.b, next, 2, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(v.f.n, 2);
	ck_assert_uint_eq(v.f.map_calls, 3);
	ck_assert_uint_eq(v.f.unmap_calls, 1);
	check_fake_is_table(&v.f, &v.a);
	check_fake_is_table(&v.f, &v.b);
	vm_pair_clear(&v);
	mem_free(&m);
}
END_TEST

START_TEST(a_failed_change_on_a_shared_table_rolls_back_its_holds)
{
	const uint64_t P = pg(), g = 0x100000;
	struct mem m = mem_new(64);
	struct dma_new_region held, next[4];
	struct mpdev_error err;
	struct vm_pair v;
	unsigned k;

	vm_pair_init(&v, NULL);
	held = reg(g, 8 * P, m.fd, 0, false);
	for (unsigned i = 0; i < 4; i++)
		next[i] = reg(g + i * 0x100000, 8 * P, m.fd, i * 8 * P, false);
	ck_assert_int_eq(dma_table_set(&v.a, &held, 1, &err), 0);
	ck_assert_int_eq(dma_table_set(&v.b, &held, 1, &err), 0);
	/* b's change fails at its k-th IOMMU map, for each k, until one passes. */
	for (k = 1; k < 10; k++) {
		unsigned before = v.f.faults_hit;
		int r;

		fake_fail_map_in(&v.f, k);
		r = dma_table_set(&v.b, next, 4, &err);
		fake_disarm(&v.f);
		if (v.f.faults_hit == before) {
			ck_assert_msg(r == 0, "%s", err.msg);
			break;
		}
		ck_assert_int_eq(r, -ENOSPC);
		/* Exactly the old state: g held by both, once in the IOMMU and the remote. */
		ck_assert_uint_eq(v.b.map.n, 1);
		ck_assert_uint_eq(v.gm.n, 1);
		ck_assert_uint_eq(v.gm.v[0].host_refs, 2);
		ck_assert_uint_eq(v.gm.v[0].iommu_refs, 2);
		check_fake_is_table(&v.f, &v.a);
		check_fake_is_table(&v.f, &v.b);
	}
	ck_assert_uint_eq(k, 4); /* three new regions: three places to fail */
	ck_assert_uint_eq(v.f.n, 4);
	ck_assert_uint_eq(v.gm.v[0].iommu_refs, 2);
	vm_pair_clear(&v);
	mem_free(&m);
}
END_TEST

START_TEST(an_emulated_device_first_does_not_hide_the_iommu_mapping)
{
	const uint64_t P = pg(), g = 0x100000;
	struct mem m = mem_new(8);
	struct dma_new_region r = reg(g, 8 * P, m.fd, 0, false);
	struct mpdev_error err;
	struct vm_pair v;

	/* b is an emulated device: it shares the mmap but maps nothing in an IOMMU. */
	vm_pair_init(&v, &no_dma_ops);
	ck_assert_int_eq(dma_table_set(&v.b, &r, 1, &err), 0);
	ck_assert_uint_eq(v.f.map_calls, 0);
	ck_assert_int_eq(dma_table_set(&v.a, &r, 1, &err), 0);
	ck_assert_uint_eq(v.f.map_calls, 1);
	ck_assert_uint_eq(v.gm.stats.mmaps, 1);
	dma_table_clear(&v.a);
	ck_assert_uint_eq(v.f.n, 0); /* the IOMMU's only holder left */
	check_dma_reads(&v.b, g, 8 * P, &m, 0);
	vm_pair_clear(&v);
	mem_free(&m);
}
END_TEST

/* ---- 8. zero copy: dma_iov ---- */

static void iov_poison(struct iovec *v, size_t n)
{
	memset(v, 0x5c, n * sizeof(*v));
}

static void check_iov_poisoned(const struct iovec *v, size_t n)
{
	const uint8_t *p = (const uint8_t *)v;

	for (size_t i = 0; i < n * sizeof(*v); i++)
		ck_assert_uint_eq(p[i], 0x5c);
}

static uint8_t dirty_bits(struct dma_table *t, uint64_t gpa, uint64_t size)
{
	struct mpdev_error err;
	uint8_t bm[8] = { 0 };

	ck_assert_int_eq(dirty_report(&t->dirty, gpa, size, pg(), bm, sizeof(bm), &err), 0);
	return bm[0];
}

START_TEST(dma_iov_spans_regions_and_refusals_fill_nothing)
{
	const uint64_t P = pg(), G = 0x1000000;
	int fds = testutil_count_fds(0);
	struct backend_dirty_range dr = { .iova = G, .size = 8 * P };
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m1, m2;
	struct iovec v[8];
	unsigned n;
	uint64_t faults = 0, reads = 0, writes = 0;
	/* G: [R0 m1@0][R1 m2@P, 2 pages][R2 m1@5P] hole [R3 m2@0][R4 m1@7P ro] */
	struct dma_new_region r[] = {
		reg(G, P, 0, 0, false),
		reg(G + P, 2 * P, 0, P, false),
		reg(G + 3 * P, P, 0, 5 * P, false),
		reg(G + 5 * P, P, 0, 0, false),
		reg(G + 6 * P, P, 0, 7 * P, true),
	};

	fake_init(&f, &fake_ops);
	dma_table_init(&t, &f.b, 16);
	m1 = mem_new(8);
	m2 = mem_new(4);
	r[0].fd = r[2].fd = r[4].fd = m1.fd;
	r[1].fd = r[3].fd = m2.fd;
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_eq(dma_table_add(&t, &r[i], &err), 0);
	ck_assert_int_eq(dirty_start(&t.dirty, &dr, 1, P, &err), 0);

	/* Three regions, three iovecs into the remote's own mappings. */
	fill(m1.p, m1.size, 21);
	fill(m2.p, m2.size, 22);
	iov_poison(v, 8);
	n = 99;
	ck_assert_int_eq(dma_iov(&t, G + P / 2, 3 * P, false, v, 8, &n, &err), 0);
	reads++;
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_eq(v[0].iov_base, (uint8_t *)host_at(&t, G) + P / 2);
	ck_assert_uint_eq(v[0].iov_len, P / 2);
	ck_assert_ptr_eq(v[1].iov_base, host_at(&t, G + P));
	ck_assert_uint_eq(v[1].iov_len, 2 * P);
	ck_assert_ptr_eq(v[2].iov_base, host_at(&t, G + 3 * P));
	ck_assert_uint_eq(v[2].iov_len, P / 2);
	ck_assert_mem_eq(v[0].iov_base, m1.p + P / 2, P / 2);
	ck_assert_mem_eq(v[1].iov_base, m2.p + P, 2 * P);
	ck_assert_mem_eq(v[2].iov_base, m1.p + 5 * P, P / 2);
	check_iov_poisoned(v + 3, 5);
	/* A read marks nothing. */
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 0);

	/* Exactly max pieces is fine; one fewer allowed is -E2BIG, nothing filled. */
	ck_assert_int_eq(dma_iov(&t, G + P / 2, 3 * P, true, v, 3, &n, &err), 0);
	writes++;
	ck_assert_uint_eq(n, 3);
	/* Pages G+0 .. G+3P touched: bits 0-3. */
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 0x0f);
	iov_poison(v, 8);
	n = 99;
	ck_assert_int_eq(dma_iov(&t, G + P / 2, 3 * P, true, v, 2, &n, &err), -E2BIG);
	ck_assert_int_eq(err.code, E2BIG);
	faults++;
	ck_assert_uint_eq(n, 0);
	check_iov_poisoned(v, 8);
	ck_assert_int_eq(dma_iov(&t, G, P, false, v, 0, &n, &err), -E2BIG);
	faults++;

	/* The hole: -EFAULT, nothing filled, nothing marked. */
	ck_assert_int_eq(dma_iov(&t, G + 3 * P + 8, P, true, v, 8, &n, &err), -EFAULT);
	ck_assert_int_eq(err.code, EFAULT);
	faults++;
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(dma_iov(&t, G - 1, 2, false, v, 8, &n, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_iov(&t, TOP - 10, 100, false, v, 8, &n, &err), -EFAULT);
	faults++;
	ck_assert_int_eq(dma_iov(&t, G, UINT64_MAX, false, v, 8, &n, &err), -EFAULT);
	faults++;
	check_iov_poisoned(v, 8);
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 0);

	/* Read-only: readable, not writable; a refused write marks nothing. */
	ck_assert_int_eq(dma_iov(&t, G + 5 * P + 8, P, true, v, 8, &n, &err), -EACCES);
	ck_assert_int_eq(err.code, EACCES);
	faults++;
	ck_assert_uint_eq(n, 0);
	check_iov_poisoned(v, 8);
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 0);
	ck_assert_int_eq(dma_iov(&t, G + 5 * P + 8, P, false, v, 8, &n, &err), 0);
	reads++;
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_eq(v[0].iov_base, (uint8_t *)host_at(&t, G + 5 * P) + 8);
	ck_assert_uint_eq(v[0].iov_len, P - 8);
	ck_assert_ptr_eq(v[1].iov_base, host_at(&t, G + 6 * P));
	ck_assert_uint_eq(v[1].iov_len, 8);

	/* Writes through the iovecs land in guest memory (zero copy). */
	ck_assert_int_eq(dma_iov(&t, G + 5 * P, 16, true, v, 1, &n, &err), 0);
	writes++;
	ck_assert_uint_eq(n, 1);
	memset(v[0].iov_base, 0xee, 16);
	for (int i = 0; i < 16; i++)
		ck_assert_uint_eq(m2.p[i], 0xee);
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 1u << 5);

	/* Zero length: nothing, anywhere. */
	iov_poison(v, 8);
	ck_assert_int_eq(dma_iov(&t, TOP, 0, true, v, 0, &n, &err), 0);
	writes++;
	ck_assert_uint_eq(n, 0);
	check_iov_poisoned(v, 8);
	ck_assert_uint_eq(dirty_bits(&t, G, 8 * P), 0);

	ck_assert_uint_eq(t.stats.faults, faults);
	ck_assert_uint_eq(t.stats.reads, reads);
	ck_assert_uint_eq(t.stats.writes, writes);
	ck_assert_uint_eq(t.stats.bytes_read, 3 * P + P);
	ck_assert_uint_eq(t.stats.bytes_written, 3 * P + 16);
	check_consistent(&t, &f);

	dma_table_clear(&t);
	mem_free(&m1);
	mem_free(&m2);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

/* ---- 9. dma_quiesce before any region goes ---- */

static struct {
	unsigned calls;
	const struct dma_table *t;
	uint64_t munmaps_at_call, backend_unmaps_at_call;
	size_t regions_at_call;
} q;

static void fake_dma_quiesce(struct backend *b)
{
	q.calls++;
	q.munmaps_at_call = q.t->stats.munmaps;
	q.backend_unmaps_at_call = q.t->stats.backend_unmaps;
	q.regions_at_call = q.t->map.n;
}

static const struct backend_ops quiesce_ops = {
	.name = "fake-quiesce",
	.get_info = fake_get_info,
	.region_read = fake_region_read,
	.region_write = fake_region_write,
	.reset = fake_reset,
	.dma_map = fake_dma_map,
	.dma_unmap = fake_dma_unmap,
	.dma_quiesce = fake_dma_quiesce,
	.destroy = fake_destroy,
};

/* One quiesce since the last check, before anything of the table was unmapped. */
static void check_quiesced(unsigned want_calls, uint64_t munmaps_before, uint64_t unmaps_before)
{
	ck_assert_uint_eq(q.calls, want_calls);
	ck_assert_uint_eq(q.munmaps_at_call, munmaps_before);
	ck_assert_uint_eq(q.backend_unmaps_at_call, unmaps_before);
}

START_TEST(dma_quiesce_comes_before_a_region_goes)
{
	const uint64_t P = pg();
	int fds = testutil_count_fds(0);
	struct mpdev_error err;
	struct dma_table t;
	struct fake f;
	struct mem m;
	uint64_t mu, bu;

	memset(&q, 0, sizeof(q));
	q.t = &t;
	fake_init(&f, &quiesce_ops);
	dma_table_init(&t, &f.b, 16);
	m = mem_new(8);
	struct dma_new_region a = reg(0x100000, P, m.fd, 0, false),
			      b = reg(0x200000, 2 * P, m.fd, P, false),
			      c = reg(0x300000, P, m.fd, 3 * P, true);
	struct dma_new_region ab[] = { a, b }, abc[] = { a, b, c }, ac[] = { a, c };

	/* Adding goes nowhere near it. */
	ck_assert_int_eq(dma_table_add(&t, &a, &err), 0);
	ck_assert_int_eq(dma_table_add(&t, &b, &err), 0);
	ck_assert_uint_eq(q.calls, 0);
	/* Remove: once, before the backend unmap and the munmap. */
	mu = t.stats.munmaps;
	bu = t.stats.backend_unmaps;
	ck_assert_int_eq(dma_table_remove(&t, b.gpa, b.size, &err), 0);
	check_quiesced(1, mu, bu);
	ck_assert_uint_eq(q.regions_at_call, 2);
	/* A remove that is refused removes nothing and does not quiesce. */
	ck_assert_int_eq(dma_table_remove(&t, b.gpa, b.size, &err), -ENOENT);
	ck_assert_int_eq(dma_table_remove(&t, a.gpa, 2 * P, &err), -EINVAL);
	ck_assert_uint_eq(q.calls, 1);

	/* Set that only adds, and set that changes nothing: no quiesce. */
	ck_assert_int_eq(dma_table_set(&t, abc, 3, &err), 0);
	ck_assert_uint_eq(q.calls, 1);
	ck_assert_int_eq(dma_table_set(&t, abc, 3, &err), 0);
	ck_assert_uint_eq(q.calls, 1);
	ck_assert_uint_eq(t.map.n, 3);
	/* Set that drops b: once, before anything goes. */
	mu = t.stats.munmaps;
	bu = t.stats.backend_unmaps;
	ck_assert_int_eq(dma_table_set(&t, ac, 2, &err), 0);
	check_quiesced(2, mu, bu);
	ck_assert_uint_eq(t.stats.munmaps, mu + 1);
	/* Set that replaces c by b (one goes, one comes). */
	mu = t.stats.munmaps;
	bu = t.stats.backend_unmaps;
	ck_assert_int_eq(dma_table_set(&t, ab, 2, &err), 0);
	check_quiesced(3, mu, bu);
	/* A set refused before it starts (overlap) quiesces nothing. */
	struct dma_new_region bad[] = { a, reg(0x100000, 2 * P, m.fd, 0, false) };
	ck_assert_int_eq(dma_table_set(&t, bad, 2, &err), -EEXIST);
	ck_assert_uint_eq(q.calls, 3);

	/* Clear: once for all the regions, before the first goes. */
	mu = t.stats.munmaps;
	bu = t.stats.backend_unmaps;
	dma_table_clear(&t);
	check_quiesced(4, mu, bu);
	ck_assert_uint_eq(q.regions_at_call, 2);
	/* An empty table has nothing in flight: no call. */
	dma_table_clear(&t);
	ck_assert_uint_eq(q.calls, 4);
	ck_assert_uint_eq(f.violations, 0);

	mem_free(&m);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

static Suite *dma_suite(void)
{
	Suite *s = suite_create("dma");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, add_and_remove_one_region);
	tcase_add_test(tc, set_maps_and_unmaps_only_the_difference);
	tcase_add_test(tc, clear_unmaps_everything_and_the_table_is_reusable);
	tcase_add_test(tc, backend_without_dma_ops_and_no_backend_work);
	suite_add_tcase(s, tc);

	tc = tcase_create("access");
	tcase_add_test(tc, access_spans_adjacent_regions_and_refusals_copy_nothing);
	tcase_add_test(tc, region_at_the_top_of_the_address_space);
	suite_add_tcase(s, tc);

	tc = tcase_create("zero_copy");
	tcase_add_test(tc, dma_iov_spans_regions_and_refusals_fill_nothing);
	tcase_add_test(tc, dma_quiesce_comes_before_a_region_goes);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, invalid_regions_are_refused_and_change_nothing);
	tcase_add_test(tc, set_refuses_overlap_ending_at_the_top_of_the_address_space);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, set_rolls_back_every_injected_backend_failure);
	tcase_add_test(tc, add_and_remove_survive_backend_failures);
	tcase_add_test(tc, set_rolls_back_a_failed_mmap);
	suite_add_tcase(s, tc);

	tc = tcase_create("shared");
	tcase_add_test(tc, two_tables_of_one_vm_map_and_pin_once);
	tcase_add_test(tc, tables_that_disagree_are_refused_and_change_nothing);
	tcase_add_test(tc, a_change_by_one_device_keeps_what_the_other_holds);
	tcase_add_test(tc, a_failed_change_on_a_shared_table_rolls_back_its_holds);
	tcase_add_test(tc, an_emulated_device_first_does_not_hide_the_iommu_mapping);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dma_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
