/* The main host's share through QMP: migrate-incoming from main.mem,
 * waiting for it, resuming the VM (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dcres/log.h"
#include "restore.h"

#define QMP_CONNECT_STEP_MS 1000   /* between checks that QEMU still runs */
#define QMP_CONNECT_TOTAL_MS 60000
#define REPLY_TIMEOUT_MS 60000

/* Runs one QMP command (args consumed); logs a failure with QEMU's error
 * and, when QEMU is gone, how it ended and its log's tail. */
static int qmp_cmd(struct rst_run *r, const char *command, struct json_object *args,
		   struct json_object **ret)
{
	char err[DCRES_QMP_ERR_MAX];
	int e = dcres_qmp_execute(r->qmp, command, args, ret, err, sizeof(err));

	if (e) {
		pr_err("%s", err);
		if (e == -ECONNRESET)
			qemu_alive(r);
	}
	return e;
}

/* Connects to QEMU's QMP socket once it listens; fails early when QEMU
 * exits. */
static int connect_qmp(struct rst_run *r)
{
	int64_t deadline = rst_now_ms() + QMP_CONNECT_TOTAL_MS;
	char err[DCRES_QMP_ERR_MAX];
	int e;

	for (;;) {
		if (!qemu_alive(r))
			return -ECHILD;
		if ((e = rst_check_interrupt()))
			return e;
		e = dcres_qmp_connect(r->qmp_path, QMP_CONNECT_STEP_MS, REPLY_TIMEOUT_MS,
				      &r->qmp, err, sizeof(err));
		if (!e)
			return 0;
		if (rst_now_ms() >= deadline)
			break;
	}
	pr_err("%s", err);
	pr_err("QEMU did not open its QMP socket %s within %d s", r->qmp_path,
	       QMP_CONNECT_TOTAL_MS / 1000);
	qemu_log_tail(r);
	return e;
}

/* Turns on mapped-ram and starts loading main.mem. */
static int start_incoming(struct rst_run *r)
{
	struct json_object *args = json_object_new_object(), *caps = json_object_new_array();
	struct json_object *cap = json_object_new_object();
	char uri[PATH_MAX + 8];
	int e;

	json_object_object_add(cap, "capability", json_object_new_string("mapped-ram"));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	if ((e = qmp_cmd(r, "migrate-set-capabilities", args, NULL)))
		return e;
	snprintf(uri, sizeof(uri), "file:%s", r->cd.main_path);
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	return qmp_cmd(r, "migrate-incoming", args, NULL);
}

/* The main host's restore counters from query-dcres, and (bad not NULL)
 * its pending pages that failed their check (0 when QEMU does not say):
 * false when QEMU does not report them (an older QEMU) or the query
 * failed. */
static bool query_counts(struct rst_run *r, uint64_t *loaded, uint64_t *pending,
			 uint64_t *bad)
{
	char err[DCRES_QMP_ERR_MAX];
	struct json_object *ret;
	bool ok;

	if (dcres_qmp_execute(r->qmp, "query-dcres", NULL, &ret, err, sizeof(err)))
		return false;
	ok = dcres_qmp_get_u64(ret, "restore-loaded", loaded) &&
	     dcres_qmp_get_u64(ret, "restore-pending", pending);
	if (bad && !dcres_qmp_get_u64(ret, "restore-bad", bad))
		*bad = 0;
	json_object_put(ret);
	return ok;
}

/* Polls query-migrate until the incoming migration completes, showing
 * progress; fails on failed or cancelled with QEMU's error, when QEMU
 * exits, on interrupt or after --timeout. */
static int wait_migration(struct rst_run *r)
{
	int64_t deadline = rst_now_ms() + (int64_t)r->opts.timeout_s * 1000;
	struct json_object *ret;
	uint64_t loaded = 0, pending = 0;
	char status[32];
	int nap = 5, polls = 0, e;

	for (;;) {
		const char *s;

		if ((e = rst_check_interrupt()))
			return e;
		if (!qemu_alive(r))
			return -ECHILD;
		if ((e = qmp_cmd(r, "query-migrate", NULL, &ret)))
			return e;
		s = dcres_qmp_get_str(ret, "status");
		snprintf(status, sizeof(status), "%s", s ? s : "");
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
			s = dcres_qmp_get_str(ret, "error-desc");
			progress_end();
			pr_err("loading %s into QEMU %s: %s", r->cd.main_path, status,
			       s ? s : "(QEMU gave no reason)");
			json_object_put(ret);
			qemu_log_tail(r);
			return -EIO;
		}
		json_object_put(ret);
		progress_main(r, status[0] ? status : "starting",
			      query_counts(r, &loaded, &pending, NULL), loaded, pending);
		if (!strcmp(status, "completed"))
			return 0;
		if (rst_now_ms() >= deadline) {
			progress_end();
			pr_err("loading %s did not complete within %u s (--timeout); status %s",
			       r->cd.main_path, r->opts.timeout_s, status);
			return -ETIMEDOUT;
		}
		/* Often for the first second or so: a lazy restore's device
		 * state loads in a few milliseconds. */
		rst_nap(nap);
		if (++polls > 200)
			nap = RST_POLL_MS;
	}
}

/* Whether every host has loaded its pages, polling the main host (QMP)
 * and each lazy sub (its server) once; records when each got there. A
 * host left with only pages that failed their check is -EBADMSG. */
static int all_loaded(struct rst_run *r, int64_t resumed_ms, bool *done)
{
	uint64_t loaded, pending, bad;
	bool main_ok;
	int e;

	*done = true;
	if (!query_counts(r, &loaded, &pending, &bad)) {
		progress_end();
		pr_warn("QEMU does not report restore-pending: not waiting for the main "
			"host's pages to be loaded");
		pending = 0;
	}
	progress_main(r, "running", true, loaded, pending);
	if (pending && pending == bad) {
		progress_end();
		pr_err("the main host: %llu restored pages failed their check and are never "
		       "given to the guest (QEMU's log %s names the file and page)",
		       (unsigned long long)bad, r->log_path);
		return -EBADMSG;
	}
	main_ok = pending == 0;
	if (main_ok && !r->hosts[0].has_load_ms) {
		r->hosts[0].has_load_ms = true;
		r->hosts[0].load_ms = rst_now_ms() - resumed_ms;
	}
	*done = main_ok;
	for (unsigned k = 1; k < r->nhosts; k++) {
		struct rst_host *h = &r->hosts[k];

		if (!h->lazy_pages || h->has_load_ms)
			continue;
		if ((e = servers_pending(r, k, &pending, &bad)))
			return e;
		if (pending && pending == bad) {
			progress_end();
			pr_err("memory server %s: %llu restored pages failed their check and are "
			       "never given to the guest (its log names the file and page)",
			       h->name, (unsigned long long)bad);
			return -EBADMSG;
		}
		if (pending) {
			*done = false;
			continue;
		}
		h->has_load_ms = true;
		h->load_ms = rst_now_ms() - resumed_ms;
	}
	return 0;
}

/* After cont with --lazy --wait-loaded: waits until no page planned for
 * any host is pending. */
static int wait_loaded(struct rst_run *r, int64_t resumed_ms)
{
	int64_t deadline = rst_now_ms() + (int64_t)r->opts.timeout_s * 1000;
	bool done;
	int e;

	for (;;) {
		if ((e = rst_check_interrupt()))
			return e;
		if (!qemu_alive(r))
			return -ECHILD;
		if ((e = all_loaded(r, resumed_ms, &done)))
			return e;
		if (done)
			break;
		if (rst_now_ms() >= deadline) {
			progress_end();
			pr_err("restored pages still pending after %u s (--timeout)",
			       r->opts.timeout_s);
			return -ETIMEDOUT;
		}
		rst_nap(RST_POLL_MS);
	}
	progress_end();
	r->has_loaded_ms = true;
	r->loaded_ms = rst_now_ms() - r->started_ms;
	return 0;
}

int incoming_run(struct rst_run *r)
{
	uint64_t loaded;
	int64_t t0;
	int e;

	if ((e = connect_qmp(r)))
		return e;
	r->qemu_start_ms = rst_now_ms() - r->qemu_started_at;
	/* Loading a large main.mem may keep QEMU from answering for a while. */
	dcres_qmp_set_reply_timeout(r->qmp, (int)r->opts.timeout_s * 1000);
	t0 = rst_now_ms();
	if ((e = start_incoming(r)) || (e = wait_migration(r)))
		return e;
	progress_end();
	r->main_load_ms = rst_now_ms() - t0;
	if (!r->opts.lazy) {
		r->hosts[0].has_load_ms = true;
		r->hosts[0].load_ms = r->main_load_ms;
	}
	r->has_pending = query_counts(r, &loaded, &r->pending_at_resume, NULL);
	r->hosts[0].has_pending = r->has_pending;
	r->hosts[0].pending_at_resume = r->pending_at_resume;
	t0 = rst_now_ms();
	if ((e = qmp_cmd(r, "cont", NULL, NULL)))
		return e;
	r->resume_ms = rst_now_ms() - t0;
	t0 = rst_now_ms();
	r->time_to_run_ms = t0 - r->started_ms;
	if (!r->opts.lazy)
		return 0;
	/* The VM runs: a server that cannot start loading serves its pages
	 * when the guest asks for them all the same. */
	if (servers_start_loading(r))
		pr_warn("the memory servers' pages load as the guest touches them");
	if (r->opts.wait_loaded)
		return wait_loaded(r, t0);
	return 0;
}
