/*
 * libmpdev's end of the polled shared-memory ring (MPDEV_FEATURE_SHM_RING,
 * common/shm_ring.h, docs/protocol.md 5.13): the memfd, publishing slots,
 * waiting for answers, posted failures, and the RingWake when the remote
 * went to sleep.
 *
 * The remote is the only writer of cons, remote_state and the response
 * halves; we never trust cons to be sane (it may not pass what we
 * published) nor a status to be an errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "shm_ring.h"

#define RING_DEFAULT_SLOTS 256u
/* How a wait for an answer spends its time: spinning, then yielding, then sleeping in poll. */
#define WAIT_SPIN_NS	 20000ull
#define WAIT_YIELD_NS	 1000000ull
#define WAIT_POLL_MS	 1
#define WAIT_CHECK_EVERY 64u
#define MAX_ERRNO	 4095

struct client_ring {
	void *map;
	size_t len;
	struct shm_ring_header *hdr;
	struct shm_ring_slot *slots;
	uint32_t nslots;
	uint32_t prod;	 /* published by us */
	uint32_t reaped; /* answered and looked at (posted failures counted) */
	uint8_t *posted; /* per slot: the slot holds a posted write */
	unsigned spin_us;
	/* Once set the ring is not used again: every access fails with it. */
	struct mpdev_error failed;
};

static const char *region_name(uint32_t region)
{
	static const char *const names[] = { "BAR0", "BAR1", "BAR2",   "BAR3", "BAR4",
					     "BAR5", "ROM",  "config", "VGA" };

	return region < MPDEV_NUM_REGIONS ? names[region] : "region";
}

/* The ring is unusable from now on; dev->err gets the same words. */
static int ring_fail(struct mpdev *dev, struct client_ring *rg, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int ring_fail(struct mpdev *dev, struct client_ring *rg, int code, const char *fmt, ...)
{
	char msg[MPDEV_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mpdev_error_set(&rg->failed, code, "shared-memory ring: %s", msg);
	dev->err = rg->failed;
	return -code;
}

static int failed(struct mpdev *dev, struct client_ring *rg)
{
	dev->err = rg->failed;
	return -rg->failed.code;
}

/* A status from the ring as a negative errno (the remote is not trusted to send one). */
static int slot_status(const struct shm_ring_slot *sl)
{
	int32_t st = ((const volatile struct shm_ring_slot *)sl)->status;

	return st == 0 ? 0 : st < 0 && st >= -MAX_ERRNO ? st : -EPROTO;
}

/* Counts the failed posted writes among the slots answered up to cons. */
static void reap(struct mpdev *dev, struct client_ring *rg, uint32_t cons)
{
	for (; rg->reaped != cons; rg->reaped++) {
		uint32_t i = rg->reaped & (rg->nslots - 1);
		const struct shm_ring_slot *sl = &rg->slots[i];
		int st;

		if (!rg->posted[i])
			continue;
		rg->posted[i] = 0;
		st = slot_status(sl);
		if (st && !dev->posted_failures++)
			mpdev_error_set(&dev->first_posted_failure, -st,
					"posted %s write of %u bytes at 0x%llx (on the ring): %s",
					region_name(sl->region), sl->size,
					(unsigned long long)sl->offset, strerror(-st));
	}
}

/* The remote is gone if its end of the socket hung up. */
static int socket_gone(struct mpdev *dev)
{
	struct pollfd p = { .fd = dev->fd, .events = 0 };

	if (poll(&p, 1, WAIT_POLL_MS) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		dev->dead = EPIPE;
		mpdev_error_set(&dev->err, EPIPE,
				"remote closed the connection (while waiting on the ring)");
		return -EPIPE;
	}
	return 0;
}

/*
 * Until the remote has answered every slot before want (cons reaches it):
 * spinning first, then yielding the CPU, then sleeping in poll on the
 * socket (which also notices a remote that died), up to the handle's timeout.
 */
static int wait_for(struct mpdev *dev, struct client_ring *rg, uint32_t want)
{
	uint64_t start = shm_ring_now_ns(),
		 deadline = start + (uint64_t)dev->timeout_ms * 1000000ull;

	for (unsigned n = 0;; n++) {
		uint32_t cons = atomic_load_explicit(&rg->hdr->cons, memory_order_acquire);
		uint64_t t;

		if (cons - rg->reaped > rg->prod - rg->reaped)
			return ring_fail(dev, rg, EPROTO,
					 "the remote's consumer index %u is past what was "
					 "published (%u)",
					 cons, rg->prod);
		if (cons - rg->reaped >= want - rg->reaped) {
			reap(dev, rg, cons);
			return 0;
		}
		/* Only cons in the tight loop: the clock and the state now and then. */
		if (n % WAIT_CHECK_EVERY) {
			shm_ring_relax();
			continue;
		}
		if (atomic_load_explicit(&rg->hdr->remote_state, memory_order_relaxed) ==
		    SHM_RING_BROKEN)
			return ring_fail(dev, rg, EPROTO,
					 "the remote found it corrupt and stopped polling it "
					 "(error %d): accesses fail until mpdev_ring_disable()",
					 atomic_load(&rg->hdr->error));
		t = shm_ring_now_ns();
		if (t > deadline)
			return ring_fail(dev, rg, ETIMEDOUT,
					 "no answer from the remote within %d ms", dev->timeout_ms);
		if (t - start < WAIT_SPIN_NS)
			shm_ring_relax();
		else if (t - start < WAIT_YIELD_NS)
			sched_yield();
		else if (socket_gone(dev) < 0)
			return -EPIPE;
	}
}

/* RingWake, posted and sent by hand: client_post would drain the ring first. */
static int send_wake(struct mpdev *dev, struct client_ring *rg)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__RingWake body = MPDEV__RING_WAKE__INIT;
	int r;

	req.body_case = MPDEV__ENVELOPE__BODY_RING_WAKE;
	req.ring_wake = &body;
	req.id = (dev->next_id++) | CLIENT_POSTED_ID_BIT;
	req.kind = MPDEV__KIND__KIND_POSTED;
	r = wire_send(dev->fd, &req, NULL, 0);
	if (r == -EPIPE || r == -ECONNRESET) {
		dev->dead = EPIPE;
		return mpdev_error_set(&dev->err, EPIPE, "remote closed the connection");
	}
	if (r < 0)
		return ring_fail(dev, rg, -r, "sending RingWake: %s", strerror(-r));
	return 0;
}

/* Publishes one access; *idx gets its index. Waits only for a free slot. */
static int publish(struct mpdev *dev, struct client_ring *rg, uint32_t op, uint32_t region,
		   uint64_t offset, uint64_t data, uint32_t size, uint32_t *idx)
{
	volatile struct shm_ring_slot *sl;
	uint32_t i;
	int r;

	if (rg->prod - rg->reaped >= rg->nslots) {
		r = wait_for(dev, rg, rg->prod - rg->nslots + 1);
		if (r < 0)
			return r;
	}
	i = rg->prod & (rg->nslots - 1);
	sl = &rg->slots[i];
	sl->op = op;
	sl->region = region;
	sl->size = size;
	sl->offset = offset;
	sl->data = data;
	rg->posted[i] = op == SHM_RING_OP_POSTED_WRITE;
	*idx = rg->prod++;
	/*
	 * Sequentially consistent, against the remote's SLEEPING store and
	 * its re-read of prod: either it sees this slot, or we see SLEEPING.
	 */
	atomic_store(&rg->hdr->prod, rg->prod);
	switch (atomic_load(&rg->hdr->remote_state)) {
	case SHM_RING_SLEEPING:
		return send_wake(dev, rg);
	case SHM_RING_BROKEN:
		return ring_fail(dev, rg, EPROTO,
				 "the remote found it corrupt and stopped polling it (error %d)",
				 atomic_load(&rg->hdr->error));
	default:
		return 0;
	}
}

/* A failure on a dead connection: reconnect where asked to (the access is not repeated). */
static int done(struct mpdev *dev, int r, uint32_t region, bool write)
{
	char what[32];

	snprintf(what, sizeof(what), "%s %s", region_name(region), write ? "write" : "read");
	return r == -EPIPE ? client_no_retry(dev, r, what) : r;
}

static int access_check(struct mpdev *dev, uint32_t size)
{
	if (dev->dead)
		return -dev->dead;
	if (dev->ring->failed.code)
		return failed(dev, dev->ring);
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return mpdev_error_set(&dev->err, EINVAL,
				       "access width %u: region accesses are 1, 2, 4 or 8 bytes",
				       size);
	return 0;
}

/* The answer of slot idx, once the remote has counted it. */
static int answer(struct mpdev *dev, struct client_ring *rg, uint32_t idx, uint32_t region,
		  uint64_t offset, uint32_t size, bool write, uint64_t *data)
{
	const struct shm_ring_slot *sl = &rg->slots[idx & (rg->nslots - 1)];
	int r = wait_for(dev, rg, idx + 1), st;

	if (r < 0)
		return r;
	st = slot_status(sl);
	if (st)
		return mpdev_error_set(&dev->err, -st,
				       "%s %s of %u bytes at 0x%llx (on the ring): %s",
				       region_name(region), write ? "write" : "read", size,
				       (unsigned long long)offset, strerror(-st));
	if (data)
		*data = ((const volatile struct shm_ring_slot *)sl)->rdata;
	return 0;
}

int ring_region_read(struct mpdev *dev, uint32_t region, uint64_t offset, void *data, uint32_t size)
{
	struct client_ring *rg = dev->ring;
	uint64_t v = 0;
	uint32_t idx;
	int r;

	mpdev_error_clear(&dev->err);
	r = access_check(dev, size);
	if (r == 0)
		r = publish(dev, rg, SHM_RING_OP_READ, region, offset, 0, size, &idx);
	if (r == 0)
		r = answer(dev, rg, idx, region, offset, size, false, &v);
	if (r == 0)
		memcpy(data, &v, size); /* little-endian: the first size bytes */
	return done(dev, r, region, false);
}

int ring_region_write(struct mpdev *dev, uint32_t region, uint64_t offset, const void *data,
		      uint32_t size, bool posted)
{
	struct client_ring *rg = dev->ring;
	uint64_t v = 0;
	uint32_t idx;
	int r;

	mpdev_error_clear(&dev->err);
	r = access_check(dev, size);
	if (r == 0) {
		memcpy(&v, data, size);
		r = publish(dev, rg, posted ? SHM_RING_OP_POSTED_WRITE : SHM_RING_OP_WRITE, region,
			    offset, v, size, &idx);
	}
	if (r == 0 && !posted)
		r = answer(dev, rg, idx, region, offset, size, true, NULL);
	return done(dev, r, region, true);
}

void ring_drain(struct mpdev *dev)
{
	struct client_ring *rg = dev->ring;

	/* A failure stays in rg->failed; the socket request goes on regardless. */
	if (rg && !rg->failed.code && !dev->dead && rg->reaped != rg->prod)
		wait_for(dev, rg, rg->prod);
}

void ring_forget(struct mpdev *dev)
{
	struct client_ring *rg = dev->ring;
	uint32_t cons;

	if (!rg)
		return;
	cons = atomic_load_explicit(&rg->hdr->cons, memory_order_acquire);
	if (!rg->failed.code && cons - rg->reaped <= rg->prod - rg->reaped)
		reap(dev, rg, cons);
	/* What the remote never answered died with it, as unconfirmed socket posts do. */
	for (; rg->reaped != rg->prod; rg->reaped++)
		if (rg->posted[rg->reaped & (rg->nslots - 1)])
			dev->posted_lost++;
	munmap(rg->map, rg->len);
	free(rg->posted);
	free(rg);
	dev->ring = NULL;
}

/* The memfd the remote accepts: sealed so that it can never shrink under either mapping. */
static int make_ring(struct mpdev *dev, struct client_ring *rg, uint32_t nslots)
{
	int fd;

	rg->len = shm_ring_size(nslots);
	fd = memfd_create("mpdev-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return mpdev_error_set(&dev->err, errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)rg->len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int e = errno;

		close(fd);
		return mpdev_error_set(&dev->err, e, "ring memfd: %s", strerror(e));
	}
	rg->map = mmap(NULL, rg->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rg->map == MAP_FAILED) {
		int e = errno;

		rg->map = NULL;
		close(fd);
		return mpdev_error_set(&dev->err, e, "ring mmap: %s", strerror(e));
	}
	rg->hdr = rg->map;
	rg->slots = shm_ring_slots(rg->map);
	rg->nslots = nslots;
	rg->hdr->magic = SHM_RING_MAGIC;
	rg->hdr->version = SHM_RING_VERSION;
	rg->hdr->nslots = nslots;
	return fd;
}

static int ring_setup(struct mpdev *dev, struct client_ring *rg, int fd, unsigned spin_us)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__RingSetup body = MPDEV__RING_SETUP__INIT;
	struct wire_msg reply;
	int r;

	body.version = SHM_RING_VERSION;
	body.slots = rg->nslots;
	body.spin_us = spin_us;
	req.body_case = MPDEV__ENVELOPE__BODY_RING_SETUP;
	req.ring_setup = &body;
	r = client_request(dev, &req, &fd, 1, &reply);
	if (r < 0)
		return client_error_wrap(dev, r, "RingSetup");
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_RING_SETUP_REPLY);
	if (r == 0)
		rg->spin_us = reply.env->ring_setup_reply->spin_us;
	wire_msg_release(&reply);
	return r;
}

int mpdev_ring_enable(struct mpdev *dev, unsigned slots, unsigned spin_us)
{
	const uint64_t need = MPDEV_FEATURE_SHM_RING | MPDEV_FEATURE_POSTED_WRITES;
	struct client_ring *rg;
	int fd, r;

	if (dev->dead)
		return -dev->dead;
	if (dev->ring)
		return mpdev_error_set(&dev->err, EBUSY, "the handle already has a ring");
	if ((dev->features & need) != need)
		return mpdev_error_set(&dev->err, ENOTSUP,
				       "the shared-memory ring needs features 0x%llx negotiated "
				       "(ask for MPDEV_FEATURE_SHM_RING and "
				       "MPDEV_FEATURE_POSTED_WRITES in mpdev_options.features); "
				       "have 0x%llx",
				       (unsigned long long)need, (unsigned long long)dev->features);
	slots = slots ? slots : RING_DEFAULT_SLOTS;
	if (!shm_ring_nslots_ok(slots))
		return mpdev_error_set(&dev->err, EINVAL,
				       "ring of %u slots: a power of two from %u to %u", slots,
				       SHM_RING_MIN_SLOTS, SHM_RING_MAX_SLOTS);
	rg = calloc(1, sizeof(*rg));
	if (rg)
		rg->posted = calloc(slots, 1);
	if (!rg || !rg->posted) {
		free(rg);
		return mpdev_error_set(&dev->err, ENOMEM, "out of memory");
	}
	fd = make_ring(dev, rg, slots);
	r = fd < 0 ? fd : ring_setup(dev, rg, fd, spin_us);
	if (fd >= 0)
		close(fd); /* the mappings keep the memory */
	if (r < 0) {
		if (rg->map)
			munmap(rg->map, rg->len);
		free(rg->posted);
		free(rg);
		return r;
	}
	dev->ring = rg;
	return 0;
}

int mpdev_ring_disable(struct mpdev *dev)
{
	ring_drain(dev);
	ring_forget(dev);
	return 0;
}
