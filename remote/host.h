/*
 * The services the remote offers its device model (struct backend_host):
 * guest memory access and interrupt delivery. Until the memory table and
 * the IOHUB are wired in, each call fails with -ENOSYS and says what is
 * missing, so a device model never believes a DMA or interrupt happened.
 */
#ifndef MPDEV_HOST_H
#define MPDEV_HOST_H

#include "backend.h"

struct remote_host {
	struct backend_host ops;
};

void remote_host_init(struct remote_host *h);

#endif
