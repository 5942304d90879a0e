/*
 * The QEMU 11.1 tier's disk pattern, shared by the guest program
 * (guest/q11_blk.c) and the host's checker (blk_pattern.c): every 8-byte
 * word is a function of the seed and its own byte offset only, so a word
 * written at the wrong place, a request cut short, a stale or zero sector
 * each read back as a mismatch, whatever request sizes wrote and read it.
 * The host picks a new seed per run: a backing file of an earlier run fails.
 */
#ifndef Q11_BLK_PATTERN_H
#define Q11_BLK_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* splitmix64's finalizer: neighbouring offsets give unrelated words. */
static inline uint64_t q11_pattern_word(uint64_t seed, uint64_t off)
{
	uint64_t z = seed ^ ((off >> 3) * UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* buf gets the pattern of [off, off + len); off and len multiples of 8. */
static inline void q11_pattern_fill(void *buf, uint64_t seed, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = q11_pattern_word(seed, off + i);

		memcpy((char *)buf + i, &w, 8);
	}
}

/*
 * Returns the number of 8-byte words of buf that differ from the pattern of
 * [off, off + len); *first gets the offset of the first one (unchanged when
 * none does).
 */
static inline uint64_t q11_pattern_check(const void *buf, uint64_t seed, uint64_t off, size_t len,
					 uint64_t *first)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w;

		memcpy(&w, (const char *)buf + i, 8);
		if (w != q11_pattern_word(seed, off + i) && !bad++)
			*first = off + i;
	}
	return bad;
}

#endif
