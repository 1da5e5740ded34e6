/* The VM's state through QMP: what it is, stopping and resuming it
 * (ckpt.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/uuid.h"

/* Migration states in which a migration is under way. */
static bool migration_busy(const char *status)
{
	static const char *const idle[] = { "", "none", "completed", "failed", "cancelled" };

	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		if (!strcmp(status, idle[i]))
			return false;
	return true;
}

int vm_status(struct ckpt_run *r, char *status, size_t len)
{
	struct json_object *ret;
	const char *s;
	int err;

	err = ckpt_qmp(r, "query-status", NULL, &ret);
	if (err)
		return err;
	s = dcres_qmp_get_str(ret, "status");
	snprintf(status, len, "%s", s ? s : "");
	json_object_put(ret);
	return 0;
}

/* Fills r->uuid from query-uuid (all zeros, with a warning, when the VM
 * has none). */
static int query_uuid(struct ckpt_run *r)
{
	struct json_object *ret;
	const char *s;
	int err;

	err = ckpt_qmp(r, "query-uuid", NULL, &ret);
	if (err)
		return err;
	s = dcres_qmp_get_str(ret, "UUID");
	if (!s || dcres_uuid_parse(s, r->uuid)) {
		pr_err("query-uuid: unexpected answer %s", json_object_to_json_string(ret));
		json_object_put(ret);
		return -EPROTO;
	}
	json_object_put(ret);
	for (int i = 0; i < 16; i++)
		if (r->uuid[i])
			return 0;
	pr_warn("the VM has no UUID (QEMU -uuid); the manifest records the nil UUID");
	return 0;
}

/* Fills r->qemu_version from query-version: "10.0.13 (package)". */
static int query_version(struct ckpt_run *r)
{
	struct json_object *ret, *qemu;
	uint64_t major = 0, minor = 0, micro = 0;
	const char *package;
	int err;

	err = ckpt_qmp(r, "query-version", NULL, &ret);
	if (err)
		return err;
	qemu = dcres_qmp_get_obj(ret, "qemu");
	dcres_qmp_get_u64(qemu, "major", &major);
	dcres_qmp_get_u64(qemu, "minor", &minor);
	dcres_qmp_get_u64(qemu, "micro", &micro);
	package = dcres_qmp_get_str(ret, "package");
	while (package && *package == ' ')
		package++;
	snprintf(r->qemu_version, sizeof(r->qemu_version), "%llu.%llu.%llu%s%s%s",
		 (unsigned long long)major, (unsigned long long)minor,
		 (unsigned long long)micro, package && *package ? " (" : "",
		 package && *package ? package : "", package && *package ? ")" : "");
	json_object_put(ret);
	return 0;
}

/* Parses a query-dcres answer into *d. */
static int parse_dcres(struct json_object *ret, struct ckpt_dcres *d)
{
	struct json_object *servers;
	const char *dir;
	size_t n;

	memset(d, 0, sizeof(*d));
	dir = dcres_qmp_get_str(ret, "id");
	snprintf(d->id, sizeof(d->id), "%s", dir ? dir : "");
	d->has_ram_size = dcres_qmp_get_u64(ret, "ram-size", &d->ram_size);
	dcres_qmp_get_u64(ret, "page-ins", &d->page_ins);
	dcres_qmp_get_u64(ret, "page-outs", &d->page_outs);
	dir = dcres_qmp_get_str(ret, "checkpoint-dir");
	snprintf(d->checkpoint_dir, sizeof(d->checkpoint_dir), "%s", dir ? dir : "");
	dir = dcres_qmp_get_str(ret, "checkpoint-state");
	snprintf(d->checkpoint_state, sizeof(d->checkpoint_state), "%s", dir ? dir : "");
	dir = dcres_qmp_get_str(ret, "checkpoint-error");
	snprintf(d->checkpoint_error, sizeof(d->checkpoint_error), "%s", dir ? dir : "");
	servers = dcres_qmp_get_obj(ret, "servers");
	n = servers && json_object_is_type(servers, json_type_array)
		    ? json_object_array_length(servers) : 0;
	if (n > CKPT_MAX_SERVERS) {
		pr_err("query-dcres lists %zu memory servers; at most %d are supported", n,
		       CKPT_MAX_SERVERS);
		return -E2BIG;
	}
	d->nservers = (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(servers, i);
		struct ckpt_server *srv = &d->servers[i];
		const char *addr = dcres_qmp_get_str(s, "address");

		snprintf(srv->address, sizeof(srv->address), "%s", addr ? addr : "?");
		srv->connected = dcres_qmp_get_bool(s, "connected");
		dcres_qmp_get_u64(s, "pages", &srv->pages);
		srv->has_ckpt_bytes = dcres_qmp_get_u64(s, "ckpt-bytes", &srv->ckpt_bytes);
	}
	return 0;
}

int vm_query_dcres(struct ckpt_run *r, struct ckpt_dcres *d)
{
	struct json_object *ret;
	int err;

	err = ckpt_qmp(r, "query-dcres", NULL, &ret);
	if (err)
		return err;
	err = parse_dcres(ret, d);
	json_object_put(ret);
	return err;
}

/* Finds out whether the VM is split (query-dcres answers) or ordinary
 * (GenericError: no dcres-split object; CommandNotFound: an unpatched
 * QEMU), and its RAM size. */
static int query_split(struct ckpt_run *r)
{
	char err[DCRES_QMP_ERR_MAX];
	struct json_object *ret;
	int ret_err;

	ret_err = dcres_qmp_execute(r->qmp, "query-dcres", NULL, &ret, err, sizeof(err));
	if (ret_err == -EREMOTEIO &&
	    (!strcmp(dcres_qmp_error_class(r->qmp), "GenericError") ||
	     !strcmp(dcres_qmp_error_class(r->qmp), "CommandNotFound"))) {
		if (!strcmp(dcres_qmp_error_class(r->qmp), "CommandNotFound"))
			pr_info("QEMU has no query-dcres (not the dcres-patched QEMU): "
				"checkpointing an ordinary VM");
		r->split = false;
	} else if (ret_err) {
		pr_err("%s", err);
		return ret_err;
	} else {
		r->split = true;
		ret_err = parse_dcres(ret, &r->before);
		json_object_put(ret);
		if (ret_err)
			return ret_err;
		if (r->before.has_ram_size) {
			r->ram_size = r->before.ram_size;
			return 0;
		}
	}
	/* An ordinary VM, or a QEMU whose query-dcres lacks ram-size. */
	ret_err = ckpt_qmp(r, "query-memory-size-summary", NULL, &ret);
	if (ret_err)
		return ret_err;
	if (!dcres_qmp_get_u64(ret, "base-memory", &r->ram_size) || !r->ram_size) {
		pr_err("query-memory-size-summary: no base-memory in %s",
		       json_object_to_json_string(ret));
		json_object_put(ret);
		return -EPROTO;
	}
	json_object_put(ret);
	return 0;
}

int vm_query(struct ckpt_run *r)
{
	struct ckpt_migration m;
	char status[64];
	int err;

	err = vm_status(r, status, sizeof(status));
	if (err)
		return err;
	r->was_running = !strcmp(status, "running");
	err = migrate_query(r, &m);
	if (err)
		return err;
	if (migration_busy(m.status)) {
		pr_err("a migration is already under way on this VM (status %s)", m.status);
		return -EBUSY;
	}
	err = query_uuid(r);
	if (!err)
		err = query_version(r);
	if (!err)
		err = query_split(r);
	if (err)
		return err;
	if (r->ram_size % CKPT_PAGE_SIZE) {
		pr_err("guest RAM of %llu bytes is not a whole number of %d-byte pages",
		       (unsigned long long)r->ram_size, CKPT_PAGE_SIZE);
		return -EINVAL;
	}
	pr_debug("VM %s, %s, RAM %llu bytes, %s", status, r->qemu_version,
		 (unsigned long long)r->ram_size, r->split ? "split" : "ordinary");
	return 0;
}

int vm_stop(struct ckpt_run *r)
{
	int err = ckpt_qmp(r, "stop", NULL, NULL);

	if (!err)
		r->stopped = true;
	return err;
}

/* Milliseconds since the epoch of a QMP event's timestamp, or -1. */
static int64_t event_time_ms(struct json_object *ev)
{
	struct json_object *ts = dcres_qmp_get_obj(ev, "timestamp");
	uint64_t s, us;

	if (!dcres_qmp_get_u64(ts, "seconds", &s) || !dcres_qmp_get_u64(ts, "microseconds", &us))
		return -1;
	return (int64_t)(s * 1000 + us / 1000);
}

int vm_resume(struct ckpt_run *r)
{
	char err[DCRES_QMP_ERR_MAX];
	struct json_object *ev, *stop = NULL;
	int ret;

	ret = ckpt_qmp(r, "cont", NULL, NULL);
	if (ret)
		return ret;
	r->resumed = true;
	/* The pause is the last STOP (ours, or the migration's) to RESUME. */
	while (!dcres_qmp_wait_event(r->qmp, "STOP", 0, &ev, err, sizeof(err))) {
		json_object_put(stop);
		stop = ev;
	}
	if (stop && !dcres_qmp_wait_event(r->qmp, "RESUME", 2000, &ev, err, sizeof(err))) {
		int64_t t0 = event_time_ms(stop), t1 = event_time_ms(ev);

		if (t0 >= 0 && t1 >= t0) {
			r->has_paused = true;
			r->paused_ms = t1 - t0;
		}
		json_object_put(ev);
	}
	json_object_put(stop);
	return 0;
}

/* Whether a memory server QEMU reported lost (DCRES_SERVER_LOST) during
 * the run is still lost (no DCRES_SERVER_BACK after it); logs it. Takes
 * every queued event. */
static bool server_lost(struct ckpt_run *r)
{
	char err[DCRES_QMP_ERR_MAX], addr[CKPT_MAX_SERVERS + 1][256];
	bool lost[CKPT_MAX_SERVERS + 1] = { false };
	struct json_object *ev;

	while (!dcres_qmp_wait_event(r->qmp, NULL, 0, &ev, err, sizeof(err))) {
		const char *name = dcres_qmp_get_str(ev, "event"), *a;
		struct json_object *data = dcres_qmp_get_obj(ev, "data");
		uint64_t k = 0;

		if (name && dcres_qmp_get_u64(data, "server", &k) && k >= 1 &&
		    k <= CKPT_MAX_SERVERS) {
			if (!strcmp(name, "DCRES_SERVER_LOST")) {
				lost[k] = true;
				a = dcres_qmp_get_str(data, "address");
				snprintf(addr[k], sizeof(addr[k]), "%s", a ? a : "?");
			} else if (!strcmp(name, "DCRES_SERVER_BACK")) {
				lost[k] = false;
			}
		}
		json_object_put(ev);
	}
	for (unsigned k = 1; k <= CKPT_MAX_SERVERS; k++) {
		if (lost[k]) {
			pr_warn("the VM stays paused: QEMU lost memory server %u (%s) and "
				"resumes the VM when it is back", k, addr[k]);
			return true;
		}
	}
	return false;
}

void vm_undo_stop(struct ckpt_run *r)
{
	char status[64];
	struct ckpt_dcres *d;

	if (!r->qmp || r->resumed || !r->was_running || !(r->stopped || r->completed))
		return;
	if (r->split && server_lost(r))
		return;
	if (vm_status(r, status, sizeof(status))) {
		pr_warn("the VM's state is unknown; it stays as it is");
		return;
	}
	if (!strcmp(status, "running"))
		return;
	/* postmigrate: our completed migration stopped it. paused: our stop,
	 * or dcres for a lost server (checked above and below). A server lost
	 * while the VM was stopped may go unnoticed until the VM runs; dcres
	 * then pauses it again on the first access to that server's pages. */
	if (strcmp(status, "postmigrate") && !(r->stopped && !strcmp(status, "paused"))) {
		pr_warn("the VM stays in state %s", status);
		return;
	}
	if (r->split) {
		d = &r->after; /* scratch: the run failed, after is not needed */
		if (vm_query_dcres(r, d)) {
			pr_warn("the VM stays paused: its memory servers' state is unknown");
			return;
		}
		for (unsigned k = 0; k < d->nservers; k++) {
			if (!d->servers[k].connected) {
				pr_warn("the VM stays paused: memory server %u (%s) is out of reach",
					k + 1, d->servers[k].address);
				return;
			}
		}
	}
	if (!ckpt_qmp(r, "cont", NULL, NULL)) {
		r->resumed = true;
		pr_info("the VM was resumed");
	}
}

int vm_wait_durable(struct ckpt_run *r)
{
	int64_t deadline = ckpt_now_ms() + DURABLE_TIMEOUT_MS;
	static struct ckpt_dcres d;
	int err;

	if (!r->split || r->opts.conventional)
		return 0;
	for (;;) {
		if ((err = vm_query_dcres(r, &d)))
			return err;
		if (strcmp(d.checkpoint_dir, r->dir)) {
			pr_err("QEMU took no D-CRES checkpoint into %s (its last one: %s)", r->dir,
			       d.checkpoint_dir[0] ? d.checkpoint_dir : "none");
			return -EIO;
		}
		if (!strcmp(d.checkpoint_state, "durable"))
			break;
		if (!strcmp(d.checkpoint_state, "failed")) {
			pr_err("the checkpoint into %s failed: %s", r->dir, d.checkpoint_error);
			return -EIO;
		}
		if (ckpt_interrupted) {
			pr_err("interrupted while the checkpoint into %s was being made durable",
			       r->dir);
			return -EINTR;
		}
		if (ckpt_now_ms() > deadline) {
			pr_err("the checkpoint into %s was not durable after %d s (state %s)",
			       r->dir, DURABLE_TIMEOUT_MS / 1000, d.checkpoint_state);
			return -ETIMEDOUT;
		}
		ckpt_nap(CKPT_FAST_POLL_MS);
	}
	r->dcres_mode = true;
	/* The servers' final byte counts; the paging counts stay those at
	 * completion (the VM has run since). */
	for (unsigned k = 0; k < d.nservers && k < r->after.nservers; k++)
		r->after.servers[k] = d.servers[k];
	return 0;
}

bool vm_dcres_is_ours(const struct ckpt_run *r, const struct ckpt_dcres *d)
{
	if (r->opts.conventional)
		return false;
	return !d->checkpoint_dir[0] || !strcmp(d->checkpoint_dir, r->dir);
}
