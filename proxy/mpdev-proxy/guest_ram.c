/*
 * Guest RAM: QEMU's SYNC_SYSMEM, trimmed to whole pages (sysmem.h), becomes
 * the remote's memory table through the smallest set of removes and adds
 * against what was installed last; unshareable or unsealed RAM is explained.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sysmem.h"
#include "proxy.h"

static bool same_entry(const struct mem_entry *a, const struct mem_entry *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->offset == b->offset &&
	       a->dev == b->dev && a->ino == b->ino;
}

/* Why fd cannot back guest memory for the remote, or NULL if it looks right. */
static const char *memfd_problem(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return "it is not a memfd";
	if (!(seals & F_SEAL_SHRINK))
		return "the memfd is not sealed against shrinking (keep memory-backend-memfd's "
		       "seal=on, the default)";
	return NULL;
}

int on_sync_sysmem(struct proxy *p, struct mpqemu_msg *m)
{
	const struct mpqemu_sync_sysmem *s = &m->data.sync_sysmem;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct mpqemu_ram ram[MPQEMU_MAX_FDS];
	struct mem_entry want[MPQEMU_MAX_FDS];
	int want_fd[MPQEMU_MAX_FDS];
	size_t n_want = 0, n_ram, added = 0, removed = 0, failed = 0;
	uint32_t left_out;

	p->table_seen = true;
	if (m->num_fds == 0 && !p->warned_empty_table) {
		p->warned_empty_table = true;
		log_warn(COMP, MPQEMU_EMPTY_TABLE_WARNING);
	}
	for (int i = 0; i < m->num_fds; i++)
		log_debug(COMP, "guest RAM entry %d: 0x%llx+0x%llx at file offset 0x%llx", i,
			  (unsigned long long)s->gpas[i], (unsigned long long)s->sizes[i],
			  (unsigned long long)s->offsets[i]);
	/* The remote maps whole pages: the whole pages of each entry. */
	n_ram = mpqemu_sysmem_regions(m, page, ram, &left_out);
	for (int i = 0; i < m->num_fds; i++)
		if (left_out & (1u << i))
			log_warn(COMP,
				 "guest RAM entry 0x%llx+0x%llx (file offset 0x%llx) holds no "
				 "whole page: left out",
				 (unsigned long long)s->gpas[i], (unsigned long long)s->sizes[i],
				 (unsigned long long)s->offsets[i]);
	for (size_t k = 0; k < n_ram; k++) {
		struct stat st;

		if (fstat(ram[k].fd, &st) < 0) {
			log_warn(COMP, "guest RAM entry at 0x%llx: fstat: %s",
				 (unsigned long long)s->gpas[ram[k].entry], strerror(errno));
			continue;
		}
		want[n_want] = (struct mem_entry){ .gpa = ram[k].gpa,
						   .size = ram[k].size,
						   .offset = ram[k].fd_offset,
						   .dev = st.st_dev,
						   .ino = st.st_ino };
		want_fd[n_want++] = ram[k].fd;
	}
	/* Removes first, so that a region that moved does not overlap its old self. */
	for (size_t i = 0; i < p->n_mem;) {
		bool keep = false;

		for (size_t k = 0; k < n_want && !keep; k++)
			keep = same_entry(&p->mem[i], &want[k]);
		if (keep) {
			i++;
			continue;
		}
		if (mpdev_mem_remove(p->dev, p->mem[i].gpa, p->mem[i].size) < 0) {
			if (remote_lost(p))
				return -1;
			log_error(COMP, "removing guest RAM 0x%llx+0x%llx from the remote: %s",
				  (unsigned long long)p->mem[i].gpa,
				  (unsigned long long)p->mem[i].size, mpdev_last_error(p->dev));
			failed++;
			i++;
			continue;
		}
		removed++;
		p->mem[i] = p->mem[--p->n_mem];
	}
	for (size_t k = 0; k < n_want; k++) {
		struct mpdev_mem_region r = {
			.gpa = want[k].gpa,
			.size = want[k].size,
			.fd = want_fd[k],
			.fd_offset = want[k].offset,
			.read_only = false,
		};
		const char *problem;
		bool have = false;

		for (size_t i = 0; i < p->n_mem && !have; i++)
			have = same_entry(&p->mem[i], &want[k]);
		if (have)
			continue;
		if (p->n_mem == MPQEMU_MAX_FDS) {
			/* Only when a remove failed: the old entry is still there. */
			log_error(COMP,
				  "guest RAM 0x%llx+0x%llx not installed: the old table could "
				  "not be removed",
				  (unsigned long long)r.gpa, (unsigned long long)r.size);
			failed++;
			continue;
		}
		problem = memfd_problem(r.fd);
		if (mpdev_mem_add(p->dev, &r) < 0) {
			if (remote_lost(p))
				return -1;
			log_error(COMP, "guest RAM 0x%llx+0x%llx refused by the remote: %s%s%s%s",
				  (unsigned long long)r.gpa, (unsigned long long)r.size,
				  mpdev_last_error(p->dev), problem ? " (" : "",
				  problem ? problem : "",
				  problem ? "; " MPQEMU_SHAREABLE_RAM_HINT ")" : "");
			failed++;
			continue;
		}
		added++;
		p->mem[p->n_mem++] = want[k];
	}
	log_msg(added || removed || failed ? MPDEV_LOG_INFO : MPDEV_LOG_DEBUG, COMP,
		"guest memory table: %d entries from QEMU, %zu installed (+%zu -%zu%s)", m->num_fds,
		p->n_mem, added, removed, failed ? ", with failures" : "");
	return 0;
}
