/*
 * A raw vfio-user client for tests: connect, VERSION, DMA_MAP of a memfd,
 * region access, SET_IRQS, reset, and any bytes at all for the bad-input
 * table. Every wait is bounded (the client's timeout_ms); nothing here
 * asserts, so a test decides what a stall or an error means.
 *
 * Calls return 0 on success, the positive errno of the server's error reply,
 * or a negative errno of their own (-ETIMEDOUT: no reply in time; -EPROTO:
 * the reply was not one).
 */
#ifndef MPDEV_VFIO_USER_CLIENT_H
#define MPDEV_VFIO_USER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio_user.h"

#define VFU_CLIENT_TIMEOUT_MS 3000
#define VFU_CLIENT_MAX_FDS    16

/* QEMU 10.1/11.1's proposal, as hw/vfio-user/proxy.c writes it. */
#define VFU_CLIENT_QEMU_CAPS                                                                       \
	"{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"   \
	"\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"    \
	"\"write_multiple\":true}}"

struct vfu_client {
	int sock;
	uint16_t next_id;
	int timeout_ms;
	struct vfu_caps server; /* from the VERSION reply */
	uint16_t server_major, server_minor;
};

/* A SOCK_STREAM connection to path, retried (bounded) while the server is not yet there. */
int vfu_client_connect(struct vfu_client *c, const char *path);
void vfu_client_close(struct vfu_client *c);

/* --- raw --- */

/* Sends len bytes with nfds descriptors (borrowed), whole or not at all within the timeout. */
int vfu_client_send_bytes(struct vfu_client *c, const void *buf, size_t len, const int *fds,
			  size_t nfds);
/* A message with a fresh id (returned in *id if not NULL). */
int vfu_client_send(struct vfu_client *c, uint16_t cmd, uint32_t flags, const void *payload,
		    size_t len, const int *fds, size_t nfds, uint16_t *id);
/*
 * The next message: header into *h, up to room bytes of payload (the rest is
 * read and dropped; *len is the payload's size as sent), descriptors into
 * fds (up to max; the rest closed). 0, -ETIMEDOUT, -ECONNRESET or -EPROTO.
 */
int vfu_client_recv(struct vfu_client *c, struct vfu_hdr *h, void *payload, size_t room,
		    size_t *len, int *fds, size_t max, size_t *nfds, int timeout_ms);
/* Whether a message arrives within ms (it is read and dropped); for "no reply" checks. */
bool vfu_client_quiet(struct vfu_client *c, int ms);

/*
 * Request and reply: the reply must echo id and command. Returns as above;
 * reply payload into reply (room), its length in *rlen (may be NULL).
 */
int vfu_client_call(struct vfu_client *c, uint16_t cmd, const void *payload, size_t len,
		    const int *fds, size_t nfds, void *reply, size_t room, size_t *rlen);

/* --- typed --- */

/* VERSION 0.0 with caps_json (NULL: none); the server's answer in c->server. */
int vfu_client_version(struct vfu_client *c, const char *caps_json);
int vfu_client_device_info(struct vfu_client *c, struct vfu_device_info *d);
int vfu_client_region_info(struct vfu_client *c, uint32_t index, struct vfu_region_info *r);
int vfu_client_irq_info(struct vfu_client *c, uint32_t index, struct vfu_irq_info *i);
/* fd -1: a range the client serves by message. flags: VFU_DMA_FLAG_*. */
int vfu_client_dma_map(struct vfu_client *c, uint64_t addr, uint64_t size, int fd, uint64_t offset,
		       uint32_t flags);
int vfu_client_dma_unmap(struct vfu_client *c, uint64_t addr, uint64_t size, uint32_t flags);
int vfu_client_region_read(struct vfu_client *c, uint32_t region, uint64_t offset, void *buf,
			   uint32_t count);
int vfu_client_region_write(struct vfu_client *c, uint32_t region, uint64_t offset, const void *buf,
			    uint32_t count);
/* No_reply: nothing comes back. */
int vfu_client_region_write_posted(struct vfu_client *c, uint32_t region, uint64_t offset,
				   const void *buf, uint32_t count);
/* 4-byte helpers; a failure is returned as above and *v left alone. */
int vfu_client_read32(struct vfu_client *c, uint32_t region, uint64_t offset, uint32_t *v);
int vfu_client_write32(struct vfu_client *c, uint32_t region, uint64_t offset, uint32_t v);
/* SET_IRQS: flags VFU_IRQ_SET_*; bools (count bytes) with DATA_BOOL; fds with DATA_EVENTFD. */
int vfu_client_set_irqs(struct vfu_client *c, uint32_t index, uint32_t flags, uint32_t start,
			uint32_t count, const uint8_t *bools, const int *fds, size_t nfds);
int vfu_client_reset(struct vfu_client *c);
/*
 * GET_REGION_IO_FDS with argsz: the fixed part of the reply into *hdr, up
 * to max sub-regions into subs, the reply's descriptors (ours to close) into
 * fds (room VFU_CLIENT_MAX_FDS), their number in *nfds. -EPROTO for a reply
 * whose length does not match its count.
 */
int vfu_client_region_io_fds(struct vfu_client *c, uint32_t index, uint32_t argsz,
			     struct vfu_region_io_fds *hdr, struct vfu_sub_region_ioeventfd *subs,
			     unsigned max, int *fds, size_t *nfds);

/* --- eventfds --- */

/* Waits up to ms for fd to be readable and drains it: its count, 0 if quiet, -errno. */
int64_t vfu_client_eventfd_wait(int fd, int ms);

#endif
