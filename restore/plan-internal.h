/* Helpers shared by planner.c and planfile.c, internal to dcres-plan. */
#ifndef DCRES_PLAN_INTERNAL_H
#define DCRES_PLAN_INTERNAL_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Longest checkpoint directory a plan holds (bytes, without the NUL). */
#define PLAN_DIR_MAX (PATH_MAX - 1)

/* Formats a message into err (when err is not NULL and err_len > 0) and
 * returns ret, so callers can write `return plan_err(err, len, -EINVAL, ...)`. */
static inline int __attribute__((format(printf, 4, 5)))
plan_err(char *err, size_t err_len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && err_len) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

#endif
