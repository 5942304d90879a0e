/*
 * libmpdev reading what a remote sends. Each packet record (fuzz_input.h) is
 * one packet "from the remote", queued with its descriptors on a socketpair
 * before the library starts; the remote's side then stops sending, so the
 * library meets the end of the connection once the queue is read, never a
 * wait. A fixed script of API calls (handshake, device info, region access,
 * posted writes and sync, IOMMU info, stats, memory table, interrupts,
 * reset, events, dirty tracking) consumes the queue: request ids go 1, 2, 3, ..., so a
 * reply the input means for a call carries that call's number.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "libmpdev.h"
#include "log.h"
#include "transport.h"

#define TARGET "fuzz_client"

static int baseline_fds;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	return 0;
}

static void on_notify(void *opaque, enum mpdev_notify_type type, int status, const char *message)
{
	/* The text must be a string the library can hand on; reading it all proves that. */
	*(size_t *)opaque += strlen(message) + (size_t)type + (size_t)status;
}

static void counter(void *opaque, const char *name, uint64_t value)
{
	*(size_t *)opaque += strlen(name) + (size_t)value;
}

/* A descriptor the script hands the library (which keeps its own duplicates). */
static int eventfd_or_die(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	if (fd < 0)
		fuzz_fail(TARGET, "eventfd", NULL);
	return fd;
}

static int memfd_or_die(void)
{
	int fd = memfd_create("fuzz-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, 4096) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		fuzz_fail(TARGET, "memfd", NULL);
	return fd;
}

/* Every call of the library that reads a reply, in one order. */
static void script(struct mpdev *dev)
{
	struct mpdev_device_info info;
	struct mpdev_iommu_info iommu;
	uint8_t buf[8] = { 0 };
	uint32_t v = 0;
	size_t sink = 0;
	int efd[3] = { eventfd_or_die(), eventfd_or_die(), eventfd_or_die() };
	struct mpdev_mem_region reg = { .gpa = 0x100000, .size = 4096, .fd = memfd_or_die() };
	bool mask = true;
	static uint8_t dirty[(1u << 21) / 8]; /* 8 GiB at 4 KiB: a report split in five */

	mpdev_get_device_info(dev, &info);
	mpdev_region_read(dev, 0, 0, buf, 4);
	mpdev_config_read(dev, 0, 4, &v);
	mpdev_region_write_posted(dev, 0, 4, buf, 4);
	mpdev_sync(dev);
	mpdev_get_iommu_info(dev, &iommu);
	mpdev_get_stats(dev, counter, &sink);
	mpdev_mem_set_table(dev, &reg, 1);
	mpdev_mem_add(dev, &reg);
	mpdev_set_intx_irqfd(dev, 0, 0, efd[0], efd[1]);
	mpdev_set_irqs_eventfd(dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_TRIGGER, 0, 1, &efd[2]);
	mpdev_set_irqs_bool(dev, MPDEV_IRQ_MSI, MPDEV_IRQ_ACTION_MASK, 0, 1, &mask);
	mpdev_region_write(dev, 7, 4, buf, 2);
	mpdev_reset(dev);
	mpdev_process_events(dev);
	mpdev_mem_remove(dev, reg.gpa, reg.size);
	mpdev_irq_disable(dev, MPDEV_IRQ_MSI);
	mpdev_sync(dev);
	/* Last, so that the ids of every call above stay what the seeds say. */
	mpdev_dirty_start(dev, &(struct mpdev_dirty_range){ 0, 1ull << 33 }, 1, 4096);
	mpdev_dirty_report(dev, 0, 1ull << 33, 4096, dirty, sizeof(dirty));
	mpdev_dirty_stop(dev);
	(void)mpdev_last_error(dev);
	transport_close_fds(efd, 3);
	close(reg.fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd;
	struct fuzz_packet pkt;
	struct fuzz_fds fds;
	struct mpdev *dev = NULL;
	size_t sink = 0;
	struct mpdev_options opts = { .timeout_ms = 1000, .on_notify = on_notify, .opaque = &sink };
	int sv[2];

	baseline_fds = fuzz_count_fds();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fuzz_fail(TARGET, "socketpair", NULL);
	/*
	 * Nobody reads while the queue is filled: a blocking send would wait
	 * forever once the socket buffer is full (many small records do that).
	 * Non-blocking, transport_send's zero timeout ends the queue instead.
	 */
	if (fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
		fuzz_fail(TARGET, "O_NONBLOCK", NULL);
	fuzz_fds_init(&fds);
	fuzz_reader_init(&rd, data, size);
	while (fuzz_next_packet(&rd, &pkt)) {
		int got[FUZZ_MAX_FDS];
		int r;

		fuzz_make_fds(&fds, &pkt, got);
		/* Empty packets are allowed: the library must tell them from the end. */
		r = transport_send(sv[1], pkt.data, pkt.len, got, pkt.nfds, 0);
		transport_close_fds(got, pkt.nfds);
		if (r < 0)
			break; /* the queue is full: the rest of the input goes unsent */
	}
	/* The remote says no more: reading past the queue is the end of the connection. */
	shutdown(sv[1], SHUT_WR);
	if (mpdev_connect_fd(sv[0], &opts, &dev) == 0) {
		script(dev);
		mpdev_close(dev);
	} else if (!mpdev_connect_error()[0]) {
		fuzz_fail(TARGET, "connect failed without a reason", NULL);
	}
	close(sv[1]);
	fuzz_fds_reset(&fds);
	fuzz_check_fds(baseline_fds, TARGET);
	return 0;
}
