/*
 * The iommufd IOMMU object (remote/vfio/vfio_iommufd.c) against the model of
 * the kernel uAPI (tests/lib/vfio_model.c): device bind and attach, exact
 * map/unmap, errors in words, IOVA ranges with the EMSGSIZE protocol, two
 * IOAS kept identical by IOMMU_IOAS_COPY without pinning twice, the memlock
 * budget — and a sweep that fails every kernel call of a whole session in
 * turn, in the style of the kernel's iommufd_fail_nth selftest, checking
 * that nothing is ever left half applied or leaked.
 *
 * A few tests drive the model directly, to pin down the kernel behaviours
 * the implementation depends on.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fail_nth.h"
#include "iommufd_uapi.h"
#include "vfio_iommu.h"
#include "vfio_model.h"

#define BDF0	"0000:00:03.0"
#define BDF1	"0000:00:04.0"
#define REGSZ	0x10000ull /* 16 pages */
#define NREG	3
#define MAX_MAP 16

static struct vfio_model *m;
static const struct vfio_sys *sys;
static void *mem[NREG];

static const uint64_t reg_iova[NREG] = { 0x100000, 0x200000, 0x300000 };

static void setup(void)
{
	m = vfio_model_new();
	ck_assert_ptr_nonnull(m);
	sys = vfio_model_sys(m);
	ck_assert_int_eq(vfio_model_add_device(m, BDF0, 5, "vfio-pci"), 0);
	ck_assert_int_eq(vfio_model_add_device(m, BDF1, 6, "vfio-pci"), 1);
	for (int i = 0; i < NREG; i++) {
		mem[i] = mmap(NULL, REGSZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
			      0);
		ck_assert_ptr_ne(mem[i], MAP_FAILED);
	}
}

static void teardown(void)
{
	for (int i = 0; i < NREG; i++)
		munmap(mem[i], REGSZ);
	vfio_model_free(m);
	m = NULL;
}

static void expect_err(const struct mpdev_error *err, int r, int code, const char *words)
{
	ck_assert_int_eq(r, -code);
	ck_assert_int_eq(err->code, code);
	ck_assert_msg(strstr(err->msg, words), "'%s' lacks '%s'", err->msg, words);
}

static struct vfio_iommu *create(unsigned nr_ioas)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = NULL;

	ck_assert_msg(vfio_iommufd_create(sys, nr_ioas, &io, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(io);
	return io;
}

static int open_dev(struct vfio_iommu *io, const char *bdf)
{
	struct mpdev_error err = { 0 };
	int fd = -1;

	ck_assert_msg(io->ops->open_device(io, bdf, &fd, &err) == 0, "%s", err.msg);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void close_fd(int fd)
{
	sys->close(sys->opaque, fd);
}

/* The areas of IOAS number k (by id order) of the live context. */
static ssize_t ioas_maps(size_t k, struct vfio_model_mapping *out)
{
	uint32_t ids[8];
	size_t n = vfio_model_ioas_list(m, ids, 8);

	ck_assert_uint_gt(n, k);
	return vfio_model_ioas_mappings(m, ids[k], out, MAX_MAP);
}

static void expect_maps(size_t k, const uint64_t *iova, const uint64_t *len, size_t n)
{
	struct vfio_model_mapping got[MAX_MAP];
	ssize_t g = ioas_maps(k, got);

	ck_assert_int_eq(g, (ssize_t)n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(got[i].iova, iova[i]);
		ck_assert_uint_eq(got[i].length, len[i]);
	}
}

/* ---- the object against the model ---- */

START_TEST(t_available_and_create)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = NULL;

	ck_assert(vfio_iommufd_available(sys));
	vfio_model_set_iommufd(m, false);
	ck_assert(!vfio_iommufd_available(sys));
	expect_err(&err, vfio_iommufd_create(sys, 1, &io, &err), ENOENT, "CONFIG_IOMMUFD");
	ck_assert_ptr_null(io);
	ck_assert_int_eq(vfio_model_open_fds(m), 0);
	vfio_model_set_iommufd(m, true);
	io = create(1);
	ck_assert_str_eq(io->ops->name, "iommufd");
	ck_assert_int_eq(vfio_model_open_fds(m), 1);
	io->ops->destroy(io);
	ck_assert_int_eq(vfio_model_open_fds(m), 0);
	ck_assert_int_eq(vfio_model_iommufd_contexts(m), 0);
}
END_TEST

START_TEST(t_open_device)
{
	struct vfio_iommu *io = create(1);
	struct vfio_model_device st;
	uint32_t ids[4];
	int fd = open_dev(io, BDF0);

	ck_assert_int_eq(vfio_model_device_state(m, BDF0, &st), 0);
	ck_assert(st.bound);
	ck_assert_uint_ne(st.devid, 0);
	ck_assert_uint_ne(st.hwpt_id, 0);
	ck_assert_uint_eq(vfio_model_ioas_list(m, ids, 4), 1);
	ck_assert_uint_eq(st.ioas_id, ids[0]);
	ck_assert_uint_ne(st.hwpt_id, st.ioas_id); /* ATTACH answers the page table's id */
	/* The device fd works: edu's ident through BAR0. */
	{
		uint32_t v = 0;

		ck_assert_int_eq(sys->pread(sys->opaque, fd, &v, 4, 0), 4);
		ck_assert_uint_eq(v, 0x010000ed);
	}
	/* With nr_ioas 1 the second device shares the IOAS. */
	{
		int fd1 = open_dev(io, BDF1);
		struct vfio_model_device st1;

		ck_assert_int_eq(vfio_model_device_state(m, BDF1, &st1), 0);
		ck_assert_uint_eq(st1.ioas_id, st.ioas_id);
		ck_assert_uint_eq(vfio_model_ioas_list(m, ids, 4), 1);
		close_fd(fd1);
	}
	close_fd(fd);
	ck_assert_int_eq(vfio_model_device_state(m, BDF0, &st), 0);
	ck_assert(!st.bound);
	io->ops->destroy(io);
	ck_assert_int_eq(vfio_model_open_fds(m), 0);
	ck_assert_int_eq(vfio_model_iommufd_objects(m), 0);
}
END_TEST

START_TEST(t_open_device_errors)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	int fd = -1;

	ck_assert_int_eq(vfio_model_add_device(m, "0000:00:05.0", 7, "e1000e"), 0);
	expect_err(&err, io->ops->open_device(io, "0000:00:05.0", &fd, &err), ENODEV, "e1000e");
	expect_err(&err, io->ops->open_device(io, "0000:00:09.0", &fd, &err), ENODEV,
		   "no PCI device");
	/* No interrupt remapping: BIND is refused, and the cdev is closed again. */
	vfio_model_set_msi_isolated(m, false);
	expect_err(&err, io->ops->open_device(io, BDF0, &fd, &err), EPERM, "interrupt remapping");
	ck_assert_int_eq(vfio_model_open_fds(m), 1);
	vfio_model_set_msi_isolated(m, true);
	/* A group member on a host driver: the kernel refuses DMA ownership; words name it. */
	ck_assert_int_eq(vfio_model_add_device(m, "0000:00:06.0", 6, "snd_hda_intel"), 0);
	expect_err(&err, io->ops->open_device(io, BDF1, &fd, &err), EBUSY, "snd_hda_intel");
	ck_assert_int_eq(vfio_model_open_fds(m), 1);
	ck_assert_int_eq(vfio_model_iommufd_objects(m), 0); /* no IOAS left over either */
	/* Maps and info before any device: no IOAS to use. */
	expect_err(&err, io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), ENODEV,
		   "no device");
	io->ops->destroy(io);
	ck_assert_int_eq(vfio_model_open_fds(m), 0);
}
END_TEST

START_TEST(t_map_unmap)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	int fd = open_dev(io, BDF0);
	struct vfio_model_mapping got[MAX_MAP];

	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	ck_assert_int_eq(io->ops->map(io, reg_iova[1], REGSZ, mem[1], false, &err), 0);
	ck_assert_int_eq(ioas_maps(0, got), 2);
	ck_assert_uint_eq(got[0].iova, reg_iova[0]);
	ck_assert_uint_eq(got[0].length, REGSZ);
	ck_assert_uint_eq(got[0].vaddr, (uintptr_t)mem[0]);
	ck_assert(got[0].writable);
	ck_assert(!got[1].writable);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 2 * REGSZ / VFIO_MODEL_PAGE_SIZE);
	ck_assert_int_eq(io->ops->unmap(io, reg_iova[0], REGSZ, &err), 0);
	expect_maps(0, &reg_iova[1], (uint64_t[]){ REGSZ }, 1);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), REGSZ / VFIO_MODEL_PAGE_SIZE);
	/* The same range again: it is gone. */
	expect_err(&err, io->ops->unmap(io, reg_iova[0], REGSZ, &err), ENOENT, "not a mapping");
	ck_assert_int_eq(io->ops->unmap(io, reg_iova[1], REGSZ, &err), 0);
	ck_assert_int_eq(ioas_maps(0, got), 0);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
	close_fd(fd);
	io->ops->destroy(io);
}
END_TEST

START_TEST(t_overlap_and_reserved)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	int fd = open_dev(io, BDF0);

	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	expect_err(&err, io->ops->map(io, reg_iova[0] + 0x1000, REGSZ, mem[1], true, &err), EEXIST,
		   "IOMMU_IOAS_MAP [0x101000, 0x111000): File exists");
	/* The MSI window is reserved by the attached device: EINVAL from the kernel. */
	expect_err(&err, io->ops->map(io, VFIO_MODEL_MSI_START, REGSZ, mem[1], true, &err), EINVAL,
		   "reserved");
	/* Unaligned to the domain's page size. */
	expect_err(&err, io->ops->map(io, reg_iova[1] + 0x800, REGSZ, mem[1], true, &err), EINVAL,
		   "IOMMU_IOAS_MAP");
	expect_maps(0, &reg_iova[0], (uint64_t[]){ REGSZ }, 1);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), REGSZ / VFIO_MODEL_PAGE_SIZE);
	close_fd(fd);
	io->ops->destroy(io);
}
END_TEST

START_TEST(t_partial_unmap_refused)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	int fd = open_dev(io, BDF0);
	uint32_t ids[2];
	struct iommu_ioas_unmap um = { .size = sizeof(um), .iova = reg_iova[0], .length = 0x1000 };
	int ifd;

	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	expect_err(&err, io->ops->unmap(io, reg_iova[0], 0x1000, &err), ENOENT, "not a mapping");
	expect_err(&err, io->ops->unmap(io, reg_iova[0], 2 * REGSZ, &err), ENOENT, "not a mapping");
	/* The kernel itself refuses a split with ENOENT, and keeps the area. */
	vfio_model_ioas_list(m, ids, 2);
	um.ioas_id = ids[0];
	ifd = VFIO_MODEL_FD_BASE; /* the first model fd is /dev/iommu */
	ck_assert_int_eq(sys->ioctl(sys->opaque, ifd, IOMMU_IOAS_UNMAP, &um), -1);
	ck_assert_int_eq(errno, ENOENT);
	expect_maps(0, &reg_iova[0], (uint64_t[]){ REGSZ }, 1);
	close_fd(fd);
	io->ops->destroy(io);
}
END_TEST

START_TEST(t_info_ranges_grow)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	struct vfio_iommu_info info;
	int fd = open_dev(io, BDF0);
	unsigned long before = vfio_model_calls(m);

	ck_assert_int_eq(io->ops->get_info(io, &info, &err), 0);
	/* num_iovas 0 -> EMSGSIZE with the count -> the real call. */
	ck_assert_uint_eq(vfio_model_calls(m) - before, 2);
	ck_assert_int_eq(info.kind, VFIO_IOMMU_IOMMUFD);
	ck_assert_uint_eq(info.pgsize_bitmap, 4096);
	ck_assert_uint_eq(info.dma_avail, UINT32_MAX);
	ck_assert_uint_eq(info.n_ranges, 2);
	ck_assert_uint_eq(info.ranges[0].start, 0);
	ck_assert_uint_eq(info.ranges[0].last, VFIO_MODEL_MSI_START - 1);
	ck_assert_uint_eq(info.ranges[1].start, VFIO_MODEL_MSI_LAST + 1);
	ck_assert_uint_eq(info.ranges[1].last, VFIO_MODEL_APERTURE_LAST);
	close_fd(fd);
	io->ops->destroy(io);
}
END_TEST

START_TEST(t_two_ioas_copy)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(2);
	struct vfio_model_device s0, s1;
	struct vfio_iommu_info info;
	int fd0 = open_dev(io, BDF0), fd1;
	uint32_t ids[4];

	/* Mapped before the second device: its new IOAS receives a copy. */
	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	fd1 = open_dev(io, BDF1);
	ck_assert_uint_eq(vfio_model_ioas_list(m, ids, 4), 2);
	vfio_model_device_state(m, BDF0, &s0);
	vfio_model_device_state(m, BDF1, &s1);
	ck_assert_uint_ne(s0.ioas_id, s1.ioas_id);
	ck_assert_int_eq(io->ops->map(io, reg_iova[1], REGSZ, mem[1], false, &err), 0);
	for (size_t k = 0; k < 2; k++)
		expect_maps(k, reg_iova, (uint64_t[]){ REGSZ, REGSZ }, 2);
	/* Two IOAS, two domains, one set of pinned pages. */
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 2 * REGSZ / VFIO_MODEL_PAGE_SIZE);
	ck_assert_int_eq(io->ops->get_info(io, &info, &err), 0);
	ck_assert_uint_eq(info.n_ranges, 2);
	ck_assert_int_eq(io->ops->unmap(io, reg_iova[0], REGSZ, &err), 0);
	for (size_t k = 0; k < 2; k++)
		expect_maps(k, &reg_iova[1], (uint64_t[]){ REGSZ }, 1);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), REGSZ / VFIO_MODEL_PAGE_SIZE);
	ck_assert_int_eq(io->ops->unmap(io, reg_iova[1], REGSZ, &err), 0);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
	/* A third device joins the last IOAS. */
	ck_assert_int_eq(vfio_model_add_device(m, "0000:00:07.0", 8, "vfio-pci"), 2);
	{
		int fd2 = open_dev(io, "0000:00:07.0");
		struct vfio_model_device s2;

		vfio_model_device_state(m, "0000:00:07.0", &s2);
		ck_assert_uint_eq(s2.ioas_id, s1.ioas_id);
		close_fd(fd2);
	}
	close_fd(fd0);
	close_fd(fd1);
	io->ops->destroy(io);
	ck_assert_int_eq(vfio_model_iommufd_contexts(m), 0);
}
END_TEST

START_TEST(t_budget)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(2);
	int fd0 = open_dev(io, BDF0), fd1 = open_dev(io, BDF1);

	/* 20 pages: one region fits (16, shared by both IOAS), a second does not. */
	vfio_model_set_memlock_pages(m, 20);
	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	expect_err(&err, io->ops->map(io, reg_iova[1], REGSZ, mem[1], true, &err), ENOMEM,
		   "RLIMIT_MEMLOCK");
	for (size_t k = 0; k < 2; k++)
		expect_maps(k, reg_iova, (uint64_t[]){ REGSZ }, 1);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 16);
	/* Memory that is not mapped cannot be pinned: EFAULT. */
	vfio_model_set_memlock_pages(m, 1000);
	expect_err(&err, io->ops->map(io, reg_iova[1], 0x1000, (void *)0x1000, true, &err), EFAULT,
		   "IOMMU_IOAS_MAP");
	close_fd(fd0);
	close_fd(fd1);
	io->ops->destroy(io);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
}
END_TEST

START_TEST(t_destroy_with_device_open)
{
	struct mpdev_error err = { 0 };
	struct vfio_iommu *io = create(1);
	int fd = open_dev(io, BDF0);

	ck_assert_int_eq(io->ops->map(io, reg_iova[0], REGSZ, mem[0], true, &err), 0);
	/* Against the contract (device fds first), but nothing may be lost: */
	io->ops->destroy(io);
	ck_assert_int_eq(vfio_model_iommufd_contexts(m), 1); /* the bound device holds it */
	close_fd(fd);
	ck_assert_int_eq(vfio_model_iommufd_contexts(m), 0);
	ck_assert_int_eq(vfio_model_open_fds(m), 0);
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
}
END_TEST

/* ---- fault injection: fail every kernel call of a session in turn ---- */

struct session {
	bool late; /* the second device is opened after the maps (its IOAS gets copies) */
	bool opened[2];
	int fd[2];
	bool mapped[NREG];
	int first_err; /* the first step's failure, 0: none yet */
};

/* Every IOAS holds exactly the regions mapped and not unmapped, all IOAS the same. */
static void check_state(const struct session *s, const char *when, unsigned long n)
{
	uint32_t ids[8];
	size_t n_ioas = vfio_model_ioas_list(m, ids, 8), want = 0, opened = 0;

	for (int d = 0; d < 2; d++)
		opened += s->opened[d];
	ck_assert_msg(n_ioas == opened, "n=%lu %s: %zu IOAS for %zu devices", n, when, n_ioas,
		      opened);
	for (int i = 0; i < NREG; i++)
		want += s->mapped[i];
	for (size_t k = 0; k < n_ioas; k++) {
		struct vfio_model_mapping got[MAX_MAP];
		ssize_t g = vfio_model_ioas_mappings(m, ids[k], got, MAX_MAP);
		size_t j = 0;

		ck_assert_msg(g == (ssize_t)want, "n=%lu %s: IOAS %u holds %zd areas, want %zu", n,
			      when, ids[k], g, want);
		for (int i = 0; i < NREG; i++) {
			if (!s->mapped[i])
				continue;
			ck_assert_msg(got[j].iova == reg_iova[i] && got[j].length == REGSZ &&
					      got[j].vaddr == (uintptr_t)mem[i],
				      "n=%lu %s: IOAS %u area %zu is [0x%llx,+0x%llx)", n, when,
				      ids[k], j, (unsigned long long)got[j].iova,
				      (unsigned long long)got[j].length);
			j++;
		}
	}
	ck_assert_msg(vfio_model_pinned_pages(m) ==
			      (n_ioas ? want * REGSZ / VFIO_MODEL_PAGE_SIZE : 0),
		      "n=%lu %s: %llu pages pinned", n, when,
		      (unsigned long long)vfio_model_pinned_pages(m));
	/* Descriptors: /dev/iommu plus the open devices, nothing else. */
	ck_assert_msg(vfio_model_open_fds(m) == 1 + (int)opened, "n=%lu %s: %d model fds", n, when,
		      vfio_model_open_fds(m));
}

/* A failing step says why in words; the first failure names the injected errno. */
static void step_result(struct fail_nth *f, int r, const struct mpdev_error *err)
{
	struct session *s = f->ctx;

	if (r == 0)
		return;
	ck_assert_msg(r < 0 && err->code == -r && err->msg[0], "n=%lu %s failed (%d) without words",
		      f->n, f->step, r);
	/* Later steps may fail as the consequence of the first. */
	if (!s->first_err) {
		ck_assert_msg(strstr(err->msg, strerror(f->err)),
			      "n=%lu %s: '%s' does not say what failed", f->n, f->step, err->msg);
		s->first_err = r;
	}
}

static void open_step(struct fail_nth *f, struct vfio_iommu *io, int d)
{
	const char *bdf[2] = { BDF0, BDF1 };
	struct session *s = f->ctx;
	struct mpdev_error err = { 0 };
	int r;

	fail_nth_step(f, "open_device");
	r = io->ops->open_device(io, bdf[d], &s->fd[d], &err);
	step_result(f, r, &err);
	s->opened[d] = r == 0;
	check_state(s, "after open_device", f->n);
}

/*
 * The happy path: create (2 IOAS), open two devices, map three regions,
 * unmap one, get_info, then close the devices and destroy.
 */
static int session_run(struct fail_nth *f)
{
	struct session *s = f->ctx;
	struct mpdev_error err = { 0 };
	struct vfio_iommu_info info;
	struct vfio_iommu *io = NULL;
	int r;

	*s = (struct session){ .late = s->late, .fd = { -1, -1 } };
	fail_nth_step(f, "create");
	r = vfio_iommufd_create(sys, 2, &io, &err);
	step_result(f, r, &err);
	if (r) {
		ck_assert_ptr_null(io);
		ck_assert_int_eq(vfio_model_open_fds(m), 0);
		return s->first_err;
	}
	open_step(f, io, 0);
	if (!s->late)
		open_step(f, io, 1);
	for (int i = 0; i < NREG; i++) {
		fail_nth_step(f, "map");
		mpdev_error_clear(&err);
		r = io->ops->map(io, reg_iova[i], REGSZ, mem[i], i != 2, &err);
		step_result(f, r, &err);
		s->mapped[i] = r == 0;
		check_state(s, "after map", f->n);
	}
	if (s->late)
		open_step(f, io, 1);
	if (s->mapped[1]) {
		fail_nth_step(f, "unmap");
		mpdev_error_clear(&err);
		r = io->ops->unmap(io, reg_iova[1], REGSZ, &err);
		step_result(f, r, &err);
		if (r == 0)
			s->mapped[1] = false;
		check_state(s, "after unmap", f->n);
	}
	if (s->opened[0] || s->opened[1]) {
		fail_nth_step(f, "get_info");
		mpdev_error_clear(&err);
		r = io->ops->get_info(io, &info, &err);
		step_result(f, r, &err);
		if (r == 0)
			ck_assert_uint_eq(info.n_ranges, 2);
		check_state(s, "after get_info", f->n);
	}
	/* close(2) never keeps a descriptor, so even failing calls here leave nothing. */
	fail_nth_step(f, "teardown");
	for (int d = 0; d < 2; d++)
		if (s->opened[d])
			close_fd(s->fd[d]);
	io->ops->destroy(io);
	return s->first_err;
}

/* Nothing is ever left half applied or leaked, and no failure goes unnoticed. */
static void session_check(struct fail_nth *f, int ret)
{
	if (f->hit)
		ck_assert_msg(ret != 0 || !strcmp(f->hit_step, "teardown"),
			      "n=%lu: a failed call in %s went unnoticed", f->n, f->hit_step);
	ck_assert_msg(vfio_model_open_fds(m) == 0, "n=%lu: %d model fds left", f->n,
		      vfio_model_open_fds(m));
	ck_assert_msg(vfio_model_iommufd_contexts(m) == 0, "n=%lu: iommufd context left", f->n);
	ck_assert_msg(vfio_model_iommufd_objects(m) == 0, "n=%lu: objects left", f->n);
	ck_assert_msg(vfio_model_pinned_pages(m) == 0, "n=%lu: pages left pinned", f->n);
}

static void session_setup(struct fail_nth *f)
{
	setup();
	f->inj = m;
}

static void session_teardown(struct fail_nth *f)
{
	teardown();
}

static void sweep(bool late)
{
	struct session s = { .late = late };
	struct fail_nth f = {
		.name = late ? "fail_nth (late device)" : "fail_nth",
		.injector = &vfio_model_fail_nth_injector,
		.setup = session_setup,
		.run = session_run,
		.check = session_check,
		.teardown = session_teardown,
		.ctx = &s,
	};

	ck_assert_uint_gt(fail_nth_sweep(&f), 10);
}

START_TEST(t_fail_nth)
{
	sweep(false);
}
END_TEST

/* The same with the second device opened after the maps: COPY at open time. */
START_TEST(t_fail_nth_late_device)
{
	sweep(true);
}
END_TEST

/* ---- the model's uAPI, as the implementation relies on it ---- */

static int ufd;

static void raw_setup(void)
{
	setup();
	{
		char path[4200];

		snprintf(path, sizeof(path), "%s/dev/iommu", vfio_model_root(m));
		ufd = sys->open(sys->opaque, path, O_RDWR);
	}
	ck_assert_int_ge(ufd, VFIO_MODEL_FD_BASE);
}

static int kio(unsigned long req, void *arg)
{
	return sys->ioctl(sys->opaque, ufd, req, arg) < 0 ? -errno : 0;
}

static uint32_t raw_ioas(void)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };

	ck_assert_int_eq(kio(IOMMU_IOAS_ALLOC, &a), 0);
	return a.out_ioas_id;
}

static int raw_map(uint32_t ioas, uint64_t iova, uint64_t len, void *va, uint32_t flags)
{
	struct iommu_ioas_map mp = { .size = sizeof(mp),
				     .ioas_id = ioas,
				     .flags = flags | IOMMU_IOAS_MAP_FIXED_IOVA,
				     .user_va = (uintptr_t)va,
				     .length = len,
				     .iova = iova };

	return kio(IOMMU_IOAS_MAP, &mp);
}

START_TEST(t_model_ucmd_sizes)
{
	struct {
		struct iommu_ioas_alloc cmd;
		uint8_t extra;
	} c = { .cmd = { .size = sizeof(c.cmd) - 1 }, .extra = 0xff };

	ck_assert_int_eq(kio(IOMMU_IOAS_ALLOC, &c), -EINVAL);
	c.cmd.size = sizeof(c.cmd) + 1;
	ck_assert_int_eq(kio(IOMMU_IOAS_ALLOC, &c), -E2BIG);
	c.extra = 0;
	ck_assert_int_eq(kio(IOMMU_IOAS_ALLOC, &c), 0);
	ck_assert_uint_eq(c.cmd.out_ioas_id, 1);
	ck_assert_int_eq(kio(IOMMU_IOAS_ALLOC, NULL), -EFAULT);
	ck_assert_int_eq(kio(_IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE - 1), &c), -ENOTTY);
	{
		struct iommu_destroy d = { .size = sizeof(d), .id = 99 };

		ck_assert_int_eq(kio(IOMMU_DESTROY, &d), -ENOENT);
		d.id = 1;
		ck_assert_int_eq(kio(IOMMU_DESTROY, &d), 0);
	}
}
END_TEST

START_TEST(t_model_map_copy_unmap)
{
	uint32_t a = raw_ioas(), b = raw_ioas();
	const uint32_t rw = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	struct iommu_ioas_copy cp = { .size = sizeof(cp),
				      .flags = IOMMU_IOAS_MAP_FIXED_IOVA,
				      .dst_ioas_id = b,
				      .src_ioas_id = a,
				      .length = 0x2000,
				      .dst_iova = 0x100000,
				      .src_iova = 0x100000 };
	struct iommu_ioas_unmap um = { .size = sizeof(um), .ioas_id = a };

	ck_assert_int_eq(raw_map(a, 0x100000, REGSZ, mem[0], 0), -EINVAL); /* no R/W */
	ck_assert_int_eq(raw_map(a, 0x100000, REGSZ, mem[0], rw), 0);
	ck_assert_int_eq(raw_map(a, 0x10f000, 0x2000, mem[1], rw), -EEXIST);
	ck_assert_int_eq(raw_map(a, 0x0ff000, 0x1000, mem[1], rw), 0); /* adjacent is fine */
	/* COPY wants READABLE/WRITEABLE too. */
	ck_assert_int_eq(kio(IOMMU_IOAS_COPY, &cp), -EINVAL);
	/* Any covered sub-range copies, even across two areas... */
	cp.flags |= IOMMU_IOAS_MAP_READABLE;
	cp.src_iova = 0x0ff000;
	cp.dst_iova = 0x500000;
	ck_assert_int_eq(kio(IOMMU_IOAS_COPY, &cp), 0);
	/* ...but not past the end of what is mapped. */
	cp.src_iova = 0x100000 + REGSZ - 0x1000;
	cp.dst_iova = 0x600000;
	ck_assert_int_eq(kio(IOMMU_IOAS_COPY, &cp), -ENOENT);
	/* No double pinning without domains: nothing is pinned at all yet. */
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
	/* A split unmap: ENOENT; a range with nothing: ENOENT; a superset: fine. */
	um.iova = 0x100000;
	um.length = 0x1000;
	ck_assert_int_eq(kio(IOMMU_IOAS_UNMAP, &um), -ENOENT);
	um.iova = 0x900000;
	ck_assert_int_eq(kio(IOMMU_IOAS_UNMAP, &um), -ENOENT);
	um.iova = 0x0f0000;
	um.length = 0x100000;
	ck_assert_int_eq(kio(IOMMU_IOAS_UNMAP, &um), 0);
	ck_assert_uint_eq(um.length, REGSZ + 0x1000);
	/* Unmap-all succeeds on an empty IOAS. */
	um.iova = 0;
	um.length = UINT64_MAX;
	ck_assert_int_eq(kio(IOMMU_IOAS_UNMAP, &um), 0);
	ck_assert_uint_eq(um.length, 0);
	ck_assert_int_eq(vfio_model_ioas_mappings(m, b, (struct vfio_model_mapping[4]){ 0 }, 4), 2);
}
END_TEST

START_TEST(t_model_iova_ranges)
{
	uint32_t a = raw_ioas();
	struct iommu_iova_range r[4] = { 0 };
	struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = a };

	/* No domain: the whole space, alignment 1. */
	ck_assert_int_eq(kio(IOMMU_IOAS_IOVA_RANGES, &q), -EMSGSIZE);
	ck_assert_uint_eq(q.num_iovas, 1);
	q.allowed_iovas = (uintptr_t)r;
	ck_assert_int_eq(kio(IOMMU_IOAS_IOVA_RANGES, &q), 0);
	ck_assert_uint_eq(r[0].start, 0);
	ck_assert_uint_eq(r[0].last, UINT64_MAX);
	ck_assert_uint_eq(q.out_iova_alignment, 1);
	/* A device attached: aperture and MSI window reserved; a short buffer still filled. */
	{
		char path[4200];
		int dfd;
		struct vfio_device_bind_iommufd bd = { .argsz = sizeof(bd), .iommufd = ufd };
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = a };
		struct iommu_destroy d = { .size = sizeof(d), .id = a };

		snprintf(path, sizeof(path), "%s/dev/vfio/devices/vfio0", vfio_model_root(m));
		dfd = sys->open(sys->opaque, path, O_RDWR);
		ck_assert_int_ge(dfd, 0);
		/* Before BIND the device fd does nothing. */
		ck_assert_int_eq(sys->ioctl(sys->opaque, dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at),
				 -1);
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_int_eq(sys->ioctl(sys->opaque, dfd, VFIO_DEVICE_BIND_IOMMUFD, &bd), 0);
		ck_assert_int_eq(sys->ioctl(sys->opaque, dfd, VFIO_DEVICE_BIND_IOMMUFD, &bd), -1);
		ck_assert_int_eq(errno, EINVAL); /* bound once */
		ck_assert_int_eq(sys->ioctl(sys->opaque, dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at),
				 0);
		ck_assert_uint_ne(at.pt_id, a);
		memset(r, 0, sizeof(r));
		q.num_iovas = 1;
		ck_assert_int_eq(kio(IOMMU_IOAS_IOVA_RANGES, &q), -EMSGSIZE);
		ck_assert_uint_eq(q.num_iovas, 2);
		ck_assert_uint_eq(r[0].last, VFIO_MODEL_MSI_START - 1);
		ck_assert_uint_eq(r[1].last, 0);
		ck_assert_uint_eq(q.out_iova_alignment, 4096);
		/* The IOAS cannot go while the device uses it. */
		ck_assert_int_eq(kio(IOMMU_DESTROY, &d), -EBUSY);
		sys->close(sys->opaque, dfd);
		ck_assert_int_eq(kio(IOMMU_DESTROY, &d), 0);
	}
}
END_TEST

/* The legacy container and the edu device, as far as the model goes. */
START_TEST(t_model_container_and_device)
{
	char path[4200];
	int c, g, d, grp = 5;
	struct vfio_group_status st = { .argsz = sizeof(st) };
	struct vfio_iommu_type1_info head = { .argsz = sizeof(head) };
	struct vfio_iommu_type1_dma_map mp = { .argsz = sizeof(mp),
					       .flags = VFIO_DMA_MAP_FLAG_READ |
							VFIO_DMA_MAP_FLAG_WRITE,
					       .vaddr = (uintptr_t)mem[0],
					       .iova = 0x100000,
					       .size = REGSZ };
	struct vfio_iommu_type1_dma_unmap um = { .argsz = sizeof(um),
						 .iova = 0x100000,
						 .size = 0x1000 };
	uint8_t buf[512];
	uint32_t v;

	snprintf(path, sizeof(path), "%s/dev/vfio/vfio", vfio_model_root(m));
	c = sys->open(sys->opaque, path, O_RDWR);
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_GET_API_VERSION, NULL), VFIO_API_VERSION);
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_CHECK_EXTENSION,
				    (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU),
			 1);
	snprintf(path, sizeof(path), "%s/dev/vfio/%d", vfio_model_root(m), grp);
	g = sys->open(sys->opaque, path, O_RDWR);
	ck_assert_int_ge(g, 0);
	ck_assert_int_eq(sys->open(sys->opaque, path, O_RDWR), -1); /* one opener */
	ck_assert_int_eq(errno, EBUSY);
	ck_assert_int_eq(sys->ioctl(sys->opaque, g, VFIO_GROUP_GET_STATUS, &st), 0);
	ck_assert_uint_eq(st.flags, VFIO_GROUP_FLAGS_VIABLE);
	/* No device fd before the container has an IOMMU. */
	ck_assert_int_eq(sys->ioctl(sys->opaque, g, VFIO_GROUP_GET_DEVICE_FD, (void *)BDF0), -1);
	ck_assert_int_eq(
		sys->ioctl(sys->opaque, c, VFIO_SET_IOMMU, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU),
		-1); /* no group yet */
	ck_assert_int_eq(sys->ioctl(sys->opaque, g, VFIO_GROUP_SET_CONTAINER, &c), 0);
	ck_assert_int_eq(
		sys->ioctl(sys->opaque, c, VFIO_SET_IOMMU, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU),
		0);
	/* GET_INFO: argsz grows to take the capability chain. */
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_IOMMU_GET_INFO, &head), 0);
	ck_assert_uint_gt(head.argsz, sizeof(head));
	ck_assert_uint_eq(head.cap_offset, 0);
	ck_assert(head.flags & VFIO_IOMMU_INFO_CAPS);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &head, sizeof(head));
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_IOMMU_GET_INFO, buf), 0);
	{
		const struct vfio_iommu_type1_info *ti = (const void *)buf;
		uint32_t off = ti->cap_offset;
		int seen = 0;

		ck_assert_uint_eq(off, sizeof(*ti));
		while (off) {
			const struct vfio_info_cap_header *h = (const void *)(buf + off);

			if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
				ck_assert_uint_eq(
					((const struct vfio_iommu_type1_info_dma_avail *)h)->avail,
					65535);
				seen++;
			}
			if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
				ck_assert_uint_eq(
					((const struct vfio_iommu_type1_info_cap_iova_range *)h)
						->nr_iovas,
					2);
				seen++;
			}
			off = h->next;
		}
		ck_assert_int_eq(seen, 2);
	}
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_IOMMU_MAP_DMA, &mp), 0);
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_IOMMU_MAP_DMA, &mp), -1);
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_int_eq(sys->ioctl(sys->opaque, c, VFIO_IOMMU_UNMAP_DMA, &um), -1);
	ck_assert_int_eq(errno, EINVAL); /* type1 v2: no splitting */
	/* The device, through the group. */
	d = sys->ioctl(sys->opaque, g, VFIO_GROUP_GET_DEVICE_FD, (void *)BDF0);
	ck_assert_int_ge(d, VFIO_MODEL_FD_BASE);
	{
		struct vfio_device_info di = { .argsz = sizeof(di) };
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = 0 };
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_INTX_IRQ_INDEX };

		ck_assert_int_eq(sys->ioctl(sys->opaque, d, VFIO_DEVICE_GET_INFO, &di), 0);
		ck_assert_uint_eq(di.num_regions, 9);
		ck_assert_uint_eq(di.num_irqs, 5);
		ck_assert_uint_eq(di.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
		ck_assert_int_eq(sys->ioctl(sys->opaque, d, VFIO_DEVICE_GET_REGION_INFO, &ri), 0);
		ck_assert_uint_eq(ri.size, VFIO_MODEL_BAR0_SIZE);
		ck_assert_uint_gt(ri.argsz, sizeof(ri));
		ck_assert_int_eq(sys->ioctl(sys->opaque, d, VFIO_DEVICE_GET_IRQ_INFO, &ii), 0);
		ck_assert_uint_eq(ii.count, 1);
		ck_assert_uint_eq(ii.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
						    VFIO_IRQ_INFO_AUTOMASKED);
	}
	v = 0x12345678;
	ck_assert_int_eq(sys->pwrite(sys->opaque, d, &v, 4, 4), 4);
	ck_assert_int_eq(sys->pread(sys->opaque, d, &v, 4, 4), 4);
	ck_assert_uint_eq(v, ~0x12345678u);
	ck_assert_int_eq(
		sys->pread(sys->opaque, d, &v, 4, (off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40), 4);
	ck_assert_uint_eq(v, 0x11e81234);
	/* INTx through an eventfd: edu raises, the model signals and automasks. */
	{
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		uint8_t sb[sizeof(struct vfio_irq_set) + 4];
		struct vfio_irq_set *set = (void *)sb;
		struct vfio_model_device ms;
		uint64_t cnt = 0;

		set->argsz = sizeof(sb);
		set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		set->index = VFIO_PCI_INTX_IRQ_INDEX;
		set->start = 0;
		set->count = 1;
		memcpy(set->data, &efd, 4);
		ck_assert_int_eq(sys->ioctl(sys->opaque, d, VFIO_DEVICE_SET_IRQS, set), 0);
		v = 1;
		ck_assert_int_eq(sys->pwrite(sys->opaque, d, &v, 4, 0x60), 4);
		ck_assert_int_eq(read(efd, &cnt, sizeof(cnt)), 8);
		vfio_model_device_state(m, BDF0, &ms);
		ck_assert(ms.irqs[VFIO_PCI_INTX_IRQ_INDEX].masked);
		ck_assert_int_eq(ms.irqs[VFIO_PCI_INTX_IRQ_INDEX].trigger[0], efd);
		close(efd);
	}
	sys->close(sys->opaque, d);
	sys->close(sys->opaque, g);
	ck_assert_int_eq(vfio_model_container_mappings(m, NULL, 0), -ENOENT); /* group gone */
	sys->close(sys->opaque, c);
	ck_assert_int_eq(vfio_model_open_fds(m), 1); /* /dev/iommu of the fixture */
	ck_assert_uint_eq(vfio_model_pinned_pages(m), 0);
}
END_TEST

static void raw_teardown(void)
{
	if (ufd >= 0)
		sys->close(sys->opaque, ufd);
	teardown();
}

static Suite *suite(void)
{
	Suite *s = suite_create("vfio_iommufd");
	TCase *tc = tcase_create("iommufd");
	TCase *fi = tcase_create("fail_nth");
	TCase *raw = tcase_create("model");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, t_available_and_create);
	tcase_add_test(tc, t_open_device);
	tcase_add_test(tc, t_open_device_errors);
	tcase_add_test(tc, t_map_unmap);
	tcase_add_test(tc, t_overlap_and_reserved);
	tcase_add_test(tc, t_partial_unmap_refused);
	tcase_add_test(tc, t_info_ranges_grow);
	tcase_add_test(tc, t_two_ioas_copy);
	tcase_add_test(tc, t_budget);
	tcase_add_test(tc, t_destroy_with_device_open);
	suite_add_tcase(s, tc);

	/* Each run of a sweep sets up and tears down a model of its own. */
	tcase_add_test(fi, t_fail_nth);
	tcase_add_test(fi, t_fail_nth_late_device);
	tcase_set_timeout(fi, 60);
	suite_add_tcase(s, fi);

	tcase_add_checked_fixture(raw, raw_setup, raw_teardown);
	tcase_add_test(raw, t_model_ucmd_sizes);
	tcase_add_test(raw, t_model_map_copy_unmap);
	tcase_add_test(raw, t_model_iova_ranges);
	tcase_add_test(raw, t_model_container_and_device);
	suite_add_tcase(s, raw);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
