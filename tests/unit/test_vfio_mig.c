/*
 * Migration and dirty tracking of the vfio backend, on the model of the
 * kernel's uAPI (tests/lib/vfio_model_mig.c: the kernel's FSM table and a
 * migration driver built like mtty's): the feature probe, every arc of the
 * FSM one at a time, the state stream moving edu's registers from one
 * device to another, PRE_COPY's figures, a failed arc reporting where the
 * kernel left the device, the session's data_fd closed on every way out
 * (counted in the model and in /proc/self/fd), reset, and dirty tracking by
 * the device's DMA logging, by type1, and iommufd's honest refusal.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "fail_nth.h"
#include "iohub.h"
#include "testutil.h"
#include "vfio.h"
#include "vfio_mig_uapi.h"
#include "vfio_model.h"

#define BDF  "0000:00:03.0"
#define BDF2 "0000:00:04.0"
#define MIB  (1ull << 20)

#define ALL_FLAGS (BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P | BACKEND_MIG_FLAG_PRE_COPY)
#define STREAM	  64 /* the model's: a 16-byte header, then 48 bytes of registers */

#define S_ERROR BACKEND_MIG_ERROR
#define S_STOP	BACKEND_MIG_STOP
#define S_RUN	BACKEND_MIG_RUNNING
#define S_SC	BACKEND_MIG_STOP_COPY
#define S_RES	BACKEND_MIG_RESUMING
#define S_RP2P	BACKEND_MIG_RUNNING_P2P
#define S_PC	BACKEND_MIG_PRE_COPY
#define S_PCP2P BACKEND_MIG_PRE_COPY_P2P

static const char *const kinds[] = { "container", "iommufd" };

struct rig {
	struct vfio_model *model;
	struct event_base *base;
	struct iohub *hub;
	struct backend_host host;
	struct backend *be, *be2;
	int fds0; /* this process's descriptors before any backend */
};

static void rig_init(struct rig *r, uint32_t flags, uint32_t flags2)
{
	struct mpdev_error err = { 0 };

	memset(r, 0, sizeof(*r));
	r->model = vfio_model_new();
	ck_assert_ptr_nonnull(r->model);
	ck_assert_int_ge(vfio_model_add_device(r->model, BDF, 7, "vfio-pci"), 0);
	ck_assert_int_ge(vfio_model_add_device(r->model, BDF2, 8, "vfio-pci"), 0);
	ck_assert_int_eq(vfio_model_set_migration(r->model, BDF, flags), 0);
	ck_assert_int_eq(vfio_model_set_migration(r->model, BDF2, flags2), 0);
	r->base = event_base_new();
	ck_assert_int_eq(iohub_create(r->base, 32, &r->hub, &err), 0);
	r->host = (struct backend_host){ .hub = r->hub };
	r->fds0 = testutil_count_fds(0);
}

static struct backend *rig_open(struct rig *r, const char *bdf, const char *iommu)
{
	char dev[64];
	struct backend_config cfg = { .device = dev,
				      .iommu = iommu,
				      .sys = vfio_model_sys(r->model) };
	struct mpdev_error err = { 0 };
	struct backend *be = NULL;

	snprintf(dev, sizeof(dev), "vfio:%s", bdf);
	ck_assert_msg(vfio_backend_create(&cfg, r->base, &r->host, &be, &err) == 0, "%s", err.msg);
	return be;
}

static void rig_free(struct rig *r)
{
	if (r->be)
		r->be->ops->destroy(r->be);
	if (r->be2)
		r->be2->ops->destroy(r->be2);
	/* Every data_fd the backend was given is closed again, in the model and for real. */
	ck_assert_int_eq(vfio_model_migfs(r->model), 0);
	ck_assert_int_eq(vfio_model_open_fds(r->model), 0);
	ck_assert_int_eq(testutil_count_fds(0), r->fds0);
	iohub_destroy(r->hub);
	event_base_free(r->base);
	vfio_model_free(r->model);
}

/* One arc that must succeed; the data_fds open afterwards must be `open`. */
static void arc_ok(struct rig *r, struct backend *be, const char *bdf, enum backend_mig_state from,
		   enum backend_mig_state to, int open)
{
	enum backend_mig_state now = S_ERROR;
	struct mpdev_error err = { 0 };

	ck_assert_msg(be->ops->mig_arc(be, from, to, &now, &err) == 0, "arc %d -> %d: %s", from, to,
		      err.msg);
	ck_assert_int_eq(now, to);
	ck_assert_int_eq(vfio_model_mig_state(r->model, bdf), to);
	ck_assert_msg(vfio_model_migfs(r->model) == open, "after %d -> %d: %d data_fds open", from,
		      to, vfio_model_migfs(r->model));
	ck_assert_int_eq(testutil_count_fds(0), r->fds0 + open);
}

/* Everything mig_save has now, until it says 0. */
static size_t save_all(struct backend *be, uint8_t *buf, size_t cap)
{
	struct mpdev_error err = { 0 };
	size_t got = 0;

	for (;;) {
		/* Odd piece sizes: the stream has no message boundaries. */
		ssize_t n = be->ops->mig_save(be, buf + got, cap - got < 7 ? cap - got : 7, &err);

		ck_assert_msg(n >= 0, "%s", err.msg);
		if (n == 0)
			return got;
		got += (size_t)n;
	}
}

static uint32_t bar0_read(struct backend *be, uint64_t off)
{
	struct mpdev_error err = { 0 };
	uint32_t v = 0;

	ck_assert_int_eq(be->ops->region_read(be, BACKEND_REGION_BAR0, off, &v, 4, &err), 0);
	return v;
}

static void bar0_write(struct backend *be, uint64_t off, uint32_t v)
{
	struct mpdev_error err = { 0 };

	ck_assert_int_eq(be->ops->region_write(be, BACKEND_REGION_BAR0, off, &v, 4, &err), 0);
}

START_TEST(probe)
{
	struct backend_iommu_info ii;
	struct mpdev_error err = { 0 };
	enum backend_mig_state now = S_RUN;
	struct rig r;

	rig_init(&r, ALL_FLAGS, 0);
	r.be = rig_open(&r, BDF, kinds[_i]);
	r.be2 = rig_open(&r, BDF2, kinds[_i]);
	ck_assert_uint_eq(r.be->ops->mig_flags(r.be), ALL_FLAGS);
	/* A device without mig_ops (ENOTTY) has flags 0 and refuses arcs clearly. */
	ck_assert_uint_eq(r.be2->ops->mig_flags(r.be2), 0);
	ck_assert_int_eq(r.be2->ops->mig_arc(r.be2, S_RUN, S_STOP, &now, &err), -ENOTSUP);
	ck_assert_int_eq(now, S_RUN);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not support migration"));
	/* type1 has the MIGRATION capability; the model's iommufd has no GET_HW_INFO. */
	ck_assert_int_eq(r.be->ops->iommu_info(r.be, &ii, &err), 0);
	ck_assert_int_eq(ii.dirty_tracking, _i == 0);
	rig_free(&r);
}
END_TEST

/*
 * Every arc of the FSM with P2P and PRE_COPY (the 15 vfio_mig_get_next_state
 * names), one at a time, with the stream read on the way: PRE_COPY offers
 * the header, STOP_COPY the rest on the same data_fd, RESUMING takes it
 * into the second device.
 */
START_TEST(every_arc_and_the_stream)
{
	uint8_t stream[256], more[8];
	uint64_t initial = 99, dirty = 99;
	struct mpdev_error err = { 0 };
	size_t n;
	struct rig r;

	rig_init(&r, ALL_FLAGS, ALL_FLAGS);
	r.be = rig_open(&r, BDF, kinds[_i]);
	r.be2 = rig_open(&r, BDF2, kinds[_i]);
	bar0_write(r.be, 0x04, 0x12345678); /* liveness: the device stores it */
	ck_assert_uint_eq(bar0_read(r.be, 0x04), ~0x12345678u);

	arc_ok(&r, r.be, BDF, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_RUN, 0);
	arc_ok(&r, r.be, BDF, S_RUN, S_PC, 1);
	ck_assert_int_eq(r.be->ops->mig_precopy_info(r.be, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, 16);
	ck_assert_uint_eq(dirty, 0);
	arc_ok(&r, r.be, BDF, S_PC, S_PCP2P, 1);
	arc_ok(&r, r.be, BDF, S_PCP2P, S_PC, 1);
	arc_ok(&r, r.be, BDF, S_PC, S_RUN, 0); /* abandoning the precopy closes its stream */
	arc_ok(&r, r.be, BDF, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_PCP2P, 1);
	arc_ok(&r, r.be, BDF, S_PCP2P, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_PCP2P, 1);
	/* The precopy pass: the header, then PRE_COPY's temporary end (ENOMSG: 0). */
	n = save_all(r.be, stream, sizeof(stream));
	ck_assert_uint_eq(n, 16);
	ck_assert_int_eq(r.be->ops->mig_precopy_info(r.be, &initial, &dirty, &err), 0);
	ck_assert_uint_eq(initial, 0);
	/* STOP_COPY continues the same data_fd (no new one): still one open. */
	arc_ok(&r, r.be, BDF, S_PCP2P, S_SC, 1);
	ck_assert_int_eq(r.be->ops->mig_precopy_info(r.be, &initial, &dirty, &err), -EINVAL);
	n += save_all(r.be, stream + n, sizeof(stream) - n);
	ck_assert_uint_eq(n, STREAM);
	ck_assert_int_eq(r.be->ops->mig_save(r.be, more, sizeof(more), &err), 0); /* the end */
	arc_ok(&r, r.be, BDF, S_SC, S_STOP, 0);
	ck_assert_int_eq(r.be->ops->mig_save(r.be, more, sizeof(more), &err), -EBADFD);
	arc_ok(&r, r.be, BDF, S_STOP, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be, BDF, S_STOP, S_SC, 1); /* a fresh session, a new data_fd */
	ck_assert_uint_eq(save_all(r.be, more, 8), 8);
	arc_ok(&r, r.be, BDF, S_SC, S_STOP, 0);

	/* The target: RESUMING takes the stream in pieces, STOP loads it. */
	arc_ok(&r, r.be2, BDF2, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be2, BDF2, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RES, 1);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, stream, 10, &err), 0);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, stream + 10, STREAM - 10, &err), 0);
	arc_ok(&r, r.be2, BDF2, S_RES, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RP2P, 0);
	arc_ok(&r, r.be2, BDF2, S_RP2P, S_RUN, 0);
	ck_assert_uint_eq(bar0_read(r.be2, 0x04), ~0x12345678u);
	rig_free(&r);
}
END_TEST

/* Without P2P the FSM has RUNNING <-> STOP and PRE_COPY -> STOP_COPY directly. */
START_TEST(arcs_without_p2p)
{
	struct rig r;
	uint8_t buf[128];

	rig_init(&r, BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_PRE_COPY,
		 BACKEND_MIG_FLAG_STOP_COPY);
	r.be = rig_open(&r, BDF, kinds[_i]);
	r.be2 = rig_open(&r, BDF2, kinds[_i]);
	arc_ok(&r, r.be, BDF, S_RUN, S_PC, 1);
	arc_ok(&r, r.be, BDF, S_PC, S_SC, 1);
	ck_assert_uint_eq(save_all(r.be, buf, sizeof(buf)), STREAM);
	arc_ok(&r, r.be, BDF, S_SC, S_STOP, 0);
	arc_ok(&r, r.be, BDF, S_STOP, S_RUN, 0);
	/* STOP_COPY only: the mandatory five states. */
	ck_assert_uint_eq(r.be2->ops->mig_flags(r.be2), BACKEND_MIG_FLAG_STOP_COPY);
	arc_ok(&r, r.be2, BDF2, S_RUN, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RES, 1);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, buf, STREAM, &(struct mpdev_error){ 0 }), 0);
	arc_ok(&r, r.be2, BDF2, S_RES, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RUN, 0);
	rig_free(&r);
}
END_TEST

/* A failed arc: *now is what GET reports; ERROR when GET cannot tell. */
START_TEST(failed_arc_reports_the_kernels_state)
{
	enum backend_mig_state now;
	struct mpdev_error err = { 0 };
	struct rig r;

	rig_init(&r, ALL_FLAGS, 0);
	r.be = rig_open(&r, BDF, kinds[_i]);

	/* The driver refuses; the device stays where it was. */
	vfio_model_mig_fail_next(r.model, BDF, EIO, false);
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_RUN, S_PC, &now, &err), -EIO);
	ck_assert_int_eq(now, S_RUN);
	ck_assert_ptr_nonnull(strstr(err.msg, "RUNNING -> PRE_COPY"));
	ck_assert_ptr_nonnull(strstr(err.msg, "the device is in RUNNING"));
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);

	/* The kernel rejects a blocked arc (STOP_COPY -> PRE_COPY): the session goes on. */
	arc_ok(&r, r.be, BDF, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be, BDF, S_STOP, S_SC, 1);
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_SC, S_PC, &now, &err), -EINVAL);
	ck_assert_int_eq(now, S_SC);
	ck_assert_int_eq(vfio_model_migfs(r.model), 1);

	/* The driver fails into ERROR: GET says so and the stream is closed. */
	vfio_model_mig_fail_next(r.model, BDF, EIO, true);
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_SC, S_STOP, &now, &err), -EIO);
	ck_assert_int_eq(now, S_ERROR);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	ck_assert_int_eq(testutil_count_fds(0), r.fds0);
	/* ERROR leaves only by reset, which brings the device back to RUNNING. */
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_ERROR, S_STOP, &now, &err), -EINVAL);
	ck_assert_int_eq(r.be->ops->reset(r.be, &err), 0);
	ck_assert_int_eq(vfio_model_mig_state(r.model, BDF), S_RUN);
	arc_ok(&r, r.be, BDF, S_RUN, S_PC, 1);

	/* The SET fails, and so does the GET after it: nobody knows, so ERROR. */
	vfio_model_fail_nth(r.model, vfio_model_calls(r.model) + 1, EIO);
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_PC, S_PCP2P, &now, &err), -EIO);
	ck_assert_int_eq(now, S_PC); /* the injected failure had no effect; GET says so */
	vfio_model_mig_fail_next(r.model, BDF, ENOMEM, false);
	vfio_model_fail_nth(r.model, vfio_model_calls(r.model) + 2, EIO);
	ck_assert_int_eq(r.be->ops->mig_arc(r.be, S_PC, S_PCP2P, &now, &err), -ENOMEM);
	ck_assert_int_eq(now, S_ERROR);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	rig_free(&r);
}
END_TEST

/* The data_fd goes on every way out: leaving, reset, release, destroy, a bad stream. */
START_TEST(data_fd_closed_on_every_exit)
{
	enum backend_mig_state now;
	struct mpdev_error err = { 0 };
	uint8_t junk[STREAM + 8] = { 0 }, good[STREAM];
	struct rig r;

	rig_init(&r, ALL_FLAGS, ALL_FLAGS);
	r.be = rig_open(&r, BDF, kinds[_i]);
	r.be2 = rig_open(&r, BDF2, kinds[_i]);

	/* reset in PRE_COPY */
	arc_ok(&r, r.be, BDF, S_RUN, S_PC, 1);
	ck_assert_int_eq(r.be->ops->reset(r.be, &err), 0);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	ck_assert_int_eq(testutil_count_fds(0), r.fds0);
	ck_assert_int_eq(vfio_model_mig_state(r.model, BDF), S_RUN);

	/* release (the proxy left) in STOP_COPY: closed, and the device RUNNING again */
	arc_ok(&r, r.be, BDF, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be, BDF, S_STOP, S_SC, 1);
	ck_assert_uint_eq(save_all(r.be, good, sizeof(good)), STREAM);
	r.be->ops->release(r.be);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	ck_assert_int_eq(testutil_count_fds(0), r.fds0);
	ck_assert_int_eq(vfio_model_mig_state(r.model, BDF), S_RUN);

	/* a stream with a bad header is refused; reset in RESUMING closes the session */
	arc_ok(&r, r.be2, BDF2, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be2, BDF2, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RES, 1);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, junk, 16, &err), -EFAULT);
	ck_assert_ptr_nonnull(strstr(err.msg, "refused the migration stream"));
	ck_assert_int_eq(r.be2->ops->reset(r.be2, &err), 0);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	ck_assert_int_eq(testutil_count_fds(0), r.fds0);
	ck_assert_int_eq(vfio_model_mig_state(r.model, BDF2), S_RUN);

	/* leaving RESUMING for STOP with the whole stream: loaded, closed */
	arc_ok(&r, r.be2, BDF2, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be2, BDF2, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RES, 1);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, good, STREAM, &err), 0);
	arc_ok(&r, r.be2, BDF2, S_RES, S_STOP, 0);
	(void)now;
	rig_free(&r);
}
END_TEST

START_TEST(short_and_long_streams)
{
	enum backend_mig_state now;
	struct mpdev_error err = { 0 };
	uint8_t good[STREAM], big[STREAM + 8];
	struct rig r;

	rig_init(&r, ALL_FLAGS, ALL_FLAGS);
	r.be = rig_open(&r, BDF, kinds[_i]);
	r.be2 = rig_open(&r, BDF2, kinds[_i]);
	arc_ok(&r, r.be, BDF, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be, BDF, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be, BDF, S_STOP, S_SC, 1);
	ck_assert_uint_eq(save_all(r.be, good, sizeof(good)), STREAM);
	arc_ok(&r, r.be, BDF, S_SC, S_STOP, 0);

	arc_ok(&r, r.be2, BDF2, S_RUN, S_RP2P, 0);
	arc_ok(&r, r.be2, BDF2, S_RP2P, S_STOP, 0);
	arc_ok(&r, r.be2, BDF2, S_STOP, S_RES, 1);
	/* mig_load before/after RESUMING, and mig_save while resuming: refused. */
	ck_assert_int_eq(r.be2->ops->mig_save(r.be2, big, 8, &err), -EBADFD);
	ck_assert_int_eq(r.be->ops->mig_load(r.be, good, 8, &err), -EBADFD);
	/* Too long for the device: ENOMEM, as mtty says. */
	memcpy(big, good, STREAM);
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, big, sizeof(big), &err), -ENOMEM);
	/* A short stream: RESUMING -> STOP fails and the device stays RESUMING. */
	ck_assert_int_eq(r.be2->ops->mig_load(r.be2, good, STREAM - 1, &err), 0);
	ck_assert_int_eq(r.be2->ops->mig_arc(r.be2, S_RES, S_STOP, &now, &err), -EINVAL);
	ck_assert_int_eq(now, S_RES);
	ck_assert_int_eq(vfio_model_migfs(r.model), 1);
	/* The proxy leaves: RESUMING cannot reach RUNNING by arcs, so the backend resets. */
	r.be2->ops->release(r.be2);
	ck_assert_int_eq(vfio_model_mig_state(r.model, BDF2), S_RUN);
	ck_assert_int_eq(vfio_model_migfs(r.model), 0);
	/* destroy with a session open closes it too (rig_free counts). */
	arc_ok(&r, r.be, BDF, S_STOP, S_RES, 1);
	rig_free(&r);
}
END_TEST

/* type1: tracking at 4 KiB only, every mapped page dirty, reports widened to whole mappings. */
START_TEST(dirty_type1)
{
	struct mpdev_error err = { 0 };
	struct backend_dirty_range all = { 0, 1ull << 30 };
	uint8_t bitmap[64];
	struct backend_dma_region reg;
	int memfd = testutil_memfd(2 * MIB, F_SEAL_SHRINK | F_SEAL_GROW);
	void *p = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	struct rig r;

	ck_assert_ptr_ne(p, MAP_FAILED);
	rig_init(&r, ALL_FLAGS, 0);
	r.be = rig_open(&r, BDF, "container");
	reg = (struct backend_dma_region){ .iova = 1 * MIB, .size = 64 * 4096, .vaddr = p };
	ck_assert_int_eq(r.be->ops->dma_map(r.be, &reg, &err), 0);
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, MIB, 64 * 4096, 4096, bitmap, 8, &err),
			 -EINVAL);
	ck_assert_int_eq(r.be->ops->dirty_start(r.be, &all, 1, 2 * MIB, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "4096 bytes only"));
	ck_assert_int_eq(r.be->ops->dirty_start(r.be, &all, 1, 4096, &err), 0);
	ck_assert(vfio_model_container_dirty_tracking(r.model));
	memset(bitmap, 0, sizeof(bitmap));
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, MIB, 64 * 4096, 4096, bitmap, 8, &err), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(bitmap[i], 0xff);
	/* A wider range is fine; one that splits the mapping is not (the kernel's rule). */
	memset(bitmap, 0, sizeof(bitmap));
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, 0, 2 * MIB, 4096, bitmap, 64, &err), 0);
	ck_assert_uint_eq(bitmap[31], 0);
	ck_assert_uint_eq(bitmap[32], 0xff);
	ck_assert_uint_eq(bitmap[40], 0);
	/*
	 * The kernel refuses a range that splits a mapping; the backend widens
	 * it to the mapping and hands back only the pages asked for.
	 */
	memset(bitmap, 0, sizeof(bitmap));
	ck_assert_int_eq(
		r.be->ops->dirty_report(r.be, MIB + 3 * 4096, 2 * 4096, 4096, bitmap, 1, &err), 0);
	ck_assert_uint_eq(bitmap[0], 0x03);
	memset(bitmap, 0, sizeof(bitmap));
	ck_assert_int_eq(
		r.be->ops->dirty_report(r.be, MIB + 60 * 4096, 8 * 4096, 4096, bitmap, 1, &err), 0);
	ck_assert_uint_eq(bitmap[0], 0x0f); /* pages 60-63 mapped, 64-67 not */
	ck_assert_int_eq(r.be->ops->dirty_stop(r.be, &err), 0);
	ck_assert(!vfio_model_container_dirty_tracking(r.model));
	ck_assert_int_eq(r.be->ops->dma_unmap(r.be, &reg, &err), 0);
	rig_free(&r);
	munmap(p, 2 * MIB);
	close(memfd);
}
END_TEST

/* iommufd without a dirty-capable HWPT: refused with the reason. */
START_TEST(dirty_iommufd_refused)
{
	struct mpdev_error err = { 0 };
	struct backend_dirty_range all = { 0, MIB };
	struct rig r;

	rig_init(&r, ALL_FLAGS, 0);
	r.be = rig_open(&r, BDF, "iommufd");
	ck_assert_int_eq(r.be->ops->dirty_start(r.be, &all, 1, 4096, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err.msg, "IOMMU_GET_HW_INFO"));
	rig_free(&r);
}
END_TEST

/* The device's own DMA logging comes first where it has it, on either IOMMU. */
START_TEST(dirty_device_logging)
{
	struct mpdev_error err = { 0 };
	struct backend_dirty_range rg[2] = { { 0, MIB }, { 4 * MIB, MIB } };
	struct backend_iommu_info ii;
	uint8_t bitmap[32] = { 0 };
	struct rig r;

	rig_init(&r, ALL_FLAGS, 0);
	vfio_model_set_dma_logging(r.model, BDF, true);
	r.be = rig_open(&r, BDF, kinds[_i]);
	ck_assert_int_eq(r.be->ops->iommu_info(r.be, &ii, &err), 0);
	ck_assert(ii.dirty_tracking);
	ck_assert_int_eq(r.be->ops->dirty_start(r.be, rg, 2, 4096, &err), 0);
	ck_assert(vfio_model_device_logging(r.model, BDF));
	ck_assert_int_eq(r.be->ops->dirty_start(r.be, rg, 2, 4096, &err), -EBUSY);
	vfio_model_device_dirty(r.model, BDF, 4 * MIB + 3 * 4096 + 17);
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, 4 * MIB, MIB, 4096, bitmap, 32, &err), 0);
	ck_assert_uint_eq(bitmap[0], 0x08);
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, 4 * MIB, MIB, 4096, bitmap, 32, &err), 0);
	ck_assert_uint_eq(bitmap[0], 0); /* read and cleared */
	ck_assert_int_eq(r.be->ops->dirty_report(r.be, 4 * MIB, MIB, 4096, bitmap, 4, &err),
			 -EINVAL); /* 256 pages need 32 bytes */
	/* The proxy leaving stops it. */
	r.be->ops->release(r.be);
	ck_assert(!vfio_model_device_logging(r.model, BDF));
	rig_free(&r);
}
END_TEST

/*
 * Every kernel call of a whole migration fails in turn (create, the arcs,
 * the stream, precopy info, teardown): the backend never crashes, what it
 * says about the state is what the kernel's GET would say (or ERROR), and
 * no data_fd outlives the backend.
 */
struct sweep {
	struct rig r;
	const char *iommu;
};

static void sweep_setup(struct fail_nth *f)
{
	struct sweep *q = f->ctx;

	rig_init(&q->r, ALL_FLAGS, ALL_FLAGS);
	f->inj = q->r.model;
}

/* One arc; a failure must leave *now where the model's device is (or ERROR). */
static int sweep_arc(struct sweep *q, struct backend *be, const char *bdf,
		     enum backend_mig_state *cur, enum backend_mig_state to)
{
	enum backend_mig_state now = S_RUN;
	struct mpdev_error err = { 0 };
	int r = be->ops->mig_arc(be, *cur, to, &now, &err);

	ck_assert_msg(now == to || r < 0, "arc succeeded but now is %d", now);
	ck_assert_msg(r == 0 || now == S_ERROR || (int)now == vfio_model_mig_state(q->r.model, bdf),
		      "after a failed arc the backend says %d, the device is in %d", now,
		      vfio_model_mig_state(q->r.model, bdf));
	*cur = now;
	return r;
}

static int sweep_run(struct fail_nth *f)
{
	struct sweep *q = f->ctx;
	enum backend_mig_state a = S_RUN, b = S_RUN;
	struct mpdev_error err = { 0 };
	uint8_t stream[128];
	uint64_t initial, dirty;
	size_t n = 0;
	ssize_t got;
	int r;

	fail_nth_step(f, "create");
	{
		char dev[64];
		struct backend_config cfg = { .device = dev,
					      .iommu = q->iommu,
					      .sys = vfio_model_sys(q->r.model) };

		snprintf(dev, sizeof(dev), "vfio:%s", BDF);
		r = vfio_backend_create(&cfg, q->r.base, &q->r.host, &q->r.be, &err);
		if (r < 0)
			return r;
		snprintf(dev, sizeof(dev), "vfio:%s", BDF2);
		r = vfio_backend_create(&cfg, q->r.base, &q->r.host, &q->r.be2, &err);
		if (r < 0)
			return r;
	}
	fail_nth_step(f, "save");
	if ((r = sweep_arc(q, q->r.be, BDF, &a, S_PC)) < 0)
		return r;
	if ((r = q->r.be->ops->mig_precopy_info(q->r.be, &initial, &dirty, &err)) < 0)
		return r;
	while ((got = q->r.be->ops->mig_save(q->r.be, stream + n, sizeof(stream) - n, &err)) > 0)
		n += (size_t)got;
	if (got < 0)
		return (int)got;
	if ((r = sweep_arc(q, q->r.be, BDF, &a, S_PCP2P)) < 0 ||
	    (r = sweep_arc(q, q->r.be, BDF, &a, S_SC)) < 0)
		return r;
	while ((got = q->r.be->ops->mig_save(q->r.be, stream + n, sizeof(stream) - n, &err)) > 0)
		n += (size_t)got;
	if (got < 0)
		return (int)got;
	if ((r = sweep_arc(q, q->r.be, BDF, &a, S_STOP)) < 0)
		return r;
	fail_nth_step(f, "load");
	if ((r = sweep_arc(q, q->r.be2, BDF2, &b, S_RP2P)) < 0 ||
	    (r = sweep_arc(q, q->r.be2, BDF2, &b, S_STOP)) < 0 ||
	    (r = sweep_arc(q, q->r.be2, BDF2, &b, S_RES)) < 0)
		return r;
	if ((r = q->r.be2->ops->mig_load(q->r.be2, stream, n, &err)) < 0)
		return r;
	if ((r = sweep_arc(q, q->r.be2, BDF2, &b, S_STOP)) < 0 ||
	    (r = sweep_arc(q, q->r.be2, BDF2, &b, S_RP2P)) < 0 ||
	    (r = sweep_arc(q, q->r.be2, BDF2, &b, S_RUN)) < 0)
		return r;
	ck_assert_uint_eq(n, STREAM);
	fail_nth_step(f, "teardown");
	q->r.be->ops->destroy(q->r.be);
	q->r.be = NULL;
	q->r.be2->ops->destroy(q->r.be2);
	q->r.be2 = NULL;
	return 0;
}

static void sweep_check(struct fail_nth *f, int ret)
{
	if (!f->hit || !f->n)
		ck_assert_int_eq(ret, 0);
}

static void sweep_teardown(struct fail_nth *f)
{
	struct sweep *q = f->ctx;

	rig_free(&q->r); /* no data_fd, model fd or real fd left */
}

START_TEST(every_kernel_call_fails_in_turn)
{
	static const int errs[] = { EIO, ENOMEM };
	char name[64];
	struct sweep q = { .iommu = kinds[_i] };
	struct fail_nth f = {
		.name = name,
		.injector = &vfio_model_fail_nth_injector,
		.errs = errs,
		.n_errs = 2,
		.setup = sweep_setup,
		.run = sweep_run,
		.check = sweep_check,
		.teardown = sweep_teardown,
		.ctx = &q,
	};

	snprintf(name, sizeof(name), "migration: every kernel call fails in turn (%s)", q.iommu);
	ck_assert_uint_gt(fail_nth_sweep(&f), 20);
}
END_TEST

static Suite *vfio_mig_suite(void)
{
	Suite *s = suite_create("vfio_mig");
	TCase *tc = tcase_create("model");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, probe, 0, 2);
	tcase_add_loop_test(tc, every_arc_and_the_stream, 0, 2);
	tcase_add_loop_test(tc, arcs_without_p2p, 0, 2);
	tcase_add_loop_test(tc, failed_arc_reports_the_kernels_state, 0, 2);
	tcase_add_loop_test(tc, data_fd_closed_on_every_exit, 0, 2);
	tcase_add_loop_test(tc, short_and_long_streams, 0, 2);
	tcase_add_test(tc, dirty_type1);
	tcase_add_test(tc, dirty_iommufd_refused);
	tcase_add_loop_test(tc, dirty_device_logging, 0, 2);
	tcase_add_loop_test(tc, every_kernel_call_fails_in_turn, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(vfio_mig_suite());
}
