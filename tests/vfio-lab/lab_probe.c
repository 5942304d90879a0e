/*
 * vfio-lab probe: raw VFIO against QEMU's edu device, inside the lab guest.
 *
 * No mpdev code at all: this program proves that the lab itself works
 * (modules, IOMMU, group, container, device, BAR and config access, and a
 * real DMA translated by the guest's IOMMU) so that a failure of an mpdev
 * driver in the lab can be blamed on mpdev, not on the lab.
 *
 *   vfio_lab_probe [--compat] [BDF]   (default BDF: $LAB_EDU_BDF, else the
 *                                      first 1234:11e8 device in sysfs)
 *
 * --compat: /dev/vfio/vfio is iommufd's vfio-compat (the lab's compat
 * kernel), which answers some questions differently from type1 (see
 * docs/vfio-lab.md); the probe asserts what each one must answer.
 *
 * Steps: legacy container (/dev/vfio/vfio) -> API version -> TYPE1v2
 * extension -> group status (viable) -> SET_CONTAINER -> SET_IOMMU(TYPE1v2)
 * -> IOMMU_GET_INFO with its capability chain (IOVA ranges, DMA available;
 * argsz grown as the kernel asks) -> device fd -> device, region and IRQ
 * info -> edu ident/liveness/factorial through BAR0 -> MAP_DMA of a 1 MiB
 * anonymous buffer at IOVA 0x100000 -> bus master on -> edu DMA RAM->device
 * and device->RAM through the IOMMU, compared byte for byte -> UNMAP_DMA ->
 * one more device->RAM DMA into the now unmapped IOVA, which the IOMMU must
 * block (the buffer stays untouched).
 *
 * edu facts (QEMU 7.2): DMA addresses are masked to 28 bits (keep IOVAs
 * below 256 MiB); a DMA of exactly 4096 bytes aborts QEMU, so we move 1024;
 * bus mastering starts off; each DMA takes ~100 ms of QEMU's virtual clock.
 *
 * Output: one "probe: ..." line per fact, then "LAB RESULT: PASS" (exit 0)
 * or "LAB RESULT: FAIL <step>: <reason>" (exit 1).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_IDENT  0x010000ed

/* edu BAR0 registers */
#define EDU_REG_IDENT	0x00
#define EDU_REG_ALIVE	0x04
#define EDU_REG_FACT	0x08
#define EDU_REG_STATUS	0x20
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_START	0x1
#define EDU_DMA_TO_RAM	0x2	/* direction bit: device buffer -> RAM */
#define EDU_DMA_BUF	0x40000 /* the device's internal DMA buffer */

#define BUF_IOVA  0x100000ULL
#define BUF_SIZE  (1ULL << 20)
#define XFER_SIZE 1024
#define OUT_OFF	  4096 /* where device->RAM lands inside the buffer */
#define NOMAP_OFF 8192 /* target of the post-unmap DMA */

/*
 * Seed 000: what QEMU 7.2's intel-iommu (aw-bits 39) leaves usable, exactly:
 * the whole 39-bit space but the interrupt window 0xfee00000-0xfeefffff,
 * which the kernel reserves for MSI. A capability parser that misreads the
 * chain cannot pass this.
 */
static const struct vfio_iova_range want_ranges[] = {
	{ .start = 0x0, .end = 0xfedfffffULL },
	{ .start = 0xfef00000ULL, .end = 0x7fffffffffULL },
};
#define N_WANT_RANGES ((uint32_t)(sizeof(want_ranges) / sizeof(want_ranges[0])))

/* What the last VFIO_IOMMU_GET_INFO said. */
static struct {
	uint32_t nr_ranges;
	struct vfio_iova_range ranges[8];
	bool have_avail, have_migration;
	uint32_t avail;
} facts;
static bool compat;
/* The answer before the device fd was opened. */
static typeof(facts) early;

static bool same_ranges(const typeof(facts) *f)
{
	if (f->nr_ranges != N_WANT_RANGES)
		return false;
	for (uint32_t i = 0; i < N_WANT_RANGES; i++)
		if (f->ranges[i].start != want_ranges[i].start ||
		    f->ranges[i].end != want_ranges[i].end)
			return false;
	return true;
}

static const char *step = "start";

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	printf("LAB RESULT: FAIL %s: ", step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool read_hex_file(const char *path, unsigned long *val)
{
	char buf[64];
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (ok)
		*val = strtoul(buf, NULL, 16);
	return ok;
}

/* The first 1234:11e8 function in sysfs. */
static bool find_edu(char *bdf, size_t len)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		char path[PATH_MAX];
		unsigned long ven, dev;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		if (!read_hex_file(path, &ven) || ven != EDU_VENDOR)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		if (!read_hex_file(path, &dev) || dev != EDU_DEVICE)
			continue;
		snprintf(bdf, len, "%s", e->d_name);
		found = true;
	}
	closedir(d);
	return found;
}

static int device_fd;
static struct vfio_region_info bar0, cfg;

static void region_pread(const struct vfio_region_info *r, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(device_fd, buf, len, (off_t)(r->offset + off));

	if (n != (ssize_t)len)
		fail("pread region %u offset 0x%" PRIx64 " len %zu: %s", r->index, off, len,
		     n < 0 ? strerror(errno) : "short read");
}

static void region_pwrite(const struct vfio_region_info *r, const void *buf, size_t len,
			  uint64_t off)
{
	ssize_t n = pwrite(device_fd, buf, len, (off_t)(r->offset + off));

	if (n != (ssize_t)len)
		fail("pwrite region %u offset 0x%" PRIx64 " len %zu: %s", r->index, off, len,
		     n < 0 ? strerror(errno) : "short write");
}

static uint32_t bar_read32(uint64_t off)
{
	uint32_t v;

	region_pread(&bar0, &v, 4, off);
	return v;
}

static void bar_write32(uint64_t off, uint32_t v)
{
	region_pwrite(&bar0, &v, 4, off);
}

/* One edu DMA; returns how long it took (ms). */
static double edu_dma(uint32_t src, uint32_t dst, uint32_t count, uint32_t cmd)
{
	double t0 = now_ms();

	bar_write32(EDU_REG_DMA_SRC, src);
	bar_write32(EDU_REG_DMA_DST, dst);
	bar_write32(EDU_REG_DMA_CNT, count);
	bar_write32(EDU_REG_DMA_CMD, cmd);
	/* ~100 ms under TCG; give it 10 s. */
	while (bar_read32(EDU_REG_DMA_CMD) & EDU_DMA_START) {
		if (now_ms() - t0 > 10000)
			fail("edu DMA src=0x%x dst=0x%x cnt=%u cmd=%u still running after 10 s",
			     src, dst, count, cmd);
		usleep(1000);
	}
	return now_ms() - t0;
}

static const char *region_flags(uint32_t f, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", f & VFIO_REGION_INFO_FLAG_READ ? "R" : "-",
		 f & VFIO_REGION_INFO_FLAG_WRITE ? "W" : "-",
		 f & VFIO_REGION_INFO_FLAG_MMAP ? "M" : "-",
		 f & VFIO_REGION_INFO_FLAG_CAPS ? "C" : "-");
	return buf;
}

static void get_region(unsigned int index, struct vfio_region_info *r, const char *name)
{
	char fl[8];

	memset(r, 0, sizeof(*r));
	r->argsz = sizeof(*r);
	r->index = index;
	if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, r) < 0)
		fail("VFIO_DEVICE_GET_REGION_INFO(%s): %s", name, strerror(errno));
	printf("probe: region %-6s index %u size 0x%llx offset 0x%llx flags %s\n", name, index,
	       (unsigned long long)r->size, (unsigned long long)r->offset,
	       region_flags(r->flags, fl, sizeof(fl)));
}

/* VFIO_IOMMU_GET_INFO, growing argsz until the capability chain fits. */
static void iommu_info(int container, bool verbose)
{
	struct vfio_iommu_type1_info *info;
	uint32_t argsz = sizeof(*info);
	bool have_ranges = false;

	memset(&facts, 0, sizeof(facts));

	for (;;) {
		info = calloc(1, argsz);
		if (!info)
			fail("out of memory");
		info->argsz = argsz;
		if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0)
			fail("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
		if (info->argsz <= argsz)
			break;
		if (verbose)
			printf("probe: IOMMU info needs argsz %u (had %u), asking again\n",
			       info->argsz, argsz);
		argsz = info->argsz;
		free(info);
	}
	if (verbose)
		printf("probe: IOMMU info flags 0x%x iova_pgsizes 0x%llx\n", info->flags,
		       (unsigned long long)info->iova_pgsizes);
	if (!(info->flags & VFIO_IOMMU_INFO_PGSIZES) || !(info->iova_pgsizes & 4096))
		fail("no 4 KiB IOMMU page size (pgsizes 0x%llx)",
		     (unsigned long long)info->iova_pgsizes);
	if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || !info->cap_offset)
		fail("no capability chain (flags 0x%x)", info->flags);

	for (uint32_t off = info->cap_offset; off;) {
		struct vfio_info_cap_header *h;

		if (off + sizeof(*h) > argsz)
			fail("capability at offset %u beyond argsz %u", off, argsz);
		h = (struct vfio_info_cap_header *)((char *)info + off);
		switch (h->id) {
		case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
			struct vfio_iommu_type1_info_cap_iova_range *c = (void *)h;

			if (verbose)
				printf("probe: cap IOVA_RANGE v%u: %u range(s)\n", h->version,
				       c->nr_iovas);
			if (off + sizeof(*c) + (uint64_t)c->nr_iovas * sizeof(c->iova_ranges[0]) >
			    argsz)
				fail("IOVA_RANGE cap with %u ranges overruns argsz %u", c->nr_iovas,
				     argsz);
			facts.nr_ranges = c->nr_iovas;
			for (uint32_t i = 0; i < c->nr_iovas && i < 8; i++)
				facts.ranges[i] = c->iova_ranges[i];
			for (uint32_t i = 0; i < c->nr_iovas; i++) {
				if (verbose)
					printf("probe:   iova range %u: 0x%016llx-0x%016llx\n", i,
					       (unsigned long long)c->iova_ranges[i].start,
					       (unsigned long long)c->iova_ranges[i].end);
				if (c->iova_ranges[i].start <= BUF_IOVA &&
				    c->iova_ranges[i].end >= BUF_IOVA + BUF_SIZE - 1)
					have_ranges = true;
			}
			break;
		}
		case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: {
			struct vfio_iommu_type1_info_cap_migration *c = (void *)h;

			if (verbose)
				printf("probe: cap MIGRATION v%u: flags 0x%x pgsize_bitmap 0x%llx "
				       "max_dirty_bitmap_size %llu\n",
				       h->version, c->flags, (unsigned long long)c->pgsize_bitmap,
				       (unsigned long long)c->max_dirty_bitmap_size);
			facts.have_migration = true;
			break;
		}
		case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: {
			struct vfio_iommu_type1_info_dma_avail *c = (void *)h;

			if (verbose)
				printf("probe: cap DMA_AVAIL v%u: %u mappings available\n",
				       h->version, c->avail);
			facts.have_avail = true;
			facts.avail = c->avail;
			break;
		}
		default:
			if (verbose)
				printf("probe: cap id %u v%u (unknown)\n", h->id, h->version);
		}
		if (h->next && h->next <= off)
			fail("capability chain loops (offset %u -> %u)", off, h->next);
		off = h->next;
	}
	if (!have_ranges)
		fail("IOVA 0x%llx+0x%llx lies in no usable IOVA range", BUF_IOVA, BUF_SIZE);
	free(info);
}

/* MAP_DMA of one page; 0 or -errno. */
static int map_page(int container, void *page, uint64_t iova)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)page,
		.iova = iova,
		.size = 4096,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static void unmap_page(int container, uint64_t iova)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = 4096 };

	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) < 0)
		fail("VFIO_IOMMU_UNMAP_DMA 0x%llx: %s", (unsigned long long)iova, strerror(errno));
	if (u.size != 4096)
		fail("VFIO_IOMMU_UNMAP_DMA 0x%llx unmapped 0x%llx bytes, want 0x1000",
		     (unsigned long long)iova, (unsigned long long)u.size);
}

/*
 * DMA_AVAIL after one more mapping: one fewer on type1, which counts
 * mappings against its dma_entry_limit; iommufd's compat layer always says
 * U32_MAX (its limit is the memory cgroup, not a count).
 */
static void expect_avail(int container, uint32_t base, int maps, const char *when)
{
	uint32_t want = compat ? UINT32_MAX : base - (uint32_t)maps;

	iommu_info(container, false);
	if (!facts.have_avail)
		fail("no DMA_AVAIL capability %s", when);
	if (facts.avail != want)
		fail("DMA_AVAIL %u %s, want %u (%s)", facts.avail, when, want,
		     compat ? "iommufd's constant" : "one per mapping");
	printf("probe: DMA_AVAIL %u %s, as it must be\n", facts.avail, when);
}

/*
 * Seed 000, asserted exactly: the ranges, DMA_AVAIL moving by one per
 * mapping, the last usable page mappable and the page past it refused, the
 * MSI window refused. Called with the 1 MiB buffer mapped (one mapping).
 */
static void check_iova_space(int container, uint32_t avail_before)
{
	const uint64_t last = want_ranges[N_WANT_RANGES - 1].end;
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	if (page == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	/*
	 * Asked again now that the device is open: type1 attaches the group
	 * to its domain at SET_IOMMU, so it already answered this before;
	 * iommufd's compat layer attaches only when the device fd is opened,
	 * and before that reports the IOAS unrestricted (one range, all of
	 * 0..2^64-1).
	 */
	if (!compat && !same_ranges(&early))
		fail("before the device was opened, type1 reported other IOVA ranges");
	if (compat)
		printf("probe: compat: before the device was opened: %u range(s), first "
		       "0x%llx-0x%llx (iommufd attaches at device open)\n",
		       early.nr_ranges, (unsigned long long)early.ranges[0].start,
		       (unsigned long long)early.ranges[0].end);
	iommu_info(container, false);
	if (facts.nr_ranges != N_WANT_RANGES)
		fail("the kernel reports %u IOVA ranges, want %u", facts.nr_ranges, N_WANT_RANGES);
	for (uint32_t i = 0; i < N_WANT_RANGES; i++)
		if (facts.ranges[i].start != want_ranges[i].start ||
		    facts.ranges[i].end != want_ranges[i].end)
			fail("IOVA range %u is 0x%llx-0x%llx, want 0x%llx-0x%llx", i,
			     (unsigned long long)facts.ranges[i].start,
			     (unsigned long long)facts.ranges[i].end,
			     (unsigned long long)want_ranges[i].start,
			     (unsigned long long)want_ranges[i].end);
	printf("probe: IOVA ranges exactly as the vIOMMU has them (MSI window excluded)\n");
	expect_avail(container, avail_before, 1, "with the buffer mapped");

	r = map_page(container, page, last + 1 - 4096);
	if (r < 0)
		fail("MAP_DMA of the last usable page 0x%llx: %s",
		     (unsigned long long)(last + 1 - 4096), strerror(-r));
	expect_avail(container, avail_before, 2, "with the last usable page mapped too");
	r = map_page(container, page, last + 1);
	if (r == 0)
		fail("MAP_DMA just past the last usable IOVA (0x%llx) was accepted",
		     (unsigned long long)(last + 1));
	printf("probe: MAP_DMA at 0x%llx (past the last usable IOVA) refused: %s\n",
	       (unsigned long long)(last + 1), strerror(-r));
	r = map_page(container, page, 0xfee00000ULL);
	if (r == 0)
		fail("MAP_DMA in the MSI window (0xfee00000) was accepted");
	printf("probe: MAP_DMA at 0xfee00000 (the MSI window) refused: %s\n", strerror(-r));
	expect_avail(container, avail_before, 2, "after the refused maps");
	unmap_page(container, last + 1 - 4096);
	expect_avail(container, avail_before, 1, "after unmapping the last page");
	munmap(page, 4096);
}

/*
 * Where iommufd's vfio-compat was said to differ from type1 when it was
 * proposed: the extensions it claims, and a bisecting unmap (a range that
 * cuts a mapping in two). Each kernel's answer is asserted, so that a
 * kernel that changes it is noticed (docs/vfio-lab.md lists them).
 */
static void check_unmap_semantics(int container)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
						.iova = BUF_IOVA + BUF_SIZE / 2,
						.size = 4096 };
	int ext_type1 = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU),
	    ext_vaddr = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR),
	    ext_all = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL),
	    ext_nest = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_NESTING_IOMMU);
	int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : 0;

	printf("probe: extensions: TYPE1 %d UPDATE_VADDR %d UNMAP_ALL %d NESTING %d\n", ext_type1,
	       ext_vaddr, ext_all, ext_nest);
	printf("probe: bisecting unmap of 4 KiB inside the 1 MiB mapping: %s (size out 0x%llx)\n",
	       r ? strerror(-r) : "accepted", (unsigned long long)u.size);
	if (r != (compat ? -ENOENT : -EINVAL))
		fail("a bisecting unmap answered %s, want %s", r ? strerror(-r) : "success",
		     strerror(compat ? ENOENT : EINVAL));
	/* type1's dirty tracking (MIGRATION cap); iommufd left it to IOMMU_HWPT_GET_DIRTY_BITMAP.
	 */
	if (facts.have_migration == compat)
		fail("MIGRATION (dirty tracking) capability %s, want %s",
		     facts.have_migration ? "present" : "absent", compat ? "absent" : "present");
	if (ext_vaddr != (compat ? 0 : 1))
		fail("UPDATE_VADDR extension %d, want %d", ext_vaddr, compat ? 0 : 1);
	if (ext_all != 1)
		fail("UNMAP_ALL extension %d, want 1", ext_all);
}

int main(int argc, char **argv)
{
	char bdf[NAME_MAX + 1], path[PATH_MAX], link[PATH_MAX];
	int container, group;
	long api;
	ssize_t n;
	const char *group_name;
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_device_info di = { .argsz = sizeof(di) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	struct rlimit rl;
	uint16_t cmd, cmd2;
	uint8_t *buf;
	uint32_t v, avail_before;
	double t_in, t_out, t_blocked, t_start = now_ms();

	setvbuf(stdout, NULL, _IOLBF, 0);

	step = "find edu";
	if (argc > 1 && !strcmp(argv[1], "--compat")) {
		compat = true;
		argv++;
		argc--;
	}
	if (argc > 1)
		snprintf(bdf, sizeof(bdf), "%s", argv[1]);
	else if (getenv("LAB_EDU_BDF") && *getenv("LAB_EDU_BDF"))
		snprintf(bdf, sizeof(bdf), "%s", getenv("LAB_EDU_BDF"));
	else if (!find_edu(bdf, sizeof(bdf)))
		fail("no %04x:%04x device in /sys/bus/pci/devices", EDU_VENDOR, EDU_DEVICE);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		fail("readlink %s: %s (no IOMMU?)", path, strerror(errno));
	link[n] = 0;
	group_name = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	printf("probe: edu %s, IOMMU group %s\n", bdf, group_name);
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			printf("probe: RLIMIT_MEMLOCK unlimited\n");
		else
			printf("probe: RLIMIT_MEMLOCK %llu bytes\n",
			       (unsigned long long)rl.rlim_cur);
	}

	step = "container";
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (container < 0)
		fail("open /dev/vfio/vfio: %s", strerror(errno));
	api = ioctl(container, VFIO_GET_API_VERSION);
	printf("probe: VFIO_GET_API_VERSION %ld\n", api);
	if (api != VFIO_API_VERSION)
		fail("API version %ld, want %d", api, VFIO_API_VERSION);
	if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1)
		fail("no VFIO_TYPE1v2_IOMMU extension");
	printf("probe: extensions TYPE1 %d TYPE1v2 %d NOIOMMU %d\n",
	       ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU),
	       ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU),
	       ioctl(container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU));

	step = "group";
	if (snprintf(path, sizeof(path), "/dev/vfio/%s", group_name) >= (int)sizeof(path))
		fail("group name too long");
	group = open(path, O_RDWR | O_CLOEXEC);
	if (group < 0)
		fail("open %s: %s", path, strerror(errno));
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &gs) < 0)
		fail("VFIO_GROUP_GET_STATUS: %s", strerror(errno));
	printf("probe: group %s status flags 0x%x (viable %d, container set %d)\n", path, gs.flags,
	       !!(gs.flags & VFIO_GROUP_FLAGS_VIABLE),
	       !!(gs.flags & VFIO_GROUP_FLAGS_CONTAINER_SET));
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		fail("group %s is not viable (a device in it is bound to a host driver)",
		     group_name);
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0)
		fail("VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));

	step = "set iommu";
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		fail("VFIO_SET_IOMMU(TYPE1v2): %s%s", strerror(errno),
		     errno == EPERM ? " (no interrupt remapping? boot intel-iommu with intremap=on)"
				    : "");
	printf("probe: container has TYPE1v2 IOMMU\n");

	step = "iommu info";
	iommu_info(container, true);
	if (!facts.have_avail)
		fail("no DMA_AVAIL capability");
	avail_before = facts.avail;
	early = facts;

	step = "device";
	device_fd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (device_fd < 0)
		fail("VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerror(errno));
	if (ioctl(device_fd, VFIO_DEVICE_GET_INFO, &di) < 0)
		fail("VFIO_DEVICE_GET_INFO: %s", strerror(errno));
	printf("probe: device flags 0x%x (pci %d reset %d) regions %u irqs %u\n", di.flags,
	       !!(di.flags & VFIO_DEVICE_FLAGS_PCI), !!(di.flags & VFIO_DEVICE_FLAGS_RESET),
	       di.num_regions, di.num_irqs);
	if (!(di.flags & VFIO_DEVICE_FLAGS_PCI) || di.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX)
		fail("not a vfio-pci device (flags 0x%x, %u regions)", di.flags, di.num_regions);
	get_region(VFIO_PCI_BAR0_REGION_INDEX, &bar0, "BAR0");
	get_region(VFIO_PCI_CONFIG_REGION_INDEX, &cfg, "config");
	if (bar0.size < 0x100 || !(bar0.flags & VFIO_REGION_INFO_FLAG_READ))
		fail("BAR0 too small or not readable");
	for (uint32_t i = 0; i < di.num_irqs && i <= VFIO_PCI_MSIX_IRQ_INDEX; i++) {
		static const char *const names[] = { "INTx", "MSI", "MSI-X" };
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = i };

		if (ioctl(device_fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
			fail("VFIO_DEVICE_GET_IRQ_INFO(%u): %s", i, strerror(errno));
		printf("probe: irq %-5s count %u flags 0x%x\n", names[i], ii.count, ii.flags);
	}

	step = "config";
	region_pread(&cfg, &v, 4, PCI_VENDOR_ID);
	printf("probe: config vendor:device %04x:%04x\n", v & 0xffff, v >> 16);
	if ((v & 0xffff) != EDU_VENDOR || (v >> 16) != EDU_DEVICE)
		fail("config space says %08x", v);

	step = "bar0";
	v = bar_read32(EDU_REG_IDENT);
	printf("probe: edu ident 0x%08x\n", v);
	if (v != EDU_IDENT)
		fail("ident 0x%08x, want 0x%08x", v, EDU_IDENT);
	bar_write32(EDU_REG_ALIVE, 0x12345678);
	v = bar_read32(EDU_REG_ALIVE);
	if (v != ~0x12345678u)
		fail("liveness: wrote 0x12345678, read 0x%08x", v);
	bar_write32(EDU_REG_FACT, 10);
	for (double t0 = now_ms(); bar_read32(EDU_REG_STATUS) & 1; usleep(1000))
		if (now_ms() - t0 > 5000)
			fail("factorial still computing after 5 s");
	v = bar_read32(EDU_REG_FACT);
	printf("probe: edu liveness ok, factorial(10) = %u\n", v);
	if (v != 3628800)
		fail("factorial(10) = %u", v);

	step = "map dma";
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	for (size_t i = 0; i < BUF_SIZE; i++)
		buf[i] = 0xa5;
	for (size_t i = 0; i < XFER_SIZE; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	map.vaddr = (uintptr_t)buf;
	map.iova = BUF_IOVA;
	map.size = BUF_SIZE;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0)
		fail("VFIO_IOMMU_MAP_DMA iova 0x%llx size 0x%llx: %s", BUF_IOVA, BUF_SIZE,
		     strerror(errno));
	printf("probe: mapped %llu KiB at IOVA 0x%llx\n", BUF_SIZE >> 10, BUF_IOVA);

	step = "seed 000";
	check_iova_space(container, avail_before);

	step = "bus master";
	region_pread(&cfg, &cmd, 2, PCI_COMMAND);
	cmd2 = cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	region_pwrite(&cfg, &cmd2, 2, PCI_COMMAND);
	region_pread(&cfg, &cmd2, 2, PCI_COMMAND);
	printf("probe: PCI command 0x%04x -> 0x%04x\n", cmd, cmd2);
	if (!(cmd2 & PCI_COMMAND_MASTER))
		fail("bus master bit did not stick (command 0x%04x)", cmd2);

	step = "dma ram->device";
	t_in = edu_dma(BUF_IOVA, EDU_DMA_BUF, XFER_SIZE, EDU_DMA_START);
	step = "dma device->ram";
	t_out = edu_dma(EDU_DMA_BUF, BUF_IOVA + OUT_OFF, XFER_SIZE, EDU_DMA_START | EDU_DMA_TO_RAM);
	printf("probe: DMA RAM->device %u bytes %.1f ms, device->RAM %.1f ms\n", XFER_SIZE, t_in,
	       t_out);
	if (memcmp(buf, buf + OUT_OFF, XFER_SIZE) != 0) {
		size_t i = 0;

		while (buf[i] == buf[OUT_OFF + i])
			i++;
		fail("round trip differs at byte %zu: sent 0x%02x, got 0x%02x", i, buf[i],
		     buf[OUT_OFF + i]);
	}
	if (buf[OUT_OFF + XFER_SIZE] != 0xa5 || buf[OUT_OFF - 1] != 0xa5)
		fail("DMA wrote outside its %u bytes", XFER_SIZE);
	printf("probe: DMA round trip through the IOMMU ok (%u bytes)\n", XFER_SIZE);

	step = "compat gaps";
	check_unmap_semantics(container);

	step = "unmap dma";
	unmap.iova = BUF_IOVA;
	unmap.size = BUF_SIZE;
	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
		fail("VFIO_IOMMU_UNMAP_DMA: %s", strerror(errno));
	if (unmap.size != BUF_SIZE)
		fail("VFIO_IOMMU_UNMAP_DMA unmapped 0x%llx, want 0x%llx",
		     (unsigned long long)unmap.size, BUF_SIZE);
	printf("probe: unmapped IOVA 0x%llx\n", BUF_IOVA);

	/*
	 * The IOMMU really translates: a DMA into the IOVA we just unmapped
	 * must not reach our pages (the guest kernel logs a DMAR fault).
	 */
	step = "dma after unmap";
	t_blocked = edu_dma(EDU_DMA_BUF, BUF_IOVA + NOMAP_OFF, XFER_SIZE,
			    EDU_DMA_START | EDU_DMA_TO_RAM);
	for (size_t i = 0; i < XFER_SIZE; i++)
		if (buf[NOMAP_OFF + i] != 0xa5)
			fail("DMA to unmapped IOVA 0x%llx reached memory (byte %zu = 0x%02x)",
			     BUF_IOVA + NOMAP_OFF, i, buf[NOMAP_OFF + i]);
	printf("probe: DMA to unmapped IOVA blocked by the IOMMU (%.1f ms)\n", t_blocked);

	step = "close";
	cmd2 &= (uint16_t)~PCI_COMMAND_MASTER;
	region_pwrite(&cfg, &cmd2, 2, PCI_COMMAND);
	close(device_fd);
	if (ioctl(group, VFIO_GROUP_UNSET_CONTAINER) < 0)
		fail("VFIO_GROUP_UNSET_CONTAINER: %s", strerror(errno));
	close(group);
	close(container);
	munmap(buf, BUF_SIZE);
	printf("probe: done in %.0f ms\n", now_ms() - t_start);
	printf("LAB RESULT: PASS\n");
	return 0;
}
