/* The migration into DIR/main.mem: capabilities, parameters, start,
 * polling and cancelling (ckpt.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ckpt.h"
#include "dcres/log.h"

#define CANCEL_TIMEOUT_MS 10000

/* Remembers the migration capabilities and parameters this run changes
 * (r->saved), and whether QEMU knows dcres-conventional. */
static int save_settings(struct ckpt_run *r)
{
	struct ckpt_settings *sv = &r->saved;
	struct json_object *ret;
	int err;

	err = ckpt_qmp(r, "query-migrate-capabilities", NULL, &ret);
	if (err)
		return err;
	for (size_t i = 0; json_object_is_type(ret, json_type_array) &&
			   i < json_object_array_length(ret); i++) {
		struct json_object *c = json_object_array_get_idx(ret, i);
		const char *cap = dcres_qmp_get_str(c, "capability");

		if (!cap)
			continue;
		if (!strcmp(cap, "mapped-ram"))
			sv->mapped_ram = dcres_qmp_get_bool(c, "state");
		else if (!strcmp(cap, "multifd"))
			sv->multifd = dcres_qmp_get_bool(c, "state");
		else if (!strcmp(cap, "dcres-conventional")) {
			sv->conventional = dcres_qmp_get_bool(c, "state");
			r->has_conventional_cap = true;
		}
	}
	json_object_put(ret);
	err = ckpt_qmp(r, "query-migrate-parameters", NULL, &ret);
	if (err)
		return err;
	sv->has_max_bandwidth = dcres_qmp_get_u64(ret, "max-bandwidth", &sv->max_bandwidth);
	sv->has_multifd_channels = dcres_qmp_get_u64(ret, "multifd-channels",
						     &sv->multifd_channels);
	sv->has_downtime_limit = dcres_qmp_get_u64(ret, "downtime-limit", &sv->downtime_limit);
	sv->direct_io = dcres_qmp_get_bool(ret, "direct-io");
	json_object_put(ret);
	sv->valid = true;
	return 0;
}

/* Appends {"capability": name, "state": state} to array caps. */
static void add_capability(struct json_object *caps, const char *name, bool state)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "capability", json_object_new_string(name));
	json_object_object_add(c, "state", json_object_new_boolean(state));
	json_object_array_add(caps, c);
}

int migrate_setup(struct ckpt_run *r)
{
	const struct ckpt_opts *o = &r->opts;
	struct json_object *args, *caps;
	int err;

	err = save_settings(r);
	if (err)
		return err;
	if (o->conventional && !r->has_conventional_cap) {
		pr_err("--conventional: this QEMU has no dcres-conventional migration "
		       "capability (it needs the dcres-patched QEMU with D-CRES checkpoints)");
		return -ENOTSUP;
	}
	caps = json_object_new_array();
	add_capability(caps, "mapped-ram", true);
	add_capability(caps, "multifd", o->parallel > 1);
	if (r->has_conventional_cap)
		add_capability(caps, "dcres-conventional", o->conventional);
	args = json_object_new_object();
	json_object_object_add(args, "capabilities", caps);
	err = ckpt_qmp(r, "migrate-set-capabilities", args, NULL);
	if (err)
		return err;

	/* max-bandwidth 0 is unlimited; QEMU's default is 128 MiB/s. */
	args = json_object_new_object();
	json_object_object_add(args, "max-bandwidth", json_object_new_int64(0));
	json_object_object_add(args, "direct-io", json_object_new_boolean(o->direct_io));
	json_object_object_add(args, "downtime-limit", json_object_new_int64(o->max_downtime_ms));
	if (o->parallel > 1)
		json_object_object_add(args, "multifd-channels",
				       json_object_new_int64(o->parallel));
	return ckpt_qmp(r, "migrate-set-parameters", args, NULL);
}

void migrate_restore_settings(struct ckpt_run *r)
{
	const struct ckpt_settings *sv = &r->saved;
	struct json_object *args, *caps;

	if (!sv->valid || !r->qmp)
		return;
	caps = json_object_new_array();
	add_capability(caps, "mapped-ram", sv->mapped_ram);
	add_capability(caps, "multifd", sv->multifd);
	if (r->has_conventional_cap)
		add_capability(caps, "dcres-conventional", sv->conventional);
	args = json_object_new_object();
	json_object_object_add(args, "capabilities", caps);
	if (ckpt_qmp(r, "migrate-set-capabilities", args, NULL))
		pr_warn("the VM keeps the migration capabilities of the checkpoint");
	args = json_object_new_object();
	if (sv->has_max_bandwidth)
		json_object_object_add(args, "max-bandwidth",
				       json_object_new_int64((int64_t)sv->max_bandwidth));
	if (sv->has_multifd_channels)
		json_object_object_add(args, "multifd-channels",
				       json_object_new_int64((int64_t)sv->multifd_channels));
	if (sv->has_downtime_limit)
		json_object_object_add(args, "downtime-limit",
				       json_object_new_int64((int64_t)sv->downtime_limit));
	json_object_object_add(args, "direct-io", json_object_new_boolean(sv->direct_io));
	if (ckpt_qmp(r, "migrate-set-parameters", args, NULL))
		pr_warn("the VM keeps the migration parameters of the checkpoint");
}

int migrate_start(struct ckpt_run *r)
{
	struct json_object *args = json_object_new_object();
	char uri[PATH_MAX + 8];

	snprintf(uri, sizeof(uri), "file:%s", r->mem_path);
	json_object_object_add(args, "uri", json_object_new_string(uri));
	/* From here on main.mem (and main.loc) are this run's. */
	r->migrate_started = true;
	return ckpt_qmp(r, "migrate", args, NULL);
}

int migrate_query(struct ckpt_run *r, struct ckpt_migration *m)
{
	struct json_object *ret, *ram;
	const char *s;
	int err;

	memset(m, 0, sizeof(*m));
	err = ckpt_qmp(r, "query-migrate", NULL, &ret);
	if (err)
		return err;
	s = dcres_qmp_get_str(ret, "status");
	snprintf(m->status, sizeof(m->status), "%s", s ? s : "");
	s = dcres_qmp_get_str(ret, "error-desc");
	snprintf(m->error, sizeof(m->error), "%s", s ? s : "(QEMU gave no reason)");
	m->has_times = dcres_qmp_get_u64(ret, "total-time", &m->total_time_ms) &&
		       dcres_qmp_get_u64(ret, "downtime", &m->downtime_ms);
	ram = dcres_qmp_get_obj(ret, "ram");
	dcres_qmp_get_u64(ram, "normal", &m->normal_pages);
	dcres_qmp_get_u64(ram, "normal-bytes", &m->normal_bytes);
	dcres_qmp_get_u64(ram, "transferred", &m->transferred);
	dcres_qmp_get_u64(ram, "remaining", &m->remaining);
	json_object_put(ret);
	return 0;
}

void ckpt_nap(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	if (!ckpt_interrupted)
		nanosleep(&ts, NULL);
}

/* Cancels the migration (after an interrupt, or with ret -EIO because a
 * server is lost) and waits until QEMU has finished it one way or
 * another; returns ret. */
static int cancel(struct ckpt_run *r, int ret)
{
	int64_t deadline = ckpt_now_ms() + CANCEL_TIMEOUT_MS;
	struct ckpt_migration m;

	progress_end();
	pr_err("%s: cancelling the migration", ret == -EINTR ? "interrupted" : "giving up");
	dcres_qmp_set_reply_timeout(r->qmp, INTERRUPTED_REPLY_TIMEOUT_MS);
	if (ckpt_qmp(r, "migrate_cancel", NULL, NULL))
		return ret;
	while (ckpt_now_ms() < deadline) {
		if (migrate_query(r, &m))
			return ret;
		if (!strcmp(m.status, "completed"))
			r->completed = true; /* too late to cancel: undone as a stop */
		if (!strcmp(m.status, "completed") || !strcmp(m.status, "failed") ||
		    !strcmp(m.status, "cancelled"))
			return ret;
		ckpt_nap(CKPT_POLL_MS);
	}
	pr_err("the migration did not end within %d s of migrate_cancel",
	       CANCEL_TIMEOUT_MS / 1000);
	return ret;
}

/* Whether a memory server of d has been out of reach for the run's
 * --lost-timeout (*since: when one was first seen so, 0 while all are
 * reachable); says which, naming it. QEMU fails the migration itself
 * within seconds, except when, under TCG, it stops the VM just as a vCPU
 * waits on one of that server's pages: stopping waits for that vCPU. */
static bool lost_too_long(struct ckpt_run *r, const struct ckpt_dcres *d, int64_t *since)
{
	for (unsigned k = 0; k < d->nservers; k++) {
		if (d->servers[k].connected)
			continue;
		if (!*since)
			*since = ckpt_now_ms();
		if (ckpt_now_ms() - *since < (int64_t)r->opts.lost_timeout_s * 1000)
			return false;
		progress_end();
		pr_err("the checkpoint into %s failed: memory server %u (%s) has been out of "
		       "reach for %u s", r->dir, k + 1, d->servers[k].address,
		       r->opts.lost_timeout_s);
		return true;
	}
	*since = 0;
	return false;
}

int migrate_wait(struct ckpt_run *r)
{
	struct ckpt_migration m;
	static struct ckpt_dcres d;
	int64_t lost_since = 0;
	int err;

	for (;;) {
		if (ckpt_interrupted)
			return cancel(r, -EINTR);
		err = migrate_query(r, &m);
		if (!err && r->split)
			err = vm_query_dcres(r, &d);
		if (err) {
			progress_end();
			return err;
		}
		if (!r->opts.quiet)
			progress_show(r, &m, r->split ? &d : NULL);
		if (r->split && strcmp(m.status, "completed") && lost_too_long(r, &d, &lost_since))
			return cancel(r, -EIO);
		if (!strcmp(m.status, "completed")) {
			progress_end();
			r->completed = true;
			r->created = time(NULL);
			r->mig = m;
			if (r->split)
				r->after = d;
			return 0;
		}
		if (!strcmp(m.status, "failed")) {
			progress_end();
			pr_err("the migration into %s failed: %s", r->mem_path, m.error);
			/* QEMU's own error may be generic; the checkpoint's names
			 * the server. */
			if (r->split && vm_query_dcres(r, &d) == 0 && vm_dcres_is_ours(r, &d) &&
			    d.checkpoint_error[0])
				pr_err("the checkpoint into %s failed: %s", r->dir, d.checkpoint_error);
			return -EIO;
		}
		if (!strcmp(m.status, "cancelled")) {
			progress_end();
			pr_err("the migration into %s was cancelled (not by this tool)",
			       r->mem_path);
			return -ECANCELED;
		}
		ckpt_nap(CKPT_FAST_POLL_MS);
	}
}
