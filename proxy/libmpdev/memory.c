/*
 * libmpdev's memory table: set, add, remove, with a kept copy for replay.
 * The kept copy changes only when the remote accepted a change, so a call
 * that died with its connection is simply run again after the replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "fdident.h"

/*
 * Kept regions share one duplicate per backing file: a 1,000-region table
 * carved from one memfd costs one descriptor, not 1,000.
 */
static bool fd_shared(const struct mpdev_mem_region *v, size_t n, size_t i)
{
	for (size_t k = 0; k < n; k++)
		if (k != i && v[k].fd == v[i].fd)
			return true;
	return false;
}

/* Closes each distinct fd of v once. */
static void close_table(struct mpdev_mem_region *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < i && v[k].fd != v[i].fd; k++)
			;
		if (k == i)
			close(v[i].fd);
	}
}

void client_mem_forget(struct mpdev *dev)
{
	close_table(dev->mem, dev->n_mem);
	free(dev->mem);
	dev->mem = NULL;
	dev->n_mem = 0;
}

/* A copy of v with our own duplicates, one per distinct fd; NULL (and errno) on failure. */
static struct mpdev_mem_region *dup_table(const struct mpdev_mem_region *v, size_t n)
{
	struct mpdev_mem_region *copy = calloc(n ? n : 1, sizeof(*copy));

	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k;

		copy[i] = v[i];
		for (k = 0; k < i && v[k].fd != v[i].fd; k++)
			;
		copy[i].fd = k < i ? copy[k].fd : fcntl(v[i].fd, F_DUPFD_CLOEXEC, 3);
		if (copy[i].fd < 0) {
			int e = errno;

			close_table(copy, i);
			free(copy);
			errno = e;
			return NULL;
		}
	}
	return copy;
}

/*
 * A kept fd that is the same open file as fd, or -1. Same open file, not
 * same inode: a read-only descriptor of the memfd must not stand in for a
 * read-write one.
 */
static int kept_fd_for(const struct mpdev *dev, int fd)
{
	for (size_t i = 0; i < dev->n_mem; i++)
		if (fd_same_file(fd, dev->mem[i].fd))
			return dev->mem[i].fd;
	return -1;
}

static void fill_region(Mpdev__MemRegion *out, const struct mpdev_mem_region *r, uint32_t fd_index)
{
	mpdev__mem_region__init(out);
	out->gpa = r->gpa;
	out->size = r->size;
	out->fd_offset = r->fd_offset;
	out->read_only = r->read_only;
	out->fd_index = fd_index;
}

/*
 * Sends regions [first, first + count) as one MemTableSet chunk. Regions that
 * share an fd number share one descriptor in the packet.
 */
static int send_chunk(struct mpdev *dev, const struct mpdev_mem_region *v, size_t first,
		      size_t count, bool more)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MemTableSet set = MPDEV__MEM_TABLE_SET__INIT;
	Mpdev__MemRegion *regions = calloc(count ? count : 1, sizeof(*regions));
	Mpdev__MemRegion **ptrs = calloc(count ? count : 1, sizeof(*ptrs));
	int fds[MPDEV_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	struct wire_msg reply;
	int r;

	if (!regions || !ptrs) {
		r = mpdev_error_set(&dev->err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		size_t k;

		for (k = 0; k < nfds && fds[k] != v[first + i].fd; k++)
			;
		if (k == nfds)
			fds[nfds++] = v[first + i].fd;
		fill_region(&regions[i], &v[first + i], (uint32_t)k);
		ptrs[i] = &regions[i];
	}
	set.n_regions = count;
	set.regions = ptrs;
	set.more = more;
	req.body_case = MPDEV__ENVELOPE__BODY_MEM_TABLE_SET;
	req.mem_table_set = &set;
	r = client_request(dev, &req, fds, nfds, &reply);
	if (r == 0)
		wire_msg_release(&reply);
out:
	free(regions);
	free(ptrs);
	return r;
}

/* How many regions from first fit in one packet: at most the fd limit of distinct fds. */
static size_t chunk_len(const struct mpdev_mem_region *v, size_t first, size_t n)
{
	int seen[MPDEV_MAX_FDS_PER_MSG];
	size_t nseen = 0, i;

	/* Encoded regions are ~30 bytes: 1024 of them stay far below the packet limit. */
	for (i = first; i < n; i++) {
		size_t k;

		for (k = 0; k < nseen && seen[k] != v[i].fd; k++)
			;
		if (k == nseen) {
			if (nseen == MPDEV_MAX_FDS_PER_MSG)
				break;
			seen[nseen++] = v[i].fd;
		}
	}
	return i - first;
}

static int require_feature(struct mpdev *dev)
{
	if (dev->features & MPDEV_FEATURE_MEMORY_TABLE)
		return 0;
	return mpdev_error_set(&dev->err, ENOTSUP, "the remote does not offer a memory table");
}

static int set_table_once(struct mpdev *dev, const struct mpdev_mem_region *regions, size_t n)
{
	struct mpdev_mem_region *copy;
	size_t first = 0;
	int r;

	if ((r = require_feature(dev)) < 0)
		return r;
	mpdev_error_clear(&dev->err);
	copy = dup_table(regions, n);
	if (!copy)
		return mpdev_error_set(&dev->err, errno, "duplicating region fds: %s",
				       strerror(errno));
	do {
		size_t len = chunk_len(regions, first, n);

		r = send_chunk(dev, regions, first, len, first + len < n);
		first += len;
	} while (r == 0 && first < n);
	if (r < 0) {
		/* The remote dropped the half-sent table and kept its old one: so do we. */
		close_table(copy, n);
		free(copy);
		return r;
	}
	client_mem_forget(dev);
	dev->mem = copy;
	dev->n_mem = n;
	return 0;
}

static int add_once(struct mpdev *dev, const struct mpdev_mem_region *region)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MemRegionAdd add = MPDEV__MEM_REGION_ADD__INIT;
	Mpdev__MemRegion reg;
	struct mpdev_mem_region *copy, *grown;
	struct wire_msg reply;
	int r;

	if ((r = require_feature(dev)) < 0)
		return r;
	copy = dup_table(region, 1);
	if (!copy)
		return mpdev_error_set(&dev->err, errno, "duplicating the region fd: %s",
				       strerror(errno));
	fill_region(&reg, region, 0);
	add.region = &reg;
	req.body_case = MPDEV__ENVELOPE__BODY_MEM_REGION_ADD;
	req.mem_region_add = &add;
	r = client_request(dev, &req, &region->fd, 1, &reply);
	if (r == 0) {
		wire_msg_release(&reply);
		grown = realloc(dev->mem, (dev->n_mem + 1) * sizeof(*grown));
		if (grown) {
			int shared;

			/* realloc may have moved the table: adopt it before reading it. */
			dev->mem = grown;
			shared = kept_fd_for(dev, copy[0].fd);
			if (shared >= 0) {
				close(copy[0].fd);
				copy[0].fd = shared;
			}
			dev->mem[dev->n_mem++] = copy[0];
			free(copy);
			return 0;
		}
		/* The remote has it; we only lose the ability to replay it. */
		r = mpdev_error_set(&dev->err, ENOMEM, "region added, but cannot be remembered");
	}
	close(copy[0].fd);
	free(copy);
	return r;
}

static int remove_once(struct mpdev *dev, uint64_t gpa, uint64_t size)
{
	Mpdev__Envelope req = MPDEV__ENVELOPE__INIT;
	Mpdev__MemRegionRemove rm = MPDEV__MEM_REGION_REMOVE__INIT;
	struct wire_msg reply;
	int r;

	if ((r = require_feature(dev)) < 0)
		return r;
	rm.gpa = gpa;
	rm.size = size;
	req.body_case = MPDEV__ENVELOPE__BODY_MEM_REGION_REMOVE;
	req.mem_region_remove = &rm;
	r = client_request(dev, &req, NULL, 0, &reply);
	if (r < 0)
		return r;
	wire_msg_release(&reply);
	for (size_t i = 0; i < dev->n_mem; i++) {
		if (dev->mem[i].gpa == gpa && dev->mem[i].size == size) {
			if (!fd_shared(dev->mem, dev->n_mem, i))
				close(dev->mem[i].fd);
			dev->mem[i] = dev->mem[--dev->n_mem];
			break;
		}
	}
	return 0;
}

int mpdev_mem_set_table(struct mpdev *dev, const struct mpdev_mem_region *regions, size_t n)
{
	int r, tries = 0;

	do
		r = set_table_once(dev, regions, n);
	while (client_retry(dev, &r, &tries));
	return r;
}

int mpdev_mem_add(struct mpdev *dev, const struct mpdev_mem_region *region)
{
	int r, tries = 0;

	do
		r = add_once(dev, region);
	while (client_retry(dev, &r, &tries));
	return r;
}

int mpdev_mem_remove(struct mpdev *dev, uint64_t gpa, uint64_t size)
{
	int r, tries = 0;

	do
		r = remove_once(dev, gpa, size);
	while (client_retry(dev, &r, &tries));
	return r;
}

int client_mem_replay(struct mpdev *dev)
{
	size_t first = 0;
	int r = 0;

	/* A fresh remote has an empty table: one MemTableSet (in chunks) brings ours back. */
	while (r == 0 && first < dev->n_mem) {
		size_t len = chunk_len(dev->mem, first, dev->n_mem);

		r = send_chunk(dev, dev->mem, first, len, first + len < dev->n_mem);
		first += len;
	}
	if (r < 0)
		client_error_wrap(dev, r, "memory table (%zu regions)", dev->n_mem);
	return r;
}

size_t mpdev_mem_get_table(const struct mpdev *dev, struct mpdev_mem_region *out, size_t max)
{
	for (size_t i = 0; i < dev->n_mem && i < max; i++)
		out[i] = dev->mem[i];
	return dev->n_mem;
}
