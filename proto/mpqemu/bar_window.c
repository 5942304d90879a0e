#include "bar_window.h"

#include <errno.h>
#include <string.h>

#include "log.h"

#define BAR_IO_SPACE	0x1u
#define BAR_MEM_TYPE	0x6u
#define BAR_MEM_TYPE_64 0x4u
#define BAR_IO_MASK	0x3u
#define BAR_MEM_MASK	0xfu
/* PCI_COMMAND: the I/O, memory and bus master enables are its low bits. */
#define CONFIG_COMMAND 0x04u

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

void bar_window_config_written(struct bar_window *w, uint32_t offset, uint32_t len)
{
	if (bar_window_config_overlaps(offset, len) ||
	    (offset < CONFIG_COMMAND + 2 && offset + len > CONFIG_COMMAND))
		bar_window_invalidate(w);
}

int bar_window_refresh(struct bar_window *w, bar_window_read_fn read, void *opaque)
{
	uint32_t regs[BAR_WINDOW_NUM_BARS];

	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++) {
		int r;

		regs[i] = 0;
		if (!w->size[i] && !(i > 0 && w->size[i - 1]))
			continue; /* neither a BAR nor a possible upper half */
		r = read(opaque, BAR_WINDOW_CONFIG_FIRST + 4 * i, &regs[i]);
		if (r < 0) {
			bar_window_invalidate(w);
			return r;
		}
	}
	bar_window_load(w, regs);
	return 0;
}

int bar_window_resolve(struct bar_window *w, uint64_t addr, uint32_t len, bool memory,
		       bar_window_read_fn read, void *opaque, uint64_t *offset, bool *moved)
{
	uint64_t before[BAR_WINDOW_NUM_BARS];
	bool io_before[BAR_WINDOW_NUM_BARS];
	int bar, r;

	*moved = false;
	if (!w->valid) {
		memcpy(before, w->base, sizeof(before));
		memcpy(io_before, w->io, sizeof(io_before));
		r = bar_window_refresh(w, read, opaque);
		if (r < 0)
			return r;
		*moved = memcmp(before, w->base, sizeof(before)) ||
			 memcmp(io_before, w->io, sizeof(io_before));
	}
	bar = bar_window_lookup(w, addr, len, memory, offset);
	return bar < 0 ? -ENXIO : bar;
}

void bar_window_log(const struct bar_window *w, const char *comp)
{
	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++)
		if (w->size[i] && w->base[i])
			log_info(comp, "BAR%u: %s at 0x%llx, %llu bytes", i,
				 w->io[i] ? "I/O" : "memory", (unsigned long long)w->base[i],
				 (unsigned long long)w->size[i]);
}

void bar_window_log_miss(uint64_t *misses, const char *comp, bool memory, bool write, uint32_t size,
			 uint64_t addr)
{
	if ((*misses)++ >= BAR_WINDOW_MISSES_LOGGED)
		return;
	log_warn(comp,
		 "%s %s of %u bytes at 0x%llx hits no BAR of the device%s; answered with all-ones",
		 memory ? "MMIO" : "I/O", write ? "write" : "read", size, (unsigned long long)addr,
		 *misses == BAR_WINDOW_MISSES_LOGGED ? " (not logging further misses)" : "");
}
