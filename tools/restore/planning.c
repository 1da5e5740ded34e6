/* The restore plan: capacities, the planner, the plan file (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dcres/log.h"
#include "restore.h"

#define PLAN_ERR_MAX 4096

/* Whether the checkpoint's host part h was saved by sub k: by the id the
 * server reported then and now, or (a checkpoint or server without ids)
 * by its address. */
static bool saved_by(const Dcres__HostPart *h, const struct rst_host *sub)
{
	if (h->has_server_id && h->server_id.len == 16 && sub->has_id)
		return !memcmp(h->server_id.data, sub->id, 16);
	return h->address && !strcmp(h->address, sub->name);
}

/* The checkpoint's memory server that sub k is (saved_by), when it still
 * holds its part; 0 when none is. */
static unsigned same_as(const struct rst_run *r, unsigned k)
{
	const Dcres__Manifest *m = r->cd.manifest;

	for (size_t i = 0; i < m->n_hosts; i++) {
		unsigned id = m->hosts[i]->id;

		if (id > 0 && saved_by(m->hosts[i], &r->hosts[k])) {
			const struct rst_source *s = locate_holder(r, k, id);

			return s && s->host == k ? id : 0;
		}
	}
	return 0;
}

/* Writes "main=NAME sub-host 1=ADDR ..." into out (len bytes). */
static void host_mapping(const struct rst_run *r, char *out, size_t len)
{
	size_t used = 0;

	for (unsigned k = 0; k < r->nhosts && used < len; k++) {
		int n = k ? snprintf(out + used, len - used, " sub-host %u=%s", k, r->hosts[k].name)
			  : snprintf(out, len, "main=%s", r->hosts[0].name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Fills every host's pages and moved_in, and r->zero_pages, from the plan. */
static void count_pages(struct rst_run *r)
{
	const struct dcres_plan *p = &r->plan;

	for (uint64_t i = 0; i < p->npages; i++) {
		uint8_t t = p->target[i], s = p->source[i];

		if (t == DCRES_PLAN_ZERO) {
			r->zero_pages++;
			continue;
		}
		r->hosts[t].pages++;
		/* A sub that is none of the checkpoint's servers (same_as 0)
		 * takes every page from another host, the main host too. */
		if (t == DCRES_PLAN_MAIN ? s != DCRES_PLAN_MAIN
					 : s == DCRES_PLAN_MAIN || s != r->hosts[t].same_as)
			r->hosts[t].moved_in++;
	}
}

int planning_make(struct rst_run *r)
{
	struct dcres_plan_target targets[RST_MAX_HOSTS];
	char err[PLAN_ERR_MAX], hosts[PLAN_ERR_MAX];
	struct rst_host *m = &r->hosts[0];
	int ret;

	if (!m->has_capacity)
		m->capacity = r->nhosts == 1 ? r->cd.loc.npages : r->resident_pages;
	targets[0] = (struct dcres_plan_target){ .capacity = m->capacity };
	for (unsigned k = 1; k < r->nhosts; k++) {
		r->hosts[k].same_as = same_as(r, k);
		targets[k] = (struct dcres_plan_target){ .capacity = r->hosts[k].capacity,
							 .same_as = r->hosts[k].same_as };
	}
	/* QEMU reads its pages from the staged directory (stage.c). */
	ret = dcres_plan_make(&r->cd.loc, r->stage_dir, targets, r->nhosts, &r->plan, err,
			      sizeof(err));
	if (ret) {
		host_mapping(r, hosts, sizeof(hosts));
		pr_err("cannot restore %s onto %s: %s (nothing released or started)", r->dir,
		       hosts, err);
		return ret;
	}
	r->planned = true;
	count_pages(r);
	r->pages_moved = dcres_plan_moved(&r->plan, targets);
	ret = dcres_plan_write(r->plan_path, &r->plan, err, sizeof(err));
	if (ret)
		pr_err("%s", err);
	return ret;
}
