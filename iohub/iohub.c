#include "iohub.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdident.h"
#include "log.h"

#define COMP "iohub"

struct iohub_notifier {
	iohub_resample_fn fn;
	void *opaque;
};

struct iohub_line {
	unsigned pirq;
	struct iohub *hub;
	unsigned level;
	int irqfd;
	int resamplefd;
	struct event *resample_ev;
	struct iohub_notifier notifiers[IOHUB_MAX_NOTIFIERS];
};

struct iohub {
	struct event_base *base;
	unsigned npirqs;
	struct iohub_stats stats;
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
	const uint64_t one = 1;

	if (l->irqfd < 0) {
		hub->stats.lost_asserts++;
		return -ENOENT;
	}
	if (write(l->irqfd, &one, sizeof(one)) != sizeof(one)) {
		hub->stats.signal_errors++;
		log_warn(COMP, "pirq %u: irqfd write failed: %s", l->pirq, strerror(errno));
		return -EIO;
	}
	hub->stats.irqfd_signals++;
	return 0;
}

static void on_resample(evutil_socket_t fd, short what, void *arg)
{
	struct iohub_line *l = arg;
	struct iohub *hub = l->hub;
	uint64_t cnt;

	/* Drain: one wakeup covers every EOI since the last one. */
	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_warn(COMP, "pirq %u: resamplefd read failed: %s", l->pirq, strerror(errno));
	hub->stats.resamples++;
	for (int i = 0; i < IOHUB_MAX_NOTIFIERS; i++)
		if (l->notifiers[i].fn)
			l->notifiers[i].fn(l->notifiers[i].opaque, l->pirq);
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
	*out = hub;
	return 0;
}

static void close_pair(struct iohub_line *l)
{
	if (l->resample_ev) {
		event_free(l->resample_ev);
		l->resample_ev = NULL;
	}
	if (l->resamplefd >= 0)
		close(l->resamplefd);
	if (l->irqfd >= 0)
		close(l->irqfd);
	l->irqfd = -1;
	l->resamplefd = -1;
}

void iohub_reset(struct iohub *hub)
{
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

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

int iohub_set_irqfd(struct iohub *hub, unsigned pirq, int irqfd, int resamplefd,
		    struct mpdev_error *err)
{
	struct iohub_line *l;
	struct event *ev = NULL;

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
	if (fd_same_file(irqfd, resamplefd) || iohub_fd_in_use(hub, irqfd, (int)pirq) ||
	    iohub_fd_in_use(hub, resamplefd, (int)pirq)) {
		close_fd(irqfd);
		close_fd(resamplefd);
		return mpdev_error_set(err, EINVAL,
				       "pirq %u: the irqfd and the resamplefd must be distinct "
				       "eventfds, not already used by another line",
				       pirq);
	}
	l = &hub->lines[pirq];
	if (irqfd >= 0)
		fcntl(irqfd, F_SETFL, fcntl(irqfd, F_GETFL) | O_NONBLOCK);
	if (resamplefd >= 0) {
		fcntl(resamplefd, F_SETFL, fcntl(resamplefd, F_GETFL) | O_NONBLOCK);
		ev = event_new(hub->base, resamplefd, EV_READ | EV_PERSIST, on_resample, l);
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
		if (fd_same_file(fd, hub->lines[i].irqfd) ||
		    fd_same_file(fd, hub->lines[i].resamplefd))
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
