/* Logging for dcres libraries and daemons.
 *
 * dcres code reports errors as negative errno values and logs, where the
 * error happens, one line naming the file, host or page concerned:
 *   pr_err("%s: bad magic", path);   pr_perror("open %s", path);
 * Lines carry the level and source location. The sink defaults to stderr;
 * daemons and tests may redirect it. Thread-safe. */
#ifndef DCRES_LOG_H
#define DCRES_LOG_H

#include <stdarg.h>

enum dcres_log_level {
	DCRES_LOG_ERROR = 0,
	DCRES_LOG_WARN = 1,
	DCRES_LOG_INFO = 2,
	DCRES_LOG_DEBUG = 3,
};

/* Lines above this level are dropped (default DCRES_LOG_INFO). */
void dcres_log_set_level(enum dcres_log_level level);
enum dcres_log_level dcres_log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int dcres_log_parse_level(const char *name, enum dcres_log_level *level);

/* Replaces the sink (NULL restores stderr); the sink gets whole lines
 * without the trailing newline. */
typedef void (*dcres_log_sink)(enum dcres_log_level level, const char *line);
void dcres_log_set_sink(dcres_log_sink sink);

/* Formats and emits one line; use the macros below. */
void dcres_log(enum dcres_log_level level, const char *file, int line,
	       int errnum, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define pr_err(...) dcres_log(DCRES_LOG_ERROR, __FILE__, __LINE__, 0, __VA_ARGS__)
#define pr_warn(...) dcres_log(DCRES_LOG_WARN, __FILE__, __LINE__, 0, __VA_ARGS__)
#define pr_info(...) dcres_log(DCRES_LOG_INFO, __FILE__, __LINE__, 0, __VA_ARGS__)
#define pr_debug(...) dcres_log(DCRES_LOG_DEBUG, __FILE__, __LINE__, 0, __VA_ARGS__)
/* Like pr_err, appending ": strerror(errno)"; errno is preserved. */
#define pr_perror(...) dcres_log(DCRES_LOG_ERROR, __FILE__, __LINE__, errno, __VA_ARGS__)

#endif
