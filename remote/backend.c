#include "backend.h"

#include <errno.h>
#include <string.h>

#include "edu.h"
#include "virtio_blk.h"
#include "vfio.h"
#include "vfio_iommu.h"

int backend_create(const struct backend_config *cfg, struct event_base *base,
		   struct backend_host *host, struct backend **out, struct mpdev_error *err)
{
	const char *spec = cfg->device;

	*out = NULL;
	if (!spec || !*spec)
		return mpdev_error_set(
			err, EINVAL, "no device given (--device edu, virtio-blk:PATH or vfio:BDF)");
	if (strcmp(spec, "edu") == 0)
		return edu_create(base, host, out, err);
	if (strncmp(spec, "virtio-blk:", 11) == 0)
		return virtio_blk_create(spec + 11, base, host, out, err);
	if (strncmp(spec, "vfio:", 5) == 0 || strncmp(spec, "vfio-mdev:", 10) == 0)
		return vfio_backend_create(cfg, base, host, out, err);
	return mpdev_error_set(
		err, ENODEV,
		"unknown device '%s' (known: edu, virtio-blk:PATH, vfio:BDF, vfio-mdev:UUID)",
		spec);
}

void backend_iommu_destroy(struct vfio_iommu *io)
{
	if (io)
		io->ops->destroy(io);
}

void backend_destroy(struct backend *b)
{
	if (b)
		b->ops->destroy(b);
}
