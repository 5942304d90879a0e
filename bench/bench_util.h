/* What every benchmark needs: a clock, medians over rounds, CPU pinning. */
#ifndef MPDEV_BENCH_UTIL_H
#define MPDEV_BENCH_UTIL_H

#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* The median of v[0..n) (n > 0); v is left as it was. */
double bench_median(const double *v, int n);

/* Pins pid (0: this process) to cpu, or to every CPU with cpu < 0. 0 or -errno. */
int bench_pin(pid_t pid, int cpu);

#endif
