/*
 * The migration FSM against the kernel's own: for every flag combination a
 * device may report, every pair of states (64) is checked against a
 * transcription of vfio_mig_get_next_state() (drivers/vfio/vfio_main.c,
 * Linux 6.12), and the path is driven through a recording backend that
 * fails each arc in turn.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "mig_fsm.h"

enum {
	E = BACKEND_MIG_ERROR,
	S = BACKEND_MIG_STOP,
	R = BACKEND_MIG_RUNNING,
	SC = BACKEND_MIG_STOP_COPY,
	RS = BACKEND_MIG_RESUMING,
	RP = BACKEND_MIG_RUNNING_P2P,
	PC = BACKEND_MIG_PRE_COPY,
	PP = BACKEND_MIG_PRE_COPY_P2P,
	N = BACKEND_MIG_NUM_STATES,
};

/* vfio_from_fsm_table[cur][new]: the next state on the way, all features on. */
static const unsigned kernel_next[N][N] = {
	[S] = { [S] = S, [R] = RP, [PC] = RP, [PP] = RP, [SC] = SC, [RS] = RS, [RP] = RP, [E] = E },
	[R] = { [S] = RP, [R] = R, [PC] = PC, [PP] = RP, [SC] = RP, [RS] = RP, [RP] = RP, [E] = E },
	[PC] = { [S] = R, [R] = R, [PC] = PC, [PP] = PP, [SC] = PP, [RS] = R, [RP] = R, [E] = E },
	[PP] = { [S] = RP,
		 [R] = RP,
		 [PC] = PC,
		 [PP] = PP,
		 [SC] = SC,
		 [RS] = RP,
		 [RP] = RP,
		 [E] = E },
	[SC] = { [S] = S, [R] = S, [PC] = E, [PP] = E, [SC] = SC, [RS] = S, [RP] = S, [E] = E },
	[RS] = { [S] = S, [R] = S, [PC] = S, [PP] = S, [SC] = S, [RS] = RS, [RP] = S, [E] = E },
	[RP] = { [S] = S, [R] = R, [PC] = R, [PP] = PP, [SC] = S, [RS] = S, [RP] = RP, [E] = E },
	[E] = { [S] = E, [R] = E, [PC] = E, [PP] = E, [SC] = E, [RS] = E, [RP] = E, [E] = E },
};

static const uint32_t combos[] = {
	BACKEND_MIG_FLAG_STOP_COPY,
	BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P,
	BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_PRE_COPY,
	BACKEND_MIG_FLAG_STOP_COPY | BACKEND_MIG_FLAG_P2P | BACKEND_MIG_FLAG_PRE_COPY,
};
#define N_COMBOS (sizeof(combos) / sizeof(combos[0]))

/* The kernel's loop: unsupported states are skipped over. -1: refused. */
static int kernel_path(unsigned from, unsigned to, uint32_t flags, unsigned *path)
{
	int n = 0;
	unsigned cur = from;

	if (!mig_fsm_state_supported(from, flags) || !mig_fsm_state_supported(to, flags) || to == E)
		return -1;
	while (cur != to) {
		unsigned next = kernel_next[cur][to];

		while (next != E && !mig_fsm_state_supported(next, flags))
			next = kernel_next[next][to];
		if (next == E)
			return -1;
		path[n++] = next;
		cur = next;
		if (n > 8)
			return -2;
	}
	return n;
}

START_TEST(every_pair_matches_the_kernel)
{
	unsigned checked = 0, refused = 0;

	for (size_t c = 0; c < N_COMBOS; c++) {
		uint32_t flags = combos[c];

		for (unsigned from = 0; from < N; from++) {
			for (unsigned to = 0; to < N; to++) {
				unsigned want[16];
				enum backend_mig_state got[MIG_FSM_MAX_PATH];
				struct mpdev_error err = { 0 };
				int kn = kernel_path(from, to, flags, want);
				size_t n = 99;
				int r;

				ck_assert_int_ne(kn, -2);
				r = mig_fsm_path(from, to, flags, got, &n, &err);
				if (kn < 0) {
					ck_assert_msg(r < 0,
						      "flags %u %s -> %s: kernel refuses, we gave "
						      "%zu arcs",
						      flags, mig_fsm_state_name(from),
						      mig_fsm_state_name(to), n);
					ck_assert(err.msg[0]);
					ck_assert_uint_eq(n, 0);
					refused++;
					continue;
				}
				ck_assert_msg(r == 0, "flags %u %s -> %s: %s", flags,
					      mig_fsm_state_name(from), mig_fsm_state_name(to),
					      err.msg);
				ck_assert_uint_eq(n, (size_t)kn);
				for (int i = 0; i < kn; i++) {
					unsigned prev = i ? want[i - 1] : from;

					ck_assert_msg(got[i] == want[i],
						      "flags %u %s -> %s: step %d is %s, kernel %s",
						      flags, mig_fsm_state_name(from),
						      mig_fsm_state_name(to), i,
						      mig_fsm_state_name(got[i]),
						      mig_fsm_state_name(want[i]));
					ck_assert(mig_fsm_is_arc(prev, got[i], flags));
				}
				checked++;
			}
		}
	}
	/* Full features: 7 reachable states squared minus the 2 blocked, plus the smaller sets. */
	ck_assert_uint_eq(checked + refused, N_COMBOS * N * N);
	ck_assert_uint_gt(checked, 100);
}
END_TEST

START_TEST(refusals_say_why)
{
	const uint32_t all = combos[3];
	enum backend_mig_state p[MIG_FSM_MAX_PATH];
	struct mpdev_error err = { 0 };
	size_t n;

	ck_assert_int_eq(mig_fsm_path(SC, PC, all, p, &n, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a permitted"));
	ck_assert_int_eq(mig_fsm_path(SC, PP, all, p, &n, &err), -EINVAL);
	ck_assert_int_eq(mig_fsm_path(R, E, all, p, &n, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "ERROR cannot"));
	ck_assert_int_eq(mig_fsm_path(E, R, all, p, &n, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "reset"));
	ck_assert_int_eq(mig_fsm_path(R, 8, all, p, &n, &err), -EINVAL);
	ck_assert_int_eq(mig_fsm_path(R, RP, combos[0], p, &n, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err.msg, "RUNNING_P2P"));
	ck_assert_int_eq(mig_fsm_path(R, PC, combos[1], p, &n, &err), -ENOTSUP);
	ck_assert_int_eq(mig_fsm_path(R, S, 0, p, &n, &err), -ENOTSUP);
	ck_assert_int_eq(mig_fsm_path(R, R, all, p, &n, &err), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* A backend that records the arcs it is asked for and fails the fail_at-th. */
struct rec_backend {
	struct backend be;
	unsigned arcs[16][2];
	size_t n;
	int fail_at; /* -1: never */
	bool fail_to_error;
};

static int rec_arc(struct backend *b, enum backend_mig_state from, enum backend_mig_state to,
		   enum backend_mig_state *now, struct mpdev_error *err)
{
	struct rec_backend *rb = (struct rec_backend *)b;

	ck_assert_uint_lt(rb->n, 16);
	rb->arcs[rb->n][0] = from;
	rb->arcs[rb->n][1] = to;
	if ((int)rb->n++ == rb->fail_at) {
		*now = rb->fail_to_error ? BACKEND_MIG_ERROR : from;
		return mpdev_error_set(err, EIO, "injected");
	}
	*now = to;
	return 0;
}

static const struct backend_ops rec_ops = { .name = "rec", .mig_arc = rec_arc };

START_TEST(run_takes_the_path_and_stops_where_it_failed)
{
	const uint32_t flags = combos[_i];
	unsigned walks = 0;

	for (unsigned from = 1; from < N; from++) {
		for (unsigned to = 1; to < N; to++) {
			enum backend_mig_state path[MIG_FSM_MAX_PATH];
			struct mpdev_error e0 = { 0 };
			size_t n;

			if (!mig_fsm_state_supported(from, flags) ||
			    mig_fsm_path(from, to, flags, path, &n, &e0) < 0)
				continue;
			for (int fail = -1; fail < (int)n; fail++) {
				for (int to_error = 0; to_error < 2; to_error++) {
					struct rec_backend rb = { .be.ops = &rec_ops,
								  .fail_at = fail,
								  .fail_to_error = to_error };
					enum backend_mig_state st = from;
					struct mpdev_error err = { 0 };
					int r = mig_fsm_run(&rb.be, flags, &st, to, &err);

					if (fail < 0) {
						ck_assert_int_eq(r, 0);
						ck_assert_uint_eq(st, to);
						ck_assert_uint_eq(rb.n, n);
						for (size_t i = 0; i < n; i++)
							ck_assert_uint_eq(rb.arcs[i][1], path[i]);
						break;
					}
					ck_assert_int_eq(r, -EIO);
					ck_assert_uint_eq(rb.n, (size_t)fail + 1);
					ck_assert_uint_eq(
						st, to_error ? E : (fail ? path[fail - 1] : from));
					ck_assert_ptr_nonnull(strstr(err.msg, "injected"));
					ck_assert_ptr_nonnull(
						strstr(err.msg, mig_fsm_state_name(path[fail])));
				}
			}
			walks++;
		}
	}
	ck_assert_uint_gt(walks, 8);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mig_fsm");
	TCase *tc = tcase_create("fsm");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, every_pair_matches_the_kernel);
	tcase_add_test(tc, refusals_say_why);
	tcase_add_loop_test(tc, run_takes_the_path_and_stops_where_it_failed, 0, N_COMBOS);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
