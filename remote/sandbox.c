#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "seccomp_policy.h"

#define COMP "sandbox"

/* A name from the user database, or a plain number (no database in a lab initramfs). */
static int resolve_user(const char *name, uid_t *uid, gid_t *gid, struct mpdev_error *err)
{
	struct passwd *pw = getpwnam(name);
	char *end;
	unsigned long n;

	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	n = strtoul(name, &end, 10);
	if (*name && !*end && n < 0xfffffffful) {
		*uid = (uid_t)n;
		*gid = (gid_t)n;
		return 0;
	}
	return mpdev_error_set(err, ENOENT,
			       "user '%s' does not exist: create it (systemd-sysusers installs "
			       "mpdev's), or pass --user",
			       name);
}

static int resolve_group(const char *name, gid_t *gid, struct mpdev_error *err)
{
	struct group *gr = getgrnam(name);
	char *end;
	unsigned long n;

	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	n = strtoul(name, &end, 10);
	if (*name && !*end && n < 0xfffffffful) {
		*gid = (gid_t)n;
		return 0;
	}
	return mpdev_error_set(err, ENOENT, "group '%s' does not exist", name);
}

static int caps_all_clear(struct mpdev_error *err)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) < 0)
		return mpdev_error_set(err, errno, "capget: %s", strerror(errno));
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return mpdev_error_set(
				err, EPERM,
				"capabilities remain after the drop (set %d: eff %#x "
				"perm %#x)",
				i, d[i].effective, d[i].permitted);
	return 0;
}

int sandbox_verify(uid_t uid, gid_t gid, struct mpdev_error *err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return mpdev_error_set(err, errno, "getresuid: %s", strerror(errno));
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
		return mpdev_error_set(err, EPERM,
				       "ids after the drop are uid %u/%u/%u gid %u/%u/%u, expected "
				       "%u/%u",
				       ru, eu, su, rg, eg, sg, uid, gid);
	if (getgroups(0, NULL) != 0)
		return mpdev_error_set(err, EPERM, "supplementary groups remain after the drop");
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return mpdev_error_set(err, EPERM, "no_new_privs is not set");
	return caps_all_clear(err);
}

/* Empties the bounding and ambient sets, which a setuid alone leaves alone. */
static int drop_capability_sets(struct mpdev_error *err)
{
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return mpdev_error_set(err, errno, "PR_CAPBSET_DROP(%d): %s", cap,
					       strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return mpdev_error_set(err, errno, "clearing ambient capabilities: %s",
				       strerror(errno));
	return 0;
}

int sandbox_enter(const struct sandbox_config *cfg, struct mpdev_error *err)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	bool dropped = false;
	int r;

	if (geteuid() == 0) {
		r = resolve_user(cfg->user ? cfg->user : "mpdev", &uid, &gid, err);
		if (r == 0 && cfg->group)
			r = resolve_group(cfg->group, &gid, err);
		if (r < 0)
			return r;
		if (uid == 0 || gid == 0)
			return mpdev_error_set(err, EINVAL,
					       "refusing to keep running as root (uid %u gid %u)",
					       uid, gid);
		r = drop_capability_sets(err);
		if (r < 0)
			return r;
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			return mpdev_error_set(err, errno, "dropping to uid %u gid %u: %s", uid,
					       gid, strerror(errno));
		dropped = true;
	} else {
		/* Not root: nothing to drop but capabilities a file may have granted. */
		if (setgroups(0, NULL) < 0 && errno != EPERM)
			return mpdev_error_set(err, errno, "setgroups: %s", strerror(errno));
		log_info(COMP, "not started as root: staying uid %u", (unsigned)uid);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return mpdev_error_set(err, errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	/* A non-root start may keep its supplementary groups: verify the rest. */
	r = dropped ? sandbox_verify(uid, gid, err) : caps_all_clear(err);
	if (r == 0 && cfg->before_filter)
		r = cfg->before_filter(cfg->opaque, err);
	if (r < 0)
		return r;
	r = seccomp_policy_install(err);
	if (r < 0)
		return r;
	log_info(COMP,
		 "sandboxed: uid %u gid %u, no capabilities, no_new_privs, seccomp (%d rules)",
		 (unsigned)getuid(), (unsigned)getgid(), seccomp_policy_size());
	return 0;
}
