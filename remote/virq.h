/*
 * Interrupts of an emulated device, for one proxy connection.
 *
 * INTx pins are routed to IOHUB PIRQs by the explicit mapping the proxy sets
 * with SetIntxIrqfd (pin 0 = INTA ... 3 = INTD, any PIRQ). SetIrqs follows
 * VFIO_DEVICE_SET_IRQS: for INTx a trigger eventfd signalled when the line
 * rises and then masked until unmasked (by an action or by the unmask
 * eventfd), as VFIO's automasked INTx; for MSI and MSI-X one trigger eventfd
 * per vector, with mask/unmask (a masked vector's message stays pending and
 * is sent on unmask) and disable (count 0).
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
	uint64_t intx_changes;	    /* device pin transitions */
	uint64_t vfio_intx_signals; /* SetIrqs INTx trigger eventfd writes */
	uint64_t vector_signals;    /* MSI/MSI-X eventfd writes */
	uint64_t vector_pending;    /* messages held back by a mask */
	uint64_t vector_dropped;    /* messages with no eventfd to go to */
};

struct virq {
	struct event_base *base;
	struct iohub *hub;
	struct {
		bool level;
		int pirq; /* -1: not routed */
	} pins[VIRQ_NUM_PINS];
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

int virq_init(struct virq *v, struct event_base *base, struct iohub *hub,
	      const struct backend_device_info *info, struct mpdev_error *err);
/* Closes every descriptor and forgets all routing (disconnect). Pin levels stay. */
void virq_reset(struct virq *v);
void virq_destroy(struct virq *v);

/*
 * Routes pin to pirq with a new irqfd/resamplefd pair (owned from now on,
 * also on failure); irqfd -1 removes the pin's routing.
 */
int virq_set_intx_irqfd(struct virq *v, uint32_t pin, uint32_t pirq, int irqfd, int resamplefd,
			struct mpdev_error *err);

int virq_set_irqs(struct virq *v, struct backend_irq_request *req, struct mpdev_error *err);

/* From the device model. */
int virq_set_intx(struct virq *v, unsigned pin, bool level, struct mpdev_error *err);
int virq_signal_vector(struct virq *v, unsigned index, unsigned vector, struct mpdev_error *err);

#endif
