/*
 * fuzz_seeds' output: one seed file at a time, built of packet records in
 * the format fuzz_input.h reads, written under ROOT/TARGET/seed-NAME.
 * Shared by the native, mpqemu and client seeds (fuzz_seeds.c) and the
 * vfio-user ones (fuzz_seeds_vfio_user.c).
 */
#ifndef MPDEV_SEED_WRITER_H
#define MPDEV_SEED_WRITER_H

#include <stddef.h>
#include <stdint.h>

/* The largest seed file, and so the largest record a writer builds. */
#define SEED_MAX 65536

/* Where the next seeds go: ROOT/TARGET, made if missing. */
void seed_open_dir(const char *root, const char *target);
/* Starts a seed: nothing recorded yet. */
void seed_begin(void);
/* Appends raw bytes (n may be 0, p then NULL). */
void seed_put(const void *p, size_t n);
/* One packet record: ctl's flags, the descriptor kinds, the bytes. */
void seed_record(uint8_t flags, const uint8_t *kinds, size_t nk, const void *data, size_t len);
/* Writes the seed as seed-NAME in the current directory. */
void seed_finish(const char *name);
/* Seeds written so far, in every directory. */
unsigned seed_count(void);
/* Says what failed, with errno's words, and exits 1. */
_Noreturn void seed_die(const char *what);

#endif
