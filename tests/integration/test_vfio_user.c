/*
 * The vfio-user face, functionally: a raw vfio-user client (the messages
 * QEMU's vfio-user-pci sends, tests/lib/vfio_user_client.h) against a real
 * mpdev-remote --face vfio-user serving the emulated edu.
 *
 *  - VERSION: our capabilities in answer to QEMU's proposal.
 *  - Device, region and IRQ info as VFIO reports them.
 *  - edu's identity, liveness and factorial through REGION_READ/WRITE,
 *    posted writes and REGION_WRITE_MULTI in order.
 *  - DMA through a memfd the client maps, byte for byte both ways.
 *  - INTx through the trigger eventfd, repeatedly, with the unmask that
 *    QEMU sends at EOI (ACTION_UNMASK, DATA_NONE): an unmask while the
 *    device still holds the line fires again, as a resample does.
 *  - MSI through its eventfd, mask/unmask with the pending message.
 *  - Reset; and the descriptor count back to its baseline each time.
 *  - GET_REGION_IO_FDS: edu's IRQ_RAISE doorbell as an ioeventfd that
 *    raises INTx with no message; the short-argsz answer; regions without.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "vfio_user_client.h"

#define BAR0   0u
#define CONFIG 7u

#define PCI_COMMAND	   0x04
#define PCI_COMMAND_MASTER 0x0004u
#define MSI_CTRL	   (EDU_MSI_CAP_OFFSET + 2)
#define MSI_ADDR_LO	   (EDU_MSI_CAP_OFFSET + 4)
#define MSI_ADDR_HI	   (EDU_MSI_CAP_OFFSET + 8)
#define MSI_DATA	   (EDU_MSI_CAP_OFFSET + 12)

#define SIGNAL_MS 2000 /* an interrupt that should come */
#define QUIET_MS  150  /* one that should not */
#define POLL_MS	  2000 /* deferred device work */

#define GUEST_GPA  0x100000u
#define GUEST_SIZE 0x100000u

static struct remote rem;
static struct vfu_client cl;

static void start(const char *caps)
{
	static const char *const args[] = { "--face", "vfio-user", NULL };

	remote_start(&rem, &(struct remote_opts){ .listen = true,
						  .greet = REMOTE_UNGREETED,
						  .capture_stderr = true,
						  .args = args });
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_version(&cl, caps), 0);
	remote_take_baseline(&rem);
}

static void setup(void)
{
	start(VFU_CLIENT_QEMU_CAPS);
}

static void teardown(void)
{
	vfu_client_close(&cl);
	remote_stop(&rem);
}

static uint32_t rd(uint32_t region, uint64_t off, uint32_t size)
{
	uint32_t v = 0;

	ck_assert_int_eq(vfu_client_region_read(&cl, region, off, &v, size), 0);
	return v;
}

static void wr(uint32_t region, uint64_t off, uint32_t size, uint32_t v)
{
	ck_assert_int_eq(vfu_client_region_write(&cl, region, off, &v, size), 0);
}

static void wr64(uint64_t off, uint64_t v)
{
	ck_assert_int_eq(vfu_client_region_write(&cl, BAR0, off, &v, 8), 0);
}

static void expect_signal(int fd, const char *what)
{
	int64_t n = vfu_client_eventfd_wait(fd, SIGNAL_MS);

	ck_assert_msg(n > 0, "%s: no interrupt within %d ms (%lld)", what, SIGNAL_MS, (long long)n);
}

static void expect_quiet(int fd, const char *what)
{
	int64_t n = vfu_client_eventfd_wait(fd, QUIET_MS);

	ck_assert_msg(n == 0, "%s: an interrupt came (%lld)", what, (long long)n);
}

static int set_trigger(uint32_t index, int fd)
{
	return vfu_client_set_irqs(&cl, index,
				   VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 0, 1,
				   NULL, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

static int intx_unmask(void)
{
	return vfu_client_set_irqs(&cl, 0, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK, 0, 1,
				   NULL, NULL, 0);
}

START_TEST(version_answers_qemu)
{
	ck_assert_uint_eq(cl.server_major, 0);
	ck_assert_uint_eq(cl.server_minor, 0);
	ck_assert_uint_eq(cl.server.max_msg_fds, 8);
	ck_assert_uint_eq(cl.server.max_data_xfer_size, 1u << 20);
	ck_assert_uint_eq(cl.server.pgsizes & 4096, 4096);
	ck_assert_uint_gt(cl.server.max_dma_maps, 0);
	ck_assert_uint_le(cl.server.max_dma_maps, 65535);
	/* A subset of the proposal: QEMU proposed write_multiple. */
	ck_assert(cl.server.write_multiple);
	ck_assert(!cl.server.twin_socket);
}
END_TEST

/*
 * QEMU reads a reply into the buffer of its request (hw/vfio-user/proxy.c:
 * a larger reply is "reply larger than recv buffer"), so our VERSION reply
 * must be no longer than its proposal, and end in the NUL it checks for.
 */
START_TEST(version_reply_fits_qemus_buffer)
{
	uint8_t req[4 + sizeof(VFU_CLIENT_QEMU_CAPS)] = { 0 }, rep[512];
	size_t n = 0;

	teardown();
	remote_start(&rem, &(struct remote_opts){
				   .listen = true,
				   .greet = REMOTE_UNGREETED,
				   .args = (const char *const[]){ "--face", "vfio-user", NULL } });
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	memcpy(req + 4, VFU_CLIENT_QEMU_CAPS, sizeof(VFU_CLIENT_QEMU_CAPS));
	ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_VERSION, req, sizeof(req), NULL, 0, rep,
					 sizeof(rep), &n),
			 0);
	ck_assert_uint_le(n, sizeof(req));
	ck_assert_uint_gt(n, 4);
	ck_assert_uint_eq(rep[n - 1], 0);
	remote_take_baseline(&rem);
}
END_TEST

START_TEST(version_without_caps)
{
	uint8_t req[8 + 24] = { 0 };
	uint64_t one = 1;
	struct vfu_write_one w = { .offset = EDU_REG_LIVENESS, .region = BAR0, .count = 4 };

	teardown();
	start(NULL);
	ck_assert(!cl.server.write_multiple);
	/* Not agreed, so refused. */
	memcpy(req, &one, 8);
	memcpy(req + 8, &w, sizeof(w));
	ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_REGION_WRITE_MULTI, req, sizeof(req), NULL, 0,
					 NULL, 0, NULL),
			 ENOTSUP);
}
END_TEST

START_TEST(device_region_irq_info)
{
	struct vfu_device_info d;
	struct vfu_region_info r;
	struct vfu_irq_info i;

	ck_assert_int_eq(vfu_client_device_info(&cl, &d), 0);
	ck_assert_uint_eq(d.argsz, 16);
	ck_assert_uint_eq(d.flags, VFU_DEVICE_FLAGS_PCI | VFU_DEVICE_FLAGS_RESET);
	ck_assert_uint_eq(d.num_regions, 9);
	ck_assert_uint_eq(d.num_irqs, 5);

	ck_assert_int_eq(vfu_client_region_info(&cl, BAR0, &r), 0);
	ck_assert_uint_eq(r.index, 0);
	ck_assert_uint_eq(r.size, EDU_BAR0_SIZE);
	ck_assert_uint_eq(r.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE);
	ck_assert_uint_eq(r.argsz, 32);
	ck_assert_int_eq(vfu_client_region_info(&cl, CONFIG, &r), 0);
	ck_assert_uint_ge(r.size, 256);
	ck_assert_uint_eq(r.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE);
	ck_assert_int_eq(vfu_client_region_info(&cl, 1, &r), 0);
	ck_assert_uint_eq(r.size, 0);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_int_eq(vfu_client_region_info(&cl, 9, &r), EINVAL);

	/* INTx as VFIO's: the trigger masks it until unmasked. */
	ck_assert_int_eq(vfu_client_irq_info(&cl, 0, &i), 0);
	ck_assert_uint_eq(i.count, 1);
	ck_assert_uint_eq(i.flags,
			  VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE | VFU_IRQ_INFO_AUTOMASKED);
	ck_assert_int_eq(vfu_client_irq_info(&cl, 1, &i), 0);
	ck_assert_uint_eq(i.count, 1);
	ck_assert(i.flags & VFU_IRQ_INFO_EVENTFD);
	ck_assert_int_eq(vfu_client_irq_info(&cl, 2, &i), 0);
	ck_assert_uint_eq(i.count, 0);
	ck_assert_int_eq(vfu_client_irq_info(&cl, 5, &i), EINVAL);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(edu_identity_liveness_factorial)
{
	uint8_t whole[256];
	int64_t deadline;

	ck_assert_uint_eq(rd(CONFIG, 0, 4), (uint32_t)EDU_DEVICE_ID << 16 | EDU_VENDOR_ID);
	ck_assert_uint_eq(rd(CONFIG, 0, 2), EDU_VENDOR_ID);
	/* The client reads config space whole; it matches the dwords. */
	ck_assert_int_eq(vfu_client_region_read(&cl, CONFIG, 0, whole, sizeof(whole)), 0);
	for (unsigned o = 0; o < sizeof(whole); o += 4) {
		uint32_t v;

		memcpy(&v, whole + o, 4);
		ck_assert_uint_eq(v, rd(CONFIG, o, 4));
	}
	ck_assert_uint_eq(rd(BAR0, EDU_REG_IDENT, 4), EDU_IDENT);
	for (uint32_t v = 1; v < 0x80000000u; v = v * 3 + 7) {
		wr(BAR0, EDU_REG_LIVENESS, 4, v);
		ck_assert_uint_eq(rd(BAR0, EDU_REG_LIVENESS, 4), ~v);
	}
	wr(BAR0, EDU_REG_FACTORIAL, 4, 10);
	deadline = POLL_MS;
	while ((rd(BAR0, EDU_REG_STATUS, 4) & EDU_STATUS_COMPUTING) && deadline-- > 0)
		usleep(1000);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_FACTORIAL, 4), 3628800);
}
END_TEST

START_TEST(posted_and_multi_writes_in_order)
{
	uint8_t req[8 + 2 * 24] = { 0 };
	uint64_t n = 2, done = 0;
	struct vfu_write_one w = { .offset = EDU_REG_LIVENESS, .region = BAR0, .count = 4 };
	uint32_t v = 0x55;
	size_t rlen = 0;

	ck_assert_int_eq(vfu_client_region_write_posted(&cl, BAR0, EDU_REG_LIVENESS, &v, 4), 0);
	ck_assert(vfu_client_quiet(&cl, QUIET_MS));
	ck_assert_uint_eq(rd(BAR0, EDU_REG_LIVENESS, 4), ~0x55u);
	memcpy(req, &n, 8);
	v = 1;
	memcpy(w.data, &v, 4);
	memcpy(req + 8, &w, 24);
	v = 2;
	memcpy(w.data, &v, 4);
	memcpy(req + 32, &w, 24);
	ck_assert_int_eq(vfu_client_send(&cl, VFU_CMD_REGION_WRITE_MULTI, VFU_FLAG_NO_REPLY, req,
					 sizeof(req), NULL, 0, NULL),
			 0);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_LIVENESS, 4), ~2u);
	/* Asked for, the reply says how many were done. */
	ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_REGION_WRITE_MULTI, req, sizeof(req), NULL, 0,
					 &done, sizeof(done), &rlen),
			 0);
	ck_assert_uint_eq(rlen, 8);
	ck_assert_uint_eq(done, 2);
}
END_TEST

static void dma_wait(void)
{
	int left = POLL_MS;

	while ((rd(BAR0, EDU_REG_DMA_CMD, 4) & EDU_DMA_CMD_RUN) && left-- > 0)
		usleep(1000);
	ck_assert_msg(left > 0, "the DMA did not finish within %d ms", POLL_MS);
}

START_TEST(dma_through_memfd_byte_for_byte)
{
	int mfd = testutil_memfd(GUEST_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
	uint8_t *ram = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);

	ck_assert_ptr_ne(ram, MAP_FAILED);
	for (unsigned i = 0; i < EDU_DMA_BUF_SIZE; i++)
		ram[0x1000 + i] = (uint8_t)(i * 7 + 3);
	ck_assert_int_eq(vfu_client_dma_map(&cl, GUEST_GPA, GUEST_SIZE, mfd, 0,
					    VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE),
			 0);
	close(mfd); /* the remote keeps its mapping, not our descriptor */
	remote_expect_fds(&rem, rem.baseline_fds);
	wr(CONFIG, PCI_COMMAND, 2, rd(CONFIG, PCI_COMMAND, 2) | PCI_COMMAND_MASTER);

	/* Guest RAM -> the device's buffer -> elsewhere in guest RAM. */
	wr64(EDU_REG_DMA_SRC, GUEST_GPA + 0x1000);
	wr64(EDU_REG_DMA_DST, EDU_DMA_BUF_ADDR);
	wr64(EDU_REG_DMA_COUNT, EDU_DMA_BUF_SIZE);
	wr64(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN);
	dma_wait();
	wr64(EDU_REG_DMA_SRC, EDU_DMA_BUF_ADDR);
	wr64(EDU_REG_DMA_DST, GUEST_GPA + 0x80000);
	wr64(EDU_REG_DMA_COUNT, EDU_DMA_BUF_SIZE);
	wr64(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | EDU_DMA_CMD_TO_RAM);
	dma_wait();
	ck_assert_int_eq(memcmp(ram + 0x80000, ram + 0x1000, EDU_DMA_BUF_SIZE), 0);

	ck_assert_int_eq(vfu_client_dma_unmap(&cl, GUEST_GPA, GUEST_SIZE, 0), 0);
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, GUEST_GPA, GUEST_SIZE, 0), ENOENT);
	munmap(ram, GUEST_SIZE);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(dma_overlap_message_ranges_unmap_all)
{
	int mfd = testutil_memfd(GUEST_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);

	ck_assert_int_eq(vfu_client_dma_map(&cl, GUEST_GPA, GUEST_SIZE, mfd, 0, VFU_DMA_FLAG_READ),
			 0);
	ck_assert_int_eq(
		vfu_client_dma_map(&cl, GUEST_GPA + 0x1000, 0x1000, mfd, 0, VFU_DMA_FLAG_READ),
		EEXIST);
	/* Without a descriptor: memory the client serves by message. */
	ck_assert_int_eq(vfu_client_dma_map(&cl, 0x400000, 0x10000, -1, 0,
					    VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE),
			 0);
	ck_assert_int_eq(vfu_client_dma_map(&cl, 0x40f000, 0x2000, -1, 0, VFU_DMA_FLAG_READ),
			 EEXIST);
	ck_assert_int_eq(vfu_client_dma_map(&cl, 0x40f000, 0x2000, mfd, 0, VFU_DMA_FLAG_READ),
			 EEXIST);
	ck_assert_int_eq(vfu_client_dma_map(&cl, GUEST_GPA, 0x1000, -1, 0, VFU_DMA_FLAG_READ),
			 EEXIST);
	/* Unmap must match a mapping exactly. */
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, 0x400000, 0x1000, 0), ENOENT);
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, 0x400000, 0x10000, 0), 0);
	ck_assert_int_eq(vfu_client_dma_map(&cl, 0x400000, 0x10000, -1, 0, VFU_DMA_FLAG_READ), 0);
	/* QEMU's unmap-all (VFIO_DMA_UNMAP_FLAG_ALL, iova = size = 0). */
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, 0, 0, VFU_DMA_UNMAP_FLAG_ALL), 0);
	ck_assert_int_eq(vfu_client_dma_map(&cl, GUEST_GPA, GUEST_SIZE, mfd, 0, VFU_DMA_FLAG_READ),
			 0);
	ck_assert_int_eq(vfu_client_dma_map(&cl, 0x400000, 0x10000, -1, 0, VFU_DMA_FLAG_READ), 0);
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, 0, 0, VFU_DMA_UNMAP_FLAG_ALL), 0);
	close(mfd);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(intx_trigger_ack_unmask_repeatedly)
{
	int efd = testutil_eventfd();

	ck_assert_int_eq(set_trigger(0, efd), 0);
	expect_quiet(efd, "installing the trigger");
	for (int i = 0; i < 8; i++) {
		wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
		expect_signal(efd, "raise");
		ck_assert_uint_eq(rd(BAR0, EDU_REG_IRQ_STATUS, 4), 1);
		wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
		/* QEMU's EOI: the line is low now, so the unmask fires nothing. */
		ck_assert_int_eq(intx_unmask(), 0);
		expect_quiet(efd, "unmask after ack");
	}
	ck_assert_int_eq(set_trigger(0, -1), 0);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	expect_quiet(efd, "raise with no trigger");
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	close(efd);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(intx_unmask_reasserts_held_line)
{
	int efd = testutil_eventfd();

	ck_assert_int_eq(set_trigger(0, efd), 0);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	expect_signal(efd, "raise");
	/* Automasked: a second raise while masked is not another trigger. */
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, EDU_IRQ_DMA);
	expect_quiet(efd, "raise while automasked");
	/* Unmasked while the device still holds the line: a resample's re-assert. */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(intx_unmask(), 0);
		expect_signal(efd, "unmask with the line held");
	}
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	ck_assert_int_eq(intx_unmask(), 0);
	expect_signal(efd, "unmask with one cause left");
	wr(BAR0, EDU_REG_IRQ_ACK, 4, EDU_IRQ_DMA);
	ck_assert_int_eq(intx_unmask(), 0);
	expect_quiet(efd, "unmask after the last ack");

	/* A mask by action holds the trigger back until the unmask. */
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 0,
					     VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 0, 1,
					     NULL, NULL, 0),
			 0);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	expect_quiet(efd, "raise while masked");
	ck_assert_int_eq(intx_unmask(), 0);
	expect_signal(efd, "unmask of a masked raise");
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	ck_assert_int_eq(intx_unmask(), 0);
	expect_quiet(efd, "after ack");
	close(efd);
}
END_TEST

START_TEST(intx_unmask_by_eventfd_and_bool)
{
	int efd = testutil_eventfd(), ufd = testutil_eventfd();
	uint64_t one = 1;
	uint8_t yes = 1, no = 0;

	ck_assert_int_eq(set_trigger(0, efd), 0);
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 0,
					     VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK,
					     0, 1, NULL, &ufd, 1),
			 0);
	for (int i = 0; i < 4; i++) {
		wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
		expect_signal(efd, "raise");
		/* The unmask eventfd with the line still held fires again. */
		ck_assert_int_eq(write(ufd, &one, sizeof(one)), sizeof(one));
		expect_signal(efd, "unmask eventfd, line held");
		wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
		ck_assert_int_eq(write(ufd, &one, sizeof(one)), sizeof(one));
		expect_quiet(efd, "unmask eventfd after ack");
	}
	/* DATA_BOOL: false does nothing, true unmasks. */
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	expect_signal(efd, "raise");
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 0,
					     VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_UNMASK, 0,
					     1, &no, NULL, 0),
			 0);
	expect_quiet(efd, "unmask bool false");
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 0,
					     VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_UNMASK, 0,
					     1, &yes, NULL, 0),
			 0);
	expect_signal(efd, "unmask bool true");
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	/* De-assigning both, as QEMU does (eventfd flags, no descriptors). */
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 0,
					     VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK,
					     0, 1, NULL, NULL, 0),
			 0);
	ck_assert_int_eq(set_trigger(0, -1), 0);
	close(efd);
	close(ufd);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

static void msi_enable(void)
{
	wr(CONFIG, MSI_ADDR_LO, 4, 0xfee00000u);
	wr(CONFIG, MSI_ADDR_HI, 4, 0);
	wr(CONFIG, MSI_DATA, 2, 0x4041);
	wr(CONFIG, MSI_CTRL, 2, 1);
	ck_assert_uint_eq(rd(CONFIG, MSI_CTRL, 2) & 1, 1);
}

START_TEST(msi_eventfd_mask_unmask)
{
	int mfd = testutil_eventfd(), ifd = testutil_eventfd();

	ck_assert_int_eq(set_trigger(0, ifd), 0);
	ck_assert_int_eq(set_trigger(1, mfd), 0);
	msi_enable();
	for (int i = 0; i < 4; i++) {
		wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
		expect_signal(mfd, "raise with MSI");
		wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	}
	expect_quiet(ifd, "INTx while MSI is enabled");
	/* A masked vector keeps its message until unmasked. */
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 1,
					     VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 0, 1,
					     NULL, NULL, 0),
			 0);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	expect_quiet(mfd, "raise with the vector masked");
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 1,
					     VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK, 0,
					     1, NULL, NULL, 0),
			 0);
	expect_signal(mfd, "unmask with a message pending");
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	/* Count 0, DATA_NONE, TRIGGER: the whole index off. */
	ck_assert_int_eq(vfu_client_set_irqs(&cl, 1,
					     VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER, 0,
					     0, NULL, NULL, 0),
			 0);
	ck_assert_int_eq(set_trigger(0, -1), 0);
	close(mfd);
	close(ifd);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(reset_back_to_power_on)
{
	int efd = testutil_eventfd();

	wr(CONFIG, PCI_COMMAND, 2, rd(CONFIG, PCI_COMMAND, 2) | PCI_COMMAND_MASTER);
	ck_assert_int_eq(set_trigger(0, efd), 0);
	ck_assert_int_eq(vfu_client_reset(&cl), 0);
	ck_assert_uint_eq(rd(CONFIG, PCI_COMMAND, 2) & PCI_COMMAND_MASTER, 0);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_IDENT, 4), EDU_IDENT);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_IRQ_STATUS, 4), 0);
	ck_assert_int_eq(set_trigger(0, -1), 0);
	close(efd);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

START_TEST(split_message_waits_for_its_rest)
{
	uint8_t msg[VFU_HDR_SIZE + VFU_REGION_ACCESS_SIZE];
	struct vfu_hdr h = { .msg_id = 77, .cmd = VFU_CMD_REGION_READ, .size = sizeof(msg) };
	struct vfu_region_access a = { .offset = EDU_REG_IDENT, .region = BAR0, .count = 4 };
	uint8_t rep[32];
	size_t n = 0;
	uint32_t v;

	vfu_hdr_put(msg, &h);
	memcpy(msg + VFU_HDR_SIZE, &a, sizeof(a));
	/* Byte by byte: nothing is answered before the last one. */
	for (size_t i = 0; i + 1 < sizeof(msg); i++) {
		ck_assert_int_eq(vfu_client_send_bytes(&cl, msg + i, 1, NULL, 0), 0);
		if (i % 8 == 0)
			ck_assert(vfu_client_quiet(&cl, 20));
	}
	ck_assert_int_eq(vfu_client_send_bytes(&cl, msg + sizeof(msg) - 1, 1, NULL, 0), 0);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, rep, sizeof(rep), &n, NULL, 0, NULL, 2000), 0);
	ck_assert_uint_eq(h.msg_id, 77);
	ck_assert_uint_eq(h.flags, VFU_TYPE_REPLY);
	ck_assert_uint_eq(n, 20);
	memcpy(&v, rep + 16, 4);
	ck_assert_uint_eq(v, EDU_IDENT);
}
END_TEST

/*
 * A client may pipeline (QEMU sends DMA maps "nowait" in a burst): requests
 * that arrived in one read must all be answered, in order, although the
 * socket has nothing more to say.
 */
START_TEST(pipelined_requests_all_answered)
{
	enum { N = 300 };
	size_t one = VFU_HDR_SIZE + VFU_REGION_ACCESS_SIZE;
	uint8_t *buf = malloc(N * one);
	struct vfu_region_access a = { .offset = EDU_REG_IDENT, .region = BAR0, .count = 4 };

	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < N; i++) {
		struct vfu_hdr h = { .msg_id = (uint16_t)(1000 + i),
				     .cmd = VFU_CMD_REGION_READ,
				     .size = (uint32_t)one };

		vfu_hdr_put(buf + i * one, &h);
		memcpy(buf + i * one + VFU_HDR_SIZE, &a, sizeof(a));
	}
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, N * one, NULL, 0), 0);
	for (int i = 0; i < N; i++) {
		struct vfu_hdr h;
		uint8_t rep[32];
		size_t n = 0;
		uint32_t v;

		ck_assert_msg(vfu_client_recv(&cl, &h, rep, sizeof(rep), &n, NULL, 0, NULL, 2000) ==
				      0,
			      "reply %d of %d did not come", i, N);
		ck_assert_uint_eq(h.msg_id, 1000 + i);
		ck_assert_uint_eq(n, 20);
		memcpy(&v, rep + 16, 4);
		ck_assert_uint_eq(v, EDU_IDENT);
	}
	free(buf);
}
END_TEST

struct flood {
	uint8_t *buf;
	size_t len;
	int r;
};

static void *flood_send(void *arg)
{
	struct flood *f = arg;
	struct vfu_client c = cl;

	c.timeout_ms = 20000;
	f->r = vfu_client_send_bytes(&c, f->buf, f->len, NULL, 0);
	return NULL;
}

/*
 * A client that does not read its replies for a while: the remote's output
 * fills, it stops taking input, and once the client reads again every
 * request, including those already in the face's buffer, is answered.
 */
START_TEST(replies_resume_after_output_blocks)
{
	enum { N = 40000 };
	size_t one = VFU_HDR_SIZE + VFU_REGION_ACCESS_SIZE;
	struct flood f = { .buf = malloc(N * one), .len = N * one };
	struct vfu_region_access a = { .offset = EDU_REG_IDENT, .region = BAR0, .count = 4 };
	pthread_t th;

	ck_assert_ptr_nonnull(f.buf);
	for (int i = 0; i < N; i++) {
		struct vfu_hdr h = { .msg_id = (uint16_t)i,
				     .cmd = VFU_CMD_REGION_READ,
				     .size = (uint32_t)one };

		vfu_hdr_put(f.buf + i * one, &h);
		memcpy(f.buf + i * one + VFU_HDR_SIZE, &a, sizeof(a));
	}
	ck_assert_int_eq(pthread_create(&th, NULL, flood_send, &f), 0);
	usleep(300000);
	for (int i = 0; i < N; i++) {
		struct vfu_hdr h;
		uint8_t rep[32];
		size_t n = 0;

		ck_assert_msg(vfu_client_recv(&cl, &h, rep, sizeof(rep), &n, NULL, 0, NULL, 3000) ==
				      0,
			      "reply %d of %d did not come", i, N);
		ck_assert_uint_eq(h.msg_id, (uint16_t)i);
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(f.r, 0);
	free(f.buf);
}
END_TEST

#define MSG_GPA	 0x200000u
#define MSG_SIZE 0x10000u

/* Programs one edu DMA of a page; the reply to the command comes before the DMA itself. */
static void edu_dma(uint64_t src, uint64_t dst, uint32_t cmd)
{
	wr64(EDU_REG_DMA_SRC, src);
	wr64(EDU_REG_DMA_DST, dst);
	wr64(EDU_REG_DMA_COUNT, EDU_DMA_BUF_SIZE);
	wr64(EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | cmd);
}

/* The next message must be the remote's DMA request; returns its id. */
static uint16_t take_dma_request(uint16_t cmd, uint64_t addr, uint64_t count, uint8_t *data)
{
	uint8_t *p = malloc(VFU_DMA_ACCESS_SIZE + EDU_DMA_BUF_SIZE);
	struct vfu_dma_access a;
	struct vfu_hdr h;
	size_t n = 0;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, p, VFU_DMA_ACCESS_SIZE + EDU_DMA_BUF_SIZE, &n,
					 NULL, 0, NULL, 2000),
			 0);
	ck_assert_uint_eq(h.cmd, cmd);
	ck_assert_uint_eq(h.flags, VFU_TYPE_COMMAND);
	memcpy(&a, p, sizeof(a));
	ck_assert_uint_eq(a.addr, addr);
	ck_assert_uint_eq(a.count, count);
	ck_assert_uint_eq(n, VFU_DMA_ACCESS_SIZE + (cmd == VFU_CMD_DMA_WRITE ? count : 0));
	if (cmd == VFU_CMD_DMA_WRITE)
		memcpy(data, p + VFU_DMA_ACCESS_SIZE, count);
	free(p);
	return h.msg_id;
}

static void answer_dma(uint16_t id, uint16_t cmd, uint64_t addr, uint64_t count,
		       const uint8_t *data)
{
	uint8_t *p = malloc(VFU_HDR_SIZE + VFU_DMA_ACCESS_SIZE + count);
	struct vfu_hdr h = { .msg_id = id, .cmd = cmd, .flags = VFU_TYPE_REPLY };
	struct vfu_dma_access a = { .addr = addr, .count = count };
	size_t len = VFU_HDR_SIZE + VFU_DMA_ACCESS_SIZE + (cmd == VFU_CMD_DMA_READ ? count : 0);

	ck_assert_ptr_nonnull(p);
	h.size = (uint32_t)len;
	vfu_hdr_put(p, &h);
	memcpy(p + VFU_HDR_SIZE, &a, sizeof(a));
	if (cmd == VFU_CMD_DMA_READ)
		memcpy(p + VFU_HDR_SIZE + VFU_DMA_ACCESS_SIZE, data, count);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, p, len, NULL, 0), 0);
	free(p);
}

START_TEST(dma_by_message_both_ways)
{
	static uint8_t mem[MSG_SIZE];
	uint16_t id;

	for (unsigned i = 0; i < MSG_SIZE; i++)
		mem[i] = (uint8_t)(i * 13 + 1);
	ck_assert_int_eq(vfu_client_dma_map(&cl, MSG_GPA, MSG_SIZE, -1, 0,
					    VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE),
			 0);
	wr(CONFIG, PCI_COMMAND, 2, rd(CONFIG, PCI_COMMAND, 2) | PCI_COMMAND_MASTER);
	for (int round = 0; round < 3; round++) {
		uint64_t from = MSG_GPA + 0x1000 * (round + 1), to = MSG_GPA + 0x8000;

		edu_dma(from, EDU_DMA_BUF_ADDR, 0);
		id = take_dma_request(VFU_CMD_DMA_READ, from, EDU_DMA_BUF_SIZE, NULL);
		answer_dma(id, VFU_CMD_DMA_READ, from, EDU_DMA_BUF_SIZE, mem + (from - MSG_GPA));
		dma_wait();
		edu_dma(EDU_DMA_BUF_ADDR, to, EDU_DMA_CMD_TO_RAM);
		id = take_dma_request(VFU_CMD_DMA_WRITE, to, EDU_DMA_BUF_SIZE,
				      mem + (to - MSG_GPA));
		if (round == 1) {
			/* QEMU's answer to a DMA_WRITE: the bare header. */
			struct vfu_hdr h = { .msg_id = id,
					     .cmd = VFU_CMD_DMA_WRITE,
					     .size = VFU_HDR_SIZE,
					     .flags = VFU_TYPE_REPLY };
			uint8_t b[VFU_HDR_SIZE];

			vfu_hdr_put(b, &h);
			ck_assert_int_eq(vfu_client_send_bytes(&cl, b, sizeof(b), NULL, 0), 0);
		} else {
			answer_dma(id, VFU_CMD_DMA_WRITE, to, EDU_DMA_BUF_SIZE, NULL);
		}
		dma_wait();
		ck_assert_int_eq(memcmp(mem + 0x8000, mem + (from - MSG_GPA), EDU_DMA_BUF_SIZE), 0);
	}
	/* Every transfer succeeded as the device saw it (edu says when one fails). */
	ck_assert_msg(!strstr(remote_log(&rem), "failed"), "remote log: %s", remote_log(&rem));
	ck_assert_int_eq(vfu_client_dma_unmap(&cl, MSG_GPA, MSG_SIZE, 0), 0);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

/*
 * Commands the client sends while the remote waits for its DMA reply are
 * answered after it, in order; a refused or unanswered request fails only
 * that DMA (bounded), and a read-only range is never written.
 */
START_TEST(dma_by_message_waits_errors_bounds)
{
	static uint8_t mem[EDU_DMA_BUF_SIZE];
	struct vfu_region_access a = { .offset = EDU_REG_IDENT, .region = BAR0, .count = 4 };
	struct vfu_hdr h;
	uint8_t rep[32];
	uint16_t id, rid;
	size_t n = 0;
	uint32_t v;

	ck_assert_int_eq(vfu_client_dma_map(&cl, MSG_GPA, MSG_SIZE, -1, 0, VFU_DMA_FLAG_READ), 0);
	wr(CONFIG, PCI_COMMAND, 2, rd(CONFIG, PCI_COMMAND, 2) | PCI_COMMAND_MASTER);

	edu_dma(MSG_GPA, EDU_DMA_BUF_ADDR, 0);
	id = take_dma_request(VFU_CMD_DMA_READ, MSG_GPA, EDU_DMA_BUF_SIZE, NULL);
	/* Our command first, then the reply: the command waits behind the DMA. */
	ck_assert_int_eq(vfu_client_send(&cl, VFU_CMD_REGION_READ, 0, &a, sizeof(a), NULL, 0, &rid),
			 0);
	ck_assert(vfu_client_quiet(&cl, 100));
	answer_dma(id, VFU_CMD_DMA_READ, MSG_GPA, EDU_DMA_BUF_SIZE, mem);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, rep, sizeof(rep), &n, NULL, 0, NULL, 2000), 0);
	ck_assert_uint_eq(h.msg_id, rid);
	memcpy(&v, rep + 16, 4);
	ck_assert_uint_eq(v, EDU_IDENT);
	dma_wait();

	/* An error reply fails the DMA; the device finishes and answers. */
	edu_dma(MSG_GPA, EDU_DMA_BUF_ADDR, 0);
	id = take_dma_request(VFU_CMD_DMA_READ, MSG_GPA, EDU_DMA_BUF_SIZE, NULL);
	h = (struct vfu_hdr){ .msg_id = id,
			      .cmd = VFU_CMD_DMA_READ,
			      .size = VFU_HDR_SIZE,
			      .flags = VFU_TYPE_REPLY | VFU_FLAG_ERROR,
			      .error_no = EIO };
	vfu_hdr_put(rep, &h);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, rep, VFU_HDR_SIZE, NULL, 0), 0);
	dma_wait();

	/* No reply at all: the remote gives up after its bound and carries on. */
	edu_dma(MSG_GPA, EDU_DMA_BUF_ADDR, 0);
	id = take_dma_request(VFU_CMD_DMA_READ, MSG_GPA, EDU_DMA_BUF_SIZE, NULL);
	usleep(1200 * 1000);
	dma_wait();
	/* The late reply answers nothing now: dropped. */
	answer_dma(id, VFU_CMD_DMA_READ, MSG_GPA, EDU_DMA_BUF_SIZE, mem);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_IDENT, 4), EDU_IDENT);

	/* Read-only: the device's write never becomes a request. */
	edu_dma(EDU_DMA_BUF_ADDR, MSG_GPA, EDU_DMA_CMD_TO_RAM);
	ck_assert(vfu_client_quiet(&cl, QUIET_MS));
	dma_wait();
	/* The three refused transfers are the device's to report. */
	ck_assert(remote_wait_log(&rem, "errno 5", 2000));
	ck_assert(remote_wait_log(&rem, "within the bound", 2000));
	ck_assert(remote_wait_log(&rem, "read-only", 2000));
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

static int feature(uint32_t flags, const void *data, size_t dlen, void *out, size_t room, size_t *n)
{
	uint8_t req[64];
	struct vfu_device_feature f = { .argsz = sizeof(req), .flags = flags };

	memcpy(req, &f, sizeof(f));
	if (dlen)
		memcpy(req + sizeof(f), data, dlen);
	return vfu_client_call(&cl, VFU_CMD_DEVICE_FEATURE, req, sizeof(f) + dlen, NULL, 0, out,
			       room, n);
}

static uint32_t mig_state(void)
{
	uint8_t rep[64];
	struct vfu_mig_state ms;
	size_t n = 0;

	ck_assert_int_eq(feature(VFU_FEATURE_GET | VFU_FEATURE_MIG_DEVICE_STATE, NULL, 0, rep,
				 sizeof(rep), &n),
			 0);
	ck_assert_uint_eq(n, 16);
	memcpy(&ms, rep + 8, sizeof(ms));
	return ms.device_state;
}

static void mig_set(uint32_t state)
{
	struct vfu_mig_state ms = { .device_state = state };
	uint8_t rep[64];
	size_t n = 0;

	ck_assert_int_eq(feature(VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE, &ms, sizeof(ms),
				 rep, sizeof(rep), &n),
			 0);
	ck_assert_uint_eq(mig_state(), state);
}

/* The whole stream in pieces of 1 KiB: a short piece is the end. */
static size_t mig_read_all(uint8_t *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		struct vfu_mig_data m = { .argsz = 8 + 1024, .size = 1024 };
		uint8_t rep[8 + 1024];
		size_t n = 0;

		ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_MIG_DATA_READ, &m, sizeof(m), NULL, 0,
						 rep, sizeof(rep), &n),
				 0);
		memcpy(&m, rep, sizeof(m));
		ck_assert_uint_eq(n, 8 + m.size);
		ck_assert_uint_eq(m.argsz, 8 + m.size);
		ck_assert_uint_le(len + m.size, cap);
		memcpy(buf + len, rep + 8, m.size);
		len += m.size;
		if (m.size < 1024)
			return len;
	}
}

static void mig_write_all(const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len; off += 700) {
		size_t k = len - off < 700 ? len - off : 700;
		uint8_t req[8 + 700];
		struct vfu_mig_data m = { .argsz = 8, .size = (uint32_t)k };

		memcpy(req, &m, sizeof(m));
		memcpy(req + 8, buf + off, k);
		ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_MIG_DATA_WRITE, req, 8 + k, NULL, 0,
						 NULL, 0, NULL),
				 0);
	}
}

static void factorial(uint32_t n)
{
	int left = POLL_MS;

	wr(BAR0, EDU_REG_FACTORIAL, 4, n);
	while ((rd(BAR0, EDU_REG_STATUS, 4) & EDU_STATUS_COMPUTING) && left-- > 0)
		usleep(1000);
}

/*
 * Migration through DEVICE_FEATURE and MIG_DATA_*: edu's state saved in
 * STOP_COPY, the device reset and changed, the state loaded in RESUMING,
 * and the device running as it was.
 */
START_TEST(migration_round_trip)
{
	static uint8_t stream[256 * 1024];
	uint8_t rep[64];
	uint64_t flags;
	size_t n = 0, len;

	ck_assert_int_eq(
		feature(VFU_FEATURE_GET | VFU_FEATURE_MIGRATION, NULL, 0, rep, sizeof(rep), &n), 0);
	ck_assert_uint_eq(n, 16);
	memcpy(&flags, rep + 8, sizeof(flags));
	ck_assert(flags & VFU_MIGRATION_STOP_COPY);
	ck_assert(!(flags & VFU_MIGRATION_P2P)); /* not used in vfio-user */
	ck_assert_int_eq(feature(VFU_FEATURE_PROBE | VFU_FEATURE_GET | VFU_FEATURE_SET |
					 VFU_FEATURE_MIG_DEVICE_STATE,
				 NULL, 0, rep, sizeof(rep), &n),
			 0);
	ck_assert_uint_eq(n, 8);
	ck_assert_uint_eq(mig_state(), BACKEND_MIG_RUNNING);

	wr(BAR0, EDU_REG_LIVENESS, 4, 0x1111);
	factorial(6);
	mig_set(BACKEND_MIG_STOP_COPY);
	len = mig_read_all(stream, sizeof(stream));
	ck_assert_uint_gt(len, 0);
	mig_set(BACKEND_MIG_STOP);

	ck_assert_int_eq(vfu_client_reset(&cl), 0);
	ck_assert_uint_eq(mig_state(), BACKEND_MIG_RUNNING);
	wr(BAR0, EDU_REG_LIVENESS, 4, 0x2222);
	factorial(3);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_FACTORIAL, 4), 6);

	mig_set(BACKEND_MIG_STOP);
	mig_set(BACKEND_MIG_RESUMING);
	mig_write_all(stream, len);
	mig_set(BACKEND_MIG_STOP);
	mig_set(BACKEND_MIG_RUNNING);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_LIVENESS, 4), ~0x1111u);
	ck_assert_uint_eq(rd(BAR0, EDU_REG_FACTORIAL, 4), 720);
	remote_expect_fds(&rem, rem.baseline_fds);
}
END_TEST

/* ---- GET_REGION_IO_FDS ---- */

static void close_all(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

START_TEST(io_fds_doorbell_raises_intx)
{
	struct vfu_sub_region_ioeventfd sub[2];
	struct vfu_region_io_fds h;
	int fds[VFU_CLIENT_MAX_FDS], efd = testutil_eventfd();
	size_t nfds = 0;
	uint64_t one = 1;

	ck_assert_int_eq(set_trigger(0, efd), 0);
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, BAR0, 256, &h, sub, 2, fds, &nfds), 0);
	ck_assert_uint_eq(h.argsz, VFU_REGION_IO_FDS_SIZE + VFU_SUB_REGION_IO_FD_SIZE);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_uint_eq(h.index, BAR0);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(nfds, 1);
	ck_assert_uint_eq(sub[0].offset, EDU_REG_IRQ_RAISE);
	ck_assert_uint_eq(sub[0].size, 4);
	ck_assert_uint_eq(sub[0].fd_index, 0);
	ck_assert_uint_eq(sub[0].type, VFU_IO_FD_TYPE_IOEVENTFD);
	ck_assert_uint_eq(sub[0].flags, VFU_IOEVENTFD_FLAG_DATAMATCH);
	ck_assert_uint_eq(sub[0].datamatch, EDU_IRQ_FACT);
	/* The remote holds the INTx trigger and its own end of the doorbell. */
	remote_expect_fds(&rem, rem.baseline_fds + 2);
	expect_quiet(efd, "before the doorbell");
	/* KVM's part: the guest wrote datamatch there, KVM signals the eventfd. No message. */
	ck_assert_int_eq(write(fds[0], &one, sizeof(one)), (ssize_t)sizeof(one));
	expect_signal(efd, "doorbell");
	ck_assert_uint_eq(rd(BAR0, EDU_REG_IRQ_STATUS, 4), EDU_IRQ_FACT);
	wr(BAR0, EDU_REG_IRQ_ACK, 4, EDU_IRQ_FACT);
	ck_assert_int_eq(intx_unmask(), 0);
	expect_quiet(efd, "after ack and unmask");
	/* Asked again: the same eventfd, the set made once. */
	{
		int again[VFU_CLIENT_MAX_FDS];
		size_t n2 = 0;

		ck_assert_int_eq(vfu_client_region_io_fds(&cl, BAR0, 256, &h, sub, 2, again, &n2),
				 0);
		ck_assert_uint_eq(n2, 1);
		ck_assert_int_eq(testutil_same_file(fds[0], again[0]), 1);
		close_all(again, n2);
	}
	close_all(fds, nfds);
	close(efd);
	remote_expect_fds(&rem, rem.baseline_fds + 2);
	/* The connection's end takes the set with it: its socket, the trigger and the eventfd go. */
	vfu_client_close(&cl);
	remote_expect_fds(&rem, rem.baseline_fds - 1);
}
END_TEST

START_TEST(io_fds_short_argsz_and_empty_regions)
{
	struct vfu_sub_region_ioeventfd sub[1];
	struct vfu_region_io_fds h;
	int fds[VFU_CLIENT_MAX_FDS];
	size_t nfds = 9;

	/* Room for the fixed part only: the size to come back with, the count, nothing else. */
	ck_assert_int_eq(
		vfu_client_region_io_fds(&cl, BAR0, VFU_REGION_IO_FDS_SIZE, &h, sub, 1, fds, &nfds),
		0);
	ck_assert_uint_eq(h.argsz, VFU_REGION_IO_FDS_SIZE + VFU_SUB_REGION_IO_FD_SIZE);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(nfds, 0);
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, BAR0, VFU_REGION_IO_FDS_SIZE + 39, &h, sub,
						  1, fds, &nfds),
			 0);
	ck_assert_uint_eq(h.argsz, VFU_REGION_IO_FDS_SIZE + VFU_SUB_REGION_IO_FD_SIZE);
	ck_assert_uint_eq(nfds, 0);
	/* Config space has no doorbells; BAR1, which edu lacks, is no region to ask about. */
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, CONFIG, 4096, &h, sub, 1, fds, &nfds), 0);
	ck_assert_uint_eq(h.argsz, VFU_REGION_IO_FDS_SIZE);
	ck_assert_uint_eq(h.count, 0);
	ck_assert_uint_eq(h.index, CONFIG);
	ck_assert_uint_eq(nfds, 0);
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, 1, 4096, &h, sub, 1, fds, &nfds), EINVAL);
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, 9, 4096, &h, sub, 1, fds, &nfds), EINVAL);
	ck_assert_uint_eq(nfds, 0);
	/* The first ask made the set (edu's one eventfd), whatever it returned. */
	remote_expect_fds(&rem, rem.baseline_fds + 1);
}
END_TEST

/* A client that states no max_msg_fds takes one descriptor a message: edu's one doorbell fits. */
START_TEST(io_fds_default_max_msg_fds)
{
	struct vfu_sub_region_ioeventfd sub[1];
	struct vfu_region_io_fds h;
	int fds[VFU_CLIENT_MAX_FDS];
	size_t nfds = 0;

	vfu_client_close(&cl);
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_version(&cl, NULL), 0);
	ck_assert_int_eq(vfu_client_region_io_fds(&cl, BAR0, 4096, &h, sub, 1, fds, &nfds), 0);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(nfds, 1);
	close_all(fds, nfds);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vfio_user");
	TCase *t = tcase_create("face");

	tcase_set_timeout(t, 60);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, version_answers_qemu);
	tcase_add_test(t, version_without_caps);
	tcase_add_test(t, version_reply_fits_qemus_buffer);
	tcase_add_test(t, device_region_irq_info);
	tcase_add_test(t, edu_identity_liveness_factorial);
	tcase_add_test(t, posted_and_multi_writes_in_order);
	tcase_add_test(t, dma_through_memfd_byte_for_byte);
	tcase_add_test(t, dma_overlap_message_ranges_unmap_all);
	tcase_add_test(t, dma_by_message_both_ways);
	tcase_add_test(t, dma_by_message_waits_errors_bounds);
	tcase_add_test(t, intx_trigger_ack_unmask_repeatedly);
	tcase_add_test(t, intx_unmask_reasserts_held_line);
	tcase_add_test(t, intx_unmask_by_eventfd_and_bool);
	tcase_add_test(t, msi_eventfd_mask_unmask);
	tcase_add_test(t, reset_back_to_power_on);
	tcase_add_test(t, migration_round_trip);
	tcase_add_test(t, split_message_waits_for_its_rest);
	tcase_add_test(t, pipelined_requests_all_answered);
	tcase_add_test(t, replies_resume_after_output_blocks);
	tcase_add_test(t, io_fds_doorbell_raises_intx);
	tcase_add_test(t, io_fds_short_argsz_and_empty_regions);
	tcase_add_test(t, io_fds_default_max_msg_fds);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return testutil_run_suite(suite());
}
