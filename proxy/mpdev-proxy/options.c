/* mpdev-proxy's command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

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

int parse_options(int argc, char **argv, struct options *o)
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
