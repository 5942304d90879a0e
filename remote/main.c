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
#include "face.h"
#include "efdio.h"
#include "fdident.h"
#include "guest_mem.h"
#include "host.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"

#define COMP "remote"

/* Devices one remote serves for one VM. */
#define REMOTE_MAX_DEVICES 8

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpdev-remote --device SPEC [--socket PATH | --fd N] [options]\n"
		"       mpdev-remote --device SPEC --socket PATH --device SPEC --socket PATH ...\n"
		"\n"
		"  -d, --device SPEC     device to serve: 'edu' (emulated QEMU edu device),\n"
		"                        'virtio-blk:PATH[,ro][,queues=N][,direct=on|off]\n"
		"                        [,serial=S]' (emulated virtio-blk disk on a file or\n"
		"                        block device, docs/virtio-blk.md),\n"
		"                        'vfio:DDDD:BB:DD.F' (a host device bound to vfio-pci) or\n"
		"                        'vfio-mdev:UUID' (a mediated device, e.g. mtty);\n"
		"                        repeat it (up to %d) for several devices of one VM:\n"
		"                        each has its own socket (the Nth --socket or --fd, or\n"
		"                        the Nth socket systemd passes), and they share one\n"
		"                        mapping of guest memory and one IOMMU, so the VM's\n"
		"                        RAM is pinned once (docs/vfio.md)\n"
		"  -i, --iommu KIND      vfio: auto (iommufd where the kernel has it, else the\n"
		"                        container), container (TYPE1v2), iommufd\n"
		"      --ioas-per-device iommufd: an IOAS for each device instead of one for\n"
		"                        all; later IOASes get their mappings by IOMMU_IOAS_COPY\n"
		"                        from the first (still pinned once)\n"
		"      --pin-accounting MODE\n"
		"                        iommufd: charge pinned memory to the mpdev 'user'\n"
		"                        (the kernel's default) or to the 'process' (its\n"
		"                        RLIMIT_MEMLOCK, as the container does)\n"
		"  -x, --intx MODE       vfio: auto/direct (the proxy's irqfd is VFIO's trigger,\n"
		"                        its resamplefd VFIO's unmask) or routed (IOHUB)\n"
		"  -s, --socket PATH     listen on a Unix socket at PATH (of the face's type)\n"
		"      --face NAME       the wire protocol of the socket: native (mpdev's own,\n"
		"                        SOCK_SEQPACKET; the default), mpqemu (stock QEMU's\n"
		"                        -device x-pci-proxy-dev,fd=N; SOCK_STREAM) or\n"
		"                        vfio-user (QEMU 10.1+'s vfio-user-pci and other\n"
		"                        vfio-user clients; SOCK_STREAM); once for every\n"
		"                        device or once per device, in order (docs/qemu.md)\n"
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
		REMOTE_MAX_DEVICES, SERVER_HANDSHAKE_TIMEOUT_MS);
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
	struct backend_config backend; /* .device: the first; devices[] has them all */
	const char *devices[REMOTE_MAX_DEVICES];
	unsigned n_devices;
	bool ioas_per_device;
	struct server_config server;
	struct sandbox_config sandbox;
	const char *paths[REMOTE_MAX_DEVICES];
	unsigned n_paths;
	const struct face *faces[REMOTE_MAX_DEVICES];
	unsigned n_faces;
	char **listen_names; /* FileDescriptorName= of the sockets systemd passed */
	long fds[REMOTE_MAX_DEVICES];
	unsigned n_fds;
	bool sandbox_off;
	const char *eventfd_io;
	const char *forbidden;
	int verbosity;
};

static int parse_options(int argc, char **argv, struct remote_options *o)
{
	enum {
		OPT_NO_SANDBOX = 256,
		OPT_TEST_FORBIDDEN,
		OPT_HANDSHAKE_TIMEOUT,
		OPT_EVENTFD_IO,
		OPT_IOAS_PER_DEVICE,
		OPT_PIN_ACCOUNTING,
		OPT_FACE,
	};
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "iommu", required_argument, NULL, 'i' },
		{ "intx", required_argument, NULL, 'x' },
		{ "socket", required_argument, NULL, 's' },
		{ "face", required_argument, NULL, OPT_FACE },
		{ "fd", required_argument, NULL, 'f' },
		{ "allow-uid", required_argument, NULL, 'u' },
		{ "allow-gid", required_argument, NULL, 'g' },
		{ "user", required_argument, NULL, 'U' },
		{ "group", required_argument, NULL, 'G' },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
		{ "eventfd-io", required_argument, NULL, OPT_EVENTFD_IO },
		{ "ioas-per-device", no_argument, NULL, OPT_IOAS_PER_DEVICE },
		{ "pin-accounting", required_argument, NULL, OPT_PIN_ACCOUNTING },
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
	o->verbosity = MPDEV_LOG_WARN;
	while ((c = getopt_long(argc, argv, "d:i:x:s:f:u:g:U:G:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (o->n_devices == REMOTE_MAX_DEVICES) {
				fprintf(stderr, "mpdev-remote: more than %d --device\n",
					REMOTE_MAX_DEVICES);
				return 2;
			}
			o->devices[o->n_devices++] = optarg;
			break;
		case 'i':
			o->backend.iommu = optarg;
			break;
		case 'x':
			o->backend.intx = optarg;
			break;
		case 's':
			if (o->n_paths == REMOTE_MAX_DEVICES) {
				fprintf(stderr, "mpdev-remote: more than %d --socket\n",
					REMOTE_MAX_DEVICES);
				return 2;
			}
			o->paths[o->n_paths++] = optarg;
			break;
		case 'f':
			if (parse_id(optarg, &id) < 0 || id > 65535 ||
			    o->n_fds == REMOTE_MAX_DEVICES) {
				fprintf(stderr, "mpdev-remote: bad or too many --fd '%s'\n",
					optarg);
				return 2;
			}
			o->fds[o->n_fds++] = (long)id;
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
		case OPT_IOAS_PER_DEVICE:
			o->ioas_per_device = true;
			break;
		case OPT_FACE:
			if (o->n_faces == REMOTE_MAX_DEVICES || !face_by_name(optarg)) {
				fprintf(stderr,
					"mpdev-remote: bad or too many --face '%s' (native, "
					"mpqemu, "
					"vfio-user)\n",
					optarg);
				return 2;
			}
			o->faces[o->n_faces++] = face_by_name(optarg);
			break;
		case OPT_PIN_ACCOUNTING:
			o->backend.pin_accounting = optarg;
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
	if (optind != argc || !o->n_devices || (o->n_paths && o->n_fds)) {
		usage(stderr);
		return 2;
	}
	if ((o->n_paths && o->n_paths != o->n_devices) || (o->n_fds && o->n_fds != o->n_devices)) {
		fprintf(stderr,
			"mpdev-remote: %u devices need %u sockets (one --socket or --fd each, in "
			"the same order)\n",
			o->n_devices, o->n_devices);
		return 2;
	}
	if (o->n_faces > 1 && o->n_faces != o->n_devices) {
		fprintf(stderr,
			"mpdev-remote: %u devices and %u --face: give one for all, or one each\n",
			o->n_devices, o->n_faces);
		return 2;
	}
	o->backend.device = o->devices[0];
	if (o->ioas_per_device)
		o->backend.nr_ioas = o->n_devices;
	if (!custom_allow)
		peercred_allow_default(&o->server.allow);
	return 0;
}

/*
 * Descriptors: the soft limit up to the hard one (systemd's LimitNOFILE sets
 * both), then a budget that keeps room for a whole packet of them, so the
 * kernel never has to drop (and close, in our thread) one it delivers.
 */
static void set_fd_budget(struct remote_options *o, const struct backend *b, unsigned n_devices)
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
	/* Each device's peer gets an equal share: together they stay under the limit. */
	if (server_budget((unsigned long)rl.rlim_cur / n_devices, vectors, &o->server) < 0)
		log_warn(COMP,
			 "RLIMIT_NOFILE %lu leaves little room for a peer's descriptors; raise "
			 "LimitNOFILE",
			 (unsigned long)rl.rlim_cur);
	log_info(COMP,
		 "descriptors: limit %lu, a chunked table holds at most %u, %u may wait "
		 "to be closed (per device, %u device(s))",
		 (unsigned long)rl.rlim_cur, o->server.max_table_fds, o->server.max_pending_closes,
		 n_devices);
}

static int start_closer(void *opaque, struct mpdev_error *err)
{
	(void)opaque;
	return closer_start(err);
}

/* Device i's --socket, --fd, or the i-th socket systemd passed. */
static int open_socket(struct server *srv, const struct remote_options *o, unsigned i, int n_listen,
		       struct mpdev_error *err)
{
	if (o->n_paths)
		return server_listen_path(srv, o->paths[i], err);
	if (o->n_fds)
		return server_adopt_fd(srv, (int)o->fds[i], err);
	if (n_listen == (int)o->n_devices)
		return server_adopt_fd(srv, SD_LISTEN_FDS_START + (int)i, err);
	if (n_listen > 0)
		return mpdev_error_set(err, EINVAL,
				       "systemd passed %d sockets for %u device(s); one each is "
				       "expected, in --device order",
				       n_listen, o->n_devices);
	return mpdev_error_set(err, EINVAL,
			       "no socket: give --socket PATH or --fd N, or start through "
			       "mpdev-remote@.socket");
}

/* Everything of one device: its backend, its host (IRQs, its table), its server. */
struct device_slot {
	struct remote_host host;
	bool host_ready;
	struct backend *backend;
	struct server *srv;
};

/*
 * Device i's face: --face, or the FileDescriptorName= of the socket unit
 * systemd passed (a face name there selects it; anything else, such as
 * systemd's default, the unit's name, says nothing), or native. The two
 * must agree when both are given.
 */
static int choose_face(struct remote_options *o, unsigned i, int n_listen, struct mpdev_error *err)
{
	const struct face *given = o->n_faces ? o->faces[o->n_faces == 1 ? 0 : i] : NULL;
	const struct face *named = NULL;

	if (n_listen == (int)o->n_devices && o->listen_names && o->listen_names[i])
		named = face_by_name(o->listen_names[i]);
	if (given && named && given != named)
		return mpdev_error_set(err, EINVAL,
				       "socket %u is named for the %s face but --face says %s", i,
				       named->name, given->name);
	o->server.face = given ? given : named ? named : &face_native;
	return 0;
}

/* Opens device i and its socket; the VM's memory and IOMMU are shared by all. */
static int device_open(struct remote_options *o, unsigned i, struct event_base *base,
		       struct guest_mem *gm, struct vfio_iommu **iommu, int n_listen,
		       struct device_slot *d, struct mpdev_error *err)
{
	struct backend_config cfg = o->backend;

	cfg.device = o->devices[i];
	cfg.shared_iommu = iommu;
	if (remote_host_init(&d->host, base, err) < 0)
		return -err->code;
	d->host_ready = true;
	dma_table_share(&d->host.dma, gm);
	if (backend_create(&cfg, base, &d->host.ops, &d->backend, err) < 0 ||
	    remote_host_set_backend(&d->host, d->backend, err) < 0) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		return mpdev_error_set(err, err->code ? err->code : EINVAL, "device '%s': %s",
				       cfg.device, msg);
	}
	if (i == 0)
		set_fd_budget(o, d->backend, o->n_devices);
	if (choose_face(o, i, n_listen, err) < 0)
		return -err->code;
	if (server_create(base, d->backend, &d->host, &o->server, &d->srv, err) < 0 ||
	    open_socket(d->srv, o, i, n_listen, err) < 0)
		return -err->code;
	return 0;
}

static void device_close(struct device_slot *d)
{
	server_destroy(d->srv);
	if (d->host_ready)
		remote_host_destroy(&d->host);
	backend_destroy(d->backend);
	memset(d, 0, sizeof(*d));
}

int main(int argc, char **argv)
{
	struct remote_options o;
	struct mpdev_error err = { 0 };
	struct device_slot devs[REMOTE_MAX_DEVICES];
	struct guest_mem gm;
	struct vfio_iommu *iommu = NULL;
	struct event_base *base;
	struct event *sigterm = NULL, *sigint = NULL;
	char names[256] = "";
	int rc = 1, n_listen;

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
	memset(devs, 0, sizeof(devs));
	guest_mem_init(&gm);

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
	n_listen = (o.n_paths || o.n_fds) ? 0 : sd_listen_fds_with_names(1, &o.listen_names);
	/* Everything privileged happens here, before the drop: the devices, the sockets. */
	for (unsigned i = 0; i < o.n_devices; i++) {
		if (device_open(&o, i, base, &gm, &iommu, n_listen, &devs[i], &err) < 0) {
			log_error(COMP, "%s", err.msg);
			goto out;
		}
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s'%s'",
			 i ? ", " : "", o.devices[i]);
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
	log_info(COMP, "serving %s %s", o.n_devices > 1 ? "devices" : "device", names);
	sd_notifyf(0, "READY=1\nSTATUS=serving %s, waiting for a proxy", names);
	rc = event_base_dispatch(base) < 0 ? 1 : 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	/* Each device lets go of the VM's memory; then the IOMMU they shared goes. */
	for (unsigned i = o.n_devices; i-- > 0;)
		device_close(&devs[i]);
	backend_iommu_destroy(iommu);
	guest_mem_destroy(&gm);
	closer_stop(1000);
	efdio_shutdown();
	event_base_free(base);
	for (char **n = o.listen_names; n && *n; n++)
		free(*n);
	free(o.listen_names);
	return rc;
}
