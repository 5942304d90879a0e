/*
 * One fail-nth engine for every fault-injection sweep, after the kernel's
 * tools/testing/selftests/iommu/iommufd_fail_nth.c: a test writes its happy
 * path once, as run(); the engine runs it with nothing failing to count the
 * injection points it passes (K), then from a fresh setup for each
 * n = 1..K with the n-th point failing, and once more at K + 1, where
 * nothing may fail. After every run the test's invariants are checked.
 *
 * The engine itself asserts that the counting run and the K + 1 run succeed
 * without reaching the armed point, and that every n = 1..K is reached. It
 * prints one line: K and how many of the failures fell in each step of the
 * path (run() names its steps with fail_nth_step()).
 *
 * What a new sweep writes: an injector (or an existing one, such as
 * vfio_model_fail_nth_injector), setup/teardown of a fresh world, run()
 * returning 0 or the first failure's negative errno, and check(), which may
 * read n, hit and hit_step.
 */
#ifndef MPDEV_FAIL_NTH_H
#define MPDEV_FAIL_NTH_H

#include <stdbool.h>
#include <stddef.h>

#define FAIL_NTH_MAX_STEPS 16

/* Where faults are injected: the code under test calls through it. */
struct fail_nth_injector {
	/* From now, the n-th injection point fails with err; n = 0: none does. */
	void (*arm)(void *inj, unsigned long n, int err);
	/* Points passed since the last arm. */
	unsigned long (*passed)(const void *inj);
	/* Whether the armed point has been reached since the last arm. */
	bool (*hit)(const void *inj);
};

struct fail_nth {
	const char *name; /* for messages and the summary line */
	const struct fail_nth_injector *injector;
	/* Run n fails with errs[(n - 1) % n_errs]; NULL: EIO. */
	const int *errs;
	size_t n_errs;

	/* A fresh world for one run; must set inj. */
	void (*setup)(struct fail_nth *f);
	/* The happy path: 0, or the first failure's negative errno. */
	int (*run)(struct fail_nth *f);
	/* The invariants after a run; nothing is armed any more. */
	void (*check)(struct fail_nth *f, int ret);
	void (*teardown)(struct fail_nth *f);
	void *ctx; /* the test's */
	void *inj; /* the injector's object of this run, set by setup */

	/* Set by the engine, for run() and check() to read. */
	unsigned long n;      /* the point armed in this run, 0 in the counting run */
	int err;	      /* the errno it fails with */
	bool hit;	      /* it was reached */
	const char *hit_step; /* in which step ("-" before the first) */

	/* The engine's own. */
	const char *step;
	struct {
		const char *name;
		unsigned long failures;
	} steps[FAIL_NTH_MAX_STEPS];
	size_t n_steps;
};

/* Runs the sweep and returns K, the injection points of the happy path. */
unsigned long fail_nth_sweep(struct fail_nth *f);

/* run() enters the step called name (a string that outlives the sweep). */
void fail_nth_step(struct fail_nth *f, const char *name);

#endif
