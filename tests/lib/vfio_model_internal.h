/*
 * The inside of the VFIO / iommufd model (vfio_model.h is its public face):
 * the state every vfio_model_*.c file shares, and the functions one file
 * calls in another. The files mirror the kernel files named in each one's
 * head comment; a function keeps the name of the kernel function it models
 * where there is one, with the vfm_ prefix when other files call it.
 *
 * Simplifications (deliberate, stated where they matter): pinning is charged
 * per IOAS_MAP'd range as a whole (the kernel charges the pages a domain or
 * an access actually uses) and iommufd and type1 share one budget (the
 * kernel charges user->locked_vm and mm->locked_vm separately); user memory
 * is checked to be mapped (mincore) when pinned, not that it is writable;
 * IOMMU_IOAS_ALLOW_IOVAS, IOMMU_OPTION, HWPT_ALLOC and the other iommufd
 * ioctls are not modelled (ENOTTY); edu's DMA engine only records its
 * registers.
 *
 * Comments cite the kernel code a behaviour follows (torvalds/linux,
 * v6.12-era) with these tags:
 *
 *   [main]    drivers/iommu/iommufd/main.c        ucmd size checks, DESTROY
 *   [ioas]    drivers/iommu/iommufd/ioas.c        IOAS ioctls
 *   [iopt]    drivers/iommu/iommufd/io_pagetable.c areas, reserved ranges
 *   [pages]   drivers/iommu/iommufd/pages.c       pinning, locked_vm
 *   [idev]    drivers/iommu/iommufd/device.c      bind, attach, auto domains
 *   [cdev]    drivers/vfio/device_cdev.c          BIND / ATTACH / DETACH
 *   [vmain]   drivers/vfio/vfio_main.c            device fd gating
 *   [group]   drivers/vfio/group.c                group fd
 *   [cont]    drivers/vfio/container.c            container fd
 *   [type1]   drivers/vfio/vfio_iommu_type1.c     MAP_DMA / UNMAP_DMA / GET_INFO
 *   [pci]     drivers/vfio/pci/vfio_pci_core.c    device info, regions, irqs
 *   [intrs]   drivers/vfio/pci/vfio_pci_intrs.c   SET_IRQS
 *   [edu]     QEMU hw/misc/edu.c                  the device's registers
 *   [mig]     drivers/vfio/vfio_main.c            VFIO_DEVICE_FEATURE, the migration FSM
 *   [mtty]    samples/vfio-mdev/mtty.c            a migration driver: arcs, data_fd
 */
#ifndef MPDEV_VFIO_MODEL_INTERNAL_H
#define MPDEV_VFIO_MODEL_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "iommufd_uapi.h"
#include "vfio_model.h"

#define PG	       VFIO_MODEL_PAGE_SIZE
#define MAX_FDS	       256
#define MAX_DEVICES    16
#define MAX_GROUPS     16
#define MAX_CTX	       16
#define MAX_CONTAINERS 16
#define MAX_OBJS       64
#define MAX_MMAPS      32
#define EDU_IDENT      0x010000edu
#define MAX_MIGF       8
#define REGION_SHIFT   40	     /* VFIO_PCI_OFFSET_SHIFT, [pci] */
#define TYPE1_PGSIZES  0x40201000ull /* 4K | 2M | 1G, VT-d with superpages */

/* ---- the model's state: what the kernel keeps per object ---- */

/* iopt_pages: the user memory of one IOAS_MAP, shared by the areas COPY makes. */
struct pages {
	uint64_t uptr; /* page aligned */
	uint64_t npages;
	bool writable;
	bool pinned;
	int refs; /* areas using it */
	struct pages *next;
};

struct area {
	uint64_t iova, last;
	struct pages *pages;
	uint64_t start_byte; /* of iova within pages */
	bool write;
};

struct resv {
	uint64_t start, last;
	const void *owner;
};

enum obj_type { OBJ_IOAS = 1, OBJ_DEVICE, OBJ_HWPT };

struct obj {
	uint32_t id;
	enum obj_type type;
	/* OBJ_IOAS */
	struct area *areas; /* sorted by iova */
	size_t n_areas, cap_areas;
	struct resv *resv;
	size_t n_resv, cap_resv;
	uint64_t align; /* iopt->iova_alignment */
	int ndomains;
	int users; /* HWPTs on this IOAS */
	/* OBJ_DEVICE */
	struct mdev *dev;
	struct obj *hwpt;
	/* OBJ_HWPT (an auto domain) */
	struct obj *ioas;
	int ndevs;
};

struct ictx {
	bool fd_open;
	int dev_refs; /* bound devices hold the context [idev: iommufd_ctx_get] */
	unsigned long serial;
	struct obj *objs[MAX_OBJS]; /* id = index + 1 (xa_alloc, XA_FLAGS_ALLOC1) */
};

enum irq_type { IRQ_NONE, IRQ_INTX, IRQ_MSI };

struct mdev {
	bool used;
	char bdf[16];
	char driver[32];
	int group;
	int cdev;
	int open_count;
	struct dfile *bound; /* the cdev file bound to an iommufd */
	/* edu */
	uint32_t addr4, fact, status, irq_status;
	uint64_t dma[4];
	uint8_t config[256];
	enum irq_type irq_type;
	int holds[5][4]; /* our dup of each trigger eventfd (eventfd_ctx_fdget) */
	int unmask_hold;
	struct vfio_model_irq irqs[5];
	unsigned resets;
	/* migration [mig] [mtty]: flags 0 = no mig_ops */
	uint32_t mig_flags;
	uint32_t mig_state;
	struct migf *saving, *resuming;
	int mig_fail_err;    /* the driver's next arc fails with this */
	bool mig_fail_error; /* ... and leaves the device in ERROR */
	/* DMA logging (log_ops) */
	bool dma_logging, logging;
	uint64_t log_page_size;
	uint64_t dirty_pages[8]; /* IOVAs of pages the device wrote since the last report */
	size_t n_dirty;
};

/*
 * A migration file (the driver's anon inode behind a data_fd). Its descriptor
 * is a real one (a memfd) so that a leak shows in /proc/self/fd; its bytes
 * live here. The device forgets it when disabled; it lives until closed.
 */
struct migf {
	bool used;
	int fd;
	struct mdev *dev; /* NULL once disabled */
	bool save;
	uint8_t data[128];
	size_t filled, pos;
};

struct dfile {
	struct mdev *dev;
	struct mgroup *group; /* opened through a group */
	bool access;	      /* df->access_granted */
	struct ictx *ictx;
	struct obj *idev;
};

struct mgroup {
	bool used;
	int num;
	int viable; /* -1: from the drivers of its devices */
	bool fd_open;
	int dev_files;
	struct container *c;
};

struct dma {
	uint64_t iova, size, vaddr;
	bool write;
	uint64_t npages;
};

struct container {
	bool fd_open;
	int ngroups;
	int iommu;	  /* 0, VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU */
	struct dma *dmas; /* sorted by iova */
	size_t n_dmas, cap_dmas;
	uint32_t dma_avail;
	unsigned long serial;
	bool dirty_tracking; /* VFIO_IOMMU_DIRTY_PAGES START */
};

enum fd_kind { FD_FREE, FD_IOMMUFD, FD_CONTAINER, FD_GROUP, FD_DEVICE };

struct mfd {
	enum fd_kind kind;
	void *p;
};

struct vfio_model {
	struct vfio_sys sys;
	char root[PATH_MAX / 2], sysfs[PATH_MAX], dev[PATH_MAX];
	struct mfd fds[MAX_FDS];
	struct ictx *ctx[MAX_CTX];
	struct container *cont[MAX_CONTAINERS];
	struct mdev devs[MAX_DEVICES];
	struct mgroup groups[MAX_GROUPS];
	struct pages *pages;
	int next_cdev;
	unsigned long serial;
	bool iommufd, msi_isolated;
	uint64_t memlock_pages;
	uint32_t dma_entry_limit;
	unsigned long calls, fail_at;
	unsigned long fail_base; /* calls when the fail-nth injector was armed */
	int fail_err;
	bool fail_hit;
	struct {
		void *addr;
		size_t len;
	} mmaps[MAX_MMAPS];
	struct migf migfs[MAX_MIGF];
};

static inline int fail(int e)
{
	errno = e;
	return -1;
}

static inline uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static inline bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a <= bl && b <= al;
}

static inline bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	void *p;
	size_t ncap;

	if (n < *cap)
		return true;
	ncap = *cap ? *cap * 2 : 8;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* ---- vfio_model_iopt.c: areas, reserved ranges, pinned pages (io_pagetable.c, pages.c) ---- */

bool vfm_user_mapped(uint64_t addr, uint64_t len);
uint64_t vfm_pinned_total(const struct vfio_model *m);
int vfm_pins_update(struct vfio_model *m);
void vfm_pages_put(struct vfio_model *m, struct pages *p);
ssize_t vfm_area_first(const struct obj *io, uint64_t start, uint64_t last);
int vfm_area_insert(struct obj *io, const struct area *a);
void vfm_area_remove(struct vfio_model *m, struct obj *io, size_t i);
int vfm_resv_add(struct obj *io, uint64_t start, uint64_t last, const void *owner);
void vfm_resv_remove_owner(struct obj *io, const void *owner);
size_t vfm_holes(const struct obj *io, bool with_areas, uint64_t lo, uint64_t hi,
		 struct iommu_iova_range *out, size_t max);
void vfm_ioas_unmap_all(struct vfio_model *m, struct obj *io);
int vfm_check_iova(const struct obj *io, uint64_t iova, uint64_t length);
int vfm_alloc_iova(const struct obj *io, uint64_t uptr, uint64_t length, uint64_t *iova);

/* ---- vfio_model_ioas.c: objects, contexts, the IOAS ioctls (iommufd main.c, ioas.c) ---- */

struct obj *vfm_obj_new(struct ictx *c, enum obj_type type);
struct obj *vfm_obj_get(struct ictx *c, uint32_t id, enum obj_type type);
void vfm_obj_free(struct vfio_model *m, struct ictx *c, struct obj *o);
void vfm_ctx_maybe_free(struct vfio_model *m, struct ictx *c);
int vfm_iommufd_ioctl(struct vfio_model *m, struct ictx *c, unsigned long req, void *arg);

/* ---- vfio_model_device.c: bind, attach, auto domains (iommufd device.c, vfio device_cdev.c) ----
 */

void vfm_idev_detach(struct vfio_model *m, struct ictx *c, struct obj *idev);
int vfm_cdev_bind(struct vfio_model *m, struct dfile *df, struct vfio_device_bind_iommufd *b);
int vfm_cdev_attach(struct vfio_model *m, struct dfile *df,
		    struct vfio_device_attach_iommufd_pt *at);
void vfm_cdev_unbind(struct vfio_model *m, struct dfile *df);

/* ---- vfio_model_container.c: groups, the container, type1 (group.c, container.c,
 * vfio_iommu_type1.c) ---- */

struct mgroup *vfm_group_find(struct vfio_model *m, int num);
bool vfm_group_viable(const struct vfio_model *m, const struct mgroup *g);
void vfm_container_maybe_free(struct vfio_model *m, struct container *c);
void vfm_group_maybe_release(struct vfio_model *m, struct mgroup *g);
int vfm_group_ioctl(struct vfio_model *m, struct mgroup *g, unsigned long req, void *arg);
int vfm_container_ioctl(struct vfio_model *m, struct container *c, unsigned long req, void *arg);

/* ---- vfio_model_pci.c: the device file, its info and regions (vfio_main.c, vfio_pci_core.c,
 * vfio_pci_rdwr.c) ---- */

int vfm_dev_open_file(struct vfio_model *m, struct mdev *d, struct mgroup *g);
void vfm_dev_close_file(struct vfio_model *m, struct dfile *df);
int vfm_dev_ioctl(struct vfio_model *m, struct dfile *df, unsigned long req, void *arg);
ssize_t vfm_dev_rw(struct dfile *df, void *buf, size_t len, off_t off, bool write);

/* ---- vfio_model_pci_intrs.c: IRQ info and SET_IRQS (vfio_pci_intrs.c) ---- */

void vfm_irq_release(struct mdev *d, int index);
void vfm_device_irq(struct mdev *d, uint32_t bits, bool raise);
int vfm_dev_get_irq_info(const struct mdev *d, struct vfio_irq_info *arg);
int vfm_dev_set_irqs(struct mdev *d, struct vfio_irq_set *arg);

/* ---- vfio_model_edu.c: edu's registers and config space (QEMU hw/misc/edu.c) ---- */

void vfm_edu_config_init(struct mdev *d);
uint64_t vfm_edu_read(struct mdev *d, uint64_t addr, unsigned size);
void vfm_edu_write(struct mdev *d, uint64_t addr, uint64_t val, unsigned size);
void vfm_edu_reset(struct mdev *d);

/* ---- vfio_model_mig.c: VFIO_DEVICE_FEATURE, the FSM, a migration driver ([mig], [mtty]) ---- */

int vfm_dev_feature(struct vfio_model *m, struct mdev *d, struct vfio_device_feature *arg);
void vfm_mig_reset(struct vfio_model *m, struct mdev *d);
struct migf *vfm_migf_get(struct vfio_model *m, int fd);
void vfm_migf_close(struct migf *f);
ssize_t vfm_migf_rw(struct migf *f, void *buf, size_t len, bool write);
int vfm_migf_ioctl(struct migf *f, unsigned long req, void *arg);

/* ---- vfio_model_fops.c: descriptors and the vfio_sys table (the file_operations of each node)
 * ---- */

int vfm_fd_alloc(struct vfio_model *m, enum fd_kind kind, void *p);
struct mfd *vfm_fd_get(struct vfio_model *m, int fd);
bool vfm_fd_in_range(int fd);
size_t vfm_cap_add(uint8_t *caps, size_t used, size_t *last_hdr, const void *cap, size_t len);
void vfm_info_with_caps(void *arg, void *head, size_t hsize, uint32_t *argszp, uint32_t *cap_offset,
			uint8_t *caps, size_t caps_len, size_t copy_len);
void vfm_close_fd(struct vfio_model *m, struct mfd *f);

/* ---- vfio_model_fault.c: counting calls, failing the n-th ---- */

int vfm_tick(struct vfio_model *m);

/* Fills m->sys with the model's entry points (vfio_model_fops.c). */
void vfm_sys_init(struct vfio_model *m);

#endif
