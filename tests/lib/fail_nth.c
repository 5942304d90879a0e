#include "fail_nth.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static size_t step_slot(struct fail_nth *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n_steps; i++)
		if (!strcmp(f->steps[i].name, name))
			return i;
	ck_assert_msg(i < FAIL_NTH_MAX_STEPS, "%s: more than %d steps", f->name,
		      FAIL_NTH_MAX_STEPS);
	f->steps[i].name = name;
	f->steps[i].failures = 0;
	f->n_steps++;
	return i;
}

/* Polled at each step boundary, so that a failure is put down to the step it fell in. */
static void note_hit(struct fail_nth *f)
{
	if (f->hit || !f->n || !f->injector->hit(f->inj))
		return;
	f->hit = true;
	f->hit_step = f->step ? f->step : "-";
	if (f->step)
		f->steps[step_slot(f, f->step)].failures++;
}

void fail_nth_step(struct fail_nth *f, const char *name)
{
	note_hit(f);
	step_slot(f, name);
	f->step = name;
}

/* One run from a fresh setup with point n armed; returns run()'s result. */
static int one_run(struct fail_nth *f, unsigned long n, unsigned long *passed)
{
	int ret;

	f->n = n;
	f->err = f->errs && f->n_errs ? f->errs[(n ? n - 1 : 0) % f->n_errs] : EIO;
	f->hit = false;
	f->hit_step = NULL;
	f->step = NULL;
	f->inj = NULL;
	f->setup(f);
	ck_assert_msg(f->inj, "%s: setup gave no injector object", f->name);
	f->injector->arm(f->inj, n, f->err);
	ret = f->run(f);
	ck_assert_msg(ret <= 0, "%s: n=%lu: run returned %d, not 0 or -errno", f->name, n, ret);
	note_hit(f);
	if (passed)
		*passed = f->injector->passed(f->inj);
	/* check() may call through the injector again: nothing of it may fail. */
	f->injector->arm(f->inj, 0, 0);
	f->check(f, ret);
	f->teardown(f);
	f->inj = NULL;
	return ret;
}

unsigned long fail_nth_sweep(struct fail_nth *f)
{
	unsigned long k = 0;
	int ret;

	f->n_steps = 0;
	ret = one_run(f, 0, &k);
	ck_assert_msg(ret == 0, "%s: the happy path failed (%d) with nothing armed", f->name, ret);
	ck_assert_msg(k > 0, "%s: the happy path passes no injection point", f->name);
	for (unsigned long n = 1; n <= k; n++) {
		one_run(f, n, NULL);
		ck_assert_msg(f->hit, "%s: n=%lu of K=%lu was never reached", f->name, n, k);
	}
	/* One past the end changes nothing. */
	ret = one_run(f, k + 1, NULL);
	ck_assert_msg(!f->hit && ret == 0, "%s: n=K+1=%lu failed (%d): the path is not repeatable",
		      f->name, k + 1, ret);
	fprintf(stderr, "%s: K=%lu calls; failures by step:", f->name, k);
	for (size_t i = 0; i < f->n_steps; i++)
		fprintf(stderr, " %s=%lu", f->steps[i].name, f->steps[i].failures);
	fprintf(stderr, "\n");
	return k;
}
