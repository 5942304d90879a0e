/*
 * QEMU's SYNC_SYSMEM as a list of guest RAM regions, the same for both
 * sides that receive it (mpdev-remote's mpqemu face, mpdev-proxy).
 *
 * QEMU sends the whole table of its shareable RAM sections on every memory
 * commit, each entry [gpa, gpa + size) at offset of its fd. The remote maps
 * whole pages only, so each entry is trimmed to the whole pages it holds,
 * and an entry that holds none (or whose address and file offset disagree
 * within a page, so that no page of it can be mapped) is left out. The
 * message has been validated (mpqemu_validate): entries do not wrap and
 * their offsets are file offsets.
 */
#ifndef MPDEV_MPQEMU_SYSMEM_H
#define MPDEV_MPQEMU_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

#include "mpqemu.h"

struct mpqemu_ram {
	uint64_t gpa, size, fd_offset; /* page-aligned, size > 0 */
	int fd;			       /* the message's: borrowed */
	int entry;		       /* its index in the message */
};

/*
 * Fills out[0..n) with the whole pages (of page bytes, a power of two) of
 * each entry of m, a validated SYNC_SYSMEM, and returns n. Bit i of
 * *left_out is set for each entry i that holds no whole page.
 */
size_t mpqemu_sysmem_regions(const struct mpqemu_msg *m, uint64_t page,
			     struct mpqemu_ram out[MPQEMU_MAX_FDS], uint32_t *left_out);

#endif
