/* libdcres-ckptdir: chains of incremental checkpoints (dcres/ckptchain.h). */
#define _GNU_SOURCE
#include "dcres/ckptchain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "dcres/uuid.h"

#define MAX_REPORTS 20

/* Opens layer i of ch in ch->dir[i], or in a view of it fetched with
 * remote when its servers' parts are elsewhere. */
static int open_layer(struct ckptchain *ch, unsigned i, const struct ckptview_opts *remote)
{
	static const struct ckptview_opts none;
	struct ckptdir *c = &ch->layer[i];
	const char *dir = ch->dir[i];
	int ret;

	ch->n = i + 1;
	if (ckptview_needed(dir)) {
		ret = ckptview_open(dir, remote ? remote : &none, &ch->view[i]);
		if (ret) {
			ckptdir_init(c, dir); /* for ckptchain_close */
			return ret;
		}
		for (unsigned k = 0; k < ch->view[i].nparts; k++)
			pr_info("%s: host %u's part read through memory server %s (copies on %s)",
				dir, ch->view[i].parts[k].id, ch->view[i].parts[k].from,
				ch->view[i].parts[k].holders);
		dir = ch->view[i].dir;
	}
	ret = ckptdir_init(c, dir);
	if (!ret)
		ret = ckptdir_load_manifest(c);
	if (!ret && !c->manifest && i > 0) {
		pr_err("%s: no manifest: not a checkpoint", ch->dir[i]);
		ret = -ENOENT;
	}
	if (!ret && c->manifest)
		ret = dcres_manifest_verify_files(dir, c->manifest);
	if (!ret)
		ret = ckptdir_open(c);
	return ret;
}

/* Finds layer i's parent, as its manifest names it, into ch->dir[i + 1]. */
static int find_parent(struct ckptchain *ch, unsigned i)
{
	const Dcres__ParentRef *p = ch->layer[i].manifest->parent;
	char path[PATH_MAX];

	if (!p->dir || !p->has_id || p->id.len != 16 || !p->has_manifest_crc) {
		pr_err("%s: its manifest names its parent incompletely", ch->dir[i]);
		return -EBADMSG;
	}
	if (i + 1 == CKPTCHAIN_MAX) {
		pr_err("%s: a chain of more than %d checkpoints", ch->dir[0], CKPTCHAIN_MAX);
		return -E2BIG;
	}
	if (snprintf(path, sizeof(path), "%s/%s", ch->dir[i], p->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (!realpath(p->dir[0] == '/' ? p->dir : path, ch->dir[i + 1])) {
		int ret = -errno;
		pr_err("%s: its parent %s is missing: %s", ch->dir[i], p->dir, strerror(-ret));
		return ret;
	}
	return 0;
}

/* Checks that layer i + 1 (open) is the parent layer i's manifest names. */
static int check_parent(const struct ckptchain *ch, unsigned i)
{
	const struct ckptdir *child = &ch->layer[i], *parent = &ch->layer[i + 1];
	const Dcres__ParentRef *p = child->manifest->parent;
	const Dcres__Manifest *m = parent->manifest;
	char path[PATH_MAX];
	uint64_t size;
	uint32_t crc;
	int ret;

	snprintf(path, sizeof(path), "%s/manifest", ch->dir[i + 1]);
	ret = dcres_file_checksum(path, &size, &crc);
	if (ret)
		return ret;
	if (m->has_replaces_manifest_crc && m->replaces_manifest_crc == p->manifest_crc)
		crc = p->manifest_crc; /* flattened from the parent the child was made on */
	if (crc != p->manifest_crc || !m->has_checkpoint_id || m->checkpoint_id.len != 16 ||
	    memcmp(m->checkpoint_id.data, p->id.data, 16) ||
	    !child->loc.has_parent || memcmp(child->loc.parent_id, p->id.data, 16)) {
		pr_err("%s: not the parent %s was made on (another checkpoint, or its "
		       "manifest changed since)", ch->dir[i + 1], ch->dir[i]);
		return -EBADMSG;
	}
	if (!child->have_uuid || !parent->have_uuid || memcmp(child->uuid, parent->uuid, 16) ||
	    child->loc.npages != parent->loc.npages) {
		pr_err("%s: a checkpoint of another VM (or RAM size) than %s", ch->dir[i + 1],
		       ch->dir[i]);
		return -EBADMSG;
	}
	return 0;
}

int ckptchain_open(const char *dir, const struct ckptview_opts *remote,
		   struct ckptchain *ch)
{
	int ret;

	memset(ch, 0, sizeof(*ch));
	ch->view = calloc(CKPTCHAIN_MAX, sizeof(*ch->view));
	if (!ch->view)
		return -ENOMEM;
	if (!realpath(dir, ch->dir[0])) {
		ret = -errno;
		pr_perror("%s", dir);
		ckptchain_close(ch);
		return ret;
	}
	ret = open_layer(ch, 0, remote);
	for (unsigned i = 0; !ret && ch->layer[i].manifest && ch->layer[i].manifest->parent;
	     i++) {
		ret = find_parent(ch, i);
		if (!ret)
			ret = open_layer(ch, i + 1, remote);
		if (!ret)
			ret = check_parent(ch, i);
	}
	if (ret)
		ckptchain_close(ch);
	return ret;
}

/* Whether layer c holds page p. */
static bool holds(const struct ckptdir *c, uint64_t p)
{
	if (c->main_ok && dcres_mrfile_test(&c->main, p))
		return true;
	for (unsigned k = 0; k < c->nservers; k++)
		if (c->servers[k].ok && dcres_presence_test(&c->servers[k].pres, p))
			return true;
	return false;
}

/* The layer holding page p's content (newest first), or -1 when it reads
 * as zeros. */
static int layer_of(const struct ckptchain *ch, uint64_t p)
{
	for (unsigned i = 0; i < ch->n; i++)
		if (holds(&ch->layer[i], p))
			return (int)i;
	return -1;
}

int ckptchain_check(const struct ckptchain *ch, uint64_t *duplicates)
{
	const struct ckptdir *top = &ch->layer[0], *full = &ch->layer[ch->n - 1];
	uint64_t missing = 0, dups = 0, d;
	int ret = 0;

	for (unsigned i = 0; i < ch->n; i++) {
		int r = ckptdir_check_placement(&ch->layer[i], &d);
		ret = ret ? ret : r;
		dups += d;
	}
	for (uint64_t p = 0; p < top->loc.npages; p++) {
		uint8_t owner = top->loc.host[p];

		if (owner == DCRES_LOC_ZERO || layer_of(ch, p) >= 0)
			continue;
		/* A zero page the full layer's main host left out. */
		if (owner == DCRES_LOC_MAIN && full->loc.host[p] == DCRES_LOC_MAIN)
			continue;
		if (missing++ < MAX_REPORTS)
			pr_err("page %llu: %s places it on %s%u, but no checkpoint of its chain "
			       "holds it", (unsigned long long)p, top->loc_path,
			       owner == DCRES_LOC_MAIN ? "the main host" : "host ",
			       owner == DCRES_LOC_MAIN ? 0 : owner);
	}
	if (missing > MAX_REPORTS)
		pr_err("%s: %llu more pages missing", ch->dir[0],
		       (unsigned long long)(missing - MAX_REPORTS));
	if (duplicates)
		*duplicates = dups;
	return ret ? ret : missing ? -EBADMSG : 0;
}

void ckptchain_close(struct ckptchain *ch)
{
	for (unsigned i = 0; i < ch->n; i++) {
		ckptdir_close(&ch->layer[i]);
		if (ch->view)
			ckptview_close(&ch->view[i]);
	}
	free(ch->view);
	ch->view = NULL;
	ch->n = 0;
}
