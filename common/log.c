#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
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

/* Copies in to out with control characters spelt out; out always ends in NUL. */
static void escape_controls(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 5 < len; in++) {
		unsigned char c = (unsigned char)*in;

		if (c >= 0x20 && c != 0x7f) {
			out[o++] = (char)c;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
		} else {
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
		}
	}
	out[o] = '\0';
}

/* format(printf, 3, 0): the va_list form, so clang's -Wformat-nonliteral knows fmt is checked. */
static __attribute__((format(printf, 3, 0))) void
log_vmsg(enum mpdev_log_level level, const char *component, const char *fmt, va_list ap)
{
	char line[1024], clean[1024];
	int n;

	n = snprintf(line, sizeof(line), "%s[%d] %s: %s: ", cur_ident, (int)getpid(), component,
		     level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	escape_controls(line, clean, sizeof(clean));
	/* One write per line so that lines from several processes do not interleave. */
	fprintf(stderr, "%s\n", clean);
}

void log_msg(enum mpdev_log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_msg_ratelimited(struct log_ratelimit *rl, enum mpdev_log_level level,
			 const char *component, const char *fmt, ...)
{
	long long now;
	va_list ap;

	if (level > cur_level)
		return;
	now = now_ms();
	if (!rl->window_start_ms || now - rl->window_start_ms >= LOG_RATELIMIT_INTERVAL_MS) {
		if (rl->suppressed)
			log_msg(level, component, "%lu similar lines were suppressed",
				rl->suppressed);
		rl->window_start_ms = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count >= LOG_RATELIMIT_BURST) {
		rl->suppressed++;
		return;
	}
	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
	if (++rl->count == LOG_RATELIMIT_BURST)
		log_msg(level, component, "similar lines suppressed for the next %d s",
			LOG_RATELIMIT_INTERVAL_MS / 1000);
}
