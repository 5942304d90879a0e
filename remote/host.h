/*
 * The services the remote offers its device model (struct backend_host):
 * guest memory through the connection's memory table, and interrupts
 * through the connection's virtual IRQ state and the IOHUB.
 */
#ifndef MPDEV_HOST_H
#define MPDEV_HOST_H

#include "backend.h"
#include "dma.h"
#include "iohub.h"
#include "virq.h"

struct event_base;

/* PIRQs of the remote's IOHUB (QEMU's remote IOHUB has one per devfn; we need few). */
#define REMOTE_HOST_PIRQS 32

struct remote_host {
	struct backend_host ops;
	struct dma_table dma; /* the connected proxy's memory table */
	struct iohub *hub;
	struct virq virq;
	bool virq_ready;
	/*
	 * Guest memory the peer serves by message (vfio-user's DMA_MAP without a
	 * descriptor): asked for what the memory table does not hold. NULL:
	 * there is none. Set by the face for its connection.
	 */
	int (*dma_msg)(void *opaque, bool write, uint64_t gpa, void *buf, size_t len,
		       struct mpdev_error *err);
	void *dma_msg_opaque;
};

int remote_host_init(struct remote_host *h, struct event_base *base, struct mpdev_error *err);
/* Attaches the backend: its dma_map/dma_unmap follow the table, its IRQ counts size virq. */
int remote_host_set_backend(struct remote_host *h, struct backend *b, struct mpdev_error *err);
/*
 * SetIntxIrqfd for an emulated device: routes its pin to IOHUB pirq with the
 * proxy's irqfd/resamplefd (owned from now on, also on failure; irqfd -1
 * unroutes the pin).
 */
int remote_host_route_intx(struct remote_host *h, uint32_t pin, uint32_t pirq, int irqfd,
			   int resamplefd, struct mpdev_error *err);
/* Drops everything a connection set up (interrupt routing, then memory). */
void remote_host_release(struct remote_host *h);
void remote_host_destroy(struct remote_host *h);

#endif
