/*
 * The vfio-user face's bad-input table: malformed messages of every kind,
 * raw, to a real mpdev-remote --face vfio-user. Each row must get the error
 * reply with the right errno (or, where the client asked for none, no reply
 * at all), the remote must answer the next request, and its descriptor
 * count must come back to the baseline taken after VERSION: every
 * descriptor that came with a refused message is closed.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu.h"
#include "remote_fixture.h"
#include "testutil.h"
#include "vfio_user_client.h"

#define NO_REPLY_EXPECTED (-1)
#define GPA		  0x100000u
#define MAP_SIZE	  0x10000u
#define MAX_MSG		  (16u + 16u + (1u << 20)) /* what the face takes at most */

static struct remote rem;
static struct vfu_client cl;

static void start(bool greet)
{
	static const char *const args[] = { "--face", "vfio-user", NULL };

	remote_start(&rem, &(struct remote_opts){ .listen = true,
						  .greet = REMOTE_UNGREETED,
						  .capture_stderr = true,
						  .args = args });
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	if (greet)
		ck_assert_int_eq(vfu_client_version(&cl, VFU_CLIENT_QEMU_CAPS), 0);
	remote_take_baseline(&rem);
}

static void setup(void)
{
	start(true);
}

static void teardown(void)
{
	vfu_client_close(&cl);
	remote_stop(&rem);
}

/* The remote still answers, in order, and holds no descriptor of ours. */
static void expect_alive(void)
{
	struct vfu_device_info d;

	ck_assert_int_eq(vfu_client_device_info(&cl, &d), 0);
	ck_assert_uint_eq(d.num_regions, 9);
	remote_expect_fds(&rem, rem.baseline_fds);
}

/* The next message is the error reply to id with errno want. */
static const char *row_name = "";

static void expect_error(uint16_t id, uint16_t cmd, int want)
{
	struct vfu_hdr h;
	size_t n = 0;
	int r = vfu_client_recv(&cl, &h, NULL, 0, &n, NULL, 0, NULL, 2000);

	ck_assert_msg(r == 0, "%s: no reply: %s", row_name, strerror(-r));
	ck_assert_uint_eq(h.msg_id, id);
	ck_assert_uint_eq(h.cmd, cmd);
	ck_assert_msg(h.flags == (VFU_TYPE_REPLY | VFU_FLAG_ERROR), "%s: flags 0x%x", row_name,
		      h.flags);
	ck_assert_msg(h.error_no == (uint32_t)want, "%s: errno %u (%s), expected %d (%s)", row_name,
		      h.error_no, strerror((int)h.error_no), want, strerror(want));
	/* An error reply is only the header. */
	ck_assert_uint_eq(h.size, VFU_HDR_SIZE);
	ck_assert_uint_eq(n, 0);
}

/* --- the table --- */

enum fdkind {
	FDS_NONE,
	FDS_EVENTFD,   /* one */
	FDS_EVENTFD2,  /* two */
	FDS_EVENTFD9,  /* nine: one more than we announce */
	FDS_MEMFD,     /* sealed, MAP_SIZE */
	FDS_UNSEALED,  /* memfd without F_SEAL_SHRINK */
	FDS_MEMFD_EFD, /* a memfd and an eventfd */
};

struct msg {
	uint16_t cmd;
	uint32_t flags;
	uint32_t size; /* with size_set; else header + len */
	bool size_set;
	uint8_t p[256];
	size_t len;
	enum fdkind fds;
};

/* Named, so that PUT's two mentions are one type. */
struct three_u32 {
	uint32_t a[3];
};
struct five_u32 {
	uint32_t a[5];
};
struct feat_state {
	struct vfu_device_feature f;
	struct vfu_mig_state ms;
};
struct one_multi {
	uint64_t n;
	struct vfu_write_one w;
};

struct row {
	const char *name;
	void (*build)(struct msg *m);
	int expect;  /* errno of the error reply, 0 for success, NO_REPLY_EXPECTED */
	bool premap; /* a memfd mapped at GPA first */
};

#define PUT(m, ...)                                                                                \
	do {                                                                                       \
		__typeof__(__VA_ARGS__) v_ = __VA_ARGS__;                                          \
		memcpy((m)->p, &v_, sizeof(v_));                                                   \
		(m)->len = sizeof(v_);                                                             \
	} while (0)

#define IRQSET(m, fl, idx, st, cnt)                                                                \
	PUT(m,                                                                                     \
	    (struct vfu_irq_set){                                                                  \
		    .argsz = 20, .flags = (fl), .index = (idx), .start = (st), .count = (cnt) })
#define TRIG_EFD    (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER)
#define UNMASK_NONE (VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK)

#define ACCESS(m, reg, off, cnt)                                                                   \
	PUT(m, (struct vfu_region_access){ .offset = (off), .region = (reg), .count = (cnt) })
#define DMAMAP(m, fl, off, a, sz)                                                                  \
	PUT(m, (struct vfu_dma_map){                                                               \
		       .argsz = 32, .flags = (fl), .offset = (off), .addr = (a), .size = (sz) })
#define DMAUNMAP(m, fl, a, sz)                                                                     \
	PUT(m, (struct vfu_dma_unmap){ .argsz = 24, .flags = (fl), .addr = (a), .size = (sz) })
#define RW		 (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)
#define FEAT(m, asz, fl) PUT(m, (struct vfu_device_feature){ .argsz = (asz), .flags = (fl) })
#define FEATSTATE(m, st)                                                                           \
	PUT(m, (struct feat_state){ { 16, VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE },        \
				    { (st), 0 } })

/* X(name, expected errno, premap, body building *m) */
#define ROWS(X)                                                                                    \
	X(size_below_header, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_INFO; m->size = 8;         \
	  m->size_set = true;)                                                                     \
	X(size_zero, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET; m->size = 0;                    \
	  m->size_set = true;)                                                                     \
	X(unknown_command, ENOSYS, false, m->cmd = 99;)                                            \
	X(command_zero, ENOSYS, false, m->cmd = 0;)                                                \
	X(command_past_table, ENOSYS, false, m->cmd = 0xffff;)                                     \
	X(dirty_pages_unsupported, ENOTSUP, false, m->cmd = VFU_CMD_DIRTY_PAGES;)                  \
	X(dma_read_from_client, ENOTSUP, false, m->cmd = VFU_CMD_DMA_READ;)                        \
	X(feature_empty, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;)                          \
	X(feature_unknown, ENOTTY, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                         \
	  FEAT(m, 16, VFU_FEATURE_GET | 6);)                                                       \
	X(feature_get_and_set, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                     \
	  FEAT(m, 16, VFU_FEATURE_GET | VFU_FEATURE_SET | 1);)                                     \
	X(feature_no_operation, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE; FEAT(m, 16, 1);)   \
	X(feature_unknown_bit, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                     \
	  FEAT(m, 16, (1u << 19) | VFU_FEATURE_GET | 1);)                                          \
	X(feature_argsz_below_header, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;              \
	  FEAT(m, 4, VFU_FEATURE_GET | 1);)                                                        \
	X(feature_migration_set, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                   \
	  FEAT(m, 16, VFU_FEATURE_SET | 1);)                                                       \
	X(feature_migration_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;           \
	  FEAT(m, 8, VFU_FEATURE_GET | 1);)                                                        \
	X(feature_state_to_error, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                  \
	  FEATSTATE(m, 0);)                                                                        \
	X(feature_state_to_p2p, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE; FEATSTATE(m, 5);)  \
	X(feature_state_past_end, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                  \
	  FEATSTATE(m, 99);)                                                                       \
	X(feature_state_short_data, EINVAL, false, m->cmd = VFU_CMD_DEVICE_FEATURE;                \
	  FEATSTATE(m, 1); m->len -= 4;)                                                           \
	X(mig_read_while_running, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_READ;                   \
	  PUT(m, (struct vfu_mig_data){ .argsz = 24, .size = 16 });)                               \
	X(mig_read_size_zero, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_READ;                       \
	  PUT(m, (struct vfu_mig_data){ .argsz = 24, .size = 0 });)                                \
	X(mig_read_argsz_short, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_READ;                     \
	  PUT(m, (struct vfu_mig_data){ .argsz = 8, .size = 16 });)                                \
	X(mig_read_past_max, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_READ;                        \
	  PUT(m, (struct vfu_mig_data){ .argsz = 0xffffffffu, .size = (1u << 20) + 1 });)          \
	X(mig_write_not_resuming, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_WRITE;                  \
	  PUT(m, (struct vfu_mig_data){ .argsz = 8, .size = 4 }); m->len += 4;)                    \
	X(mig_write_size_mismatch, EINVAL, false, m->cmd = VFU_CMD_MIG_DATA_WRITE;                 \
	  PUT(m, (struct vfu_mig_data){ .argsz = 8, .size = 8 }); m->len += 4;)                    \
	X(io_fds_empty, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;)                 \
	X(io_fds_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;            \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 15 });)                                      \
	X(io_fds_flags_set, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;              \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .flags = 1 });)                          \
	X(io_fds_count_set, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;              \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .count = 1 });)                          \
	X(io_fds_payload_long, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;           \
	  PUT(m, (struct five_u32){ { 64 } });)                                                    \
	X(io_fds_payload_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;          \
	  PUT(m, (struct three_u32){ { 64 } });)                                                   \
	X(io_fds_index_past_end, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;         \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .index = 9 });)                          \
	X(io_fds_index_huge, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;             \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .index = 0xffffffffu });)                \
	X(io_fds_absent_bar, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;             \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .index = 1 });)                          \
	X(io_fds_with_fd, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;                \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64 }); m->fds = FDS_EVENTFD;)                \
	X(io_fds_no_reply_flag, NO_REPLY_EXPECTED, false,                                          \
	  m->cmd = VFU_CMD_DEVICE_GET_REGION_IO_FDS;                                               \
	  m->flags = VFU_FLAG_NO_REPLY;                                                            \
	  PUT(m, (struct vfu_region_io_fds){ .argsz = 64, .index = 9 });)                          \
	X(type_two, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET; m->flags = 2;)                   \
	X(error_bit_on_command, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET;                      \
	  m->flags = VFU_FLAG_ERROR;)                                                              \
	X(unknown_flag_bit, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET; m->flags = 0x100;)       \
	X(version_again, EINVAL, false, m->cmd = VFU_CMD_VERSION;                                  \
	  PUT(m, (struct vfu_version){ 0, 0 });)                                                   \
	X(info_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_INFO;                       \
	  PUT(m, (struct vfu_device_info){ .argsz = 15 });)                                        \
	X(info_payload_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_INFO;                     \
	  PUT(m, (struct three_u32){ { 16 } });)                                                   \
	X(info_with_fd, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_INFO;                           \
	  PUT(m, (struct vfu_device_info){ .argsz = 16 }); m->fds = FDS_EVENTFD;)                  \
	X(region_info_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_INFO;         \
	  PUT(m, (struct vfu_region_info){ .argsz = 31 });)                                        \
	X(region_info_argsz_huge_is_fine, 0, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_INFO;       \
	  PUT(m, (struct vfu_region_info){ .argsz = 0xffffffffu });)                               \
	X(region_info_index_past_end, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_INFO;      \
	  PUT(m, (struct vfu_region_info){ .argsz = 32, .index = 9 });)                            \
	X(region_info_index_huge, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_REGION_INFO;          \
	  PUT(m, (struct vfu_region_info){ .argsz = 32, .index = 0xffffffffu });)                  \
	X(irq_info_index_past_end, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_IRQ_INFO;            \
	  PUT(m, (struct vfu_irq_info){ .argsz = 16, .index = 5 });)                               \
	X(irq_info_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DEVICE_GET_IRQ_INFO;               \
	  PUT(m, (struct vfu_irq_info){ .argsz = 8 });)                                            \
	X(read_region_past_end, EINVAL, false, m->cmd = VFU_CMD_REGION_READ; ACCESS(m, 9, 0, 4);)  \
	X(read_absent_bar, EINVAL, false, m->cmd = VFU_CMD_REGION_READ; ACCESS(m, 1, 0, 4);)       \
	X(read_offset_past_end, ERANGE, false, m->cmd = VFU_CMD_REGION_READ;                       \
	  ACCESS(m, 0, EDU_BAR0_SIZE, 4);)                                                         \
	X(read_across_end, ERANGE, false, m->cmd = VFU_CMD_REGION_READ;                            \
	  ACCESS(m, 0, EDU_BAR0_SIZE - 4, 8);)                                                     \
	X(read_offset_wraps, ERANGE, false, m->cmd = VFU_CMD_REGION_READ;                          \
	  ACCESS(m, 0, UINT64_MAX - 1, 4);)                                                        \
	X(read_config_past_end, ERANGE, false, m->cmd = VFU_CMD_REGION_READ;                       \
	  ACCESS(m, 7, 4096, 4);)                                                                  \
	X(read_len_zero, EINVAL, false, m->cmd = VFU_CMD_REGION_READ; ACCESS(m, 0, 0, 0);)         \
	X(read_len_past_max, EINVAL, false, m->cmd = VFU_CMD_REGION_READ;                          \
	  ACCESS(m, 0, 0, (1u << 20) + 1);)                                                        \
	X(read_with_data, EINVAL, false, m->cmd = VFU_CMD_REGION_READ; ACCESS(m, 0, 0, 4);         \
	  m->len += 4;)                                                                            \
	X(read_payload_short, EINVAL, false, m->cmd = VFU_CMD_REGION_READ; ACCESS(m, 0, 0, 4);     \
	  m->len = 12;)                                                                            \
	X(write_count_above_data, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE;                    \
	  ACCESS(m, 0, 4, 8); m->len += 4;)                                                        \
	X(write_count_below_data, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE;                    \
	  ACCESS(m, 0, 4, 2); m->len += 4;)                                                        \
	X(write_len_zero, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE; ACCESS(m, 0, 4, 0);)       \
	X(write_absent_rom, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE; ACCESS(m, 6, 0, 4);      \
	  m->len += 4;)                                                                            \
	X(write_posted_refused_quietly, NO_REPLY_EXPECTED, false, m->cmd = VFU_CMD_REGION_WRITE;   \
	  m->flags = VFU_FLAG_NO_REPLY; ACCESS(m, 0, EDU_BAR0_SIZE, 4); m->len += 4;)              \
	X(multi_count_zero, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE_MULTI;                    \
	  PUT(m, (uint64_t){ 0 });)                                                                \
	X(multi_count_mismatch, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE_MULTI;                \
	  PUT(m, (uint64_t){ 2 }); m->len += 24;)                                                  \
	X(multi_entry_too_wide, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE_MULTI;                \
	  PUT(m, (struct one_multi){ 1, { .offset = 4, .region = 0, .count = 9 } });)              \
	X(multi_entry_bad_region, EINVAL, false, m->cmd = VFU_CMD_REGION_WRITE_MULTI;              \
	  PUT(m, (struct one_multi){ 1, { .offset = 4, .region = 3, .count = 4 } });)              \
	X(dma_map_overlap, EEXIST, true, m->cmd = VFU_CMD_DMA_MAP;                                 \
	  DMAMAP(m, RW, 0, GPA + 0x1000, 0x1000); m->fds = FDS_MEMFD;)                             \
	X(dma_map_overlap_by_message, EEXIST, true, m->cmd = VFU_CMD_DMA_MAP;                      \
	  DMAMAP(m, RW, 0, GPA - 0x1000, 0x2000);)                                                 \
	X(dma_map_unaligned, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                              \
	  DMAMAP(m, RW, 0, GPA + 0x800, 0x1000); m->fds = FDS_MEMFD;)                              \
	X(dma_map_unaligned_size, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                         \
	  DMAMAP(m, RW, 0, GPA, 0x1800); m->fds = FDS_MEMFD;)                                      \
	X(dma_map_size_zero, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP; DMAMAP(m, RW, 0, GPA, 0);    \
	  m->fds = FDS_MEMFD;)                                                                     \
	X(dma_map_wraps, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                                  \
	  DMAMAP(m, RW, 0, 0xfffffffffffff000ull, 0x2000); m->fds = FDS_MEMFD;)                    \
	X(dma_map_argsz_short, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                            \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->p[0] = 31; m->fds = FDS_MEMFD;)                      \
	X(dma_map_argsz_long, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                             \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->p[0] = 33; m->fds = FDS_MEMFD;)                      \
	X(dma_map_payload_long, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                           \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->len += 8; m->fds = FDS_MEMFD;)                       \
	X(dma_map_no_access, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                              \
	  DMAMAP(m, 0, 0, GPA, MAP_SIZE); m->fds = FDS_MEMFD;)                                     \
	X(dma_map_unknown_flag, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                           \
	  DMAMAP(m, RW | 4, 0, GPA, MAP_SIZE); m->fds = FDS_MEMFD;)                                \
	X(dma_map_two_fds, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                                \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->fds = FDS_MEMFD_EFD;)                                \
	X(dma_map_eventfd, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                                \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->fds = FDS_EVENTFD;)                                  \
	X(dma_map_unsealed, EPERM, false, m->cmd = VFU_CMD_DMA_MAP;                                \
	  DMAMAP(m, RW, 0, GPA, MAP_SIZE); m->fds = FDS_UNSEALED;)                                 \
	X(dma_map_past_file_end, ERANGE, false, m->cmd = VFU_CMD_DMA_MAP;                          \
	  DMAMAP(m, RW, MAP_SIZE, GPA, MAP_SIZE); m->fds = FDS_MEMFD;)                             \
	X(dma_map_offset_without_fd, EINVAL, false, m->cmd = VFU_CMD_DMA_MAP;                      \
	  DMAMAP(m, RW, 0x1000, GPA, MAP_SIZE);)                                                   \
	X(dma_unmap_size_mismatch, EINVAL, true, m->cmd = VFU_CMD_DMA_UNMAP;                       \
	  DMAUNMAP(m, 0, GPA, MAP_SIZE / 2);)                                                      \
	X(dma_unmap_nothing, ENOENT, false, m->cmd = VFU_CMD_DMA_UNMAP;                            \
	  DMAUNMAP(m, 0, GPA, MAP_SIZE);)                                                          \
	X(dma_unmap_unaligned, EINVAL, true, m->cmd = VFU_CMD_DMA_UNMAP;                           \
	  DMAUNMAP(m, 0, GPA + 1, MAP_SIZE);)                                                      \
	X(dma_unmap_wraps, EINVAL, false, m->cmd = VFU_CMD_DMA_UNMAP;                              \
	  DMAUNMAP(m, 0, 0xfffffffffffff000ull, 0x2000);)                                          \
	X(dma_unmap_dirty_bitmap_flag, EINVAL, true, m->cmd = VFU_CMD_DMA_UNMAP;                   \
	  DMAUNMAP(m, 1, GPA, MAP_SIZE);)                                                          \
	X(dma_unmap_all_with_range, EINVAL, true, m->cmd = VFU_CMD_DMA_UNMAP;                      \
	  DMAUNMAP(m, VFU_DMA_UNMAP_FLAG_ALL, GPA, MAP_SIZE);)                                     \
	X(dma_unmap_argsz_short, EINVAL, true, m->cmd = VFU_CMD_DMA_UNMAP;                         \
	  DMAUNMAP(m, 0, GPA, MAP_SIZE); m->p[0] = 23;)                                            \
	X(irq_count_past_index, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                   \
	  IRQSET(m, UNMASK_NONE, 0, 0, 2);)                                                        \
	X(irq_start_past_index, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                   \
	  IRQSET(m, UNMASK_NONE, 0, 1, 1);)                                                        \
	X(irq_start_wraps, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                        \
	  IRQSET(m, UNMASK_NONE, 1, 0xffffffffu, 2);)                                              \
	X(irq_index_past_end, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                     \
	  IRQSET(m, UNMASK_NONE, 5, 0, 1);)                                                        \
	X(irq_index_without_vectors, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;              \
	  IRQSET(m, TRIG_EFD, 2, 0, 1); m->fds = FDS_EVENTFD;)                                     \
	X(irq_count_huge, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                         \
	  IRQSET(m, UNMASK_NONE, 1, 0, 100000);)                                                   \
	X(irq_two_data_bits, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                      \
	  IRQSET(m, UNMASK_NONE | VFU_IRQ_SET_DATA_BOOL, 0, 0, 1);)                                \
	X(irq_no_data_bit, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                        \
	  IRQSET(m, VFU_IRQ_SET_ACTION_UNMASK, 0, 0, 1);)                                          \
	X(irq_no_action_bit, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                      \
	  IRQSET(m, VFU_IRQ_SET_DATA_NONE, 0, 0, 1);)                                              \
	X(irq_two_actions, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                        \
	  IRQSET(m, UNMASK_NONE | VFU_IRQ_SET_ACTION_MASK, 0, 0, 1);)                              \
	X(irq_unknown_flag, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                       \
	  IRQSET(m, UNMASK_NONE | 0x40, 0, 0, 1);)                                                 \
	X(irq_bool_missing, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                       \
	  IRQSET(m, VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_UNMASK, 0, 0, 1);)                  \
	X(irq_bool_not_bool, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                      \
	  IRQSET(m, VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_UNMASK, 0, 0, 1); m->p[0] = 21;     \
	  m->p[20] = 2; m->len = 21;)                                                              \
	X(irq_none_with_data, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                     \
	  IRQSET(m, UNMASK_NONE, 0, 0, 1); m->p[0] = 21; m->len = 21;)                             \
	X(irq_argsz_mismatch, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                     \
	  IRQSET(m, UNMASK_NONE, 0, 0, 1); m->p[0] = 24;)                                          \
	X(irq_eventfd_count_mismatch, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;             \
	  IRQSET(m, TRIG_EFD, 0, 0, 1); m->fds = FDS_EVENTFD2;)                                    \
	X(irq_too_many_fds, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                       \
	  IRQSET(m, TRIG_EFD, 1, 0, 9); m->fds = FDS_EVENTFD9;)                                    \
	X(irq_memfd_as_eventfd, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;                   \
	  IRQSET(m, TRIG_EFD, 0, 0, 1); m->fds = FDS_MEMFD;)                                       \
	X(irq_fds_without_eventfd_data, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;           \
	  IRQSET(m, UNMASK_NONE, 0, 0, 1); m->fds = FDS_EVENTFD;)                                  \
	X(irq_intx_mask_by_eventfd, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;               \
	  IRQSET(m, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_MASK, 0, 0, 1);                  \
	  m->fds = FDS_EVENTFD;)                                                                   \
	X(irq_count_zero_with_mask, EINVAL, false, m->cmd = VFU_CMD_DEVICE_SET_IRQS;               \
	  IRQSET(m, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 0, 0, 0);)                    \
	X(reset_with_payload, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET;                        \
	  PUT(m, (uint32_t){ 0 });)                                                                \
	X(reset_with_fd, EINVAL, false, m->cmd = VFU_CMD_DEVICE_RESET; m->fds = FDS_EVENTFD;)

#define BUILD(name, e, pm, ...)                                                                    \
	static void build_##name(struct msg *m)                                                    \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}
ROWS(BUILD)
#undef BUILD

#define ENTRY(name, e, pm, ...) { #name, build_##name, e, pm },
static const struct row rows[] = { ROWS(ENTRY) };
#undef ENTRY

static size_t make_fds(enum fdkind k, int *fds)
{
	switch (k) {
	case FDS_NONE:
		return 0;
	case FDS_EVENTFD:
		fds[0] = testutil_eventfd();
		return 1;
	case FDS_EVENTFD2:
		fds[0] = testutil_eventfd();
		fds[1] = testutil_eventfd();
		return 2;
	case FDS_EVENTFD9:
		for (int i = 0; i < 9; i++)
			fds[i] = testutil_eventfd();
		return 9;
	case FDS_MEMFD:
		fds[0] = testutil_memfd(MAP_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
		return 1;
	case FDS_UNSEALED:
		fds[0] = testutil_memfd(MAP_SIZE, 0);
		return 1;
	case FDS_MEMFD_EFD:
		fds[0] = testutil_memfd(MAP_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);
		fds[1] = testutil_eventfd();
		return 2;
	}
	return 0;
}

START_TEST(bad_input_row)
{
	const struct row *row = &rows[_i];

	row_name = row->name;
	struct msg m = { 0 };
	uint8_t buf[VFU_HDR_SIZE + sizeof(m.p)];
	int fds[16];
	size_t nfds;
	struct vfu_hdr h;

	if (row->premap) {
		int mfd = testutil_memfd(MAP_SIZE, F_SEAL_SHRINK | F_SEAL_GROW);

		ck_assert_int_eq(vfu_client_dma_map(&cl, GPA, MAP_SIZE, mfd, 0, RW), 0);
		close(mfd);
		remote_take_baseline(&rem); /* the mapping holds no descriptor, but settle */
	}
	row->build(&m);
	nfds = make_fds(m.fds, fds);
	h = (struct vfu_hdr){ .msg_id = 0x4242,
			      .cmd = m.cmd,
			      .size = m.size_set ? m.size : (uint32_t)(VFU_HDR_SIZE + m.len),
			      .flags = m.flags };
	/* A size below the header claims the header alone: that is what goes. */
	if (m.size_set && m.size < VFU_HDR_SIZE)
		m.len = 0;
	vfu_hdr_put(buf, &h);
	memcpy(buf + VFU_HDR_SIZE, m.p, m.len);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, VFU_HDR_SIZE + m.len, fds, nfds), 0);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (row->expect == NO_REPLY_EXPECTED) {
		ck_assert_msg(vfu_client_quiet(&cl, 200), "%s: a reply came", row->name);
	} else if (row->expect == 0) {
		size_t n = 0;
		uint8_t rep[64];
		int r = vfu_client_recv(&cl, &h, rep, sizeof(rep), &n, NULL, 0, NULL, 2000);

		ck_assert_int_eq(r, 0);
		ck_assert_uint_eq(h.msg_id, 0x4242);
		ck_assert_uint_eq(h.flags, VFU_TYPE_REPLY);
	} else {
		expect_error(0x4242, m.cmd, row->expect);
	}
	expect_alive();
}
END_TEST

/* Larger than the largest message: answered E2BIG, its bytes (and descriptors) dropped. */
START_TEST(size_past_max_dropped_whole)
{
	size_t junk = MAX_MSG + 1 - VFU_HDR_SIZE;
	uint8_t *buf = calloc(1, MAX_MSG + 1);
	struct vfu_hdr h = { .msg_id = 9, .cmd = VFU_CMD_REGION_WRITE, .size = MAX_MSG + 1 };
	int efd = testutil_eventfd();

	ck_assert_ptr_nonnull(buf);
	vfu_hdr_put(buf, &h);
	/* A VERSION-looking header inside the junk must not be taken for a message. */
	h = (struct vfu_hdr){ .msg_id = 10, .cmd = VFU_CMD_VERSION, .size = 20 };
	vfu_hdr_put(buf + 4096, &h);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, VFU_HDR_SIZE, NULL, 0), 0);
	expect_error(9, VFU_CMD_REGION_WRITE, E2BIG);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf + VFU_HDR_SIZE, 4096, &efd, 1), 0);
	ck_assert_int_eq(
		vfu_client_send_bytes(&cl, buf + VFU_HDR_SIZE + 4096, junk - 4096, NULL, 0), 0);
	close(efd);
	free(buf);
	expect_alive();
}
END_TEST

/* A reply from the client answers nothing we asked: dropped, descriptors closed. */
START_TEST(unexpected_reply_dropped)
{
	uint8_t buf[VFU_HDR_SIZE + 8] = { 0 };
	struct vfu_hdr h = {
		.msg_id = 3, .cmd = VFU_CMD_DMA_READ, .size = sizeof(buf), .flags = VFU_TYPE_REPLY
	};
	int efd = testutil_eventfd();

	vfu_hdr_put(buf, &h);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, sizeof(buf), &efd, 1), 0);
	close(efd);
	ck_assert(vfu_client_quiet(&cl, 200));
	expect_alive();
}
END_TEST

/* Half a header, then a pause, then the rest: one message, answered once. */
START_TEST(truncated_header_waits)
{
	uint8_t buf[VFU_HDR_SIZE];
	struct vfu_hdr h = { .msg_id = 5, .cmd = VFU_CMD_DEVICE_RESET, .size = VFU_HDR_SIZE };

	vfu_hdr_put(buf, &h);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, 7, NULL, 0), 0);
	ck_assert(vfu_client_quiet(&cl, 200));
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf + 7, sizeof(buf) - 7, NULL, 0), 0);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, NULL, 0, NULL, NULL, 0, NULL, 2000), 0);
	ck_assert_uint_eq(h.msg_id, 5);
	ck_assert_uint_eq(h.flags, VFU_TYPE_REPLY);
	expect_alive();
}
END_TEST

/* Half a message and a hang-up: the next client is served from a clean slate. */
START_TEST(truncated_then_hangup)
{
	uint8_t buf[VFU_HDR_SIZE + 8] = { 0 };
	struct vfu_hdr h = { .msg_id = 5, .cmd = VFU_CMD_REGION_READ, .size = 32 };
	int efd = testutil_eventfd();

	vfu_hdr_put(buf, &h);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, sizeof(buf), &efd, 1), 0);
	close(efd);
	vfu_client_close(&cl);
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_version(&cl, VFU_CLIENT_QEMU_CAPS), 0);
	expect_alive();
}
END_TEST

/* More descriptors at once than the stream takes: the connection ends, the remote serves on. */
START_TEST(descriptor_flood_ends_connection)
{
	uint8_t buf[VFU_HDR_SIZE + 20];
	struct vfu_hdr h = { .msg_id = 6, .cmd = VFU_CMD_DEVICE_SET_IRQS, .size = sizeof(buf) };
	struct vfu_irq_set s = { .argsz = 20, .flags = TRIG_EFD, .index = 1, .count = 17 };
	int fds[16], extra = testutil_eventfd();

	vfu_hdr_put(buf, &h);
	memcpy(buf + VFU_HDR_SIZE, &s, sizeof(s));
	for (int i = 0; i < 16; i++)
		fds[i] = testutil_eventfd();
	/* 16 with the first byte, one more with the second: 17 queued. */
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, 1, fds, 16), 0);
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf + 1, sizeof(buf) - 1, &extra, 1), 0);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	close(extra);
	{
		struct vfu_hdr rh;
		int r = vfu_client_recv(&cl, &rh, NULL, 0, NULL, NULL, 0, NULL, 2000);

		/* Either an error reply, or the connection closed; never a success. */
		ck_assert(r == -ECONNRESET || (r == 0 && (rh.flags & VFU_FLAG_ERROR)));
	}
	vfu_client_close(&cl);
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_version(&cl, VFU_CLIENT_QEMU_CAPS), 0);
	expect_alive();
}
END_TEST

/* Refused framing and flags in one write with a good command: each answered, in order. */
START_TEST(refusals_pipelined_with_a_command)
{
	uint8_t buf[4 * VFU_HDR_SIZE + VFU_DEVICE_INFO_SIZE + 8] = { 0 };
	struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_DEVICE_RESET, .size = 4 };
	struct vfu_device_info d = { .argsz = 16 };
	size_t off = 0;

	vfu_hdr_put(buf + off, &h); /* size below the header: its 16 bytes go */
	off += VFU_HDR_SIZE;
	h = (struct vfu_hdr){ .msg_id = 2, .cmd = VFU_CMD_DEVICE_RESET, .size = 16, .flags = 0x40 };
	vfu_hdr_put(buf + off, &h);
	off += VFU_HDR_SIZE;
	h = (struct vfu_hdr){
		.msg_id = 3, .cmd = VFU_CMD_DMA_READ, .size = 24, .flags = VFU_TYPE_REPLY
	};
	vfu_hdr_put(buf + off, &h); /* a stray reply, dropped */
	off += 24;
	h = (struct vfu_hdr){ .msg_id = 4, .cmd = VFU_CMD_DEVICE_GET_INFO, .size = 32 };
	vfu_hdr_put(buf + off, &h);
	memcpy(buf + off + VFU_HDR_SIZE, &d, sizeof(d));
	off += 32;
	ck_assert_uint_eq(off, sizeof(buf));
	ck_assert_int_eq(vfu_client_send_bytes(&cl, buf, off, NULL, 0), 0);
	expect_error(1, VFU_CMD_DEVICE_RESET, EINVAL);
	expect_error(2, VFU_CMD_DEVICE_RESET, EINVAL);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, &d, sizeof(d), NULL, NULL, 0, NULL, 2000), 0);
	ck_assert_uint_eq(h.msg_id, 4);
	ck_assert_uint_eq(h.flags, VFU_TYPE_REPLY);
	ck_assert_uint_eq(d.num_regions, 9);
	expect_alive();
}
END_TEST

/* --- before VERSION --- */

static void ungreeted_setup(void)
{
	start(false);
}

static int version_with(const char *text, size_t len)
{
	uint8_t buf[256] = { 0 };

	memcpy(buf + 4, text, len);
	return vfu_client_call(&cl, VFU_CMD_VERSION, buf, 4 + len, NULL, 0, NULL, 0, NULL);
}

START_TEST(before_version)
{
	struct vfu_device_info d;
	uint8_t v1[4] = { 1, 0, 0, 0 };
	static const char json[] = "{\"capabilities\":{}}";

	ck_assert_int_eq(vfu_client_device_info(&cl, &d), EINVAL);
	ck_assert_int_eq(vfu_client_call(&cl, VFU_CMD_VERSION, v1, 4, NULL, 0, NULL, 0, NULL),
			 ENOTSUP);
	/* Not NUL-terminated, a NUL inside, bad JSON, a known member of the wrong type. */
	ck_assert_int_eq(version_with(json, sizeof(json) - 1), EINVAL);
	ck_assert_int_eq(version_with("{}\0{}", 6), EINVAL);
	ck_assert_int_eq(version_with("{\"capabilities\":", 17), EINVAL);
	ck_assert_int_eq(version_with("{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
				      sizeof("{\"capabilities\":{\"max_msg_fds\":\"8\"}}")),
			 EINVAL);
	ck_assert_int_eq(version_with("", 0), 0); /* no capabilities: the defaults */
	expect_alive();
}
END_TEST

/* No VERSION within the deadline: dropped, even after refused commands; the next client is served.
 */
START_TEST(no_version_dropped_at_deadline)
{
	static const char *const args[] = { "--face", "vfio-user", "--handshake-timeout", "300",
					    NULL };
	struct vfu_device_info d;
	struct vfu_hdr h;

	teardown();
	remote_start(&rem, &(struct remote_opts){ .listen = true,
						  .greet = REMOTE_UNGREETED,
						  .capture_stderr = true,
						  .args = args });
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_device_info(&cl, &d), EINVAL);
	ck_assert_int_eq(vfu_client_recv(&cl, &h, NULL, 0, NULL, NULL, 0, NULL, 2000), -ECONNRESET);
	vfu_client_close(&cl);
	ck_assert_int_eq(vfu_client_connect(&cl, rem.path), 0);
	ck_assert_int_eq(vfu_client_version(&cl, VFU_CLIENT_QEMU_CAPS), 0);
	remote_take_baseline(&rem);
	/* Greeted in time: the deadline is gone. */
	usleep(500 * 1000);
	expect_alive();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vfio_user_bad_input");
	TCase *t = tcase_create("table");
	TCase *u = tcase_create("framing");
	TCase *v = tcase_create("version");

	tcase_set_timeout(t, 60);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_loop_test(t, bad_input_row, 0, (int)(sizeof(rows) / sizeof(rows[0])));
	suite_add_tcase(s, t);
	tcase_set_timeout(u, 60);
	tcase_add_checked_fixture(u, setup, teardown);
	tcase_add_test(u, size_past_max_dropped_whole);
	tcase_add_test(u, unexpected_reply_dropped);
	tcase_add_test(u, truncated_header_waits);
	tcase_add_test(u, truncated_then_hangup);
	tcase_add_test(u, descriptor_flood_ends_connection);
	tcase_add_test(u, refusals_pipelined_with_a_command);
	suite_add_tcase(s, u);
	tcase_set_timeout(v, 60);
	tcase_add_checked_fixture(v, ungreeted_setup, teardown);
	tcase_add_test(v, before_version);
	tcase_add_test(v, no_version_dropped_at_deadline);
	suite_add_tcase(s, v);
	return s;
}

int main(void)
{
	return testutil_run_suite(suite());
}
