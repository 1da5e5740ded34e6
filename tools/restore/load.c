/* Loading the sub-hosts' share of the plan, one thread per sub-host
 * (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/wire.h"
#include "restore.h"

#define PAGE_OUT_BATCH 256 /* pages read from main.mem and sent at once */
#define LAZY_CHUNK DCRES_WIRE_MAX_PAGES /* pages registered at once per source (lazy) */

/* One sub-host's loader thread. */
struct loader {
	struct rst_run *r;
	unsigned k;           /* the sub-host */
	pthread_t thread;
	bool started;
	int ret;
};

static atomic_bool load_failed;  /* a loader failed: the others stop */
static atomic_uint loaders_done;

/* Whether a loader should stop before its next batch. */
static bool should_stop(void)
{
	return atomic_load(&load_failed) || rst_interrupted;
}

/* Has sub-host h (index k) load pages[0..n) of checkpoint server src's
 * part: from its own copy when it holds one (the server reads its files),
 * otherwise from another server's copy, server to server. */
static int from_server(struct rst_run *r, unsigned k, unsigned src, const uint64_t *pages,
		       uint64_t n)
{
	struct rst_host *h = &r->hosts[k];
	const struct rst_source *s = locate_holder(r, k, src);
	bool own = s && s->host == k;

	if (!s) {
		pr_err("memory server %s: no server holds host %u's part to load it from",
		       h->name, src);
		return -ENOENT;
	}
	if (!own)
		pr_info("memory server %s loads %llu pages of host %u's part from %s", h->name,
			(unsigned long long)n, src, s->name);
	for (uint64_t done = 0; done < n && !should_stop();) {
		uint64_t chunk = n - done < DCRES_WIRE_MAX_PAGES ? n - done : DCRES_WIRE_MAX_PAGES;
		int ret = own ? dcres_memclient_restore(h->c, r->rel_dir, src, pages + done, chunk)
			      : dcres_memclient_restore_from(h->c, r->rel_dir, src, pages + done,
							     chunk, s->name);

		if (ret) {
			const char *msg = dcres_memclient_error(h->c);

			pr_err("memory server %s: loading pages of checkpoint host %u from %s%s%s: "
			       "%s", h->name, src, own ? "" : s->name, own ? "" : ", ", r->rel_dir,
			       *msg ? msg : strerror(-ret));
			return ret;
		}
		done += chunk;
		atomic_fetch_add(&h->loaded, chunk);
	}
	return 0;
}

/* Reads pages[0..n) (n <= PAGE_OUT_BATCH) from main.mem into buf, one
 * read per run of consecutive pages; pages whose bitmap bit is clear
 * (QEMU found them zero) read as zeros; with main.present, each other page
 * is checked against its CRC (-EBADMSG, logged, naming it). */
static int read_main(struct rst_run *r, const uint64_t *pages, uint64_t n, uint8_t *buf)
{
	for (uint64_t i = 0, run; i < n; i += run) {
		int ret;

		for (run = 1; i + run < n && pages[i + run] == pages[i] + run; run++)
			;
		ret = dcres_mrfile_read_pages(&r->cd.main, pages[i],
					      buf + i * RST_PAGE_SIZE, run);
		if (ret)
			return ret;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *page = buf + i * RST_PAGE_SIZE;

		if (!dcres_mrfile_test(&r->cd.main, pages[i])) {
			memset(page, 0, RST_PAGE_SIZE);
		} else if (r->cd.main_pres_ok &&
			   dcres_presence_check_page(&r->cd.main_pres, pages[i], page)) {
			pr_err("%s: page %llu is corrupted (checksum mismatch)", r->cd.main_path,
			       (unsigned long long)pages[i]);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Sends pages[0..n) of the main host's file main.mem to sub-host h. */
static int from_main(struct rst_run *r, struct rst_host *h, const uint64_t *pages, uint64_t n)
{
	uint8_t *buf = aligned_alloc(RST_PAGE_SIZE, (size_t)PAGE_OUT_BATCH * RST_PAGE_SIZE);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t done = 0; done < n && !ret && !should_stop();) {
		uint64_t batch = n - done < PAGE_OUT_BATCH ? n - done : PAGE_OUT_BATCH;

		ret = read_main(r, pages + done, batch, buf);
		if (ret)
			break;
		ret = dcres_memclient_page_out(h->c, pages + done, buf, batch);
		if (ret) {
			const char *msg = dcres_memclient_error(h->c);

			pr_err("memory server %s: storing pages %llu..%llu of %s: %s", h->name,
			       (unsigned long long)pages[done],
			       (unsigned long long)pages[done + batch - 1], r->cd.main_path,
			       *msg ? msg : strerror(-ret));
			break;
		}
		done += batch;
		atomic_fetch_add(&h->loaded, batch);
	}
	free(buf);
	return ret;
}

/* Lazy: registers pages[0..n) of checkpoint host src with sub-host k,
 * from its own copy or a holder's (pages from main.mem are sent now). */
static int register_chunk(struct rst_run *r, unsigned k, unsigned src, const uint64_t *pages,
			  uint64_t n)
{
	struct rst_host *h = &r->hosts[k];
	const struct rst_source *holder;
	bool own;
	int ret;

	if (src == DCRES_PLAN_MAIN)
		return from_main(r, h, pages, n);
	holder = locate_holder(r, k, src);
	if (!holder) {
		pr_err("memory server %s: no server holds host %u's part to load it from",
		       h->name, src);
		return -ENOENT;
	}
	own = holder->host == k;
	ret = dcres_memclient_restore_lazy(h->c, r->rel_dir, src, pages, n,
					   own ? NULL : holder->name);
	if (ret) {
		const char *msg = dcres_memclient_error(h->c);

		pr_err("memory server %s: registering pages of checkpoint host %u %s%s: %s",
		       h->name, src, own ? "" : "from ", own ? "" : holder->name,
		       *msg ? msg : strerror(-ret));
		return ret;
	}
	atomic_fetch_add(&h->loaded, n);
	h->lazy_pages += n;
	return 0;
}

/* Lazy: registers pages[0..n) (hottest first) with sub-host k, in pieces
 * of LAZY_CHUNK pages per source, so that the server loads them about
 * hottest first across sources. */
static int register_lazy(struct rst_run *r, unsigned k, const uint64_t *pages, uint64_t n)
{
	uint64_t *buf[256] = { NULL }, len[256] = { 0 };
	int ret = 0;

	for (uint64_t i = 0; i < n && !ret && !should_stop(); i++) {
		unsigned src = r->plan.source[pages[i]];

		if (!buf[src] && !(buf[src] = malloc(LAZY_CHUNK * sizeof(uint64_t)))) {
			ret = -ENOMEM;
			break;
		}
		buf[src][len[src]++] = pages[i];
		if (len[src] == LAZY_CHUNK) {
			ret = register_chunk(r, k, src, buf[src], len[src]);
			len[src] = 0;
		}
	}
	for (unsigned s = 0; s < 256; s++) {
		if (!ret && len[s] && !should_stop())
			ret = register_chunk(r, k, s, buf[s], len[s]);
		free(buf[s]);
	}
	return ret;
}

/* Sorts the pages planned for a host by their source host (page order
 * kept within one), counting each source's pages in count[]. */
static int by_source(const struct dcres_plan *p, const uint64_t *pages, uint64_t n,
		     uint64_t **out, uint64_t count[256])
{
	uint64_t start[256], *sorted = malloc((n ? n : 1) * sizeof(*sorted));

	if (!sorted)
		return -ENOMEM;
	memset(count, 0, 256 * sizeof(count[0]));
	for (uint64_t i = 0; i < n; i++)
		count[p->source[pages[i]]]++;
	start[0] = 0;
	for (unsigned s = 1; s < 256; s++)
		start[s] = start[s - 1] + count[s - 1];
	for (uint64_t i = 0; i < n; i++)
		sorted[start[p->source[pages[i]]]++] = pages[i];
	*out = sorted;
	return 0;
}

/* Loads pages[0..n) planned for sub-host k, source host by source host. */
static int load_eager(struct rst_run *r, unsigned k, const uint64_t *pages, uint64_t n)
{
	struct rst_host *h = &r->hosts[k];
	uint64_t *sorted = NULL, count[256], off = 0;
	int ret = by_source(&r->plan, pages, n, &sorted, count);

	for (unsigned s = 0; !ret && s < DCRES_PLAN_ZERO; off += count[s], s++) {
		if (!count[s])
			continue;
		ret = s == DCRES_PLAN_MAIN ? from_main(r, h, sorted + off, count[s])
					   : from_server(r, k, s, sorted + off, count[s]);
	}
	free(sorted);
	return ret;
}

/* Loads (or, lazy, registers) one sub-host's planned pages. */
static int load_host(struct rst_run *r, unsigned k)
{
	struct rst_host *h = &r->hosts[k];
	uint64_t *pages = NULL, n = 0;
	int ret;

	ret = dcres_plan_pages(&r->plan, (uint8_t)k, r->opts.lazy, &pages, &n);
	if (!ret)
		ret = r->opts.lazy ? register_lazy(r, k, pages, n) : load_eager(r, k, pages, n);
	if (!ret && should_stop())
		ret = -ECANCELED;
	if (ret == -ENOMEM)
		pr_err("memory server %s: out of memory listing its pages", h->name);
	free(pages);
	return ret;
}

/* Thread body: loads sub-host l->k, timing it. */
static void *loader_main(void *arg)
{
	struct loader *l = arg;
	struct rst_host *h = &l->r->hosts[l->k];
	int64_t t0 = rst_now_ms();

	l->ret = load_host(l->r, l->k);
	if (l->ret)
		atomic_store(&load_failed, true);
	h->loader_ms = rst_now_ms() - t0;
	/* Lazy: registered only; loaded once the server says so (incoming.c). */
	if (!l->r->opts.lazy) {
		h->load_ms = h->loader_ms;
		h->has_load_ms = !l->ret;
	}
	atomic_fetch_add(&loaders_done, 1);
	return NULL;
}

int load_servers(struct rst_run *r)
{
	struct loader loaders[RST_MAX_HOSTS] = { 0 };
	sigset_t stop_signals, old_mask;
	unsigned started = 0;
	int ret = 0;

	atomic_store(&load_failed, false);
	atomic_store(&loaders_done, 0);
	/* SIGINT and SIGTERM go to this thread, not into a loader's network
	 * call: the loaders see the flag between batches. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
	for (unsigned k = 1; k < r->nhosts; k++) {
		struct loader *l = &loaders[k];

		*l = (struct loader){ .r = r, .k = k };
		r->hosts[k].dirty = true;
		ret = -pthread_create(&l->thread, NULL, loader_main, l);
		if (ret) {
			pr_err("cannot start a thread for memory server %s: %s", r->hosts[k].name,
			       strerror(-ret));
			atomic_store(&load_failed, true);
			break;
		}
		l->started = true;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	/* Looks every 5 ms (a lazy restore's loaders are done in a few), shows
	 * progress every RST_POLL_MS; naps also after an interrupt. */
	for (unsigned naps = 0; atomic_load(&loaders_done) < started; naps++) {
		if (naps % (RST_POLL_MS / 5) == 0)
			progress_servers(r);
		usleep(5000);
	}
	for (unsigned k = 1; k < r->nhosts; k++) {
		if (!loaders[k].started)
			continue;
		pthread_join(loaders[k].thread, NULL);
		/* The first real failure, not a loader stopped because of it. */
		if (loaders[k].ret && (!ret || ret == -ECANCELED))
			ret = loaders[k].ret;
	}
	progress_servers(r);
	progress_end();
	if (ret == -ECANCELED && rst_interrupted)
		return rst_check_interrupt();
	return ret;
}
