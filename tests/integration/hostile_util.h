/*
 * What the hostile-peer suites add to the shared fixture (remote_fixture.h)
 * and raw helper (native_raw.h): the remote started the way every hostile
 * case wants it (listening, stderr captured, nobody greeted), typed raw
 * requests that report a stall as -ETIMEDOUT instead of failing inside the
 * helper, and the measurements the cases assert on (CPU burnt, lines logged).
 */
#ifndef MPDEV_HOSTILE_UTIL_H
#define MPDEV_HOSTILE_UTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "native_raw.h"
#include "remote_fixture.h"
#include "wire.h"

/* How long "still answers" may take: far above a healthy reply, far below a stall. */
#define HOSTILE_ANSWER_MS 2000

/*
 * remote_start() with o (NULL: defaults), listening, its stderr captured and
 * nobody connected: each case makes its own connections (remote_connect_raw()).
 */
void hostile_start(struct remote *r, const struct remote_opts *o);

/* --- raw native requests, each with a fresh id --- */

/* Sends env as a request with fds; asserts only that it was sent. */
void hostile_send(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds);
/* Sends env and waits for its reply; returns its status (>= 0) or -ETIMEDOUT / -errno. */
int hostile_call(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms);
/* The same, copying the reply's error words into words (len bytes). */
int hostile_call_words(int sock, Mpdev__Envelope *env, const int *fds, size_t nfds, int timeout_ms,
		       char *words, size_t len);
/* Hello with every feature (name may be NULL); asserts it is accepted within the bound. */
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

/* CPU seconds (user + system) the process has used so far. */
double hostile_cpu_seconds(pid_t pid);
/* Lines in the remote's log so far, and whether one contains s. */
int hostile_log_lines(struct remote *r);
bool hostile_log_contains(struct remote *r, const char *s);
/* Whether any line of the log starts with s. */
bool hostile_log_line_starts(struct remote *r, const char *s);

/*
 * main() of a hostile suite: runs s as the subreaper of everything the
 * tests start, and at the end kills and reaps whatever a failed test left
 * behind (a stalled remote cannot be stopped politely, a failed check skips
 * the teardown, and the sandbox's change of uid clears the fixture's
 * parent-death signal). SIGPIPE is ignored: peers hang up on purpose.
 * Returns main()'s exit status.
 */
int hostile_run_suite(Suite *s);

/* Milliseconds on a monotonic clock. */
int64_t hostile_now_ms(void);

#endif
