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

void log_msg(enum mpdev_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(comp, ...) log_msg(MPDEV_LOG_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(MPDEV_LOG_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(MPDEV_LOG_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(MPDEV_LOG_DEBUG, comp, __VA_ARGS__)

#endif
