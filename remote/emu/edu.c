#include "edu.h"
#include "edu_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "mig_fsm.h"
#include "pci_config.h"

#define EDU_LOG "edu"

static struct edu *to_edu(struct backend *b)
{
	return (struct edu *)b;
}

static const char *host_msg(const struct mpdev_error *err, int r)
{
	return err->msg[0] ? err->msg : strerror(-r);
}

static void edu_drive_pin(struct edu *edu, bool level)
{
	struct backend_host *host = edu->be.host;
	struct mpdev_error err = { 0 };
	int r;

	r = host->set_intx(host, 0, level, &err);
	if (r < 0)
		log_warn(EDU_LOG, "cannot %s INTx: %s", level ? "assert" : "deassert",
			 host_msg(&err, r));
}

/*
 * Config space gates the pin: the guest may have set INTX_DISABLE or enabled
 * MSI (which forbids INTx) since the device last changed its level. A
 * quiesced device changes nothing outside itself, so the pin follows once it
 * runs again.
 */
void edu_update_intx(struct edu *edu)
{
	bool pin = edu->intx_level && !pci_config_intx_disabled(&edu->cfg) &&
		   !pci_config_msi_enabled(&edu->cfg);

	pci_config_set_intx_status(&edu->cfg, edu->intx_level);
	if (!edu_runs(edu))
		return;
	if (pin == edu->intx_pin && !edu->intx_sync)
		return;
	edu->intx_pin = pin;
	edu->intx_sync = false;
	edu_drive_pin(edu, pin);
}

void edu_signal_msi(struct edu *edu)
{
	struct backend_host *host = edu->be.host;
	struct mpdev_error err = { 0 };
	int r;

	r = host->signal_vector(host, BACKEND_IRQ_MSI, 0, &err);
	if (r < 0)
		log_warn(EDU_LOG, "cannot signal MSI: %s", host_msg(&err, r));
}

/* As QEMU: with MSI, every raise while anything is pending sends a message. */
static void edu_raise_irq(struct edu *edu, uint32_t val)
{
	edu->regs.irq_status |= val;
	if (!edu->regs.irq_status)
		return;
	/* An MSI is a memory write, which a quiesced device must not start. */
	if (pci_config_msi_enabled(&edu->cfg) && !edu_runs(edu))
		edu->msi_held = true;
	else if (pci_config_msi_enabled(&edu->cfg))
		edu_signal_msi(edu);
	else
		edu->intx_level = true;
	edu_update_intx(edu);
}

/*
 * QEMU leaves the INTx level alone when MSI is enabled; we drop it once
 * nothing is pending either way, so that a level raised before MSI was
 * enabled cannot stay stuck.
 */
static void edu_lower_irq(struct edu *edu, uint32_t val)
{
	edu->regs.irq_status &= ~val;
	if (!edu->regs.irq_status)
		edu->intx_level = false;
	edu_update_intx(edu);
}

static uint32_t edu_factorial(uint32_t n)
{
	uint32_t r = 1;

	/* From 34! on the product holds 2^32, so the result stays 0: stop there. */
	while (n > 0 && r != 0)
		r *= n--;
	return r;
}

static void edu_fact_run(evutil_socket_t fd, short what, void *opaque)
{
	struct edu *edu = opaque;

	edu->regs.fact = edu_factorial(edu->regs.fact);
	edu->regs.status &= ~EDU_STATUS_COMPUTING;
	if (edu->regs.status & EDU_STATUS_IRQFACT)
		edu_raise_irq(edu, EDU_IRQ_FACT);
}

/*
 * Deferred like QEMU's thread and timer, so guests must poll or wait for the
 * interrupt. A quiesced device holds the work (status COMPUTING / cmd RUN
 * remember it) until it runs again.
 */
void edu_defer(struct edu *edu, struct event *ev)
{
	static const struct timeval now = { 0, 0 };

	if (!edu_runs(edu))
		return;
	if (evtimer_add(ev, &now) < 0) {
		log_error(EDU_LOG, "cannot defer work, running it now");
		event_get_callback(ev)(-1, EV_TIMEOUT, event_get_callback_arg(ev));
	}
}

static void edu_start_factorial(struct edu *edu, uint32_t n)
{
	if (edu->regs.status & EDU_STATUS_COMPUTING)
		return;
	edu->regs.fact = n;
	edu->regs.status |= EDU_STATUS_COMPUTING;
	edu_defer(edu, edu->fact_ev);
}

static bool edu_dma_range_ok(uint64_t addr, uint64_t cnt)
{
	uint64_t off;

	if (addr < EDU_DMA_BUF_ADDR)
		return false;
	off = addr - EDU_DMA_BUF_ADDR;
	return off <= EDU_DMA_BUF_SIZE && cnt <= EDU_DMA_BUF_SIZE - off;
}

bool edu_dma_dev_range_ok(const struct edu_regs *regs)
{
	bool to_ram = regs->dma.cmd & EDU_DMA_CMD_TO_RAM;

	return edu_dma_range_ok(to_ram ? regs->dma.src : regs->dma.dst, regs->dma.cnt);
}

static uint64_t edu_clamp_ram_addr(uint64_t addr)
{
	if (addr & ~EDU_DMA_ADDR_MASK)
		log_debug(EDU_LOG, "DMA address 0x%" PRIx64 " clamped to 0x%" PRIx64, addr,
			  addr & EDU_DMA_ADDR_MASK);
	return addr & EDU_DMA_ADDR_MASK;
}

/*
 * QEMU's pci_dma_* go through the bus-master address space, which is
 * disabled while COMMAND.MASTER is clear, so QEMU's edu moves no data then;
 * real hardware may not master the bus either. We refuse the transfer and
 * say so, rather than pretend it happened.
 */
static int edu_dma_transfer(struct edu *edu)
{
	struct backend_host *host = edu->be.host;
	struct edu_regs *regs = &edu->regs;
	bool to_ram = regs->dma.cmd & EDU_DMA_CMD_TO_RAM;
	uint64_t dev_addr = to_ram ? regs->dma.src : regs->dma.dst;
	uint64_t ram_addr = edu_clamp_ram_addr(to_ram ? regs->dma.dst : regs->dma.src);
	uint64_t cnt = regs->dma.cnt;
	uint8_t bounce[EDU_DMA_BUF_SIZE];
	struct mpdev_error err = { 0 };
	uint8_t *buf;
	int r;

	if (!(pci_config_command(&edu->cfg) & PCI_CONFIG_COMMAND_MASTER)) {
		log_warn(EDU_LOG, "DMA refused: bus mastering is disabled in the command register");
		return -EPERM;
	}
	/* QEMU only logs a bad range and then copies anyway; we copy nothing. */
	if (!edu_dma_range_ok(dev_addr, cnt)) {
		log_warn(EDU_LOG,
			 "DMA refused: device range 0x%" PRIx64 "+0x%" PRIx64
			 " is outside the buffer 0x%x-0x%x",
			 dev_addr, cnt, EDU_DMA_BUF_ADDR, EDU_DMA_BUF_ADDR + EDU_DMA_BUF_SIZE - 1);
		return -EINVAL;
	}
	if (!cnt)
		return 0;

	buf = regs->dma_buf + (dev_addr - EDU_DMA_BUF_ADDR);
	if (to_ram) {
		r = host->dma_write(host, ram_addr, buf, cnt, &err);
	} else {
		/* Through a bounce buffer: a failed read must leave the device buffer as it was. */
		r = host->dma_read(host, ram_addr, bounce, cnt, &err);
		if (r == 0)
			memcpy(buf, bounce, cnt);
	}
	if (r < 0)
		log_warn(EDU_LOG, "DMA %s RAM at 0x%" PRIx64 " failed: %s", to_ram ? "to" : "from",
			 ram_addr, host_msg(&err, r));
	return r;
}

static void edu_dma_run(evutil_socket_t fd, short what, void *opaque)
{
	struct edu *edu = opaque;
	bool ok;

	if (!(edu->regs.dma.cmd & EDU_DMA_CMD_RUN))
		return;
	ok = edu_dma_transfer(edu) == 0;
	edu->regs.dma.cmd &= ~EDU_DMA_CMD_RUN;
	/* A transfer that did not happen must not look complete to the driver. */
	if (ok && (edu->regs.dma.cmd & EDU_DMA_CMD_IRQ))
		edu_raise_irq(edu, EDU_IRQ_DMA);
}

/* The DMA registers are frozen while a transfer runs, as in QEMU. */
static void edu_dma_set(struct edu *edu, uint64_t *reg, uint64_t val)
{
	if (edu->regs.dma.cmd & EDU_DMA_CMD_RUN)
		return;
	*reg = val;
}

/*
 * A DMA whose device range is outside the buffer moves nothing and raises
 * nothing whenever it runs, so a quiesced device refuses it at once: a held
 * DMA (and a saved one) is always one that can run.
 */
void edu_dma_settle(struct edu *edu)
{
	if ((edu->regs.dma.cmd & EDU_DMA_CMD_RUN) && !edu_dma_dev_range_ok(&edu->regs))
		edu_dma_run(-1, EV_TIMEOUT, edu);
}

static void edu_start_dma(struct edu *edu, uint64_t cmd)
{
	if (!(cmd & EDU_DMA_CMD_RUN) || (edu->regs.dma.cmd & EDU_DMA_CMD_RUN))
		return;
	edu->regs.dma.cmd = cmd;
	if (!edu_runs(edu))
		edu_dma_settle(edu);
	edu_defer(edu, edu->dma_ev);
}

/* QEMU's edu_mmio_read/write ignore these sizes, and any offset not a register. */
static bool edu_access_size_ok(uint64_t addr, uint32_t size)
{
	if (addr < EDU_REG_DMA_SRC)
		return size == 4;
	return size == 4 || size == 8;
}

static uint64_t edu_mmio_read(struct edu *edu, uint64_t addr, uint32_t size)
{
	struct edu_regs *regs = &edu->regs;

	if (!edu_access_size_ok(addr, size))
		return ~0ull;
	switch (addr) {
	case EDU_REG_IDENT:
		return EDU_IDENT;
	case EDU_REG_LIVENESS:
		return regs->liveness;
	case EDU_REG_FACTORIAL:
		return regs->fact;
	case EDU_REG_STATUS:
		return regs->status;
	case EDU_REG_IRQ_STATUS:
		return regs->irq_status;
	case EDU_REG_DMA_SRC:
		return regs->dma.src;
	case EDU_REG_DMA_DST:
		return regs->dma.dst;
	case EDU_REG_DMA_COUNT:
		return regs->dma.cnt;
	case EDU_REG_DMA_CMD:
		return regs->dma.cmd;
	}
	/* Includes the DMA buffer: QEMU does not map it into BAR0 either. */
	return ~0ull;
}

static void edu_mmio_write(struct edu *edu, uint64_t addr, uint64_t val, uint32_t size)
{
	struct edu_regs *regs = &edu->regs;

	if (!edu_access_size_ok(addr, size))
		return;
	switch (addr) {
	case EDU_REG_LIVENESS:
		regs->liveness = ~(uint32_t)val;
		break;
	case EDU_REG_FACTORIAL:
		edu_start_factorial(edu, (uint32_t)val);
		break;
	case EDU_REG_STATUS:
		if (val & EDU_STATUS_IRQFACT)
			regs->status |= EDU_STATUS_IRQFACT;
		else
			regs->status &= ~EDU_STATUS_IRQFACT;
		break;
	case EDU_REG_IRQ_RAISE:
		edu_raise_irq(edu, (uint32_t)val);
		break;
	case EDU_REG_IRQ_ACK:
		edu_lower_irq(edu, (uint32_t)val);
		break;
	case EDU_REG_DMA_SRC:
		edu_dma_set(edu, &regs->dma.src, val);
		break;
	case EDU_REG_DMA_DST:
		edu_dma_set(edu, &regs->dma.dst, val);
		break;
	case EDU_REG_DMA_COUNT:
		edu_dma_set(edu, &regs->dma.cnt, val);
		break;
	case EDU_REG_DMA_CMD:
		edu_start_dma(edu, val);
		break;
	}
}

static int edu_check_access(uint32_t index, uint64_t offset, uint32_t size, struct mpdev_error *err)
{
	uint64_t region_size;
	uint32_t max_size;

	if (index == BACKEND_REGION_BAR0) {
		region_size = EDU_BAR0_SIZE;
		max_size = 8;
	} else if (index == BACKEND_REGION_CONFIG) {
		region_size = PCI_CONFIG_SPACE_SIZE;
		max_size = 4;
	} else {
		return mpdev_error_set(err, EINVAL, "edu has no region %u", index);
	}
	if (size == 0 || size > max_size || offset > region_size || size > region_size - offset)
		return mpdev_error_set(err, EINVAL,
				       "edu region %u: bad access of %u bytes at 0x%" PRIx64, index,
				       size, offset);
	return 0;
}

static int edu_region_read(struct backend *b, uint32_t index, uint64_t offset, void *data,
			   uint32_t size, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);
	uint32_t val;
	int r;

	r = edu_check_access(index, offset, size, err);
	if (r < 0)
		return r;
	if (index == BACKEND_REGION_BAR0) {
		pci_store_le(data, size, edu_mmio_read(edu, offset, size));
		return 0;
	}
	r = pci_config_read(&edu->cfg, offset, size, &val);
	if (r < 0)
		return mpdev_error_set(err, -r, "edu config: bad read of %u bytes at 0x%" PRIx64,
				       size, offset);
	pci_store_le(data, size, val);
	return 0;
}

static int edu_region_write(struct backend *b, uint32_t index, uint64_t offset, const void *data,
			    uint32_t size, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);
	int r;

	r = edu_check_access(index, offset, size, err);
	if (r < 0)
		return r;
	if (index == BACKEND_REGION_BAR0) {
		if (!edu_accepts_bar_writes(edu))
			return mpdev_error_set(err, EBUSY,
					       "edu is in migration state %s: BAR0 writes are "
					       "refused until it runs again",
					       mig_fsm_state_name(edu->mig_state));
		edu_mmio_write(edu, offset, pci_load_le(data, size), size);
		return 0;
	}
	r = pci_config_write(&edu->cfg, offset, size, (uint32_t)pci_load_le(data, size));
	if (r < 0)
		return mpdev_error_set(err, -r, "edu config: bad write of %u bytes at 0x%" PRIx64,
				       size, offset);
	edu_update_intx(edu);
	return 0;
}

static void edu_get_info(struct backend *b, struct backend_device_info *info)
{
	struct backend_region_info *bar0 = &info->regions[BACKEND_REGION_BAR0];
	struct backend_region_info *config = &info->regions[BACKEND_REGION_CONFIG];

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "emu:edu");
	info->vendor_id = EDU_VENDOR_ID;
	info->device_id = EDU_DEVICE_ID;
	info->subsystem_vendor_id = EDU_SUBSYSTEM_VENDOR_ID;
	info->subsystem_id = EDU_SUBSYSTEM_ID;
	info->class_code = EDU_CLASS_CODE;
	info->revision = EDU_REVISION;
	info->reset_supported = true;

	/* Registers have side effects, so BAR0 is never mmap-able. */
	bar0->flags = BACKEND_REGION_READ | BACKEND_REGION_WRITE;
	bar0->size = EDU_BAR0_SIZE;
	config->flags = BACKEND_REGION_READ | BACKEND_REGION_WRITE;
	config->size = PCI_CONFIG_SPACE_SIZE;

	info->irqs[BACKEND_IRQ_INTX].count = 1;
	info->irqs[BACKEND_IRQ_INTX].flags = BACKEND_IRQ_EVENTFD;
	info->irqs[BACKEND_IRQ_MSI].count = 1;
	info->irqs[BACKEND_IRQ_MSI].flags = BACKEND_IRQ_EVENTFD;
}

/* Power-on state; the host's pin follows when the device runs. */
void edu_reset_state(struct edu *edu)
{
	/* Work queued before the reset must not complete into the new state. */
	event_del(edu->fact_ev);
	event_del(edu->dma_ev);
	memset(&edu->regs, 0, sizeof(edu->regs));
	pci_config_reset(&edu->cfg);
	edu->intx_level = false;
	edu->msi_held = false;
	edu_update_intx(edu);
}

/* Also how a device leaves a migration state, ERROR included. */
static int edu_reset(struct backend *b, struct mpdev_error *err)
{
	struct edu *edu = to_edu(b);

	edu_mig_reset(edu);
	edu_reset_state(edu);
	return 0;
}

/*
 * A proxy replays a session after a restart of the remote: edu's registers
 * (an operand, a DMA set up half-way) died with the old process. QEMU's edu
 * has no error register, so the loss is reported the way a PCI device
 * reports a fatal error: Signaled System Error in the status register,
 * which a guest checks and clears (W1C) before redoing its work.
 */
static void edu_resumed(struct backend *b)
{
	pci_config_signal_system_error(&to_edu(b)->cfg);
}

/*
 * IRQ_RAISE is edu's one doorbell-like register: a write raises the bits it
 * carries. As a doorbell it raises EDU_IRQ_FACT, the status bit a driver
 * (and the tests) watch, so a signalled eventfd is observable without DMA.
 */
static unsigned edu_ioeventfds(struct backend *b, struct backend_ioeventfd *v, unsigned max)
{
	(void)b;
	if (max < 1)
		return 0;
	v[0] = (struct backend_ioeventfd){ .region = BACKEND_REGION_BAR0,
					   .offset = EDU_REG_IRQ_RAISE,
					   .size = 4,
					   .datamatch = true,
					   .data = EDU_IRQ_FACT };
	return 1;
}

static void edu_destroy(struct backend *b)
{
	struct edu *edu = to_edu(b);

	if (edu->fact_ev)
		event_free(edu->fact_ev);
	if (edu->dma_ev)
		event_free(edu->dma_ev);
	edu_mig_reset(edu);
	free(edu);
}

static const struct backend_ops edu_ops = {
	.name = "emu:edu",
	.get_info = edu_get_info,
	.region_read = edu_region_read,
	.region_write = edu_region_write,
	.reset = edu_reset,
	.resumed = edu_resumed,
	.ioeventfds = edu_ioeventfds,
	.mig_flags = edu_mig_flags,
	.mig_arc = edu_mig_arc,
	.mig_save = edu_mig_save,
	.mig_load = edu_mig_load,
	.mig_precopy_info = edu_mig_precopy_info,
	.destroy = edu_destroy,
};

static int edu_init_config(struct pci_config *cfg)
{
	static const struct pci_config_identity id = {
		.vendor_id = EDU_VENDOR_ID,
		.device_id = EDU_DEVICE_ID,
		.subsystem_vendor_id = EDU_SUBSYSTEM_VENDOR_ID,
		.subsystem_id = EDU_SUBSYSTEM_ID,
		.class_code = EDU_CLASS_CODE,
		.revision = EDU_REVISION,
		.interrupt_pin = 1,
	};
	int r;

	r = pci_config_init(cfg, &id);
	if (r < 0)
		return r;
	r = pci_config_add_bar(cfg, 0, EDU_BAR0_SIZE, 0);
	if (r < 0)
		return r;
	/* QEMU: msi_init(pdev, 0, 1, true, false) takes the first free offset, 0x40. */
	return pci_config_add_msi(cfg, EDU_MSI_CAP_OFFSET, 1, PCI_CONFIG_MSI_64BIT);
}

int edu_create(struct event_base *base, struct backend_host *host, struct backend **out,
	       struct mpdev_error *err)
{
	struct edu *edu;
	int r;

	if (!base || !host || !host->dma_read || !host->dma_write || !host->set_intx ||
	    !host->signal_vector)
		return mpdev_error_set(err, EINVAL, "edu needs an event loop and a complete host");

	edu = calloc(1, sizeof(*edu));
	if (!edu)
		return mpdev_error_set(err, ENOMEM, "edu: out of memory");
	edu->be.ops = &edu_ops;
	edu->be.base = base;
	edu->be.host = host;
	edu->mig_state = BACKEND_MIG_RUNNING;

	r = edu_init_config(&edu->cfg);
	if (r < 0) {
		edu_destroy(&edu->be);
		return mpdev_error_set(err, -r, "edu: config space layout: %s", strerror(-r));
	}
	edu->fact_ev = evtimer_new(base, edu_fact_run, edu);
	edu->dma_ev = evtimer_new(base, edu_dma_run, edu);
	if (!edu->fact_ev || !edu->dma_ev) {
		edu_destroy(&edu->be);
		return mpdev_error_set(err, ENOMEM, "edu: cannot create events");
	}
	*out = &edu->be;
	return 0;
}
