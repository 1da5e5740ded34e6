/* The memory servers of the target set: connections, releasing the VM's
 * pages, free capacity (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dcres/log.h"
#include "restore.h"

#define RELEASE_RETRY_MS 10000 /* a VM QEMU just left may stay attached that long */
#define RELEASE_PAUSE_US 250000

/* Logs that sub h failed doing what, with the server's message (it says
 * why, e.g. that the VM still runs) or the error. */
static void server_error(const struct rst_host *h, const char *what, int err)
{
	const char *msg = h->c ? dcres_memclient_error(h->c) : "";

	pr_err("memory server %s: %s: %s", h->name, what, *msg ? msg : strerror(-err));
}

/* Connects to sub h and attaches to r's VM (not exclusively: QEMU will). */
static int connect_attach(const struct rst_run *r, struct rst_host *h)
{
	int ret = dcres_memclient_connect(h->name, &r->psk, RST_CONNECT_MS, &h->c);

	if (ret) {
		h->c = NULL;
		server_error(h, "cannot connect", ret);
		return ret;
	}
	ret = dcres_memclient_attach(h->c, r->uuid, r->ram_size);
	if (ret) {
		server_error(h, "cannot attach to the VM", ret);
		dcres_memclient_close(h->c);
		h->c = NULL;
	}
	return ret;
}

/* Prepares sub h: connected, capacity set to its free pages and the VM's
 * old ones there (at most --capacity). */
static int prepare_one(const struct rst_run *r, struct rst_host *h)
{
	struct dcres_memstats st;
	uint64_t free_pages;
	int ret;

	if ((ret = connect_attach(r, h)))
		return ret;
	ret = dcres_memclient_stats(h->c, &st);
	if (ret) {
		server_error(h, "cannot read its statistics", ret);
		return ret;
	}
	h->has_id = st.has_server_id;
	memcpy(h->id, st.server_id, sizeof(h->id));
	free_pages = st.capacity_pages > st.used_pages ? st.capacity_pages - st.used_pages : 0;
	free_pages += st.vm_pages;
	if (!h->has_capacity || h->capacity > free_pages)
		h->capacity = free_pages;
	pr_debug("memory server %s: %llu pages free (with VM %s's %llu old ones), capacity "
		 "%llu", h->name, (unsigned long long)free_pages, r->uuid_str,
		 (unsigned long long)st.vm_pages, (unsigned long long)h->capacity);
	return 0;
}

int servers_drop_old(struct rst_run *r)
{
	for (unsigned k = 1; k < r->nhosts; k++) {
		struct rst_host *h = &r->hosts[k];
		uint64_t released = 0;
		int ret = dcres_memclient_release(h->c, &released);

		if (ret) {
			server_error(h, "cannot release the VM's pages", ret);
			return ret;
		}
		pr_debug("memory server %s: released %llu old pages of VM %s", h->name,
			 (unsigned long long)released, r->uuid_str);
	}
	return 0;
}

int servers_prepare(struct rst_run *r)
{
	for (unsigned k = 1; k < r->nhosts; k++) {
		int ret = prepare_one(r, &r->hosts[k]);

		if (ret)
			return ret;
	}
	return 0;
}

/* Releases the VM's pages on sub h, reconnecting when its connection is
 * broken and retrying while the server refuses (QEMU's connections may
 * still be attached for a moment after it ended). */
static void release_one(const struct rst_run *r, struct rst_host *h)
{
	int64_t deadline = rst_now_ms() + RELEASE_RETRY_MS;
	int ret = -ENOTCONN;

	for (;;) {
		if (h->c || !connect_attach(r, h)) {
			ret = dcres_memclient_release(h->c, NULL);
			if (!ret) {
				h->dirty = false;
				return;
			}
			if (dcres_memclient_reason(h->c) != DCRES_MEM_REASON_BUSY) {
				dcres_memclient_close(h->c);
				h->c = NULL;
			}
		}
		if (rst_now_ms() >= deadline)
			break;
		usleep(RELEASE_PAUSE_US);
	}
	pr_warn("memory server %s may still hold pages this run loaded for VM %s (%s); "
		"they go when the VM is restored again", h->name, r->uuid_str,
		strerror(-ret));
}

void servers_release(struct rst_run *r)
{
	for (unsigned k = 1; k < r->nhosts; k++)
		if (r->hosts[k].dirty)
			release_one(r, &r->hosts[k]);
}

void servers_close(struct rst_run *r)
{
	for (unsigned k = 1; k < r->nhosts; k++) {
		dcres_memclient_close(r->hosts[k].c);
		r->hosts[k].c = NULL;
	}
}

int servers_start_loading(struct rst_run *r)
{
	for (unsigned k = 1; k < r->nhosts; k++) {
		struct rst_host *h = &r->hosts[k];
		uint64_t bad;
		int ret;

		if (!h->lazy_pages)
			continue;
		if ((!h->c && (ret = connect_attach(r, h))) ||
		    (ret = servers_pending(r, k, &h->pending_at_resume, &bad)))
			return ret;
		h->has_pending = true;
		ret = dcres_memclient_load(h->c);
		if (ret) {
			server_error(h, "cannot start loading the restored pages", ret);
			return ret;
		}
	}
	return 0;
}

int servers_pending(struct rst_run *r, unsigned k, uint64_t *pending, uint64_t *bad)
{
	struct rst_host *h = &r->hosts[k];
	struct dcres_memstats st;
	int ret;

	if (!h->c && (ret = connect_attach(r, h)))
		return ret;
	ret = dcres_memclient_stats(h->c, &st);
	if (ret) {
		server_error(h, "cannot read its statistics", ret);
		return ret;
	}
	*pending = st.restore_pending;
	*bad = st.restore_bad;
	return 0;
}
