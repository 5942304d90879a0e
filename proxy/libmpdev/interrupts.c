/*
 * libmpdev's interrupt calls: INTx irqfd pairs and VFIO-style SET_IRQS.
 * What the remote accepted is kept (our own duplicates of the eventfds, and
 * each vector's mask) so that it can be replayed into a restarted remote;
 * a call whose connection died is run again after the replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void vectors_clear(struct irq_vectors *v)
{
	for (unsigned k = 0; k < v->n; k++) {
		close_fd(&v->fds[k]);
		v->masked[k] = false;
	}
}

void client_irq_forget(struct mpdev *dev)
{
	for (int i = 0; i < 4; i++) {
		close_fd(&dev->intx[i].irqfd);
		close_fd(&dev->intx[i].resamplefd);
		dev->intx[i].shared = false;
	}
	close_fd(&dev->intx_unmask_fd);
	for (int i = 0; i < MPDEV_NUM_IRQS; i++) {
		vectors_clear(&dev->vectors[i]);
		free(dev->vectors[i].fds);
		free(dev->vectors[i].masked);
		dev->vectors[i].fds = NULL;
		dev->vectors[i].masked = NULL;
		dev->vectors[i].n = 0;
	}
}

/* Room for vectors [0, need) of index; -ENOMEM on failure (nothing lost). */
static int vectors_grow(struct mpdev *dev, unsigned index, unsigned need)
{
	struct irq_vectors *v = &dev->vectors[index];
	int *fds;
	bool *masked;

	if (v->n >= need)
		return 0;
	fds = realloc(v->fds, need * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	v->fds = fds;
	masked = realloc(v->masked, need * sizeof(*masked));
	if (!masked)
		return -ENOMEM;
	v->masked = masked;
	for (unsigned k = v->n; k < need; k++) {
		v->fds[k] = -1;
		v->masked[k] = false;
	}
	v->n = need;
	return 0;
}

/* Our own duplicate of fd (-1 stays -1); -errno on failure. */
static int dup_fd(int fd)
{
	if (fd < 0)
		return -1;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

static int send_intx_irqfd(struct mpdev *dev, unsigned pin, unsigned pirq, int irqfd,
			   int resamplefd)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIntxIrqfd body = MPDEV__SET_INTX_IRQFD__INIT;
	int fds[2] = { irqfd, resamplefd };
	size_t nfds = irqfd < 0 ? 0 : resamplefd < 0 ? 1 : 2;

	body.pin = pin;
	body.pirq = pirq;
	req.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	req.set_intx_irqfd = &body;
	return client_request_ok(dev, &req, fds, nfds);
}

/* Records a routing the remote accepted; keep[] are our duplicates (taken). */
static void remember_intx(struct mpdev *dev, unsigned pin, unsigned pirq, int keep[2])
{
	if (keep[0] >= 0) {
		/*
		 * The remote gave the PIRQ this pair and closed its old one: other
		 * pins routed there now share a pair we hold for this pin only.
		 */
		for (unsigned q = 0; q < 4; q++) {
			if (q == pin || dev->intx[q].pirq != pirq ||
			    (dev->intx[q].irqfd < 0 && !dev->intx[q].shared))
				continue;
			close_fd(&dev->intx[q].irqfd);
			close_fd(&dev->intx[q].resamplefd);
			dev->intx[q].shared = true;
		}
	}
	close_fd(&dev->intx[pin].irqfd);
	close_fd(&dev->intx[pin].resamplefd);
	dev->intx[pin].irqfd = keep[0];
	dev->intx[pin].resamplefd = keep[1];
	dev->intx[pin].pirq = pirq;
	dev->intx[pin].shared = false;
}

static int set_intx_once(struct mpdev *dev, unsigned pin, unsigned pirq, int irqfd, int resamplefd)
{
	int fds[2] = { irqfd, resamplefd };
	int keep[2] = { -1, -1 };
	size_t nfds = irqfd < 0 ? 0 : resamplefd < 0 ? 1 : 2;
	int r;

	if (!(dev->features & MPDEV_FEATURE_INTX_IRQFD))
		return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not offer INTx irqfds");
	if (pin >= 4)
		return mpdev_error_set(&dev->err, EINVAL, "INTx pin %u: pins are 0-3", pin);
	if (irqfd < 0 && resamplefd >= 0)
		return mpdev_error_set(&dev->err, EINVAL, "a resamplefd needs an irqfd");
	for (size_t i = 0; i < nfds; i++) {
		keep[i] = dup_fd(fds[i]);
		if (keep[i] < 0) {
			r = keep[i];
			close_fd(&keep[0]);
			return mpdev_error_set(&dev->err, -r, "duplicating an irqfd: %s",
					       strerror(-r));
		}
	}
	r = send_intx_irqfd(dev, pin, pirq, irqfd, resamplefd);
	if (r < 0) {
		close_fd(&keep[0]);
		close_fd(&keep[1]);
		return r;
	}
	remember_intx(dev, pin, pirq, keep);
	return 0;
}

int mpdev_set_intx_irqfd(struct mpdev *dev, unsigned pin, unsigned pirq, int irqfd, int resamplefd)
{
	int r, tries = 0;

	do
		r = set_intx_once(dev, pin, pirq, irqfd, resamplefd);
	while (client_retry(dev, &r, &tries));
	return r;
}

static int send_set_irqs(struct mpdev *dev, Mpdev__SetIrqs *body, const int *fds, size_t nfds)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;

	if (!(dev->features & MPDEV_FEATURE_SET_IRQS))
		return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not offer SET_IRQS");
	req.body_case = MPDEV__ENVELOPE__BODY_SET_IRQS;
	req.set_irqs = body;
	return client_request_ok(dev, &req, fds, nfds);
}

/* One SET_IRQS with eventfds for at most MPDEV_MAX_FDS_PER_MSG vectors; fds are not kept. */
static int send_eventfds(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			 unsigned count, const int *fds)
{
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;
	int32_t slots[MPDEV_MAX_FDS_PER_MSG];
	int packet[MPDEV_MAX_FDS_PER_MSG];
	size_t nfds = 0;

	for (unsigned i = 0; i < count; i++) {
		slots[i] = fds[i] >= 0 ? (int32_t)nfds : -1;
		if (fds[i] >= 0)
			packet[nfds++] = fds[i];
	}
	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_EVENTFD;
	body.start = start;
	body.count = count;
	body.n_fds = count;
	body.fds = slots;
	return send_set_irqs(dev, &body, packet, nfds);
}

/* Records the trigger eventfds of vectors [start, start + count) after the remote took them. */
static int remember_triggers(struct mpdev *dev, unsigned index, unsigned start, unsigned count,
			     int *dups)
{
	struct irq_vectors *v = &dev->vectors[index];

	if (vectors_grow(dev, index, start + count) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < count; i++) {
		close_fd(&v->fds[start + i]);
		v->fds[start + i] = dups[i];
		dups[i] = -1;
	}
	if (index == MPDEV_IRQ_INTX) {
		/* A new INTx trigger starts unmasked; none at all disables INTx. */
		v->masked[0] = false;
		if (v->fds[0] < 0)
			close_fd(&dev->intx_unmask_fd);
	}
	return 0;
}

/* One packet's worth: at most MPDEV_MAX_FDS_PER_MSG vectors. */
static int set_eventfd_chunk(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			     unsigned count, const int *fds)
{
	int dups[MPDEV_MAX_FDS_PER_MSG];
	int r = 0;

	for (unsigned i = 0; i < count; i++)
		dups[i] = -1;
	for (unsigned i = 0; i < count; i++) {
		dups[i] = dup_fd(fds[i]);
		if (fds[i] >= 0 && dups[i] < 0) {
			r = mpdev_error_set(&dev->err, -dups[i], "duplicating an eventfd: %s",
					    strerror(-dups[i]));
			dups[i] = -1;
			goto out;
		}
	}
	r = send_eventfds(dev, index, action, start, count, fds);
	if (r < 0)
		goto out;
	if (index == MPDEV_IRQ_INTX && action == MPDEV_IRQ_ACTION_UNMASK) {
		close_fd(&dev->intx_unmask_fd);
		dev->intx_unmask_fd = dups[0];
		dups[0] = -1;
	} else if (action == MPDEV_IRQ_ACTION_TRIGGER &&
		   remember_triggers(dev, index, start, count, dups) < 0) {
		r = mpdev_error_set(&dev->err, ENOMEM, "set, but cannot be remembered for replay");
	}
out:
	for (unsigned i = 0; i < count; i++)
		close_fd(&dups[i]);
	return r;
}

static int set_eventfd_once(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			    unsigned count, const int *fds)
{
	int r = 0;

	if (index >= MPDEV_NUM_IRQS || !count)
		return mpdev_error_set(&dev->err, EINVAL, "IRQ index %u with count %u", index,
				       count);
	for (unsigned done = 0; done < count && r == 0;) {
		unsigned n = count - done;

		if (n > MPDEV_MAX_FDS_PER_MSG)
			n = MPDEV_MAX_FDS_PER_MSG;
		r = set_eventfd_chunk(dev, index, action, start + done, n, fds + done);
		done += n;
	}
	return r;
}

int mpdev_set_irqs_eventfd(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			   unsigned count, const int *fds)
{
	int r, tries = 0;

	do
		r = set_eventfd_once(dev, index, action, start, count, fds);
	while (client_retry(dev, &r, &tries));
	return r;
}

/*
 * What an accepted bool/none request left in force: masks, or (TRIGGER with
 * count 0) a disabled index. values NULL: every vector in the range.
 */
static void remember_action(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			    unsigned count, const bool *values)
{
	struct irq_vectors *v;

	if (index >= MPDEV_NUM_IRQS)
		return;
	v = &dev->vectors[index];
	if (action == MPDEV_IRQ_ACTION_TRIGGER) {
		if (count == 0) {
			vectors_clear(v);
			if (index == MPDEV_IRQ_INTX)
				close_fd(&dev->intx_unmask_fd);
		}
		return; /* otherwise a loopback: it fires, it leaves nothing behind */
	}
	if (action != MPDEV_IRQ_ACTION_MASK && action != MPDEV_IRQ_ACTION_UNMASK)
		return;
	if (vectors_grow(dev, index, start + count) < 0) {
		mpdev_error_set(&dev->err, ENOMEM,
				"masks set, but cannot be remembered for replay");
		return;
	}
	for (unsigned i = 0; i < count; i++)
		if (!values || values[i])
			v->masked[start + i] = action == MPDEV_IRQ_ACTION_MASK;
}

static int set_bool_once(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			 unsigned count, const bool *values)
{
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;
	protobuf_c_boolean *v = calloc(count ? count : 1, sizeof(*v));
	int r;

	if (!v)
		return mpdev_error_set(&dev->err, ENOMEM, "out of memory");
	for (unsigned i = 0; i < count; i++)
		v[i] = values[i];
	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_BOOL;
	body.start = start;
	body.count = count;
	body.n_values = count;
	body.values = v;
	r = send_set_irqs(dev, &body, NULL, 0);
	free(v);
	if (r == 0)
		remember_action(dev, index, action, start, count, values);
	return r;
}

int mpdev_set_irqs_bool(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			unsigned count, const bool *values)
{
	int r, tries = 0;

	do
		r = set_bool_once(dev, index, action, start, count, values);
	while (client_retry(dev, &r, &tries));
	return r;
}

static int set_none_once(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			 unsigned count)
{
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;
	int r;

	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_NONE;
	body.start = start;
	body.count = count;
	r = send_set_irqs(dev, &body, NULL, 0);
	if (r == 0)
		remember_action(dev, index, action, start, count, NULL);
	return r;
}

int mpdev_set_irqs_none(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			unsigned count)
{
	int r, tries = 0;

	do
		r = set_none_once(dev, index, action, start, count);
	while (client_retry(dev, &r, &tries));
	return r;
}

int mpdev_irq_disable(struct mpdev *dev, unsigned index)
{
	return mpdev_set_irqs_none(dev, index, MPDEV_IRQ_ACTION_TRIGGER, 0, 0);
}

/* ---- replay into a restarted remote ---- */

static int replay_intx(struct mpdev *dev, struct mpdev_replay_info *ri, char *note, size_t note_len)
{
	int r;

	for (unsigned pin = 0; pin < 4; pin++) {
		if (dev->intx[pin].shared && !*note)
			/* The remote takes a pair once; routing a second pin needs new eventfds. */
			snprintf(note, note_len,
				 "; INT%c shares PIRQ %u with another pin and is not routed again "
				 "(set its irqfd again)",
				 'A' + pin, dev->intx[pin].pirq);
		if (dev->intx[pin].irqfd < 0)
			continue;
		r = send_intx_irqfd(dev, pin, dev->intx[pin].pirq, dev->intx[pin].irqfd,
				    dev->intx[pin].resamplefd);
		if (r < 0)
			return client_error_wrap(dev, r, "INT%c irqfd", 'A' + pin);
		ri->intx_pairs++;
	}
	return 0;
}

/* The kept triggers of one index, in runs of assigned vectors. */
static int replay_triggers(struct mpdev *dev, unsigned index, struct mpdev_replay_info *ri)
{
	const struct irq_vectors *v = &dev->vectors[index];
	int r;

	for (unsigned a = 0; a < v->n;) {
		unsigned b = a;

		while (b < v->n && v->fds[b] >= 0 && b - a < MPDEV_MAX_FDS_PER_MSG)
			b++;
		if (b == a) {
			a++;
			continue;
		}
		r = send_eventfds(dev, index, MPDEV_IRQ_ACTION_TRIGGER, a, b - a, v->fds + a);
		if (r < 0)
			return client_error_wrap(dev, r, "SET_IRQS index %u triggers %u-%u", index,
						 a, b - 1);
		ri->irq_eventfds += b - a;
		a = b;
	}
	return 0;
}

static int replay_masks(struct mpdev *dev, unsigned index, struct mpdev_replay_info *ri)
{
	const struct irq_vectors *v = &dev->vectors[index];
	unsigned masked = 0;
	int r;

	for (unsigned k = 0; k < v->n; k++)
		masked += v->masked[k];
	if (!masked)
		return 0;
	r = set_bool_once(dev, index, MPDEV_IRQ_ACTION_MASK, 0, v->n, v->masked);
	if (r < 0)
		return client_error_wrap(dev, r, "SET_IRQS index %u masks", index);
	ri->irq_masks += masked;
	return 0;
}

int client_irq_replay(struct mpdev *dev, struct mpdev_replay_info *ri, char *note, size_t note_len)
{
	int r;

	if ((r = replay_intx(dev, ri, note, note_len)) < 0)
		return r;
	for (unsigned index = 0; index < MPDEV_NUM_IRQS; index++)
		if ((r = replay_triggers(dev, index, ri)) < 0)
			return r;
	if (dev->intx_unmask_fd >= 0) {
		r = send_eventfds(dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0, 1,
				  &dev->intx_unmask_fd);
		if (r < 0)
			return client_error_wrap(dev, r, "INTx unmask eventfd");
		ri->irq_eventfds++;
	}
	/* Last: installing an INTx trigger clears the INTx mask. */
	for (unsigned index = 0; index < MPDEV_NUM_IRQS; index++)
		if ((r = replay_masks(dev, index, ri)) < 0)
			return r;
	return 0;
}
