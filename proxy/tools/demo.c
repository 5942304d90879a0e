/*
 * mpdev-demo: starts an mpdev-remote serving the emulated edu device, drives
 * it through libmpdev the way a VMM would, and says what happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo_migrate.h"
#include "libmpdev.h"
#include "spawn.h"

#define EDU_IDENT	     0x00
#define EDU_LIVENESS	     0x04
#define EDU_FACTORIAL	     0x08
#define EDU_STATUS	     0x20
#define EDU_STATUS_COMPUTING 0x01
#define CFG_COMMAND	     0x04
#define CFG_BAR0	     0x10
#define RTT_SAMPLES	     5000
#define POSTED_WRITES	     20000

static int fail(struct mpdev *dev, const char *what, int r)
{
	fprintf(stderr, "mpdev-demo: %s failed: %s (%s)\n", what,
		dev ? mpdev_last_error(dev) : mpdev_connect_error(), strerror(-r));
	return 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *size_str(uint64_t size, char *buf, size_t len)
{
	if (size >= (1u << 20) && !(size & ((1u << 20) - 1)))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(size >> 20));
	else if (size >= 1024 && !(size & 1023))
		snprintf(buf, len, "%llu KiB", (unsigned long long)(size >> 10));
	else
		snprintf(buf, len, "%llu B", (unsigned long long)size);
	return buf;
}

static void print_info(const struct mpdev_device_info *info)
{
	static const char *const region_names[] = { "BAR0", "BAR1", "BAR2",   "BAR3", "BAR4",
						    "BAR5", "ROM",  "CONFIG", "VGA" };
	static const char *const irq_names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };
	char buf[32];

	printf("device      : %s  %04x:%04x rev %02x  class %06x  subsystem %04x:%04x\n",
	       info->name, info->vendor_id, info->device_id, info->revision, info->class_code,
	       info->subsystem_vendor_id, info->subsystem_id);
	for (int i = 0; i < MPDEV_NUM_REGIONS; i++) {
		const struct mpdev_region_info *r = &info->regions[i];

		if (!r->size)
			continue;
		printf("region      : %-6s %8s  %s%s%s%s\n", region_names[i],
		       size_str(r->size, buf, sizeof(buf)),
		       r->flags & MPDEV_REGION_FLAG_READ ? "r" : "-",
		       r->flags & MPDEV_REGION_FLAG_WRITE ? "w" : "-",
		       r->flags & MPDEV_REGION_FLAG_IO ? " port-io" : "",
		       r->flags & MPDEV_REGION_FLAG_MMAP ? " mmap" : "");
	}
	for (int i = 0; i < MPDEV_NUM_IRQS; i++)
		if (info->irqs[i].count)
			printf("irq         : %-6s x%u\n", irq_names[i], info->irqs[i].count);
}

static int bar0_rd(struct mpdev *dev, uint64_t off, uint32_t *v)
{
	return mpdev_region_read(dev, MPDEV_REGION_BAR0, off, v, 4);
}

static int bar0_wr(struct mpdev *dev, uint64_t off, uint32_t v)
{
	return mpdev_region_write(dev, MPDEV_REGION_BAR0, off, &v, 4);
}

static int show_bar_sizing(struct mpdev *dev)
{
	uint32_t orig, probe;
	char buf[32];
	int r;

	if ((r = mpdev_config_read(dev, CFG_BAR0, 4, &orig)) < 0 ||
	    (r = mpdev_config_write(dev, CFG_BAR0, 4, 0xffffffff)) < 0 ||
	    (r = mpdev_config_read(dev, CFG_BAR0, 4, &probe)) < 0)
		return fail(dev, "BAR0 sizing", r);
	printf("bar sizing  : wrote 0xffffffff to BAR0, read back 0x%08x -> %s\n", probe,
	       size_str((uint64_t)(~(probe & ~0xfu)) + 1, buf, sizeof(buf)));
	/* Program it the way firmware would, and enable memory decoding. */
	if ((r = mpdev_config_write(dev, CFG_BAR0, 4, 0xfe000000)) < 0 ||
	    (r = mpdev_config_write(dev, CFG_COMMAND, 2, 0x0002)) < 0 ||
	    (r = mpdev_config_read(dev, CFG_BAR0, 4, &probe)) < 0)
		return fail(dev, "BAR0 programming", r);
	printf("bar program : BAR0 = 0x%08x (was 0x%08x), memory decoding on\n", probe, orig);
	return 0;
}

static int show_registers(struct mpdev *dev)
{
	uint32_t ident, live, fact, status = 0;
	int polls = 0, r;

	if ((r = bar0_rd(dev, EDU_IDENT, &ident)) < 0)
		return fail(dev, "ident read", r);
	printf("ident       : 0x%08x (edu version %u.%u)\n", ident, ident >> 24,
	       (ident >> 16) & 0xff);
	if ((r = bar0_wr(dev, EDU_LIVENESS, 0x12345678)) < 0 ||
	    (r = bar0_rd(dev, EDU_LIVENESS, &live)) < 0)
		return fail(dev, "liveness check", r);
	printf("liveness    : wrote 0x12345678, read 0x%08x (%s)\n", live,
	       live == ~0x12345678u ? "the bitwise inverse: ok" : "WRONG");
	if ((r = bar0_wr(dev, EDU_FACTORIAL, 10)) < 0)
		return fail(dev, "factorial write", r);
	do {
		if ((r = bar0_rd(dev, EDU_STATUS, &status)) < 0)
			return fail(dev, "status read", r);
	} while ((status & EDU_STATUS_COMPUTING) && ++polls < 1000);
	if ((r = bar0_rd(dev, EDU_FACTORIAL, &fact)) < 0)
		return fail(dev, "factorial read", r);
	printf("factorial   : the device computed 10! = %u (%s; %d status poll%s while "
	       "computing)\n",
	       fact, fact == 3628800 ? "correct" : "WRONG", polls, polls == 1 ? "" : "s");
	return live == ~0x12345678u && fact == 3628800 ? 0 : 1;
}

static int show_round_trips(struct mpdev *dev)
{
	static uint64_t samples[RTT_SAMPLES];
	uint64_t t0, t1;
	uint32_t v;
	int r;

	for (int i = 0; i < RTT_SAMPLES; i++) {
		t0 = now_ns();
		if ((r = bar0_rd(dev, EDU_IDENT, &v)) < 0)
			return fail(dev, "round-trip read", r);
		samples[i] = now_ns() - t0;
	}
	qsort(samples, RTT_SAMPLES, sizeof(samples[0]), cmp_u64);
	printf("round trip  : 4-byte BAR0 read, %d samples: median %.1f us, p99 %.1f us\n",
	       RTT_SAMPLES, samples[RTT_SAMPLES / 2] / 1e3, samples[RTT_SAMPLES * 99 / 100] / 1e3);

	t0 = now_ns();
	for (int i = 0; i < POSTED_WRITES; i++) {
		uint32_t val = (uint32_t)i;

		if ((r = mpdev_region_write_posted(dev, MPDEV_REGION_BAR0, EDU_LIVENESS, &val, 4)) <
		    0)
			return fail(dev, "posted write", r);
	}
	if ((r = mpdev_sync(dev)) < 0)
		return fail(dev, "sync after posted writes", r);
	t1 = now_ns();
	if ((r = bar0_rd(dev, EDU_LIVENESS, &v)) < 0)
		return fail(dev, "liveness read", r);
	printf("posted      : %d posted BAR0 writes + 1 sync in %.1f ms (%.0f writes/s); last "
	       "value landed: %s\n",
	       POSTED_WRITES, (t1 - t0) / 1e6, POSTED_WRITES / ((t1 - t0) / 1e9),
	       v == ~(uint32_t)(POSTED_WRITES - 1) ? "yes" : "NO");
	return 0;
}

/* A sealed memfd: the only kind of memory the remote accepts. */
static int guest_ram(size_t size, uint8_t **map)
{
	int fd = memfd_create("demo-guest-ram", MFD_ALLOW_SEALING | MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return *map == MAP_FAILED ? -1 : fd;
}

static int wait_dma(struct mpdev *dev)
{
	uint32_t cmd = 1;
	int r;

	for (int i = 0; i < 10000 && (cmd & 1); i++)
		if ((r = bar0_rd(dev, 0x98, &cmd)) < 0)
			return r;
	return cmd & 1 ? -ETIMEDOUT : 0;
}

static int show_dma(struct mpdev *dev)
{
	const uint64_t gpa = 0x100000, size = 1 << 20;
	const uint32_t len = 4000;
	struct mpdev_mem_region region = { .gpa = gpa, .size = size };
	uint8_t *ram;
	int r, same;

	region.fd = guest_ram(size, &ram);
	if (region.fd < 0) {
		perror("mpdev-demo: guest RAM memfd");
		return 1;
	}
	for (uint32_t i = 0; i < len; i++)
		ram[i] = (uint8_t)(i * 7 + 3);
	if ((r = mpdev_mem_set_table(dev, &region, 1)) < 0)
		return fail(dev, "memory table", r);
	close(region.fd); /* libmpdev keeps its own copy for replay */
	printf("memory      : guest RAM [0x%llx, 0x%llx) handed over as one sealed memfd\n",
	       (unsigned long long)gpa, (unsigned long long)(gpa + size));
	/* Bus mastering on; RAM -> device buffer, then device buffer -> RAM 512 KiB further. */
	if ((r = mpdev_config_write(dev, CFG_COMMAND, 2, 0x0006)) < 0 ||
	    (r = bar0_wr(dev, 0x80, (uint32_t)gpa)) < 0 || (r = bar0_wr(dev, 0x88, 0x40000)) < 0 ||
	    (r = bar0_wr(dev, 0x90, len)) < 0 || (r = bar0_wr(dev, 0x98, 1)) < 0 ||
	    (r = wait_dma(dev)) < 0 || (r = bar0_wr(dev, 0x80, 0x40000)) < 0 ||
	    (r = bar0_wr(dev, 0x88, (uint32_t)gpa + 0x80000)) < 0 ||
	    (r = bar0_wr(dev, 0x98, 3)) < 0 || (r = wait_dma(dev)) < 0)
		return fail(dev, "edu DMA", r);
	same = memcmp(ram, ram + 0x80000, len) == 0;
	printf("dma         : the device copied %u bytes RAM 0x%llx -> its buffer -> RAM 0x%llx: "
	       "%s\n",
	       len, (unsigned long long)gpa, (unsigned long long)gpa + 0x80000,
	       same ? "identical, byte for byte" : "MISMATCH");
	munmap(ram, size);
	return same ? 0 : 1;
}

/* What the remote runs as, from /proc: the sandbox is visible from outside. */
static void show_sandbox(pid_t pid)
{
	char path[64], line[256], uid[64] = "?", seccomp[16] = "?";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Uid:", 4))
			sscanf(line + 4, "%63s", uid);
		else if (!strncmp(line, "Seccomp:", 8))
			sscanf(line + 8, "%15s", seccomp);
	}
	fclose(f);
	printf("sandbox     : the remote runs as uid %s, seccomp mode %s%s\n", uid, seccomp,
	       !strcmp(seccomp, "2") ? " (its own allow list; docs/security.md)" : "");
}

static int show_reset(struct mpdev *dev)
{
	uint32_t bar, live;
	int r;

	if ((r = mpdev_reset(dev)) < 0)
		return fail(dev, "reset", r);
	if ((r = mpdev_config_read(dev, CFG_BAR0, 4, &bar)) < 0 ||
	    (r = bar0_rd(dev, EDU_LIVENESS, &live)) < 0)
		return fail(dev, "read after reset", r);
	printf("reset       : BAR0 back to 0x%08x, liveness back to 0x%08x\n", bar, live);
	return 0;
}

static void print_counter(void *opaque, const char *name, uint64_t value)
{
	int *first = opaque;

	printf("%s%s=%llu", *first ? "" : ", ", name, (unsigned long long)value);
	*first = 0;
}

static int show_errors(struct mpdev *dev)
{
	uint32_t v;
	int r;

	r = mpdev_region_read(dev, MPDEV_REGION_BAR0, 0x100000, &v, 4);
	printf("bad input   : read past BAR0's end -> %s: \"%s\"\n", strerror(-r),
	       mpdev_last_error(dev));
	r = mpdev_region_read(dev, MPDEV_REGION_BAR0, 0, &v, 3);
	printf("bad input   : 3-byte read -> %s: \"%s\"\n", strerror(-r), mpdev_last_error(dev));
	return 0;
}

int main(int argc, char **argv)
{
	const char *remote_args[] = { "--device", "edu", NULL, NULL };
	struct mpdev_device_info info;
	struct mpdev *dev = NULL;
	char bin[4096];
	int sock, status, first = 1, rc = 1, r;
	pid_t pid;

	if (argc > 1 && (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--verbose")))
		remote_args[2] = "-v";
	else if (argc > 1) {
		fprintf(stderr,
			"usage: mpdev-demo [-v]   (MPDEV_REMOTE=path overrides the remote)\n");
		return 2;
	}
	spawn_find_remote(bin, sizeof(bin));
	printf("mpdev demo: an emulated PCI device (QEMU's edu) served by a separate mpdev-remote\n"
	       "process, driven through libmpdev over a SOCK_SEQPACKET socket, as a VMM "
	       "would.\n\n");
	r = spawn_remote(bin, remote_args, &pid, &sock);
	if (r < 0) {
		fprintf(stderr, "mpdev-demo: cannot start %s: %s\n", bin, strerror(-r));
		return 1;
	}
	printf("remote      : %s --fd 3 --device edu (pid %d)\n", bin, (int)pid);
	r = mpdev_connect_fd(sock, NULL, &dev);
	if (r < 0) {
		fail(NULL, "connect", r);
		goto out;
	}
	printf("handshake   : protocol v1, features 0x%llx\n",
	       (unsigned long long)mpdev_features(dev));
	if ((r = mpdev_get_device_info(dev, &info)) < 0) {
		fail(dev, "device info", r);
		goto out;
	}
	print_info(&info);
	show_sandbox(pid);
	if (show_bar_sizing(dev) || show_registers(dev) || show_dma(dev) || show_round_trips(dev) ||
	    show_reset(dev) || show_errors(dev))
		goto out;
	printf("remote stats: ");
	if (mpdev_get_stats(dev, print_counter, &first) < 0)
		printf("unavailable: %s", mpdev_last_error(dev));
	printf("\n");
	if (demo_migrate(bin) < 0)
		goto out;
	rc = 0;
out:
	mpdev_close(dev);
	/* Closing our end ends the remote's only connection; it exits by itself. */
	r = spawn_wait(pid, 5000, &status);
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("remote      : did not exit cleanly (%s, status 0x%x)\n",
		       r < 0 ? strerror(-r) : "exited", status);
		rc = 1;
	} else {
		printf("remote      : exited cleanly after the connection closed\n");
	}
	printf("\n%s\n", rc == 0 ? "demo: all steps succeeded" : "demo: FAILED");
	return rc;
}
