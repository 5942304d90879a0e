/*
 * libmpdev against a real mpdev-remote process serving the emulated edu
 * device: every message family of the foundation, both ways of starting the
 * remote, and its connection rules (busy, allow list, reset on disconnect).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "wire.h"

static struct remote rem;

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_remote" };

static void start_remote_fd(void)
{
	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
}

/* The remote serves one adopted connection and exits 0 when it closes. */
static void stop_remote_fd(void)
{
	remote_stop(&rem);
}

START_TEST(handshake_and_device_info)
{
	struct mpdev_device_info info;

	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_POSTED_WRITES);
	ck_assert_int_eq(mpdev_get_device_info(rem.dev, &info), 0);
	ck_assert_str_eq(info.name, "emu:edu");
	ck_assert_uint_eq(info.vendor_id, 0x1234);
	ck_assert_uint_eq(info.device_id, 0x11e8);
	ck_assert_uint_eq(info.regions[MPDEV_REGION_BAR0].size, 1u << 20);
	ck_assert(info.regions[MPDEV_REGION_BAR0].flags & MPDEV_REGION_FLAG_READ);
	ck_assert(info.regions[MPDEV_REGION_BAR0].flags & MPDEV_REGION_FLAG_WRITE);
	ck_assert_uint_eq(info.regions[MPDEV_REGION_CONFIG].size, 256);
	ck_assert_uint_eq(info.regions[MPDEV_REGION_BAR1].size, 0);
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_INTX].count, 1);
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_MSI].count, 1);
	/* The remote's own interrupt layer serves edu: VFIO's INTx, maskable vectors. */
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_INTX].flags, MPDEV_IRQ_FLAG_EVENTFD |
							       MPDEV_IRQ_FLAG_MASKABLE |
							       MPDEV_IRQ_FLAG_AUTOMASKED);
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_MSI].flags,
			  MPDEV_IRQ_FLAG_EVENTFD | MPDEV_IRQ_FLAG_MASKABLE);
	ck_assert(info.reset_supported);
}
END_TEST

START_TEST(edu_registers_through_the_wire)
{
	uint32_t st;
	int polls = 0;

	ck_assert_uint_eq(bar_rd32(rem.dev, 0x00), 0x010000ed);
	bar_wr32(rem.dev, 0x04, 0xdeadbeef);
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x04), ~0xdeadbeefu);
	bar_wr32(rem.dev, 0x08, 12);
	do
		st = bar_rd32(rem.dev, 0x20);
	while ((st & 1) && ++polls < 1000);
	ck_assert_uint_eq(st & 1, 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x08), 479001600u);
}
END_TEST

START_TEST(config_space_semantics_through_the_wire)
{
	uint32_t v;

	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x00, 4, &v), 0);
	ck_assert_uint_eq(v, 0x11e81234);
	/* Read-only identity. */
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x00, 4, 0xffffffff), 0);
	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x00, 4, &v), 0);
	ck_assert_uint_eq(v, 0x11e81234);
	/* BAR sizing. */
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x10, 4, 0xffffffff), 0);
	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x10, 4, &v), 0);
	ck_assert_uint_eq(v, 0xfff00000);
	/* Command register keeps only its writable bits. */
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x04, 2, 0xffff), 0);
	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x04, 2, &v), 0);
	ck_assert_uint_eq(v, 0x0547);
	/* Interrupt pin A. */
	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x3d, 1, &v), 0);
	ck_assert_uint_eq(v, 1);
}
END_TEST

START_TEST(remote_errors_come_back_with_words)
{
	uint32_t v;
	uint64_t q;

	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, 0x100000, &v, 4), -ERANGE);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "outside region 0"));
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, 0, &v, 3), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "width"));
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR2, 0, &v, 4), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "does not exist"));
	ck_assert_int_eq(mpdev_region_read(rem.dev, 42, 0, &v, 4), -EINVAL);
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_CONFIG, 0, &q, 8), -EINVAL);
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_CONFIG, 254, &v, 4), -ERANGE);
	/* The connection survives all of that. */
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x00), 0x010000ed);
	ck_assert_str_eq(mpdev_last_error(rem.dev), "");
}
END_TEST

START_TEST(posted_writes_keep_order_and_report_failures)
{
	uint32_t v;

	for (uint32_t i = 0; i < 1000; i++)
		ck_assert_int_eq(mpdev_region_write_posted(rem.dev, MPDEV_REGION_BAR0, 0x04, &i, 4),
				 0);
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x04), ~999u);

	v = 1;
	ck_assert_int_eq(mpdev_region_write_posted(rem.dev, MPDEV_REGION_BAR0, 0x200000, &v, 4), 0);
	ck_assert_int_eq(mpdev_region_write_posted(rem.dev, MPDEV_REGION_BAR0, 0x300000, &v, 4), 0);
	ck_assert_int_eq(mpdev_sync(rem.dev), -EIO);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "2 posted write(s) failed"));
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(rem.dev), "outside region 0"));
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
}
END_TEST

START_TEST(reset_restores_power_on_state)
{
	uint32_t v;

	bar_wr32(rem.dev, 0x04, 1);
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x10, 4, 0xfe000000), 0);
	ck_assert_int_eq(mpdev_reset(rem.dev), 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x04), 0); /* edu powers on with liveness 0 */
	ck_assert_int_eq(mpdev_config_read(rem.dev, 0x10, 4, &v), 0);
	ck_assert_uint_eq(v, 0);
}
END_TEST

static void sum_counter(void *opaque, const char *name, uint64_t value)
{
	if (!strcmp(name, "region_reads"))
		*(uint64_t *)opaque = value;
}

START_TEST(iommu_info_of_an_emulated_device)
{
	struct mpdev_iommu_info ii;

	ck_assert(mpdev_features(rem.dev) & MPDEV_FEATURE_IOMMU_INFO);
	ck_assert_int_eq(mpdev_get_iommu_info(rem.dev, &ii), 0);
	ck_assert_uint_eq(ii.kind, MPDEV_IOMMU_EMULATED);
	ck_assert_uint_eq(ii.n_ranges, 1);
	ck_assert_uint_eq(ii.ranges[0].start, 0);
	ck_assert_uint_eq(ii.ranges[0].last, UINT64_MAX);
	ck_assert(ii.pgsize_bitmap & 4096);
	/* The budget is the memory table's limit. */
	ck_assert_uint_eq(ii.dma_avail, 1024);
	ck_assert_uint_eq(ii.mappings_used, 0);
}
END_TEST

START_TEST(stats_count_what_happened)
{
	uint64_t reads = 0;

	bar_rd32(rem.dev, 0);
	bar_rd32(rem.dev, 0);
	ck_assert_int_gt(mpdev_get_stats(rem.dev, sum_counter, &reads), 0);
	ck_assert_uint_eq(reads, 2);
}
END_TEST

START_TEST(dma_without_memory_table_fails_cleanly)
{
	/* Until the memory table exists, an edu DMA must fail visibly, not pretend. */
	ck_assert_int_eq(mpdev_config_write(rem.dev, 0x04, 2, 0x0006), 0); /* memory + bus master */
	bar_wr32(rem.dev, 0x80, 0x1000);
	bar_wr32(rem.dev, 0x88, 0x40000);
	bar_wr32(rem.dev, 0x90, 16);
	bar_wr32(rem.dev, 0x98, 1);
	ck_assert_int_eq(mpdev_sync(rem.dev), 0);
	/* The DMA runs deferred on the remote's loop; wait for it to give up. */
	for (int i = 0; i < 1000 && (bar_rd32(rem.dev, 0x98) & 1); i++)
		;
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x98) & 1, 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, 0x00), 0x010000ed);
}
END_TEST

START_TEST(silent_remote_times_out)
{
	const struct mpdev_options quick = { .timeout_ms = 200 };
	struct mpdev *d = NULL;
	struct timespec t0, t1;
	int sv[2];
	double ms;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(mpdev_connect_fd(sv[0], &quick, &d), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	ck_assert(ms >= 150 && ms < 3000);
	ck_assert_ptr_nonnull(strstr(mpdev_connect_error(), "no reply"));
	ck_assert_ptr_null(d);
	close(sv[1]);
}
END_TEST

START_TEST(remote_gone_is_epipe_not_a_hang)
{
	uint32_t v;

	remote_kill(&rem);
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, 0, &v, 4), -EPIPE);
	ck_assert_int_eq(mpdev_region_read(rem.dev, MPDEV_REGION_BAR0, 0, &v, 4), -EPIPE);
	remote_release(&rem);
}
END_TEST

/* --- listening remote: several connections over its lifetime --- */

/* A remote listening on its socket, not yet connected to; extra: more arguments. */
static void start_listener(const char *const *extra)
{
	struct stat st;

	remote_start(&rem, &(struct remote_opts){
				 .listen = true, .args = extra, .greet = REMOTE_UNGREETED });
	ck_assert_int_eq(stat(rem.path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
}

START_TEST(disconnect_resets_and_next_proxy_is_served)
{
	struct mpdev *a, *b;
	uint32_t v = 0x55;

	start_listener(NULL);
	ck_assert_int_eq(mpdev_connect(rem.path, &opts, &a), 0);
	ck_assert_int_eq(mpdev_region_write(a, MPDEV_REGION_BAR0, 0x04, &v, 4), 0);
	ck_assert_int_eq(mpdev_config_write(a, 0x10, 4, 0xfe000000), 0);

	/* A second proxy is told why it cannot have the device. */
	ck_assert_int_eq(mpdev_connect(rem.path, &opts, &b), -EBUSY);
	ck_assert_ptr_nonnull(strstr(mpdev_connect_error(), "another proxy"));

	mpdev_close(a);
	/* The next one finds a freshly reset device. */
	b = remote_connect(&rem, &opts);
	ck_assert_int_eq(mpdev_region_read(b, MPDEV_REGION_BAR0, 0x04, &v, 4), 0);
	ck_assert_uint_eq(v, 0); /* not ~0x55: the device was reset */
	ck_assert_int_eq(mpdev_config_read(b, 0x10, 4, &v), 0);
	ck_assert_uint_eq(v, 0);
	mpdev_close(b);
	remote_stop(&rem);
}
END_TEST

START_TEST(peer_not_on_allow_list_is_refused_with_reason)
{
	/* Allow only a uid we are not (and not the gid we have). */
	const char *extra[] = { "--allow-uid", "4242", NULL };
	struct mpdev *a = NULL;

	start_listener(extra);
	ck_assert_int_eq(mpdev_connect(rem.path, &opts, &a), -EACCES);
	ck_assert_ptr_nonnull(strstr(mpdev_connect_error(), "not on the allow list"));
	ck_assert_ptr_null(a);
	remote_stop(&rem);
}
END_TEST

static int notified_type;

static void record_notify(void *opaque, enum mpdev_notify_type type, int status,
			  const char *message)
{
	notified_type = (int)type;
}

START_TEST(sigterm_sends_shutdown_notification)
{
	const struct mpdev_options o = { .timeout_ms = 3000, .on_notify = record_notify };
	struct mpdev *a;
	uint32_t v;
	int status;

	start_listener(NULL);
	ck_assert_int_eq(mpdev_connect(rem.path, &o, &a), 0);
	kill(rem.pid, SIGTERM);
	status = remote_wait_exit(&rem, REMOTE_EXIT_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(mpdev_region_read(a, MPDEV_REGION_BAR0, 0, &v, 4), -EPIPE);
	ck_assert_int_eq(notified_type, MPDEV_NOTIFY_SHUTDOWN);
	mpdev_close(a);
	remote_release(&rem);
}
END_TEST

/*
 * A remote that answers the handshake and pings, but answers one region
 * read only after the client gave up on it: that late error must not be
 * mistaken for a failed posted write.
 */
static void *slow_remote(void *arg)
{
	int sock = *(int *)arg;
	struct wire_msg m;

	for (int handled = 0; handled < 3;) {
		Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
		Mpdev__HelloReply hr = MPDEV__HELLO_REPLY__INIT;

		/* A thread: nothing here may assert, so the non-asserting receive. */
		if (native_try_recv(sock, &m, 5000) != 1) {
			wire_msg_release(&m);
			break;
		}
		rep.id = m.env->id;
		rep.kind = MPDEV__KIND__KIND_REPLY;
		if (m.env->body_case == MPDEV__ENVELOPE__BODY_HELLO) {
			hr.version = MPDEV_PROTO_VERSION;
			hr.features = MPDEV__FEATURE__FEATURE_POSTED_WRITES;
			rep.body_case = MPDEV__ENVELOPE__BODY_HELLO_REPLY;
			rep.hello_reply = &hr;
		} else if (m.env->body_case == MPDEV__ENVELOPE__BODY_REGION_READ) {
			usleep(300 * 1000); /* past the client's 100 ms timeout */
			rep.status = EIO;
			rep.error = (char *)"late";
		}
		wire_send(sock, &rep, NULL, 0);
		wire_msg_release(&m);
		handled++;
	}
	return NULL;
}

START_TEST(late_reply_is_not_a_posted_failure)
{
	const struct mpdev_options quick = { .timeout_ms = 100 };
	struct mpdev *d;
	pthread_t t;
	uint32_t v;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pthread_create(&t, NULL, slow_remote, &sv[1]);
	ck_assert_int_eq(mpdev_connect_fd(sv[0], &quick, &d), 0);
	ck_assert_int_eq(mpdev_region_read(d, MPDEV_REGION_BAR0, 0, &v, 4), -ETIMEDOUT);
	usleep(400 * 1000); /* the late EIO reply is now queued */
	ck_assert_int_eq(mpdev_sync(d), 0);
	mpdev_close(d);
	pthread_join(t, NULL);
	close(sv[1]);
}
END_TEST

START_TEST(no_remote_listening_is_a_clear_error)
{
	struct mpdev *a = NULL;

	ck_assert_int_eq(mpdev_connect("/tmp/mpdev-nobody-here.sock", &opts, &a), -ENOENT);
	ck_assert_ptr_nonnull(strstr(mpdev_connect_error(), "cannot reach the remote"));
}
END_TEST

static Suite *remote_suite(void)
{
	Suite *s = suite_create("remote");
	TCase *tc = tcase_create("adopted-fd");

	tcase_add_checked_fixture(tc, start_remote_fd, stop_remote_fd);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, handshake_and_device_info);
	tcase_add_test(tc, edu_registers_through_the_wire);
	tcase_add_test(tc, config_space_semantics_through_the_wire);
	tcase_add_test(tc, remote_errors_come_back_with_words);
	tcase_add_test(tc, posted_writes_keep_order_and_report_failures);
	tcase_add_test(tc, reset_restores_power_on_state);
	tcase_add_test(tc, stats_count_what_happened);
	tcase_add_test(tc, iommu_info_of_an_emulated_device);
	tcase_add_test(tc, dma_without_memory_table_fails_cleanly);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_checked_fixture(tc, start_remote_fd, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, remote_gone_is_epipe_not_a_hang);
	suite_add_tcase(s, tc);

	tc = tcase_create("listening");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, silent_remote_times_out);
	tcase_add_test(tc, disconnect_resets_and_next_proxy_is_served);
	tcase_add_test(tc, peer_not_on_allow_list_is_refused_with_reason);
	tcase_add_test(tc, no_remote_listening_is_a_clear_error);
	tcase_add_test(tc, sigterm_sends_shutdown_notification);
	tcase_add_test(tc, late_reply_is_not_a_posted_failure);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(remote_suite());
}
