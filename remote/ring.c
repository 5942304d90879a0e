#include "ring.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "devops.h"
#include "dma_fd.h"
#include "log.h"
#include "session.h"
#include "shm_ring.h"

#define COMP "remote"

/*
 * While busy the poller gives the loop one pass this often, so that the
 * socket, eventfds and timers are served between ring requests.
 */
#define RING_YIELD_NS 50000ull

struct ring {
	struct session *s;
	struct event *ev;
	void *map;
	size_t len;
	struct shm_ring_header *hdr;
	struct shm_ring_slot *slots;
	/* Ours, not the ring's: the peer cannot change them. */
	uint32_t nslots, cons;
	uint64_t spin_ns;
	uint64_t idle_since; /* when the ring last had work (ns) */
	bool polling, broken;
};

/* A corrupt index: the ring is done for, the connection is not. */
static void ring_break(struct ring *r, int code, const char *why, uint32_t prod)
{
	r->broken = true;
	r->polling = false;
	r->s->stats->ring_broken++;
	atomic_store(&r->hdr->error, -code);
	atomic_store(&r->hdr->remote_state, SHM_RING_BROKEN);
	log_warn_rl(COMP,
		    "shared-memory ring broken: %s (producer index %u, consumer %u, %u slots); "
		    "serving the socket only",
		    why, prod, r->cons, r->nslots);
}

/* The request half of a slot, read once: the peer may change it under us. */
static void slot_load(const struct shm_ring_slot *sl, struct shm_ring_slot *out)
{
	const volatile struct shm_ring_slot *v = sl;

	memset(out, 0, sizeof(*out));
	out->op = v->op;
	out->region = v->region;
	out->size = v->size;
	out->offset = v->offset;
	out->data = v->data;
}

/* The checks only the ring has; devops does bounds, flags and the region. */
static int slot_check(const struct shm_ring_slot *q, struct mpdev_error *err)
{
	if (q->op != SHM_RING_OP_READ && q->op != SHM_RING_OP_WRITE &&
	    q->op != SHM_RING_OP_POSTED_WRITE)
		return mpdev_error_set(err, EINVAL, "ring slot: unknown op %u", q->op);
	/* The native protocol's rule: one CPU access. */
	if (q->size != 1 && q->size != 2 && q->size != 4 && q->size != 8)
		return mpdev_error_set(err, EINVAL,
				       "ring slot: access width %u: region accesses are 1, 2, 4 or "
				       "8 bytes",
				       q->size);
	/* Config space keeps its replay shadow, which only the socket path records. */
	if (q->region == BACKEND_REGION_CONFIG)
		return mpdev_error_set(err, EINVAL,
				       "ring slot: config space is accessed on the socket only");
	return 0;
}

static void slot_run(struct ring *r, struct shm_ring_slot *sl)
{
	volatile struct shm_ring_slot *v = sl;
	struct mpdev_error err = { 0 };
	struct shm_ring_slot q;
	uint64_t data = 0;
	int rc;

	slot_load(sl, &q);
	rc = slot_check(&q, &err);
	if (rc == 0 && q.op == SHM_RING_OP_READ)
		rc = devops_region_read(r->s, q.region, q.offset, &data, q.size, &err);
	else if (rc == 0)
		rc = devops_region_write(r->s, q.region, q.offset, &q.data, q.size, &err);
	r->s->stats->ring_requests++;
	if (rc < 0) {
		r->s->stats->ring_errors++;
		log_info_rl(COMP, "ring slot %u failed: %s", r->cons, err.msg);
	}
	if (rc == 0 && q.op == SHM_RING_OP_POSTED_WRITE)
		r->s->stats->posted_writes++;
	v->rdata = data;
	v->status = rc;
}

/* Executes what was published up to prod; false if prod broke the ring. */
static bool run_published(struct ring *r, uint32_t prod)
{
	uint32_t avail = prod - r->cons;

	if (avail > r->nslots) {
		ring_break(r, EPROTO, "the producer index is more than a ring ahead", prod);
		return false;
	}
	while (avail--) {
		slot_run(r, &r->slots[r->cons & (r->nslots - 1)]);
		r->cons++;
		/* Release: the response is written before the client can see it counted. */
		atomic_store_explicit(&r->hdr->cons, r->cons, memory_order_release);
	}
	return true;
}

/*
 * Going to sleep. The client publishes (prod), then reads remote_state; we
 * store SLEEPING, then read prod, both sequentially consistent: one of us
 * sees the other's store. Either we see the new slot and go on, or the
 * client sees SLEEPING and sends RingWake (or both: a spare wake).
 */
static bool may_sleep(struct ring *r)
{
	uint32_t prod;

	atomic_store(&r->hdr->remote_state, SHM_RING_SLEEPING);
	atomic_thread_fence(memory_order_seq_cst);
	prod = atomic_load(&r->hdr->prod);
	if (prod == r->cons) {
		r->polling = false;
		r->s->stats->ring_sleeps++;
		return true;
	}
	atomic_store(&r->hdr->remote_state, SHM_RING_POLLING);
	return false;
}

/*
 * Back after one pass of the loop. Not event_active: an event activated
 * from its own callback runs again in the same pass, before any timer or
 * descriptor (libevent walks its active queue until it is empty). A timer
 * of zero is made active only after the next epoll_wait and with the other
 * expired timers (edu's deferred work is one).
 */
static void yield_pass(struct ring *r)
{
	static const struct timeval zero = { 0, 0 };

	evtimer_add(r->ev, &zero);
}

/* The clock is read every this many polls: a vDSO call is as long as a poll. */
#define RING_CLOCK_EVERY 16u

static void ring_poll(evutil_socket_t fd, short what, void *arg)
{
	struct ring *r = arg;
	uint64_t start = shm_ring_now_ns(), now;
	bool worked = false;

	if (!r->polling || r->broken)
		return;
	for (unsigned n = 1;; n++) {
		uint32_t prod = atomic_load_explicit(&r->hdr->prod, memory_order_acquire);

		if (prod != r->cons) {
			if (!run_published(r, prod))
				return;
			worked = true;
		} else {
			shm_ring_relax();
		}
		if (n % RING_CLOCK_EVERY)
			continue;
		now = shm_ring_now_ns();
		if (worked) {
			r->idle_since = now;
			worked = false;
		} else if (now - r->idle_since >= r->spin_ns && may_sleep(r)) {
			return;
		}
		if (now - start >= RING_YIELD_NS) {
			r->s->stats->ring_yields++;
			yield_pass(r);
			return;
		}
	}
}

int ring_wake(struct ring *r, struct mpdev_error *err)
{
	if (r->broken)
		return mpdev_error_set(
			err, EPROTO, "the shared-memory ring is broken (error %d): set up another",
			atomic_load(&r->hdr->error));
	if (r->polling)
		return 0;
	r->polling = true;
	r->s->stats->ring_wakes++;
	r->idle_since = shm_ring_now_ns();
	atomic_store(&r->hdr->remote_state, SHM_RING_POLLING);
	event_active(r->ev, EV_TIMEOUT, 0);
	return 0;
}

/* The header the client filled in, read once. */
static int check_header(const struct shm_ring_header *h, uint32_t nslots, struct mpdev_error *err)
{
	const volatile struct shm_ring_header *v = h;
	uint64_t magic = v->magic;
	uint32_t version = v->version, n = v->nslots;

	if (magic != SHM_RING_MAGIC || version != SHM_RING_VERSION || n != nslots)
		return mpdev_error_set(err, EINVAL,
				       "ring header: magic 0x%llx, version %u, %u slots: expected "
				       "0x%llx, %u, %u",
				       (unsigned long long)magic, version, n,
				       (unsigned long long)SHM_RING_MAGIC, SHM_RING_VERSION,
				       nslots);
	return 0;
}

int ring_create(struct session *s, int fd, uint32_t version, uint32_t nslots, uint32_t spin_us,
		uint32_t *granted, struct ring **out, struct mpdev_error *err)
{
	struct dma_fd_info fi;
	struct ring *r;
	size_t len;
	void *map;
	int rc;

	if (version != SHM_RING_VERSION)
		return mpdev_error_set(err, EPROTONOSUPPORT,
				       "ring layout version %u: this remote has version %u",
				       version, SHM_RING_VERSION);
	if (!shm_ring_nslots_ok(nslots))
		return mpdev_error_set(err, EINVAL,
				       "ring of %u slots: a power of two from %u to %u", nslots,
				       SHM_RING_MIN_SLOTS, SHM_RING_MAX_SLOTS);
	len = shm_ring_size(nslots);
	/* The memory table's rule, for the same reason: a shrunk file would SIGBUS us. */
	rc = dma_fd_inspect(fd, &fi, err);
	if (rc < 0) {
		char why[MPDEV_ERROR_MSG_MAX];

		memcpy(why, err->msg, sizeof(why));
		return mpdev_error_set(err, -rc, "ring memfd: %s", why);
	}
	if (!fi.writable)
		return mpdev_error_set(err, EACCES,
				       "ring memfd: open read-only; the ring is "
				       "written by both sides");
	if (fi.file_size != len)
		return mpdev_error_set(err, EINVAL,
				       "ring memfd: %llu bytes; %u slots take exactly %zu",
				       (unsigned long long)fi.file_size, nslots, len);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return mpdev_error_set(err, errno == EPERM ? EPERM : EINVAL,
				       "ring memfd: mmap: %s (sealed against writes?)",
				       strerror(errno));
	rc = check_header(map, nslots, err);
	r = rc == 0 ? calloc(1, sizeof(*r)) : NULL;
	if (rc == 0 && !r)
		rc = mpdev_error_set(err, ENOMEM, "out of memory");
	if (rc == 0) {
		r->ev = event_new(s->backend->base, -1, 0, ring_poll, r);
		if (!r->ev)
			rc = mpdev_error_set(err, ENOMEM, "event_new failed");
	}
	if (rc < 0) {
		free(r);
		munmap(map, len);
		return rc;
	}
	r->s = s;
	r->map = map;
	r->len = len;
	r->hdr = map;
	r->slots = shm_ring_slots(map);
	r->nslots = nslots;
	/* Whatever the peer left in prod: a wrong one breaks the ring at the first poll. */
	r->cons = 0;
	atomic_store(&r->hdr->cons, 0);
	atomic_store(&r->hdr->error, 0);
	spin_us = spin_us ? spin_us : SHM_RING_DEFAULT_SPIN_US;
	if (spin_us > SHM_RING_MAX_SPIN_US)
		spin_us = SHM_RING_MAX_SPIN_US;
	r->spin_ns = (uint64_t)spin_us * 1000;
	*granted = spin_us;
	s->stats->ring_setups++;
	*out = r;
	log_info(COMP, "shared-memory ring: %u slots, spinning %u us when idle", nslots, spin_us);
	return ring_wake(r, err);
}

void ring_destroy(struct ring *r)
{
	if (!r)
		return;
	if (r->ev)
		event_free(r->ev);
	munmap(r->map, r->len);
	free(r);
}
