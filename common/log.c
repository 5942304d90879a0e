#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum mpdev_log_level cur_level = MPDEV_LOG_WARN;
static const char *cur_ident = "mpdev";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum mpdev_log_level level)
{
	if (level > MPDEV_LOG_DEBUG)
		level = MPDEV_LOG_DEBUG;
	cur_level = level;
}

enum mpdev_log_level log_get_level(void)
{
	return cur_level;
}

void log_set_ident(const char *ident)
{
	cur_ident = ident;
}

void log_msg(enum mpdev_log_level level, const char *component, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > cur_level)
		return;
	n = snprintf(line, sizeof(line), "%s[%d] %s: %s: ", cur_ident, (int)getpid(), component,
		     level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so that lines from several processes do not interleave. */
	fprintf(stderr, "%s\n", line);
}
