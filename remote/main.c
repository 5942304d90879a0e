/* mpdev-remote: the per-device daemon. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "host.h"
#include "log.h"
#include "server.h"

#define COMP "remote"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpdev-remote --device SPEC (--socket PATH | --fd N) [options]\n"
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
		"  -u, --allow-uid UID   peer uid allowed to connect (repeatable)\n"
		"  -g, --allow-gid GID   peer gid allowed to connect (repeatable)\n"
		"                        without either option: root and the invoking user;\n"
		"                        with them: exactly the ids given\n"
		"  -v, --verbose         more log output (twice for debug)\n"
		"  -h, --help            this text\n");
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
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "iommu", required_argument, NULL, 'i' },
		{ "intx", required_argument, NULL, 'x' },
		{ "socket", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "allow-uid", required_argument, NULL, 'u' },
		{ "allow-gid", required_argument, NULL, 'g' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct server_config cfg;
	struct mpdev_error err = { 0 };
	const char *device = NULL, *path = NULL;
	struct remote_host host;
	struct backend *backend = NULL;
	struct server *srv = NULL;
	struct event_base *base;
	struct event *sigterm, *sigint;
	struct backend_config bcfg = { .iommu = "auto", .intx = "auto" };
	bool custom_allow = false;
	int verbosity = MPDEV_LOG_WARN;
	long fd = -1;
	int c, rc = 1;

	log_set_ident("mpdev-remote");
	memset(&cfg, 0, sizeof(cfg));
	while ((c = getopt_long(argc, argv, "d:s:f:u:g:i:x:vh", opts, NULL)) != -1) {
		unsigned long id;

		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 'i':
			bcfg.iommu = optarg;
			break;
		case 'x':
			bcfg.intx = optarg;
			break;
		case 's':
			path = optarg;
			break;
		case 'f':
			if (parse_id(optarg, &id) < 0 || id > 65535) {
				fprintf(stderr, "mpdev-remote: bad --fd '%s'\n", optarg);
				return 2;
			}
			fd = (long)id;
			break;
		case 'u':
		case 'g':
			if (parse_id(optarg, &id) < 0 ||
			    (c == 'u' ? peercred_allow_add_uid(&cfg.allow, (uid_t)id)
				      : peercred_allow_add_gid(&cfg.allow, (gid_t)id)) < 0) {
				fprintf(stderr, "mpdev-remote: bad or too many --allow-%cid '%s'\n",
					c, optarg);
				return 2;
			}
			custom_allow = true;
			break;
		case 'v':
			verbosity++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !device || (!path && fd < 0) || (path && fd >= 0)) {
		usage(stderr);
		return 2;
	}
	log_set_level((enum mpdev_log_level)verbosity);
	if (!custom_allow)
		peercred_allow_default(&cfg.allow);
	/* A proxy that vanishes mid-reply must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	base = event_base_new();
	if (!base) {
		log_error(COMP, "event_base_new failed");
		return 1;
	}
	if (remote_host_init(&host, base, &err) < 0) {
		log_error(COMP, "%s", err.msg);
		event_base_free(base);
		return 1;
	}
	bcfg.device = device;
	if (backend_create(&bcfg, base, &host.ops, &backend, &err) < 0) {
		log_error(COMP, "device '%s': %s", device, err.msg);
		goto out;
	}
	if (remote_host_set_backend(&host, backend, &err) < 0) {
		log_error(COMP, "device '%s': %s", device, err.msg);
		goto out;
	}
	if (server_create(base, backend, &host, &cfg, &srv, &err) < 0 ||
	    (path ? server_listen_path(srv, path, &err) : server_adopt_fd(srv, (int)fd, &err)) <
		    0) {
		log_error(COMP, "%s", err.msg);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	log_info(COMP, "serving device '%s'", device);
	rc = event_base_dispatch(base) < 0 ? 1 : 0;
	event_free(sigterm);
	event_free(sigint);
out:
	server_destroy(srv);
	remote_host_destroy(&host);
	backend_destroy(backend);
	event_base_free(base);
	return rc;
}
