/*
 * The emulated virtio-blk device through a real mpdev-remote, driven by the
 * test as a guest's virtio-pci driver would (tests/lib/virtio_drv.h):
 * identity and capabilities, feature negotiation, config space, data on two
 * queues across request sizes checked both through the device and in the
 * backing file itself, GET_ID, read-only, discard / write zeroes, INTx with
 * the ISR, MSI-X through SetIrqs eventfds, and a reset with requests in
 * flight.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "vblk_fixture.h"

#define FILE_SIZE (8ull << 20)
#define PIRQ	  5

static struct vblk_fix f;

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static uint64_t take(int fd)
{
	uint64_t v = 0;

	if (readable(fd, 0))
		ck_assert_int_eq(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	return v;
}

START_TEST(identity_and_caps)
{
	struct mpdev_device_info info;
	uint32_t v;

	vf_start(&f, FILE_SIZE, "");
	ck_assert_int_eq(mpdev_get_device_info(f.rem.dev, &info), 0);
	ck_assert_str_eq(info.name, "virtio-blk");
	ck_assert_uint_eq(info.vendor_id, 0x1af4);
	ck_assert_uint_eq(info.device_id, 0x1042);
	ck_assert_uint_eq(info.subsystem_vendor_id, 0x1af4);
	ck_assert_uint_eq(info.subsystem_id, 0x1100);
	ck_assert_uint_eq(info.class_code, 0x018000);
	ck_assert_uint_eq(info.revision, 1);
	ck_assert_uint_eq(info.regions[MPDEV_REGION_BAR0].size, 0x4000);
	ck_assert_uint_eq(info.regions[MPDEV_REGION_BAR2].size, 0x1000);
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_INTX].count, 1);
	ck_assert_uint_eq(info.irqs[MPDEV_IRQ_MSIX].count, 3); /* 2 queues + config */

	ck_assert(f.d.common.found && f.d.notify.found && f.d.isr.found && f.d.device.found &&
		  f.d.pci_cfg.found);
	ck_assert_uint_eq(f.d.common.bar, 0);
	ck_assert_uint_eq(f.d.isr.offset, 0x1000);
	ck_assert_uint_eq(f.d.device.offset, 0x2000);
	ck_assert_uint_eq(f.d.notify.offset, 0x3000);
	ck_assert_uint_eq(f.d.notify_mult, 4);
	ck_assert_uint_eq(f.d.msix_table_size, 3);
	ck_assert_uint_eq(f.d.num_queues, 2);

	/* The PCI cfg access window reaches num_queues in BAR0 through config space. */
	uint8_t w = f.d.pci_cfg.cap_off;
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, w + 4, 1, 0), 0);
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, w + 8, 4, VIRTIO_COMMON_NUMQ), 0);
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, w + 12, 4, 2), 0);
	ck_assert_int_eq(mpdev_config_read(f.rem.dev, w + 16, 2, &v), 0);
	ck_assert_uint_eq(v, 2);
	/* And writes through it: queue_select = 1, read back directly. */
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, w + 8, 4, VIRTIO_COMMON_Q_SELECT), 0);
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, w + 16, 2, 1), 0);
	ck_assert_int_eq(vdrv_common_read(&f.d, VIRTIO_COMMON_Q_SELECT, 2, &v), 0);
	ck_assert_uint_eq(v, 1);
	vf_stop(&f);
}
END_TEST

START_TEST(features_ok_refused_for_unknown_bits)
{
	uint64_t dev_f;
	uint8_t st;

	vf_start(&f, FILE_SIZE, "");
	ck_assert_int_eq(vdrv_reset(&f.d), 0);
	ck_assert_int_eq(vdrv_device_features(&f.d, &dev_f), 0);
	const uint64_t want = VDRV_F(VIRTIO_F_VERSION_1) | VDRV_F(VIRTIO_F_RING_INDIRECT_DESC) |
			      VDRV_F(VIRTIO_F_RING_EVENT_IDX) | VDRV_F(VIRTIO_BLK_F_SEG_MAX) |
			      VDRV_F(VIRTIO_BLK_F_BLK_SIZE) | VDRV_F(VIRTIO_BLK_F_FLUSH) |
			      VDRV_F(VIRTIO_BLK_F_TOPOLOGY) | VDRV_F(VIRTIO_BLK_F_MQ);
	ck_assert_uint_eq(dev_f & want, want);
	ck_assert_uint_eq(dev_f & VDRV_F(VIRTIO_BLK_F_RO), 0);

	ck_assert_int_eq(vdrv_negotiate(&f.d, dev_f | VDRV_F(50)), -ENOTSUP);
	ck_assert_int_eq(vdrv_status(&f.d, &st), 0);
	ck_assert_uint_eq(st & VIRTIO_STATUS_FEATURES_OK, 0);
	ck_assert_int_eq(vdrv_reset(&f.d), 0);
	/* Legacy (no VERSION_1) is refused too. */
	ck_assert_int_eq(vdrv_negotiate(&f.d, dev_f & ~VDRV_F(VIRTIO_F_VERSION_1)), -ENOTSUP);
	ck_assert_int_eq(vdrv_reset(&f.d), 0);
	ck_assert_int_eq(vdrv_negotiate(&f.d, VDRV_F(VIRTIO_F_VERSION_1)), 0);
	/* driver_feature is frozen after FEATURES_OK. */
	uint32_t gf;
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_GFSELECT, 4, 0), 0);
	ck_assert_int_eq(vdrv_common_write(&f.d, VIRTIO_COMMON_GF, 4, 0xffffffff), 0);
	ck_assert_int_eq(vdrv_common_read(&f.d, VIRTIO_COMMON_GF, 4, &gf), 0);
	ck_assert_uint_eq(gf, 0);
	vf_stop(&f);
}
END_TEST

START_TEST(config_space)
{
	uint64_t cap;
	uint32_t v;

	vf_start(&f, FILE_SIZE, ",queues=3");
	ck_assert_int_eq(vdrv_config_read64(&f.d, VBLK_CFG_CAPACITY, &cap), 0);
	ck_assert_uint_eq(cap, FILE_SIZE / 512);
	ck_assert_int_eq(vdrv_config_read(&f.d, VBLK_CFG_NUM_QUEUES, 2, &v), 0);
	ck_assert_uint_eq(v, 3);
	ck_assert_int_eq(vdrv_config_read(&f.d, VBLK_CFG_SEG_MAX, 4, &v), 0);
	ck_assert_uint_eq(v, 254);
	ck_assert_int_eq(vdrv_config_read(&f.d, VBLK_CFG_BLK_SIZE, 4, &v), 0);
	ck_assert(v == 512 || v == 4096);
	ck_assert_uint_eq(f.d.num_queues, 3);
	/* An 8-byte read of device config is not a width the spec allows: 0. */
	uint8_t b[8];
	memset(b, 0xff, sizeof(b));
	ck_assert_int_eq(mpdev_region_read(f.rem.dev, MPDEV_REGION_BAR0, 0x2000, b, 8), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(b[i], 0);
	vf_stop(&f);
}
END_TEST

/* Writes sizes 512 B .. 1 MiB at spread sectors, alternating queues, indirect and direct. */
START_TEST(data_across_sizes_on_two_queues)
{
	static const uint32_t sizes[] = { 512, 4096, 65536, 1u << 20 };
	static const uint64_t sectors[] = { 0, 1, 17, 200, 2047, 4096, 9000, 14000 };
	uint32_t used;
	unsigned n = 0;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 2, 128, NULL);
	for (unsigned i = 0; i < 4; i++) {
		for (unsigned k = 0; k < 2; k++, n++) {
			uint64_t sector = sectors[(i * 2 + k) % 8];
			uint32_t len = sizes[i];

			if (sector * 512 + len > FILE_SIZE)
				sector = FILE_SIZE / 512 - len / 512;
			vf_pattern(f.data, len, 100 + n);
			memcpy(f.image + sector * 512, f.data, len);
			ck_assert_uint_eq(
				vf_request(&f, n % 2, VIRTIO_BLK_T_OUT, sector, len, &used),
				VIRTIO_BLK_S_OK);
			ck_assert_uint_eq(used, 1);
		}
	}
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	/* Read everything back through the device, 1 MiB at a time, on both queues. */
	for (uint64_t off = 0; off < FILE_SIZE; off += 1u << 20) {
		memset(f.data, 0, 1u << 20);
		ck_assert_uint_eq(vf_request(&f, (unsigned)(off >> 20) % 2, VIRTIO_BLK_T_IN,
					     off / 512, 1u << 20, &used),
				  VIRTIO_BLK_S_OK);
		ck_assert_uint_eq(used, (1u << 20) + 1);
		ck_assert_msg(memcmp(f.data, f.image + off, 1u << 20) == 0,
			      "read back at %llu differs", (unsigned long long)off);
	}
	/* An indirect chain of 8 x 4 KiB segments. */
	struct vdrv_buf out[9], in[1];
	uint8_t *seg;
	uint64_t seg_gpa;
	seg = vdrv_alloc(&f.d, 8 * 4096, 4096, &seg_gpa);
	ck_assert_ptr_nonnull(seg);
	vf_pattern(seg, 8 * 4096, 999);
	memcpy(f.image + 300 * 512, seg, 8 * 4096);
	vf_put_hdr(f.hdr, VIRTIO_BLK_T_OUT, 300);
	out[0] = (struct vdrv_buf){ f.hdr_gpa, 16 };
	for (int i = 0; i < 8; i++)
		out[1 + i] = (struct vdrv_buf){ seg_gpa + 4096ull * (7 - i), 4096 };
	for (int i = 0; i < 8; i++)
		memcpy(f.image + 300 * 512 + 4096 * i, seg + 4096 * (7 - i), 4096);
	in[0] = (struct vdrv_buf){ f.status_gpa, 1 };
	*f.status = 0xee;
	ck_assert_int_ge(vdrv_submit(&f.d, 0, out, 9, in, 1, true), 0);
	ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);
	struct vdrv_used u;
	ck_assert_int_eq(vdrv_wait_used(&f.d, 0, VF_WAIT_MS, &u), 0);
	ck_assert_uint_eq(vf_status(&f), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	vf_expect_file(&f);
	vf_stop(&f);
}
END_TEST

/* Many requests in flight at once on both queues: batching, and the file afterwards. */
START_TEST(many_in_flight)
{
	enum { N = 96, LEN = 8192 };
	struct vdrv_used u;
	uint64_t base_gpa;
	uint8_t *base;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 2, 256, NULL);
	base = vdrv_alloc(&f.d, (uint64_t)N * (LEN + 4096), 4096, &base_gpa);
	ck_assert_ptr_nonnull(base);
	for (unsigned i = 0; i < N; i++) {
		uint8_t *h = base + (uint64_t)i * (LEN + 4096);
		uint64_t hg = base_gpa + (uint64_t)i * (LEN + 4096);
		struct vdrv_buf out[2] = { { hg, 16 }, { hg + 4096, LEN } }, in = { hg + 64, 1 };

		vf_put_hdr(h, VIRTIO_BLK_T_OUT, (uint64_t)i * (LEN / 512));
		h[64] = 0xee;
		vf_pattern(h + 4096, LEN, 5000 + i);
		memcpy(f.image + (uint64_t)i * LEN, h + 4096, LEN);
		ck_assert_int_ge(vdrv_submit(&f.d, i % 2, out, 2, &in, 1, i % 3 == 0), 0);
	}
	ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);
	ck_assert_int_eq(vdrv_kick(&f.d, 1), 0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_msg(vdrv_wait_used(&f.d, i % 2, VF_WAIT_MS, &u) == 0, "%u: %s", i,
			      vdrv_error(&f.d));
	for (unsigned i = 0; i < N; i++)
		ck_assert_uint_eq(base[(uint64_t)i * (LEN + 4096) + 64], VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	vf_expect_file(&f);
	vf_stop(&f);
}
END_TEST

START_TEST(get_id)
{
	uint32_t used;

	vf_start(&f, FILE_SIZE, ",serial=disk-0042");
	vf_setup(&f, 0, 1, 64, NULL);
	memset(f.data, 0xaa, 64);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_GET_ID, 0, 64, &used), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(used, 21);
	ck_assert_mem_eq(f.data, "disk-0042\0\0\0\0\0\0\0\0\0\0\0", 20);
	ck_assert_uint_eq(f.data[20], 0xaa); /* nothing past the 20 bytes */
	vf_stop(&f);

	/* The default: "mpdev-" and a hash of the path. */
	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 1, 64, NULL);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_GET_ID, 0, 20, &used), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f.data, "mpdev-", 6);
	vf_stop(&f);
}
END_TEST

START_TEST(read_only_refuses_writes)
{
	uint64_t dev_f;

	vf_start(&f, FILE_SIZE, ",ro");
	ck_assert_int_eq(vdrv_device_features(&f.d, &dev_f), 0);
	ck_assert(dev_f & VDRV_F(VIRTIO_BLK_F_RO));
	ck_assert_uint_eq(
		dev_f & (VDRV_F(VIRTIO_BLK_F_DISCARD) | VDRV_F(VIRTIO_BLK_F_WRITE_ZEROES)), 0);
	vf_setup(&f, 0, 2, 64, NULL);
	memset(f.data, 0x5a, 4096);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_OUT, 8, 4096, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_OUT, 0, 512, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_IN, 8, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f.data, f.image + 8 * 512, 4096);
	vf_expect_file(&f);
	vf_stop(&f);
}
END_TEST

static uint8_t dwz(uint32_t type, uint64_t sector, uint32_t nsec, uint32_t flags)
{
	uint8_t *seg = f.data;

	for (int i = 0; i < 8; i++)
		seg[i] = (uint8_t)(sector >> (8 * i));
	for (int i = 0; i < 4; i++) {
		seg[8 + i] = (uint8_t)(nsec >> (8 * i));
		seg[12 + i] = (uint8_t)(flags >> (8 * i));
	}
	return vf_request(&f, 0, type, 0, 16, NULL);
}

START_TEST(discard_and_write_zeroes)
{
	uint64_t dev_f;
	bool any = false;

	vf_start(&f, FILE_SIZE, "");
	ck_assert_int_eq(vdrv_device_features(&f.d, &dev_f), 0);
	vf_setup(&f, 0, 1, 64, NULL);
	if (dev_f & VDRV_F(VIRTIO_BLK_F_WRITE_ZEROES)) {
		any = true;
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 64, 64, 0), VIRTIO_BLK_S_OK);
		memset(f.image + 64 * 512, 0, 64 * 512);
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 1024, 16, 1), VIRTIO_BLK_S_OK);
		memset(f.image + 1024 * 512, 0, 16 * 512);
		/* An unknown flag is unsupported, a range past the end an error. */
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2), VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, FILE_SIZE / 512 - 4, 8, 0),
				  VIRTIO_BLK_S_IOERR);
	} else {
		printf("write_zeroes: not offered (the filesystem of /var/tmp refuses "
		       "ZERO_RANGE)\n");
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, 64, 64, 0), VIRTIO_BLK_S_UNSUPP);
	}
	if (dev_f & VDRV_F(VIRTIO_BLK_F_DISCARD)) {
		any = true;
		/* Whole 4 KiB blocks, which every filesystem punches. */
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, 4096, 256, 0), VIRTIO_BLK_S_OK);
		memset(f.image + 4096ull * 512, 0, 256 * 512);
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, 0, 8, 1), VIRTIO_BLK_S_UNSUPP);
	} else {
		printf("discard: not offered (the filesystem of /var/tmp refuses PUNCH_HOLE)\n");
		ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, 64, 64, 0), VIRTIO_BLK_S_UNSUPP);
	}
	if (any) {
		ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 0, 1u << 20, NULL),
				  VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(f.data, f.image, 1u << 20);
		ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 4096, 256 * 512, NULL),
				  VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(f.data, f.image + 4096ull * 512, 256 * 512);
		vf_expect_file(&f);
	}
	vf_stop(&f);
}
END_TEST

START_TEST(intx_with_isr)
{
	int irqfd = testutil_eventfd(), rfd = testutil_eventfd();
	uint32_t status;
	uint8_t isr;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 1, 64, NULL);
	ck_assert_msg(mpdev_set_intx_irqfd(f.rem.dev, 0, PIRQ, irqfd, rfd) == 0, "%s",
		      mpdev_last_error(f.rem.dev));
	ck_assert(!readable(irqfd, 0));
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 0, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_msg(readable(irqfd, VF_WAIT_MS), "no INTx for a completed request");
	take(irqfd);
	ck_assert_int_eq(mpdev_config_read(f.rem.dev, 0x06, 2, &status), 0);
	ck_assert(status & 0x08); /* PCI status: interrupt pending */
	ck_assert_int_eq(vdrv_isr_read(&f.d, &isr), 0);
	ck_assert_uint_eq(isr, 1);
	/* Read-to-clear: the level drops with it. */
	ck_assert_int_eq(vdrv_isr_read(&f.d, &isr), 0);
	ck_assert_uint_eq(isr, 0);
	ck_assert_int_eq(mpdev_config_read(f.rem.dev, 0x06, 2, &status), 0);
	ck_assert(!(status & 0x08));
	/* An EOI with the line low: no new signal. */
	uint64_t one = 1;
	ck_assert_int_eq(write(rfd, &one, sizeof(one)), (ssize_t)sizeof(one));
	ck_assert_int_eq(mpdev_sync(f.rem.dev), 0);
	ck_assert(!readable(irqfd, 50));
	/* INTX_DISABLE gates the pin, not the ISR; clearing it lets the level through. */
	uint32_t cmd;
	ck_assert_int_eq(mpdev_config_read(f.rem.dev, 0x04, 2, &cmd), 0);
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, 0x04, 2, cmd | 0x0400), 0);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(mpdev_sync(f.rem.dev), 0);
	ck_assert(!readable(irqfd, 50));
	ck_assert_int_eq(mpdev_config_write(f.rem.dev, 0x04, 2, cmd), 0);
	ck_assert_msg(readable(irqfd, VF_WAIT_MS), "no INTx once INTX_DISABLE was cleared");
	take(irqfd);
	ck_assert_int_eq(vdrv_isr_read(&f.d, &isr), 0);
	ck_assert_uint_eq(isr, 1);
	ck_assert_int_eq(mpdev_set_intx_irqfd(f.rem.dev, 0, PIRQ, -1, -1), 0);
	close(irqfd);
	close(rfd);
	vf_stop(&f);
}
END_TEST

START_TEST(msix_vectors)
{
	int fds[3] = { testutil_eventfd(), testutil_eventfd(), testutil_eventfd() };
	uint16_t got;
	uint8_t isr;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 2, 64, fds);
	ck_assert_int_eq(vdrv_set_config_vector(&f.d, 2, &got), 0);
	ck_assert_uint_eq(got, 2);
	ck_assert_int_eq(vdrv_set_config_vector(&f.d, 3, &got), 0);
	ck_assert_uint_eq(got, VIRTIO_MSI_NO_VECTOR); /* past the table */
	ck_assert_int_eq(vdrv_set_config_vector(&f.d, 2, &got), 0);
	/* The signals vdrv took while waiting plus what is still in the eventfd. */
	uint64_t before0 = f.d.q[0].irq_count + take(fds[0]);
	uint64_t before1 = f.d.q[1].irq_count + take(fds[1]);
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_IN, 0, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(mpdev_sync(f.rem.dev), 0);
	ck_assert_uint_eq(f.d.q[1].irq_count + take(fds[1]) - before1, 1);
	ck_assert_uint_eq(f.d.q[0].irq_count + take(fds[0]) - before0, 0);
	ck_assert_uint_eq(vf_request(&f, 0, VIRTIO_BLK_T_IN, 0, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(mpdev_sync(f.rem.dev), 0);
	ck_assert_uint_eq(f.d.q[0].irq_count + take(fds[0]) - before0, 1);
	ck_assert(!readable(fds[2], 0));
	/* With MSI-X the ISR stays clear. */
	ck_assert_int_eq(vdrv_isr_read(&f.d, &isr), 0);
	ck_assert_uint_eq(isr, 0);
	ck_assert_int_eq(mpdev_irq_disable(f.rem.dev, MPDEV_IRQ_MSIX), 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	vf_stop(&f);
}
END_TEST

START_TEST(reset_mid_flight)
{
	enum { N = 64, LEN = 65536 };
	uint64_t base_gpa;
	uint8_t *base;
	uint8_t st;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 2, 128, NULL);
	base = vdrv_alloc(&f.d, (uint64_t)N * (LEN + 4096), 4096, &base_gpa);
	ck_assert_ptr_nonnull(base);
	for (unsigned i = 0; i < N; i++) {
		uint64_t hg = base_gpa + (uint64_t)i * (LEN + 4096);
		struct vdrv_buf out = { hg, 16 }, in[2] = { { hg + 4096, LEN }, { hg + 64, 1 } };

		vf_put_hdr(base + (hg - base_gpa), VIRTIO_BLK_T_IN, (uint64_t)i * (LEN / 512));
		ck_assert_int_ge(vdrv_submit(&f.d, i % 2, &out, 1, in, 2, false), 0);
	}
	ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);
	ck_assert_int_eq(vdrv_kick(&f.d, 1), 0);
	/* Status 0 while they run: the remote finishes or drops them, and answers. */
	ck_assert_int_eq(vdrv_set_status(&f.d, 0), 0);
	ck_assert_int_eq(vdrv_status(&f.d, &st), 0);
	ck_assert_uint_eq(st, 0);
	vf_expect_alive(&f);
	/* A new driver instance works. */
	vf_setup(&f, 0, 2, 64, NULL);
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_IN, 8, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f.data, f.image + 8 * 512, 4096);
	/* And a function reset through libmpdev too. */
	ck_assert_int_eq(mpdev_reset(f.rem.dev), 0);
	vf_expect_alive(&f);
	vf_stop(&f);
}
END_TEST

/*
 * The memory table goes while requests are in flight: the remote finishes
 * them first (dma_quiesce), so what it pushed is complete and nothing
 * touches the unmapped memory; later chains find no memory (a queue error),
 * and the device works again once memory is back and it is reset.
 */
START_TEST(memory_removed_mid_flight)
{
	enum { N = 64, LEN = 65536 };
	uint64_t base_gpa;
	uint8_t *base, st;

	vf_start(&f, FILE_SIZE, "");
	vf_setup(&f, 0, 2, 128, NULL);
	base = vdrv_alloc(&f.d, (uint64_t)N * (LEN + 4096), 4096, &base_gpa);
	ck_assert_ptr_nonnull(base);
	for (unsigned i = 0; i < N; i++) {
		uint64_t hg = base_gpa + (uint64_t)i * (LEN + 4096);
		struct vdrv_buf out = { hg, 16 }, in[2] = { { hg + 4096, LEN }, { hg + 64, 1 } };

		vf_put_hdr(base + (hg - base_gpa), VIRTIO_BLK_T_IN, (uint64_t)i * (LEN / 512));
		base[hg - base_gpa + 64] = 0xee;
		ck_assert_int_ge(vdrv_submit(&f.d, i % 2, &out, 1, in, 2, false), 0);
	}
	ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);
	ck_assert_int_eq(vdrv_kick(&f.d, 1), 0);
	ck_assert_msg(mpdev_mem_set_table(f.rem.dev, NULL, 0) == 0, "%s",
		      mpdev_last_error(f.rem.dev));
	vf_expect_alive(&f);
	/* Whatever was pushed is complete, status and data. */
	for (unsigned q = 0; q < 2; q++) {
		struct vdrv_used u;

		while (vdrv_used_pending(&f.d, q)) {
			ck_assert_int_eq(vdrv_wait_used(&f.d, q, 0, &u), 0);
			ck_assert_uint_eq(u.len, LEN + 1);
		}
	}
	for (unsigned i = 0; i < N; i++) {
		uint8_t *h = base + (uint64_t)i * (LEN + 4096);

		if (h[64] == 0xee)
			continue; /* not taken before the memory went */
		ck_assert_uint_eq(h[64], VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(h + 4096, f.image + (uint64_t)i * LEN, LEN);
	}
	/* A kick now finds no memory: the queue breaks, the remote stays. */
	ck_assert_int_eq(vdrv_kick(&f.d, 0), 0);
	ck_assert_int_eq(vdrv_status(&f.d, &st), 0);
	ck_assert_uint_eq(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	vf_expect_alive(&f);

	struct mpdev_mem_region r = { .gpa = VF_GPA, .size = VF_MEM_SIZE, .fd = f.memfd };
	ck_assert_int_eq(mpdev_mem_set_table(f.rem.dev, &r, 1), 0);
	vf_setup(&f, 0, 2, 64, NULL);
	ck_assert_uint_eq(vf_request(&f, 1, VIRTIO_BLK_T_IN, 16, 4096, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f.data, f.image + 16 * 512, 4096);
	vf_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("virtio_blk");
	TCase *tc = tcase_create("device");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, identity_and_caps);
	tcase_add_test(tc, features_ok_refused_for_unknown_bits);
	tcase_add_test(tc, config_space);
	tcase_add_test(tc, data_across_sizes_on_two_queues);
	tcase_add_test(tc, many_in_flight);
	tcase_add_test(tc, get_id);
	tcase_add_test(tc, read_only_refuses_writes);
	tcase_add_test(tc, discard_and_write_zeroes);
	tcase_add_test(tc, intx_with_isr);
	tcase_add_test(tc, msix_vectors);
	tcase_add_test(tc, reset_mid_flight);
	tcase_add_test(tc, memory_removed_mid_flight);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	vf_require_io_uring();
	return testutil_run_suite(suite());
}
