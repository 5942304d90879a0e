/* BAR0 access for tests: a failed access fails the test with the remote's words. */
#ifndef MPDEV_BAR_ACCESS_H
#define MPDEV_BAR_ACCESS_H

#include <stdint.h>

#include "libmpdev.h"

uint32_t bar_rd32(struct mpdev *dev, uint64_t off);
uint64_t bar_rd64(struct mpdev *dev, uint64_t off);
void bar_wr32(struct mpdev *dev, uint64_t off, uint32_t v);
void bar_wr64(struct mpdev *dev, uint64_t off, uint64_t v);

#endif
