/*
 * What the hostile-peer suites share: a real mpdev-remote started the way a
 * case needs it (listening on a path, stderr captured, a small descriptor
 * limit, kcmp taken away), raw native messages, and the measurements the
 * cases assert on (does it still answer within a bound, CPU it burnt, lines
 * it logged, descriptors it holds).
 */
#ifndef MPDEV_HOSTILE_UTIL_H
#define MPDEV_HOSTILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* How long "still answers" may take: far above a healthy reply, far below a stall. */
#define HOSTILE_ANSWER_MS 2000

struct hostile_remote {
	pid_t pid;
	int sock;	/* the adopted connection (socketpair mode), or -1 */
	char dir[64];	/* private directory: socket, log */
	char path[128]; /* listening socket (listen mode) */
	char log[128];	/* the remote's stderr */
};

struct hostile_opts {
	bool listen;		 /* --socket PATH instead of --fd 3 */
	const char *const *args; /* more remote arguments, NULL-terminated */
	unsigned long nofile;	 /* RLIMIT_NOFILE for the remote (0: inherited) */
	int fill_fds;		 /* descriptors the remote inherits open, to exhaust it */
	bool block_kcmp;	 /* kcmp fails with ENOSYS in the remote (seccomp) */
	const char *path;	 /* listen mode: this socket path, not one of our own */
};

/* The remote under test: $MPDEV_TEST_REMOTE, else the one built with the tests. */
const char *hostile_remote_bin(void);

/* Starts the remote (edu unless args say otherwise); aborts the test on failure. */
void hostile_start(struct hostile_remote *r, const struct hostile_opts *o);
/* SIGKILL if still running, reap, remove the directory. Always safe to call. */
void hostile_kill(struct hostile_remote *r);
/* SIGTERM, then a bounded wait; returns the wait status (or -1 on timeout, killed). */
int hostile_stop(struct hostile_remote *r, int timeout_ms);

/* A new client connection to the listening remote (bounded wait for the socket). */
int hostile_connect(const struct hostile_remote *r);

/* --- raw native messages --- */

/* Encodes env (id, kind REQUEST unless set) and sends it with fds; asserts success. */
void hostile_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds);
/* Receives one message within timeout_ms: 1, 0 (timeout), or a negative errno. */
int hostile_recv(int sock, struct wire_msg *m, int timeout_ms);
/* Sends env and waits for its reply; returns its status (>= 0) or -ETIMEDOUT / -errno. */
int hostile_call(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms);
/* The same, copying the reply's error words into words (len bytes). */
int hostile_call_words(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms,
		       char *words, size_t len);
/* Hello with every feature (name may be NULL); asserts it is accepted. */
void hostile_hello(int sock, const char *name);
/* A ping answered within timeout_ms: 0, or a negative errno. */
int hostile_ping(int sock, int timeout_ms);
/* BAR0 or config space write of 1-4 bytes; returns the reply status or -errno. */
int hostile_write(int sock, uint32_t region, uint64_t offset, uint32_t value, uint32_t size);
/* The same as a posted write: nothing comes back unless it fails. */
void hostile_write_posted(int sock, uint32_t region, uint64_t offset, uint32_t value,
			  uint32_t size);
/* SetIntxIrqfd pin 0 -> pirq 0 with nfds of fds; returns the reply status. */
int hostile_set_intx_irqfd(int sock, const int *fds, size_t nfds);
/* SetIrqs with one eventfd for vector 0 of index, action; returns the reply status. */
int hostile_set_irqs_eventfd(int sock, uint32_t index, uint32_t action, int fd);

/* --- what the remote does --- */

/* Waits until the remote holds want descriptors (closes may be asynchronous). */
bool hostile_fds_settle(pid_t pid, int want, int timeout_ms, int *last);
/* VmRSS in KiB, from /proc/PID/status; -1 if gone. */
long hostile_rss_kib(pid_t pid);
/* CPU seconds (user + system) the process has used so far. */
double hostile_cpu_seconds(pid_t pid);
/* Lines in the remote's log so far, and whether one contains s. */
int hostile_log_lines(const struct hostile_remote *r);
bool hostile_log_contains(const struct hostile_remote *r, const char *s);
/* Whether any line of the log starts with s. */
bool hostile_log_line_starts(const struct hostile_remote *r, const char *s);

/* The remote's descriptor count once it stops changing (closes may be asynchronous). */
int hostile_settled_fds(pid_t pid);

/*
 * main() of a hostile suite: become the subreaper of everything the tests
 * start, and at the end kill and reap whatever a failed test left behind
 * (a stalled remote cannot be stopped politely, and a failed check skips
 * the teardown).
 */
void hostile_become_subreaper(void);
void hostile_reap_all(void);

/* Milliseconds on a monotonic clock. */
int64_t hostile_now_ms(void);

#endif
