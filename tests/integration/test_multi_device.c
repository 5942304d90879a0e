/*
 * Several devices of one VM in one mpdev-remote (--device repeated, a
 * socket each): each is its own device to its own client, and the VM's
 * memory table, sent by every client, is mapped once. "Once" is read from
 * the kernel (the remote's /proc/PID/maps), not from the remote's counters.
 * Emulated devices have no IOMMU to share, so their tables may differ (the
 * EBUSY refusal of disagreeing tables is the vfio path's: tests/unit/test_dma.c
 * and the vfio-lab); a device whose client leaves lets go of nothing the
 * other still uses. The command
 * line refuses devices without a socket each.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bar_access.h"
#include "edu.h"
#include "libmpdev.h"
#include "remote_fixture.h"
#include "spawn.h"
#include "testutil.h"

#define RAM_SIZE  0x400000u
#define RAM_GPA	  0x100000u
#define RAM2_GPA  0x800000u
#define RAM_NAME  "mpdev-vm-ram"
#define RAM2_NAME "mpdev-vm-ram2"

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_multi" };

struct ram {
	int fd;
	uint8_t *p;
};

static struct ram ram_new(const char *name)
{
	struct ram r;

	r.fd = memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC);
	ck_assert_int_ge(r.fd, 0);
	ck_assert_int_eq(ftruncate(r.fd, RAM_SIZE), 0);
	ck_assert_int_eq(fcntl(r.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	r.p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	ck_assert_ptr_ne(r.p, MAP_FAILED);
	return r;
}

static void ram_free(struct ram *r)
{
	munmap(r->p, RAM_SIZE);
	close(r->fd);
}

/* The remote's mappings of the memfd named name, as the kernel lists them. */
static int mappings_of(pid_t pid, const char *name)
{
	char path[64], line[512], needle[64];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	snprintf(needle, sizeof(needle), "/memfd:%s ", name);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* edu copies len bytes from guest RAM at gpa into its buffer and back to gpa + 0x1000. */
static void edu_round_trip(struct mpdev *d, struct ram *ram, uint64_t gpa, uint8_t seed)
{
	const uint32_t len = 512;
	uint64_t off = gpa - RAM_GPA;

	for (uint32_t i = 0; i < len; i++)
		ram->p[off + i] = (uint8_t)(seed + i * 3);
	memset(ram->p + off + 0x1000, 0, len);
	ck_assert_int_eq(mpdev_config_write(d, 0x04, 2, 0x0006), 0);
	for (int dir = 0; dir < 2; dir++) {
		uint64_t src = dir ? EDU_DMA_BUF_ADDR : gpa;
		uint64_t dst = dir ? gpa + 0x1000 : EDU_DMA_BUF_ADDR;
		int polls = 0;

		bar_wr64(d, EDU_REG_DMA_SRC, src);
		bar_wr64(d, EDU_REG_DMA_DST, dst);
		bar_wr64(d, EDU_REG_DMA_COUNT, len);
		bar_wr64(d, EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | (dir ? EDU_DMA_CMD_TO_RAM : 0));
		while (bar_rd64(d, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN) {
			ck_assert_int_lt(++polls, 3000);
			usleep(1000);
		}
	}
	ck_assert_mem_eq(ram->p + off, ram->p + off + 0x1000, len);
}

struct two {
	struct remote rem;
	char dir[64], path_b[96];
	struct mpdev *a, *b;
};

static void two_start(struct two *t, const char *first, const char *second)
{
	static char path_a[96];
	static const char *args[8];

	snprintf(t->dir, sizeof(t->dir), "/tmp/mpdev-multi-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	snprintf(path_a, sizeof(path_a), "%s/a.sock", t->dir);
	snprintf(t->path_b, sizeof(t->path_b), "%s/b.sock", t->dir);
	args[0] = "--device";
	args[1] = second;
	args[2] = "--socket";
	args[3] = t->path_b;
	args[4] = NULL;
	remote_start(&t->rem, &(struct remote_opts){ .device = first,
						     .args = args,
						     .listen = true,
						     .path = path_a,
						     .capture_stderr = true,
						     .mpdev = &opts });
	t->a = t->rem.dev;
	ck_assert_ptr_nonnull(t->a);
	ck_assert_msg(mpdev_connect(t->path_b, &opts, &t->b) == 0, "%s", mpdev_last_error(NULL));
}

static void two_stop(struct two *t)
{
	if (t->b)
		mpdev_close(t->b);
	remote_stop(&t->rem);
	unlink(t->path_b);
	rmdir(t->dir);
}

START_TEST(each_device_is_its_own_and_the_table_is_mapped_once)
{
	struct two t;
	struct ram ram = ram_new(RAM_NAME);
	struct mpdev_mem_region reg = { .gpa = RAM_GPA, .size = RAM_SIZE, .fd = ram.fd };
	struct mpdev_mem_region reg_dup = reg;
	uint32_t v;

	two_start(&t, "edu", "edu");
	/* Two devices: registers of one do not show in the other. */
	bar_wr32(t.a, EDU_REG_LIVENESS, 0x12345678);
	bar_wr32(t.b, EDU_REG_LIVENESS, 0x0000ffff);
	ck_assert_uint_eq(bar_rd32(t.a, EDU_REG_LIVENESS), ~0x12345678u);
	ck_assert_uint_eq(bar_rd32(t.b, EDU_REG_LIVENESS), ~0x0000ffffu);
	ck_assert_int_eq(mpdev_config_read(t.b, 0x00, 4, &v), 0);
	ck_assert_uint_eq(v, EDU_VENDOR_ID | (uint32_t)EDU_DEVICE_ID << 16);

	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 0);
	ck_assert_msg(mpdev_mem_set_table(t.a, &reg, 1) == 0, "%s", mpdev_last_error(t.a));
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 1);
	/* The second device's client sends the same table, through its own descriptor. */
	reg_dup.fd = dup(ram.fd);
	ck_assert_int_ge(reg_dup.fd, 0);
	ck_assert_msg(mpdev_mem_set_table(t.b, &reg_dup, 1) == 0, "%s", mpdev_last_error(t.b));
	close(reg_dup.fd);
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 1);
	/* Both DMA through the one mapping. */
	edu_round_trip(t.a, &ram, RAM_GPA, 1);
	edu_round_trip(t.b, &ram, RAM_GPA + 0x10000, 2);

	/* The first device's client leaves: the second keeps its memory. */
	mpdev_close(t.a);
	t.rem.dev = NULL;
	edu_round_trip(t.b, &ram, RAM_GPA + 0x20000, 3);
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 1);
	/* And the last one to let go unmaps it. */
	ck_assert_int_eq(mpdev_mem_set_table(t.b, NULL, 0), 0);
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 0);
	two_stop(&t);
	ram_free(&ram);
}
END_TEST

START_TEST(emulated_devices_may_hold_different_tables)
{
	struct two t;
	struct ram ram = ram_new(RAM_NAME), other = ram_new(RAM2_NAME);
	struct mpdev_mem_region ra = { .gpa = RAM_GPA, .size = RAM_SIZE, .fd = ram.fd };
	struct mpdev_mem_region rb = { .gpa = RAM_GPA + 0x200000,
				       .size = RAM_SIZE,
				       .fd = other.fd };
	struct mpdev_mem_region rc = { .gpa = RAM2_GPA, .size = RAM_SIZE, .fd = other.fd };

	two_start(&t, "edu", "edu");
	ck_assert_int_eq(mpdev_mem_set_table(t.a, &ra, 1), 0);
	/* Emulated devices have no IOMMU to disagree in: both mappings are fine. */
	ck_assert_msg(mpdev_mem_set_table(t.b, &rb, 1) == 0, "%s", mpdev_last_error(t.b));
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM_NAME), 1);
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM2_NAME), 1);
	/* Different regions elsewhere: each device DMAs through its own. */
	ck_assert_int_eq(mpdev_mem_set_table(t.b, &rc, 1), 0);
	ck_assert_int_eq(mappings_of(t.rem.pid, RAM2_NAME), 1);
	edu_round_trip(t.a, &ram, RAM_GPA, 4);
	two_stop(&t);
	ram_free(&ram);
	ram_free(&other);
}
END_TEST

/* Runs mpdev-remote with argv and returns its exit status (it must exit by itself). */
static int run_remote(const char *const *argv)
{
	pid_t pid = fork();
	int status = 0;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	/* Bounded: a remote that does not exit is killed, reaped, and fails the test. */
	ck_assert_msg(spawn_wait(pid, 5000, &status) == 0, "mpdev-remote did not exit within 5 s");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(devices_need_a_socket_each)
{
	const char *bin = remote_default_bin();
	const char *one_socket[] = { bin,
				     "--device",
				     "edu",
				     "--device",
				     "edu",
				     "--socket",
				     "/tmp/mpdev-multi-x.sock",
				     "--no-sandbox",
				     NULL };
	const char *three_fds[] = { bin,    "--device", "edu",		"--fd", "3",
				    "--fd", "4",	"--no-sandbox", NULL };
	const char *mixed[] = { bin,	  "--device", "edu", "--device",     "edu", "--socket",
				"/tmp/a", "--fd",     "3",   "--no-sandbox", NULL };

	ck_assert_int_eq(run_remote(one_socket), 2);
	ck_assert_int_eq(run_remote(three_fds), 2);
	ck_assert_int_eq(run_remote(mixed), 2);
}
END_TEST

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

/* systemd's socket activation with a socket per device: the Nth passed fd serves device N. */
START_TEST(systemd_passes_a_socket_per_device_in_order)
{
	char dir[] = "/tmp/mpdev-multi-XXXXXX", pa[64], pb[64];
	const char *bin = remote_default_bin();
	struct mpdev *a = NULL, *b = NULL;
	int la, lb, status = 0;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pa, sizeof(pa), "%s/a.sock", dir);
	snprintf(pb, sizeof(pb), "%s/b.sock", dir);
	la = listen_at(pa);
	lb = listen_at(pb);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char pidstr[16];

		/* As systemd hands them over: fds 3 and 4, LISTEN_PID naming the child. */
		if (dup2(la, 3) < 0 || dup2(lb, 4) < 0)
			_exit(126);
		snprintf(pidstr, sizeof(pidstr), "%d", (int)getpid());
		setenv("LISTEN_PID", pidstr, 1);
		setenv("LISTEN_FDS", "2", 1);
		execl(bin, bin, "--device", "edu", "--device", "edu", "--no-sandbox", (char *)NULL);
		_exit(127);
	}
	close(la);
	close(lb);
	for (int i = 0; i < 300 && !a; i++)
		if (mpdev_connect(pa, &opts, &a) < 0)
			usleep(10000);
	ck_assert_msg(a != NULL, "%s", mpdev_connect_error());
	ck_assert_msg(mpdev_connect(pb, &opts, &b) == 0, "%s", mpdev_connect_error());
	/* Two devices: the second socket is not the first device again. */
	bar_wr32(a, EDU_REG_LIVENESS, 1);
	bar_wr32(b, EDU_REG_LIVENESS, 2);
	ck_assert_uint_eq(bar_rd32(a, EDU_REG_LIVENESS), ~1u);
	ck_assert_uint_eq(bar_rd32(b, EDU_REG_LIVENESS), ~2u);
	mpdev_close(a);
	mpdev_close(b);
	kill(pid, SIGTERM);
	ck_assert_msg(spawn_wait(pid, 5000, &status) == 0,
		      "mpdev-remote did not exit on SIGTERM within 5 s");
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(pa);
	unlink(pb);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multi_device");
	TCase *tc = tcase_create("one_vm");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, each_device_is_its_own_and_the_table_is_mapped_once);
	tcase_add_test(tc, emulated_devices_may_hold_different_tables);
	tcase_add_test(tc, devices_need_a_socket_each);
	tcase_add_test(tc, systemd_passes_a_socket_per_device_in_order);
	suite_add_tcase(s, tc);
	return testutil_run_suite(s);
}
