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

/*
 * What both sides tell a user whose QEMU cannot share its RAM: QEMU hands
 * the device its RAM as descriptors, and only a memfd backend has them.
 */
#define MPQEMU_SHAREABLE_RAM_HINT                                                                  \
	"start QEMU with -object memory-backend-memfd,id=RAM,size=<RAM size>,share=on "            \
	"-machine memory-backend=RAM (and -m equal to that size)"
/* QEMU sends its table while it realizes the device: a first message of another kind means it
 * could not. */
#define MPQEMU_NO_TABLE_WARNING                                                                    \
	"QEMU sent no guest memory table (SYNC_SYSMEM) before other messages: its guest RAM is "   \
	"not shareable, so the device cannot reach guest memory (DMA); " MPQEMU_SHAREABLE_RAM_HINT
#define MPQEMU_EMPTY_TABLE_WARNING                                                                 \
	"QEMU sent a memory table without guest RAM: the device cannot reach guest memory "        \
	"(DMA); " MPQEMU_SHAREABLE_RAM_HINT

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
