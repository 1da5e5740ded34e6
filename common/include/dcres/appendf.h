/* Building a line of text piece by piece. */
#ifndef DCRES_APPENDF_H
#define DCRES_APPENDF_H

#include <stddef.h>

/* Appends printf output to buf (size bytes) at *used, advancing *used;
 * what does not fit is cut, and buf stays NUL-terminated. */
void dcres_appendf(char *buf, size_t size, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
