/*
 * An errno plus the reason in words. Functions still return 0 or a negative
 * errno; the struct carries the message up to whoever reports it (and across
 * the wire in an error reply).
 */
#ifndef MPDEV_ERROR_H
#define MPDEV_ERROR_H

#include <stddef.h>

#define MPDEV_ERROR_MSG_MAX 256

struct mpdev_error {
	int code; /* positive errno, 0 when clear */
	char msg[MPDEV_ERROR_MSG_MAX];
};

/* Records code and message in e (which may be NULL) and returns -code. */
int mpdev_error_set(struct mpdev_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mpdev_error_clear(struct mpdev_error *e);

#endif
