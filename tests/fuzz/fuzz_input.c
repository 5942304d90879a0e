#include "fuzz_input.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define PAGE 4096

void fuzz_reader_init(struct fuzz_reader *r, const uint8_t *data, size_t size)
{
	r->p = data;
	r->left = size;
}

bool fuzz_next_packet(struct fuzz_reader *r, struct fuzz_packet *pkt)
{
	size_t len;

	if (r->left < 1)
		return false;
	pkt->ctl = r->p[0];
	pkt->nfds = pkt->ctl & FUZZ_CTL_NFDS;
	r->p++;
	r->left--;
	if (pkt->nfds > r->left)
		pkt->nfds = r->left;
	pkt->kinds = r->p;
	r->p += pkt->nfds;
	r->left -= pkt->nfds;
	len = 0;
	if (r->left >= 2) {
		len = (size_t)r->p[0] | (size_t)r->p[1] << 8;
		r->p += 2;
		r->left -= 2;
	} else {
		r->p += r->left;
		r->left = 0;
	}
	/* A length past the end is cut, not refused: the bytes still mean something. */
	if (len > r->left)
		len = r->left;
	pkt->data = r->p;
	pkt->len = len;
	r->p += len;
	r->left -= len;
	return true;
}

void fuzz_fds_init(struct fuzz_fds *f)
{
	f->n = 0;
}

static void die(const char *what)
{
	perror(what);
	abort();
}

static void keep(struct fuzz_fds *f, int fd, bool is_eventfd)
{
	if (f->n == FUZZ_MAX_KEPT) {
		close(fd);
		return;
	}
	f->kept[f->n] = fd;
	f->is_eventfd[f->n++] = is_eventfd;
}

static int memfd(unsigned param, bool sealed)
{
	size_t size = (size_t)(1 + (param & 7)) * PAGE;
	unsigned seals = F_SEAL_SHRINK | (param & 8 ? F_SEAL_GROW | F_SEAL_SEAL : 0);
	int fd = memfd_create("fuzz", MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)size) < 0)
		die("ftruncate");
	if (sealed && fcntl(fd, F_ADD_SEALS, seals) < 0)
		die("F_ADD_SEALS");
	return fd;
}

/* The same memfd through a new open file with other access modes, as /proc gives it. */
static int reopen(int fd, int flags)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_CLOEXEC);
	if (r < 0)
		die("reopen");
	close(fd);
	return r;
}

static int make_one(struct fuzz_fds *f, uint8_t kind, int prev)
{
	unsigned param = kind >> 4;
	int p[2], fd;

	switch (kind & 0x0f) {
	case FUZZ_FD_MEMFD_SEALED:
		return memfd(param, true);
	case FUZZ_FD_MEMFD_UNSEALED:
		return memfd(param, false);
	case FUZZ_FD_MEMFD_RDONLY:
		return reopen(memfd(param, true), O_RDONLY);
	case FUZZ_FD_MEMFD_WRONLY:
		return reopen(memfd(param, true), O_WRONLY);
	case FUZZ_FD_PIPE_READ:
	case FUZZ_FD_PIPE_WRITE:
		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe2");
		keep(f, (kind & 0x0f) == FUZZ_FD_PIPE_READ ? p[1] : p[0], false);
		return (kind & 0x0f) == FUZZ_FD_PIPE_READ ? p[0] : p[1];
	case FUZZ_FD_SOCKET:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) < 0)
			die("socketpair");
		keep(f, p[1], false);
		return p[0];
	case FUZZ_FD_DEVNULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case FUZZ_FD_DIRECTORY:
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		break;
	case FUZZ_FD_DUP_PREV:
		if (prev < 0)
			goto eventfd;
		fd = fcntl(prev, F_DUPFD_CLOEXEC, 0);
		break;
	case FUZZ_FD_KEPT:
		for (size_t i = 0, seen = 0; i < f->n; i++)
			if (f->is_eventfd[i] && seen++ == param)
				return fcntl(f->kept[i], F_DUPFD_CLOEXEC, 0);
		goto eventfd;
	case FUZZ_FD_TMPFILE:
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0 && ftruncate(fd, (off_t)(1 + (param & 7)) * PAGE) < 0)
			die("ftruncate");
		break;
	default:
	eventfd:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			die("eventfd");
		/* Our own copy of the same open file, as the VMM keeps its end of an irqfd. */
		keep(f, fcntl(fd, F_DUPFD_CLOEXEC, 0), true);
		return fd;
	}
	if (fd < 0)
		die("open");
	return fd;
}

void fuzz_make_fds(struct fuzz_fds *f, const struct fuzz_packet *pkt, int *fds)
{
	for (size_t i = 0; i < pkt->nfds; i++)
		fds[i] = make_one(f, pkt->kinds[i], i ? fds[i - 1] : -1);
}

void fuzz_poke(struct fuzz_fds *f)
{
	const uint64_t one = 1;

	for (size_t i = 0; i < f->n; i++)
		if (f->is_eventfd[i] && write(f->kept[i], &one, sizeof(one)) < 0) {
			/* A full counter (EAGAIN): the remote has not drained it; nothing to do. */
		}
}

void fuzz_fds_reset(struct fuzz_fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		close(f->kept[i]);
	f->n = 0;
}

int fuzz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd");
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* opendir's own */
}

/* What is open, so that a leak report says what leaked. */
static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char path[300], target[256];
	ssize_t n;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", de->d_name, target);
	}
	closedir(d);
}

void fuzz_check_fds(int baseline, const char *target)
{
	int n = fuzz_count_fds();

	if (n > baseline) {
		fprintf(stderr, "%s: descriptor leak: %d open after the input, %d before\n", target,
			n, baseline);
		list_fds();
		abort();
	}
}

void fuzz_init_process(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("FUZZ_VERBOSE") ? MPDEV_LOG_DEBUG : MPDEV_LOG_ERROR);
}

void fuzz_fail(const char *target, const char *what, const char *why)
{
	if (why)
		fprintf(stderr, "%s: %s: %s\n", target, what, why);
	else
		fprintf(stderr, "%s: %s\n", target, what);
	abort();
}
