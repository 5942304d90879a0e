#include "vblk_fixture.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

static const struct mpdev_options vf_opts = { .timeout_ms = 5000, .client_name = "test_vblk" };

void vf_require_io_uring(void)
{
	struct io_uring_params p;
	long fd;

	memset(&p, 0, sizeof(p));
	fd = syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0) {
		printf("skip: io_uring_setup: %s (virtio-blk needs io_uring)\n", strerror(errno));
		exit(77);
	}
	close((int)fd);
}

void vf_pattern(uint8_t *p, uint64_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint64_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

void vf_start(struct vblk_fix *f, uint64_t size, const char *opts)
{
	char dev[160];
	int fd;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "/var/tmp/mpdev-vblk-XXXXXX");
	fd = mkstemp(f->path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	f->file_size = size;
	f->image = malloc(size);
	ck_assert_ptr_nonnull(f->image);
	vf_pattern(f->image, size, 7);
	ck_assert_int_eq(pwrite(fd, f->image, size, 0), (ssize_t)size);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);

	snprintf(dev, sizeof(dev), "virtio-blk:%s%s", f->path, opts ? opts : "");
	remote_start(&f->rem, &(struct remote_opts){ .device = dev, .mpdev = &vf_opts });
	ck_assert(mpdev_features(f->rem.dev) & MPDEV_FEATURE_MEMORY_TABLE);

	f->memfd = testutil_memfd(VF_MEM_SIZE, F_SEAL_SHRINK);
	f->mem = mmap(NULL, VF_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	ck_assert(f->mem != MAP_FAILED);
	struct mpdev_mem_region r = { .gpa = VF_GPA, .size = VF_MEM_SIZE, .fd = f->memfd };
	ck_assert_msg(mpdev_mem_set_table(f->rem.dev, &r, 1) == 0, "mem table: %s",
		      mpdev_last_error(f->rem.dev));
	ck_assert_msg(vdrv_init(&f->d, f->rem.dev, f->mem, VF_GPA, VF_MEM_SIZE) == 0, "init: %s",
		      vdrv_error(&f->d));
}

void vf_stop(struct vblk_fix *f)
{
	vdrv_fini(&f->d);
	remote_stop(&f->rem);
	munmap(f->mem, VF_MEM_SIZE);
	close(f->memfd);
	unlink(f->path);
	free(f->image);
}

void vf_setup(struct vblk_fix *f, uint64_t features, unsigned nq, uint16_t qsize, const int *fds)
{
	struct vdrv *d = &f->d;
	uint64_t dev_f;

	ck_assert_msg(vdrv_reset(d) == 0, "%s", vdrv_error(d));
	/* Rings and buffers start afresh in guest RAM. */
	d->brk = 0;
	ck_assert_msg(vdrv_device_features(d, &dev_f) == 0, "%s", vdrv_error(d));
	ck_assert_msg(vdrv_negotiate(d, features ? features : dev_f) == 0, "%s", vdrv_error(d));
	if (fds)
		ck_assert_msg(vdrv_msix_enable(d, fds, nq) == 0, "%s", vdrv_error(d));
	for (unsigned q = 0; q < nq; q++)
		ck_assert_msg(vdrv_queue_setup(d, q, qsize,
					       fds ? (uint16_t)q : VIRTIO_MSI_NO_VECTOR,
					       fds ? fds[q] : -1) == 0,
			      "queue %u: %s", q, vdrv_error(d));
	ck_assert_msg(vdrv_driver_ok(d) == 0, "%s", vdrv_error(d));
	f->hdr = vdrv_alloc(d, 16, 16, &f->hdr_gpa);
	f->status = vdrv_alloc(d, 1, 1, &f->status_gpa);
	f->data_max = 2u << 20;
	f->data = vdrv_alloc(d, f->data_max, 4096, &f->data_gpa);
	ck_assert(f->hdr && f->status && f->data);
}

void vf_put_hdr(uint8_t *p, uint32_t type, uint64_t sector)
{
	memset(p, 0, 16);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(type >> (8 * i));
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(sector >> (8 * i));
}

uint8_t vf_status(struct vblk_fix *f)
{
	return *(volatile uint8_t *)f->status;
}

uint8_t vf_request(struct vblk_fix *f, unsigned q, uint32_t type, uint64_t sector, uint32_t len,
		   uint32_t *used_len)
{
	struct vdrv_buf hdr = { f->hdr_gpa, 16 }, data = { f->data_gpa, len },
			st = { f->status_gpa, 1 };
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct vdrv_buf out[2] = { hdr, data }, in[2] = { data, st };
	struct vdrv_used u;
	int head;

	ck_assert_uint_le(len, f->data_max);
	vf_put_hdr(f->hdr, type, sector);
	*f->status = 0xee;
	if (dev_writes)
		head = vdrv_submit(&f->d, q, out, 1, len ? in : in + 1, len ? 2 : 1, false);
	else
		head = vdrv_submit(&f->d, q, out, len ? 2 : 1, in + 1, 1, false);
	ck_assert_msg(head >= 0, "submit: %s", vdrv_error(&f->d));
	ck_assert_msg(vdrv_kick(&f->d, q) == 0, "kick: %s", vdrv_error(&f->d));
	ck_assert_msg(vdrv_wait_used(&f->d, q, VF_WAIT_MS, &u) == 0, "wait: %s", vdrv_error(&f->d));
	ck_assert_int_eq(u.head, head);
	if (used_len)
		*used_len = u.len;
	return vf_status(f);
}

void vf_expect_file(struct vblk_fix *f)
{
	uint8_t *buf = malloc(f->file_size);
	int fd = open(f->path, O_RDONLY);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, f->file_size, 0), (ssize_t)f->file_size);
	close(fd);
	for (uint64_t i = 0; i < f->file_size; i++) {
		if (buf[i] != f->image[i]) {
			free(buf);
			ck_abort_msg("backing file differs at byte %llu (sector %llu)",
				     (unsigned long long)i, (unsigned long long)(i / VF_SECTOR));
		}
	}
	free(buf);
}

void vf_expect_alive(struct vblk_fix *f)
{
	uint32_t v = 0;

	ck_assert_msg(vdrv_common_read(&f->d, VIRTIO_COMMON_NUMQ, 2, &v) == 0, "%s",
		      vdrv_error(&f->d));
	ck_assert_uint_gt(v, 0);
	ck_assert_int_eq(mpdev_config_read(f->rem.dev, 0, 2, &v), 0);
	ck_assert_uint_eq(v, 0x1af4);
}
