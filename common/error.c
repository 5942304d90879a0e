#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mpdev_error_set(struct mpdev_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (e) {
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

void mpdev_error_clear(struct mpdev_error *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}
