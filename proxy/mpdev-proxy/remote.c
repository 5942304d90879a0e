/*
 * The remote's side: one mpdev-remote reached through libmpdev, at a socket
 * path or started by us on a socketpair (and started again when it dies);
 * its notifications, posted writes' errors and counters.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "log.h"
#include "spawn.h"
#include "proxy.h"

static void on_notify(void *opaque, enum mpdev_notify_type type, int status, const char *message)
{
	static const char *const names[] = {
		[MPDEV_NOTIFY_PROTOCOL_ERROR] = "protocol error",
		[MPDEV_NOTIFY_DEVICE_ERROR] = "device error",
		[MPDEV_NOTIFY_REQUEST_DEVICE] = "the host wants the device back",
		[MPDEV_NOTIFY_SHUTDOWN] = "shutting down",
		[MPDEV_NOTIFY_BUSY] = "busy: another proxy holds it",
		[MPDEV_NOTIFY_ACCESS_DENIED] = "access denied",
		[MPDEV_NOTIFY_HANDSHAKE_TIMEOUT] = "dropped: our hello came too late",
	};
	const char *name = (unsigned)type < sizeof(names) / sizeof(names[0]) && names[type]
				   ? names[type]
				   : "notification";

	struct proxy *p = opaque;

	if (type == MPDEV_NOTIFY_RESTARTED) {
		/* The BARs were replayed, but read them again rather than trust that. */
		bar_window_invalidate(&p->bars);
		p->restarts++;
		log_warn(COMP, "the remote restarted (restart %llu): %s",
			 (unsigned long long)p->restarts, message ? message : "");
		return;
	}
	log_warn(COMP, "remote: %s (%s)%s%s", name, status ? strerror(status) : "no status",
		 message && *message ? ": " : "", message ? message : "");
}

static const char *connect_hint(int r)
{
	switch (-r) {
	case ENOENT:
		return " (no socket there: is mpdev-remote running? e.g. systemctl start "
		       "mpdev-remote@NAME)";
	case ECONNREFUSED:
		return " (nobody listens there: mpdev-remote is not running)";
	case EACCES:
	case EPERM:
		return " (permission denied: check the socket's mode and the remote's "
		       "--allow-uid/--allow-gid)";
	case EPROTONOSUPPORT:
		return " (protocol version mismatch: install an mpdev-proxy and an mpdev-remote "
		       "of the same release)";
	case EBUSY:
		return " (another proxy is using this remote)";
	case ETIMEDOUT:
		return " (the remote did not answer in time)";
	default:
		return "";
	}
}

void reap_spawned(struct proxy *p, int timeout_ms)
{
	int status = 0;

	if (p->remote_pid <= 0)
		return;
	if (spawn_wait(p->remote_pid, timeout_ms, &status) == -ETIMEDOUT)
		log_warn(COMP, "the mpdev-remote we started did not exit; killed it");
	else if (WIFEXITED(status) && WEXITSTATUS(status))
		log_warn(COMP, "the mpdev-remote we started exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		log_warn(COMP, "the mpdev-remote we started died of signal %d", WTERMSIG(status));
	p->remote_pid = 0;
}

/* Starts an mpdev-remote of our own; its socket, or a negative errno. */
static int spawn_own_remote(struct proxy *p)
{
	const char *args[MAX_REMOTE_ARGS + 3];
	char bin[4096];
	int n = 0, sock, r;

	args[n++] = "--device";
	args[n++] = p->o.device;
	for (int i = 0; i < p->o.n_remote_args; i++)
		args[n++] = p->o.remote_args[i];
	args[n] = NULL;
	spawn_find_remote(bin, sizeof(bin));
	r = spawn_remote(bin, args, &p->remote_pid, &sock);
	if (r < 0) {
		log_error(COMP, "cannot start %s: %s", bin, strerror(-r));
		return r;
	}
	log_info(COMP, "started %s --fd 3 --device %s (pid %d)", bin, p->o.device,
		 (int)p->remote_pid);
	return sock;
}

/*
 * libmpdev's reconnect_fd for --spawn-remote: the old remote is dead or its
 * connection is (then it resets the device and would only linger), so it is
 * reaped at once and a new one started.
 */
static int respawn_remote(void *opaque)
{
	struct proxy *p = opaque;

	if (p->remote_pid > 0)
		kill(p->remote_pid, SIGKILL);
	reap_spawned(p, 1000);
	return spawn_own_remote(p);
}

int connect_remote(struct proxy *p)
{
	struct mpdev_options opts = {
		.timeout_ms = p->o.timeout_ms,
		.client_name = "mpdev-proxy",
		.on_notify = on_notify,
		.opaque = p,
		.reconnect_timeout_ms = p->o.reconnect_ms,
		.reconnect_fd = p->o.spawn ? respawn_remote : NULL,
		.auto_reconnect = p->o.reconnect_ms > 0,
	};
	int r;

	if (p->o.remote_path) {
		r = mpdev_connect(p->o.remote_path, &opts, &p->dev);
		if (r < 0) {
			log_error(COMP, "cannot use the mpdev-remote at %s: %s%s", p->o.remote_path,
				  mpdev_connect_error(), connect_hint(r));
			return -1;
		}
	} else {
		int sock = spawn_own_remote(p);

		if (sock < 0)
			return -1;
		r = mpdev_connect_fd(sock, &opts, &p->dev);
		if (r < 0) {
			log_error(COMP, "the mpdev-remote we started did not come up: %s%s",
				  mpdev_connect_error(), connect_hint(r));
			return -1;
		}
	}
	if (!(mpdev_features(p->dev) & MPDEV_FEATURE_MEMORY_TABLE))
		log_warn(COMP, "the remote offers no memory table: the device cannot DMA");
	if (!(mpdev_features(p->dev) & MPDEV_FEATURE_INTX_IRQFD))
		log_warn(COMP, "the remote offers no INTx irqfds: no interrupts reach the guest");
	r = mpdev_get_device_info(p->dev, &p->info);
	if (r < 0) {
		log_error(COMP, "device info: %s", mpdev_last_error(p->dev));
		return -1;
	}
	p->cfg_size = (uint32_t)p->info.regions[MPDEV_REGION_CONFIG].size;
	if (p->cfg_size < 64 || p->cfg_size > MPQEMU_MAX_CONFIG_SIZE)
		p->cfg_size = p->cfg_size < 64 ? 256 : MPQEMU_MAX_CONFIG_SIZE;
	{
		uint64_t sizes[BAR_WINDOW_NUM_BARS];

		for (int i = 0; i < BAR_WINDOW_NUM_BARS; i++)
			sizes[i] = p->info.regions[i].size;
		bar_window_init(&p->bars, sizes);
	}
	log_info(COMP, "remote device %s %04x:%04x, %u bytes of config space, features 0x%llx",
		 p->info.name, p->info.vendor_id, p->info.device_id, p->cfg_size,
		 (unsigned long long)mpdev_features(p->dev));
	return 0;
}

bool remote_lost(struct proxy *p)
{
	int r = mpdev_process_events(p->dev);

	if (r >= 0)
		return false;
	log_error(COMP, "the remote went away: %s", mpdev_last_error(p->dev));
	return true;
}

int sync_posted(struct proxy *p)
{
	int r;

	if (!p->posted_unsynced)
		return 0;
	p->posted_unsynced = 0;
	r = mpdev_sync(p->dev);
	if (r == -EIO) {
		log_warn(COMP, "BAR writes failed in the remote: %s", mpdev_last_error(p->dev));
		return 0;
	}
	if (r < 0 && remote_lost(p))
		return -1;
	if (r < 0)
		log_warn(COMP, "sync with the remote: %s", mpdev_last_error(p->dev));
	return 0;
}

struct stats_line {
	char buf[1536];
	size_t len;
};

static void add_counter(void *opaque, const char *name, uint64_t value)
{
	struct stats_line *l = opaque;
	int n;

	if (l->len >= sizeof(l->buf))
		return;
	n = snprintf(l->buf + l->len, sizeof(l->buf) - l->len, " %s=%" PRIu64, name, value);
	if (n > 0)
		l->len += (size_t)n;
}

int dump_stats(struct proxy *p)
{
	struct stats_line l = { .len = 0 };
	enum mpdev_log_level lvl = log_get_level();
	int r;

	if (sync_posted(p) < 0)
		return -1;
	l.buf[0] = '\0';
	r = mpdev_get_stats(p->dev, add_counter, &l);
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "remote counters: %s", mpdev_last_error(p->dev));
		return 0;
	}
	if (lvl < MPDEV_LOG_INFO)
		log_set_level(MPDEV_LOG_INFO);
	/* Log lines are at most 1 KiB: long sets go out in pieces, cut between counters. */
	for (size_t at = 0, n = 0; at < l.len; at += n) {
		n = l.len - at;
		if (n > 800) {
			n = 800;
			while (n > 1 && l.buf[at + n] != ' ')
				n--;
		}
		log_info(COMP, "remote counters%s:%.*s", at ? " (continued)" : "", (int)n,
			 l.buf + at);
	}
	log_info(COMP,
		 "proxy: %" PRIu64 " QEMU messages, %zu memory regions installed, %" PRIu64
		 " BAR accesses that hit no BAR, %" PRIu64 " remote restarts, %" PRIu64
		 " BAR accesses lost in flight",
		 p->messages, p->n_mem, p->bar_misses, p->restarts, p->lost_in_flight);
	log_set_level(lvl);
	return 0;
}
