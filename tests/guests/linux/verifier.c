/* Linux memtest verifier: runs memtest-core over a large anonymous mapping
 * inside the Linux test guest (as /sbin/memtest, started by /init).
 *
 * Settings come from the kernel command line:
 *   memtest.mb=N     size of the tested mapping in MiB (default 64)
 *   memtest.hot=PCT  memtest.hotat=PCT  memtest.rate=N|max  memtest.rest=SEC
 *                    as for the bare-metal guest
 * The generation table is ordinary heap memory of this process, so it is in
 * guest RAM like the pages it describes. Page numbers are page indices in the
 * mapping. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "memtest-core.h"
#include "pattern.h"

static void console_write(const char *s, unsigned len)
{
	while (len) {
		ssize_t n = write(STDOUT_FILENO, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (unsigned)n;
	}
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Reads /proc/cmdline into buf; returns 0 or -errno. */
static int read_cmdline(char *buf, size_t size)
{
	int fd = open("/proc/cmdline", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static const struct mt_platform platform = {
	.write = console_write,
	.now_us = now_us,
};

int main(void)
{
	static struct mt_state st;
	char cmdline[4096];
	const char *mb_arg;
	uint64_t mb = 64;
	void *area;
	int err;

	err = read_cmdline(cmdline, sizeof(cmdline));
	if (err) {
		fprintf(stderr, "memtest: /proc/cmdline: %s\n", strerror(-err));
		return 1;
	}
	mt_parse_cmdline(&st.cfg, cmdline, "memtest.");
	mb_arg = strstr(cmdline, "memtest.mb=");
	if (mb_arg)
		mb = strtoull(mb_arg + strlen("memtest.mb="), NULL, 10);
	if (mb == 0) {
		fprintf(stderr, "memtest: memtest.mb must be at least 1\n");
		return 1;
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		fprintf(stderr, "memtest: mlockall: %s (continuing)\n", strerror(errno));
	area = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	st.npages = (mb << 20) / MT_PAGE_SIZE;
	st.gens = calloc(st.npages, sizeof(*st.gens));
	if (area == MAP_FAILED || !st.gens) {
		fprintf(stderr, "memtest: cannot allocate %llu MiB: %s\n",
			(unsigned long long)mb, strerror(errno));
		return 1;
	}
	st.plat = &platform;
	st.nregions = 1;
	st.regions[0] = (struct mt_region){ .addr = area, .first_page = 0,
					    .count = st.npages };
	mt_run(&st);
}
