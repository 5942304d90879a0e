/*
 * The validated device operations every face calls: region access, the
 * memory table, interrupts, reset, IOMMU info and migration. A face (native,
 * mpqemu, vfio-user: remote/faces/) only decodes its wire format into these
 * calls and encodes their results; every check of an index, offset, width,
 * count or descriptor, every limit and every descriptor-ownership rule is
 * here, once, so that no face can forget one.
 *
 * All return 0 (or a count where said) or a negative errno with err set to
 * a message for the peer. Descriptor rules are stated per call; "takes"
 * means the callee owns it from the call on, on success and failure alike.
 */
#ifndef MPDEV_DEVOPS_H
#define MPDEV_DEVOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "dma.h"
#include "doorbell.h"
#include "error.h"

struct session;

/* The widest single region access any face may ask for (vfio-user reads config space whole). */
#define DEVOPS_MAX_ACCESS (1u << 20)

/*
 * Region access of any length 1..DEVOPS_MAX_ACCESS inside the region, split
 * into naturally aligned accesses of at most 8 bytes (4 in config space) as
 * the device sees them. Refused: a region the device lacks (-EINVAL), a
 * range outside it (-ERANGE), a region without that access (-EACCES), a
 * length of 0 or past the cap (-EINVAL), and while migration holds the
 * device (the backend's own -EBUSY).
 */
int devops_region_read(struct session *s, uint32_t index, uint64_t offset, void *buf, size_t len,
		       struct mpdev_error *err);
int devops_region_write(struct session *s, uint32_t index, uint64_t offset, const void *buf,
			size_t len, struct mpdev_error *err);

/*
 * The memory table. r->fd is borrowed: the caller closes it after the call
 * (the mapping lives on). The descriptor must be a sealed memfd
 * (dma_fd.h); overlaps are -EEXIST.
 */
int devops_mem_add(struct session *s, const struct dma_new_region *r, struct mpdev_error *err);
/* Removes exactly [gpa, gpa + size): -ENOENT if no region starts at gpa, -EINVAL for another size. */
int devops_mem_remove(struct session *s, uint64_t gpa, uint64_t size, struct mpdev_error *err);
/* Replaces the table with v[0..n) by its difference (dma_table_set); fds borrowed. */
int devops_mem_set(struct session *s, const struct dma_new_region *v, size_t n,
		   struct mpdev_error *err);

/*
 * INTx as QEMU's SET_IRQFD: pin's line goes to IOHUB pirq with irqfd and
 * resamplefd (both taken; irqfd -1 removes the route).
 */
int devops_set_intx_irqfd(struct session *s, uint32_t pin, uint32_t pirq, int irqfd, int resamplefd,
			  struct mpdev_error *err);
/*
 * VFIO_DEVICE_SET_IRQS semantics for INTx/MSI/MSI-X/ERR/REQ: req->fds
 * (count entries, -1 for none) are taken; req->values borrowed. count is
 * checked against VIRQ_MAX_VECTORS and the index's count before anything.
 */
int devops_set_irqs(struct session *s, struct backend_irq_request *req, struct mpdev_error *err);

/*
 * Whether a write of size bytes at offset passes the checks a peer's write
 * does and reaches the device as one access, not split into pieces (what a
 * doorbell must be). 0, or the error a peer's write would get (-EINVAL
 * for one that would be split).
 */
int devops_check_one_write(const struct session *s, uint32_t index, uint64_t offset, uint32_t size,
			   struct mpdev_error *err);

/*
 * The doorbells of region as eventfds (doorbell.h): at most max into out,
 * *total how many the region has. The fds are the session's own (borrowed:
 * a face sends them, never closes them). -EINVAL for a region the device
 * lacks; a region without doorbells is 0 of them.
 */
int devops_ioeventfds(struct session *s, uint32_t region, struct doorbell_info *out, unsigned max,
		      unsigned *total, struct mpdev_error *err);

/* Device reset (-ENOTTY where the device has none); migration goes back to RUNNING. */
int devops_reset(struct session *s, struct mpdev_error *err);

/* What the device's IOMMU (or the remote's own bounds checks) allows. */
int devops_iommu_info(struct session *s, struct backend_iommu_info *info, struct mpdev_error *err);

/* Migration (VFIO v2): the device's flags, state and stream (remote/session_mig.c). */
uint32_t devops_mig_flags(const struct session *s);
enum backend_mig_state devops_mig_state(const struct session *s);
/* Walks to target one arc at a time; *reached says where the device ended up. */
int devops_mig_set_state(struct session *s, enum backend_mig_state target,
			 enum backend_mig_state *reached, struct mpdev_error *err);
/* Up to len bytes of the saving stream; 0 at its end. */
ssize_t devops_mig_read(struct session *s, void *buf, size_t len, struct mpdev_error *err);
int devops_mig_write(struct session *s, const void *buf, size_t len, struct mpdev_error *err);

#endif
