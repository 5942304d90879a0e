/* The vfio-lab drivers' shared pieces (lab_util.h). */
#include "lab_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

int lab_failures;
const char *lab_remote_bin = "/bin/mpdev-remote";

void check(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("CHECK %-40s %s", name, ok ? "ok" : "FAIL");
	if (fmt) {
		printf(": ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("\n");
	fflush(stdout);
	if (!ok)
		lab_failures++;
}

uint32_t rd(struct mpdev *d, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	if (mpdev_region_read(d, MPDEV_REGION_BAR0, off, &v, 4) < 0)
		printf("  read 0x%llx: %s\n", (unsigned long long)off, mpdev_last_error(d));
	return v;
}

int wr(struct mpdev *d, uint64_t off, uint32_t v)
{
	int r = mpdev_region_write(d, MPDEV_REGION_BAR0, off, &v, 4);

	if (r < 0)
		printf("  write 0x%llx: %s\n", (unsigned long long)off, mpdev_last_error(d));
	return r;
}

/* Whether fd becomes readable within ms; drains it. */
int fired(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t cnt;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(fd, &cnt, sizeof(cnt)) == sizeof(cnt) ? 1 : 0;
}

int sealed_memfd(uint64_t size, uint8_t **map)
{
	int fd = memfd_create("lab-guest-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return *map == MAP_FAILED ? -1 : fd;
}

/* One edu DMA; each takes ~100 ms under TCG. Returns 0 once the command is done. */
int edu_dma(struct mpdev *d, uint64_t src, uint64_t dst, uint32_t len, uint32_t cmd)
{
	if (wr(d, EDU_REG_DMA_SRC, (uint32_t)src) || wr(d, EDU_REG_DMA_DST, (uint32_t)dst) ||
	    wr(d, EDU_REG_DMA_COUNT, len) || wr(d, EDU_REG_DMA_CMD, cmd))
		return -1;
	for (int i = 0; i < 2000; i++) {
		if (!(rd(d, EDU_REG_DMA_CMD) & 1))
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

pid_t start_remote_args(const char *const *args, const char *path)
{
	const char *argv[40];
	size_t n = 0;
	pid_t pid;

	argv[n++] = lab_remote_bin;
	for (size_t i = 0; args[i] && n < 30; i++)
		argv[n++] = args[i];
	/* The guest has no user database: the sandbox drops to a plain uid. */
	argv[n++] = "--socket";
	argv[n++] = path;
	argv[n++] = "--user";
	argv[n++] = "999";
	argv[n++] = "-v";
	argv[n] = NULL;
	unlink(path);
	pid = fork();
	if (pid == 0) {
		execv(lab_remote_bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

pid_t start_remote(const char *spec, const char *iommu, const char *intx, const char *path)
{
	const char *args[] = { "--device", spec, "--iommu", iommu, "--intx", intx, NULL };

	return start_remote_args(args, path);
}

struct mpdev *connect_remote(const char *path, pid_t pid)
{
	const struct mpdev_options o = { .timeout_ms = 10000, .client_name = "vfio-lab" };
	struct mpdev *d = NULL;

	for (int i = 0; i < 500; i++) {
		if (mpdev_connect(path, &o, &d) == 0)
			return d;
		if (kill(pid, 0) < 0 || waitpid(pid, NULL, WNOHANG) == pid) {
			printf("the remote exited before accepting a connection\n");
			return NULL;
		}
		usleep(20000);
	}
	printf("connect: %s\n", mpdev_connect_error());
	return NULL;
}

void stop_remote(pid_t pid)
{
	int st = -1, r;

	kill(pid, SIGTERM);
	r = spawn_wait(pid, 10000, &st);
	check(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "remote exits cleanly on SIGTERM",
	      "status 0x%x", st);
}

bool edu_round_trip(struct mpdev *d, uint8_t *ram, uint64_t gpa, uint8_t seed)
{
	const uint32_t len = 1000;

	for (uint32_t i = 0; i < len; i++)
		ram[i] = (uint8_t)(i * 5 + seed);
	memset(ram + 0x1000, 0, len);
	if (edu_dma(d, gpa, EDU_DMA_BUF_ADDR, len, 1) < 0 ||
	    edu_dma(d, EDU_DMA_BUF_ADDR, gpa + 0x1000, len, 3) < 0)
		return false;
	return !memcmp(ram, ram + 0x1000, len);
}

int lab_result(void)
{
	/* run-lab.sh wants "LAB RESULT: PASS" alone on its line. */
	if (lab_failures)
		printf("LAB RESULT: FAIL (%d failed check%s)\n", lab_failures,
		       lab_failures == 1 ? "" : "s");
	else
		printf("LAB RESULT: PASS\n");
	return lab_failures ? 1 : 0;
}
