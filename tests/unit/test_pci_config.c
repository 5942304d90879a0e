/* Emulated PCI config space: masks, BAR sizing, MSI capability, reset. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "pci_config.h"

static const struct pci_config_identity test_id = {
	.vendor_id = 0x1234,
	.device_id = 0x5678,
	.subsystem_vendor_id = 0xabcd,
	.subsystem_id = 0xef01,
	.class_code = 0x020000,
	.revision = 0x42,
	.interrupt_pin = 2,
};

static struct pci_config cfg;

static void setup(void)
{
	ck_assert_int_eq(pci_config_init(&cfg, &test_id), 0);
}

static uint32_t rd(uint32_t off, uint32_t size)
{
	uint32_t v = 0xdeadbeef;

	ck_assert_int_eq(pci_config_read(&cfg, off, size, &v), 0);
	return v;
}

static void wr(uint32_t off, uint32_t size, uint32_t val)
{
	ck_assert_int_eq(pci_config_write(&cfg, off, size, val), 0);
}

START_TEST(test_identity)
{
	ck_assert_uint_eq(rd(0x00, 4), 0x56781234);
	ck_assert_uint_eq(rd(0x08, 4), 0x02000042);
	ck_assert_uint_eq(rd(0x0e, 1), 0x00);
	ck_assert_uint_eq(rd(0x2c, 4), 0xef01abcd);
	ck_assert_uint_eq(rd(0x3d, 1), 2);
	ck_assert_uint_eq(rd(0x34, 1), 0);
	ck_assert_uint_eq(rd(0x06, 2), 0);
}
END_TEST

START_TEST(test_bad_identity)
{
	struct pci_config_identity id = test_id;

	id.interrupt_pin = 5;
	ck_assert_int_eq(pci_config_init(&cfg, &id), -EINVAL);
	id.interrupt_pin = 1;
	id.class_code = 0x1000000;
	ck_assert_int_eq(pci_config_init(&cfg, &id), -EINVAL);
}
END_TEST

START_TEST(test_read_only_fields_ignore_all_ones)
{
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, 0), 0);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x50, 1, 0), 0);

	for (uint32_t off = 0; off < PCI_CONFIG_SPACE_SIZE; off += 4) {
		/* Skip status: its W1C bits are tested on their own. */
		if (off == 0x04)
			wr(0x04, 2, 0xffff);
		else
			wr(off, 4, 0xffffffff);
	}
	ck_assert_uint_eq(rd(0x00, 4), 0x56781234);
	ck_assert_uint_eq(rd(0x08, 4), 0x02000042);
	ck_assert_uint_eq(rd(0x0c, 4), 0x000000ff); /* cache line size only */
	ck_assert_uint_eq(rd(0x14, 4), 0);	    /* no BAR 1 */
	ck_assert_uint_eq(rd(0x24, 4), 0);
	ck_assert_uint_eq(rd(0x28, 4), 0);
	ck_assert_uint_eq(rd(0x2c, 4), 0xef01abcd);
	ck_assert_uint_eq(rd(0x30, 4), 0); /* no expansion ROM */
	ck_assert_uint_eq(rd(0x34, 4), 0x50);
	ck_assert_uint_eq(rd(0x3c, 4), 0x000002ff);
	ck_assert_uint_eq(rd(0x40, 4), 0);	/* unused device-specific space */
	ck_assert_uint_eq(rd(0x50, 2), 0x0005); /* id and next pointer */
	ck_assert_uint_eq(rd(0x52, 2), 0x0071); /* enable and MME only */
	ck_assert_uint_eq(rd(0x80, 4), 0);
}
END_TEST

START_TEST(test_command_mask)
{
	wr(0x04, 2, 0xffff);
	ck_assert_uint_eq(pci_config_command(&cfg), 0x0547);
	ck_assert_uint_eq(rd(0x04, 2), 0x0547);
	ck_assert(pci_config_intx_disabled(&cfg));
	wr(0x04, 2, PCI_CONFIG_COMMAND_MASTER);
	ck_assert_uint_eq(rd(0x04, 2), 0x0004);
	ck_assert(!pci_config_intx_disabled(&cfg));
}
END_TEST

START_TEST(test_status_w1c)
{
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 1, 0), 0);
	/* Writing ones sets none of the error bits: only the device can. */
	wr(0x06, 2, 0xffff);
	ck_assert_uint_eq(rd(0x06, 2), 0x0010);

	/* Pretend the device latched errors: parity detected, master abort. */
	cfg.data[0x07] |= 0xa0;
	ck_assert_uint_eq(rd(0x06, 2), 0xa010);
	wr(0x06, 2, 0x8000);
	ck_assert_uint_eq(rd(0x06, 2), 0x2010);
	/* A 4-byte write with the command in the low half clears through the high half. */
	wr(0x04, 4, 0x20000002);
	ck_assert_uint_eq(rd(0x04, 4), 0x00100002);
}
END_TEST

START_TEST(test_status_intx_bit)
{
	pci_config_set_intx_status(&cfg, true);
	ck_assert_uint_eq(rd(0x06, 2) & 0x08, 0x08);
	wr(0x06, 2, 0x0000);
	wr(0x06, 2, 0xffff);
	ck_assert_uint_eq(rd(0x06, 2) & 0x08, 0x08);
	/* Linux masks with a 2-byte command write after a dword read; both halves at once too. */
	wr(0x04, 4, 0x00080400);
	ck_assert_uint_eq(rd(0x04, 4) & 0x00080400, 0x00080400);
	ck_assert(pci_config_intx_disabled(&cfg));
	wr(0x04, 4, 0x00000000);
	ck_assert_uint_eq(rd(0x04, 4) & 0x00080400, 0x00080000);
	pci_config_set_intx_status(&cfg, false);
	ck_assert_uint_eq(rd(0x06, 2) & 0x08, 0);
	/* A reset drops the level with everything else. */
	pci_config_set_intx_status(&cfg, true);
	pci_config_reset(&cfg);
	ck_assert_uint_eq(rd(0x06, 2) & 0x08, 0);
}
END_TEST

START_TEST(test_bar_sizing_mem32)
{
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 1 << 20, 0), 0);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 1, 0x1000, PCI_CONFIG_BAR_PREFETCH), 0);
	ck_assert_uint_eq(rd(0x10, 4), 0);
	ck_assert_uint_eq(rd(0x14, 4), 0x8);

	wr(0x10, 4, 0xffffffff);
	wr(0x14, 4, 0xffffffff);
	ck_assert_uint_eq(rd(0x10, 4), 0xfff00000);
	ck_assert_uint_eq(rd(0x14, 4), 0xfffff008);

	wr(0x10, 4, 0xfebc1234);
	ck_assert_uint_eq(rd(0x10, 4), 0xfeb00000);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 0), 0xfeb00000);
	wr(0x14, 4, 0xfebc1fff);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 1), 0xfebc1000);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 2), 0);
}
END_TEST

START_TEST(test_bar_sizing_io)
{
	ck_assert_int_eq(pci_config_add_bar(&cfg, 2, 32, PCI_CONFIG_BAR_IO), 0);
	ck_assert_uint_eq(rd(0x18, 4), 0x1);
	wr(0x18, 4, 0xffffffff);
	ck_assert_uint_eq(rd(0x18, 4), 0xffffffe1);
	wr(0x18, 4, 0xc0a7);
	ck_assert_uint_eq(rd(0x18, 4), 0xc0a1);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 2), 0xc0a0);
}
END_TEST

START_TEST(test_bar_sizing_mem64)
{
	uint32_t flags = PCI_CONFIG_BAR_MEM64 | PCI_CONFIG_BAR_PREFETCH;

	ck_assert_int_eq(pci_config_add_bar(&cfg, 2, 0x4000, flags), 0);
	ck_assert_uint_eq(rd(0x18, 4), 0xc);
	wr(0x18, 4, 0xffffffff);
	wr(0x1c, 4, 0xffffffff);
	ck_assert_uint_eq(rd(0x18, 4), 0xffffc00c);
	ck_assert_uint_eq(rd(0x1c, 4), 0xffffffff);

	wr(0x18, 4, 0x9abc4000);
	wr(0x1c, 4, 0x00000012);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 2), 0x129abc4000ull);
	/* The upper half is not a BAR of its own. */
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 3), 0);

	/* Above 4 GiB the upper dword carries sizing bits too. */
	ck_assert_int_eq(pci_config_add_bar(&cfg, 4, 8ull << 30, PCI_CONFIG_BAR_MEM64), 0);
	wr(0x20, 4, 0xffffffff);
	wr(0x24, 4, 0xffffffff);
	ck_assert_uint_eq(rd(0x20, 4), 0x4);
	ck_assert_uint_eq(rd(0x24, 4), 0xfffffffe);
}
END_TEST

START_TEST(test_bar_layout_errors)
{
	const uint32_t io = PCI_CONFIG_BAR_IO;

	ck_assert_int_eq(pci_config_add_bar(&cfg, 6, 0x1000, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1800, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 2, PCI_CONFIG_BAR_IO), -EINVAL);
	/* I/O BARs are neither 64-bit nor prefetchable. */
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 16, io | PCI_CONFIG_BAR_MEM64), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 16, io | PCI_CONFIG_BAR_PREFETCH), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 1ull << 32, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 5, 0x1000, PCI_CONFIG_BAR_MEM64), -EINVAL);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, 0x80), -EINVAL);

	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, PCI_CONFIG_BAR_MEM64), 0);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, 0), -EBUSY);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 1, 0x1000, 0), -EBUSY);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 3, 0x1000, 0), 0);
	ck_assert_int_eq(pci_config_add_bar(&cfg, 2, 0x1000, PCI_CONFIG_BAR_MEM64), -EBUSY);
	/* Refused layouts left nothing behind. */
	ck_assert_uint_eq(rd(0x14, 4), 0);
	ck_assert_uint_eq(rd(0x18, 4), 0);
}
END_TEST

START_TEST(test_interrupt_line_pin)
{
	wr(0x3c, 1, 0x0b);
	ck_assert_uint_eq(rd(0x3c, 1), 0x0b);
	wr(0x3d, 1, 0x04);
	ck_assert_uint_eq(rd(0x3d, 1), 2);
	wr(0x3c, 2, 0xffff);
	ck_assert_uint_eq(rd(0x3c, 2), 0x02ff);
}
END_TEST

START_TEST(test_msi_capability_list)
{
	uint8_t ptr;
	int caps = 0;

	ck_assert_uint_eq(rd(0x06, 2) & PCI_CONFIG_STATUS_CAP_LIST, 0);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x48, 4, PCI_CONFIG_MSI_64BIT), 0);
	ck_assert_uint_eq(rd(0x06, 2) & PCI_CONFIG_STATUS_CAP_LIST, PCI_CONFIG_STATUS_CAP_LIST);

	for (ptr = (uint8_t)rd(0x34, 1); ptr; ptr = (uint8_t)rd(ptr + 1, 1)) {
		ck_assert_int_lt(++caps, 48); /* a loop in the list would never end */
		ck_assert_uint_eq(ptr & 3, 0);
		ck_assert_uint_eq(rd(ptr, 1), PCI_CONFIG_CAP_ID_MSI);
		ck_assert_uint_eq(ptr, 0x48);
		/* 64-bit, 4 vectors capable (log2 = 2 in bits 3:1), disabled. */
		ck_assert_uint_eq(rd(ptr + 2, 2), 0x0084);
	}
	ck_assert_int_eq(caps, 1);
}
END_TEST

START_TEST(test_msi_layout_errors)
{
	uint32_t flags;

	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x3c, 1, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x42, 1, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 3, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 64, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 0, 0), -EINVAL);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 1, 0x10), -EINVAL);
	/* 24 bytes with 64-bit addresses and masking do not fit at 0xec. */
	flags = PCI_CONFIG_MSI_64BIT | PCI_CONFIG_MSI_PER_VECTOR_MASK;
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0xec, 1, flags), -EINVAL);
	ck_assert_uint_eq(rd(0x34, 1), 0);
	ck_assert_uint_eq(rd(0x06, 2), 0);

	ck_assert_int_eq(pci_config_add_msi(&cfg, 0xf4, 1, 0), 0);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 1, 0), -EEXIST);
}
END_TEST

START_TEST(test_msi_64bit_writes)
{
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 1, PCI_CONFIG_MSI_64BIT), 0);
	ck_assert(!pci_config_msi_enabled(&cfg));

	wr(0x44, 4, 0xfee01237);
	wr(0x48, 4, 0x00000001);
	wr(0x4c, 4, 0xffff4021); /* data is 16 bits, the rest reserved */
	ck_assert_uint_eq(rd(0x44, 4), 0xfee01234);
	ck_assert_uint_eq(rd(0x4c, 4), 0x4021);
	ck_assert_uint_eq(pci_config_msi_address(&cfg), 0x1fee01234ull);
	ck_assert_uint_eq(pci_config_msi_data(&cfg), 0x4021);

	wr(0x42, 2, 0xffff);
	ck_assert_uint_eq(rd(0x42, 2), 0x00f1);
	ck_assert(pci_config_msi_enabled(&cfg));
	/* MME beyond what is capable is stored but not believed. */
	ck_assert_uint_eq(pci_config_msi_nvectors(&cfg), 1);
	ck_assert(!pci_config_msi_vector_masked(&cfg, 0));

	wr(0x42, 2, 0x0000);
	ck_assert(!pci_config_msi_enabled(&cfg));
	ck_assert_uint_eq(rd(0x42, 2), 0x0080);
}
END_TEST

START_TEST(test_msi_32bit_masking)
{
	uint32_t flags = PCI_CONFIG_MSI_PER_VECTOR_MASK;

	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x60, 8, flags), 0);
	ck_assert_uint_eq(rd(0x62, 2), 0x0106);
	/* 32-bit layout: data right after the address, mask at +0x0c, pending at +0x10. */
	wr(0x64, 4, 0xfee00000);
	wr(0x68, 2, 0x0041);
	wr(0x6c, 4, 0xffffffff);
	wr(0x70, 4, 0xffffffff);
	ck_assert_uint_eq(pci_config_msi_address(&cfg), 0xfee00000);
	ck_assert_uint_eq(pci_config_msi_data(&cfg), 0x41);
	ck_assert_uint_eq(rd(0x6c, 4), 0xff); /* one mask bit per capable vector */
	ck_assert_uint_eq(rd(0x70, 4), 0);    /* pending bits are the device's */
	ck_assert(pci_config_msi_vector_masked(&cfg, 7));
	wr(0x6c, 4, 0xfe);
	ck_assert(!pci_config_msi_vector_masked(&cfg, 0));

	wr(0x62, 2, 0x0021); /* enable with 4 vectors */
	ck_assert(pci_config_msi_enabled(&cfg));
	ck_assert_uint_eq(pci_config_msi_nvectors(&cfg), 4);
}
END_TEST

START_TEST(test_unaligned_and_partial)
{
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, 0), 0);

	ck_assert_uint_eq(rd(0x01, 2), 0x7812);
	ck_assert_uint_eq(rd(0x03, 4), 0x00000056);
	ck_assert_uint_eq(rd(0x0b, 1), 0x02);

	/* The command's high byte alone: INTX_DISABLE. */
	wr(0x05, 1, 0xff);
	ck_assert_uint_eq(rd(0x04, 2), 0x0500);
	/* A write straddling two fields applies each byte's own mask. */
	wr(0x0f, 4, 0x12345678); /* header type (RO) and BAR 0 bytes 0-2 */
	ck_assert_uint_eq(rd(0x0e, 1), 0);
	ck_assert_uint_eq(rd(0x10, 4), 0x00123000); /* 0x56 and the 4 of 0x34 are size bits */
	wr(0x12, 2, 0xabcd);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 0), 0xabcd3000);
	ck_assert_uint_eq(rd(0xfc, 4), 0);
	ck_assert_uint_eq(rd(0xff, 1), 0);
}
END_TEST

START_TEST(test_bad_accesses)
{
	uint32_t v = 0x5a5a5a5a;

	ck_assert_int_eq(pci_config_read(&cfg, 0xff, 2, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 0xfd, 4, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 0x100, 1, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 1ull << 40, 1, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, UINT64_MAX, 4, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 0, 0, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 0, 3, &v), -EINVAL);
	ck_assert_int_eq(pci_config_read(&cfg, 0, 8, &v), -EINVAL);
	ck_assert_uint_eq(v, 0x5a5a5a5a);

	ck_assert_int_eq(pci_config_write(&cfg, 0x3c, 3, 0xffffff), -EINVAL);
	ck_assert_int_eq(pci_config_write(&cfg, 0xfe, 4, 0xffffffff), -EINVAL);
	ck_assert_int_eq(pci_config_write(&cfg, 0x10003c, 1, 0xff), -EINVAL);
	/* A refused write changes nothing, not even the bytes that were in range. */
	ck_assert_uint_eq(rd(0x3c, 1), 0);
}
END_TEST

START_TEST(test_reset)
{
	ck_assert_int_eq(pci_config_add_bar(&cfg, 0, 0x1000, PCI_CONFIG_BAR_MEM64), 0);
	ck_assert_int_eq(pci_config_add_msi(&cfg, 0x40, 1, PCI_CONFIG_MSI_64BIT), 0);
	wr(0x04, 2, 0x0547);
	wr(0x0c, 1, 0x10);
	wr(0x10, 4, 0xfe000000);
	wr(0x14, 4, 0x1);
	wr(0x3c, 1, 0x0a);
	wr(0x42, 2, 0x0001);
	wr(0x44, 4, 0xfee00000);
	wr(0x48, 4, 0x1);
	wr(0x4c, 2, 0x4041);
	cfg.data[0x07] |= 0x80;
	pci_config_set_intx_status(&cfg, true);

	pci_config_reset(&cfg);
	ck_assert_uint_eq(rd(0x04, 4), 0x00100000); /* only the capability-list bit */
	ck_assert_uint_eq(rd(0x0c, 1), 0);
	ck_assert_uint_eq(rd(0x10, 4), 0x4);
	ck_assert_uint_eq(rd(0x14, 4), 0);
	ck_assert_uint_eq(pci_config_bar_address(&cfg, 0), 0);
	ck_assert_uint_eq(rd(0x3c, 2), 0x0200);
	ck_assert(!pci_config_msi_enabled(&cfg));
	ck_assert_uint_eq(pci_config_msi_address(&cfg), 0);
	ck_assert_uint_eq(pci_config_msi_data(&cfg), 0);
	ck_assert_uint_eq(rd(0x40, 4), 0x00800005);
	ck_assert_uint_eq(rd(0x00, 4), 0x56781234);
	ck_assert_uint_eq(rd(0x08, 4), 0x02000042);
	ck_assert_uint_eq(rd(0x2c, 4), 0xef01abcd);
	ck_assert_uint_eq(rd(0x34, 1), 0x40);

	/* Layout survives: sizing still answers as before. */
	wr(0x10, 4, 0xffffffff);
	ck_assert_uint_eq(rd(0x10, 4), 0xfffff004);
}
END_TEST

static Suite *pci_config_suite(void)
{
	Suite *s = suite_create("pci_config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_identity);
	tcase_add_test(tc, test_bad_identity);
	tcase_add_test(tc, test_read_only_fields_ignore_all_ones);
	tcase_add_test(tc, test_command_mask);
	tcase_add_test(tc, test_status_w1c);
	tcase_add_test(tc, test_status_intx_bit);
	tcase_add_test(tc, test_bar_sizing_mem32);
	tcase_add_test(tc, test_bar_sizing_io);
	tcase_add_test(tc, test_bar_sizing_mem64);
	tcase_add_test(tc, test_bar_layout_errors);
	tcase_add_test(tc, test_interrupt_line_pin);
	tcase_add_test(tc, test_msi_capability_list);
	tcase_add_test(tc, test_msi_layout_errors);
	tcase_add_test(tc, test_msi_64bit_writes);
	tcase_add_test(tc, test_msi_32bit_masking);
	tcase_add_test(tc, test_unaligned_and_partial);
	tcase_add_test(tc, test_bad_accesses);
	tcase_add_test(tc, test_reset);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pci_config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
