// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's MSI check (tests/qemu11): binds one edu device (the one named
 * by bdf=), enables MSI through the kernel's own PCI core, and has the device
 * raise an interrupt rounds times. Each must arrive as an MSI, be seen by the
 * handler with the raised status, and be acknowledged before the next one.
 * The outcome is left in read-only module parameters (count, result) for
 * /init to print, so the check needs no device node of its own.
 *
 * Debian's guest kernel has no VFIO no-IOMMU mode, so user space cannot own
 * an MSI vector without a vIOMMU; a driver can.
 */
#include <linux/completion.h>
#include <linux/interrupt.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/pci.h>

#define EDU_REG_IDENT	   0x00
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_RAISE  0x60
#define EDU_REG_IRQ_ACK	   0x64
#define EDU_TIMEOUT_MS	   3000

static char *bdf = "";
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "the edu device to test (0000:00:06.0)");
static unsigned int rounds = 20;
module_param(rounds, uint, 0444);
/* Results: interrupts the handler took, and 0 or the first failure (negative errno). */
static unsigned int count;
module_param(count, uint, 0444);
static int result = -EAGAIN;
module_param(result, int, 0444);
static unsigned int msi_irq;
module_param(msi_irq, uint, 0444);
/* The vector was a message-signalled one (the PCI core enabled MSI, not INTx). */
static bool was_msi;
module_param(was_msi, bool, 0444);

struct edu_msi {
	void __iomem *bar;
	struct completion done;
	u32 seen;
};

static irqreturn_t edu_msi_handler(int irq, void *data)
{
	struct edu_msi *e = data;
	u32 status = ioread32(e->bar + EDU_REG_IRQ_STATUS);

	if (!status)
		return IRQ_NONE;
	iowrite32(status, e->bar + EDU_REG_IRQ_ACK);
	e->seen = status;
	count++;
	complete(&e->done);
	return IRQ_HANDLED;
}

static int edu_msi_rounds(struct pci_dev *pdev, struct edu_msi *e)
{
	unsigned int i;

	for (i = 0; i < rounds; i++) {
		u32 val = 1u << (i % 8);

		reinit_completion(&e->done);
		e->seen = 0;
		iowrite32(val, e->bar + EDU_REG_IRQ_RAISE);
		if (!wait_for_completion_timeout(&e->done, msecs_to_jiffies(EDU_TIMEOUT_MS))) {
			dev_err(&pdev->dev, "edu_msi: round %u: no MSI within %d ms\n", i,
				EDU_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		if (e->seen != val) {
			dev_err(&pdev->dev, "edu_msi: round %u: status 0x%x, raised 0x%x\n", i,
				e->seen, val);
			return -EIO;
		}
	}
	return 0;
}

static int edu_msi_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_msi *e;
	int r;

	if (strcmp(pci_name(pdev), bdf))
		return -ENODEV;
	e = devm_kzalloc(&pdev->dev, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	init_completion(&e->done);
	r = pcim_enable_device(pdev);
	if (r)
		goto out;
	pci_set_master(pdev);
	e->bar = pcim_iomap(pdev, 0, 0);
	if (!e->bar) {
		r = -ENOMEM;
		goto out;
	}
	if (ioread32(e->bar + EDU_REG_IDENT) >> 16 != 0x0100) {
		r = -ENODEV;
		goto out;
	}
	r = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (r < 0)
		goto out;
	was_msi = pdev->msi_enabled;
	msi_irq = pci_irq_vector(pdev, 0);
	r = request_irq(msi_irq, edu_msi_handler, 0, "edu_msi", e);
	if (r) {
		pci_free_irq_vectors(pdev);
		goto out;
	}
	r = edu_msi_rounds(pdev, e);
	free_irq(msi_irq, e);
	pci_free_irq_vectors(pdev);
out:
	result = r;
	dev_info(&pdev->dev, "edu_msi: %u of %u MSIs, result %d\n", count, rounds, r);
	/* Stay unbound: the outcome is in the parameters, the device free for the next test. */
	return -ENODEV;
}

static const struct pci_device_id edu_msi_ids[] = { { PCI_DEVICE(0x1234, 0x11e8) }, {} };
MODULE_DEVICE_TABLE(pci, edu_msi_ids);

static struct pci_driver edu_msi_driver = {
	.name = "edu_msi",
	.id_table = edu_msi_ids,
	.probe = edu_msi_probe,
};
module_pci_driver(edu_msi_driver);

MODULE_DESCRIPTION("mpdev qemu11 tier: MSI from an edu device into the guest");
MODULE_LICENSE("GPL");
