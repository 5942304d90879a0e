/*
 * Remote restarts: mpdev_reconnect() reaches the restarted remote, checks
 * that it serves the same device with the features in use, and replays what
 * this handle holds, in an order the device accepts:
 *
 *   1. the memory table (so that nothing the device is told later can DMA
 *      into a void),
 *   2. config space (BARs, capabilities, MSI control, the command register
 *      last: config_shadow.c),
 *   3. INTx irqfd pairs,
 *   4. SET_IRQS: triggers, the INTx unmask eventfd, then masks.
 *
 * And what a call does when its connection died under it (client_retry,
 * client_no_retry): the automatic mode's policy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS	 250

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The first difference that makes the restarted remote's device another one, or NULL. */
static const char *device_differs(const struct mpdev_device_info *a,
				  const struct mpdev_device_info *b, char *buf, size_t len)
{
	static const char *const regions[] = { "BAR0", "BAR1", "BAR2",	 "BAR3", "BAR4",
					       "BAR5", "ROM",  "config", "VGA" };
	static const char *const irqs[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

	if (a->vendor_id != b->vendor_id || a->device_id != b->device_id ||
	    a->subsystem_vendor_id != b->subsystem_vendor_id ||
	    a->subsystem_id != b->subsystem_id) {
		snprintf(buf, len, "ids %04x:%04x (%04x:%04x) before, %04x:%04x (%04x:%04x) now",
			 a->vendor_id, a->device_id, a->subsystem_vendor_id, a->subsystem_id,
			 b->vendor_id, b->device_id, b->subsystem_vendor_id, b->subsystem_id);
		return buf;
	}
	if (a->class_code != b->class_code || a->revision != b->revision) {
		snprintf(buf, len, "class 0x%06x rev %u before, class 0x%06x rev %u now",
			 a->class_code, a->revision, b->class_code, b->revision);
		return buf;
	}
	for (int i = 0; i < MPDEV_NUM_REGIONS; i++) {
		if (a->regions[i].size != b->regions[i].size ||
		    a->regions[i].flags != b->regions[i].flags) {
			snprintf(buf, len,
				 "%s: %llu bytes, flags 0x%x before; %llu bytes, flags 0x%x now",
				 regions[i], (unsigned long long)a->regions[i].size,
				 a->regions[i].flags, (unsigned long long)b->regions[i].size,
				 b->regions[i].flags);
			return buf;
		}
	}
	for (int i = 0; i < MPDEV_NUM_IRQS; i++) {
		if (a->irqs[i].count != b->irqs[i].count) {
			snprintf(buf, len, "%s: %u vector(s) before, %u now", irqs[i],
				 a->irqs[i].count, b->irqs[i].count);
			return buf;
		}
	}
	return NULL;
}

/*
 * Errors worth another attempt: nobody listens yet, the old session is
 * still being torn down, the remote died again or did not answer. The rest
 * (a refusal, another device, a missing feature) would only repeat.
 */
static bool transient(int r)
{
	switch (-r) {
	case ENOENT:
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case EAGAIN:
	case EINTR:
	case ETIMEDOUT:
	case EBUSY:
	case ENOTCONN:
		return true;
	default:
		return false;
	}
}

/* A new socket to the restarted remote, as the handle was made. */
static int dial(struct mpdev *dev, int timeout_ms)
{
	int fd;

	if (dev->path)
		return client_dial(dev->path, timeout_ms, &dev->err);
	errno = 0;
	fd = dev->opts.reconnect_fd(dev->opts.opaque);
	if (fd < 0) {
		/* A negative errno, or -1 with errno set. */
		int e = fd == -1 && errno ? errno : -fd;

		return mpdev_error_set(&dev->err, e, "the reconnect_fd callback gave no socket: %s",
				       strerror(e));
	}
	return fd;
}

/*
 * One attempt: connect, greet with resume, check the device, replay.
 * *fatal says a retry would not help. Leaves the connection open on success.
 */
static int attempt(struct mpdev *dev, int timeout_ms, struct mpdev_replay_info *ri, char *note,
		   size_t note_len, bool *fatal)
{
	struct mpdev_device_info now;
	char why[160];
	int fd, r;

	*fatal = false;
	fd = dial(dev, timeout_ms);
	if (fd < 0) {
		*fatal = fd == -ENAMETOOLONG;
		return fd;
	}
	dev->dead = 0;
	r = client_setup_socket(dev, fd, timeout_ms);
	if (r < 0) {
		close(fd);
		*fatal = true;
		return r;
	}
	r = client_handshake(dev, dev->features, true);
	if (r < 0) {
		/* A refusal, unless the connection itself failed (or was refused as busy). */
		*fatal = !dev->dead && r != -ETIMEDOUT;
		return r;
	}
	r = client_device_info(dev, &now);
	if (r < 0) {
		*fatal = !dev->dead && r != -ETIMEDOUT;
		return client_error_wrap(dev, r, "device info");
	}
	if (dev->have_info && device_differs(&dev->info, &now, why, sizeof(why))) {
		*fatal = true;
		return mpdev_error_set(&dev->err, ENODEV,
				       "the restarted remote serves another device (%s): nothing "
				       "replayed",
				       why);
	}
	if ((r = client_mem_replay(dev)) == 0) {
		ri->mem_regions = (uint32_t)dev->n_mem;
		r = config_shadow_replay(dev, &ri->config_bytes);
		if (r < 0)
			client_error_wrap(dev, r, "config space");
	}
	if (r == 0)
		r = client_irq_replay(dev, ri, note, note_len);
	if (r < 0) {
		*fatal = !dev->dead && r != -ETIMEDOUT;
		return client_error_wrap(dev, r, "replay into the restarted remote failed at");
	}
	return 0;
}

static void close_connection(struct mpdev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

int mpdev_reconnect(struct mpdev *dev)
{
	int budget = dev->opts.reconnect_timeout_ms > 0 ? dev->opts.reconnect_timeout_ms
							: CLIENT_DEFAULT_RECONNECT_MS;
	int64_t start = now_ms(), deadline = start + budget, backoff = BACKOFF_FIRST_MS;
	struct mpdev_replay_info ri;
	char note[160] = "";
	uint32_t attempts = 0;
	bool fatal = false;
	int r;

	if (!dev->path && !dev->opts.reconnect_fd)
		return mpdev_error_set(
			&dev->err, ENOTCONN,
			"cannot reconnect: the handle was made by mpdev_connect_fd() "
			"without mpdev_options.reconnect_fd, so there is no way to "
			"reach a restarted remote");
	/* What the old connection still holds: posted failures, a shutdown notice. */
	client_drain(dev);
	dev->posted_lost += dev->posted_unsynced;
	dev->posted_unsynced = 0;
	ring_forget(dev); /* the restarted remote has none: accesses go by socket */
	close_connection(dev);
	dev->reconnecting = true;
	for (;;) {
		int64_t left = deadline - now_ms();

		memset(&ri, 0, sizeof(ri));
		note[0] = '\0';
		attempts++;
		r = attempt(dev,
			    left < dev->timeout_ms ? (left > 100 ? (int)left : 100)
						   : dev->timeout_ms,
			    &ri, note, sizeof(note), &fatal);
		if (r == 0)
			break;
		close_connection(dev);
		left = deadline - now_ms();
		if (fatal || !transient(r) || left <= 0)
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
	}
	dev->reconnecting = false;
	/* The attempt's timeouts may have been cut to the budget: back to the handle's. */
	if (r == 0)
		r = client_setup_socket(dev, dev->fd, dev->timeout_ms);
	if (r < 0) {
		close_connection(dev);
		if (!fatal && transient(r))
			r = client_error_wrap(dev, -ETIMEDOUT,
					      "no restarted remote%s%s within %d ms (%u attempts); "
					      "last",
					      dev->path ? " at " : "", dev->path ? dev->path : "",
					      budget, attempts);
		dev->dead = -r;
		return r;
	}
	ri.restarts = dev->replay.restarts + 1;
	ri.attempts = attempts;
	ri.duration_ms = (uint32_t)(now_ms() - start);
	ri.posted_lost = dev->posted_lost;
	dev->replay = ri;
	mpdev_error_clear(&dev->err);
	if (dev->opts.on_notify) {
		/* Room for every count at its widest and the whole note: nothing is cut. */
		char msg[512];

		snprintf(msg, sizeof(msg),
			 "reconnected after %u ms (%u attempt(s)) and replayed %u memory "
			 "region(s), %u config byte(s), %u INTx pair(s), %u SET_IRQS eventfd(s), "
			 "%u mask(s)%s",
			 ri.duration_ms, ri.attempts, ri.mem_regions, ri.config_bytes,
			 ri.intx_pairs, ri.irq_eventfds, ri.irq_masks, note);
		dev->opts.on_notify(dev->opts.opaque, MPDEV_NOTIFY_RESTARTED, 0, msg);
	}
	return 0;
}

int mpdev_get_replay_info(const struct mpdev *dev, struct mpdev_replay_info *info)
{
	if (!dev || !info)
		return -EINVAL;
	*info = dev->replay;
	return 0;
}

/* The connection is gone (not refused, not garbled) and the caller asked for automatic reconnects.
 */
static bool should_reconnect(const struct mpdev *dev, int r)
{
	return r == -EPIPE && dev->dead == EPIPE && dev->opts.auto_reconnect &&
	       !dev->reconnecting && (dev->path || dev->opts.reconnect_fd);
}

bool client_retry(struct mpdev *dev, int *r, int *tries)
{
	int rr;

	if (!should_reconnect(dev, *r) || (*tries)++)
		return false;
	rr = mpdev_reconnect(dev);
	if (rr < 0) {
		*r = rr;
		return false;
	}
	return true;
}

int client_no_retry(struct mpdev *dev, int r, const char *what)
{
	int rr;

	if (!should_reconnect(dev, r))
		return r;
	rr = mpdev_reconnect(dev);
	if (rr < 0)
		return rr;
	return mpdev_error_set(&dev->err, ECONNRESET,
			       "the remote restarted and was reconnected and replayed, but this %s "
			       "was not sent again: it may have side effects, and the device was "
			       "reset (its registers, and any migration state)",
			       what);
}
