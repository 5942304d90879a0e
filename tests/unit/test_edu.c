/*
 * The emulated edu device against a fake host: guest RAM is a local array,
 * interrupts are recorded. Offsets and values are spelled out rather than
 * taken from edu.h, so a wrong constant there fails here.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "edu.h"
#include "log.h"

#define RAM_SIZE 0x10000
#define BUF	 0x40000ull /* device buffer, in BAR offsets */

struct fake_host {
	struct backend_host ops;
	uint8_t ram[RAM_SIZE];
	bool fail; /* every call fails with -ENOSYS, as before the memory table exists */
	int dma_calls;
	uint64_t last_gpa;
	int intx_calls;
	bool intx;
	int msi_calls;
	unsigned msi_index, msi_vector;
};

static struct fake_host host;
static struct event_base *base;
static struct backend *dev;

static struct fake_host *to_fake(struct backend_host *h)
{
	return (struct fake_host *)h;
}

static int fake_ram_check(struct fake_host *f, uint64_t gpa, size_t len, struct mpdev_error *err)
{
	f->dma_calls++;
	f->last_gpa = gpa;
	if (f->fail)
		return mpdev_error_set(err, ENOSYS, "memory table not implemented");
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return mpdev_error_set(err, EFAULT, "0x%llx+0x%zx outside RAM",
				       (unsigned long long)gpa, len);
	return 0;
}

static int fake_dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
			 struct mpdev_error *err)
{
	struct fake_host *f = to_fake(h);
	int r = fake_ram_check(f, gpa, len, err);

	/* A failed read may have filled part of the buffer: the device must not use it. */
	if (r < 0)
		memset(buf, 0xee, len);
	else
		memcpy(buf, f->ram + gpa, len);
	return r;
}

static int fake_dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
			  struct mpdev_error *err)
{
	struct fake_host *f = to_fake(h);
	int r = fake_ram_check(f, gpa, len, err);

	if (r == 0)
		memcpy(f->ram + gpa, buf, len);
	return r;
}

static int fake_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	struct fake_host *f = to_fake(h);

	ck_assert_uint_eq(pin, 0);
	f->intx_calls++;
	if (f->fail)
		return mpdev_error_set(err, ENOSYS, "IOHUB not implemented");
	f->intx = level;
	return 0;
}

static int fake_signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			      struct mpdev_error *err)
{
	struct fake_host *f = to_fake(h);

	f->msi_calls++;
	f->msi_index = irq_index;
	f->msi_vector = vector;
	if (f->fail)
		return mpdev_error_set(err, ENOSYS, "IOHUB not implemented");
	return 0;
}

static void setup(void)
{
	struct mpdev_error err = { 0 };

	memset(&host, 0, sizeof(host));
	host.ops.dma_read = fake_dma_read;
	host.ops.dma_write = fake_dma_write;
	host.ops.set_intx = fake_set_intx;
	host.ops.signal_vector = fake_signal_vector;
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(edu_create(base, &host.ops, &dev, &err), 0);
}

static void teardown(void)
{
	if (dev)
		dev->ops->destroy(dev);
	dev = NULL;
	event_base_free(base);
}

static void run_loop(void)
{
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(event_base_loop(base, EVLOOP_NONBLOCK), 0);
}

static uint64_t region_rd(uint32_t index, uint64_t off, uint32_t size)
{
	struct mpdev_error err = { 0 };
	uint8_t buf[8] = { 0 };
	uint64_t v = 0;

	ck_assert_int_eq(dev->ops->region_read(dev, index, off, buf, size, &err), 0);
	for (uint32_t i = 0; i < size; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	return v;
}

static void region_wr(uint32_t index, uint64_t off, uint32_t size, uint64_t val)
{
	struct mpdev_error err = { 0 };
	uint8_t buf[8];

	for (uint32_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	ck_assert_int_eq(dev->ops->region_write(dev, index, off, buf, size, &err), 0);
}

static uint64_t bar_rd(uint64_t off, uint32_t size)
{
	return region_rd(BACKEND_REGION_BAR0, off, size);
}

static void bar_wr(uint64_t off, uint32_t size, uint64_t val)
{
	region_wr(BACKEND_REGION_BAR0, off, size, val);
}

static uint32_t rd32(uint64_t off)
{
	return (uint32_t)bar_rd(off, 4);
}

static void wr32(uint64_t off, uint32_t val)
{
	bar_wr(off, 4, val);
}

static uint32_t cfg_rd(uint64_t off, uint32_t size)
{
	return (uint32_t)region_rd(BACKEND_REGION_CONFIG, off, size);
}

static void cfg_wr(uint64_t off, uint32_t size, uint32_t val)
{
	region_wr(BACKEND_REGION_CONFIG, off, size, val);
}

static void enable_bus_master(void)
{
	cfg_wr(0x04, 2, 0x0006);
}

static void enable_msi(void)
{
	cfg_wr(0x44, 4, 0xfee00000);
	cfg_wr(0x4c, 2, 0x4041);
	cfg_wr(0x42, 2, 0x0001);
}

static void start_dma(uint64_t src, uint64_t dst, uint64_t cnt, uint32_t cmd)
{
	bar_wr(0x80, 8, src);
	bar_wr(0x88, 8, dst);
	bar_wr(0x90, 8, cnt);
	wr32(0x98, cmd);
}

static void fill(uint64_t gpa, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		host.ram[gpa + i] = (uint8_t)(seed + i * 7);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static uint32_t factorial_of(uint32_t n)
{
	wr32(0x08, n);
	run_loop();
	ck_assert_uint_eq(rd32(0x20) & 0x01, 0);
	return rd32(0x08);
}

START_TEST(test_info)
{
	struct backend_device_info info;

	memset(&info, 0xa5, sizeof(info));
	dev->ops->get_info(dev, &info);
	ck_assert_str_eq(info.name, "emu:edu");
	ck_assert_uint_eq(info.vendor_id, 0x1234);
	ck_assert_uint_eq(info.device_id, 0x11e8);
	ck_assert_uint_eq(info.subsystem_vendor_id, 0x1af4);
	ck_assert_uint_eq(info.subsystem_id, 0x1100);
	ck_assert_uint_eq(info.class_code, 0x00ff00);
	ck_assert_uint_eq(info.revision, 0x10);
	ck_assert(info.reset_supported);
	ck_assert_uint_eq(info.regions[0].flags, BACKEND_REGION_READ | BACKEND_REGION_WRITE);
	ck_assert_uint_eq(info.regions[0].size, 1 << 20);
	ck_assert_uint_eq(info.regions[0].n_mmap, 0);
	ck_assert_uint_eq(info.regions[7].flags, BACKEND_REGION_READ | BACKEND_REGION_WRITE);
	ck_assert_uint_eq(info.regions[7].size, 256);
	for (int i = 1; i < 7; i++) {
		ck_assert_uint_eq(info.regions[i].flags, 0);
		ck_assert_uint_eq(info.regions[i].size, 0);
	}
	ck_assert_uint_eq(info.regions[8].size, 0);
	ck_assert_uint_eq(info.irqs[0].count, 1);
	ck_assert_uint_eq(info.irqs[0].flags & BACKEND_IRQ_EVENTFD, BACKEND_IRQ_EVENTFD);
	ck_assert_uint_eq(info.irqs[1].count, 1);
	ck_assert_uint_eq(info.irqs[1].flags & BACKEND_IRQ_EVENTFD, BACKEND_IRQ_EVENTFD);
	ck_assert_uint_eq(info.irqs[2].count, 0);
	ck_assert_uint_eq(info.irqs[3].count, 0);
	ck_assert_uint_eq(info.irqs[4].count, 0);
}
END_TEST

START_TEST(test_config_space)
{
	ck_assert_uint_eq(cfg_rd(0x00, 4), 0x11e81234);
	ck_assert_uint_eq(cfg_rd(0x06, 2), 0x0010);
	ck_assert_uint_eq(cfg_rd(0x08, 4), 0x00ff0010);
	ck_assert_uint_eq(cfg_rd(0x2c, 4), 0x11001af4);
	ck_assert_uint_eq(cfg_rd(0x3d, 1), 1);
	ck_assert_uint_eq(cfg_rd(0x10, 4), 0);
	cfg_wr(0x10, 4, 0xffffffff);
	ck_assert_uint_eq(cfg_rd(0x10, 4), 0xfff00000);
	ck_assert_uint_eq(cfg_rd(0x14, 4), 0); /* no BAR 1 */
	/* MSI at 0x40, last in the list, 64-bit, one vector. */
	ck_assert_uint_eq(cfg_rd(0x34, 1), 0x40);
	ck_assert_uint_eq(cfg_rd(0x40, 4), 0x00800005);
}
END_TEST

START_TEST(test_create_errors)
{
	struct backend_host partial = host.ops;
	struct backend *b = NULL;
	struct mpdev_error err = { 0 };

	ck_assert_int_eq(edu_create(NULL, &host.ops, &b, &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_str_ne(err.msg, "");
	partial.signal_vector = NULL;
	ck_assert_int_eq(edu_create(base, &partial, &b, &err), -EINVAL);
	ck_assert_ptr_null(b);
}
END_TEST

START_TEST(test_ident_liveness)
{
	ck_assert_uint_eq(rd32(0x00), 0x010000ed);
	wr32(0x00, 0);
	ck_assert_uint_eq(rd32(0x00), 0x010000ed);
	ck_assert_uint_eq(rd32(0x04), 0);
	wr32(0x04, 0x12345678);
	ck_assert_uint_eq(rd32(0x04), 0xedcba987);
	wr32(0x04, 0xffffffff);
	ck_assert_uint_eq(rd32(0x04), 0);
}
END_TEST

START_TEST(test_factorial)
{
	wr32(0x08, 10);
	ck_assert_uint_eq(rd32(0x20) & 0x01, 0x01);
	ck_assert_uint_eq(rd32(0x08), 10); /* the operand until done */
	/* Ignored while computing. */
	wr32(0x08, 3);
	run_loop();
	ck_assert_uint_eq(rd32(0x20) & 0x01, 0);
	ck_assert_uint_eq(rd32(0x08), 3628800);

	ck_assert_uint_eq(factorial_of(0), 1);
	ck_assert_uint_eq(factorial_of(1), 1);
	ck_assert_uint_eq(factorial_of(12), 479001600);
	ck_assert_uint_eq(factorial_of(13), 1932053504); /* 6227020800 mod 2^32 */
	ck_assert_uint_eq(factorial_of(20), 2192834560u);
	ck_assert_uint_eq(factorial_of(33), 2147483648u);
	ck_assert_uint_eq(factorial_of(34), 0);
	ck_assert_uint_eq(factorial_of(0xffffffff), 0);
	/* No interrupt unless asked for. */
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert_int_eq(host.intx_calls, 0);
}
END_TEST

START_TEST(test_access_sizes)
{
	struct mpdev_error err = { 0 };
	uint8_t buf[16];

	ck_assert_uint_eq(bar_rd(0x00, 1), 0xff);
	ck_assert_uint_eq(bar_rd(0x00, 2), 0xffff);
	ck_assert_uint_eq(bar_rd(0x00, 8), ~0ull);
	ck_assert_uint_eq(bar_rd(0x02, 4), 0xffffffff); /* not a register */
	ck_assert_uint_eq(bar_rd(0x0c, 4), 0xffffffff);
	ck_assert_uint_eq(bar_rd(0x40000, 4), 0xffffffff); /* buffer is not in BAR0 */
	ck_assert_uint_eq(bar_rd(0xffffc, 4), 0xffffffff);

	wr32(0x04, 0);
	bar_wr(0x04, 2, 0xffff);
	bar_wr(0x04, 1, 0xff);
	bar_wr(0x04, 8, 0);
	ck_assert_uint_eq(rd32(0x04), 0xffffffff);
	bar_wr(0x08, 2, 5);
	ck_assert_uint_eq(rd32(0x20), 0);

	/* From 0x80 on, 8-byte accesses too; 4-byte writes replace the whole register. */
	bar_wr(0x80, 8, 0x1122334455667788ull);
	ck_assert_uint_eq(bar_rd(0x80, 8), 0x1122334455667788ull);
	ck_assert_uint_eq(bar_rd(0x80, 4), 0x55667788);
	ck_assert_uint_eq(bar_rd(0x84, 4), 0xffffffff);
	ck_assert_uint_eq(bar_rd(0x80, 2), 0xffff);
	bar_wr(0x80, 2, 0);
	ck_assert_uint_eq(bar_rd(0x80, 8), 0x1122334455667788ull);
	bar_wr(0x80, 4, 0xaabbccdd);
	ck_assert_uint_eq(bar_rd(0x80, 8), 0xaabbccddull);

	/* Outside the region or wider than any access: refused with a reason. */
	ck_assert_int_eq(dev->ops->region_read(dev, 0, 0xffffe, buf, 4, &err), -EINVAL);
	ck_assert_int_eq(err.code, EINVAL);
	ck_assert_int_eq(dev->ops->region_read(dev, 0, 0, buf, 16, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_write(dev, 0, 1ull << 40, buf, 4, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_read(dev, 1, 0, buf, 4, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_read(dev, 9, 0, buf, 4, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_read(dev, 7, 0, buf, 8, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_read(dev, 7, 0, buf, 3, &err), -EINVAL);
	ck_assert_int_eq(dev->ops->region_write(dev, 7, 0xfe, buf, 4, &err), -EINVAL);
	ck_assert_str_ne(err.msg, "");
}
END_TEST

START_TEST(test_irq_intx)
{
	wr32(0x60, 0x4);
	ck_assert_uint_eq(rd32(0x24), 0x4);
	ck_assert(host.intx);
	ck_assert_int_eq(host.intx_calls, 1);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0x08);

	wr32(0x60, 0x10);
	ck_assert_uint_eq(rd32(0x24), 0x14);
	ck_assert_int_eq(host.intx_calls, 1); /* already asserted */

	wr32(0x24, 0); /* read-only */
	ck_assert_uint_eq(rd32(0x24), 0x14);
	ck_assert_uint_eq(rd32(0x60), 0xffffffff); /* write-only */

	wr32(0x64, 0x4);
	ck_assert_uint_eq(rd32(0x24), 0x10);
	ck_assert(host.intx);
	wr32(0x64, 0x10);
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert(!host.intx);
	ck_assert_int_eq(host.intx_calls, 2);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0);
	ck_assert_int_eq(host.msi_calls, 0);
}
END_TEST

START_TEST(test_intx_disable)
{
	cfg_wr(0x04, 2, 0x0400);
	wr32(0x60, 0x1);
	ck_assert_int_eq(host.intx_calls, 0);
	/* The device still says it wants service. */
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0x08);

	cfg_wr(0x04, 2, 0x0000);
	ck_assert(host.intx);
	ck_assert_int_eq(host.intx_calls, 1);
	cfg_wr(0x04, 2, 0x0400);
	ck_assert(!host.intx);
	ck_assert_int_eq(host.intx_calls, 2);

	wr32(0x64, 0x1);
	ck_assert_int_eq(host.intx_calls, 2);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0);
	cfg_wr(0x04, 2, 0x0000);
	ck_assert_int_eq(host.intx_calls, 2);
	ck_assert(!host.intx);
}
END_TEST

/*
 * What Linux's uio_pci_generic does with config space, access for access:
 * pci_intx_mask_supported() at bind (toggle Interrupt Disable, read it
 * back, status untouched), then per interrupt pci_check_and_mask_intx() in
 * the handler (one dword read of command + status; mask only if Interrupt
 * Status is set) and, from user space, clearing Interrupt Disable again.
 * A device whose status bit did not follow its line would have its
 * interrupts called spurious and the line disabled by the kernel.
 */
START_TEST(test_intx_uio_pci_generic_cycle)
{
	uint32_t dword;

	/* Bind: the bit toggles both ways and the status word stays as it was. */
	cfg_wr(0x04, 2, 0x0400);
	ck_assert_uint_eq(cfg_rd(0x04, 4), 0x00100400);
	cfg_wr(0x04, 2, 0x0000);
	ck_assert_uint_eq(cfg_rd(0x04, 4), 0x00100000);

	for (int round = 0; round < 3; round++) {
		wr32(0x60, 0x1);
		ck_assert(host.intx);
		/* The handler's dword read: our interrupt (status bit 3 = dword bit 19). */
		dword = cfg_rd(0x04, 4);
		ck_assert_uint_eq(dword & 0x00080000, 0x00080000);
		ck_assert_uint_eq(dword & 0x0400, 0);
		cfg_wr(0x04, 2, (dword & 0xffff) | 0x0400);
		ck_assert(!host.intx);
		/* Masked, the device still holds its line and says so. */
		ck_assert_uint_eq(cfg_rd(0x04, 4) & 0x00080400, 0x00080400);

		wr32(0x64, 0x1);
		ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0);
		cfg_wr(0x04, 2, cfg_rd(0x04, 2) & ~0x0400u);
		ck_assert(!host.intx);
	}
	ck_assert_int_eq(host.intx_calls, 6);

	/* Unmasked while still asserted: the line comes back at once. */
	wr32(0x60, 0x2);
	cfg_wr(0x04, 2, 0x0400);
	ck_assert(!host.intx);
	cfg_wr(0x04, 2, 0x0000);
	ck_assert(host.intx);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0x08);
	/* A dword write of command + status with bit 3 set cannot clear it (read-only). */
	cfg_wr(0x04, 4, 0x00080000);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0x08);
	ck_assert(host.intx);
	wr32(0x64, 0x2);
	ck_assert(!host.intx);
	ck_assert_uint_eq(cfg_rd(0x06, 2) & 0x08, 0);
}
END_TEST

START_TEST(test_msi_routes_to_signal_vector)
{
	enable_msi();
	wr32(0x60, 0x1);
	ck_assert_int_eq(host.msi_calls, 1);
	ck_assert_uint_eq(host.msi_index, BACKEND_IRQ_MSI);
	ck_assert_uint_eq(host.msi_vector, 0);
	/* Every raise sends a message, as QEMU's edu does. */
	wr32(0x60, 0x2);
	ck_assert_int_eq(host.msi_calls, 2);
	wr32(0x64, 0x3);
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert_int_eq(host.intx_calls, 0);
	ck_assert(!host.intx);
	/* Nothing pending, nothing raised: no message. */
	wr32(0x60, 0);
	ck_assert_int_eq(host.msi_calls, 2);
}
END_TEST

START_TEST(test_msi_enable_drops_intx)
{
	wr32(0x60, 0x1);
	ck_assert(host.intx);
	enable_msi();
	ck_assert(!host.intx);
	wr32(0x64, 0x1);
	cfg_wr(0x42, 2, 0x0000);
	ck_assert(!host.intx);
	ck_assert_int_eq(host.msi_calls, 0);
}
END_TEST

START_TEST(test_host_irq_failure)
{
	host.fail = true;
	wr32(0x60, 0x1);
	ck_assert_int_eq(host.intx_calls, 1);
	ck_assert_uint_eq(rd32(0x24), 0x1);
	wr32(0x64, 0x1);
	ck_assert_int_eq(host.intx_calls, 2);
	enable_msi();
	wr32(0x60, 0x1);
	ck_assert_int_eq(host.msi_calls, 1);
	ck_assert_uint_eq(rd32(0x24), 0x1);
}
END_TEST

START_TEST(test_factorial_irq)
{
	wr32(0x20, 0xff); /* only bit 7 is writable */
	ck_assert_uint_eq(rd32(0x20), 0x80);
	wr32(0x08, 5);
	ck_assert_uint_eq(rd32(0x20), 0x81);
	ck_assert_int_eq(host.intx_calls, 0);
	run_loop();
	ck_assert_uint_eq(rd32(0x20), 0x80);
	ck_assert_uint_eq(rd32(0x08), 120);
	ck_assert_uint_eq(rd32(0x24), 0x1);
	ck_assert(host.intx);
	wr32(0x64, 0x1);
	ck_assert(!host.intx);

	wr32(0x20, 0);
	ck_assert_uint_eq(rd32(0x20), 0);
	ck_assert_uint_eq(factorial_of(4), 24);
	ck_assert_uint_eq(rd32(0x24), 0);
}
END_TEST

START_TEST(test_dma_round_trip)
{
	enable_bus_master();
	fill(0x1000, 256, 3);

	start_dma(0x1000, BUF + 0x10, 256, 0x1);
	ck_assert_uint_eq(rd32(0x98), 0x1); /* running until the loop gets to it */
	ck_assert_int_eq(host.dma_calls, 0);
	run_loop();
	ck_assert_uint_eq(rd32(0x98), 0x0);
	ck_assert_int_eq(host.dma_calls, 1);
	ck_assert_uint_eq(rd32(0x24), 0); /* not asked for */
	ck_assert_int_eq(host.intx_calls, 0);

	start_dma(BUF + 0x10, 0x3000, 256, 0x1 | 0x2 | 0x4);
	run_loop();
	ck_assert_int_eq(memcmp(host.ram + 0x3000, host.ram + 0x1000, 256), 0);
	ck_assert_uint_eq(host.ram[0x3000 + 256], 0);
	ck_assert_uint_eq(host.ram[0x3000 - 1], 0);
	ck_assert_uint_eq(rd32(0x98), 0x6);
	ck_assert_uint_eq(rd32(0x24), 0x100);
	ck_assert(host.intx);

	/* Partial copy from the middle: the buffer kept its offsets. */
	start_dma(BUF + 0x20, 0x4000, 16, 0x1 | 0x2);
	run_loop();
	ck_assert_int_eq(memcmp(host.ram + 0x4000, host.ram + 0x1010, 16), 0);
}
END_TEST

START_TEST(test_dma_whole_buffer)
{
	enable_bus_master();
	fill(0x2000, 4096, 11);
	start_dma(0x2000, BUF, 4096, 0x1);
	run_loop();
	start_dma(BUF, 0x8000, 4096, 0x1 | 0x2);
	run_loop();
	ck_assert_int_eq(memcmp(host.ram + 0x8000, host.ram + 0x2000, 4096), 0);
	ck_assert_int_eq(host.dma_calls, 2);
}
END_TEST

START_TEST(test_dma_address_mask)
{
	enable_bus_master();
	fill(0x2000, 64, 5);
	/* Only bits 27:0 reach RAM, as with QEMU's default dma_mask. */
	start_dma(0x12f0002000ull, BUF, 64, 0x1);
	run_loop();
	ck_assert_uint_eq(host.last_gpa, 0x2000);
	start_dma(BUF, 0xfff0005000ull, 64, 0x1 | 0x2);
	run_loop();
	ck_assert_uint_eq(host.last_gpa, 0x5000);
	ck_assert_int_eq(memcmp(host.ram + 0x5000, host.ram + 0x2000, 64), 0);
	/* The registers keep what was written. */
	ck_assert_uint_eq(bar_rd(0x88, 8), 0xfff0005000ull);
}
END_TEST

START_TEST(test_dma_bad_device_range)
{
	enable_bus_master();
	fill(0x1000, 16, 1);
	fill(0x2000, 16, 99);
	start_dma(0x1000, BUF + 0xff0, 16, 0x1); /* exactly the last 16 bytes: fine */
	run_loop();
	ck_assert_int_eq(host.dma_calls, 1);

	start_dma(0x2000, BUF + 0xff8, 16, 0x1 | 0x4); /* runs past the end */
	run_loop();
	start_dma(0x2000, BUF - 8, 16, 0x1 | 0x4); /* starts below */
	run_loop();
	start_dma(0x2000, BUF + 0x10, UINT64_MAX, 0x1 | 0x4); /* wraps */
	run_loop();
	start_dma(BUF + 0x1000, 0x6000, 1, 0x1 | 0x2 | 0x4); /* starts past the end */
	run_loop();
	ck_assert_int_eq(host.dma_calls, 1);
	ck_assert_uint_eq(rd32(0x98), 0x6); /* finished */
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert_int_eq(host.intx_calls, 0);
	ck_assert(all_zero(host.ram + 0x6000, 16));

	/* The buffer still holds the first transfer. */
	start_dma(BUF + 0xff0, 0x7000, 16, 0x1 | 0x2);
	run_loop();
	ck_assert_int_eq(memcmp(host.ram + 0x7000, host.ram + 0x1000, 16), 0);
}
END_TEST

START_TEST(test_dma_host_failure)
{
	enable_bus_master();
	fill(0x1000, 64, 42);
	host.fail = true;
	start_dma(0x1000, BUF, 64, 0x1 | 0x4);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 1);
	ck_assert_uint_eq(rd32(0x98), 0x4);
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert_int_eq(host.intx_calls, 0);

	start_dma(BUF, 0x3000, 64, 0x1 | 0x2 | 0x4);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 2);
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert(all_zero(host.ram + 0x3000, 64));

	/* Nothing of the failed read reached the device buffer. */
	host.fail = false;
	start_dma(BUF, 0x3000, 64, 0x1 | 0x2);
	run_loop();
	ck_assert(all_zero(host.ram + 0x3000, 64));

	/* A RAM address the host rejects fails the same way. */
	start_dma(RAM_SIZE - 8, BUF, 16, 0x1 | 0x4);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 4);
	ck_assert_uint_eq(rd32(0x24), 0);
}
END_TEST

START_TEST(test_dma_needs_bus_master)
{
	fill(0x1000, 16, 1);
	start_dma(0x1000, BUF, 16, 0x1 | 0x4);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 0);
	ck_assert_uint_eq(rd32(0x98), 0x4);
	ck_assert_uint_eq(rd32(0x24), 0);

	cfg_wr(0x04, 2, 0x0004);
	start_dma(0x1000, BUF, 16, 0x1 | 0x4);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 1);
	ck_assert_uint_eq(rd32(0x24), 0x100);
}
END_TEST

START_TEST(test_dma_registers_frozen_while_running)
{
	enable_bus_master();
	fill(0x1000, 32, 8);
	start_dma(0x1000, BUF, 32, 0x1);
	bar_wr(0x80, 8, 0x5000);
	bar_wr(0x88, 8, BUF + 0x100);
	bar_wr(0x90, 4, 1);
	wr32(0x98, 0x1 | 0x2 | 0x4);
	ck_assert_uint_eq(bar_rd(0x80, 8), 0x1000);
	ck_assert_uint_eq(bar_rd(0x90, 8), 32);
	ck_assert_uint_eq(rd32(0x98), 0x1);
	run_loop();
	ck_assert_int_eq(host.dma_calls, 1);
	ck_assert_uint_eq(rd32(0x24), 0);

	/* A command without the start bit does nothing at all. */
	wr32(0x98, 0x2 | 0x4);
	ck_assert_uint_eq(rd32(0x98), 0x0);
	bar_wr(0x80, 8, 0x5000);
	ck_assert_uint_eq(bar_rd(0x80, 8), 0x5000);
}
END_TEST

START_TEST(test_reset)
{
	struct mpdev_error err = { 0 };
	int dma_calls;

	enable_bus_master();
	enable_msi();
	cfg_wr(0x10, 4, 0xfe000000);
	cfg_wr(0x3c, 1, 11);
	cfg_wr(0x42, 2, 0x0000);
	wr32(0x04, 0x1);
	wr32(0x60, 0x8);
	ck_assert(host.intx);
	fill(0x1000, 32, 77);
	start_dma(0x1000, BUF, 32, 0x1);
	run_loop();
	wr32(0x20, 0x80);
	wr32(0x08, 6);
	start_dma(0x1000, BUF + 0x40, 32, 0x1 | 0x4);
	dma_calls = host.dma_calls;

	ck_assert_int_eq(dev->ops->reset(dev, &err), 0);
	ck_assert(!host.intx);
	ck_assert_uint_eq(rd32(0x04), 0);
	ck_assert_uint_eq(rd32(0x08), 0);
	ck_assert_uint_eq(rd32(0x20), 0);
	ck_assert_uint_eq(rd32(0x24), 0);
	for (uint64_t off = 0x80; off < 0xa0; off += 8)
		ck_assert_uint_eq(bar_rd(off, 8), 0);
	ck_assert_uint_eq(cfg_rd(0x04, 4), 0x00100000);
	ck_assert_uint_eq(cfg_rd(0x10, 4), 0);
	ck_assert_uint_eq(cfg_rd(0x3c, 2), 0x0100);
	ck_assert_uint_eq(cfg_rd(0x42, 2), 0x0080);
	ck_assert_uint_eq(cfg_rd(0x44, 4), 0);
	ck_assert_uint_eq(cfg_rd(0x00, 4), 0x11e81234);

	/* Cancelled work stays cancelled: no result, no transfer, no interrupt. */
	run_loop();
	ck_assert_uint_eq(rd32(0x08), 0);
	ck_assert_uint_eq(rd32(0x24), 0);
	ck_assert_int_eq(host.dma_calls, dma_calls);
	ck_assert(!host.intx);

	/* The buffer is back to zeros. */
	enable_bus_master();
	start_dma(BUF, 0x3000, 32, 0x1 | 0x2);
	run_loop();
	ck_assert(all_zero(host.ram + 0x3000, 32));
	ck_assert_uint_eq(factorial_of(5), 120);
}
END_TEST

START_TEST(test_destroy_with_pending_work)
{
	enable_bus_master();
	wr32(0x20, 0x80);
	wr32(0x08, 7);
	start_dma(0x1000, BUF, 32, 0x1 | 0x4);
	dev->ops->destroy(dev);
	dev = NULL;
	run_loop();
	ck_assert_int_eq(host.dma_calls, 0);
	ck_assert_int_eq(host.intx_calls, 0);
}
END_TEST

static Suite *edu_suite(void)
{
	Suite *s = suite_create("edu");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_info);
	tcase_add_test(tc, test_config_space);
	tcase_add_test(tc, test_create_errors);
	tcase_add_test(tc, test_ident_liveness);
	tcase_add_test(tc, test_factorial);
	tcase_add_test(tc, test_access_sizes);
	tcase_add_test(tc, test_irq_intx);
	tcase_add_test(tc, test_intx_disable);
	tcase_add_test(tc, test_intx_uio_pci_generic_cycle);
	tcase_add_test(tc, test_msi_routes_to_signal_vector);
	tcase_add_test(tc, test_msi_enable_drops_intx);
	tcase_add_test(tc, test_host_irq_failure);
	tcase_add_test(tc, test_factorial_irq);
	tcase_add_test(tc, test_dma_round_trip);
	tcase_add_test(tc, test_dma_whole_buffer);
	tcase_add_test(tc, test_dma_address_mask);
	tcase_add_test(tc, test_dma_bad_device_range);
	tcase_add_test(tc, test_dma_host_failure);
	tcase_add_test(tc, test_dma_needs_bus_master);
	tcase_add_test(tc, test_dma_registers_frozen_while_running);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_destroy_with_pending_work);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(edu_suite());
	int failed;

	/* Refused DMAs and failing hosts warn by design; keep the test output readable. */
	log_set_level(MPDEV_LOG_ERROR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
