/* dcres-inspect: the host table, the never-written pages and the access
 * history summary, from the manifest, main.loc and the opened files
 * (inspect.h). */
#include <stdio.h>
#include <stdlib.h>

#include "inspect.h"

const uint8_t insp_bucket_min[INSP_BUCKETS] = { 0, 1, 16, 64, 128 };
const char *const insp_bucket_name[INSP_BUCKETS] = { "0", "1-15", "16-63", "64-127",
						     "128-255" };

/* Index of history value v's bucket. */
static unsigned bucket_of(uint8_t v)
{
	unsigned b = INSP_BUCKETS - 1;

	while (v < insp_bucket_min[b])
		b--;
	return b;
}

/* Fills h's page count from its opened file, if any. */
static void stored_pages(const struct inspect *in, struct insp_host *h)
{
	if (h->id == 0) {
		h->has_stored = in->c.main_ok;
		h->pages_stored = in->c.main_pages;
	} else if (h->id < 256 && in->c.index_of[h->id] >= 0 &&
		   in->c.servers[in->c.index_of[h->id]].ok) {
		h->has_stored = true;
		h->pages_stored = in->c.servers[in->c.index_of[h->id]].pages;
	}
}

/* Lists the hosts: the manifest's, or without one the main host and the
 * servers found in the directory. */
static void list_hosts(struct inspect *in)
{
	const Dcres__Manifest *m = in->c.manifest;
	unsigned n = m ? (unsigned)m->n_hosts : 1 + in->c.nservers;

	in->hosts = calloc(n ? n : 1, sizeof(*in->hosts));
	if (!in->hosts) {
		fprintf(stderr, "dcres-inspect: out of memory\n");
		exit(1);
	}
	for (unsigned i = 0; m && i < n; i++) {
		const Dcres__HostPart *hp = m->hosts[i];
		struct insp_host *h = &in->hosts[in->nhosts++];

		h->id = hp->has_id ? hp->id : 255;
		h->address = hp->address;
		h->mem_file = hp->mem_file;
		h->has_saved = hp->has_pages;
		h->pages_saved = hp->pages;
	}
	if (!m) {
		in->hosts[in->nhosts++].mem_file = insp_basename(in->c.main_path);
		for (unsigned i = 0; i < in->c.nservers; i++) {
			struct insp_host *h = &in->hosts[in->nhosts++];

			h->id = in->c.servers[i].id;
			h->mem_file = insp_basename(in->c.servers[i].mem_path);
		}
	}
	for (unsigned i = 0; i < in->nhosts; i++)
		stored_pages(in, &in->hosts[i]);
}

/* Counts from main.loc: pages placed and hot per host, never-written
 * pages, main-host pages absent from main.mem, history buckets. */
static void count_loc(struct inspect *in)
{
	const struct dcres_loctable *t = &in->c.loc;
	uint64_t placed[256] = { 0 }, hot[256] = { 0 };

	for (uint64_t p = 0; p < t->npages; p++) {
		uint8_t h = t->host[p];

		placed[h]++;
		hot[h] += t->history[p] >> 7;
		in->buckets[bucket_of(t->history[p])]++;
		if (h == DCRES_LOC_MAIN && in->c.main_ok && !dcres_mrfile_test(&in->c.main, p))
			in->main_zero++;
	}
	in->zero_pages = placed[DCRES_LOC_ZERO];
	for (unsigned i = 0; i < in->nhosts; i++) {
		struct insp_host *h = &in->hosts[i];

		if (h->id < DCRES_LOC_ZERO) {
			h->pages_placed = placed[h->id];
			h->hot_pages = hot[h->id];
		}
	}
	in->have_loc_facts = true;
}

void insp_facts(struct inspect *in)
{
	if (!in->dir_opened || !in->c.servers)
		return;
	list_hosts(in);
	if (in->c.loc_ok)
		count_loc(in);
}
