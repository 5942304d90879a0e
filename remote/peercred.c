#include "peercred.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void peercred_allow_default(struct peercred_allow *a)
{
	memset(a, 0, sizeof(*a));
	peercred_allow_add_uid(a, 0);
	if (getuid() != 0)
		peercred_allow_add_uid(a, getuid());
}

int peercred_allow_add_uid(struct peercred_allow *a, uid_t uid)
{
	for (size_t i = 0; i < a->n_uids; i++)
		if (a->uids[i] == uid)
			return 0;
	if (a->n_uids == PEERCRED_MAX_IDS)
		return -ENOSPC;
	a->uids[a->n_uids++] = uid;
	return 0;
}

int peercred_allow_add_gid(struct peercred_allow *a, gid_t gid)
{
	for (size_t i = 0; i < a->n_gids; i++)
		if (a->gids[i] == gid)
			return 0;
	if (a->n_gids == PEERCRED_MAX_IDS)
		return -ENOSPC;
	a->gids[a->n_gids++] = gid;
	return 0;
}

int peercred_check(const struct peercred_allow *a, int sock, struct mpdev_error *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return mpdev_error_set(err, errno, "SO_PEERCRED: %s", strerror(errno));
	for (size_t i = 0; i < a->n_uids; i++)
		if (a->uids[i] == cred.uid)
			return 0;
	for (size_t i = 0; i < a->n_gids; i++)
		if (a->gids[i] == cred.gid)
			return 0;
	return mpdev_error_set(
		err, EACCES,
		"peer pid %d uid %u gid %u is not on the allow list (--allow-uid/--allow-gid)",
		(int)cred.pid, (unsigned)cred.uid, (unsigned)cred.gid);
}
