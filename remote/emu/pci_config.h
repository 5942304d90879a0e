/*
 * Emulated PCI type-0 configuration space (256 bytes) for device models.
 *
 * As in QEMU, every byte has a value, a write mask and a write-1-to-clear
 * mask; a write keeps the bits outside the write mask, takes the written bits
 * inside it, then clears the W1C bits written as 1. Device models describe
 * their layout once (identity, BARs, capabilities) and afterwards only read
 * the state the guest programmed.
 */
#ifndef MPDEV_PCI_CONFIG_H
#define MPDEV_PCI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CONFIG_SPACE_SIZE 256
#define PCI_CONFIG_NUM_BARS   6

/* Header offsets and bits, named as in Linux's pci_regs.h. */
#define PCI_CONFIG_VENDOR_ID	       0x00
#define PCI_CONFIG_DEVICE_ID	       0x02
#define PCI_CONFIG_COMMAND	       0x04
#define PCI_CONFIG_STATUS	       0x06
#define PCI_CONFIG_REVISION_ID	       0x08
#define PCI_CONFIG_CLASS_PROG	       0x09
#define PCI_CONFIG_CACHE_LINE_SIZE     0x0c
#define PCI_CONFIG_HEADER_TYPE	       0x0e
#define PCI_CONFIG_BAR0		       0x10
#define PCI_CONFIG_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_CONFIG_SUBSYSTEM_ID	       0x2e
#define PCI_CONFIG_ROM_ADDRESS	       0x30
#define PCI_CONFIG_CAPABILITY_LIST     0x34
#define PCI_CONFIG_INTERRUPT_LINE      0x3c
#define PCI_CONFIG_INTERRUPT_PIN       0x3d
#define PCI_CONFIG_HEADER_SIZE	       0x40

#define PCI_CONFIG_COMMAND_IO		0x0001
#define PCI_CONFIG_COMMAND_MEMORY	0x0002
#define PCI_CONFIG_COMMAND_MASTER	0x0004
#define PCI_CONFIG_COMMAND_PARITY	0x0040
#define PCI_CONFIG_COMMAND_SERR		0x0100
#define PCI_CONFIG_COMMAND_INTX_DISABLE 0x0400

#define PCI_CONFIG_STATUS_INTERRUPT 0x0008
#define PCI_CONFIG_STATUS_CAP_LIST  0x0010
#define PCI_CONFIG_STATUS_ERRORS    0xf900 /* parity, aborts, SERR: all W1C */
#define PCI_CONFIG_STATUS_SERR	    0x4000 /* Signaled System Error */

#define PCI_CONFIG_CAP_ID_MSI 0x05

/* MSI capability, relative to its offset. */
#define PCI_CONFIG_MSI_FLAGS	     0x02
#define PCI_CONFIG_MSI_FLAGS_ENABLE  0x0001
#define PCI_CONFIG_MSI_FLAGS_QMASK   0x000e /* multiple message capable */
#define PCI_CONFIG_MSI_FLAGS_QSIZE   0x0070 /* multiple message enable */
#define PCI_CONFIG_MSI_FLAGS_64BIT   0x0080
#define PCI_CONFIG_MSI_FLAGS_MASKBIT 0x0100
#define PCI_CONFIG_MSI_ADDRESS_LO    0x04

/* BAR flags for pci_config_add_bar(); memory, 32-bit, non-prefetchable without any. */
#define PCI_CONFIG_BAR_IO	0x1u
#define PCI_CONFIG_BAR_MEM64	0x2u
#define PCI_CONFIG_BAR_PREFETCH 0x4u

/* MSI capability flags for pci_config_add_msi(). */
#define PCI_CONFIG_MSI_64BIT	       0x1u
#define PCI_CONFIG_MSI_PER_VECTOR_MASK 0x2u

struct pci_config_identity {
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	uint8_t revision;
	uint8_t interrupt_pin; /* 0: none, 1..4: INTA..INTD */
};

struct pci_config {
	uint8_t data[PCI_CONFIG_SPACE_SIZE];
	uint8_t wmask[PCI_CONFIG_SPACE_SIZE];
	uint8_t w1cmask[PCI_CONFIG_SPACE_SIZE];
	/* Bytes taken by the header or a capability, so capabilities cannot overlap. */
	bool used[PCI_CONFIG_SPACE_SIZE];
	uint32_t bar_flags[PCI_CONFIG_NUM_BARS];
	uint64_t bar_size[PCI_CONFIG_NUM_BARS]; /* 0: no BAR (or upper half of a 64-bit one) */
	uint8_t msi_cap;			/* 0: no MSI capability */
};

/* A device with the given identity, no BARs, no capabilities; -EINVAL on a bad pin. */
int pci_config_init(struct pci_config *cfg, const struct pci_config_identity *id);

/*
 * BAR number bar of size bytes (a power of two: >= 16 for memory, >= 4 for
 * I/O, and addressable by the BAR's width). A 64-bit BAR also takes bar + 1.
 * -EINVAL on a bad layout, -EBUSY if the slot is taken.
 */
int pci_config_add_bar(struct pci_config *cfg, unsigned bar, uint64_t size, uint32_t flags);
/* The address the guest programmed, flag bits stripped; 0 for no BAR. */
uint64_t pci_config_bar_address(const struct pci_config *cfg, unsigned bar);

/*
 * MSI capability at offset (dword aligned, in device-specific space) for
 * nvectors (a power of two, 1..32), linked into the capability list.
 * -EINVAL on a bad layout, -EEXIST if there is one already, -EBUSY if it
 * overlaps another capability.
 */
int pci_config_add_msi(struct pci_config *cfg, uint8_t offset, unsigned nvectors, uint32_t flags);

/*
 * A capability of id and size bytes at offset (dword aligned, in
 * device-specific space), linked at the head of the capability list, its
 * bytes read-only and zero but for the id and next pointer: the caller fills
 * data and wmask. Add them in reverse order for an ascending list. -EINVAL
 * on a bad layout, -EBUSY if it overlaps another capability.
 */
int pci_config_add_cap(struct pci_config *cfg, uint8_t id, uint8_t offset, unsigned size);

/* size 1, 2 or 4 within the 256 bytes, any alignment, little-endian; else -EINVAL. */
int pci_config_read(const struct pci_config *cfg, uint64_t offset, uint32_t size, uint32_t *val);
int pci_config_write(struct pci_config *cfg, uint64_t offset, uint32_t size, uint32_t val);

/* Power-on state: everything the guest can write back to 0, layout and identity kept. */
void pci_config_reset(struct pci_config *cfg);

/* The device's own interrupt level, shown in the status register's read-only INTx bit. */
void pci_config_set_intx_status(struct pci_config *cfg, bool asserted);

/* Sets Signaled System Error in the status register (W1C: the guest clears it). */
void pci_config_signal_system_error(struct pci_config *cfg);

uint16_t pci_config_command(const struct pci_config *cfg);
bool pci_config_intx_disabled(const struct pci_config *cfg);
bool pci_config_msi_enabled(const struct pci_config *cfg);
/* Vectors the guest enabled (multiple message enable, capped at what is capable). */
unsigned pci_config_msi_nvectors(const struct pci_config *cfg);
uint64_t pci_config_msi_address(const struct pci_config *cfg);
uint16_t pci_config_msi_data(const struct pci_config *cfg);
/* false without per-vector masking. */
bool pci_config_msi_vector_masked(const struct pci_config *cfg, unsigned vector);

/*
 * A region access's bytes as a value and back: PCI is little-endian, and an
 * access of 1-8 bytes at any alignment is what devops hands a device model.
 */
static inline uint64_t pci_load_le(const void *data, uint32_t size)
{
	const uint8_t *p = data;
	uint64_t v = 0;

	for (uint32_t i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void pci_store_le(void *data, uint32_t size, uint64_t v)
{
	uint8_t *p = data;

	for (uint32_t i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#endif
