/* The pager's fault thread: serves missing-page faults from the memory
 * servers (or with zeros), queues those whose server is lost, and keeps
 * the resident set under the local limit. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dcres/log.h"
#include "pager-internal.h"
#include "uffd-move.h"

/* Installs page idx (a copy of buf, or a zero page when buf is NULL) and
 * records it as local, without waking the threads waiting on it: the
 * caller finishes its bookkeeping and wakes them (wake), so they never see
 * the page before the table and the move callback do. Returns 1 if the
 * page was already there (a second fault on one page), 0 if installed. */
static int install(struct dcres_pager *p, uint64_t idx, const void *buf)
{
	uint64_t addr = (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE);
	int ret;

	if (buf) {
		struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)buf,
					 .len = DCRES_PAGE_SIZE, .mode = UFFDIO_COPY_MODE_DONTWAKE };
		ret = ioctl(p->uffd, UFFDIO_COPY, &c);
	} else {
		struct uffdio_zeropage z = { .range = { addr, DCRES_PAGE_SIZE },
					     .mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE };
		ret = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z);
	}
	if (ret < 0 && errno != EEXIST) {
		int err = errno;
		pr_perror("installing page %llu", (unsigned long long)idx);
		return -err;
	}
	bool existed = ret < 0;
	if (!existed)
		atomic_fetch_add(&p->resident, 1);
	atomic_fetch_or(&p->history[idx], PAGER_HISTORY_SEEN);
	pager_touch(p, idx);
	atomic_store(&p->loc[idx], DCRES_PAGER_LOCAL);
	return existed;
}

/* Wakes the threads waiting on page idx. */
static int wake(struct dcres_pager *p, uint64_t idx)
{
	struct uffdio_range range = { (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE),
				      DCRES_PAGE_SIZE };

	if (ioctl(p->uffd, UFFDIO_WAKE, &range) < 0) {
		int err = errno;
		pr_perror("waking threads waiting on page %llu", (unsigned long long)idx);
		return -err;
	}
	return 0;
}

/* Remembers that the fault on page idx waits for its server to return. */
static int queue_pending(struct dcres_pager *p, uint64_t idx)
{
	if (p->npending == p->pending_cap) {
		size_t cap = p->pending_cap ? 2 * p->pending_cap : 64;
		uint64_t *n = realloc(p->pending, cap * sizeof(*n));
		if (!n) {
			pr_err("pager: no memory to queue the fault on page %llu",
			       (unsigned long long)idx);
			return -ENOMEM;
		}
		p->pending = n;
		p->pending_cap = cap;
	}
	p->pending[p->npending++] = idx;
	return 0;
}

/* Serves a fault on a never-written (or wrongly discarded) page with zeros. */
static int serve_zero(struct dcres_pager *p, uint64_t idx, uint8_t host)
{
	int ret = install(p, idx, NULL);

	if (ret < 0)
		return ret;
	if (ret == 0 && host == DCRES_PAGER_LOCAL)
		pr_err("page %llu was resident but is missing: discarded outside "
		       "the pager? installed zeros", (unsigned long long)idx);
	if (ret == 0) { /* not a second fault on a page already served */
		pthread_mutex_lock(&p->stats_lock);
		p->zero_fills++;
		pthread_mutex_unlock(&p->stats_lock);
	}
	return wake(p, idx);
}

/* Pages idx in from server host (srv), watch lock held. */
static int serve_remote(struct dcres_pager *p, uint64_t idx, struct pager_server *srv,
			uint8_t host, uint64_t t0)
{
	int ret = dcres_memclient_page_in(srv->client, &idx, p->buf, 1);

	if (ret) {
		pr_err("page %llu: page-in from %s failed: %s", (unsigned long long)idx,
		       srv->addr, strerror(-ret));
		if (!pager_server_unreachable(p, host - 1, ret)) {
			/* The server answered: the faulting thread waits. */
			if (p->on_page_error) {
				char why[640];
				const char *msg = dcres_memclient_error(srv->client);

				snprintf(why, sizeof(why), "memory server %s refused page %llu: %s",
					 srv->addr, (unsigned long long)idx,
					 *msg ? msg : strerror(-ret));
				p->on_page_error(p->opaque, idx, why);
			}
			return ret;
		}
		pager_server_lost(p, host - 1);
		return queue_pending(p, idx);
	}
	srv->free_pages++; /* the server released it */
	ret = install(p, idx, p->buf);
	if (ret < 0)
		return ret;
	atomic_fetch_sub(&srv->pages, 1);
	pager_report_moves_locked(p, &idx, 1, host, DCRES_PAGER_LOCAL);
	pthread_mutex_lock(&p->stats_lock);
	p->page_ins++;
	p->lat_us[p->nlat++ % PAGER_LAT_SAMPLES] = (uint32_t)(pager_now_us() - t0);
	pthread_mutex_unlock(&p->stats_lock);
	return wake(p, idx);
}

int pager_serve_fault(struct dcres_pager *p, uint64_t idx)
{
	uint8_t host = atomic_load(&p->loc[idx]);
	uint64_t t0 = pager_now_us();
	struct pager_server *srv;
	int ret;

	if (host == DCRES_PAGER_FILL)
		return pager_fill_fault(p, idx);
	if (host == DCRES_PAGER_ZERO || host == DCRES_PAGER_LOCAL)
		return serve_zero(p, idx, host);
	srv = &p->servers[host - 1];
	if (!atomic_load(&srv->up))
		return queue_pending(p, idx);
	/* The whole page-in under the watch lock: dcres_pager_hold_page_ins
	 * never sees one half done. */
	pthread_mutex_lock(&p->watch_lock);
	while (p->pageins_held)
		pthread_cond_wait(&p->pageins_go, &p->watch_lock);
	ret = serve_remote(p, idx, srv, host, t0);
	pthread_mutex_unlock(&p->watch_lock);
	return ret;
}

/* Fault thread: reads userfaultfd events until stopped. While a server is
 * lost it wakes up to try reaching it again; faults on its pages wait.
 * While a fill has pages to load it loads a batch between events. */
void *pager_fault_main(void *arg)
{
	struct dcres_pager *p = arg;
	struct pollfd fds[3] = { { p->uffd, POLLIN, 0 }, { p->stop_fd, POLLIN, 0 },
				 { p->kick_fd, POLLIN, 0 } };

	for (;;) {
		struct uffd_msg msg;
		int timeout = pager_fill_active(p) ? 0 : p->nlost ? PAGER_RECONNECT_MS / 4
							: p->restore_watch ? 1000 : -1;
		int n = poll(fds, 3, timeout);
		uint64_t kicks;

		if (n < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			break;
		if (fds[2].revents & POLLIN && read(p->kick_fd, &kicks, sizeof(kicks)) < 0)
			pr_perror("pager: reading the wake-up counter");
		if (p->nlost)
			pager_reconnect_lost(p);
		pager_poll_restore(p);
		if (n > 0 && (fds[0].revents & POLLIN) &&
		    read(p->uffd, &msg, sizeof(msg)) == sizeof(msg) &&
		    msg.event == UFFD_EVENT_PAGEFAULT) {
			uint64_t idx = (msg.arg.pagefault.address -
					(uint64_t)(uintptr_t)p->base) / DCRES_PAGE_SIZE;
			if (idx < p->npages && (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
				pager_wp_fault(p, idx);
			else if (idx < p->npages)
				pager_serve_fault(p, idx);
		} else if (pager_fill_active(p)) {
			pager_fill_step(p);
		}
		pager_enforce_limit(p);
	}
	return NULL;
}
