/*
 * libmpdev's shadow of config space: the bytes the caller wrote and the
 * remote accepted, so that a restarted remote's device answers at the same
 * addresses with the same set-up.
 *
 * The replay cannot write the bytes back in address order: the command
 * register would turn on memory decoding and bus mastering before the BARs
 * are placed, and MSI would be enabled before its address and data are
 * there. Status registers are write-1-to-clear: writing back what the guest
 * once wrote would clear what the new device reports (the Signaled System
 * Error that tells the guest its device was reset). BIST's start bit would
 * start a self test. So each byte gets a phase, and the phases go in order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define CFG_COMMAND	0x04
#define CFG_STATUS	0x06
#define CFG_BIST	0x0f
#define CFG_BAR0	0x10
#define CFG_BAR_END	0x28
#define CFG_ROM		0x30
#define CFG_CAP_PTR	0x34
#define CFG_HEADER_END	0x40
#define CFG_LEGACY_END	0x100
#define STATUS_CAP_LIST 0x10
#define CAP_ID_MSI	0x05
#define CAP_ID_PCIE	0x10
#define CAP_ID_MSIX	0x11
#define EXT_CAP_ID_AER	0x0001
#define MAX_CAPS	48
#define MAX_EXT_CAPS	((CLIENT_CONFIG_SHADOW_SIZE - CFG_LEGACY_END) / 4)

enum phase {
	PHASE_SKIP = 0,
	PHASE_BARS,    /* where the device decodes: BARs and the ROM BAR */
	PHASE_REST,    /* everything else, capabilities included */
	PHASE_CONTROL, /* MSI / MSI-X message control, after address and data */
	PHASE_COMMAND, /* decoding and bus mastering on last */
	PHASE_END,
};

void config_shadow_record(struct mpdev *dev, uint64_t offset, const void *data, uint32_t size)
{
	struct config_shadow *s = &dev->cfg;

	if (dev->reconnecting)
		return;
	if (offset >= CLIENT_CONFIG_SHADOW_SIZE || size > CLIENT_CONFIG_SHADOW_SIZE - offset) {
		s->incomplete = true;
		return;
	}
	if (!s->val) {
		s->val = calloc(CLIENT_CONFIG_SHADOW_SIZE, 1);
		s->written = calloc(CLIENT_CONFIG_SHADOW_SIZE, 1);
		if (!s->val || !s->written) {
			config_shadow_free(s);
			s->incomplete = true;
			return;
		}
	}
	memcpy(s->val + offset, data, size);
	memset(s->written + offset, 1, size);
}

void config_shadow_clear(struct config_shadow *s)
{
	if (s->written)
		memset(s->written, 0, CLIENT_CONFIG_SHADOW_SIZE);
	s->incomplete = false;
}

void config_shadow_free(struct config_shadow *s)
{
	free(s->val);
	free(s->written);
	s->val = s->written = NULL;
}

static int cfg_read(struct mpdev *dev, uint32_t offset, uint32_t size, uint32_t *v)
{
	uint8_t b[4] = { 0 };
	int r = client_region_read(dev, MPDEV_REGION_CONFIG, offset, b, size);

	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return r;
}

static void mark(uint8_t *phase, uint32_t from, uint32_t len, enum phase p)
{
	for (uint32_t i = from; i < from + len && i < CLIENT_CONFIG_SHADOW_SIZE; i++)
		phase[i] = (uint8_t)p;
}

/* The conventional capability list, read from the new device (its layout is read-only). */
static int classify_caps(struct mpdev *dev, uint8_t *phase)
{
	uint32_t status, ptr, id, next;
	int r;

	if ((r = cfg_read(dev, CFG_STATUS, 2, &status)) < 0)
		return r;
	if (!(status & STATUS_CAP_LIST))
		return 0;
	if ((r = cfg_read(dev, CFG_CAP_PTR, 1, &ptr)) < 0)
		return r;
	for (int n = 0; n < MAX_CAPS && (ptr &= 0xfc) >= CFG_HEADER_END; n++, ptr = next) {
		if ((r = cfg_read(dev, ptr, 1, &id)) < 0 ||
		    (r = cfg_read(dev, ptr + 1, 1, &next)) < 0)
			return r;
		switch (id) {
		case CAP_ID_MSI:
		case CAP_ID_MSIX:
			mark(phase, ptr + 2, 2, PHASE_CONTROL);
			break;
		case CAP_ID_PCIE: /* device, link, slot, root and link 2 status: W1C */
			mark(phase, ptr + 0x0a, 2, PHASE_SKIP);
			mark(phase, ptr + 0x12, 2, PHASE_SKIP);
			mark(phase, ptr + 0x1a, 2, PHASE_SKIP);
			mark(phase, ptr + 0x20, 4, PHASE_SKIP);
			mark(phase, ptr + 0x32, 2, PHASE_SKIP);
			break;
		default:
			break;
		}
	}
	return 0;
}

/* Extended capabilities: only AER's status registers (W1C) need care. */
static int classify_ext_caps(struct mpdev *dev, uint8_t *phase)
{
	uint32_t ptr = CFG_LEGACY_END, hdr;
	int r;

	for (unsigned n = 0; n < MAX_EXT_CAPS && ptr >= CFG_LEGACY_END; n++) {
		if ((r = cfg_read(dev, ptr, 4, &hdr)) < 0)
			return r;
		if (hdr == 0 || hdr == 0xffffffffu)
			return 0;
		if ((hdr & 0xffff) == EXT_CAP_ID_AER) {
			mark(phase, ptr + 0x04, 4, PHASE_SKIP);
			mark(phase, ptr + 0x10, 4, PHASE_SKIP);
			mark(phase, ptr + 0x30, 4, PHASE_SKIP);
		}
		ptr = (hdr >> 20) & 0xffc;
	}
	return 0;
}

static int classify(struct mpdev *dev, uint8_t *phase)
{
	const struct config_shadow *s = &dev->cfg;
	bool extended = false;
	int r;

	memset(phase, PHASE_REST, CLIENT_CONFIG_SHADOW_SIZE);
	mark(phase, CFG_BAR0, CFG_BAR_END - CFG_BAR0, PHASE_BARS);
	mark(phase, CFG_ROM, 4, PHASE_BARS);
	mark(phase, CFG_COMMAND, 2, PHASE_COMMAND);
	mark(phase, CFG_STATUS, 2, PHASE_SKIP);
	mark(phase, CFG_BIST, 1, PHASE_SKIP);
	if ((r = classify_caps(dev, phase)) < 0)
		return r;
	for (uint32_t i = CFG_LEGACY_END; i < CLIENT_CONFIG_SHADOW_SIZE && !extended; i++)
		extended = s->written[i];
	if (extended && dev->info.regions[MPDEV_REGION_CONFIG].size > CFG_LEGACY_END)
		return classify_ext_caps(dev, phase);
	return 0;
}

static int write_back(struct mpdev *dev, uint32_t offset, uint32_t size)
{
	int r = client_region_write(dev, MPDEV_REGION_CONFIG, offset, dev->cfg.val + offset, size);

	if (r < 0)
		return client_error_wrap(dev, r, "config write of %u byte(s) at 0x%x", size,
					 offset);
	return 0;
}

/* The bytes of phase p in one aligned dword: as one access where they fill it, else by halves or
 * bytes. */
static int replay_dword(struct mpdev *dev, const uint8_t *phase, uint32_t at, enum phase p,
			uint32_t *bytes)
{
	bool want[4];
	int r = 0;

	for (int i = 0; i < 4; i++)
		want[i] = dev->cfg.written[at + i] && phase[at + i] == p;
	if (want[0] && want[1] && want[2] && want[3]) {
		*bytes += 4;
		return write_back(dev, at, 4);
	}
	for (uint32_t half = 0; half < 4 && r == 0; half += 2) {
		if (want[half] && want[half + 1]) {
			*bytes += 2;
			r = write_back(dev, at + half, 2);
			continue;
		}
		for (uint32_t i = half; i < half + 2 && r == 0; i++) {
			if (want[i]) {
				*bytes += 1;
				r = write_back(dev, at + i, 1);
			}
		}
	}
	return r;
}

int config_shadow_replay(struct mpdev *dev, uint32_t *bytes)
{
	uint8_t *phase;
	int r;

	*bytes = 0;
	if (dev->cfg.incomplete)
		return mpdev_error_set(
			&dev->err, ENOMEM,
			"config space writes could not all be remembered for replay");
	if (!dev->cfg.written)
		return 0;
	phase = malloc(CLIENT_CONFIG_SHADOW_SIZE);
	if (!phase)
		return mpdev_error_set(&dev->err, ENOMEM, "out of memory");
	r = classify(dev, phase);
	if (r < 0)
		client_error_wrap(dev, r, "reading the capability list");
	for (int p = PHASE_BARS; p < PHASE_END && r == 0; p++)
		for (uint32_t at = 0; at < CLIENT_CONFIG_SHADOW_SIZE && r == 0; at += 4)
			r = replay_dword(dev, phase, at, (enum phase)p, bytes);
	free(phase);
	return r;
}
