/* End-to-end tests of dcres-memserver over loopback TCP: the real daemon
 * (path in argv[1]) in a child process, driven through the client library
 * and through raw sockets for malformed input.
 * usage: memserver-test PATH_TO_DCRES_MEMSERVER */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/log.h"
#include "dcres/manifest.h"
#include "dcres/memclient.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "dcres/uuid.h"
#include "dcres/wire.h"
#include "ckpt-build.h"
#include "memserver-spawn.h"

static const uint8_t test_ckpt_id[16] = { 0xc7 }; /* checkpoints' id */

#define PAGE DCRES_PAGE_SIZE
#define CAPACITY_PAGES 2048u  /* --capacity 8M */
#define VM_PAGES 4096u        /* 16 MiB of guest RAM */

static int failures;
static char tmpdir[256], store[300], keyfile[300], addr[64];
static struct test_memserver server;
static struct dcres_psk psk;
static const uint8_t uuid[16] = { 0xdc, 0x7e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)
#define REQUIRE(cond, ...) do { if (!(cond)) { CHECK(cond, __VA_ARGS__); finish(); } } while (0)

static void finish(void)
{
	test_memserver_kill(&server);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "umount '%s/full' 2>/dev/null; rm -rf '%s'", store, tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	printf("memserver-test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	exit(failures ? 1 : 0);
}

/* Fills a page with bytes derived from (page, version). */
static void fill(void *p, uint64_t page, uint32_t version)
{
	uint64_t *w = p, x = page * 0x9e3779b97f4a7c15ull + version + 1;
	for (unsigned i = 0; i < PAGE / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		w[i] = x;
	}
}

static bool same(const void *p, uint64_t page, uint32_t version)
{
	static _Alignas(4096) uint8_t want[PAGE];
	fill(want, page, version);
	return memcmp(p, want, PAGE) == 0;
}

static void *pages_buf(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, PAGE, n ? n * PAGE : PAGE))
		abort();
	return p;
}

static struct dcres_memclient *connect_ok(void)
{
	struct dcres_memclient *c = NULL;
	int ret = dcres_memclient_connect(addr, &psk, 5000, &c);
	REQUIRE(ret == 0, "connect to %s: %s", addr, strerror(-ret));
	ret = dcres_memclient_attach(c, uuid, (uint64_t)VM_PAGES * PAGE);
	REQUIRE(ret == 0, "attach: %s", strerror(-ret));
	return c;
}

static void start_server(const char *binary)
{
	int ret = test_memserver_start(&server, binary, "8M", store, keyfile, &psk);

	REQUIRE(ret == 0, "dcres-memserver did not come up: %s", strerror(-ret));
	snprintf(addr, sizeof(addr), "%s", server.addr);
}

static struct dcres_memstats stats(struct dcres_memclient *c)
{
	struct dcres_memstats st;
	int ret = dcres_memclient_stats(c, &st);
	REQUIRE(ret == 0, "stats: %s", strerror(-ret));
	return st;
}

/* A request header of type, for raw connections. */
static Dcres__Header raw_request(Dcres__MsgType type)
{
	Dcres__Header h = DCRES__HEADER__INIT;

	h.has_type = 1;
	h.type = type;
	return h;
}

/* A raw TCP connection to the server. */
static int raw_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 5, 0 };

	sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "raw connect");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads what the server sends until it closes; true if it closed (EOF)
 * and the text it sent contains want (if not NULL). */
static bool closed_with(int fd, const char *want)
{
	char buf[4096];
	size_t got = 0;
	ssize_t n;

	while ((n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	for (size_t i = 0; i < got; i++)
		if (!buf[i])
			buf[i] = ' ';
	close(fd);
	return n == 0 && (!want || strstr(buf, want));
}

static void test_auth_and_malformed(void)
{
	struct dcres_psk wrong = psk;
	struct dcres_memclient *c = NULL;
	uint32_t prefix[2];
	int fd;

	wrong.key[0] ^= 1;
	CHECK(dcres_memclient_connect(addr, &wrong, 2000, &c) == -EACCES,
	      "a wrong key must be refused with EACCES");

	/* A request before authentication. */
	fd = raw_connect();
	Dcres__Header h = DCRES__HEADER__INIT;
	h.has_type = 1;
	h.type = DCRES__MSG_TYPE__MSG_STATS;
	dcres_frame_send(fd, &h, NULL, 0);
	CHECK(closed_with(fd, "authenticate first"), "unauthenticated STATS not refused and closed");

	/* A payload before authentication is refused before it is read. */
	fd = raw_connect();
	Dcres__Header big = DCRES__HEADER__INIT;
	big.has_type = 1;
	big.type = DCRES__MSG_TYPE__MSG_HELLO;
	big.has_version = 1;
	big.version = DCRES__WIRE_VERSION__WIRE_VERSION;
	big.has_payload_len = 1;
	big.payload_len = DCRES_WIRE_MAX_PAYLOAD;
	uint8_t hb[64];
	size_t hl = dcres__header__pack(&big, hb);
	uint32_t pre[2] = { htonl(DCRES_WIRE_MAGIC), htonl((uint32_t)hl) };
	send(fd, pre, sizeof(pre), 0);
	send(fd, hb, hl, 0);
	CHECK(closed_with(fd, "malformed"), "payload before authentication not refused");

	/* Bad magic. */
	fd = raw_connect();
	CHECK(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0) == 18, "send");
	CHECK(closed_with(fd, "malformed"), "bad magic not answered and closed");

	/* Oversized header, after authenticating. */
	fd = raw_connect();
	CHECK(dcres_auth_client(fd, &psk, "raw") == 0, "raw auth");
	prefix[0] = htonl(DCRES_WIRE_MAGIC);
	prefix[1] = htonl(DCRES_WIRE_MAX_HEADER + 1);
	send(fd, prefix, sizeof(prefix), 0);
	CHECK(closed_with(fd, "malformed"), "oversized header not refused and closed");

	/* Truncated frame: announces 100 header bytes, sends 3, hangs up. */
	fd = raw_connect();
	CHECK(dcres_auth_client(fd, &psk, "raw") == 0, "raw auth");
	prefix[1] = htonl(100);
	send(fd, prefix, sizeof(prefix), 0);
	send(fd, "abc", 3, 0);
	shutdown(fd, SHUT_WR);
	CHECK(closed_with(fd, NULL), "truncated frame: connection not closed");

	/* Garbage protobuf. */
	fd = raw_connect();
	CHECK(dcres_auth_client(fd, &psk, "raw") == 0, "raw auth");
	prefix[1] = htonl(8);
	send(fd, prefix, sizeof(prefix), 0);
	send(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 0);
	CHECK(closed_with(fd, "malformed"), "unparsable header not refused and closed");

	/* PAGE_OUT whose payload does not match its page list. */
	fd = raw_connect();
	CHECK(dcres_auth_client(fd, &psk, "raw") == 0, "raw auth");
	Dcres__Header a = DCRES__HEADER__INIT;
	a.has_type = 1;
	a.type = DCRES__MSG_TYPE__MSG_ATTACH;
	a.has_vm_uuid = 1;
	a.vm_uuid = (ProtobufCBinaryData){ 16, (uint8_t *)uuid };
	a.has_ram_size = 1;
	a.ram_size = (uint64_t)VM_PAGES * PAGE;
	dcres_frame_send(fd, &a, NULL, 0);
	struct dcres_frame f = DCRES_FRAME_INIT;
	CHECK(dcres_frame_recv(fd, &f, "raw") == 0 && f.hdr->status == 0, "raw attach");
	dcres_frame_destroy(&f);
	uint64_t two[2] = { 1, 2 };
	void *one_page = pages_buf(1);
	Dcres__Header po = DCRES__HEADER__INIT;
	po.has_type = 1;
	po.type = DCRES__MSG_TYPE__MSG_PAGE_OUT;
	po.n_pages = 2;
	po.pages = two;
	dcres_frame_send(fd, &po, one_page, PAGE);
	CHECK(closed_with(fd, "carries"), "PAGE_OUT with a short payload not refused and closed");
	free(one_page);

	/* The server still serves a well-behaved client. */
	c = connect_ok();
	struct dcres_memstats st = stats(c);
	CHECK(st.capacity_pages == CAPACITY_PAGES, "capacity %llu pages, want %u",
	      (unsigned long long)st.capacity_pages, CAPACITY_PAGES);
	CHECK(st.vm_pages == 0, "malformed requests stored %llu pages",
	      (unsigned long long)st.vm_pages);
	dcres_memclient_close(c);
}

static void test_paging_and_capacity(void)
{
	struct dcres_memclient *c = connect_ok();
	uint64_t n = 1500, pages[2048];
	uint8_t *buf = pages_buf(2048);
	struct dcres_memstats st;
	int ret;

	for (uint64_t i = 0; i < n; i++) {
		pages[i] = i * 2; /* scattered */
		fill(buf + i * PAGE, pages[i], 1);
	}
	ret = dcres_memclient_page_out(c, pages, buf, n);
	CHECK(ret == 0, "page-out of %llu pages: %s", (unsigned long long)n, strerror(-ret));
	st = stats(c);
	CHECK(st.vm_pages == n && st.used_pages == n, "held %llu/%llu pages after page-out, want %llu",
	      (unsigned long long)st.vm_pages, (unsigned long long)st.used_pages,
	      (unsigned long long)n);

	/* 600 more do not fit in 2048: refused whole, nothing stored. */
	for (uint64_t i = 0; i < 600; i++) {
		pages[i] = 1 + i * 2;
		fill(buf + i * PAGE, pages[i], 1);
	}
	ret = dcres_memclient_page_out(c, pages, buf, 600);
	CHECK(ret == -ENOSPC, "over-capacity page-out returned %d, want -ENOSPC", ret);
	CHECK(strstr(dcres_memclient_error(c), "capacity"), "capacity refusal says: %s",
	      dcres_memclient_error(c));
	st = stats(c);
	CHECK(st.vm_pages == n && st.used_pages == n,
	      "refused page-out changed the store: %llu pages held", (unsigned long long)st.vm_pages);

	/* Page-in returns the data and releases the pages. */
	for (uint64_t i = 0; i < 500; i++)
		pages[i] = i * 2;
	memset(buf, 0, 500 * PAGE);
	ret = dcres_memclient_page_in(c, pages, buf, 500);
	CHECK(ret == 0, "page-in: %s", strerror(-ret));
	for (uint64_t i = 0; i < 500; i++)
		CHECK(same(buf + i * PAGE, pages[i], 1), "page %llu came back wrong",
		      (unsigned long long)pages[i]);
	st = stats(c);
	CHECK(st.vm_pages == n - 500 && st.page_ins == 500, "after page-in: %llu held, %llu page-ins",
	      (unsigned long long)st.vm_pages, (unsigned long long)st.page_ins);

	/* A page not held: refused, nothing released. */
	pages[0] = 1000 * 2;
	pages[1] = 3;
	ret = dcres_memclient_page_in(c, pages, buf, 2);
	CHECK(ret == -ENOENT, "page-in of a page not held returned %d", ret);
	CHECK(stats(c).vm_pages == n - 500, "failed page-in released pages");
	pages[0] = VM_PAGES;
	CHECK(dcres_memclient_page_out(c, pages, buf, 1) == -ERANGE, "page beyond the VM accepted");

	/* Release everything for the next test. */
	for (uint64_t i = 0; i < n - 500; i++)
		pages[i] = (500 + i) * 2;
	CHECK(dcres_memclient_page_in(c, pages, buf, n - 500) == 0, "releasing all pages");
	free(buf);
	dcres_memclient_close(c);
}

/* Many clients at once, each paging its own pages out and in. */
static void test_many_connections(void)
{
	enum { N = 16, P = 64 };
	struct dcres_memclient *cs[N];
	uint8_t *buf = pages_buf(P);

	for (int k = 0; k < N; k++)
		cs[k] = connect_ok();
	CHECK(stats(cs[0]).connections >= N, "server counts %u connections, want >= %d",
	      stats(cs[0]).connections, N);
	for (int k = 0; k < N; k++) {
		uint64_t pages[P];
		for (int i = 0; i < P; i++) {
			pages[i] = (uint64_t)(k * P + i);
			fill(buf + i * PAGE, pages[i], 7);
		}
		CHECK(dcres_memclient_page_out(cs[k], pages, buf, P) == 0, "client %d page-out", k);
	}
	for (int k = N - 1; k >= 0; k--) {
		uint64_t pages[P];
		for (int i = 0; i < P; i++)
			pages[i] = (uint64_t)(k * P + i);
		CHECK(dcres_memclient_page_in(cs[k], pages, buf, P) == 0, "client %d page-in", k);
		for (int i = 0; i < P; i++)
			CHECK(same(buf + i * PAGE, pages[i], 7), "client %d page %d wrong", k, i);
		dcres_memclient_close(cs[k]);
	}
	free(buf);
}

/* Pages in one page, checking its content against version when it comes. */
static int page_in_one(struct dcres_memclient *c, uint64_t page, uint32_t version)
{
	uint8_t *buf = pages_buf(1);
	int ret = dcres_memclient_page_in(c, &page, buf, 1);

	if (ret == 0)
		CHECK(same(buf, page, version), "page %llu came back wrong",
		      (unsigned long long)page);
	free(buf);
	return ret;
}

/* Checks that the VM holds base + held pages and that they are all the
 * used pages: pages retained for retries count in neither. */
static void check_held(struct dcres_memclient *c, uint64_t base, uint64_t held,
		       const char *when)
{
	struct dcres_memstats st = stats(c);

	CHECK(st.vm_pages == base + held && st.used_pages == base + held,
	      "%s: %llu pages held, %llu used, want %llu", when,
	      (unsigned long long)st.vm_pages, (unsigned long long)st.used_pages,
	      (unsigned long long)(base + held));
}

/* A page-in whose reply was lost is asked again, possibly on a new
 * connection: the server serves the VM's most recent page-in again, until
 * the VM's next page-in or page-out. */
static void test_page_in_retry(void)
{
	static const uint8_t uuid2[16] = { 0xdc, 0x7e, 2 };
	struct dcres_memclient *c = connect_ok(), *c2 = connect_ok(), *other = NULL;
	uint64_t a = 100, b = 101, ab[2] = { 100, 101 }, base = stats(c).vm_pages;
	uint64_t pages[CAPACITY_PAGES];
	uint8_t *buf = pages_buf(CAPACITY_PAGES);
	int ret;

	for (int i = 0; i < 2; i++)
		fill(buf + i * PAGE, ab[i], 8);
	CHECK(dcres_memclient_page_out(c, ab, buf, 2) == 0, "page-out of A and B");
	CHECK(page_in_one(c, a, 8) == 0, "page-in of A");
	check_held(c, base, 1, "after the page-in of A");
	ret = page_in_one(c2, a, 8);
	CHECK(ret == 0, "retried page-in of A on another connection: %s", strerror(-ret));
	check_held(c, base, 1, "after the retry of A");
	CHECK(page_in_one(c, b, 8) == 0, "page-in of B");
	CHECK(page_in_one(c, a, 8) == -ENOENT, "A served again after the page-in of B");
	check_held(c, base, 0, "after the page-in of B");

	/* A failed page-in keeps the retained pages. */
	CHECK(dcres_memclient_page_in(c, ab, buf, 2) == -ENOENT, "page-in of A and B");
	CHECK(page_in_one(c, b, 8) == 0, "retry of B after a failed page-in");

	/* A page-out frees them, also when it stores the retained page. */
	fill(buf, a, 9);
	CHECK(dcres_memclient_page_out(c, &a, buf, 1) == 0, "page-out of A");
	CHECK(page_in_one(c, b, 8) == -ENOENT, "B served again after a page-out");
	check_held(c, base, 1, "after the page-out of A");
	CHECK(page_in_one(c, a, 9) == 0, "page-in of the new A");
	check_held(c, base, 0, "after the page-in of the new A");

	/* Pages another VM retains give way to a page-out that fits. */
	ret = dcres_memclient_connect(addr, &psk, 5000, &other);
	REQUIRE(ret == 0 && dcres_memclient_attach(other, uuid2, (uint64_t)VM_PAGES * PAGE) == 0,
		"second VM");
	for (uint64_t i = 0; i < 1000; i++) {
		pages[i] = i;
		fill(buf + i * PAGE, i, 10);
	}
	CHECK(dcres_memclient_page_out(other, pages, buf, 1000) == 0, "second VM page-out");
	CHECK(dcres_memclient_page_in(other, pages, buf, 1000) == 0, "second VM page-in");
	uint64_t room = CAPACITY_PAGES - stats(c).used_pages;
	for (uint64_t i = 0; i < room; i++) {
		pages[i] = 1000 + i;
		fill(buf + i * PAGE, pages[i], 10);
	}
	ret = dcres_memclient_page_out(c, pages, buf, room);
	CHECK(ret == 0, "page-out of the %llu free pages: %s (%s)", (unsigned long long)room,
	      strerror(-ret), dcres_memclient_error(c));
	CHECK(page_in_one(other, 0, 10) == -ENOENT, "second VM's pages still retained");
	check_held(c, base, room, "after filling the capacity");
	CHECK(dcres_memclient_page_in(c, pages, buf, room) == 0, "releasing the pages");
	dcres_memclient_close(other);
	dcres_memclient_close(c2);
	dcres_memclient_close(c);
	free(buf);
}

/* Final then commit, as a caller that needs no sums does. */
static int ckpt_final_commit(struct dcres_memclient *c)
{
	int ret = dcres_memclient_ckpt_final(c);

	return ret ? ret : dcres_memclient_ckpt_commit(c, NULL);
}

/* Expected content of the pages held: version per page, 0 = not held. */
static uint32_t held_version[VM_PAGES];

static void page_out_versions(struct dcres_memclient *c, const uint64_t *pages, size_t n,
			      uint32_t version)
{
	uint8_t *buf = pages_buf(n);
	for (size_t i = 0; i < n; i++) {
		fill(buf + i * PAGE, pages[i], version);
		held_version[pages[i]] = version;
	}
	int ret = dcres_memclient_page_out(c, pages, buf, n);
	CHECK(ret == 0, "page-out: %s", strerror(-ret));
	free(buf);
}

static void page_in_all(struct dcres_memclient *c, const uint64_t *pages, size_t n)
{
	uint8_t *buf = pages_buf(n);
	int ret = dcres_memclient_page_in(c, pages, buf, n);
	CHECK(ret == 0, "page-in: %s", strerror(-ret));
	for (size_t i = 0; i < n; i++)
		held_version[pages[i]] = 0;
	free(buf);
}

/* Counts the partial memory files of host host_id in the store's
 * checkpoint directory dir (host-K.mem.partial.*). */
static int count_partials(const char *dir, uint32_t host_id)
{
	char path[512], prefix[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", store, dir);
	snprintf(prefix, sizeof(prefix), "host-%u.mem.partial", host_id);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* Checks that checkpoint dir (under the store) holds exactly the pages in
 * held_version, with that content. */
static void check_checkpoint(const char *name)
{
	char mem[512], pres[512];
	struct dcres_memfile *mf;
	struct dcres_presence p;
	uint8_t *buf = pages_buf(1);
	uint64_t want = 0;

	snprintf(mem, sizeof(mem), "%s/%s/host-1.mem", store, name);
	snprintf(pres, sizeof(pres), "%s/%s/host-1.present", store, name);
	REQUIRE(dcres_memfile_open(mem, &mf) == 0, "open %s", mem);
	REQUIRE(dcres_presence_read(pres, &p) == 0, "read %s", pres);
	for (uint64_t pg = 0; pg < VM_PAGES; pg++) {
		bool present = dcres_presence_test(&p, pg);
		CHECK(present == (held_version[pg] != 0), "%s: page %llu present=%d, held=%d", name,
		      (unsigned long long)pg, present, held_version[pg] != 0);
		if (!present)
			continue;
		want++;
		CHECK(dcres_memfile_read_pages(mf, &pg, buf, 1) == 0, "read page");
		CHECK(same(buf, pg, held_version[pg]), "%s: page %llu has the wrong content",
		      name, (unsigned long long)pg);
	}
	CHECK(dcres_presence_count(&p) == want, "presence count");
	CHECK(dcres_presence_verify_pages(&p, mf, NULL) == 0, "per-page checksums");
	struct stat sb;
	CHECK(count_partials(name, 1) == 0, "%s: partial file left behind", name);
	CHECK(stat(mem, &sb) == 0 && (sb.st_mode & 0777) == 0600, "%s mode %o", mem,
	      sb.st_mode & 0777);
	dcres_presence_free(&p);
	dcres_memfile_close(mf);
	free(buf);
}

/* Checks that a final's answer describes checkpoint name's files: their
 * names, sizes and CRCs as read now, and the page count. */
static void check_final_sums(const char *name, const struct dcres_ckpt_part *part,
			     uint64_t pages)
{
	const struct dcres_file_sum *f[2] = { &part->mem, &part->present };

	CHECK(part->pages == pages, "final reports %llu pages, %llu held",
	      (unsigned long long)part->pages, (unsigned long long)pages);
	for (int i = 0; i < 2; i++) {
		char path[512];
		uint64_t size;
		uint32_t crc;

		snprintf(path, sizeof(path), "%s/%s/%s", store, name, f[i]->name);
		CHECK(strcmp(f[i]->name, i ? "host-1.present" : "host-1.mem") == 0,
		      "final names %s", f[i]->name);
		REQUIRE(dcres_file_checksum(path, &size, &crc) == 0, "checksum %s", path);
		CHECK(size == f[i]->size && crc == f[i]->crc32c,
		      "%s: final reports %llu bytes, CRC %08x; the file has %llu, %08x", path,
		      (unsigned long long)f[i]->size, f[i]->crc32c, (unsigned long long)size, crc);
	}
}

static uint32_t file_crc(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t b[65536];
	size_t n;
	uint32_t crc = 0;
	if (!f)
		return 0;
	while ((n = fread(b, 1, sizeof(b), f)) > 0)
		crc = dcres_crc32c(crc, b, n);
	fclose(f);
	return crc;
}

/* An exclusive attach fences off the VM's earlier exclusive connection:
 * its page-ins and page-outs are refused with nothing done, while the new
 * one and non-exclusive connections work. A late exclusive attach on a
 * connection made before the newest one fences off nothing but itself. */
static void test_fencing(void)
{
	struct dcres_memclient *old = NULL, *new = NULL, *late = NULL, *plain = connect_ok();
	uint64_t page = 300, base = stats(plain).vm_pages;
	uint8_t *buf = pages_buf(1);

	REQUIRE(dcres_memclient_connect(addr, &psk, 5000, &old) == 0 &&
		dcres_memclient_attach_exclusive(old, uuid, (uint64_t)VM_PAGES * PAGE) == 0,
		"first exclusive connection");
	REQUIRE(dcres_memclient_connect(addr, &psk, 5000, &late) == 0, "connection attaching late");
	fill(buf, page, 11);
	CHECK(dcres_memclient_page_out(old, &page, buf, 1) == 0, "page-out before the fence");
	REQUIRE(dcres_memclient_connect(addr, &psk, 5000, &new) == 0 &&
		dcres_memclient_attach_exclusive(new, uuid, (uint64_t)VM_PAGES * PAGE) == 0,
		"second exclusive connection");
	fill(buf, page, 12);
	CHECK(dcres_memclient_page_out(old, &page, buf, 1) == -ESTALE &&
	      strstr(dcres_memclient_error(old), "fenced off"),
	      "a fenced-off page-out was not refused: %s", dcres_memclient_error(old));
	CHECK(dcres_memclient_page_in(old, &page, buf, 1) == -ESTALE,
	      "a fenced-off page-in was not refused");
	check_held(plain, base, 1, "after the fenced-off requests");
	REQUIRE(dcres_memclient_attach_exclusive(late, uuid, (uint64_t)VM_PAGES * PAGE) == 0,
		"late exclusive attach");
	CHECK(dcres_memclient_page_in(late, &page, buf, 1) == -ESTALE,
	      "a late attach on an older connection was not fenced off");
	CHECK(page_in_one(new, page, 11) == 0, "page-in on the new exclusive connection "
	      "(after a late attach on an older one)");
	fill(buf, page, 13);
	CHECK(dcres_memclient_page_out(plain, &page, buf, 1) == 0 && page_in_one(plain, page, 13) == 0,
	      "a non-exclusive connection was fenced off");
	free(buf);
	dcres_memclient_close(old);
	dcres_memclient_close(new);
	dcres_memclient_close(late);
	dcres_memclient_close(plain);
}

static void test_checkpoint_restore(void)
{
	struct dcres_memclient *c = connect_ok();
	uint64_t pages[1200];
	int ret;

	/* 1000 pages held, then a live checkpoint while pages move. */
	for (uint64_t i = 0; i < 1000; i++)
		pages[i] = i * 3;
	page_out_versions(c, pages, 1000, 1);
	ret = dcres_memclient_ckpt_begin(c, "c1", 1, test_ckpt_id, NULL);
	REQUIRE(ret == 0, "ckpt begin: %s", strerror(-ret));
	CHECK(stats(c).ckpt_state == 1, "checkpoint not running after begin");
	for (uint64_t i = 0; i < 200; i++)
		pages[i] = 1 + i * 3;                 /* new pages arrive */
	page_out_versions(c, pages, 200, 2);
	for (uint64_t i = 0; i < 300; i++)
		pages[i] = i * 3;                     /* pages leave */
	page_in_all(c, pages, 300);
	for (uint64_t i = 0; i < 50; i++)
		pages[i] = i * 3;                     /* some come back, changed */
	page_out_versions(c, pages, 50, 3);
	for (uint64_t i = 0; i < 100; i++)
		pages[i] = (900 + i) * 3;             /* rewritten in place */
	page_out_versions(c, pages, 100, 4);
	ret = dcres_memclient_ckpt_sync(c);
	CHECK(ret == 0, "ckpt sync: %s", strerror(-ret));
	ret = dcres_memclient_ckpt_final(c);
	REQUIRE(ret == 0, "ckpt final: %s", strerror(-ret));
	CHECK(stats(c).ckpt_state == 2, "checkpoint not past its final");
	/* After final, pages moving (the VM runs again) change nothing in it. */
	static uint32_t at_final[VM_PAGES], now[VM_PAGES];
	uint64_t final_pages = 0;
	memcpy(at_final, held_version, sizeof(at_final));
	for (uint64_t pg = 0; pg < VM_PAGES; pg++)
		final_pages += at_final[pg] != 0;
	for (uint64_t i = 0; i < 100; i++)
		pages[i] = (300 + i) * 3;             /* pages leave */
	page_in_all(c, pages, 100);
	for (uint64_t i = 0; i < 50; i++)
		pages[i] = (900 + i) * 3;             /* rewritten in place */
	page_out_versions(c, pages, 50, 5);
	for (uint64_t i = 0; i < 20; i++)
		pages[i] = 2 + i * 3;                 /* new pages arrive */
	page_out_versions(c, pages, 20, 6);
	struct dcres_ckpt_part part;
	ret = dcres_memclient_ckpt_commit(c, &part);
	REQUIRE(ret == 0, "ckpt commit: %s", strerror(-ret));
	uint64_t written = part.bytes_written;
	check_final_sums("c1", &part, final_pages);
	CHECK(stats(c).ckpt_state == 0, "checkpoint still running after commit");
	/* Every page held at final was written at least once. */
	CHECK(written >= final_pages * DCRES_PAGE_SIZE,
	      "commit reports %llu bytes written", (unsigned long long)written);
	memcpy(now, held_version, sizeof(now));
	memcpy(held_version, at_final, sizeof(at_final));
	check_checkpoint("c1");
	/* Back to what the server held at final, which the rest expects. */
	memcpy(held_version, now, sizeof(now));
	for (uint64_t i = 0; i < 20; i++)
		pages[i] = 2 + i * 3;
	page_in_all(c, pages, 20);
	for (uint64_t i = 0; i < 100; i++)
		pages[i] = (300 + i) * 3;
	page_out_versions(c, pages, 100, 1);
	for (uint64_t i = 0; i < 50; i++)
		pages[i] = (900 + i) * 3;
	page_out_versions(c, pages, 50, 4);
	CHECK(!memcmp(held_version, at_final, sizeof(at_final)), "test: not back at final");

	/* A second checkpoint into the same directory is refused, and one
	 * aborted after its final (into c1b) leaves c1 intact too. */
	char mem[512], pres[512];
	snprintf(mem, sizeof(mem), "%s/c1/host-1.mem", store);
	snprintf(pres, sizeof(pres), "%s/c1/host-1.present", store);
	uint32_t mem_crc = file_crc(mem), pres_crc = file_crc(pres);
	static uint32_t saved[VM_PAGES];
	memcpy(saved, held_version, sizeof(saved));
	CHECK(dcres_memclient_ckpt_begin(c, "c1", 1, test_ckpt_id, NULL) == -EEXIST, "second begin into c1");
	CHECK(dcres_memclient_ckpt_begin(c, "c1b", 1, test_ckpt_id, NULL) == 0, "begin into c1b");
	pages[0] = 5;
	page_out_versions(c, pages, 1, 9);
	CHECK(dcres_memclient_ckpt_final(c) == 0, "final of c1b");
	CHECK(dcres_memclient_ckpt_abort(c) == 0, "abort after final");
	CHECK(count_partials("c1b", 1) == 0, "abort left c1b's partial file");
	CHECK(file_crc(mem) == mem_crc && file_crc(pres) == pres_crc,
	      "abort changed the previous checkpoint's files");
	CHECK(dcres_memclient_ckpt_sync(c) == -ENOENT, "sync after abort should find nothing");

	/* Empty the VM, then restore a subset. */
	uint64_t held[VM_PAGES], nheld = 0;
	for (uint64_t pg = 0; pg < VM_PAGES; pg++)
		if (held_version[pg])
			held[nheld++] = pg;
	page_in_all(c, held, nheld);
	CHECK(stats(c).vm_pages == 0, "VM not empty");
	memcpy(held_version, saved, sizeof(saved));
	uint64_t subset[10], ns = 0;
	for (uint64_t pg = 0; pg < VM_PAGES && ns < 10; pg += 7)
		if (held_version[pg])
			subset[ns++] = pg;
	ret = dcres_memclient_restore(c, "c1", 1, subset, ns);
	CHECK(ret == 0, "restore subset: %s (%s)", strerror(-ret), dcres_memclient_error(c));
	CHECK(stats(c).vm_pages == ns, "restored %llu pages, want %llu",
	      (unsigned long long)stats(c).vm_pages, (unsigned long long)ns);
	uint8_t *buf = pages_buf(VM_PAGES);
	CHECK(dcres_memclient_page_in(c, subset, buf, ns) == 0, "page-in restored subset");
	for (uint64_t i = 0; i < ns; i++)
		CHECK(same(buf + i * PAGE, subset[i], held_version[subset[i]]),
		      "restored page %llu wrong", (unsigned long long)subset[i]);
	uint64_t absent = 0;
	while (held_version[absent])
		absent++;
	CHECK(dcres_memclient_restore(c, "c1", 1, &absent, 1) == -ENOENT,
	      "restore of a page the checkpoint lacks accepted");

	/* Serve: pages read from the files, not loaded. */
	CHECK(dcres_memclient_serve(c, "c1", 1, subset, buf, ns) == 0, "serve");
	for (uint64_t i = 0; i < ns; i++)
		CHECK(same(buf + i * PAGE, subset[i], held_version[subset[i]]),
		      "served page %llu wrong", (unsigned long long)subset[i]);
	CHECK(stats(c).vm_pages == 0, "serve loaded pages");

	/* Full restore. */
	nheld = 0;
	for (uint64_t pg = 0; pg < VM_PAGES; pg++)
		if (held_version[pg])
			held[nheld++] = pg;
	ret = dcres_memclient_restore(c, "c1", 1, NULL, 0);
	CHECK(ret == 0, "full restore: %s (%s)", strerror(-ret), dcres_memclient_error(c));
	CHECK(stats(c).vm_pages == nheld, "full restore loaded %llu pages, want %llu",
	      (unsigned long long)stats(c).vm_pages, (unsigned long long)nheld);
	CHECK(dcres_memclient_page_in(c, held, buf, nheld) == 0, "page-in after full restore");
	for (uint64_t i = 0; i < nheld; i++)
		CHECK(same(buf + i * PAGE, held[i], held_version[held[i]]),
		      "page %llu wrong after full restore", (unsigned long long)held[i]);

	/* A corrupted page is reported by file and page; nothing is loaded. */
	int fd = open(mem, O_RDWR);
	uint8_t byte;
	off_t off = DCRES_MEMFILE_DATA_START + (off_t)subset[3] * PAGE + 100;
	CHECK(pread(fd, &byte, 1, off) == 1, "pread");
	byte ^= 0x40;
	CHECK(pwrite(fd, &byte, 1, off) == 1, "pwrite");
	close(fd);
	ret = dcres_memclient_restore(c, "c1", 1, NULL, 0);
	CHECK(ret == -EBADMSG, "restore of a corrupted file returned %d", ret);
	char want[64];
	snprintf(want, sizeof(want), "page %llu", (unsigned long long)subset[3]);
	CHECK(strstr(dcres_memclient_error(c), want) && strstr(dcres_memclient_error(c), "host-1.mem"),
	      "corruption message does not name file and page: %s", dcres_memclient_error(c));
	CHECK(stats(c).vm_pages == 0, "a failed restore loaded pages");
	CHECK(dcres_memclient_restore(c, "../x", 1, NULL, 0) == -EINVAL, "path escape accepted");
	free(buf);
	dcres_memclient_close(c);
}

/* Connects and attaches to VM id, exclusively or not. */
static struct dcres_memclient *connect_to(const uint8_t id[16], bool exclusive)
{
	struct dcres_memclient *c = NULL;
	int ret = dcres_memclient_connect(addr, &psk, 5000, &c);

	REQUIRE(ret == 0, "connect to %s: %s", addr, strerror(-ret));
	ret = exclusive ? dcres_memclient_attach_exclusive(c, id, (uint64_t)VM_PAGES * PAGE)
			: dcres_memclient_attach(c, id, (uint64_t)VM_PAGES * PAGE);
	REQUIRE(ret == 0, "attach: %s", strerror(-ret));
	return c;
}

/* Releases c's VM, asking again for up to 2 s while it is refused as busy:
 * the server learns of a connection closing a little after the client. */
static int release_when_free(struct dcres_memclient *c, uint64_t *released)
{
	int ret = dcres_memclient_release(c, released);

	for (int i = 0; i < 100 && ret == -EBUSY; i++) {
		usleep(20000);
		ret = dcres_memclient_release(c, released);
	}
	return ret;
}

/* Checks that a release on c is refused as busy, naming why, and drops
 * nothing: the VM still holds want_held pages. */
static void check_release_refused(struct dcres_memclient *c, const char *why,
				  uint64_t want_held, const char *when)
{
	char name[DCRES_UUID_STR_LEN];
	uint64_t released = 12345;
	int ret = dcres_memclient_release(c, &released);

	dcres_uuid_format(uuid, name);
	CHECK(ret == -EBUSY, "%s: release returned %d, want -EBUSY", when, ret);
	CHECK(strstr(dcres_memclient_error(c), why) && strstr(dcres_memclient_error(c), name),
	      "%s: refusal does not name the VM and '%s': %s", when, why,
	      dcres_memclient_error(c));
	CHECK(released == 12345, "%s: a refused release reported a count", when);
	CHECK(stats(c).vm_pages == want_held, "%s: a refused release dropped pages (%llu held, "
	      "want %llu)", when, (unsigned long long)stats(c).vm_pages,
	      (unsigned long long)want_held);
}

/* RELEASE drops a VM's held and retained pages so that a restore can load
 * them again. It is refused while a checkpoint of the VM runs or another
 * live connection, not fenced off, is attached to it exclusively. */
static void test_release(void)
{
	enum { N = 300 };
	static const uint8_t uuid3[16] = { 0xdc, 0x7e, 3 };
	struct dcres_memclient *c = connect_ok(), *c3 = connect_to(uuid3, false);
	struct dcres_memclient *runner, *late, *newer;
	uint64_t pages[N], released = 12345;
	uint8_t *buf = pages_buf(N);
	struct dcres_memstats before;
	int ret;

	ret = dcres_memclient_release(c3, &released);
	CHECK(ret == 0 && released == 0, "release of a VM holding nothing: %d, %llu released",
	      ret, (unsigned long long)released);
	dcres_memclient_close(c3);

	/* N pages held and checkpointed; the first paged in again, so retained. */
	for (uint64_t i = 0; i < N; i++) {
		pages[i] = 2000 + i * 5;
		fill(buf + i * PAGE, pages[i], 21);
	}
	REQUIRE(dcres_memclient_page_out(c, pages, buf, N) == 0, "page-out before release");
	before = stats(c);
	REQUIRE(dcres_memclient_ckpt_begin(c, "rel", 4, test_ckpt_id, NULL) == 0 &&
		ckpt_final_commit(c) == 0, "checkpoint rel");
	CHECK(page_in_one(c, pages[0], 21) == 0, "page-in of page %llu",
	      (unsigned long long)pages[0]);
	ret = dcres_memclient_restore(c, "rel", 4, NULL, 0);
	CHECK(ret == -EEXIST && strstr(dcres_memclient_error(c), "already held"),
	      "restore over held pages returned %d: %s", ret, dcres_memclient_error(c));

	CHECK(dcres_memclient_ckpt_begin(c, "rel-busy", 4, test_ckpt_id, NULL) == 0, "begin rel-busy");
	check_release_refused(c, "checkpointed", before.vm_pages - 1, "during a checkpoint");
	CHECK(dcres_memclient_ckpt_abort(c) == 0, "abort rel-busy");

	/* A running main host; then a newer one fences it off. */
	runner = connect_to(uuid, true);
	late = connect_to(uuid3, false);
	check_release_refused(c, "running main host", before.vm_pages - 1, "while attached "
			      "exclusively");
	CHECK(page_in_one(c, pages[0], 21) == 0, "retained page lost by a refused release");
	newer = connect_to(uuid, true);
	check_release_refused(c, "running main host", before.vm_pages - 1, "after a reconnection");

	/* The newer one closes; the fenced-off one and a late exclusive attach
	 * on an older connection do not count as running. */
	dcres_memclient_close(newer);
	REQUIRE(dcres_memclient_attach_exclusive(late, uuid, (uint64_t)VM_PAGES * PAGE) == 0,
		"late exclusive attach");
	ret = release_when_free(c, &released);
	CHECK(ret == 0, "release after the exclusive connection closed: %s (%s)", strerror(-ret),
	      dcres_memclient_error(c));
	CHECK(released == N - 1, "released %llu pages, want %u", (unsigned long long)released,
	      N - 1);
	struct dcres_memstats after = stats(c);
	CHECK(after.vm_pages == before.vm_pages - N && after.used_pages == before.used_pages - N,
	      "after release: %llu pages held, %llu used, want %llu and %llu",
	      (unsigned long long)after.vm_pages, (unsigned long long)after.used_pages,
	      (unsigned long long)(before.vm_pages - N), (unsigned long long)(before.used_pages - N));
	CHECK(page_in_one(c, pages[0], 21) == -ENOENT, "a retained page survived the release");

	/* The restore that was refused now loads every page. */
	ret = dcres_memclient_restore(c, "rel", 4, NULL, 0);
	CHECK(ret == 0, "restore after release: %s (%s)", strerror(-ret), dcres_memclient_error(c));
	CHECK(stats(c).vm_pages == before.vm_pages, "restore after release: %llu pages held, "
	      "want %llu", (unsigned long long)stats(c).vm_pages,
	      (unsigned long long)before.vm_pages);
	memset(buf, 0, N * PAGE);
	CHECK(dcres_memclient_page_in(c, pages, buf, N) == 0, "page-in after the restore");
	for (uint64_t i = 0; i < N; i++)
		CHECK(same(buf + i * PAGE, pages[i], 21), "page %llu wrong after release and restore",
		      (unsigned long long)pages[i]);

	/* The exclusive connection may release its own VM; it stops counting
	 * once it attaches to another VM. */
	dcres_memclient_close(runner);
	runner = connect_to(uuid, true);
	CHECK(dcres_memclient_page_out(runner, pages, buf, 1) == 0, "page-out on the runner");
	CHECK(dcres_memclient_release(runner, &released) == 0 && released == 1,
	      "release by the exclusive connection itself");
	CHECK(dcres_memclient_page_out(runner, pages, buf, 1) == 0, "page-out on the runner");
	check_release_refused(c, "running main host", before.vm_pages - N + 1, "runner back");
	CHECK(dcres_memclient_attach(runner, uuid3, (uint64_t)VM_PAGES * PAGE) == 0,
	      "runner attaches to another VM");
	CHECK(dcres_memclient_release(c, &released) == 0 && released == 1,
	      "release after the runner left the VM");
	dcres_memclient_close(runner);
	dcres_memclient_close(late);
	dcres_memclient_close(c);
	free(buf);
}

/* The connection running a checkpoint dies: the server aborts it. */
static void test_owner_disconnect(void)
{
	struct dcres_memclient *c = connect_ok();
	uint64_t page = 11;

	page_out_versions(c, &page, 1, 5);
	CHECK(dcres_memclient_ckpt_begin(c, "c2", 2, test_ckpt_id, NULL) == 0, "begin c2");
	CHECK(count_partials("c2", 2) == 1, "no partial file while c2 runs");
	dcres_memclient_close(c);
	for (int i = 0; i < 50 && count_partials("c2", 2); i++)
		usleep(20000);
	CHECK(count_partials("c2", 2) == 0, "partial file of an orphaned checkpoint not removed");
	c = connect_ok();
	CHECK(stats(c).ckpt_state == 0, "orphaned checkpoint still running");
	page_in_all(c, &page, 1);
	dcres_memclient_close(c);
}

/* A disk that fills up mid-checkpoint: the checkpoint fails naming the file,
 * leaves nothing behind, and the server goes on serving. Needs root to mount
 * a 1 MiB tmpfs as the checkpoint's directory; skipped (and said) otherwise. */
static void test_full_disk(void)
{
	char dir[400];
	struct dcres_memclient *c;
	uint64_t pages[512];
	struct stat sb;
	int ret;

	if (geteuid() != 0) {
		printf("memserver-test: full-disk case skipped (needs root to mount a small tmpfs)\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/full", store);
	mkdir(dir, 0700);
	char cmd[500];
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=1M dcres-test-full '%s'", dir);
	REQUIRE(system(cmd) == 0, "mount a 1 MiB tmpfs on %s", dir);
	c = connect_ok();
	for (uint64_t i = 0; i < 512; i++) /* 2 MiB of pages: does not fit */
		pages[i] = 3000 + i;
	page_out_versions(c, pages, 512, 6);
	/* The error surfaces at sync or at final, depending on timing. */
	char why[512] = "";
	enum dcres_mem_reason reason = DCRES_MEM_REASON_NONE;
	ret = dcres_memclient_ckpt_begin(c, "full", 3, test_ckpt_id, NULL);
	if (ret == 0) {
		ret = dcres_memclient_ckpt_sync(c);
		if (ret == 0)
			ret = ckpt_final_commit(c);
		snprintf(why, sizeof(why), "%s", dcres_memclient_error(c));
		reason = dcres_memclient_reason(c);
		if (stats(c).ckpt_state != 0)
			CHECK(dcres_memclient_ckpt_abort(c) == 0, "abort after a failed sync");
	}
	CHECK(ret == -ENOSPC, "checkpoint onto a full disk returned %d, want -ENOSPC", ret);
	CHECK(reason == DCRES_MEM_REASON_IO, "a full disk is reason %s, not the page capacity",
	      dcres_mem_reason_name(reason));
	CHECK(strstr(why, "host-3.mem"), "full-disk error does not name the file: %s", why);
	CHECK(count_partials("full", 3) == 0, "partial file left on the full disk");
	snprintf(cmd, sizeof(cmd), "%s/host-3.mem", dir);
	CHECK(stat(cmd, &sb) < 0, "a failed checkpoint published its file");
	CHECK(stats(c).ckpt_state == 0, "failed checkpoint still running");
	page_in_all(c, pages, 512); /* the server still serves */
	dcres_memclient_close(c);
	snprintf(cmd, sizeof(cmd), "umount '%s'", dir);
	CHECK(system(cmd) == 0, "umount %s", dir);
}

/* Checks the published files of host host_id in checkpoint dir: readable,
 * want pages present, every page's checksum right, no partial left. */
static void check_published(const char *dir, uint32_t host_id, uint64_t want)
{
	char mem[512], pres[512];
	struct dcres_memfile *mf;
	struct dcres_presence p;

	snprintf(mem, sizeof(mem), "%s/%s/host-%u.mem", store, dir, host_id);
	snprintf(pres, sizeof(pres), "%s/%s/host-%u.present", store, dir, host_id);
	REQUIRE(dcres_memfile_open(mem, &mf) == 0, "open %s", mem);
	REQUIRE(dcres_presence_read(pres, &p) == 0, "read %s", pres);
	CHECK(dcres_presence_count(&p) == want, "%s: %llu pages, want %llu", pres,
	      (unsigned long long)dcres_presence_count(&p), (unsigned long long)want);
	CHECK(dcres_presence_verify_pages(&p, mf, NULL) == 0, "%s: per-page checksums", mem);
	CHECK(count_partials(dir, host_id) == 0, "%s/%s: partial file left behind", store, dir);
	dcres_presence_free(&p);
	dcres_memfile_close(mf);
}

struct final_call {
	struct dcres_memclient *c;
	int ret;
	_Atomic bool done;
};

static void *final_main(void *arg)
{
	struct final_call *f = arg;

	f->ret = ckpt_final_commit(f->c);
	atomic_store(&f->done, true);
	return NULL;
}

/* A connection to the server at address to VM id of npages pages. */
static struct dcres_memclient *connect_vm(const char *address, const uint8_t id[16],
					  uint64_t npages)
{
	struct dcres_memclient *c = NULL;
	int ret = dcres_memclient_connect(address, &psk, 5000, &c);

	REQUIRE(ret == 0, "connect to %s: %s", address, strerror(-ret));
	ret = dcres_memclient_attach(c, id, npages * PAGE);
	REQUIRE(ret == 0, "attach: %s", strerror(-ret));
	return c;
}

/* RELEASE and PAGE_IN from other connections while final's writers drain
 * (the server once freed the pages under them and crashed): each is
 * refused or tracked, the server stays up and the checkpoint is complete.
 * A second server, sharing the store, has room for enough pages to keep
 * the writers busy. */
static void test_release_during_final(const char *binary)
{
	enum { N = 12000, VM = 16384, ROUNDS = 4 };
	static const uint8_t id[16] = { 0xdc, 0x7e, 5 };
	struct test_memserver big;
	uint64_t *pages = malloc(N * sizeof(*pages));
	uint8_t *buf = pages_buf(N);

	REQUIRE(test_memserver_start(&big, binary, "64M", store, keyfile, &psk) == 0,
		"a second dcres-memserver did not come up");
	for (uint64_t i = 0; i < N; i++) {
		pages[i] = i;
		fill(buf + i * PAGE, pages[i], 31);
	}
	for (int round = 0; round < ROUNDS; round++) {
		struct dcres_memclient *a = connect_vm(big.addr, id, VM);
		struct dcres_memclient *b = connect_vm(big.addr, id, VM);
		struct final_call f = { .c = a };
		uint64_t released = 0, page = pages[N - 1];
		int refused = 0, ret;
		pthread_t t;

		REQUIRE(dcres_memclient_page_out(a, pages, buf, N) == 0, "page-out round %d", round);
		char fin[16];
		snprintf(fin, sizeof(fin), "fin%d", round);
		REQUIRE(dcres_memclient_ckpt_begin(a, fin, 8, test_ckpt_id, NULL) == 0, "begin round %d", round);
		REQUIRE(pthread_create(&t, NULL, final_main, &f) == 0, "final thread");
		usleep(2000);
		/* One page leaves while final drains (round 0 only): it is then
		 * either absent from the checkpoint or saved before it left. */
		bool moved = round == 0 && dcres_memclient_page_in(b, &page, buf, 1) == 0;
		do {
			ret = dcres_memclient_release(b, &released);
			refused += ret == -EBUSY;
		} while (ret == -EBUSY && !atomic_load(&f.done));
		pthread_join(t, NULL);
		if (ret == -EBUSY)
			ret = dcres_memclient_release(b, &released);
		CHECK(f.ret == 0, "round %d: final while others release: %s (%s)", round,
		      strerror(-f.ret), dcres_memclient_error(a));
		CHECK(ret == 0, "round %d: release after final: %s", round, strerror(-ret));
		CHECK(refused, "round %d: no release was refused while final ran", round);
		if (f.ret == 0) {
			char pres[512];
			struct dcres_presence p;
			snprintf(pres, sizeof(pres), "%s/%s/host-8.present", store, fin);
			REQUIRE(dcres_presence_read(pres, &p) == 0, "read %s", pres);
			uint64_t want = N - (moved && !dcres_presence_test(&p, page));
			dcres_presence_free(&p);
			check_published(fin, 8, want);
		}
		dcres_memclient_close(a);
		dcres_memclient_close(b);
	}
	struct dcres_memclient *c = connect_vm(big.addr, id, VM);
	CHECK(stats(c).vm_pages == 0, "pages left after the last release");
	dcres_memclient_close(c);
	test_memserver_kill(&big);
	free(pages);
	free(buf);
}

/* A second BEGIN while a checkpoint runs is refused without touching the
 * running checkpoint's files: the first one completes and verifies. */
static void test_second_begin(void)
{
	static const uint8_t id[16] = { 0xdc, 0x7e, 6 };
	struct dcres_memclient *a = connect_to(id, false), *b = connect_to(id, false);
	uint64_t pages[200], released;
	uint8_t *buf = pages_buf(200);
	int ret;

	for (uint64_t i = 0; i < 200; i++) {
		pages[i] = 100 + i;
		fill(buf + i * PAGE, pages[i], 41);
	}
	REQUIRE(dcres_memclient_page_out(a, pages, buf, 200) == 0, "page-out");
	REQUIRE(dcres_memclient_ckpt_begin(a, "twice", 9, test_ckpt_id, NULL) == 0, "first begin");
	ret = dcres_memclient_ckpt_begin(b, "twice", 9, test_ckpt_id, NULL);
	CHECK(ret == -EBUSY && strstr(dcres_memclient_error(b), "already running"),
	      "second begin returned %d: %s", ret, dcres_memclient_error(b));
	CHECK(count_partials("twice", 9) == 1, "the refused begin touched the partial file "
	      "(%d partial files)", count_partials("twice", 9));
	ret = ckpt_final_commit(a);
	CHECK(ret == 0, "final after a refused second begin: %s (%s)", strerror(-ret),
	      dcres_memclient_error(a));
	if (ret == 0)
		check_published("twice", 9, 200);
	CHECK(dcres_memclient_release(a, &released) == 0 && released == 200, "release");
	dcres_memclient_close(a);
	dcres_memclient_close(b);
	free(buf);
}

/* Planted symlinks below --dir are never followed: a symlinked checkpoint
 * directory is refused, symlinks named like the checkpoint's files leave
 * their targets untouched, and RESTORE and SERVE refuse symlinked files.
 * A --dir others can write to is refused at start-up. */
static void test_symlinks(const char *binary)
{
	static const uint8_t id[16] = { 0xdc, 0x7e, 7 };
	struct dcres_memclient *c = connect_to(id, false);
	char outside[400], victim[400], path[600], cmd[2400];
	uint64_t pages[20], released;
	uint8_t *buf = pages_buf(20);
	struct stat sb;
	uint32_t crc;
	int ret;

	snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
	snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
	REQUIRE(mkdir(outside, 0700) == 0, "mkdir %s", outside);
	FILE *v = fopen(victim, "w");
	REQUIRE(v && fputs("not for the memory server to write\n", v) >= 0 && fclose(v) == 0,
		"write %s", victim);
	crc = file_crc(victim);
	for (uint64_t i = 0; i < 20; i++) {
		pages[i] = 500 + i;
		fill(buf + i * PAGE, pages[i], 51);
	}
	REQUIRE(dcres_memclient_page_out(c, pages, buf, 20) == 0, "page-out");

	/* A symlinked directory, directly and on the way. */
	snprintf(path, sizeof(path), "%s/linkdir", store);
	REQUIRE(symlink(outside, path) == 0, "symlink %s", path);
	const char *dirs[] = { "linkdir", "linkdir/sub" };
	for (int i = 0; i < 2; i++) {
		ret = dcres_memclient_ckpt_begin(c, dirs[i], 10, test_ckpt_id, NULL);
		CHECK(ret < 0 && strstr(dcres_memclient_error(c), "symlink") &&
		      !strstr(dcres_memclient_error(c), store),
		      "begin into %s returned %d: %s", dirs[i], ret, dcres_memclient_error(c));
		if (ret == 0)
			dcres_memclient_ckpt_abort(c);
	}
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", outside);
	CHECK(system(cmd) == 0, "files were created through a symlinked directory in %s", outside);

	/* Symlinks named like the files a checkpoint writes. */
	snprintf(path, sizeof(path), "%s/sy", store);
	REQUIRE(mkdir(path, 0700) == 0, "mkdir %s", path);
	const char *names[] = { "host-10.mem.partial", "host-10.mem", "host-10.present",
				"host-10.present.tmp" };
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/sy/%s", store, names[i]);
		REQUIRE(symlink(victim, path) == 0, "symlink %s", path);
	}
	/* A published name taken (here by a symlink) refuses the begin. */
	ret = dcres_memclient_ckpt_begin(c, "sy", 10, test_ckpt_id, NULL);
	CHECK(ret == -EEXIST && strstr(dcres_memclient_error(c), "nothing is replaced"),
	      "begin into a directory holding host-10.mem returned %d: %s", ret,
	      dcres_memclient_error(c));
	for (int i = 1; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/sy/%s", store, names[i]);
		CHECK(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode), "%s was replaced", path);
		unlink(path);
	}
	ret = dcres_memclient_ckpt_begin(c, "sy", 10, test_ckpt_id, NULL);
	CHECK(ret == 0, "begin sy: %s", dcres_memclient_error(c));
	if (ret == 0) {
		ret = ckpt_final_commit(c);
		CHECK(ret == 0, "final sy: %s", dcres_memclient_error(c));
	}
	CHECK(file_crc(victim) == crc && stat(victim, &sb) == 0 && sb.st_size == 35,
	      "%s was written through a planted symlink", victim);
	snprintf(path, sizeof(path), "%s/sy/host-10.mem", store);
	CHECK(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode), "%s is not the published file", path);

	/* RESTORE and SERVE refuse symlinked checkpoint files. */
	snprintf(path, sizeof(path), "%s/sy2", store);
	REQUIRE(mkdir(path, 0700) == 0, "mkdir %s", path);
	for (int i = 1; i < 3; i++) {
		char target[600];
		snprintf(target, sizeof(target), "%s/sy/%s", store, names[i]);
		snprintf(path, sizeof(path), "%s/sy2/%s", store, names[i]);
		REQUIRE(symlink(target, path) == 0, "symlink %s", path);
	}
	CHECK(dcres_memclient_release(c, &released) == 0 && released == 20, "release");
	ret = dcres_memclient_restore(c, "sy2", 10, NULL, 0);
	CHECK(ret < 0 && strstr(dcres_memclient_error(c), "sy2/host-10.mem is a symlink") &&
	      !strstr(dcres_memclient_error(c), store),
	      "restore through a symlink returned %d: %s", ret, dcres_memclient_error(c));
	ret = dcres_memclient_serve(c, "sy2", 10, pages, buf, 1);
	CHECK(ret < 0 && strstr(dcres_memclient_error(c), "symlink"),
	      "serve through a symlink returned %d: %s", ret, dcres_memclient_error(c));
	ret = dcres_memclient_restore(c, "sy", 10, NULL, 0);
	CHECK(ret == 0, "restore of sy itself: %s", dcres_memclient_error(c));
	CHECK(dcres_memclient_release(c, &released) == 0 && released == 20, "release");
	dcres_memclient_close(c);

	/* A --dir writable by others. */
	snprintf(path, sizeof(path), "%s/open-dir", tmpdir);
	REQUIRE(mkdir(path, 0700) == 0 && chmod(path, 0777) == 0, "mkdir %s", path);
	snprintf(cmd, sizeof(cmd), "'%s' --listen 127.0.0.1:0 --capacity 1M --dir '%s' "
		 "--psk-file '%s' --no-populate >'%s.log' 2>&1", binary, path, keyfile, path);
	ret = system(cmd);
	CHECK(WIFEXITED(ret) && WEXITSTATUS(ret) == 1, "a --dir writable by others was not "
	      "refused at start-up (status %d)", ret);
	snprintf(cmd, sizeof(cmd), "grep -q 'writable by others' '%s.log'", path);
	CHECK(system(cmd) == 0, "the refusal of a --dir writable by others does not say why");
	free(buf);
}

/* RESTORE and SERVE lists go through the page-in check: a page listed
 * twice is refused and the arena's accounting is unchanged. */
static void test_restore_duplicates(void)
{
	enum { DUP = 1000 };
	static const uint8_t id[16] = { 0xdc, 0x7e, 8 };
	struct dcres_memclient *c = connect_to(id, false);
	uint64_t *list = malloc(DUP * sizeof(*list)), page = 3, released;
	uint8_t *buf = pages_buf(DUP);
	struct dcres_memstats before;
	int ret;

	fill(buf, page, 61);
	REQUIRE(dcres_memclient_page_out(c, &page, buf, 1) == 0 &&
		dcres_memclient_ckpt_begin(c, "dup", 11, test_ckpt_id, NULL) == 0 &&
		ckpt_final_commit(c) == 0, "checkpoint dup");
	REQUIRE(dcres_memclient_release(c, &released) == 0 && released == 1, "release");
	before = stats(c);
	for (int i = 0; i < DUP; i++)
		list[i] = page;
	ret = dcres_memclient_restore(c, "dup", 11, list, DUP);
	CHECK(ret == -EINVAL && strstr(dcres_memclient_error(c), "listed twice"),
	      "restore of a page listed %d times returned %d: %s", DUP, ret,
	      dcres_memclient_error(c));
	ret = dcres_memclient_serve(c, "dup", 11, list, buf, 2);
	CHECK(ret == -EINVAL && strstr(dcres_memclient_error(c), "listed twice"),
	      "serve of a page listed twice returned %d: %s", ret, dcres_memclient_error(c));
	struct dcres_memstats after = stats(c);
	CHECK(after.used_pages == before.used_pages && after.vm_pages == 0,
	      "a refused restore changed the accounting: %llu used, want %llu",
	      (unsigned long long)after.used_pages, (unsigned long long)before.used_pages);
	CHECK(dcres_memclient_restore(c, "dup", 11, &page, 1) == 0 &&
	      dcres_memclient_release(c, &released) == 0 && released == 1 &&
	      stats(c).used_pages == before.used_pages, "restore of the page once, then release");
	dcres_memclient_close(c);
	free(list);
	free(buf);
}

/* Refusals tell the peer nothing about other VMs' sizes or where the
 * server's --dir is: paths are relative to it. */
static void test_error_replies(void)
{
	struct dcres_memclient *c = NULL, *held = connect_ok();
	int ret;

	REQUIRE(dcres_memclient_connect(addr, &psk, 5000, &c) == 0, "connect");
	ret = dcres_memclient_attach(c, uuid, 2 * PAGE);
	CHECK(ret == -EINVAL && strstr(dcres_memclient_error(c), "another RAM size") &&
	      !strstr(dcres_memclient_error(c), "4096"),
	      "attach of another size returned %d: %s", ret, dcres_memclient_error(c));
	ret = dcres_memclient_restore(held, "no-such-ckpt", 1, NULL, 0);
	CHECK(ret == -ENOENT && strstr(dcres_memclient_error(held), "no-such-ckpt") &&
	      !strstr(dcres_memclient_error(held), tmpdir),
	      "restore of a missing checkpoint returned %d: %s", ret,
	      dcres_memclient_error(held));
	ret = dcres_memclient_ckpt_begin(held, "no-such-ckpt/../x", 1, test_ckpt_id, NULL);
	CHECK(ret == -EINVAL && !strstr(dcres_memclient_error(held), tmpdir),
	      "begin with '..' returned %d: %s", ret, dcres_memclient_error(held));
	dcres_memclient_close(c);
	dcres_memclient_close(held);
}

/* Checks that the last call on c was refused with ret and reason. */
#define CHECK_REASON(c, ret, want_ret, want_reason, what)                                      \
	CHECK((ret) == (want_ret) && dcres_memclient_reason(c) == (want_reason),                 \
	      "%s returned %d, reason %s (want %d, %s): %s", what, ret,                         \
	      dcres_mem_reason_name(dcres_memclient_reason(c)), want_ret,                       \
	      dcres_mem_reason_name(want_reason), dcres_memclient_error(c))

/* Receives the reply on raw connection fd and returns its reason (-1 if
 * none came), its status in *status. */
static int raw_reply_reason(int fd, int *status)
{
	struct dcres_frame f = DCRES_FRAME_INIT;
	int reason = -1;

	*status = 0;
	if (dcres_frame_recv(fd, &f, "raw") == 0 && f.hdr->type == DCRES__MSG_TYPE__MSG_REPLY) {
		*status = f.hdr->status;
		reason = f.hdr->has_reason ? (int)f.hdr->reason : -1;
	}
	dcres_frame_destroy(&f);
	return reason;
}

/* Every refusal carries its reason for programs to decide on, whatever
 * its message says; the next call that succeeds clears it. */
static void test_error_reasons(void)
{
	static const uint8_t id[16] = { 0xdc, 0x7e, 0x21 };
	struct dcres_memclient *c = connect_to(id, true), *newer;
	uint64_t room, beyond = VM_PAGES, pages[CAPACITY_PAGES + 1];
	uint8_t *buf = pages_buf(CAPACITY_PAGES + 1), nonce[32] = { 0 }, proof[32] = { 0 };
	struct dcres_memstats st;
	int ret, status, fd;

	/* No room: a page more than the capacity left. */
	room = CAPACITY_PAGES - stats(c).used_pages;
	for (uint64_t i = 0; i <= room; i++) {
		pages[i] = i;
		fill(buf + i * PAGE, i, 81);
	}
	ret = dcres_memclient_page_out(c, pages, buf, room + 1);
	CHECK_REASON(c, ret, -ENOSPC, DCRES_MEM_REASON_NO_ROOM, "page-out over the capacity");
	ret = dcres_memclient_stats(c, &st);
	CHECK_REASON(c, ret, 0, DCRES_MEM_REASON_NONE, "stats after a refusal");

	/* Not found: a page not held, a checkpoint not there, none running. */
	ret = dcres_memclient_page_in(c, pages, buf, 1);
	CHECK_REASON(c, ret, -ENOENT, DCRES_MEM_REASON_NOT_FOUND, "page-in of a page not held");
	ret = dcres_memclient_restore(c, "no-such-ckpt", 1, NULL, 0);
	CHECK_REASON(c, ret, -ENOENT, DCRES_MEM_REASON_NOT_FOUND, "restore of a missing checkpoint");
	ret = dcres_memclient_ckpt_sync(c);
	CHECK_REASON(c, ret, -ENOENT, DCRES_MEM_REASON_NOT_FOUND, "sync without a checkpoint");

	/* Bad requests: a page beyond the VM, a path with '..', another size. */
	ret = dcres_memclient_page_out(c, &beyond, buf, 1);
	CHECK_REASON(c, ret, -ERANGE, DCRES_MEM_REASON_BAD_REQUEST, "page-out beyond the VM");
	ret = dcres_memclient_ckpt_begin(c, "a/../b", 1, test_ckpt_id, NULL);
	CHECK_REASON(c, ret, -EINVAL, DCRES_MEM_REASON_BAD_REQUEST, "begin with '..'");
	ret = dcres_memclient_attach(c, id, 2 * PAGE);
	CHECK_REASON(c, ret, -EINVAL, DCRES_MEM_REASON_BAD_REQUEST, "attach of another size");

	/* Busy: a second checkpoint, a release while one runs. Exists: a
	 * restore over pages held. */
	REQUIRE(dcres_memclient_page_out(c, pages, buf, 1) == 0 &&
		dcres_memclient_ckpt_begin(c, "reasons", 5, test_ckpt_id, NULL) == 0, "page-out and begin");
	ret = dcres_memclient_ckpt_begin(c, "reasons", 5, test_ckpt_id, NULL);
	CHECK_REASON(c, ret, -EBUSY, DCRES_MEM_REASON_BUSY, "a second begin");
	ret = dcres_memclient_release(c, NULL);
	CHECK_REASON(c, ret, -EBUSY, DCRES_MEM_REASON_BUSY, "release during a checkpoint");
	REQUIRE(ckpt_final_commit(c) == 0, "final and commit");
	ret = dcres_memclient_restore(c, "reasons", 5, NULL, 0);
	CHECK_REASON(c, ret, -EEXIST, DCRES_MEM_REASON_EXISTS, "restore over held pages");
	CHECK(dcres_memclient_page_in(c, pages, buf, 1) == 0, "page-in");

	/* Refused: a connection fenced off by a newer exclusive one. */
	newer = connect_to(id, true);
	ret = dcres_memclient_page_out(c, pages, buf, 1);
	CHECK_REASON(c, ret, -ESTALE, DCRES_MEM_REASON_REFUSED, "page-out fenced off");
	dcres_memclient_close(newer);
	dcres_memclient_close(c);

	/* Refused: a request before authentication, a wrong proof (raw). */
	fd = raw_connect();
	Dcres__Header h = raw_request(DCRES__MSG_TYPE__MSG_STATS);
	dcres_frame_send(fd, &h, NULL, 0);
	ret = raw_reply_reason(fd, &status);
	CHECK(ret == DCRES__ERROR_REASON__ERR_REFUSED && status == -EACCES,
	      "a request before authentication: reason %d, status %d", ret, status);
	close(fd);
	fd = raw_connect();
	h = raw_request(DCRES__MSG_TYPE__MSG_HELLO);
	h.has_nonce = 1;
	h.nonce = (ProtobufCBinaryData){ sizeof(nonce), nonce };
	struct dcres_frame f = DCRES_FRAME_INIT;
	REQUIRE(dcres_frame_send(fd, &h, NULL, 0) == 0 && dcres_frame_recv(fd, &f, "raw") == 0 &&
		f.hdr->type == DCRES__MSG_TYPE__MSG_HELLO, "raw HELLO");
	dcres_frame_destroy(&f);
	h = raw_request(DCRES__MSG_TYPE__MSG_AUTH);
	h.has_proof = 1;
	h.proof = (ProtobufCBinaryData){ sizeof(proof), proof };
	dcres_frame_send(fd, &h, NULL, 0);
	ret = raw_reply_reason(fd, &status);
	CHECK(ret == DCRES__ERROR_REASON__ERR_REFUSED && status == -EACCES,
	      "a wrong proof: reason %d, status %d", ret, status);
	close(fd);

	/* The reason is on the wire, not only derived by the client. */
	fd = raw_connect();
	REQUIRE(dcres_auth_client(fd, &psk, "raw") == 0, "raw auth");
	h = raw_request(DCRES__MSG_TYPE__MSG_PAGE_IN);
	h.n_pages = 1;
	h.pages = pages;
	dcres_frame_send(fd, &h, NULL, 0);
	ret = raw_reply_reason(fd, &status);
	CHECK(ret == DCRES__ERROR_REASON__ERR_BAD_REQUEST && status == -EINVAL,
	      "a page-in before ATTACH: reason %d, status %d", ret, status);
	close(fd);
	free(buf);
}

/* A call that timed out leaves its connection unusable: the late reply is
 * never read as the answer to a later call, which fails at once without
 * sending anything. */
static void test_poisoned_connection(void)
{
	static const uint8_t id[16] = { 0xdc, 0x7e, 0x22 };
	struct dcres_memclient *c = connect_to(id, false), *fresh;
	struct dcres_memstats st;
	struct timespec t0, t1;
	uint64_t page = 7;
	uint8_t *buf = pages_buf(1);
	int ret;

	dcres_memclient_set_timeout(c, 200);
	REQUIRE(test_memserver_stop(&server) == 0, "the server did not stop");
	ret = dcres_memclient_stats(c, &st);
	CHECK(ret == -ETIMEDOUT && dcres_memclient_reason(c) == DCRES_MEM_REASON_NONE,
	      "stats of a stopped server returned %d, reason %s", ret,
	      dcres_mem_reason_name(dcres_memclient_reason(c)));
	kill(server.pid, SIGCONT);
	usleep(300000); /* the late reply arrives */

	fill(buf, page, 91);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = dcres_memclient_page_out(c, &page, buf, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(ret == -ENOTCONN && dcres_memclient_reason(c) == DCRES_MEM_REASON_NONE &&
	      strstr(dcres_memclient_error(c), "unusable after an earlier timeout") &&
	      strstr(dcres_memclient_error(c), addr),
	      "page-out after a timeout returned %d, reason %s: %s", ret,
	      dcres_mem_reason_name(dcres_memclient_reason(c)), dcres_memclient_error(c));
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 100,
	      "the call on an unusable connection waited");
	ret = dcres_memclient_stats(c, &st);
	CHECK(ret == -ENOTCONN, "a second call after a timeout returned %d", ret);
	dcres_memclient_close(c);

	/* Nothing went out: the page is not stored; a new connection works. */
	fresh = connect_to(id, false);
	CHECK(stats(fresh).vm_pages == 0, "the page-out on the unusable connection was sent");
	CHECK(dcres_memclient_page_out(fresh, &page, buf, 1) == 0 && page_in_one(fresh, page, 91) == 0,
	      "paging on a new connection");
	dcres_memclient_close(fresh);
	free(buf);
}

/* Checkpoint files whose consistent headers declare 8 KiB or 1 MiB pages
 * are refused by RESTORE and SERVE, naming the file and the field (they
 * once overran the server's buffers); the server goes on serving. */
static void test_page_size_refused(void)
{
	static const uint8_t id[16] = { 0xdc, 0x7e, 9 };
	static const uint32_t sizes[] = { 8192, 1u << 20 };
	struct dcres_memclient *c = connect_to(id, false);
	struct dcres_memfile_info info = { .ram_size = (uint64_t)VM_PAGES * PAGE,
					   .page_size = PAGE, .host_id = 12 };
	uint64_t pages[16];
	uint8_t *buf = pages_buf(16);
	int ret;

	memcpy(info.vm_uuid, id, 16);
	for (unsigned i = 0; i < 2; i++) {
		char dir[400], mem[500], pres[500], want[64];
		struct dcres_memfile *mf;
		struct dcres_presence p;

		snprintf(dir, sizeof(dir), "%s/ps%u", store, i);
		REQUIRE(mkdir(dir, 0700) == 0, "mkdir %s", dir);
		snprintf(mem, sizeof(mem), "%s/host-12.mem", dir);
		snprintf(pres, sizeof(pres), "%s/host-12.present", dir);
		REQUIRE(dcres_memfile_create(mem, &info, &mf) == 0 &&
			dcres_presence_init(&p, VM_PAGES, PAGE) == 0, "create %s", mem);
		for (uint64_t k = 0; k < 16; k++) {
			pages[k] = k;
			fill(buf + k * PAGE, k, 71);
			dcres_presence_set(&p, k, dcres_crc32c(0, buf + k * PAGE, PAGE));
		}
		REQUIRE(dcres_memfile_write_pages(mf, pages, buf, 16) == 0 &&
			dcres_memfile_sync(mf) == 0 && dcres_presence_write(pres, &p) == 0,
			"write %s", mem);
		dcres_memfile_close(mf);
		dcres_presence_free(&p);
		test_ckpt_set_page_size(mem, sizes[i]);
		test_ckpt_set_page_size(pres, sizes[i]);

		snprintf(want, sizeof(want), "ps%u/host-12.mem: the page size", i);
		ret = dcres_memclient_serve(c, dir + strlen(store) + 1, 12, pages, buf, 16);
		CHECK(ret == -ENOTSUP && strstr(dcres_memclient_error(c), want),
		      "serve of %u-byte pages returned %d: %s", sizes[i], ret,
		      dcres_memclient_error(c));
		ret = dcres_memclient_restore(c, dir + strlen(store) + 1, 12, NULL, 0);
		CHECK(ret == -ENOTSUP && strstr(dcres_memclient_error(c), want),
		      "restore of %u-byte pages returned %d: %s", sizes[i], ret,
		      dcres_memclient_error(c));
		CHECK(stats(c).vm_pages == 0, "a refused restore loaded pages");
	}
	dcres_memclient_close(c);
	c = connect_ok(); /* the server still serves */
	fill(buf, 77, 72);
	pages[0] = 77;
	CHECK(dcres_memclient_page_out(c, pages, buf, 1) == 0 && page_in_one(c, 77, 72) == 0,
	      "paging after the refused files");
	dcres_memclient_close(c);
	free(buf);
}

/* A raw TCP connection to the server from 127.0.0.src (another address
 * per src on the loopback network), or -1. */
static int raw_connect_from(unsigned src)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in me = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(0x7f000000u | src) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Whether the server has closed fd (EOF or reset), waiting up to ms. */
static bool server_closed(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];

	while (poll(&p, 1, ms) > 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			return n == 0 || errno != EAGAIN;
	}
	return false;
}

/* 300 connections that never finish authenticating (one byte of a HELLO
 * each, from one address and from 40 others) must not lock out a real
 * peer: it connects and pages within a second. A large header before
 * authentication is refused at once, and every slow connection is closed
 * at the handshake's deadline (5 s). */
static void test_slow_unauthenticated(void)
{
	enum { SLOW = 300 };
	static int fds[SLOW];
	struct dcres_memclient *c = NULL;
	struct timespec t0, t1;
	uint8_t *buf = pages_buf(1);
	uint64_t page = 90;
	int open_fds = 0, ret;

	for (int i = 0; i < SLOW; i++) {
		fds[i] = raw_connect_from(i < 100 ? 2 : 10 + (unsigned)i % 40);
		if (fds[i] >= 0 && send(fds[i], "\0", 1, MSG_NOSIGNAL) == 1)
			open_fds++;
	}
	CHECK(open_fds == SLOW, "only %d of %d slow connections were made", open_fds, SLOW);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = dcres_memclient_connect(addr, &psk, 1000, &c);
	if (ret == 0)
		ret = dcres_memclient_attach(c, uuid, (uint64_t)VM_PAGES * PAGE);
	fill(buf, page, 81);
	if (ret == 0)
		ret = dcres_memclient_page_out(c, &page, buf, 1);
	if (ret == 0)
		ret = page_in_one(c, page, 81);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(ret == 0 && took < 1.0, "with %d slow unauthenticated connections a client "
	      "connected and paged in %.2f s: %s", SLOW, took, ret ? strerror(-ret) : "ok");
	if (c)
		dcres_memclient_close(c);

	/* A 4 KiB header announced before authentication (1 MiB was allowed
	 * once: 200 half-sent ones took 105 MiB). */
	int fd = raw_connect();
	uint32_t pre[2] = { htonl(DCRES_WIRE_MAGIC), htonl(4096) };
	CHECK(send(fd, pre, sizeof(pre), 0) == sizeof(pre), "send");
	CHECK(server_closed(fd, 1000), "a 4 KiB header before authentication was not refused "
	      "at once");
	close(fd);

	/* The deadline: every slow connection closed by the server by 6 s. */
	int still = 0;
	for (int i = 0; i < SLOW; i++) {
		if (fds[i] < 0)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		int left = 6000 - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
					(t1.tv_nsec - t0.tv_nsec) / 1000000);
		still += !server_closed(fds[i], left > 0 ? left : 0);
		close(fds[i]);
	}
	CHECK(still == 0, "%d slow connections still open 6 s after they began", still);
	free(buf);
}

static void test_sigterm(void)
{
	int status = 0;
	kill(server.pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(server.pid, &status, WNOHANG) == server.pid) {
			server.pid = 0;
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "dcres-memserver exit status %d after SIGTERM", status);
			return;
		}
		usleep(50000);
	}
	CHECK(0, "dcres-memserver did not stop within 5 s of SIGTERM");
}

/* Checksums file name of checkpoint dir below base into *f. */
static void sum_of(const char *base, const char *dir, const char *name,
		   struct dcres_file_sum *f)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/%s", base, dir, name);
	f->name = name;
	f->held = dcres_file_checksum(path, &f->size, &f->crc32c) == 0;
}

/* Whether any file of base/dir starts with prefix. */
static bool any_file(const char *base, const char *dir, const char *prefix)
{
	char path[512];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", base, dir);
	if (!(d = opendir(path)))
		return false;
	while ((e = readdir(d)))
		found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return found;
}

/* Whole files between two servers: sums, a replica copied server to server
 * (only data travels; a second copy sends nothing), pages restored from the
 * replica's server, a copy fetched; a wrong CRC, other content under the
 * name, bad names and a dead peer are refused and publish nothing. */
static void test_replicas(const char *binary)
{
	enum { VM = 4096, N = 600 };
	static const uint8_t id[16] = { 0xdc, 0x7e, 0x11 };
	char peer_store[300], got_path[512];
	struct test_memserver peer;
	struct dcres_memclient *a, *b;
	struct dcres_ckpt_part part;
	struct dcres_file_sum files[3], f;
	uint64_t pages[N], sent = 1, released;
	uint8_t *buf = pages_buf(N);
	struct stat sb;
	int ret, fd;

	snprintf(peer_store, sizeof(peer_store), "%s/peer-store", tmpdir);
	REQUIRE(mkdir(peer_store, 0700) == 0, "mkdir %s", peer_store);
	REQUIRE(test_memserver_start(&peer, binary, "8M", peer_store, keyfile, &psk) == 0,
		"the peer dcres-memserver did not come up");
	a = connect_vm(addr, id, VM);
	for (uint64_t i = 0; i < N; i++) {
		pages[i] = i * 5 + 1;
		fill(buf + i * PAGE, pages[i], 41);
	}
	REQUIRE(dcres_memclient_page_out(a, pages, buf, N) == 0, "page-out");
	REQUIRE(dcres_memclient_ckpt_begin(a, "rep/c", 3, test_ckpt_id, NULL) == 0, "begin");
	REQUIRE(dcres_memclient_ckpt_final(a) == 0 && dcres_memclient_ckpt_commit(a, &part) == 0,
		"final and commit");

	/* Sums as the server reads them now: what final said; a file not
	 * there is not held. */
	files[0] = (struct dcres_file_sum){ .name = "host-3.mem" };
	files[1] = (struct dcres_file_sum){ .name = "host-3.present" };
	files[2] = (struct dcres_file_sum){ .name = "main.mem" };
	ret = dcres_memclient_file_sums(a, "rep/c", files, 3, false);
	CHECK(ret == 0, "file sums: %s", strerror(-ret));
	CHECK(files[0].held && files[0].size == part.mem.size &&
	      files[0].crc32c == part.mem.crc32c, "sum of host-3.mem differs from final's");
	CHECK(files[1].held && files[1].size == part.present.size &&
	      files[1].crc32c == part.present.crc32c, "sum of host-3.present differs");
	CHECK(!files[2].held, "main.mem reported held");

	/* Server to server: the peer gets both files, only the data sent. */
	ret = dcres_memclient_replicate(a, "rep/c", files, 2, peer.addr, &sent);
	REQUIRE(ret == 0, "replicate: %s (%s)", strerror(-ret), dcres_memclient_error(a));
	CHECK(sent >= (uint64_t)N * PAGE && sent < files[0].size / 2,
	      "replication sent %llu bytes for %u pages", (unsigned long long)sent, N);
	for (int i = 0; i < 2; i++) {
		sum_of(peer_store, "rep/c", files[i].name, &f);
		CHECK(f.held && f.size == files[i].size && f.crc32c == files[i].crc32c,
		      "the replica of %s differs", files[i].name);
	}
	snprintf(got_path, sizeof(got_path), "%s/rep/c/host-3.mem", peer_store);
	CHECK(stat(got_path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "replica mode");
	CHECK(!any_file(peer_store, "rep/c", "host-3.mem.partial"), "partial file left");
	ret = dcres_memclient_replicate(a, "rep/c", files, 2, peer.addr, &sent);
	CHECK(ret == 0 && sent == 0, "second replication: %d, %llu bytes sent", ret,
	      (unsigned long long)sent);

	/* The pages come back from the peer's copy, server to server. */
	CHECK(release_when_free(a, &released) == 0 && released == N, "release");
	ret = dcres_memclient_restore_from(a, "rep/c", 3, pages, N, peer.addr);
	CHECK(ret == 0, "restore from the peer: %s (%s)", strerror(-ret),
	      dcres_memclient_error(a));
	CHECK(stats(a).vm_pages == N, "restored %llu pages", (unsigned long long)stats(a).vm_pages);
	memset(buf, 0, (size_t)N * PAGE);
	CHECK(dcres_memclient_page_in(a, pages, buf, N) == 0, "page-in");
	for (uint64_t i = 0; i < N; i++)
		CHECK(same(buf + i * PAGE, pages[i], 41), "page %llu restored wrong",
		      (unsigned long long)pages[i]);
	CHECK(release_when_free(a, &released) == 0, "release");

	/* A copy fetched from the peer: same sum, holes kept. */
	b = connect_vm(peer.addr, id, VM);
	snprintf(got_path, sizeof(got_path), "%s/fetched.mem", tmpdir);
	fd = open(got_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ret = dcres_memclient_get_file(b, "rep/c", "host-3.mem", fd, got_path, &f);
	CHECK(ret == 0 && f.size == files[0].size && f.crc32c == files[0].crc32c,
	      "fetched copy: %s", strerror(-ret));
	CHECK(fstat(fd, &sb) == 0 && (uint64_t)sb.st_blocks * 512 < files[0].size / 2,
	      "the fetched copy is not sparse");
	close(fd);
	CHECK(dcres_memclient_get_file(b, "rep/c", "nothing", -1, "x", &f) == -ENOENT,
	      "fetching a missing file");

	/* Refused, nothing published: a wrong CRC, other content under an
	 * existing name, a bad name. */
	fd = open(got_path, O_RDONLY);
	f = files[0];
	f.name = "other.mem";
	f.crc32c ^= 1;
	ret = dcres_memclient_put_file(b, "rep/c", &f, fd, got_path, NULL);
	CHECK(ret == -EBADMSG && strstr(dcres_memclient_error(b), "rep/c/other.mem"),
	      "a copy with a wrong CRC: %d %s", ret, dcres_memclient_error(b));
	CHECK(!any_file(peer_store, "rep/c", "other.mem"), "a bad copy was published or left");
	f = files[0];
	f.name = "host-3.present";
	ret = dcres_memclient_put_file(b, "rep/c", &f, fd, got_path, NULL);
	CHECK(ret == -EEXIST && strstr(dcres_memclient_error(b), "not replaced"),
	      "other content over an existing file: %d %s", ret, dcres_memclient_error(b));
	sum_of(peer_store, "rep/c", "host-3.present", &f);
	CHECK(f.crc32c == files[1].crc32c, "an existing file was replaced");
	f = files[0];
	f.name = "../escape";
	CHECK(dcres_memclient_put_file(b, "rep/c", &f, fd, got_path, NULL) == -EINVAL,
	      "a name with a path accepted");
	f.name = "host-3.mem";
	CHECK(dcres_memclient_put_file(b, "../up", &f, fd, got_path, NULL) == -EINVAL,
	      "a directory outside --dir accepted");
	close(fd);
	dcres_memclient_close(b);

	/* A damaged copy: its sum differs, and the server names the page. */
	snprintf(got_path, sizeof(got_path), "%s/rep/c/host-3.mem", peer_store);
	fd = open(got_path, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, "X", 1, DCRES_MEMFILE_DATA_START + pages[7] * PAGE + 9) == 1,
	      "damage %s", got_path);
	close(fd);
	b = connect_vm(peer.addr, id, VM);
	f = (struct dcres_file_sum){ .name = "host-3.mem", .crc32c = files[0].crc32c };
	CHECK(dcres_memclient_file_sums(b, "rep/c", &f, 1, false) == 0 && f.held &&
	      f.crc32c != files[0].crc32c, "sum of a damaged copy");
	snprintf(got_path, sizeof(got_path), "rep/c/host-3.mem: page %llu is corrupted",
		 (unsigned long long)pages[7]);
	CHECK(strstr(f.error, got_path), "damaged copy reported as '%s'", f.error);
	dcres_memclient_close(b);

	/* A dead peer: refused naming it; this server still answers. */
	test_memserver_kill(&peer);
	ret = dcres_memclient_replicate(a, "rep/c", files, 2, peer.addr, &sent);
	CHECK(ret < 0 && strstr(dcres_memclient_error(a), peer.addr),
	      "replication to a dead peer: %d %s", ret, dcres_memclient_error(a));
	CHECK(stats(a).capacity_pages > 0, "the server stopped answering");
	dcres_memclient_close(a);
	free(buf);
}

/* Pages of VM id's checkpoint name on this server (host_id), as its
 * presence file lists them: -1 if it cannot be read. */
static long long present_pages(const char *name, unsigned host_id, uint64_t page, bool *has)
{
	char path[512];
	struct dcres_presence pr;
	long long n;

	snprintf(path, sizeof(path), "%s/%s/host-%u.present", store, name, host_id);
	if (dcres_presence_read(path, &pr))
		return -1;
	n = (long long)dcres_presence_count(&pr);
	*has = dcres_presence_test(&pr, page);
	dcres_presence_free(&pr);
	return n;
}

/* Incremental checkpoints: a child saves only the pages stored since its
 * parent's stop point; a parent that is not the server's last committed
 * checkpoint is refused, and so is one after a restore; a child aborted
 * after its final leaves its pages to the next child. */
static void test_incremental(void)
{
	static const uint8_t vm[16] = { 0x1c, 0x4e };
	static const uint8_t id1[16] = { 1 }, id2[16] = { 2 }, id3[16] = { 3 }, idx[16] = { 9 };
	struct dcres_memclient *c = connect_to(vm, true);
	uint64_t pages[100];
	void *buf = malloc(100 * PAGE);
	struct dcres_ckpt_part part;
	bool has;

	for (uint64_t i = 0; i < 100; i++) {
		pages[i] = i;
		fill((char *)buf + i * PAGE, i, 1);
	}
	REQUIRE(buf && dcres_memclient_page_out(c, pages, buf, 100) == 0, "page-outs");
	/* Nothing to build on yet. */
	CHECK(dcres_memclient_ckpt_begin(c, "inc0", 1, id1, id1) == -ESTALE &&
	      strstr(dcres_memclient_error(c), "take a full one"),
	      "an increment without a committed parent: \"%s\"", dcres_memclient_error(c));
	REQUIRE(dcres_memclient_ckpt_begin(c, "inc1", 1, id1, NULL) == 0 &&
		dcres_memclient_ckpt_final(c) == 0 && dcres_memclient_ckpt_commit(c, &part) == 0,
		"full checkpoint inc1");
	CHECK(part.pages == 100, "inc1 saved %llu pages", (unsigned long long)part.pages);
	/* 10 pages rewritten since: the child holds those 10. */
	fill(buf, 5, 2);
	for (uint64_t i = 0; i < 10; i++)
		pages[i] = 20 + i;
	REQUIRE(dcres_memclient_page_out(c, pages, buf, 10) == 0, "rewrites");
	CHECK(dcres_memclient_ckpt_begin(c, "incx", 1, idx, idx) == -ESTALE &&
	      strstr(dcres_memclient_error(c), "last checkpoint here is"),
	      "an increment on another parent: \"%s\"", dcres_memclient_error(c));
	REQUIRE(dcres_memclient_ckpt_begin(c, "inc2", 1, id2, id1) == 0 &&
		dcres_memclient_ckpt_final(c) == 0, "incremental checkpoint inc2");
	/* Stored after the stop point: the next increment's, not this one's. */
	pages[0] = 50;
	REQUIRE(dcres_memclient_page_out(c, pages, buf, 1) == 0, "page-out after final");
	REQUIRE(dcres_memclient_ckpt_commit(c, &part) == 0, "commit inc2");
	CHECK(part.pages == 10 && present_pages("inc2", 1, 25, &has) == 10 && has,
	      "inc2 saved %llu pages (want the 10 rewritten)", (unsigned long long)part.pages);
	/* An increment aborted after its final: its page counts for the next. */
	REQUIRE(dcres_memclient_ckpt_begin(c, "inc3a", 1, id3, id2) == 0 &&
		dcres_memclient_ckpt_final(c) == 0 && dcres_memclient_ckpt_abort(c) == 0,
		"aborted increment");
	pages[0] = 60;
	REQUIRE(dcres_memclient_page_out(c, pages, buf, 1) == 0, "page-out after the abort");
	REQUIRE(dcres_memclient_ckpt_begin(c, "inc3", 1, id3, id2) == 0 &&
		dcres_memclient_ckpt_final(c) == 0 && dcres_memclient_ckpt_commit(c, &part) == 0,
		"increment inc3 on inc2");
	CHECK(part.pages == 2 && present_pages("inc3", 1, 50, &has) == 2 && has &&
	      present_pages("inc3", 1, 60, &has) == 2 && has,
	      "inc3 saved %llu pages (want pages 50 and 60)", (unsigned long long)part.pages);
	/* After a restore, no increment builds on anything. */
	uint64_t released;
	REQUIRE(dcres_memclient_release(c, &released) == 0 &&
		dcres_memclient_restore(c, "inc1", 1, NULL, 0) == 0, "release and restore inc1");
	CHECK(dcres_memclient_ckpt_begin(c, "inc4", 1, idx, id3) == -ESTALE &&
	      strstr(dcres_memclient_error(c), "restored since"),
	      "an increment after a restore: \"%s\"", dcres_memclient_error(c));
	free(buf);
	dcres_memclient_close(c);
}

/* Waits up to 10 s until c's VM has at most want pages of its lazy
 * restore pending; returns the stats then. */
static struct dcres_memstats wait_pending(struct dcres_memclient *c, uint64_t want)
{
	struct dcres_memstats st = stats(c);

	for (int i = 0; i < 1000 && st.restore_pending > want; i++) {
		usleep(10 * 1000);
		st = stats(c);
	}
	return st;
}

/* Pages in pages[0..n) and checks each is (page, version). */
static void page_in_check(struct dcres_memclient *c, const uint64_t *pages, size_t n,
			  uint32_t version, const char *what)
{
	uint8_t *buf = pages_buf(n);
	int ret = dcres_memclient_page_in(c, pages, buf, n);

	CHECK(ret == 0, "%s: page-in: %s", what, dcres_memclient_error(c));
	for (size_t i = 0; !ret && i < n; i++)
		CHECK(same(buf + i * PAGE, pages[i], version), "%s: page %llu has wrong data",
		      what, (unsigned long long)pages[i]);
	free(buf);
}

/* Lazy restores: pages held at once and served from the checkpoint's file
 * (its own, or a peer's copy) before they are loaded; LOAD loads the rest
 * in the order registered; a page whose data is damaged is never served,
 * the others load; a checkpoint waits until every page is in. */
static void test_lazy_restore(const char *binary)
{
	enum { VM = 2048, N = 400 };
	static const uint8_t id[16] = { 0xdc, 0x7e, 0x1a };
	char peer_store[300], path[600];
	struct test_memserver peer;
	struct dcres_memclient *a, *p;
	struct dcres_memstats st;
	uint64_t pages[N], order[N], released;
	uint8_t *buf = pages_buf(N);
	int ret, fd;

	snprintf(peer_store, sizeof(peer_store), "%s/lazy-peer-store", tmpdir);
	REQUIRE(mkdir(peer_store, 0700) == 0, "mkdir %s", peer_store);
	REQUIRE(test_memserver_start(&peer, binary, "8M", peer_store, keyfile, &psk) == 0,
		"the peer dcres-memserver did not come up");
	/* Host 1's part on this server, host 2's on the peer. */
	a = connect_vm(addr, id, VM);
	p = connect_vm(peer.addr, id, VM);
	for (uint64_t i = 0; i < N; i++) {
		pages[i] = i * 2;
		fill(buf + i * PAGE, pages[i], 51);
	}
	REQUIRE(dcres_memclient_page_out(a, pages, buf, N) == 0, "page-out");
	REQUIRE(dcres_memclient_ckpt_begin(a, "lz/c", 1, test_ckpt_id, NULL) == 0 &&
		ckpt_final_commit(a) == 0, "checkpoint of host 1's part");
	for (uint64_t i = 0; i < N; i++) {
		pages[i] = i * 2 + 1;
		fill(buf + i * PAGE, pages[i], 52);
	}
	REQUIRE(dcres_memclient_page_out(p, pages, buf, N) == 0, "page-out to the peer");
	REQUIRE(dcres_memclient_ckpt_begin(p, "lz/c", 2, test_ckpt_id, NULL) == 0 &&
		ckpt_final_commit(p) == 0, "checkpoint of host 2's part on the peer");
	REQUIRE(dcres_memclient_release(a, &released) == 0 && released == N, "release");

	/* Host 1's pages from its own file, hottest (here: highest) first. */
	for (uint64_t i = 0; i < N; i++)
		order[i] = (N - 1 - i) * 2;
	ret = dcres_memclient_restore_lazy(a, "lz/c", 1, order, N, NULL);
	CHECK(ret == 0, "lazy restore: %s", dcres_memclient_error(a));
	for (uint64_t i = 0; i < N; i++)
		order[i] = (N - 1 - i) * 2 + 1;
	ret = dcres_memclient_restore_lazy(a, "lz/c", 2, order, N, peer.addr);
	CHECK(ret == 0, "lazy restore from the peer: %s", dcres_memclient_error(a));
	st = stats(a);
	CHECK(st.vm_pages == 2 * N && st.restore_pending == 2 * N && st.restore_bad == 0,
	      "registered: %llu held, %llu pending", (unsigned long long)st.vm_pages,
	      (unsigned long long)st.restore_pending);
	/* Before LOAD, page-ins read their pages from the sources. */
	pages[0] = 10;
	pages[1] = 11;
	pages[2] = 799;
	page_in_check(a, pages, 1, 51, "own file");
	page_in_check(a, pages + 1, 2, 52, "peer's file");
	st = stats(a);
	CHECK(st.restore_pending == 2 * N - 3 && st.vm_pages == 2 * N - 3,
	      "after 3 page-ins: %llu pending, %llu held", (unsigned long long)st.restore_pending,
	      (unsigned long long)st.vm_pages);
	CHECK(dcres_memclient_ckpt_begin(a, "lz/d", 1, test_ckpt_id, NULL) == -EBUSY &&
	      strstr(dcres_memclient_error(a), "still loading"),
	      "a checkpoint with pages still loading: %s", dcres_memclient_error(a));
	CHECK(dcres_memclient_restore_lazy(a, "lz/c", 1, &(uint64_t){ 20 }, 1, NULL) == -EEXIST,
	      "a page registered twice: %s", dcres_memclient_error(a));
	CHECK(dcres_memclient_restore_lazy(a, "lz/none", 1, &(uint64_t){ 1000 }, 1, NULL) ==
	      -ENOENT && strstr(dcres_memclient_error(a), "lz/none"),
	      "a lazy restore from a directory not there: %s", dcres_memclient_error(a));
	CHECK(dcres_memclient_load(a) == 0, "load: %s", dcres_memclient_error(a));
	st = wait_pending(a, 0);
	CHECK(st.restore_pending == 0 && st.vm_pages == 2 * N - 3,
	      "after load: %llu pending, %llu held", (unsigned long long)st.restore_pending,
	      (unsigned long long)st.vm_pages);
	for (uint64_t i = 0; i < N; i++)
		pages[i] = i * 2;
	page_in_check(a, pages, 5, 51, "loaded");
	page_in_check(a, pages + 6, N - 6, 51, "loaded");
	for (uint64_t i = 0; i < N; i++)
		pages[i] = i * 2 + 1;
	page_in_check(a, pages, 5, 52, "loaded from the peer");
	page_in_check(a, pages + 6, N - 6 - 1, 52, "loaded from the peer");

	/* A damaged page in host 1's file: refused by name, never served;
	 * the rest loads. */
	snprintf(path, sizeof(path), "%s/lz/c/host-1.mem", store);
	fd = open(path, O_RDWR);
	REQUIRE(fd >= 0, "open %s", path);
	off_t data = lseek(fd, 1 << 20, SEEK_DATA);
	uint64_t bad = ((uint64_t)data - (1 << 20)) / PAGE + 2; /* a page with data */
	uint8_t byte;
	REQUIRE(pread(fd, &byte, 1, data + 2 * PAGE + 9) == 1, "read %s", path);
	byte ^= 0x20;
	REQUIRE(pwrite(fd, &byte, 1, data + 2 * PAGE + 9) == 1, "write %s", path);
	REQUIRE(bad % 2 == 0, "test: page %llu is not host 1's", (unsigned long long)bad);
	REQUIRE(dcres_memclient_release(a, &released) == 0, "release");
	for (uint64_t i = 0; i < N; i++)
		order[i] = i * 2;
	CHECK(dcres_memclient_restore_lazy(a, "lz/c", 1, order, N, NULL) == 0, "lazy restore");
	ret = dcres_memclient_page_in(a, &bad, buf, 1);
	snprintf(path, sizeof(path), "lz/c/host-1.mem: page %llu is corrupted",
		 (unsigned long long)bad);
	CHECK(ret == -EBADMSG && dcres_memclient_reason(a) == DCRES_MEM_REASON_BAD_CHECKSUM &&
	      strstr(dcres_memclient_error(a), path),
	      "page-in of a damaged page: %d %s", ret, dcres_memclient_error(a));
	CHECK(dcres_memclient_load(a) == 0, "load");
	st = wait_pending(a, 1);
	CHECK(st.restore_pending == 1 && st.restore_bad == 1,
	      "a damaged page: %llu pending, %llu bad", (unsigned long long)st.restore_pending,
	      (unsigned long long)st.restore_bad);
	CHECK(dcres_memclient_page_in(a, &bad, buf, 1) == -EBADMSG,
	      "the damaged page was served after the load");
	page_in_check(a, order, (size_t)(bad / 2), 51, "the others");
	/* A release drops the pending page with the rest. */
	CHECK(dcres_memclient_release(a, &released) == 0 && stats(a).restore_pending == 0,
	      "release of a lazy restore");
	pwrite(fd, &(uint8_t){ byte ^ 0x20 }, 1, data + 2 * PAGE + 9);
	close(fd);
	dcres_memclient_close(a);
	dcres_memclient_close(p);
	free(buf);
	test_memserver_stop(&peer);
	printf("memserver-test: lazy restore from own files and a peer's, a damaged page "
	       "never served\n");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: memserver-test PATH_TO_DCRES_MEMSERVER\n");
		return 2;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/var/tmp/dcres-memserver-test.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(store, sizeof(store), "%s/store", tmpdir);
	snprintf(keyfile, sizeof(keyfile), "%s/psk", tmpdir);
	REQUIRE(test_write_key(keyfile, &psk) == 0, "key file %s", keyfile);
	start_server(argv[1]);

	test_auth_and_malformed();
	test_paging_and_capacity();
	test_many_connections();
	test_slow_unauthenticated();
	test_page_in_retry();
	test_fencing();
	test_checkpoint_restore();
	test_incremental();
	test_release();
	test_owner_disconnect();
	test_full_disk();
	test_release_during_final(argv[1]);
	test_second_begin();
	test_symlinks(argv[1]);
	test_restore_duplicates();
	test_error_replies();
	test_error_reasons();
	test_poisoned_connection();
	test_page_size_refused();
	test_replicas(argv[1]);
	test_lazy_restore(argv[1]);
	test_sigterm();
	finish();
}
