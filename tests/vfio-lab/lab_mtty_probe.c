/*
 * vfio-lab mtty probe: the VFIO migration v2 uAPI raw, against the lab
 * kernel's mtty sample, no mpdev code. It pins down the kernel facts the
 * vfio backend relies on (docs/vfio.md, "Migration and dirty tracking"):
 * what mtty reports, which arcs return a data_fd, what read() and
 * VFIO_MIG_GET_PRECOPY_INFO answer in each state, that leaving the session
 * or VFIO_DEVICE_RESET disables the file, that the kernel walks a combined
 * transition itself, and what type1's dirty bitmap says for a container
 * holding only a mediated device.
 *
 *   vfio_lab_mtty_probe [--blocked-arc] [UUID]   (default: $LAB_MTTY2_UUID)
 *
 * Never asked by default: STOP_COPY -> PRE_COPY, which 6.12's
 * vfio_mig_get_next_state never returns from (see docs/vfio.md).
 * --blocked-arc asks it anyway, in a child, and reports whether the child
 * is still inside the ioctl after 3 s: a demonstration, not a ctest (the
 * child's CPU stays busy until the guest powers off).
 *
 * Output: "probe: ..." lines, then "LAB RESULT: PASS" or "LAB RESULT: FAIL".
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vfio_mig_uapi.h"

static int failures;

static void fact(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fact(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("probe: %s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures += !ok;
}

static int device, group = -1;

static int feature(uint32_t flags, void *data, size_t len)
{
	struct {
		struct vfio_device_feature h;
		uint64_t d[4];
	} f = { .h = { .argsz = (uint32_t)(sizeof(f.h) + len), .flags = flags } };

	if (len)
		memcpy(f.d, data, len);
	if (ioctl(device, VFIO_DEVICE_FEATURE, &f) < 0)
		return -errno;
	if (len)
		memcpy(data, f.d, len);
	return 0;
}

/* One SET; returns 0 or -errno, the data_fd in *fd (-1: none). */
static int set_state(uint32_t state, int *fd)
{
	struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };
	int r = feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
			sizeof(st));

	*fd = st.data_fd;
	return r;
}

static uint32_t get_state(void)
{
	struct vfio_device_feature_mig_state st = { .data_fd = -1 };

	if (feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
		    sizeof(st)) < 0)
		return 99;
	return st.device_state;
}

static int precopy(int fd, uint64_t *initial, uint64_t *dirty)
{
	struct vfio_precopy_info i = { .argsz = sizeof(i) };

	if (ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &i) < 0)
		return -errno;
	*initial = i.initial_bytes;
	*dirty = i.dirty_bytes;
	return 0;
}

static ssize_t rd(int fd, void *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	return n < 0 ? -errno : n;
}

static int open_device(const char *uuid, int *container)
{
	char path[320], link[256];
	struct vfio_group_status st = { .argsz = sizeof(st) };
	ssize_t n;
	const char *num;

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return -errno;
	link[n] = '\0';
	num = strrchr(link, '/');
	snprintf(path, sizeof(path), "/dev/vfio/%s", num ? num + 1 : link);
	*container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	group = open(path, O_RDWR | O_CLOEXEC);
	if (*container < 0 || group < 0 || ioctl(group, VFIO_GROUP_GET_STATUS, &st) < 0 ||
	    ioctl(group, VFIO_GROUP_SET_CONTAINER, container) < 0 ||
	    ioctl(*container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		return -errno;
	return ioctl(group, VFIO_GROUP_GET_DEVICE_FD, uuid);
}

/* type1 with only a mediated device: pinned_page_dirty_scope, so only pinned pages. */
static void type1_dirty(int container)
{
	const size_t size = 1 << 20;
	void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map),
						.flags = VFIO_DMA_MAP_FLAG_READ |
							 VFIO_DMA_MAP_FLAG_WRITE,
						.vaddr = (uintptr_t)buf,
						.iova = 0x100000,
						.size = size };
	struct {
		struct vfio_iommu_type1_dirty_bitmap h;
		struct vfio_iommu_type1_dirty_bitmap_get g;
	} d = { .h = { .argsz = sizeof(d), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP } };
	struct vfio_iommu_type1_dirty_bitmap ctl = { .argsz = sizeof(ctl) };
	uint64_t bits[4] = { 0 };
	int set = 0, r;

	memset(buf, 1, size);
	r = ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
	ctl.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	if (r == 0)
		r = ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &ctl);
	d.g.iova = 0x100000;
	d.g.size = size;
	d.g.bitmap.pgsize = 4096;
	d.g.bitmap.size = sizeof(bits);
	d.g.bitmap.data = (__u64 *)bits;
	if (r == 0)
		r = ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &d);
	for (int i = 0; i < 4; i++)
		set += __builtin_popcountll(bits[i]);
	fact(r == 0 && set == 0,
	     "type1, a container with only an mdev: GET_BITMAP over a 256-page mapping gives %d "
	     "dirty (only pages the vendor driver pins count; mtty pins none) (%s)",
	     set, r ? strerror(errno) : "ok");
	ctl.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
	ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &ctl);
	munmap(buf, size);
}

/* SET PRE_COPY from STOP_COPY in a child; 0 if it is still in the kernel after 3 s. */
static int blocked_arc(void)
{
	char path[64], stat[256] = { 0 };
	int fd = -1, st = 0, r = set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd);
	pid_t child;
	FILE *f;

	fact(r == 0 && get_state() == VFIO_DEVICE_STATE_STOP_COPY, "in STOP_COPY");
	child = fork();
	if (child == 0) {
		int fd2;

		r = set_state(MPDEV_VFIO_DEVICE_STATE_PRE_COPY, &fd2);
		printf("probe: the blocked arc returned: %s\n", r ? strerror(-r) : "ok");
		_exit(0);
	}
	for (int i = 0; i < 30 && waitpid(child, &st, WNOHANG) == 0; i++)
		usleep(100000);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(stat, sizeof(stat), f))
			stat[0] = '\0';
		fclose(f);
	}
	fact(f != NULL, "SET STOP_COPY -> PRE_COPY: after 3 s the child is %s (/proc stat: %.60s)",
	     f ? "still inside the ioctl" : "gone: the kernel answered", stat);
	if (fd >= 0)
		close(fd);
	return f ? 0 : 1;
}

int main(int argc, char **argv)
{
	bool blocked = argc > 1 && !strcmp(argv[1], "--blocked-arc");
	const char *uuid = argc > 1 + blocked ? argv[1 + blocked] : getenv("LAB_MTTY2_UUID");
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_device_feature_migration mig = { 0 };
	struct vfio_device_feature_mig_data_size size = { 0 };
	uint64_t initial = 0, dirty = 0;
	uint8_t buf[256], zeros[24] = { 0 };
	int container = -1, fd = -1, fd2 = -1, r;
	ssize_t n;

	if (!uuid || !*uuid) {
		printf("LAB RESULT: FAIL no mtty device (LAB_MTTY2_UUID)\n");
		return 1;
	}
	device = open_device(uuid, &container);
	if (device < 0) {
		printf("LAB RESULT: FAIL opening %s: %s\n", uuid, strerror(errno));
		return 1;
	}
	if (blocked) {
		r = blocked_arc();
		printf("LAB RESULT: %s\n",
		       r == 0 && !failures ? "PASS" : "FAIL the kernel answered");
		return r;
	}
	ioctl(device, VFIO_DEVICE_GET_INFO, &info);
	fact(info.flags == VFIO_DEVICE_FLAGS_PCI,
	     "mtty's device flags 0x%x: PCI, no VFIO_DEVICE_FLAGS_RESET (it handles the ioctl "
	     "all the same)",
	     info.flags);
	r = feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof(mig));
	fact(r == 0 && mig.flags == 7, "MIGRATION flags 0x%llx (STOP_COPY | P2P | PRE_COPY)",
	     (unsigned long long)mig.flags);
	r = feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &size,
		    sizeof(size));
	fact(r == 0 && size.stop_copy_length == 96,
	     "MIG_DATA_SIZE stop_copy_length %llu (24-byte header + 2 ports x 36)",
	     (unsigned long long)size.stop_copy_length);
	r = feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
			    VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		    NULL, 0);
	fact(r == 0, "DMA_LOGGING_START probe: %s (mtty has log_ops that report nothing)",
	     r ? strerror(-r) : "supported");
	fact(get_state() == VFIO_DEVICE_STATE_RUNNING, "initial state RUNNING");

	/* PRE_COPY: a new data_fd, a stream that only read() serves. */
	r = set_state(MPDEV_VFIO_DEVICE_STATE_PRE_COPY, &fd);
	fact(r == 0 && fd >= 0, "RUNNING -> PRE_COPY returns a data_fd (%d)", fd);
	n = pread(fd, buf, 8, 0);
	fact(n < 0 && errno == ESPIPE, "pread on the data_fd: %s (a stream: stream_open)",
	     n < 0 ? strerror(errno) : "succeeded");
	r = precopy(fd, &initial, &dirty);
	fact(r == 0 && initial == 24 && dirty == 0,
	     "PRECOPY_INFO in PRE_COPY: initial %llu dirty %llu", (unsigned long long)initial,
	     (unsigned long long)dirty);
	n = rd(fd, buf, sizeof(buf));
	fact(n == 24, "the precopy read: %zd bytes", n);
	n = rd(fd, buf + 24, sizeof(buf) - 24);
	fact(n == 0,
	     "read at PRE_COPY's temporary end of stream: %zd (mtty answers 0, not the ENOMSG the "
	     "uAPI asks drivers for)",
	     n);
	r = precopy(fd, &initial, &dirty);
	fact(r == 0 && initial == 0 && dirty == 0,
	     "PRECOPY_INFO after the pass: initial %llu dirty %llu", (unsigned long long)initial,
	     (unsigned long long)dirty);
	r = set_state(MPDEV_VFIO_DEVICE_STATE_PRE_COPY_P2P, &fd2);
	fact(r == 0 && fd2 < 0, "PRE_COPY -> PRE_COPY_P2P: no new data_fd");
	r = set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd2);
	fact(r == 0 && fd2 < 0,
	     "PRE_COPY_P2P -> STOP_COPY: no new data_fd (%d): the PRE_COPY stream goes on", fd2);
	r = precopy(fd, &initial, &dirty);
	fact(r == -EINVAL, "PRECOPY_INFO in STOP_COPY: %s", r ? strerror(-r) : "answered");
	n = rd(fd, buf + 24, sizeof(buf) - 24);
	fact(n == 72, "STOP_COPY read: %zd more bytes (the ports)", n);
	n = rd(fd, buf, sizeof(buf));
	fact(n == 0, "STOP_COPY read at the end: %zd", n);
	r = set_state(VFIO_DEVICE_STATE_STOP, &fd2);
	n = rd(fd, buf, sizeof(buf));
	fact(r == 0 && n == -ENODEV, "after STOP_COPY -> STOP the old data_fd reads %s",
	     n < 0 ? strerror((int)-n) : "data");
	close(fd);

	/* RESUMING: a write-only file that checks mtty's header. */
	r = set_state(VFIO_DEVICE_STATE_RESUMING, &fd);
	fact(r == 0 && fd >= 0, "STOP -> RESUMING returns a data_fd");
	n = rd(fd, buf, 8);
	fact(n == -EBADF, "read on the resuming data_fd: %s", n < 0 ? strerror((int)-n) : "data");
	n = write(fd, zeros, sizeof(zeros));
	fact(n < 0 && errno == EFAULT, "a stream with a bad header: write answers %s",
	     n < 0 ? strerror(errno) : "ok");
	n = write(fd, buf, 200);
	fact(n < 0 && errno == ENOMEM, "more than the device's state in one write: %s",
	     n < 0 ? strerror(errno) : "ok");
	r = set_state(VFIO_DEVICE_STATE_STOP, &fd2);
	fact(r == -EINVAL && get_state() == VFIO_DEVICE_STATE_RESUMING,
	     "RESUMING -> STOP with a short stream: %s, still RESUMING", strerror(-r));
	r = ioctl(device, VFIO_DEVICE_RESET);
	n = write(fd, buf, 8);
	fact(r == 0 && get_state() == VFIO_DEVICE_STATE_RUNNING && n < 0 && errno == ENODEV,
	     "VFIO_DEVICE_RESET in RESUMING: RUNNING, and the data_fd answers %s",
	     n < 0 ? strerror(errno) : "ok");
	close(fd);

	/* A combined transition in one SET: the kernel walks the arcs. */
	r = set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd);
	fact(r == 0 && fd >= 0 && get_state() == VFIO_DEVICE_STATE_STOP_COPY,
	     "RUNNING -> STOP_COPY in one SET (the kernel steps through RUNNING_P2P, STOP)");
	r = set_state(VFIO_DEVICE_STATE_RUNNING, &fd2);
	fact(r == 0 && fd2 < 0 && get_state() == VFIO_DEVICE_STATE_RUNNING,
	     "STOP_COPY -> RUNNING in one SET");
	close(fd);
	r = set_state(VFIO_DEVICE_STATE_ERROR, &fd2);
	fact(r == -EINVAL, "SET ERROR: %s", strerror(-r));

	type1_dirty(container);
	close(device);
	close(group);
	close(container);
	if (failures) {
		printf("LAB RESULT: FAIL (%d facts differ)\n", failures);
		return 1;
	}
	printf("LAB RESULT: PASS\n");
	return 0;
}
