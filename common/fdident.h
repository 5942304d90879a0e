/* Whether two descriptors are the same open file (not merely the same inode). */
#ifndef MPDEV_FDIDENT_H
#define MPDEV_FDIDENT_H

/*
 * 1 if a and b refer to the same open file description, 0 if not. All
 * eventfds share one anonymous inode, so fstat cannot tell them apart;
 * kcmp(KCMP_FILE) can. Where kcmp is unavailable, 0 (and a and b compared
 * by number only).
 */
int fd_same_file(int a, int b);

#endif
