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
	uint64_t sent, received; /* replication */
};

/* Adds the replication traffic of host h->id to h. */
static void add_replication(const struct ckpt_run *r, struct host_line *h)
{
	for (unsigned i = 0; i < r->nreplicas; i++) {
		const struct ckpt_replica *c = &r->replicas[i];

		if (c->part == h->id)
			h->sent += c->bytes;
		if (c->target == h->id)
			h->received += c->bytes;
	}
}

/* Fills the host at index i (0: main host) of r; returns false past the
 * last one. Servers appear only in D-CRES mode (they hold no pages of a
 * conventional checkpoint). */
static bool host_at(const struct ckpt_run *r, unsigned i, struct host_line *h)
{
	if (i == 0) {
		*h = (struct host_line){ .id = 0, .address = "main", .has_bytes = true,
					 .bytes = r->mig.normal_bytes, .pages = r->main_pages };
		add_replication(r, h);
		return true;
	}
	if (!r->dcres_mode || i > r->after.nservers)
		return false;
	const struct ckpt_server *s = &r->after.servers[i - 1];

	*h = (struct host_line){ .id = i, .address = s->address,
				 .has_bytes = s->has_ckpt_bytes && vm_dcres_is_ours(r, &r->after),
				 .bytes = s->ckpt_bytes, .pages = r->server_pages[i - 1] };
	add_replication(r, h);
	return true;
}

/* The replication part of the JSON summary (NULL without --replicas). */
static struct json_object *replication_json(const struct ckpt_run *r)
{
	struct json_object *o, *copies;

	if (!r->nreplicas)
		return NULL;
	o = json_object_new_object();
	copies = json_object_new_array();
	json_object_object_add(o, "replicas", json_object_new_int64(r->opts.replicas));
	json_object_object_add(o, "time_s", json_object_new_double(
				       (double)(r->replicated_ms - r->finished_ms) / 1000));
	json_object_object_add(o, "replicated_time_s", json_object_new_double(
				       (double)(r->replicated_ms - r->started_ms) / 1000));
	json_object_object_add(o, "survives_host_losses",
			       json_object_new_int64(replicate_survivable(r)));
	for (unsigned i = 0; i < r->nreplicas; i++) {
		const struct ckpt_replica *c = &r->replicas[i];
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "part", json_object_new_int64(c->part));
		json_object_object_add(j, "host", json_object_new_int64(c->target));
		json_object_object_add(j, "address",
				       json_object_new_string(r->parts[c->target - 1].address));
		json_object_object_add(j, "ok", json_object_new_boolean(c->ret == 0));
		json_object_object_add(j, "bytes", json_object_new_uint64(c->bytes));
		json_object_object_add(j, "time_ms", json_object_new_int64(c->ms));
		json_object_object_add(j, "error", c->ret ? json_object_new_string(c->error)
							  : NULL);
		json_object_array_add(copies, j);
	}
	json_object_object_add(o, "copies", copies);
	return o;
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
	if (r->dcres_mode) {
		dcres_uuid_format(r->ckpt_id, uuid);
		json_object_object_add(o, "checkpoint_id", json_object_new_string(uuid));
	}
	json_object_object_add(o, "parent", r->has_parent ?
			       json_object_new_string(r->parent_dir) : NULL);
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
		if (r->nreplicas) {
			json_object_object_add(j, "replica_bytes_sent",
					       json_object_new_uint64(h.sent));
			json_object_object_add(j, "replica_bytes_received",
					       json_object_new_uint64(h.received));
		}
		json_object_array_add(hosts, j);
	}
	json_object_object_add(o, "hosts", hosts);
	json_object_object_add(o, "page_ins",
			       r->split ? json_object_new_uint64(r->after.page_ins -
								 r->before.page_ins) : NULL);
	json_object_object_add(o, "page_outs",
			       r->split ? json_object_new_uint64(r->after.page_outs -
								 r->before.page_outs) : NULL);
	json_object_object_add(o, "replication", replication_json(r));
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
	if (r->has_parent)
		printf("  incremental on %s: only the pages changed since\n", r->parent_dir);
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
		printf(", %" PRIu64 " pages stored", h.pages);
		if (r->nreplicas)
			printf("; replicas: %" PRIu64 " bytes sent, %" PRIu64 " received", h.sent,
			       h.received);
		printf("\n");
	}
	if (r->nreplicas) {
		printf("  replication: %.3f s (replicated %.3f s after the start); survives "
		       "the loss of %u host(s)\n", (double)(r->replicated_ms - r->finished_ms) / 1000,
		       (double)(r->replicated_ms - r->started_ms) / 1000, replicate_survivable(r));
		for (unsigned i = 0; i < r->nreplicas; i++) {
			const struct ckpt_replica *c = &r->replicas[i];

			if (c->ret)
				printf("    missing: copy of host %u's part on host %u (%s): %s\n",
				       c->part, c->target, r->parts[c->target - 1].address, c->error);
		}
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
