/* The vfio-user codec by itself: header checks, payload decoders, capabilities JSON. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vfio_user.h"

/* QEMU 10.1/11.1's client capabilities, as hw/vfio-user/proxy.c's caps_json() writes them. */
static const char qemu_caps[] =
	"{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"
	"\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"
	"\"write_multiple\":true}}";

static int parse(const char *json, struct vfu_caps *c)
{
	const char *why;

	return vfu_caps_parse(json, strlen(json), c, &why);
}

START_TEST(caps_qemu)
{
	struct vfu_caps c;

	ck_assert_int_eq(parse(qemu_caps, &c), 0);
	ck_assert_uint_eq(c.max_msg_fds, 16);
	ck_assert_uint_eq(c.max_data_xfer_size, 1048576);
	ck_assert_uint_eq(c.pgsizes, 4096);
	ck_assert_uint_eq(c.max_dma_maps, 65535);
	ck_assert(c.write_multiple);
	ck_assert(c.migration);
	ck_assert_uint_eq(c.migration_pgsize, 4096);
	ck_assert_uint_eq(c.migration_max_bitmap, 268435456);
	ck_assert(!c.twin_socket);
}
END_TEST

START_TEST(caps_defaults_and_unknown)
{
	struct vfu_caps c;

	ck_assert_int_eq(parse("{}", &c), 0);
	ck_assert_uint_eq(c.max_msg_fds, VFU_DEF_MAX_FDS);
	ck_assert_uint_eq(c.max_data_xfer_size, VFU_DEF_MAX_XFER);
	ck_assert_int_eq(parse(" { \"capabilities\" : { } } ", &c), 0);
	/* Members of newer peers are skipped, whatever their shape. */
	ck_assert_int_eq(parse("{\"capabilities\":{\"future\":[1,-2.5e3,{\"a\":null},\"x\\u0041\"],"
			       "\"twin_socket\":{\"supported\":true,\"later\":false},"
			       "\"max_msg_fds\":3},\"other\":true}",
			       &c),
			 0);
	ck_assert(c.twin_socket);
	ck_assert_uint_eq(c.max_msg_fds, 3);
	ck_assert_int_eq(
		parse("{\"capabilities\":{\"max_data_xfer_size\":18446744073709551615}}", &c), 0);
	ck_assert_uint_eq(c.max_data_xfer_size, UINT64_MAX);
}
END_TEST

static const char *const bad_caps[] = {
	"",
	"[]",
	"{",
	"{\"capabilities\":{}}x",
	"{\"capabilities\":{},}",
	"{\"capabilities\":[]}",
	"{\"capabilities\":{\"max_msg_fds\":-1}}",
	"{\"capabilities\":{\"max_msg_fds\":1.5}}",
	"{\"capabilities\":{\"max_msg_fds\":1e3}}",
	"{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
	"{\"capabilities\":{\"max_msg_fds\":01}}",
	"{\"capabilities\":{\"max_data_xfer_size\":18446744073709551616}}",
	"{\"capabilities\":{\"write_multiple\":1}}",
	"{\"capabilities\":{\"write_multiple\":tru}}",
	"{\"capabilities\":{\"max_msg_fds\":1,\"max_msg_fds\":2}}",
	"{\"capabilities\":{},\"capabilities\":{}}",
	"{\"capabilities\":{\"twin_socket\":true}}",
	"{\"capabilities\":{\"migration\":{\"pgsize\":\"x\"}}}",
	"{\"a\":\"unterminated}",
	"{\"a\":\"\x01\"}",
	"{\"a\":\"\\q\"}",
	"{\"a\":\"\\u12\"}",
	"{\"a\":[[[[[[[[[[1]]]]]]]]]]}",
	"{'a':1}",
	"{\"a\" 1}",
};

START_TEST(caps_bad)
{
	struct vfu_caps c;
	const char *why = NULL;
	const char *json = bad_caps[_i];

	ck_assert_msg(vfu_caps_parse(json, strlen(json), &c, &why) == -EINVAL, "accepted: %s",
		      json);
	ck_assert_ptr_nonnull(why);
	/* A refused text leaves nothing half-applied. */
	ck_assert_uint_eq(c.max_msg_fds, VFU_DEF_MAX_FDS);
}
END_TEST

START_TEST(caps_format_roundtrip)
{
	struct vfu_caps c, back;
	char buf[512];
	int n;

	vfu_caps_default(&c);
	c.max_msg_fds = 8;
	c.max_dma_maps = 1024;
	c.write_multiple = true;
	n = vfu_caps_format(&c, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(buf) + 1, (size_t)n);
	ck_assert_int_eq(parse(buf, &back), 0);
	ck_assert_uint_eq(back.max_msg_fds, 8);
	ck_assert_uint_eq(back.max_dma_maps, 1024);
	ck_assert(back.write_multiple);
	ck_assert_int_eq(vfu_caps_format(&c, buf, 10), -ENOSPC);
}
END_TEST

START_TEST(hdr_checks)
{
	struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_VERSION, .size = 16 };

	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), 0);
	h.flags = VFU_FLAG_NO_REPLY;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), 0);
	h.flags = VFU_TYPE_REPLY;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), -EINVAL);
	h.flags = VFU_FLAG_ERROR;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), -EINVAL);
	h.flags = 0x40;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), -EINVAL);
	h.flags = 0;
	h.size = 15;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), -EINVAL);
	h.size = 4097;
	ck_assert_int_eq(vfu_hdr_check_command(&h, 4096), -E2BIG);
	ck_assert_str_eq(vfu_cmd_name(VFU_CMD_REGION_WRITE_MULTI), "REGION_WRITE_MULTI");
	ck_assert_str_eq(vfu_cmd_name(99), "unknown");
}
END_TEST

START_TEST(version_payload)
{
	uint8_t buf[64] = { 0 };
	struct vfu_version v;
	const char *caps;
	size_t n;

	ck_assert_int_eq(vfu_decode_version(buf, 3, &v, &caps, &n), -EINVAL);
	ck_assert_int_eq(vfu_decode_version(buf, 4, &v, &caps, &n), 0);
	ck_assert_ptr_null(caps);
	memcpy(buf + 4, "{}", 3);
	ck_assert_int_eq(vfu_decode_version(buf, 7, &v, &caps, &n), 0);
	ck_assert_uint_eq(n, 2);
	/* Not NUL-terminated, or a NUL inside. */
	ck_assert_int_eq(vfu_decode_version(buf, 6, &v, &caps, &n), -EINVAL);
	buf[5] = 0;
	ck_assert_int_eq(vfu_decode_version(buf, 7, &v, &caps, &n), -EINVAL);
}
END_TEST

START_TEST(dma_payloads)
{
	struct vfu_dma_map m = { .argsz = 32, .flags = 3, .addr = 0x1000, .size = 0x1000 };
	struct vfu_dma_unmap u = { .argsz = 24, .addr = 0x1000, .size = 0x1000 };
	struct vfu_dma_map mo;
	struct vfu_dma_unmap uo;

	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m), &mo), 0);
	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m) - 1, &mo), -EINVAL);
	m.argsz = 31;
	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m), &mo), -EINVAL);
	m.argsz = 33;
	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m), &mo), -EINVAL);
	m.argsz = 32;
	m.flags = 2; /* write-only */
	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m), &mo), -EINVAL);
	m.flags = 5;
	ck_assert_int_eq(vfu_decode_dma_map(&m, sizeof(m), &mo), -EINVAL);
	ck_assert_int_eq(vfu_decode_dma_unmap(&u, sizeof(u), &uo), 0);
	u.argsz = 23;
	ck_assert_int_eq(vfu_decode_dma_unmap(&u, sizeof(u), &uo), -EINVAL);
	u.argsz = 24;
	u.flags = VFU_DMA_UNMAP_FLAG_ALL;
	ck_assert_int_eq(vfu_decode_dma_unmap(&u, sizeof(u), &uo), -EINVAL);
	u.addr = u.size = 0;
	ck_assert_int_eq(vfu_decode_dma_unmap(&u, sizeof(u), &uo), 0);
	u.flags = 1; /* GET_DIRTY_BITMAP */
	ck_assert_int_eq(vfu_decode_dma_unmap(&u, sizeof(u), &uo), -EINVAL);
}
END_TEST

START_TEST(irq_set_payloads)
{
	uint8_t buf[64] = { 0 };
	struct vfu_irq_set s = { .argsz = 20, .index = 0, .start = 0, .count = 1 }, o;
	const uint8_t *bools;

	s.flags = VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER;
	memcpy(buf, &s, sizeof(s));
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 1, &o, &bools), 0);
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 0, &o, &bools), 0);
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 2, &o, &bools), -EINVAL);
	s.flags = VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK;
	memcpy(buf, &s, sizeof(s));
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 0, &o, &bools), 0);
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 1, &o, &bools), -EINVAL);
	s.flags = VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_UNMASK;
	memcpy(buf, &s, sizeof(s));
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 0, &o, &bools), -EINVAL);
	s.flags = VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK | VFU_IRQ_SET_ACTION_MASK;
	memcpy(buf, &s, sizeof(s));
	ck_assert_int_eq(vfu_decode_irq_set(buf, 20, 0, &o, &bools), -EINVAL);
	s.flags = VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_MASK;
	s.argsz = 21;
	memcpy(buf, &s, sizeof(s));
	buf[20] = 1;
	ck_assert_int_eq(vfu_decode_irq_set(buf, 21, 0, &o, &bools), 0);
	ck_assert_ptr_eq(bools, buf + 20);
	/* argsz must describe the payload. */
	ck_assert_int_eq(vfu_decode_irq_set(buf, 22, 0, &o, &bools), -EINVAL);
	s.argsz = 19;
	memcpy(buf, &s, sizeof(s));
	ck_assert_int_eq(vfu_decode_irq_set(buf, 21, 0, &o, &bools), -EINVAL);
	ck_assert_int_eq(vfu_decode_irq_set(buf, 19, 0, &o, &bools), -EINVAL);
}
END_TEST

START_TEST(access_payloads)
{
	uint8_t buf[64] = { 0 };
	struct vfu_region_access a = { .offset = 4, .region = 0, .count = 4 }, o;
	const uint8_t *data;

	memcpy(buf, &a, sizeof(a));
	ck_assert_int_eq(vfu_decode_region_read(buf, 16, 1024, &o), 0);
	ck_assert_int_eq(vfu_decode_region_read(buf, 20, 1024, &o), -EINVAL);
	ck_assert_int_eq(vfu_decode_region_write(buf, 20, 1024, &o, &data), 0);
	ck_assert_ptr_eq(data, buf + 16);
	ck_assert_int_eq(vfu_decode_region_write(buf, 19, 1024, &o, &data), -EINVAL);
	ck_assert_int_eq(vfu_decode_region_read(buf, 16, 2, &o), -EINVAL);
	a.count = 0;
	memcpy(buf, &a, sizeof(a));
	ck_assert_int_eq(vfu_decode_region_read(buf, 16, 1024, &o), -EINVAL);
	ck_assert_int_eq(vfu_decode_region_write(buf, 16, 1024, &o, &data), -EINVAL);
}
END_TEST

START_TEST(write_multi_payloads)
{
	uint8_t buf[8 + 3 * 24] = { 0 };
	uint64_t n = 2;
	struct vfu_write_one w = { .offset = 4, .region = 0, .count = 4 }, o;

	memcpy(buf, &n, 8);
	memcpy(buf + 8, &w, 24);
	w.offset = 8;
	memcpy(buf + 32, &w, 24);
	ck_assert_int_eq(vfu_decode_write_multi(buf, 8 + 48, &n), 0);
	vfu_write_multi_get(buf, 1, &o);
	ck_assert_uint_eq(o.offset, 8);
	ck_assert_int_eq(vfu_decode_write_multi(buf, 8 + 72, &n), -EINVAL);
	w.count = 9;
	memcpy(buf + 32, &w, 24);
	ck_assert_int_eq(vfu_decode_write_multi(buf, 8 + 48, &n), -EINVAL);
	n = 0;
	memcpy(buf, &n, 8);
	ck_assert_int_eq(vfu_decode_write_multi(buf, 8, &n), -EINVAL);
}
END_TEST

START_TEST(region_info_encode)
{
	struct vfu_region_info r = { .flags = VFU_REGION_FLAG_READ | VFU_REGION_FLAG_MMAP,
				     .index = 0,
				     .size = 0x10000 };
	struct vfu_sparse_mmap_area areas[2] = { { 0x1000, 0x1000 }, { 0x4000, 0x2000 } };
	uint8_t out[128];
	struct vfu_region_info o;
	struct vfu_cap_header ch;
	uint32_t nr;
	int n;

	n = vfu_encode_region_info(&r, NULL, 0, 32, out, sizeof(out));
	ck_assert_int_eq(n, 32);
	memcpy(&o, out, 32);
	ck_assert_uint_eq(o.argsz, 32);
	ck_assert_uint_eq(o.flags & VFU_REGION_FLAG_CAPS, 0);
	/* Too little room for the chain: the size needed comes back, no chain. */
	n = vfu_encode_region_info(&r, areas, 2, 32, out, sizeof(out));
	ck_assert_int_eq(n, 32);
	memcpy(&o, out, 32);
	ck_assert_uint_eq(o.argsz, 32 + 16 + 32);
	ck_assert(o.flags & VFU_REGION_FLAG_CAPS);
	ck_assert_uint_eq(o.cap_offset, 0);
	n = vfu_encode_region_info(&r, areas, 2, 80, out, sizeof(out));
	ck_assert_int_eq(n, 80);
	memcpy(&o, out, 32);
	ck_assert_uint_eq(o.cap_offset, 32);
	memcpy(&ch, out + 32, 8);
	ck_assert_uint_eq(ch.id, VFU_REGION_CAP_SPARSE_MMAP);
	ck_assert_uint_eq(ch.next, 0);
	memcpy(&nr, out + 40, 4);
	ck_assert_uint_eq(nr, 2);
	ck_assert_int_eq(memcmp(out + 48, areas, 32), 0);
	ck_assert_int_eq(vfu_encode_region_info(&r, areas, 2, 80, out, 64), -ENOSPC);
}
END_TEST

START_TEST(region_io_fds_payloads)
{
	struct vfu_region_io_fds q = { .argsz = 16, .index = 2 }, o;
	struct vfu_sub_region_ioeventfd subs[2] = {
		{ .offset = 0x60, .size = 4, .fd_index = 0, .flags = 1, .datamatch = 1 },
		{ .offset = 0x1000, .size = 2, .fd_index = 1 },
	};
	struct vfu_sub_region_ioeventfd s1;
	uint8_t out[128] = { 0 };
	int n;

	ck_assert_int_eq(vfu_decode_region_io_fds(&q, sizeof(q), &o), 0);
	ck_assert_uint_eq(o.index, 2);
	ck_assert_int_eq(vfu_decode_region_io_fds(&q, sizeof(q) - 1, &o), -EINVAL);
	ck_assert_int_eq(vfu_decode_region_io_fds(out, sizeof(q) + 4, &o), -EINVAL);
	q.argsz = 15;
	ck_assert_int_eq(vfu_decode_region_io_fds(&q, sizeof(q), &o), -EINVAL);
	q.argsz = 16;
	q.flags = 1;
	ck_assert_int_eq(vfu_decode_region_io_fds(&q, sizeof(q), &o), -EINVAL);
	q.flags = 0;
	q.count = 1;
	ck_assert_int_eq(vfu_decode_region_io_fds(&q, sizeof(q), &o), -EINVAL);

	/* Room for all: the fixed part, then the entries as they are. */
	n = vfu_encode_region_io_fds(3, subs, 2, 96, out, sizeof(out));
	ck_assert_int_eq(n, 96);
	ck_assert_int_eq(vfu_decode_region_io_fds_reply(out, (size_t)n, &o), 0);
	ck_assert_uint_eq(o.argsz, 96);
	ck_assert_uint_eq(o.index, 3);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_uint_eq(o.flags, 0);
	vfu_sub_region_get(out, 1, &s1);
	ck_assert_uint_eq(s1.offset, 0x1000);
	ck_assert_uint_eq(s1.fd_index, 1);
	/* VFIO's short-argsz rule: the size needed and the count, no entries. */
	n = vfu_encode_region_io_fds(3, subs, 2, 95, out, sizeof(out));
	ck_assert_int_eq(n, 16);
	ck_assert_int_eq(vfu_decode_region_io_fds_reply(out, (size_t)n, &o), 0);
	ck_assert_uint_eq(o.argsz, 96);
	ck_assert_uint_eq(o.count, 2);
	/* None: the fixed part alone, argsz 16. */
	n = vfu_encode_region_io_fds(7, NULL, 0, 4096, out, sizeof(out));
	ck_assert_int_eq(n, 16);
	ck_assert_int_eq(vfu_decode_region_io_fds_reply(out, (size_t)n, &o), 0);
	ck_assert_uint_eq(o.argsz, 16);
	ck_assert_uint_eq(o.count, 0);
	ck_assert_int_eq(vfu_encode_region_io_fds(3, subs, 2, 96, out, 95), -ENOSPC);
	/* A reply whose count does not match its entries is not one. */
	n = vfu_encode_region_io_fds(3, subs, 2, 96, out, sizeof(out));
	ck_assert_int_eq(vfu_decode_region_io_fds_reply(out, 56, &o), -EINVAL);
}
END_TEST

START_TEST(feature_and_mig_payloads)
{
	uint8_t buf[64] = { 0 };
	struct vfu_device_feature f = { .argsz = 16, .flags = VFU_FEATURE_GET | 1 }, o;
	struct vfu_mig_data m = { .argsz = 24, .size = 16 }, mo;
	const uint8_t *data;
	size_t n;

	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 16, &o, &data, &n), 0);
	ck_assert_uint_eq(n, 8);
	ck_assert_ptr_eq(data, buf + 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 7, &o, &data, &n), -EINVAL);
	f.flags = VFU_FEATURE_GET | VFU_FEATURE_SET | 2;
	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), -EINVAL);
	f.flags |= VFU_FEATURE_PROBE;
	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), 0);
	f.flags = 2;
	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), -EINVAL);
	f.flags = (1u << 20) | VFU_FEATURE_GET | 2;
	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), -EINVAL);
	f = (struct vfu_device_feature){ .argsz = 7, .flags = VFU_FEATURE_GET | 2 };
	memcpy(buf, &f, 8);
	ck_assert_int_eq(vfu_decode_device_feature(buf, 8, &o, &data, &n), -EINVAL);

	memcpy(buf, &m, 8);
	ck_assert_int_eq(vfu_decode_mig_data_read(buf, 8, 1024, &mo), 0);
	ck_assert_int_eq(vfu_decode_mig_data_read(buf, 9, 1024, &mo), -EINVAL);
	ck_assert_int_eq(vfu_decode_mig_data_read(buf, 8, 8, &mo), -EINVAL);
	m.argsz = 23;
	memcpy(buf, &m, 8);
	ck_assert_int_eq(vfu_decode_mig_data_read(buf, 8, 1024, &mo), -EINVAL);
	m = (struct vfu_mig_data){ .argsz = 8, .size = 4 };
	memcpy(buf, &m, 8);
	ck_assert_int_eq(vfu_decode_mig_data_write(buf, 12, 1024, &mo, &data), 0);
	ck_assert_ptr_eq(data, buf + 8);
	ck_assert_int_eq(vfu_decode_mig_data_write(buf, 13, 1024, &mo, &data), -EINVAL);
	m.size = 0;
	memcpy(buf, &m, 8);
	ck_assert_int_eq(vfu_decode_mig_data_write(buf, 8, 1024, &mo, &data), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vfio_user_wire");
	TCase *t = tcase_create("codec");

	tcase_add_test(t, caps_qemu);
	tcase_add_test(t, caps_defaults_and_unknown);
	tcase_add_loop_test(t, caps_bad, 0, (int)(sizeof(bad_caps) / sizeof(bad_caps[0])));
	tcase_add_test(t, caps_format_roundtrip);
	tcase_add_test(t, hdr_checks);
	tcase_add_test(t, version_payload);
	tcase_add_test(t, dma_payloads);
	tcase_add_test(t, irq_set_payloads);
	tcase_add_test(t, access_payloads);
	tcase_add_test(t, write_multi_payloads);
	tcase_add_test(t, region_info_encode);
	tcase_add_test(t, region_io_fds_payloads);
	tcase_add_test(t, feature_and_mig_payloads);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return testutil_run_suite(suite());
}
