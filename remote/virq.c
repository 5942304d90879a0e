#include "virq.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "efdio.h"
#include "fdident.h"
#include "fdrelease.h"
#include "log.h"

#define COMP "irq"

static const char *const index_names[BACKEND_NUM_IRQS] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

/* Eventfds the peer gave: forgotten by efdio, closed off the loop. */
static void close_fd(int *fd)
{
	if (*fd >= 0) {
		efdio_forget(*fd);
		fd_release(*fd);
	}
	*fd = -1;
}

/*
 * Every interrupt eventfd the remote holds is a distinct open file, except
 * that a slot may be given the file it already has. Otherwise a trigger the
 * remote signals could be an unmask or resample eventfd that wakes the
 * remote, which signals the trigger again: a loop a hostile proxy could set
 * up. Returns 1 on a conflict, 0 if none, or a negative errno when it cannot
 * be told (no kcmp), which callers refuse as well.
 */
static int fd_conflicts(const struct virq *v, int fd, const int *slot)
{
	const int *own[] = { &v->intx.trigger_fd, &v->intx.unmask_fd };
	int r;

	if (fd < 0)
		return 0;
	if (iohub_fd_in_use(v->hub, fd, -1))
		return 1;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (own[i] != slot && (r = fd_same_file(fd, *own[i])) != 0)
			return r;
	for (int idx = BACKEND_IRQ_MSI; idx <= BACKEND_IRQ_MSIX; idx++)
		for (uint32_t k = 0; k < v->counts[idx] && v->vectors[idx]; k++)
			if (&v->vectors[idx][k].fd != slot &&
			    (r = fd_same_file(fd, v->vectors[idx][k].fd)) != 0)
				return r;
	return 0;
}

static int conflict_error(int r, const char *what, struct mpdev_error *err)
{
	int probe = fd_identity_probe();

	if (r < 0 || probe < 0)
		return mpdev_error_set(err, EINVAL,
				       "cannot tell whether %s is an eventfd already used for "
				       "another interrupt (kcmp: %s), so it is refused",
				       what, strerror(r < 0 ? -r : -probe));
	return mpdev_error_set(err, EINVAL, "%s is already used for another interrupt", what);
}

int virq_check_fd(const struct virq *v, int fd, const char *what, struct mpdev_error *err)
{
	int r = fd < 0 ? 0 : fd_identity_probe();

	if (r == 0)
		r = fd_conflicts(v, fd, NULL);
	return r ? conflict_error(r, what, err) : 0;
}

/* Never a write(): the peer may have filled the counter and cleared O_NONBLOCK. */
static int signal_fd(int fd)
{
	return efdio_signal(fd);
}

static void on_source_changed(void *opaque, unsigned source, bool level);
static const struct iohub_source_ops intx_source_ops = { .changed = on_source_changed };

int virq_init(struct virq *v, struct event_base *base, struct iohub *hub,
	      const struct backend_device_info *info, struct mpdev_error *err)
{
	memset(v, 0, sizeof(*v));
	v->base = base;
	v->hub = hub;
	v->intx.trigger_fd = -1;
	v->intx.unmask_fd = -1;
	for (int i = 0; i < BACKEND_NUM_IRQS; i++)
		v->counts[i] = info->irqs[i].count;
	for (int i = BACKEND_IRQ_MSI; i <= BACKEND_IRQ_MSIX; i++) {
		if (!v->counts[i])
			continue;
		if (v->counts[i] > VIRQ_MAX_VECTORS)
			return mpdev_error_set(err, EINVAL, "%u %s vectors: at most %u",
					       v->counts[i], index_names[i], VIRQ_MAX_VECTORS);
		v->vectors[i] = calloc(v->counts[i], sizeof(struct virq_vector));
		if (!v->vectors[i]) {
			virq_destroy(v);
			return mpdev_error_set(err, ENOMEM, "out of memory");
		}
		for (uint32_t k = 0; k < v->counts[i]; k++)
			v->vectors[i][k].fd = -1;
	}
	if (v->counts[BACKEND_IRQ_INTX] && iohub_watch_source(hub, 0, &intx_source_ops, v) < 0) {
		virq_destroy(v);
		return mpdev_error_set(err, EBUSY, "INTA of the device is watched already");
	}
	return 0;
}

static void intx_disable(struct virq *v)
{
	if (v->intx.unmask_ev) {
		event_free(v->intx.unmask_ev);
		v->intx.unmask_ev = NULL;
	}
	close_fd(&v->intx.unmask_fd);
	close_fd(&v->intx.trigger_fd);
	v->intx.masked = false;
}

static void vectors_disable(struct virq *v, unsigned index)
{
	for (uint32_t k = 0; k < v->counts[index] && v->vectors[index]; k++) {
		close_fd(&v->vectors[index][k].fd);
		v->vectors[index][k].masked = false;
		v->vectors[index][k].pending = false;
	}
}

void virq_reset(struct virq *v)
{
	intx_disable(v);
	vectors_disable(v, BACKEND_IRQ_MSI);
	vectors_disable(v, BACKEND_IRQ_MSIX);
}

void virq_destroy(struct virq *v)
{
	virq_reset(v);
	if (v->hub)
		iohub_watch_source(v->hub, 0, NULL, NULL);
	for (int i = 0; i < BACKEND_NUM_IRQS; i++) {
		free(v->vectors[i]);
		v->vectors[i] = NULL;
	}
}

static void intx_fire(struct virq *v)
{
	/* VFIO's automask: signal once, then stay quiet until unmasked. */
	if (v->intx.trigger_fd < 0 || v->intx.masked || !iohub_source_level(v->hub, 0))
		return;
	if (signal_fd(v->intx.trigger_fd) == 0)
		v->stats.vfio_intx_signals++;
	v->intx.masked = true;
}

static void intx_unmask(struct virq *v)
{
	v->intx.masked = false;
	intx_fire(v);
}

static void on_intx_unmask_fd(evutil_socket_t fd, short what, void *arg)
{
	/* Edge-triggered: one wakeup per batch of writes, whether the drain worked or not. */
	efdio_drain(fd);
	intx_unmask(arg);
}

/* The IOHUB says INTA changed: a rising line fires the VFIO-style trigger. */
static void on_source_changed(void *opaque, unsigned source, bool level)
{
	if (level)
		intx_fire(opaque);
}

static void vector_fire(struct virq *v, struct virq_vector *vec)
{
	if (vec->masked) {
		vec->pending = true;
		v->stats.vector_pending++;
		return;
	}
	if (vec->fd < 0) {
		v->stats.vector_dropped++;
		return;
	}
	if (signal_fd(vec->fd) == 0)
		v->stats.vector_signals++;
}

int virq_signal_vector(struct virq *v, unsigned index, unsigned vector, struct mpdev_error *err)
{
	if ((index != BACKEND_IRQ_MSI && index != BACKEND_IRQ_MSIX) || vector >= v->counts[index])
		return mpdev_error_set(err, EINVAL, "no vector %u of IRQ index %u", vector, index);
	vector_fire(v, &v->vectors[index][vector]);
	return 0;
}

/* The slot vector start+i of the request's index (and action) would fill. */
static const int *slot_of(const struct virq *v, const struct backend_irq_request *req, uint32_t i)
{
	if (req->index == BACKEND_IRQ_INTX)
		return req->action == VIRQ_ACTION_UNMASK ? &v->intx.unmask_fd : &v->intx.trigger_fd;
	return &v->vectors[req->index][req->start + i].fd;
}

/* Every slot gets -1 or an eventfd no other interrupt uses; checked before any is installed. */
static int check_eventfds(const struct virq *v, const struct backend_irq_request *req,
			  struct mpdev_error *err)
{
	for (uint32_t i = 0; i < req->count; i++) {
		int fd = req->fds[i];

		if (fd < 0)
			continue;
		if (!iohub_is_eventfd(fd))
			return mpdev_error_set(err, EINVAL,
					       "descriptor for vector %u is not an eventfd",
					       req->start + i);
		char what[64];
		int r;

		snprintf(what, sizeof(what), "the eventfd for vector %u", req->start + i);
		r = fd_identity_probe();
		if (r < 0)
			return conflict_error(r, what, err);
		for (uint32_t k = 0; k < i; k++) {
			r = fd_same_file(fd, req->fds[k]);
			if (r < 0)
				return conflict_error(r, what, err);
			if (r)
				return mpdev_error_set(
					err, EINVAL,
					"vectors %u and %u were given the same eventfd",
					req->start + k, req->start + i);
		}
		r = fd_conflicts(v, fd, slot_of(v, req, i));
		if (r)
			return conflict_error(r, what, err);
	}
	return 0;
}

/* Whether slot i of the request selects its vector (NONE: all, BOOL: where true). */
static bool selected(const struct backend_irq_request *req, uint32_t i)
{
	return req->data == VIRQ_DATA_NONE || (req->data == VIRQ_DATA_BOOL && req->values[i]);
}

static int set_vectors(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err)
{
	struct virq_vector *vecs = v->vectors[req->index];

	for (uint32_t i = 0; i < req->count; i++) {
		struct virq_vector *vec = &vecs[req->start + i];

		switch (req->action) {
		case VIRQ_ACTION_TRIGGER:
			if (req->data == VIRQ_DATA_EVENTFD) {
				close_fd(&vec->fd);
				vec->fd = req->fds[i];
				req->fds[i] = -1;
			} else if (selected(req, i)) {
				vector_fire(v, vec); /* loopback, as VFIO does */
			}
			break;
		case VIRQ_ACTION_MASK:
			if (selected(req, i))
				vec->masked = true;
			break;
		case VIRQ_ACTION_UNMASK:
			if (selected(req, i)) {
				vec->masked = false;
				if (vec->pending) {
					vec->pending = false;
					vector_fire(v, vec);
				}
			}
			break;
		}
	}
	return 0;
}

static int set_intx_unmask_fd(struct virq *v, int fd, struct mpdev_error *err)
{
	struct event *ev = NULL;

	if (fd >= 0) {
		ev = event_new(v->base, fd, EV_READ | EV_PERSIST | EV_ET, on_intx_unmask_fd, v);
		if (!ev || event_add(ev, NULL) < 0) {
			if (ev)
				event_free(ev);
			close_fd(&fd);
			return mpdev_error_set(err, ENOMEM, "cannot watch the INTx unmask eventfd");
		}
	}
	if (v->intx.unmask_ev)
		event_free(v->intx.unmask_ev);
	close_fd(&v->intx.unmask_fd);
	v->intx.unmask_fd = fd;
	v->intx.unmask_ev = ev;
	return 0;
}

static int set_intx(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err)
{
	int fd;

	if (req->data == VIRQ_DATA_BOOL && !req->values[0])
		return 0;
	switch (req->action) {
	case VIRQ_ACTION_TRIGGER:
		if (req->data != VIRQ_DATA_EVENTFD) {
			/* Loopback: as if the line had risen now. */
			if (v->intx.trigger_fd >= 0 && signal_fd(v->intx.trigger_fd) == 0)
				v->stats.vfio_intx_signals++;
			return 0;
		}
		fd = req->fds[0];
		req->fds[0] = -1;
		if (fd < 0) {
			intx_disable(v);
			return 0;
		}
		close_fd(&v->intx.trigger_fd);
		v->intx.trigger_fd = fd;
		v->intx.masked = false;
		intx_fire(v); /* a line already high is seen by the new consumer */
		return 0;
	case VIRQ_ACTION_MASK:
		if (req->data == VIRQ_DATA_EVENTFD)
			return mpdev_error_set(err, EINVAL, "INTx cannot be masked by an eventfd");
		v->intx.masked = true;
		return 0;
	case VIRQ_ACTION_UNMASK:
		if (req->data == VIRQ_DATA_EVENTFD) {
			fd = req->fds[0];
			req->fds[0] = -1;
			return set_intx_unmask_fd(v, fd, err);
		}
		intx_unmask(v);
		return 0;
	}
	return 0;
}

static int set_irqs(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err)
{
	int r;

	if (req->index >= BACKEND_NUM_IRQS || !v->counts[req->index] ||
	    req->index > BACKEND_IRQ_MSIX)
		return mpdev_error_set(err, EINVAL, "the device has no %s interrupts",
				       req->index < BACKEND_NUM_IRQS ? index_names[req->index]
								     : "such");
	if (req->action > VIRQ_ACTION_UNMASK || req->data > VIRQ_DATA_EVENTFD)
		return mpdev_error_set(err, EINVAL, "action %u / data type %u unknown", req->action,
				       req->data);
	if (req->count == 0) {
		/* VFIO: count 0 with DATA_NONE and TRIGGER disables the whole index. */
		if (req->action != VIRQ_ACTION_TRIGGER || req->data != VIRQ_DATA_NONE)
			return mpdev_error_set(err, EINVAL,
					       "count 0 only disables (action trigger, data none)");
		if (req->index == BACKEND_IRQ_INTX)
			intx_disable(v);
		else
			vectors_disable(v, req->index);
		return 0;
	}
	if (req->start >= v->counts[req->index] || req->count > v->counts[req->index] - req->start)
		return mpdev_error_set(err, EINVAL, "%s vectors %u..%u: the device has %u",
				       index_names[req->index], req->start,
				       req->start + req->count - 1, v->counts[req->index]);
	if (req->data == VIRQ_DATA_EVENTFD && (r = check_eventfds(v, req, err)) < 0)
		return r;
	if (req->index == BACKEND_IRQ_INTX)
		return set_intx(v, req, err);
	return set_vectors(v, req, err);
}

int virq_set_irqs(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err)
{
	int r = set_irqs(v, req, err);

	/* Whatever was not installed is closed here, on success and failure alike. */
	for (uint32_t i = 0; req->data == VIRQ_DATA_EVENTFD && i < req->count; i++)
		close_fd(&req->fds[i]);
	return r;
}
