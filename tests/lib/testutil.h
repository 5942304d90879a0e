/* Helpers shared by the test programs. */
#ifndef MPDEV_TESTUTIL_H
#define MPDEV_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

/* Open descriptors of a process (0: this one), from /proc; -errno on failure. */
int testutil_count_fds(pid_t pid);

/*
 * The remote closes what a peer passed on a closer thread, so its count
 * settles shortly after the reply: polls pid's count until it equals want
 * or timeout_ms passes, and returns the last count seen.
 */
int testutil_wait_fds(pid_t pid, int want, int timeout_ms);

/* A new eventfd, pipe end or memfd, for passing around; aborts on failure. */
int testutil_eventfd(void);

/*
 * A memfd of size bytes with the given seals (0: none), the kind of memory
 * the remote accepts with F_SEAL_SHRINK; aborts on failure.
 */
int testutil_memfd(size_t size, unsigned seals);

/* 1 if a and b refer to the same open file (same device and inode). */
int testutil_same_file(int a, int b);

/*
 * Runs every case of s, with SIGPIPE ignored (a peer that went away shows as
 * EPIPE in the case, not as a killed test); EXIT_SUCCESS if all passed.
 */
int testutil_run_suite(Suite *s);

#endif
