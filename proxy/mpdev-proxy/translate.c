/*
 * QEMU's requests, translated: config space is the config region; a BAR
 * access at QEMU's absolute address goes to the BAR the guest placed there
 * (bar_window.h, re-read after a config write that can move it); MMIO writes
 * are posted like PCI's; SET_IRQFD wires the device's INTx pin; reset.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "proxy.h"

/*
 * QEMU sends its memory table while it realizes the device, before anything
 * else: a first message of another kind means it could not (no fd for RAM).
 */
void check_table_seen(struct proxy *p)
{
	if (p->table_seen || p->warned_no_table)
		return;
	p->warned_no_table = true;
	log_warn(COMP, MPQEMU_NO_TABLE_WARNING);
}

/* ---- config space ---------------------------------------------------------- */

static int on_cfg(struct proxy *p, const struct mpqemu_msg *m)
{
	const struct mpqemu_pci_conf *c = &m->data.pci_conf;
	bool write = m->cmd == MPQEMU_CMD_PCI_CFGWRITE;
	uint32_t val = c->val;
	int r;

	if (c->addr + (uint32_t)c->len > p->cfg_size)
		return malformed(p, "config %s of %d bytes at 0x%x: the device has %u bytes",
				 write ? "write" : "read", c->len, c->addr, p->cfg_size);
	check_table_seen(p);
	if (write) {
		bar_window_config_written(&p->bars, c->addr, (uint32_t)c->len);
		r = mpdev_config_write(p->dev, c->addr, (uint32_t)c->len, val);
	} else {
		r = mpdev_config_read(p->dev, c->addr, (uint32_t)c->len, &val);
	}
	log_debug(COMP, "config %s 0x%x/%d = 0x%x: %d", write ? "write" : "read", c->addr, c->len,
		  val, r);
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "config %s of %d bytes at 0x%x failed: %s", write ? "write" : "read",
			 c->len, c->addr, mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	return reply(p, write ? 0 : val);
}

/* ---- BARs --------------------------------------------------------------------- */

/* bar_window_read_fn: a BAR register from the remote's config space. */
static int read_bar_register(void *opaque, uint32_t offset, uint32_t *val)
{
	struct proxy *p = opaque;

	*val = 0;
	return mpdev_config_read(p->dev, offset, 4, val) < 0 ? -EIO : 0;
}

static int on_bar(struct proxy *p, const struct mpqemu_msg *m)
{
	const struct mpqemu_bar_access *b = &m->data.bar_access;
	bool write = m->cmd == MPQEMU_CMD_BAR_WRITE;
	uint64_t off = 0, le;
	bool moved;
	int bar, r;

	check_table_seen(p);
	bar = bar_window_resolve(&p->bars, b->addr, b->size, b->memory, read_bar_register, p, &off,
				 &moved);
	if (moved)
		bar_window_log(&p->bars, COMP);
	if (bar == -EIO) {
		if (remote_lost(p))
			return -1;
		/* The window stays invalid: this access misses, the next one reads again. */
		log_warn(COMP, "reading the BAR bases: %s", mpdev_last_error(p->dev));
	}
	if (bar < 0) {
		bar_window_log_miss(&p->bar_misses, COMP, b->memory, write, b->size, b->addr);
		return reply(p, UINT64_MAX);
	}
	if (write) {
		le = htole64(b->val);
		/* Like PCI: memory writes are posted, I/O writes are not. */
		if (b->memory && (mpdev_features(p->dev) & MPDEV_FEATURE_POSTED_WRITES)) {
			r = mpdev_region_write_posted(p->dev, (uint32_t)bar, off, &le, b->size);
			if (r == 0)
				p->posted_unsynced++;
		} else {
			r = mpdev_region_write(p->dev, (uint32_t)bar, off, &le, b->size);
		}
	} else {
		le = 0;
		r = mpdev_region_read(p->dev, (uint32_t)bar, off, &le, b->size);
	}
	log_debug(COMP, "BAR%d %s 0x%llx/%u = 0x%llx: %d", bar, write ? "write" : "read",
		  (unsigned long long)off, b->size,
		  (unsigned long long)(write ? b->val : le64toh(le)), r);
	if (r == -ECONNRESET) {
		/*
		 * In flight when the remote died: whether it ran is unknown, and
		 * the registers it touched were reset with the device. Answered
		 * as a PCI device in reset answers (reads all-ones, writes
		 * dropped); the guest learns of the reset from the device itself
		 * (edu: Signaled System Error in the status register).
		 */
		p->lost_in_flight++;
		log_warn(COMP,
			 "BAR%d %s of %u bytes at offset 0x%llx was in flight when the remote "
			 "died: %s",
			 bar, write ? "write" : "read", b->size, (unsigned long long)off,
			 write ? "dropped" : "answered all-ones");
		return reply(p, UINT64_MAX);
	}
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "BAR%d %s of %u bytes at offset 0x%llx failed: %s", bar,
			 write ? "write" : "read", b->size, (unsigned long long)off,
			 mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	return reply(p, write ? 0 : le64toh(le));
}

/* ---- interrupts and reset ---------------------------------------------------- */

static int on_set_irqfd(struct proxy *p, const struct mpqemu_msg *m)
{
	uint32_t pin_reg = 0;
	unsigned pin = 0;

	check_table_seen(p);
	if (mpdev_config_read(p->dev, 0x3d, 1, &pin_reg) < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "reading the interrupt pin: %s; assuming INTA",
			 mpdev_last_error(p->dev));
	} else if (pin_reg >= 1 && pin_reg <= 4) {
		pin = pin_reg - 1;
	} else {
		log_warn(COMP, "the device reports interrupt pin %u; routing QEMU's irqfd to INTA",
			 pin_reg);
	}
	/* One device per remote: its IOHUB line 0. */
	if (mpdev_set_intx_irqfd(p->dev, pin, 0, m->fds[0], m->fds[1]) < 0) {
		if (remote_lost(p))
			return -1;
		log_error(COMP,
			  "INTx irqfd refused by the remote (no interrupts reach the guest): %s",
			  mpdev_last_error(p->dev));
		return 0;
	}
	log_info(COMP, "INT%c wired to QEMU's irqfd and resamplefd", 'A' + pin);
	return 0;
}

static int on_reset(struct proxy *p)
{
	int r = mpdev_reset(p->dev);

	bar_window_invalidate(&p->bars);
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "device reset: %s", mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	log_info(COMP, "device reset");
	return reply(p, 0);
}

int serve_one(struct proxy *p)
{
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;
	int r;

	r = mpqemu_recv(p->qfd, &m, p->o.timeout_ms, &err);
	if (r == 0) {
		log_info(COMP, "QEMU closed the connection");
		return 0;
	}
	if (r < 0) {
		if (r == -ECONNRESET) {
			log_info(COMP, "QEMU closed the connection (reset)");
			return 0;
		}
		return malformed(p, "%s", err.msg);
	}
	p->messages++;
	log_debug(COMP, "QEMU: %s, %zu bytes, %d fds", mpqemu_cmd_name(m.cmd), m.size, m.num_fds);
	switch (m.cmd) {
	case MPQEMU_CMD_PCI_CFGREAD:
	case MPQEMU_CMD_PCI_CFGWRITE:
		r = on_cfg(p, &m);
		break;
	case MPQEMU_CMD_BAR_READ:
	case MPQEMU_CMD_BAR_WRITE:
		r = on_bar(p, &m);
		break;
	case MPQEMU_CMD_SYNC_SYSMEM:
		r = on_sync_sysmem(p, &m);
		break;
	case MPQEMU_CMD_SET_IRQFD:
		r = on_set_irqfd(p, &m);
		break;
	case MPQEMU_CMD_DEVICE_RESET:
		check_table_seen(p);
		r = on_reset(p);
		break;
	default: /* mpqemu_recv let nothing else through */
		r = malformed(p, "command %d", m.cmd);
		break;
	}
	/* libmpdev keeps its own duplicates of what it needs. */
	mpqemu_msg_close_fds(&m);
	return r < 0 ? -1 : 1;
}
