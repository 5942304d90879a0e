/* QEMU's mpqemu message format: stream framing, descriptors, validation, RET. */
#include "mpqemu.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fdrelease.h"

/* The layout is QEMU's; on LP64 hosts (x86_64, aarch64, ...) these are its numbers. */
_Static_assert(sizeof(struct mpqemu_sync_sysmem) == 3 * 8 * MPQEMU_MAX_FDS, "SyncSysmemMsg");
_Static_assert(sizeof(struct mpqemu_pci_conf) == 12, "PciConfDataMsg");
_Static_assert(offsetof(struct mpqemu_bar_access, size) == 16 &&
		       offsetof(struct mpqemu_bar_access, memory) == 20 &&
		       sizeof(struct mpqemu_bar_access) == 24,
	       "BarAccessMsg");
_Static_assert(MPQEMU_HDR_SIZE == offsetof(struct mpqemu_msg, data.u64), "MPQEMU_MSG_HDR_SIZE");
_Static_assert(sizeof(size_t) != 8 || MPQEMU_HDR_SIZE == 16, "header of an LP64 host");
_Static_assert(MPQEMU_MAX_DATA == sizeof(struct mpqemu_sync_sysmem), "data union");

static const char *const cmd_names[MPQEMU_CMD_MAX] = {
	[MPQEMU_CMD_SYNC_SYSMEM] = "SYNC_SYSMEM",   [MPQEMU_CMD_RET] = "RET",
	[MPQEMU_CMD_PCI_CFGWRITE] = "PCI_CFGWRITE", [MPQEMU_CMD_PCI_CFGREAD] = "PCI_CFGREAD",
	[MPQEMU_CMD_BAR_WRITE] = "BAR_WRITE",	    [MPQEMU_CMD_BAR_READ] = "BAR_READ",
	[MPQEMU_CMD_SET_IRQFD] = "SET_IRQFD",	    [MPQEMU_CMD_DEVICE_RESET] = "DEVICE_RESET",
};

const char *mpqemu_cmd_name(int cmd)
{
	return cmd >= 0 && cmd < MPQEMU_CMD_MAX ? cmd_names[cmd] : "unknown";
}

void mpqemu_msg_close_fds(struct mpqemu_msg *msg)
{
	int n = msg->num_fds;

	if (n < 0 || n > MPQEMU_MAX_FDS)
		n = 0;
	for (int i = 0; i < n; i++) {
		if (msg->fds[i] >= 0)
			fd_release(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->num_fds = 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none) for poll(), at least 0. */
static int remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

static int wait_for(int sock, short events, int64_t deadline)
{
	struct pollfd p = { .fd = sock, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, remaining(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * One recvmsg of at most len bytes, without waiting. Descriptors that come
 * along are appended to msg (closed, with an error, past MPQEMU_MAX_FDS).
 * Returns the byte count, 0 at end of connection, or a negative errno.
 */
static ssize_t recv_some(int sock, void *buf, size_t len, struct mpqemu_msg *msg,
			 struct mpdev_error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MPQEMU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	int r = 0;
	ssize_t n;

	n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			r = mpdev_error_set(err, EPROTO,
					    "control message level %d type %d: only SCM_RIGHTS "
					    "descriptors belong to a message",
					    c->cmsg_level, c->cmsg_type);
			continue;
		}
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (msg->num_fds < MPQEMU_MAX_FDS) {
				msg->fds[msg->num_fds++] = fd;
			} else {
				fd_release(fd);
				r = mpdev_error_set(err, EPROTO,
						    "more than %d descriptors with one message",
						    MPQEMU_MAX_FDS);
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		r = mpdev_error_set(err, EPROTO,
				    "more than %d descriptors with one message (the kernel "
				    "dropped the rest)",
				    MPQEMU_MAX_FDS);
	return r < 0 ? r : n;
}

/*
 * Reads exactly len bytes of the message into buf. Returns 1, 0 if the
 * connection ended before the first byte of a message (start), or a negative
 * errno with err set.
 */
static int read_exact(int sock, void *buf, size_t len, bool start, int64_t deadline, int timeout_ms,
		      struct mpqemu_msg *msg, struct mpdev_error *err)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv_some(sock, (char *)buf + got, len - got, msg, err);
		int r;

		if (n > 0) {
			got += (size_t)n;
			/* Each further piece gets its own time. */
			if (deadline >= 0)
				deadline = now_ms() + timeout_ms;
			continue;
		}
		if (n == 0) {
			if (start && got == 0)
				return 0;
			return mpdev_error_set(err, EBADMSG,
					       "truncated message: the connection ended after %zu "
					       "of %zu bytes of its %s",
					       got, len, start ? "header" : "data");
		}
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN && n != -EWOULDBLOCK) {
			if (err && !err->code)
				mpdev_error_set(err, (int)-n, "recvmsg: %s", strerror((int)-n));
			return (int)n;
		}
		r = wait_for(sock, POLLIN, deadline);
		if (r == -ETIMEDOUT)
			return mpdev_error_set(err, ETIMEDOUT,
					       "no complete message within %d ms (%zu of %zu bytes "
					       "of its %s)",
					       timeout_ms, got, len, start ? "header" : "data");
		if (r < 0)
			return mpdev_error_set(err, -r, "poll: %s", strerror(-r));
	}
	return 1;
}

size_t mpqemu_declared_size(const void *hdr)
{
	struct mpqemu_msg m;

	memcpy(&m, hdr, MPQEMU_HDR_SIZE);
	return m.size;
}

ssize_t mpqemu_frame(const void *buf, size_t len)
{
	size_t size;

	if (len < MPQEMU_HDR_SIZE)
		return 0;
	size = mpqemu_declared_size(buf);
	if (size > MPQEMU_MAX_DATA)
		return -EMSGSIZE;
	return len < MPQEMU_HDR_SIZE + size ? 0 : (ssize_t)(MPQEMU_HDR_SIZE + size);
}

bool mpqemu_cmd_wants_ret(int cmd)
{
	switch (cmd) {
	case MPQEMU_CMD_PCI_CFGWRITE:
	case MPQEMU_CMD_PCI_CFGREAD:
	case MPQEMU_CMD_BAR_WRITE:
	case MPQEMU_CMD_BAR_READ:
	case MPQEMU_CMD_DEVICE_RESET:
		return true;
	default:
		return false;
	}
}

size_t mpqemu_encode_ret(void *buf, uint64_t value)
{
	struct mpqemu_msg ret;

	memset(&ret, 0, sizeof(ret));
	ret.cmd = MPQEMU_CMD_RET;
	ret.size = sizeof(ret.data.u64);
	ret.data.u64 = value;
	memcpy(buf, &ret, MPQEMU_RET_SIZE);
	return MPQEMU_RET_SIZE;
}

int mpqemu_decode(struct mpqemu_msg *msg, const void *buf, size_t len, struct mpdev_error *err)
{
	int r;

	if (len < MPQEMU_HDR_SIZE) {
		r = mpdev_error_set(err, EBADMSG,
				    "truncated message: %zu bytes, less than its %zu-byte header",
				    len, (size_t)MPQEMU_HDR_SIZE);
		goto fail;
	}
	/* The header is QEMU's struct itself: cmd, its padding, size. */
	memcpy(msg, buf, MPQEMU_HDR_SIZE);
	memset(&msg->data, 0, sizeof(msg->data));
	if (msg->size > MPQEMU_MAX_DATA) {
		r = mpdev_error_set(err, EMSGSIZE,
				    "%s (cmd %d) with %zu bytes of data: at most %zu fit a message",
				    mpqemu_cmd_name(msg->cmd), msg->cmd, msg->size,
				    (size_t)MPQEMU_MAX_DATA);
		goto fail;
	}
	if (len - MPQEMU_HDR_SIZE != msg->size) {
		r = mpdev_error_set(
			err, EBADMSG, "%s (cmd %d) declares %zu bytes of data but %zu came with it",
			mpqemu_cmd_name(msg->cmd), msg->cmd, msg->size, len - MPQEMU_HDR_SIZE);
		goto fail;
	}
	memcpy(&msg->data, (const uint8_t *)buf + MPQEMU_HDR_SIZE, msg->size);
	r = mpqemu_validate(msg, err);
	if (r < 0)
		goto fail;
	return 1;
fail:
	mpqemu_msg_close_fds(msg);
	return r;
}

int mpqemu_recv(int sock, struct mpqemu_msg *msg, int timeout_ms, struct mpdev_error *err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint8_t buf[MPQEMU_HDR_SIZE + MPQEMU_MAX_DATA];
	size_t size;
	int r;

	memset(msg, 0, sizeof(*msg));
	for (int i = 0; i < MPQEMU_MAX_FDS; i++)
		msg->fds[i] = -1;
	r = read_exact(sock, buf, MPQEMU_HDR_SIZE, true, deadline, timeout_ms, msg, err);
	if (r <= 0)
		goto fail;
	/* An oversize message is refused from its header alone: its data cannot be skipped. */
	size = mpqemu_declared_size(buf);
	if (size && size <= MPQEMU_MAX_DATA) {
		r = read_exact(sock, buf + MPQEMU_HDR_SIZE, size, false, deadline, timeout_ms, msg,
			       err);
		if (r <= 0)
			goto fail;
	}
	return mpqemu_decode(msg, buf, MPQEMU_HDR_SIZE + (size <= MPQEMU_MAX_DATA ? size : 0), err);
fail:
	mpqemu_msg_close_fds(msg);
	return r;
}

static int bad(struct mpdev_error *err, const struct mpqemu_msg *msg, const char *what)
{
	return mpdev_error_set(err, EBADMSG, "%s (cmd %d, %zu bytes, %d fds): %s",
			       mpqemu_cmd_name(msg->cmd), msg->cmd, msg->size, msg->num_fds, what);
}

static bool pow2_upto(uint32_t v, uint32_t max)
{
	return v && v <= max && !(v & (v - 1));
}

int mpqemu_validate(const struct mpqemu_msg *msg, struct mpdev_error *err)
{
	size_t want;
	int min_fds = 0, max_fds = 0;

	if (msg->num_fds < 0 || msg->num_fds > MPQEMU_MAX_FDS)
		return bad(err, msg, "descriptor count out of range");
	switch (msg->cmd) {
	case MPQEMU_CMD_SYNC_SYSMEM:
		want = sizeof(struct mpqemu_sync_sysmem);
		max_fds = MPQEMU_MAX_FDS;
		break;
	case MPQEMU_CMD_PCI_CFGWRITE:
	case MPQEMU_CMD_PCI_CFGREAD:
		want = sizeof(struct mpqemu_pci_conf);
		break;
	case MPQEMU_CMD_BAR_WRITE:
	case MPQEMU_CMD_BAR_READ:
		want = sizeof(struct mpqemu_bar_access);
		break;
	case MPQEMU_CMD_SET_IRQFD:
		want = 0;
		min_fds = max_fds = 2;
		break;
	case MPQEMU_CMD_DEVICE_RESET:
		want = 0;
		break;
	case MPQEMU_CMD_RET:
		return bad(err, msg, "QEMU never answers: a RET from it is out of place");
	default:
		return bad(err, msg, "unknown command");
	}
	if (msg->size != want) {
		char why[64];

		snprintf(why, sizeof(why), "data size must be %zu", want);
		return bad(err, msg, why);
	}
	if (msg->num_fds < min_fds || msg->num_fds > max_fds) {
		char why[64];

		if (min_fds == max_fds)
			snprintf(why, sizeof(why), "must carry %d descriptors", min_fds);
		else
			snprintf(why, sizeof(why), "must carry %d to %d descriptors", min_fds,
				 max_fds);
		return bad(err, msg, why);
	}
	switch (msg->cmd) {
	case MPQEMU_CMD_SYNC_SYSMEM: {
		const struct mpqemu_sync_sysmem *s = &msg->data.sync_sysmem;

		for (int i = 0; i < msg->num_fds; i++) {
			if (!s->sizes[i])
				return bad(err, msg, "a memory entry of size 0");
			if (s->gpas[i] + s->sizes[i] - 1 < s->gpas[i])
				return bad(err, msg,
					   "a memory entry wraps around the address space");
			/* The entry's last byte must be a file offset too. */
			if (s->offsets[i] < 0 ||
			    s->sizes[i] - 1 > (uint64_t)(INT64_MAX - s->offsets[i]))
				return bad(err, msg, "a memory entry with a bad file offset");
		}
		break;
	}
	case MPQEMU_CMD_PCI_CFGWRITE:
	case MPQEMU_CMD_PCI_CFGREAD: {
		const struct mpqemu_pci_conf *c = &msg->data.pci_conf;

		if (c->len != 1 && c->len != 2 && c->len != 4)
			return bad(err, msg, "config access width must be 1, 2 or 4");
		if (c->addr >= MPQEMU_MAX_CONFIG_SIZE ||
		    c->addr + (uint32_t)c->len > MPQEMU_MAX_CONFIG_SIZE)
			return bad(err, msg, "config access beyond 4096 bytes");
		break;
	}
	case MPQEMU_CMD_BAR_WRITE:
	case MPQEMU_CMD_BAR_READ: {
		const struct mpqemu_bar_access *b = &msg->data.bar_access;

		if (!pow2_upto(b->size, 8))
			return bad(err, msg, "BAR access width must be 1, 2, 4 or 8");
		if (b->memory > 1)
			return bad(err, msg, "BAR access 'memory' flag is neither 0 nor 1");
		if (b->addr + b->size - 1 < b->addr)
			return bad(err, msg, "BAR access wraps around the address space");
		break;
	}
	default:
		break;
	}
	return 0;
}

int mpqemu_send(int sock, const struct mpqemu_msg *msg, int timeout_ms, struct mpdev_error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MPQEMU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	size_t total, sent = 0;
	bool fds_sent = false;

	if (msg->size > MPQEMU_MAX_DATA || msg->num_fds < 0 || msg->num_fds > MPQEMU_MAX_FDS)
		return mpdev_error_set(err, EINVAL, "message too large to send");
	total = MPQEMU_HDR_SIZE + msg->size;
	while (sent < total) {
		/* The header and data are contiguous in struct mpqemu_msg. */
		struct iovec iov = { .iov_base = (char *)msg + sent, .iov_len = total - sent };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (!fds_sent && msg->num_fds) {
			struct cmsghdr *c;

			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)msg->num_fds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)msg->num_fds);
			memcpy(CMSG_DATA(c), msg->fds, sizeof(int) * (size_t)msg->num_fds);
		}
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			sent += (size_t)n;
			fds_sent = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_for(sock, POLLOUT, deadline);

			if (r == -ETIMEDOUT)
				return mpdev_error_set(err, ETIMEDOUT,
						       "the peer took no message for %d ms",
						       timeout_ms);
			if (r < 0)
				return mpdev_error_set(err, -r, "poll: %s", strerror(-r));
			continue;
		}
		return mpdev_error_set(err, n < 0 ? errno : EPIPE, "sending %s: %s",
				       mpqemu_cmd_name(msg->cmd), strerror(n < 0 ? errno : EPIPE));
	}
	return 0;
}

int mpqemu_send_ret(int sock, uint64_t value, int timeout_ms, struct mpdev_error *err)
{
	struct mpqemu_msg ret;

	memset(&ret, 0, sizeof(ret));
	ret.cmd = MPQEMU_CMD_RET;
	ret.size = sizeof(ret.data.u64);
	ret.data.u64 = value;
	return mpqemu_send(sock, &ret, timeout_ms, err);
}
