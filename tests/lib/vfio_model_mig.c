/*
 * VFIO_DEVICE_FEATURE on the model's device and a small migration driver
 * behind it, for edu: MIGRATION, MIG_DEVICE_STATE (the kernel's FSM table,
 * walked step by step, the driver's arcs as mtty implements them),
 * MIG_DATA_SIZE, DMA logging START/STOP/REPORT, and the migration file
 * behind each data_fd (read, write, VFIO_MIG_GET_PRECOPY_INFO). Mirrors
 * drivers/vfio/vfio_main.c [mig] and samples/vfio-mdev/mtty.c [mtty].
 *
 * The stream: a 16-byte header (magic, version, one device) in PRE_COPY;
 * STOP_COPY appends edu's registers (48 bytes). Where mtty answers 0 at
 * PRE_COPY's temporary end of stream, the model answers ENOMSG as the uAPI
 * says drivers should; both must work.
 */
#include "vfio_model_internal.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfio_mig_uapi.h"

#define MIG_MAGIC	0x6d70646576656475ull /* "mpdevedu" */
#define MIG_HDR		16
#define MIG_STATE	48
#define NUM_STATES	8
#define ST_PRE_COPY	MPDEV_VFIO_DEVICE_STATE_PRE_COPY
#define ST_PRE_COPY_P2P MPDEV_VFIO_DEVICE_STATE_PRE_COPY_P2P

enum {
	ST_ERROR = VFIO_DEVICE_STATE_ERROR,
	ST_STOP = VFIO_DEVICE_STATE_STOP,
	ST_RUNNING = VFIO_DEVICE_STATE_RUNNING,
	ST_STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY,
	ST_RESUMING = VFIO_DEVICE_STATE_RESUMING,
	ST_RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P,
};

/* vfio_mig_get_next_state()'s table [mig]: [cur][new] = next. */
static const uint8_t fsm[NUM_STATES][NUM_STATES] = {
	[ST_STOP] = { [ST_STOP] = ST_STOP,
		      [ST_RUNNING] = ST_RUNNING_P2P,
		      [ST_PRE_COPY] = ST_RUNNING_P2P,
		      [ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
		      [ST_STOP_COPY] = ST_STOP_COPY,
		      [ST_RESUMING] = ST_RESUMING,
		      [ST_RUNNING_P2P] = ST_RUNNING_P2P,
		      [ST_ERROR] = ST_ERROR },
	[ST_RUNNING] = { [ST_STOP] = ST_RUNNING_P2P,
			 [ST_RUNNING] = ST_RUNNING,
			 [ST_PRE_COPY] = ST_PRE_COPY,
			 [ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
			 [ST_STOP_COPY] = ST_RUNNING_P2P,
			 [ST_RESUMING] = ST_RUNNING_P2P,
			 [ST_RUNNING_P2P] = ST_RUNNING_P2P,
			 [ST_ERROR] = ST_ERROR },
	[ST_PRE_COPY] = { [ST_STOP] = ST_RUNNING,
			  [ST_RUNNING] = ST_RUNNING,
			  [ST_PRE_COPY] = ST_PRE_COPY,
			  [ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
			  [ST_STOP_COPY] = ST_PRE_COPY_P2P,
			  [ST_RESUMING] = ST_RUNNING,
			  [ST_RUNNING_P2P] = ST_RUNNING,
			  [ST_ERROR] = ST_ERROR },
	[ST_PRE_COPY_P2P] = { [ST_STOP] = ST_RUNNING_P2P,
			      [ST_RUNNING] = ST_RUNNING_P2P,
			      [ST_PRE_COPY] = ST_PRE_COPY,
			      [ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
			      [ST_STOP_COPY] = ST_STOP_COPY,
			      [ST_RESUMING] = ST_RUNNING_P2P,
			      [ST_RUNNING_P2P] = ST_RUNNING_P2P,
			      [ST_ERROR] = ST_ERROR },
	[ST_STOP_COPY] = { [ST_STOP] = ST_STOP,
			   [ST_RUNNING] = ST_STOP,
			   [ST_PRE_COPY] = ST_ERROR,
			   [ST_PRE_COPY_P2P] = ST_ERROR,
			   [ST_STOP_COPY] = ST_STOP_COPY,
			   [ST_RESUMING] = ST_STOP,
			   [ST_RUNNING_P2P] = ST_STOP,
			   [ST_ERROR] = ST_ERROR },
	[ST_RESUMING] = { [ST_STOP] = ST_STOP,
			  [ST_RUNNING] = ST_STOP,
			  [ST_PRE_COPY] = ST_STOP,
			  [ST_PRE_COPY_P2P] = ST_STOP,
			  [ST_STOP_COPY] = ST_STOP,
			  [ST_RESUMING] = ST_RESUMING,
			  [ST_RUNNING_P2P] = ST_STOP,
			  [ST_ERROR] = ST_ERROR },
	[ST_RUNNING_P2P] = { [ST_STOP] = ST_STOP,
			     [ST_RUNNING] = ST_RUNNING,
			     [ST_PRE_COPY] = ST_RUNNING,
			     [ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
			     [ST_STOP_COPY] = ST_STOP,
			     [ST_RESUMING] = ST_STOP,
			     [ST_RUNNING_P2P] = ST_RUNNING_P2P,
			     [ST_ERROR] = ST_ERROR },
	[ST_ERROR] = { [0 ... NUM_STATES - 1] = ST_ERROR },
};

static const uint32_t state_flags[NUM_STATES] = {
	[ST_STOP] = VFIO_MIGRATION_STOP_COPY,
	[ST_RUNNING] = VFIO_MIGRATION_STOP_COPY,
	[ST_PRE_COPY] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
	[ST_PRE_COPY_P2P] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
	[ST_STOP_COPY] = VFIO_MIGRATION_STOP_COPY,
	[ST_RESUMING] = VFIO_MIGRATION_STOP_COPY,
	[ST_RUNNING_P2P] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
	[ST_ERROR] = ~0u,
};

static bool supported(const struct mdev *d, uint32_t s)
{
	return (state_flags[s] & d->mig_flags) == state_flags[s];
}

static int next_state(const struct mdev *d, uint32_t cur, uint32_t new, uint32_t *next)
{
	if (cur >= NUM_STATES || !supported(d, cur) || new >= NUM_STATES || !supported(d, new))
		return -EINVAL;
	*next = fsm[cur][new];
	/*
	 * The kernel's loop has no exit for ERROR (state_flags_table[ERROR] is
	 * ~0U, which no device's flags cover): a blocked arc such as STOP_COPY
	 * -> PRE_COPY spins in vfio_mig_get_next_state (6.12). The model stops
	 * there and answers EINVAL, as the final check would; the backend never
	 * asks for such an arc.
	 */
	while (*next != ST_ERROR && !supported(d, *next))
		*next = fsm[*next][new];
	return *next != ST_ERROR ? 0 : -EINVAL;
}

/* ---- migration files ---- */

static struct migf *migf_new(struct vfio_model *m, struct mdev *d, bool save)
{
	for (int i = 0; i < MAX_MIGF; i++) {
		struct migf *f = &m->migfs[i];

		if (f->used)
			continue;
		f->fd = memfd_create("vfio-model-migf", MFD_CLOEXEC);
		if (f->fd < 0)
			return NULL;
		f->used = true;
		f->dev = d;
		f->save = save;
		f->filled = f->pos = 0;
		memset(f->data, 0, sizeof(f->data));
		return f;
	}
	return NULL;
}

struct migf *vfm_migf_get(struct vfio_model *m, int fd)
{
	for (int i = 0; fd >= 0 && i < MAX_MIGF; i++)
		if (m->migfs[i].used && m->migfs[i].fd == fd)
			return &m->migfs[i];
	return NULL;
}

/* mtty_disable_file(): reads and writes fail with ENODEV from now on. */
static void migf_disable(struct migf *f)
{
	if (!f)
		return;
	f->dev = NULL;
	f->filled = f->pos = 0;
}

static void disable_files(struct mdev *d)
{
	if (d->saving)
		migf_disable(d->saving);
	if (d->resuming)
		migf_disable(d->resuming);
	d->saving = d->resuming = NULL;
}

void vfm_migf_close(struct migf *f)
{
	if (f->dev && f->dev->saving == f)
		f->dev->saving = NULL;
	if (f->dev && f->dev->resuming == f)
		f->dev->resuming = NULL;
	close(f->fd);
	f->used = false;
	f->fd = -1;
}

/* The device's registers, in the stream's order. */
static void put_state(struct mdev *d, uint8_t *p)
{
	uint32_t regs[4] = { d->addr4, d->fact, d->status, d->irq_status };

	memcpy(p, regs, sizeof(regs));
	memcpy(p + 16, d->dma, sizeof(d->dma));
}

static void get_state(struct mdev *d, const uint8_t *p)
{
	uint32_t regs[4];

	memcpy(regs, p, sizeof(regs));
	d->addr4 = regs[0];
	d->fact = regs[1];
	d->status = regs[2];
	d->irq_status = regs[3];
	memcpy(d->dma, p + 16, sizeof(d->dma));
}

ssize_t vfm_migf_rw(struct migf *f, void *buf, size_t len, bool write)
{
	struct mdev *d = f->dev;

	if (write != !f->save)
		return -EBADF; /* O_RDONLY / O_WRONLY anon inodes */
	if (!d)
		return -ENODEV;
	if (!write) {
		size_t n = f->filled - f->pos < len ? f->filled - f->pos : len;

		/* PRE_COPY's temporary end of stream; STOP_COPY's is 0 [vfio.h]. */
		if (!n && d->mig_state != ST_STOP_COPY)
			return -ENOMSG;
		memcpy(buf, f->data + f->pos, n);
		f->pos += n;
		return (ssize_t)n;
	}
	if (len > MIG_HDR + MIG_STATE - f->filled)
		return -ENOMEM; /* mtty_resume_write(): more than the device's state */
	memcpy(f->data + f->filled, buf, len);
	if (f->filled < MIG_HDR && f->filled + len >= MIG_HDR) {
		uint64_t magic;

		memcpy(&magic, f->data, sizeof(magic));
		if (magic != MIG_MAGIC)
			return -EFAULT; /* mtty's answer to a bad header */
	}
	f->filled += len;
	return (ssize_t)len;
}

int vfm_migf_ioctl(struct migf *f, unsigned long req, void *arg)
{
	struct vfio_precopy_info *info = arg;

	if (req != VFIO_MIG_GET_PRECOPY_INFO || !f->save)
		return -ENOTTY;
	if (!info)
		return -EFAULT;
	if (info->argsz < sizeof(*info))
		return -EINVAL;
	if (!f->dev)
		return -ENODEV;
	if (f->dev->mig_state != ST_PRE_COPY && f->dev->mig_state != ST_PRE_COPY_P2P)
		return -EINVAL;
	info->initial_bytes = f->filled - f->pos;
	info->dirty_bytes = 0;
	return 0;
}

/* ---- the driver's arcs (mtty_step_state) ---- */

static void save_header(struct migf *f)
{
	uint32_t ver[2] = { 1, 1 };
	uint64_t magic = MIG_MAGIC;

	memcpy(f->data, &magic, sizeof(magic));
	memcpy(f->data + 8, ver, sizeof(ver));
	f->filled = MIG_HDR;
}

static int step(struct vfio_model *m, struct mdev *d, uint32_t new, struct migf **out)
{
	uint32_t cur = d->mig_state;

	*out = NULL;
	if ((cur == ST_RUNNING && new == ST_RUNNING_P2P) ||
	    (cur == ST_RUNNING_P2P && (new == ST_RUNNING || new == ST_STOP)) ||
	    (cur == ST_PRE_COPY && new == ST_PRE_COPY_P2P) ||
	    (cur == ST_PRE_COPY_P2P && new == ST_PRE_COPY) ||
	    (cur == ST_STOP && new == ST_RUNNING_P2P) || (cur == ST_RUNNING && new == ST_STOP) ||
	    (cur == ST_STOP && new == ST_RUNNING))
		return 0;
	if (cur == ST_RESUMING && new == ST_STOP) {
		struct migf *f = d->resuming;

		if (!f || f->filled < MIG_HDR + MIG_STATE)
			return -EINVAL; /* mtty_load_state(): a short stream */
		get_state(d, f->data + MIG_HDR);
		disable_files(d);
		return 0;
	}
	if ((cur == ST_PRE_COPY && new == ST_RUNNING) ||
	    (cur == ST_PRE_COPY_P2P && new == ST_RUNNING_P2P) ||
	    (cur == ST_STOP_COPY && new == ST_STOP)) {
		disable_files(d);
		return 0;
	}
	if ((cur == ST_RUNNING && new == ST_PRE_COPY) ||
	    (cur == ST_RUNNING_P2P && new == ST_PRE_COPY_P2P) ||
	    (cur == ST_STOP && new == ST_STOP_COPY) ||
	    ((cur == ST_PRE_COPY_P2P || cur == ST_PRE_COPY) && new == ST_STOP_COPY)) {
		/* mtty_save_device_data(): a precopy file keeps going into STOP_COPY. */
		if (!d->saving) {
			d->saving = migf_new(m, d, true);
			if (!d->saving)
				return -ENOMEM;
			save_header(d->saving);
			*out = d->saving;
		}
		if (new == ST_STOP_COPY) {
			put_state(d, d->saving->data + d->saving->filled);
			d->saving->filled += MIG_STATE;
		}
		return 0;
	}
	if (cur == ST_STOP && new == ST_RESUMING) {
		d->resuming = migf_new(m, d, false);
		if (!d->resuming)
			return -ENOMEM;
		*out = d->resuming;
		return 0;
	}
	return -EINVAL; /* the table never asks for another arc */
}

/* mtty_set_state(): walk to the target; the data_fd only of the last step. */
static int set_state(struct vfio_model *m, struct mdev *d, struct vfio_device_feature_mig_state *st)
{
	struct migf *f = NULL;

	st->data_fd = -1;
	while (d->mig_state != st->device_state) {
		uint32_t next;
		int r = next_state(d, d->mig_state, st->device_state, &next);

		if (r)
			return r;
		if (d->mig_fail_err) {
			r = -d->mig_fail_err;
			d->mig_fail_err = 0;
			if (d->mig_fail_error) {
				d->mig_state = ST_ERROR;
				disable_files(d);
			}
			return r;
		}
		r = step(m, d, next, &f);
		if (r)
			return r;
		d->mig_state = next;
	}
	if (f)
		st->data_fd = f->fd;
	return 0;
}

void vfm_mig_reset(struct vfio_model *m, struct mdev *d)
{
	d->mig_state = ST_RUNNING;
	disable_files(d);
	d->logging = false;
}

/* ---- VFIO_DEVICE_FEATURE [mig] ---- */

static int check_feature(uint32_t flags, size_t argsz, uint32_t ops, size_t minsz)
{
	if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~ops)
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)))
		return -EINVAL;
	if (argsz < minsz)
		return -EINVAL;
	return 1;
}

static int log_report(struct mdev *d, struct vfio_device_feature_dma_logging_report *rep)
{
	uint64_t *bitmap = (uint64_t *)(uintptr_t)rep->bitmap;

	if (rep->page_size < 4096 || (rep->page_size & (rep->page_size - 1)))
		return -EINVAL;
	if (!d->logging)
		return -EINVAL;
	for (size_t i = 0; i < d->n_dirty; i++) {
		uint64_t a = d->dirty_pages[i];

		if (a >= rep->iova && a - rep->iova < rep->length) {
			uint64_t bit = (a - rep->iova) / rep->page_size;

			bitmap[bit / 64] |= 1ull << (bit % 64);
		}
	}
	d->n_dirty = 0; /* read and clear */
	return 0;
}

int vfm_dev_feature(struct vfio_model *m, struct mdev *d, struct vfio_device_feature *arg)
{
	const size_t minsz = 8;
	size_t argsz;
	uint32_t flags;
	int r;

	if (!arg)
		return -EFAULT;
	if (arg->argsz < minsz)
		return -EINVAL;
	flags = arg->flags;
	argsz = arg->argsz - minsz;
	if (flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET |
		      VFIO_DEVICE_FEATURE_PROBE))
		return -EINVAL;
	if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & VFIO_DEVICE_FEATURE_SET) &&
	    (flags & VFIO_DEVICE_FEATURE_GET))
		return -EINVAL;
	switch (flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION: {
		struct vfio_device_feature_migration *mig = (void *)arg->data;

		if (!d->mig_flags)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, sizeof(*mig));
		if (r != 1)
			return r;
		mig->flags = d->mig_flags;
		return 0;
	}
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
		struct vfio_device_feature_mig_state *st = (void *)arg->data;

		if (!d->mig_flags)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
				  sizeof(*st));
		if (r != 1)
			return r;
		if (flags & VFIO_DEVICE_FEATURE_GET) {
			st->device_state = d->mig_state;
			st->data_fd = -1;
			return 0;
		}
		return set_state(m, d, st);
	}
	case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
		struct vfio_device_feature_mig_data_size *sz = (void *)arg->data;

		if (!d->mig_flags)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, sizeof(*sz));
		if (r != 1)
			return r;
		sz->stop_copy_length = MIG_HDR + MIG_STATE;
		return 0;
	}
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: {
		struct vfio_device_feature_dma_logging_control *c = (void *)arg->data;
		const struct vfio_device_feature_dma_logging_range *rg;

		if (!d->dma_logging)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, sizeof(*c));
		if (r != 1)
			return r;
		if (!c->num_ranges)
			return -EINVAL;
		if (c->num_ranges > 4096 / sizeof(*rg))
			return -E2BIG;
		if (c->page_size < 4096 || (c->page_size & (c->page_size - 1)))
			return -EINVAL;
		rg = (const void *)(uintptr_t)c->ranges;
		for (uint32_t i = 0; i < c->num_ranges; i++)
			if ((rg[i].iova | rg[i].length) & (c->page_size - 1))
				return -EINVAL;
		d->logging = true;
		d->log_page_size = c->page_size;
		d->n_dirty = 0;
		return 0;
	}
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		if (!d->dma_logging)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
		if (r != 1)
			return r;
		d->logging = false;
		return 0;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: {
		struct vfio_device_feature_dma_logging_report *rep = (void *)arg->data;

		if (!d->dma_logging)
			return -ENOTTY;
		r = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET, sizeof(*rep));
		if (r != 1)
			return r;
		return log_report(d, rep);
	}
	default:
		return -ENOTTY;
	}
}
