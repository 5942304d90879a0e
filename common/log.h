/* One-line, levelled, component-tagged logging to stderr. */
#ifndef MPDEV_LOG_H
#define MPDEV_LOG_H

enum mpdev_log_level {
	MPDEV_LOG_ERROR = 0,
	MPDEV_LOG_WARN = 1,
	MPDEV_LOG_INFO = 2,
	MPDEV_LOG_DEBUG = 3,
};

/* Quiet by default (warnings and errors); each -v raises it one level. */
void log_set_level(enum mpdev_log_level level);
enum mpdev_log_level log_get_level(void);
/* Program name printed in front of every line, e.g. "mpdev-remote". */
void log_set_ident(const char *ident);

/*
 * One line to stderr. Control characters in it (from a peer's string, a file
 * name, anything) are written as \n, \t, \r or \xNN: nothing a peer sends
 * can start a line of its own or drive a terminal.
 */
void log_msg(enum mpdev_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Lines a peer can cause at will go through a rate limit of their own call
 * site: at most LOG_RATELIMIT_BURST per LOG_RATELIMIT_INTERVAL_MS, then one
 * line saying that similar lines are suppressed, and when the interval is
 * over one saying how many were.
 */
#define LOG_RATELIMIT_BURST	  5
#define LOG_RATELIMIT_INTERVAL_MS 5000

struct log_ratelimit {
	long long window_start_ms;
	unsigned count;
	unsigned long suppressed;
};

void log_msg_ratelimited(struct log_ratelimit *rl, enum mpdev_log_level level,
			 const char *component, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_ratelimited(level, comp, ...)                                                          \
	do {                                                                                       \
		static struct log_ratelimit rl_;                                                   \
		log_msg_ratelimited(&rl_, level, comp, __VA_ARGS__);                               \
	} while (0)
#define log_warn_rl(comp, ...) log_ratelimited(MPDEV_LOG_WARN, comp, __VA_ARGS__)
#define log_info_rl(comp, ...) log_ratelimited(MPDEV_LOG_INFO, comp, __VA_ARGS__)

#define log_error(comp, ...) log_msg(MPDEV_LOG_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(MPDEV_LOG_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(MPDEV_LOG_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(MPDEV_LOG_DEBUG, comp, __VA_ARGS__)

#endif
