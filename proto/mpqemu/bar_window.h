/*
 * Where the guest put the device's BARs. QEMU's x-pci-proxy-dev sends BAR
 * accesses with absolute addresses (the BAR's guest address plus the offset),
 * so the proxy finds the BAR from the bases the guest programmed into config
 * space, and the BAR's kind (memory or I/O) from QEMU's flag.
 */
#ifndef MPDEV_BAR_WINDOW_H
#define MPDEV_BAR_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define BAR_WINDOW_NUM_BARS	6
#define BAR_WINDOW_CONFIG_FIRST 0x10u /* BAR0 */
#define BAR_WINDOW_CONFIG_END	0x28u /* one past BAR5 */

struct bar_window {
	/* From the device info: 0 where the device has no BAR (or an upper half). */
	uint64_t size[BAR_WINDOW_NUM_BARS];
	/* From config space, decoded by bar_window_load(). */
	bool valid;
	bool io[BAR_WINDOW_NUM_BARS];
	uint64_t base[BAR_WINDOW_NUM_BARS]; /* 0: not placed */
};

/* A window that knows the BAR sizes, with no bases loaded yet. */
void bar_window_init(struct bar_window *w, const uint64_t size[BAR_WINDOW_NUM_BARS]);

/* Forget the bases (after a config write to a BAR register, or a reset). */
void bar_window_invalidate(struct bar_window *w);

/*
 * Decodes the six BAR registers as read from config space: bit 0 tells I/O
 * from memory; a memory BAR of type 64-bit takes the next register as its
 * upper half. A BAR whose size is 0 in the device info is ignored.
 */
void bar_window_load(struct bar_window *w, const uint32_t regs[BAR_WINDOW_NUM_BARS]);

/* True if a config access [offset, offset + len) touches a BAR register. */
bool bar_window_config_overlaps(uint32_t offset, uint32_t len);

/*
 * A config write [offset, offset + len) went to the device: one that touches
 * a BAR register or the command register (memory / I/O decoding on or off)
 * makes the bases be read again before the next BAR access.
 */
void bar_window_config_written(struct bar_window *w, uint32_t offset, uint32_t len);

/* Reads the 4-byte config register at offset (a BAR register) into *val: 0 or a negative errno. */
typedef int (*bar_window_read_fn)(void *opaque, uint32_t offset, uint32_t *val);

/*
 * Reads the BAR registers that can matter (those of a BAR in the device
 * info, and the register after each, a possible upper half) through read
 * and loads them. Returns 0, or read's error with the window left invalid.
 */
int bar_window_refresh(struct bar_window *w, bar_window_read_fn read, void *opaque);

/*
 * What both sides of QEMU's BAR_READ/BAR_WRITE do with its absolute address:
 * refreshes the bases if a config write (or a reset) made them stale, then
 * looks the access up. Returns the BAR index with *offset set, -ENXIO when
 * no BAR of that kind holds [addr, addr + len), or read's error. *moved says
 * whether the bases were read again and a BAR is somewhere else now (to log
 * where the BARs are; the bases are read again after every command register
 * write, which rarely moves anything).
 */
int bar_window_resolve(struct bar_window *w, uint64_t addr, uint32_t len, bool memory,
		       bar_window_read_fn read, void *opaque, uint64_t *offset, bool *moved);

/* Logs the placed BARs ("BAR0: memory at 0x..., N bytes") at info level under comp. */
void bar_window_log(const struct bar_window *w, const char *comp);

/* The first BAR_WINDOW_MISSES_LOGGED accesses that hit no BAR are logged; *misses counts them all.
 */
#define BAR_WINDOW_MISSES_LOGGED 10u
void bar_window_log_miss(uint64_t *misses, const char *comp, bool memory, bool write, uint32_t size,
			 uint64_t addr);

/*
 * The BAR that holds [addr, addr + len) entirely, of the kind asked for
 * (memory or I/O), and the offset into it. Returns the BAR index, or -1 if
 * no placed BAR holds the access (the window must be valid).
 */
int bar_window_lookup(const struct bar_window *w, uint64_t addr, uint32_t len, bool memory,
		      uint64_t *offset);

#endif
