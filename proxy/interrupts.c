/* libmpdev's interrupt calls: INTx irqfd pairs and VFIO-style SET_IRQS, kept for replay. */
#include <errno.h>
#include <fcntl.h>
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

void client_irq_forget(struct mpdev *dev)
{
	for (int i = 0; i < 4; i++) {
		close_fd(&dev->intx[i].irqfd);
		close_fd(&dev->intx[i].resamplefd);
	}
	close_fd(&dev->intx_unmask_fd);
	for (int i = 0; i < MPDEV_NUM_IRQS; i++) {
		for (unsigned k = 0; k < dev->triggers[i].n; k++)
			close_fd(&dev->triggers[i].fds[k]);
		free(dev->triggers[i].fds);
		dev->triggers[i].fds = NULL;
		dev->triggers[i].n = 0;
	}
}

/* Our own duplicate of fd (-1 stays -1); -errno on failure. */
static int dup_fd(int fd)
{
	if (fd < 0)
		return -1;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

int mpdev_set_intx_irqfd(struct mpdev *dev, unsigned pin, unsigned pirq, int irqfd, int resamplefd)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIntxIrqfd body = MPDEV__SET_INTX_IRQFD__INIT;
	int fds[2] = { irqfd, resamplefd };
	int keep[2] = { -1, -1 };
	size_t nfds = irqfd < 0 ? 0 : resamplefd < 0 ? 1 : 2;
	struct wire_msg reply;
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
	body.pin = pin;
	body.pirq = pirq;
	req.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	req.set_intx_irqfd = &body;
	r = client_request(dev, &req, fds, nfds, &reply);
	if (r < 0) {
		close_fd(&keep[0]);
		close_fd(&keep[1]);
		return r;
	}
	wire_msg_release(&reply);
	close_fd(&dev->intx[pin].irqfd);
	close_fd(&dev->intx[pin].resamplefd);
	dev->intx[pin].irqfd = keep[0];
	dev->intx[pin].resamplefd = keep[1];
	dev->intx[pin].pirq = pirq;
	return 0;
}

static int send_set_irqs(struct mpdev *dev, Mpdev__SetIrqs *body, const int *fds, size_t nfds)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	struct wire_msg reply;
	int r;

	if (!(dev->features & MPDEV_FEATURE_SET_IRQS))
		return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not offer SET_IRQS");
	req.body_case = MPDEV__ENVELOPE__BODY_SET_IRQS;
	req.set_irqs = body;
	r = client_request(dev, &req, fds, nfds, &reply);
	if (r == 0)
		wire_msg_release(&reply);
	return r;
}

/* Records the trigger eventfds of vectors [start, start + count) after the remote took them. */
static int remember_triggers(struct mpdev *dev, unsigned index, unsigned start, unsigned count,
			     int *dups)
{
	unsigned need = start + count;

	if (dev->triggers[index].n < need) {
		int *v = realloc(dev->triggers[index].fds, need * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (unsigned k = dev->triggers[index].n; k < need; k++)
			v[k] = -1;
		dev->triggers[index].fds = v;
		dev->triggers[index].n = need;
	}
	for (unsigned i = 0; i < count; i++) {
		close_fd(&dev->triggers[index].fds[start + i]);
		dev->triggers[index].fds[start + i] = dups[i];
		dups[i] = -1;
	}
	return 0;
}

/* One packet's worth: at most MPDEV_MAX_FDS_PER_MSG vectors. */
static int set_eventfd_chunk(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			     unsigned count, const int *fds)
{
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;
	int32_t slots[MPDEV_MAX_FDS_PER_MSG];
	int packet[MPDEV_MAX_FDS_PER_MSG], dups[MPDEV_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	int r = 0;

	for (unsigned i = 0; i < count; i++)
		dups[i] = -1;
	for (unsigned i = 0; i < count; i++) {
		slots[i] = fds[i] >= 0 ? (int32_t)nfds : -1;
		if (fds[i] >= 0) {
			packet[nfds++] = fds[i];
			dups[i] = dup_fd(fds[i]);
			if (dups[i] < 0) {
				r = mpdev_error_set(&dev->err, -dups[i],
						    "duplicating an eventfd: %s",
						    strerror(-dups[i]));
				dups[i] = -1;
				goto out;
			}
		}
	}
	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_EVENTFD;
	body.start = start;
	body.count = count;
	body.n_fds = count;
	body.fds = slots;
	r = send_set_irqs(dev, &body, packet, nfds);
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

int mpdev_set_irqs_eventfd(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
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

int mpdev_set_irqs_bool(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
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
	return r;
}

int mpdev_set_irqs_none(struct mpdev *dev, unsigned index, unsigned action, unsigned start,
			unsigned count)
{
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;

	body.index = index;
	body.action = action;
	body.data = MPDEV__IRQ_DATA__IRQ_DATA_NONE;
	body.start = start;
	body.count = count;
	return send_set_irqs(dev, &body, NULL, 0);
}

int mpdev_irq_disable(struct mpdev *dev, unsigned index)
{
	int r = mpdev_set_irqs_none(dev, index, MPDEV_IRQ_ACTION_TRIGGER, 0, 0);

	if (r == 0 && index < MPDEV_NUM_IRQS) {
		for (unsigned k = 0; k < dev->triggers[index].n; k++)
			close_fd(&dev->triggers[index].fds[k]);
		if (index == MPDEV_IRQ_INTX)
			close_fd(&dev->intx_unmask_fd);
	}
	return r;
}
