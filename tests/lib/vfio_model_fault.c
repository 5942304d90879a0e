/*
 * Fault injection: every call through the vfio_sys table is counted, and the
 * armed one fails with its errno before it has any effect — the model's
 * counterpart of the kernel's fail-nth (/proc/self/fail-nth, used by
 * tools/testing/selftests/iommu/iommufd_fail_nth.c).
 */
#include "vfio_model_internal.h"

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
