/*
 * What every fuzz target shares: the input format (a sequence of packets,
 * each with the descriptors that "arrive" with it), the descriptors those
 * stand for, and the leak checks between inputs. docs/fuzzing.md describes
 * the format; tests/fuzz/fuzz_seeds.c writes it.
 *
 * One packet record:
 *
 *   u8   ctl       low 4 bits: descriptor count (0-15);
 *                  FUZZ_CTL_POKE: afterwards write every kept eventfd
 *                  (the VMM's side: a guest EOI on a resamplefd, an unmask)
 *   u8   kind[n]   one per descriptor (enum fuzz_fd_kind, parameter in the high nibble)
 *   u16  len       little-endian; cut to what the input still holds
 *   u8   data[len] the packet (native: an encoded Envelope; mpqemu: header + data)
 */
#ifndef MPDEV_FUZZ_INPUT_H
#define MPDEV_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_CTL_NFDS 0x0fu
#define FUZZ_CTL_POKE 0x10u
#define FUZZ_MAX_FDS  15

/* Low nibble of a kind byte; the high nibble is a parameter (memfd pages, ...). */
enum fuzz_fd_kind {
	FUZZ_FD_EVENTFD = 0,	  /* kept: poked with FUZZ_CTL_POKE */
	FUZZ_FD_MEMFD_SEALED = 1, /* 1 + (param & 7) pages, F_SEAL_SHRINK (param & 8: all seals) */
	FUZZ_FD_MEMFD_UNSEALED = 2, /* 1 + (param & 7) pages */
	FUZZ_FD_MEMFD_RDONLY = 3,   /* a sealed memfd reopened read-only */
	FUZZ_FD_MEMFD_WRONLY = 4,   /* a sealed memfd reopened write-only */
	FUZZ_FD_PIPE_READ = 5,
	FUZZ_FD_PIPE_WRITE = 6,
	FUZZ_FD_SOCKET = 7,
	FUZZ_FD_DEVNULL = 8,
	FUZZ_FD_DIRECTORY = 9,
	FUZZ_FD_DUP_PREV = 10, /* the same open file as the packet's previous descriptor */
	FUZZ_FD_KEPT = 11,     /* the same open file as kept eventfd number param */
	FUZZ_FD_TMPFILE = 12,  /* a regular file of 1 + (param & 7) pages */
	FUZZ_FD_KINDS
};

#define FUZZ_KIND(kind, param) ((uint8_t)((kind) | (param) << 4))

struct fuzz_packet {
	uint8_t ctl;
	size_t nfds;
	const uint8_t *kinds;
	const uint8_t *data;
	size_t len;
};

struct fuzz_reader {
	const uint8_t *p;
	size_t left;
};

void fuzz_reader_init(struct fuzz_reader *r, const uint8_t *data, size_t size);
/* The next packet record; false when the input is used up. */
bool fuzz_next_packet(struct fuzz_reader *r, struct fuzz_packet *pkt);

/* The peer's ends of what fuzz_make_fds handed out; closed with fuzz_fds_reset. */
#define FUZZ_MAX_KEPT 128

struct fuzz_fds {
	int kept[FUZZ_MAX_KEPT];
	bool is_eventfd[FUZZ_MAX_KEPT];
	size_t n;
};

void fuzz_fds_init(struct fuzz_fds *f);
/*
 * Creates the packet's descriptors into fds[0..pkt->nfds), which the caller
 * then owns. Aborts when the system refuses one: that is no finding, and a
 * short count would hide the input's meaning.
 */
void fuzz_make_fds(struct fuzz_fds *f, const struct fuzz_packet *pkt, int *fds);
/* Writes 1 to every kept eventfd. */
void fuzz_poke(struct fuzz_fds *f);
/* Closes everything kept. */
void fuzz_fds_reset(struct fuzz_fds *f);

/*
 * Open descriptors of this process. Targets count them at the start of each
 * input, not once: between inputs libFuzzer may start llvm-symbolizer (to
 * name a NEW_FUNC) and keep two pipes to it.
 */
int fuzz_count_fds(void);
/* What every target does first: SIGPIPE ignored; logs at error level (debug with FUZZ_VERBOSE),
 * since refused input logs warnings that at this rate would be all a run does. */
void fuzz_init_process(void);
/* A finding: "target: what[: why]" on stderr, then abort, so that libFuzzer keeps the input. */
_Noreturn void fuzz_fail(const char *target, const char *what, const char *why);

/* Aborts (a finding) if more descriptors are open than at baseline. */
void fuzz_check_fds(int baseline, const char *target);

#endif
