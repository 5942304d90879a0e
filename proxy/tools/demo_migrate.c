/*
 * mpdev-demo's migration step, the way a VMM migrates a VM with an mpdev
 * device: a second remote (the target), the source quiesced in P2P while
 * the guest has a factorial and a DMA in flight, a precopy pass while it
 * still runs, STOP_COPY, guest memory copied, the stream loaded into the
 * target, the target resumed — and the work completes there.
 */
#include "demo_migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libmpdev.h"
#include "spawn.h"

#define RAM_GPA	      0x100000u
#define RAM_SIZE      (1u << 20)
#define DMA_LEN	      2048u
#define DMA_DST	      0x40000u /* in RAM, from its start */
#define STREAM_MAX    (256u * 1024u)
#define EDU_LIVENESS  0x04
#define EDU_FACTORIAL 0x08
#define EDU_STATUS    0x20
#define EDU_IRQ_STAT  0x24
#define EDU_DMA_SRC   0x80
#define EDU_DMA_DST   0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD   0x98
#define EDU_DMA_BUF   0x40000u

struct side {
	const char *name;
	pid_t pid;
	struct mpdev *dev;
	int ram_fd;
	uint8_t *ram;
};

static int say_fail(struct side *s, const char *what, int r)
{
	fprintf(stderr, "mpdev-demo: migration: %s on the %s failed: %s (%s)\n", what, s->name,
		s->dev ? mpdev_last_error(s->dev) : mpdev_connect_error(), strerror(-r));
	return r < 0 ? r : -EIO;
}

static int side_start(struct side *s, const char *bin)
{
	const char *args[] = { "--device", "edu", NULL };
	struct mpdev_mem_region reg = { .gpa = RAM_GPA, .size = RAM_SIZE };
	int sock, r;

	s->ram_fd = memfd_create("demo-guest-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (s->ram_fd < 0 || ftruncate(s->ram_fd, RAM_SIZE) < 0 ||
	    fcntl(s->ram_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return say_fail(s, "guest RAM", -errno);
	s->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, s->ram_fd, 0);
	if (s->ram == MAP_FAILED) {
		s->ram = NULL;
		return say_fail(s, "guest RAM", -errno);
	}
	r = spawn_remote(bin, args, &s->pid, &sock);
	if (r < 0)
		return say_fail(s, "starting the remote", r);
	r = mpdev_connect_fd(sock, NULL, &s->dev);
	if (r < 0)
		return say_fail(s, "connect", r);
	reg.fd = s->ram_fd;
	r = mpdev_mem_set_table(s->dev, &reg, 1);
	if (r < 0)
		return say_fail(s, "memory table", r);
	return mpdev_config_write(s->dev, 0x04, 2, 0x0006); /* memory + bus master */
}

static void side_stop(struct side *s)
{
	int status;

	mpdev_close(s->dev);
	if (s->pid > 0)
		spawn_wait(s->pid, 5000, &status);
	if (s->ram)
		munmap(s->ram, RAM_SIZE);
	if (s->ram_fd >= 0)
		close(s->ram_fd);
}

static int wr(struct side *s, uint64_t off, uint64_t v, uint32_t size)
{
	int r = mpdev_region_write(s->dev, MPDEV_REGION_BAR0, off, &v, size);

	return r < 0 ? say_fail(s, "BAR0 write", r) : 0;
}

static uint64_t rd(struct side *s, uint64_t off, uint32_t size)
{
	uint64_t v = 0;

	if (mpdev_region_read(s->dev, MPDEV_REGION_BAR0, off, &v, size) < 0)
		return ~0ull;
	return v;
}

static int to_state(struct side *s, enum mpdev_mig_state st)
{
	int r = mpdev_mig_set_state(s->dev, st, NULL);

	return r < 0 ? say_fail(s, mpdev_mig_state_name(st), r) : 0;
}

static int read_all(struct side *s, uint8_t *buf, size_t *len)
{
	int n;

	while ((n = mpdev_mig_read(s->dev, buf + *len, STREAM_MAX - *len)) > 0)
		*len += (size_t)n;
	return n < 0 ? say_fail(s, "stream read", n) : 0;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The guest's work, started on the source while it is quiesced: held, in flight. */
static int start_work(struct side *src)
{
	for (uint32_t i = 0; i < DMA_LEN; i++)
		src->ram[i] = (uint8_t)(i * 13 + 5);
	/* RAM -> device buffer while running, then wait for it. */
	if (wr(src, EDU_DMA_SRC, RAM_GPA, 8) || wr(src, EDU_DMA_DST, EDU_DMA_BUF, 8) ||
	    wr(src, EDU_DMA_COUNT, DMA_LEN, 8) || wr(src, EDU_DMA_CMD, 1, 8))
		return -EIO;
	for (int i = 0; i < 10000 && (rd(src, EDU_DMA_CMD, 8) & 1); i++)
		;
	if (to_state(src, MPDEV_MIG_RUNNING_P2P) || wr(src, EDU_LIVENESS, 0x0badf00d, 4) ||
	    wr(src, EDU_FACTORIAL, 12, 4) || wr(src, EDU_DMA_SRC, EDU_DMA_BUF, 8) ||
	    wr(src, EDU_DMA_DST, RAM_GPA + DMA_DST, 8) || wr(src, EDU_DMA_CMD, 3, 8))
		return -EIO;
	printf("migration   : source quiesced (RUNNING_P2P) with a factorial of 12 and a "
	       "%u-byte DMA in flight: status 0x%llx, DMA cmd 0x%llx\n",
	       DMA_LEN, (unsigned long long)rd(src, EDU_STATUS, 4),
	       (unsigned long long)rd(src, EDU_DMA_CMD, 8));
	return 0;
}

static int move(struct side *src, struct side *dst, uint8_t *stream)
{
	uint64_t initial = 0, dirty = 0, t0, t1;
	size_t len = 0, pre;
	int r;

	if (to_state(src, MPDEV_MIG_PRE_COPY_P2P) ||
	    (r = mpdev_mig_precopy_info(src->dev, &initial, &dirty)) < 0 ||
	    read_all(src, stream, &len))
		return -EIO;
	pre = len;
	printf("migration   : precopy pass: %zu bytes while the source still answers (precopy "
	       "info: %llu initial, %llu dirty)\n",
	       pre, (unsigned long long)initial, (unsigned long long)dirty);
	t0 = now_us();
	if (to_state(src, MPDEV_MIG_STOP_COPY) || read_all(src, stream, &len))
		return -EIO;
	memcpy(dst->ram, src->ram, RAM_SIZE); /* the VMM copies guest memory */
	if (to_state(dst, MPDEV_MIG_RESUMING))
		return -EIO;
	r = mpdev_mig_write(dst->dev, stream, len);
	if (r < 0)
		return say_fail(dst, "stream write", r);
	if (to_state(dst, MPDEV_MIG_RUNNING))
		return -EIO;
	t1 = now_us();
	printf("migration   : STOP_COPY %zu bytes, 1 MiB of guest RAM copied, target RESUMING -> "
	       "RUNNING: %llu us from stop to running\n",
	       len - pre, (unsigned long long)(t1 - t0));
	return to_state(src, MPDEV_MIG_STOP);
}

static int check_target(struct side *src, struct side *dst)
{
	uint64_t fact = 0, live;
	bool same;

	for (int i = 0;
	     i < 10000 && ((rd(dst, EDU_STATUS, 4) & 1) || (rd(dst, EDU_DMA_CMD, 8) & 1)); i++)
		;
	fact = rd(dst, EDU_FACTORIAL, 4);
	live = rd(dst, EDU_LIVENESS, 4);
	same = memcmp(dst->ram + DMA_DST, src->ram, DMA_LEN) == 0;
	printf("migration   : on the target: 12! = %llu (%s), liveness 0x%08llx (%s), irq status "
	       "0x%llx, the held DMA landed in the target's RAM: %s\n",
	       (unsigned long long)fact, fact == 479001600 ? "correct" : "WRONG",
	       (unsigned long long)live, live == (uint32_t)~0x0badf00du ? "kept" : "LOST",
	       (unsigned long long)rd(dst, EDU_IRQ_STAT, 4),
	       same ? "identical, byte for byte" : "MISMATCH");
	return fact == 479001600 && live == (uint32_t)~0x0badf00du && same ? 0 : -EIO;
}

int demo_migrate(const char *bin)
{
	struct side src = { .name = "source", .ram_fd = -1 },
		    dst = { .name = "target", .ram_fd = -1 };
	uint8_t *stream = malloc(STREAM_MAX);
	int r = -ENOMEM;

	if (stream && (r = side_start(&src, bin)) == 0 && (r = side_start(&dst, bin)) == 0) {
		printf("migration   : a second remote as the target (pid %d); source pid %d\n",
		       (int)dst.pid, (int)src.pid);
		r = start_work(&src);
		if (r == 0)
			r = move(&src, &dst, stream);
		if (r == 0)
			r = check_target(&src, &dst);
	}
	side_stop(&src);
	side_stop(&dst);
	free(stream);
	return r;
}
