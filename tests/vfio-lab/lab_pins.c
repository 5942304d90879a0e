/*
 * vfio-lab: several devices of one VM pin its memory once. Runs in the lab
 * guest with two edu devices in separate IOMMU groups (LAB_EDU_BDF,
 * LAB_EDU2_BDF) and reads what the kernel charges the remote for the same
 * 64 MiB of guest RAM, from /proc/PID/status: VmPin (iommufd's pinned_vm,
 * every accounting mode) and VmLck (locked_vm: iommufd in per-process mode,
 * and the type1 container). Each arrangement also DMAs through every device.
 *
 * usage: vfio_lab_pins [REMOTE]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lab_util.h"
#include "libmpdev.h"

#define PIN_RAM_SIZE (64ull << 20)
#define PIN_RAM_KB   ((long)(PIN_RAM_SIZE >> 10))

/* A field of /proc/PID/status in kB, or -1. */
static long status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':')
			kb = strtol(line + len + 1, NULL, 10);
	fclose(f);
	return kb;
}

struct pins {
	long pin_kb, lck_kb;
};

static struct pins pins_of(pid_t pid)
{
	return (struct pins){ status_kb(pid, "VmPin"), status_kb(pid, "VmLck") };
}

/* Guest RAM: one sealed memfd every device's table describes. */
struct vm_ram {
	int fd;
	uint8_t *p;
};

/* edu copies guest RAM at off into its buffer and back to off + 0x1000. */
static bool dma_through(struct mpdev *d, struct vm_ram *ram, uint64_t off, uint8_t seed)
{
	return mpdev_config_write(d, 0x04, 2, 0x0006) == 0 &&
	       edu_round_trip(d, ram->p + off, RAM_GPA + off, seed);
}

static int set_table(struct mpdev *d, int fd)
{
	struct mpdev_mem_region r = { .gpa = RAM_GPA, .size = PIN_RAM_SIZE, .fd = fd };
	int ret = mpdev_mem_set_table(d, &r, 1);

	if (ret < 0)
		printf("  set table: %s\n", mpdev_last_error(d));
	return ret;
}

#define MAX_DEVS 2

/* One remote serving devs (their BDFs), the table sent to each; its charge and DMA checked. */
struct arrangement {
	const char *name;
	const char *iommu;
	const char *const *extra; /* more remote arguments */
	unsigned n_devs;
	const char *field; /* what grows: "VmPin" or "VmLck" */
	unsigned sock0;	   /* its sockets: sock_path(sock0) on */
};

static const char *sock_path(unsigned i)
{
	static char buf[2 * MAX_DEVS][48];

	snprintf(buf[i], sizeof(buf[i]), "/tmp/mpdev-lab-pins-%u.sock", i);
	return buf[i];
}

/*
 * Starts the remote, sends the table to each device in turn and returns the
 * growth of the remote's VmPin/VmLck after each (growth[i]); -1 when the
 * remote could not be driven.
 */
static int arrange(const struct arrangement *a, const char *const *bdfs, struct vm_ram *ram,
		   struct pins *growth, pid_t *pid_out, struct mpdev **devs)
{
	const char *args[32];
	char specs[MAX_DEVS][64];
	struct pins base;
	size_t n = 0;
	pid_t pid;

	for (unsigned i = 0; i < a->n_devs; i++) {
		snprintf(specs[i], sizeof(specs[i]), "vfio:%s", bdfs[i]);
		args[n++] = "--device";
		args[n++] = specs[i];
		if (i + 1 < a->n_devs) {
			/* start_remote_args adds the last socket. */
			args[n++] = "--socket";
			args[n++] = sock_path(a->sock0 + i);
		}
	}
	args[n++] = "--iommu";
	args[n++] = a->iommu;
	for (size_t i = 0; a->extra && a->extra[i]; i++)
		args[n++] = a->extra[i];
	args[n] = NULL;
	for (unsigned i = 0; i < a->n_devs; i++)
		unlink(sock_path(a->sock0 + i));
	pid = start_remote_args(args, sock_path(a->sock0 + a->n_devs - 1));
	*pid_out = pid;
	for (unsigned i = 0; i < a->n_devs; i++) {
		devs[i] = connect_remote(sock_path(a->sock0 + i), pid);
		if (!devs[i])
			return -1;
	}
	base = pins_of(pid);
	printf("  %s: before any table VmPin %ld kB, VmLck %ld kB\n", a->name, base.pin_kb,
	       base.lck_kb);
	for (unsigned i = 0; i < a->n_devs; i++) {
		struct pins now;

		if (set_table(devs[i], ram->fd) < 0)
			return -1;
		now = pins_of(pid);
		growth[i].pin_kb = now.pin_kb - base.pin_kb;
		growth[i].lck_kb = now.lck_kb - base.lck_kb;
		printf("  %s: table sent to %u of %u device(s): VmPin +%ld kB, VmLck +%ld kB\n",
		       a->name, i + 1, a->n_devs, growth[i].pin_kb, growth[i].lck_kb);
	}
	return 0;
}

static void finish(pid_t pid, struct mpdev **devs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (devs[i])
			mpdev_close(devs[i]);
	stop_remote(pid);
}

static long grown(const struct arrangement *a, const struct pins *p)
{
	return strcmp(a->field, "VmPin") ? p->lck_kb : p->pin_kb;
}

/* One arrangement: pinned exactly once after every device has the table, DMA through each. */
static void run_arrangement(const struct arrangement *a, const char *const *bdfs,
			    struct vm_ram *ram, long *pinned_kb)
{
	struct mpdev *devs[MAX_DEVS] = { 0 };
	struct pins growth[MAX_DEVS];
	bool dma_ok = true;
	char name[96];
	pid_t pid = -1;

	printf("--- %s ---\n", a->name);
	if (arrange(a, bdfs, ram, growth, &pid, devs) < 0) {
		check(0, a->name, "the remote could not be driven");
		if (pid > 0)
			finish(pid, devs, a->n_devs);
		return;
	}
	for (unsigned i = 0; i < a->n_devs; i++)
		dma_ok &= dma_through(devs[i], ram, 0x10000 * (i + 1), (uint8_t)(i + 1));
	*pinned_kb = grown(a, &growth[a->n_devs - 1]);
	snprintf(name, sizeof(name), "%s: %s once", a->name, a->field);
	check(grown(a, &growth[0]) == PIN_RAM_KB && *pinned_kb == PIN_RAM_KB, name,
	      "%ld kB after the first device, %ld kB after all %u, want %ld", grown(a, &growth[0]),
	      *pinned_kb, a->n_devs, PIN_RAM_KB);
	snprintf(name, sizeof(name), "%s: DMA through each device", a->name);
	check(dma_ok, name, NULL);
	finish(pid, devs, a->n_devs);
}

/* Today's product for comparison: a remote per device, both live, each pinning all of the RAM. */
static long run_remote_per_device(const char *const *bdfs, struct vm_ram *ram)
{
	const char *extra[] = { "--pin-accounting", "process", NULL };
	const struct arrangement a[MAX_DEVS] = {
		{ "a remote per device (1)", "iommufd", extra, 1, "VmPin", 0 },
		{ "a remote per device (2)", "iommufd", extra, 1, "VmPin", 1 },
	};
	struct mpdev *devs[MAX_DEVS][1] = { { 0 } };
	struct pins growth[MAX_DEVS][1];
	pid_t pid[MAX_DEVS] = { -1, -1 };
	long total = 0;
	int r = 0;

	printf("--- a remote per device ---\n");
	for (unsigned i = 0; i < MAX_DEVS && r == 0; i++) {
		r = arrange(&a[i], &bdfs[i], ram, growth[i], &pid[i], devs[i]);
		if (r == 0)
			total += growth[i][0].pin_kb;
	}
	check(r == 0 && total == MAX_DEVS * PIN_RAM_KB,
	      "a remote per device pins the RAM per device", "%ld kB in all, want %ld", total,
	      MAX_DEVS * PIN_RAM_KB);
	for (unsigned i = 0; i < MAX_DEVS; i++)
		if (pid[i] > 0)
			finish(pid[i], devs[i], 1);
	return total;
}

/* Devices of one IOAS must agree: a different mapping of the same range is refused. */
static void run_disagreement(const char *const *bdfs, struct vm_ram *ram)
{
	const char *extra[] = { NULL };
	const struct arrangement a = { "a table that disagrees", "iommufd", extra, 2, "VmPin", 0 };
	struct mpdev *devs[MAX_DEVS] = { 0 };
	struct pins growth[MAX_DEVS];
	uint8_t *other_map;
	int other, r = 0;
	pid_t pid = -1;

	printf("--- %s ---\n", a.name);
	if (arrange(&a, bdfs, ram, growth, &pid, devs) < 0) {
		check(0, a.name, "the remote could not be driven");
		if (pid > 0)
			finish(pid, devs, MAX_DEVS);
		return;
	}
	other = sealed_memfd(PIN_RAM_SIZE, &other_map);
	if (other >= 0) {
		struct mpdev_mem_region reg = { .gpa = RAM_GPA, .size = PIN_RAM_SIZE, .fd = other };

		r = mpdev_mem_set_table(devs[1], &reg, 1);
		printf("  the second device sent other memory at the same addresses: %s\n",
		       r < 0 ? mpdev_last_error(devs[1]) : "accepted");
		close(other);
		munmap(other_map, PIN_RAM_SIZE);
	}
	check(r == -EBUSY, "a disagreeing table is refused with EBUSY", "got %d", r);
	check(dma_through(devs[1], ram, 0x30000, 9) && dma_through(devs[0], ram, 0x40000, 10),
	      "both devices still DMA through the VM's table", NULL);
	finish(pid, devs, MAX_DEVS);
}

int main(int argc, char **argv)
{
	const char *bdfs[MAX_DEVS] = { getenv("LAB_EDU_BDF"), getenv("LAB_EDU2_BDF") };
	const char *process[] = { "--pin-accounting", "process", NULL };
	const char *per_ioas[] = { "--pin-accounting", "process", "--ioas-per-device", NULL };
	const char *none[] = { NULL };
	const struct arrangement one = { "one device", "iommufd", process, 1, "VmPin", 0 };
	const struct arrangement one_lck = {
		"one device (process accounting)", "iommufd", process, 1, "VmLck", 0
	};
	const struct arrangement shared = {
		"two devices, one IOAS", "iommufd", process, 2, "VmPin", 0
	};
	const struct arrangement copied = {
		"two devices, IOAS_COPY", "iommufd", per_ioas, 2, "VmPin", 0
	};
	const struct arrangement user = {
		"two devices, user accounting", "iommufd", none, 2, "VmPin", 0
	};
	const struct arrangement container = {
		"two devices, one container", "container", none, 2, "VmLck", 0
	};
	struct vm_ram ram;
	long kb[6] = { 0 }, per_device;

	if (argc > 1)
		lab_remote_bin = argv[1];
	if (!bdfs[0] || !bdfs[1] || !*bdfs[1]) {
		printf("LAB RESULT: FAIL two edu devices needed (LAB_EDU2_BDF unset: boot with "
		       "LAB_QEMU_ARGS='-device edu')\n");
		return 1;
	}
	ram.fd = sealed_memfd(PIN_RAM_SIZE, &ram.p);
	if (ram.fd < 0) {
		printf("LAB RESULT: FAIL no guest RAM: %s\n", strerror(errno));
		return 1;
	}
	printf("guest RAM: %ld kB; devices %s and %s\n", PIN_RAM_KB, bdfs[0], bdfs[1]);
	run_arrangement(&one, bdfs, &ram, &kb[0]);
	run_arrangement(&one_lck, bdfs, &ram, &kb[1]);
	per_device = run_remote_per_device(bdfs, &ram);
	run_arrangement(&shared, bdfs, &ram, &kb[2]);
	run_arrangement(&copied, bdfs, &ram, &kb[3]);
	run_arrangement(&user, bdfs, &ram, &kb[4]);
	if (access("/dev/vfio/vfio", F_OK) == 0)
		run_arrangement(&container, bdfs, &ram, &kb[5]);
	else
		check(0, container.name, "/dev/vfio/vfio is missing");
	run_disagreement(bdfs, &ram);
	printf("PINS one device %ld kB (VmLck %ld); a remote per device %ld kB in all; two "
	       "devices one IOAS %ld kB; two devices IOAS_COPY %ld kB; user accounting %ld kB; "
	       "container VmLck %ld kB\n",
	       kb[0], kb[1], per_device, kb[2], kb[3], kb[4], kb[5]);
	close(ram.fd);
	munmap(ram.p, PIN_RAM_SIZE);
	return lab_result();
}
