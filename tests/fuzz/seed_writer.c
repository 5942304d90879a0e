#include "seed_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct {
	uint8_t b[SEED_MAX];
	size_t len;
	char dir[512];
	unsigned written;
} seed;

_Noreturn void seed_die(const char *what)
{
	fprintf(stderr, "fuzz_seeds: %s: %s\n", what, strerror(errno));
	exit(1);
}

void seed_open_dir(const char *root, const char *target)
{
	snprintf(seed.dir, sizeof(seed.dir), "%s/%s", root, target);
	if (mkdir(seed.dir, 0755) < 0 && errno != EEXIST)
		seed_die(seed.dir);
}

void seed_begin(void)
{
	seed.len = 0;
}

void seed_put(const void *p, size_t n)
{
	/* Records without descriptors pass no kinds at all; memcpy may not see that NULL. */
	if (n == 0)
		return;
	if (seed.len + n > SEED_MAX) {
		errno = EFBIG;
		seed_die("seed too large");
	}
	memcpy(seed.b + seed.len, p, n);
	seed.len += n;
}

void seed_record(uint8_t flags, const uint8_t *kinds, size_t nk, const void *data, size_t len)
{
	uint8_t hdr[3] = { (uint8_t)(flags | nk), (uint8_t)len, (uint8_t)(len >> 8) };

	seed_put(hdr, 1);
	seed_put(kinds, nk);
	seed_put(hdr + 1, 2);
	seed_put(data, len);
}

void seed_finish(const char *name)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%s", seed.dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(seed.b, 1, seed.len, f) != seed.len || fclose(f) != 0)
		seed_die(path);
	seed.written++;
}

unsigned seed_count(void)
{
	return seed.written;
}
