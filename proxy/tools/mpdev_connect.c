/*
 * mpdev-connect: connects a SOCK_STREAM socket to PATH, where an
 * mpdev-proxy (--listen PATH) or an mpdev-remote speaking QEMU's mpqemu
 * itself (--face mpqemu --socket PATH) listens, and runs a command with the
 * connected socket as descriptor N, e.g. QEMU with -device x-pci-proxy-dev,fd=N:
 *
 *   mpdev-connect --fd 3 /run/user/1000/edu0.sock -- \
 *       qemu-system-x86_64 ... -device x-pci-proxy-dev,id=edu0,fd=3
 *
 * --wait SECONDS retries while the socket is not there yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: mpdev-connect [--fd N] [--wait SECONDS] PATH [--] COMMAND [ARG...]\n"
		   "Connects a stream socket to the mpdev-proxy (or mpdev-remote --face mpqemu)\n"
		   "listening at PATH and runs COMMAND with it as descriptor N (default 3),\n"
		   "e.g. QEMU with -device x-pci-proxy-dev,fd=N. --wait retries for up to\n"
		   "SECONDS while nobody listens at PATH yet.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	long target = 3, wait_s = 0;
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	const char *path;
	char *end;
	int c, fd;
	long tries;

	while ((c = getopt_long(argc, argv, "+f:w:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			errno = 0;
			target = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || target < 3 || target > 1000000) {
				fprintf(stderr, "mpdev-connect: bad --fd '%s' (3 or more)\n",
					optarg);
				return 2;
			}
			break;
		case 'w':
			errno = 0;
			wait_s = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || wait_s < 0 || wait_s > 86400) {
				fprintf(stderr, "mpdev-connect: bad --wait '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	path = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "mpdev-connect: socket path too long: %s\n", path);
		return 1;
	}
	strcpy(addr.sun_path, path);
	for (tries = wait_s * 20;; tries--) {
		int e;

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			perror("mpdev-connect: socket");
			return 1;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		e = errno;
		close(fd);
		if (tries <= 0 || (e != ENOENT && e != ECONNREFUSED)) {
			fprintf(stderr, "mpdev-connect: cannot connect to %s: %s%s\n", path,
				strerror(e),
				e == ENOENT || e == ECONNREFUSED
					? " (is mpdev-proxy --listen running there?)"
					: "");
			return 1;
		}
		nanosleep(&tick, NULL);
	}
	/* dup2 leaves the new descriptor without close-on-exec: COMMAND inherits it. */
	if (fd != target) {
		if (dup2(fd, (int)target) < 0) {
			perror("mpdev-connect: dup2");
			return 1;
		}
		close(fd);
	} else {
		fcntl(fd, F_SETFD, 0);
	}
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "mpdev-connect: cannot run %s: %s\n", argv[optind], strerror(errno));
	return 127;
}
