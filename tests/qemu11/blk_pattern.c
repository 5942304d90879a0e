/*
 * The host's half of the QEMU 11.1 tier's disk check (run-q11.sh -t
 * qemu-blk|mpdev-blk): once the guest has powered off, every byte of a
 * backing file (or of a file the host dumped out of the guest's ext2) must
 * be the pattern the guest wrote (blk_pattern.h).
 *
 *   blk-pattern FILE SEED BYTES   exit 0 when FILE is exactly BYTES long and
 *                                 all of it is the pattern of SEED
 *
 * Prints one line, "blk-pattern: FILE: PASS|FAIL detail".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_pattern.h"

#define CHUNK (1u << 20)

int main(int argc, char **argv)
{
	static uint64_t buf[CHUNK / 8];
	uint64_t seed, want, bad = 0, first = 0, off = 0;
	struct stat st;
	char *end;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: blk-pattern FILE SEED BYTES\n");
		return 2;
	}
	errno = 0;
	seed = strtoull(argv[2], &end, 0);
	if (errno || *end)
		return 2;
	want = strtoull(argv[3], &end, 0);
	if (errno || *end || want % 8)
		return 2;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		printf("blk-pattern: %s: FAIL cannot open: %s\n", argv[1], strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if ((uint64_t)st.st_size != want) {
		printf("blk-pattern: %s: FAIL %" PRIu64 " bytes, expected %" PRIu64 "\n", argv[1],
		       (uint64_t)st.st_size, want);
		close(fd);
		return 1;
	}
	while (off < want) {
		size_t n = want - off < CHUNK ? (size_t)(want - off) : CHUNK;
		ssize_t r = pread(fd, buf, n, (off_t)off);

		if (r != (ssize_t)n) {
			printf("blk-pattern: %s: FAIL short read at %" PRIu64 "\n", argv[1], off);
			close(fd);
			return 1;
		}
		bad += q11_pattern_check(buf, seed, off, n, bad ? &(uint64_t){ 0 } : &first);
		off += n;
	}
	close(fd);
	if (bad) {
		printf("blk-pattern: %s: FAIL %" PRIu64 " of %" PRIu64
		       " words differ, the first at byte %" PRIu64 "\n",
		       argv[1], bad, want / 8, first);
		return 1;
	}
	printf("blk-pattern: %s: PASS all %" PRIu64 " bytes are the pattern of seed 0x%" PRIx64
	       "\n",
	       argv[1], want, seed);
	return 0;
}
