/*
 * The polled shared-memory ring (FEATURE_SHM_RING, docs/protocol.md 5.13):
 * the layout both sides map. libmpdev makes the memfd, fills the header and
 * passes it in RingSetup; the remote checks it once and from then on trusts
 * nothing in it but what it reads into a local copy.
 *
 * One page of header, then nslots slots of 64 bytes. Native byte order and
 * native structs: both ends are processes on one host. The fields each side
 * writes are on cache lines of their own, so that the client's stores to
 * prod do not bounce the line the remote stores cons to.
 *
 * Indexes run free (uint32_t, wrapping): slot i is slots[i & (nslots - 1)].
 * prod counts the slots the client has published, cons those the remote has
 * answered; the remote answers in order, so slot i's response is valid once
 * cons > i (modulo wrap).
 */
#ifndef MPDEV_SHM_RING_H
#define MPDEV_SHM_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SHM_RING_MAGIC	     0x474e49525644504dull /* "MPDVRING" in memory */
#define SHM_RING_VERSION     1u
#define SHM_RING_MIN_SLOTS   64u
#define SHM_RING_MAX_SLOTS   1024u
#define SHM_RING_SLOT_SIZE   64u
#define SHM_RING_HEADER_SIZE 4096u
#define SHM_RING_CACHELINE   64u
/* Spin limits the remote grants (RingSetupReply.spin_us). */
#define SHM_RING_DEFAULT_SPIN_US 100u
#define SHM_RING_MAX_SPIN_US	 10000u

enum shm_ring_op {
	SHM_RING_OP_NONE = 0,
	SHM_RING_OP_READ = 1,
	SHM_RING_OP_WRITE = 2,
	SHM_RING_OP_POSTED_WRITE = 3,
};

/* remote_state: only the remote stores it. */
enum shm_ring_state {
	SHM_RING_POLLING = 0,
	SHM_RING_SLEEPING = 1, /* the client must send RingWake after publishing */
	SHM_RING_BROKEN = 2,   /* never again: error says why; use the socket */
};

struct shm_ring_header {
	/* Written by the client before RingSetup, checked once by the remote. */
	uint64_t magic;
	uint32_t version;
	uint32_t nslots;
	/* The remote's line. */
	_Alignas(SHM_RING_CACHELINE) _Atomic uint32_t remote_state;
	_Atomic int32_t error; /* BROKEN: the negative errno that broke it */
	/* The client's line. */
	_Alignas(SHM_RING_CACHELINE) _Atomic uint32_t prod;
	/* The remote's second line: cons is polled by the client, state rarely. */
	_Alignas(SHM_RING_CACHELINE) _Atomic uint32_t cons;
};

/*
 * One access. The client writes the request half, then publishes it by
 * prod; the remote writes the response half, then publishes it by cons.
 */
struct shm_ring_slot {
	/* request (client) */
	uint32_t op; /* enum shm_ring_op */
	uint32_t region;
	uint32_t size; /* 1, 2, 4 or 8 */
	uint32_t reserved0;
	uint64_t offset;
	uint64_t data; /* a write's bytes, little-endian in the first size bytes */
	/* response (remote) */
	int32_t status; /* 0 or a negative errno */
	uint32_t reserved1;
	uint64_t rdata; /* a read's bytes */
	uint8_t reserved2[16];
};

_Static_assert(sizeof(struct shm_ring_slot) == SHM_RING_SLOT_SIZE, "one slot is 64 bytes");
_Static_assert(sizeof(struct shm_ring_header) <= SHM_RING_HEADER_SIZE, "the header fits its page");
_Static_assert(offsetof(struct shm_ring_header, prod) % SHM_RING_CACHELINE == 0 &&
		       offsetof(struct shm_ring_header, cons) % SHM_RING_CACHELINE == 0 &&
		       offsetof(struct shm_ring_header, remote_state) % SHM_RING_CACHELINE == 0,
	       "the two sides' fields are on cache lines of their own");

/* The memfd's exact size for nslots slots. */
static inline size_t shm_ring_size(uint32_t nslots)
{
	return SHM_RING_HEADER_SIZE + (size_t)nslots * SHM_RING_SLOT_SIZE;
}

static inline struct shm_ring_slot *shm_ring_slots(void *base)
{
	return (struct shm_ring_slot *)((uint8_t *)base + SHM_RING_HEADER_SIZE);
}

/* Whether nslots is one the protocol allows: a power of two in [MIN, MAX]. */
static inline int shm_ring_nslots_ok(uint32_t nslots)
{
	return nslots >= SHM_RING_MIN_SLOTS && nslots <= SHM_RING_MAX_SLOTS &&
	       (nslots & (nslots - 1)) == 0;
}

/* CLOCK_MONOTONIC through the vDSO: no system call inside either side's spin. */
static inline uint64_t shm_ring_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What a spinning CPU tells its sibling thread. */
static inline void shm_ring_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif
