/*
 * DEVICE_GET_REGION_IO_FDS: a region's doorbells (devops_ioeventfds) as
 * ioeventfd sub-regions, one descriptor each, fd_index i for sub-region i.
 *
 * The client takes at most its max_msg_fds descriptors in one message (1
 * when it said nothing), and the spec does not say what a server does with
 * more doorbells than that. Sharing a descriptor between sub-regions, which
 * the spec allows, would lose which doorbell rang; so the reply lists the
 * first doorbells that fit and leaves the rest out: their writes come by
 * REGION_WRITE as before, which is always correct, only slower.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "log.h"
#include "vfio_user_internal.h"

#define COMP "vfio-user"

_Static_assert(VFU_MAX_REPLY_FDS <= MPDEV_MAX_FDS_PER_MSG, "one reply's descriptors fit a send");

int vfu_handle_region_io_fds(struct session *s, struct vfu_conn *c, struct vfu_req *r)
{
	struct vfu_sub_region_ioeventfd subs[VFU_MAX_REPLY_FDS];
	struct doorbell_info v[VFU_MAX_REPLY_FDS];
	struct vfu_region_io_fds req;
	unsigned max = VFU_MAX_REPLY_FDS, total, n;
	int len;

	if (vfu_decode_region_io_fds(r->payload, r->len, &req) < 0)
		return vfu_fail(r, EINVAL,
				"GET_REGION_IO_FDS: %zu bytes, argsz below %u or flags/count set",
				r->len, VFU_REGION_IO_FDS_SIZE);
	if (c->peer.max_msg_fds < max)
		max = (unsigned)c->peer.max_msg_fds;
	if (devops_ioeventfds(s, req.index, v, max, &total, &r->err) < 0)
		return -r->err.code;
	n = total < max ? total : max;
	if (n < total)
		log_info_rl(COMP,
			    "region %u has %u doorbells; the client takes %u descriptors a "
			    "message, so %u stay message writes",
			    req.index, total, max, total - n);
	for (unsigned i = 0; i < n; i++)
		subs[i] = (struct vfu_sub_region_ioeventfd){
			.offset = v[i].io.offset,
			.size = v[i].io.size,
			.fd_index = i,
			.type = VFU_IO_FD_TYPE_IOEVENTFD,
			.flags = v[i].io.datamatch ? VFU_IOEVENTFD_FLAG_DATAMATCH : 0,
			.datamatch = v[i].io.datamatch ? v[i].io.data : 0,
		};
	len = vfu_encode_region_io_fds(req.index, subs, n, req.argsz, r->reply, r->room);
	if (len < 0)
		return vfu_fail(r, ENOSPC, "region io fds do not fit");
	r->reply_len = (size_t)len;
	if ((size_t)len == VFU_REGION_IO_FDS_SIZE)
		return 0; /* no entries, so no descriptors (a short argsz, or no doorbells) */
	/* The reply's descriptors are closed after the send; the set keeps its own. */
	for (unsigned i = 0; i < n; i++) {
		int d = fcntl(v[i].fd, F_DUPFD_CLOEXEC, 0);

		if (d < 0) {
			int e = errno;

			return vfu_fail(r, e, "cannot pass doorbell %u: %s", i, strerror(e));
		}
		r->reply_fds[r->reply_nfds++] = d;
	}
	return 0;
}
