/*
 * The QEMU 11.1 tier's block program (static, run by guest/init as root):
 * the guest kernel's own virtio_blk drives the disk, so this is what a real
 * guest sees of QEMU's virtio-blk-pci or of mpdev-remote's virtio-blk.
 *
 *   q11-blk dev BDF                      prints /dev/vdX of the disk at BDF
 *   q11-blk check BDF LABEL MIB SEED QUEUES
 *       size, queue count, the pattern (../blk_pattern.h) written over the
 *       whole disk with O_DIRECT in 512 B, 4 KiB, 64 KiB and 1 MiB requests
 *       from one thread per vCPU, a flush, and every byte read back in other
 *       request sizes
 *   q11-blk iops BDF LABEL MS QD SEED
 *       4 KiB O_DIRECT random reads, then writes, QD threads, MS ms each;
 *       writes write the pattern, so the disk stays checkable
 *   q11-blk fwrite|fcheck PATH LABEL SEED BYTES
 *       a file of the pattern through a file system (buffered, fsync)
 *
 * Lines the host judges: "Q11 CHECK LABEL NAME: PASS|FAIL detail" (a
 * missing one fails as surely as a FAIL) and "Q11 IOPS LABEL rw=R qd=Q
 * ops=N ms=T per_s=X bad=B". Every wait is bounded: a disk that never
 * appears is a FAIL line; a request that hangs is ended by init's timeout.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blk_pattern.h"
#include "q11_check.h"

#define MIB	     (UINT64_C(1) << 20)
#define MAX_THREADS  8
#define FIND_WAIT_MS 10000

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static int read_sysfs(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/*
 * The disk's name (vda, ...) under the PCI device's virtio child, waited
 * for; *vdev (when given) gets the child's name (virtio0, ...), which names
 * its interrupts.
 */
static int find_disk_vdev(const char *bdf, char *name, size_t size, char *vdev, size_t vsize)
{
	char pat[256];
	double t0 = now_ms();

	snprintf(pat, sizeof(pat), "/sys/bus/pci/devices/%s/virtio*/block/*", bdf);
	do {
		glob_t g;

		if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1) {
			char *p = g.gl_pathv[0],
			     *v = p + strlen("/sys/bus/pci/devices/") + strlen(bdf) + 1;

			snprintf(name, size, "%s", strrchr(p, '/') + 1);
			if (vdev)
				snprintf(vdev, vsize, "%.*s", (int)strcspn(v, "/"), v);
			globfree(&g);
			return 0;
		}
		globfree(&g);
		usleep(50000);
	} while (now_ms() - t0 < FIND_WAIT_MS);
	return -ENOENT;
}

static int find_disk(const char *bdf, char *name, size_t size)
{
	return find_disk_vdev(bdf, name, size, NULL, 0);
}

static int cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return CPU_COUNT(&set) < 1 ? 1 : CPU_COUNT(&set);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* --- the whole-disk pattern ------------------------------------------------------ */

/*
 * The disk in four regions (of 32ths of it: 1, 3, 12, 16), each written in
 * one request size and read back in another, so that no request of the
 * read lines up with one of the write.
 */
#define N_REGIONS 4
static const size_t write_size[N_REGIONS] = { 512, 4096, 65536, 1 << 20 };
static const size_t read_size[N_REGIONS] = { 4096, 512, 1 << 20, 65536 };
static const unsigned region_32ths[N_REGIONS] = { 1, 3, 12, 16 };

struct pass {
	int fd;
	bool write;
	uint64_t seed, bytes;
	int thread, n_threads;
	uint64_t requests, bad_words, first_bad, io_errors;
	int first_errno;
	uint64_t first_err_off;
};

static void *pass_thread(void *arg)
{
	struct pass *p = arg;
	const size_t *sizes = p->write ? write_size : read_size;
	uint64_t start = 0;
	void *buf;

	pin(p->thread % cpus());
	if (posix_memalign(&buf, 4096, MIB)) {
		p->io_errors++;
		p->first_errno = ENOMEM;
		return NULL;
	}
	for (int r = 0; r < N_REGIONS; r++) {
		uint64_t len =
			r == N_REGIONS - 1 ? p->bytes - start : p->bytes / 32 * region_32ths[r];
		size_t rs = sizes[r];
		/* Requests alternate between the threads, so both queues see each size. */
		for (uint64_t k = (uint64_t)p->thread; k * rs < len; k += (uint64_t)p->n_threads) {
			uint64_t off = start + k * rs;
			ssize_t n;

			if (p->write) {
				q11_pattern_fill(buf, p->seed, off, rs);
				n = pwrite(p->fd, buf, rs, (off_t)off);
			} else {
				memset(buf, 0, rs);
				n = pread(p->fd, buf, rs, (off_t)off);
			}
			p->requests++;
			if (n != (ssize_t)rs) {
				if (!p->io_errors++) {
					p->first_errno = n < 0 ? errno : EIO;
					p->first_err_off = off;
				}
				continue;
			}
			if (!p->write)
				p->bad_words += q11_pattern_check(buf, p->seed, off, rs,
								  p->bad_words ? &(uint64_t){ 0 }
									       : &p->first_bad);
		}
		start += len;
	}
	free(buf);
	return NULL;
}

/* Returns the elapsed ms; the threads' totals are summed into *sum. */
static double run_pass(int fd, bool write, uint64_t seed, uint64_t bytes, int n_threads,
		       struct pass *sum)
{
	struct pass p[MAX_THREADS];
	pthread_t t[MAX_THREADS];
	double t0 = now_ms();

	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < n_threads; i++) {
		p[i] = (struct pass){ .fd = fd,
				      .write = write,
				      .seed = seed,
				      .bytes = bytes,
				      .thread = i,
				      .n_threads = n_threads };
		if (pthread_create(&t[i], NULL, pass_thread, &p[i])) {
			n_threads = i;
			sum->io_errors++;
			sum->first_errno = EAGAIN;
			break;
		}
	}
	for (int i = 0; i < n_threads; i++) {
		pthread_join(t[i], NULL);
		sum->requests += p[i].requests;
		if (p[i].bad_words && (!sum->bad_words || p[i].first_bad < sum->first_bad))
			sum->first_bad = p[i].first_bad;
		sum->bad_words += p[i].bad_words;
		if (p[i].io_errors && !sum->io_errors) {
			sum->first_errno = p[i].first_errno;
			sum->first_err_off = p[i].first_err_off;
		}
		sum->io_errors += p[i].io_errors;
	}
	return now_ms() - t0;
}

/*
 * Interrupts per request queue, summed over the CPUs, from /proc/interrupts:
 * virtio_pci names a queue's own MSI-X vector "VDEV-req.N". Returns how many
 * of the n queues have one (0: shared vectors or INTx, nothing to count).
 */
static int queue_irqs(const char *vdev, int n, uint64_t *count)
{
	char line[1024], want[80];
	int found = 0;
	FILE *f = fopen("/proc/interrupts", "re");

	memset(count, 0, sizeof(*count) * (size_t)n);
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *end;
		uint64_t sum = 0;

		if (!p)
			continue;
		for (int q = 0; q < n; q++) {
			snprintf(want, sizeof(want), " %s-req.%d\n", vdev, q);
			if (strlen(line) < strlen(want) ||
			    strcmp(line + strlen(line) - strlen(want), want))
				continue;
			for (p++;; p = end) {
				uint64_t v = strtoull(p, &end, 10);

				if (end == p)
					break;
				sum += v;
			}
			count[q] = sum;
			found++;
		}
	}
	fclose(f);
	return found;
}

static int queues(const char *disk, char *desc, size_t size)
{
	char path[128];
	int n = 0;
	size_t len = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/sys/block/%s/mq", disk);
	d = opendir(path);
	if (!d)
		return -errno;
	desc[0] = 0;
	while ((e = readdir(d))) {
		char cl[400], v[64];

		if (e->d_name[0] == '.')
			continue;
		n++;
		snprintf(cl, sizeof(cl), "/sys/block/%s/mq/%s/cpu_list", disk, e->d_name);
		if (read_sysfs(cl, v, sizeof(v)) < 0)
			snprintf(v, sizeof(v), "?");
		if (len < size)
			len += (size_t)snprintf(desc + len, size - len, "%s%s(cpus %s)",
						len ? " " : "", e->d_name, v);
	}
	closedir(d);
	return n;
}

static int check(const char *bdf, uint64_t mib, uint64_t seed, int want_queues)
{
	char disk[64], vdev[64], path[160], v[64], qdesc[256];
	uint64_t sectors = 0, bytes = mib * MIB, q0[MAX_THREADS], q1[MAX_THREADS];
	int n_threads = cpus() < 2 ? 1 : 2, nq, fd, have_q;
	struct pass w, r;
	double ms;

	if (find_disk_vdev(bdf, disk, sizeof(disk), vdev, sizeof(vdev)) < 0) {
		result("disk", false, "no virtio block device under %s within %d ms", bdf,
		       FIND_WAIT_MS);
		return 1;
	}
	snprintf(path, sizeof(path), "/sys/block/%s/size", disk);
	if (read_sysfs(path, v, sizeof(v)) < 0 || !parse_u64(v, &sectors) ||
	    sectors * 512 != bytes) {
		result("disk", false, "/dev/%s has %" PRIu64 " sectors of 512 B, expected %" PRIu64,
		       disk, sectors, bytes / 512);
		return 1;
	}
	snprintf(path, sizeof(path), "/sys/block/%s/queue/logical_block_size", disk);
	if (read_sysfs(path, v, sizeof(v)) < 0)
		snprintf(v, sizeof(v), "?");
	result("disk", true, "/dev/%s at %s: %" PRIu64 " MiB, logical block %s B", disk, bdf, mib,
	       v);

	nq = queues(disk, qdesc, sizeof(qdesc));
	result("queues", nq == want_queues, "%d blk-mq hardware queues (expected %d): %s", nq,
	       want_queues, nq > 0 ? qdesc : "none");
	if (nq < 1 || nq > MAX_THREADS)
		nq = 1;

	snprintf(path, sizeof(path), "/dev/%s", disk);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		result("open", false, "open %s O_DIRECT: %s", path, strerror(errno));
		return 1;
	}
	have_q = queue_irqs(vdev, nq, q0);
	ms = run_pass(fd, true, seed, bytes, n_threads, &w);
	result("write", !w.io_errors,
	       "%" PRIu64 " MiB of the pattern in %" PRIu64
	       " O_DIRECT writes of 512 B/4 KiB/64 KiB/1 MiB from %d threads in %.0f ms (%.1f "
	       "MB/s)%s%s",
	       mib, w.requests, n_threads, ms, bytes / 1e3 / ms, w.io_errors ? "; errors: " : "",
	       w.io_errors ? strerror(w.first_errno) : "");
	if (w.io_errors)
		printf("q11-blk: %s: %" PRIu64 " writes failed, the first at byte %" PRIu64 "\n",
		       label, w.io_errors, w.first_err_off);
	ms = now_ms();
	{
		int frc = fsync(fd) == 0 ? 0 : errno;

		result("flush", !frc, "fsync of /dev/%s (a virtio-blk flush) in %.0f ms%s%s", disk,
		       now_ms() - ms, frc ? ": " : "", frc ? strerror(frc) : "");
	}
	/* O_DIRECT reads bypass the page cache anyway; this makes sure of it. */
	sync();
	{
		int dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

		if (dc >= 0) {
			if (write(dc, "3", 1) != 1)
				printf("q11-blk: drop_caches: %s\n", strerror(errno));
			close(dc);
		}
	}
	ms = run_pass(fd, false, seed, bytes, n_threads, &r);
	result("readback", !r.io_errors && !r.bad_words,
	       "%" PRIu64 " MiB read back in %" PRIu64
	       " O_DIRECT reads of other sizes in %.0f ms (%.1f MB/s): %" PRIu64 " of %" PRIu64
	       " words differ%s%s",
	       mib, r.requests, ms, bytes / 1e3 / ms, r.bad_words, bytes / 8,
	       r.io_errors ? "; read errors: " : "", r.io_errors ? strerror(r.first_errno) : "");
	if (r.bad_words)
		printf("q11-blk: %s: the first differing word is at byte %" PRIu64 "\n", label,
		       r.first_bad);
	if (nq > 1 && have_q == nq && queue_irqs(vdev, nq, q1) == nq) {
		char d[128] = "";
		size_t len = 0;
		bool all = true;

		for (int i = 0; i < nq; i++) {
			len += (size_t)snprintf(d + len, sizeof(d) - len, "%s%" PRIu64,
						i ? "/" : "", q1[i] - q0[i]);
			all &= q1[i] > q0[i];
		}
		result("queues_used", all,
		       "interrupts of %s's request queues during the pattern: %s", vdev, d);
	} else {
		printf("q11-blk: %s: no per-queue counts (one queue, or no MSI-X vector per queue: "
		       "%d "
		       "of %d)\n",
		       label, have_q, nq);
	}
	close(fd);
	return failures ? 1 : 0;
}

/* --- the guest-visible IOPS ---------------------------------------------------- */

struct iops {
	int fd, cpu;
	bool write;
	uint64_t seed, blocks, rng;
	double ms;
	uint64_t ops, bad, errors;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *iops_thread(void *arg)
{
	struct iops *p = arg;
	void *buf;
	double t0;

	pin(p->cpu);
	if (posix_memalign(&buf, 4096, 4096)) {
		p->errors++;
		return NULL;
	}
	t0 = now_ms();
	do {
		for (int i = 0; i < 16; i++) {
			uint64_t off = xorshift(&p->rng) % p->blocks * 4096;
			ssize_t n;

			if (p->write) {
				q11_pattern_fill(buf, p->seed, off, 4096);
				n = pwrite(p->fd, buf, 4096, (off_t)off);
			} else {
				n = pread(p->fd, buf, 4096, (off_t)off);
				/* One word per read: enough to catch a misplaced block. */
				if (n == 4096 && *(uint64_t *)buf != q11_pattern_word(p->seed, off))
					p->bad++;
			}
			if (n != 4096)
				p->errors++;
			p->ops++;
		}
	} while (now_ms() - t0 < p->ms);
	p->ms = now_ms() - t0;
	free(buf);
	return NULL;
}

static int iops(const char *bdf, unsigned ms, int qd, uint64_t seed)
{
	char disk[64], path[160], v[64];
	uint64_t sectors;
	int fd, rc = 0;

	if (qd < 1 || qd > MAX_THREADS || find_disk(bdf, disk, sizeof(disk)) < 0)
		return 2;
	snprintf(path, sizeof(path), "/sys/block/%s/size", disk);
	if (read_sysfs(path, v, sizeof(v)) < 0 || !parse_u64(v, &sectors) || sectors < 8)
		return 2;
	snprintf(path, sizeof(path), "/dev/%s", disk);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return 2;
	for (int w = 0; w < 2; w++) {
		struct iops p[MAX_THREADS];
		pthread_t t[MAX_THREADS];
		uint64_t ops = 0, bad = 0, errors = 0;
		double longest = 0;
		int n = 0;

		for (int i = 0; i < qd; i++) {
			p[i] = (struct iops){ .fd = fd,
					      .cpu = i % cpus(),
					      .write = w,
					      .seed = seed,
					      .blocks = sectors / 8,
					      .ms = ms,
					      .rng = UINT64_C(0x2545f4914f6cdd1d) *
						     (uint64_t)(i + 1) };
			if (pthread_create(&t[i], NULL, iops_thread, &p[i]))
				break;
			n++;
		}
		for (int i = 0; i < n; i++) {
			pthread_join(t[i], NULL);
			ops += p[i].ops;
			bad += p[i].bad;
			errors += p[i].errors;
			if (p[i].ms > longest)
				longest = p[i].ms;
		}
		printf("Q11 IOPS %s rw=%s qd=%d ops=%" PRIu64 " ms=%.0f per_s=%.0f bad=%" PRIu64
		       "\n",
		       label, w ? "write" : "read", n, ops, longest,
		       longest > 0 ? ops * 1e3 / longest : 0.0, bad + errors);
		fflush(stdout);
		if (n != qd || bad || errors)
			rc = 1;
	}
	if (fsync(fd) < 0)
		rc = 1;
	close(fd);
	return rc;
}

/* --- a file through a file system ------------------------------------------------ */

static int file_pass(const char *path, bool write, uint64_t seed, uint64_t bytes)
{
	static uint64_t buf[65536 / 8];
	uint64_t bad = 0, first = 0;
	double t0 = now_ms();
	int fd = write ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
		       : open(path, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0;

	for (uint64_t off = 0; ok && off < bytes; off += sizeof(buf)) {
		size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);

		if (write) {
			q11_pattern_fill(buf, seed, off, n);
			ok = pwrite(fd, buf, n, (off_t)off) == (ssize_t)n;
		} else {
			ok = pread(fd, buf, n, (off_t)off) == (ssize_t)n;
			if (ok)
				bad += q11_pattern_check(buf, seed, off, n,
							 bad ? &(uint64_t){ 0 } : &first);
		}
	}
	if (write) {
		ok = ok && fsync(fd) == 0;
		result("fs_write", ok,
		       "%" PRIu64 " bytes of the pattern to %s, fsync, in %.0f ms%s%s", bytes, path,
		       now_ms() - t0, ok ? "" : ": ", ok ? "" : strerror(errno));
	} else {
		struct stat st;

		ok = ok && fstat(fd, &st) == 0 && (uint64_t)st.st_size == bytes;
		result("fs_check", ok && !bad,
		       "%s read back after umount, cache drop and mount: %" PRIu64 " of %" PRIu64
		       " words differ%s",
		       path, bad, bytes / 8, ok ? "" : " (open, read or size failed)");
		if (bad)
			printf("q11-blk: %s: the first differing word is at byte %" PRIu64 "\n",
			       label, first);
	}
	if (fd >= 0)
		close(fd);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t a, b, c;

	if (argc == 3 && !strcmp(argv[1], "dev")) {
		char disk[64];

		if (find_disk(argv[2], disk, sizeof(disk)) < 0)
			return 1;
		printf("/dev/%s\n", disk);
		return 0;
	}
	if (argc == 7 && !strcmp(argv[1], "check") && parse_u64(argv[4], &a) && a >= 32 &&
	    a % 32 == 0 && parse_u64(argv[5], &b) && parse_u64(argv[6], &c) && c >= 1 &&
	    c <= MAX_THREADS) {
		label = argv[3];
		return check(argv[2], a, b, (int)c);
	}
	if (argc == 7 && !strcmp(argv[1], "iops") && parse_u64(argv[4], &a) && a > 0 &&
	    a < 600000 && parse_u64(argv[5], &b) && b >= 1 && b <= MAX_THREADS &&
	    parse_u64(argv[6], &c)) {
		label = argv[3];
		return iops(argv[2], (unsigned)a, (int)b, c);
	}
	if (argc == 6 && (!strcmp(argv[1], "fwrite") || !strcmp(argv[1], "fcheck")) &&
	    parse_u64(argv[4], &a) && parse_u64(argv[5], &b) && b % 8 == 0) {
		label = argv[3];
		return file_pass(argv[2], !strcmp(argv[1], "fwrite"), a, b);
	}
	fprintf(stderr, "usage: q11-blk dev BDF | check BDF LABEL MIB SEED QUEUES |\n"
			"       iops BDF LABEL MS QD SEED | fwrite|fcheck PATH LABEL SEED BYTES\n");
	return 2;
}
