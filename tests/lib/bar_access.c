#include "bar_access.h"

#include <check.h>

uint32_t bar_rd32(struct mpdev *dev, uint64_t off)
{
	uint32_t v = 0;

	ck_assert_msg(mpdev_region_read(dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(dev));
	return v;
}

uint64_t bar_rd64(struct mpdev *dev, uint64_t off)
{
	uint64_t v = 0;

	ck_assert_msg(mpdev_region_read(dev, MPDEV_REGION_BAR0, off, &v, 8) == 0, "%s",
		      mpdev_last_error(dev));
	return v;
}

void bar_wr32(struct mpdev *dev, uint64_t off, uint32_t v)
{
	ck_assert_msg(mpdev_region_write(dev, MPDEV_REGION_BAR0, off, &v, 4) == 0, "%s",
		      mpdev_last_error(dev));
}

void bar_wr64(struct mpdev *dev, uint64_t off, uint64_t v)
{
	ck_assert_msg(mpdev_region_write(dev, MPDEV_REGION_BAR0, off, &v, 8) == 0, "%s",
		      mpdev_last_error(dev));
}
