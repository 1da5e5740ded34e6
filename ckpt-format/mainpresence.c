/* main.present (mainpresence.h): building it from main.mem and main.loc,
 * and checking main.mem's pages against it. Both scan main.mem the same
 * way: the page index space in tasks run in parallel, each task in runs of
 * RUN_PAGES pages read with one pread from the first page wanted to the
 * last (main.mem's pages not wanted are holes or few). */
#include "dcres/mainpresence.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "dcres/crc32c.h"
#include "dcres/log.h"

/* Pages of page-index space per parallel task (a multiple of 64, so that
 * tasks building a presence set never share a bitmap word), and per read
 * (1 MiB). */
#define TASK_PAGES 16384u
#define RUN_PAGES 256u
#define BUF_ALIGN 4096u

/* One scan of main.mem: building p (host set) or checking f against it. */
struct scan {
	struct dcres_mrfile *f;
	const uint8_t *host;         /* build: main.loc's hosts; NULL: verify */
	struct dcres_presence *p;    /* build: filled; verify: only read */
	uint64_t fail_task;          /* UINT64_MAX while none failed */
	int err;                     /* -EBADMSG (bad_page, got) or the read error */
	uint64_t bad_page;
	uint32_t got;
};

/* Whether the scan reads page: a page of the main host in main.mem
 * (build), a page p lists (verify). */
static bool wanted(const struct scan *s, uint64_t page)
{
	if (s->host)
		return s->host[page] == DCRES_LOC_MAIN && dcres_mrfile_test(s->f, page);
	return dcres_presence_test(s->p, page);
}

/* Reads the wanted pages of [first, first + n) into buf (one read) and
 * records (build) or checks (verify) their CRCs; returns 0, -EBADMSG with
 * *bad_page and *got set, or a read error. */
static int scan_run(struct scan *s, uint64_t first, uint64_t n, uint8_t *buf,
		    uint64_t *bad_page, uint32_t *got)
{
	uint32_t ps = s->f->page_size;
	uint64_t lo = n, hi = 0;
	int ret;

	for (uint64_t i = 0; i < n; i++) {
		if (wanted(s, first + i)) {
			lo = lo < i ? lo : i;
			hi = i + 1;
		}
	}
	if (!hi)
		return 0;
	ret = dcres_mrfile_read_pages(s->f, first + lo, buf, hi - lo);
	if (ret)
		return ret;
	for (uint64_t i = lo; i < hi; i++) {
		uint64_t page = first + i;
		uint32_t crc;

		if (!wanted(s, page))
			continue;
		crc = dcres_crc32c(0, buf + (i - lo) * ps, ps);
		if (s->host) {
			dcres_presence_set(s->p, page, crc);
		} else if (!dcres_mrfile_test(s->f, page) || crc != s->p->page_crc[page]) {
			*bad_page = page;
			*got = crc;
			return -EBADMSG;
		}
	}
	return 0;
}

/* Runs one task (TASK_PAGES pages of index space) and records its failure
 * in s if it is the lowest so far. */
static void scan_task(struct scan *s, uint64_t task)
{
	uint64_t first = task * TASK_PAGES, npages = s->f->npages;
	uint64_t end = npages - first < TASK_PAGES ? npages : first + TASK_PAGES;
	uint8_t *buf = aligned_alloc(BUF_ALIGN, (size_t)RUN_PAGES * s->f->page_size);
	uint64_t bad_page = 0;
	uint32_t got = 0;
	int ret = buf ? 0 : -ENOMEM;

	for (uint64_t run = first; !ret && run < end; run += RUN_PAGES)
		ret = scan_run(s, run, end - run < RUN_PAGES ? end - run : RUN_PAGES, buf,
			       &bad_page, &got);
	free(buf);
	if (!ret)
		return;
#pragma omp critical(dcres_main_presence_scan)
	if (task < s->fail_task) {
		/* scan() reads fail_task outside this section. */
#pragma omp atomic write
		s->fail_task = task;
		s->err = ret;
		s->bad_page = bad_page;
		s->got = got;
	}
}

/* Runs every task of s, skipping those past the lowest failed one. */
static void scan(struct scan *s)
{
	uint64_t ntasks = (s->f->npages + TASK_PAGES - 1) / TASK_PAGES;

	s->fail_task = UINT64_MAX;
	s->err = 0;
#pragma omp parallel for schedule(dynamic, 1)
	for (uint64_t task = 0; task < ntasks; task++) {
		uint64_t fail_task;

#pragma omp atomic read
		fail_task = s->fail_task;
		if (task < fail_task)
			scan_task(s, task);
	}
}

int dcres_main_presence_build(struct dcres_mrfile *f, const struct dcres_loctable *loc,
			      struct dcres_presence *out)
{
	struct scan s = { .f = f, .host = loc->host, .p = out };
	int ret;

	if (loc->npages != f->npages || loc->page_size != f->page_size) {
		pr_err("%s: %llu pages of %u bytes, but main.loc has %llu of %u", f->path,
		       (unsigned long long)f->npages, f->page_size,
		       (unsigned long long)loc->npages, loc->page_size);
		return -EINVAL;
	}
	ret = dcres_presence_init(out, f->npages, f->page_size);
	if (ret)
		return ret;
	scan(&s);
	if (s.err) /* a read error, logged naming f */
		dcres_presence_free(out);
	return s.err;
}

int dcres_main_presence_verify(const struct dcres_presence *p, struct dcres_mrfile *f,
			       uint64_t *bad_page)
{
	struct scan s = { .f = f, .p = (struct dcres_presence *)p };

	if (p->npages != f->npages || p->page_size != f->page_size) {
		pr_err("%s: %llu pages of %u bytes, but its " DCRES_MAIN_PRESENT_NAME
		       " has %llu of %u", f->path, (unsigned long long)f->npages, f->page_size,
		       (unsigned long long)p->npages, p->page_size);
		return -EINVAL;
	}
	scan(&s);
	if (s.err != -EBADMSG)
		return s.err;
	if (!dcres_mrfile_test(f, s.bad_page))
		pr_err("%s: page %llu: not in its bitmap, but " DCRES_MAIN_PRESENT_NAME
		       " lists it", f->path, (unsigned long long)s.bad_page);
	else
		pr_err("%s: page %llu: CRC-32C %08x, " DCRES_MAIN_PRESENT_NAME " says %08x",
		       f->path, (unsigned long long)s.bad_page, s.got, p->page_crc[s.bad_page]);
	if (bad_page)
		*bad_page = s.bad_page;
	return -EBADMSG;
}
