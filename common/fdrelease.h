/*
 * Closing descriptors a peer handed over.
 *
 * close() of the last reference to some files waits: a TCP socket lingering
 * with unsent data (SO_LINGER, for as long as the peer chose), a file whose
 * FUSE daemon does not answer its flush, a tty draining its output, a Unix
 * socket whose queued messages hold such files. A peer can hand over any of
 * these and close its own copy. The remote therefore never closes what it
 * did not verify on its loop: it installs a handler (its closer thread), and
 * every such close goes through fd_release. Elsewhere (libmpdev, tools,
 * tests) the handler is plain close().
 */
#ifndef MPDEV_FDRELEASE_H
#define MPDEV_FDRELEASE_H

#include <stddef.h>

/* Closes fd (>= 0) through the installed handler. */
void fd_release(int fd);

/* Installs fn as the way fd_release closes (NULL: back to close()). */
void fd_release_set_handler(void (*fn)(int fd));

#endif
