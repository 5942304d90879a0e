/*
 * mpqemu messages as devops.h calls. Every check of an offset, width,
 * region, memory entry or descriptor is devops's; what is left here is what
 * QEMU's format itself needs (proto/mpqemu/): absolute BAR addresses through
 * the BAR window, SYNC_SYSMEM's whole pages, the RET values QEMU reads
 * (all-ones for what failed, as QEMU's own remote answers).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "devops.h"
#include "fdrelease.h"
#include "log.h"
#include "mpqemu_face.h"
#include "session.h"
#include "sysmem.h"

#define COMP MPQEMU_FACE_COMP

#define CONFIG_INTERRUPT_PIN 0x3du

/*
 * QEMU sends its memory table while it realizes the device, before anything
 * else: a first message of another kind means it could not (no fd for RAM).
 */
static void check_table_seen(struct mpqemu_face *f)
{
	if (f->table_seen || f->warned_no_table)
		return;
	f->warned_no_table = true;
	log_warn(COMP, MPQEMU_NO_TABLE_WARNING);
}

static uint32_t le_bytes(const uint8_t *b, size_t n)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static int config_read(struct session *s, uint32_t offset, uint32_t len, uint32_t *val,
		       struct mpdev_error *err)
{
	uint8_t b[4] = { 0 };
	int r = devops_region_read(s, BACKEND_REGION_CONFIG, offset, b, len, err);

	*val = r < 0 ? 0 : le_bytes(b, len);
	return r;
}

static int on_cfg(struct session *s, struct mpqemu_face *f, const struct mpqemu_msg *m)
{
	const struct mpqemu_pci_conf *c = &m->data.pci_conf;
	bool write = m->cmd == MPQEMU_CMD_PCI_CFGWRITE;
	struct mpdev_error err = { 0 };
	uint32_t len = (uint32_t)c->len, val = 0;
	int r;

	check_table_seen(f);
	if (write) {
		uint8_t b[4];

		for (uint32_t i = 0; i < 4; i++)
			b[i] = (uint8_t)(c->val >> (8 * i));
		/* Before the write: should it fail half-way, the bases are read again anyway. */
		bar_window_config_written(&f->bars, c->addr, len);
		r = devops_region_write(s, BACKEND_REGION_CONFIG, c->addr, b, len, &err);
	} else {
		r = config_read(s, c->addr, len, &val, &err);
	}
	log_debug(COMP, "config %s 0x%x/%u = 0x%x: %d", write ? "write" : "read", c->addr, len,
		  write ? c->val : val, r);
	if (r < 0) {
		log_warn_rl(COMP, "config %s of %u bytes at 0x%x: %s; answered with all-ones",
			    write ? "write" : "read", len, c->addr, err.msg);
		return mpqemu_face_reply(s, UINT64_MAX);
	}
	return mpqemu_face_reply(s, write ? 0 : val);
}

/* bar_window_read_fn: a BAR register of the device's config space. */
static int read_bar_register(void *opaque, uint32_t offset, uint32_t *val)
{
	struct mpdev_error err = { 0 };
	int r = config_read(opaque, offset, 4, val, &err);

	if (r < 0)
		log_warn_rl(COMP, "reading the BAR register at 0x%x: %s", offset, err.msg);
	return r;
}

static int on_bar(struct session *s, struct mpqemu_face *f, const struct mpqemu_msg *m)
{
	const struct mpqemu_bar_access *b = &m->data.bar_access;
	bool write = m->cmd == MPQEMU_CMD_BAR_WRITE;
	struct mpdev_error err = { 0 };
	uint64_t off = 0, le = 0;
	bool moved;
	int bar, r;

	check_table_seen(f);
	bar = bar_window_resolve(&f->bars, b->addr, b->size, b->memory, read_bar_register, s, &off,
				 &moved);
	if (moved)
		bar_window_log(&f->bars, COMP);
	if (bar < 0) {
		/* Like a PCI master abort: reads all-ones, writes dropped. */
		bar_window_log_miss(&f->bar_misses, COMP, b->memory, write, b->size, b->addr);
		return mpqemu_face_reply(s, UINT64_MAX);
	}
	if (write) {
		le = htole64(b->val);
		r = devops_region_write(s, (uint32_t)bar, off, &le, b->size, &err);
	} else {
		r = devops_region_read(s, (uint32_t)bar, off, &le, b->size, &err);
	}
	log_debug(COMP, "BAR%d %s 0x%llx/%u = 0x%llx: %d", bar, write ? "write" : "read",
		  (unsigned long long)off, b->size,
		  (unsigned long long)(write ? b->val : le64toh(le)), r);
	if (r < 0) {
		log_warn_rl(
			COMP, "BAR%d %s of %u bytes at offset 0x%llx: %s; answered with all-ones",
			bar, write ? "write" : "read", b->size, (unsigned long long)off, err.msg);
		return mpqemu_face_reply(s, UINT64_MAX);
	}
	return mpqemu_face_reply(s, write ? 0 : le64toh(le));
}

/*
 * The whole table, every commit: devops_mem_set applies only its difference
 * (dma_table_set), so a table QEMU resends unchanged maps nothing. A table
 * that cannot be installed whole leaves the device with no guest memory
 * rather than with the old one: after a change, DMA must fault, not land
 * where guest RAM used to be.
 */
static int on_sync_sysmem(struct session *s, struct mpqemu_face *f, struct mpqemu_msg *m)
{
	const struct mpqemu_sync_sysmem *sm = &m->data.sync_sysmem;
	struct dma_new_region v[MPQEMU_MAX_FDS];
	struct mpqemu_ram ram[MPQEMU_MAX_FDS];
	struct mpdev_error err = { 0 };
	struct dma_stats before;
	uint32_t left_out;
	size_t n;
	int r;

	f->table_seen = true;
	if (m->num_fds == 0 && !f->warned_empty_table) {
		f->warned_empty_table = true;
		log_warn(COMP, MPQEMU_EMPTY_TABLE_WARNING);
	}
	n = mpqemu_sysmem_regions(m, f->page, ram, &left_out);
	for (int i = 0; i < m->num_fds; i++)
		if (left_out & (1u << i))
			log_warn_rl(COMP,
				    "guest RAM entry 0x%llx+0x%llx (file offset 0x%llx) holds no "
				    "whole page: left out",
				    (unsigned long long)sm->gpas[i],
				    (unsigned long long)sm->sizes[i],
				    (unsigned long long)sm->offsets[i]);
	for (size_t k = 0; k < n; k++)
		v[k] = (struct dma_new_region){ .gpa = ram[k].gpa,
						.size = ram[k].size,
						.fd_offset = ram[k].fd_offset,
						.read_only = false,
						.fd = ram[k].fd };
	before = s->host->dma.stats;
	r = devops_mem_set(s, v, n, &err);
	if (r < 0) {
		struct mpdev_error e2 = { 0 };

		log_warn_rl(COMP, "guest memory table of %zu regions refused: %s; %s", n, err.msg,
			    devops_mem_set(s, NULL, 0, &e2) < 0
				    ? "the old table could not be dropped either"
				    : "the device has no guest memory until QEMU sends one that "
				      "works (" MPQEMU_SHAREABLE_RAM_HINT ")");
	} else {
		uint64_t maps = s->host->dma.stats.mmaps - before.mmaps,
			 unmaps = s->host->dma.stats.munmaps - before.munmaps;

		/* QEMU resends its table on every memory commit: most change nothing. */
		log_msg(maps || unmaps ? MPDEV_LOG_INFO : MPDEV_LOG_DEBUG, COMP,
			"guest memory table: %d entries from QEMU, %zu installed (+%llu -%llu)",
			m->num_fds, n, (unsigned long long)maps, (unsigned long long)unmaps);
	}
	/* The mappings live on; the descriptors were borrowed. */
	return 0;
}

static int on_set_irqfd(struct session *s, struct mpqemu_face *f, struct mpqemu_msg *m)
{
	struct mpdev_error err = { 0 };
	uint32_t pin_reg = 0, pin = 0;
	int irqfd = m->fds[0], resamplefd = m->fds[1];

	check_table_seen(f);
	if (config_read(s, CONFIG_INTERRUPT_PIN, 1, &pin_reg, &err) < 0)
		log_warn_rl(COMP, "reading the interrupt pin: %s; assuming INTA", err.msg);
	else if (pin_reg >= 1 && pin_reg <= 4)
		pin = pin_reg - 1;
	else
		log_warn_rl(COMP,
			    "the device reports interrupt pin %u; routing QEMU's irqfd to INTA",
			    pin_reg);
	/* Taken by devops on success and failure alike. */
	m->fds[0] = m->fds[1] = -1;
	m->num_fds = 0;
	/* QEMU's remote IOHUB has a line per device; one connection is one device: line 0. */
	if (devops_set_intx_irqfd(s, pin, 0, irqfd, resamplefd, &err) < 0) {
		log_warn_rl(COMP, "INTx irqfd refused (no interrupts reach the guest): %s",
			    err.msg);
		return 0;
	}
	log_info(COMP, "INT%c wired to QEMU's irqfd and resamplefd", 'A' + pin);
	return 0;
}

static int on_reset(struct session *s, struct mpqemu_face *f)
{
	struct mpdev_error err = { 0 };
	int r;

	check_table_seen(f);
	r = devops_reset(s, &err);
	/* The device is at power-on: its BARs unplaced. */
	bar_window_invalidate(&f->bars);
	if (r < 0) {
		log_warn_rl(COMP, "device reset: %s; answered with all-ones", err.msg);
		return mpqemu_face_reply(s, UINT64_MAX);
	}
	log_info(COMP, "device reset");
	return mpqemu_face_reply(s, 0);
}

int mpqemu_face_dispatch(struct session *s, struct mpqemu_face *f, struct mpqemu_msg *m)
{
	switch (m->cmd) {
	case MPQEMU_CMD_PCI_CFGREAD:
	case MPQEMU_CMD_PCI_CFGWRITE:
		return on_cfg(s, f, m);
	case MPQEMU_CMD_BAR_READ:
	case MPQEMU_CMD_BAR_WRITE:
		return on_bar(s, f, m);
	case MPQEMU_CMD_SYNC_SYSMEM:
		return on_sync_sysmem(s, f, m);
	case MPQEMU_CMD_SET_IRQFD:
		return on_set_irqfd(s, f, m);
	case MPQEMU_CMD_DEVICE_RESET:
		return on_reset(s, f);
	default:
		/* mpqemu_validate lets nothing else through. */
		return -EPROTO;
	}
}
