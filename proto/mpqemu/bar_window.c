#include "bar_window.h"

#include <string.h>

#define BAR_IO_SPACE	0x1u
#define BAR_MEM_TYPE	0x6u
#define BAR_MEM_TYPE_64 0x4u
#define BAR_IO_MASK	0x3u
#define BAR_MEM_MASK	0xfu

void bar_window_init(struct bar_window *w, const uint64_t size[BAR_WINDOW_NUM_BARS])
{
	memset(w, 0, sizeof(*w));
	memcpy(w->size, size, sizeof(w->size));
}

void bar_window_invalidate(struct bar_window *w)
{
	w->valid = false;
}

void bar_window_load(struct bar_window *w, const uint32_t regs[BAR_WINDOW_NUM_BARS])
{
	memset(w->io, 0, sizeof(w->io));
	memset(w->base, 0, sizeof(w->base));
	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++) {
		uint32_t r = regs[i];

		if (!w->size[i])
			continue;
		if (r & BAR_IO_SPACE) {
			w->io[i] = true;
			w->base[i] = r & ~BAR_IO_MASK;
		} else if ((r & BAR_MEM_TYPE) == BAR_MEM_TYPE_64 && i + 1 < BAR_WINDOW_NUM_BARS) {
			w->base[i] = (r & ~BAR_MEM_MASK) | (uint64_t)regs[i + 1] << 32;
			i++; /* the upper half is no BAR of its own */
		} else {
			w->base[i] = r & ~BAR_MEM_MASK;
		}
	}
	w->valid = true;
}

bool bar_window_config_overlaps(uint32_t offset, uint32_t len)
{
	return offset < BAR_WINDOW_CONFIG_END && offset + len > BAR_WINDOW_CONFIG_FIRST;
}

int bar_window_lookup(const struct bar_window *w, uint64_t addr, uint32_t len, bool memory,
		      uint64_t *offset)
{
	if (!w->valid || !len || addr + len - 1 < addr)
		return -1;
	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++) {
		uint64_t base = w->base[i], size = w->size[i];

		/* Base 0 is "not placed": QEMU maps no BAR there either. */
		if (!size || !base || w->io[i] == memory)
			continue;
		if (addr >= base && addr - base < size && len <= size - (addr - base)) {
			*offset = addr - base;
			return (int)i;
		}
	}
	return -1;
}
