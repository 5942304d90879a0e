/*
 * Interrupts of the emulated edu device, seen from the VMM side: the test
 * plays the VMM (and KVM's part of it), handing eventfds to a real
 * mpdev-remote process and watching which of them become readable.
 *
 *  - INTx through the IOHUB: irqfd asserted on raise, re-asserted on each
 *    guest EOI (resamplefd) while the device still holds the line, quiet
 *    after the ack; pair replacement and re-routing while the line is high.
 *  - Config space gating INTx: MSI enable and COMMAND.INTX_DISABLE.
 *  - Interrupts raised by the device's own work: factorial and DMA.
 *  - VFIO-style SET_IRQS: automasked INTx with unmask action and eventfd,
 *    MSI with mask/unmask (pending message) and disable (dropped message).
 *  - Bad input, through libmpdev and raw on the wire: each refused with its
 *    errno, the remote up and its descriptor count back to the baseline.
 *
 * "No signal" checks first sync with the remote (which signals eventfds
 * synchronously, before it answers the next request) and then poll briefly.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bar_access.h"
#include "libmpdev.h"
#include "native_raw.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "wire.h"

/* edu's BAR0 registers (remote/emu/edu.h, QEMU's hw/misc/edu.c). */
#define EDU_IDENT	   0x00
#define EDU_FACTORIAL	   0x08
#define EDU_STATUS	   0x20
#define EDU_IRQ_STATUS	   0x24
#define EDU_IRQ_RAISE	   0x60
#define EDU_IRQ_ACK	   0x64
#define EDU_DMA_SRC	   0x80
#define EDU_DMA_DST	   0x88
#define EDU_DMA_COUNT	   0x90
#define EDU_DMA_CMD	   0x98
#define EDU_IDENT_VALUE	   0x010000edu
#define EDU_STATUS_IRQFACT 0x80u
#define EDU_IRQ_FACT	   0x001u
#define EDU_IRQ_DMA	   0x100u
#define EDU_CMD_RUN	   0x1u
#define EDU_CMD_TO_RAM	   0x2u
#define EDU_CMD_IRQ	   0x4u
#define EDU_DMA_BUF	   0x40000u

/* Config space. */
#define PCI_COMMAND		 0x04
#define PCI_STATUS		 0x06
#define PCI_COMMAND_MEMORY	 0x0002u
#define PCI_COMMAND_MASTER	 0x0004u
#define PCI_COMMAND_INTX_DISABLE 0x0400u
#define PCI_STATUS_INTERRUPT	 0x0008u
#define MSI_CTRL		 0x42
#define MSI_ADDR_LO		 0x44
#define MSI_ADDR_HI		 0x48
#define MSI_DATA		 0x4c
#define MSI_CTRL_ENABLE		 0x0001u
#define MSI_CTRL_64BIT		 0x0080u

#define PAGE	   0x1000u
#define SIGNAL_MS  1000 /* how long an expected signal may take */
#define QUIET_MS   50	/* after a sync: long enough for nothing to come */
#define PIRQ	   5
#define OTHER_PIRQ 9
#define NUM_PIRQS  32

static struct remote rem;

static const struct mpdev_options opts = { .timeout_ms = 3000, .client_name = "test_interrupts" };

/* ---- edu and config space ---- */

static uint32_t cfg_rd(uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	ck_assert_msg(mpdev_config_read(rem.dev, off, size, &v) == 0, "%s",
		      mpdev_last_error(rem.dev));
	return v;
}

static void cfg_wr(uint32_t off, uint32_t size, uint32_t v)
{
	ck_assert_msg(mpdev_config_write(rem.dev, off, size, v) == 0, "%s",
		      mpdev_last_error(rem.dev));
}

static void raise_irq(uint32_t bits)
{
	bar_wr32(rem.dev, EDU_IRQ_RAISE, bits);
}

static void ack_irq(uint32_t bits)
{
	bar_wr32(rem.dev, EDU_IRQ_ACK, bits);
}

/* Programs the MSI capability (64-bit address, data) and enables it. */
static void msi_enable(void)
{
	cfg_wr(MSI_ADDR_LO, 4, 0xfee00000u);
	cfg_wr(MSI_ADDR_HI, 4, 0);
	cfg_wr(MSI_DATA, 2, 0x4041);
	cfg_wr(MSI_CTRL, 2, MSI_CTRL_ENABLE);
	ck_assert_uint_eq(cfg_rd(MSI_CTRL, 2) & (MSI_CTRL_ENABLE | MSI_CTRL_64BIT),
			  MSI_CTRL_ENABLE | MSI_CTRL_64BIT);
	ck_assert_uint_eq(cfg_rd(MSI_ADDR_LO, 4), 0xfee00000u);
	ck_assert_uint_eq(cfg_rd(MSI_DATA, 2), 0x4041);
}

static void msi_disable(void)
{
	cfg_wr(MSI_CTRL, 2, 0);
	ck_assert_uint_eq(cfg_rd(MSI_CTRL, 2) & MSI_CTRL_ENABLE, 0);
}

/* The device's own interrupt status bit in config space (follows its INTx level). */
static bool cfg_intx_status(void)
{
	return cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT;
}

/* ---- eventfds, as the VMM (and KVM) holds them ---- */

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

/* Reads (and so resets) an eventfd's count; 0 if it is not readable. */
static uint64_t take(int fd)
{
	uint64_t cnt = 0;

	if (!readable(fd, 0))
		return 0;
	ck_assert_int_eq(read(fd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	return cnt;
}

static void sync_remote(void)
{
	ck_assert_msg(mpdev_sync(rem.dev) == 0, "sync: %s", mpdev_last_error(rem.dev));
}

/* fd becomes readable, and was signalled exactly n times by then. */
static void expect_signals_at(int fd, uint64_t n, const char *what, int line)
{
	uint64_t got;

	ck_assert_msg(readable(fd, SIGNAL_MS), "line %d: %s: no signal within %d ms", line, what,
		      SIGNAL_MS);
	sync_remote(); /* whatever else this step signals has been signalled now */
	got = take(fd);
	ck_assert_msg(got == n, "line %d: %s: signalled %llu times, expected %llu", line, what,
		      (unsigned long long)got, (unsigned long long)n);
}

/* After everything sent so far has been processed, fd is not readable. */
static void expect_quiet_at(int fd, const char *what, int line)
{
	sync_remote();
	ck_assert_msg(!readable(fd, QUIET_MS),
		      "line %d: %s: signalled (count %llu), expected quiet", line, what,
		      (unsigned long long)take(fd));
}

#define expect_signals(fd, n, what) expect_signals_at(fd, n, what, __LINE__)
#define expect_signal(fd, what)	    expect_signals_at(fd, 1, what, __LINE__)
#define expect_quiet(fd, what)	    expect_quiet_at(fd, what, __LINE__)

/*
 * Writes an eventfd the remote watches and drains (the INTx unmask eventfd)
 * and waits until the remote has drained it and finished what it does then.
 */
static void kick_watched(int fd, const char *what)
{
	const uint64_t one = 1;
	int i;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	for (i = 0; i < SIGNAL_MS && readable(fd, 0); i++)
		usleep(1000);
	ck_assert_msg(!readable(fd, 0), "%s: the remote did not drain it", what);
	sync_remote();
}

static uint64_t counter(const char *name);

/*
 * The guest EOIs the line: KVM writes the resamplefd. The IOHUB does not
 * read it (edge-triggered, iohub.c), so what says it was handled is its
 * resample counter.
 */
static void eoi(int resamplefd)
{
	const uint64_t one = 1;
	uint64_t before = counter("iohub_resamples");
	int i;

	ck_assert_int_eq(write(resamplefd, &one, sizeof(one)), (ssize_t)sizeof(one));
	for (i = 0; i < SIGNAL_MS && counter("iohub_resamples") == before; i++)
		usleep(1000);
	ck_assert_msg(counter("iohub_resamples") == before + 1,
		      "resamplefd: the remote did not handle the EOI within %d ms", SIGNAL_MS);
	sync_remote();
}

/* An EOI on a resamplefd the remote no longer watches: nobody drains it. */
static void eoi_unwatched(int resamplefd)
{
	const uint64_t one = 1;

	ck_assert_int_eq(write(resamplefd, &one, sizeof(one)), (ssize_t)sizeof(one));
	sync_remote();
	ck_assert(readable(resamplefd, 0));
	take(resamplefd);
}

/* ---- libmpdev calls that must succeed ---- */

static void route(unsigned pin, unsigned pirq, int irqfd, int resamplefd)
{
	ck_assert_msg(mpdev_set_intx_irqfd(rem.dev, pin, pirq, irqfd, resamplefd) == 0,
		      "set_intx_irqfd: %s", mpdev_last_error(rem.dev));
}

static void unroute(unsigned pin)
{
	route(pin, 0, -1, -1);
}

static void set_trigger(unsigned index, int fd)
{
	ck_assert_msg(mpdev_set_irqs_eventfd(rem.dev, index, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &fd) ==
			      0,
		      "set trigger: %s", mpdev_last_error(rem.dev));
}

static void irqs_none(unsigned index, unsigned action)
{
	ck_assert_msg(mpdev_set_irqs_none(rem.dev, index, action, 0, 1) == 0, "set_irqs: %s",
		      mpdev_last_error(rem.dev));
}

static void irq_disable(unsigned index)
{
	ck_assert_msg(mpdev_irq_disable(rem.dev, index) == 0, "irq_disable: %s",
		      mpdev_last_error(rem.dev));
}

/* ---- the remote's counters and health ---- */

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

static uint64_t counter(const char *name)
{
	struct counter_query q = { .name = name };

	ck_assert_msg(mpdev_get_stats(rem.dev, pick_counter, &q) > 0, "stats: %s",
		      mpdev_last_error(rem.dev));
	ck_assert_msg(q.found, "the remote does not report counter '%s'", name);
	return q.value;
}

/* The remote answers, and holds want descriptors (polled: it closes them asynchronously). */
static void expect_remote_fds_at(int want, int line)
{
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IDENT), EDU_IDENT_VALUE);
	remote_expect_fds_at(&rem, want, __FILE__, line);
}

#define expect_remote_fds(n) expect_remote_fds_at(n, __LINE__)
#define expect_alive()	     expect_remote_fds_at(rem.baseline_fds, __LINE__)

/* Undoes every interrupt setting and checks the remote is back to its baseline. */
static void undo_all(void)
{
	for (unsigned pin = 0; pin < 4; pin++)
		unroute(pin);
	irq_disable(MPDEV_IRQ_INTX);
	irq_disable(MPDEV_IRQ_MSI);
	expect_alive();
}

/* ---- fixture: a remote on an adopted socket, as the VMM starts it ---- */

static void start(void)
{
	const uint64_t need = MPDEV_FEATURE_INTX_IRQFD | MPDEV_FEATURE_SET_IRQS |
			      MPDEV_FEATURE_STATS | MPDEV_FEATURE_MEMORY_TABLE;

	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
	ck_assert_uint_eq(mpdev_features(rem.dev) & need, need);
	ck_assert_int_gt(rem.baseline_fds, 0);
}

static void stop(void)
{
	remote_stop(&rem);
}

/* ---- 1-3: INTx through the IOHUB ---- */

START_TEST(raise_signals_the_irqfd_once)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	uint64_t signals = counter("iohub_irqfd_signals");

	route(0, PIRQ, irqfd, rfd);
	expect_quiet(irqfd, "routing a low line");
	expect_remote_fds(rem.baseline_fds + 2);

	raise_irq(1);
	expect_signal(irqfd, "raise");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 1);
	ck_assert(cfg_intx_status());
	ck_assert_uint_eq(counter("iohub_irqfd_signals") - signals, 1);

	/* More bits while the line is high: still one level, no new edge. */
	raise_irq(2);
	expect_quiet(irqfd, "raise while already asserted");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 3);

	/* Acking part of it keeps the line up: an EOI re-asserts. */
	ack_irq(1);
	eoi(rfd);
	expect_signal(irqfd, "EOI with bit 1 still pending");
	ack_irq(2);
	ck_assert(!cfg_intx_status());
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the full ack");

	undo_all();
	close(irqfd);
	close(rfd);
}
END_TEST

START_TEST(ack_then_eoi_is_quiet)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	uint64_t reasserts;

	route(0, PIRQ, irqfd, rfd);
	raise_irq(1);
	expect_signal(irqfd, "raise");
	ack_irq(1);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	expect_quiet(irqfd, "ack");
	reasserts = counter("iohub_reasserts");
	eoi(rfd);
	expect_quiet(irqfd, "EOI after ack");
	ck_assert_uint_eq(counter("iohub_reasserts"), reasserts);

	/* The next raise is a new edge. */
	raise_irq(1);
	expect_signal(irqfd, "second raise");
	ack_irq(1);
	eoi(rfd);
	expect_quiet(irqfd, "second EOI after ack");

	undo_all();
	close(irqfd);
	close(rfd);
}
END_TEST

START_TEST(eoi_without_ack_reasserts_until_acked)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	uint64_t resamples = counter("iohub_resamples"), reasserts = counter("iohub_reasserts");

	route(0, PIRQ, irqfd, rfd);
	raise_irq(1);
	expect_signal(irqfd, "raise");
	for (int i = 0; i < 5; i++) {
		eoi(rfd);
		expect_signal(irqfd, "EOI while not acked");
	}
	ck_assert_uint_eq(counter("iohub_resamples") - resamples, 5);
	ck_assert_uint_eq(counter("iohub_reasserts") - reasserts, 5);
	ack_irq(1);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after ack");
	eoi(rfd);
	expect_quiet(irqfd, "another EOI after ack");
	ck_assert_uint_eq(counter("iohub_resamples") - resamples, 7);
	ck_assert_uint_eq(counter("iohub_reasserts") - reasserts, 5);

	undo_all();
	close(irqfd);
	close(rfd);
}
END_TEST

/* A device reset drops the line: the guest's next EOI finds nothing to re-assert. */
START_TEST(reset_drops_the_line)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();

	route(0, PIRQ, irqfd, rfd);
	raise_irq(1);
	expect_signal(irqfd, "raise");
	ck_assert_int_eq(mpdev_reset(rem.dev), 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	ck_assert(!cfg_intx_status());
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the reset");
	/* The routing survives the reset: the next raise is a new edge. */
	raise_irq(1);
	expect_signal(irqfd, "raise after the reset");
	ack_irq(1);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the ack");

	undo_all();
	close(irqfd);
	close(rfd);
}
END_TEST

/* ---- 4, 5: config space gates INTx ---- */

START_TEST(msi_enabled_takes_over_from_intx)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd(), msifd = testutil_eventfd();
	uint64_t vsig = counter("vector_signals");

	route(0, PIRQ, irqfd, rfd);
	set_trigger(MPDEV_IRQ_MSI, msifd);
	msi_enable();
	expect_quiet(msifd, "enabling MSI");

	raise_irq(1);
	expect_signal(msifd, "raise with MSI enabled");
	expect_quiet(irqfd, "INTx with MSI enabled");
	ck_assert(!cfg_intx_status());

	/* As QEMU's edu: every raise sends a message, pending or not. */
	raise_irq(1);
	raise_irq(2);
	raise_irq(1);
	expect_signals(msifd, 3, "three raises with MSI enabled");
	expect_quiet(irqfd, "INTx after three raises");
	ck_assert_uint_eq(counter("vector_signals") - vsig, 4);

	/* MSI has no EOI: a resample does not make INTx or MSI fire. */
	eoi(rfd);
	expect_quiet(irqfd, "EOI with MSI enabled");
	expect_quiet(msifd, "EOI with MSI enabled");

	ack_irq(3);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);
	msi_disable();
	expect_quiet(irqfd, "disabling MSI with nothing pending");
	raise_irq(1);
	expect_signal(irqfd, "raise after MSI was disabled");
	expect_quiet(msifd, "MSI after it was disabled");
	ck_assert(cfg_intx_status());

	/* Enabling MSI while INTx is asserted takes the line down: an EOI does not re-assert. */
	msi_enable();
	eoi(rfd);
	expect_quiet(irqfd, "EOI after MSI took the line down");
	ack_irq(1);
	msi_disable();
	expect_quiet(irqfd, "disabling MSI after the ack");
	expect_quiet(msifd, "MSI never raised during the INTx phase");

	undo_all();
	close(irqfd);
	close(rfd);
	close(msifd);
}
END_TEST

START_TEST(intx_disable_gates_the_line)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();

	route(0, PIRQ, irqfd, rfd);
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	ck_assert_uint_eq(cfg_rd(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE,
			  PCI_COMMAND_INTX_DISABLE);
	raise_irq(1);
	expect_quiet(irqfd, "raise with INTX_DISABLE");
	/* The device's own status still shows the interrupt. */
	ck_assert(cfg_intx_status());
	eoi(rfd);
	expect_quiet(irqfd, "EOI with INTX_DISABLE");

	/* Clearing INTX_DISABLE with the interrupt still pending asserts the line. */
	cfg_wr(PCI_COMMAND, 2, 0);
	expect_signal(irqfd, "clearing INTX_DISABLE while pending");
	eoi(rfd);
	expect_signal(irqfd, "EOI while pending");

	/* Setting it again takes the line down: EOIs stay quiet. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after INTX_DISABLE was set again");

	/* Acked while disabled: clearing it then asserts nothing. */
	ack_irq(1);
	ck_assert(!cfg_intx_status());
	cfg_wr(PCI_COMMAND, 2, 0);
	expect_quiet(irqfd, "clearing INTX_DISABLE with nothing pending");

	undo_all();
	close(irqfd);
	close(rfd);
}
END_TEST

/* ---- 6: interrupts the device's own work raises ---- */

static void start_dma(uint64_t src, uint64_t dst, uint64_t cnt, uint64_t cmd)
{
	bar_wr64(rem.dev, EDU_DMA_SRC, src);
	bar_wr64(rem.dev, EDU_DMA_DST, dst);
	bar_wr64(rem.dev, EDU_DMA_COUNT, cnt);
	bar_wr64(rem.dev, EDU_DMA_CMD, cmd);
}

static void wait_dma_done(void)
{
	uint64_t c = EDU_CMD_RUN;

	for (int i = 0; i < 2000 && (c & EDU_CMD_RUN); i++) {
		if (i > 10)
			usleep(1000);
		c = bar_rd64(rem.dev, EDU_DMA_CMD);
	}
	ck_assert_msg(!(c & EDU_CMD_RUN), "DMA still running after ~2 s");
}

START_TEST(factorial_and_dma_completion_raise_intx)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	int mfd = testutil_memfd(4 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	const struct mpdev_mem_region ram = { .gpa = 0x100000, .size = 4 * PAGE, .fd = mfd };
	uint8_t *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	route(0, PIRQ, irqfd, rfd);

	/* Factorial without the status bit: no interrupt. */
	bar_wr32(rem.dev, EDU_FACTORIAL, 5);
	for (int i = 0; i < 2000 && (bar_rd32(rem.dev, EDU_STATUS) & 1); i++)
		usleep(1000);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_FACTORIAL), 120);
	expect_quiet(irqfd, "factorial without status bit 0x80");

	/* With it: the interrupt comes once the computation is done. */
	bar_wr32(rem.dev, EDU_STATUS, EDU_STATUS_IRQFACT);
	bar_wr32(rem.dev, EDU_FACTORIAL, 10);
	expect_signal(irqfd, "factorial done");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_STATUS) & 1, 0);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_FACTORIAL), 3628800u);
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), EDU_IRQ_FACT);
	ack_irq(EDU_IRQ_FACT);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the factorial's ack");
	bar_wr32(rem.dev, EDU_STATUS, 0);

	ck_assert_msg(mpdev_mem_set_table(rem.dev, &ram, 1) == 0, "set table: %s",
		      mpdev_last_error(rem.dev));
	for (unsigned i = 0; i < 64; i++)
		p[i] = (uint8_t)(i * 7 + 1);

	/* A DMA refused for want of bus mastering must not look complete. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	start_dma(0x100000, EDU_DMA_BUF, 64, EDU_CMD_RUN | EDU_CMD_IRQ);
	wait_dma_done();
	expect_quiet(irqfd, "DMA refused without bus mastering");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);

	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* A completed DMA without cmd bit 2: no interrupt. */
	start_dma(0x100000, EDU_DMA_BUF, 64, EDU_CMD_RUN);
	wait_dma_done();
	expect_quiet(irqfd, "DMA without cmd bit 2");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), 0);

	/* RAM -> device, then device -> RAM, each raising 0x100 on completion. */
	start_dma(0x100000, EDU_DMA_BUF, 64, EDU_CMD_RUN | EDU_CMD_IRQ);
	expect_signal(irqfd, "DMA to the device done");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), EDU_IRQ_DMA);
	ack_irq(EDU_IRQ_DMA);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the DMA's ack");
	start_dma(EDU_DMA_BUF, 0x102000, 64, EDU_CMD_RUN | EDU_CMD_TO_RAM | EDU_CMD_IRQ);
	expect_signal(irqfd, "DMA to RAM done");
	ck_assert_uint_eq(bar_rd32(rem.dev, EDU_IRQ_STATUS), EDU_IRQ_DMA);
	ck_assert_int_eq(memcmp(p + 0x2000, p, 64), 0);
	ack_irq(EDU_IRQ_DMA);
	eoi(rfd);
	expect_quiet(irqfd, "EOI after the second DMA's ack");

	ck_assert_int_eq(mpdev_mem_set_table(rem.dev, NULL, 0), 0);
	undo_all();
	munmap(p, 4 * PAGE);
	close(mfd);
	close(irqfd);
	close(rfd);
}
END_TEST

/* ---- 7, 8: changing the routing while the line is high ---- */

START_TEST(replacing_the_pair_while_asserted)
{
	int a = testutil_eventfd(), ra = testutil_eventfd();
	int b = testutil_eventfd(), rb = testutil_eventfd();

	route(0, PIRQ, a, ra);
	raise_irq(1);
	expect_signal(a, "raise");

	route(0, PIRQ, b, rb);
	expect_signal(b, "new irqfd while the line is high");
	expect_quiet(a, "old irqfd after the replacement");
	expect_remote_fds(rem.baseline_fds + 2);

	/* The old resamplefd is no longer watched; the new one is. */
	eoi_unwatched(ra);
	expect_quiet(a, "EOI on the old resamplefd (old irqfd)");
	expect_quiet(b, "EOI on the old resamplefd (new irqfd)");
	eoi(rb);
	expect_signal(b, "EOI on the new resamplefd");
	expect_quiet(a, "old irqfd after an EOI on the new pair");

	/* Replaced again, with no resamplefd: the irqfd still fires at once. */
	route(0, PIRQ, a, -1);
	expect_signal(a, "irqfd without resamplefd while high");
	expect_quiet(b, "second pair after its replacement");
	expect_remote_fds(rem.baseline_fds + 1);

	ack_irq(1);
	route(0, PIRQ, b, rb);
	expect_quiet(b, "replacing the pair while the line is low");
	eoi(rb);
	expect_quiet(b, "EOI after the ack");

	undo_all();
	close(a);
	close(ra);
	close(b);
	close(rb);
}
END_TEST

START_TEST(rerouting_moves_the_level)
{
	int a = testutil_eventfd(), ra = testutil_eventfd();
	int b = testutil_eventfd(), rb = testutil_eventfd();
	int c = testutil_eventfd(), rc = testutil_eventfd();
	uint64_t lost = counter("iohub_lost_asserts"), signals;

	route(0, PIRQ, a, ra);
	raise_irq(1);
	expect_signal(a, "raise");

	/* To another PIRQ while asserted: the new line rises, the old one is let go. */
	route(0, OTHER_PIRQ, b, rb);
	expect_signal(b, "moved to another pirq while high");
	expect_quiet(a, "old pirq's irqfd after the move");
	eoi(rb);
	expect_signal(b, "EOI on the new pirq");
	expect_quiet(a, "old pirq after an EOI on the new one");
	/*
	 * Nothing routes to the old PIRQ any more, so its pair must not be kept:
	 * no request could remove it (irqfd -1 unroutes the pin from its current
	 * PIRQ), it would stay until the connection ends.
	 */
	expect_remote_fds(rem.baseline_fds + 2);

	/* Routing removed while asserted: the level disappears with it. */
	signals = counter("iohub_irqfd_signals");
	unroute(0);
	expect_remote_fds(rem.baseline_fds);
	eoi_unwatched(rb);
	expect_quiet(b, "EOI after the routing was removed");
	ack_irq(1);
	raise_irq(1);
	expect_quiet(a, "raise while unrouted (a)");
	expect_quiet(b, "raise while unrouted (b)");
	ck_assert_uint_eq(counter("iohub_irqfd_signals"), signals);
	ck_assert_uint_eq(counter("iohub_lost_asserts"), lost);

	/* Routed again while the device holds the line: the new irqfd sees it at once. */
	route(0, OTHER_PIRQ, c, rc);
	expect_signal(c, "routing a pin that is high");
	eoi(rc);
	expect_signal(c, "EOI on the re-routed pin");
	ack_irq(1);
	eoi(rc);
	expect_quiet(c, "EOI after the ack");
	expect_quiet(a, "a at the end");
	expect_quiet(b, "b at the end");

	undo_all();
	close(a);
	close(ra);
	close(b);
	close(rb);
	close(c);
	close(rc);
}
END_TEST

/* ---- 9: VFIO-style INTx ---- */

START_TEST(vfio_intx_is_automasked)
{
	int t = testutil_eventfd(), ufd = testutil_eventfd();
	uint64_t vfio = counter("vfio_intx_signals");
	const bool no = false, yes = true;

	set_trigger(MPDEV_IRQ_INTX, t);
	expect_quiet(t, "setting the trigger on a low line");
	raise_irq(1);
	expect_signal(t, "raise");

	/* Automasked: a second raise/ack cycle does not fire. */
	ack_irq(1);
	raise_irq(1);
	expect_quiet(t, "second raise while automasked");
	ack_irq(1);
	raise_irq(1);
	expect_quiet(t, "third raise while automasked");

	/* Unmask while still asserted: fires again (and masks again). */
	irqs_none(MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK);
	expect_signal(t, "unmask while asserted");
	ack_irq(1);
	/* Unmask after the ack: nothing to report. */
	irqs_none(MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK);
	expect_quiet(t, "unmask after ack");
	/* Unmasked and low: the next raise fires. */
	raise_irq(1);
	expect_signal(t, "raise after unmask");

	/* A bool unmask with false does nothing; with true it unmasks. */
	ck_assert_int_eq(
		mpdev_set_irqs_bool(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0, 1, &no),
		0);
	expect_quiet(t, "bool unmask with false");
	ck_assert_int_eq(
		mpdev_set_irqs_bool(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0, 1, &yes),
		0);
	expect_signal(t, "bool unmask with true while asserted");

	/* The unmask eventfd works like the action. */
	ck_assert_msg(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0, 1,
					     &ufd) == 0,
		      "unmask eventfd: %s", mpdev_last_error(rem.dev));
	expect_remote_fds(rem.baseline_fds + 2);
	kick_watched(ufd, "unmask eventfd");
	expect_signal(t, "unmask eventfd while asserted");
	ack_irq(1);
	kick_watched(ufd, "unmask eventfd");
	expect_quiet(t, "unmask eventfd after ack");
	raise_irq(1);
	expect_signal(t, "raise after the unmask eventfd");

	/* An explicit MASK holds back an unmasked line's next rise until UNMASK. */
	ack_irq(1);
	kick_watched(ufd, "unmask eventfd");
	irqs_none(MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_MASK);
	raise_irq(1);
	expect_quiet(t, "raise while masked by the action");
	irqs_none(MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK);
	expect_signal(t, "unmask after the explicit mask");
	ack_irq(1);

	ck_assert_uint_eq(counter("vfio_intx_signals") - vfio, 7);

	/* Disabled: raises reach nobody, the remote holds none of our fds. */
	irq_disable(MPDEV_IRQ_INTX);
	expect_alive();
	raise_irq(1);
	expect_quiet(t, "raise after INTx was disabled");
	ack_irq(1);

	undo_all();
	close(t);
	close(ufd);
}
END_TEST

/* ---- 10: MSI mask, unmask, disable ---- */

START_TEST(msi_mask_keeps_the_message_pending)
{
	int m = testutil_eventfd();
	uint64_t pending = counter("vector_pending"), dropped = counter("vector_dropped");
	uint64_t signals = counter("vector_signals");

	set_trigger(MPDEV_IRQ_MSI, m);
	msi_enable();
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK);
	raise_irq(1);
	expect_quiet(m, "raise while masked");
	ck_assert_uint_eq(counter("vector_pending") - pending, 1);
	raise_irq(1);
	expect_quiet(m, "second raise while masked");
	ck_assert_uint_eq(counter("vector_pending") - pending, 2);

	/* Unmask: the pending message goes out, once. */
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_UNMASK);
	expect_signal(m, "unmask with a message pending");
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_UNMASK);
	expect_quiet(m, "second unmask");
	ck_assert_uint_eq(counter("vector_signals") - signals, 1);

	/* Unmasked: each raise is a message. */
	raise_irq(1);
	expect_signal(m, "raise when unmasked");

	/* Mask with no raise in between: unmask sends nothing. */
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK);
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_UNMASK);
	expect_quiet(m, "unmask with nothing pending");

	/* Disabled: the message has nowhere to go and is dropped. */
	irq_disable(MPDEV_IRQ_MSI);
	expect_alive();
	raise_irq(1);
	expect_quiet(m, "raise after MSI was disabled");
	ck_assert_uint_eq(counter("vector_dropped") - dropped, 1);
	ck_assert_uint_eq(counter("vector_signals") - signals, 2);

	ack_irq(1);
	msi_disable();
	undo_all();
	close(m);
}
END_TEST

/* ---- 11: bad input through libmpdev ---- */

enum bad_kind { BAD_PIPE, BAD_MEMFD, BAD_SOCKET, NUM_BAD };

static const char *const bad_names[NUM_BAD] = { "pipe end", "memfd", "socketpair end" };

/* A descriptor that is not an eventfd; *spare gets whatever else must be closed. */
static int bad_fd(enum bad_kind k, int *spare)
{
	int v[2];

	*spare = -1;
	switch (k) {
	case BAD_PIPE:
		ck_assert_int_eq(pipe2(v, O_CLOEXEC), 0);
		*spare = v[1];
		return v[0];
	case BAD_MEMFD:
		v[0] = memfd_create("not-an-eventfd", MFD_CLOEXEC);
		ck_assert_int_ge(v[0], 0);
		return v[0];
	default:
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, v), 0);
		*spare = v[1];
		return v[0];
	}
}

static void expect_refused_at(int r, int err, const char *what, int line)
{
	ck_assert_msg(r == -err, "line %d: %s: got %d (%s), expected -%d", line, what, r,
		      mpdev_last_error(rem.dev), err);
	ck_assert_msg(*mpdev_last_error(rem.dev), "line %d: %s: no words", line, what);
}

#define expect_refused(r, err, what) expect_refused_at(r, err, what, __LINE__)

START_TEST(bad_descriptors_refused)
{
	int good = testutil_eventfd(), good_r = testutil_eventfd();

	for (int k = 0; k < NUM_BAD; k++) {
		int spare, bad = bad_fd((enum bad_kind)k, &spare);
		int fds[1] = { bad };
		char what[96];

		snprintf(what, sizeof(what), "%s as irqfd", bad_names[k]);
		expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, PIRQ, bad, -1), EINVAL, what);
		expect_alive();
		expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, PIRQ, bad, good_r), EINVAL, what);
		expect_alive();
		snprintf(what, sizeof(what), "%s as resamplefd", bad_names[k]);
		expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, PIRQ, good, bad), EINVAL, what);
		expect_alive();
		snprintf(what, sizeof(what), "%s as MSI trigger", bad_names[k]);
		expect_refused(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSI,
						      MPDEV_IRQ_ACTION_TRIGGER, 0, 1, fds),
			       EINVAL, what);
		expect_alive();
		snprintf(what, sizeof(what), "%s as INTx trigger", bad_names[k]);
		expect_refused(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_INTX,
						      MPDEV_IRQ_ACTION_TRIGGER, 0, 1, fds),
			       EINVAL, what);
		expect_alive();
		snprintf(what, sizeof(what), "%s as INTx unmask eventfd", bad_names[k]);
		expect_refused(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_INTX,
						      MPDEV_IRQ_ACTION_UNMASK, 0, 1, fds),
			       EINVAL, what);
		expect_alive();
		close(bad);
		if (spare >= 0)
			close(spare);
	}

	/* A refused replacement leaves the working pair in place. */
	route(0, PIRQ, good, good_r);
	{
		int spare, bad = bad_fd(BAD_MEMFD, &spare);

		expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, PIRQ, bad, -1), EINVAL,
			       "memfd replacing a working irqfd");
		close(bad);
	}
	expect_remote_fds(rem.baseline_fds + 2);
	raise_irq(1);
	expect_signal(good, "raise after a refused replacement");
	eoi(good_r);
	expect_signal(good, "EOI after a refused replacement");
	ack_irq(1);

	undo_all();
	close(good);
	close(good_r);
}
END_TEST

START_TEST(bad_ranges_refused)
{
	int e = testutil_eventfd(), e2 = testutil_eventfd();
	int two[2] = { e, e2 };

	expect_refused(mpdev_set_intx_irqfd(rem.dev, 4, PIRQ, e, -1), EINVAL, "pin 4 (libmpdev)");
	expect_alive();
	expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, NUM_PIRQS, e, -1), EINVAL, "pirq 32");
	expect_alive();
	expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, NUM_PIRQS, e, e2), EINVAL,
		       "pirq 32 with pair");
	expect_alive();
	expect_refused(mpdev_set_intx_irqfd(rem.dev, 0, ~0u, e, -1), EINVAL, "pirq ~0");
	expect_alive();

	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSIX, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &e),
		EINVAL, "MSI-X trigger on edu");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_MSIX, MPDEV_IRQ_ACTION_MASK, 0, 1),
		       EINVAL, "MSI-X mask on edu");
	expect_alive();
	expect_refused(mpdev_irq_disable(rem.dev, MPDEV_IRQ_MSIX), EINVAL, "MSI-X disable on edu");
	expect_alive();
	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_ERR, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &e),
		EINVAL, "ERR trigger on edu");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_REQ, MPDEV_IRQ_ACTION_TRIGGER, 0, 1),
		       EINVAL, "REQ on edu");
	expect_alive();

	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 1, 2, two),
		EINVAL, "MSI start 1 count 2");
	expect_alive();
	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 2, two),
		EINVAL, "MSI start 0 count 2");
	expect_alive();
	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 1, 1, &e),
		EINVAL, "MSI start 1 count 1");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK, 1, 2),
		       EINVAL, "MSI mask start 1 count 2");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK, ~0u, 2),
		       EINVAL, "MSI mask start ~0 count 2 (wraps)");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 1, 1),
		       EINVAL, "INTx start 1");
	expect_alive();

	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK, 0, 0),
		       EINVAL, "count 0 with MASK");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0, 0),
		       EINVAL, "count 0 with UNMASK");
	expect_alive();
	expect_refused(
		mpdev_set_irqs_bool(rem.dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 0, NULL),
		EINVAL, "count 0 with bool data");
	expect_alive();
	expect_refused(mpdev_set_irqs_none(rem.dev, MPDEV_IRQ_MSI, 3, 0, 1), EINVAL, "action 3");
	expect_alive();
	expect_refused(
		mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_MASK, 0, 1, &e),
		EINVAL, "INTx masked by an eventfd");
	expect_alive();

	/* None of that left a trigger behind: a raise reaches nobody. */
	raise_irq(1);
	expect_quiet(e, "raise after the refusals (e)");
	expect_quiet(e2, "raise after the refusals (e2)");
	ack_irq(1);

	undo_all();
	close(e);
	close(e2);
}
END_TEST

/* ---- 12: the VMM closes its copies after handing them over ---- */

START_TEST(remote_copies_outlive_the_vmm_copies)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd(), m = testutil_eventfd();
	int t = testutil_eventfd();
	int keep_irqfd = dup(irqfd), keep_rfd = dup(rfd), keep_m = dup(m), keep_t = dup(t);

	ck_assert(keep_irqfd >= 0 && keep_rfd >= 0 && keep_m >= 0 && keep_t >= 0);
	route(0, PIRQ, irqfd, rfd);
	set_trigger(MPDEV_IRQ_MSI, m);
	set_trigger(MPDEV_IRQ_INTX, t);
	close(irqfd);
	close(rfd);
	close(m);
	close(t);
	expect_remote_fds(rem.baseline_fds + 4);

	raise_irq(1);
	expect_signal(keep_irqfd, "raise after the VMM closed its irqfd");
	expect_signal(keep_t, "VFIO INTx after the VMM closed its trigger");
	eoi(keep_rfd);
	expect_signal(keep_irqfd, "EOI through the kept resamplefd");
	ack_irq(1);
	eoi(keep_rfd);
	expect_quiet(keep_irqfd, "EOI after ack");

	msi_enable();
	raise_irq(1);
	expect_signal(keep_m, "MSI after the VMM closed its trigger");
	expect_quiet(keep_irqfd, "INTx with MSI enabled");
	ack_irq(1);
	msi_disable();

	undo_all();
	close(keep_irqfd);
	close(keep_rfd);
	close(keep_m);
	close(keep_t);
}
END_TEST

/* Disconnecting with every kind of interrupt set up and the line high: a clean exit. */
START_TEST(disconnect_with_everything_set_up)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd(), m = testutil_eventfd();
	int t = testutil_eventfd(), ufd = testutil_eventfd();

	route(0, PIRQ, irqfd, rfd);
	set_trigger(MPDEV_IRQ_MSI, m);
	set_trigger(MPDEV_IRQ_INTX, t);
	ck_assert_int_eq(mpdev_set_irqs_eventfd(rem.dev, MPDEV_IRQ_INTX, MPDEV_IRQ_ACTION_UNMASK, 0,
						1, &ufd),
			 0);
	irqs_none(MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK);
	raise_irq(1);
	expect_signal(irqfd, "raise");
	expect_remote_fds(rem.baseline_fds + 5);
	/* stop() closes the connection and wants exit status 0. */
	close(irqfd);
	close(rfd);
	close(m);
	close(t);
	close(ufd);
}
END_TEST

/* ---- 11 continued: raw packets libmpdev would never send ---- */

/* Sends env with fds and expects status (0: an empty OK reply). */
static void raw_call(Mpdev__Envelope *env, const int *fds, size_t nfds, int status,
		     const char *words)
{
	native_call(rem.sock, env, rem.next_id++, fds, nfds, status, words);
}

static uint32_t raw_read_ident(void)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__RegionRead rr = MPDEV__REGION_READ__INIT;
	struct wire_msg m;
	uint32_t v = 0;

	rr.index = MPDEV_REGION_BAR0;
	rr.offset = EDU_IDENT;
	rr.size = 4;
	env.body_case = MPDEV__ENVELOPE__BODY_REGION_READ;
	env.region_read = &rr;
	native_call_reply(rem.sock, &env, rem.next_id++, NULL, 0, &m);
	ck_assert_int_eq(m.env->body_case, MPDEV__ENVELOPE__BODY_REGION_READ_REPLY);
	ck_assert_uint_eq(m.env->region_read_reply->data.len, 4);
	memcpy(&v, m.env->region_read_reply->data.data, 4);
	wire_msg_release(&m);
	return v;
}

static void raw_expect_alive_at(int line)
{
	ck_assert_uint_eq(raw_read_ident(), EDU_IDENT_VALUE);
	remote_expect_fds_at(&rem, rem.baseline_fds, __FILE__, line);
}

#define raw_expect_alive() raw_expect_alive_at(__LINE__)

static void raw_start(void)
{
	remote_start(&rem, &(struct remote_opts){ .greet = REMOTE_RAW_HELLO });
	ck_assert_int_gt(rem.baseline_fds, 0);
}

static void raw_stop(void)
{
	remote_stop(&rem);
}

static void raw_set_intx_irqfd(uint32_t pin, uint32_t pirq, const int *fds, size_t nfds, int status,
			       const char *words)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIntxIrqfd body = MPDEV__SET_INTX_IRQFD__INIT;

	body.pin = pin;
	body.pirq = pirq;
	env.body_case = MPDEV__ENVELOPE__BODY_SET_INTX_IRQFD;
	env.set_intx_irqfd = &body;
	raw_call(&env, fds, nfds, status, words);
}

struct raw_irqs {
	uint32_t index, action, data, start, count;
	size_t n_values;
	protobuf_c_boolean *values;
	size_t n_slots;
	int32_t *slots;
};

static void raw_set_irqs(const struct raw_irqs *r, const int *fds, size_t nfds, int status,
			 const char *words)
{
	Mpdev__Envelope env = MPDEV__ENVELOPE__INIT;
	Mpdev__SetIrqs body = MPDEV__SET_IRQS__INIT;

	body.index = r->index;
	body.action = r->action;
	body.data = r->data;
	body.start = r->start;
	body.count = r->count;
	body.n_values = r->n_values;
	body.values = r->values;
	body.n_fds = r->n_slots;
	body.fds = r->slots;
	env.body_case = MPDEV__ENVELOPE__BODY_SET_IRQS;
	env.set_irqs = &body;
	raw_call(&env, fds, nfds, status, words);
}

#define DATA_NONE    MPDEV__IRQ_DATA__IRQ_DATA_NONE
#define DATA_BOOL    MPDEV__IRQ_DATA__IRQ_DATA_BOOL
#define DATA_EVENTFD MPDEV__IRQ_DATA__IRQ_DATA_EVENTFD

START_TEST(raw_set_intx_irqfd_refused)
{
	int e[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() };
	int spare, bad = bad_fd(BAD_PIPE, &spare);
	int mixed[2] = { e[0], bad };

	raw_set_intx_irqfd(0, PIRQ, e, 3, EINVAL, "3 descriptors");
	raw_expect_alive();
	raw_set_intx_irqfd(4, PIRQ, e, 2, EINVAL, "out of range");
	raw_expect_alive();
	raw_set_intx_irqfd(~0u, PIRQ, e, 1, EINVAL, "out of range");
	raw_expect_alive();
	raw_set_intx_irqfd(0, NUM_PIRQS, e, 2, EINVAL, "out of range");
	raw_expect_alive();
	raw_set_intx_irqfd(4, PIRQ, NULL, 0, EINVAL, "out of range");
	raw_expect_alive();
	raw_set_intx_irqfd(0, PIRQ, &bad, 1, EINVAL, "eventfd");
	raw_expect_alive();
	raw_set_intx_irqfd(0, PIRQ, mixed, 2, EINVAL, "eventfd");
	raw_expect_alive();

	/* The same message done right is accepted, and removal gives the fds back. */
	raw_set_intx_irqfd(0, PIRQ, e, 2, 0, NULL);
	remote_expect_fds(&rem, rem.baseline_fds + 2);
	raw_set_intx_irqfd(0, PIRQ, NULL, 0, 0, NULL);
	raw_expect_alive();

	close(bad);
	close(spare);
	for (int i = 0; i < 3; i++)
		close(e[i]);
}
END_TEST

START_TEST(raw_set_irqs_refused)
{
	int e[2] = { testutil_eventfd(), testutil_eventfd() };
	protobuf_c_boolean two_values[2] = { 1, 1 };
	int32_t twice[2] = { 0, 0 }, one_slot[1] = { 0 }, none_slot[1] = { -1 };
	int32_t out_of_range[1] = { 1 }, below[1] = { -2 }, two_slots[2] = { 0, 1 };

	/* Bool data with a value count that does not match count. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_BOOL,
					 .count = 1,
					 .n_values = 2,
					 .values = two_values },
		     NULL, 0, EINVAL, "bool values for count");
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_INTX,
					 .action = MPDEV_IRQ_ACTION_UNMASK,
					 .data = DATA_BOOL,
					 .count = 1 },
		     NULL, 0, EINVAL, "bool values for count");
	raw_expect_alive();
	/* Bool data carrying a descriptor. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_BOOL,
					 .count = 1,
					 .n_values = 1,
					 .values = two_values },
		     e, 1, EINVAL, NULL);
	raw_expect_alive();
	/* None data carrying values, slots or descriptors. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_NONE,
					 .count = 1 },
		     e, 1, EINVAL, "carries no");
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_NONE,
					 .count = 1,
					 .n_values = 1,
					 .values = two_values },
		     NULL, 0, EINVAL, "carries no");
	raw_expect_alive();

	/* Eventfd data: a descriptor named twice. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 2,
					 .n_slots = 2,
					 .slots = twice },
		     e, 1, EINVAL, "names descriptor");
	raw_expect_alive();
	/* A carried descriptor no slot names. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 1,
					 .slots = one_slot },
		     e, 2, EINVAL, "not used");
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 1,
					 .slots = none_slot },
		     e, 1, EINVAL, "not used");
	raw_expect_alive();
	/* A slot naming a descriptor that is not there, or below -1. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 1,
					 .slots = out_of_range },
		     e, 1, EINVAL, "names descriptor");
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 1,
					 .slots = below },
		     NULL, 0, EINVAL, "names descriptor");
	raw_expect_alive();
	/* Slot count not matching count. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 2,
					 .slots = two_slots },
		     e, 2, EINVAL, "fd slots for count");
	raw_expect_alive();
	/* Well-formed, but two vectors where edu has one: refused after the fds were taken. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .start = 0,
					 .count = 2,
					 .n_slots = 2,
					 .slots = two_slots },
		     e, 2, EINVAL, "the device has 1");
	raw_expect_alive();
	/* Unknown data type, and a count far past any device. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = 7,
					 .count = 1 },
		     NULL, 0, EINVAL, NULL);
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_NONE,
					 .count = 0xffffffffu },
		     NULL, 0, EINVAL, NULL);
	raw_expect_alive();
	/* Count 0 is a disable only with TRIGGER and no data. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_MASK,
					 .data = DATA_NONE,
					 .count = 0 },
		     NULL, 0, EINVAL, "count 0");
	raw_expect_alive();
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 0 },
		     NULL, 0, EINVAL, "count 0");
	raw_expect_alive();

	/* Done right, the same request is accepted, and disabling gives the fd back. */
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_EVENTFD,
					 .count = 1,
					 .n_slots = 1,
					 .slots = one_slot },
		     e, 1, 0, NULL);
	remote_expect_fds(&rem, rem.baseline_fds + 1);
	raw_set_irqs(&(struct raw_irqs){ .index = MPDEV_IRQ_MSI,
					 .action = MPDEV_IRQ_ACTION_TRIGGER,
					 .data = DATA_NONE,
					 .count = 0 },
		     NULL, 0, 0, NULL);
	raw_expect_alive();

	close(e[0]);
	close(e[1]);
}
END_TEST

static Suite *interrupts_suite(void)
{
	Suite *s = suite_create("interrupts");
	TCase *tc = tcase_create("libmpdev");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, raise_signals_the_irqfd_once);
	tcase_add_test(tc, ack_then_eoi_is_quiet);
	tcase_add_test(tc, eoi_without_ack_reasserts_until_acked);
	tcase_add_test(tc, reset_drops_the_line);
	tcase_add_test(tc, msi_enabled_takes_over_from_intx);
	tcase_add_test(tc, intx_disable_gates_the_line);
	tcase_add_test(tc, factorial_and_dma_completion_raise_intx);
	tcase_add_test(tc, replacing_the_pair_while_asserted);
	tcase_add_test(tc, rerouting_moves_the_level);
	tcase_add_test(tc, vfio_intx_is_automasked);
	tcase_add_test(tc, msi_mask_keeps_the_message_pending);
	tcase_add_test(tc, bad_descriptors_refused);
	tcase_add_test(tc, bad_ranges_refused);
	tcase_add_test(tc, remote_copies_outlive_the_vmm_copies);
	tcase_add_test(tc, disconnect_with_everything_set_up);
	suite_add_tcase(s, tc);

	tc = tcase_create("raw");
	tcase_add_checked_fixture(tc, raw_start, raw_stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, raw_set_intx_irqfd_refused);
	tcase_add_test(tc, raw_set_irqs_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(interrupts_suite());
}
