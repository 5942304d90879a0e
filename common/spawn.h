/*
 * Starting an mpdev-remote child on one end of a socketpair, and reaping it
 * with a bound on the wait. Used by the demo, the tests and the benchmarks.
 */
#ifndef MPDEV_SPAWN_H
#define MPDEV_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The mpdev-remote to run: $MPDEV_REMOTE if set, else the one beside the
 * running program (or in ../sbin for an installed tree), else "mpdev-remote"
 * from PATH. Writes into buf.
 */
const char *spawn_find_remote(char *buf, size_t len);

/*
 * Runs `bin --fd 3 args...` with the child's end of a SOCK_SEQPACKET
 * socketpair as fd 3 and returns our end in *sock. args is NULL-terminated
 * (may be NULL).
 */
int spawn_remote(const char *bin, const char *const *args, pid_t *pid, int *sock);

/*
 * Waits up to timeout_ms for pid to exit; past that it is sent SIGKILL and
 * reaped, and -ETIMEDOUT returned. *status gets the wait status.
 */
int spawn_wait(pid_t pid, int timeout_ms, int *status);

#endif
