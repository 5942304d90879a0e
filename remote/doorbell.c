/* A connection's doorbells: eventfds on the remote's loop, each one region write (doorbell.h). */
#include "doorbell.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devops.h"
#include "log.h"
#include "session.h"

#define COMP "doorbell"

struct doorbell {
	struct backend_ioeventfd io;
	int fd;
	struct event *ev;
	struct doorbell_set *set;
};

struct doorbell_set {
	struct session *s;
	unsigned n;
	uint64_t rings;
	struct doorbell bells[BACKEND_MAX_IOEVENTFDS];
};

static void doorbell_fire(evutil_socket_t fd, short what, void *arg)
{
	struct doorbell *b = arg;
	struct mpdev_error err = { 0 };
	uint8_t data[8];
	uint64_t count;
	ssize_t n;

	(void)what;
	/* However many signals piled up, the device is told once (doorbell.h). */
	n = read(fd, &count, sizeof(count));
	if (n != (ssize_t)sizeof(count))
		return; /* EAGAIN: someone else drained it; nothing to ring */
	for (uint32_t i = 0; i < b->io.size; i++)
		data[i] = (uint8_t)(b->io.data >> (8 * i));
	b->set->rings++;
	b->set->s->stats->doorbell_rings++;
	if (devops_region_write(b->set->s, b->io.region, b->io.offset, data, b->io.size, &err) <
	    0) {
		b->set->s->stats->doorbell_failures++;
		log_info_rl(COMP, "doorbell at region %u offset 0x%" PRIx64 ": %s", b->io.region,
			    b->io.offset, err.msg);
	}
}

/*
 * The backend's word is checked as a peer's would be: a doorbell is one
 * naturally aligned access that a region write accepts as it stands, and
 * its data fits its width.
 */
static int doorbell_check(const struct session *s, const struct backend_ioeventfd *io,
			  struct mpdev_error *err)
{
	int r = devops_check_one_write(s, io->region, io->offset, io->size, err);

	if (r == 0 && io->size < 8 && io->data >> (8 * io->size))
		r = mpdev_error_set(err, EINVAL, "data 0x%" PRIx64 " is wider than %u bytes",
				    io->data, io->size);
	return r;
}

void doorbell_set_free(struct doorbell_set *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->n; i++) {
		if (d->bells[i].ev)
			event_free(d->bells[i].ev);
		if (d->bells[i].fd >= 0)
			close(d->bells[i].fd); /* our own eventfds: closing cannot block */
	}
	free(d);
}

uint64_t doorbell_set_rings(const struct doorbell_set *d)
{
	return d ? d->rings : 0;
}

static int doorbell_set_make(struct session *s, struct doorbell_set **out, struct mpdev_error *err)
{
	struct backend_ioeventfd v[BACKEND_MAX_IOEVENTFDS];
	struct doorbell_set *d;
	unsigned n = 0;

	if (s->backend->ops->ioeventfds)
		n = s->backend->ops->ioeventfds(s->backend, v, BACKEND_MAX_IOEVENTFDS);
	if (n > BACKEND_MAX_IOEVENTFDS)
		n = BACKEND_MAX_IOEVENTFDS;
	d = calloc(1, sizeof(*d));
	if (!d)
		return mpdev_error_set(err, ENOMEM, "out of memory for the doorbells");
	d->s = s;
	for (unsigned i = 0; i < n; i++) {
		struct doorbell *b = &d->bells[d->n];
		struct mpdev_error why = { 0 };

		if (doorbell_check(s, &v[i], &why) < 0) {
			log_warn(COMP,
				 "%s declares a doorbell a region write would refuse (region %u, "
				 "offset 0x%" PRIx64 ", %u bytes, data 0x%" PRIx64 "): %s; left out",
				 s->backend->ops->name, v[i].region, v[i].offset, v[i].size,
				 v[i].data, why.msg);
			continue;
		}
		b->io = v[i];
		b->set = d;
		b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		d->n++;
		if (b->fd < 0) {
			int e = errno;

			doorbell_set_free(d);
			return mpdev_error_set(err, e, "cannot make a doorbell eventfd: %s",
					       strerror(e));
		}
		b->ev = event_new(s->backend->base, b->fd, EV_READ | EV_PERSIST, doorbell_fire, b);
		if (!b->ev || event_add(b->ev, NULL) < 0) {
			doorbell_set_free(d);
			return mpdev_error_set(err, ENOMEM, "cannot watch a doorbell eventfd");
		}
	}
	log_info(COMP, "%u doorbell(s) armed", d->n);
	*out = d;
	return 0;
}

int doorbell_query(struct session *s, uint32_t region, struct doorbell_info *out, unsigned max,
		   unsigned *total, struct mpdev_error *err)
{
	struct doorbell_set *d;
	unsigned k = 0;
	int r;

	*total = 0;
	if (region >= BACKEND_NUM_REGIONS || !s->info.regions[region].size)
		return mpdev_error_set(err, EINVAL, "region %u does not exist on this device",
				       region);
	if (!s->doorbells) {
		r = doorbell_set_make(s, &s->doorbells, err);
		if (r < 0)
			return r;
	}
	d = s->doorbells;
	for (unsigned i = 0; i < d->n; i++) {
		if (d->bells[i].io.region != region)
			continue;
		if (k < max) {
			out[k].io = d->bells[i].io;
			out[k].fd = d->bells[i].fd;
		}
		k++;
	}
	*total = k;
	return 0;
}
