#include "dcres/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static enum dcres_log_level log_level = DCRES_LOG_INFO;
static dcres_log_sink log_sink;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void dcres_log_set_level(enum dcres_log_level level)
{
	log_level = level;
}

enum dcres_log_level dcres_log_get_level(void)
{
	return log_level;
}

int dcres_log_parse_level(const char *name, enum dcres_log_level *level)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum dcres_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void dcres_log_set_sink(dcres_log_sink sink)
{
	pthread_mutex_lock(&log_lock);
	log_sink = sink;
	pthread_mutex_unlock(&log_lock);
}

void dcres_log(enum dcres_log_level level, const char *file, int line,
	       int errnum, const char *fmt, ...)
{
	int saved_errno = errno;
	const char *base = strrchr(file, '/');
	char buf[1024];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	n = snprintf(buf, sizeof(buf), "%s (%s:%d): ", level_names[level],
		     base ? base + 1 : file, line);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (errnum && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(errnum));

	pthread_mutex_lock(&log_lock);
	if (log_sink)
		log_sink(level, buf);
	else
		fprintf(stderr, "%s\n", buf);
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}
