/*
 * The closer: a thread that closes what peers handed over, so that a close
 * that waits (fdrelease.h says which) never waits on the remote's loop.
 * It shares nothing with the loop but its queue; it makes no other call.
 * Started after the privilege drop and before the seccomp filter, which is
 * loaded for every thread (TSYNC).
 */
#ifndef MPDEV_CLOSER_H
#define MPDEV_CLOSER_H

#include <stddef.h>

#include "error.h"

/* Starts the thread and makes fd_release() queue to it. */
int closer_start(struct mpdev_error *err);

/*
 * Closes what is queued (waiting at most timeout_ms for a close that hangs:
 * exit takes care of that one) and stops the thread; fd_release() closes
 * directly again.
 */
void closer_stop(int timeout_ms);

/* Descriptors queued or being closed: they still count against RLIMIT_NOFILE. */
size_t closer_backlog(void);

/* Whether the current close has taken longer than ms (a peer's file is holding it). */
int closer_stalled(int ms);

#endif
