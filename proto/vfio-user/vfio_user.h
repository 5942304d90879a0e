/*
 * The vfio-user wire format (QEMU's docs/interop/vfio-user.rst; command
 * numbers as hw/vfio-user/protocol.h), as the remote's vfio-user face and
 * the test client both speak it: message layouts, the VERSION capabilities
 * in JSON, and pure decode/validate functions that look only at bytes.
 *
 * Host byte order throughout, as the protocol says. Every layout here is
 * naturally aligned with no padding, so a struct is its wire image; decoders
 * still copy fields out with memcpy, never through a cast pointer, because a
 * message in a stream buffer has no alignment.
 */
#ifndef MPDEV_VFIO_USER_H
#define MPDEV_VFIO_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vfu_cmd {
	VFU_CMD_VERSION = 1,
	VFU_CMD_DMA_MAP = 2,
	VFU_CMD_DMA_UNMAP = 3,
	VFU_CMD_DEVICE_GET_INFO = 4,
	VFU_CMD_DEVICE_GET_REGION_INFO = 5,
	VFU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
	VFU_CMD_DEVICE_GET_IRQ_INFO = 7,
	VFU_CMD_DEVICE_SET_IRQS = 8,
	VFU_CMD_REGION_READ = 9,
	VFU_CMD_REGION_WRITE = 10,
	VFU_CMD_DMA_READ = 11,
	VFU_CMD_DMA_WRITE = 12,
	VFU_CMD_DEVICE_RESET = 13,
	VFU_CMD_DIRTY_PAGES = 14,
	VFU_CMD_REGION_WRITE_MULTI = 15,
	VFU_CMD_DEVICE_FEATURE = 16,
	VFU_CMD_MIG_DATA_READ = 17,
	VFU_CMD_MIG_DATA_WRITE = 18,
	VFU_CMD_MAX = 19,
};

/* Header flags. */
#define VFU_FLAG_TYPE_MASK 0xfu
#define VFU_TYPE_COMMAND   0x0u
#define VFU_TYPE_REPLY	   0x1u
#define VFU_FLAG_NO_REPLY  0x10u
#define VFU_FLAG_ERROR	   0x20u
#define VFU_FLAGS_KNOWN	   (VFU_FLAG_TYPE_MASK | VFU_FLAG_NO_REPLY | VFU_FLAG_ERROR)

struct vfu_hdr {
	uint16_t msg_id;
	uint16_t cmd;
	uint32_t size; /* of the whole message, header included */
	uint32_t flags;
	uint32_t error_no; /* reply with VFU_FLAG_ERROR: a positive errno (may be 0) */
};
#define VFU_HDR_SIZE 16u

/* The version QEMU's client (hw/vfio-user/protocol.h) proposes and accepts. */
#define VFU_VERSION_MAJOR 0u
#define VFU_VERSION_MINOR 0u

struct vfu_version {
	uint16_t major, minor;
	/* then optional JSON capabilities, NUL-terminated */
};
#define VFU_VERSION_SIZE 4u

/* linux/vfio.h's numbers, which vfio-user reuses. */
#define VFU_DMA_FLAG_READ  1u
#define VFU_DMA_FLAG_WRITE 2u
#define VFU_DMA_UNMAP_FLAG_ALL                                                                     \
	2u /* VFIO_DMA_UNMAP_FLAG_ALL: QEMU sends it with iova = size = 0                          \
	    */
#define VFU_DEVICE_FLAGS_RESET	    1u
#define VFU_DEVICE_FLAGS_PCI	    2u
#define VFU_REGION_FLAG_READ	    1u
#define VFU_REGION_FLAG_WRITE	    2u
#define VFU_REGION_FLAG_MMAP	    4u
#define VFU_REGION_FLAG_CAPS	    8u
#define VFU_REGION_CAP_SPARSE_MMAP  1u
#define VFU_IRQ_INFO_EVENTFD	    1u
#define VFU_IRQ_INFO_MASKABLE	    2u
#define VFU_IRQ_INFO_AUTOMASKED	    4u
#define VFU_IRQ_INFO_NORESIZE	    8u
#define VFU_IRQ_SET_DATA_NONE	    0x01u
#define VFU_IRQ_SET_DATA_BOOL	    0x02u
#define VFU_IRQ_SET_DATA_EVENTFD    0x04u
#define VFU_IRQ_SET_ACTION_MASK	    0x08u
#define VFU_IRQ_SET_ACTION_UNMASK   0x10u
#define VFU_IRQ_SET_ACTION_TRIGGER  0x20u
#define VFU_IRQ_SET_DATA_MASK	    0x07u
#define VFU_IRQ_SET_ACTION_MASK_ALL 0x38u
#define VFU_PCI_NUM_REGIONS	    9u /* BAR0-5, ROM, config, VGA */
#define VFU_PCI_NUM_IRQS	    5u /* INTx, MSI, MSI-X, ERR, REQ */

struct vfu_dma_map {
	uint32_t argsz, flags;
	uint64_t offset; /* in the descriptor sent with the message */
	uint64_t addr, size;
};
#define VFU_DMA_MAP_SIZE 32u

struct vfu_dma_unmap {
	uint32_t argsz, flags;
	uint64_t addr, size;
};
#define VFU_DMA_UNMAP_SIZE 24u

struct vfu_device_info {
	uint32_t argsz, flags, num_regions, num_irqs;
};
#define VFU_DEVICE_INFO_SIZE 16u

struct vfu_region_info {
	uint32_t argsz, flags, index, cap_offset;
	uint64_t size, offset;
};
#define VFU_REGION_INFO_SIZE 32u

/* struct vfio_info_cap_header + struct vfio_region_info_cap_sparse_mmap. */
struct vfu_cap_header {
	uint16_t id, version;
	uint32_t next; /* from the start of the region info; 0 ends the chain */
};
struct vfu_sparse_mmap_area {
	uint64_t offset, size;
};
#define VFU_SPARSE_MMAP_HDR_SIZE 16u /* cap header + nr_areas + reserved */

/*
 * DEVICE_GET_REGION_IO_FDS: the request is the fixed part alone (flags and
 * count 0); the reply is it, then count sub-regions of 40 bytes, with the
 * descriptors they name by fd_index.
 */
struct vfu_region_io_fds {
	uint32_t argsz, flags, index, count;
};
#define VFU_REGION_IO_FDS_SIZE 16u

struct vfu_sub_region_ioeventfd {
	uint64_t offset, size;
	uint32_t fd_index, type, flags, padding;
	uint64_t datamatch;
};
#define VFU_SUB_REGION_IO_FD_SIZE    40u
#define VFU_IO_FD_TYPE_IOEVENTFD     0u
#define VFU_IO_FD_TYPE_IOREGIONFD    1u
#define VFU_IOEVENTFD_FLAG_DATAMATCH 0x1u /* KVM_IOEVENTFD_FLAG_DATAMATCH */
#define VFU_IOEVENTFD_FLAG_PIO	     0x2u /* KVM_IOEVENTFD_FLAG_PIO */

struct vfu_irq_info {
	uint32_t argsz, flags, index, count;
};
#define VFU_IRQ_INFO_SIZE 16u

struct vfu_irq_set {
	uint32_t argsz, flags, index, start, count;
	/* then count bool bytes with DATA_BOOL; eventfds travel as SCM_RIGHTS */
};
#define VFU_IRQ_SET_SIZE 20u

struct vfu_region_access {
	uint64_t offset;
	uint32_t region, count;
	/* then count bytes of data (write request, read reply) */
};
#define VFU_REGION_ACCESS_SIZE 16u

struct vfu_dma_access {
	uint64_t addr, count;
	/* then count bytes (DMA_WRITE request, DMA_READ reply) */
};
#define VFU_DMA_ACCESS_SIZE 16u

#define VFU_MULTI_DATA 8u
#define VFU_MULTI_MAX  200u /* what QEMU coalesces at most */
struct vfu_write_one {
	uint64_t offset;
	uint32_t region, count;
	uint8_t data[VFU_MULTI_DATA];
};
#define VFU_WRITE_ONE_SIZE	 24u
#define VFU_WRITE_MULTI_HDR_SIZE 8u /* wr_cnt */

/* DEVICE_FEATURE: struct vfio_device_feature, with VFIO's feature numbers. */
struct vfu_device_feature {
	uint32_t argsz, flags;
	/* then the feature's data */
};
#define VFU_DEVICE_FEATURE_SIZE	     8u
#define VFU_FEATURE_MASK	     0xffffu
#define VFU_FEATURE_GET		     (1u << 16)
#define VFU_FEATURE_SET		     (1u << 17)
#define VFU_FEATURE_PROBE	     (1u << 18)
#define VFU_FEATURE_MIGRATION	     1u /* data: u64 VFIO_MIGRATION_* flags */
#define VFU_FEATURE_MIG_DEVICE_STATE 2u /* data: u32 device_state, u32 data_fd (unused) */
#define VFU_MIGRATION_STOP_COPY	     1u
#define VFU_MIGRATION_P2P	     2u
#define VFU_MIGRATION_PRE_COPY	     4u

struct vfu_mig_state {
	uint32_t device_state, data_fd;
};

/* MIG_DATA_READ / MIG_DATA_WRITE. */
struct vfu_mig_data {
	uint32_t argsz, size;
	/* then size bytes (read reply, write request) */
};
#define VFU_MIG_DATA_SIZE 8u

/* --- capabilities (VERSION's JSON) --- */

/* Values a peer that says nothing is assumed to have (the spec's defaults). */
#define VFU_DEF_MAX_FDS	     1u
#define VFU_DEF_MAX_XFER     (1024u * 1024u)
#define VFU_DEF_MAX_DMA_MAPS 65535u
#define VFU_DEF_PGSIZES	     4096u
/* The largest capabilities text accepted (QEMU's is about 200 bytes). */
#define VFU_CAPS_MAX_LEN 4096u

struct vfu_caps {
	uint64_t max_msg_fds;
	uint64_t max_data_xfer_size;
	uint64_t max_dma_maps;
	uint64_t pgsizes;
	bool write_multiple;
	bool twin_socket; /* twin_socket.supported */
	bool migration;	  /* a "migration" object was present */
	uint64_t migration_pgsize, migration_max_bitmap;
};

/* The spec's defaults. */
void vfu_caps_default(struct vfu_caps *c);

/*
 * Parses the capabilities JSON of len bytes (without its NUL) into c (which
 * starts from the defaults). Strict: the whole text is one JSON object,
 * nesting at most 8 deep, no duplicate member in an object we interpret, no
 * trailing bytes; known members must have their types (numbers are
 * non-negative integers below 2^64). Members we do not know are skipped
 * (newer peers). Returns 0 or -EINVAL with *why set to a static reason.
 */
int vfu_caps_parse(const char *json, size_t len, struct vfu_caps *c, const char **why);

/*
 * Writes c as {"capabilities":{...}} with a NUL into buf; write_multiple and
 * twin_socket appear only when true. Returns the length including the NUL,
 * or -ENOSPC.
 */
int vfu_caps_format(const struct vfu_caps *c, char *buf, size_t len);

/* --- decoding --- */

/* The header at p (at least VFU_HDR_SIZE bytes). */
void vfu_hdr_get(const void *p, struct vfu_hdr *h);
void vfu_hdr_put(void *p, const struct vfu_hdr *h);

/*
 * Checks a command header by itself: type COMMAND, no ERROR bit, no unknown
 * flag bits, size at least the header and at most max_size. Returns 0,
 * -EINVAL (flags, size below the header) or -E2BIG (size above max_size).
 */
int vfu_hdr_check_command(const struct vfu_hdr *h, uint32_t max_size);

/* The name of a command for logs ("DMA_MAP"), or "unknown". */
const char *vfu_cmd_name(uint32_t cmd);

/*
 * Payload decoders: p/len is the payload after the header. Each checks the
 * payload's length and the fields the spec fixes (argsz, flags); device
 * facts (indexes, bounds) are the caller's. Return 0 or -EINVAL.
 */
int vfu_decode_version(const void *p, size_t len, struct vfu_version *v, const char **caps,
		       size_t *caps_len);
int vfu_decode_dma_map(const void *p, size_t len, struct vfu_dma_map *m);
int vfu_decode_dma_unmap(const void *p, size_t len, struct vfu_dma_unmap *u);
/* GET_INFO, GET_REGION_INFO, GET_IRQ_INFO: argsz below the fixed reply is -EINVAL. */
int vfu_decode_device_info(const void *p, size_t len, struct vfu_device_info *d);
int vfu_decode_region_info(const void *p, size_t len, struct vfu_region_info *r);
int vfu_decode_irq_info(const void *p, size_t len, struct vfu_irq_info *i);
/* GET_REGION_IO_FDS: exactly the fixed part, flags and count 0, argsz at least 16. */
int vfu_decode_region_io_fds(const void *p, size_t len, struct vfu_region_io_fds *r);
/*
 * SET_IRQS: exactly one data and one action bit, argsz = the payload's
 * length, DATA_BOOL carrying count bytes (*bools points at them), the others
 * none. nfds: descriptors that came with it; DATA_EVENTFD takes 0 (all
 * unassigned) or count, the others 0.
 */
int vfu_decode_irq_set(const void *p, size_t len, size_t nfds, struct vfu_irq_set *s,
		       const uint8_t **bools);
/* REGION_READ: the payload is exactly the access; count 1..max_xfer. */
int vfu_decode_region_read(const void *p, size_t len, uint32_t max_xfer,
			   struct vfu_region_access *a);
/* REGION_WRITE: the access then exactly count (1..max_xfer) bytes at *data. */
int vfu_decode_region_write(const void *p, size_t len, uint32_t max_xfer,
			    struct vfu_region_access *a, const uint8_t **data);
/*
 * REGION_WRITE_MULTI: wr_cnt 1..VFU_MULTI_MAX entries filling the payload
 * exactly, each count 1..8. *n set; entry i is vfu_write_multi_get(p, i).
 */
int vfu_decode_write_multi(const void *p, size_t len, uint64_t *n);
void vfu_write_multi_get(const void *p, uint64_t i, struct vfu_write_one *w);
/*
 * DEVICE_FEATURE: the header (*f) and its data (*data, *dlen). The feature
 * operations are VFIO's: GET or SET, either with PROBE, or PROBE alone; no
 * other flag bits; argsz at least the header.
 */
int vfu_decode_device_feature(const void *p, size_t len, struct vfu_device_feature *f,
			      const uint8_t **data, size_t *dlen);
/* MIG_DATA_READ: exactly argsz and size; size 1..max_xfer, argsz room for it. */
int vfu_decode_mig_data_read(const void *p, size_t len, uint32_t max_xfer, struct vfu_mig_data *m);
/* MIG_DATA_WRITE: size 1..max_xfer bytes following exactly, argsz at least the header. */
int vfu_decode_mig_data_write(const void *p, size_t len, uint32_t max_xfer, struct vfu_mig_data *m,
			      const uint8_t **data);
/* A DMA_READ / DMA_WRITE reply to our request (addr, count as asked). */
int vfu_decode_dma_access(const void *p, size_t len, struct vfu_dma_access *a);

/*
 * Region info reply payload with an optional sparse mmap capability of n
 * areas, truncated as VFIO does: when argsz (the client's room) is below
 * what the whole needs, only the fixed part goes, with CAPS set, cap_offset 0
 * and argsz the size needed. Returns the payload length written to out
 * (room out_len), or -ENOSPC.
 */
int vfu_encode_region_info(const struct vfu_region_info *r,
			   const struct vfu_sparse_mmap_area *areas, uint32_t n, uint32_t argsz,
			   void *out, size_t out_len);

/*
 * GET_REGION_IO_FDS reply payload for index with n sub-regions, with
 * VFIO's argsz rule: when argsz is below what the whole needs, only the
 * fixed part goes, with argsz the size needed and count n (and the caller
 * sends no descriptors). Returns the payload length, or -ENOSPC.
 */
int vfu_encode_region_io_fds(uint32_t index, const struct vfu_sub_region_ioeventfd *subs,
			     uint32_t n, uint32_t argsz, void *out, size_t out_len);
/* The sub-region array of a reply (the client's side): count entries after the fixed part. */
int vfu_decode_region_io_fds_reply(const void *p, size_t len, struct vfu_region_io_fds *r);
void vfu_sub_region_get(const void *p, uint32_t i, struct vfu_sub_region_ioeventfd *s);

#endif
