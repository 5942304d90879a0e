/*
 * One mpdev-remote for a test, the way every integration suite needs one:
 * started on a socketpair (--fd 3, as a VMM starts it) or listening on a
 * socket in a fresh temporary directory (by --socket, or handed over as
 * systemd's socket activation does); greeted through libmpdev, by a raw
 * Hello, or not at all; its descriptors and memory checked against a
 * baseline; stopped with its exit status checked, or killed.
 *
 * Every wait is bounded and every child reaped. The remote closes peer
 * descriptors asynchronously, so every descriptor check polls until the
 * count is right (up to REMOTE_SETTLE_MS) and only then fails, with the
 * last count seen. The child gets SIGKILL if the test process dies first
 * (until the sandbox changes its uid, which clears that).
 *
 * A test writes:
 *
 *	static struct remote rem;
 *	remote_start(&rem, &(struct remote_opts){ .mpdev = &opts });
 *	... rem.dev (or rem.sock with native_raw.h) ...
 *	remote_expect_fds(&rem, rem.baseline_fds);
 *	remote_stop(&rem);
 */
#ifndef MPDEV_REMOTE_FIXTURE_H
#define MPDEV_REMOTE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "libmpdev.h"

/* How long a descriptor or memory count may take to come back. */
#define REMOTE_SETTLE_MS 2000
/* How long the remote may take to exit once told to. */
#define REMOTE_EXIT_MS 5000
/*
 * How far RSS may stay above its baseline and still count as back: glibc
 * keeps freed heap and libevent its buffers, so a few hundred KiB of slack
 * are normal; a leaked mapping of guest memory is far larger.
 */
#ifdef MPDEV_SANITIZE
/* ASan keeps freed memory in quarantine: only a gross leak shows. */
#define REMOTE_RSS_SLACK_KB (16 * 1024)
#else
#define REMOTE_RSS_SLACK_KB 1024
#endif
/* How long a connection to a listening remote is retried while its backlog is full. */
#define REMOTE_CONNECT_MS 3000

enum remote_greet {
	REMOTE_LIBMPDEV,  /* r.dev: mpdev_connect_fd() (or mpdev_connect() when listening) */
	REMOTE_RAW_HELLO, /* r.sock: greeted with a raw Hello of opts.features */
	REMOTE_UNGREETED, /* r.sock (--fd 3): nothing sent yet; listening: no connection */
};

struct remote_opts {
	const char *bin;	   /* NULL: remote_default_bin() */
	const char *device;	   /* --device; NULL: "edu" */
	const char *const *args;   /* more arguments, NULL-terminated; may be NULL */
	bool listen;		   /* --socket DIR/remote.sock instead of --fd 3 */
	const char *path;	   /* listen: at this path instead (another remote's, say) */
	bool activate;		   /* DIR/remote.sock bound here, passed as LISTEN_FDS=1 */
	const char *notify_socket; /* NOTIFY_SOCKET for the child (activate) */
	bool capture_stderr;	   /* the child's stderr into DIR/stderr: remote_log() */
	rlim_t nofile;		   /* RLIMIT_NOFILE of the child; 0: ours */
	int fill_fds;		   /* descriptors the child inherits open, to exhaust it */
	bool block_kcmp;	   /* kcmp fails with ENOSYS in the child (seccomp) */
	enum remote_greet greet;
	const struct mpdev_options *mpdev; /* REMOTE_LIBMPDEV; NULL: a 3 s timeout */
	uint64_t features;		   /* REMOTE_RAW_HELLO; 0: every bit */
};

struct remote {
	pid_t pid;
	int sock;	      /* the raw connection, -1 if none */
	struct mpdev *dev;    /* the libmpdev connection, NULL if none */
	int baseline_fds;     /* the remote's descriptors once up (and greeted) */
	long baseline_rss_kb; /* and its resident memory */
	uint64_t next_id;     /* the id of the next raw request (the Hello took 1) */
	char path[108];	      /* the listening socket (listen, activate) */
	/* The fixture's own. */
	bool listening, reaped, started;
	int status;
	char dir[64], log_path[96];
	char *log;
};

/* The remote under test: $MPDEV_TEST_REMOTE if set, else the one built with the tests. */
const char *remote_default_bin(void);

/*
 * Starts the remote and greets it as opts say (NULL: edu, --fd 3, libmpdev).
 * The child inherits nothing of ours but fds 0-2 (and 3, its socket), so its
 * descriptor counts are exact.
 */
void remote_start(struct remote *r, const struct remote_opts *opts);

/* The remote's descriptors now (fails the test if they cannot be counted). */
int remote_fds(const struct remote *r);
/* Its descriptor count once it stops changing; bounded. */
int remote_settled_fds(const struct remote *r);
/* Sets baseline_fds (and baseline_rss_kb) to what the remote holds now, settled. */
void remote_take_baseline(struct remote *r);

/* Polls until the remote holds want descriptors; fails with the last count after REMOTE_SETTLE_MS.
 */
#define remote_expect_fds(r, want) remote_expect_fds_at(r, want, __FILE__, __LINE__)
void remote_expect_fds_at(const struct remote *r, int want, const char *file, int line);
/* The same with a bound of ms (a close that lingers takes its time). */
#define remote_expect_fds_within(r, want, ms)                                                      \
	remote_expect_fds_within_at(r, want, ms, __FILE__, __LINE__)
void remote_expect_fds_within_at(const struct remote *r, int want, int ms, const char *file,
				 int line);

/* A round trip (a raw Ping, or a config read through libmpdev), then the fd baseline. */
#define remote_expect_alive(r) remote_expect_alive_at(r, __FILE__, __LINE__)
void remote_expect_alive_at(struct remote *r, const char *file, int line);

/* VmRSS of the remote in KiB. */
long remote_rss_kb(const struct remote *r);
/* Polls until RSS is at most base_kb + REMOTE_RSS_SLACK_KB. */
#define remote_expect_rss_back(r, base_kb) remote_expect_rss_at(r, base_kb, __FILE__, __LINE__)
void remote_expect_rss_at(const struct remote *r, long base_kb, const char *file, int line);

/* A libmpdev connection to the listening remote, retried (bounded) while it is busy. */
struct mpdev *remote_connect(const struct remote *r, const struct mpdev_options *opts);
/* A raw SOCK_SEQPACKET connection to the listening remote (not greeted), retried while its
 * backlog is full (up to REMOTE_CONNECT_MS). */
int remote_connect_raw(const struct remote *r);

/* What the remote wrote to stderr so far (capture_stderr), NUL-terminated. */
const char *remote_log(struct remote *r);
/* Waits up to ms for needle to appear in the log; whether it did. */
bool remote_wait_log(struct remote *r, const char *needle, int ms);

/*
 * The clean end: closes our connections (a listening remote also gets
 * SIGTERM), waits, fails unless the remote exited with status 0 and, when it
 * listened, unless nobody accepts at its socket any more; then releases.
 */
void remote_stop(struct remote *r);
/* Waits (bounded) for the remote to exit on its own and returns the wait status. */
int remote_wait_exit(struct remote *r, int timeout_ms);
/*
 * SIGTERM, then up to timeout_ms for the remote to exit: its wait status, or
 * -1 when it did not (it is then killed and reaped). Asserts nothing: for
 * tests whose point is whether the remote obeys.
 */
int remote_terminate(struct remote *r, int timeout_ms);
/* SIGKILL and reap; the connections stay open (for the test to see them fail). */
void remote_kill(struct remote *r);
/* Kills the remote if it still runs, closes what is left and removes the directory. */
void remote_release(struct remote *r);

#endif
