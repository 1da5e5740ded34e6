/* libdcres-mainckpt against a real pager and two real memory servers on
 * loopback, without QEMU: this test plays the migration's part (it saves
 * the resident pages into its own "main.mem" and re-saves dirty ones)
 * while a guest thread writes pages at random, faulting remote ones in and
 * pushing others out past the local limit. After the stop point, commit
 * and more guest writes, every page written before the stop point must be
 * in exactly one file (its main.mem, host-1's, host-2's), with its content
 * at the stop point, and main.loc must say which. Also: a page paged in
 * after the last pass fails the stop point naming it; a directory outside
 * the servers' root is refused; a server stopped before the stop point
 * fails the checkpoint at its final; a server killed mid-checkpoint fails the
 * check naming it, and the other server's partial file is removed.
 * usage: mainckpt-test PATH_TO_DCRES_MEMSERVER (exit 77: no userfaultfd) */
#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt-build.h"
#include "dcres/loctable.h"
#include "dcres/mainckpt.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "memserver-spawn.h"

#define PAGE 4096u
#define NPAGES 4096u
#define WRITTEN 3072u     /* pages the guest writes: 0..WRITTEN-1 */
#define LOCAL_LIMIT 1024u /* resident pages allowed on the main host */

static int failures;
static char tmpdir[128];
static struct test_memserver servers[2];
static struct dcres_psk psk;
static const uint8_t uuid[16] = { 0x3c, 0x4b, 9 };

static uint8_t *region;
static struct dcres_pager *pager;
static _Atomic uint32_t version[NPAGES];  /* 0: never written */
static _Atomic uint64_t dirty[NPAGES / 64]; /* written since the last pass */
static _Atomic uint64_t main_bmap[NPAGES / 64]; /* pages in "main.mem" */
static uint8_t *main_buf;                  /* "main.mem"'s pages */
static atomic_bool guest_running;
static unsigned hot_pages = WRITTEN;       /* the guest rewrites 0..hot_pages-1 */
static _Atomic uint64_t c1_bmap[NPAGES / 64]; /* test_live's "main.mem", kept */
static uint8_t *c1_buf;

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
	printf("mainckpt-test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	exit(failures ? 1 : 0);
}

static void bit_set(_Atomic uint64_t *b, uint64_t i) { atomic_fetch_or(&b[i / 64], 1ull << (i % 64)); }
static void bit_clear(_Atomic uint64_t *b, uint64_t i) { atomic_fetch_and(&b[i / 64], ~(1ull << (i % 64))); }
static bool bit_test(_Atomic uint64_t *b, uint64_t i) { return atomic_load(&b[i / 64]) >> (i % 64) & 1; }

/* dir's main.mem, as begin takes it (a static buffer). */
static const char *main_mem(const char *dir)
{
	static char path[400];

	snprintf(path, sizeof(path), "%s/main.mem", dir);
	return path;
}

/* Page p's content at version v: every fifth version the guest zeroes
 * the page. */
static void fill(uint8_t *dst, uint64_t p, uint32_t v)
{
	if (v % 5 == 0) {
		memset(dst, 0, PAGE);
		return;
	}
	memset(dst, (int)((p * 7 + v) & 0xff), PAGE);
	memcpy(dst, &p, sizeof(p));
	memcpy(dst + 8, &v, sizeof(v));
}

static bool same(const uint8_t *got, uint64_t p, uint32_t v)
{
	static _Thread_local uint8_t want[PAGE];

	fill(want, p, v);
	return memcmp(got, want, PAGE) == 0;
}

/* Writes page p's next version into the region (faulting it in if it is
 * remote), then marks it dirty, as a vCPU and the dirty log do. */
static void guest_write(uint64_t p)
{
	static _Thread_local uint8_t buf[PAGE];
	uint32_t v = atomic_load(&version[p]) + 1;

	fill(buf, p, v);
	memcpy(region + p * PAGE, buf, PAGE);
	atomic_store(&version[p], v);
	bit_set(dirty, p);
	dcres_pager_note_access(pager, p); /* QEMU notes its dirty log */
}

/* The guest: rewrites random pages of 0..WRITTEN-1 until stopped. */
static void *guest_main(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (atomic_load(&guest_running)) {
		for (int i = 0; i < 64; i++)
			guest_write((uint64_t)rand_r(&seed) % hot_pages);
		usleep(500);
	}
	return NULL;
}

static void start_guest(pthread_t *t, unsigned seed)
{
	atomic_store(&guest_running, true);
	if (pthread_create(t, NULL, guest_main, (void *)(uintptr_t)seed)) {
		CHECK(0, "cannot start the guest thread");
		finish();
	}
}

static void stop_guest(pthread_t t)
{
	atomic_store(&guest_running, false);
	pthread_join(t, NULL);
}

/* cfg.left_main: the page's copy in "main.mem" no longer counts. */
static void left_main(void *opaque, uint64_t page)
{
	(void)opaque;
	bit_clear(main_bmap, page);
}

static void mark_dirty(void *opaque, uint64_t page)
{
	(void)opaque;
	bit_set(dirty, page);
}

/* One pass of the migration: pages paged in become dirty, then every
 * dirty page resident here is saved into "main.mem" (pinned while read,
 * its bit set first, as QEMU's mapped-ram does). */
static void save_pass(struct dcres_mainckpt *ck)
{
	dcres_mainckpt_take_paged_in(ck, mark_dirty, NULL);
	for (uint64_t w = 0; w < NPAGES / 64; w++) {
		uint64_t bits = atomic_exchange(&dirty[w], 0);
		for (; bits; bits &= bits - 1) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (dcres_pager_pin(pager, p))
				continue; /* on a server: it saves the page */
			bit_set(main_bmap, p);
			memcpy(main_buf + p * PAGE, region + p * PAGE, PAGE);
			dcres_pager_unpin(pager, p);
		}
	}
}

static bool partial_exists(const char *dir, unsigned id)
{
	char pattern[400];
	glob_t g;
	bool found;

	snprintf(pattern, sizeof(pattern), "%s/host-%u.mem.partial.*", dir, id);
	found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
	globfree(&g);
	return found;
}

/* Every page written before the stop point (at_stop) is in exactly one of
 * "main.mem", host-1.mem and host-2.mem of dir, with that content, and
 * main.loc names where. */
static void check_exactly_once(const char *dir, const uint32_t *at_stop)
{
	struct dcres_memfile *mf[2] = { NULL, NULL };
	struct dcres_presence pres[2] = { { 0 }, { 0 } };
	struct dcres_loctable t = { 0 };
	uint64_t wrong_count = 0, wrong_content = 0, wrong_loc = 0, on_main = 0, on_srv = 0;
	static _Alignas(4096) uint8_t buf[PAGE];
	char path[400];

	for (unsigned k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/host-%u.mem", dir, k + 1);
		CHECK(dcres_memfile_open(path, &mf[k]) == 0, "open %s", path);
		snprintf(path, sizeof(path), "%s/host-%u.present", dir, k + 1);
		CHECK(dcres_presence_read(path, &pres[k]) == 0, "read %s", path);
	}
	snprintf(path, sizeof(path), "%s/main.loc", dir);
	CHECK(dcres_loctable_read(path, &t) == 0, "read %s", path);
	if (!mf[0] || !mf[1] || !pres[0].bits || !pres[1].bits || !t.host)
		finish();
	for (uint64_t p = 0; p < NPAGES; p++) {
		bool in_main = bit_test(main_bmap, p);
		bool in[2] = { dcres_presence_test(&pres[0], p), dcres_presence_test(&pres[1], p) };
		unsigned copies = in_main + in[0] + in[1];

		if (at_stop[p] == 0) {
			wrong_count += copies != 0;
			wrong_loc += t.host[p] != DCRES_LOC_ZERO;
			continue;
		}
		if (copies != 1) {
			if (wrong_count++ < 5)
				fprintf(stderr, "page %llu: %u copies (main %d, host-1 %d, host-2 %d)\n",
					(unsigned long long)p, copies, in_main, in[0], in[1]);
			continue;
		}
		const uint8_t *got = buf;
		if (in_main)
			got = main_buf + p * PAGE;
		else
			CHECK(dcres_memfile_read_pages(mf[in[1]], &p, buf, 1) == 0, "read page");
		if (!same(got, p, at_stop[p]) && wrong_content++ < 5)
			fprintf(stderr, "page %llu: not its content at the stop point (version %u)\n",
				(unsigned long long)p, at_stop[p]);
		uint8_t want = in_main ? DCRES_LOC_MAIN : in[0] ? 1 : 2;
		wrong_loc += t.host[p] != want;
		on_main += in_main;
		on_srv += !in_main;
	}
	CHECK(wrong_count == 0, "%llu pages not in exactly one file", (unsigned long long)wrong_count);
	CHECK(wrong_content == 0, "%llu pages with the wrong content",
	      (unsigned long long)wrong_content);
	CHECK(wrong_loc == 0, "main.loc places %llu pages wrongly", (unsigned long long)wrong_loc);
	CHECK(on_main > 0 && on_srv > 0, "pages: %llu in main.mem, %llu on servers",
	      (unsigned long long)on_main, (unsigned long long)on_srv);
	for (unsigned k = 0; k < 2; k++) {
		dcres_memfile_close(mf[k]);
		dcres_presence_free(&pres[k]);
	}
	dcres_loctable_free(&t);
}

/* The end of a live checkpoint, as QEMU goes about it: converges (the
 * servers' pending pages counted), stops the guest, saves the last pass,
 * notes every page's version then (at_stop) and passes the stop point;
 * the test ends if that fails. */
static void stop_at_stop_point(struct dcres_mainckpt *ck, pthread_t guest,
			       const struct dcres_mapped_ram *geo, uint32_t *at_stop)
{
	char err[512];
	int ret;

	for (int i = 0; i < 100 && dcres_mainckpt_pending(ck, true) >= DCRES_MAINCKPT_NOT_YET; i++)
		usleep(50 * 1000);
	CHECK(dcres_mainckpt_pending(ck, true) < DCRES_MAINCKPT_NOT_YET,
	      "the servers did not catch up");
	stop_guest(guest); /* the VM stops */
	save_pass(ck);
	for (uint64_t p = 0; p < NPAGES; p++)
		at_stop[p] = atomic_load(&version[p]);
	ret = dcres_mainckpt_stop_point(ck, geo, err, sizeof(err));
	CHECK(ret == 0, "stop point: %s", err);
	if (ret)
		finish();
}

/* 1. A live checkpoint while the guest writes and pages move. */
static void test_live(struct dcres_mainckpt *ck, const struct dcres_mapped_ram *geo)
{
	static uint32_t at_stop[NPAGES];
	struct dcres_pager_stats before, after;
	char dir[300], err[512];
	pthread_t guest;
	int ret;

	/* Every page of the working set written once: most live on servers. */
	for (uint64_t p = 0; p < WRITTEN; p++)
		guest_write(p);
	snprintf(dir, sizeof(dir), "%s/c1", tmpdir);
	mkdir(dir, 0700);
	memset(dirty, 0, sizeof(dirty));
	for (uint64_t w = 0; w < NPAGES / 64; w++)
		atomic_store(&dirty[w], ~0ull); /* migration starts with all dirty */
	dcres_pager_get_stats(pager, &before);
	ret = dcres_mainckpt_begin(ck, main_mem(dir), NULL, err, sizeof(err));
	CHECK(ret == 0, "begin: %s", err);
	if (ret)
		finish();
	CHECK(partial_exists(dir, 1) && partial_exists(dir, 2),
	      "the servers did not begin writing into %s", dir);
	start_guest(&guest, 1);
	for (int pass = 0; pass < 20; pass++) {
		CHECK(dcres_mainckpt_check(ck, pass % 5 == 0, err, sizeof(err)) == 0, "check: %s", err);
		save_pass(ck);
		usleep(50 * 1000);
	}
	stop_at_stop_point(ck, guest, geo, at_stop);
	dcres_pager_get_stats(pager, &after);
	CHECK(after.page_ins > before.page_ins + 100 && after.page_outs > before.page_outs + 100,
	      "too few pages moved during the checkpoint (%llu in, %llu out): the test "
	      "proves nothing", (unsigned long long)(after.page_ins - before.page_ins),
	      (unsigned long long)(after.page_outs - before.page_outs));
	/* The VM runs again at once, while the servers' finals may still be
	 * under way and while the checkpoint is made durable: its moves must
	 * not change it. */
	start_guest(&guest, 2);
	CHECK(dcres_mainckpt_commit(ck) == 0, "commit");
	ret = dcres_mainckpt_wait(ck, err, sizeof(err));
	CHECK(ret == 0, "commit: %s", err);
	usleep(200 * 1000);
	stop_guest(guest);
	struct dcres_mainckpt_status st;
	dcres_mainckpt_status(ck, &st);
	CHECK(st.state == DCRES_MAINCKPT_DURABLE && !strcmp(st.dir, dir), "status %d %s", st.state,
	      st.dir);
	CHECK(dcres_mainckpt_server_bytes(ck, 1) > 0 && dcres_mainckpt_server_bytes(ck, 2) > 0,
	      "servers report %llu and %llu bytes written",
	      (unsigned long long)dcres_mainckpt_server_bytes(ck, 1),
	      (unsigned long long)dcres_mainckpt_server_bytes(ck, 2));
	check_exactly_once(dir, at_stop);
	for (uint64_t w = 0; w < NPAGES / 64; w++)
		atomic_store(&c1_bmap[w], atomic_load(&main_bmap[w]));
	memcpy(c1_buf, main_buf, (size_t)NPAGES * PAGE);
	ret = dcres_mainckpt_begin(ck, main_mem(dir), NULL, err, sizeof(err));
	CHECK(ret != 0 && strstr(err, "host-1.mem"), "a second checkpoint into %s: %d %s", dir,
	      ret, err);
}

static void *read_page(void *page)
{
	(void)*(volatile uint8_t *)(region + (uintptr_t)page * PAGE);
	return NULL;
}

/* Starts a thread reading a page that lives on server k; false if none
 * does. */
static bool start_reader_on(uint8_t k, pthread_t *t)
{
	for (uint64_t p = 0; p < NPAGES; p++)
		if (dcres_pager_location(pager, p) == k)
			return pthread_create(t, NULL, read_page, (void *)(uintptr_t)p) == 0;
	return false;
}

static int fetch_pattern(void *opaque, const uint64_t *pages, size_t n, void *buf,
			 char *err, size_t err_len)
{
	(void)err;
	(void)err_len;
	(void)opaque;
	for (size_t i = 0; i < n; i++)
		fill((uint8_t *)buf + i * PAGE, pages[i], 7);
	return 0;
}

/* 7. No checkpoint begins while restored pages are still loading (a
 * fill not yet let go): they are neither here nor on a server. */
static void test_fill_pending(struct dcres_mainckpt *ck)
{
	char err[512];
	uint64_t p = 0;
	int ret;

	while (p < NPAGES && dcres_pager_location(pager, p) != DCRES_PAGER_ZERO)
		p++;
	ret = p < NPAGES ? dcres_pager_fill_start(pager, &p, 1, fetch_pattern, NULL) : -ENOENT;
	CHECK(ret == 0, "fill of a never-written page: %d", ret);
	if (ret)
		return;
	ret = dcres_mainckpt_begin(ck, main_mem(tmpdir), NULL, err, sizeof(err));
	CHECK(ret == -EBUSY && strstr(err, "still loading"), "begin during a fill: %d \"%s\"",
	      ret, err);
	CHECK(dcres_pager_fill_go(pager) == 0 && dcres_pager_fill_wait(pager) == 0, "fill");
	CHECK(same(region + p * PAGE, p, 7), "page %llu was not filled", (unsigned long long)p);
}

/* Makes tmpdir/name (its path into dir) and begins a checkpoint into it;
 * the test ends if that fails. */
static void begin_into(struct dcres_mainckpt *ck, const char *name, char *dir, size_t len)
{
	char err[512];
	int ret;

	snprintf(dir, len, "%s/%s", tmpdir, name);
	mkdir(dir, 0700);
	ret = dcres_mainckpt_begin(ck, main_mem(dir), NULL, err, sizeof(err));
	CHECK(ret == 0, "begin into %s: %s", dir, err);
	if (ret)
		finish();
}

/* 2. A page paged in after the last pass fails the stop point. */
static void test_late_page(struct dcres_mainckpt *ck, const struct dcres_mapped_ram *geo)
{
	char dir[300], err[512];
	uint64_t late = NPAGES;
	int ret;

	begin_into(ck, "late", dir, sizeof(dir));
	save_pass(ck);
	for (uint64_t p = 0; p < WRITTEN && late == NPAGES; p++)
		if (dcres_pager_location(pager, p) != DCRES_PAGER_LOCAL)
			late = p;
	CHECK(late < NPAGES, "no remote page");
	(void)*(volatile uint8_t *)(region + late * PAGE); /* paged in, not taken */
	ret = dcres_mainckpt_stop_point(ck, geo, err, sizeof(err));
	char want[64];
	snprintf(want, sizeof(want), "guest page %llu ", (unsigned long long)late);
	CHECK(ret != 0 && strstr(err, want), "stop point after a late page-in: %d %s", ret, err);
	dcres_mainckpt_abort(ck, err);
	CHECK(!partial_exists(dir, 1) && !partial_exists(dir, 2), "abort left partial files");
}

/* Reads dir's main.loc into t; the test ends if it cannot. */
static void read_loc(const char *dir, struct dcres_loctable *t)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/main.loc", dir);
	if (dcres_loctable_read(path, t)) {
		CHECK(0, "read %s", path);
		finish();
	}
}

/* Layer of a chain: "main.mem" (bmap, buf) and the servers' files of dir. */
struct layer {
	_Atomic uint64_t *bmap;
	const uint8_t *buf;
	struct dcres_memfile *mf[2];
	struct dcres_presence pres[2];
	uint64_t pages;
};

static void layer_open(struct layer *l, const char *dir, _Atomic uint64_t *bmap,
		       const uint8_t *buf)
{
	char path[400];

	memset(l, 0, sizeof(*l));
	l->bmap = bmap;
	l->buf = buf;
	for (unsigned k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/host-%u.mem", dir, k + 1);
		CHECK(dcres_memfile_open(path, &l->mf[k]) == 0, "open %s", path);
		snprintf(path, sizeof(path), "%s/host-%u.present", dir, k + 1);
		CHECK(dcres_presence_read(path, &l->pres[k]) == 0, "read %s", path);
		if (!l->mf[k] || !l->pres[k].bits)
			finish();
		l->pages += dcres_presence_count(&l->pres[k]);
	}
	for (uint64_t p = 0; p < NPAGES; p++)
		l->pages += bit_test(bmap, p);
}

static void layer_close(struct layer *l)
{
	for (unsigned k = 0; k < 2; k++) {
		dcres_memfile_close(l->mf[k]);
		dcres_presence_free(&l->pres[k]);
	}
}

/* Copies of page p in layer l (at most one expected), its content in buf. */
static unsigned layer_get(struct layer *l, uint64_t p, uint8_t *buf)
{
	unsigned copies = 0;

	if (bit_test(l->bmap, p)) {
		memcpy(buf, l->buf + p * PAGE, PAGE);
		copies++;
	}
	for (unsigned k = 0; k < 2; k++)
		if (dcres_presence_test(&l->pres[k], p) &&
		    dcres_memfile_read_pages(l->mf[k], &p, buf, 1) == 0)
			copies++;
	return copies;
}

/* Writes the "main.mem" saved so far into dir/main.mem as QEMU's
 * mapped-ram does with zero-page detection: a saved page that is all
 * zeros gets no bit and no data. */
static void write_main_file(const char *dir, const struct dcres_mapped_ram *geo)
{
	static const uint8_t zero[PAGE];
	struct dcres_mrfile f;

	test_ckpt_empty_main(main_mem(dir), geo);
	CHECK(dcres_mrfile_open(main_mem(dir), geo, true, &f) == 0, "open %s", main_mem(dir));
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (!bit_test(main_bmap, p) || !memcmp(main_buf + p * PAGE, zero, PAGE))
			continue;
		CHECK(dcres_mrfile_write_pages(&f, p, main_buf + p * PAGE, 1) == 0, "page %llu",
		      (unsigned long long)p);
		dcres_mrfile_set(&f, p);
	}
	CHECK(dcres_mrfile_write_bitmap(&f) == 0, "bitmap of %s", main_mem(dir));
	dcres_mrfile_close(&f);
}

/* Reads dir/main.mem back into the "main.mem" (bits and pages). */
static void read_main_file(const char *dir, const struct dcres_mapped_ram *geo)
{
	struct dcres_mrfile f;

	CHECK(dcres_mrfile_open(main_mem(dir), geo, false, &f) == 0, "open %s", main_mem(dir));
	for (uint64_t p = 0; p < NPAGES; p++) {
		bit_clear(main_bmap, p);
		if (!dcres_mrfile_test(&f, p))
			continue;
		bit_set(main_bmap, p);
		CHECK(dcres_mrfile_read_pages(&f, p, main_buf + p * PAGE, 1) == 0, "page %llu",
		      (unsigned long long)p);
	}
	dcres_mrfile_close(&f);
}

static void clear_dirty_run(void *opaque, uint64_t first, uint64_t n)
{
	(void)opaque;
	for (uint64_t p = first; p < first + n; p++)
		bit_clear(dirty, p);
}

/* 8. An incremental checkpoint on test_live's (c1, still the last durable
 * one: test_late_page's failed at its stop point), live, the guest
 * rewriting a hot set while pages move: at its stop point every written
 * page is in the increment (once) or, unchanged, in c1, with its content
 * then; the increment holds fewer pages; its main.loc names c1. A parent
 * that is not the last durable checkpoint is refused. */
static void test_incremental(struct dcres_mainckpt *ck, const struct dcres_mapped_ram *geo)
{
	static uint32_t at_stop[NPAGES];
	static _Alignas(4096) uint8_t buf[PAGE];
	char c1[300], dir[300], err[512];
	struct dcres_loctable t1, t;
	struct layer inc, base;
	uint64_t wrong_count = 0, wrong_content = 0, from_base = 0;
	uint8_t other[16] = { 0x5e };
	pthread_t guest;
	int ret;

	snprintf(c1, sizeof(c1), "%s/c1", tmpdir);
	read_loc(c1, &t1);
	snprintf(dir, sizeof(dir), "%s/inc", tmpdir);
	mkdir(dir, 0700);
	ret = dcres_mainckpt_begin(ck, main_mem(dir), other, err, sizeof(err));
	CHECK(ret == -ESTALE && strstr(err, "not this VM's last"), "a stranger parent: %d \"%s\"",
	      ret, err);
	ret = dcres_mainckpt_begin(ck, main_mem(dir), t1.ckpt_id, err, sizeof(err));
	CHECK(ret == 0, "incremental begin on c1: %s", err);
	if (ret)
		finish();
	/* The first pass: all dirty, less what c1 holds unchanged. */
	memset(main_bmap, 0, sizeof(main_bmap));
	for (uint64_t w = 0; w < NPAGES / 64; w++)
		atomic_store(&dirty[w], ~0ull);
	dcres_mainckpt_for_each_unchanged(ck, clear_dirty_run, NULL);
	hot_pages = WRITTEN / 8;
	start_guest(&guest, 3);
	for (int pass = 0; pass < 10; pass++) {
		save_pass(ck);
		usleep(50 * 1000);
	}
	stop_at_stop_point(ck, guest, geo, at_stop);
	hot_pages = WRITTEN;
	/* The migration's end: QEMU's main.mem, zero pages left out. The
	 * commit must write those that changed since c1 as zero pages. */
	write_main_file(dir, geo);
	CHECK(dcres_mainckpt_commit(ck) == 0 && dcres_mainckpt_wait(ck, err, sizeof(err)) == 0,
	      "commit of the increment: %s", err);
	read_main_file(dir, geo);

	read_loc(dir, &t);
	CHECK(t.has_parent && !memcmp(t.parent_id, t1.ckpt_id, 16) &&
	      memcmp(t.ckpt_id, t1.ckpt_id, 16), "the increment's main.loc does not name c1");
	layer_open(&inc, dir, main_bmap, main_buf);
	layer_open(&base, c1, c1_bmap, c1_buf);
	for (uint64_t p = 0; p < NPAGES; p++) {
		unsigned copies;

		if (at_stop[p] == 0)
			continue;
		copies = layer_get(&inc, p, buf);
		if (copies == 0) {
			copies = layer_get(&base, p, buf);
			from_base++;
		}
		if (copies != 1) {
			if (wrong_count++ < 5)
				fprintf(stderr, "page %llu: %u copies in its newest layer\n",
					(unsigned long long)p, copies);
			continue;
		}
		if (!same(buf, p, at_stop[p]) && wrong_content++ < 5)
			fprintf(stderr, "page %llu: not its content at the increment's stop "
				"point (version %u)\n", (unsigned long long)p, at_stop[p]);
	}
	CHECK(wrong_count == 0, "%llu pages not once in their newest layer",
	      (unsigned long long)wrong_count);
	CHECK(wrong_content == 0, "%llu pages with the wrong content in the chain",
	      (unsigned long long)wrong_content);
	CHECK(from_base > 0 && inc.pages < base.pages,
	      "the increment holds %llu pages, c1 %llu, %llu unchanged: nothing was left out",
	      (unsigned long long)inc.pages, (unsigned long long)base.pages,
	      (unsigned long long)from_base);
	printf("mainckpt: increment %llu pages on a full checkpoint of %llu\n",
	       (unsigned long long)inc.pages, (unsigned long long)base.pages);
	layer_close(&inc);
	layer_close(&base);
	dcres_loctable_free(&t1);
	dcres_loctable_free(&t);
}

/* 4. Server 2 stops answering before the stop point: the stop point
 * does not wait for its final, the checkpoint then fails naming it, and
 * server 1 drops its partial file. */
static void test_final_unanswered(struct dcres_mainckpt *ck, const struct dcres_mapped_ram *geo)
{
	struct dcres_mainckpt_status st;
	char dir[300], err[512];
	int ret;

	begin_into(ck, "final", dir, sizeof(dir));
	for (int i = 0; i < 100 && dcres_mainckpt_pending(ck, true) >= DCRES_MAINCKPT_NOT_YET; i++)
		usleep(50 * 1000);
	save_pass(ck);
	CHECK(test_memserver_stop(&servers[1]) == 0, "memory server 2 did not stop");
	ret = dcres_mainckpt_stop_point(ck, geo, err, sizeof(err));
	dcres_mainckpt_status(ck, &st);
	CHECK(ret == 0 && st.state == DCRES_MAINCKPT_STOPPED,
	      "stop point with server 2 stopped: %d %s, state %d", ret, err, st.state);
	CHECK(dcres_mainckpt_commit(ck) == 0, "commit with server 2 stopped");
	ret = dcres_mainckpt_wait(ck, err, sizeof(err));
	CHECK(ret != 0 && strstr(err, servers[1].addr) && strstr(err, "final"),
	      "final on a stopped server: %d, \"%s\" (want an error naming %s)", ret, err,
	      servers[1].addr);
	CHECK(!partial_exists(dir, 1), "server 1 kept files of the failed checkpoint");
	/* Back, server 2 finds its connection closed and drops its part. */
	kill(servers[1].pid, SIGCONT);
	for (int i = 0; i < 100 && partial_exists(dir, 2); i++)
		usleep(50 * 1000);
	CHECK(!partial_exists(dir, 2), "server 2, back, kept files of the failed checkpoint");
}

int main(int argc, char **argv)
{
	char key[200], dir[300], err[512];
	struct dcres_mainckpt *ck;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: mainckpt-test PATH_TO_DCRES_MEMSERVER\n");
		return 2;
	}
	if (!test_uffd_available()) {
		printf("SKIP: userfaultfd unavailable (needs root or vm.unprivileged_userfaultfd=1)\n");
		return 77;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/var/tmp/dcres-mainckpt-test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(key, sizeof(key), "%s/psk", tmpdir);
	if (test_write_key(key, &psk))
		finish();
	/* Both servers see tmpdir as their --dir: the shared checkpoint root. */
	for (int i = 0; i < 2; i++) {
		ret = test_memserver_start(&servers[i], argv[1], "16M", tmpdir, key, &psk);
		CHECK(ret == 0, "memory server %d: %s", i + 1, strerror(-ret));
		if (ret)
			finish();
	}
	region = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	main_buf = calloc(NPAGES, PAGE);
	c1_buf = calloc(NPAGES, PAGE);
	const char *addrs[2] = { servers[0].addr, servers[1].addr };
	struct dcres_pager_config pcfg = {
		.base = region, .size = (size_t)NPAGES * PAGE, .servers = addrs,
		.nservers = 2, .psk = &psk, .timeout_ms = 2000, .local_limit_pages = LOCAL_LIMIT,
	};
	memcpy(pcfg.vm_uuid, uuid, 16);
	ret = dcres_pager_start(&pcfg, &pager);
	CHECK(ret == 0 && main_buf, "pager start: %s", strerror(-ret));
	if (ret || !main_buf)
		finish();

	struct dcres_mainckpt_config cfg = {
		.pager = pager, .ram_size = (uint64_t)NPAGES * PAGE, .psk = &psk,
		.timeout_ms = 2000, .root = tmpdir, .left_main = left_main,
	};
	struct dcres_mapped_ram geo = {
		.block_id = "ram0", .used_length = (uint64_t)NPAGES * PAGE,
		.bitmap_offset = 4096, .pages_offset = 1u << 20,
	};
	memcpy(cfg.vm_uuid, uuid, 16);
	ret = dcres_mainckpt_new(&cfg, &ck);
	CHECK(ret == 0, "new: %s", strerror(-ret));
	if (ret)
		finish();

	test_live(ck, &geo);
	test_late_page(ck, &geo);
	test_incremental(ck, &geo);

	/* 3. A directory the servers cannot name is refused before anything. */
	ret = dcres_mainckpt_begin(ck, "/var/tmp/main.mem", NULL, err, sizeof(err));
	CHECK(ret == -EINVAL && strstr(err, "not below"), "outside the root: %d %s", ret, err);

	test_final_unanswered(ck, &geo);

	/* 5. Server 2 dies mid-checkpoint: the check fails naming it, and
	 * server 1 drops its partial file when the checkpoint is aborted. */
	begin_into(ck, "c2", dir, sizeof(dir));
	test_memserver_kill(&servers[1]);
	ret = dcres_mainckpt_check(ck, true, err, sizeof(err));
	CHECK(ret != 0 && strstr(err, servers[1].addr),
	      "check with a dead server: %d, \"%s\" (want an error naming %s)", ret, err,
	      servers[1].addr);
	dcres_mainckpt_abort(ck, err);
	CHECK(!partial_exists(dir, 1), "server 1 kept files of the failed checkpoint");
	struct dcres_mainckpt_status st;
	dcres_mainckpt_status(ck, &st);
	CHECK(st.state == DCRES_MAINCKPT_FAILED && strstr(st.error, servers[1].addr),
	      "status after abort: %d %s", st.state, st.error);

	/* 6. With no checkpoint running, check reports the server once the
	 * pager has lost it (a fault on one of its pages waits meanwhile). */
	pthread_t reader;
	bool reading = start_reader_on(2, &reader);
	CHECK(reading, "no page lives on server 2");
	ret = 0;
	for (int i = 0; i < 100 && !ret; i++, usleep(100 * 1000))
		ret = dcres_mainckpt_check(ck, false, err, sizeof(err));
	CHECK(ret == -EIO && strstr(err, servers[1].addr),
	      "check without a checkpoint, server 2 dead: %d \"%s\"", ret, err);

	test_fill_pending(ck);

	dcres_mainckpt_free(ck);
	dcres_pager_stop(pager); /* lets the waiting fault read zeros */
	if (reading)
		pthread_join(reader, NULL);
	munmap(region, (size_t)NPAGES * PAGE);
	free(main_buf);
	free(c1_buf);
	finish();
}
