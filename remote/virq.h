/*
 * Interrupts of an emulated device that the IOHUB does not own, for one
 * proxy connection: VFIO_DEVICE_SET_IRQS as the protocol's SetIrqs asks.
 *
 * INTx pins themselves (their levels, their routing to IOHUB PIRQs with the
 * proxy's irqfd/resamplefd pairs) are the IOHUB's; here is only the
 * VFIO-style consumer of pin 0: a trigger eventfd signalled when the line
 * rises and then masked until unmasked (by an action or by the unmask
 * eventfd), as VFIO's automasked INTx. For MSI and MSI-X: one trigger
 * eventfd per vector, with mask/unmask (a masked vector's message stays
 * pending and is sent on unmask) and disable (count 0).
 */
#ifndef MPDEV_VIRQ_H
#define MPDEV_VIRQ_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "iohub.h"

struct event;
struct event_base;

#define VIRQ_NUM_PINS	 4
#define VIRQ_MAX_VECTORS 2048

struct virq_vector {
	int fd;
	bool masked;
	bool pending;
};

struct virq_stats {
	uint64_t vfio_intx_signals; /* SetIrqs INTx trigger eventfd signals */
	uint64_t vector_signals;    /* MSI/MSI-X eventfd signals */
	uint64_t vector_pending;    /* messages held back by a mask */
	uint64_t vector_dropped;    /* messages with no eventfd to go to */
};

struct virq {
	struct event_base *base;
	struct iohub *hub;
	struct {
		int trigger_fd;
		int unmask_fd;
		struct event *unmask_ev;
		bool masked;
	} intx;
	struct virq_vector *vectors[BACKEND_NUM_IRQS]; /* MSI and MSI-X */
	uint32_t counts[BACKEND_NUM_IRQS];	       /* from the device info */
	struct virq_stats stats;
};

/* SetIrqs requests are struct backend_irq_request (backend.h), VFIO's numbering. */
#define VIRQ_ACTION_TRIGGER BACKEND_IRQ_ACTION_TRIGGER
#define VIRQ_ACTION_MASK    BACKEND_IRQ_ACTION_MASK
#define VIRQ_ACTION_UNMASK  BACKEND_IRQ_ACTION_UNMASK
#define VIRQ_DATA_NONE	    BACKEND_IRQ_DATA_NONE
#define VIRQ_DATA_BOOL	    BACKEND_IRQ_DATA_BOOL
#define VIRQ_DATA_EVENTFD   BACKEND_IRQ_DATA_EVENTFD

/* Watches IOHUB source 0 (the device's INTA) for the VFIO-style INTx consumer. */
int virq_init(struct virq *v, struct event_base *base, struct iohub *hub,
	      const struct backend_device_info *info, struct mpdev_error *err);
/* Closes every descriptor (disconnect). */
void virq_reset(struct virq *v);
void virq_destroy(struct virq *v);

int virq_set_irqs(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err);

/* From the device model. */
int virq_signal_vector(struct virq *v, unsigned index, unsigned vector, struct mpdev_error *err);

/*
 * 0 if fd is none of the eventfds virq holds, else -EINVAL with err saying
 * why (also when that cannot be told: no kcmp). what names fd in the words.
 */
int virq_check_fd(const struct virq *v, int fd, const char *what, struct mpdev_error *err);

#endif
