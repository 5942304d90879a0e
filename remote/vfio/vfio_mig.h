/*
 * Migration of a VFIO device (the kernel's v2 uAPI): the feature probe,
 * one FSM arc at a time through VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, the
 * state stream through the data_fd the kernel hands out, PRE_COPY's size
 * estimates; and the device's own DMA logging (DMA_LOGGING_START/STOP/
 * REPORT), which is the device-side half of dirty tracking.
 *
 * The data_fd is kept from the arc that starts a session (RUNNING ->
 * PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY, STOP ->
 * RESUMING) until the device leaves the session's states, is reset, or the
 * backend is released or destroyed: it is closed on each of those paths.
 */
#ifndef MPDEV_VFIO_MIG_H
#define MPDEV_VFIO_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "error.h"
#include "vfio_sys.h"

struct vfio_mig {
	const struct vfio_sys *sys;
	int device_fd;
	const char *name;	      /* the device, for messages */
	uint32_t flags;		      /* VFIO_MIGRATION_*: 0 without migration */
	uint64_t stop_copy_length;    /* VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, 0: unknown */
	enum backend_mig_state state; /* as the kernel last said */
	int data_fd;		      /* the session's stream, -1: none */
	bool dma_logging;	      /* the device takes DMA_LOGGING_START */
	bool logging;		      /* DMA logging started */
	uint64_t log_page_size;	      /* the granule the kernel chose at start */
};

/*
 * Probes VFIO_DEVICE_FEATURE_MIGRATION (absent: flags 0, logged), the
 * current state, the stop-copy size and DMA logging. Only an unexpected
 * kernel answer is an error; a device without migration is not.
 */
int vfio_mig_init(struct vfio_mig *m, const struct vfio_sys *sys, int device_fd, const char *name,
		  struct mpdev_error *err);
/* Closes the data_fd and stops DMA logging, if either is active. */
void vfio_mig_close(struct vfio_mig *m);

/* The device state the kernel reports (GET MIG_DEVICE_STATE). */
int vfio_mig_get_state(struct vfio_mig *m, enum backend_mig_state *state, struct mpdev_error *err);
/* One arc; *now as backend_ops.mig_arc says. */
int vfio_mig_arc(struct vfio_mig *m, enum backend_mig_state from, enum backend_mig_state to,
		 enum backend_mig_state *now, struct mpdev_error *err);
ssize_t vfio_mig_save(struct vfio_mig *m, void *buf, size_t len, struct mpdev_error *err);
int vfio_mig_load(struct vfio_mig *m, const void *buf, size_t len, struct mpdev_error *err);
int vfio_mig_precopy_info(struct vfio_mig *m, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			  struct mpdev_error *err);
/* After VFIO_DEVICE_RESET: the session is gone and the device RUNNING. */
void vfio_mig_after_reset(struct vfio_mig *m);
/* The proxy left: the session ends and the device is put back to RUNNING where it can be. */
void vfio_mig_release(struct vfio_mig *m);

/* Device DMA logging (only where dma_logging). */
int vfio_mig_log_start(struct vfio_mig *m, const struct backend_dirty_range *ranges, size_t n,
		       uint64_t page_size, struct mpdev_error *err);
int vfio_mig_log_stop(struct vfio_mig *m, struct mpdev_error *err);
int vfio_mig_log_report(struct vfio_mig *m, uint64_t iova, uint64_t size, uint64_t page_size,
			uint8_t *bitmap, size_t len, struct mpdev_error *err);

#endif
