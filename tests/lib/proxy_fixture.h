/*
 * One mpdev-proxy for a test, started the way QEMU's side sees it: fd 3 of
 * the child is the test's end of a stream socketpair ("QEMU"), the child's
 * stderr (and that of any remote it spawns) comes back on a pipe that the
 * fixture keeps as a log to search. Requests are mpqemu messages encoded by
 * hand (mpqemu_raw.h); every wait is bounded and the child is always reaped.
 *
 *	static struct proxy px = PROXY_INIT;
 *	proxy_start(&px, (const char *const[]){ "--spawn-remote", "-v", NULL });
 *	ck_assert_uint_eq(proxy_cfg_read(&px, 0, 2), 0x1234);
 *	proxy_stop(&px);
 */
#ifndef MPDEV_PROXY_FIXTURE_H
#define MPDEV_PROXY_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mpqemu_raw.h"

/* How long any single answer or exit may take. */
#define PROXY_WAIT_MS 5000

struct proxy {
	pid_t pid;
	int q;	    /* our end: "QEMU" */
	int err_fd; /* the proxy's stderr (and its remote's) */
	char log[1 << 17];
	size_t log_len;
};

#define PROXY_INIT                                                                                 \
	{                                                                                          \
		.pid = -1, .q = -1, .err_fd = -1                                                   \
	}

/* One entry of QEMU's SYNC_SYSMEM. */
struct proxy_mem {
	uint64_t gpa, size;
	int64_t offset;
	int fd;
};

/* $MPDEV_TEST_PROXY if set, else the mpdev-proxy built with the tests. */
const char *proxy_default_bin(void);

/*
 * Starts mpdev-proxy with args (NULL-terminated); child_fd3 (if >= 0) becomes
 * its fd 3. MPDEV_REMOTE points at the remote built with the tests.
 */
void proxy_start_fd(struct proxy *p, int child_fd3, const char *const *args);
/* "--fd 3" on a new socketpair, then args; p->q is QEMU's end. */
void proxy_start(struct proxy *p, const char *const *args);

/* Reads what was logged (waiting up to ms for the first bytes), echoing it to stderr. */
void proxy_log_pump(struct proxy *p, int ms);
/* The first log text at or after from that contains needle, waiting up to ms; NULL if none. */
const char *proxy_wait_log(struct proxy *p, const char *needle, size_t from, int ms);
/* How often needle occurs in the log so far. */
int proxy_log_count(const struct proxy *p, const char *needle);

/* Waits up to ms for the proxy to exit; its exit status, -1 if not a normal exit. Fails
 * the test if it does not exit. */
int proxy_wait_exit(struct proxy *p, int ms);
/* QEMU goes away: the proxy must end with status 0. */
void proxy_stop(struct proxy *p);
/* Kills whatever is left and closes every descriptor; safe to call twice. */
void proxy_release(struct proxy *p);

/* Sends one message with fds; then (proxy_request) waits for its RET. */
void proxy_send(struct proxy *p, const struct raw *r, const int *fds, size_t nfds);
uint64_t proxy_await_ret(struct proxy *p);
uint64_t proxy_request(struct proxy *p, const struct raw *r);
uint32_t proxy_cfg_read(struct proxy *p, uint32_t addr, int len);
void proxy_cfg_write(struct proxy *p, uint32_t addr, uint32_t val, int len);
uint64_t proxy_bar_read(struct proxy *p, uint64_t addr, uint32_t size, bool memory);
uint64_t proxy_bar_write(struct proxy *p, uint64_t addr, uint64_t val, uint32_t size, bool memory);

/*
 * SYNC_SYSMEM as QEMU's memory listener sends it. It has no RET, so a config
 * read of the vendor id follows it; returns that id once both were handled.
 */
uint32_t proxy_sync_sysmem(struct proxy *p, const struct proxy_mem *e, int n);

/* SIGUSR1: the remote counters line the proxy logs in answer. */
const char *proxy_remote_counters(struct proxy *p);
/* " name=N" of such a line. */
uint64_t proxy_counter(const char *line, const char *name);
/* The proxy's open descriptors. */
int proxy_fds(const struct proxy *p);

#endif
