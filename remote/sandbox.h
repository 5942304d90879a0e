/*
 * The remote's sandbox. Started as root, it opens what it needs (the device,
 * the socket), then drops for good: supplementary groups cleared, the
 * configured user and group, every capability gone, no_new_privs, and a
 * seccomp allow list (seccomp_policy.c) that kills the process on anything
 * else. Each step is verified; a drop that did not hold stops the remote.
 */
#ifndef MPDEV_SANDBOX_H
#define MPDEV_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct sandbox_config {
	const char *user;  /* name or number; default "mpdev" */
	const char *group; /* name or number; default: the user's primary group */
	/*
	 * Optional: runs after the drop and before the seccomp filter, e.g. to
	 * start a helper thread that then runs unprivileged and filtered too
	 * (the filter is loaded for every thread of the process).
	 */
	int (*before_filter)(void *opaque, struct mpdev_error *err);
	void *opaque;
};

/*
 * Drops to cfg's user and group (only when running as root; otherwise the
 * invoking user stays, with no capabilities), sets no_new_privs and
 * installs the seccomp allow list. Verifies the result.
 */
int sandbox_enter(const struct sandbox_config *cfg, struct mpdev_error *err);

/* Checks that no uid/gid is 0 (unless the remote never ran as root) and no capability is left. */
int sandbox_verify(uid_t uid, gid_t gid, struct mpdev_error *err);

#endif
