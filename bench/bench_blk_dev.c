/*
 * The device side of bench_blk: a driver in the bench process, as a guest's
 * virtio-blk driver over virtio-pci would be, on an mpdev-remote child
 * serving --device virtio-blk on the backing file. Guest RAM is a sealed
 * memfd registered as the memory table; the rings and every request's
 * header, data and status live there.
 *
 * Every write carries a pattern naming its block and a generation, so that
 * reads can be checked against what the block must hold, and a sample of
 * the written blocks is read back afterwards through the device and from
 * the file: a run proves the device read and wrote what was asked, not only
 * that it answered.
 */
#include "bench_blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "libmpdev.h"
#include "spawn.h"
#include "virtio_drv.h"

#define MEM_GPA	      0x100000000ull /* guest RAM: where a VMM puts RAM above 4 GiB */
#define MEM_SIZE      (4u << 20)
#define MAX_QD	      64
#define QUEUE_SIZE    256  /* or what the device allows, if less */
#define REQ_MS	      5000 /* any one request */
#define STOP_MS	      5000
#define GEN_UNKNOWN   UINT32_MAX
#define SAMPLE_MAX    4096
#define WORDS	      (BLK_BS / 8)
#define AVAIL_NO_INTR 1 /* VRING_AVAIL_F_NO_INTERRUPT */

/* virtio-blk (virtio spec 1.2 §5.2.6). */
#define VIRTIO_BLK_T_IN	 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_S_OK	 0

struct blk_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct slot {
	struct blk_hdr *hdr;
	uint64_t *data;
	volatile uint8_t *status;
	uint64_t hdr_gpa, data_gpa, status_gpa;
	uint32_t block, gen;
	bool write;
	uint64_t t0;
};

struct blk_dev {
	pid_t pid;
	struct mpdev *dev;
	int memfd, irq_fd, doorbell_fd, file_fd;
	uint8_t *mem;
	struct vdrv drv;
	bool drv_up;
	char kick[200];
	uint64_t nblocks;
	uint16_t qsize;
	struct slot slots[MAX_QD];
	int16_t *slot_of_head;
	uint32_t *gen;	   /* per block: the generation it holds, GEN_UNKNOWN */
	uint8_t *inflight; /* per block: a write is outstanding (no two at once) */
	uint32_t next_gen;
	uint64_t rng;
	/* A uniform sample of the blocks the last write run wrote (reservoir). */
	uint32_t sample[SAMPLE_MAX];
	unsigned n_sample;
	uint64_t n_written;
	uint32_t *lat; /* ns per request of the current run */
	size_t n_lat, cap_lat;
	uint64_t *check; /* a block's expected contents */
};

static uint64_t next_rand(struct blk_dev *d)
{
	/* xorshift64*: uniform enough for offsets, and no syscall or lock per request. */
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545f4914f6cdd1dull;
}

/* Word i of block's pattern of generation gen; word 0 reads as block << 32 | gen. */
static inline uint64_t pattern_word(uint32_t block, uint32_t gen, unsigned i)
{
	return ((uint64_t)block << 32 | gen) ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
}

static void pattern(uint64_t *buf, uint32_t block, uint32_t gen)
{
	for (unsigned i = 0; i < WORDS; i++)
		buf[i] = htole64(pattern_word(block, gen, i));
}

/* The first word of buf that is not block's pattern of gen, or -1. */
static int pattern_mismatch(const uint64_t *buf, uint32_t block, uint32_t gen)
{
	for (unsigned i = 0; i < WORDS; i++)
		if (le64toh(buf[i]) != pattern_word(block, gen, i))
			return (int)i;
	return -1;
}

int blk_fill_file(const char *file, uint64_t size, char *why, size_t why_len)
{
	const size_t chunk = 1u << 20;
	uint64_t *buf = aligned_alloc(BLK_BS, chunk);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;

	if (!buf || fd < 0) {
		r = blk_fail(why, why_len, buf ? -errno : -ENOMEM, "%s: %s", file,
			 buf ? strerror(errno) : "out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

		for (size_t b = 0; b < n / BLK_BS; b++)
			pattern(buf + b * WORDS, (uint32_t)(off / BLK_BS + b), 0);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			r = blk_fail(why, why_len, -EIO, "writing %s: %s", file, strerror(errno));
			goto out;
		}
	}
	if (fsync(fd) < 0)
		r = blk_fail(why, why_len, -errno, "fsync %s: %s", file, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* ---- bring-up --------------------------------------------------------------------------- */

static int drv_fail(struct blk_dev *d, char *why, size_t len, const char *what, int r)
{
	return blk_fail(why, len, r < 0 ? r : -EIO, "%s: %s", what, vdrv_error(&d->drv));
}

/* A doorbell eventfd for queue 0's notify address, if the remote offers one. */
static void find_doorbell(struct blk_dev *d)
{
	snprintf(d->kick, sizeof(d->kick),
		 "posted BAR write (this libmpdev has no doorbells: mpdev_get_ioeventfds)");
#ifdef MPDEV_FEATURE_IOEVENTFDS
	struct mpdev_ioeventfd io[64];
	uint64_t want = d->drv.notify.offset + d->drv.q[0].notify_off;
	unsigned n = 0;
	int r;

	if (!(mpdev_features(d->dev) & MPDEV_FEATURE_IOEVENTFDS)) {
		snprintf(d->kick, sizeof(d->kick),
			 "posted BAR write (the remote offers no doorbells)");
		return;
	}
	r = mpdev_get_ioeventfds(d->dev, MPDEV_REGION_BAR0 + d->drv.notify.bar, io, 64, &n);
	if (r < 0) {
		snprintf(d->kick, sizeof(d->kick), "posted BAR write (GetIoEventfds: %s)",
			 mpdev_last_error(d->dev));
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		/* virtio-pci's notify: the queue index, 2 bytes, at the queue's notify address. */
		if (d->doorbell_fd < 0 && io[i].offset == want && io[i].size == 2 &&
		    (!io[i].datamatch || io[i].data == 0)) {
			d->doorbell_fd = io[i].fd;
			continue;
		}
		close(io[i].fd);
	}
	if (d->doorbell_fd >= 0) {
		vdrv_queue_set_doorbell(&d->drv, 0, d->doorbell_fd);
		snprintf(d->kick, sizeof(d->kick), "doorbell eventfd (GetIoEventfds, BAR%u+0x%llx)",
			 d->drv.notify.bar, (unsigned long long)want);
	} else {
		snprintf(d->kick, sizeof(d->kick),
			 "posted BAR write (%u doorbells offered, none at queue 0's notify "
			 "address)",
			 n);
	}
#endif
}

static int setup_slots(struct blk_dev *d, char *why, size_t len)
{
	for (int i = 0; i < MAX_QD; i++) {
		struct slot *s = &d->slots[i];
		uint8_t *small;
		uint64_t gpa;

		/* Data page-aligned, as O_DIRECT on the backing file wants it in the remote too. */
		s->data = vdrv_alloc(&d->drv, BLK_BS, BLK_BS, &s->data_gpa);
		small = vdrv_alloc(&d->drv, 64, 64, &gpa);
		if (!s->data || !small)
			return blk_fail(why, len, -ENOMEM, "guest RAM of %u MiB is too small",
				    MEM_SIZE >> 20);
		s->hdr = (struct blk_hdr *)small;
		s->hdr_gpa = gpa;
		s->status = small + sizeof(struct blk_hdr);
		s->status_gpa = gpa + sizeof(struct blk_hdr);
	}
	return 0;
}

static int bring_up(struct blk_dev *d, uint64_t size, char *why, size_t len)
{
	struct mpdev_mem_region reg = { .gpa = MEM_GPA, .size = MEM_SIZE };
	uint64_t feat, want, cap;
	uint32_t max;
	int r;

	d->memfd = memfd_create("bench-blk-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->memfd < 0 || ftruncate(d->memfd, MEM_SIZE) < 0 ||
	    fcntl(d->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return blk_fail(why, len, -errno, "guest RAM memfd: %s", strerror(errno));
	d->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return blk_fail(why, len, -errno, "mmap guest RAM: %s", strerror(errno));
	}
	reg.fd = d->memfd;
	r = mpdev_mem_set_table(d->dev, &reg, 1);
	if (r < 0)
		return blk_fail(why, len, r, "memory table: %s", mpdev_last_error(d->dev));
	r = vdrv_init(&d->drv, d->dev, d->mem, MEM_GPA, MEM_SIZE);
	if (r < 0)
		return drv_fail(d, why, len, "virtio-pci capabilities", r);
	d->drv_up = true;
	if ((r = vdrv_reset(&d->drv)) < 0)
		return drv_fail(d, why, len, "reset", r);
	if ((r = vdrv_device_features(&d->drv, &feat)) < 0)
		return drv_fail(d, why, len, "device features", r);
	if (!(feat & VDRV_F(VIRTIO_F_VERSION_1)))
		return blk_fail(why, len, -ENOTSUP, "the device does not offer VIRTIO_F_VERSION_1");
	/* What Linux's virtio_blk takes of these; no blk feature is needed for 4 KiB I/O. */
	want = VDRV_F(VIRTIO_F_VERSION_1) | (feat & VDRV_F(VIRTIO_F_RING_EVENT_IDX));
	if ((r = vdrv_negotiate(&d->drv, want)) < 0)
		return drv_fail(d, why, len, "feature negotiation", r);
	if ((r = vdrv_config_read64(&d->drv, 0, &cap)) < 0)
		return drv_fail(d, why, len, "capacity", r);
	if (cap * 512 < size)
		return blk_fail(why, len, -EIO, "the device has %llu sectors, the file %llu bytes",
			    (unsigned long long)cap, (unsigned long long)size);
	d->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->irq_fd < 0)
		return blk_fail(why, len, -errno, "eventfd: %s", strerror(errno));
	if ((r = vdrv_msix_enable(&d->drv, &d->irq_fd, 1)) < 0)
		return drv_fail(d, why, len, "MSI-X", r);
	if ((r = vdrv_common_write(&d->drv, VIRTIO_COMMON_Q_SELECT, 2, 0)) < 0 ||
	    (r = vdrv_common_read(&d->drv, VIRTIO_COMMON_Q_SIZE, 2, &max)) < 0)
		return drv_fail(d, why, len, "queue 0's size", r);
	d->qsize = max < QUEUE_SIZE ? (uint16_t)max : QUEUE_SIZE;
	if ((r = vdrv_queue_setup(&d->drv, 0, d->qsize, 0, d->irq_fd)) < 0)
		return drv_fail(d, why, len, "queue 0", r);
	if ((r = setup_slots(d, why, len)) < 0)
		return r;
	find_doorbell(d);
	if ((r = vdrv_driver_ok(&d->drv)) < 0)
		return drv_fail(d, why, len, "DRIVER_OK", r);
	return 0;
}

int blk_dev_open(const char *bin, const char *file, uint64_t size, struct blk_dev **out, char *why,
		 size_t why_len)
{
	char device[4200];
	const char *args[] = { "--device", device, NULL };
	struct blk_dev *d = calloc(1, sizeof(*d));
	int sock, r;

	*out = NULL;
	if (!d)
		return blk_fail(why, why_len, -ENOMEM, "out of memory");
	d->pid = -1;
	d->memfd = d->irq_fd = d->doorbell_fd = -1;
	d->nblocks = size / BLK_BS;
	d->rng = 0x9e3779b97f4a7c15ull ^ bench_now_ns();
	d->next_gen = 1;
	d->slot_of_head = calloc(65536, sizeof(*d->slot_of_head));
	d->gen = calloc(d->nblocks, sizeof(*d->gen));
	d->inflight = calloc(d->nblocks, 1);
	d->check = aligned_alloc(BLK_BS, BLK_BS);
	if (!d->slot_of_head || !d->gen || !d->inflight || !d->check) {
		blk_dev_close(d);
		return blk_fail(why, why_len, -ENOMEM, "out of memory");
	}
	/* blk_fill_file wrote generation 0 everywhere. */
	memset(d->gen, 0, d->nblocks * sizeof(*d->gen));
	d->file_fd = open(file, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (d->file_fd < 0) {
		r = blk_fail(why, why_len, -errno, "%s: %s", file, strerror(errno));
		blk_dev_close(d);
		return r;
	}
	snprintf(device, sizeof(device), "virtio-blk:%s,direct=on", file);
	r = spawn_remote(bin, args, &d->pid, &sock);
	if (r < 0) {
		blk_dev_close(d);
		return blk_fail(why, why_len, r, "cannot start %s: %s", bin, strerror(-r));
	}
	/* The handle owns sock from here on, also when connecting fails. */
	r = mpdev_connect_fd(sock, NULL, &d->dev);
	if (r < 0) {
		blk_fail(why, why_len, r, "connect to %s --device %s: %s", bin, device,
		     mpdev_connect_error());
		blk_dev_close(d);
		return r;
	}
	r = bring_up(d, size, why, why_len);
	if (r < 0) {
		blk_dev_close(d);
		return r;
	}
	*out = d;
	return 0;
}

void blk_dev_use_doorbell(struct blk_dev *d, bool on)
{
	vdrv_queue_set_doorbell(&d->drv, 0, on ? d->doorbell_fd : -1);
}

const char *blk_dev_kick(const struct blk_dev *d)
{
	return d->kick;
}

int blk_dev_close(struct blk_dev *d)
{
	int st = 0, r = 0;

	if (!d)
		return 0;
	if (d->drv_up)
		vdrv_fini(&d->drv);
	mpdev_close(d->dev);
	if (d->pid > 0 &&
	    (spawn_wait(d->pid, STOP_MS, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
		r = -EIO;
	if (d->mem)
		munmap(d->mem, MEM_SIZE);
	if (d->memfd >= 0)
		close(d->memfd);
	if (d->irq_fd >= 0)
		close(d->irq_fd);
	if (d->doorbell_fd >= 0)
		close(d->doorbell_fd);
	if (d->file_fd >= 0)
		close(d->file_fd);
	free(d->slot_of_head);
	free(d->gen);
	free(d->inflight);
	free(d->check);
	free(d->lat);
	free(d);
	return r;
}

void blk_dev_forget(struct blk_dev *d)
{
	for (uint64_t b = 0; b < d->nblocks; b++)
		d->gen[b] = GEN_UNKNOWN;
}

/* ---- requests --------------------------------------------------------------------------- */

static int submit(struct blk_dev *d, int i, uint32_t block, bool write, char *why, size_t len)
{
	struct slot *s = &d->slots[i];
	struct vdrv_buf out[2], in[2];
	int head;

	s->block = block;
	s->write = write;
	if (write) {
		s->gen = d->next_gen++;
		if (d->next_gen == GEN_UNKNOWN)
			d->next_gen = 1;
		pattern(s->data, block, s->gen);
		d->inflight[block] = 1;
	}
	*s->status = 0xff; /* no status yet: a completion that leaves it so is wrong */
	s->t0 = bench_now_ns();
	s->hdr->type = htole32(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	s->hdr->ioprio = 0;
	s->hdr->sector = htole64((uint64_t)block * (BLK_BS / 512));
	out[0] = (struct vdrv_buf){ s->hdr_gpa, sizeof(struct blk_hdr) };
	if (write) {
		out[1] = (struct vdrv_buf){ s->data_gpa, BLK_BS };
		in[0] = (struct vdrv_buf){ s->status_gpa, 1 };
		head = vdrv_submit(&d->drv, 0, out, 2, in, 1, false);
	} else {
		in[0] = (struct vdrv_buf){ s->data_gpa, BLK_BS };
		in[1] = (struct vdrv_buf){ s->status_gpa, 1 };
		head = vdrv_submit(&d->drv, 0, out, 1, in, 2, false);
	}
	if (head < 0)
		return drv_fail(d, why, len, "submit", head);
	d->slot_of_head[head] = (int16_t)i;
	return 0;
}

/* A block for a new request: for a write, one that has no write outstanding. */
static uint32_t pick_block(struct blk_dev *d, bool write)
{
	uint32_t b;

	do
		b = (uint32_t)(next_rand(d) % d->nblocks);
	while (write && d->inflight[b]);
	return b;
}

static int kick(struct blk_dev *d, char *why, size_t len)
{
	int r = vdrv_kick(&d->drv, 0);

	return r < 0 ? drv_fail(d, why, len, "kick", r) : 0;
}

/*
 * Until the device has used something: on the MSI-X eventfd, as a guest
 * takes its interrupt, watching the socket too for what the remote sends
 * unasked (a failed posted write); or, with poll, spinning on the ring.
 */
static int wait_used(struct blk_dev *d, bool poll_ring, char *why, size_t len)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)REQ_MS * 1000000, cnt;
	unsigned spins = 0;

	while (vdrv_used_pending(&d->drv, 0) == 0) {
		struct pollfd p[2] = { { .fd = d->irq_fd, .events = POLLIN },
				       { .fd = mpdev_fd(d->dev), .events = POLLIN } };
		uint64_t now;
		int r;

		if (poll_ring) {
			if ((++spins & 1023) == 0 && bench_now_ns() > deadline)
				return blk_fail(why, len, -ETIMEDOUT,
					    "no request completed within %d ms", REQ_MS);
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		now = bench_now_ns();
		if (now >= deadline)
			return blk_fail(why, len, -ETIMEDOUT, "no request completed within %d ms",
				    REQ_MS);
		r = poll(p, 2, (int)((deadline - now) / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			return blk_fail(why, len, -errno, "poll: %s", strerror(errno));
		if (r > 0 && (p[0].revents & POLLIN))
			(void)!read(d->irq_fd, &cnt, sizeof(cnt));
		if (r > 0 && p[1].revents && mpdev_process_events(d->dev) < 0)
			return blk_fail(why, len, -EIO, "the remote: %s", mpdev_last_error(d->dev));
	}
	return 0;
}

/* Interrupts off while polling (and back on after), as a polling guest driver does. */
static void suppress_interrupts(struct blk_dev *d, bool off)
{
	struct vdrv_queue *q = &d->drv.q[0];
	uint64_t cnt;

	__atomic_store_n(&q->avail[0], (uint16_t)(off ? AVAIL_NO_INTR : 0), __ATOMIC_RELEASE);
	/*
	 * With event index the flag is ignored: a used_event already passed
	 * asks for nothing until the index wraps; back on, the next entry.
	 */
	if (d->drv.event_idx)
		__atomic_store_n(&q->avail[2 + q->size], (uint16_t)(q->last_used - (off ? 1 : 0)),
				 __ATOMIC_RELEASE);
	if (!off)
		(void)!read(d->irq_fd, &cnt, sizeof(cnt)); /* non-blocking: what came meanwhile */
}

/* Takes one used entry (the device has published it) and checks it. *slot gets its slot. */
static int take(struct blk_dev *d, int *slot, char *why, size_t len)
{
	struct vdrv_used u;
	struct slot *s;
	int r = vdrv_wait_used(&d->drv, 0, REQ_MS, &u), i;

	if (r < 0)
		return drv_fail(d, why, len, "used ring", r);
	i = d->slot_of_head[u.head];
	if (i < 0 || i >= MAX_QD)
		return blk_fail(why, len, -EIO, "used head %u is no request of ours", u.head);
	d->slot_of_head[u.head] = -1;
	s = &d->slots[i];
	*slot = i;
	if (*s->status != VIRTIO_BLK_S_OK)
		return blk_fail(why, len, -EIO, "%s of block %u: status %u",
			    s->write ? "write" : "read", s->block, *s->status);
	if (s->write) {
		d->inflight[s->block] = 0;
		d->gen[s->block] = s->gen;
		d->n_written++;
		if (d->n_sample < SAMPLE_MAX) {
			d->sample[d->n_sample++] = s->block;
		} else {
			uint64_t j = next_rand(d) % d->n_written;

			if (j < SAMPLE_MAX)
				d->sample[j] = s->block;
		}
		return 0;
	}
	/* A read: the first and last words, cheap enough for every request. */
	if (d->gen[s->block] == GEN_UNKNOWN)
		return 0;
	for (int k = 0; k < 2; k++) {
		unsigned w = k ? WORDS - 1 : 0;
		uint64_t want = pattern_word(s->block, d->gen[s->block], w);

		if (le64toh(s->data[w]) != want)
			return blk_fail(why, len, -EIO,
				    "read of block %u: word %u is 0x%016llx, generation %u has "
				    "0x%016llx",
				    s->block, w, (unsigned long long)le64toh(s->data[w]),
				    d->gen[s->block], (unsigned long long)want);
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int record(struct blk_dev *d, uint64_t ns)
{
	if (d->n_lat == d->cap_lat) {
		size_t cap = d->cap_lat ? d->cap_lat * 2 : 1u << 16;
		uint32_t *p = realloc(d->lat, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->lat = p;
		d->cap_lat = cap;
	}
	d->lat[d->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	return 0;
}

/* The q-quantile of sorted v[0..n): the smallest value at or above that fraction. */
static double quantile_us(const uint32_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);

	return (double)v[i ? i - 1 : 0] / 1e3;
}

int blk_dev_run(struct blk_dev *d, bool write, int qd, bool poll_ring, int seconds,
		struct blk_figures *out, char *why, size_t why_len)
{
	uint64_t start, end, last = 0, done = 0;
	int outstanding = 0, r = 0, i;

	if (qd < 1 || qd > MAX_QD)
		return blk_fail(why, why_len, -EINVAL, "queue depth %d: 1 to %d", qd, MAX_QD);
	/* Requests of 3 descriptors each, without indirect tables. */
	if (3 * qd > d->qsize)
		return blk_fail(why, why_len, -ENOTSUP, "queue depth %d: queue 0 holds %u descriptors",
			    qd, d->qsize);
	memset(d->slot_of_head, 0xff, 65536 * sizeof(*d->slot_of_head));
	d->n_lat = 0;
	if (write)
		d->n_sample = 0, d->n_written = 0;
	if (poll_ring)
		suppress_interrupts(d, true);
	start = bench_now_ns();
	end = start + (uint64_t)seconds * 1000000000ull;
	for (i = 0; i < qd; i++) {
		r = submit(d, i, pick_block(d, write), write, why, why_len);
		if (r < 0)
			goto out;
		outstanding++;
	}
	if ((r = kick(d, why, why_len)) < 0)
		goto out;
	while (outstanding > 0) {
		int again = 0;

		if ((r = wait_used(d, poll_ring, why, why_len)) < 0)
			goto out;
		while (vdrv_used_pending(&d->drv, 0) > 0) {
			uint64_t now;

			if ((r = take(d, &i, why, why_len)) < 0)
				goto out;
			now = bench_now_ns();
			/* vdrv asked for the next interrupt as it took the entry. */
			if (poll_ring)
				suppress_interrupts(d, true);
			outstanding--;
			done++;
			last = now;
			if (record(d, now - d->slots[i].t0) < 0) {
				r = blk_fail(why, why_len, -ENOMEM, "out of memory");
				goto out;
			}
			if (now < end) {
				r = submit(d, i, pick_block(d, write), write, why, why_len);
				if (r < 0)
					goto out;
				outstanding++;
				again++;
			}
		}
		/* One kick for the whole batch, as a guest driver kicks after queueing. */
		if (again && (r = kick(d, why, why_len)) < 0)
			goto out;
	}
	qsort(d->lat, d->n_lat, sizeof(*d->lat), cmp_u32);
	memset(out, 0, sizeof(*out));
	out->ios = done;
	out->iops = (double)done * 1e9 / (double)(last - start);
	out->p50_us = quantile_us(d->lat, d->n_lat, 0.50);
	out->p99_us = quantile_us(d->lat, d->n_lat, 0.99);
out:
	if (poll_ring)
		suppress_interrupts(d, false);
	return r;
}

/* One request at a time, to completion: for the read-back. */
static int read_block(struct blk_dev *d, uint32_t block, char *why, size_t len)
{
	int i, r;

	memset(d->slots[0].data, 0, BLK_BS);
	if ((r = submit(d, 0, block, false, why, len)) < 0 || (r = kick(d, why, len)) < 0 ||
	    (r = wait_used(d, false, why, len)) < 0 || (r = take(d, &i, why, len)) < 0)
		return r;
	return 0;
}

int blk_dev_verify(struct blk_dev *d, unsigned n, unsigned *checked, char *why, size_t len)
{
	unsigned k = n < d->n_sample ? n : d->n_sample;
	int r, w;

	*checked = 0;
	memset(d->slot_of_head, 0xff, 65536 * sizeof(*d->slot_of_head));
	for (unsigned j = 0; j < k; j++) {
		uint32_t b = d->sample[j], g = d->gen[b];
		ssize_t got;

		if ((r = read_block(d, b, why, len)) < 0)
			return r;
		w = pattern_mismatch(d->slots[0].data, b, g);
		if (w >= 0)
			return blk_fail(why, len, -EIO,
				    "block %u read back through the device: word %d is 0x%016llx, "
				    "generation %u wrote 0x%016llx",
				    b, w, (unsigned long long)le64toh(d->slots[0].data[w]), g,
				    (unsigned long long)pattern_word(b, g, (unsigned)w));
		got = pread(d->file_fd, d->check, BLK_BS, (off_t)b * BLK_BS);
		if (got != BLK_BS)
			return blk_fail(why, len, -EIO, "reading block %u of the file: %s", b,
				    got < 0 ? strerror(errno) : "short read");
		w = pattern_mismatch(d->check, b, g);
		if (w >= 0)
			return blk_fail(why, len, -EIO,
				    "block %u of the file: word %d is 0x%016llx, generation %u "
				    "wrote 0x%016llx",
				    b, w, (unsigned long long)le64toh(d->check[w]), g,
				    (unsigned long long)pattern_word(b, g, (unsigned)w));
		(*checked)++;
	}
	return 0;
}
