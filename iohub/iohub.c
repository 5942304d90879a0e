#include "iohub.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "efdio.h"
#include "fdident.h"
#include "fdrelease.h"
#include "log.h"

#define COMP "iohub"

struct iohub_notifier {
	iohub_resample_fn fn;
	void *opaque;
};

struct iohub_line {
	unsigned pirq;
	struct iohub *hub;
	unsigned level; /* asserted sources (and iohub_set_irq callers) */
	int irqfd;
	int resamplefd;
	struct event *resample_ev;
	struct iohub_notifier notifiers[IOHUB_MAX_NOTIFIERS];
};

struct iohub_source {
	bool level;
	int pirq; /* -1: not routed */
	const struct iohub_source_ops *ops;
	void *opaque;
};

struct iohub {
	struct event_base *base;
	unsigned npirqs;
	struct iohub_stats stats;
	struct iohub_source sources[IOHUB_MAX_SOURCES];
	struct iohub_line lines[];
};

int iohub_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static int signal_irqfd(struct iohub *hub, struct iohub_line *l)
{
	int r;

	if (l->irqfd < 0) {
		hub->stats.lost_asserts++;
		return -ENOENT;
	}
	/* Never a write(): the peer may have filled the counter and cleared O_NONBLOCK. */
	r = efdio_signal(l->irqfd);
	if (r < 0) {
		hub->stats.signal_errors++;
		log_warn_rl(COMP, "pirq %u: cannot signal the irqfd: %s", l->pirq, strerror(-r));
		return r;
	}
	hub->stats.irqfd_signals++;
	return 0;
}

static void on_resample(evutil_socket_t fd, short what, void *arg)
{
	struct iohub_line *l = arg;
	struct iohub *hub = l->hub;

	/*
	 * Edge-triggered: every EOI's write is a new wakeup whether or not the
	 * counter was emptied, and one wakeup covers all since the last. So
	 * nothing is read: the counter only climbs (2^64 EOIs away from full,
	 * and KVM's eventfd_signal saturates rather than block), and resample
	 * -> re-assert is this counter check and one signal, no read.
	 */
	hub->stats.resamples++;
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		if (l->notifiers[i].fn)
			l->notifiers[i].fn(l->notifiers[i].opaque, l->pirq);
	for (unsigned s = 0; s < IOHUB_MAX_SOURCES; s++) {
		struct iohub_source *src = &hub->sources[s];

		if (src->pirq == (int)l->pirq && src->ops && src->ops->resampled)
			src->ops->resampled(src->opaque, s);
	}
	/* KVM lowered the line at the EOI; a source still holding it raises it again. */
	if (l->level > 0 && signal_irqfd(hub, l) == 0)
		hub->stats.reasserts++;
}

int iohub_create(struct event_base *base, unsigned npirqs, struct iohub **out,
		 struct mpdev_error *err)
{
	struct iohub *hub;

	*out = NULL;
	if (!npirqs || npirqs > IOHUB_MAX_PIRQS)
		return mpdev_error_set(err, EINVAL, "%u PIRQs: between 1 and %u", npirqs,
				       IOHUB_MAX_PIRQS);
	hub = calloc(1, sizeof(*hub) + npirqs * sizeof(hub->lines[0]));
	if (!hub)
		return mpdev_error_set(err, ENOMEM, "out of memory");
	hub->base = base;
	hub->npirqs = npirqs;
	for (unsigned i = 0; i < npirqs; i++) {
		hub->lines[i].pirq = i;
		hub->lines[i].hub = hub;
		hub->lines[i].irqfd = -1;
		hub->lines[i].resamplefd = -1;
	}
	for (unsigned s = 0; s < IOHUB_MAX_SOURCES; s++)
		hub->sources[s].pirq = -1;
	*out = hub;
	return 0;
}

/* The peer's descriptor, checked or not: closed off the loop where the remote says so. */
static void close_fd(int fd)
{
	if (fd >= 0) {
		efdio_forget(fd);
		fd_release(fd);
	}
}

static void close_pair(struct iohub_line *l)
{
	if (l->resample_ev) {
		event_free(l->resample_ev);
		l->resample_ev = NULL;
	}
	close_fd(l->resamplefd);
	close_fd(l->irqfd);
	l->irqfd = -1;
	l->resamplefd = -1;
}

void iohub_reset(struct iohub *hub)
{
	for (unsigned s = 0; s < IOHUB_MAX_SOURCES; s++)
		hub->sources[s].pirq = -1;
	for (unsigned i = 0; i < hub->npirqs; i++) {
		close_pair(&hub->lines[i]);
		hub->lines[i].level = 0;
	}
}

void iohub_destroy(struct iohub *hub)
{
	if (!hub)
		return;
	iohub_reset(hub);
	free(hub);
}

/* 1: one of the pair is, or may be, an eventfd the hub already holds elsewhere. */
static int pair_conflicts(const struct iohub *hub, unsigned pirq, int irqfd, int resamplefd,
			  struct mpdev_error *err)
{
	int same = fd_identity_probe();

	if (same == 0)
		same = fd_same_file(irqfd, resamplefd);
	if (same < 0)
		return mpdev_error_set(err, EINVAL,
				       "pirq %u: cannot tell whether the irqfd and the resamplefd "
				       "are distinct eventfds (kcmp: %s), so they are refused",
				       pirq, strerror(-same));
	if (same || iohub_fd_in_use(hub, irqfd, (int)pirq) ||
	    iohub_fd_in_use(hub, resamplefd, (int)pirq))
		return mpdev_error_set(err, EINVAL,
				       "pirq %u: the irqfd and the resamplefd must be distinct "
				       "eventfds, not already used by another line",
				       pirq);
	return 0;
}

int iohub_set_irqfd(struct iohub *hub, unsigned pirq, int irqfd, int resamplefd,
		    struct mpdev_error *err)
{
	struct iohub_line *l;
	struct event *ev = NULL;
	int r;

	if (pirq >= hub->npirqs) {
		close_fd(irqfd);
		close_fd(resamplefd);
		return mpdev_error_set(err, EINVAL, "pirq %u out of range (the hub has %u)", pirq,
				       hub->npirqs);
	}
	if ((irqfd >= 0 && !iohub_is_eventfd(irqfd)) ||
	    (resamplefd >= 0 && !iohub_is_eventfd(resamplefd)) || (irqfd < 0 && resamplefd >= 0)) {
		close_fd(irqfd);
		close_fd(resamplefd);
		return mpdev_error_set(err, EINVAL,
				       "pirq %u: the irqfd and the resamplefd must be eventfds "
				       "(and a resamplefd needs an irqfd)",
				       pirq);
	}
	r = irqfd >= 0 ? pair_conflicts(hub, pirq, irqfd, resamplefd, err) : 0;
	if (r < 0) {
		close_fd(irqfd);
		close_fd(resamplefd);
		return r;
	}
	l = &hub->lines[pirq];
	if (resamplefd >= 0) {
		/* Edge-triggered: a drain the peer undoes (or one we cannot make) changes nothing.
		 */
		ev = event_new(hub->base, resamplefd, EV_READ | EV_PERSIST | EV_ET, on_resample, l);
		if (!ev || event_add(ev, NULL) < 0) {
			if (ev)
				event_free(ev);
			close_fd(irqfd);
			close_fd(resamplefd);
			return mpdev_error_set(err, ENOMEM, "pirq %u: cannot watch the resamplefd",
					       pirq);
		}
	}
	close_pair(l);
	l->irqfd = irqfd;
	l->resamplefd = resamplefd;
	l->resample_ev = ev;
	/* The new consumer must see a line that is already high. */
	if (l->level > 0 && l->irqfd >= 0)
		signal_irqfd(hub, l);
	log_debug(COMP, "pirq %u: irqfd %d resamplefd %d (level %u)", pirq, irqfd, resamplefd,
		  l->level);
	return 0;
}

int iohub_set_irq(struct iohub *hub, unsigned pirq, int level)
{
	struct iohub_line *l;

	if (pirq >= hub->npirqs)
		return -EINVAL;
	l = &hub->lines[pirq];
	if (level) {
		if (++l->level == 1)
			signal_irqfd(hub, l);
	} else if (l->level > 0) {
		l->level--;
	}
	return 0;
}

static bool pirq_used(const struct iohub *hub, int pirq, unsigned except)
{
	for (unsigned s = 0; s < IOHUB_MAX_SOURCES; s++)
		if (s != except && hub->sources[s].pirq == pirq)
			return true;
	return false;
}

/* Takes source off its line; the line's pair goes when nobody else uses the line. */
static void unroute(struct iohub *hub, unsigned source)
{
	struct iohub_source *src = &hub->sources[source];
	int old = src->pirq;

	if (old < 0)
		return;
	if (src->level)
		iohub_set_irq(hub, (unsigned)old, 0);
	src->pirq = -1;
	if (!pirq_used(hub, old, source))
		close_pair(&hub->lines[old]);
}

int iohub_route_source(struct iohub *hub, unsigned source, unsigned pirq, int irqfd, int resamplefd,
		       struct mpdev_error *err)
{
	struct iohub_source *src;
	int r;

	if (source >= IOHUB_MAX_SOURCES || (irqfd < 0 && resamplefd >= 0)) {
		close_fd(irqfd);
		close_fd(resamplefd);
		return mpdev_error_set(err, EINVAL, "source %u: %s", source,
				       source >= IOHUB_MAX_SOURCES ? "no such source"
								   : "a resamplefd needs an irqfd");
	}
	src = &hub->sources[source];
	if (irqfd < 0) {
		unroute(hub, source);
		return 0;
	}
	r = iohub_set_irqfd(hub, pirq, irqfd, resamplefd, err);
	if (r < 0)
		return r;
	if (src->pirq != (int)pirq) {
		int old = src->pirq;

		/* The level moves from the old line to the new one. */
		if (old >= 0 && src->level)
			iohub_set_irq(hub, (unsigned)old, 0);
		src->pirq = (int)pirq;
		if (src->level)
			iohub_set_irq(hub, pirq, 1);
		if (old >= 0 && !pirq_used(hub, old, IOHUB_MAX_SOURCES))
			close_pair(&hub->lines[old]);
	}
	log_info(COMP, "source %u (INT%c of device %u) routed to pirq %u", source,
		 'A' + (int)(source % 4), source / 4, pirq);
	return 0;
}

int iohub_set_source(struct iohub *hub, unsigned source, bool level)
{
	struct iohub_source *src;

	if (source >= IOHUB_MAX_SOURCES)
		return -EINVAL;
	src = &hub->sources[source];
	if (src->level == level)
		return 0;
	src->level = level;
	hub->stats.source_changes++;
	if (src->pirq >= 0)
		iohub_set_irq(hub, (unsigned)src->pirq, level);
	if (src->ops && src->ops->changed)
		src->ops->changed(src->opaque, source, level);
	return 0;
}

bool iohub_source_level(const struct iohub *hub, unsigned source)
{
	return source < IOHUB_MAX_SOURCES && hub->sources[source].level;
}

int iohub_source_pirq(const struct iohub *hub, unsigned source)
{
	return source < IOHUB_MAX_SOURCES ? hub->sources[source].pirq : -1;
}

int iohub_watch_source(struct iohub *hub, unsigned source, const struct iohub_source_ops *ops,
		       void *opaque)
{
	struct iohub_source *src;

	if (source >= IOHUB_MAX_SOURCES)
		return -EINVAL;
	src = &hub->sources[source];
	if (ops && src->ops)
		return -EBUSY;
	src->ops = ops;
	src->opaque = ops ? opaque : NULL;
	return 0;
}

int iohub_add_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque)
{
	if (pirq >= hub->npirqs || !fn)
		return -EINVAL;
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++) {
		struct iohub_notifier *n = &hub->lines[pirq].notifiers[i];

		if (!n->fn) {
			n->fn = fn;
			n->opaque = opaque;
			return 0;
		}
	}
	return -ENOSPC;
}

void iohub_remove_notifier(struct iohub *hub, unsigned pirq, iohub_resample_fn fn, void *opaque)
{
	if (pirq >= hub->npirqs)
		return;
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++) {
		struct iohub_notifier *n = &hub->lines[pirq].notifiers[i];

		if (n->fn == fn && n->opaque == opaque)
			n->fn = NULL;
	}
}

int iohub_fd_in_use(const struct iohub *hub, int fd, int except_pirq)
{
	if (fd < 0)
		return 0;
	for (unsigned i = 0; i < hub->npirqs; i++) {
		if ((int)i == except_pirq)
			continue;
		/* "Cannot tell" counts as in use: fail closed. */
		if (fd_same_file(fd, hub->lines[i].irqfd) != 0 ||
		    fd_same_file(fd, hub->lines[i].resamplefd) != 0)
			return 1;
	}
	return 0;
}

unsigned iohub_get_level(const struct iohub *hub, unsigned pirq)
{
	return pirq < hub->npirqs ? hub->lines[pirq].level : 0;
}

unsigned iohub_npirqs(const struct iohub *hub)
{
	return hub->npirqs;
}

const struct iohub_stats *iohub_get_stats(const struct iohub *hub)
{
	return &hub->stats;
}
