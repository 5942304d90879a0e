/*
 * The IOHUB state machine, with the test playing KVM: it owns one end of each
 * irqfd/resamplefd (an eventfd whose dup the hub gets), reads its irqfd copy
 * to see the hub assert, and writes its resamplefd copy for a guest EOI.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "efdio.h"
#include "iohub.h"
#include "testutil.h"

/* Enough loop turns for an already-readable eventfd; never a timed wait. */
#define LOOP_TURNS 64

/* KVM's ends of one pirq's pair. */
struct kvm {
	int irqfd;
	int resamplefd;
};

struct fixture {
	struct event_base *base;
	struct iohub *hub;
	const struct iohub_stats *st;
};

static struct fixture setup(unsigned npirqs)
{
	struct fixture f;
	struct mpdev_error err = { 0 };

	/* Its descriptors first (a no-op if a test chose its method already), then counts. */
	ck_assert_int_eq(efdio_init("auto", &err), 0);
	f.base = event_base_new();
	ck_assert_ptr_nonnull(f.base);
	ck_assert_int_eq(iohub_create(f.base, npirqs, &f.hub, &err), 0);
	ck_assert_ptr_nonnull(f.hub);
	ck_assert_int_eq(err.code, 0);
	ck_assert_uint_eq(iohub_npirqs(f.hub), npirqs);
	f.st = iohub_get_stats(f.hub);
	ck_assert_ptr_nonnull(f.st);
	return f;
}

static void teardown(struct fixture *f)
{
	iohub_destroy(f->hub);
	event_base_free(f->base);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static int dup_fd(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	ck_assert_int_ge(d, 0);
	return d;
}

/* Makes KVM's pair for pirq and hands the hub dups of it (resample: 0 for irqfd only). */
static struct kvm attach(struct fixture *f, unsigned pirq, int resample)
{
	struct mpdev_error err = { 0 };
	struct kvm k = { .irqfd = new_eventfd(), .resamplefd = resample ? new_eventfd() : -1 };

	ck_assert_int_eq(iohub_set_irqfd(f->hub, pirq, dup_fd(k.irqfd),
					 resample ? dup_fd(k.resamplefd) : -1, &err),
			 0);
	ck_assert_int_eq(err.code, 0);
	return k;
}

static void kvm_close(struct kvm *k)
{
	if (k->irqfd >= 0)
		ck_assert_int_eq(close(k->irqfd), 0);
	if (k->resamplefd >= 0)
		ck_assert_int_eq(close(k->resamplefd), 0);
	k->irqfd = k->resamplefd = -1;
}

/* How many times the irqfd was written since the last look (0: quiet). Drains it. */
static uint64_t fired(const struct kvm *k)
{
	uint64_t cnt = 0;
	ssize_t n = read(k->irqfd, &cnt, sizeof(cnt));

	if (n < 0) {
		ck_assert_int_eq(errno, EAGAIN);
		return 0;
	}
	ck_assert_int_eq(n, sizeof(cnt));
	ck_assert_uint_gt(cnt, 0);
	return cnt;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	ck_assert_int_ge(poll(&p, 1, 0), 0);
	return !!(p.revents & POLLIN);
}

static void write_eventfd(int fd, uint64_t v)
{
	ck_assert_int_eq(write(fd, &v, sizeof(v)), sizeof(v));
}

static void run_loop(struct fixture *f)
{
	for (int i = 0; i < LOOP_TURNS; i++)
		ck_assert_int_ge(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
}

/* Guest EOI: KVM writes the resamplefd; the loop must handle it (exactly one wakeup). */
static void eoi(struct fixture *f, const struct kvm *k)
{
	uint64_t before = f->st->resamples;

	write_eventfd(k->resamplefd, 1);
	for (int i = 0; i < LOOP_TURNS && f->st->resamples == before; i++)
		ck_assert_int_ge(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
	run_loop(f);
	ck_assert_uint_eq(f->st->resamples, before + 1);
	/* Not drained: edge-triggered, the next EOI is a wakeup of its own (iohub.c). */
	ck_assert(readable(k->resamplefd));
}

static void check_stats(struct fixture *f, uint64_t signals, uint64_t resamples, uint64_t reasserts,
			uint64_t lost)
{
	ck_assert_uint_eq(f->st->irqfd_signals, signals);
	ck_assert_uint_eq(f->st->resamples, resamples);
	ck_assert_uint_eq(f->st->reasserts, reasserts);
	ck_assert_uint_eq(f->st->lost_asserts, lost);
	ck_assert_uint_eq(f->st->signal_errors, 0);
}

/* A resample notifier's record of its calls. */
struct note {
	struct fixture *f;
	const struct kvm *k; /* the pirq's KVM ends, to see what was signalled by then */
	unsigned calls;
	unsigned pirq;
	unsigned level_at_call;
	uint64_t signals_at_call;
	uint64_t reasserts_at_call;
	int irqfd_pending_at_call;
	int deassert; /* VFIO INTx style: the source drops its line here */
};

static void notifier(void *opaque, unsigned pirq)
{
	struct note *n = opaque;

	n->calls++;
	n->pirq = pirq;
	n->level_at_call = iohub_get_level(n->f->hub, pirq);
	n->signals_at_call = n->f->st->irqfd_signals;
	n->reasserts_at_call = n->f->st->reasserts;
	n->irqfd_pending_at_call = n->k ? readable(n->k->irqfd) : -1;
	if (n->deassert)
		ck_assert_int_eq(iohub_set_irq(n->f->hub, pirq, 0), 0);
}

static void other_notifier(void *opaque, unsigned pirq)
{
	notifier(opaque, pirq);
}

START_TEST(two_sources_share_a_line)
{
	struct fixture f = setup(4);
	struct kvm k = attach(&f, 2, 1);
	struct note n = { .f = &f, .k = &k };

	ck_assert_int_eq(iohub_add_notifier(f.hub, 2, notifier, &n), 0);

	/* First source: 0 -> 1, one signal. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 2), 1);
	ck_assert_uint_eq(fired(&k), 1);
	/* Second source on the same pirq: level 2, nothing new for KVM. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 2), 2);
	ck_assert_uint_eq(fired(&k), 0);
	/* One of them drops: still asserted, no signal. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 2), 1);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 1, 0, 0, 0);

	/* EOI at level 1: the notifier runs first, then the line is raised again. */
	eoi(&f, &k);
	ck_assert_uint_eq(n.calls, 1);
	ck_assert_uint_eq(n.pirq, 2);
	ck_assert_uint_eq(n.level_at_call, 1);
	ck_assert_uint_eq(n.signals_at_call, 1);
	ck_assert_uint_eq(n.reasserts_at_call, 0);
	ck_assert_int_eq(n.irqfd_pending_at_call, 0);
	ck_assert_uint_eq(fired(&k), 1);
	check_stats(&f, 2, 1, 1, 0);

	/* The last one drops; the next EOI finds nothing to raise. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 2), 0);
	ck_assert_uint_eq(fired(&k), 0);
	eoi(&f, &k);
	ck_assert_uint_eq(n.calls, 2);
	ck_assert_uint_eq(n.level_at_call, 0);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 2, 2, 1, 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(deassert_then_eoi_is_quiet_and_level_does_not_underflow)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);

	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 1, 1, 0, 0);

	/* Deasserting an idle line, twice: level stays 0. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 0);
	ck_assert_uint_eq(fired(&k), 0);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 0);

	/* A single assert is still 0 -> 1 and fires; a single deassert lowers it. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	ck_assert_uint_eq(fired(&k), 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 0);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 2, 3, 0, 0);

	/* Any non-zero level counts as high. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, -7), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	ck_assert_uint_eq(fired(&k), 1);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(assert_eoi_deassert_eoi)
{
	struct fixture f = setup(2);
	struct kvm k = attach(&f, 1, 1);

	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 1); /* still high: raised again */
	check_stats(&f, 2, 1, 1, 0);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 1); /* and again, for every EOI while high */
	check_stats(&f, 3, 2, 2, 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 0), 0);
	ck_assert_uint_eq(fired(&k), 0);
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 3, 3, 2, 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(assert_deassert_assert_fires_twice)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);

	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	/* Two 0 -> 1 edges, two writes (the eventfd adds them up). */
	ck_assert_uint_eq(fired(&k), 2);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	check_stats(&f, 2, 0, 0, 0);
	run_loop(&f);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 2, 0, 0, 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(eoi_with_nothing_asserted_is_quiet)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);
	struct note n = { .f = &f, .k = &k };

	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n), 0);
	for (int i = 1; i <= 3; i++) {
		eoi(&f, &k);
		ck_assert_uint_eq(fired(&k), 0);
		ck_assert_uint_eq(n.calls, i);
		check_stats(&f, 0, i, 0, 0);
	}
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(coalesced_eois_make_one_reassert)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);
	struct note n = { .f = &f, .k = &k };

	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	/* Three EOIs before the loop gets to run: one wakeup covers them all. */
	write_eventfd(k.resamplefd, 1);
	write_eventfd(k.resamplefd, 1);
	write_eventfd(k.resamplefd, 1);
	run_loop(&f);
	ck_assert_uint_eq(n.calls, 1);
	ck_assert_uint_eq(fired(&k), 1);
	check_stats(&f, 2, 1, 1, 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(notifier_gets_its_pirq_and_opaque)
{
	struct fixture f = setup(8);
	struct kvm k5 = attach(&f, 5, 1), k6 = attach(&f, 6, 1);
	struct note a = { .f = &f, .k = &k5 }, b = { .f = &f, .k = &k5 }, c = { .f = &f, .k = &k6 };

	/* Same function, different opaques; another function on another pirq. */
	ck_assert_int_eq(iohub_add_notifier(f.hub, 5, notifier, &a), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 5, notifier, &b), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 6, other_notifier, &c), 0);

	eoi(&f, &k5);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_uint_eq(b.calls, 1);
	ck_assert_uint_eq(c.calls, 0);
	ck_assert_uint_eq(a.pirq, 5);
	ck_assert_uint_eq(b.pirq, 5);

	eoi(&f, &k6);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_uint_eq(b.calls, 1);
	ck_assert_uint_eq(c.calls, 1);
	ck_assert_uint_eq(c.pirq, 6);

	/* Removing one (fn, opaque) leaves the other with the same fn. */
	iohub_remove_notifier(f.hub, 5, notifier, &a);
	eoi(&f, &k5);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_uint_eq(b.calls, 2);
	/* Removal needs the right pirq and fn. */
	iohub_remove_notifier(f.hub, 6, notifier, &b);
	iohub_remove_notifier(f.hub, 5, other_notifier, &b);
	iohub_remove_notifier(f.hub, 5, notifier, &c);
	iohub_remove_notifier(f.hub, 99, notifier, &b); /* out of range: harmless */
	eoi(&f, &k5);
	ck_assert_uint_eq(b.calls, 3);
	iohub_remove_notifier(f.hub, 5, notifier, &b);
	iohub_remove_notifier(f.hub, 6, other_notifier, &c);
	eoi(&f, &k5);
	eoi(&f, &k6);
	ck_assert_uint_eq(a.calls, 1);
	ck_assert_uint_eq(b.calls, 3);
	ck_assert_uint_eq(c.calls, 1);
	check_stats(&f, 0, 6, 0, 0);

	teardown(&f);
	kvm_close(&k5);
	kvm_close(&k6);
}
END_TEST

START_TEST(notifier_that_deasserts_prevents_the_reassert)
{
	struct fixture f = setup(2);
	struct kvm k = attach(&f, 1, 1);
	struct note n = { .f = &f, .k = &k, .deassert = 1 };

	ck_assert_int_eq(iohub_add_notifier(f.hub, 1, notifier, &n), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	eoi(&f, &k);
	/* The source unmasked and found its line low: no re-assert. */
	ck_assert_uint_eq(n.calls, 1);
	ck_assert_uint_eq(n.level_at_call, 1);
	ck_assert_uint_eq(iohub_get_level(f.hub, 1), 0);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 1, 1, 0, 0);

	/* With two sources high, one dropping in the notifier still leaves a re-assert. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	eoi(&f, &k);
	ck_assert_uint_eq(n.level_at_call, 2);
	ck_assert_uint_eq(iohub_get_level(f.hub, 1), 1);
	ck_assert_uint_eq(fired(&k), 1);
	check_stats(&f, 3, 2, 1, 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(notifier_limit_and_removal)
{
	struct fixture f = setup(2);
	struct kvm k = attach(&f, 0, 1);
	struct note n[IOHUB_MAX_NOTIFIERS + 1];

	memset(n, 0, sizeof(n));
	for (int i = 0; i <= IOHUB_MAX_NOTIFIERS; i++)
		n[i].f = &f;
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n[i]), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n[IOHUB_MAX_NOTIFIERS]), -ENOSPC);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, other_notifier, &n[0]), -ENOSPC);
	/* The limit is per pirq. */
	ck_assert_int_eq(iohub_add_notifier(f.hub, 1, notifier, &n[IOHUB_MAX_NOTIFIERS]), 0);
	iohub_remove_notifier(f.hub, 1, notifier, &n[IOHUB_MAX_NOTIFIERS]);
	/* No function: refused. */
	ck_assert_int_eq(iohub_add_notifier(f.hub, 1, NULL, &n[0]), -EINVAL);

	eoi(&f, &k);
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		ck_assert_uint_eq(n[i].calls, 1);
	ck_assert_uint_eq(n[IOHUB_MAX_NOTIFIERS].calls, 0);

	/* Freeing a slot makes room for the refused one. */
	iohub_remove_notifier(f.hub, 0, notifier, &n[1]);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n[IOHUB_MAX_NOTIFIERS]), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n[1]), -ENOSPC);
	eoi(&f, &k);
	ck_assert_uint_eq(n[1].calls, 1);
	ck_assert_uint_eq(n[IOHUB_MAX_NOTIFIERS].calls, 1);
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		if (i != 1)
			ck_assert_uint_eq(n[i].calls, 2);

	/* All removed: none called. */
	for (int i = 0; i <= IOHUB_MAX_NOTIFIERS; i++)
		iohub_remove_notifier(f.hub, 0, notifier, &n[i]);
	eoi(&f, &k);
	ck_assert_uint_eq(n[0].calls, 2);
	ck_assert_uint_eq(n[IOHUB_MAX_NOTIFIERS].calls, 1);
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n[i]), 0);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(replacing_the_pair_while_asserted)
{
	struct fixture f = setup(2);
	struct kvm old = attach(&f, 0, 1), neu;
	struct note n = { .f = &f };
	int fds;

	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&old), 1);

	/* New pair: +2 for KVM's ends, +2 for the hub's dups, -2 for the old dups. */
	fds = testutil_count_fds(0);
	ck_assert_int_ge(fds, 0);
	neu = attach(&f, 0, 1);
	ck_assert_int_eq(testutil_count_fds(0), fds + 2);
	/* The new consumer sees the line high at once; the old one hears nothing more. */
	ck_assert_uint_eq(fired(&neu), 1);
	ck_assert_uint_eq(fired(&old), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	check_stats(&f, 2, 0, 0, 0);

	/* EOI on the old resamplefd: nobody listens any more. */
	write_eventfd(old.resamplefd, 1);
	run_loop(&f);
	ck_assert_uint_eq(n.calls, 0);
	ck_assert_uint_eq(fired(&neu), 0);
	ck_assert_uint_eq(fired(&old), 0);
	check_stats(&f, 2, 0, 0, 0);

	/* EOI on the new one: notifier, then re-assert on the new irqfd. */
	eoi(&f, &neu);
	ck_assert_uint_eq(n.calls, 1);
	ck_assert_uint_eq(fired(&neu), 1);
	ck_assert_uint_eq(fired(&old), 0);
	check_stats(&f, 3, 1, 1, 0);

	/* Replacing with an irqfd-only pair: the old resamplefd is closed too. */
	kvm_close(&old);
	fds = testutil_count_fds(0);
	old = neu;
	neu = attach(&f, 0, 0);
	ck_assert_int_eq(testutil_count_fds(0), fds + 1 + 1 - 2);
	ck_assert_uint_eq(fired(&neu), 1);
	write_eventfd(old.resamplefd, 1);
	run_loop(&f);
	ck_assert_uint_eq(n.calls, 1);
	ck_assert_uint_eq(fired(&old), 0);
	check_stats(&f, 4, 1, 1, 0);

	fds = testutil_count_fds(0);
	iohub_destroy(f.hub);
	ck_assert_int_eq(testutil_count_fds(0), fds - 1);
	event_base_free(f.base);
	kvm_close(&old);
	kvm_close(&neu);
}
END_TEST

START_TEST(removing_the_pair_keeps_the_level)
{
	struct fixture f = setup(1);
	struct mpdev_error err = { 0 };
	struct kvm k = attach(&f, 0, 1), k2;
	int fds;

	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);

	fds = testutil_count_fds(0);
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, -1, -1, &err), 0);
	ck_assert_int_eq(err.code, 0);
	ck_assert_int_eq(testutil_count_fds(0), fds - 2);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	/* Removing again is harmless. */
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, -1, -1, &err), 0);
	ck_assert_int_eq(testutil_count_fds(0), fds - 2);

	/* KVM's old ends are deaf now. */
	write_eventfd(k.resamplefd, 1);
	run_loop(&f);
	ck_assert_uint_eq(fired(&k), 0);
	check_stats(&f, 1, 0, 0, 0);

	/* A 0 -> 1 with nobody to tell: lost, but kept as level. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	check_stats(&f, 1, 0, 0, 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	check_stats(&f, 1, 0, 0, 2);
	ck_assert_uint_eq(fired(&k), 0);

	/* A new pair: the level is still up, so it fires at once. */
	k2 = attach(&f, 0, 1);
	ck_assert_uint_eq(fired(&k2), 1);
	check_stats(&f, 2, 0, 0, 2);
	eoi(&f, &k2);
	ck_assert_uint_eq(fired(&k2), 1);
	check_stats(&f, 3, 1, 1, 2);

	teardown(&f);
	kvm_close(&k);
	kvm_close(&k2);
}
END_TEST

START_TEST(resamplefd_without_irqfd_is_refused)
{
	struct fixture f = setup(2);
	struct mpdev_error err = { 0 };
	struct kvm k = attach(&f, 1, 1);
	int fds = testutil_count_fds(0);
	int efd = new_eventfd();

	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, -1, efd, &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_uint_gt(strlen(err.msg), 0);
	ck_assert_int_eq(testutil_count_fds(0), fds);

	/* Also on a pirq that has a full pair. */
	mpdev_error_clear(&err);
	efd = new_eventfd();
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 1, -1, efd, &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	/* Nothing was installed on pirq 0: an assert there has nobody to tell. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	check_stats(&f, 0, 0, 0, 1);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

/*
 * An eventfd the hub writes must never be one that wakes the hub: given as
 * both irqfd and resamplefd, or as one line's irqfd and another's
 * resamplefd, the hub would re-assert itself forever.
 */
START_TEST(self_waking_eventfds_are_refused)
{
	struct fixture f = setup(2);
	struct mpdev_error err = { 0 };
	struct kvm k = attach(&f, 1, 1);
	int fds = testutil_count_fds(0);
	int efd = new_eventfd();

	/* The same eventfd twice (a dup is the same open file). */
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, efd, dup_fd(efd), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "distinct"));
	ck_assert_int_eq(testutil_count_fds(0), fds);

	/* Line 1's resamplefd as line 0's irqfd, and line 1's irqfd as line 0's resamplefd. */
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, dup_fd(k.resamplefd), new_eventfd(), &err),
			 -EINVAL);
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, new_eventfd(), dup_fd(k.irqfd), &err), -EINVAL);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	ck_assert(iohub_fd_in_use(f.hub, k.irqfd, -1));
	ck_assert(!iohub_fd_in_use(f.hub, k.irqfd, 1));

	/* Re-giving a line the files it already has is a plain replacement. */
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 1, dup_fd(k.irqfd), dup_fd(k.resamplefd), &err), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(closing_kvm_copies_does_not_break_the_hub)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);
	int resample = k.resamplefd;
	struct kvm half = { .irqfd = -1, .resamplefd = resample };

	/* KVM drops its irqfd copy; the hub's dup keeps the eventfd alive. */
	ck_assert_int_eq(close(k.irqfd), 0);
	k.irqfd = -1;
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	check_stats(&f, 1, 0, 0, 0);
	eoi(&f, &half);
	check_stats(&f, 2, 1, 1, 0);
	eoi(&f, &half);
	check_stats(&f, 3, 2, 2, 0);

	/* Now the resamplefd copy too: no spurious wakeups, asserts still signalled. */
	ck_assert_int_eq(close(resample), 0);
	k.resamplefd = -1;
	run_loop(&f);
	check_stats(&f, 3, 2, 2, 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	run_loop(&f);
	check_stats(&f, 4, 2, 2, 0);

	teardown(&f);
}
END_TEST

static void set_blocking(int fd, bool blocking)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_eq(fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK), 0);
}

/*
 * The peer's copy of the irqfd is the same open file: it can clear
 * O_NONBLOCK and fill the counter. A write() would then block forever;
 * the hub signals through the kernel's eventfd_signal (AIO), which
 * saturates the counter instead: the edge is kept, nothing waits.
 */
START_TEST(full_blocking_irqfd_never_stalls_the_hub)
{
	struct fixture f = setup(1);
	struct kvm k = attach(&f, 0, 1);

	ck_assert_int_eq(efdio_get_method(), EFDIO_AIO);
	set_blocking(k.irqfd, true);
	write_eventfd(k.irqfd, UINT64_MAX - 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(f.st->signal_errors, 0);
	ck_assert_uint_eq(f.st->irqfd_signals, 1);
	set_blocking(k.irqfd, false);
	ck_assert_uint_eq(fired(&k), UINT64_MAX);
	/* The line is still high: the next EOI raises it again. */
	eoi(&f, &k);
	ck_assert_uint_eq(fired(&k), 1);
	ck_assert_uint_eq(f.st->reasserts, 1);
	teardown(&f);
	kvm_close(&k);
}
END_TEST

/* The io_uring fallback: the write waits in a kernel worker, and lands once there is room. */
START_TEST(full_blocking_irqfd_parks_an_io_uring_worker)
{
	struct mpdev_error err = { 0 };
	struct fixture f;
	struct kvm k;
	struct pollfd p;

	ck_assert_msg(efdio_init("io_uring", &err) == 0, "%s", err.msg);
	f = setup(1);
	k = attach(&f, 0, 1);
	set_blocking(k.irqfd, true);
	write_eventfd(k.irqfd, UINT64_MAX - 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(f.st->irqfd_signals, 1);
	set_blocking(k.irqfd, false);
	ck_assert_uint_eq(fired(&k), UINT64_MAX - 1);
	p = (struct pollfd){ .fd = k.irqfd, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ck_assert_uint_eq(fired(&k), 1);
	teardown(&f);
	kvm_close(&k);
	efdio_shutdown();
}
END_TEST

enum bad_kind { BAD_PIPE_R, BAD_PIPE_W, BAD_SOCKET, BAD_MEMFD, BAD_DEVNULL, BAD_NONE_OPEN };

/* A descriptor of the given kind, the only one left open by the making. */
static int make_bad(enum bad_kind kind)
{
	int p[2], fd = -1;

	switch (kind) {
	case BAD_PIPE_R:
	case BAD_PIPE_W:
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		fd = p[kind == BAD_PIPE_R ? 0 : 1];
		ck_assert_int_eq(close(p[kind == BAD_PIPE_R ? 1 : 0]), 0);
		break;
	case BAD_SOCKET:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		break;
	case BAD_MEMFD:
		fd = memfd_create("iohub-test", MFD_CLOEXEC);
		break;
	case BAD_DEVNULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case BAD_NONE_OPEN:
		/* A number with nothing behind it. */
		return 1000000;
	}
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(non_eventfds_are_refused)
{
	static const char *const names[] = { "pipe read end", "pipe write end", "socket",
					     "memfd",	      "/dev/null",	"unopened number" };
	struct fixture f = setup(2);
	struct kvm k = attach(&f, 1, 1);

	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k), 1);
	for (enum bad_kind kind = BAD_PIPE_R; kind <= BAD_NONE_OPEN; kind++) {
		for (int as_resample = 0; as_resample <= 1; as_resample++) {
			struct mpdev_error err = { 0 };
			int fds = testutil_count_fds(0);
			int bad = make_bad(kind), ret;

			if (as_resample)
				ret = iohub_set_irqfd(f.hub, 0, new_eventfd(), bad, &err);
			else
				ret = iohub_set_irqfd(f.hub, 0, bad, -1, &err);
			ck_assert_msg(ret == -EINVAL, "%s as %s: got %d", names[kind],
				      as_resample ? "resamplefd" : "irqfd", ret);
			ck_assert_int_eq(err.code, EINVAL);
			ck_assert_uint_gt(strlen(err.msg), 0);
			ck_assert_msg(testutil_count_fds(0) == fds, "%s as %s: fd leaked",
				      names[kind], as_resample ? "resamplefd" : "irqfd");
			/* Both of a good irqfd and a bad resamplefd on pirq 1 too. */
			ret = iohub_set_irqfd(f.hub, 1,
					      as_resample ? new_eventfd() : make_bad(kind),
					      as_resample ? make_bad(kind) : new_eventfd(), &err);
			ck_assert_int_eq(ret, -EINVAL);
			ck_assert_int_eq(testutil_count_fds(0), fds);
		}
	}
	/* Nothing was installed on pirq 0: an assert there is lost. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(f.st->lost_asserts, 1);
	/* An eventfd is what they must be. */
	ck_assert(!iohub_is_eventfd(-1));
	ck_assert(!iohub_is_eventfd(1000000));
	ck_assert(iohub_is_eventfd(k.irqfd));
	ck_assert(iohub_is_eventfd(k.resamplefd));

	teardown(&f);
	kvm_close(&k);
}
END_TEST

START_TEST(pirq_out_of_range)
{
	struct fixture f = setup(3);
	struct mpdev_error err = { 0 };
	struct note n = { .f = &f };
	int fds = testutil_count_fds(0);

	ck_assert_int_eq(iohub_set_irq(f.hub, 3, 1), -EINVAL);
	ck_assert_int_eq(iohub_set_irq(f.hub, 3, 0), -EINVAL);
	ck_assert_int_eq(iohub_set_irq(f.hub, IOHUB_MAX_PIRQS, 1), -EINVAL);
	ck_assert_int_eq(iohub_set_irq(f.hub, (unsigned)-1, 1), -EINVAL);
	ck_assert_uint_eq(iohub_get_level(f.hub, 3), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 3, notifier, &n), -EINVAL);
	ck_assert_int_eq(iohub_add_notifier(f.hub, (unsigned)-1, notifier, &n), -EINVAL);
	iohub_remove_notifier(f.hub, 3, notifier, &n);

	ck_assert_int_eq(iohub_set_irqfd(f.hub, 3, new_eventfd(), new_eventfd(), &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_uint_gt(strlen(err.msg), 0);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	ck_assert_int_eq(iohub_set_irqfd(f.hub, (unsigned)-1, new_eventfd(), -1, &err), -EINVAL);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 3, -1, -1, &err), -EINVAL);
	/* Nothing in range moved. */
	for (unsigned p = 0; p < 3; p++)
		ck_assert_uint_eq(iohub_get_level(f.hub, p), 0);
	check_stats(&f, 0, 0, 0, 0);
	/* The last one in range works. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 2), 1);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 2, notifier, &n), 0);

	teardown(&f);
}
END_TEST

START_TEST(create_limits)
{
	struct event_base *base = event_base_new();
	struct mpdev_error err = { 0 };
	struct iohub *hub = (struct iohub *)&err;

	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(iohub_create(base, 0, &hub, &err), -EINVAL);
	ck_assert_ptr_null(hub);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_uint_gt(strlen(err.msg), 0);
	mpdev_error_clear(&err);
	hub = (struct iohub *)&err;
	ck_assert_int_eq(iohub_create(base, IOHUB_MAX_PIRQS + 1, &hub, &err), -EINVAL);
	ck_assert_ptr_null(hub);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_int_eq(iohub_create(base, (unsigned)-1, &hub, &err), -EINVAL);
	ck_assert_ptr_null(hub);

	ck_assert_int_eq(iohub_create(base, 1, &hub, NULL), 0);
	ck_assert_uint_eq(iohub_npirqs(hub), 1);
	ck_assert_int_eq(iohub_set_irq(hub, 1, 1), -EINVAL);
	iohub_destroy(hub);

	ck_assert_int_eq(iohub_create(base, IOHUB_MAX_PIRQS, &hub, NULL), 0);
	ck_assert_uint_eq(iohub_npirqs(hub), IOHUB_MAX_PIRQS);
	ck_assert_int_eq(iohub_set_irq(hub, IOHUB_MAX_PIRQS - 1, 1), 0);
	ck_assert_uint_eq(iohub_get_level(hub, IOHUB_MAX_PIRQS - 1), 1);
	ck_assert_int_eq(iohub_set_irq(hub, IOHUB_MAX_PIRQS, 1), -EINVAL);
	iohub_destroy(hub);
	iohub_destroy(NULL);
	event_base_free(base);
}
END_TEST

START_TEST(reset_clears_levels_and_closes_pairs)
{
	struct fixture f = setup(4);
	struct kvm k0, k3;
	struct note n = { .f = &f };
	int fds;

	fds = testutil_count_fds(0);
	k0 = attach(&f, 0, 1);
	k3 = attach(&f, 3, 0);
	ck_assert_int_eq(testutil_count_fds(0), fds + 3 + 3);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 3, 1), 0);
	ck_assert_uint_eq(fired(&k0), 1);
	ck_assert_uint_eq(fired(&k3), 1);

	iohub_reset(f.hub);
	ck_assert_int_eq(testutil_count_fds(0), fds + 3);
	for (unsigned p = 0; p < 4; p++)
		ck_assert_uint_eq(iohub_get_level(f.hub, p), 0);
	/* An EOI on the old resamplefd reaches nobody. */
	write_eventfd(k0.resamplefd, 1);
	run_loop(&f);
	ck_assert_uint_eq(n.calls, 0);
	ck_assert_uint_eq(fired(&k0), 0);
	check_stats(&f, 2, 0, 0, 0);
	/* Levels start from 0 again: one assert is a 0 -> 1, lost (no pair). */
	ck_assert_int_eq(iohub_set_irq(f.hub, 3, 1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 3), 1);
	check_stats(&f, 2, 0, 0, 1);
	ck_assert_uint_eq(fired(&k3), 0);
	/* A deassert after reset does not go below 0. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 0);

	/* Usable again: a new pair and an assert fire once. */
	kvm_close(&k0);
	k0 = attach(&f, 0, 1);
	ck_assert_uint_eq(fired(&k0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&k0), 1);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);

	iohub_destroy(f.hub);
	kvm_close(&k0);
	kvm_close(&k3);
	ck_assert_int_eq(testutil_count_fds(0), fds);
	event_base_free(f.base);
}
END_TEST

START_TEST(destroy_closes_everything)
{
	struct event_base *base;
	struct iohub *hub;
	struct fixture f;
	struct kvm k[IOHUB_MAX_PIRQS];
	int fds, fds_base;

	/* efdio's own descriptors exist from its first use on: count after them. */
	ck_assert_int_eq(efdio_init("auto", NULL), 0);
	fds = testutil_count_fds(0);
	ck_assert_int_ge(fds, 0);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	fds_base = testutil_count_fds(0);
	ck_assert_int_eq(iohub_create(base, IOHUB_MAX_PIRQS, &hub, NULL), 0);
	ck_assert_int_eq(testutil_count_fds(0), fds_base);
	f.base = base;
	f.hub = hub;
	f.st = iohub_get_stats(hub);
	for (unsigned p = 0; p < IOHUB_MAX_PIRQS; p++) {
		k[p] = attach(&f, p, p % 3 != 0);
		ck_assert_int_eq(iohub_set_irq(hub, p, 1), 0);
	}
	/* Replace some pairs, remove others: closed as they go. */
	for (unsigned p = 0; p < IOHUB_MAX_PIRQS; p += 5)
		ck_assert_int_eq(iohub_set_irqfd(hub, p, -1, -1, NULL), 0);
	for (unsigned p = 0; p < IOHUB_MAX_PIRQS; p++)
		ck_assert_uint_eq(fired(&k[p]), 1);
	check_stats(&f, IOHUB_MAX_PIRQS, 0, 0, 0);
	iohub_destroy(hub);
	for (unsigned p = 0; p < IOHUB_MAX_PIRQS; p++)
		kvm_close(&k[p]);
	ck_assert_int_eq(testutil_count_fds(0), fds_base);
	event_base_free(base);
	ck_assert_int_eq(testutil_count_fds(0), fds);
}
END_TEST

START_TEST(stats_are_exact)
{
	struct fixture f = setup(3);
	struct kvm a = attach(&f, 0, 1), b = attach(&f, 1, 0);

	check_stats(&f, 0, 0, 0, 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0); /* signal */
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0); /* level 2 */
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0); /* signal */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0); /* lost */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0); /* level 2: not another loss */
	check_stats(&f, 2, 0, 0, 1);
	eoi(&f, &a); /* resample + reassert */
	eoi(&f, &a);
	check_stats(&f, 4, 2, 2, 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 0), 0);
	eoi(&f, &a); /* resample only */
	check_stats(&f, 4, 3, 2, 1);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0); /* signal */
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 0), 0);
	ck_assert_int_eq(iohub_set_irq(f.hub, 2, 1), 0); /* lost */
	check_stats(&f, 5, 3, 2, 2);
	ck_assert_uint_eq(fired(&a), 3);
	ck_assert_uint_eq(fired(&b), 2);

	teardown(&f);
	kvm_close(&a);
	kvm_close(&b);
}
END_TEST

START_TEST(two_pirqs_are_independent)
{
	struct fixture f = setup(2);
	struct kvm k0 = attach(&f, 0, 1), k1 = attach(&f, 1, 1);
	struct note n0 = { .f = &f, .k = &k0 }, n1 = { .f = &f, .k = &k1 };

	ck_assert_int_eq(iohub_add_notifier(f.hub, 0, notifier, &n0), 0);
	ck_assert_int_eq(iohub_add_notifier(f.hub, 1, notifier, &n1), 0);

	ck_assert_int_eq(iohub_set_irq(f.hub, 0, 1), 0);
	ck_assert_uint_eq(fired(&k0), 1);
	ck_assert_uint_eq(fired(&k1), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 1), 0);

	/* EOI on 1: its notifier only, no re-assert anywhere. */
	eoi(&f, &k1);
	ck_assert_uint_eq(n0.calls, 0);
	ck_assert_uint_eq(n1.calls, 1);
	ck_assert_uint_eq(n1.pirq, 1);
	ck_assert_uint_eq(fired(&k0), 0);
	ck_assert_uint_eq(fired(&k1), 0);

	/* Deassert on 1 does not lower 0. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 0), 0);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);

	/* Both high, EOI on 0: only 0 is raised again. */
	ck_assert_int_eq(iohub_set_irq(f.hub, 1, 1), 0);
	ck_assert_uint_eq(fired(&k1), 1);
	eoi(&f, &k0);
	ck_assert_uint_eq(n0.calls, 1);
	ck_assert_uint_eq(n0.pirq, 0);
	ck_assert_uint_eq(n1.calls, 1);
	ck_assert_uint_eq(fired(&k0), 1);
	ck_assert_uint_eq(fired(&k1), 0);

	/* Removing 0's pair leaves 1 working. */
	ck_assert_int_eq(iohub_set_irqfd(f.hub, 0, -1, -1, NULL), 0);
	eoi(&f, &k1);
	ck_assert_uint_eq(fired(&k1), 1);
	ck_assert_uint_eq(iohub_get_level(f.hub, 0), 1);
	check_stats(&f, 4, 3, 2, 0);

	teardown(&f);
	kvm_close(&k0);
	kvm_close(&k1);
}
END_TEST

static Suite *iohub_suite(void)
{
	Suite *s = suite_create("iohub");
	TCase *tc = tcase_create("levels");

	tcase_add_test(tc, two_sources_share_a_line);
	tcase_add_test(tc, deassert_then_eoi_is_quiet_and_level_does_not_underflow);
	tcase_add_test(tc, assert_eoi_deassert_eoi);
	tcase_add_test(tc, assert_deassert_assert_fires_twice);
	tcase_add_test(tc, eoi_with_nothing_asserted_is_quiet);
	tcase_add_test(tc, coalesced_eois_make_one_reassert);
	tcase_add_test(tc, stats_are_exact);
	tcase_add_test(tc, two_pirqs_are_independent);
	suite_add_tcase(s, tc);

	tc = tcase_create("notifiers");
	tcase_add_test(tc, notifier_gets_its_pirq_and_opaque);
	tcase_add_test(tc, notifier_that_deasserts_prevents_the_reassert);
	tcase_add_test(tc, notifier_limit_and_removal);
	suite_add_tcase(s, tc);

	tc = tcase_create("fds");
	tcase_add_test(tc, replacing_the_pair_while_asserted);
	tcase_add_test(tc, removing_the_pair_keeps_the_level);
	tcase_add_test(tc, resamplefd_without_irqfd_is_refused);
	tcase_add_test(tc, closing_kvm_copies_does_not_break_the_hub);
	tcase_add_test(tc, full_blocking_irqfd_never_stalls_the_hub);
	tcase_add_test(tc, full_blocking_irqfd_parks_an_io_uring_worker);
	tcase_add_test(tc, non_eventfds_are_refused);
	tcase_add_test(tc, self_waking_eventfds_are_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_test(tc, pirq_out_of_range);
	tcase_add_test(tc, create_limits);
	tcase_add_test(tc, reset_clears_levels_and_closes_pairs);
	tcase_add_test(tc, destroy_closes_everything);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(iohub_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
