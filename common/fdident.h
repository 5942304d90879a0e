/* Whether two descriptors are the same open file (not merely the same inode). */
#ifndef MPDEV_FDIDENT_H
#define MPDEV_FDIDENT_H

/*
 * 1 if a and b refer to the same open file description, 0 if not, or a
 * negative errno when that cannot be told: all eventfds share one anonymous
 * inode, so fstat cannot tell them apart; only kcmp(KCMP_FILE) can, and a
 * kernel without CONFIG_KCMP or a container's seccomp filter may refuse it.
 * Callers that guard against a peer must treat "cannot tell" as "same".
 * A negative a or b is never the same as anything (0).
 */
int fd_same_file(int a, int b);

/*
 * 0 if fd_same_file can tell descriptors apart here, else why not (-errno).
 * Probed once, then remembered. Where it cannot, a remote refuses every
 * eventfd a peer offers: nothing it accepts could later be checked against.
 */
int fd_identity_probe(void);

#endif
