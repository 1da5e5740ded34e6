/* libdcres-mainload against a real pager (userfaultfd) and a synthetic
 * checkpoint (tests/lib/c/ckpt-build.h): restored onto one host, every
 * page comes back from the file that holds it (main.mem or a server's
 * host-K.mem), zero pages and never-written pages read as zeros, stale
 * data in main.mem is not loaded; eagerly, and lazily (a touch loads a
 * page before the background does, which starts with
 * dcres_pager_fill_go). A corrupted page of a server's file stops the
 * load with -EBADMSG, naming the file and page, and so does one of
 * main.mem when the checkpoint has a main.present (as does a main.mem page
 * main.present lacks; one of another page count is refused); a plan for another VM
 * size is refused, as are server files declaring another page size or
 * RAM size than the plan. usage: mainload-test (exit 77: no userfaultfd) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ckpt-build.h"
#include "dcres/loctable.h"
#include "dcres/log.h"
#include "dcres/mainload.h"
#include "dcres/mainpresence.h"
#include "dcres/memfile.h"
#include "dcres/plan.h"
#include "memserver-spawn.h"
#include "testutil.h"

#define RAM ((uint64_t)TEST_CKPT_NPAGES * TEST_CKPT_PS)

/* Like CHECK, with a message. */
#define CHECK_MSG(cond, ...)                                                     \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);          \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			exit(1);                                                 \
		}                                                                \
	} while (0)

/* Plans checkpoint dir onto this host alone and writes the plan to path. */
static void plan_single_host(const char *dir, const char *path)
{
	struct dcres_plan_target main = { DCRES_PLAN_UNLIMITED, 0 };
	struct dcres_loctable t;
	struct dcres_plan p;
	char loc[512], err[512];

	snprintf(loc, sizeof(loc), "%s/main.loc", dir);
	CHECK(dcres_loctable_read(loc, &t) == 0);
	CHECK(dcres_plan_make(&t, dir, &main, 1, &p, err, sizeof(err)) == 0);
	CHECK(dcres_plan_write(path, &p, err, sizeof(err)) == 0);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* A pager with no servers on a fresh region of the checkpoint's size. */
static struct dcres_pager *pager_on(uint8_t **region)
{
	struct dcres_psk psk = { 0 };
	struct dcres_pager_config cfg = { .size = RAM, .psk = &psk, .timeout_ms = 1000 };
	struct dcres_pager *p;

	*region = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(*region != MAP_FAILED);
	cfg.base = *region;
	CHECK(dcres_pager_start(&cfg, &p) == 0);
	return p;
}

/* Checks every page of region against what the checkpoint saved. */
static void check_region(const uint8_t *region, const char *what)
{
	static uint8_t want[TEST_CKPT_PS], zero[TEST_CKPT_PS];

	for (uint64_t i = 0; i < TEST_CKPT_NPAGES; i++) {
		uint8_t owner = test_ckpt_owner(i);
		const uint8_t *got = region + i * TEST_CKPT_PS;

		if (owner == DCRES_LOC_ZERO || test_ckpt_zero_page(i))
			memcpy(want, zero, sizeof(want));
		else
			test_ckpt_fill_page(want, i, owner);
		CHECK_MSG(!memcmp(got, want, TEST_CKPT_PS), "%s: page %llu (on host %u) "
			  "restored wrong", what, (unsigned long long)i, owner);
	}
}

/* Restores checkpoint dir eagerly or lazily and checks the memory. */
static void restore(const char *dir, bool lazy)
{
	char plan[600], err[512];
	struct dcres_mainload *m;
	struct dcres_pager_stats st;
	struct dcres_pager *p;
	uint8_t *region;

	snprintf(plan, sizeof(plan), "%s/plan", dir);
	plan_single_host(dir, plan);
	p = pager_on(&region);
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == 0, "open: %s", err);
	CHECK_MSG(dcres_mainload_place(m, p, err, sizeof(err)) == 0, "place: %s", err);
	uint64_t planned = dcres_mainload_pending(m, p);
	CHECK_MSG(planned > 0, "%llu pages pending before start", (unsigned long long)planned);
	CHECK_MSG(dcres_mainload_start(m, p, !lazy, err, sizeof(err)) == 0, "start: %s", err);
	if (lazy) {
		uint64_t hot = 0;
		while (test_ckpt_owner(hot) == DCRES_LOC_ZERO || test_ckpt_zero_page(hot))
			hot++;
		(void)*(volatile uint8_t *)(region + hot * TEST_CKPT_PS);
		dcres_pager_get_stats(p, &st);
		CHECK_MSG(st.fill_faults == 1 && st.fill_loaded == 1,
		      "lazy: %llu pages loaded before go (want the one touched)",
		      (unsigned long long)st.fill_loaded);
		CHECK(dcres_pager_fill_go(p) == 0);
		CHECK(dcres_pager_fill_wait(p) == 0);
	}
	dcres_pager_get_stats(p, &st);
	CHECK(st.fill_pending == 0 && st.fill_error == 0 && dcres_mainload_pending(m, p) == 0);
	check_region(region, lazy ? "lazy" : "eager");
	CHECK_MSG(dcres_mainload_start(m, p, !lazy, err, sizeof(err)) == -EBUSY &&
		  strstr(err, "restored already"), "a second start: \"%s\"", err);
	printf("mainload: %s restore, %llu pages loaded\n", lazy ? "lazy" : "eager",
	       (unsigned long long)st.fill_loaded);
	dcres_pager_stop(p);
	dcres_mainload_close(m);
	munmap(region, RAM);
}

/* Server files the plan cannot use are refused at open, naming the file
 * and the field: host-1.mem and .present declaring 8 KiB or 1 MiB pages
 * (consistent otherwise: they once overran the load's buffers), and a
 * host-1.mem of twice the plan's RAM. */
static void refused_sources(const char *base)
{
	struct dcres_memfile_info info = { .ram_size = 2 * RAM, .page_size = TEST_CKPT_PS,
					   .host_id = 1 };
	struct dcres_mapped_ram geo;
	struct dcres_memfile *mf;
	struct dcres_mainload *m;
	char plan[600], mem[600], err[512] = "";
	const char *dir;

	for (int v = TEST_CKPT_PAGE_8K; v <= TEST_CKPT_PAGE_1M; v++) {
		dir = test_ckpt_make(base, (enum test_ckpt_variant)v, &geo);
		snprintf(plan, sizeof(plan), "%s/plan", dir);
		snprintf(mem, sizeof(mem), "%s/host-1.mem", dir);
		plan_single_host(dir, plan);
		test_capture_start();
		CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == -ENOTSUP,
			  "host-1.mem of %s pages opened: %s",
			  v == TEST_CKPT_PAGE_8K ? "8 KiB" : "1 MiB", err);
		CHECK_MSG(strstr(err, mem) && test_logged(mem) && test_logged("page size"),
			  "the refusal does not name %s and its page size: %s", mem, err);
		dcres_log_set_sink(NULL);
	}

	dir = test_ckpt_make(base, TEST_CKPT_OK, &geo);
	snprintf(plan, sizeof(plan), "%s/plan", dir);
	snprintf(mem, sizeof(mem), "%s/host-1.mem", dir);
	plan_single_host(dir, plan);
	memcpy(info.vm_uuid, test_ckpt_uuid, 16);
	CHECK(dcres_memfile_create(mem, &info, &mf) == 0 && dcres_memfile_sync(mf) == 0);
	dcres_memfile_close(mf);
	err[0] = '\0';
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == -EINVAL,
		  "a host-1.mem of another RAM size opened: %s", err);
	CHECK_MSG(strstr(err, mem) && strstr(err, "2000 pages of 4096 bytes in its header"),
		  "the refusal does not name %s and its pages: %s", mem, err);
}

/* Loads checkpoint dir eagerly and expects -EBADMSG with logged in the
 * log (the pager logs the fetch's error naming file and page). */
static void expect_bad_load(const char *dir, const char *logged)
{
	char plan[600], err[512];
	struct dcres_mainload *m;
	struct dcres_pager *p;
	uint8_t *region;

	snprintf(plan, sizeof(plan), "%s/plan", dir);
	plan_single_host(dir, plan);
	p = pager_on(&region);
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(dcres_mainload_place(m, p, err, sizeof(err)) == 0);
	test_capture_start();
	CHECK_MSG(dcres_mainload_start(m, p, true, err, sizeof(err)) == -EBADMSG,
		  "a bad page was loaded (want: %s)", logged);
	CHECK_MSG(test_logged(logged), "the log does not say: %s", logged);
	dcres_log_set_sink(NULL);
	dcres_pager_stop(p);
	dcres_mainload_close(m);
	munmap(region, RAM);
}

/* Rewrites dir/main.present: page cleared, or npages of another count. */
static void rewrite_main_present(const char *dir, uint64_t clear, uint64_t npages)
{
	char path[600];
	struct dcres_presence p, q;

	snprintf(path, sizeof(path), "%s/" DCRES_MAIN_PRESENT_NAME, dir);
	CHECK(dcres_presence_read(path, &p) == 0);
	dcres_presence_clear(&p, clear);
	CHECK(dcres_presence_init(&q, npages, p.page_size) == 0);
	for (uint64_t i = 0; i < p.npages && i < npages; i++)
		if (dcres_presence_test(&p, i))
			dcres_presence_set(&q, i, p.page_crc[i]);
	CHECK(dcres_presence_write(path, &q) == 0);
	dcres_presence_free(&p);
	dcres_presence_free(&q);
}

/* Checkpoints with main.present: restored right; a damaged main.mem page,
 * or one main.present lacks, stops the load naming it; a main.present of
 * another page count is refused at open, named. */
static void main_present(const char *base)
{
	struct dcres_mapped_ram geo;
	struct dcres_mainload *m;
	char plan[600], want[700], err[512] = "";
	const char *dir = test_ckpt_make(base, TEST_CKPT_MAIN_PRESENT, &geo);

	restore(dir, false);
	restore(dir, true);

	dir = test_ckpt_make(base, TEST_CKPT_MAIN_CORRUPT, &geo);
	snprintf(want, sizeof(want), "%s/main.mem: page 16 is corrupted (checksum mismatch)", dir);
	expect_bad_load(dir, want);

	dir = test_ckpt_make(base, TEST_CKPT_MAIN_PRESENT, &geo);
	CHECK(test_ckpt_owner(1) == DCRES_LOC_MAIN && !test_ckpt_zero_page(1));
	rewrite_main_present(dir, 1, TEST_CKPT_NPAGES);
	snprintf(want, sizeof(want), "%s/main.mem: page 1 is not in %s/main.present", dir, dir);
	expect_bad_load(dir, want);

	rewrite_main_present(dir, 1, TEST_CKPT_NPAGES - 1);
	snprintf(plan, sizeof(plan), "%s/plan", dir);
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == -EINVAL,
		  "a main.present of 999 pages opened: %s", err);
	snprintf(want, sizeof(want), "%s/main.present: 999 pages", dir);
	CHECK_MSG(strstr(err, want), "the refusal does not name main.present: %s", err);
}

int main(void)
{
	struct dcres_mapped_ram geo;
	char plan[600], err[512];
	struct dcres_mainload *m;
	struct dcres_pager *p;
	uint8_t *region;
	const char *dir, *base;

	if (!test_uffd_available()) {
		printf("SKIP: userfaultfd unavailable (needs root or vm.unprivileged_userfaultfd=1)\n");
		return 77;
	}
	base = test_tmpdir("/var/tmp");
	dir = test_ckpt_make(base, TEST_CKPT_OK, &geo);
	restore(dir, false);
	restore(dir, true);

	/* A plan for another RAM size is refused at open. */
	snprintf(plan, sizeof(plan), "%s/plan", dir);
	CHECK(dcres_mainload_open(plan, RAM * 2, 0, &m, err, sizeof(err)) == -EINVAL);
	CHECK_MSG(strstr(err, plan) != NULL, "the refusal does not name the plan: %s", err);

	/* The incoming file must be the plan's main.mem (by any path), with
	 * the RAM block the plan was made for. */
	char main_mem[700], other[700];
	snprintf(main_mem, sizeof(main_mem), "%s/../%s/main.mem", dir, strrchr(dir, '/') + 1);
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == 0, "open: %s", err);
	CHECK_MSG(dcres_mainload_check_block(m, main_mem, geo.block_id, geo.used_length,
					     geo.bitmap_offset, geo.pages_offset, err,
					     sizeof(err)) == 0, "check_block: %s", err);
	snprintf(other, sizeof(other), "%s/host-1.mem", dir);
	CHECK(dcres_mainload_check_block(m, other, geo.block_id, geo.used_length,
					 geo.bitmap_offset, geo.pages_offset, err, sizeof(err)) == -EINVAL);
	CHECK_MSG(strstr(err, other) && strstr(err, "main.mem"),
		  "the refusal does not name both files: %s", err);
	CHECK(dcres_mainload_check_block(m, main_mem, geo.block_id, geo.used_length,
					 geo.bitmap_offset, geo.pages_offset + 4096, err,
					 sizeof(err)) == -EINVAL);
	dcres_mainload_close(m);

	refused_sources(base);

	/* A corrupted page of host-1.mem stops the load, named. */
	dir = test_ckpt_make(base, TEST_CKPT_CORRUPT, &geo);
	snprintf(plan, sizeof(plan), "%s/plan", dir);
	plan_single_host(dir, plan);
	p = pager_on(&region);
	CHECK_MSG(dcres_mainload_open(plan, RAM, 0, &m, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(dcres_mainload_place(m, p, err, sizeof(err)) == 0);
	test_capture_start();
	CHECK_MSG(dcres_mainload_start(m, p, true, err, sizeof(err)) == -EBADMSG,
	      "a corrupted page was loaded");
	CHECK_MSG(test_logged("host-1.mem: page 22 is corrupted"),
	      "the log does not name host-1.mem page 22");
	dcres_pager_stop(p);
	dcres_mainload_close(m);
	munmap(region, RAM);

	main_present(base);
	printf("mainload: ok\n");
	return 0;
}
