/*
 * What the guest programs (q11_guest.c, q11_blk.c) print and count: one
 * "Q11 CHECK LABEL NAME: PASS|FAIL detail" line per check, which
 * run-q11.sh reads, and the clock the checks time themselves with. Each
 * program includes it once; label names the device under test.
 */
#ifndef MPDEV_Q11_CHECK_H
#define MPDEV_Q11_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static const char *label = "?";
static int failures;

__attribute__((format(printf, 3, 4))) static void result(const char *name, bool ok,
							  const char *fmt, ...)
{
	char detail[512] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	printf("Q11 CHECK %s %s: %s %s\n", label, name, ok ? "PASS" : "FAIL", detail);
	fflush(stdout);
	if (!ok)
		failures++;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
