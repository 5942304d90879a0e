/*
 * The QEMU 11.1 tier's guest program (static, run by guest/init as root):
 *
 *   q11-guest check BDF LABEL    edu's identity, registers, DMA and INTx
 *   q11-guest mmio BDF LABEL MS  BAR0 reads per second for MS milliseconds
 *
 * check expects BDF bound to uio_pci_generic; it prints one line per check,
 * "Q11 CHECK LABEL NAME: PASS|FAIL detail", which the host parses (a missing
 * line fails as surely as a FAIL). mmio prints "Q11 MMIO LABEL reads=N
 * ms=T per_s=R". Every wait is bounded: a device that does not answer is a
 * FAIL line, never a hang.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "q11_check.h"

/* edu's BAR0 registers (remote/emu/edu.h, QEMU's hw/misc/edu.c). */
#define EDU_REG_IDENT	     0x00
#define EDU_REG_LIVENESS     0x04
#define EDU_REG_FACTORIAL    0x08
#define EDU_REG_STATUS	     0x20
#define EDU_REG_IRQ_STATUS   0x24
#define EDU_REG_IRQ_RAISE    0x60
#define EDU_REG_IRQ_ACK	     0x64
#define EDU_REG_DMA_SRC	     0x80
#define EDU_REG_DMA_DST	     0x88
#define EDU_REG_DMA_COUNT    0x90
#define EDU_REG_DMA_CMD	     0x98
#define EDU_STATUS_COMPUTING 0x01u
#define EDU_DMA_RUN	     0x1u
#define EDU_DMA_TO_RAM	     0x2u
#define EDU_DMA_BUF_ADDR     0x40000u
#define EDU_DMA_BUF_SIZE     4096u
/* edu's DMA mask: RAM addresses above 28 bits are cut off by the device. */
#define EDU_DMA_LIMIT (UINT64_C(1) << 28)

#define PCI_COMMAND		 0x04
#define PCI_STATUS		 0x06
#define PCI_COMMAND_MEMORY	 0x0002
#define PCI_COMMAND_MASTER	 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT	 0x0008

#define WAIT_MS	    3000 /* an interrupt or a device operation, under TCG */
#define QUIET_MS    300	 /* how long "no interrupt" must hold */
#define INTX_ROUNDS 20

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --- config space through sysfs ----------------------------------------------- */

static int cfg_fd = -1;

static uint32_t cfg_read(unsigned off, unsigned size)
{
	uint32_t v = 0;

	if (pread(cfg_fd, &v, size, off) != (ssize_t)size) {
		fprintf(stderr, "q11-guest: config read at 0x%x: %s\n", off, strerror(errno));
		return ~0u;
	}
	return v;
}

static bool cfg_write(unsigned off, unsigned size, uint32_t v)
{
	if (pwrite(cfg_fd, &v, size, off) != (ssize_t)size) {
		fprintf(stderr, "q11-guest: config write at 0x%x: %s\n", off, strerror(errno));
		return false;
	}
	return true;
}

static uint16_t command(void)
{
	return (uint16_t)cfg_read(PCI_COMMAND, 2);
}

static bool intx_status(void)
{
	return cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT;
}

/* --- BAR0 through sysfs resource0 --------------------------------------------- */

static volatile uint32_t *bar;

static uint32_t rd(unsigned off)
{
	return bar[off / 4];
}

static void wr(unsigned off, uint32_t v)
{
	bar[off / 4] = v;
}

static int open_device(const char *bdf)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	cfg_fd = open(path, O_RDWR);
	if (cfg_fd < 0) {
		fprintf(stderr, "q11-guest: %s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		fprintf(stderr, "q11-guest: %s: %s\n", path, strerror(errno));
		return -1;
	}
	bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (bar == MAP_FAILED) {
		fprintf(stderr, "q11-guest: mmap %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* A device left without memory decoding (no driver enabled it) answers nothing. */
	if (!(command() & PCI_COMMAND_MEMORY))
		cfg_write(PCI_COMMAND, 2, command() | PCI_COMMAND_MEMORY);
	return 0;
}

/* Waits until (reg & mask) == 0; false after WAIT_MS. */
static bool wait_clear(unsigned reg, uint32_t mask)
{
	double end = now_ms() + WAIT_MS;

	while (rd(reg) & mask) {
		if (now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* --- identity and registers ---------------------------------------------------- */

static void check_identity(void)
{
	uint32_t id = cfg_read(0, 4);
	uint32_t ident = rd(EDU_REG_IDENT);

	/* 0x010000ed: version 1.0 in the top bytes, 0xed in the low byte. */
	result("identity", id == 0x11e81234 && (ident & 0xff) == 0xed && ident >> 16 == 0x0100,
	       "vendor:device %04x:%04x ident 0x%08x", id & 0xffff, id >> 16, ident);
}

static void check_liveness(void)
{
	static const uint32_t vals[] = { 0x12345678, 0, 0xffffffff, 0xa5a5005a };
	bool ok = true;
	uint32_t got = 0;
	unsigned i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]) && ok; i++) {
		wr(EDU_REG_LIVENESS, vals[i]);
		got = rd(EDU_REG_LIVENESS);
		ok = got == ~vals[i];
	}
	result("liveness", ok, "wrote 0x%08x read 0x%08x", vals[i - 1], got);
}

static void check_factorial(void)
{
	static const struct {
		uint32_t n, f;
	} cases[] = {
		{ 0, 1 }, { 5, 120 }, { 10, 3628800 }, { 12, 479001600 }, { 13, 1932053504 }
	};
	bool ok = true;
	uint32_t got = 0;
	unsigned i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) && ok; i++) {
		wr(EDU_REG_FACTORIAL, cases[i].n);
		if (!wait_clear(EDU_REG_STATUS, EDU_STATUS_COMPUTING)) {
			result("factorial", false, "%u! still computing after %d ms", cases[i].n,
			       WAIT_MS);
			return;
		}
		got = rd(EDU_REG_FACTORIAL);
		ok = got == cases[i].f;
	}
	result("factorial", ok, "%u! = %u", cases[i - 1].n, got);
}

/* --- DMA through guest RAM ----------------------------------------------------- */

/* The guest-physical address of a locked page (needs CAP_SYS_ADMIN for the PFN). */
static uint64_t phys_of(const void *p)
{
	uint64_t ent = 0;
	long psz = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, 8, (off_t)((uintptr_t)p / psz) * 8) != 8)
		ent = 0;
	close(fd);
	if (!(ent & (UINT64_C(1) << 63)))
		return 0;
	return (ent & ((UINT64_C(1) << 55) - 1)) * psz + (uintptr_t)p % psz;
}

static bool dma_run(uint32_t src, uint32_t dst, uint32_t cmd)
{
	wr(EDU_REG_DMA_SRC, src);
	wr(EDU_REG_DMA_DST, dst);
	wr(EDU_REG_DMA_COUNT, EDU_DMA_BUF_SIZE);
	wr(EDU_REG_DMA_CMD, cmd | EDU_DMA_RUN);
	return wait_clear(EDU_REG_DMA_CMD, EDU_DMA_RUN);
}

static void check_dma(void)
{
	uint8_t *src, *dst;
	uint64_t psrc, pdst;
	size_t i, bad = 0, first = 0;

	src = mmap(NULL, 2 * EDU_DMA_BUF_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED) {
		result("dma", false, "cannot map a locked buffer: %s", strerror(errno));
		return;
	}
	dst = src + EDU_DMA_BUF_SIZE;
	for (i = 0; i < EDU_DMA_BUF_SIZE; i++) {
		src[i] = (uint8_t)(i * 7 + 13 + (i >> 8));
		dst[i] = 0;
	}
	psrc = phys_of(src);
	pdst = phys_of(dst);
	if (!psrc || !pdst || psrc + EDU_DMA_BUF_SIZE > EDU_DMA_LIMIT ||
	    pdst + EDU_DMA_BUF_SIZE > EDU_DMA_LIMIT) {
		result("dma", false,
		       "buffers at 0x%" PRIx64 "/0x%" PRIx64 " (none, or past edu's 28-bit mask)",
		       psrc, pdst);
		return;
	}
	cfg_write(PCI_COMMAND, 2, command() | PCI_COMMAND_MASTER);
	if (!dma_run((uint32_t)psrc, EDU_DMA_BUF_ADDR, 0)) {
		result("dma", false, "RAM 0x%" PRIx64 " -> device did not finish in %d ms", psrc,
		       WAIT_MS);
		return;
	}
	if (!dma_run(EDU_DMA_BUF_ADDR, (uint32_t)pdst, EDU_DMA_TO_RAM)) {
		result("dma", false, "device -> RAM 0x%" PRIx64 " did not finish in %d ms", pdst,
		       WAIT_MS);
		return;
	}
	for (i = 0; i < EDU_DMA_BUF_SIZE; i++) {
		if (dst[i] != src[i] && !bad++)
			first = i;
	}
	result("dma", !bad,
	       "%u bytes RAM 0x%" PRIx64 " -> device -> RAM 0x%" PRIx64 ", %zu differ%s",
	       EDU_DMA_BUF_SIZE, psrc, pdst, bad, bad ? " (first shown in the log)" : "");
	if (bad)
		fprintf(stderr, "q11-guest: dma: byte %zu: 0x%02x, expected 0x%02x\n", first,
			dst[first], src[first]);
	munmap(src, 2 * EDU_DMA_BUF_SIZE);
}

/* --- INTx through uio_pci_generic ----------------------------------------------- */

static int uio_fd = -1;
static uint32_t uio_count;
static const char *reenable_how = "write(1) to /dev/uio";

/* Waits for the next interrupt event; false after ms. */
static bool uio_wait(int ms)
{
	struct pollfd p = { .fd = uio_fd, .events = POLLIN };
	uint32_t n;
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false;
	if (read(uio_fd, &n, 4) != 4)
		return false;
	uio_count = n;
	return true;
}

/*
 * uio's irqcontrol: writing 1 unmasks. uio_pci_generic has had no
 * irqcontrol of its own for most of its life (ENOSYS); then user space
 * clears Interrupt Disable itself, as the UIO howto shows.
 */
static bool uio_reenable(void)
{
	uint32_t one = 1;

	if (write(uio_fd, &one, 4) == 4)
		return true;
	if (errno != ENOSYS)
		return false;
	reenable_how =
		"clearing Interrupt Disable in config space (uio_pci_generic has no irqcontrol)";
	return cfg_write(PCI_COMMAND, 2, command() & ~PCI_COMMAND_INTX_DISABLE);
}

static int open_uio(const char *bdf)
{
	char path[256];
	FILE *f;
	int n = -1;

	snprintf(path, sizeof(path),
		 "ls /sys/bus/pci/devices/%s/uio 2>/dev/null | sed -n 's/^uio//p'", bdf);
	f = popen(path, "r");
	if (!f || fscanf(f, "%d", &n) != 1)
		n = -1;
	if (f)
		pclose(f);
	if (n < 0)
		return -1;
	snprintf(path, sizeof(path), "/dev/uio%d", n);
	uio_fd = open(path, O_RDWR);
	return uio_fd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void check_intx(const char *bdf)
{
	double lat[INTX_ROUNDS], t0;
	uint32_t before, val = 0;
	bool masked, pending;
	int i;

	if (open_uio(bdf) < 0) {
		result("intx_repeat", false, "no /dev/uioN for %s (uio_pci_generic not bound?)",
		       bdf);
		return;
	}
	/* The line starts quiet and unmasked. */
	wr(EDU_REG_IRQ_ACK, ~0u);
	if (!uio_reenable()) {
		result("intx_repeat", false, "cannot enable the interrupt: %s", strerror(errno));
		return;
	}

	/* Raise, wake, see the masked-but-pending state, acknowledge, re-enable. */
	for (i = 0; i < INTX_ROUNDS; i++) {
		val = 1u << (i % 16);
		before = uio_count;
		t0 = now_ms();
		wr(EDU_REG_IRQ_RAISE, val);
		if (!uio_wait(WAIT_MS)) {
			result("intx_repeat", false, "round %d: no interrupt within %d ms", i,
			       WAIT_MS);
			return;
		}
		lat[i] = now_ms() - t0;
		masked = command() & PCI_COMMAND_INTX_DISABLE;
		pending = intx_status();
		/* Exactly one event per raise: no storm, no spurious second call. */
		if (uio_count != before + 1 || !masked || !pending ||
		    rd(EDU_REG_IRQ_STATUS) != val) {
			result("intx_repeat", false,
			       "round %d: count %u->%u, Interrupt Disable %d, Interrupt Status %d, "
			       "edu status 0x%x (raised 0x%x)",
			       i, before, uio_count, masked, pending, rd(EDU_REG_IRQ_STATUS), val);
			return;
		}
		wr(EDU_REG_IRQ_ACK, val);
		if (intx_status()) {
			result("intx_repeat", false,
			       "round %d: Interrupt Status still set after the ack", i);
			return;
		}
		if (!uio_reenable()) {
			result("intx_repeat", false, "round %d: re-enable failed: %s", i,
			       strerror(errno));
			return;
		}
	}
	qsort(lat, INTX_ROUNDS, sizeof(lat[0]), cmp_double);
	result("intx_repeat", true,
	       "%d interrupts woke read() on /dev/uio, one event each (count %u); raise to wake "
	       "min/median/max %.2f/%.2f/%.2f ms; re-enabled by %s",
	       INTX_ROUNDS, uio_count, lat[0], lat[INTX_ROUNDS / 2], lat[INTX_ROUNDS - 1],
	       reenable_how);

	/* Acknowledged and re-enabled, the line must stay quiet. */
	before = uio_count;
	result("intx_quiet", !uio_wait(QUIET_MS),
	       "no interrupt for %d ms after ack (count %u -> %u)", QUIET_MS, before, uio_count);

	/*
	 * Re-enabling while the device still holds its line must deliver again:
	 * the unmask does what a resample does.
	 */
	wr(EDU_REG_IRQ_RAISE, 0x8000);
	if (!uio_wait(WAIT_MS)) {
		result("intx_reassert", false, "no first interrupt within %d ms", WAIT_MS);
		return;
	}
	before = uio_count;
	(void)rd(EDU_REG_IRQ_STATUS); /* a BAR access: QEMU's end of interrupt */
	uio_reenable();
	if (!uio_wait(WAIT_MS)) {
		result("intx_reassert", false,
		       "re-enabled with the line still asserted: no interrupt within %d ms",
		       WAIT_MS);
		return;
	}
	wr(EDU_REG_IRQ_ACK, 0x8000);
	uio_reenable();
	result("intx_reassert", uio_count > before && !uio_wait(QUIET_MS),
	       "re-enable with the line held delivered again (count %u -> %u), quiet after the ack",
	       before, uio_count);

	/* Interrupt Disable set by hand gates the line; Interrupt Status still shows it. */
	cfg_write(PCI_COMMAND, 2, command() | PCI_COMMAND_INTX_DISABLE);
	before = uio_count;
	wr(EDU_REG_IRQ_RAISE, 0x4000);
	sleep_ms(50);
	pending = intx_status();
	if (uio_wait(QUIET_MS) || !pending) {
		result("intx_disable", false,
		       "with Interrupt Disable set: count %u -> %u, Interrupt Status %d", before,
		       uio_count, pending);
		wr(EDU_REG_IRQ_ACK, ~0u);
		return;
	}
	cfg_write(PCI_COMMAND, 2, command() & ~PCI_COMMAND_INTX_DISABLE);
	if (!uio_wait(WAIT_MS)) {
		result("intx_disable", false,
		       "clearing Interrupt Disable delivered nothing in %d ms", WAIT_MS);
		wr(EDU_REG_IRQ_ACK, ~0u);
		return;
	}
	wr(EDU_REG_IRQ_ACK, 0x4000);
	uio_reenable();
	result("intx_disable", !intx_status(),
	       "held off while disabled with Interrupt Status set, delivered once cleared (count "
	       "%u)",
	       uio_count);
}

/* --- the guest-visible MMIO rate ------------------------------------------------- */

static int mmio(unsigned ms)
{
	uint64_t n = 0;
	uint32_t bad = 0;
	double t0 = now_ms(), t;

	do {
		for (int i = 0; i < 256; i++)
			bad |= rd(EDU_REG_IDENT) ^ 0x010000ed;
		n += 256;
		t = now_ms() - t0;
	} while (t < ms);
	printf("Q11 MMIO %s reads=%" PRIu64 " ms=%.0f per_s=%.0f%s\n", label, n, t, n * 1e3 / t,
	       bad ? " BAD-IDENT" : "");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "check") && strcmp(argv[1], "mmio")) ||
	    (!strcmp(argv[1], "mmio") && argc < 5)) {
		fprintf(stderr, "usage: q11-guest check BDF LABEL | mmio BDF LABEL MS\n");
		return 2;
	}
	label = argv[3];
	if (open_device(argv[2]) < 0) {
		result("open", false, "cannot open %s's config space or BAR0", argv[2]);
		return 1;
	}
	if (!strcmp(argv[1], "mmio"))
		return mmio((unsigned)strtoul(argv[4], NULL, 0));
	check_identity();
	check_liveness();
	check_factorial();
	check_dma();
	check_intx(argv[2]);
	return failures ? 1 : 0;
}
