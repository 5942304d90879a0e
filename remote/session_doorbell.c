/* GetIoEventfds: a region's doorbells, one eventfd each, in the reply's descriptors. */
#include <errno.h>

#include "session_handlers.h"

int handle_get_io_eventfds(struct session *s, struct wire_msg *m, struct session_reply *rep,
			   struct mpdev_error *err)
{
	const Mpdev__GetIoEventfds *req = m->env->get_io_eventfds;
	struct doorbell_info v[BACKEND_MAX_IOEVENTFDS];
	unsigned max = BACKEND_MAX_IOEVENTFDS, total, n;
	Mpdev__IoEventfds *body = session_reply_alloc(rep, sizeof(*body));
	Mpdev__IoEventfd *e;
	Mpdev__IoEventfd **ptrs;
	int r;

	_Static_assert(BACKEND_MAX_IOEVENTFDS <= MPDEV_MAX_FDS_PER_MSG,
		       "a region's doorbells fit one reply of ours");
	if (s->peer_max_fds && s->peer_max_fds < max)
		max = s->peer_max_fds;
	r = devops_ioeventfds(s, req->region, v, max, &total, err);
	if (r < 0)
		return r;
	n = total < max ? total : max;
	e = session_reply_alloc(rep, (n ? n : 1) * sizeof(*e));
	ptrs = session_reply_alloc(rep, (n ? n : 1) * sizeof(*ptrs));
	if (!body || !e || !ptrs)
		return mpdev_error_set(err, ENOMEM, "reply too large");
	mpdev__io_eventfds__init(body);
	for (unsigned i = 0; i < n; i++) {
		mpdev__io_eventfd__init(&e[i]);
		e[i].offset = v[i].io.offset;
		e[i].size = v[i].io.size;
		e[i].datamatch = v[i].io.datamatch;
		e[i].data = v[i].io.data;
		ptrs[i] = &e[i];
		rep->fds[i] = v[i].fd;
	}
	rep->nfds = n;
	body->region = req->region;
	body->n_entries = n;
	body->entries = ptrs;
	body->total = total;
	rep->env.body_case = MPDEV__ENVELOPE__BODY_IO_EVENTFDS;
	rep->env.io_eventfds = body;
	return 0;
}
