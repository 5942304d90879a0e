#include "sysmem.h"

size_t mpqemu_sysmem_regions(const struct mpqemu_msg *m, uint64_t page,
			     struct mpqemu_ram out[MPQEMU_MAX_FDS], uint32_t *left_out)
{
	const struct mpqemu_sync_sysmem *s = &m->data.sync_sysmem;
	size_t n = 0;

	*left_out = 0;
	for (int i = 0; i < m->num_fds && i < MPQEMU_MAX_FDS; i++) {
		uint64_t gpa = s->gpas[i], end = gpa + s->sizes[i], off = (uint64_t)s->offsets[i];
		uint64_t start = (gpa + page - 1) & ~(page - 1), stop = end & ~(page - 1);

		/* A page of guest memory must be a page of the file too. */
		if (((gpa ^ off) & (page - 1)) || start + page - 1 < start || stop <= start) {
			*left_out |= 1u << i;
			continue;
		}
		out[n++] = (struct mpqemu_ram){ .gpa = start,
						.size = stop - start,
						.fd_offset = off + (start - gpa),
						.fd = m->fds[i],
						.entry = i };
	}
	return n;
}
