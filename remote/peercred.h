/*
 * Who may talk to the remote: SO_PEERCRED of each connection against an
 * allow list of uids and gids. A peer passes if its uid or its gid is listed.
 */
#ifndef MPDEV_PEERCRED_H
#define MPDEV_PEERCRED_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define PEERCRED_MAX_IDS 32

struct peercred_allow {
	uid_t uids[PEERCRED_MAX_IDS];
	size_t n_uids;
	gid_t gids[PEERCRED_MAX_IDS];
	size_t n_gids;
};

/* Default list: root and the user that started the remote. */
void peercred_allow_default(struct peercred_allow *a);
int peercred_allow_add_uid(struct peercred_allow *a, uid_t uid);
int peercred_allow_add_gid(struct peercred_allow *a, gid_t gid);

/*
 * 0 if the peer of sock is allowed; -EACCES (err says who and why) if not,
 * or another negative errno if the credentials cannot be read.
 */
int peercred_check(const struct peercred_allow *a, int sock, struct mpdev_error *err);

#endif
