/*
 * QEMU's edu device as the model's vfio-pci device: its BAR0 registers
 * (ident, liveness, factorial, interrupt raise/ack, the DMA registers), its
 * config space as vfio-pci shows it, and its reset. Mirrors QEMU
 * hw/misc/edu.c (and the config bits of drivers/vfio/pci/vfio_pci_config.c
 * it needs).
 */
#include "vfio_model_internal.h"

#include <string.h>

void vfm_edu_config_init(struct mdev *d)
{
	uint8_t *c = d->config;

	memset(c, 0, sizeof(d->config));
	c[0x00] = 0x34, c[0x01] = 0x12; /* vendor 1234 */
	c[0x02] = 0xe8, c[0x03] = 0x11; /* device 11e8 */
	c[0x06] = 0x10;			/* status: capability list */
	c[0x08] = 0x10;			/* revision */
	c[0x0a] = 0xff;			/* class: PCI_CLASS_OTHERS */
	c[0x2c] = 0xf4, c[0x2d] = 0x1a; /* subsystem vendor 1af4 */
	c[0x2e] = 0x00, c[0x2f] = 0x11; /* subsystem 1100 */
	c[0x34] = 0x40;			/* capabilities */
	c[0x3d] = 0x01;			/* INTA */
	c[0x40] = 0x05, c[0x41] = 0x00; /* MSI, end of list */
	c[0x42] = 0x80;			/* 64-bit, 1 vector */
}

uint64_t vfm_edu_read(struct mdev *d, uint64_t addr, unsigned size)
{
	if (addr < 0x80 && size != 4)
		return ~0ull; /* edu_check_range() */
	if (addr >= 0x80 && size != 4 && size != 8)
		return ~0ull;
	switch (addr) {
	case 0x00:
		return EDU_IDENT;
	case 0x04:
		return d->addr4;
	case 0x08:
		return d->fact;
	case 0x20:
		return d->status;
	case 0x24:
		return d->irq_status;
	case 0x80:
	case 0x88:
	case 0x90:
	case 0x98:
		return d->dma[(addr - 0x80) / 8];
	default:
		return ~0ull;
	}
}

void vfm_edu_write(struct mdev *d, uint64_t addr, uint64_t val, unsigned size)
{
	if (addr < 0x80 && size != 4)
		return;
	if (addr >= 0x80 && size != 4 && size != 8)
		return;
	switch (addr) {
	case 0x04:
		d->addr4 = ~(uint32_t)val;
		break;
	case 0x08: {
		uint32_t f = 1;

		/* Computed at once (QEMU uses a thread); the IRQ follows if enabled. */
		for (uint32_t i = (uint32_t)val; i > 0; i--)
			f *= i;
		d->fact = f;
		if (d->status & 0x80)
			vfm_device_irq(d, 0x1, true);
		break;
	}
	case 0x20:
		d->status = (d->status & ~0x80u) | ((uint32_t)val & 0x80);
		break;
	case 0x60:
		vfm_device_irq(d, (uint32_t)val, true);
		break;
	case 0x64:
		vfm_device_irq(d, (uint32_t)val, false);
		break;
	case 0x80:
	case 0x88:
	case 0x90:
	case 0x98:
		d->dma[(addr - 0x80) / 8] = val; /* (the DMA itself is not modelled) */
		break;
	default:
		break;
	}
}

void vfm_edu_reset(struct mdev *d)
{
	d->addr4 = d->fact = d->status = d->irq_status = 0;
	memset(d->dma, 0, sizeof(d->dma));
	d->config[0x04] = d->config[0x05] = 0;
	d->resets++;
}
