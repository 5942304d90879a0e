/*
 * IOHUB: INTx routing with level counting and resample, as QEMU's remote
 * IOHUB does it, usable on its own (no dependency on the remote's server).
 * Everything about an INTx line lives here: which device pin (a "source")
 * is routed to which PIRQ, the level of each source, the count of asserted
 * sources per line, and each line's irqfd/resamplefd pair.
 *
 * Sources: source = device * 4 + pin (pin 0 = INTA). A device model or the
 * VFIO backend only says "source asserted / deasserted"
 * (iohub_set_source); the hub does the rest.
 *
 * Lines, per PIRQ: an irqfd (signalled to assert the line in KVM), a
 * resamplefd (KVM signals it when the guest EOIs the line), a level count.
 *   a source routed to the line rises:  if ++level == 1, signal the irqfd.
 *   it falls:                           if level > 0, level--.
 *   resamplefd readable: drain it; tell the watchers of the line's sources
 *   (a VFIO INTx source unmasks there, and may lower its level); then, if
 *   the level is still above 0, signal the irqfd again.
 * A KVM resample irqfd is level-triggered: KVM keeps the line asserted
 * until the guest's EOI, then lowers it and signals the resamplefd. That is
 * why a still-asserted line must be signalled again after each resample.
 *
 * The eventfds are the peer's: the hub signals and drains them through
 * efdio (never a write() or read() a peer could stall), watches resamplefds
 * edge-triggered, and refuses an eventfd it cannot prove distinct from the
 * others it holds.
 *
 * Single-threaded: all calls and callbacks happen on one libevent loop.
 */
#ifndef MPDEV_IOHUB_H
#define MPDEV_IOHUB_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct event_base;
struct iohub;

#define IOHUB_MAX_PIRQS	    64
#define IOHUB_MAX_SOURCES   16 /* four devices of four pins */
#define IOHUB_MAX_NOTIFIERS 4

/* What the owner of a source hears from the hub (either may be NULL). */
struct iohub_source_ops {
	/* The guest EOI'd the line the source is routed to, before the re-assert check. */
	void (*resampled)(void *opaque, unsigned source);
	/* The source's level changed (for consumers of the pin itself, VFIO-style INTx). */
	void (*changed)(void *opaque, unsigned source, bool level);
};

/* Called on the loop after the guest EOI'd pirq, before the re-assert check. */
typedef void (*iohub_resample_fn)(void *opaque, unsigned pirq);

struct iohub_stats {
	uint64_t irqfd_signals;	 /* irqfd signals (assert or re-assert) */
	uint64_t resamples;	 /* resamplefd wakeups handled */
	uint64_t reasserts;	 /* irqfd signals caused by a resample */
	uint64_t signal_errors;	 /* signals the kernel refused */
	uint64_t lost_asserts;	 /* asserts with no irqfd to signal (kept as level) */
	uint64_t source_changes; /* device pin transitions */
};

int iohub_create(struct event_base *base, unsigned npirqs, struct iohub **out,
		 struct mpdev_error *err);
/* Closes every fd the hub owns. */
void iohub_destroy(struct iohub *hub);

/* ---- sources: what devices use ---- */

/*
 * Routes source to pirq with the consumer's irqfd/resamplefd pair (the
 * SetIntxIrqfd of the protocol), which becomes the line's pair: the hub
 * owns both from then on, also when this fails. irqfd -1 unroutes the
 * source instead (resamplefd must be -1 too); a line that no source uses
 * any more lets go of its pair. A source that is asserted moves its level
 * with it; a line already high signals its new irqfd at once, so that the
 * new consumer sees the level.
 */
int iohub_route_source(struct iohub *hub, unsigned source, unsigned pirq, int irqfd, int resamplefd,
		       struct mpdev_error *err);

/* The source's level as its device drives it. -EINVAL for a bad source. */
int iohub_set_source(struct iohub *hub, unsigned source, bool level);
bool iohub_source_level(const struct iohub *hub, unsigned source);
/* The PIRQ source is routed to, or -1. */
int iohub_source_pirq(const struct iohub *hub, unsigned source);

/* Installs (ops non-NULL) or removes the one watcher of source; -EBUSY if it has one. */
int iohub_watch_source(struct iohub *hub, unsigned source, const struct iohub_source_ops *ops,
		       void *opaque);

/* ---- lines: QEMU's remote IOHUB underneath ---- */

/*
 * Gives pirq a new irqfd/resamplefd pair; the hub owns both from then on,
 * also when this fails. -1/-1 removes the pair. The old pair is closed. If
 * the line is asserted, the new irqfd is signalled at once. Both fds must
 * be eventfds (-EINVAL otherwise); resamplefd may be -1 for an edge-only
 * consumer. Every eventfd the hub holds is a distinct open file: an irqfd
 * that is also a resamplefd (of this or another line) would make the hub
 * wake itself forever, so that is refused (-EINVAL), and so is a pair the
 * kernel cannot compare (no kcmp).
 */
int iohub_set_irqfd(struct iohub *hub, unsigned pirq, int irqfd, int resamplefd,
		    struct mpdev_error *err);

/* One more (level != 0) or one less asserted source on pirq. -EINVAL for a bad pirq. */
int iohub_set_irq(struct iohub *hub, unsigned pirq, int level);

/* Adds / removes a resample notifier for pirq (-ENOSPC past IOHUB_MAX_NOTIFIERS). */
int iohub_add_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque);
void iohub_remove_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque);

/*
 * The connection went away: every pair is closed, every source unrouted,
 * line levels are 0. Source levels and watchers stay: they are the devices'.
 */
void iohub_reset(struct iohub *hub);

unsigned iohub_get_level(const struct iohub *hub, unsigned pirq);
unsigned iohub_npirqs(const struct iohub *hub);
const struct iohub_stats *iohub_get_stats(const struct iohub *hub);

/*
 * 1 if fd is the same open file as one the hub holds (except pirq
 * except_pirq's), or if that cannot be told (no kcmp); 0 if it is not.
 */
int iohub_fd_in_use(const struct iohub *hub, int fd, int except_pirq);

/* 1 if fd is an eventfd (what irqfds and resamplefds must be). */
int iohub_is_eventfd(int fd);

#endif
