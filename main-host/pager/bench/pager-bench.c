/* dcres-pager-bench: remote page-in as a faulting thread sees it, against
 * two real memory servers on loopback, side by side in one run with the
 * kernel's own first-touch fault on plain anonymous memory.
 *   usage: dcres-pager-bench --server PATH_TO_DCRES_MEMSERVER [--pages N] */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dcres/memclient.h"
#include "dcres/pager.h"
#include "dcres/wire.h"
#include "memserver-spawn.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Touches every page of region once (a read), in a scattered order; fills
 * lat with each touch's time in us and returns the total in seconds. */
static double touch_all(volatile uint8_t *region, uint64_t n, double *lat)
{
	double t0 = now_us(), sum = 0;

	for (uint64_t k = 0; k < n; k++) {
		uint64_t p = (k * 7919) % n; /* n is a power of two: a permutation */
		double t = now_us();
		sum += region[p * DCRES_PAGE_SIZE];
		lat[k] = now_us() - t;
	}
	(void)sum;
	return (now_us() - t0) / 1e6;
}

static void report(const char *what, double *lat, uint64_t n, double secs)
{
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("%-44s p50 %7.1f us  p99 %7.1f us  %8.0f pages/s\n", what, lat[n / 2],
	       lat[n * 99 / 100], (double)n / secs);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "pages", required_argument, NULL, 'n' },
		{ 0 },
	};
	const char *server = NULL;
	uint64_t n = 16384;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 's') server = optarg;
		else if (opt == 'n') n = strtoull(optarg, NULL, 10);
		else return 2;
	}
	if (!server || n < 1024 || (n & (n - 1))) {
		fprintf(stderr, "usage: dcres-pager-bench --server PATH [--pages N, a power of two >= 1024]\n");
		return 2;
	}
	char tmp[] = "/var/tmp/dcres-pager-bench.XXXXXX", key[100], dir[100], cap[32];
	struct test_memserver srv[2];
	struct dcres_psk psk;
	if (!mkdtemp(tmp))
		return 1;
	snprintf(key, sizeof(key), "%s/psk", tmp);
	snprintf(cap, sizeof(cap), "%lluM", (unsigned long long)(n * DCRES_PAGE_SIZE >> 20) + 16);
	if (test_write_key(key, &psk))
		return 1;
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/s%d", tmp, i);
		if (test_memserver_start(&srv[i], server, cap, dir, key, &psk)) {
			fprintf(stderr, "dcres-pager-bench: memory server did not start\n");
			return 1;
		}
	}

	/* Half the pages on each server. */
	uint8_t uuid[16] = { 0xbe, 0x9a };
	uint64_t *pages = malloc(n * sizeof(*pages));
	void *data;
	if (!pages || posix_memalign(&data, DCRES_PAGE_SIZE, n / 2 * DCRES_PAGE_SIZE))
		return 1;
	memset(data, 0x5a, n / 2 * DCRES_PAGE_SIZE);
	for (int s = 0; s < 2; s++) {
		struct dcres_memclient *c;
		for (uint64_t i = 0; i < n / 2; i++)
			pages[i] = (uint64_t)s * (n / 2) + i;
		if (dcres_memclient_connect(srv[s].addr, &psk, 5000, &c) ||
		    dcres_memclient_attach(c, uuid, n * DCRES_PAGE_SIZE) ||
		    dcres_memclient_page_out(c, pages, data, n / 2))
			return 1;
		dcres_memclient_close(c);
	}

	double *lat = malloc(n * sizeof(*lat));
	uint8_t *plain = mmap(NULL, n * DCRES_PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *region = mmap(NULL, n * DCRES_PAGE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const char *addrs[2] = { srv[0].addr, srv[1].addr };
	struct dcres_pager_config cfg = { .base = region, .size = n * DCRES_PAGE_SIZE,
					  .servers = addrs, .nservers = 2, .psk = &psk,
					  .timeout_ms = 5000 };
	struct dcres_pager *pager;
	memcpy(cfg.vm_uuid, uuid, 16);
	if (!lat || plain == MAP_FAILED || region == MAP_FAILED || dcres_pager_start(&cfg, &pager))
		return 1;
	for (uint64_t p = 0; p < n; p++)
		dcres_pager_place(pager, p, (uint8_t)(p < n / 2 ? 1 : 2));

	printf("dcres-pager-bench: %llu pages, two memory servers on loopback TCP\n",
	       (unsigned long long)n);
	double t_plain = touch_all(plain, n, lat);
	report("first touch, plain anonymous memory", lat, n, t_plain);
	double t_remote = touch_all(region, n, lat);
	report("first touch, remote page (fault to resume)", lat, n, t_remote);
	printf("remote page-in costs %.0fx a kernel first-touch fault (same run)\n",
	       t_remote / t_plain);
	dcres_pager_stop(pager);
	for (int i = 0; i < 2; i++)
		test_memserver_kill(&srv[i]);
	char cmd[100];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmp);
	return 0;
}
