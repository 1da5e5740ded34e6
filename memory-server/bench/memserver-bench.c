/* dcres-memserver-bench: measures a real dcres-memserver over loopback.
 *
 *   page-in / page-out round trip of one page: p50, p99
 *   page-in / page-out throughput in batches of 256 pages: pages/s
 *   checkpoint of SIZE of pages (begin to final, fsynced) against a plain
 *   sequential O_DIRECT write of the same bytes to the same directory,
 *   alternating, ROUNDS times each, as a ratio of medians
 *
 * usage: dcres-memserver-bench --server PATH [--dir DIR] [--size SIZE_MIB]
 * DIR must be on the storage to measure (default /var/tmp). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/wire.h"

static const uint8_t bench_ckpt_id[16] = { 0xc7 }; /* checkpoints' id */

#define PAGE DCRES_PAGE_SIZE
#define LAT_ROUNDS 2000
#define BATCH 256
#define ROUNDS 3

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1))];
}

static void drop_line(enum dcres_log_level level, const char *line)
{
	(void)level;
	(void)line;
}

static double median(double *v, size_t n)
{
	return pct(v, n, 0.5);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "dcres-memserver-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Plain sequential write of bytes to path with O_DIRECT, 4 MiB at a time,
 * fsynced: the storage's own rate. Returns seconds. */
static double plain_write(const char *path, size_t bytes, const void *buf)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	double t0 = now_s();

	if (fd < 0)
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path, errno);
	for (size_t off = 0; off < bytes; off += 4u << 20)
		if (pwrite(fd, buf, 4u << 20, (off_t)off) != 4 << 20)
			die("plain write", errno);
	if (fsync(fd) < 0)
		die("fsync", errno);
	close(fd);
	double t = now_s() - t0;
	unlink(path);
	return t;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'm' },
		{ 0 },
	};
	const char *server = NULL, *dir = "/var/tmp";
	size_t mib = 1024;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 's') server = optarg;
		else if (opt == 'd') dir = optarg;
		else if (opt == 'm') mib = strtoul(optarg, NULL, 10);
		else return 2;
	}
	if (!server || mib < 16) {
		fprintf(stderr, "usage: dcres-memserver-bench --server PATH [--dir DIR] [--size MIB>=16]\n");
		return 2;
	}

	char base[512], key[600], store[600], cap[32], addr[64];
	snprintf(base, sizeof(base), "%s/dcres-bench.XXXXXX", dir);
	if (!mkdtemp(base))
		die(base, errno);
	snprintf(key, sizeof(key), "%s/psk", base);
	snprintf(store, sizeof(store), "%s/store", base);
	int fd = open(key, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || write(fd, "bench-key-0123456789abcdef", 26) != 26)
		die(key, errno);
	close(fd);
	snprintf(cap, sizeof(cap), "%zuM", mib + 64);

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bind(s, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(s, (struct sockaddr *)&sa, &salen);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	close(s);

	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(server, server, "--listen", addr, "--capacity", cap, "--dir", store,
		      "--psk-file", key, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	struct dcres_psk psk;
	struct dcres_memclient *c = NULL;
	if (dcres_psk_load(key, &psk))
		return 1;
	dcres_log_set_sink(drop_line); /* "connection refused" until it listens */
	for (int i = 0; i < 600 && dcres_memclient_connect(addr, &psk, 1000, &c); i++)
		usleep(50000);
	dcres_log_set_sink(NULL);
	if (!c)
		die("dcres-memserver did not start", ETIMEDOUT);

	uint64_t npages = (uint64_t)mib << 20 >> 12;
	uint8_t uuid[16] = { 0xbe, 0x4c };
	int ret = dcres_memclient_attach(c, uuid, npages * PAGE);
	if (ret)
		die("attach", ret);
	uint8_t *buf;
	if (posix_memalign((void **)&buf, PAGE, 4u << 20))
		die("memory", ENOMEM);
	for (size_t i = 0; i < (4u << 20); i++)
		buf[i] = (uint8_t)(i * 131 + 7);

	/* Round trips of one page. */
	double out_lat[LAT_ROUNDS], in_lat[LAT_ROUNDS];
	for (int i = 0; i < LAT_ROUNDS; i++) {
		uint64_t page = (uint64_t)i;
		double t0 = now_s();
		if ((ret = dcres_memclient_page_out(c, &page, buf, 1)))
			die("page-out", ret);
		double t1 = now_s();
		if ((ret = dcres_memclient_page_in(c, &page, buf, 1)))
			die("page-in", ret);
		out_lat[i] = (t1 - t0) * 1e6;
		in_lat[i] = (now_s() - t1) * 1e6;
	}

	/* Batched throughput over the first 64 MiB of pages. */
	uint64_t pages[BATCH], tp_pages = 16384 < npages ? 16384 : npages;
	double t0 = now_s();
	for (uint64_t p = 0; p < tp_pages; p += BATCH) {
		for (int i = 0; i < BATCH; i++)
			pages[i] = p + (uint64_t)i;
		if ((ret = dcres_memclient_page_out(c, pages, buf, BATCH)))
			die("batched page-out", ret);
	}
	double out_rate = (double)tp_pages / (now_s() - t0);
	t0 = now_s();
	for (uint64_t p = 0; p < tp_pages; p += BATCH) {
		for (int i = 0; i < BATCH; i++)
			pages[i] = p + (uint64_t)i;
		if ((ret = dcres_memclient_page_in(c, pages, buf, BATCH)))
			die("batched page-in", ret);
	}
	double in_rate = (double)tp_pages / (now_s() - t0);

	/* Checkpoint of every page of the VM against a plain write. */
	uint64_t *all = malloc(1024 * sizeof(*all));
	for (uint64_t p = 0; p < npages; p += 1024) {
		for (int i = 0; i < 1024; i++)
			all[i] = p + (uint64_t)i;
		if ((ret = dcres_memclient_page_out(c, all, buf, 1024)))
			die("filling the server", ret);
	}
	/* Alternate plain writes and checkpoints; compare medians. */
	char plain[700], name[32];
	double t_plain[ROUNDS], t_ckpt[ROUNDS], t_sync[ROUNDS];
	snprintf(plain, sizeof(plain), "%s/plain-write", base);
	for (int r = 0; r < ROUNDS; r++) {
		t_plain[r] = plain_write(plain, npages * PAGE, buf);
		snprintf(name, sizeof(name), "bench-ckpt-%d", r);
		t0 = now_s();
		if ((ret = dcres_memclient_ckpt_begin(c, name, 1, bench_ckpt_id, NULL)) ||
		    (ret = dcres_memclient_ckpt_sync(c)))
			die("checkpoint begin/sync", ret);
		t_sync[r] = now_s() - t0;
		if ((ret = dcres_memclient_ckpt_final(c)) || (ret = dcres_memclient_ckpt_commit(c, NULL)))
			die("checkpoint final and commit", ret);
		t_ckpt[r] = now_s() - t0;
		char files[800];
		snprintf(files, sizeof(files), "rm -rf '%s/%s'", store, name);
		if (system(files))
			fprintf(stderr, "could not remove %s/%s\n", store, name);
	}
	double tp = median(t_plain, ROUNDS), tc = median(t_ckpt, ROUNDS), ts = median(t_sync, ROUNDS);

	double mb = (double)(npages * PAGE) / 1e6;
	printf("dcres-memserver-bench: loopback TCP, server dir %s\n", base);
	printf("page-out round trip (1 page, %d rounds): p50 %.1f us  p99 %.1f us\n", LAT_ROUNDS,
	       pct(out_lat, LAT_ROUNDS, 0.5), pct(out_lat, LAT_ROUNDS, 0.99));
	printf("page-in  round trip (1 page, %d rounds): p50 %.1f us  p99 %.1f us\n", LAT_ROUNDS,
	       pct(in_lat, LAT_ROUNDS, 0.5), pct(in_lat, LAT_ROUNDS, 0.99));
	printf("page-out batched (%d pages/frame): %.0f pages/s (%.0f MB/s)\n", BATCH, out_rate,
	       out_rate * PAGE / 1e6);
	printf("page-in  batched (%d pages/frame): %.0f pages/s (%.0f MB/s)\n", BATCH, in_rate,
	       in_rate * PAGE / 1e6);
	printf("checkpoint of %zu MiB (median of %d): %.2f s = %.0f MB/s, of which writing until "
	       "sync %.2f s, final (drain, fsync, publish) %.2f s\n",
	       mib, ROUNDS, tc, mb / tc, ts, tc - ts);
	printf("plain O_DIRECT write + fsync of the same bytes to the same directory (median of %d, "
	       "alternating): %.2f s = %.0f MB/s\n", ROUNDS, tp, mb / tp);
	printf("ratio checkpoint / plain write rate: %.2f (target >= 0.80)\n", tp / tc);

	dcres_memclient_close(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", base);
	free(all);
	free(buf);
	return 0;
}
