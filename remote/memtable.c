#include "memtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void memtable_init(struct memtable *t)
{
	memset(t, 0, sizeof(*t));
}

void memtable_free(struct memtable *t)
{
	free(t->v);
	memtable_init(t);
}

/* Index of the first entry whose gpa is greater than gpa (0..n). */
static size_t upper_bound(const struct memtable *t, uint64_t gpa)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Inclusive end; callers have checked that size > 0 and nothing overflows. */
static uint64_t last_byte(const struct memtable_entry *e)
{
	return e->gpa + e->size - 1;
}

const struct memtable_entry *memtable_lookup(const struct memtable *t, uint64_t gpa)
{
	size_t i = upper_bound(t, gpa);

	if (i == 0)
		return NULL;
	return gpa <= last_byte(&t->v[i - 1]) ? &t->v[i - 1] : NULL;
}

const struct memtable_entry *memtable_find_overlap(const struct memtable *t, uint64_t gpa,
						   uint64_t size)
{
	uint64_t last;
	size_t i;

	if (!size || gpa + size - 1 < gpa)
		return NULL;
	last = gpa + size - 1;
	i = upper_bound(t, gpa);
	/* The entry starting at or below gpa may reach into the range... */
	if (i > 0 && last_byte(&t->v[i - 1]) >= gpa)
		return &t->v[i - 1];
	/* ...or the next one may start inside it. */
	if (i < t->n && t->v[i].gpa <= last)
		return &t->v[i];
	return NULL;
}

int memtable_insert(struct memtable *t, const struct memtable_entry *e)
{
	size_t i;

	if (!e->size || e->gpa + e->size - 1 < e->gpa)
		return -EINVAL;
	if (memtable_find_overlap(t, e->gpa, e->size))
		return -EEXIST;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct memtable_entry *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	i = upper_bound(t, e->gpa);
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = *e;
	t->n++;
	return 0;
}

int memtable_remove(struct memtable *t, uint64_t gpa, uint64_t size, struct memtable_entry *out)
{
	const struct memtable_entry *e = memtable_lookup(t, gpa);
	size_t i;

	if (!e)
		return -ENOENT;
	if (e->gpa != gpa || e->size != size)
		return -EINVAL;
	i = (size_t)(e - t->v);
	if (out)
		*out = *e;
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
	t->n--;
	return 0;
}

bool memtable_entry_same(const struct memtable_entry *a, const struct memtable_entry *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->fd_offset == b->fd_offset &&
	       a->read_only == b->read_only && a->dev == b->dev && a->ino == b->ino;
}
