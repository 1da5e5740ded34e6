/* dcres-inspect: opening the checkpoint part by part, one check each, and
 * the checks across parts: page counts and placement (inspect.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/ckptchain.h"
#include "inspect.h"

/* Checks DIR/manifest: readable, valid, and there (a directory without one
 * is not a complete checkpoint). */
static void open_manifest(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "manifest");
	int ret = ckptdir_load_manifest(&in->c);
	const Dcres__Manifest *m = in->c.manifest;

	if (!ret && !m)
		insp_check_fail(ck, "%s/%s: missing: not a complete checkpoint", in->dir,
				DCRES_MANIFEST_NAME);
	in->conventional = m && !m->loc_file;
	if (m)
		insp_check_detail(ck, "version %u, %zu hosts, %zu files%s", m->version,
				  m->n_hosts, m->n_files,
				  in->conventional ? "; conventional checkpoint (no main.loc):"
						     " every page is in main.mem" : "");
	insp_check_end(ck, ret);
}

/* Checks main.loc: readable, valid, consistent with the manifest. */
static void open_loc(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "%s",
						 insp_basename(in->c.loc_path));
	int ret = ckptdir_open_loc(&in->c);

	if (!ret)
		insp_check_detail(ck, "%llu pages of %u bytes",
				  (unsigned long long)in->c.loc.npages, in->c.loc.page_size);
	insp_check_end(ck, ret);
}

/* Checks main.mem: its MappedRamHeader matches main.loc's geometry and its
 * bitmap is readable. */
static void open_main(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "%s",
						 insp_basename(in->c.main_path));
	int ret;

	if (!in->c.loc_ok) {
		insp_check_skip(ck, "needs main.loc's geometry");
		return;
	}
	ret = ckptdir_open_main(&in->c);
	if (!ret)
		insp_check_detail(ck, "mapped-ram header of block '%s' matches main.loc; "
				  "%llu pages in its bitmap", in->c.loc.main_file.block_id,
				  (unsigned long long)in->c.main_pages);
	insp_check_end(ck, ret);
}

/* Checks main.present, when the checkpoint has one: readable, valid, and
 * listing exactly main.mem's pages of the main host. */
static void open_main_present(struct inspect *in)
{
	struct insp_check *ck;
	int ret;

	if (!in->c.main_present_path[0])
		return; /* a checkpoint made before main.present */
	ck = insp_check_begin(in, INSP_STRUCTURE, "%s", insp_basename(in->c.main_present_path));
	if (!in->c.main_ok) {
		insp_check_skip(ck, "needs main.mem");
		return;
	}
	ret = ckptdir_open_main_present(&in->c);
	if (!ret)
		insp_check_detail(ck, "%llu pages, those of %s on the main host",
				  (unsigned long long)dcres_presence_count(&in->c.main_pres),
				  insp_basename(in->c.main_path));
	insp_check_end(ck, ret);
}

/* Checks the server list and each server's memory and presence files. */
static void open_servers(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "memory servers");
	int ret = ckptdir_find_servers(&in->c);

	if (!ret)
		insp_check_detail(ck, "%u listed%s", in->c.nservers,
				  in->c.loc_ok ? ", every host main.loc names among them" : "");
	insp_check_end(ck, ret);
	for (unsigned i = 0; i < in->c.nservers; i++) {
		struct ckptdir_server *s = &in->c.servers[i];

		ck = insp_check_begin(in, INSP_STRUCTURE, "%s, %s", insp_basename(s->mem_path),
				      insp_basename(s->present_path));
		if (!in->c.loc_ok) {
			insp_check_skip(ck, "needs main.loc's geometry");
			continue;
		}
		ret = ckptdir_open_server(&in->c, s);
		if (!ret)
			insp_check_detail(ck, "host %u, headers agree with main.loc, %llu pages",
					  s->id, (unsigned long long)s->pages);
		insp_check_end(ck, ret);
	}
}

void insp_open_parts(struct inspect *in)
{
	int ret = ckptdir_init(&in->c, in->dir);

	in->dir_opened = true;
	if (ret) {
		insp_check_end(insp_check_new(in, INSP_STRUCTURE, "%s", in->dir), ret);
		return;
	}
	open_manifest(in);
	if (in->conventional)
		return;
	open_loc(in);
	open_main(in);
	open_main_present(in);
	open_servers(in);
}

/* Returns the file whose page count host h's pages_stored is. */
static const char *stored_file(const struct inspect *in, const struct insp_host *h)
{
	if (h->id == 0)
		return in->c.main_path;
	return in->c.servers[in->c.index_of[h->id]].present_path;
}

/* Checks that each host's file holds as many pages as the manifest says it
 * saved. */
static void check_counts(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "pages saved");
	unsigned compared = 0;

	for (unsigned i = 0; i < in->nhosts; i++) {
		const struct insp_host *h = &in->hosts[i];

		if (!h->has_saved || !h->has_stored)
			continue;
		compared++;
		if (h->pages_saved != h->pages_stored)
			insp_check_fail(ck, "%s: holds %llu pages, the manifest says host %u "
					"saved %llu", stored_file(in, h),
					(unsigned long long)h->pages_stored, h->id,
					(unsigned long long)h->pages_saved);
	}
	if (!compared) {
		insp_check_skip(ck, "no host with both the manifest's count and an opened file");
		return;
	}
	if (!ck->nerrors)
		insp_check_detail(ck, "the manifest's counts match the files of %u hosts",
				  compared);
	insp_check_end(ck, 0);
}

/* Checks that every written page is in exactly one file, the one main.loc
 * names. */
static void check_placement(struct inspect *in)
{
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "placement");
	uint64_t dups = 0;
	int ret;

	if (!in->c.loc_ok) {
		insp_check_skip(ck, "needs main.loc");
		return;
	}
	ret = ckptdir_check_placement(&in->c, &dups);
	if (!ret)
		insp_check_detail(ck, "every written page is in %s file, the one main.loc "
				  "names%s", in->c.loc.has_parent ? "at most one (an increment: "
				  "the others are in its parents)" : "exactly one",
				  in->c.main_ok ? "" : " (main.mem left out)");
	else if (dups)
		insp_check_fail(ck, "%s: pages in more than one file: %llu", in->dir,
				(unsigned long long)dups);
	insp_check_end(ck, ret);
}

/* An increment: opens its chain (each parent where its child's manifest
 * says, with the recorded id and manifest CRC, its files verified; parts
 * not in a layer's directory read through the servers) and
 * checks that every page the newest main.loc places is in some layer;
 * records the layers in in->chain. */
static void check_chain(struct inspect *in)
{
	static struct ckptchain ch; /* 64 layers of paths: not on the stack */
	struct insp_check *ck = insp_check_begin(in, INSP_STRUCTURE, "chain");
	int ret = ckptchain_open(in->given_dir, &in->remote, &ch);

	if (!ret)
		ret = ckptchain_check(&ch, NULL);
	if (!ret) {
		in->chain = calloc(ch.n, sizeof(*in->chain));
		for (unsigned i = 0; in->chain && i < ch.n && (in->chain[i] = strdup(ch.dir[i]));
		     i++)
			in->nchain = i + 1;
		insp_check_detail(ck, "%u checkpoints down to a full one, each parent the one "
				  "its child names; every page main.loc places is in the newest "
				  "of them holding it", ch.n);
	}
	ckptchain_close(&ch);
	insp_check_end(ck, ret);
}

void insp_check_consistency(struct inspect *in)
{
	if (!in->dir_opened || !in->c.servers)
		return;
	if (in->c.manifest)
		check_counts(in);
	if (!in->conventional)
		check_placement(in);
	if (in->c.manifest && in->c.manifest->parent)
		check_chain(in);
}
