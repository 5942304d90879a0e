/* The vfio backend: a host PCI device through VFIO (container or iommufd). */
#ifndef MPDEV_VFIO_H
#define MPDEV_VFIO_H

#include "backend.h"

/* cfg->device is "vfio:BDF". */
int vfio_backend_create(const struct backend_config *cfg, struct event_base *base,
			struct backend_host *host, struct backend **out, struct mpdev_error *err);

#endif
