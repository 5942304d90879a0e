/* The remote's seccomp allow list (libseccomp); anything not on it kills the process. */
#ifndef MPDEV_SECCOMP_POLICY_H
#define MPDEV_SECCOMP_POLICY_H

#include "error.h"

/* Installs the filter; irrevocable. Needs no_new_privs (or CAP_SYS_ADMIN). */
int seccomp_policy_install(struct mpdev_error *err);

/* Number of rules in the list (for logs and docs/security.md). */
int seccomp_policy_size(void);

#endif
