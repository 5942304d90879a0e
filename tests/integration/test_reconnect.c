/*
 * Remote restarts, seen from libmpdev: a real mpdev-remote listening on a
 * socket path is SIGKILLed, a new one starts on the same path, and
 * mpdev_reconnect() must bring the session back as it was:
 *
 *  - DMA through the replayed memory table (edu RAM -> device -> RAM, byte
 *    for byte), the INTx irqfd pair, the MSI trigger and its mask, config
 *    space (BAR0, command register, MSI address, data and control) read
 *    back, and the device's report that it was reset (status SERR);
 *  - posted writes the dead remote never confirmed are reported by the
 *    next mpdev_sync();
 *  - refusals with words: another device, a missing feature (both from a
 *    fake remote handed out by reconnect_fd), no remote within the time, a
 *    socketpair handle with no way to reconnect;
 *  - reconnect_fd with a real remote: a new one spawned per restart;
 *  - auto_reconnect: an idempotent call across a restart succeeds, a BAR
 *    access fails with -ECONNRESET and is not sent again.
 *
 * Every wait is bounded; every child is reaped; the test's own descriptor
 * count is back where it started after each case.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "spawn.h"
#include "testutil.h"
#include "wire.h"

/* edu (QEMU's hw/misc/edu.c register layout). */
#define EDU_IDENT	0x00
#define EDU_LIVENESS	0x04
#define EDU_IRQ_RAISE	0x60
#define EDU_IRQ_ACK	0x64
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_COUNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_IDENT_VALUE 0x010000edu
#define EDU_CMD_RUN	0x1u
#define EDU_CMD_TO_RAM	0x2u
#define EDU_DMA_BUF	0x40000u

/* Config space. */
#define PCI_COMMAND	   0x04
#define PCI_STATUS	   0x06
#define PCI_BAR0	   0x10
#define PCI_COMMAND_MEMORY 0x0002u
#define PCI_COMMAND_MASTER 0x0004u
#define PCI_STATUS_SERR	   0x4000u
#define MSI_CTRL	   0x42
#define MSI_ADDR_LO	   0x44
#define MSI_ADDR_HI	   0x48
#define MSI_DATA	   0x4c
#define MSI_CTRL_ENABLE	   0x0001u
#define BAR0_ADDR	   0xfe000000u
#define MSI_ADDR	   0xfee01000u
#define MSI_DATA_VALUE	   0x4041u

#define RAM_SIZE  0x200000u
#define RAM_SRC	  0x1000u
#define RAM_DST	  0x3000u
#define DMA_BYTES 0x800u
#define PIRQ	  5
#define SIGNAL_MS 2000
#define QUIET_MS  50
#define WAIT_MS	  5000

static char sock_path[108];
static pid_t remote_pid = -1;
static int baseline_fds;

/* What on_notify saw. */
static struct {
	int restarted;
	int status;
	char message[512];
} seen;

static void record_notify(void *opaque, enum mpdev_notify_type type, int status,
			  const char *message)
{
	(void)opaque;
	if (type != MPDEV_NOTIFY_RESTARTED)
		return;
	seen.restarted++;
	seen.status = status;
	snprintf(seen.message, sizeof(seen.message), "%s", message ? message : "");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a remote listening on sock_path, killed and started again ---- */

/*
 * Starts a remote on sock_path and waits for its socket. A killed remote's
 * socket file stays (the next remote replaces it): it goes first, so that
 * the file's appearance means the new remote is there.
 */
static pid_t start_listener(void)
{
	struct stat st;
	pid_t pid;

	unlink(sock_path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Should this test die on a failed check, the remote goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(MPDEV_REMOTE_BIN, MPDEV_REMOTE_BIN, "--device", "edu", "--socket", sock_path,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(sock_path, &st) != 0; i++)
		usleep(10000);
	ck_assert_msg(stat(sock_path, &st) == 0, "the remote did not create %s", sock_path);
	return pid;
}

static void kill_remote(void)
{
	int status = 0;

	ck_assert_int_gt(remote_pid, 0);
	kill(remote_pid, SIGKILL);
	ck_assert_int_eq(spawn_wait(remote_pid, WAIT_MS, &status), 0);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	remote_pid = -1;
}

static void setup(void)
{
	snprintf(sock_path, sizeof(sock_path), "/tmp/mpdev-reconnect-%d.sock", (int)getpid());
	unlink(sock_path);
	memset(&seen, 0, sizeof(seen));
	baseline_fds = testutil_count_fds(0);
	remote_pid = -1;
}

static void teardown(void)
{
	if (remote_pid > 0) {
		kill(remote_pid, SIGTERM);
		spawn_wait(remote_pid, WAIT_MS, NULL);
		remote_pid = -1;
	}
	unlink(sock_path);
	ck_assert_int_eq(testutil_count_fds(0), baseline_fds);
}

static struct mpdev *connect_path(const struct mpdev_options *o)
{
	struct mpdev *dev = NULL;
	int r;

	/* The socket file may appear a moment before the remote listens on it. */
	for (int i = 0; i < 100; i++) {
		r = mpdev_connect(sock_path, o, &dev);
		if (r != -ECONNREFUSED)
			break;
		usleep(10000);
	}
	ck_assert_msg(r == 0, "connect: %s", mpdev_connect_error());
	return dev;
}

/* ---- device helpers ---- */

static uint32_t cfg_rd(struct mpdev *dev, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	ck_assert_msg(mpdev_config_read(dev, off, size, &v) == 0, "config read 0x%x: %s", off,
		      mpdev_last_error(dev));
	return v;
}

static void cfg_wr(struct mpdev *dev, uint32_t off, uint32_t size, uint32_t v)
{
	ck_assert_msg(mpdev_config_write(dev, off, size, v) == 0, "config write 0x%x: %s", off,
		      mpdev_last_error(dev));
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

/* Reads (and so resets) an eventfd's count; 0 if it is not readable within ms. */
static uint64_t take(int fd, int ms)
{
	uint64_t cnt = 0;

	if (!readable(fd, ms))
		return 0;
	ck_assert_int_eq(read(fd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	return cnt;
}

struct counter_query {
	const char *name;
	uint64_t value;
	bool found;
};

static void pick_counter(void *opaque, const char *name, uint64_t value)
{
	struct counter_query *q = opaque;

	if (!strcmp(name, q->name)) {
		q->value = value;
		q->found = true;
	}
}

static uint64_t counter(struct mpdev *dev, const char *name)
{
	struct counter_query q = { .name = name };

	ck_assert_msg(mpdev_get_stats(dev, pick_counter, &q) > 0, "stats: %s",
		      mpdev_last_error(dev));
	ck_assert_msg(q.found, "no counter %s", name);
	return q.value;
}

static uint8_t pattern(unsigned i, unsigned round)
{
	return (uint8_t)(i * 7 + round * 31 + 1);
}

/* edu copies RAM_SRC -> its buffer -> RAM_DST; the copy must match byte for byte. */
static void dma_round_trip(struct mpdev *dev, uint8_t *ram, unsigned round)
{
	for (unsigned i = 0; i < DMA_BYTES; i++) {
		ram[RAM_SRC + i] = pattern(i, round);
		ram[RAM_DST + i] = 0x5a;
	}
	ram[RAM_DST + DMA_BYTES] = 0x5a;
	for (int leg = 0; leg < 2; leg++) {
		int i;

		bar_wr64(dev, EDU_DMA_SRC, leg ? EDU_DMA_BUF : RAM_SRC);
		bar_wr64(dev, EDU_DMA_DST, leg ? RAM_DST : EDU_DMA_BUF);
		bar_wr64(dev, EDU_DMA_COUNT, DMA_BYTES);
		bar_wr64(dev, EDU_DMA_CMD, EDU_CMD_RUN | (leg ? EDU_CMD_TO_RAM : 0));
		for (i = 0; i < 1000 && (bar_rd64(dev, EDU_DMA_CMD) & EDU_CMD_RUN); i++)
			usleep(1000);
		ck_assert_msg(!(bar_rd64(dev, EDU_DMA_CMD) & EDU_CMD_RUN), "DMA leg %d hangs", leg);
	}
	for (unsigned i = 0; i < DMA_BYTES; i++)
		ck_assert_msg(ram[RAM_DST + i] == pattern(i, round),
			      "round %u byte %u: 0x%02x after the DMA, 0x%02x sent", round, i,
			      ram[RAM_DST + i], pattern(i, round));
	ck_assert_uint_eq(ram[RAM_DST + DMA_BYTES], 0x5a);
}

/* ---- the whole session comes back ---- */

START_TEST(replays_memory_config_and_interrupts)
{
	const struct mpdev_options o = { .timeout_ms = 3000,
					 .client_name = "test_reconnect",
					 .on_notify = record_notify,
					 .reconnect_timeout_ms = WAIT_MS };
	int memfd = testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	struct mpdev_mem_region region = { .gpa = 0, .size = RAM_SIZE, .fd = memfd };
	int irqfd = testutil_eventfd(), resample = testutil_eventfd(), msifd = testutil_eventfd();
	struct mpdev_replay_info ri;
	struct mpdev *dev;
	uint32_t v;

	ck_assert_ptr_ne(ram, MAP_FAILED);
	remote_pid = start_listener();
	dev = connect_path(&o);
	ck_assert_int_eq(mpdev_mem_set_table(dev, &region, 1), 0);
	close(memfd);			       /* libmpdev keeps its own duplicate */
	cfg_wr(dev, PCI_BAR0, 4, 0xffffffffu); /* sizing, as firmware does */
	cfg_wr(dev, PCI_BAR0, 4, BAR0_ADDR);
	cfg_wr(dev, MSI_ADDR_LO, 4, MSI_ADDR);
	cfg_wr(dev, MSI_ADDR_HI, 4, 0);
	cfg_wr(dev, MSI_DATA, 2, MSI_DATA_VALUE);
	cfg_wr(dev, MSI_CTRL, 2, MSI_CTRL_ENABLE);
	cfg_wr(dev, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_int_eq(mpdev_set_intx_irqfd(dev, 0, PIRQ, irqfd, resample), 0);
	ck_assert_int_eq(
		mpdev_set_irqs_eventfd(dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &msifd),
		0);
	ck_assert_int_eq(mpdev_set_irqs_none(dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK, 0, 1), 0);
	dma_round_trip(dev, ram, 0);
	/* The device's own state, which a restart loses. */
	bar_wr32(dev, EDU_LIVENESS, 0x12345678);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, 0);

	kill_remote();
	ck_assert_int_eq(mpdev_config_read(dev, PCI_BAR0, 4, &v), -EPIPE);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(dev), "closed"));
	remote_pid = start_listener();
	ck_assert_msg(mpdev_reconnect(dev) == 0, "reconnect: %s", mpdev_last_error(dev));
	ck_assert_int_eq(seen.restarted, 1);
	ck_assert_int_eq(seen.status, 0);
	ck_assert_msg(strstr(seen.message, "replayed 1 memory region"), "%s", seen.message);

	/* Config space as the caller left it, and the device's word that it was reset. */
	ck_assert_uint_eq(cfg_rd(dev, PCI_BAR0, 4), BAR0_ADDR);
	v = cfg_rd(dev, PCI_COMMAND, 2);
	ck_assert_uint_eq(v & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_uint_eq(cfg_rd(dev, MSI_ADDR_LO, 4), MSI_ADDR);
	ck_assert_uint_eq(cfg_rd(dev, MSI_ADDR_HI, 4), 0);
	ck_assert_uint_eq(cfg_rd(dev, MSI_DATA, 2), MSI_DATA_VALUE);
	ck_assert_uint_eq(cfg_rd(dev, MSI_CTRL, 2) & MSI_CTRL_ENABLE, MSI_CTRL_ENABLE);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, PCI_STATUS_SERR);
	cfg_wr(dev, PCI_STATUS, 2, PCI_STATUS_SERR); /* W1C, as the guest clears it */
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, 0);
	ck_assert_uint_eq(bar_rd32(dev, EDU_LIVENESS), 0); /* reset: not ~0x12345678 */

	/* DMA through the replayed table. */
	dma_round_trip(dev, ram, 1);

	/* MSI: the trigger is back, and so is its mask (the message waits). */
	bar_wr32(dev, EDU_IRQ_RAISE, 1);
	ck_assert_int_eq(mpdev_sync(dev), 0);
	ck_assert_uint_eq(take(msifd, QUIET_MS), 0);
	ck_assert_uint_eq(counter(dev, "vector_pending"), 1);
	ck_assert_int_eq(mpdev_set_irqs_none(dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_UNMASK, 0, 1), 0);
	ck_assert_uint_eq(take(msifd, SIGNAL_MS), 1);
	bar_wr32(dev, EDU_IRQ_ACK, 1);

	/* INTx through the replayed irqfd pair, once MSI is off. */
	cfg_wr(dev, MSI_CTRL, 2, 0);
	bar_wr32(dev, EDU_IRQ_RAISE, 1);
	ck_assert_uint_eq(take(irqfd, SIGNAL_MS), 1);
	bar_wr32(dev, EDU_IRQ_ACK, 1);

	ck_assert_int_eq(mpdev_get_replay_info(dev, &ri), 0);
	ck_assert_uint_eq(ri.restarts, 1);
	ck_assert_uint_ge(ri.attempts, 1);
	ck_assert_uint_eq(ri.mem_regions, 1);
	ck_assert_uint_ge(ri.config_bytes, 4 + 4 + 4 + 2 + 2 + 2);
	ck_assert_uint_eq(ri.intx_pairs, 1);
	ck_assert_uint_eq(ri.irq_eventfds, 1);
	ck_assert_uint_eq(ri.irq_masks, 1);

	mpdev_close(dev);
	munmap(ram, RAM_SIZE);
	close(irqfd);
	close(resample);
	close(msifd);
}
END_TEST

START_TEST(a_reset_is_not_undone_by_the_replay)
{
	const struct mpdev_options o = { .timeout_ms = 3000, .reconnect_timeout_ms = WAIT_MS };
	struct mpdev *dev;

	remote_pid = start_listener();
	dev = connect_path(&o);
	cfg_wr(dev, PCI_BAR0, 4, BAR0_ADDR);
	ck_assert_int_eq(mpdev_reset(dev), 0);
	cfg_wr(dev, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	kill_remote();
	remote_pid = start_listener();
	ck_assert_msg(mpdev_reconnect(dev) == 0, "reconnect: %s", mpdev_last_error(dev));
	/* Written before the reset: gone with it. Written after: back. */
	ck_assert_uint_eq(cfg_rd(dev, PCI_BAR0, 4), 0);
	ck_assert_uint_eq(cfg_rd(dev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
	mpdev_close(dev);
}
END_TEST

START_TEST(posted_writes_lost_with_the_remote_are_reported)
{
	const struct mpdev_options o = { .timeout_ms = 3000, .reconnect_timeout_ms = WAIT_MS };
	struct mpdev_replay_info ri;
	struct mpdev *dev;
	uint32_t v = 1;

	remote_pid = start_listener();
	dev = connect_path(&o);
	/* Stopped, the remote reads nothing: these three die unread with it. */
	ck_assert_int_eq(kill(remote_pid, SIGSTOP), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mpdev_region_write_posted(dev, 0, EDU_LIVENESS, &v, 4), 0);
	kill_remote();
	remote_pid = start_listener();
	ck_assert_msg(mpdev_reconnect(dev) == 0, "reconnect: %s", mpdev_last_error(dev));
	ck_assert_int_eq(mpdev_get_replay_info(dev, &ri), 0);
	ck_assert_uint_eq(ri.posted_lost, 3);
	ck_assert_int_eq(mpdev_sync(dev), -EIO);
	ck_assert_msg(strstr(mpdev_last_error(dev), "3 posted write(s) were lost"), "%s",
		      mpdev_last_error(dev));
	/* Reported once. */
	ck_assert_int_eq(mpdev_sync(dev), 0);
	mpdev_close(dev);
}
END_TEST

/* ---- refusals ---- */

START_TEST(no_remote_within_the_timeout)
{
	const struct mpdev_options o = { .timeout_ms = 3000, .reconnect_timeout_ms = 300 };
	struct mpdev *dev;
	int64_t t0;
	uint32_t v;

	remote_pid = start_listener();
	dev = connect_path(&o);
	kill_remote();
	t0 = now_ms();
	ck_assert_int_eq(mpdev_reconnect(dev), -ETIMEDOUT);
	ck_assert_int_lt(now_ms() - t0, 2000);
	ck_assert_msg(strstr(mpdev_last_error(dev), "no restarted remote at ") &&
			      strstr(mpdev_last_error(dev), "within 300 ms"),
		      "%s", mpdev_last_error(dev));
	/* Dead with that error until a reconnect succeeds; nothing waits again. */
	t0 = now_ms();
	ck_assert_int_eq(mpdev_config_read(dev, 0, 4, &v), -ETIMEDOUT);
	ck_assert_int_lt(now_ms() - t0, 100);
	remote_pid = start_listener();
	ck_assert_msg(mpdev_reconnect(dev) == 0, "reconnect: %s", mpdev_last_error(dev));
	ck_assert_uint_eq(bar_rd32(dev, EDU_IDENT), EDU_IDENT_VALUE);
	mpdev_close(dev);
}
END_TEST

START_TEST(a_socketpair_handle_cannot_reconnect_without_a_callback)
{
	const char *args[] = { "--device", "edu", NULL };
	struct mpdev *dev;
	pid_t pid;
	int sock;

	ck_assert_int_eq(spawn_remote(MPDEV_REMOTE_BIN, args, &pid, &sock), 0);
	ck_assert_int_eq(mpdev_connect_fd(sock, NULL, &dev), 0);
	ck_assert_int_eq(mpdev_reconnect(dev), -ENOTCONN);
	ck_assert_ptr_nonnull(strstr(mpdev_last_error(dev), "reconnect_fd"));
	/* Nothing was touched: the connection still serves. */
	ck_assert_uint_eq(bar_rd32(dev, EDU_IDENT), EDU_IDENT_VALUE);
	mpdev_close(dev);
	ck_assert_int_eq(spawn_wait(pid, WAIT_MS, NULL), 0);
}
END_TEST

/*
 * A fake remote on a socketpair, handed out by reconnect_fd: it answers
 * hello with the features it is given and device info with the device id it
 * is given, and ends when the client closes.
 */
struct fake {
	int sock;
	uint64_t features;
	uint16_t device_id;
	pthread_t thread;
	bool started;
};

static struct fake fakes[4];
static int n_fakes;
static uint64_t fake_features;
static uint16_t fake_device_id;

static void fake_reply(int sock, Mpdev__Envelope *rep, const Mpdev__Envelope *req)
{
	rep->id = req->id;
	rep->kind = MPDEV__KIND__KIND_REPLY;
	wire_send(sock, rep, NULL, 0);
}

static void *fake_remote(void *arg)
{
	struct fake *f = arg;
	struct mpdev_error err;
	struct wire_msg m;

	for (;;) {
		Mpdev__Envelope rep = MPDEV__ENVELOPE__INIT;
		Mpdev__HelloReply hr = MPDEV__HELLO_REPLY__INIT;
		Mpdev__DeviceInfo di = MPDEV__DEVICE_INFO__INIT;
		struct pollfd p = { .fd = f->sock, .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1 || wire_recv(f->sock, &m, &err, 0) != 1)
			break;
		if (m.env->body_case == MPDEV__ENVELOPE__BODY_HELLO) {
			hr.version = MPDEV_PROTO_VERSION;
			hr.features = m.env->hello->features & f->features;
			rep.body_case = MPDEV__ENVELOPE__BODY_HELLO_REPLY;
			rep.hello_reply = &hr;
		} else if (m.env->body_case == MPDEV__ENVELOPE__BODY_DEVICE_INFO_REQUEST) {
			di.name = (char *)"emu:fake";
			di.vendor_id = 0x1234;
			di.device_id = f->device_id;
			rep.body_case = MPDEV__ENVELOPE__BODY_DEVICE_INFO;
			rep.device_info = &di;
		} else {
			rep.status = EIO;
			rep.error = (char *)"the fake remote does not do that";
		}
		fake_reply(f->sock, &rep, m.env);
		wire_msg_release(&m);
	}
	wire_msg_release(&m);
	close(f->sock);
	return NULL;
}

static int give_fake(void *opaque)
{
	struct fake *f;
	int sv[2];

	(void)opaque;
	if (n_fakes == (int)(sizeof(fakes) / sizeof(fakes[0])))
		return -EMFILE;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	f = &fakes[n_fakes++];
	f->sock = sv[1];
	f->features = fake_features;
	f->device_id = fake_device_id;
	f->started = pthread_create(&f->thread, NULL, fake_remote, f) == 0;
	ck_assert(f->started);
	return sv[0];
}

static void join_fakes(void)
{
	for (int i = 0; i < n_fakes; i++)
		if (fakes[i].started)
			pthread_join(fakes[i].thread, NULL);
	n_fakes = 0;
}

/* A session on a real spawned remote that "restarts" into the fake; returns the reconnect's result.
 */
static int restart_into_fake(uint64_t features, uint16_t device_id, char *why, size_t len)
{
	const char *args[] = { "--device", "edu", NULL };
	const struct mpdev_options o = { .timeout_ms = 2000,
					 .reconnect_timeout_ms = WAIT_MS,
					 .reconnect_fd = give_fake };
	struct mpdev *dev;
	uint32_t v;
	int sock, r;

	fake_features = features;
	fake_device_id = device_id;
	ck_assert_int_eq(spawn_remote(MPDEV_REMOTE_BIN, args, &remote_pid, &sock), 0);
	ck_assert_msg(mpdev_connect_fd(sock, &o, &dev) == 0, "connect: %s", mpdev_connect_error());
	cfg_wr(dev, PCI_BAR0, 4, BAR0_ADDR);
	kill_remote();
	r = mpdev_reconnect(dev);
	snprintf(why, len, "%s", mpdev_last_error(dev));
	/* One attempt: a refusal is not retried. And the handle stays dead with it. */
	ck_assert_int_eq(n_fakes, 1);
	ck_assert_int_eq(mpdev_config_read(dev, PCI_BAR0, 4, &v), r);
	mpdev_close(dev);
	join_fakes();
	return r;
}

START_TEST(another_device_is_refused)
{
	char why[256];

	ck_assert_int_eq(restart_into_fake(~0ull, 0x1000, why, sizeof(why)), -ENODEV);
	ck_assert_msg(strstr(why, "serves another device") && strstr(why, "1234:11e8") &&
			      strstr(why, "1234:1000"),
		      "%s", why);
}
END_TEST

START_TEST(a_missing_feature_is_refused)
{
	char why[256];

	ck_assert_int_eq(
		restart_into_fake(~(uint64_t)MPDEV_FEATURE_SET_IRQS, 0x11e8, why, sizeof(why)),
		-ENOTSUP);
	ck_assert_msg(strstr(why, "does not offer feature(s) 0x8"), "%s", why);
}
END_TEST

/* reconnect_fd with a real remote: the callback starts the next one. */
static pid_t spawned[4];
static int n_spawned;

static int spawn_next(void *opaque)
{
	const char *args[] = { "--device", "edu", NULL };
	int sock, r;

	(void)opaque;
	if (n_spawned == (int)(sizeof(spawned) / sizeof(spawned[0])))
		return -EMFILE;
	r = spawn_remote(MPDEV_REMOTE_BIN, args, &spawned[n_spawned], &sock);
	if (r < 0)
		return r;
	n_spawned++;
	return sock;
}

START_TEST(reconnect_fd_gets_a_new_remote)
{
	const char *args[] = { "--device", "edu", NULL };
	const struct mpdev_options o = { .timeout_ms = 3000,
					 .reconnect_timeout_ms = WAIT_MS,
					 .reconnect_fd = spawn_next };
	struct mpdev *dev;
	int sock, status;

	n_spawned = 0;
	ck_assert_int_eq(spawn_remote(MPDEV_REMOTE_BIN, args, &remote_pid, &sock), 0);
	ck_assert_int_eq(mpdev_connect_fd(sock, &o, &dev), 0);
	cfg_wr(dev, PCI_BAR0, 4, BAR0_ADDR);
	cfg_wr(dev, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	kill_remote();
	ck_assert_msg(mpdev_reconnect(dev) == 0, "reconnect: %s", mpdev_last_error(dev));
	ck_assert_int_eq(n_spawned, 1);
	ck_assert_uint_eq(cfg_rd(dev, PCI_BAR0, 4), BAR0_ADDR);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, PCI_STATUS_SERR);
	ck_assert_uint_eq(bar_rd32(dev, EDU_IDENT), EDU_IDENT_VALUE);
	mpdev_close(dev);
	/* An adopted-socket remote exits once its connection is gone. */
	ck_assert_int_eq(spawn_wait(spawned[0], WAIT_MS, &status), 0);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* ---- automatic mode ---- */

START_TEST(auto_mode_retries_what_is_idempotent_only)
{
	const struct mpdev_options o = { .timeout_ms = 3000,
					 .on_notify = record_notify,
					 .reconnect_timeout_ms = WAIT_MS,
					 .auto_reconnect = true };
	int memfd = testutil_memfd(RAM_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	struct mpdev_mem_region region = { .gpa = 0, .size = RAM_SIZE, .fd = memfd }, got;
	struct mpdev *dev;
	uint32_t v = 7;

	remote_pid = start_listener();
	dev = connect_path(&o);
	cfg_wr(dev, PCI_BAR0, 4, BAR0_ADDR);

	/* An idempotent call across a restart: reconnect, replay, run again. */
	kill_remote();
	remote_pid = start_listener();
	ck_assert_uint_eq(cfg_rd(dev, PCI_BAR0, 4), BAR0_ADDR);
	ck_assert_int_eq(seen.restarted, 1);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, PCI_STATUS_SERR);

	/* A memory table call too. */
	kill_remote();
	remote_pid = start_listener();
	ck_assert_msg(mpdev_mem_add(dev, &region) == 0, "%s", mpdev_last_error(dev));
	ck_assert_int_eq(seen.restarted, 2);
	ck_assert_uint_eq(mpdev_mem_get_table(dev, &got, 1), 1);
	ck_assert_uint_eq(counter(dev, "mem_regions"), 1);

	/* A BAR write is not: it fails with words, and was not sent again. */
	kill_remote();
	remote_pid = start_listener();
	ck_assert_int_eq(mpdev_region_write(dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4),
			 -ECONNRESET);
	ck_assert_msg(strstr(mpdev_last_error(dev), "BAR0 write was not sent again"), "%s",
		      mpdev_last_error(dev));
	ck_assert_int_eq(seen.restarted, 3);
	ck_assert_uint_eq(bar_rd32(dev, EDU_LIVENESS), 0); /* the write never arrived */
	/* The restart before it replayed the table, region included. */
	ck_assert_uint_eq(counter(dev, "mem_regions"), 1);

	/* Nor is a BAR read; a posted write fails the same way. */
	kill_remote();
	remote_pid = start_listener();
	ck_assert_int_eq(mpdev_region_read(dev, MPDEV_REGION_BAR0, EDU_IDENT, &v, 4), -ECONNRESET);
	kill_remote();
	remote_pid = start_listener();
	/* The dead remote's socket is closed: the send itself fails. */
	ck_assert_int_eq(mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &v, 4),
			 -ECONNRESET);
	ck_assert_int_eq(seen.restarted, 5);
	ck_assert_int_eq(mpdev_sync(dev), 0);
	mpdev_close(dev);
	close(memfd);
}
END_TEST

/*
 * The guest clears the SERR of a restart it saw, and the remote dies again
 * before that write reaches it: the write is sent again to the new remote,
 * whose SERR reports the second restart. Sent as it was, it would clear that
 * too and the guest would never learn of the second reset.
 */
START_TEST(a_status_clear_across_a_restart_keeps_the_new_serr)
{
	const struct mpdev_options o = { .timeout_ms = 3000,
					 .on_notify = record_notify,
					 .reconnect_timeout_ms = WAIT_MS,
					 .auto_reconnect = true };
	struct mpdev *dev;

	remote_pid = start_listener();
	dev = connect_path(&o);
	kill_remote();
	remote_pid = start_listener();
	cfg_wr(dev, PCI_STATUS, 2, PCI_STATUS_SERR);
	ck_assert_int_eq(seen.restarted, 1);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, PCI_STATUS_SERR);

	/* Command and status in one dword: the command still gets written. */
	kill_remote();
	remote_pid = start_listener();
	cfg_wr(dev, PCI_COMMAND, 4, PCI_STATUS_SERR << 16 | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_int_eq(seen.restarted, 2);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, PCI_STATUS_SERR);
	ck_assert_uint_eq(cfg_rd(dev, PCI_COMMAND, 2) & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	/* Without a restart in between the clear clears. */
	cfg_wr(dev, PCI_STATUS, 2, PCI_STATUS_SERR);
	ck_assert_uint_eq(cfg_rd(dev, PCI_STATUS, 2) & PCI_STATUS_SERR, 0);
	mpdev_close(dev);
}
END_TEST

static Suite *reconnect_suite(void)
{
	Suite *s = suite_create("reconnect");
	TCase *tc = tcase_create("restart");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, replays_memory_config_and_interrupts);
	tcase_add_test(tc, a_reset_is_not_undone_by_the_replay);
	tcase_add_test(tc, posted_writes_lost_with_the_remote_are_reported);
	tcase_add_test(tc, no_remote_within_the_timeout);
	tcase_add_test(tc, a_socketpair_handle_cannot_reconnect_without_a_callback);
	tcase_add_test(tc, another_device_is_refused);
	tcase_add_test(tc, a_missing_feature_is_refused);
	tcase_add_test(tc, reconnect_fd_gets_a_new_remote);
	tcase_add_test(tc, auto_mode_retries_what_is_idempotent_only);
	tcase_add_test(tc, a_status_clear_across_a_restart_keeps_the_new_serr);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(reconnect_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
