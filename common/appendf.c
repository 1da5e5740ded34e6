/* Building a line of text piece by piece (appendf.h). */
#include "dcres/appendf.h"

#include <stdarg.h>
#include <stdio.h>

void dcres_appendf(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, size - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n < size - *used ? (size_t)n : size - 1 - *used;
}
