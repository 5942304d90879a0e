/*
 * The edu device's state, shared by the device model (edu.c) and its
 * migration (edu_mig.c) and by nothing else.
 */
#ifndef MPDEV_EDU_INTERNAL_H
#define MPDEV_EDU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "edu.h"
#include "pci_config.h"

/* QEMU's edu: revision 0x10, PCI_CLASS_OTHERS written as the class word, default subsystem. */
#define EDU_REVISION		0x10
#define EDU_CLASS_CODE		0x00ff00
#define EDU_SUBSYSTEM_VENDOR_ID 0x1af4
#define EDU_SUBSYSTEM_ID	0x1100

/*
 * What a guest can change; reset is zeroing all of it. Work in flight is
 * part of it: status COMPUTING is a factorial not yet done, dma.cmd RUN a
 * DMA not yet done.
 */
struct edu_regs {
	uint32_t liveness;
	uint32_t fact; /* the operand while computing, the result afterwards */
	uint32_t status;
	uint32_t irq_status;
	struct {
		uint64_t src, dst, cnt, cmd;
	} dma;
	uint8_t dma_buf[EDU_DMA_BUF_SIZE];
};

struct edu_mig;

struct edu {
	struct backend be;
	struct pci_config cfg;
	struct edu_regs regs;
	struct event *fact_ev;
	struct event *dma_ev;
	bool intx_level; /* the device's own INTx level, shown in config status */
	bool intx_pin;	 /* the level the host was last told */
	bool intx_sync;	 /* the host's pin is not known (state was loaded): tell it */
	bool msi_held;	 /* an MSI raised while quiesced, sent when the device runs */
	enum backend_mig_state mig_state;
	struct edu_mig *mig; /* the stream being saved or loaded, NULL if none */
};

/* Deferred work runs and interrupts reach the host only in these states. */
static inline bool edu_runs(const struct edu *edu)
{
	return edu->mig_state == BACKEND_MIG_RUNNING || edu->mig_state == BACKEND_MIG_PRE_COPY;
}

/* The guest may still program registers (RUNNING_P2P, PRE_COPY_P2P too). */
static inline bool edu_accepts_bar_writes(const struct edu *edu)
{
	return edu_runs(edu) || edu->mig_state == BACKEND_MIG_RUNNING_P2P ||
	       edu->mig_state == BACKEND_MIG_PRE_COPY_P2P;
}

/* edu.c */
void edu_update_intx(struct edu *edu);
void edu_signal_msi(struct edu *edu);
void edu_defer(struct edu *edu, struct event *ev);
bool edu_dma_dev_range_ok(const struct edu_regs *regs);
void edu_dma_settle(struct edu *edu);
void edu_reset_state(struct edu *edu);

/* edu_mig.c */
uint32_t edu_mig_flags(struct backend *b);
int edu_mig_arc(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		enum backend_mig_state *now, struct mpdev_error *err);
ssize_t edu_mig_save(struct backend *b, void *buf, size_t len, struct mpdev_error *err);
int edu_mig_load(struct backend *b, const void *buf, size_t len, struct mpdev_error *err);
int edu_mig_precopy_info(struct backend *b, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			 struct mpdev_error *err);
/* Drops any stream and puts the device back in RUNNING (reset). */
void edu_mig_reset(struct edu *edu);

#endif
