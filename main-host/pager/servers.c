/* The pager's connections to its memory servers: connecting with fencing,
 * noticing a server out of reach, and bringing it back. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcres/log.h"
#include "pager-internal.h"

uint64_t pager_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int pager_server_connect(struct dcres_pager *p, unsigned s, int connect_timeout_ms)
{
	struct pager_server *srv = &p->servers[s];
	struct dcres_memclient *c;
	struct dcres_memstats ms;
	int ret;

	ret = dcres_memclient_connect(srv->addr, &p->psk, connect_timeout_ms, &c);
	if (ret)
		return ret;
	dcres_memclient_set_timeout(c, p->timeout_ms);
	ret = dcres_memclient_attach_exclusive(c, p->vm_uuid, p->size);
	if (ret)
		pr_err("pager: memory server %s refused the VM: %s", srv->addr,
		       dcres_memclient_error(c));
	else if (!(ret = dcres_memclient_stats(c, &ms)))
		srv->free_pages = ms.capacity_pages - ms.used_pages;
	if (ret) {
		dcres_memclient_close(c);
		return ret;
	}
	srv->client = c;
	atomic_store(&srv->up, true);
	return 0;
}

bool pager_server_unreachable(const struct dcres_pager *p, unsigned s, int ret)
{
	return ret && dcres_memclient_reason(p->servers[s].client) == DCRES_MEM_REASON_NONE;
}

void pager_server_lost(struct dcres_pager *p, unsigned s)
{
	struct pager_server *srv = &p->servers[s];

	pr_err("pager: memory server %u (%s) is out of reach; faults on its pages "
	       "wait until it is back", s + 1, srv->addr);
	atomic_store(&srv->up, false);
	dcres_memclient_close(srv->client);
	srv->client = NULL;
	if (p->nlost++ == 0)
		p->last_reconnect_us = pager_now_us();
	if (p->on_server && !srv->reported_lost) /* lost again before back: once */
		p->on_server(p->opaque, s + 1, false);
	srv->reported_lost = true;
}

/* Serves again every fault that waited: those on pages of a server now
 * back are served, the others wait on. */
static void serve_waiting(struct dcres_pager *p)
{
	uint64_t *list = p->pending;
	size_t n = p->npending;

	p->pending = NULL;
	p->npending = p->pending_cap = 0;
	for (size_t i = 0; i < n; i++)
		pager_serve_fault(p, list[i]);
	free(list);
}

/* Releases the pages a page-out to server s may have left there: the
 * server never answered, so the pager kept them. Fencing at reconnection
 * guarantees no late copy of that page-out arrives after this. */
static void release_doubtful(struct dcres_pager *p, unsigned s)
{
	struct pager_server *srv = &p->servers[s];

	for (size_t i = 0; i < srv->ndoubtful && srv->up; i++) {
		int ret = dcres_memclient_page_in(srv->client, &srv->doubtful[i], p->buf, 1);
		if (ret == 0)
			srv->free_pages++;
		else if (pager_server_unreachable(p, s, ret)) {
			pager_server_lost(p, s); /* released again next time */
			return;
		}
	}
	srv->ndoubtful = 0;
}

void pager_reconnect_lost(struct dcres_pager *p)
{
	uint64_t now = pager_now_us();

	if (now - p->last_reconnect_us < PAGER_RECONNECT_MS * 1000ull)
		return;
	p->last_reconnect_us = now;
	for (unsigned s = 0; s < p->nservers; s++) {
		struct pager_server *srv = &p->servers[s];
		/* A short connect timeout: faults on other servers wait meanwhile. */
		if (atomic_load(&srv->up) ||
		    pager_server_connect(p, s, p->timeout_ms < 500 ? p->timeout_ms : 500))
			continue;
		p->nlost--;
		serve_waiting(p);
		release_doubtful(p, s);
		if (!atomic_load(&srv->up))
			continue; /* lost again meanwhile */
		pr_info("pager: memory server %u (%s) is back", s + 1, srv->addr);
		srv->reported_lost = false;
		if (p->on_server) /* settled: its pages are where the table says */
			p->on_server(p->opaque, s + 1, true);
	}
}

void pager_poll_restore(struct dcres_pager *p)
{
	uint64_t now = pager_now_us() / 1000;
	bool pending = false;

	if (!p->restore_watch || now - p->restore_polled_ms < 1000)
		return;
	p->restore_polled_ms = now;
	for (unsigned s = 0; s < p->nservers; s++) {
		struct pager_server *srv = &p->servers[s];
		struct dcres_memstats st;

		if (!atomic_load(&srv->up)) {
			pending = true; /* ask again once it is back */
			continue;
		}
		if (dcres_memclient_stats(srv->client, &st)) {
			pending = true;
			continue;
		}
		atomic_store(&srv->restore_pending, st.restore_pending);
		atomic_store(&srv->restore_bad, st.restore_bad);
		pending |= st.restore_pending > 0;
	}
	p->restore_watch = pending;
}
