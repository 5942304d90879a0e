/*
 * Fault injection: every call through the vfio_sys table is counted, and the
 * armed one fails with its errno before it has any effect — the model's
 * counterpart of the kernel's fail-nth (/proc/self/fail-nth, used by
 * tools/testing/selftests/iommu/iommufd_fail_nth.c).
 */
#include "vfio_model_internal.h"

#include "fail_nth.h"

/* Counts a call; the armed one fails with its errno before doing anything. */
int vfm_tick(struct vfio_model *m)
{
	m->calls++;
	if (m->fail_at && m->calls == m->fail_at) {
		m->fail_hit = true;
		return m->fail_err;
	}
	return 0;
}

void vfio_model_fail_nth(struct vfio_model *m, unsigned long n, int err)
{
	m->fail_at = n;
	m->fail_err = err;
	m->fail_hit = false;
}

unsigned long vfio_model_calls(const struct vfio_model *m)
{
	return m->calls;
}

bool vfio_model_fail_hit(const struct vfio_model *m)
{
	return m->fail_hit;
}

/* The fail-nth engine counts from when it arms; the model counts from its creation. */
static void injector_arm(void *inj, unsigned long n, int err)
{
	struct vfio_model *m = inj;

	m->fail_base = m->calls;
	vfio_model_fail_nth(m, n ? m->calls + n : 0, err);
}

static unsigned long injector_passed(const void *inj)
{
	const struct vfio_model *m = inj;

	return m->calls - m->fail_base;
}

static bool injector_hit(const void *inj)
{
	return vfio_model_fail_hit(inj);
}

const struct fail_nth_injector vfio_model_fail_nth_injector = {
	.arm = injector_arm,
	.passed = injector_passed,
	.hit = injector_hit,
};
