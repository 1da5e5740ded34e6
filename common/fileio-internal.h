/* Test hooks of fileio.c, internal to dcres-common and its unit tests. */
#ifndef DCRES_COMMON_FILEIO_INTERNAL_H
#define DCRES_COMMON_FILEIO_INTERNAL_H

#include <stdbool.h>

/* When set, dcres_open_beneath walks component by component as it does on
 * kernels without openat2, so tests exercise that path too. */
extern bool dcres__fileio_no_openat2;

#endif
