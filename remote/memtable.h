/*
 * The guest-physical map: non-overlapping ranges kept sorted by address in
 * one array, so that a device model's address lookup is a binary search,
 * O(log n). Insert and remove shift the array (O(n) pointer-free memmove),
 * which is cheap at protocol-sized tables and keeps lookups cache-friendly.
 * Pure data structure: no mmap, no fds.
 */
#ifndef MPDEV_MEMTABLE_H
#define MPDEV_MEMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct memtable_entry {
	uint64_t gpa;
	uint64_t size;
	uint64_t fd_offset;
	bool read_only;
	void *host; /* the remote's mapping of [gpa, gpa + size) */
	/* The backing file, to recognise an unchanged region in a new table. */
	dev_t dev;
	ino_t ino;
};

struct memtable {
	struct memtable_entry *v;
	size_t n, cap;
};

void memtable_init(struct memtable *t);
/* Frees the array; the entries' mappings are the caller's. */
void memtable_free(struct memtable *t);

/* -EINVAL for size 0 or gpa + size overflowing, -EEXIST on overlap, -ENOMEM. */
int memtable_insert(struct memtable *t, const struct memtable_entry *e);

/*
 * Removes the entry that is exactly [gpa, gpa + size) into *out (may be
 * NULL). -ENOENT if nothing is mapped at gpa, -EINVAL if the range only
 * partly matches an entry.
 */
int memtable_remove(struct memtable *t, uint64_t gpa, uint64_t size, struct memtable_entry *out);

/* Whether a and b are the same region: range, offset, access and backing file. */
bool memtable_entry_same(const struct memtable_entry *a, const struct memtable_entry *b);

/* The entry containing gpa, or NULL. */
const struct memtable_entry *memtable_lookup(const struct memtable *t, uint64_t gpa);

/* The lowest entry overlapping [gpa, gpa + size), or NULL. */
const struct memtable_entry *memtable_find_overlap(const struct memtable *t, uint64_t gpa,
						   uint64_t size);

#endif
