/*
 * IOHUB: INTx routing with level counting and resample, as QEMU's remote
 * IOHUB does it, usable on its own (no dependency on the remote's server).
 *
 * Per PIRQ: an irqfd (written to assert the line in KVM), a resamplefd
 * (KVM writes it when the guest EOIs the line) and a level count.
 *   iohub_set_irq(pirq, 1): if ++level == 1, signal the irqfd.
 *   iohub_set_irq(pirq, 0): if level > 0, level--.
 *   resamplefd readable: drain it; call the PIRQ's resample notifiers (a
 *   VFIO INTx source unmasks there, and may lower its level); then, if the
 *   level is still above 0, signal the irqfd again.
 * A KVM resample irqfd is level-triggered: KVM keeps the line asserted
 * until the guest's EOI, then lowers it and signals the resamplefd. That is
 * why a still-asserted line must be signalled again after each resample.
 *
 * Sources (device pins) call iohub_set_irq only when their own line
 * changes; several sources on one PIRQ add up. Which pin goes to which PIRQ
 * is the caller's explicit choice (the SetIntxIrqfd message names both).
 * Single-threaded: all calls and callbacks happen on one libevent loop.
 */
#ifndef MPDEV_IOHUB_H
#define MPDEV_IOHUB_H

#include <stdint.h>

#include "error.h"

struct event_base;
struct iohub;

#define IOHUB_MAX_PIRQS	    64
#define IOHUB_MAX_NOTIFIERS 4

/* Called on the loop after the guest EOI'd pirq, before the re-assert check. */
typedef void (*iohub_resample_fn)(void *opaque, unsigned pirq);

struct iohub_stats {
	uint64_t irqfd_signals; /* writes to irqfds (assert or re-assert) */
	uint64_t resamples;	/* resamplefd wakeups handled */
	uint64_t reasserts;	/* irqfd signals caused by a resample */
	uint64_t signal_errors; /* irqfd writes that failed */
	uint64_t lost_asserts;	/* asserts with no irqfd to signal (kept as level) */
};

int iohub_create(struct event_base *base, unsigned npirqs, struct iohub **out,
		 struct mpdev_error *err);
/* Closes every fd the hub owns. */
void iohub_destroy(struct iohub *hub);

/*
 * Gives pirq a new irqfd/resamplefd pair; the hub owns both from then on,
 * also when this fails. -1/-1 removes the pair. The old pair is closed. If
 * the line is asserted, the new irqfd is signalled at once, so that the new
 * consumer sees the level. Both fds must be eventfds (-EINVAL otherwise);
 * resamplefd may be -1 for an edge-only consumer. Every eventfd the hub
 * holds is a distinct open file: an irqfd that is also a resamplefd (of this
 * or another line) would make the hub wake itself forever, so that is
 * refused (-EINVAL). The irqfd is made non-blocking: a peer that fills its
 * counter gets a lost signal, not a stalled remote.
 */
int iohub_set_irqfd(struct iohub *hub, unsigned pirq, int irqfd, int resamplefd,
		    struct mpdev_error *err);

/* A source's line went high (level != 0) or low. -EINVAL for a bad pirq. */
int iohub_set_irq(struct iohub *hub, unsigned pirq, int level);

/* Adds / removes a resample notifier for pirq (-ENOSPC past IOHUB_MAX_NOTIFIERS). */
int iohub_add_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque);
void iohub_remove_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque);

/* Forgets every level and pair (the connection went away); fds are closed. */
void iohub_reset(struct iohub *hub);

unsigned iohub_get_level(const struct iohub *hub, unsigned pirq);
unsigned iohub_npirqs(const struct iohub *hub);
const struct iohub_stats *iohub_get_stats(const struct iohub *hub);

/* 1 if fd is the same open file as one the hub holds (except pirq except_pirq's). */
int iohub_fd_in_use(const struct iohub *hub, int fd, int except_pirq);

/* 1 if fd is an eventfd (what irqfds and resamplefds must be). */
int iohub_is_eventfd(int fd);

#endif
