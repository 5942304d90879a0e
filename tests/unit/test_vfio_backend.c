/*
 * The vfio backend and the memory table on the model of the kernel's uAPI
 * (tests/lib/vfio_model.c): clear errors for the usual mistakes, IOVA-range
 * and budget checks, and fault injection in the style of the kernel's
 * iommufd_fail_nth selftest: a sequence of table changes that succeeds is
 * run again with each kernel call failing in turn; after every failure the
 * IOMMU holds exactly the table the remote believes in force (nothing half
 * applied), the remote stays usable, and nothing leaks.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "dma.h"
#include "fail_nth.h"
#include "iohub.h"
#include "testutil.h"
#include "vfio.h"
#include "vfio_model.h"

#define BDF "0000:00:03.0"
#define MIB (1ull << 20)

#ifndef VFIO_BACKEND_TEST_KINDS
#define VFIO_BACKEND_TEST_KINDS 2 /* container, iommufd */
#endif

struct rig {
	struct vfio_model *model;
	struct event_base *base;
	struct iohub *hub;
	struct backend_host host;
	struct backend *be;
	struct dma_table dma;
	int memfd;
	uint64_t memsize;
};

static int host_dma(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
		    struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOSYS, "not used");
}

static int host_dma_w(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
		      struct mpdev_error *err)
{
	return mpdev_error_set(err, ENOSYS, "not used");
}

static int host_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	return 0;
}

static int host_vec(struct backend_host *h, unsigned idx, unsigned vec, struct mpdev_error *err)
{
	return 0;
}

static void rig_init(struct rig *r)
{
	struct mpdev_error err = { 0 };

	memset(r, 0, sizeof(*r));
	r->model = vfio_model_new();
	ck_assert_ptr_nonnull(r->model);
	ck_assert_int_ge(vfio_model_add_device(r->model, BDF, 7, "vfio-pci"), 0);
	r->base = event_base_new();
	ck_assert_int_eq(iohub_create(r->base, 32, &r->hub, &err), 0);
	r->host = (struct backend_host){ .dma_read = host_dma,
					 .dma_write = host_dma_w,
					 .set_intx = host_intx,
					 .signal_vector = host_vec,
					 .hub = r->hub };
	r->memsize = 16 * MIB;
	r->memfd = testutil_memfd(r->memsize, F_SEAL_SHRINK | F_SEAL_GROW);
}

static int rig_backend(struct rig *r, const char *iommu, struct mpdev_error *err)
{
	const struct backend_config cfg = { .device = "vfio:" BDF,
					    .iommu = iommu,
					    .intx = "auto",
					    .sys = vfio_model_sys(r->model) };
	int ret = vfio_backend_create(&cfg, r->base, &r->host, &r->be, err);

	dma_table_init(&r->dma, ret == 0 ? r->be : NULL, 1024);
	return ret;
}

static void rig_free(struct rig *r)
{
	dma_table_clear(&r->dma);
	if (r->be)
		r->be->ops->destroy(r->be);
	r->be = NULL;
	/* Everything the backend opened in the "kernel" is closed again. */
	ck_assert_int_eq(vfio_model_open_fds(r->model), 0);
	iohub_destroy(r->hub);
	event_base_free(r->base);
	close(r->memfd);
	vfio_model_free(r->model);
}

static struct dma_new_region region(struct rig *r, uint64_t gpa, uint64_t size, uint64_t off)
{
	return (struct dma_new_region){
		.gpa = gpa, .size = size, .fd_offset = off, .fd = r->memfd
	};
}

/* The IOMMU holds exactly the table's regions (iova, length, access). */
static void assert_iommu_matches(struct rig *r, const char *iommu)
{
	struct vfio_model_mapping maps[64];
	ssize_t n;

	if (!strcmp(iommu, "container")) {
		n = vfio_model_container_mappings(r->model, maps, 64);
	} else {
		uint32_t ids[4];

		ck_assert_uint_ge(vfio_model_ioas_list(r->model, ids, 4), 1);
		n = vfio_model_ioas_mappings(r->model, ids[0], maps, 64);
	}
	ck_assert_int_ge(n, 0);
	ck_assert_msg((size_t)n == r->dma.map.n, "IOMMU has %zd mappings, the table %zu", n,
		      r->dma.map.n);
	for (size_t i = 0; i < r->dma.map.n; i++) {
		const struct memtable_entry *e = &r->dma.map.v[i];

		ck_assert_uint_eq(maps[i].iova, e->gpa);
		ck_assert_uint_eq(maps[i].length, e->size);
		ck_assert_uint_eq(maps[i].vaddr, (uintptr_t)e->host);
		ck_assert(maps[i].writable == !e->read_only);
	}
}

static const char *const kinds[] = { "container", "iommufd" };

START_TEST(device_and_mappings)
{
	const char *iommu = kinds[_i];
	struct mpdev_error err = { 0 };
	struct backend_device_info info;
	struct backend_iommu_info ii;
	struct dma_new_region v[2];
	struct rig r;
	uint32_t ident = 0;

	rig_init(&r);
	ck_assert_msg(rig_backend(&r, iommu, &err) == 0, "%s", err.msg);
	r.be->ops->get_info(r.be, &info);
	ck_assert_uint_eq(info.vendor_id, 0x1234);
	ck_assert_uint_eq(info.device_id, 0x11e8);
	ck_assert_uint_eq(info.regions[BACKEND_REGION_BAR0].size, VFIO_MODEL_BAR0_SIZE);
	ck_assert_uint_eq(info.irqs[BACKEND_IRQ_INTX].count, 1);
	ck_assert_int_eq(r.be->ops->region_read(r.be, BACKEND_REGION_BAR0, 0, &ident, 4, &err), 0);
	ck_assert_uint_eq(ident, 0x010000ed);

	ck_assert_int_eq(r.be->ops->iommu_info(r.be, &ii, &err), 0);
	ck_assert_uint_eq(ii.kind, strcmp(iommu, "container") ? 3 : 2);
	ck_assert_uint_ge(ii.n_ranges, 2); /* the MSI window is cut out */

	v[0] = region(&r, 0x100000, 4 * MIB, 0);
	v[1] = region(&r, 0x1000000, 4 * MIB, 4 * MIB);
	v[1].read_only = true;
	ck_assert_msg(dma_table_set(&r.dma, v, 2, &err) == 0, "%s", err.msg);
	assert_iommu_matches(&r, iommu);
	ck_assert_int_eq(dma_table_remove(&r.dma, 0x100000, 4 * MIB, &err), 0);
	assert_iommu_matches(&r, iommu);

	/* A region across the MSI window: refused before the kernel sees it, with the ranges named.
	 */
	v[0] = region(&r, VFIO_MODEL_MSI_START - MIB, 4 * MIB, 0);
	ck_assert_int_eq(dma_table_add(&r.dma, &v[0], &err), -ERANGE);
	ck_assert_ptr_nonnull(strstr(err.msg, "outside what the IOMMU can map"));
	assert_iommu_matches(&r, iommu);
	rig_free(&r);
}
END_TEST

START_TEST(mapping_budget)
{
	struct mpdev_error err = { 0 };
	struct dma_new_region v;
	struct rig r;

	rig_init(&r);
	vfio_model_set_dma_entry_limit(r.model, 2);
	ck_assert_int_eq(rig_backend(&r, "container", &err), 0);
	for (int i = 0; i < 2; i++) {
		v = region(&r, 0x100000 + (uint64_t)i * MIB, MIB, (uint64_t)i * MIB);
		ck_assert_int_eq(dma_table_add(&r.dma, &v, &err), 0);
	}
	v = region(&r, 0x400000, MIB, 2 * MIB);
	ck_assert_int_eq(dma_table_add(&r.dma, &v, &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "no more mappings"));
	assert_iommu_matches(&r, "container");
	rig_free(&r);
}
END_TEST

START_TEST(usual_mistakes_have_clear_errors)
{
	struct mpdev_error err = { 0 };
	struct rig r;

	/* Bound to another driver. */
	rig_init(&r);
	ck_assert_int_ge(vfio_model_add_device(r.model, "0000:00:04.0", 8, "e1000e"), 0);
	{
		const struct backend_config cfg = { .device = "vfio:0000:00:04.0",
						    .iommu = "container",
						    .sys = vfio_model_sys(r.model) };

		ck_assert_int_eq(vfio_backend_create(&cfg, r.base, &r.host, &r.be, &err), -ENODEV);
		ck_assert_ptr_nonnull(strstr(err.msg, "bound to e1000e, not vfio-pci"));
	}
	/* A group that is not viable: the other device is named. */
	ck_assert_int_ge(vfio_model_add_device(r.model, "0000:00:05.0", 7, "snd_hda_intel"), 0);
	vfio_model_set_group_viable(r.model, 7, false);
	ck_assert_int_eq(rig_backend(&r, "container", &err), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err.msg, "0000:00:05.0 (snd_hda_intel)"));
	rig_free(&r);

	/* No interrupt remapping. */
	rig_init(&r);
	vfio_model_set_msi_isolated(r.model, false);
	ck_assert_int_eq(rig_backend(&r, "container", &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "remap"));
	rig_free(&r);

	/* No such device, and a bad spec. */
	rig_init(&r);
	{
		const struct backend_config cfg = { .device = "vfio:0000:09:00.0",
						    .iommu = "container",
						    .sys = vfio_model_sys(r.model) };

		ck_assert_int_eq(vfio_backend_create(&cfg, r.base, &r.host, &r.be, &err), -ENODEV);
		ck_assert_ptr_nonnull(strstr(err.msg, "no PCI device"));
	}
	ck_assert_int_eq(rig_backend(&r, "sideways", &err), -EINVAL);
	rig_free(&r);
}
END_TEST

/* ---- fault injection: every kernel call of a connection's sequence fails in turn ---- */

struct sequence {
	struct rig r;
	const char *iommu;
	struct dma_new_region a[3], b[3], extra;
};

static void sequence_setup(struct fail_nth *f)
{
	struct sequence *q = f->ctx;

	rig_init(&q->r);
	f->inj = q->r.model;
}

/* A failed step's errno, kept if it is the first. */
static void first_failure(int *first, int r)
{
	if (r < 0 && !*first)
		*first = r;
}

/*
 * The sequence a connection makes: open the device, set a table, change it
 * (sharing one region), add and remove one region. After each step the
 * IOMMU holds exactly the table the remote believes in force.
 */
static int sequence_run(struct fail_nth *f)
{
	struct sequence *q = f->ctx;
	struct rig *r = &q->r;
	struct mpdev_error err = { 0 };
	int first = 0;

	fail_nth_step(f, "create");
	if (rig_backend(r, q->iommu, &err) < 0) {
		ck_assert_msg(err.msg[0], "creation failed without words");
		return -err.code;
	}
	q->a[0] = region(r, 0x100000, MIB, 0);
	q->a[1] = region(r, 0x200000, MIB, MIB);
	q->a[2] = region(r, 0x400000, 2 * MIB, 2 * MIB);
	q->b[0] = q->a[0];			     /* kept */
	q->b[1] = region(r, 0x200000, MIB, 4 * MIB); /* same IOVA, other pages */
	q->b[2] = region(r, 0x800000, MIB, 5 * MIB);
	q->extra = region(r, 0xc00000, MIB, 6 * MIB);

	fail_nth_step(f, "set");
	first_failure(&first, dma_table_set(&r->dma, q->a, 3, &err));
	assert_iommu_matches(r, q->iommu);
	fail_nth_step(f, "change");
	first_failure(&first, dma_table_set(&r->dma, q->b, 3, &err));
	assert_iommu_matches(r, q->iommu);
	fail_nth_step(f, "add");
	first_failure(&first, dma_table_add(&r->dma, &q->extra, &err));
	assert_iommu_matches(r, q->iommu);
	fail_nth_step(f, "remove");
	if (dma_table_remove(&r->dma, q->extra.gpa, q->extra.size, &err) < 0 &&
	    memtable_lookup(&r->dma.map, q->extra.gpa))
		first_failure(&first, -err.code);
	assert_iommu_matches(r, q->iommu);
	return first;
}

/* Whatever failed, the remote stays usable: the next change (no fault now) applies. */
static void sequence_check(struct fail_nth *f, int ret)
{
	struct sequence *q = f->ctx;
	struct mpdev_error err = { 0 };

	if (!q->r.be)
		return; /* creation failed: rig_free() checks nothing was left open */
	ck_assert_msg(dma_table_set(&q->r.dma, q->a, 3, &err) == 0,
		      "n=%lu: not usable after a fault: %s", f->n, err.msg);
	assert_iommu_matches(&q->r, q->iommu);
	ck_assert_int_eq(dma_table_set(&q->r.dma, NULL, 0, &err), 0);
	assert_iommu_matches(&q->r, q->iommu);
}

static void sequence_teardown(struct fail_nth *f)
{
	struct sequence *q = f->ctx;

	rig_free(&q->r);
}

START_TEST(every_kernel_call_fails_in_turn)
{
	static const int errs[] = { EIO, ENOMEM };
	char name[64];
	struct sequence q = { .iommu = kinds[_i] };
	struct fail_nth f = {
		.name = name,
		.injector = &vfio_model_fail_nth_injector,
		.errs = errs,
		.n_errs = 2,
		.setup = sequence_setup,
		.run = sequence_run,
		.check = sequence_check,
		.teardown = sequence_teardown,
		.ctx = &q,
	};

	snprintf(name, sizeof(name), "every_kernel_call_fails_in_turn (%s)", q.iommu);
	/* The engine makes every kernel call of the sequence fail once. */
	ck_assert_uint_gt(fail_nth_sweep(&f), 10);
}
END_TEST

static Suite *vfio_backend_suite(void)
{
	Suite *s = suite_create("vfio_backend");
	TCase *tc = tcase_create("model");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, device_and_mappings, 0, VFIO_BACKEND_TEST_KINDS);
	tcase_add_test(tc, mapping_budget);
	tcase_add_test(tc, usual_mistakes_have_clear_errors);
	tcase_add_loop_test(tc, every_kernel_call_fails_in_turn, 0, VFIO_BACKEND_TEST_KINDS);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vfio_backend_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
