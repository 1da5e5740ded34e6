/* Eviction: keeps the pages resident on the main host under the local
 * limit by sending the coldest (CLOCK over the aged access history) to
 * memory servers with room, in batches. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "dcres/log.h"
#include "pager-internal.h"
#include "uffd-move.h"

/* Picks up to max distinct resident, unpinned pages with the coldest
 * history, CLOCK style: the hand ages every page it passes and takes those
 * already at zero. Called with evict_lock held. */
static size_t pick_victims(struct dcres_pager *p, uint64_t *victims, size_t max)
{
	size_t n = 0;

	for (uint64_t steps = 0; n < max && steps < 9 * p->npages; steps++) {
		uint64_t i = p->hand;
		p->hand = p->hand + 1 == p->npages ? 0 : p->hand + 1;
		if (n && i == victims[0])
			break; /* once round since the first pick: the rest are taken */
		if (atomic_load(&p->loc[i]) != DCRES_PAGER_LOCAL || p->pins[i])
			continue;
		uint8_t h = atomic_load_explicit(&p->history[i], memory_order_relaxed);
		if (h) {
			atomic_store_explicit(&p->history[i], h >> 1, memory_order_relaxed);
			continue;
		}
		victims[n++] = i;
	}
	return n;
}

/* Moves page idx of the region to slot of the staging area or back:
 * atomically, so a vCPU write lands before the move or faults after it. */
static int move_page(struct dcres_pager *p, uint64_t idx, size_t slot, bool out)
{
	uint64_t guest = (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE);
	uint64_t stage = (uint64_t)(uintptr_t)(p->staging + slot * DCRES_PAGE_SIZE);
	struct uffdio_move m = {
		.dst = out ? stage : guest, .src = out ? guest : stage,
		.len = DCRES_PAGE_SIZE, .mode = UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (ioctl(p->uffd, UFFDIO_MOVE, &m) < 0) {
		int err = errno;
		pr_perror("UFFDIO_MOVE of page %llu %s", (unsigned long long)idx,
			  out ? "out of the guest" : "back into the guest");
		return -err;
	}
	return 0;
}

/* Sets or clears write-protection of page idx; clearing wakes the threads
 * whose writes waited on it. */
static int write_protect(struct dcres_pager *p, uint64_t idx, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE), DCRES_PAGE_SIZE },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (ioctl(p->uffd, UFFDIO_WRITEPROTECT, &w) < 0) {
		int err = errno;
		pr_perror("%s page %llu", wp ? "write-protecting" : "releasing the write-protection of",
			  (unsigned long long)idx);
		return -err;
	}
	return 0;
}

/* Takes page idx out of the guest into staging slot: moves it, or
 * write-protects it and copies it (a write meanwhile waits). */
static int take_page(struct dcres_pager *p, uint64_t idx, size_t slot)
{
	int ret;

	if (!p->evict_wp)
		return move_page(p, idx, slot, true);
	ret = write_protect(p, idx, true);
	if (!ret)
		memcpy(p->staging + slot * DCRES_PAGE_SIZE, p->base + idx * DCRES_PAGE_SIZE,
		       DCRES_PAGE_SIZE);
	return ret;
}

/* Gives page idx, taken into slot, back to the guest and wakes its waiters. */
static void put_back(struct dcres_pager *p, uint64_t idx, size_t slot)
{
	struct uffdio_range r = { (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE),
				  DCRES_PAGE_SIZE };

	if (p->evict_wp) {
		write_protect(p, idx, false);
		return;
	}
	move_page(p, idx, slot, false);
	ioctl(p->uffd, UFFDIO_WAKE, &r);
}

/* Drops the k pages the server now holds from this host. */
static void drop_taken(struct dcres_pager *p, const uint64_t *pages, size_t k)
{
	if (!p->evict_wp) {
		madvise(p->staging, k * DCRES_PAGE_SIZE, MADV_DONTNEED);
		return;
	}
	/* The next access is a missing fault; a write waiting on the
	 * write-protection is woken by the fault thread (pager_wp_fault)
	 * and faults again. */
	for (size_t i = 0; i < k; i++)
		if (madvise(p->base + pages[i] * DCRES_PAGE_SIZE, DCRES_PAGE_SIZE, MADV_DONTNEED))
			pr_perror("dropping evicted page %llu", (unsigned long long)pages[i]);
}

void pager_wp_fault(struct dcres_pager *p, uint64_t idx)
{
	write_protect(p, idx, false);
}

/* Records that the n pages of a page-out to server s whose answer never
 * came may be held there; they are released when it is back. */
static void note_doubtful(struct dcres_pager *p, unsigned s, const uint64_t *pages, size_t n)
{
	struct pager_server *srv = &p->servers[s];
	uint64_t *d = realloc(srv->doubtful, (srv->ndoubtful + n) * sizeof(*d));

	if (!d) {
		pr_err("pager: no memory to remember %zu pages %s may hold", n, srv->addr);
		return;
	}
	memcpy(d + srv->ndoubtful, pages, n * sizeof(*d));
	srv->doubtful = d;
	srv->ndoubtful += n;
}

/* The reachable server not yet tried with the most free room for n pages,
 * or -1. */
static int roomiest_server(const struct dcres_pager *p, const bool *tried, size_t n)
{
	int best = -1;

	for (unsigned s = 0; s < p->nservers; s++)
		if (!tried[s] && atomic_load(&p->servers[s].up) && p->servers[s].free_pages >= n &&
		    (best < 0 || p->servers[s].free_pages > p->servers[best].free_pages))
			best = (int)s;
	return best;
}

/* Sends the n staged pages to the reachable memory server with the most
 * free room, else the next, each at most once, so batches spread over the
 * servers by free capacity. Returns the server (0-based) or a negative
 * errno. */
static int send_staged(struct dcres_pager *p, const uint64_t *pages, size_t n)
{
	bool tried[256] = { false };
	int ret = -ENOSPC, s;

	while ((s = roomiest_server(p, tried, n)) >= 0) {
		struct pager_server *srv = &p->servers[s];
		tried[s] = true;
		ret = dcres_memclient_page_out(srv->client, pages, p->staging, n);
		if (ret == 0) {
			srv->free_pages -= n;
			return s;
		}
		if (dcres_memclient_reason(srv->client) == DCRES_MEM_REASON_NO_ROOM)
			srv->free_pages = 0;
		else if (pager_server_unreachable(p, (unsigned)s, ret)) {
			note_doubtful(p, (unsigned)s, pages, n);
			pager_server_lost(p, (unsigned)s);
		}
	}
	pr_err("pager: no memory server took %zu evicted pages: %s", n, strerror(-ret));
	return ret;
}

/* Evicts up to PAGER_EVICT_BATCH of the coldest resident pages to a memory
 * server. The pages leave the guest into the staging area (take_page); a
 * vCPU touching one meanwhile faults and is served (after this batch) from
 * the server. If no server takes them they go back. */
static int evict_batch(struct dcres_pager *p, size_t want)
{
	uint64_t victims[PAGER_EVICT_BATCH], moved[PAGER_EVICT_BATCH];
	size_t n, k = 0;
	int server;

	pthread_mutex_lock(&p->evict_lock);
	if (atomic_load(&p->evict_held)) {
		pthread_mutex_unlock(&p->evict_lock);
		return -EAGAIN;
	}
	n = pick_victims(p, victims, want < PAGER_EVICT_BATCH ? want : PAGER_EVICT_BATCH);
	for (size_t i = 0; i < n; i++)
		if (take_page(p, victims[i], k) == 0)
			moved[k++] = victims[i];
	if (k == 0) {
		pthread_mutex_unlock(&p->evict_lock);
		return n ? -EIO : -ENOSPC;
	}
	server = send_staged(p, moved, k);
	if (server < 0) {
		for (size_t i = 0; i < k; i++)
			put_back(p, moved[i], i);
		pthread_mutex_unlock(&p->evict_lock);
		return server;
	}
	for (size_t i = 0; i < k; i++)
		atomic_store(&p->loc[moved[i]], (uint8_t)(server + 1));
	drop_taken(p, moved, k);
	atomic_fetch_sub(&p->resident, k);
	atomic_fetch_add(&p->servers[server].pages, k);
	/* Under the lock, so a batch has been reported when a holder of
	 * eviction (dcres_pager_hold_eviction) goes on. */
	pager_report_moves(p, moved, k, DCRES_PAGER_LOCAL, (uint8_t)(server + 1));
	pthread_mutex_unlock(&p->evict_lock);
	pthread_mutex_lock(&p->stats_lock);
	p->page_outs += k;
	pthread_mutex_unlock(&p->stats_lock);
	return 0;
}

void pager_enforce_limit(struct dcres_pager *p)
{
	uint64_t r;

	while (p->local_limit && !atomic_load(&p->evict_held) &&
	       (r = atomic_load(&p->resident)) > p->local_limit)
		if (evict_batch(p, r - p->local_limit + PAGER_EVICT_BATCH / 2))
			break;
}
