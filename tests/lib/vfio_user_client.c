#include "vfio_user_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_RETRY_MS 3000
#define CAPS_ROOM	 4096

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_for(int fd, short ev, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left < 0)
			left = 0;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int vfu_client_connect(struct vfu_client *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + CONNECT_RETRY_MS;

	*c = (struct vfu_client){ .sock = -1, .next_id = 1, .timeout_ms = VFU_CLIENT_TIMEOUT_MS };
	vfu_caps_default(&c->server);
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (s < 0)
			return -errno;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			c->sock = s;
			return 0;
		}
		e = errno;
		close(s);
		if ((e != EAGAIN && e != ECONNREFUSED && e != ENOENT) || now_ms() >= deadline)
			return -e;
		usleep(10000);
	}
}

void vfu_client_close(struct vfu_client *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
}

int vfu_client_send_bytes(struct vfu_client *c, const void *buf, size_t len, const int *fds,
			  size_t nfds)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	const uint8_t *p = buf;
	size_t done = 0;
	bool fds_sent = nfds == 0;

	if (nfds > VFU_CLIENT_MAX_FDS)
		return -EINVAL;
	while (done < len || !fds_sent) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * VFU_CLIENT_MAX_FDS)];
		} u;
		struct iovec iov = { .iov_base = (void *)(p + done), .iov_len = len - done };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;
		int r;

		if (!fds_sent) {
			memset(&u, 0, sizeof(u));
			m.msg_control = u.b;
			m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			u.h.cmsg_level = SOL_SOCKET;
			u.h.cmsg_type = SCM_RIGHTS;
			u.h.cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(&u.h), fds, sizeof(int) * nfds);
		}
		n = sendmsg(c->sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			done += (size_t)n;
			fds_sent = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if ((r = wait_for(c->sock, POLLOUT, deadline)) < 0)
			return r;
	}
	return 0;
}

int vfu_client_send(struct vfu_client *c, uint16_t cmd, uint32_t flags, const void *payload,
		    size_t len, const int *fds, size_t nfds, uint16_t *id)
{
	struct vfu_hdr h = { .msg_id = c->next_id++, .cmd = cmd, .flags = flags };
	uint8_t *buf = malloc(VFU_HDR_SIZE + len);
	int r;

	if (!buf)
		return -ENOMEM;
	h.size = (uint32_t)(VFU_HDR_SIZE + len);
	vfu_hdr_put(buf, &h);
	if (len)
		memcpy(buf + VFU_HDR_SIZE, payload, len);
	r = vfu_client_send_bytes(c, buf, VFU_HDR_SIZE + len, fds, nfds);
	free(buf);
	if (id)
		*id = h.msg_id;
	return r;
}

static void close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Exactly len bytes (into buf, or dropped if buf is NULL), collecting descriptors. */
static int read_exact(struct vfu_client *c, void *buf, size_t len, int *fds, size_t max,
		      size_t *nfds, int64_t deadline)
{
	uint8_t scratch[4096];
	size_t done = 0;

	while (done < len) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * 253)];
		} u;
		size_t want = len - done;
		struct iovec iov;
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b) };
		ssize_t n;
		int r;

		if (buf) {
			iov = (struct iovec){ (uint8_t *)buf + done, want };
		} else {
			if (want > sizeof(scratch))
				want = sizeof(scratch);
			iov = (struct iovec){ scratch, want };
		}
		n = recvmsg(c->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if ((r = wait_for(c->sock, POLLIN, deadline)) < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got[253];

			memcpy(got, CMSG_DATA(h), k * sizeof(int));
			for (size_t i = 0; i < k; i++) {
				if (fds && *nfds < max)
					fds[(*nfds)++] = got[i];
				else
					close(got[i]);
			}
		}
		done += (size_t)n;
	}
	return 0;
}

int vfu_client_recv(struct vfu_client *c, struct vfu_hdr *h, void *payload, size_t room,
		    size_t *len, int *fds, size_t max, size_t *nfds, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t hb[VFU_HDR_SIZE];
	size_t local = 0, plen, take;
	int r;

	if (!nfds)
		nfds = &local;
	*nfds = 0;
	r = read_exact(c, hb, sizeof(hb), fds, max, nfds, deadline);
	if (r < 0)
		goto fail;
	vfu_hdr_get(hb, h);
	if (h->size < VFU_HDR_SIZE) {
		r = -EPROTO;
		goto fail;
	}
	plen = h->size - VFU_HDR_SIZE;
	take = plen < room ? plen : room;
	if (len)
		*len = plen;
	r = read_exact(c, payload, take, fds, max, nfds, deadline);
	if (r == 0 && plen > take)
		r = read_exact(c, NULL, plen - take, fds, max, nfds, deadline);
	if (r == 0)
		return 0;
fail:
	if (fds)
		close_fds(fds, *nfds);
	*nfds = 0;
	return r;
}

bool vfu_client_quiet(struct vfu_client *c, int ms)
{
	struct vfu_hdr h;

	return vfu_client_recv(c, &h, NULL, 0, NULL, NULL, 0, NULL, ms) == -ETIMEDOUT;
}

int vfu_client_call(struct vfu_client *c, uint16_t cmd, const void *payload, size_t len,
		    const int *fds, size_t nfds, void *reply, size_t room, size_t *rlen)
{
	struct vfu_hdr h;
	uint16_t id;
	size_t plen = 0;
	int r;

	r = vfu_client_send(c, cmd, 0, payload, len, fds, nfds, &id);
	if (r < 0)
		return r;
	r = vfu_client_recv(c, &h, reply, room, &plen, NULL, 0, NULL, c->timeout_ms);
	if (r < 0)
		return r;
	if (h.msg_id != id || h.cmd != cmd || (h.flags & VFU_FLAG_TYPE_MASK) != VFU_TYPE_REPLY)
		return -EPROTO;
	if (rlen)
		*rlen = plen;
	if (h.flags & VFU_FLAG_ERROR)
		return h.error_no ? (int)h.error_no : EIO;
	return 0;
}

int vfu_client_version(struct vfu_client *c, const char *caps_json)
{
	size_t clen = caps_json ? strlen(caps_json) + 1 : 0, rlen = 0;
	uint8_t *req = malloc(VFU_VERSION_SIZE + clen), *rep = malloc(CAPS_ROOM);
	struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
	const char *text, *why;
	size_t tlen;
	int r;

	if (!req || !rep) {
		free(req);
		free(rep);
		return -ENOMEM;
	}
	memcpy(req, &v, VFU_VERSION_SIZE);
	if (clen)
		memcpy(req + VFU_VERSION_SIZE, caps_json, clen);
	r = vfu_client_call(c, VFU_CMD_VERSION, req, VFU_VERSION_SIZE + clen, NULL, 0, rep,
			    CAPS_ROOM, &rlen);
	if (r == 0 && (rlen > CAPS_ROOM || vfu_decode_version(rep, rlen, &v, &text, &tlen) < 0))
		r = -EPROTO;
	if (r == 0) {
		c->server_major = v.major;
		c->server_minor = v.minor;
		if (text && vfu_caps_parse(text, tlen, &c->server, &why) < 0)
			r = -EPROTO;
	}
	free(req);
	free(rep);
	return r;
}

int vfu_client_device_info(struct vfu_client *c, struct vfu_device_info *d)
{
	struct vfu_device_info q = { .argsz = VFU_DEVICE_INFO_SIZE };
	size_t n = 0;
	int r = vfu_client_call(c, VFU_CMD_DEVICE_GET_INFO, &q, sizeof(q), NULL, 0, d, sizeof(*d),
				&n);

	return r == 0 && n != sizeof(*d) ? -EPROTO : r;
}

int vfu_client_region_info(struct vfu_client *c, uint32_t index, struct vfu_region_info *ri)
{
	struct vfu_region_info q = { .argsz = VFU_REGION_INFO_SIZE, .index = index };
	size_t n = 0;
	int r = vfu_client_call(c, VFU_CMD_DEVICE_GET_REGION_INFO, &q, sizeof(q), NULL, 0, ri,
				sizeof(*ri), &n);

	return r == 0 && n < sizeof(*ri) ? -EPROTO : r;
}

int vfu_client_irq_info(struct vfu_client *c, uint32_t index, struct vfu_irq_info *i)
{
	struct vfu_irq_info q = { .argsz = VFU_IRQ_INFO_SIZE, .index = index };
	size_t n = 0;
	int r = vfu_client_call(c, VFU_CMD_DEVICE_GET_IRQ_INFO, &q, sizeof(q), NULL, 0, i,
				sizeof(*i), &n);

	return r == 0 && n != sizeof(*i) ? -EPROTO : r;
}

int vfu_client_region_io_fds(struct vfu_client *c, uint32_t index, uint32_t argsz,
			     struct vfu_region_io_fds *hdr, struct vfu_sub_region_ioeventfd *subs,
			     unsigned max, int *fds, size_t *nfds)
{
	struct vfu_region_io_fds q = { .argsz = argsz, .index = index };
	size_t room =
		VFU_REGION_IO_FDS_SIZE + (size_t)VFU_CLIENT_MAX_FDS * VFU_SUB_REGION_IO_FD_SIZE;
	uint8_t *rep = malloc(room);
	struct vfu_hdr h;
	size_t plen = 0;
	uint16_t id;
	int r;

	*nfds = 0;
	if (!rep)
		return -ENOMEM;
	r = vfu_client_send(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, 0, &q, sizeof(q), NULL, 0, &id);
	if (r == 0)
		r = vfu_client_recv(c, &h, rep, room, &plen, fds, VFU_CLIENT_MAX_FDS, nfds,
				    c->timeout_ms);
	if (r == 0 && (h.msg_id != id || h.cmd != VFU_CMD_DEVICE_GET_REGION_IO_FDS ||
		       (h.flags & VFU_FLAG_TYPE_MASK) != VFU_TYPE_REPLY))
		r = -EPROTO;
	if (r == 0 && (h.flags & VFU_FLAG_ERROR))
		r = h.error_no ? (int)h.error_no : EIO;
	if (r == 0 && (plen > room || vfu_decode_region_io_fds_reply(rep, plen, hdr) < 0))
		r = -EPROTO;
	for (uint32_t i = 0; r == 0 && plen > VFU_REGION_IO_FDS_SIZE && i < hdr->count && i < max;
	     i++)
		vfu_sub_region_get(rep, i, &subs[i]);
	free(rep);
	return r;
}

int vfu_client_dma_map(struct vfu_client *c, uint64_t addr, uint64_t size, int fd, uint64_t offset,
		       uint32_t flags)
{
	struct vfu_dma_map m = { .argsz = VFU_DMA_MAP_SIZE,
				 .flags = flags,
				 .offset = offset,
				 .addr = addr,
				 .size = size };

	return vfu_client_call(c, VFU_CMD_DMA_MAP, &m, sizeof(m), fd >= 0 ? &fd : NULL,
			       fd >= 0 ? 1 : 0, NULL, 0, NULL);
}

int vfu_client_dma_unmap(struct vfu_client *c, uint64_t addr, uint64_t size, uint32_t flags)
{
	struct vfu_dma_unmap u = { .argsz = VFU_DMA_UNMAP_SIZE,
				   .flags = flags,
				   .addr = addr,
				   .size = size },
			     back;
	size_t n = 0;
	int r = vfu_client_call(c, VFU_CMD_DMA_UNMAP, &u, sizeof(u), NULL, 0, &back, sizeof(back),
				&n);

	if (r == 0 && (n != sizeof(back) || back.addr != addr || back.size != size))
		return -EPROTO;
	return r;
}

int vfu_client_region_read(struct vfu_client *c, uint32_t region, uint64_t offset, void *buf,
			   uint32_t count)
{
	struct vfu_region_access a = { .offset = offset, .region = region, .count = count };
	uint8_t *rep = malloc(VFU_REGION_ACCESS_SIZE + (size_t)count);
	size_t n = 0;
	int r;

	if (!rep)
		return -ENOMEM;
	r = vfu_client_call(c, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0, rep,
			    VFU_REGION_ACCESS_SIZE + (size_t)count, &n);
	if (r == 0) {
		struct vfu_region_access back;

		memcpy(&back, rep, sizeof(back));
		if (n != VFU_REGION_ACCESS_SIZE + (size_t)count || back.count != count ||
		    back.offset != offset || back.region != region)
			r = -EPROTO;
		else
			memcpy(buf, rep + VFU_REGION_ACCESS_SIZE, count);
	}
	free(rep);
	return r;
}

static int write_msg(struct vfu_client *c, uint32_t region, uint64_t offset, const void *buf,
		     uint32_t count, bool posted)
{
	struct vfu_region_access a = { .offset = offset, .region = region, .count = count };
	uint8_t *req = malloc(VFU_REGION_ACCESS_SIZE + (size_t)count);
	struct vfu_region_access back;
	size_t n = 0;
	int r;

	if (!req)
		return -ENOMEM;
	memcpy(req, &a, sizeof(a));
	memcpy(req + sizeof(a), buf, count);
	if (posted)
		r = vfu_client_send(c, VFU_CMD_REGION_WRITE, VFU_FLAG_NO_REPLY, req,
				    sizeof(a) + count, NULL, 0, NULL);
	else
		r = vfu_client_call(c, VFU_CMD_REGION_WRITE, req, sizeof(a) + count, NULL, 0, &back,
				    sizeof(back), &n);
	if (!posted && r == 0 && (n != sizeof(back) || back.count != count))
		r = -EPROTO;
	free(req);
	return r;
}

int vfu_client_region_write(struct vfu_client *c, uint32_t region, uint64_t offset, const void *buf,
			    uint32_t count)
{
	return write_msg(c, region, offset, buf, count, false);
}

int vfu_client_region_write_posted(struct vfu_client *c, uint32_t region, uint64_t offset,
				   const void *buf, uint32_t count)
{
	return write_msg(c, region, offset, buf, count, true);
}

int vfu_client_read32(struct vfu_client *c, uint32_t region, uint64_t offset, uint32_t *v)
{
	uint32_t x;
	int r = vfu_client_region_read(c, region, offset, &x, 4);

	if (r == 0)
		*v = x;
	return r;
}

int vfu_client_write32(struct vfu_client *c, uint32_t region, uint64_t offset, uint32_t v)
{
	return vfu_client_region_write(c, region, offset, &v, 4);
}

int vfu_client_set_irqs(struct vfu_client *c, uint32_t index, uint32_t flags, uint32_t start,
			uint32_t count, const uint8_t *bools, const int *fds, size_t nfds)
{
	size_t extra = (flags & VFU_IRQ_SET_DATA_BOOL) ? count : 0;
	uint8_t *req = malloc(VFU_IRQ_SET_SIZE + extra);
	struct vfu_irq_set s = { .argsz = (uint32_t)(VFU_IRQ_SET_SIZE + extra),
				 .flags = flags,
				 .index = index,
				 .start = start,
				 .count = count };
	int r;

	if (!req)
		return -ENOMEM;
	memcpy(req, &s, sizeof(s));
	if (extra)
		memcpy(req + sizeof(s), bools, extra);
	r = vfu_client_call(c, VFU_CMD_DEVICE_SET_IRQS, req, VFU_IRQ_SET_SIZE + extra, fds, nfds,
			    NULL, 0, NULL);
	free(req);
	return r;
}

int vfu_client_reset(struct vfu_client *c)
{
	return vfu_client_call(c, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL);
}

int64_t vfu_client_eventfd_wait(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;
	int r = poll(&p, 1, ms);

	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return (int64_t)v;
}
