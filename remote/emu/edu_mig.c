/*
 * Live migration of the edu device: VFIO's v2 state machine, one arc at a
 * time, and the device state in a mig_stream (docs/migration-edu.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "edu_internal.h"
#include "log.h"
#include "mig_fsm.h"
#include "mig_stream.h"

#define EDU_LOG "edu"

/* Layout of edu's own records; a change of any of them is a new version. */
#define EDU_MIG_STATE_VERSION 1u

enum edu_record_type {
	EDU_REC_CONFIG = MIG_REC_MODEL_BASE, /* the 256 bytes of config space */
	EDU_REC_DMA_BUF,		     /* the 4 KiB DMA buffer */
	EDU_REC_REGS,			     /* registers, work in flight, interrupt state */
};

#define EDU_REGS_PAYLOAD_SIZE 52u
#define EDU_REGS_INTX_LEVEL   0x1u
#define EDU_REGS_MSI_HELD     0x2u
#define EDU_REGS_KNOWN_FLAGS  (EDU_REGS_INTX_LEVEL | EDU_REGS_MSI_HELD)

#define EDU_CONFIG_REC_BYTES  (MIG_RECORD_OVERHEAD + PCI_CONFIG_SPACE_SIZE)
#define EDU_DMA_BUF_REC_BYTES (MIG_RECORD_OVERHEAD + EDU_DMA_BUF_SIZE)
#define EDU_REGS_REC_BYTES    (MIG_RECORD_OVERHEAD + EDU_REGS_PAYLOAD_SIZE)
#define EDU_END_REC_BYTES     MIG_RECORD_OVERHEAD

/* What a RESUMING device has received so far; applied only once it is all there and sound. */
struct edu_mig_in {
	struct edu_regs regs;
	uint8_t cfg[PCI_CONFIG_SPACE_SIZE];
	uint32_t flags;
	bool have_cfg, have_buf, have_regs;
};

struct edu_mig {
	struct mig_writer w;
	/* Precopy: the first pass ends at precopy_end; its snapshots sit at these offsets of w. */
	size_t precopy_end;
	size_t cfg_off, buf_off;
	struct mig_reader r;
	struct edu_mig_in in;
};

static const struct mig_stream_id edu_stream_id = {
	.model = "edu",
	.model_version = EDU_MIG_STATE_VERSION,
	.vendor_id = EDU_VENDOR_ID,
	.device_id = EDU_DEVICE_ID,
	.subsystem_vendor_id = EDU_SUBSYSTEM_VENDOR_ID,
	.subsystem_id = EDU_SUBSYSTEM_ID,
	.revision = EDU_REVISION,
	.class_code = EDU_CLASS_CODE,
};

static struct edu *to_edu(struct backend *b)
{
	return (struct edu *)b;
}

uint32_t edu_mig_flags(struct backend *b)
{
	return BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P | BACKEND_MIG_FLAG_PRE_COPY;
}

static void edu_mig_drop(struct edu *edu)
{
	free(edu->mig);
	edu->mig = NULL;
}

void edu_mig_reset(struct edu *edu)
{
	edu_mig_drop(edu);
	edu->mig_state = BACKEND_MIG_RUNNING;
}

static int edu_mig_alloc(struct edu *edu, struct mpdev_error *err)
{
	edu_mig_drop(edu);
	edu->mig = calloc(1, sizeof(*edu->mig));
	if (!edu->mig)
		return mpdev_error_set(err, ENOMEM, "edu migration: out of memory");
	return 0;
}

/* Work in flight stays as status COMPUTING / cmd RUN; only its events go. */
static void edu_quiesce(struct edu *edu)
{
	event_del(edu->fact_ev);
	event_del(edu->dma_ev);
	edu_dma_settle(edu);
}

/* Called with mig_state already a running one: what was held now happens. */
static void edu_unquiesce(struct edu *edu)
{
	if (edu->regs.status & EDU_STATUS_COMPUTING)
		edu_defer(edu, edu->fact_ev);
	if (edu->regs.dma.cmd & EDU_DMA_CMD_RUN)
		edu_defer(edu, edu->dma_ev);
	/* A message about nothing pending, or with MSI gone, would be spurious. */
	if (edu->msi_held && edu->regs.irq_status && pci_config_msi_enabled(&edu->cfg))
		edu_signal_msi(edu);
	edu->msi_held = false;
	edu_update_intx(edu);
}

static void edu_encode_regs(const struct edu *edu, uint8_t *p)
{
	const struct edu_regs *regs = &edu->regs;
	uint32_t flags = (edu->intx_level ? EDU_REGS_INTX_LEVEL : 0) |
			 (edu->msi_held ? EDU_REGS_MSI_HELD : 0);

	mig_put32(p + 0, regs->liveness);
	mig_put32(p + 4, regs->fact);
	mig_put32(p + 8, regs->status);
	mig_put32(p + 12, regs->irq_status);
	mig_put64(p + 16, regs->dma.src);
	mig_put64(p + 24, regs->dma.dst);
	mig_put64(p + 32, regs->dma.cnt);
	mig_put64(p + 40, regs->dma.cmd);
	mig_put32(p + 48, flags);
}

/* The state only a stopped device can give: registers and work in flight, then END. */
static int edu_save_tail(struct edu *edu, struct mpdev_error *err)
{
	uint8_t regs[EDU_REGS_PAYLOAD_SIZE];
	int r;

	edu_encode_regs(edu, regs);
	r = mig_writer_record(&edu->mig->w, EDU_REC_REGS, regs, sizeof(regs), NULL, err);
	if (r < 0)
		return r;
	return mig_writer_end(&edu->mig->w, err);
}

/* Header, config space and DMA buffer: the whole stream's bulk, and precopy's first pass. */
static int edu_save_start(struct edu *edu, bool precopy, struct mpdev_error *err)
{
	struct edu_mig *m;
	int r;

	r = edu_mig_alloc(edu, err);
	if (r < 0)
		return r;
	m = edu->mig;
	mig_writer_init(&m->w);
	r = mig_writer_header(&m->w, &edu_stream_id, err);
	if (r == 0)
		r = mig_writer_record(&m->w, EDU_REC_CONFIG, edu->cfg.data, PCI_CONFIG_SPACE_SIZE,
				      &m->cfg_off, err);
	if (r == 0)
		r = mig_writer_record(&m->w, EDU_REC_DMA_BUF, edu->regs.dma_buf, EDU_DMA_BUF_SIZE,
				      &m->buf_off, err);
	if (r == 0 && precopy)
		m->precopy_end = m->w.len;
	else if (r == 0)
		r = edu_save_tail(edu, err);
	if (r < 0)
		edu_mig_drop(edu);
	return r;
}

static bool edu_cfg_dirty(const struct edu *edu)
{
	return memcmp(edu->mig->w.buf + edu->mig->cfg_off, edu->cfg.data, PCI_CONFIG_SPACE_SIZE);
}

/* RAM -> device DMA while precopy ran is what changes the buffer. */
static bool edu_buf_dirty(const struct edu *edu)
{
	return memcmp(edu->mig->w.buf + edu->mig->buf_off, edu->regs.dma_buf, EDU_DMA_BUF_SIZE);
}

/* After precopy: only what changed since its first pass, which the target keeps. */
static int edu_save_final(struct edu *edu, struct mpdev_error *err)
{
	struct edu_mig *m = edu->mig;
	int r = 0;

	if (edu_cfg_dirty(edu))
		r = mig_writer_record(&m->w, EDU_REC_CONFIG, edu->cfg.data, PCI_CONFIG_SPACE_SIZE,
				      NULL, err);
	if (r == 0 && edu_buf_dirty(edu))
		r = mig_writer_record(&m->w, EDU_REC_DMA_BUF, edu->regs.dma_buf, EDU_DMA_BUF_SIZE,
				      NULL, err);
	if (r == 0)
		r = edu_save_tail(edu, err);
	return r;
}

/*
 * Read-only config bits are layout and identity, not state: a stream must
 * agree with this device there. The INTx status bit is the device's own
 * level, checked against the register record instead.
 */
static int edu_check_config(const struct edu *edu, const uint8_t *p, struct mpdev_error *err)
{
	const struct pci_config *cfg = &edu->cfg;

	for (unsigned i = 0; i < PCI_CONFIG_SPACE_SIZE; i++) {
		uint8_t ro = (uint8_t) ~(cfg->wmask[i] | cfg->w1cmask[i]);

		if (i == PCI_CONFIG_STATUS)
			ro &= (uint8_t)~PCI_CONFIG_STATUS_INTERRUPT;
		if ((p[i] ^ cfg->data[i]) & ro)
			return mpdev_error_set(err, EINVAL,
					       "edu migration stream: config byte 0x%02x is 0x%02x "
					       "but reads 0x%02x on this device (read-only bits "
					       "0x%02x differ)",
					       i, p[i], cfg->data[i], (p[i] ^ cfg->data[i]) & ro);
	}
	return 0;
}

static int edu_load_regs(struct edu_mig_in *in, const uint8_t *p, struct mpdev_error *err)
{
	struct edu_regs *regs = &in->regs;

	if (in->have_regs)
		return mpdev_error_set(err, EINVAL, "edu migration stream: second register record");
	regs->liveness = mig_get32(p + 0);
	regs->fact = mig_get32(p + 4);
	regs->status = mig_get32(p + 8);
	regs->irq_status = mig_get32(p + 12);
	regs->dma.src = mig_get64(p + 16);
	regs->dma.dst = mig_get64(p + 24);
	regs->dma.cnt = mig_get64(p + 32);
	regs->dma.cmd = mig_get64(p + 40);
	in->flags = mig_get32(p + 48);

	/* Values edu can never hold: a register record that is not edu's. */
	if (regs->status & ~(EDU_STATUS_COMPUTING | EDU_STATUS_IRQFACT))
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: impossible status 0x%08x",
				       regs->status);
	if (in->flags & ~EDU_REGS_KNOWN_FLAGS)
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: unknown register flags 0x%08x",
				       in->flags);
	if ((in->flags & EDU_REGS_INTX_LEVEL) && !regs->irq_status)
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: INTx asserted with nothing pending");
	if ((regs->dma.cmd & EDU_DMA_CMD_RUN) && !edu_dma_dev_range_ok(regs))
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: DMA in flight (src 0x%" PRIx64
				       " dst 0x%" PRIx64 " count 0x%" PRIx64
				       ") lies outside the device buffer",
				       regs->dma.src, regs->dma.dst, regs->dma.cnt);
	in->have_regs = true;
	return 0;
}

static int edu_load_record(void *opaque, uint16_t type, const uint8_t *p, uint32_t len,
			   struct mpdev_error *err)
{
	struct edu *edu = opaque;
	struct edu_mig_in *in = &edu->mig->in;
	uint32_t want;
	int r;

	switch (type) {
	case EDU_REC_CONFIG:
		want = PCI_CONFIG_SPACE_SIZE;
		break;
	case EDU_REC_DMA_BUF:
		want = EDU_DMA_BUF_SIZE;
		break;
	case EDU_REC_REGS:
		want = EDU_REGS_PAYLOAD_SIZE;
		break;
	default:
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: unknown record type %u in state "
				       "version %u",
				       type, EDU_MIG_STATE_VERSION);
	}
	if (len != want)
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: record type %u has %u bytes, not %u",
				       type, len, want);
	/* Config and buffer may come twice (precopy, then final pass): the last one counts. */
	switch (type) {
	case EDU_REC_CONFIG:
		r = edu_check_config(edu, p, err);
		if (r < 0)
			return r;
		memcpy(in->cfg, p, len);
		in->have_cfg = true;
		return 0;
	case EDU_REC_DMA_BUF:
		memcpy(in->regs.dma_buf, p, len);
		in->have_buf = true;
		return 0;
	default:
		return edu_load_regs(in, p, err);
	}
}

static int edu_load_start(struct edu *edu, struct mpdev_error *err)
{
	int r;

	r = edu_mig_alloc(edu, err);
	if (r < 0)
		return r;
	mig_reader_init(&edu->mig->r, &edu_stream_id, edu_load_record, edu);
	edu_reset_state(edu);
	return 0;
}

/* All or nothing: the device changes only once the whole stream has been checked. */
static int edu_load_apply(struct edu *edu, struct mpdev_error *err)
{
	struct edu_mig_in *in = &edu->mig->in;
	bool level = in->flags & EDU_REGS_INTX_LEVEL;
	int r;

	r = mig_reader_finish(&edu->mig->r, err);
	if (r < 0)
		return r;
	if (!in->have_cfg || !in->have_buf || !in->have_regs)
		return mpdev_error_set(err, EINVAL, "edu migration stream: no %s record",
				       !in->have_cfg   ? "config space"
				       : !in->have_buf ? "DMA buffer"
						       : "register");
	if (!!(in->cfg[PCI_CONFIG_STATUS] & PCI_CONFIG_STATUS_INTERRUPT) != level)
		return mpdev_error_set(err, EINVAL,
				       "edu migration stream: config status says INTx %s, the "
				       "registers say %s",
				       level ? "deasserted" : "asserted",
				       level ? "asserted" : "deasserted");
	edu->regs = in->regs;
	memcpy(edu->cfg.data, in->cfg, PCI_CONFIG_SPACE_SIZE);
	edu->intx_level = level;
	edu->msi_held = in->flags & EDU_REGS_MSI_HELD;
	/* This host has not been told the loaded level yet; it is, when the device runs. */
	edu->intx_sync = true;
	return 0;
}

static void edu_mig_fail(struct edu *edu, const struct mpdev_error *err)
{
	log_warn(EDU_LOG, "migration: %s; device is in ERROR until reset", err ? err->msg : "");
	edu_mig_drop(edu);
	edu->mig_state = BACKEND_MIG_ERROR;
}

#define ARC(f, t) ((unsigned)(f) << 4 | (unsigned)(t))

static int edu_do_arc(struct edu *edu, enum backend_mig_state from, enum backend_mig_state to,
		      struct mpdev_error *err)
{
	switch (ARC(from, to)) {
	case ARC(BACKEND_MIG_RUNNING, BACKEND_MIG_RUNNING_P2P):
	case ARC(BACKEND_MIG_PRE_COPY, BACKEND_MIG_PRE_COPY_P2P):
		edu->mig_state = to;
		edu_quiesce(edu);
		return 0;
	case ARC(BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_RUNNING):
	case ARC(BACKEND_MIG_PRE_COPY_P2P, BACKEND_MIG_PRE_COPY):
		edu->mig_state = to;
		edu_unquiesce(edu);
		return 0;
	case ARC(BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_STOP):
	case ARC(BACKEND_MIG_STOP, BACKEND_MIG_RUNNING_P2P):
		/* Neither side runs deferred work: nothing to hold or release. */
		edu->mig_state = to;
		return 0;
	case ARC(BACKEND_MIG_STOP, BACKEND_MIG_STOP_COPY):
	case ARC(BACKEND_MIG_RUNNING, BACKEND_MIG_PRE_COPY):
	case ARC(BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_PRE_COPY_P2P): {
		int r = edu_save_start(edu, to != BACKEND_MIG_STOP_COPY, err);

		if (r == 0)
			edu->mig_state = to;
		return r;
	}
	case ARC(BACKEND_MIG_PRE_COPY_P2P, BACKEND_MIG_STOP_COPY):
		edu->mig_state = to;
		return edu_save_final(edu, err);
	case ARC(BACKEND_MIG_STOP_COPY, BACKEND_MIG_STOP):
	case ARC(BACKEND_MIG_PRE_COPY, BACKEND_MIG_RUNNING):
	case ARC(BACKEND_MIG_PRE_COPY_P2P, BACKEND_MIG_RUNNING_P2P):
		edu_mig_drop(edu);
		edu->mig_state = to;
		return 0;
	case ARC(BACKEND_MIG_STOP, BACKEND_MIG_RESUMING): {
		int r;

		edu->mig_state = to;
		r = edu_load_start(edu, err);
		if (r < 0)
			edu->mig_state = from;
		return r;
	}
	case ARC(BACKEND_MIG_RESUMING, BACKEND_MIG_STOP): {
		int r = edu_load_apply(edu, err);

		edu->mig_state = to;
		edu_mig_drop(edu);
		return r;
	}
	}
	return mpdev_error_set(err, EINVAL, "edu: %s -> %s is not a migration arc",
			       mig_fsm_state_name(from), mig_fsm_state_name(to));
}

int edu_mig_arc(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		enum backend_mig_state *now, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);
	int r;

	*now = edu->mig_state;
	if (from != edu->mig_state)
		return mpdev_error_set(err, EINVAL, "edu: arc %s -> %s asked of a device in %s",
				       mig_fsm_state_name(from), mig_fsm_state_name(to),
				       mig_fsm_state_name(edu->mig_state));
	r = edu_do_arc(edu, from, to, err);
	/* Arcs that can fail half-way (a stream refused or not written) leave ERROR. */
	if (r < 0 && edu->mig_state != from)
		edu_mig_fail(edu, err);
	*now = edu->mig_state;
	return r;
}

ssize_t edu_mig_save(struct backend *b, void *buf, size_t len, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);

	if (!mig_fsm_is_saving(edu->mig_state) || !edu->mig)
		return mpdev_error_set(err, EINVAL, "edu: no stream to save in state %s",
				       mig_fsm_state_name(edu->mig_state));
	return (ssize_t)mig_writer_take(&edu->mig->w, buf, len);
}

int edu_mig_load(struct backend *b, const void *buf, size_t len, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);
	int r;

	if (edu->mig_state != BACKEND_MIG_RESUMING || !edu->mig)
		return mpdev_error_set(err, EINVAL, "edu: cannot load a stream in state %s",
				       mig_fsm_state_name(edu->mig_state));
	r = mig_reader_feed(&edu->mig->r, buf, len, err);
	if (r < 0)
		edu_mig_fail(edu, err);
	return r;
}

int edu_mig_precopy_info(struct backend *b, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			 struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);
	struct edu_mig *m = edu->mig;
	uint64_t dirty = EDU_REGS_REC_BYTES + EDU_END_REC_BYTES;

	if ((edu->mig_state != BACKEND_MIG_PRE_COPY &&
	     edu->mig_state != BACKEND_MIG_PRE_COPY_P2P) ||
	    !m)
		return mpdev_error_set(err, EINVAL, "edu: no precopy in state %s",
				       mig_fsm_state_name(edu->mig_state));
	*initial_bytes = m->w.read_off < m->precopy_end ? m->precopy_end - m->w.read_off : 0;
	/* Exactly what the final pass will add: it resends only what differs from the first. */
	if (edu_cfg_dirty(edu))
		dirty += EDU_CONFIG_REC_BYTES;
	if (edu_buf_dirty(edu))
		dirty += EDU_DMA_BUF_REC_BYTES;
	*dirty_bytes = dirty;
	return 0;
}
