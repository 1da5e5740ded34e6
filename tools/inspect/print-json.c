/* dcres-inspect: the report as one JSON object on stdout (inspect.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dcres/uuid.h"
#include "inspect.h"

/* Adds key: value to obj (value NULL: JSON null). */
static void put(struct json_object *obj, const char *key, struct json_object *value)
{
	json_object_object_add(obj, key, value);
}

/* A JSON string of s, or null when s is NULL. */
static struct json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* A JSON number of v, or null when it is unknown. */
static struct json_object *u64_or_null(bool known, uint64_t v)
{
	return known ? json_object_new_uint64(v) : NULL;
}

/* ck's errors joined by "; " (null when it has none). */
static struct json_object *errors_joined(const struct insp_check *ck)
{
	struct json_object *s;
	size_t len = 1;
	char *buf;

	if (!ck->nerrors)
		return NULL;
	for (size_t i = 0; i < ck->nerrors; i++)
		len += strlen(ck->errors[i]) + 2;
	buf = calloc(1, len);
	if (!buf)
		return json_object_new_string(ck->errors[0]);
	for (size_t i = 0; i < ck->nerrors; i++) {
		if (i)
			strcat(buf, "; ");
		strcat(buf, ck->errors[i]);
	}
	s = json_object_new_string(buf);
	free(buf);
	return s;
}

/* The manifest's description of the checkpoint, into o. */
static void put_manifest(const struct inspect *in, struct json_object *o)
{
	const Dcres__Manifest *m = in->c.manifest;
	char uuid[DCRES_UUID_STR_LEN];

	if (m && m->has_vm_uuid && m->vm_uuid.len == 16)
		dcres_uuid_format(m->vm_uuid.data, uuid);
	put(o, "vm_uuid", m && m->has_vm_uuid && m->vm_uuid.len == 16
				  ? json_object_new_string(uuid) : NULL);
	put(o, "ram_size", u64_or_null(m && m->has_ram_size, m ? m->ram_size : 0));
	put(o, "page_size", u64_or_null(m && m->has_page_size, m ? m->page_size : 0));
	put(o, "qemu_version", str_or_null(m ? m->qemu_version : NULL));
	put(o, "created_unix", u64_or_null(m && m->has_created_unix, m ? m->created_unix : 0));
	put(o, "live", m && m->has_live ? json_object_new_boolean(m->live) : NULL);
	put(o, "disk_snapshot", str_or_null(m ? m->disk_snapshot : NULL));
	put(o, "conventional", json_object_new_boolean(in->conventional));
	put(o, "parent", str_or_null(m && m->parent ? m->parent->dir : NULL));
}

/* An increment's layers, newest first (the checkpoint itself first), or
 * null when it is full or its chain did not open. */
static struct json_object *chain(const struct inspect *in)
{
	struct json_object *a;

	if (!in->nchain)
		return NULL;
	a = json_object_new_array();
	for (unsigned i = 0; i < in->nchain; i++)
		json_object_array_add(a, json_object_new_string(in->chain[i]));
	return a;
}

/* The host table. */
static struct json_object *hosts(const struct inspect *in)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < in->nhosts; i++) {
		const struct insp_host *h = &in->hosts[i];
		struct json_object *o = json_object_new_object();

		put(o, "id", json_object_new_uint64(h->id));
		put(o, "address", str_or_null(h->address));
		put(o, "mem_file", str_or_null(h->mem_file));
		put(o, "pages_saved", u64_or_null(h->has_saved, h->pages_saved));
		put(o, "pages_stored", u64_or_null(h->has_stored, h->pages_stored));
		put(o, "pages_placed", u64_or_null(in->have_loc_facts, h->pages_placed));
		put(o, "hot_pages", u64_or_null(in->have_loc_facts, h->hot_pages));
		json_object_array_add(a, o);
	}
	return a;
}

/* The history buckets and the hot total, or null without main.loc. */
static struct json_object *history(const struct inspect *in)
{
	struct json_object *o;

	if (!in->have_loc_facts)
		return NULL;
	o = json_object_new_object();
	for (unsigned b = 0; b < INSP_BUCKETS; b++)
		put(o, insp_bucket_name[b], json_object_new_uint64(in->buckets[b]));
	put(o, "hot", json_object_new_uint64(in->buckets[INSP_BUCKETS - 1]));
	return o;
}

/* The file checksums: {name, ok, error?} per file the manifest lists. */
static struct json_object *files(const struct inspect *in)
{
	struct json_object *a = json_object_new_array();

	for (const struct insp_check *ck = in->checks; ck; ck = ck->next) {
		struct json_object *o;

		if (ck->section != INSP_CHECKSUM)
			continue;
		o = json_object_new_object();
		put(o, "name", json_object_new_string(ck->name));
		put(o, "ok", json_object_new_boolean(ck->state == INSP_OK));
		if (ck->nerrors)
			put(o, "error", errors_joined(ck));
		json_object_array_add(a, o);
	}
	return a;
}

/* The corrupted pages: {file, page}. */
static struct json_object *bad_pages(const struct inspect *in)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < in->nbad; i++) {
		struct json_object *o = json_object_new_object();

		put(o, "file", json_object_new_string(in->bad[i].file));
		put(o, "page", json_object_new_uint64(in->bad[i].page));
		json_object_array_add(a, o);
	}
	return a;
}

/* The disks: {file, ok, media_size, ..., error?}. */
static struct json_object *disks(const struct inspect *in)
{
	static const char *const snap[] = { NULL, "unknown", "missing" };
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < in->ndisks; i++) {
		const struct insp_disk *d = &in->disks[i];
		struct json_object *o = json_object_new_object();

		put(o, "file", json_object_new_string(d->file));
		put(o, "ok", json_object_new_boolean(d->check->state == INSP_OK));
		put(o, "from_manifest", json_object_new_boolean(d->from_manifest));
		put(o, "format_version", u64_or_null(d->opened, d->format_version));
		put(o, "media_size", u64_or_null(d->opened, d->media_size));
		put(o, "encrypted", d->opened ? json_object_new_boolean(d->encryption != 0) : NULL);
		put(o, "snapshots", u64_or_null(d->opened, (uint64_t)d->nsnapshots));
		put(o, "backing_file", str_or_null(d->backing_file));
		put(o, "snapshot", str_or_null(snap[d->snapshot]));
		if (d->check->nerrors)
			put(o, "error", errors_joined(d->check));
		json_object_array_add(a, o);
	}
	return a;
}

/* Every check: {section, name, state, detail?, errors?}. */
static struct json_object *checks(const struct inspect *in)
{
	static const char *const section[] = { "structure", "checksum", "pages", "disk" };
	static const char *const state[] = { "ok", "failed", "skipped" };
	struct json_object *a = json_object_new_array();

	for (const struct insp_check *ck = in->checks; ck; ck = ck->next) {
		struct json_object *o = json_object_new_object();

		put(o, "section", json_object_new_string(section[ck->section]));
		put(o, "name", json_object_new_string(ck->name));
		put(o, "state", json_object_new_string(state[ck->state]));
		if (ck->detail)
			put(o, "detail", json_object_new_string(ck->detail));
		if (ck->nerrors) {
			struct json_object *e = json_object_new_array();

			for (size_t i = 0; i < ck->nerrors; i++)
				json_object_array_add(e, json_object_new_string(ck->errors[i]));
			put(o, "errors", e);
		}
		json_object_array_add(a, o);
	}
	return a;
}

/* The servers' parts read through a server: where from, where copies are. */
static struct json_object *remote_parts(const struct inspect *in)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < in->view.nparts; i++) {
		const struct ckptview_part *p = &in->view.parts[i];
		struct json_object *j = json_object_new_object();

		put(j, "id", json_object_new_int64(p->id));
		put(j, "read_from", json_object_new_string(p->from));
		put(j, "copies_on", json_object_new_string(p->holders));
		json_object_array_add(a, j);
	}
	return a;
}

void insp_print_json(const struct inspect *in)
{
	struct json_object *o = json_object_new_object();

	put(o, "dir", json_object_new_string(in->given_dir));
	put(o, "remote_parts", remote_parts(in));
	put_manifest(in, o);
	put(o, "chain", chain(in));
	put(o, "hosts", hosts(in));
	put(o, "zero_pages", u64_or_null(in->have_loc_facts, in->zero_pages));
	put(o, "main_zero_pages", u64_or_null(in->have_loc_facts && in->c.main_ok,
					      in->main_zero));
	put(o, "history", history(in));
	put(o, "verified", json_object_new_boolean(in->verify));
	put(o, "files", files(in));
	put(o, "bad_pages", bad_pages(in));
	put(o, "disks", disks(in));
	put(o, "checks", checks(in));
	put(o, "ok", json_object_new_boolean(insp_failures(in) == 0));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
