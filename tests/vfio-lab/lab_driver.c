/*
 * vfio-lab driver: runs inside the QEMU TCG guest, starts mpdev-remote on
 * the edu device bound to vfio-pci, and drives it through libmpdev exactly
 * as a VMM would, checking each thing the real kernel must do. It plays KVM
 * for interrupts: an irqfd is an eventfd it polls, an EOI a write to the
 * resamplefd.
 *
 * usage: vfio_lab_driver [--edu] [--mtty] [--mtty-migrate] [--fail-nth] IOMMU[,IOMMU...] [REMOTE]
 * (IOMMU: container or iommufd, each run in turn; the edu device's address
 * comes from LAB_EDU_BDF, which the lab's /init sets; --mtty drives the mtty
 * mediated device /init created on the lab kernel, LAB_MTTY_UUID;
 * --mtty-migrate migrates it into the second one, LAB_MTTY2_UUID, between two
 * remotes (lab_mtty_mig.c); --fail-nth the fail_iommufd sweep; without a
 * part flag, --edu)
 * Prints one line per check and a final "LAB RESULT: PASS|FAIL".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_mtty_mig.h"
#include "lab_util.h"
#include "libmpdev.h"
#include "spawn.h"

static void check_identity(struct mpdev *d)
{
	struct mpdev_device_info info = { 0 };
	uint32_t st = 1, fact, ident;
	int r = mpdev_get_device_info(d, &info);

	check(r == 0 && info.vendor_id == 0x1234 && info.device_id == 0x11e8 &&
		      info.regions[MPDEV_REGION_BAR0].size == 1 << 20,
	      "device info from the kernel", "%s %04x:%04x BAR0 0x%llx irqs INTx %u MSI %u",
	      info.name, info.vendor_id, info.device_id,
	      (unsigned long long)info.regions[MPDEV_REGION_BAR0].size,
	      info.irqs[MPDEV_IRQ_INTX].count, info.irqs[MPDEV_IRQ_MSI].count);
	ident = rd(d, EDU_REG_IDENT);
	check(ident == 0x010000ed, "ident through BAR0", "0x%08x", ident);
	wr(d, EDU_REG_LIVENESS, 0x12345678);
	check(rd(d, EDU_REG_LIVENESS) == ~0x12345678u, "liveness through BAR0", NULL);
	wr(d, EDU_REG_FACTORIAL, 10);
	for (int i = 0; i < 1000 && (st & 1); i++)
		st = rd(d, EDU_REG_STATUS);
	fact = rd(d, EDU_REG_FACTORIAL);
	check(fact == 3628800, "factorial computed by the device", "10! = %u", fact);
}

static void check_iommu(struct mpdev *d, const char *iommu, struct mpdev_iommu_info *ii)
{
	int ok = mpdev_get_iommu_info(d, ii) == 0;

	if (!ok)
		memset(ii, 0, sizeof(*ii));

	/*
	 * Seed 000: exactly what QEMU 7.2's intel-iommu (aw-bits 39) leaves
	 * usable, the MSI window 0xfee00000-0xfeefffff excluded, whichever
	 * kernel interface the remote read it from.
	 */
	check(ok &&
		      ii->kind == (strcmp(iommu, "iommufd") ? MPDEV_IOMMU_TYPE1
							    : MPDEV_IOMMU_IOMMUFD) &&
		      ii->n_ranges == 2 && ii->ranges[0].start == 0 &&
		      ii->ranges[0].last == 0xfedfffffULL && ii->ranges[1].start == 0xfef00000ULL &&
		      ii->ranges[1].last == 0x7fffffffffULL,
	      "IOMMU info from the kernel",
	      "kind %u, %zu range(s): [0x%llx, 0x%llx] [0x%llx, 0x%llx], dma_avail %u", ii->kind,
	      ii->n_ranges, (unsigned long long)ii->ranges[0].start,
	      (unsigned long long)ii->ranges[0].last, (unsigned long long)ii->ranges[1].start,
	      (unsigned long long)ii->ranges[1].last, ii->dma_avail);
}

static void check_dma(struct mpdev *d, const struct mpdev_iommu_info *ii)
{
	struct mpdev_mem_region r = { .gpa = RAM_GPA, .size = RAM_SIZE };
	uint8_t *ram, *spare_map;
	int same, untouched = 1, ret;

	r.fd = sealed_memfd(RAM_SIZE, &ram);
	ret = mpdev_mem_set_table(d, &r, 1);
	check(ret == 0, "memory table -> IOMMU mapping", "%s", mpdev_last_error(d));
	{
		struct mpdev_iommu_info now;

		ret = mpdev_get_iommu_info(d, &now);
		check(ret == 0 && now.mappings_used == 1 && now.dma_avail == ii->dma_avail - 1,
		      "one region: one mapping, DMA_AVAIL one fewer",
		      "mappings %u, dma_avail %u -> %u", now.mappings_used, ii->dma_avail,
		      now.dma_avail);
	}
	for (uint32_t i = 0; i < DMA_LEN; i++)
		ram[i] = (uint8_t)(i * 13 + 7);
	memset(ram + 0x100000, 0, DMA_LEN);
	mpdev_config_write(d, 0x04, 2, 0x0006); /* memory + bus master */
	ret = edu_dma(d, RAM_GPA, EDU_DMA_BUF_ADDR, DMA_LEN, 1);
	if (ret == 0)
		ret = edu_dma(d, EDU_DMA_BUF_ADDR, RAM_GPA + 0x100000, DMA_LEN, 3);
	same = ret == 0 && memcmp(ram, ram + 0x100000, DMA_LEN) == 0;
	check(same, "DMA RAM -> device -> RAM through the IOMMU", "%u bytes, byte for byte",
	      DMA_LEN);

	/* An IOVA outside the table: the IOMMU blocks it; no table memory changes. */
	spare_map = malloc(RAM_SIZE);
	memcpy(spare_map, ram, RAM_SIZE);
	edu_dma(d, EDU_DMA_BUF_ADDR, SPARE_GPA, DMA_LEN, 3);
	untouched = memcmp(spare_map, ram, RAM_SIZE) == 0;
	free(spare_map);
	check(untouched, "DMA outside the table touches no table memory", NULL);
	check(rd(d, EDU_REG_IDENT) == 0x010000ed, "device still answers after the blocked DMA",
	      NULL);

	/* Refusals: overlap, and a range the IOMMU cannot map. */
	{
		struct mpdev_mem_region o = r;
		uint8_t *m2;

		o.gpa = RAM_GPA + 0x200000;
		o.size = 0x200000;
		o.fd = sealed_memfd(0x200000, &m2);
		check(mpdev_mem_add(d, &o) == -EEXIST, "overlapping region refused (EEXIST)", "%s",
		      mpdev_last_error(d));
		/* Just past the last usable IOVA (0x8000000000), and in the MSI window. */
		{
			int e;

			o.gpa = 0x8000000000ULL;
			e = mpdev_mem_add(d, &o);
			check(e == -ERANGE, "region past the last usable IOVA refused", "%d: %s", e,
			      mpdev_last_error(d));
			o.gpa = 0xfee00000ULL;
			e = mpdev_mem_add(d, &o);
			check(e == -ERANGE, "region over the MSI window refused", "%d: %s", e,
			      mpdev_last_error(d));
		}
		close(o.fd);
		munmap(m2, 0x200000);
	}
	close(r.fd);
	munmap(ram, RAM_SIZE);
}

static void check_intx(struct mpdev *d, const char *mode)
{
	int irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    rs = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	const uint64_t one = 1;
	char name[64];
	int r;

	r = mpdev_set_intx_irqfd(d, 0, 5, irqfd, rs);
	snprintf(name, sizeof(name), "INTx %s: irqfd set", mode);
	check(r == 0, name, "%s", mpdev_last_error(d));
	wr(d, EDU_REG_IRQ_RAISE, 1);
	snprintf(name, sizeof(name), "INTx %s: raise fires the irqfd", mode);
	check(fired(irqfd, IRQ_WAIT_MS), name, NULL);
	/* The kernel automasked the line: unmask while the device still asserts re-fires. */
	if (write(rs, &one, sizeof(one)) != sizeof(one))
		check(0, "EOI write", "%s", strerror(errno));
	snprintf(name, sizeof(name), "INTx %s: EOI while asserted re-fires", mode);
	check(fired(irqfd, IRQ_WAIT_MS), name, NULL);
	wr(d, EDU_REG_IRQ_ACK, 1);
	mpdev_sync(d);
	if (write(rs, &one, sizeof(one)) != sizeof(one))
		check(0, "EOI write", "%s", strerror(errno));
	snprintf(name, sizeof(name), "INTx %s: EOI after ack stays quiet", mode);
	check(!fired(irqfd, QUIET_MS), name, NULL);
	mpdev_set_intx_irqfd(d, 0, 5, -1, -1);
	close(irqfd);
	close(rs);
}

static void check_msi(struct mpdev *d)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    intx = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r;

	mpdev_set_intx_irqfd(d, 0, 5, intx, -1);
	r = mpdev_set_irqs_eventfd(d, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &efd);
	check(r == 0, "MSI: eventfd given to VFIO", "%s", mpdev_last_error(d));
	wr(d, EDU_REG_IRQ_RAISE, 2);
	check(fired(efd, IRQ_WAIT_MS), "MSI: raise fires the MSI eventfd", NULL);
	check(!fired(intx, QUIET_MS), "MSI: INTx stays quiet", NULL);
	wr(d, EDU_REG_IRQ_ACK, 2);
	mpdev_irq_disable(d, MPDEV_IRQ_MSI);
	mpdev_set_intx_irqfd(d, 0, 5, -1, -1);
	close(efd);
	close(intx);
}

static void check_reset(struct mpdev *d)
{
	int r;

	wr(d, EDU_REG_LIVENESS, 0x5a5a5a5a);
	r = mpdev_reset(d);
	/* edu under vfio-pci: a reset where the kernel offers one, a clear error where not. */
	check(r == 0 || (r == -ENOTTY && strstr(mpdev_last_error(d), "reset")), "reset", "%d %s", r,
	      mpdev_last_error(d));
	check(rd(d, EDU_REG_IDENT) == 0x010000ed, "device answers after reset", NULL);
}

/*
 * Dirty tracking of an IOMMU-backed device without DMA logging (edu), with
 * the memory table of check_dma in force. type1 cannot see the device's
 * writes: it reports every page mapped for an IOMMU-backed group as dirty,
 * every time, and takes no report that splits a mapping (the remote widens). iommufd's auto domain
 * has no dirty tracking (QEMU's VT-d has no SLADS): refused, with why; so
 * is iommufd's vfio-compat container, which lacks type1's MIGRATION cap.
 */
static void check_dirty(struct mpdev *d, const char *iommu)
{
	const struct mpdev_dirty_range rg = { RAM_GPA, RAM_SIZE };
	struct mpdev_iommu_info ii = { 0 };
	uint8_t bm[RAM_SIZE / 4096 / 8];
	size_t set = 0, set2 = 0;
	int r;

	mpdev_get_iommu_info(d, &ii);
	/* iommufd's vfio-compat container (the compat kernel) has no type1 module and no MIGRATION
	 * cap. */
	if (!strcmp(iommu, "container") && access("/sys/module/vfio_iommu_type1", F_OK) != 0) {
		r = mpdev_dirty_start(d, &rg, 1, 4096);
		check(!ii.dirty_tracking && r == -ENOTSUP &&
			      strstr(mpdev_last_error(d), "no MIGRATION capability"),
		      "vfio-compat container: no dirty tracking offered, DirtyStart refused",
		      "%d %d: %s", ii.dirty_tracking, r, mpdev_last_error(d));
		return;
	}
	if (strcmp(iommu, "container")) {
		r = mpdev_dirty_start(d, &rg, 1, 4096);
		check(!ii.dirty_tracking && r == -ENOTSUP,
		      "iommufd: no dirty tracking offered, DirtyStart refused", "%d %d: %s",
		      ii.dirty_tracking, r, mpdev_last_error(d));
		return;
	}
	r = mpdev_dirty_start(d, &rg, 1, 4096);
	check(ii.dirty_tracking && r == 0, "type1: dirty tracking offered and started", "%d %d: %s",
	      ii.dirty_tracking, r, r ? mpdev_last_error(d) : "");
	memset(bm, 0, sizeof(bm));
	r = mpdev_dirty_report(d, RAM_GPA, RAM_SIZE, 4096, bm, sizeof(bm));
	for (size_t i = 0; r == 0 && i < sizeof(bm); i++)
		set += (size_t)__builtin_popcount(bm[i]);
	memset(bm, 0, sizeof(bm));
	if (r == 0)
		r = mpdev_dirty_report(d, RAM_GPA, RAM_SIZE, 4096, bm, sizeof(bm));
	for (size_t i = 0; r == 0 && i < sizeof(bm); i++)
		set2 += (size_t)__builtin_popcount(bm[i]);
	check(r == 0 && set == RAM_SIZE / 4096 && set2 == set,
	      "type1: every mapped page dirty, in every report", "%d: %zu then %zu of %llu pages",
	      r, set, set2, (unsigned long long)(RAM_SIZE / 4096));
	/* The kernel refuses a range that splits a mapping: the remote widens it. */
	bm[0] = 0;
	r = mpdev_dirty_report(d, RAM_GPA + 4096, 4096, 4096, bm, 1);
	check(r == 0 && bm[0] == 1, "type1: a report inside the mapping (widened by the remote)",
	      "%d 0x%02x: %s", r, bm[0], r ? mpdev_last_error(d) : "");
	check(mpdev_dirty_stop(d) == 0, "type1: dirty tracking stopped", "%s", mpdev_last_error(d));
}

/* Everything once, on one remote with the given INTx mode, over two connections. */
static void run(const char *bdf, const char *iommu, const char *intx)
{
	const char *path = "/tmp/mpdev-lab.sock";
	struct mpdev_iommu_info ii = { 0 }, again;
	struct mpdev *d;
	pid_t pid;

	printf("--- %s IOMMU, INTx %s ---\n", iommu, intx);
	char spec[64];

	snprintf(spec, sizeof(spec), "vfio:%s", bdf);
	pid = start_remote(spec, iommu, intx, path);
	d = connect_remote(path, pid);
	check(d != NULL, "remote opened the device through VFIO", NULL);
	if (!d) {
		stop_remote(pid);
		return;
	}
	check_identity(d);
	check_iommu(d, iommu, &ii);
	check_dma(d, &ii);
	check_dirty(d, iommu);
	check_intx(d, intx);
	check_msi(d);
	check_reset(d);
	mpdev_close(d);

	/* The same remote, a new connection: what the first set up is gone. */
	d = connect_remote(path, pid);
	check(d != NULL, "a new connection after disconnect", NULL);
	if (d) {
		check(mpdev_get_iommu_info(d, &again) == 0 && again.mappings_used == 0,
		      "disconnect removed every mapping", "mappings_used %u", again.mappings_used);
		/* The same IOVAs map again: the IOMMU would say EEXIST had they stayed. */
		check_dma(d, &ii);
		mpdev_close(d);
	}
	stop_remote(pid);
}

/* mtty (samples/vfio-mdev/mtty.c): a 16550-like UART per I/O BAR. */
#define MTTY_VENDOR_DEVICE 0x32534348u
#define UART_RBR_THR	   0
#define UART_IER	   1
#define UART_FCR	   2
#define UART_LCR	   3
#define UART_LSR	   5
#define UART_SCR	   7

static int uart_wr(struct mpdev *d, uint64_t off, uint8_t v)
{
	return mpdev_region_write(d, MPDEV_REGION_BAR0, off, &v, 1);
}

static uint8_t uart_rd(struct mpdev *d, uint64_t off)
{
	uint8_t v = 0xff;

	if (mpdev_region_read(d, MPDEV_REGION_BAR0, off, &v, 1) < 0)
		printf("  read 0x%llx: %s\n", (unsigned long long)off, mpdev_last_error(d));
	return v;
}

/*
 * A byte written to THR lands in the port's own receive FIFO; with the
 * receive interrupt enabled that raises the device's interrupt.
 */
static void mtty_loopback(struct mpdev *d, int efd, char byte, const char *name)
{
	char what[64];

	uart_wr(d, UART_RBR_THR, (uint8_t)byte);
	snprintf(what, sizeof(what), "%s fires on received data", name);
	check(fired(efd, IRQ_WAIT_MS), what, NULL);
	snprintf(what, sizeof(what), "%s: the byte comes back", name);
	check((uart_rd(d, UART_LSR) & 1) && uart_rd(d, UART_RBR_THR) == (uint8_t)byte, what, NULL);
}

static void run_mtty(const char *uuid, const char *iommu)
{
	const char *path = "/tmp/mpdev-lab-mtty.sock";
	struct mpdev_device_info info = { 0 };
	int irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    rs = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    msi = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	const uint64_t one = 1;
	uint32_t id = 0;
	struct mpdev *d;
	char spec[64];
	pid_t pid;
	int r;

	printf("--- mtty %s, %s IOMMU ---\n", uuid, iommu);
	snprintf(spec, sizeof(spec), "vfio-mdev:%s", uuid);
	pid = start_remote(spec, iommu, "auto", path);
	d = connect_remote(path, pid);
	check(d != NULL, "remote opened the mediated device", NULL);
	if (!d)
		goto out;
	r = mpdev_get_device_info(d, &info);
	check(r == 0 && info.regions[MPDEV_REGION_BAR0].size == 8 &&
		      info.regions[MPDEV_REGION_BAR1].size == 8 &&
		      info.irqs[MPDEV_IRQ_INTX].count == 1 && info.irqs[MPDEV_IRQ_MSI].count == 1 &&
		      info.irqs[MPDEV_IRQ_MSIX].count == 0,
	      "mtty info: two 8-byte I/O BARs, INTx, MSI, no MSI-X",
	      "%s BAR0 %llu BAR1 %llu INTx %u MSI %u MSI-X %u", info.name,
	      (unsigned long long)info.regions[MPDEV_REGION_BAR0].size,
	      (unsigned long long)info.regions[MPDEV_REGION_BAR1].size,
	      info.irqs[MPDEV_IRQ_INTX].count, info.irqs[MPDEV_IRQ_MSI].count,
	      info.irqs[MPDEV_IRQ_MSIX].count);
	mpdev_config_read(d, 0, 4, &id);
	check(id == MTTY_VENDOR_DEVICE, "mtty config space: vendor:device", "0x%08x", id);
	uart_wr(d, UART_SCR, 0x5a);
	check(uart_rd(d, UART_SCR) == 0x5a, "mtty scratch register through the I/O BAR", NULL);
	uart_wr(d, UART_LCR, 0x03);
	check(uart_rd(d, UART_LCR) == 0x03, "mtty line control (8N1) sticks", NULL);
	/* As 8250's probe does: FIFO on and cleared, which also sets mtty's trigger level to 1. */
	uart_wr(d, UART_FCR, 0x07);
	uart_wr(d, UART_IER, 0x01); /* receive data available */

	r = mpdev_set_intx_irqfd(d, 0, 5, irqfd, rs);
	check(r == 0, "mtty INTx irqfd set", "%s", r ? mpdev_last_error(d) : "");
	mtty_loopback(d, irqfd, 'A', "mtty INTx");
	/* EOI: the remote unmasks (mtty has no unmask eventfd); the next byte fires again. */
	if (write(rs, &one, sizeof(one)) != sizeof(one))
		check(0, "EOI write", "%s", strerror(errno));
	mpdev_sync(d);
	mtty_loopback(d, irqfd, 'B', "mtty INTx after EOI");
	mpdev_set_intx_irqfd(d, 0, 5, -1, -1);

	r = mpdev_set_irqs_eventfd(d, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &msi);
	check(r == 0, "mtty MSI eventfd set", "%s", r ? mpdev_last_error(d) : "");
	mtty_loopback(d, msi, 'C', "mtty MSI");
	mpdev_irq_disable(d, MPDEV_IRQ_MSI);
	mpdev_close(d);
out:
	stop_remote(pid);
	close(irqfd);
	close(rs);
	close(msi);
}

/* --- the real kernel's fault injection (IOMMUFD_TEST's fail_iommufd) --- */

#define FAIL_DIR "/sys/kernel/debug/fail_iommufd"

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, v, strlen(v)) != (ssize_t)strlen(v))
		r = -errno;
	close(fd);
	return r;
}

static int fail_attr(const char *name, long v)
{
	char path[128], val[32];

	snprintf(path, sizeof(path), FAIL_DIR "/%s", name);
	snprintf(val, sizeof(val), "%ld", v);
	return write_str(path, val);
}

/* Arms fail_iommufd for one failure in the remote's loop thread after `space` passing calls. */
static int fail_arm(pid_t remote, long space)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", (int)remote);
	r = write_str(FAIL_DIR "/task-filter", "Y");
	if (!r)
		r = fail_attr("probability", 100);
	if (!r)
		r = fail_attr("interval", 1);
	if (!r)
		r = fail_attr("verbose", 0);
	if (!r)
		r = fail_attr("space", space);
	if (!r)
		r = fail_attr("times", 1);
	if (!r)
		r = write_str(path, "1");
	return r;
}

static long fail_times_left(void)
{
	char buf[32] = "";
	int fd = open(FAIL_DIR "/times", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static void fail_disarm(pid_t remote)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", (int)remote);
	fail_attr("times", 0);
	write_str(path, "0");
}

/*
 * iommufd_fail_nth on the real kernel, through the remote: a table change
 * (drop A, add B, C, D) is tried with the kernel failing the remote's n-th
 * iommufd step, for n = 0, 1, ... until a run passes untouched. Every
 * failed run must leave exactly the old table (A) mapped and the IOMMU
 * clean enough that the same change then succeeds.
 */
static void run_fail_nth(const char *bdf)
{
	const char *path = "/tmp/mpdev-lab-fail.sock";
	struct mpdev_mem_region a = { .gpa = RAM_GPA, .size = 0x200000 }, next[3];
	uint8_t *ram_a, *ram_n[3];
	struct mpdev_iommu_info ii;
	int failed = 0, clean = 1, n, r;
	bool untouched;
	char spec[64];
	struct mpdev *d;
	pid_t pid;

	printf("--- fail_iommufd sweep (iommufd IOMMU) ---\n");
	if (access(FAIL_DIR, F_OK) != 0 &&
	    mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL))
		printf("  mount debugfs: %s\n", strerror(errno));
	if (access(FAIL_DIR, F_OK) != 0) {
		check(0, "fail_iommufd available",
		      "%s: %s (kernel without IOMMUFD_TEST and "
		      "FAULT_INJECTION_DEBUG_FS?)",
		      FAIL_DIR, strerror(errno));
		return;
	}
	snprintf(spec, sizeof(spec), "vfio:%s", bdf);
	pid = start_remote(spec, "iommufd", "auto", path);
	d = connect_remote(path, pid);
	check(d != NULL, "remote up for the sweep", NULL);
	if (!d)
		goto out;
	a.fd = sealed_memfd(a.size, &ram_a);
	for (int i = 0; i < 3; i++) {
		next[i] = (struct mpdev_mem_region){ .gpa = RAM_GPA + 0x400000 + i * 0x400000ull,
						     .size = 0x200000 };
		next[i].fd = sealed_memfd(next[i].size, &ram_n[i]);
	}
	mpdev_config_write(d, 0x04, 2, 0x0006); /* memory + bus master, for the DMA checks */
	for (n = 0; n < 400; n++) {
		r = mpdev_mem_set_table(d, &a, 1);
		if (r < 0) {
			check(0, "the old table maps", "%s", mpdev_last_error(d));
			break;
		}
		if (fail_arm(pid, n) < 0) {
			check(0, "fail_iommufd armed", "%s", strerror(errno));
			break;
		}
		r = mpdev_mem_set_table(d, next, 3);
		/* Read before disarming, which sets times to 0: 1 left means nothing was failed. */
		untouched = fail_times_left() == 1;
		fail_disarm(pid);
		if (mpdev_get_iommu_info(d, &ii) < 0) {
			check(0, "the remote answers after an injected failure", "n=%d: %s", n,
			      mpdev_last_error(d));
			clean = 0;
			break;
		}
		if (r == 0) {
			/* Succeeded: either the failure hit nothing, or the sweep ran past the end.
			 */
			if (ii.mappings_used != 3)
				clean = 0;
			if (untouched)
				break; /* no call was failed: every step has been tried */
			printf("  n=%d: a failed step was retried or tolerated; table applied\n",
			       n);
			continue;
		}
		failed++;
		if (ii.mappings_used != 1) {
			printf("  n=%d: failed (%s) but %u mappings remain, want 1\n", n,
			       mpdev_last_error(d), ii.mappings_used);
			clean = 0;
		}
		/*
		 * The kernel's word, not our counters: the old table still
		 * translates (the device DMAs through it), and the new one left
		 * nothing behind (mapping it again below would hit EEXIST).
		 */
		if (!edu_round_trip(d, ram_a, a.gpa, (uint8_t)n)) {
			printf("  n=%d: DMA through the old table fails after the rollback\n", n);
			clean = 0;
		}
		r = mpdev_mem_set_table(d, next, 3);
		if (r < 0 || mpdev_get_iommu_info(d, &ii) < 0 || ii.mappings_used != 3) {
			printf("  n=%d: the change does not apply after the failure: %s\n", n,
			       mpdev_last_error(d));
			clean = 0;
		}
	}
	check(n < 400 && failed > 0, "kernel failures injected into the remote's iommufd calls",
	      "%d of %d steps failed the change", failed, n);
	check(clean, "every failure rolled back to exactly the old table", NULL);
	/* After the sweep the device still DMAs through the last table. */
	check(edu_round_trip(d, ram_n[0], next[0].gpa, 1), "DMA through the table after the sweep",
	      NULL);
	mpdev_close(d);
	close(a.fd);
	munmap(ram_a, a.size);
	for (int i = 0; i < 3; i++) {
		close(next[i].fd);
		munmap(ram_n[i], next[i].size);
	}
out:
	stop_remote(pid);
}

/* Runs each selected part for one IOMMU kind. */
static void run_all(const char *bdf, const char *iommu, bool edu, bool mtty, bool mtty_mig,
		    bool fail_nth)
{
	if (edu) {
		run(bdf, iommu, "direct");
		run(bdf, iommu, "routed");
	}
	if (mtty) {
		const char *uuid = getenv("LAB_MTTY_UUID");

		if (uuid && *uuid)
			run_mtty(uuid, iommu);
		else
			check(0, "an mtty device",
			      "LAB_MTTY_UUID unset: the kernel lacks "
			      "SAMPLE_VFIO_MDEV_MTTY?");
	}
	if (mtty_mig) {
		const char *u1 = getenv("LAB_MTTY_UUID"), *u2 = getenv("LAB_MTTY2_UUID");

		if (u1 && *u1 && u2 && *u2)
			run_mtty_migrate(u1, u2, iommu);
		else
			check(0, "two mtty devices", "LAB_MTTY_UUID / LAB_MTTY2_UUID unset");
	}
	if (fail_nth) {
		if (!strcmp(iommu, "iommufd"))
			run_fail_nth(bdf);
		else
			check(0, "fail_iommufd sweep", "needs --iommu iommufd, not %s", iommu);
	}
}

int main(int argc, char **argv)
{
	const char *bdf = getenv("LAB_EDU_BDF");
	bool edu = false, mtty = false, mtty_mig = false, fail_nth = false;
	char *list, *kind, *save = NULL;

	/* Parts in one boot (each boot costs seconds): any of --edu, --mtty, --mtty-migrate,
	 * --fail-nth. */
	for (; argc > 1 && !strncmp(argv[1], "--", 2); argv++, argc--) {
		if (!strcmp(argv[1], "--edu"))
			edu = true;
		else if (!strcmp(argv[1], "--mtty"))
			mtty = true;
		else if (!strcmp(argv[1], "--mtty-migrate"))
			mtty_mig = true;
		else if (!strcmp(argv[1], "--fail-nth"))
			fail_nth = true;
		else
			break;
	}
	if (!edu && !mtty && !mtty_mig && !fail_nth)
		edu = true;
	if (argc < 2 || !bdf) {
		fprintf(stderr,
			"usage: LAB_EDU_BDF=BDF %s [--edu] [--mtty] [--mtty-migrate] [--fail-nth] "
			"IOMMU[,IOMMU...] [REMOTE]   (IOMMU: container, iommufd)\n",
			argv[0]);
		return 2;
	}
	if (argc > 2)
		lab_remote_bin = argv[2];
	list = strdup(argv[1]);
	for (kind = strtok_r(list, ",", &save); kind; kind = strtok_r(NULL, ",", &save))
		run_all(bdf, kind, edu, mtty, mtty_mig, fail_nth);
	free(list);
	return lab_result();
}
