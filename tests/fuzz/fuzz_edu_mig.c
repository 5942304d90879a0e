/*
 * The edu device's migration stream as a target receives it
 * (docs/migration-edu.md): each input is one load. Its first byte's low 7
 * bits are the size of each mig_load call (0: the whole rest in one); with
 * bit 7 set the harness first rewrites every whole record's CRC-32C, so that
 * mutations reach the checks behind the CRC. The rest is the stream. The device goes RUNNING ->
 * RESUMING, takes the stream, then RESUMING -> STOP. A stream it takes must leave a device that
 * runs (its held factorial and DMA included) and resets; a stream it refuses must say why and leave
 * the device in ERROR, from which reset brings it back.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "edu.h"
#include "fuzz_input.h"
#include "mig_stream.h"

#define TARGET	 "fuzz_edu_mig"
#define RAM_SIZE 0x10000

static struct {
	struct event_base *base;
	struct backend_host host;
	struct backend *dev;
	uint8_t ram[RAM_SIZE];
	uint8_t stream[1u << 20]; /* libFuzzer's own input limit */
} w;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ram_check(uint64_t gpa, size_t len, struct mpdev_error *err)
{
	if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
		return mpdev_error_set(err, EFAULT, "outside RAM");
	return 0;
}

static int dma_read(struct backend_host *h, uint64_t gpa, void *buf, size_t len,
		    struct mpdev_error *err)
{
	int r = ram_check(gpa, len, err);

	if (r == 0)
		memcpy(buf, w.ram + gpa, len);
	return r;
}

static int dma_write(struct backend_host *h, uint64_t gpa, const void *buf, size_t len,
		     struct mpdev_error *err)
{
	int r = ram_check(gpa, len, err);

	if (r == 0)
		memcpy(w.ram + gpa, buf, len);
	return r;
}

static int set_intx(struct backend_host *h, unsigned pin, bool level, struct mpdev_error *err)
{
	if (pin != 0)
		fuzz_fail(TARGET, "set_intx", "pin other than INTA");
	return 0;
}

static int signal_vector(struct backend_host *h, unsigned irq_index, unsigned vector,
			 struct mpdev_error *err)
{
	if (irq_index != BACKEND_IRQ_MSI || vector != 0)
		fuzz_fail(TARGET, "signal_vector", "not MSI vector 0");
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mpdev_error err = { 0 };

	fuzz_init_process();
	w.base = event_base_new();
	if (!w.base)
		fuzz_fail(TARGET, "setup", "event_base_new");
	w.host.dma_read = dma_read;
	w.host.dma_write = dma_write;
	w.host.set_intx = set_intx;
	w.host.signal_vector = signal_vector;
	if (edu_create(w.base, &w.host, &w.dev, &err) < 0)
		fuzz_fail(TARGET, "setup", err.msg);
	return 0;
}

static void arc(enum backend_mig_state from, enum backend_mig_state to)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now;

	if (w.dev->ops->mig_arc(w.dev, from, to, &now, &err) < 0 || now != to)
		fuzz_fail(TARGET, "arc", err.msg[0] ? err.msg : "wrong state");
}

static void run_loop(void)
{
	for (int i = 0; i < 4; i++)
		if (event_base_loop(w.base, EVLOOP_NONBLOCK) < 0)
			fuzz_fail(TARGET, "loop", "event_base_loop");
}

static uint32_t rd32(uint64_t off)
{
	struct mpdev_error err = { 0 };
	uint8_t b[4];

	if (w.dev->ops->region_read(w.dev, BACKEND_REGION_BAR0, off, b, 4, &err) < 0)
		fuzz_fail(TARGET, "BAR0 read", err.msg);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void reset_and_check(void)
{
	struct mpdev_error err = { 0 };
	const uint8_t four[4] = { 4, 0, 0, 0 };

	if (w.dev->ops->reset(w.dev, &err) < 0)
		fuzz_fail(TARGET, "reset", err.msg);
	/* Back in RUNNING and working: a factorial completes. */
	if (w.dev->ops->region_write(w.dev, BACKEND_REGION_BAR0, 0x08, four, 4, &err) < 0)
		fuzz_fail(TARGET, "after reset: BAR0 write", err.msg);
	run_loop();
	if (rd32(0x08) != 24)
		fuzz_fail(TARGET, "after reset", "4! is not 24");
}

/* Feeds the stream; 0, or the refusal's -errno with its message checked. */
static int load(const uint8_t *p, size_t len, size_t chunk)
{
	struct mpdev_error err = { 0 };
	int r = 0;

	while (len && r == 0) {
		size_t n = chunk && chunk < len ? chunk : len;

		r = w.dev->ops->mig_load(w.dev, p, n, &err);
		p += n;
		len -= n;
	}
	if (r < 0 && (r != -EINVAL || !err.msg[0]))
		fuzz_fail(TARGET, "mig_load", "refused without -EINVAL and a reason");
	return r;
}

/* Makes every record that the stream holds whole carry the CRC of what it holds. */
static void fix_crcs(uint8_t *p, size_t len)
{
	size_t off = 0;

	while (len - off >= MIG_RECORD_OVERHEAD) {
		uint32_t n = mig_get32(p + off + 4);

		if (n > len - off - MIG_RECORD_OVERHEAD)
			return;
		mig_put32(p + off + MIG_RECORD_HDR_SIZE + n,
			  mig_crc32c(0, p + off, MIG_RECORD_HDR_SIZE + n));
		off += MIG_RECORD_OVERHEAD + n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mpdev_error err = { 0 };
	enum backend_mig_state now;
	const uint8_t *stream = data + 1;
	size_t chunk;
	int r;

	if (size == 0 || size - 1 > sizeof(w.stream))
		return 0;
	chunk = data[0] & 0x7f;
	if (data[0] & 0x80) {
		memcpy(w.stream, data + 1, size - 1);
		fix_crcs(w.stream, size - 1);
		stream = w.stream;
	}
	arc(BACKEND_MIG_RUNNING, BACKEND_MIG_RUNNING_P2P);
	arc(BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_STOP);
	arc(BACKEND_MIG_STOP, BACKEND_MIG_RESUMING);
	r = load(stream, size - 1, chunk);
	if (w.dev->ops->mig_arc(w.dev, BACKEND_MIG_RESUMING, BACKEND_MIG_STOP, &now, &err) == 0) {
		if (r < 0 || now != BACKEND_MIG_STOP)
			fuzz_fail(TARGET, "RESUMING -> STOP",
				  r < 0 ? "took a refused stream" : "not in STOP");
		/* A loaded device runs what it holds, only inside its buffer and our RAM. */
		arc(BACKEND_MIG_STOP, BACKEND_MIG_RUNNING_P2P);
		arc(BACKEND_MIG_RUNNING_P2P, BACKEND_MIG_RUNNING);
		run_loop();
		(void)rd32(0x20);
	} else if (now != BACKEND_MIG_ERROR || !err.msg[0]) {
		fuzz_fail(TARGET, "RESUMING -> STOP", "refused without ERROR and a reason");
	}
	reset_and_check();
	return 0;
}
