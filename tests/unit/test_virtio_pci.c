/*
 * The virtio-pci transport against a fake host that records interrupts, and
 * a fake device that records notifications and resets. Offsets are spelled
 * out (virtio spec 1.2 §4.1), so a wrong constant in virtio_pci.h fails here.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "virtio_pci.h"

struct fake {
	struct backend_host ops;
	bool intx;
	int intx_calls;
	int vec_calls;
	unsigned last_vector;
	int notifies, resets;
	unsigned last_queue;
};

static struct fake host;
static struct virtio_pci vp;

static int f_set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	(void)h;
	(void)pin;
	(void)err;
	host.intx = level;
	host.intx_calls++;
	return 0;
}

static int f_signal(struct backend_host *h, unsigned index, unsigned vector,
		    struct mpdev_error *err)
{
	(void)h;
	(void)err;
	ck_assert_uint_eq(index, BACKEND_IRQ_MSIX);
	host.vec_calls++;
	host.last_vector = vector;
	return 0;
}

static void d_notify(void *opaque, unsigned q)
{
	(void)opaque;
	host.notifies++;
	host.last_queue = q;
}

static void d_reset(void *opaque)
{
	(void)opaque;
	host.resets++;
}

static void setup(void)
{
	struct virtio_pci_dev d = {
		.name = "test",
		.virtio_id = 2,
		.class_code = 0x018000,
		.features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(9),
		.num_queues = 3,
		.queue_max_size = 64,
		.config_size = 8,
		.queue_notify = d_notify,
		.reset = d_reset,
	};
	struct mpdev_error err = { 0 };

	log_set_level(MPDEV_LOG_ERROR);
	memset(&host, 0, sizeof(host));
	host.ops.set_intx = f_set_intx;
	host.ops.signal_vector = f_signal;
	ck_assert_int_eq(virtio_pci_init(&vp, &d, &host.ops, &err), 0);
}

static uint64_t rd(uint32_t index, uint64_t off, uint32_t size)
{
	struct mpdev_error err = { 0 };
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	ck_assert_int_eq(virtio_pci_region_read(&vp, index, off, b, size, &err), 0);
	for (uint32_t i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void wr(uint32_t index, uint64_t off, uint32_t size, uint64_t v)
{
	struct mpdev_error err = { 0 };
	uint8_t b[8];

	for (uint32_t i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	ck_assert_int_eq(virtio_pci_region_write(&vp, index, off, b, size, &err), 0);
}

#define CFG  BACKEND_REGION_CONFIG
#define BAR0 BACKEND_REGION_BAR0
#define BAR2 (BACKEND_REGION_BAR0 + 2)

START_TEST(layout)
{
	static const struct {
		uint8_t off, type;
		uint32_t offset;
	} caps[] = { { 0x40, 1, 0x0000 },
		     { 0x50, 2, 0x3000 },
		     { 0x64, 3, 0x1000 },
		     { 0x74, 4, 0x2000 },
		     { 0x84, 5, 0 } };
	struct backend_device_info info = { 0 };

	ck_assert_uint_eq(rd(CFG, 0, 2), 0x1af4);
	ck_assert_uint_eq(rd(CFG, 2, 2), 0x1042);
	ck_assert_uint_eq(rd(CFG, 8, 1), 1);
	ck_assert_uint_eq(rd(CFG, 9, 4) & 0xffffff, 0x018000);
	ck_assert_uint_eq(rd(CFG, 0x2c, 4), 0x11001af4);
	ck_assert_uint_eq(rd(CFG, 0x34, 1), 0x40);
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_uint_eq(rd(CFG, caps[i].off, 1), 0x09);
		ck_assert_uint_eq(rd(CFG, caps[i].off + 1, 1), i < 4 ? caps[i + 1].off : 0x98);
		ck_assert_uint_eq(rd(CFG, caps[i].off + 3, 1), caps[i].type);
		ck_assert_uint_eq(rd(CFG, caps[i].off + 4, 1), 0);
		ck_assert_uint_eq(rd(CFG, caps[i].off + 8, 4), caps[i].offset);
	}
	ck_assert_uint_eq(rd(CFG, 0x50 + 12, 4), 3 * 4); /* notify length: 3 queues */
	ck_assert_uint_eq(rd(CFG, 0x50 + 16, 4), 4);
	ck_assert_uint_eq(rd(CFG, 0x98, 1), 0x11);
	ck_assert_uint_eq(rd(CFG, 0x99, 1), 0);
	ck_assert_uint_eq(rd(CFG, 0x9a, 2), 3); /* table size 4: 3 queues + config */
	ck_assert_uint_eq(rd(CFG, 0x9c, 4), 0x2);
	ck_assert_uint_eq(rd(CFG, 0xa0, 4), 0x802);
	virtio_pci_get_info(&vp, &info);
	ck_assert_uint_eq(info.irqs[BACKEND_IRQ_MSIX].count, 4);
	ck_assert_uint_eq(info.regions[BAR0].size, 0x4000);
	ck_assert_uint_eq(info.regions[BAR2].size, 0x1000);
}
END_TEST

START_TEST(ioeventfds_one_per_queue)
{
	struct backend_ioeventfd v[8];

	ck_assert_uint_eq(virtio_pci_ioeventfds(&vp, v, 8), 3);
	for (unsigned q = 0; q < 3; q++) {
		ck_assert_uint_eq(v[q].region, BAR0);
		ck_assert_uint_eq(v[q].offset, 0x3000 + 4 * q);
		ck_assert_uint_eq(v[q].size, 2);
		ck_assert(!v[q].datamatch);
		ck_assert_uint_eq(v[q].data, q);
	}
	ck_assert_uint_eq(virtio_pci_ioeventfds(&vp, v, 2), 2);
}
END_TEST

START_TEST(widths_and_features)
{
	wr(BAR0, 0x00, 4, 1);
	ck_assert_uint_eq(rd(BAR0, 0x04, 4), 1); /* VERSION_1 in the high half */
	ck_assert_uint_eq(rd(BAR0, 0x04, 2), 0); /* not the field's width */
	ck_assert_uint_eq(rd(BAR0, 0x12, 2), 3);
	ck_assert_uint_eq(rd(BAR0, 0x12, 4), 0);
	/* FEATURES_OK with an unknown bit: refused. */
	wr(BAR0, 0x08, 4, 0);
	wr(BAR0, 0x0c, 4, (1u << 9) | (1u << 3));
	wr(BAR0, 0x08, 4, 1);
	wr(BAR0, 0x0c, 4, 1);
	wr(BAR0, 0x14, 1, 0x0b);
	ck_assert_uint_eq(rd(BAR0, 0x14, 1), 0x03);
	wr(BAR0, 0x14, 1, 0);
	ck_assert_int_eq(host.resets, 1);
	wr(BAR0, 0x08, 4, 0);
	wr(BAR0, 0x0c, 4, 1u << 9);
	wr(BAR0, 0x08, 4, 1);
	wr(BAR0, 0x0c, 4, 1);
	wr(BAR0, 0x14, 1, 0x0b);
	ck_assert_uint_eq(rd(BAR0, 0x14, 1), 0x0b);
	/* Queue fields: size defaults to the max, addresses in halves or whole. */
	wr(BAR0, 0x16, 2, 2);
	ck_assert_uint_eq(rd(BAR0, 0x18, 2), 64);
	ck_assert_uint_eq(rd(BAR0, 0x1e, 2), 2);
	wr(BAR0, 0x20, 8, 0x1122334455667788ull);
	ck_assert_uint_eq(rd(BAR0, 0x24, 4), 0x11223344);
	wr(BAR0, 0x24, 4, 0xaabbccdd);
	ck_assert_uint_eq(rd(BAR0, 0x20, 8), 0xaabbccdd55667788ull);
	wr(BAR0, 0x1a, 2, 4); /* past the table: NO_VECTOR */
	ck_assert_uint_eq(rd(BAR0, 0x1a, 2), 0xffff);
	wr(BAR0, 0x1a, 2, 3);
	ck_assert_uint_eq(rd(BAR0, 0x1a, 2), 3);
}
END_TEST

START_TEST(intx_and_isr)
{
	virtio_pci_notify_queue(&vp, 0);
	ck_assert(host.intx);
	ck_assert_uint_eq(rd(CFG, 6, 2) & 0x08, 0x08);
	wr(CFG, 4, 2, 0x0400); /* INTX_DISABLE */
	ck_assert(!host.intx);
	wr(CFG, 4, 2, 0);
	ck_assert(host.intx);
	ck_assert_uint_eq(rd(BAR0, 0x1000, 1), 1);
	ck_assert(!host.intx);
	ck_assert_uint_eq(rd(BAR0, 0x1000, 1), 0);
	ck_assert_int_eq(host.vec_calls, 0);
}
END_TEST

START_TEST(msix_vectors)
{
	wr(CFG, 0x9a, 2, 0x8000);
	wr(BAR0, 0x16, 2, 1);
	wr(BAR0, 0x1a, 2, 2);
	virtio_pci_notify_queue(&vp, 1);
	ck_assert_int_eq(host.vec_calls, 1);
	ck_assert_uint_eq(host.last_vector, 2);
	ck_assert(!host.intx);
	ck_assert_uint_eq(rd(BAR0, 0x1000, 1), 0);
	virtio_pci_notify_queue(&vp, 0); /* NO_VECTOR: nothing */
	ck_assert_int_eq(host.vec_calls, 1);
	/* The table is storage, 4 or 8 bytes per access. */
	wr(BAR2, 16, 8, 0xfee0100000000000ull);
	ck_assert_uint_eq(rd(BAR2, 16, 8), 0xfee0100000000000ull);
	ck_assert_uint_eq(rd(BAR2, 12, 4), 1); /* vector control: masked at reset */
	ck_assert_uint_eq(rd(BAR2, 0x800, 8), 0);
}
END_TEST

START_TEST(queue_errors_and_window)
{
	/* An error before DRIVER_OK: NEEDS_RESET, no interrupt. */
	wr(BAR0, 0x16, 2, 0);
	wr(BAR0, 0x18, 2, 48);
	wr(BAR0, 0x1c, 2, 1);
	ck_assert_uint_eq(rd(BAR0, 0x14, 1) & 0x40, 0x40);
	ck_assert_uint_eq(rd(BAR0, 0x1c, 2), 0);
	ck_assert(!host.intx);
	wr(BAR0, 0x14, 1, 0);
	ck_assert_uint_eq(rd(BAR0, 0x14, 1), 0);
	/* With DRIVER_OK: and a config change interrupt (ISR bit 1). */
	wr(BAR0, 0x14, 1, 0x07);
	wr(BAR0, 0x3000 + 4 * 5, 2, 5);
	ck_assert_uint_eq(rd(BAR0, 0x14, 1), 0x47);
	ck_assert(host.intx);
	ck_assert_int_eq(host.notifies, 0);
	/* The PCI cfg window: ISR through config space, read-to-clear too. */
	wr(CFG, 0x84 + 4, 1, 0);
	wr(CFG, 0x84 + 8, 4, 0x1000);
	wr(CFG, 0x84 + 12, 4, 1);
	ck_assert_uint_eq(rd(CFG, 0x84 + 16, 1), 2);
	ck_assert(!host.intx);
	ck_assert_uint_eq(rd(CFG, 0x84 + 16, 1), 0);
	/* A window naming BAR 1 or a bad length: reads 0. */
	wr(CFG, 0x84 + 4, 1, 1);
	ck_assert_uint_eq(rd(CFG, 0x84 + 16, 4), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("virtio_pci");
	TCase *tc = tcase_create("transport");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, layout);
	tcase_add_test(tc, ioeventfds_one_per_queue);
	tcase_add_test(tc, widths_and_features);
	tcase_add_test(tc, intx_and_isr);
	tcase_add_test(tc, msix_vectors);
	tcase_add_test(tc, queue_errors_and_window);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
