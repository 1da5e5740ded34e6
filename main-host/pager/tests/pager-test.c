/* libdcres-pager against two real memory servers on loopback: pages placed
 * on the servers come back with their content on first touch (from four
 * threads at once), never-written pages read as zeros, the servers release
 * what was paged in, and an unreachable server or a wrong key fails
 * start-up naming the server. Eviction under a local limit loses no write,
 * keeps pinned and often-noted pages resident and reports every move; a
 * server that stops answering makes only the faults on its pages wait,
 * which are served with their content when it is back. A fill loads its
 * pages in the background and on first touch, with a server's pages and
 * never-written pages beside it; a fetch error stops it and is reported.
 * usage: pager-test PATH_TO_DCRES_MEMSERVER (exit 77: no userfaultfd) */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/pager.h"
#include "dcres/wire.h"
#include "memserver-spawn.h"

#define PAGE DCRES_PAGE_SIZE
#define NPAGES 4096u
#define ON_SERVER 1000u /* pages on each server */

static int failures;
static char tmpdir[128];
static struct test_memserver servers[2];
static struct dcres_psk psk;
static uint8_t *region;
static const uint8_t uuid[16] = { 0x9a, 0x9e, 7 };

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

static void finish(void)
{
	char cmd[200];

	for (int i = 0; i < 2; i++)
		test_memserver_kill(&servers[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	printf("pager-test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	exit(failures ? 1 : 0);
}

static uint64_t word(uint64_t page, unsigned i)
{
	return page * 0x100000001b3ull + i * 0x9e3779b97f4a7c15ull + 1;
}

/* Which server page p was placed on (1, 2) or 0 for never written. */
static unsigned home(uint64_t p)
{
	return p < ON_SERVER ? 1 : p < 2 * ON_SERVER ? 2 : 0;
}

/* Stores pages 0..ON_SERVER-1 of VM vm_uuid (NPAGES pages) on server 1
 * and the next ON_SERVER on server 2, with their word() contents; buf
 * holds ON_SERVER pages. */
static void place_on_servers(const uint8_t vm_uuid[16], uint64_t *buf)
{
	uint64_t pages[ON_SERVER];

	for (unsigned s = 0; s < 2; s++) {
		struct dcres_memclient *c;
		CHECK(dcres_memclient_connect(servers[s].addr, &psk, 2000, &c) == 0, "connect");
		CHECK(dcres_memclient_attach(c, vm_uuid, (uint64_t)NPAGES * PAGE) == 0, "attach");
		for (unsigned j = 0; j < ON_SERVER; j++) {
			pages[j] = s * ON_SERVER + j;
			for (unsigned i = 0; i < PAGE / 8; i++)
				buf[j * (PAGE / 8) + i] = word(pages[j], i);
		}
		CHECK(dcres_memclient_page_out(c, pages, buf, ON_SERVER) == 0, "page-out");
		dcres_memclient_close(c);
	}
}

static void *reader(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 7919 + 1;

	for (int k = 0; k < 3000; k++) {
		seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
		uint64_t p = seed % NPAGES;
		const uint64_t *w = (const uint64_t *)(region + p * PAGE);
		unsigned i = (unsigned)(seed >> 32) % (PAGE / 8);
		uint64_t want = home(p) ? word(p, i) : 0;
		if (w[i] != want) {
			CHECK(0, "page %llu word %u: %llx, want %llx", (unsigned long long)p, i,
			      (unsigned long long)w[i], (unsigned long long)want);
			break;
		}
	}
	return NULL;
}

/* Eviction: a region 4x the local limit over the two servers; four
 * threads, each owning every fourth page, write versioned patterns and
 * check them against a shadow of versions while pages are evicted and
 * paged back in under them. */
#define EV_PAGES 2048u
#define EV_LIMIT 512u
static uint8_t *ev_region;
static uint32_t ev_version[EV_PAGES];

static void ev_fill(uint64_t p, uint32_t v)
{
	uint64_t *w = (uint64_t *)(ev_region + p * PAGE);
	for (unsigned i = 0; i < PAGE / 8; i += 64)
		w[i] = word(p, i) + v;
}

static int ev_check(uint64_t p)
{
	const uint64_t *w = (const uint64_t *)(ev_region + p * PAGE);
	uint32_t v = ev_version[p];
	for (unsigned i = 0; i < PAGE / 8; i += 64)
		if (w[i] != (v ? word(p, i) + v : 0))
			return 0;
	return 1;
}

static void *ev_worker(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	uint64_t seed = t * 1299709ull + 3;

	for (int k = 0; k < 6000; k++) {
		seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
		uint64_t p = (seed % (EV_PAGES / 4)) * 4 + t;
		if (p == 1) /* pinned, left alone */
			continue;
		if (!ev_check(p)) {
			CHECK(0, "eviction: page %llu lost version %u", (unsigned long long)p,
			      ev_version[p]);
			return NULL;
		}
		if (seed & 1) {
			ev_version[p]++;
			ev_fill(p, ev_version[p]);
		}
	}
	return NULL;
}

/* Servers reported lost and back, by server (1, 2). */
static _Atomic int lost_events[3], back_events[3];

static void on_server(void *opaque, unsigned server, bool up)
{
	(void)opaque;
	if (server >= 1 && server <= 2)
		atomic_fetch_add(up ? &back_events[server] : &lost_events[server], 1);
}

static bool wait_for(_Atomic int *counter, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(counter); i++)
		usleep(10000);
	return atomic_load(counter) > 0;
}

#define EV_HOT 32u /* pages 0, 4, .., noted as accessed all along */
static atomic_bool ev_running;
static _Atomic uint64_t ev_moved_in, ev_moved_out;

static void ev_on_move(void *opaque, uint64_t page, uint8_t from, uint8_t to)
{
	(void)opaque;
	(void)page;
	if (to == DCRES_PAGER_LOCAL && from != DCRES_PAGER_LOCAL)
		atomic_fetch_add(&ev_moved_in, 1);
	else if (from == DCRES_PAGER_LOCAL && to != DCRES_PAGER_LOCAL)
		atomic_fetch_add(&ev_moved_out, 1);
}

/* Notes the hot pages as accessed, as QEMU's dirty-log sync does. */
static void *ev_noter(void *arg)
{
	struct dcres_pager *pager = arg;

	while (atomic_load(&ev_running)) {
		for (uint64_t i = 0; i < EV_HOT; i++)
			dcres_pager_note_access(pager, i * 4);
		usleep(200);
	}
	return NULL;
}

/* dcres_pager_for_each_nonresident's runs, checked against loc (a copy of
 * the table): pages counted, pages in a run though resident, out of order. */
struct nonresident_runs {
	const uint8_t *loc;
	uint64_t pages, wrong, next;
};

static void note_nonresident_run(void *opaque, uint64_t first, uint64_t n)
{
	struct nonresident_runs *r = opaque;

	if (first < r->next)
		r->wrong++;
	for (uint64_t p = first; p < first + n; p++)
		r->wrong += r->loc[p] == DCRES_PAGER_LOCAL;
	r->pages += n;
	r->next = first + n + 1;
}

/* Waits until the pager has finished the evictions the last fault started
 * (its counts stay the same for 100 ms). */
static void wait_quiet(struct dcres_pager *pager)
{
	struct dcres_pager_stats a, b;

	dcres_pager_get_stats(pager, &b);
	do {
		a = b;
		usleep(100 * 1000);
		dcres_pager_get_stats(pager, &b);
	} while (a.page_outs != b.page_outs || a.page_ins != b.page_ins);
}

static void test_eviction(bool by_write_protect)
{
	const char *addrs[2] = { servers[0].addr, servers[1].addr };
	struct dcres_pager_config cfg = {
		.size = (size_t)EV_PAGES * PAGE, .servers = addrs, .nservers = 2, .psk = &psk,
		.timeout_ms = 2000, .local_limit_pages = EV_LIMIT,
		.evict_by_write_protect = by_write_protect,
	};
	const char *mode = by_write_protect ? "write-protect" : "UFFDIO_MOVE";
	struct dcres_pager *pager;
	struct dcres_pager_stats st;
	struct dcres_memstats ms[2];
	pthread_t t[4], noter;
	int ret;

	memset(ev_version, 0, sizeof(ev_version));
	atomic_store(&ev_moved_in, 0);
	atomic_store(&ev_moved_out, 0);
	ev_region = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.base = ev_region;
	/* Pages written before the pager starts (as QEMU loads ROMs) stay. */
	for (uint64_t p = 0; p < EV_PAGES; p += 16) {
		ev_version[p] = 1;
		ev_fill(p, 1);
	}
	cfg.vm_uuid[0] = by_write_protect ? 0xe8 : 0xe7; /* a VM of its own */
	ret = dcres_pager_start(&cfg, &pager);
	CHECK(ret == 0, "pager with a local limit: %s", strerror(-ret));
	if (ret)
		return;
	CHECK(dcres_pager_watch_moves(pager, ev_on_move, NULL) == 0 &&
	      dcres_pager_watch_moves(pager, ev_on_move, NULL) == -EBUSY,
	      "a second move watcher was not refused");
	CHECK(dcres_pager_location(pager, 16) == DCRES_PAGER_LOCAL &&
	      dcres_pager_location(pager, 17) == DCRES_PAGER_ZERO,
	      "pages present at start not taken as local");
	/* The hot pages and page 1 (pinned) start resident. */
	for (uint64_t p = 0; p < EV_HOT * 4; p += 4) {
		ev_version[p] = 1;
		ev_fill(p, 1);
	}
	ev_version[1] = 1;
	ev_fill(1, 1);
	CHECK(dcres_pager_pin(pager, 1) == 0, "pinning a resident page");
	CHECK(dcres_pager_pin(pager, 3) == -ENOENT, "pinning a never-written page");
	atomic_store(&ev_running, true);
	pthread_create(&noter, NULL, ev_noter, pager);
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, ev_worker, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	atomic_store(&ev_running, false);
	pthread_join(noter, NULL);
	wait_quiet(pager);
	CHECK(dcres_pager_location(pager, 1) == DCRES_PAGER_LOCAL, "a pinned page was evicted");
	dcres_pager_unpin(pager, 1);
	unsigned hot_evicted = 0;
	for (uint64_t i = 0; i < EV_HOT; i++)
		hot_evicted += dcres_pager_location(pager, i * 4) != DCRES_PAGER_LOCAL;
	CHECK(hot_evicted == 0, "%u of %u pages noted as accessed all along were evicted",
	      hot_evicted, EV_HOT);
	for (uint64_t p = 0; p < EV_PAGES; p++)
		CHECK(ev_check(p), "eviction: page %llu wrong at the end", (unsigned long long)p);
	wait_quiet(pager); /* that pass faulted too */
	dcres_pager_get_stats(pager, &st);
	uint64_t resident = 0, remote[3] = { 0 };
	for (uint64_t p = 0; p < EV_PAGES; p++) {
		uint8_t l = dcres_pager_location(pager, p);
		if (l == DCRES_PAGER_LOCAL)
			resident++;
		else if (l <= 2)
			remote[l]++;
	}
	CHECK(resident <= EV_LIMIT, "%llu pages resident, limit %u", (unsigned long long)resident,
	      EV_LIMIT);
	CHECK(st.resident == resident && st.local_limit == EV_LIMIT,
	      "stats say %llu resident (limit %llu), the table %llu",
	      (unsigned long long)st.resident, (unsigned long long)st.local_limit,
	      (unsigned long long)resident);
	CHECK(atomic_load(&ev_moved_in) == st.page_ins && atomic_load(&ev_moved_out) == st.page_outs,
	      "moves reported: %llu in, %llu out; stats: %llu in, %llu out",
	      (unsigned long long)ev_moved_in, (unsigned long long)ev_moved_out,
	      (unsigned long long)st.page_ins, (unsigned long long)st.page_outs);
	uint8_t *loc = malloc(EV_PAGES);
	CHECK(loc && dcres_pager_read_table(pager, 0, EV_PAGES, loc, NULL) == 0, "read table");
	for (uint64_t p = 0; loc && p < EV_PAGES; p++)
		CHECK(loc[p] == dcres_pager_location(pager, p), "table copy differs at %llu",
		      (unsigned long long)p);
	/* The runs of pages not resident cover exactly those, in order. */
	struct nonresident_runs runs = { .loc = loc };
	dcres_pager_for_each_nonresident(pager, note_nonresident_run, &runs);
	CHECK(!runs.wrong && runs.pages == EV_PAGES - resident,
	      "non-resident runs: %llu pages, %llu of them resident; want %llu pages",
	      (unsigned long long)runs.pages, (unsigned long long)runs.wrong,
	      (unsigned long long)(EV_PAGES - resident));
	free(loc);
	CHECK(st.page_outs > EV_PAGES && st.page_ins > EV_PAGES / 2,
	      "little paging: %llu outs, %llu ins", (unsigned long long)st.page_outs,
	      (unsigned long long)st.page_ins);
	for (unsigned s = 0; s < 2; s++) {
		struct dcres_memclient *c;
		CHECK(dcres_memclient_connect(servers[s].addr, &psk, 2000, &c) == 0, "connect");
		CHECK(dcres_memclient_attach(c, cfg.vm_uuid, cfg.size) == 0, "attach");
		CHECK(dcres_memclient_stats(c, &ms[s]) == 0, "stats");
		CHECK(ms[s].vm_pages == remote[s + 1] && remote[s + 1] > 0,
		      "server %u holds %llu pages, the table says %llu", s + 1,
		      (unsigned long long)ms[s].vm_pages, (unsigned long long)remote[s + 1]);
		struct dcres_pager_server_info si;
		CHECK(dcres_pager_server_info(pager, s + 1, &si) == 0 && si.up &&
		      si.pages == remote[s + 1], "server info of %u: %llu pages, want %llu", s + 1,
		      (unsigned long long)si.pages, (unsigned long long)remote[s + 1]);
		dcres_memclient_close(c);
	}
	/* Held eviction: pages come in, none go out, until released. */
	dcres_pager_hold_eviction(pager, true);
	for (uint64_t p = 0; p < EV_PAGES / 2; p++)
		CHECK(ev_check(p), "held eviction: page %llu wrong", (unsigned long long)p);
	struct dcres_pager_stats held;
	dcres_pager_get_stats(pager, &held);
	CHECK(held.page_outs == st.page_outs && held.resident > EV_LIMIT,
	      "eviction held, yet %llu page-outs (before %llu), %llu resident",
	      (unsigned long long)held.page_outs, (unsigned long long)st.page_outs,
	      (unsigned long long)held.resident);
	dcres_pager_hold_eviction(pager, false); /* effective at the next fault */
	for (uint64_t p = EV_PAGES / 2; p < EV_PAGES; p++)
		CHECK(ev_check(p), "released eviction: page %llu wrong", (unsigned long long)p);
	wait_quiet(pager);
	dcres_pager_get_stats(pager, &held);
	CHECK(held.page_outs > st.page_outs && held.resident <= EV_LIMIT,
	      "eviction released, yet %llu resident (limit %u)",
	      (unsigned long long)held.resident, EV_LIMIT);
	printf("pager-test: eviction (%s): %llu page-outs, %llu page-ins, %llu resident (limit %u), "
	       "servers hold %llu + %llu\n", mode, (unsigned long long)st.page_outs,
	       (unsigned long long)st.page_ins, (unsigned long long)resident, EV_LIMIT,
	       (unsigned long long)remote[1], (unsigned long long)remote[2]);
	dcres_pager_stop(pager);
	munmap(ev_region, cfg.size);
}

/* A server that stops answering (SIGSTOP) is reported lost; faults on its
 * pages wait while faults on the other server's pages are served; when it
 * answers again (SIGCONT) it is reported back and the waiting faults get
 * their pages. The page-in in flight when it froze is answered late on a
 * connection the pager gave up: the server must still have the page. */
static atomic_bool lost_reader_done;
static uint8_t *lost_region;

static void *lost_reader(void *arg)
{
	uint64_t p = (uintptr_t)arg;
	const uint64_t *w = (const uint64_t *)(lost_region + p * PAGE);

	CHECK(w[7] == word(p, 7), "page %llu wrong after its server came back",
	      (unsigned long long)p);
	atomic_store(&lost_reader_done, true);
	return NULL;
}

static void test_lost_server(uint64_t *buf)
{
	const char *addrs[2] = { servers[0].addr, servers[1].addr };
	struct dcres_pager_config cfg = {
		.size = (size_t)NPAGES * PAGE, .servers = addrs, .nservers = 2, .psk = &psk,
		.timeout_ms = 300, .on_server = on_server,
	};
	struct dcres_pager_server_info si;
	struct dcres_pager_stats st;
	struct dcres_pager *pager;
	pthread_t t;

	cfg.vm_uuid[0] = 0x10; /* a third VM */
	place_on_servers(cfg.vm_uuid, buf);
	lost_region = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	cfg.base = lost_region;
	if (dcres_pager_start(&cfg, &pager)) {
		CHECK(0, "pager start");
		return;
	}
	for (uint64_t p = 0; p < 2 * ON_SERVER; p++)
		dcres_pager_place(pager, p, (uint8_t)home(p));

	CHECK(test_memserver_stop(&servers[1]) == 0, "memory server 2 did not stop");
	pthread_create(&t, NULL, lost_reader, (void *)(uintptr_t)(ON_SERVER + 5));
	CHECK(wait_for(&lost_events[2], 5000), "a frozen server was not reported lost");
	for (uint64_t p = 0; p < 100; p++) {
		const uint64_t *w = (const uint64_t *)(lost_region + p * PAGE);
		CHECK(w[3] == word(p, 3), "page %llu of the live server wrong", (unsigned long long)p);
	}
	dcres_pager_get_stats(pager, &st);
	CHECK(st.waiting_faults >= 1, "no fault waits for the lost server");
	CHECK(dcres_pager_server_info(pager, 2, &si) == 0 && !si.up, "server 2 shown up");
	usleep(1500 * 1000); /* reconnection attempts fail meanwhile */
	CHECK(!atomic_load(&lost_reader_done), "a fault on a lost server's page was served");
	CHECK(atomic_load(&back_events[2]) == 0, "a frozen server was reported back");

	kill(servers[1].pid, SIGCONT);
	CHECK(wait_for(&back_events[2], 5000), "a server answering again was not reported back");
	pthread_join(t, NULL);
	CHECK(atomic_load(&lost_reader_done), "the waiting fault was not served");
	for (uint64_t p = ON_SERVER; p < 2 * ON_SERVER; p++) {
		const uint64_t *w = (const uint64_t *)(lost_region + p * PAGE);
		if (w[9] != word(p, 9)) {
			CHECK(0, "page %llu wrong after the server came back", (unsigned long long)p);
			break;
		}
	}
	dcres_pager_get_stats(pager, &st);
	CHECK(st.waiting_faults == 0 && st.page_ins >= ON_SERVER + 100,
	      "after the return: %llu faults waiting, %llu page-ins",
	      (unsigned long long)st.waiting_faults, (unsigned long long)st.page_ins);
	printf("pager-test: lost server: reported lost %d time(s), back %d time(s)\n",
	       atomic_load(&lost_events[2]), atomic_load(&back_events[2]));
	dcres_pager_stop(pager);
	munmap(lost_region, cfg.size);
}

/* A page-out whose answer is lost: memory server 2, the only one, freezes
 * while a batch is sent to it. The pager must keep the pages (they read
 * back intact), and once the server is back each page must be in exactly
 * one place: the server holds exactly what the table says it does. */
static void test_lost_page_out(void)
{
	const char *addrs[1] = { servers[1].addr };
	struct dcres_pager_config cfg = {
		.size = 1025 * PAGE, .servers = addrs, .nservers = 1, .psk = &psk,
		.timeout_ms = 300, .local_limit_pages = 256, .on_server = on_server,
	};
	struct dcres_pager *pager;
	struct dcres_memclient *c;
	struct dcres_memstats ms;
	uint64_t held = 0;
	uint8_t *r;

	cfg.vm_uuid[0] = 0x20; /* a VM of its own */
	atomic_store(&lost_events[1], 0);
	atomic_store(&back_events[1], 0);
	r = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (uint64_t p = 0; p < 1024; p++) /* resident, 4x the limit */
		((uint64_t *)(r + p * PAGE))[5] = word(p, 5);
	cfg.base = r;
	if (dcres_pager_start(&cfg, &pager)) {
		CHECK(0, "pager start");
		return;
	}
	CHECK(test_memserver_stop(&servers[1]) == 0, "memory server 2 did not stop");
	r[1024 * PAGE] = 1; /* a fault, after which the pager evicts */
	CHECK(wait_for(&lost_events[1], 5000), "a server frozen during a page-out not reported lost");
	kill(servers[1].pid, SIGCONT);
	CHECK(wait_for(&back_events[1], 5000), "the server was not reported back");
	r[1024 * PAGE] = 2; /* evictions go on */
	for (uint64_t p = 0; p < 1024; p++)
		if (((uint64_t *)(r + p * PAGE))[5] != word(p, 5)) {
			CHECK(0, "page %llu lost by a page-out without answer", (unsigned long long)p);
			break;
		}
	for (uint64_t p = 0; p < 1025; p++)
		held += dcres_pager_location(pager, p) == 1;
	CHECK(dcres_memclient_connect(servers[1].addr, &psk, 2000, &c) == 0 &&
	      dcres_memclient_attach(c, cfg.vm_uuid, cfg.size) == 0 &&
	      dcres_memclient_stats(c, &ms) == 0, "stats of server 2");
	CHECK(ms.vm_pages == held, "after a page-out without answer, the server holds %llu "
	      "pages, the table says %llu", (unsigned long long)ms.vm_pages,
	      (unsigned long long)held);
	printf("pager-test: page-out without answer: settled, server holds %llu pages\n",
	       (unsigned long long)held);
	dcres_memclient_close(c);
	dcres_pager_stop(pager);
	munmap(r, cfg.size);
}

/* The fill's source: page p's word i is word(p, i) ^ FILL_MARK; page
 * FILL_BAD (when failing) cannot be read. */
#define FILL_MARK 0xf111ull
#define FILL_BAD 300u
static _Atomic uint64_t fill_fetched;
static bool fill_failing;
static bool fill_damaged;           /* page FILL_BAD fails its check */
static _Atomic uint64_t page_errors, page_error_page;

/* on_page_error: counts the reports. */
static void on_page_error(void *opaque, uint64_t page, const char *why)
{
	(void)opaque;
	fprintf(stderr, "pager-test: (expected) page %llu: %s\n", (unsigned long long)page, why);
	atomic_store(&page_error_page, page);
	atomic_fetch_add(&page_errors, 1);
}

static int fill_fetch(void *opaque, const uint64_t *pages, size_t n, void *buf, char *err,
		      size_t err_len)
{
	(void)opaque;
	for (size_t i = 0; i < n; i++) {
		uint64_t *w = (uint64_t *)((uint8_t *)buf + i * PAGE);
		if (fill_failing && pages[i] == FILL_BAD) {
			snprintf(err, err_len, "(expected) fetch of page %u fails", FILL_BAD);
			return -EIO;
		}
		if (fill_damaged && pages[i] == FILL_BAD) {
			snprintf(err, err_len, "(expected) page %u is corrupted", FILL_BAD);
			return -EBADMSG;
		}
		for (unsigned j = 0; j < PAGE / 8; j++)
			w[j] = word(pages[i], j) ^ FILL_MARK;
	}
	atomic_fetch_add(&fill_fetched, n);
	return 0;
}

static void test_fill(void)
{
	const char *addrs[1] = { servers[0].addr };
	struct dcres_pager_config cfg = {
		.size = 1024 * PAGE, .servers = addrs, .nservers = 1, .psk = &psk,
		.timeout_ms = 2000,
	};
	struct dcres_pager_stats st;
	struct dcres_pager *pager;
	uint64_t list[600], *data;
	uint8_t *r;

	cfg.vm_uuid[0] = 0x30; /* a VM of its own */
	r = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.base = r;
	if (dcres_pager_start(&cfg, &pager)) {
		CHECK(0, "pager start");
		return;
	}
	/* Pages 900..909 on the server; 0..599 filled, from the last to the
	 * first; the rest never written. */
	if (posix_memalign((void **)&data, PAGE, 10 * PAGE) == 0) {
		uint64_t pages[10];
		struct dcres_memclient *c;
		for (unsigned i = 0; i < 10; i++) {
			pages[i] = 900 + i;
			for (unsigned j = 0; j < PAGE / 8; j++)
				data[i * PAGE / 8 + j] = word(900 + i, j);
		}
		CHECK(dcres_memclient_connect(servers[0].addr, &psk, 2000, &c) == 0 &&
		      dcres_memclient_attach(c, cfg.vm_uuid, cfg.size) == 0 &&
		      dcres_memclient_page_out(c, pages, data, 10) == 0, "pages onto the server");
		dcres_memclient_close(c);
		for (unsigned i = 0; i < 10; i++)
			CHECK(dcres_pager_place(pager, 900 + i, 1) == 0, "place");
		free(data);
	}
	for (unsigned i = 0; i < 600; i++)
		list[i] = 599 - i;
	CHECK(dcres_pager_fill_start(pager, list, 600, fill_fetch, NULL) == 0, "fill start");
	CHECK(dcres_pager_fill_start(pager, list, 1, fill_fetch, NULL) == -EBUSY,
	      "a second fill accepted while one runs");
	/* Before go, only a touch loads a page. */
	CHECK(((uint64_t *)(r + 5 * PAGE))[7] == (word(5, 7) ^ FILL_MARK), "page 5 wrong on touch");
	usleep(100 * 1000);
	dcres_pager_get_stats(pager, &st);
	CHECK(st.fill_loaded == 1 && st.fill_faults == 1 && st.fill_pending == 599,
	      "before go: %llu loaded (%llu on a fault), %llu pending",
	      (unsigned long long)st.fill_loaded, (unsigned long long)st.fill_faults,
	      (unsigned long long)st.fill_pending);
	CHECK(dcres_pager_fill_go(pager) == 0, "fill go");
	CHECK(dcres_pager_fill_wait(pager) == 0, "fill failed");
	for (uint64_t p = 0; p < 1024; p++) {
		uint64_t w = ((uint64_t *)(r + p * PAGE))[11];
		uint64_t want = p < 600 ? word(p, 11) ^ FILL_MARK : p >= 900 && p < 910 ? word(p, 11) : 0;
		if (w != want) {
			CHECK(0, "page %llu: %#llx after the fill, want %#llx", (unsigned long long)p,
			      (unsigned long long)w, (unsigned long long)want);
			break;
		}
	}
	dcres_pager_get_stats(pager, &st);
	CHECK(st.fill_loaded == 600 && st.fill_pending == 0 && st.fill_error == 0,
	      "fill stats: %llu loaded, %llu pending", (unsigned long long)st.fill_loaded,
	      (unsigned long long)st.fill_pending);
	CHECK(atomic_load(&fill_fetched) == 600, "%llu pages fetched for 600 filled",
	      (unsigned long long)atomic_load(&fill_fetched));
	CHECK(st.page_ins == 10, "%llu page-ins beside the fill", (unsigned long long)st.page_ins);
	CHECK(dcres_pager_location(pager, 0) == DCRES_PAGER_LOCAL, "a filled page is not local");
	dcres_pager_stop(pager);
	munmap(r, cfg.size);

	/* A source that cannot be read stops the fill with its error. */
	r = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.base = r;
	cfg.vm_uuid[0] = 0x31;
	fill_failing = true;
	if (dcres_pager_start(&cfg, &pager) == 0) {
		for (unsigned i = 0; i < 600; i++)
			list[i] = i;
		CHECK(dcres_pager_fill_start(pager, list, 600, fill_fetch, NULL) == 0 &&
		      dcres_pager_fill_go(pager) == 0, "fill start");
		CHECK(dcres_pager_fill_wait(pager) == -EIO, "an unreadable page did not fail the fill");
		dcres_pager_get_stats(pager, &st);
		CHECK(st.fill_error == -EIO && st.fill_pending > 0, "a failed fill's stats");
		dcres_pager_stop(pager);
	}
	fill_failing = false;
	munmap(r, cfg.size);

	/* A page whose data fails its check is left out and reported; the
	 * others load. */
	r = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg.base = r;
	cfg.vm_uuid[0] = 0x32;
	cfg.on_page_error = on_page_error;
	fill_damaged = true;
	if (dcres_pager_start(&cfg, &pager) == 0) {
		for (unsigned i = 0; i < 600; i++)
			list[i] = i;
		CHECK(dcres_pager_fill_start(pager, list, 600, fill_fetch, NULL) == 0 &&
		      dcres_pager_fill_go(pager) == 0, "fill start");
		CHECK(dcres_pager_fill_wait(pager) == -EBADMSG, "a damaged page did not show");
		dcres_pager_get_stats(pager, &st);
		CHECK(st.fill_error == 0 && st.fill_pending == 1 && st.fill_bad == 1 &&
		      st.fill_loaded == 599, "stats with a damaged page: %llu loaded, %llu "
		      "pending, %llu bad", (unsigned long long)st.fill_loaded,
		      (unsigned long long)st.fill_pending, (unsigned long long)st.fill_bad);
		CHECK(atomic_load(&page_errors) == 1 && atomic_load(&page_error_page) == FILL_BAD,
		      "%llu page errors reported", (unsigned long long)atomic_load(&page_errors));
		CHECK(((uint64_t *)(r + 301 * PAGE))[3] == (word(301, 3) ^ FILL_MARK),
		      "the page after the damaged one is wrong");
		CHECK(dcres_pager_location(pager, FILL_BAD) == DCRES_PAGER_FILL,
		      "the damaged page was installed");
		dcres_pager_stop(pager);
	}
	fill_damaged = false;
	munmap(r, cfg.size);
	printf("pager-test: fill: 600 pages loaded in the background and on touch; a damaged "
	       "page left out\n");
}

int main(int argc, char **argv)
{
	char key[200], dir[200];
	struct dcres_pager *pager;
	struct dcres_pager_stats st;
	struct dcres_memstats ms;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: pager-test PATH_TO_DCRES_MEMSERVER\n");
		return 2;
	}
	if (!test_uffd_available()) {
		printf("SKIP: userfaultfd unavailable (needs root or vm.unprivileged_userfaultfd=1)\n");
		return 77;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/var/tmp/dcres-pager-test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(key, sizeof(key), "%s/psk", tmpdir);
	if (test_write_key(key, &psk))
		finish();
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/store%d", tmpdir, i + 1);
		ret = test_memserver_start(&servers[i], argv[1], "16M", dir, key, &psk);
		CHECK(ret == 0, "memory server %d: %s", i + 1, strerror(-ret));
		if (ret)
			finish();
	}

	/* Place pages 0..999 on server 1 and 1000..1999 on server 2. */
	uint64_t *buf;
	if (posix_memalign((void **)&buf, PAGE, ON_SERVER * PAGE))
		finish();
	place_on_servers(uuid, buf);

	region = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const char *addrs[2] = { servers[0].addr, servers[1].addr };
	struct dcres_pager_config cfg = {
		.base = region, .size = (size_t)NPAGES * PAGE, .servers = addrs,
		.nservers = 2, .psk = &psk, .timeout_ms = 2000,
	};
	memcpy(cfg.vm_uuid, uuid, 16);

	/* Start-up failures name the server. */
	const char *bad[2] = { servers[0].addr, "127.0.0.1:1" };
	cfg.servers = bad;
	CHECK(dcres_pager_start(&cfg, &pager) == -ECONNREFUSED,
	      "an unreachable server must fail start-up");
	struct dcres_psk wrong = psk;
	wrong.key[3] ^= 1;
	cfg.servers = addrs;
	cfg.psk = &wrong;
	CHECK(dcres_pager_start(&cfg, &pager) == -EACCES, "a wrong key must fail start-up");
	cfg.psk = &psk;

	ret = dcres_pager_start(&cfg, &pager);
	CHECK(ret == 0, "pager start: %s", strerror(-ret));
	if (ret)
		finish();
	for (uint64_t p = 0; p < 2 * ON_SERVER; p++)
		CHECK(dcres_pager_place(pager, p, (uint8_t)home(p)) == 0, "place");
	CHECK(dcres_pager_place(pager, 0, 3) == -EINVAL, "a third server accepted");

	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader, (void *)(i + 1));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* Touch every page once more, writing, and check the first word. */
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t *w = (uint64_t *)(region + p * PAGE);
		CHECK(w[1] == (home(p) ? word(p, 1) : 0), "page %llu wrong on second pass",
		      (unsigned long long)p);
		w[0] = ~p;
		CHECK(dcres_pager_location(pager, p) == DCRES_PAGER_LOCAL, "page %llu not local",
		      (unsigned long long)p);
	}
	dcres_pager_get_stats(pager, &st);
	CHECK(st.page_ins == 2 * ON_SERVER, "%llu page-ins, want %u",
	      (unsigned long long)st.page_ins, 2 * ON_SERVER);
	CHECK(st.zero_fills == NPAGES - 2 * ON_SERVER, "%llu zero fills, want %u",
	      (unsigned long long)st.zero_fills, NPAGES - 2 * ON_SERVER);
	printf("pager-test: page-in service time p50 %llu us, p99 %llu us\n",
	       (unsigned long long)st.fault_us_p50, (unsigned long long)st.fault_us_p99);
	dcres_pager_stop(pager);

	/* The servers released every page that was paged in. */
	for (unsigned s = 0; s < 2; s++) {
		struct dcres_memclient *c;
		CHECK(dcres_memclient_connect(servers[s].addr, &psk, 2000, &c) == 0, "connect");
		CHECK(dcres_memclient_attach(c, uuid, (uint64_t)NPAGES * PAGE) == 0, "attach");
		CHECK(dcres_memclient_stats(c, &ms) == 0 && ms.vm_pages == 0,
		      "server %u still holds %llu pages", s + 1, (unsigned long long)ms.vm_pages);
		dcres_memclient_close(c);
	}
	test_lost_server(buf);
	free(buf);
	test_eviction(false);
	test_eviction(true);
	test_lost_page_out();
	test_fill();
	finish();
}
