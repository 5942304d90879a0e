/*
 * A VFIO device cdev meeting iommufd: BIND_IOMMUFD, ATTACH / DETACH of a
 * page table with auto domains (the domain's aperture and the device's MSI
 * window become reserved ranges of the IOAS), and unbinding on close.
 * Mirrors drivers/vfio/device_cdev.c and drivers/iommu/iommufd/device.c
 * (iommufd_device_bind, iommufd_device_auto_get_domain, detach).
 */
#include "vfio_model_internal.h"

#include <fcntl.h>
#include <string.h>

/* An auto domain goes with its last device: iopt_table_remove_domain() [iopt]. */
static void hwpt_destroy(struct vfio_model *m, struct ictx *c, struct obj *hw)
{
	struct obj *io = hw->ioas;

	vfm_resv_remove_owner(io, hw); /* the aperture reservation */
	if (--io->ndomains == 0)
		io->align = 1;
	io->users--;
	vfm_obj_free(m, c, hw);
	vfm_pins_update(m);
}

/* Detaches a device from its HWPT (its reserved regions leave the IOAS) [idev]. */
void vfm_idev_detach(struct vfio_model *m, struct ictx *c, struct obj *idev)
{
	struct obj *hw = idev->hwpt;

	if (!hw)
		return;
	vfm_resv_remove_owner(hw->ioas, idev->dev);
	idev->hwpt = NULL;
	if (--hw->ndevs == 0)
		hwpt_destroy(m, c, hw);
}

/* ---- bind, attach, unbind [cdev] [idev] ---- */

int vfm_cdev_bind(struct vfio_model *m, struct dfile *df, struct vfio_device_bind_iommufd *b)
{
	const uint32_t minsz = 16; /* offsetofend(out_devid) */
	struct mdev *d = df->dev;
	struct mgroup *g = vfm_group_find(m, d->group);
	struct mfd *f;
	struct obj *o;

	if (b->argsz < minsz || b->flags || b->iommufd < 0)
		return -EINVAL;
	/* vfio_device_block_group(): not while the group is open the legacy way. */
	if (g && (g->fd_open || g->dev_files))
		return -EBUSY;
	if (df->access)
		return -EINVAL; /* one device cannot be bound twice */
	f = vfm_fd_get(m, b->iommufd);
	if (!f)
		return vfm_fd_in_range(b->iommufd) || fcntl(b->iommufd, F_GETFD) < 0 ? -EBADF
										     : -EBADFD;
	if (f->kind != FD_IOMMUFD)
		return -EBADFD;
	/* vfio_df_open(): a cdev open is exclusive. */
	if (d->open_count)
		return -EINVAL;
	/* iommufd_device_bind(): isolated MSI, then DMA ownership of the group. */
	if (!m->msi_isolated)
		return -EPERM;
	if (g && !vfm_group_viable(m, g))
		return -EBUSY;
	o = vfm_obj_new(f->p, OBJ_DEVICE);
	if (!o)
		return -ENOMEM;
	o->dev = d;
	df->ictx = f->p;
	df->idev = o;
	df->ictx->dev_refs++;
	df->access = true;
	d->open_count++;
	d->bound = df;
	b->out_devid = o->id;
	return 0;
}

/*
 * ATTACH to an IOAS finds the IOAS's auto domain or makes one: the domain's
 * aperture and page size become reserved ranges and alignment of the IOAS,
 * existing areas get pinned into it; then the device's reserved regions (the
 * MSI window) are reserved — EADDRINUSE if an area is there. pt_id comes back
 * as the HWPT's id [idev: iommufd_device_auto_get_domain].
 */
int vfm_cdev_attach(struct vfio_model *m, struct dfile *df,
		    struct vfio_device_attach_iommufd_pt *at)
{
	struct ictx *c = df->ictx;
	struct obj *pt, *hw = NULL, *io, *old = df->idev->hwpt;
	bool created = false;
	int r;

	if (at->argsz < 12 || at->flags)
		return -EINVAL;
	pt = vfm_obj_get(c, at->pt_id, 0);
	if (!pt)
		return -ENOENT;
	if (pt->type == OBJ_HWPT) {
		hw = pt;
	} else if (pt->type == OBJ_IOAS) {
		for (int i = 0; i < MAX_OBJS; i++)
			if (c->objs[i] && c->objs[i]->type == OBJ_HWPT && c->objs[i]->ioas == pt)
				hw = c->objs[i];
	} else {
		return -EINVAL;
	}
	if (hw && hw == old) {
		at->pt_id = hw->id;
		return 0;
	}
	io = hw ? hw->ioas : pt;
	if (!hw) {
		/* iommufd_hwpt_paging_alloc() -> iopt_table_add_domain() */
		hw = vfm_obj_new(c, OBJ_HWPT);
		if (!hw)
			return -ENOMEM;
		hw->ioas = io;
		created = true;
		if (io->align < PG) {
			for (size_t i = 0; i < io->n_areas; i++)
				if ((io->areas[i].iova | (io->areas[i].last + 1) |
				     io->areas[i].start_byte) &
				    (PG - 1)) {
					r = -EADDRINUSE;
					goto undo_hwpt;
				}
		}
		r = vfm_resv_add(io, VFIO_MODEL_APERTURE_LAST + 1, UINT64_MAX, hw);
		if (r)
			goto undo_hwpt;
		io->ndomains++;
		r = vfm_pins_update(m); /* iopt_fill_domain() */
		if (r) {
			io->ndomains--;
			goto undo_resv;
		}
		io->align = PG;
		io->users++;
	}
	/* iommufd_device_attach_reserved_iova() */
	r = vfm_resv_add(io, VFIO_MODEL_MSI_START, VFIO_MODEL_MSI_LAST, df->dev);
	if (r) {
		if (created)
			hwpt_destroy(m, c, hw);
		return r;
	}
	hw->ndevs++;
	if (old) /* iommufd_device_replace() */
		vfm_idev_detach(m, c, df->idev);
	df->idev->hwpt = hw;
	at->pt_id = hw->id;
	return 0;

undo_resv:
	vfm_resv_remove_owner(io, hw);
undo_hwpt:
	vfm_obj_free(m, c, hw);
	return r;
}

void vfm_cdev_unbind(struct vfio_model *m, struct dfile *df)
{
	struct ictx *c = df->ictx;

	if (!df->access)
		return;
	vfm_idev_detach(m, c, df->idev);
	vfm_obj_free(m, c, df->idev);
	df->dev->bound = NULL;
	df->access = false;
	c->dev_refs--;
	vfm_ctx_maybe_free(m, c);
}
