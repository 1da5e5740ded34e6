/* UFFDIO_MOVE (Linux 6.8+) for builds whose kernel headers predate it
 * (Debian 12 ships 6.1 headers). Values from the kernel's uapi. Whether the
 * running kernel has it is asked at run time (UFFD_FEATURE_MOVE). */
#ifndef DCRES_PAGER_UFFD_MOVE_H
#define DCRES_PAGER_UFFD_MOVE_H

#include <linux/types.h>
#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move; /* bytes moved, or a negative errno */
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#endif
