/*
 * fuzz_seeds' vfio-user part: OUTDIR/vfio_user/seed-*, for fuzz_vfio_user.
 * Whole sessions the way QEMU's vfio-user-pci talks (VERSION, info, DMA_MAP
 * of a memfd, edu's DMA, INTx with unmask, MSI, posted and multi writes,
 * reset; migration), the same cut at odd places across records, and the kinds of
 * message tests/integration/test_vfio_user_bad_input.c refuses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edu.h"
#include "fuzz_input.h"
#include "seed_writer.h"
#include "vfio_user.h"

#define EVENTFD	     FUZZ_KIND(FUZZ_FD_EVENTFD, 0)
#define MEMFD(pages) FUZZ_KIND(FUZZ_FD_MEMFD_SEALED, (pages)-1)
#define BAR0	     0u
#define CONFIG	     7u

void write_vfio_user(const char *root);

static const char qemu_caps[] =
	"{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"
	"\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"
	"\"write_multiple\":true}}";

static struct {
	uint16_t id;
	size_t split; /* 0: one record per message; else cut each after this many bytes */
} sd;

/* One message (header from cmd, flags, len), cut across records when sd.split says so. */
static void msg_flags(uint16_t cmd, uint32_t flags, const void *p, size_t len, const uint8_t *kinds,
		      size_t nk, uint8_t ctl)
{
	uint8_t buf[VFU_HDR_SIZE + 4096];
	struct vfu_hdr h = { .msg_id = sd.id++,
			     .cmd = cmd,
			     .size = (uint32_t)(VFU_HDR_SIZE + len),
			     .flags = flags };

	if (len > sizeof(buf) - VFU_HDR_SIZE)
		seed_die("vfio_user message too large");
	vfu_hdr_put(buf, &h);
	if (len)
		memcpy(buf + VFU_HDR_SIZE, p, len);
	if (sd.split && sd.split < VFU_HDR_SIZE + len) {
		seed_record(0, kinds, nk, buf, sd.split);
		seed_record(ctl, NULL, 0, buf + sd.split, VFU_HDR_SIZE + len - sd.split);
	} else {
		seed_record(ctl, kinds, nk, buf, VFU_HDR_SIZE + len);
	}
}

static void msg(uint16_t cmd, const void *p, size_t len)
{
	msg_flags(cmd, 0, p, len, NULL, 0, 0);
}

static void begin(void)
{
	seed_begin();
	sd.id = 1;
}

static void version(const char *caps)
{
	uint8_t buf[512] = { 0 };
	size_t n = caps ? strlen(caps) + 1 : 0;

	memcpy(buf + 4, caps ? caps : "", n);
	msg(VFU_CMD_VERSION, buf, 4 + n);
}

static void rd(uint32_t region, uint64_t off, uint32_t count)
{
	struct vfu_region_access a = { .offset = off, .region = region, .count = count };

	msg(VFU_CMD_REGION_READ, &a, sizeof(a));
}

static void wr_flags(uint32_t region, uint64_t off, uint32_t count, uint64_t v, uint32_t flags)
{
	uint8_t buf[VFU_REGION_ACCESS_SIZE + 8];
	struct vfu_region_access a = { .offset = off, .region = region, .count = count };

	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), &v, 8);
	msg_flags(VFU_CMD_REGION_WRITE, flags, buf, sizeof(a) + count, NULL, 0, 0);
}

static void wr(uint32_t region, uint64_t off, uint32_t count, uint64_t v)
{
	wr_flags(region, off, count, v, 0);
}

static void set_irqs(uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
		     const uint8_t *kinds, size_t nk, uint8_t ctl)
{
	struct vfu_irq_set s = { .argsz = VFU_IRQ_SET_SIZE,
				 .flags = flags,
				 .index = index,
				 .start = start,
				 .count = count };

	msg_flags(VFU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), kinds, nk, ctl);
}

static void dma_map(uint64_t addr, uint64_t size, uint32_t flags, uint8_t kind)
{
	struct vfu_dma_map m = { .argsz = 32, .flags = flags, .addr = addr, .size = size };

	msg_flags(VFU_CMD_DMA_MAP, 0, &m, sizeof(m), &kind, kind == 0xff ? 0 : 1, 0);
}

static void dma_unmap(uint64_t addr, uint64_t size, uint32_t flags)
{
	struct vfu_dma_unmap u = { .argsz = 24, .flags = flags, .addr = addr, .size = size };

	msg(VFU_CMD_DMA_UNMAP, &u, sizeof(u));
}

static void session(void)
{
	static const uint8_t ev = EVENTFD;
	struct vfu_device_info d = { .argsz = 16 };
	uint8_t multi[8 + 2 * 24] = { 0 };
	uint64_t two = 2;
	struct vfu_write_one w1 = { .offset = EDU_REG_LIVENESS, .region = BAR0, .count = 4 };

	version(qemu_caps);
	msg(VFU_CMD_DEVICE_GET_INFO, &d, sizeof(d));
	for (uint32_t i = 0; i < 9; i++) {
		struct vfu_region_info r = { .argsz = 32, .index = i };

		msg(VFU_CMD_DEVICE_GET_REGION_INFO, &r, sizeof(r));
	}
	for (uint32_t i = 0; i < 5; i++) {
		struct vfu_irq_info q = { .argsz = 16, .index = i };

		msg(VFU_CMD_DEVICE_GET_IRQ_INFO, &q, sizeof(q));
	}
	rd(CONFIG, 0, 256);
	rd(BAR0, EDU_REG_IDENT, 4);
	wr(BAR0, EDU_REG_LIVENESS, 4, 0x12345678);
	wr_flags(BAR0, EDU_REG_LIVENESS, 4, 0x55, VFU_FLAG_NO_REPLY);
	memcpy(multi, &two, 8);
	memcpy(multi + 8, &w1, 24);
	w1.offset = EDU_REG_FACTORIAL;
	w1.data[0] = 5;
	memcpy(multi + 32, &w1, 24);
	msg_flags(VFU_CMD_REGION_WRITE_MULTI, VFU_FLAG_NO_REPLY, multi, sizeof(multi), NULL, 0, 0);
	rd(BAR0, EDU_REG_FACTORIAL, 4);
	/* Guest RAM by descriptor, and a range served by message. */
	dma_map(0x100000, 0x8000, VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, MEMFD(8));
	dma_map(0x400000, 0x1000, VFU_DMA_FLAG_READ, 0xff);
	wr(CONFIG, 4, 2, 0x0006);
	wr(BAR0, EDU_REG_DMA_SRC, 8, 0x100000);
	wr(BAR0, EDU_REG_DMA_DST, 8, EDU_DMA_BUF_ADDR);
	wr(BAR0, EDU_REG_DMA_COUNT, 8, 0x100);
	wr(BAR0, EDU_REG_DMA_CMD, 8, EDU_DMA_CMD_RUN | EDU_DMA_CMD_IRQ);
	rd(BAR0, EDU_REG_DMA_CMD, 4);
	wr(BAR0, EDU_REG_DMA_SRC, 8, EDU_DMA_BUF_ADDR);
	wr(BAR0, EDU_REG_DMA_DST, 8, 0x104000);
	wr(BAR0, EDU_REG_DMA_CMD, 8, EDU_DMA_CMD_RUN | EDU_DMA_CMD_TO_RAM);
	rd(BAR0, EDU_REG_DMA_CMD, 4);
	/* INTx: trigger, raise, QEMU's EOI unmask, ack; the unmask eventfd poked. */
	set_irqs(0, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 0, 1, &ev, 1, 0);
	set_irqs(0, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK, 0, 1, &ev, 1, 0);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	set_irqs(0, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK, 0, 1, NULL, 0,
		 FUZZ_CTL_POKE);
	wr(BAR0, EDU_REG_IRQ_ACK, 4, 1);
	set_irqs(0, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 0, 1, NULL, 0, 0);
	/* MSI. */
	set_irqs(1, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 0, 1, &ev, 1, 0);
	wr(CONFIG, EDU_MSI_CAP_OFFSET + 2, 2, 1);
	wr(BAR0, EDU_REG_IRQ_RAISE, 4, 1);
	set_irqs(1, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL, 0, 0);
	dma_unmap(0x100000, 0x8000, 0);
	msg(VFU_CMD_DEVICE_RESET, NULL, 0);
	dma_unmap(0, 0, VFU_DMA_UNMAP_FLAG_ALL);
}

static void feature(uint32_t flags, const void *data, size_t dlen)
{
	uint8_t buf[64];
	struct vfu_device_feature f = { .argsz = sizeof(buf), .flags = flags };

	memcpy(buf, &f, sizeof(f));
	if (dlen)
		memcpy(buf + sizeof(f), data, dlen);
	msg(VFU_CMD_DEVICE_FEATURE, buf, sizeof(f) + dlen);
}

static void mig_state(uint32_t state)
{
	struct vfu_mig_state ms = { .device_state = state };

	feature(VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE, &ms, sizeof(ms));
}

/* Save in STOP_COPY, and a resume of a stream the fuzzer may then mutate. */
static void migration(void)
{
	struct vfu_mig_data rdq = { .argsz = 8 + 4096, .size = 4096 };
	uint8_t w[8 + 64] = { 0 };
	struct vfu_mig_data wrq = { .argsz = 8, .size = 64 };

	version(qemu_caps);
	feature(VFU_FEATURE_GET | VFU_FEATURE_MIGRATION, NULL, 0);
	feature(VFU_FEATURE_GET | VFU_FEATURE_MIG_DEVICE_STATE, NULL, 0);
	wr(BAR0, EDU_REG_LIVENESS, 4, 7);
	mig_state(3); /* STOP_COPY */
	msg(VFU_CMD_MIG_DATA_READ, &rdq, sizeof(rdq));
	msg(VFU_CMD_MIG_DATA_READ, &rdq, sizeof(rdq));
	mig_state(1);
	mig_state(4); /* RESUMING */
	memcpy(w, &wrq, sizeof(wrq));
	msg(VFU_CMD_MIG_DATA_WRITE, w, sizeof(w));
	mig_state(1); /* refused: the zeros above put the device in ERROR */
	msg(VFU_CMD_DEVICE_RESET, NULL, 0);
	mig_state(6); /* PRE_COPY */
	msg(VFU_CMD_MIG_DATA_READ, &rdq, sizeof(rdq));
	mig_state(2);
}

static void bad(void)
{
	static const uint8_t ev9[9] = { EVENTFD, EVENTFD, EVENTFD, EVENTFD, EVENTFD,
					EVENTFD, EVENTFD, EVENTFD, EVENTFD };
	struct vfu_hdr h = { .msg_id = 900, .cmd = VFU_CMD_DEVICE_GET_INFO, .size = 8 };
	struct vfu_region_info ri = { .argsz = 31 };
	uint8_t hb[VFU_HDR_SIZE];

	version(NULL);
	vfu_hdr_put(hb, &h);
	seed_record(0, NULL, 0, hb, sizeof(hb)); /* size below the header */
	msg(99, NULL, 0);
	msg_flags(VFU_CMD_DEVICE_RESET, VFU_FLAG_ERROR, NULL, 0, NULL, 0, 0);
	msg_flags(VFU_CMD_DEVICE_RESET, VFU_TYPE_REPLY, NULL, 0, NULL, 0, 0);
	msg(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
	rd(BAR0, EDU_BAR0_SIZE - 4, 8);
	rd(9, 0, 4);
	rd(BAR0, 0, 0);
	wr_flags(BAR0, EDU_BAR0_SIZE, 4, 1, VFU_FLAG_NO_REPLY);
	dma_map(0x100800, 0x1000, VFU_DMA_FLAG_READ, MEMFD(1));
	dma_map(0x100000, 0x1000, VFU_DMA_FLAG_READ, FUZZ_KIND(FUZZ_FD_MEMFD_UNSEALED, 0));
	dma_map(0x100000, 0x1000, VFU_DMA_FLAG_READ, EVENTFD);
	dma_map(0x100000, 0x1000, VFU_DMA_FLAG_READ, MEMFD(1));
	dma_map(0x100000, 0x1000, VFU_DMA_FLAG_READ, MEMFD(1)); /* overlap */
	dma_unmap(0x100000, 0x800, 0);
	set_irqs(1, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 0, 9, ev9, 9, 0);
	set_irqs(0, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK, 0, 2, NULL, 0, 0);
	set_irqs(0, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_DATA_BOOL, 0, 1, NULL, 0, 0);
	set_irqs(0, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_MASK, 0, 1, ev9, 1, 0);
	msg_flags(VFU_CMD_DEVICE_RESET, 0, NULL, 0, ev9, 1, 0);
	msg(VFU_CMD_VERSION, "\0\0\0\0", 4);
}

void write_vfio_user(const char *root)
{
	seed_open_dir(root, "vfio_user");
	begin();
	session();
	seed_finish("session");
	sd.split = 5;
	begin();
	session();
	seed_finish("session-split5");
	sd.split = 19;
	begin();
	session();
	seed_finish("session-split19");
	sd.split = 0;
	begin();
	bad();
	seed_finish("bad");
	begin();
	migration();
	seed_finish("migration");
	begin();
	version("{\"capabilities\":{\"max_msg_fds\":\"8\"}}");
	version("{\"capabilities\":{}}x");
	msg(VFU_CMD_DEVICE_GET_INFO, (struct vfu_device_info[]){ { .argsz = 16 } }, 16);
	version(qemu_caps);
	seed_finish("version-bad-then-good");
}
