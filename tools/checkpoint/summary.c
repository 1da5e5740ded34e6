/* The summary of a completed run on stdout: as text, or as one JSON object
 * with --json (ckpt.h). */
#include <inttypes.h>
#include <stdio.h>

#include "ckpt.h"
#include "dcres/uuid.h"

/* The run's mode: "dcres" (main.loc written: pages stay where they are),
 * "conventional" (a split VM saved through the main host) or "ordinary"
 * (a VM without split memory). */
static const char *mode_name(const struct ckpt_run *r)
{
	if (!r->split)
		return "ordinary";
	return r->dcres_mode ? "dcres" : "conventional";
}

/* One host of the summary: id 0 is the main host. */
struct host_line {
	unsigned id;
	const char *address;
	bool has_bytes;
	uint64_t bytes;
	uint64_t pages;
};

/* Fills the host at index i (0: main host) of r; returns false past the
 * last one. Servers appear only in D-CRES mode (they hold no pages of a
 * conventional checkpoint). */
static bool host_at(const struct ckpt_run *r, unsigned i, struct host_line *h)
{
	if (i == 0) {
		*h = (struct host_line){ 0, "main", true, r->mig.normal_bytes, r->main_pages };
		return true;
	}
	if (!r->dcres_mode || i > r->after.nservers)
		return false;
	const struct ckpt_server *s = &r->after.servers[i - 1];

	*h = (struct host_line){ i, s->address,
				 s->has_ckpt_bytes && vm_dcres_is_ours(r, &r->after), s->ckpt_bytes,
				 r->server_pages[i - 1] };
	return true;
}

/* Prints the summary as one JSON object. */
static void print_json(const struct ckpt_run *r)
{
	struct json_object *o = json_object_new_object(), *hosts = json_object_new_array();
	char uuid[DCRES_UUID_STR_LEN];
	struct host_line h;
	char secs[32];

	dcres_uuid_format(r->uuid, uuid);
	/* Milliseconds are all the precision there is: print no more. */
	snprintf(secs, sizeof(secs), "%.3f", (double)(r->finished_ms - r->started_ms) / 1000);
	json_object_object_add(o, "dir", json_object_new_string(r->dir));
	json_object_object_add(o, "mode", json_object_new_string(mode_name(r)));
	json_object_object_add(o, "live", json_object_new_boolean(r->opts.live));
	json_object_object_add(o, "vm_uuid", json_object_new_string(uuid));
	json_object_object_add(o, "total_time_s",
			       json_object_new_double_s((double)(r->finished_ms - r->started_ms) /
							1000, secs));
	json_object_object_add(o, "durable_time_s",
			       json_object_new_double((double)(r->durable_ms - r->started_ms) /
						      1000));
	json_object_object_add(o, "migration_time_ms",
			       json_object_new_int64((int64_t)r->mig.total_time_ms));
	json_object_object_add(o, "downtime_ms",
			       json_object_new_int64((int64_t)r->mig.downtime_ms));
	json_object_object_add(o, "paused_ms",
			       r->has_paused ? json_object_new_int64(r->paused_ms) : NULL);
	for (unsigned i = 0; host_at(r, i, &h); i++) {
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "id", json_object_new_int64(h.id));
		json_object_object_add(j, "address", json_object_new_string(h.address));
		json_object_object_add(j, "bytes_written",
				       h.has_bytes ? json_object_new_uint64(h.bytes) : NULL);
		json_object_object_add(j, "pages", json_object_new_uint64(h.pages));
		json_object_array_add(hosts, j);
	}
	json_object_object_add(o, "hosts", hosts);
	json_object_object_add(o, "page_ins",
			       r->split ? json_object_new_uint64(r->after.page_ins -
								 r->before.page_ins) : NULL);
	json_object_object_add(o, "page_outs",
			       r->split ? json_object_new_uint64(r->after.page_outs -
								 r->before.page_outs) : NULL);
	json_object_object_add(o, "disk_snapshot",
			       r->snapshot[0] ? json_object_new_string(r->snapshot) : NULL);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Prints the summary as text. */
static void print_text(const struct ckpt_run *r)
{
	char uuid[DCRES_UUID_STR_LEN];
	struct host_line h;

	dcres_uuid_format(r->uuid, uuid);
	printf("checkpoint of VM %s in %s (%s%s, %s)\n", uuid, r->dir, mode_name(r),
	       r->split ? " mode" : " VM", r->opts.live ? "live" : "stopped");
	printf("  time: %.3f s in all, durable after %.3f s, migration %" PRIu64
	       " ms, downtime %" PRIu64 " ms",
	       (double)(r->finished_ms - r->started_ms) / 1000,
	       (double)(r->durable_ms - r->started_ms) / 1000, r->mig.total_time_ms,
	       r->mig.downtime_ms);
	if (r->has_paused)
		printf(", VM paused %" PRId64 " ms", r->paused_ms);
	printf("\n");
	for (unsigned i = 0; host_at(r, i, &h); i++) {
		printf("  host %u (%s): ", h.id, h.address);
		if (h.has_bytes)
			printf("%" PRIu64 " bytes written", h.bytes);
		else
			printf("bytes written unknown");
		printf(", %" PRIu64 " pages stored\n", h.pages);
	}
	if (r->split)
		printf("  paging during the checkpoint: %" PRIu64 " page-ins, %" PRIu64
		       " page-outs\n", r->after.page_ins - r->before.page_ins,
		       r->after.page_outs - r->before.page_outs);
	if (r->snapshot[0])
		printf("  disk snapshot: %s\n", r->snapshot);
}

void summary_print(const struct ckpt_run *r)
{
	if (r->opts.json)
		print_json(r);
	else
		print_text(r);
	fflush(stdout);
}
