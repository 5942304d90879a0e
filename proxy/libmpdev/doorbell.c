/* mpdev_get_ioeventfds: a region's doorbells and their eventfds (libmpdev.h, "Doorbells"). */
#include <errno.h>
#include <unistd.h>

#include "client.h"

static int ioeventfds_once(struct mpdev *dev, uint32_t region, struct mpdev_ioeventfd *out,
			   unsigned max, unsigned *n)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__GetIoEventfds body = MPDEV__GET_IO_EVENTFDS__INIT;
	const Mpdev__IoEventfds *rep;
	struct wire_msg reply;
	unsigned k = 0;
	int r;

	if (!(dev->features & MPDEV_FEATURE_IOEVENTFDS))
		return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not offer doorbells");
	body.region = region;
	req.body_case = MPDEV__ENVELOPE__BODY_GET_IO_EVENTFDS;
	req.get_io_eventfds = &body;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	r = client_expect_body(dev, &reply, MPDEV__ENVELOPE__BODY_IO_EVENTFDS);
	rep = r == 0 ? reply.env->io_eventfds : NULL;
	/* The remote pairs entry i with descriptor i; anything else is not ours to guess. */
	if (rep && (rep->n_entries != reply.nfds || rep->region != region))
		r = mpdev_error_set(
			&dev->err, EPROTO,
			"doorbell reply for region %u: %zu entries with %zu descriptors",
			rep->region, rep->n_entries, reply.nfds);
	for (size_t i = 0; r == 0 && i < rep->n_entries; i++) {
		const Mpdev__IoEventfd *e = rep->entries[i];

		if (e->size != 1 && e->size != 2 && e->size != 4 && e->size != 8) {
			r = mpdev_error_set(&dev->err, EPROTO, "doorbell %zu: width %u", i,
					    e->size);
			break;
		}
		if (k >= max)
			break; /* the rest are closed with the reply */
		out[k] = (struct mpdev_ioeventfd){ .offset = e->offset,
						   .size = e->size,
						   .datamatch = e->datamatch,
						   .data = e->data,
						   .fd = wire_take_fd(&reply, i) };
		k++;
	}
	if (r < 0)
		while (k)
			close(out[--k].fd);
	*n = k;
	wire_msg_release(&reply);
	return r;
}

int mpdev_get_ioeventfds(struct mpdev *dev, uint32_t region, struct mpdev_ioeventfd *out,
			 unsigned max, unsigned *n)
{
	int r, tries = 0;

	if (!n || (max && !out))
		return mpdev_error_set(&dev->err, EINVAL, "no room for the doorbells");
	*n = 0;
	do
		r = ioeventfds_once(dev, region, out, max, n);
	while (client_retry(dev, &r, &tries));
	return r;
}
