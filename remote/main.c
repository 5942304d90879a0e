/* mpdev-remote: the per-device daemon. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "backend.h"
#include "closer.h"
#include "efdio.h"
#include "fdident.h"
#include "host.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"

#define COMP "remote"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpdev-remote --device SPEC [--socket PATH | --fd N] [options]\n"
		"\n"
		"  -d, --device SPEC     device to serve: 'edu' (emulated QEMU edu device), or\n"
		"                        'vfio:DDDD:BB:DD.F' (a host device bound to vfio-pci)\n"
		"  -i, --iommu KIND      vfio: auto (iommufd where the kernel has it, else the\n"
		"                        container), container (TYPE1v2), iommufd\n"
		"  -x, --intx MODE       vfio: auto/direct (the proxy's irqfd is VFIO's trigger,\n"
		"                        its resamplefd VFIO's unmask) or routed (IOHUB)\n"
		"  -s, --socket PATH     listen on a SOCK_SEQPACKET Unix socket at PATH\n"
		"  -f, --fd N            use inherited socket N: listening (accept on it) or\n"
		"                        connected (serve it, exit when it closes)\n"
		"                        without --socket/--fd: the socket systemd passes\n"
		"                        (LISTEN_FDS, mpdev-remote@.socket)\n"
		"  -u, --allow-uid UID   peer uid allowed to connect (repeatable)\n"
		"  -g, --allow-gid GID   peer gid allowed to connect (repeatable)\n"
		"                        without either option: root and the invoking user;\n"
		"                        with them: exactly the ids given\n"
		"  -U, --user USER       drop to this user once set up (default: mpdev)\n"
		"  -G, --group GROUP     and this group (default: the user's primary group)\n"
		"      --handshake-timeout MS\n"
		"                        drop a peer that sent no hello within MS (default %d)\n"
		"      --eventfd-io METHOD\n"
		"                        how a peer's eventfds are signalled without blocking:\n"
		"                        auto (default), aio or io_uring (docs/security.md)\n"
		"      --no-sandbox      DEBUGGING ONLY: keep privileges, no seccomp\n"
		"  -v, --verbose         more log output (twice for debug)\n"
		"  -h, --help            this text\n",
		SERVER_HANDSHAKE_TIMEOUT_MS);
}

static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return (errno || !*s || *end || *out > 0xfffffffful) ? -EINVAL : 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info(COMP, "signal %d: shutting down", (int)sig);
	sd_notify(0, "STOPPING=1");
	event_base_loopexit(arg, NULL);
}

#ifdef MPDEV_SANDBOX_TEST_TRIGGER
/*
 * Test builds only (mpdev-remote-sandbox-test): once sandboxed, make a call
 * the allow list forbids. The process must die of SIGSYS.
 */
static void forbidden_call(const char *what)
{
	if (!strcmp(what, "execve"))
		execl("/bin/true", "true", (char *)NULL);
	else if (!strcmp(what, "socket"))
		socket(AF_INET, SOCK_STREAM, 0);
	else if (!strcmp(what, "open"))
		open("/etc/hostname", O_RDONLY);
	else if (!strcmp(what, "create"))
		open("/tmp/mpdev-sandbox-escape", O_RDWR | O_CREAT, 0600);
	fprintf(stderr, "mpdev-remote: forbidden call '%s' survived\n", what);
	exit(3);
}
#endif

#ifdef MPDEV_SANITIZE
/*
 * Sanitizer builds: LeakSanitizer's exit-time check stops the world with a
 * ptrace'ing helper thread, which the sandboxed (non-dumpable, seccomp'd)
 * remote cannot run. Leaks of the code it shares are checked in-process by
 * the unit tests; ASan and UBSan stay on here.
 */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

struct remote_options {
	struct backend_config backend;
	struct server_config server;
	struct sandbox_config sandbox;
	const char *path;
	long fd;
	bool sandbox_off;
	const char *eventfd_io;
	const char *forbidden;
	int verbosity;
};

static int parse_options(int argc, char **argv, struct remote_options *o)
{
	enum { OPT_NO_SANDBOX = 256, OPT_TEST_FORBIDDEN, OPT_HANDSHAKE_TIMEOUT, OPT_EVENTFD_IO };
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "iommu", required_argument, NULL, 'i' },
		{ "intx", required_argument, NULL, 'x' },
		{ "socket", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "allow-uid", required_argument, NULL, 'u' },
		{ "allow-gid", required_argument, NULL, 'g' },
		{ "user", required_argument, NULL, 'U' },
		{ "group", required_argument, NULL, 'G' },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
		{ "eventfd-io", required_argument, NULL, OPT_EVENTFD_IO },
		{ "test-forbidden", required_argument, NULL, OPT_TEST_FORBIDDEN },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool custom_allow = false;
	unsigned long id;
	int c;

	memset(o, 0, sizeof(*o));
	o->backend.iommu = "auto";
	o->backend.intx = "auto";
	o->fd = -1;
	o->verbosity = MPDEV_LOG_WARN;
	while ((c = getopt_long(argc, argv, "d:i:x:s:f:u:g:U:G:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->backend.device = optarg;
			break;
		case 'i':
			o->backend.iommu = optarg;
			break;
		case 'x':
			o->backend.intx = optarg;
			break;
		case 's':
			o->path = optarg;
			break;
		case 'f':
			if (parse_id(optarg, &id) < 0 || id > 65535) {
				fprintf(stderr, "mpdev-remote: bad --fd '%s'\n", optarg);
				return 2;
			}
			o->fd = (long)id;
			break;
		case 'u':
		case 'g':
			if (parse_id(optarg, &id) < 0 ||
			    (c == 'u' ? peercred_allow_add_uid(&o->server.allow, (uid_t)id)
				      : peercred_allow_add_gid(&o->server.allow, (gid_t)id)) < 0) {
				fprintf(stderr, "mpdev-remote: bad or too many --allow-%cid '%s'\n",
					c, optarg);
				return 2;
			}
			custom_allow = true;
			break;
		case 'U':
			o->sandbox.user = optarg;
			break;
		case 'G':
			o->sandbox.group = optarg;
			break;
		case OPT_NO_SANDBOX:
			o->sandbox_off = true;
			break;
		case OPT_HANDSHAKE_TIMEOUT:
			if (parse_id(optarg, &id) < 0 || !id || id > 3600000) {
				fprintf(stderr, "mpdev-remote: bad --handshake-timeout '%s'\n",
					optarg);
				return 2;
			}
			o->server.handshake_timeout_ms = (int)id;
			break;
		case OPT_EVENTFD_IO:
			o->eventfd_io = optarg;
			break;
		case OPT_TEST_FORBIDDEN:
#ifdef MPDEV_SANDBOX_TEST_TRIGGER
			o->forbidden = optarg;
			break;
#else
			fprintf(stderr,
				"mpdev-remote: --test-forbidden exists in test builds only\n");
			return 2;
#endif
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
	if (optind != argc || !o->backend.device || (o->path && o->fd >= 0)) {
		usage(stderr);
		return 2;
	}
	if (!custom_allow)
		peercred_allow_default(&o->server.allow);
	return 0;
}

/*
 * Descriptors: the soft limit up to the hard one (systemd's LimitNOFILE sets
 * both), then a budget that keeps room for a whole packet of them, so the
 * kernel never has to drop (and close, in our thread) one it delivers.
 */
static void set_fd_budget(struct remote_options *o, const struct backend *b)
{
	struct backend_device_info info;
	struct rlimit rl;
	unsigned vectors;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	b->ops->get_info((struct backend *)b, &info);
	vectors = info.irqs[BACKEND_IRQ_MSI].count + info.irqs[BACKEND_IRQ_MSIX].count;
	if (server_budget((unsigned long)rl.rlim_cur, vectors, &o->server) < 0)
		log_warn(COMP,
			 "RLIMIT_NOFILE %lu leaves little room for a peer's descriptors; raise "
			 "LimitNOFILE",
			 (unsigned long)rl.rlim_cur);
	log_info(COMP,
		 "descriptors: limit %lu, a chunked table holds at most %u, %u may wait "
		 "to be closed",
		 (unsigned long)rl.rlim_cur, o->server.max_table_fds, o->server.max_pending_closes);
}

static int start_closer(void *opaque, struct mpdev_error *err)
{
	(void)opaque;
	return closer_start(err);
}

/* --socket, --fd, or the one socket systemd passed. */
static int open_socket(struct server *srv, const struct remote_options *o, struct mpdev_error *err)
{
	int n;

	if (o->path)
		return server_listen_path(srv, o->path, err);
	if (o->fd >= 0)
		return server_adopt_fd(srv, (int)o->fd, err);
	n = sd_listen_fds(1);
	if (n == 1)
		return server_adopt_fd(srv, SD_LISTEN_FDS_START, err);
	if (n > 1)
		return mpdev_error_set(err, EINVAL, "systemd passed %d sockets; one is expected",
				       n);
	return mpdev_error_set(err, EINVAL,
			       "no socket: give --socket PATH or --fd N, or start through "
			       "mpdev-remote@.socket");
}

int main(int argc, char **argv)
{
	struct remote_options o;
	struct mpdev_error err = { 0 };
	struct remote_host host;
	struct backend *backend = NULL;
	struct server *srv = NULL;
	struct event_base *base;
	struct event *sigterm = NULL, *sigint = NULL;
	int rc = 1;

	log_set_ident("mpdev-remote");
	rc = parse_options(argc, argv, &o);
	if (rc)
		return rc;
	rc = 1;
	log_set_level((enum mpdev_log_level)o.verbosity);
	/* A proxy that vanishes mid-reply must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/* Under the sandbox the socket file cannot be removed; the next start replaces it. */
	o.server.keep_socket_file = !o.sandbox_off;

	base = event_base_new();
	if (!base) {
		log_error(COMP, "event_base_new failed");
		return 1;
	}
	/* Before anything can receive a peer's eventfd, and before the sandbox. */
	if (efdio_init(o.eventfd_io, &err) < 0) {
		log_error(COMP, "%s", err.msg);
		event_base_free(base);
		return 1;
	}
	log_info(COMP, "eventfds: %s", efdio_describe());
	rc = fd_identity_probe();
	if (rc < 0)
		log_warn(COMP,
			 "kcmp is unavailable (%s): the remote cannot tell eventfds apart and "
			 "will refuse every interrupt eventfd",
			 strerror(-rc));
	rc = 1;
	if (remote_host_init(&host, base, &err) < 0) {
		log_error(COMP, "%s", err.msg);
		event_base_free(base);
		return 1;
	}
	/* Everything privileged happens here, before the drop: the device, the socket. */
	if (backend_create(&o.backend, base, &host.ops, &backend, &err) < 0 ||
	    remote_host_set_backend(&host, backend, &err) < 0) {
		log_error(COMP, "device '%s': %s", o.backend.device, err.msg);
		goto out;
	}
	set_fd_budget(&o, backend);
	if (server_create(base, backend, &host, &o.server, &srv, &err) < 0 ||
	    open_socket(srv, &o, &err) < 0) {
		log_error(COMP, "%s", err.msg);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
		log_error(COMP, "cannot watch SIGTERM/SIGINT");
		goto out;
	}
	o.sandbox.before_filter = start_closer;
	if (o.sandbox_off) {
		log_warn(COMP, "*** --no-sandbox: running with full privileges and no seccomp "
			       "filter; for debugging only ***");
		if (closer_start(&err) < 0) {
			log_error(COMP, "%s", err.msg);
			goto out;
		}
	} else if (sandbox_enter(&o.sandbox, &err) < 0) {
		log_error(COMP, "sandbox: %s", err.msg);
		goto out;
	}
#ifdef MPDEV_SANDBOX_TEST_TRIGGER
	if (o.forbidden)
		forbidden_call(o.forbidden);
#endif
	log_info(COMP, "serving device '%s'", o.backend.device);
	sd_notifyf(0, "READY=1\nSTATUS=serving %s, waiting for a proxy", o.backend.device);
	rc = event_base_dispatch(base) < 0 ? 1 : 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	server_destroy(srv);
	remote_host_destroy(&host);
	backend_destroy(backend);
	closer_stop(1000);
	efdio_shutdown();
	event_base_free(base);
	return rc;
}
