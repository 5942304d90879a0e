/*
 * Emulated edu device, register-compatible with QEMU's educational PCI
 * device (hw/misc/edu.c), so that one test drives it and a VFIO-assigned edu
 * alike. Work QEMU does on a thread or timer (factorial, DMA) runs deferred
 * on the remote's event loop. It migrates (VFIO's v2 states with P2P and
 * PRE_COPY; docs/migration-edu.md).
 */
#ifndef MPDEV_EDU_H
#define MPDEV_EDU_H

#include "backend.h"

#define EDU_VENDOR_ID 0x1234
#define EDU_DEVICE_ID 0x11e8
#define EDU_BAR0_SIZE 0x100000

/* BAR0 registers. Below 0x80 only 4-byte accesses count, from 0x80 on 4 or 8. */
#define EDU_REG_IDENT	   0x00 /* RO 0x010000ed */
#define EDU_REG_LIVENESS   0x04 /* reads back the inverse of what was written */
#define EDU_REG_FACTORIAL  0x08 /* write n, read n! (mod 2^32) once done */
#define EDU_REG_STATUS	   0x20
#define EDU_REG_IRQ_STATUS 0x24 /* RO */
#define EDU_REG_IRQ_RAISE  0x60 /* WO */
#define EDU_REG_IRQ_ACK	   0x64 /* WO */
#define EDU_REG_DMA_SRC	   0x80
#define EDU_REG_DMA_DST	   0x88
#define EDU_REG_DMA_COUNT  0x90
#define EDU_REG_DMA_CMD	   0x98

#define EDU_IDENT 0x010000edu

#define EDU_STATUS_COMPUTING 0x01u /* RO */
#define EDU_STATUS_IRQFACT   0x80u /* raise EDU_IRQ_FACT when a factorial is done */

#define EDU_IRQ_FACT 0x001u
#define EDU_IRQ_DMA  0x100u

#define EDU_DMA_CMD_RUN	   0x1u
#define EDU_DMA_CMD_TO_RAM 0x2u /* clear: RAM -> device buffer */
#define EDU_DMA_CMD_IRQ	   0x4u /* raise EDU_IRQ_DMA when done */

/* The device side of a DMA: a buffer addressed by BAR offsets, not mapped in BAR0. */
#define EDU_DMA_BUF_ADDR 0x40000u
#define EDU_DMA_BUF_SIZE 4096u
/* QEMU's default dma_mask: RAM addresses are truncated to 28 bits. */
#define EDU_DMA_ADDR_MASK ((UINT64_C(1) << 28) - 1)

#define EDU_MSI_CAP_OFFSET 0x40

/*
 * An edu device in power-on state. Deferred work runs on base; guest memory
 * and interrupts go through host, which must outlive the device. Destroy with
 * (*out)->ops->destroy.
 */
int edu_create(struct event_base *base, struct backend_host *host, struct backend **out,
	       struct mpdev_error *err);

#endif
