/*
 * The services the remote offers its device model (struct backend_host):
 * guest memory through the memory table, and interrupt delivery. Until the
 * IOHUB is wired in, interrupts fail with -ENOSYS and say what is missing,
 * so a device model never believes an interrupt was delivered.
 */
#ifndef MPDEV_HOST_H
#define MPDEV_HOST_H

#include "backend.h"
#include "dma.h"

struct remote_host {
	struct backend_host ops;
	struct dma_table dma; /* the connected proxy's memory table */
};

void remote_host_init(struct remote_host *h);
/* Attaches the backend whose dma_map/dma_unmap follow the table. */
void remote_host_set_backend(struct remote_host *h, struct backend *b);
void remote_host_destroy(struct remote_host *h);

#endif
