/*
 * mpdev-proxy: serves stock QEMU's `-device x-pci-proxy-dev,fd=N` (QEMU's
 * multi-process "mpqemu" messages, proxy/mpqemu.h) on one socket and drives
 * an mpdev-remote through libmpdev on the other. Unprivileged.
 *
 * Translation, message by message:
 *   PCI_CFGREAD/WRITE  config space region access; a write to a BAR register
 *                      makes the BAR bases be re-read before the next BAR access
 *   BAR_READ/WRITE     the absolute address is looked up among the BAR bases the
 *                      guest programmed (memory or I/O as QEMU says), then a
 *                      region access at the offset; MMIO writes are posted
 *   SYNC_SYSMEM        the whole guest RAM table: the difference to the table
 *                      installed last goes to the remote as removes and adds
 *   SET_IRQFD          the INTx irqfd + resamplefd pair, for the device's pin
 *   DEVICE_RESET       device reset
 * Requests QEMU waits for get one RET each; a BAR address that hits no BAR
 * is logged and answered with all-ones. Anything QEMU never sends is logged
 * and ends the connection (exit status 1).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bar_window.h"
#include "libmpdev.h"
#include "log.h"
#include "mpqemu.h"
#include "spawn.h"

#define COMP		   "proxy"
#define DEFAULT_TIMEOUT_MS 5000
/* Long enough for systemd's Restart=on-failure (RestartSec=1 in our unit) and a remote's start-up.
 */
#define DEFAULT_RECONNECT_MS 10000
#define MAX_RECONNECT_MS     600000
#define POSTED_SYNC_IDLE_MS  50
#define MAX_REMOTE_ARGS	     16
#define BAR_MISSES_LOGGED    10
#define SHAREABLE_RAM_HINT                                                                         \
	"start QEMU with -object memory-backend-memfd,id=RAM,size=<RAM size>,share=on "            \
	"-machine memory-backend=RAM (and -m equal to that size)"

struct options {
	long qemu_fd;
	const char *listen_path;
	const char *remote_path;
	bool spawn;
	const char *device;
	const char *remote_args[MAX_REMOTE_ARGS + 1];
	int n_remote_args;
	int timeout_ms;
	int reconnect_ms; /* 0: a lost remote ends the proxy */
	int verbosity;
};

/* One entry of the guest RAM table as installed in the remote. */
struct mem_entry {
	uint64_t gpa, size, offset;
	dev_t dev;
	ino_t ino;
};

struct proxy {
	struct options o;
	int qfd;
	int sigfd;
	struct mpdev *dev;
	pid_t remote_pid;
	struct mpdev_device_info info;
	uint32_t cfg_size;
	struct bar_window bars;
	struct mem_entry mem[MPQEMU_MAX_FDS];
	size_t n_mem;
	bool table_seen, warned_no_table, warned_empty_table;
	uint64_t posted_unsynced;
	uint64_t bar_misses;
	uint64_t messages;
	uint64_t restarts;	 /* the remote restarted and was replayed */
	uint64_t lost_in_flight; /* BAR accesses in flight when it died */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpdev-proxy (--fd N | --listen PATH) (--remote-socket PATH | "
		"--spawn-remote)\n"
		"                   [options]\n"
		"Serves QEMU's -device x-pci-proxy-dev,fd=N with a device of an mpdev-remote.\n"
		"QEMU side:\n"
		"  -f, --fd N               inherited stream socket N: a connected end (the\n"
		"                           other end is QEMU's x-pci-proxy-dev fd), or a\n"
		"                           listening socket to accept one connection from\n"
		"  -l, --listen PATH        listen at PATH (mode 0600), accept one connection\n"
		"                           (QEMU started through mpdev-connect), remove PATH\n"
		"Remote side:\n"
		"  -r, --remote-socket PATH connect to the mpdev-remote listening at PATH\n"
		"  -s, --spawn-remote       start an mpdev-remote of our own on a socketpair\n"
		"                           (beside mpdev-proxy, or $MPDEV_REMOTE)\n"
		"  -d, --device SPEC        with --spawn-remote: the device (default: edu)\n"
		"  -a, --remote-arg ARG     with --spawn-remote: one more mpdev-remote argument\n"
		"Other:\n"
		"  -t, --timeout MS         limit per remote request and per piece of a QEMU\n"
		"                           message (default %d)\n"
		"  -R, --reconnect-timeout MS\n"
		"                           when the remote dies, wait this long for it to come\n"
		"                           back (systemd restarts it; with --spawn-remote we\n"
		"                           start a new one), replay the device's set-up into it\n"
		"                           and go on; QEMU's requests wait meanwhile. 0: end\n"
		"                           instead (default %d)\n"
		"  -v, --verbose            more log output (twice for every message)\n"
		"  -h, --help               this text\n"
		"SIGUSR1 logs the remote's counters; SIGTERM/SIGINT end the proxy.\n"
		"Exit status: 0 when QEMU closed the connection or on SIGTERM/SIGINT; 1 on a\n"
		"malformed message, a remote lost for good or a failed set-up; 2 on bad usage.\n",
		DEFAULT_TIMEOUT_MS, DEFAULT_RECONNECT_MS);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "listen", required_argument, NULL, 'l' },
		{ "remote-socket", required_argument, NULL, 'r' },
		{ "spawn-remote", no_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "remote-arg", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "reconnect-timeout", required_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->qemu_fd = -1;
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->reconnect_ms = DEFAULT_RECONNECT_MS;
	while ((c = getopt_long(argc, argv, "f:l:r:sd:a:t:R:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			errno = 0;
			o->qemu_fd = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o->qemu_fd < 0 ||
			    o->qemu_fd > 1000000) {
				fprintf(stderr, "mpdev-proxy: bad --fd '%s'\n", optarg);
				return 2;
			}
			break;
		case 'l':
			o->listen_path = optarg;
			break;
		case 'r':
			o->remote_path = optarg;
			break;
		case 's':
			o->spawn = true;
			break;
		case 'd':
			o->device = optarg;
			break;
		case 'a':
			if (o->n_remote_args == MAX_REMOTE_ARGS) {
				fprintf(stderr, "mpdev-proxy: at most %d --remote-arg\n",
					MAX_REMOTE_ARGS);
				return 2;
			}
			o->remote_args[o->n_remote_args++] = optarg;
			break;
		case 't':
			errno = 0;
			o->timeout_ms = (int)strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o->timeout_ms <= 0 ||
			    o->timeout_ms > 3600000) {
				fprintf(stderr, "mpdev-proxy: bad --timeout '%s'\n", optarg);
				return 2;
			}
			break;
		case 'R':
			errno = 0;
			o->reconnect_ms = (int)strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o->reconnect_ms < 0 ||
			    o->reconnect_ms > MAX_RECONNECT_MS) {
				fprintf(stderr,
					"mpdev-proxy: bad --reconnect-timeout '%s' (0 to %d ms)\n",
					optarg, MAX_RECONNECT_MS);
				return 2;
			}
			break;
		case 'v':
			o->verbosity++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mpdev-proxy: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if ((o->qemu_fd >= 0) == !!o->listen_path) {
		fprintf(stderr, "mpdev-proxy: give exactly one of --fd N and --listen PATH\n");
		usage(stderr);
		return 2;
	}
	if (!!o->remote_path == o->spawn) {
		fprintf(stderr, "mpdev-proxy: give exactly one of --remote-socket PATH and "
				"--spawn-remote\n");
		usage(stderr);
		return 2;
	}
	if (!o->spawn && (o->device || o->n_remote_args)) {
		fprintf(stderr, "mpdev-proxy: --device and --remote-arg need --spawn-remote\n");
		return 2;
	}
	if (!o->device)
		o->device = "edu";
	return 0;
}

/* ---- the remote side ---------------------------------------------------- */

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

/* Reaps the remote we started, however it ended; kills it if it has not. */
static void reap_spawned(struct proxy *p, int timeout_ms)
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

static int connect_remote(struct proxy *p)
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

/* True (and logged) when the connection to the remote is gone for good. */
static bool remote_lost(struct proxy *p)
{
	int r = mpdev_process_events(p->dev);

	if (r >= 0)
		return false;
	log_error(COMP, "the remote went away: %s", mpdev_last_error(p->dev));
	return true;
}

/* Reports posted BAR writes that failed since the last check. */
static int sync_posted(struct proxy *p)
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

/* SIGUSR1: the remote's counters, whatever the verbosity. */
static int dump_stats(struct proxy *p)
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

/* ---- QEMU side: replies and checks --------------------------------------- */

static int reply(struct proxy *p, uint64_t value)
{
	struct mpdev_error err = { 0 };

	if (mpqemu_send_ret(p->qfd, value, p->o.timeout_ms, &err) < 0) {
		log_error(COMP, "cannot answer QEMU: %s", err.msg);
		return -1;
	}
	return 0;
}

static int malformed(struct proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int malformed(struct proxy *p, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	(void)p;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error(COMP, "malformed message from QEMU: %s; closing the connection", why);
	return -1;
}

/*
 * QEMU sends its memory table while it realizes the device, before anything
 * else: a first message of another kind means it could not (no fd for RAM).
 */
static void check_table_seen(struct proxy *p)
{
	if (p->table_seen || p->warned_no_table)
		return;
	p->warned_no_table = true;
	log_warn(COMP,
		 "QEMU sent no guest memory table (SYNC_SYSMEM) before other messages: its guest "
		 "RAM is not shareable, so the device cannot reach guest memory "
		 "(DMA); " SHAREABLE_RAM_HINT);
}

/* ---- config space ---------------------------------------------------------- */

static int on_cfg(struct proxy *p, const struct mpqemu_msg *m)
{
	const struct mpqemu_pci_conf *c = &m->data.pci_conf;
	bool write = m->cmd == MPQEMU_CMD_PCI_CFGWRITE;
	uint32_t val = c->val;
	int r;

	if (c->addr + (uint32_t)c->len > p->cfg_size)
		return malformed(p, "config %s of %d bytes at 0x%x: the device has %u bytes",
				 write ? "write" : "read", c->len, c->addr, p->cfg_size);
	check_table_seen(p);
	if (write) {
		if (bar_window_config_overlaps(c->addr, (uint32_t)c->len))
			bar_window_invalidate(&p->bars);
		r = mpdev_config_write(p->dev, c->addr, (uint32_t)c->len, val);
	} else {
		r = mpdev_config_read(p->dev, c->addr, (uint32_t)c->len, &val);
	}
	log_debug(COMP, "config %s 0x%x/%d = 0x%x: %d", write ? "write" : "read", c->addr, c->len,
		  val, r);
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "config %s of %d bytes at 0x%x failed: %s", write ? "write" : "read",
			 c->len, c->addr, mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	return reply(p, write ? 0 : val);
}

/* ---- BARs --------------------------------------------------------------------- */

static int load_bars(struct proxy *p)
{
	uint32_t regs[BAR_WINDOW_NUM_BARS];

	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++) {
		regs[i] = 0;
		if (!p->bars.size[i] && !(i > 0 && p->bars.size[i - 1]))
			continue; /* neither a BAR nor a possible upper half */
		if (mpdev_config_read(p->dev, BAR_WINDOW_CONFIG_FIRST + 4 * i, 4, &regs[i]) < 0) {
			if (remote_lost(p))
				return -1;
			log_warn(COMP, "reading BAR%u's base: %s", i, mpdev_last_error(p->dev));
			return 0; /* the window stays invalid: this access misses */
		}
	}
	bar_window_load(&p->bars, regs);
	for (unsigned i = 0; i < BAR_WINDOW_NUM_BARS; i++)
		if (p->bars.size[i] && p->bars.base[i])
			log_info(COMP, "BAR%u: %s at 0x%llx, %llu bytes", i,
				 p->bars.io[i] ? "I/O" : "memory",
				 (unsigned long long)p->bars.base[i],
				 (unsigned long long)p->bars.size[i]);
	return 0;
}

static int on_bar(struct proxy *p, const struct mpqemu_msg *m)
{
	const struct mpqemu_bar_access *b = &m->data.bar_access;
	bool write = m->cmd == MPQEMU_CMD_BAR_WRITE;
	uint64_t off = 0, le;
	int bar, r;

	check_table_seen(p);
	if (!p->bars.valid && load_bars(p) < 0)
		return -1;
	bar = bar_window_lookup(&p->bars, b->addr, b->size, b->memory, &off);
	if (bar < 0) {
		if (p->bar_misses++ < BAR_MISSES_LOGGED)
			log_warn(COMP,
				 "%s %s of %u bytes at 0x%llx hits no BAR of the device%s; "
				 "answered with all-ones",
				 b->memory ? "MMIO" : "I/O", write ? "write" : "read", b->size,
				 (unsigned long long)b->addr,
				 p->bar_misses == BAR_MISSES_LOGGED
					 ? " (not logging further misses)"
					 : "");
		return reply(p, UINT64_MAX);
	}
	if (write) {
		le = htole64(b->val);
		/* Like PCI: memory writes are posted, I/O writes are not. */
		if (b->memory && (mpdev_features(p->dev) & MPDEV_FEATURE_POSTED_WRITES)) {
			r = mpdev_region_write_posted(p->dev, (uint32_t)bar, off, &le, b->size);
			if (r == 0)
				p->posted_unsynced++;
		} else {
			r = mpdev_region_write(p->dev, (uint32_t)bar, off, &le, b->size);
		}
	} else {
		le = 0;
		r = mpdev_region_read(p->dev, (uint32_t)bar, off, &le, b->size);
	}
	log_debug(COMP, "BAR%d %s 0x%llx/%u = 0x%llx: %d", bar, write ? "write" : "read",
		  (unsigned long long)off, b->size,
		  (unsigned long long)(write ? b->val : le64toh(le)), r);
	if (r == -ECONNRESET) {
		/*
		 * In flight when the remote died: whether it ran is unknown, and
		 * the registers it touched were reset with the device. Answered
		 * as a PCI device in reset answers (reads all-ones, writes
		 * dropped); the guest learns of the reset from the device itself
		 * (edu: Signaled System Error in the status register).
		 */
		p->lost_in_flight++;
		log_warn(COMP,
			 "BAR%d %s of %u bytes at offset 0x%llx was in flight when the remote "
			 "died: %s",
			 bar, write ? "write" : "read", b->size, (unsigned long long)off,
			 write ? "dropped" : "answered all-ones");
		return reply(p, UINT64_MAX);
	}
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "BAR%d %s of %u bytes at offset 0x%llx failed: %s", bar,
			 write ? "write" : "read", b->size, (unsigned long long)off,
			 mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	return reply(p, write ? 0 : le64toh(le));
}

/* ---- guest memory ----------------------------------------------------------- */

static bool same_entry(const struct mem_entry *a, const struct mem_entry *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->offset == b->offset &&
	       a->dev == b->dev && a->ino == b->ino;
}

/* Why fd cannot back guest memory for the remote, or NULL if it looks right. */
static const char *memfd_problem(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return "it is not a memfd";
	if (!(seals & F_SEAL_SHRINK))
		return "the memfd is not sealed against shrinking (keep memory-backend-memfd's "
		       "seal=on, the default)";
	return NULL;
}

static int on_sync_sysmem(struct proxy *p, struct mpqemu_msg *m)
{
	const struct mpqemu_sync_sysmem *s = &m->data.sync_sysmem;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct mem_entry want[MPQEMU_MAX_FDS];
	int want_fd[MPQEMU_MAX_FDS];
	size_t n_want = 0, added = 0, removed = 0, failed = 0;

	p->table_seen = true;
	if (m->num_fds == 0 && !p->warned_empty_table) {
		p->warned_empty_table = true;
		log_warn(COMP, "QEMU sent a memory table without guest RAM: the device cannot "
			       "reach guest memory (DMA); " SHAREABLE_RAM_HINT);
	}
	for (int i = 0; i < m->num_fds; i++) {
		uint64_t gpa = s->gpas[i], end = gpa + s->sizes[i], off = (uint64_t)s->offsets[i];
		uint64_t start = (gpa + page - 1) & ~(page - 1), stop = end & ~(page - 1);
		struct stat st;

		log_debug(COMP, "guest RAM entry %d: 0x%llx+0x%llx at file offset 0x%llx", i,
			  (unsigned long long)gpa, (unsigned long long)s->sizes[i],
			  (unsigned long long)off);

		/* The remote maps whole pages: keep the whole pages of each entry. */
		if (((gpa ^ off) & (page - 1)) || start + page - 1 < start || stop <= start) {
			log_warn(COMP,
				 "guest RAM entry 0x%llx+0x%llx (file offset 0x%llx) holds no "
				 "whole page: left out",
				 (unsigned long long)gpa, (unsigned long long)s->sizes[i],
				 (unsigned long long)off);
			continue;
		}
		if (fstat(m->fds[i], &st) < 0) {
			log_warn(COMP, "guest RAM entry at 0x%llx: fstat: %s",
				 (unsigned long long)gpa, strerror(errno));
			continue;
		}
		want[n_want] = (struct mem_entry){ .gpa = start,
						   .size = stop - start,
						   .offset = off + (start - gpa),
						   .dev = st.st_dev,
						   .ino = st.st_ino };
		want_fd[n_want++] = m->fds[i];
	}
	/* Removes first, so that a region that moved does not overlap its old self. */
	for (size_t i = 0; i < p->n_mem;) {
		bool keep = false;

		for (size_t k = 0; k < n_want && !keep; k++)
			keep = same_entry(&p->mem[i], &want[k]);
		if (keep) {
			i++;
			continue;
		}
		if (mpdev_mem_remove(p->dev, p->mem[i].gpa, p->mem[i].size) < 0) {
			if (remote_lost(p))
				return -1;
			log_error(COMP, "removing guest RAM 0x%llx+0x%llx from the remote: %s",
				  (unsigned long long)p->mem[i].gpa,
				  (unsigned long long)p->mem[i].size, mpdev_last_error(p->dev));
			failed++;
			i++;
			continue;
		}
		removed++;
		p->mem[i] = p->mem[--p->n_mem];
	}
	for (size_t k = 0; k < n_want; k++) {
		struct mpdev_mem_region r = {
			.gpa = want[k].gpa,
			.size = want[k].size,
			.fd = want_fd[k],
			.fd_offset = want[k].offset,
			.read_only = false,
		};
		const char *problem;
		bool have = false;

		for (size_t i = 0; i < p->n_mem && !have; i++)
			have = same_entry(&p->mem[i], &want[k]);
		if (have)
			continue;
		if (p->n_mem == MPQEMU_MAX_FDS) {
			/* Only when a remove failed: the old entry is still there. */
			log_error(COMP,
				  "guest RAM 0x%llx+0x%llx not installed: the old table could "
				  "not be removed",
				  (unsigned long long)r.gpa, (unsigned long long)r.size);
			failed++;
			continue;
		}
		problem = memfd_problem(r.fd);
		if (mpdev_mem_add(p->dev, &r) < 0) {
			if (remote_lost(p))
				return -1;
			log_error(COMP, "guest RAM 0x%llx+0x%llx refused by the remote: %s%s%s%s",
				  (unsigned long long)r.gpa, (unsigned long long)r.size,
				  mpdev_last_error(p->dev), problem ? " (" : "",
				  problem ? problem : "",
				  problem ? "; " SHAREABLE_RAM_HINT ")" : "");
			failed++;
			continue;
		}
		added++;
		p->mem[p->n_mem++] = want[k];
	}
	log_msg(added || removed || failed ? MPDEV_LOG_INFO : MPDEV_LOG_DEBUG, COMP,
		"guest memory table: %d entries from QEMU, %zu installed (+%zu -%zu%s)", m->num_fds,
		p->n_mem, added, removed, failed ? ", with failures" : "");
	return 0;
}

/* ---- interrupts and reset ---------------------------------------------------- */

static int on_set_irqfd(struct proxy *p, const struct mpqemu_msg *m)
{
	uint32_t pin_reg = 0;
	unsigned pin = 0;

	check_table_seen(p);
	if (mpdev_config_read(p->dev, 0x3d, 1, &pin_reg) < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "reading the interrupt pin: %s; assuming INTA",
			 mpdev_last_error(p->dev));
	} else if (pin_reg >= 1 && pin_reg <= 4) {
		pin = pin_reg - 1;
	} else {
		log_warn(COMP, "the device reports interrupt pin %u; routing QEMU's irqfd to INTA",
			 pin_reg);
	}
	/* One device per remote: its IOHUB line 0. */
	if (mpdev_set_intx_irqfd(p->dev, pin, 0, m->fds[0], m->fds[1]) < 0) {
		if (remote_lost(p))
			return -1;
		log_error(COMP,
			  "INTx irqfd refused by the remote (no interrupts reach the guest): %s",
			  mpdev_last_error(p->dev));
		return 0;
	}
	log_info(COMP, "INT%c wired to QEMU's irqfd and resamplefd", 'A' + pin);
	return 0;
}

static int on_reset(struct proxy *p)
{
	int r = mpdev_reset(p->dev);

	bar_window_invalidate(&p->bars);
	if (r < 0) {
		if (remote_lost(p))
			return -1;
		log_warn(COMP, "device reset: %s", mpdev_last_error(p->dev));
		return reply(p, UINT64_MAX);
	}
	log_info(COMP, "device reset");
	return reply(p, 0);
}

/* One message from QEMU: 1 handled, 0 QEMU closed the connection, -1 fatal. */
static int serve_one(struct proxy *p)
{
	struct mpdev_error err = { 0 };
	struct mpqemu_msg m;
	int r;

	r = mpqemu_recv(p->qfd, &m, p->o.timeout_ms, &err);
	if (r == 0) {
		log_info(COMP, "QEMU closed the connection");
		return 0;
	}
	if (r < 0) {
		if (r == -ECONNRESET) {
			log_info(COMP, "QEMU closed the connection (reset)");
			return 0;
		}
		return malformed(p, "%s", err.msg);
	}
	p->messages++;
	log_debug(COMP, "QEMU: %s, %zu bytes, %d fds", mpqemu_cmd_name(m.cmd), m.size, m.num_fds);
	switch (m.cmd) {
	case MPQEMU_CMD_PCI_CFGREAD:
	case MPQEMU_CMD_PCI_CFGWRITE:
		r = on_cfg(p, &m);
		break;
	case MPQEMU_CMD_BAR_READ:
	case MPQEMU_CMD_BAR_WRITE:
		r = on_bar(p, &m);
		break;
	case MPQEMU_CMD_SYNC_SYSMEM:
		r = on_sync_sysmem(p, &m);
		break;
	case MPQEMU_CMD_SET_IRQFD:
		r = on_set_irqfd(p, &m);
		break;
	case MPQEMU_CMD_DEVICE_RESET:
		check_table_seen(p);
		r = on_reset(p);
		break;
	default: /* mpqemu_recv let nothing else through */
		r = malformed(p, "command %d", m.cmd);
		break;
	}
	/* libmpdev keeps its own duplicates of what it needs. */
	mpqemu_msg_close_fds(&m);
	return r < 0 ? -1 : 1;
}

/* ---- the QEMU socket --------------------------------------------------------- */

static int check_stream(int fd, const char *what)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		log_error(COMP, "%s is not a socket: %s", what, strerror(errno));
		return -1;
	}
	if (type != SOCK_STREAM) {
		log_error(COMP,
			  "%s is not a stream socket: QEMU's x-pci-proxy-dev needs "
			  "SOCK_STREAM (e.g. socketpair(AF_UNIX, SOCK_STREAM, ...))",
			  what);
		return -1;
	}
	return 0;
}

/* Waits for one connection on lfd whose peer is us or root; SIGTERM/SIGINT end the wait. */
static int accept_one(struct proxy *p, int lfd)
{
	for (;;) {
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN },
					{ .fd = p->sigfd, .events = POLLIN } };
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error(COMP, "poll: %s", strerror(errno));
			return -1;
		}
		if (pf[1].revents) {
			struct signalfd_siginfo si;

			if (read(p->sigfd, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGUSR1) {
				log_info(COMP, "signal %u while waiting for QEMU", si.ssi_signo);
				return -2;
			}
			continue;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			log_error(COMP, "accept: %s", strerror(errno));
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != getuid() && cred.uid != 0)) {
			log_warn(COMP,
				 "refused a connection from uid %d: only uid %d (or root) may "
				 "connect",
				 (int)cred.uid, (int)getuid());
			close(fd);
			continue;
		}
		log_info(COMP, "QEMU connected (pid %d)", (int)cred.pid);
		return fd;
	}
}

/* Creates the listening socket at path (mode 0600), atomically ready when it appears. */
static int listen_at(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) + 16 >= sizeof(addr.sun_path)) {
		log_error(COMP, "--listen path too long (at most %zu bytes): %s",
			  sizeof(addr.sun_path) - 17, path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", path, (int)getpid());
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_error(COMP, "%s exists and is not a socket", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			close(probe);
			log_error(COMP, "%s is in use: another process listens there", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error(COMP, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(tmp.sun_path);
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 || chmod(tmp.sun_path, 0600) < 0 ||
	    listen(fd, 1) < 0 || rename(tmp.sun_path, path) < 0) {
		log_error(COMP, "listening at %s: %s", path, strerror(errno));
		unlink(tmp.sun_path);
		close(fd);
		return -1;
	}
	log_info(COMP, "waiting for QEMU at %s", path);
	return fd;
}

static int open_qemu_side(struct proxy *p)
{
	if (p->o.listen_path) {
		int lfd = listen_at(p->o.listen_path);

		if (lfd < 0)
			return -1;
		p->qfd = accept_one(p, lfd);
		close(lfd);
		unlink(p->o.listen_path);
		return p->qfd < 0 ? p->qfd : 0;
	} else {
		int fd = (int)p->o.qemu_fd, listening = 0;
		socklen_t len = sizeof(listening);
		char what[32];

		snprintf(what, sizeof(what), "--fd %d", fd);
		if (fcntl(fd, F_GETFD) < 0) {
			log_error(COMP, "%s: no such open descriptor", what);
			return -1;
		}
		if (check_stream(fd, what) < 0)
			return -1;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
			p->qfd = accept_one(p, fd);
			close(fd);
			return p->qfd < 0 ? p->qfd : 0;
		}
		p->qfd = fd;
		return 0;
	}
}

/* ---- main loop ------------------------------------------------------------------ */

static int run(struct proxy *p)
{
	for (;;) {
		struct pollfd pf[3] = {
			{ .fd = p->qfd, .events = POLLIN },
			{ .fd = mpdev_fd(p->dev), .events = POLLIN },
			{ .fd = p->sigfd, .events = POLLIN },
		};
		int r = poll(pf, 3, p->posted_unsynced ? POSTED_SYNC_IDLE_MS : -1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error(COMP, "poll: %s", strerror(errno));
			return 1;
		}
		if (r == 0) {
			if (sync_posted(p) < 0)
				return 1;
			continue;
		}
		if (pf[2].revents) {
			struct signalfd_siginfo si;

			if (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR1) {
					if (dump_stats(p) < 0)
						return 1;
				} else {
					log_info(COMP, "signal %u: ending", si.ssi_signo);
					return sync_posted(p) < 0 ? 1 : 0;
				}
			}
		}
		if (pf[1].revents) {
			r = mpdev_process_events(p->dev);
			if (r < 0) {
				log_error(COMP, "the remote went away: %s",
					  mpdev_last_error(p->dev));
				return 1;
			}
			if (r > 0 && sync_posted(p) < 0)
				return 1;
		}
		if (pf[0].revents) {
			r = serve_one(p);
			if (r <= 0) {
				if (r == 0 && sync_posted(p) < 0)
					return 1;
				return r < 0 ? 1 : 0;
			}
		}
	}
}

static int setup_signals(struct proxy *p)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (p->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_error(COMP, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void teardown(struct proxy *p)
{
	sigset_t set;

	if (p->qfd >= 0)
		close(p->qfd);
	p->qfd = -1;
	mpdev_close(p->dev);
	p->dev = NULL;
	/* It exits once its connection is gone. */
	reap_spawned(p, 3000);
	/* Children of ours (none after this) must not inherit a blocked mask. */
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	if (p->sigfd >= 0)
		close(p->sigfd);
	p->sigfd = -1;
}

int main(int argc, char **argv)
{
	struct proxy p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.qfd = p.sigfd = -1;
	log_set_ident("mpdev-proxy");
	rc = parse_options(argc, argv, &p.o);
	if (rc)
		return rc;
	log_set_level((enum mpdev_log_level)(MPDEV_LOG_WARN + p.o.verbosity));
	/* A QEMU or remote that vanishes mid-send is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() == 0)
		log_warn(COMP, "running as root: mpdev-proxy needs no privilege; run it as the "
			       "user that runs QEMU");
	rc = 1;
	/*
	 * The remote first: QEMU waits for answers as soon as it realizes the
	 * device. And before signals are blocked: a spawned remote must not
	 * inherit the mask.
	 */
	if (connect_remote(&p) < 0 || setup_signals(&p) < 0)
		goto out;
	switch (open_qemu_side(&p)) {
	case 0:
		break;
	case -2: /* ended by a signal while waiting */
		rc = 0;
		goto out;
	default:
		goto out;
	}
	rc = run(&p);
out:
	teardown(&p);
	return rc;
}
