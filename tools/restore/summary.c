/* The summary of a completed run on stdout: as text, or as one JSON
 * object with --json (restore.h). */
#include <inttypes.h>
#include <stdio.h>

#include "restore.h"

/* Pages the plan places on some host (every page but the never-written). */
static uint64_t pages_total(const struct rst_run *r)
{
	uint64_t n = 0;

	for (unsigned k = 0; k < r->nhosts; k++)
		n += r->hosts[k].pages;
	return n;
}

/* A new JSON integer, or NULL (JSON null) when has is false. */
static struct json_object *opt_int(bool has, int64_t v)
{
	return has ? json_object_new_int64(v) : NULL;
}

/* Prints the summary as one JSON object. */
static void print_json(const struct rst_run *r)
{
	struct json_object *o = json_object_new_object(), *hosts = json_object_new_array();

	json_object_object_add(o, "ckpt", json_object_new_string(r->dir));
	json_object_object_add(o, "vm_uuid", json_object_new_string(r->uuid_str));
	json_object_object_add(o, "lazy", json_object_new_boolean(r->opts.lazy));
	for (unsigned k = 0; k < r->nhosts; k++) {
		const struct rst_host *h = &r->hosts[k];
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "name", json_object_new_string(h->name));
		json_object_object_add(j, "role", json_object_new_string(k ? "sub" : "main"));
		json_object_object_add(j, "pages", json_object_new_uint64(h->pages));
		json_object_object_add(j, "pages_moved_in", json_object_new_uint64(h->moved_in));
		json_object_object_add(j, "load_ms", opt_int(h->has_load_ms, h->load_ms));
		json_object_object_add(j, "pending_at_resume",
				       h->has_pending ? json_object_new_uint64(h->pending_at_resume)
						      : NULL);
		json_object_array_add(hosts, j);
	}
	json_object_object_add(o, "hosts", hosts);
	json_object_object_add(o, "pages_total", json_object_new_uint64(pages_total(r)));
	json_object_object_add(o, "pages_moved", json_object_new_uint64(r->pages_moved));
	json_object_object_add(o, "zero_pages", json_object_new_uint64(r->zero_pages));
	json_object_object_add(o, "chain", json_object_new_int64(r->increment ? r->chain_layers : 1));
	json_object_object_add(o, "verify_ms", json_object_new_int64(r->verify_ms));
	json_object_object_add(o, "flatten_ms", json_object_new_int64(r->flatten_ms));
	json_object_object_add(o, "flat_dir", r->flat_dir[0] ?
			       json_object_new_string(r->flat_dir) : NULL);
	json_object_object_add(o, "plan_ms", json_object_new_int64(r->plan_ms));
	json_object_object_add(o, "servers_load_ms", json_object_new_int64(r->servers_load_ms));
	json_object_object_add(o, "qemu_start_ms", json_object_new_int64(r->qemu_start_ms));
	json_object_object_add(o, "main_load_ms", json_object_new_int64(r->main_load_ms));
	json_object_object_add(o, "resume_ms", json_object_new_int64(r->resume_ms));
	json_object_object_add(o, "time_to_run_ms", json_object_new_int64(r->time_to_run_ms));
	json_object_object_add(o, "loaded_ms", opt_int(r->has_loaded_ms, r->loaded_ms));
	json_object_object_add(o, "pending_at_resume",
			       r->has_pending ? json_object_new_uint64(r->pending_at_resume)
					      : NULL);
	json_object_object_add(o, "qemu_pid", json_object_new_int64(r->qemu_pid));
	json_object_object_add(o, "qmp", json_object_new_string(r->qmp_path));
	json_object_object_add(o, "plan", json_object_new_string(r->plan_path));
	json_object_object_add(o, "log", json_object_new_string(r->log_path));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Prints the summary as text. */
static void print_text(const struct rst_run *r)
{
	printf("restored VM %s from %s (%s); it runs in QEMU pid %d\n", r->uuid_str, r->dir,
	       r->opts.lazy ? "lazy" : "all pages loaded first", (int)r->qemu_pid);
	printf("  time to run %.3f s: verify %" PRId64 " ms, ", (double)r->time_to_run_ms / 1000,
	       r->verify_ms);
	if (r->increment)
		printf("flatten a chain of %u %" PRId64 " ms, ", r->chain_layers, r->flatten_ms);
	printf("plan %" PRId64 " ms, memory servers %" PRId64 " ms, QEMU start %" PRId64
	       " ms, main host %" PRId64 " ms, resume %" PRId64 " ms\n", r->plan_ms,
	       r->servers_load_ms, r->qemu_start_ms, r->main_load_ms, r->resume_ms);
	if (r->has_loaded_ms)
		printf("  every page loaded after %.3f s\n", (double)r->loaded_ms / 1000);
	else if (r->has_pending && r->pending_at_resume)
		printf("  %" PRIu64 " pages of the main host still to load at resume\n",
		       r->pending_at_resume);
	for (unsigned k = 0; k < r->nhosts; k++) {
		const struct rst_host *h = &r->hosts[k];

		if (k)
			printf("  sub-host %u %s: ", k, h->name);
		else
			printf("  main host %s: ", h->name);
		printf("%" PRIu64 " pages, %" PRIu64 " moved in", h->pages, h->moved_in);
		if (h->has_pending)
			printf(", %" PRIu64 " still to load at resume", h->pending_at_resume);
		if (h->has_load_ms)
			printf(", loaded in %" PRId64 " ms%s", h->load_ms,
			       r->opts.lazy ? " after the resume" : "");
		printf("\n");
	}
	printf("  pages: %" PRIu64 " in all, %" PRIu64 " moved, %" PRIu64 " never written\n",
	       pages_total(r), r->pages_moved, r->zero_pages);
	printf("  QMP %s, plan %s, log %s\n", r->qmp_path, r->plan_path, r->log_path);
	if (r->flat_dir[0])
		printf("  the chain flattened into %s (remove it once the VM is gone)\n",
		       r->flat_dir);
}

void summary_print(const struct rst_run *r)
{
	if (r->opts.json)
		print_json(r);
	else
		print_text(r);
	fflush(stdout);
}
