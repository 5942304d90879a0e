/*
 * Doorbells over the native protocol (GetIoEventfds, mpdev_get_ioeventfds):
 * edu declares IRQ_RAISE as one, raising its factorial bit. The test plays
 * KVM: it writes the eventfd the remote gave it, sends no message, and
 * watches the INTx irqfd the device's interrupt asserts.
 *
 *  - region 0: one entry with edu's fields and an eventfd; signalling it
 *    raises the interrupt, with no request on the socket in between;
 *  - config space: no doorbells; region 99: EINVAL; without the feature:
 *    ENOTSUP; a second ask gives the same doorbell again;
 *  - the eventfds live with the connection: the remote's count is up by one
 *    while connected and back after the disconnect, and the eventfd the
 *    client still holds then rings nothing.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "remote_fixture.h"
#include "testutil.h"

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE  0x60
#define EDU_IRQ_ACK    0x64
#define EDU_IRQ_FACT   0x001u
#define PIRQ	       5
#define SIGNAL_MS      1000
#define QUIET_MS       100

static struct remote rem;

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_doorbell" };

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	ck_assert_int_ge(r, 0);
	return r == 1 && (p.revents & POLLIN);
}

static uint64_t take(int fd)
{
	uint64_t cnt = 0;

	if (!readable(fd, 0))
		return 0;
	ck_assert_int_eq(read(fd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	return cnt;
}

static void ring(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* The one doorbell of BAR0, checked field by field. */
static struct mpdev_ioeventfd bar0_doorbell(void)
{
	struct mpdev_ioeventfd v[4];
	unsigned n = 99;
	struct stat st;

	ck_assert_msg(mpdev_get_ioeventfds(rem.dev, MPDEV_REGION_BAR0, v, 4, &n) == 0, "%s",
		      mpdev_last_error(rem.dev));
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0].offset, EDU_IRQ_RAISE);
	ck_assert_uint_eq(v[0].size, 4);
	ck_assert(v[0].datamatch);
	ck_assert_uint_eq(v[0].data, EDU_IRQ_FACT);
	ck_assert_int_ge(v[0].fd, 0);
	ck_assert_int_eq(fstat(v[0].fd, &st), 0);
	/* An eventfd: 8-byte reads of a counter, nothing else. */
	ck_assert_uint_eq(take(v[0].fd), 0);
	return v[0];
}

static void stat_cb(void *opaque, const char *name, uint64_t value)
{
	struct {
		const char *name;
		uint64_t value;
		bool seen;
	} *want = opaque;

	if (!strcmp(name, want->name)) {
		want->value = value;
		want->seen = true;
	}
}

/* One of the remote's counters (docs/protocol.md 5.5). */
static uint64_t counter(const char *name)
{
	struct {
		const char *name;
		uint64_t value;
		bool seen;
	} want = { name, 0, false };

	ck_assert_int_gt(mpdev_get_stats(rem.dev, stat_cb, &want), 0);
	ck_assert_msg(want.seen, "no counter '%s'", name);
	return want.value;
}

static void start(void)
{
	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
	ck_assert_msg(mpdev_features(rem.dev) & MPDEV_FEATURE_IOEVENTFDS,
		      "the remote does not offer doorbells");
}

static void stop(void)
{
	remote_stop(&rem);
}

START_TEST(bar0_doorbell_raises_the_interrupt)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	struct mpdev_ioeventfd d;

	ck_assert_msg(mpdev_set_intx_irqfd(rem.dev, 0, PIRQ, irqfd, rfd) == 0, "%s",
		      mpdev_last_error(rem.dev));
	d = bar0_doorbell();
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	ck_assert(!readable(irqfd, QUIET_MS));
	ck_assert_uint_eq(counter("doorbell_rings"), 0);
	/* No message from here to the signal: the doorbell alone wakes the device. */
	ring(d.fd);
	ck_assert_msg(readable(irqfd, SIGNAL_MS), "no INTx within %d ms of the doorbell",
		      SIGNAL_MS);
	ck_assert_uint_eq(take(irqfd), 1);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), EDU_IRQ_FACT);
	ck_assert_uint_eq(counter("doorbell_rings"), 1);
	ck_assert_uint_eq(counter("doorbell_failures"), 0);
	/* The remote drained its counter: the eventfd is quiet on our side too. */
	ck_assert(!readable(d.fd, 0));
	bar_wr32(rem.dev, EDU_IRQ_ACK, EDU_IRQ_FACT);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	close(d.fd);
	close(irqfd);
	close(rfd);
}
END_TEST

/* Bounded: the remote reads the eventfd when its loop gets there. */
static bool status_becomes(uint32_t want, int ms)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	for (int waited = 0; waited <= ms; waited += 5) {
		if (bar_rd32(rem.dev, EDU_IRQ_STATUS) == want)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

START_TEST(doorbell_survives_reset_and_asks_again)
{
	struct mpdev_ioeventfd a = bar0_doorbell(), b;

	ck_assert_int_eq(mpdev_reset(rem.dev), 0);
	ring(a.fd);
	ck_assert_msg(status_becomes(EDU_IRQ_FACT, SIGNAL_MS), "doorbell after reset: status 0x%x",
		      bar_rd32(rem.dev, EDU_IRQ_STATUS));
	bar_wr32(rem.dev, EDU_IRQ_ACK, EDU_IRQ_FACT);
	/* Asked again: the same doorbell, the same eventfd (one set per connection). */
	b = bar0_doorbell();
	ck_assert_int_eq(testutil_same_file(a.fd, b.fd), 1);
	/* Two signals before the loop reads them are one write (edu's status is one bit either
	 * way). */
	ring(b.fd);
	ring(b.fd);
	ck_assert(status_becomes(EDU_IRQ_FACT, SIGNAL_MS));
	close(a.fd);
	close(b.fd);
	remote_expect_fds(&rem, rem.baseline_fds + 1);
}
END_TEST

/* A doorbell goes through the region write's rules: a stopped device refuses it, counted. */
START_TEST(doorbell_refused_while_stopped)
{
	struct mpdev_ioeventfd d = bar0_doorbell();
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	int waited = 0;

	ck_assert_msg(mpdev_mig_set_state(rem.dev, MPDEV_MIG_STOP, NULL) == 0, "%s",
		      mpdev_last_error(rem.dev));
	ring(d.fd);
	while (counter("doorbell_rings") < 1 && waited < SIGNAL_MS) {
		nanosleep(&ts, NULL);
		waited += 5;
	}
	ck_assert_uint_eq(counter("doorbell_rings"), 1);
	ck_assert_uint_eq(counter("doorbell_failures"), 1);
	ck_assert_int_eq(mpdev_mig_set_state(rem.dev, MPDEV_MIG_RUNNING, NULL), 0);
	/* Refused, not deferred: nothing was raised. */
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	ring(d.fd);
	ck_assert(status_becomes(EDU_IRQ_FACT, SIGNAL_MS));
	ck_assert_uint_eq(counter("doorbell_failures"), 1);
	close(d.fd);
}
END_TEST

START_TEST(regions_without_doorbells)
{
	struct mpdev_ioeventfd v[2] = { { .fd = -1 }, { .fd = -1 } };
	unsigned n = 99;

	ck_assert_int_eq(mpdev_get_ioeventfds(rem.dev, MPDEV_REGION_CONFIG, v, 2, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(v[0].fd, -1);
	n = 99;
	ck_assert_int_eq(mpdev_get_ioeventfds(rem.dev, 99, v, 2, &n), -EINVAL);
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(strstr(mpdev_last_error(rem.dev), "region 99"), "%s",
		      mpdev_last_error(rem.dev));
	/* BAR1: edu has none, which is no region to ask about. */
	ck_assert_int_eq(mpdev_get_ioeventfds(rem.dev, MPDEV_REGION_BAR1, v, 2, &n), -EINVAL);
	/* No room asked for: nothing handed over, nothing leaked. */
	ck_assert_int_eq(mpdev_get_ioeventfds(rem.dev, MPDEV_REGION_BAR0, NULL, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* The first ask made the set: edu's one eventfd on the remote's side, no more. */
	remote_expect_fds(&rem, rem.baseline_fds + 1);
}
END_TEST

START_TEST(without_the_feature)
{
	struct remote r2;
	struct mpdev_options o = opts;
	struct mpdev_ioeventfd v[1];
	unsigned n = 5;

	o.features = MPDEV_FEATURE_STATS;
	remote_start(&r2, &(struct remote_opts){ .mpdev = &o });
	ck_assert_uint_eq(mpdev_features(r2.dev) & MPDEV_FEATURE_IOEVENTFDS, 0);
	ck_assert_int_eq(mpdev_get_ioeventfds(r2.dev, MPDEV_REGION_BAR0, v, 1, &n), -ENOTSUP);
	ck_assert_uint_eq(n, 0);
	remote_expect_fds(&r2, r2.baseline_fds);
	remote_stop(&r2);
}
END_TEST

/* A listening remote, so that the connection can end and the remote be looked at after. */
START_TEST(eventfds_go_with_the_connection)
{
	struct remote lr;
	struct mpdev_ioeventfd d;
	int base;

	remote_start(&lr, &(struct remote_opts){ .listen = true, .mpdev = &opts });
	rem = lr; /* bar0_doorbell() and bar_* use rem */
	base = lr.baseline_fds;
	d = bar0_doorbell();
	remote_expect_fds(&lr, base + 1);
	mpdev_close(lr.dev);
	lr.dev = NULL;
	/* The connection's socket and its one doorbell are gone. */
	remote_expect_fds(&lr, base - 1);
	lr.dev = remote_connect(&lr, &opts);
	rem = lr;
	remote_expect_fds(&lr, base);
	/* What we kept is ours alone now: ringing it reaches nobody. */
	ring(d.fd);
	ring(d.fd);
	ck_assert(!status_becomes(EDU_IRQ_FACT, QUIET_MS));
	ck_assert_uint_eq(bar_rd32(lr.dev, EDU_IRQ_STATUS), 0);
	remote_expect_alive(&lr);
	close(d.fd);
	remote_stop(&lr);
	memset(&rem, 0, sizeof(rem));
}
END_TEST

static Suite *doorbell_suite(void)
{
	Suite *s = suite_create("doorbell");
	TCase *tc = tcase_create("native");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bar0_doorbell_raises_the_interrupt);
	tcase_add_test(tc, doorbell_survives_reset_and_asks_again);
	tcase_add_test(tc, regions_without_doorbells);
	tcase_add_test(tc, doorbell_refused_while_stopped);
	suite_add_tcase(s, tc);

	tc = tcase_create("connections");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, without_the_feature);
	tcase_add_test(tc, eventfds_go_with_the_connection);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(doorbell_suite());
}
