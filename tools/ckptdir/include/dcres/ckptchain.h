/* libdcres-ckptdir: a chain of checkpoints, for the readers. An
 * incremental checkpoint holds only the pages that changed since its
 * parent's stop point; its manifest names its parent (directory, id and
 * manifest CRC), and so on down to a full checkpoint. A page's content is
 * in the newest layer holding it; in the full layer, a page main.loc
 * places without a copy reads as zeros (QEMU leaves zero pages out of a
 * full checkpoint's main.mem; an increment's main.mem holds every page it
 * saves, zeros too). Functions return 0 or a negative errno and log
 * naming the checkpoint and file. */
#ifndef DCRES_CKPTCHAIN_H
#define DCRES_CKPTCHAIN_H

#include "dcres/ckptdir.h"
#include "dcres/ckptview.h"

#define CKPTCHAIN_MAX 64 /* layers */

struct ckptchain {
	unsigned n;                          /* layers, newest first */
	struct ckptdir layer[CKPTCHAIN_MAX];
	char dir[CKPTCHAIN_MAX][PATH_MAX];   /* each layer's directory */
	struct ckptview *view;               /* CKPTCHAIN_MAX views: a layer whose
					      * servers' parts are not in its
					      * directory is read through its
					      * view (view[i].dir set) */
};

/* Opens the checkpoint in dir (as ckptdir_open after its manifest, if it
 * has one, every file's checksum verified) and, when it is incremental,
 * its parents; a layer lacking servers' parts (host-local disks) is read
 * through a view fetched with remote (may be NULL: then it is refused,
 * asking for a key). The parents are found:
 * each where its child's manifest says (relative to the child's
 * directory), with the id and manifest CRC it records (or flattened from
 * that one: dcres-merge --flatten) and the same VM.
 * A parent missing or not matching is -ENOENT or -EBADMSG naming both
 * checkpoints. On failure ch is closed. */
int ckptchain_open(const char *dir, const struct ckptview_opts *remote,
		   struct ckptchain *ch);

/* Checks each layer's placement (ckptdir_check_placement; increments
 * may lack pages) and that every page the newest main.loc places on a
 * host is in some layer, or is a zero page of the full layer's main
 * host. -EBADMSG, each violation logged, otherwise. */
int ckptchain_check(const struct ckptchain *ch, uint64_t *duplicates);

/* Writes out: the newest layer's main.mem with every page put at its
 * place from the newest layer holding it and its bitmap bit set (server
 * pages CRC-checked on the way). Outside the pages area main.mem is
 * copied as is (holes kept); in it, only pages with a set bit are
 * written, so stale data of pages that moved away is dropped and pages
 * stored nowhere are holes. Goes through out.partial.XXXXXXXX (a new
 * file, 0600), fsynced and renamed; on failure it is removed and out is
 * left as it was.
 * Refuses an out that is one of the checkpoint's files. */
int ckptchain_merge(struct ckptchain *ch, const char *out);

/* Writes out_dir, a new directory (0700): the chain as one full D-CRES
 * checkpoint of the same id. Every written page is in its main.mem (as
 * ckptchain_merge makes it), with its CRC in its main.present, and on the
 * main host in its main.loc (the newest table's access history kept); its
 * manifest is the newest one's, with main.present as the main host's
 * present_file, no parent and replaces_manifest_crc naming that manifest,
 * so the children of the newest checkpoint may take the flattened one as
 * their parent. On failure out_dir is removed. */
int ckptchain_flatten(struct ckptchain *ch, const char *out_dir);

/* Removes out_dir, a flattened chain (its manifest, main.mem, main.loc,
 * main.present); a missing one is fine. 0, or a negative errno logged. */
int ckptchain_remove_flat(const char *out_dir);

void ckptchain_close(struct ckptchain *ch);

#endif
