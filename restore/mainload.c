/* Loading the main host's share of a restore into guest RAM (mainload.h). */
#include "dcres/mainload.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dcres/crc32c.h"
#include "dcres/log.h"
#include "dcres/mainpresence.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/plan.h"
#include "dcres/presence.h"
#include "dcres/wire.h"

#define MAINLOAD_MAX_SOURCES 255 /* source bytes 0..254 */

/* Pages are read from the checkpoint's files in their page size (checked
 * against the plan's, which dcres_plan_read holds to DCRES_CKPT_PAGE_SIZE)
 * into the pager's buffers of DCRES_PAGE_SIZE pages. */
_Static_assert(DCRES_CKPT_PAGE_SIZE == DCRES_PAGE_SIZE,
	       "checkpoint files and the pager must agree on the page size");

/* A checkpoint server's files, for the pages it saved. */
struct server_source {
	struct dcres_memfile *mf;
	struct dcres_presence present;
	char path[PATH_MAX];
};

struct dcres_mainload {
	struct dcres_plan plan;
	struct dcres_mrfile main;         /* DIR/main.mem */
	struct dcres_presence main_present; /* DIR/main.present, if has_main_present */
	bool has_main_present;
	struct server_source *servers[MAINLOAD_MAX_SOURCES]; /* [K]: host-K, if used */
	uint8_t *scratch;                 /* one fill batch, for a server's pages */
	uint64_t *scratch_pages;
	size_t scratch_cap;
	bool started;                     /* dcres_mainload_start was called */
};

static void server_source_close(struct server_source *s)
{
	if (!s)
		return;
	dcres_memfile_close(s->mf);
	dcres_presence_free(&s->present);
	free(s);
}

/* Checks that presence file pr (at path) covers plan p's pages: -EINVAL
 * with err naming the file and both geometries otherwise. */
static int presence_check(const struct dcres_presence *pr, const char *path,
			  const struct dcres_plan *p, char *err, size_t err_len)
{
	if (pr->npages == p->npages)
		return 0;
	snprintf(err, err_len, "%s: %llu pages of %u bytes in its header; the plan is for "
		 "%llu pages of %u bytes", path, (unsigned long long)pr->npages, pr->page_size,
		 (unsigned long long)p->npages, p->page_size);
	return -EINVAL;
}

/* Checks that server source s (its presence file at present) covers plan
 * p's pages: the same page count in both files (their page size the
 * readers hold to the plan's). -EINVAL with err naming the file and its
 * header's geometry otherwise. */
static int server_source_check(const struct server_source *s, const char *present,
			       const struct dcres_plan *p, char *err, size_t err_len)
{
	const struct dcres_memfile_info *info = dcres_memfile_info(s->mf);

	if (info->ram_size / info->page_size != p->npages) {
		snprintf(err, err_len, "%s: %llu pages of %u bytes in its header; the plan is "
			 "for %llu pages of %u bytes", s->path,
			 (unsigned long long)(info->ram_size / info->page_size), info->page_size,
			 (unsigned long long)p->npages, p->page_size);
		return -EINVAL;
	}
	return presence_check(&s->present, present, p, err, err_len);
}

/* Opens DIR/host-K.mem and .present of plan p's checkpoint and checks
 * them against the plan (server_source_check). */
static int server_source_open(const struct dcres_plan *p, unsigned k,
			      struct server_source **out, char *err, size_t err_len)
{
	struct server_source *s = calloc(1, sizeof(*s));
	char present[PATH_MAX];
	int ret;

	if (!s)
		return -ENOMEM;
	snprintf(s->path, sizeof(s->path), "%s/host-%u.mem", p->ckpt_dir, k);
	snprintf(present, sizeof(present), "%s/host-%u.present", p->ckpt_dir, k);
	ret = dcres_memfile_open(s->path, &s->mf);
	if (ret) {
		snprintf(err, err_len, "%s: %s", s->path, strerror(-ret));
		free(s);
		return ret;
	}
	ret = dcres_presence_read(present, &s->present);
	if (ret)
		snprintf(err, err_len, "%s: %s", present, strerror(-ret));
	else
		ret = server_source_check(s, present, p, err, err_len);
	if (ret) {
		server_source_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

/* Reads DIR/main.present when the checkpoint has one (an older one has
 * none: main.mem's pages are then not checked as they load) and checks
 * that it covers the plan's pages. */
static int open_main_present(struct dcres_mainload *m, char *err, size_t err_len)
{
	const struct dcres_plan *p = &m->plan;
	char path[PATH_MAX];
	struct stat sb;
	int ret;

	snprintf(path, sizeof(path), "%s/" DCRES_MAIN_PRESENT_NAME, p->ckpt_dir);
	if (stat(path, &sb) < 0 && errno == ENOENT)
		return 0;
	ret = dcres_presence_read(path, &m->main_present);
	if (ret) {
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	m->has_main_present = true;
	return presence_check(&m->main_present, path, p, err, err_len);
}

/* Opens the files the main host's pages come from and checks each page
 * from a server's file is in it (a page from main.mem whose bit is clear
 * is a zero page: QEMU's mapped-ram does not store those). */
static int open_sources(struct dcres_mainload *m, char *err, size_t err_len)
{
	const struct dcres_plan *p = &m->plan;
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/main.mem", p->ckpt_dir);
	ret = dcres_mrfile_open(path, &p->main_file, false, &m->main);
	if (ret) {
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if ((ret = open_main_present(m, err, err_len)))
		return ret;
	for (uint64_t i = 0; i < p->npages; i++) {
		uint8_t src = p->source[i];
		if (p->target[i] != DCRES_PLAN_MAIN)
			continue;
		if (src == DCRES_PLAN_MAIN)
			continue;
		if (src >= MAINLOAD_MAX_SOURCES) {
			snprintf(err, err_len, "plan: page %llu has no source", (unsigned long long)i);
			return -EINVAL;
		}
		if (!m->servers[src] &&
		    (ret = server_source_open(p, src, &m->servers[src], err, err_len)))
			return ret;
		if (!dcres_presence_test(&m->servers[src]->present, i)) {
			snprintf(err, err_len, "%s does not hold page %llu, which the plan takes "
				 "from it", m->servers[src]->path, (unsigned long long)i);
			return -ENOENT;
		}
	}
	return 0;
}

int dcres_mainload_open(const char *plan_path, uint64_t ram_size, unsigned nservers,
			struct dcres_mainload **out, char *err, size_t err_len)
{
	struct dcres_mainload *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	m->main.fd = -1;
	ret = dcres_plan_read(plan_path, &m->plan, err, err_len);
	if (ret) {
		free(m);
		return ret;
	}
	if (m->plan.npages * m->plan.page_size != ram_size || m->plan.nsubs != nservers) {
		snprintf(err, err_len, "%s plans %llu bytes of RAM over %u memory servers; this "
			 "VM has %llu bytes and %u servers", plan_path,
			 (unsigned long long)(m->plan.npages * m->plan.page_size), m->plan.nsubs,
			 (unsigned long long)ram_size, nservers);
		ret = -EINVAL;
	}
	if (!ret)
		ret = open_sources(m, err, err_len);
	if (ret) {
		dcres_mainload_close(m);
		return ret;
	}
	*out = m;
	return 0;
}

/* Whether path names the file the plan's main.mem is. */
static bool is_main_file(const struct dcres_mainload *m, const char *path)
{
	char want[PATH_MAX], real_path[PATH_MAX], real_want[PATH_MAX];

	snprintf(want, sizeof(want), "%s/main.mem", m->plan.ckpt_dir);
	return realpath(path, real_path) && realpath(want, real_want) &&
	       strcmp(real_path, real_want) == 0;
}

int dcres_mainload_check_block(const struct dcres_mainload *m, const char *file,
			       const char *block_id, uint64_t used_length,
			       uint64_t bitmap_offset, uint64_t pages_offset, char *err,
			       size_t err_len)
{
	const struct dcres_mapped_ram *g = &m->plan.main_file;

	if (!is_main_file(m, file)) {
		snprintf(err, err_len, "the restore plan is for %s/main.mem, not %s",
			 m->plan.ckpt_dir, file);
		return -EINVAL;
	}
	if (strcmp(g->block_id, block_id) || g->used_length != used_length ||
	    g->bitmap_offset != bitmap_offset || g->pages_offset != pages_offset) {
		snprintf(err, err_len, "the file's RAM block %s (%llu bytes, pages at %llu) is "
			 "not %s/main.mem's block %s (%llu bytes, pages at %llu) that the "
			 "restore plan was made for", block_id, (unsigned long long)used_length,
			 (unsigned long long)pages_offset, m->plan.ckpt_dir, g->block_id,
			 (unsigned long long)g->used_length, (unsigned long long)g->pages_offset);
		return -EINVAL;
	}
	return 0;
}

int dcres_mainload_place(struct dcres_mainload *m, struct dcres_pager *p, char *err,
			 size_t err_len)
{
	const struct dcres_plan *plan = &m->plan;

	for (uint64_t i = 0; i < plan->npages; i++) {
		uint8_t t = plan->target[i];
		int ret;
		if (t == DCRES_PLAN_MAIN || t == DCRES_PLAN_ZERO)
			continue;
		ret = dcres_pager_place(p, i, t);
		if (ret) {
			snprintf(err, err_len, "placing page %llu on memory server %u: %s",
				 (unsigned long long)i, t, strerror(-ret));
			return ret;
		}
	}
	dcres_pager_seed_history(p, plan->history);
	return 0;
}

/* Reads the pages of pages[0..n) that come from checkpoint server k into
 * their places in buf, checking each against its CRC. */
static int fetch_from_server(struct dcres_mainload *m, unsigned k, const uint64_t *pages,
			     size_t n, uint8_t *buf, char *err, size_t err_len)
{
	struct server_source *s = m->servers[k];
	size_t count = 0;
	int ret;

	for (size_t i = 0; i < n; i++)
		if (m->plan.source[pages[i]] == k)
			m->scratch_pages[count++] = pages[i];
	ret = dcres_memfile_read_pages(s->mf, m->scratch_pages, m->scratch, count);
	if (ret) {
		snprintf(err, err_len, "reading %s: %s", s->path, strerror(-ret));
		return ret;
	}
	for (size_t i = 0, j = 0; i < n; i++) {
		const uint8_t *page = m->scratch + j * DCRES_PAGE_SIZE;
		if (m->plan.source[pages[i]] != k)
			continue;
		if (dcres_crc32c(0, page, DCRES_PAGE_SIZE) != s->present.page_crc[pages[i]]) {
			snprintf(err, err_len, "%s: page %llu is corrupted (checksum mismatch)",
				 s->path, (unsigned long long)pages[i]);
			return -EBADMSG;
		}
		memcpy(buf + i * DCRES_PAGE_SIZE, page, DCRES_PAGE_SIZE);
		j++;
	}
	return 0;
}

/* Checks main.mem's pages[0..n) read into buf against main.present, when
 * the checkpoint has one: each page whose bit is set must be listed there
 * with its CRC. -EBADMSG with err naming the file and page otherwise. */
static int check_main_pages(const struct dcres_mainload *m, const uint64_t *pages,
			    size_t n, const uint8_t *buf, char *err, size_t err_len)
{
	for (size_t i = 0; m->has_main_present && i < n; i++) {
		int ret;

		if (!dcres_mrfile_test(&m->main, pages[i]))
			continue;
		ret = dcres_presence_check_page(&m->main_present, pages[i],
						buf + i * DCRES_PAGE_SIZE);
		if (ret == -ENOENT) {
			snprintf(err, err_len, "%s/main.mem: page %llu is not in %s/"
				 DCRES_MAIN_PRESENT_NAME, m->plan.ckpt_dir,
				 (unsigned long long)pages[i], m->plan.ckpt_dir);
			return -EBADMSG;
		}
		if (ret) {
			snprintf(err, err_len, "%s/main.mem: page %llu is corrupted (checksum "
				 "mismatch)", m->plan.ckpt_dir, (unsigned long long)pages[i]);
			return -EBADMSG;
		}
	}
	return 0;
}

/* The pager's fetch: pages[0..n) from their sources, runs of consecutive
 * main.mem pages in one read (each checked against main.present). */
static int fetch(void *opaque, const uint64_t *pages, size_t n, void *out, char *err,
		 size_t err_len)
{
	struct dcres_mainload *m = opaque;
	uint8_t *buf = out;
	bool from_server[MAINLOAD_MAX_SOURCES] = { false };
	int ret;

	for (size_t i = 0, run; i < n; i += run) {
		if (m->plan.source[pages[i]] != DCRES_PLAN_MAIN) {
			from_server[m->plan.source[pages[i]]] = true;
			run = 1;
			continue;
		}
		for (run = 1; i + run < n && pages[i + run] == pages[i] + run &&
			      m->plan.source[pages[i + run]] == DCRES_PLAN_MAIN; run++)
			;
		ret = dcres_mrfile_read_pages(&m->main, pages[i], buf + i * DCRES_PAGE_SIZE, run);
		if (ret) {
			snprintf(err, err_len, "reading pages %llu..%llu of %s/main.mem: %s",
				 (unsigned long long)pages[i],
				 (unsigned long long)(pages[i] + run - 1), m->plan.ckpt_dir,
				 strerror(-ret));
			return ret;
		}
		ret = check_main_pages(m, pages + i, run, buf + i * DCRES_PAGE_SIZE, err, err_len);
		if (ret)
			return ret;
	}
	for (unsigned k = 1; k < MAINLOAD_MAX_SOURCES; k++)
		if (from_server[k] && (ret = fetch_from_server(m, k, pages, n, buf, err, err_len)))
			return ret;
	return 0;
}

/* Drops from pages[0..n) the zero pages of main.mem (bit clear): they
 * stay never written in the pager, zero-filled when touched. Returns the
 * pages left. */
static uint64_t without_zero_pages(const struct dcres_mainload *m, uint64_t *pages, uint64_t n)
{
	uint64_t kept = 0;

	for (uint64_t i = 0; i < n; i++)
		if (m->plan.source[pages[i]] != DCRES_PLAN_MAIN ||
		    dcres_mrfile_test(&m->main, pages[i]))
			pages[kept++] = pages[i];
	return kept;
}

int dcres_mainload_start(struct dcres_mainload *m, struct dcres_pager *p, bool wait,
			 char *err, size_t err_len)
{
	uint64_t *pages, n;
	int ret;

	if (m->started) {
		snprintf(err, err_len, "this VM was restored already; start a new QEMU to "
			 "restore again");
		return -EBUSY;
	}
	m->started = true;
	ret = dcres_plan_pages(&m->plan, DCRES_PLAN_MAIN, 1, &pages, &n);
	if (ret) {
		snprintf(err, err_len, "listing the main host's pages: %s", strerror(-ret));
		return ret;
	}
	n = without_zero_pages(m, pages, n);
	m->scratch_cap = DCRES_PAGER_FILL_BATCH;
	if (!(m->scratch_pages = malloc(m->scratch_cap * sizeof(uint64_t))) ||
	    posix_memalign((void **)&m->scratch, DCRES_PAGE_SIZE,
			   m->scratch_cap * DCRES_PAGE_SIZE)) {
		free(pages);
		return -ENOMEM;
	}
	ret = dcres_pager_fill_start(p, pages, n, fetch, m);
	free(pages);
	if (!ret && wait)
		ret = dcres_pager_fill_go(p);
	if (!ret && wait)
		ret = dcres_pager_fill_wait(p);
	if (ret)
		snprintf(err, err_len, "loading the main host's %llu pages from %s failed: %s "
			 "(the log names the file and page)", (unsigned long long)n,
			 m->plan.ckpt_dir, strerror(-ret));
	return ret;
}

uint64_t dcres_mainload_pending(const struct dcres_mainload *m, struct dcres_pager *p)
{
	struct dcres_pager_stats st;

	if (!m->started)
		return dcres_plan_count(&m->plan, DCRES_PLAN_MAIN);
	dcres_pager_get_stats(p, &st);
	return st.fill_pending;
}

void dcres_mainload_close(struct dcres_mainload *m)
{
	if (!m)
		return;
	for (unsigned k = 0; k < MAINLOAD_MAX_SOURCES; k++)
		server_source_close(m->servers[k]);
	dcres_mrfile_close(&m->main);
	dcres_presence_free(&m->main_present);
	dcres_plan_free(&m->plan);
	free(m->scratch);
	free(m->scratch_pages);
	free(m);
}
