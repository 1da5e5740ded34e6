/* Fill: loading restored pages into the region on the fault thread, in
 * the background between faults and at once on a fault. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dcres/log.h"
#include "pager-internal.h"
#include "uffd-move.h"

int dcres_pager_fill_start(struct dcres_pager *p, const uint64_t *pages, uint64_t n,
			   dcres_pager_fetch_fn fetch, void *opaque)
{
	uint64_t *list;

	if (atomic_load(&p->fill_list) || atomic_load(&p->fill_pending))
		return -EBUSY;
	for (uint64_t i = 0; i < n; i++) {
		if (pages[i] >= p->npages || atomic_load(&p->loc[pages[i]]) != DCRES_PAGER_ZERO) {
			pr_err("pager: fill of page %llu: not a never-written page of the region",
			       (unsigned long long)pages[i]);
			return -EINVAL;
		}
	}
	list = malloc((n ? n : 1) * sizeof(*list));
	if (!p->fill_bad_bits)
		p->fill_bad_bits = calloc((p->npages + 63) / 64, sizeof(uint64_t));
	if (!list || !p->fill_bad_bits || (!p->fill_buf &&
		      posix_memalign((void **)&p->fill_buf, DCRES_PAGE_SIZE,
				     DCRES_PAGER_FILL_BATCH * DCRES_PAGE_SIZE))) {
		free(list);
		return -ENOMEM;
	}
	memcpy(list, pages, n * sizeof(*list));
	for (uint64_t i = 0; i < n; i++)
		atomic_store(&p->loc[pages[i]], DCRES_PAGER_FILL);
	p->fill_fetch = fetch;
	p->fill_opaque = opaque;
	p->fill_n = n;
	p->fill_next = 0;
	atomic_store(&p->fill_error, 0);
	atomic_store(&p->fill_bad, 0);
	memset(p->fill_bad_bits, 0, (p->npages + 63) / 64 * sizeof(uint64_t));
	atomic_store(&p->fill_go, false);
	atomic_store(&p->fill_pending, n);
	/* The fault thread sees the list last. */
	atomic_store(&p->fill_list, list);
	return 0;
}

int dcres_pager_fill_go(struct dcres_pager *p)
{
	atomic_store(&p->fill_go, true);
	return pager_kick(p);
}

/* Whether the fill is over: nothing pending but pages that failed their
 * check, or stopped by an error. */
static bool fill_over(struct dcres_pager *p)
{
	return atomic_load(&p->fill_pending) == atomic_load(&p->fill_bad) ||
	       atomic_load(&p->fill_error);
}

int dcres_pager_fill_wait(struct dcres_pager *p)
{
	int ret;

	pthread_mutex_lock(&p->fill_lock);
	while (!fill_over(p))
		pthread_cond_wait(&p->fill_done, &p->fill_lock);
	ret = atomic_load(&p->fill_error);
	if (!ret && atomic_load(&p->fill_pending))
		ret = -EBADMSG;
	pthread_mutex_unlock(&p->fill_lock);
	return ret;
}

bool pager_fill_active(const struct dcres_pager *p)
{
	return atomic_load(&p->fill_list) && atomic_load(&p->fill_go) &&
	       p->fill_next < p->fill_n && !atomic_load(&p->fill_error);
}

/* Wakes dcres_pager_fill_wait when the fill is over (done or failed). */
static void fill_settle(struct dcres_pager *p)
{
	if (!fill_over(p))
		return;
	pthread_mutex_lock(&p->fill_lock);
	pthread_cond_broadcast(&p->fill_done);
	pthread_mutex_unlock(&p->fill_lock);
}

/* Records a fetch error: the fill stops; faults on its pages wait. */
static void fill_fail(struct dcres_pager *p, int err)
{
	int none = 0;

	atomic_compare_exchange_strong(&p->fill_error, &none, err);
	fill_settle(p);
}

/* Records n consecutive pages from page first as loaded (on a fault, or
 * in the background) and local, then wakes the threads waiting on them:
 * they never see a page before the table does. */
static int fill_loaded(struct dcres_pager *p, uint64_t first, uint64_t n, bool on_fault)
{
	struct uffdio_range range = { (uint64_t)(uintptr_t)(p->base + first * DCRES_PAGE_SIZE),
				      n * DCRES_PAGE_SIZE };

	for (uint64_t i = 0; i < n; i++)
		atomic_store(&p->loc[first + i], DCRES_PAGER_LOCAL);
	atomic_fetch_add(&p->resident, n);
	atomic_fetch_add(&p->fill_loaded, n);
	atomic_fetch_sub(&p->fill_pending, n);
	if (on_fault)
		atomic_fetch_add(&p->fill_faults, n);
	if (ioctl(p->uffd, UFFDIO_WAKE, &range) < 0) {
		int err = errno;
		pr_perror("pager: waking threads waiting on pages %llu..%llu",
			  (unsigned long long)first, (unsigned long long)(first + n - 1));
		return -err;
	}
	return 0;
}

/* Copies n consecutive pages from buf into the region at page first and
 * records them as local (fill_loaded). A page found there already
 * (nothing else installs a page being filled, so never expected) is
 * kept. */
static int fill_install(struct dcres_pager *p, uint64_t first, uint64_t n, const uint8_t *buf,
			bool on_fault)
{
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)(p->base + first * DCRES_PAGE_SIZE),
		.src = (uint64_t)(uintptr_t)buf, .len = n * DCRES_PAGE_SIZE,
		.mode = UFFDIO_COPY_MODE_DONTWAKE,
	};

	if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0)
		return fill_loaded(p, first, n, on_fault);
	if (errno == EEXIST && n == 1) {
		pr_warn("pager: page %llu being filled was there already; kept it",
			(unsigned long long)first);
		return fill_loaded(p, first, 1, on_fault);
	}
	if (errno == EEXIST) {
		for (uint64_t i = 0; i < n; i++) {
			int ret = fill_install(p, first + i, 1, buf + i * DCRES_PAGE_SIZE, on_fault);
			if (ret)
				return ret;
		}
		return 0;
	}
	int err = errno;
	pr_perror("pager: loading pages %llu..%llu", (unsigned long long)first,
		  (unsigned long long)(first + n - 1));
	return -err;
}

static bool is_bad(const struct dcres_pager *p, uint64_t page)
{
	return p->fill_bad_bits[page / 64] & (1ull << (page % 64));
}

/* Page failed its check (why says how): never installed; reported, and
 * counted once. */
static void fill_bad_page(struct dcres_pager *p, uint64_t page, const char *why)
{
	if (!is_bad(p, page)) {
		p->fill_bad_bits[page / 64] |= 1ull << (page % 64);
		atomic_fetch_add(&p->fill_bad, 1);
		pr_err("pager: %s: the page is not loaded; accesses to it wait", why);
	}
	if (p->on_page_error)
		p->on_page_error(p->opaque, page, why);
}

/* Fetches pages[0..n) and installs them, runs of consecutive pages at
 * once; after a page failed its check, one at a time, so that the others
 * load and only the bad ones are left out (each reported). Returns 0, or
 * an error other than a page's check. */
static int fill_pages(struct dcres_pager *p, const uint64_t *pages, uint64_t n, bool on_fault)
{
	char err[512] = "";
	int ret = p->fill_fetch(p->fill_opaque, pages, n, p->fill_buf, err, sizeof(err));

	if (ret == -EBADMSG && n == 1) {
		fill_bad_page(p, pages[0], err);
		return 0;
	}
	if (ret == -EBADMSG) {
		for (uint64_t i = 0; i < n; i++)
			if ((ret = fill_pages(p, &pages[i], 1, on_fault)))
				return ret;
		return 0;
	}
	if (ret)
		pr_err("pager: %s", err[0] ? err : strerror(-ret));
	for (uint64_t i = 0, run; !ret && i < n; i += run) {
		for (run = 1; i + run < n && pages[i + run] == pages[i] + run; run++)
			;
		ret = fill_install(p, pages[i], run, p->fill_buf + i * DCRES_PAGE_SIZE, on_fault);
	}
	return ret;
}

void pager_fill_step(struct dcres_pager *p)
{
	uint64_t batch[DCRES_PAGER_FILL_BATCH];
	uint64_t n = 0;
	int ret;

	while (n < DCRES_PAGER_FILL_BATCH && p->fill_next < p->fill_n) {
		uint64_t page = p->fill_list[p->fill_next++];
		if (atomic_load(&p->loc[page]) == DCRES_PAGER_FILL && !is_bad(p, page))
			batch[n++] = page;
	}
	ret = n ? fill_pages(p, batch, n, false) : 0;
	if (ret)
		fill_fail(p, ret);
	else
		fill_settle(p);
}

int pager_fill_fault(struct dcres_pager *p, uint64_t idx)
{
	int ret;

	if (atomic_load(&p->fill_error))
		return atomic_load(&p->fill_error); /* the thread waits */
	if (is_bad(p, idx)) {
		if (p->on_page_error)
			p->on_page_error(p->opaque, idx, "its data failed its check when it was "
					 "loaded (the log names the file)");
		return -EBADMSG; /* the thread waits */
	}
	ret = fill_pages(p, &idx, 1, true);
	if (ret) {
		fill_fail(p, ret);
		return ret;
	}
	fill_settle(p);
	return 0;
}

void pager_fill_free(struct dcres_pager *p)
{
	free(p->fill_list);
	free(p->fill_buf);
	free(p->fill_bad_bits);
}
