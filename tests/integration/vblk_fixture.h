/*
 * One mpdev-remote serving virtio-blk on a temporary backing file in
 * /var/tmp, with guest RAM a memfd registered as the memory table and the
 * driver side (tests/lib/virtio_drv.h) ready to set the device up: what
 * both virtio-blk suites start from. Every wait is bounded (VF_WAIT_MS).
 */
#ifndef MPDEV_VBLK_FIXTURE_H
#define MPDEV_VBLK_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "remote_fixture.h"
#include "virtio_drv.h"

#define VF_GPA	    0x100000ull
#define VF_MEM_SIZE (32ull << 20)
#define VF_WAIT_MS  5000
#define VF_SECTOR   512u

/*
 * virtio-blk (spec §5.2), copied from the spec rather than from the device
 * (remote/emu/virtio_blk_internal.h) on purpose: the tests are an independent
 * reading of the spec, so a wrong number in the device shows up here.
 */
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2
#define VBLK_CFG_CAPACITY	  0
#define VBLK_CFG_SEG_MAX	  12
#define VBLK_CFG_BLK_SIZE	  20
#define VBLK_CFG_NUM_QUEUES	  34

struct vblk_fix {
	struct remote rem;
	char path[64];
	uint64_t file_size;
	uint8_t *image; /* what the backing file should hold */
	int memfd;
	uint8_t *mem;
	struct vdrv d;
	/* One request at a time through vf_request: header, status, data. */
	uint8_t *hdr, *status, *data;
	uint64_t hdr_gpa, status_gpa, data_gpa;
	uint32_t data_max;
};

/* Exits 77 (the caller's process) when the machine has no io_uring. */
void vf_require_io_uring(void);

/*
 * A backing file of size bytes filled with a pattern (image holds a copy),
 * a remote on --device virtio-blk:PATH<opts> (opts: "" or ",ro,...") and
 * guest RAM registered; vdrv_init done.
 */
void vf_start(struct vblk_fix *f, uint64_t size, const char *opts);
void vf_stop(struct vblk_fix *f);

/*
 * Reset, negotiate features (0: everything the device offers), nq queues
 * of qsize with MSI-X vectors 0.. if fds is given (enabled, fds their
 * triggers), none otherwise (poll), DRIVER_OK; the scratch buffers.
 */
void vf_setup(struct vblk_fix *f, uint64_t features, unsigned nq, uint16_t qsize, const int *fds);

/* A request through the scratch buffers, waited for; returns the status byte. */
uint8_t vf_request(struct vblk_fix *f, unsigned q, uint32_t type, uint64_t sector, uint32_t len,
		   uint32_t *used_len);

void vf_put_hdr(uint8_t *p, uint32_t type, uint64_t sector);
uint8_t vf_status(struct vblk_fix *f);
/* The backing file equals image (pread), else fails naming the first differing byte. */
void vf_expect_file(struct vblk_fix *f);
/* The remote answers a BAR read (num_queues) and a config read. */
void vf_expect_alive(struct vblk_fix *f);
void vf_pattern(uint8_t *p, uint64_t len, uint64_t seed);

#endif
