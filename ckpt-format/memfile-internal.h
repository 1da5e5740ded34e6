/* Test hooks of memfile.c, internal to dcres-ckpt and its unit tests. */
#ifndef DCRES_CKPT_MEMFILE_INTERNAL_H
#define DCRES_CKPT_MEMFILE_INTERNAL_H

#include <stdbool.h>

#include "dcres/memfile.h"

/* When set before create/open, memory files skip O_DIRECT and use buffered
 * I/O, so tests exercise the fallback on filesystems that accept O_DIRECT
 * (tmpfs does since Linux 6.6). */
extern bool dcres__memfile_force_buffered;

/* True when mf does its page I/O with O_DIRECT and libaio. */
bool dcres__memfile_is_direct(const struct dcres_memfile *mf);

#endif
