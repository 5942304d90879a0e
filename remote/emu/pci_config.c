#include "pci_config.h"

#include <errno.h>
#include <string.h>

#define BAR_IO_FLAG_MASK   0x3u
#define BAR_MEM_FLAG_MASK  0xfu
#define BAR_IO_SPACE	   0x1u
#define BAR_MEM_TYPE_64	   0x4u
#define BAR_MEM_PREFETCH   0x8u
#define BAR_32BIT_MAX_SIZE 0x80000000ull

/* Writable bits of the command register, as QEMU's pci_init_wmask() sets them. */
#define COMMAND_WMASK                                                                              \
	(PCI_CONFIG_COMMAND_IO | PCI_CONFIG_COMMAND_MEMORY | PCI_CONFIG_COMMAND_MASTER |           \
	 PCI_CONFIG_COMMAND_PARITY | PCI_CONFIG_COMMAND_SERR | PCI_CONFIG_COMMAND_INTX_DISABLE)

#define MSI_MAX_VECTORS 32

static uint32_t get_le(const uint8_t *p, unsigned size)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, unsigned size, uint32_t v)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int pci_config_init(struct pci_config *cfg, const struct pci_config_identity *id)
{
	if (id->interrupt_pin > 4 || id->class_code > 0xffffff)
		return -EINVAL;

	memset(cfg, 0, sizeof(*cfg));
	put_le(cfg->data + PCI_CONFIG_VENDOR_ID, 2, id->vendor_id);
	put_le(cfg->data + PCI_CONFIG_DEVICE_ID, 2, id->device_id);
	cfg->data[PCI_CONFIG_REVISION_ID] = id->revision;
	put_le(cfg->data + PCI_CONFIG_CLASS_PROG, 3, id->class_code);
	cfg->data[PCI_CONFIG_HEADER_TYPE] = 0x00; /* type 0, single function */
	put_le(cfg->data + PCI_CONFIG_SUBSYSTEM_VENDOR_ID, 2, id->subsystem_vendor_id);
	put_le(cfg->data + PCI_CONFIG_SUBSYSTEM_ID, 2, id->subsystem_id);
	cfg->data[PCI_CONFIG_INTERRUPT_PIN] = id->interrupt_pin;

	put_le(cfg->wmask + PCI_CONFIG_COMMAND, 2, COMMAND_WMASK);
	put_le(cfg->w1cmask + PCI_CONFIG_STATUS, 2, PCI_CONFIG_STATUS_ERRORS);
	/* Firmware and Linux program these; QEMU keeps them writable too. */
	cfg->wmask[PCI_CONFIG_CACHE_LINE_SIZE] = 0xff;
	cfg->wmask[PCI_CONFIG_INTERRUPT_LINE] = 0xff;

	memset(cfg->used, true, PCI_CONFIG_HEADER_SIZE);
	return 0;
}

static bool bar_is_upper_half(const struct pci_config *cfg, unsigned bar)
{
	return bar > 0 && cfg->bar_size[bar - 1] &&
	       (cfg->bar_flags[bar - 1] & PCI_CONFIG_BAR_MEM64);
}

static uint32_t bar_flag_mask(uint32_t flags)
{
	return (flags & PCI_CONFIG_BAR_IO) ? BAR_IO_FLAG_MASK : BAR_MEM_FLAG_MASK;
}

static int check_bar_layout(const struct pci_config *cfg, unsigned bar, uint64_t size,
			    uint32_t flags)
{
	bool io = flags & PCI_CONFIG_BAR_IO;
	bool mem64 = flags & PCI_CONFIG_BAR_MEM64;

	if (bar >= PCI_CONFIG_NUM_BARS || !is_pow2(size))
		return -EINVAL;
	if (flags & ~(PCI_CONFIG_BAR_IO | PCI_CONFIG_BAR_MEM64 | PCI_CONFIG_BAR_PREFETCH))
		return -EINVAL;
	if (io && (flags & ~PCI_CONFIG_BAR_IO))
		return -EINVAL;
	if (size < (io ? 4u : 16u))
		return -EINVAL;
	/* A BAR needs at least one writable address bit, or it could never be placed. */
	if (!mem64 && size > BAR_32BIT_MAX_SIZE)
		return -EINVAL;
	if (mem64 && (bar + 1 >= PCI_CONFIG_NUM_BARS || size > (1ull << 63)))
		return -EINVAL;
	if (cfg->bar_size[bar] || bar_is_upper_half(cfg, bar))
		return -EBUSY;
	if (mem64 && cfg->bar_size[bar + 1])
		return -EBUSY;
	return 0;
}

int pci_config_add_bar(struct pci_config *cfg, unsigned bar, uint64_t size, uint32_t flags)
{
	unsigned off = PCI_CONFIG_BAR0 + 4 * bar;
	uint64_t addr_mask = ~(size - 1);
	uint32_t low;
	int r;

	r = check_bar_layout(cfg, bar, size, flags);
	if (r < 0)
		return r;

	if (flags & PCI_CONFIG_BAR_IO) {
		low = BAR_IO_SPACE;
	} else {
		low = (flags & PCI_CONFIG_BAR_MEM64) ? BAR_MEM_TYPE_64 : 0;
		if (flags & PCI_CONFIG_BAR_PREFETCH)
			low |= BAR_MEM_PREFETCH;
	}
	put_le(cfg->data + off, 4, low);
	put_le(cfg->wmask + off, 4, (uint32_t)addr_mask & ~bar_flag_mask(flags));
	if (flags & PCI_CONFIG_BAR_MEM64)
		put_le(cfg->wmask + off + 4, 4, (uint32_t)(addr_mask >> 32));

	cfg->bar_size[bar] = size;
	cfg->bar_flags[bar] = flags;
	return 0;
}

uint64_t pci_config_bar_address(const struct pci_config *cfg, unsigned bar)
{
	unsigned off = PCI_CONFIG_BAR0 + 4 * bar;
	uint64_t addr;

	if (bar >= PCI_CONFIG_NUM_BARS || !cfg->bar_size[bar])
		return 0;
	addr = get_le(cfg->data + off, 4) & ~bar_flag_mask(cfg->bar_flags[bar]);
	if (cfg->bar_flags[bar] & PCI_CONFIG_BAR_MEM64)
		addr |= (uint64_t)get_le(cfg->data + off + 4, 4) << 32;
	return addr;
}

static uint16_t msi_ctrl(const struct pci_config *cfg)
{
	return (uint16_t)get_le(cfg->data + cfg->msi_cap + PCI_CONFIG_MSI_FLAGS, 2);
}

static bool msi_is_64bit(const struct pci_config *cfg)
{
	return msi_ctrl(cfg) & PCI_CONFIG_MSI_FLAGS_64BIT;
}

static bool msi_has_mask(const struct pci_config *cfg)
{
	return msi_ctrl(cfg) & PCI_CONFIG_MSI_FLAGS_MASKBIT;
}

/* Offsets within the capability after the address: they move with the 64-bit flag. */
static unsigned msi_data_off(bool is64)
{
	return is64 ? 0x0c : 0x08;
}

static unsigned msi_mask_off(bool is64)
{
	return is64 ? 0x10 : 0x0c;
}

static unsigned msi_cap_size(bool is64, bool maskable)
{
	/* Mask and pending bits follow the data word, each a dword. */
	return maskable ? msi_mask_off(is64) + 8 : msi_data_off(is64) + 2;
}

int pci_config_add_msi(struct pci_config *cfg, uint8_t offset, unsigned nvectors, uint32_t flags)
{
	bool is64 = flags & PCI_CONFIG_MSI_64BIT;
	bool maskable = flags & PCI_CONFIG_MSI_PER_VECTOR_MASK;
	unsigned size = msi_cap_size(is64, maskable);
	uint16_t ctrl;
	unsigned i;

	if (cfg->msi_cap)
		return -EEXIST;
	if (flags & ~(PCI_CONFIG_MSI_64BIT | PCI_CONFIG_MSI_PER_VECTOR_MASK))
		return -EINVAL;
	/* The low two bits of every capability pointer are reserved. */
	if (offset < PCI_CONFIG_HEADER_SIZE || (offset & 3))
		return -EINVAL;
	if (offset + size > PCI_CONFIG_SPACE_SIZE)
		return -EINVAL;
	if (!is_pow2(nvectors) || nvectors > MSI_MAX_VECTORS)
		return -EINVAL;
	for (i = 0; i < size; i++) {
		if (cfg->used[offset + i])
			return -EBUSY;
	}

	ctrl = (uint16_t)((__builtin_ctz(nvectors) << 1) & PCI_CONFIG_MSI_FLAGS_QMASK);
	if (is64)
		ctrl |= PCI_CONFIG_MSI_FLAGS_64BIT;
	if (maskable)
		ctrl |= PCI_CONFIG_MSI_FLAGS_MASKBIT;

	cfg->data[offset] = PCI_CONFIG_CAP_ID_MSI;
	cfg->data[offset + 1] = cfg->data[PCI_CONFIG_CAPABILITY_LIST];
	put_le(cfg->data + offset + PCI_CONFIG_MSI_FLAGS, 2, ctrl);
	cfg->data[PCI_CONFIG_CAPABILITY_LIST] = offset;
	cfg->data[PCI_CONFIG_STATUS] |= PCI_CONFIG_STATUS_CAP_LIST;

	put_le(cfg->wmask + offset + PCI_CONFIG_MSI_FLAGS, 2,
	       PCI_CONFIG_MSI_FLAGS_ENABLE | PCI_CONFIG_MSI_FLAGS_QSIZE);
	put_le(cfg->wmask + offset + PCI_CONFIG_MSI_ADDRESS_LO, 4, 0xfffffffc);
	if (is64)
		put_le(cfg->wmask + offset + PCI_CONFIG_MSI_ADDRESS_LO + 4, 4, 0xffffffff);
	put_le(cfg->wmask + offset + msi_data_off(is64), 2, 0xffff);
	if (maskable)
		put_le(cfg->wmask + offset + msi_mask_off(is64), 4,
		       0xffffffffu >> (MSI_MAX_VECTORS - nvectors));

	memset(cfg->used + offset, true, size);
	cfg->msi_cap = offset;
	return 0;
}

int pci_config_add_cap(struct pci_config *cfg, uint8_t id, uint8_t offset, unsigned size)
{
	/* The low two bits of every capability pointer are reserved. */
	if (offset < PCI_CONFIG_HEADER_SIZE || (offset & 3) || size < 2)
		return -EINVAL;
	if (offset + size > PCI_CONFIG_SPACE_SIZE)
		return -EINVAL;
	for (unsigned i = 0; i < size; i++) {
		if (cfg->used[offset + i])
			return -EBUSY;
	}
	cfg->data[offset] = id;
	cfg->data[offset + 1] = cfg->data[PCI_CONFIG_CAPABILITY_LIST];
	cfg->data[PCI_CONFIG_CAPABILITY_LIST] = offset;
	cfg->data[PCI_CONFIG_STATUS] |= PCI_CONFIG_STATUS_CAP_LIST;
	memset(cfg->used + offset, true, size);
	return 0;
}

static bool access_ok(uint64_t offset, uint32_t size)
{
	if (size != 1 && size != 2 && size != 4)
		return false;
	return offset <= PCI_CONFIG_SPACE_SIZE && size <= PCI_CONFIG_SPACE_SIZE - offset;
}

int pci_config_read(const struct pci_config *cfg, uint64_t offset, uint32_t size, uint32_t *val)
{
	if (!access_ok(offset, size))
		return -EINVAL;
	*val = get_le(cfg->data + offset, size);
	return 0;
}

int pci_config_write(struct pci_config *cfg, uint64_t offset, uint32_t size, uint32_t val)
{
	if (!access_ok(offset, size))
		return -EINVAL;
	for (uint32_t i = 0; i < size; i++) {
		unsigned o = (unsigned)offset + i;
		uint8_t b = (uint8_t)(val >> (8 * i));

		cfg->data[o] = (cfg->data[o] & ~cfg->wmask[o]) | (b & cfg->wmask[o]);
		cfg->data[o] &= ~(b & cfg->w1cmask[o]);
	}
	return 0;
}

void pci_config_reset(struct pci_config *cfg)
{
	/*
	 * Everything that powers up non-zero (identity, BAR flag bits, capability
	 * layout) is read-only, so clearing what the guest can change is the reset.
	 */
	for (unsigned i = 0; i < PCI_CONFIG_SPACE_SIZE; i++)
		cfg->data[i] &= ~(cfg->wmask[i] | cfg->w1cmask[i]);
	pci_config_set_intx_status(cfg, false);
}

void pci_config_set_intx_status(struct pci_config *cfg, bool asserted)
{
	if (asserted)
		cfg->data[PCI_CONFIG_STATUS] |= PCI_CONFIG_STATUS_INTERRUPT;
	else
		cfg->data[PCI_CONFIG_STATUS] &= ~PCI_CONFIG_STATUS_INTERRUPT;
}

void pci_config_signal_system_error(struct pci_config *cfg)
{
	cfg->data[PCI_CONFIG_STATUS + 1] |= PCI_CONFIG_STATUS_SERR >> 8;
}

uint16_t pci_config_command(const struct pci_config *cfg)
{
	return (uint16_t)get_le(cfg->data + PCI_CONFIG_COMMAND, 2);
}

bool pci_config_intx_disabled(const struct pci_config *cfg)
{
	return pci_config_command(cfg) & PCI_CONFIG_COMMAND_INTX_DISABLE;
}

bool pci_config_msi_enabled(const struct pci_config *cfg)
{
	return cfg->msi_cap && (msi_ctrl(cfg) & PCI_CONFIG_MSI_FLAGS_ENABLE);
}

unsigned pci_config_msi_nvectors(const struct pci_config *cfg)
{
	unsigned capable, enabled;

	if (!cfg->msi_cap)
		return 0;
	capable = (msi_ctrl(cfg) & PCI_CONFIG_MSI_FLAGS_QMASK) >> 1;
	enabled = (msi_ctrl(cfg) & PCI_CONFIG_MSI_FLAGS_QSIZE) >> 4;
	/* The field is writable beyond what is capable (as in QEMU); never trust it further. */
	return 1u << (enabled < capable ? enabled : capable);
}

uint64_t pci_config_msi_address(const struct pci_config *cfg)
{
	const uint8_t *cap = cfg->data + cfg->msi_cap;
	uint64_t addr;

	if (!cfg->msi_cap)
		return 0;
	addr = get_le(cap + PCI_CONFIG_MSI_ADDRESS_LO, 4) & ~3u;
	if (msi_is_64bit(cfg))
		addr |= (uint64_t)get_le(cap + PCI_CONFIG_MSI_ADDRESS_LO + 4, 4) << 32;
	return addr;
}

uint16_t pci_config_msi_data(const struct pci_config *cfg)
{
	if (!cfg->msi_cap)
		return 0;
	return (uint16_t)get_le(cfg->data + cfg->msi_cap + msi_data_off(msi_is_64bit(cfg)), 2);
}

bool pci_config_msi_vector_masked(const struct pci_config *cfg, unsigned vector)
{
	uint32_t mask;

	if (!cfg->msi_cap || !msi_has_mask(cfg) || vector >= MSI_MAX_VECTORS)
		return false;
	mask = get_le(cfg->data + cfg->msi_cap + msi_mask_off(msi_is_64bit(cfg)), 4);
	return mask & (1u << vector);
}
