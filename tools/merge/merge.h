/* dcres-merge internals: merging a D-CRES checkpoint and, for an
 * incremental one, its parents (a chain, opened with libdcres-ckptdir:
 * dcres/ckptchain.h) into one mapped-ram file (see dcres-merge.c for the
 * tool). Functions return 0 or a negative errno and log, naming the file
 * and page. */
#ifndef DCRES_MERGE_H
#define DCRES_MERGE_H

#include "dcres/ckptchain.h"

/* Reads every server page of every layer and checks its CRC against its
 * presence file; the first bad page is -EBADMSG naming file and page. */
int merge_verify_server_pages(const struct ckptchain *ch);

/* Writes out: the newest layer's main.mem with every page put at its
 * place from the newest layer holding it and its bitmap bit set (server
 * pages CRC-checked on the way). Outside the pages area main.mem is
 * copied as is (holes kept); in it, only pages with a set bit are
 * written, so stale data of pages that moved away is dropped and pages
 * stored nowhere are holes. Goes through out.partial.XXXXXXXX (a new
 * file, 0600), fsynced and renamed; on failure it is removed and out is
 * left as it was.
 * Refuses an out that is one of the checkpoint's files. */
int merge_write(struct ckptchain *ch, const char *out);

/* Writes out_dir, a new directory (0700): the chain as one full D-CRES
 * checkpoint of the same id. Every written page is in its main.mem (as
 * merge_write makes it) and on the main host in its main.loc (the newest
 * table's access history kept); its manifest is the newest one's, with
 * no parent and replaces_manifest_crc naming that manifest, so the
 * children of the newest checkpoint may take the flattened one as their
 * parent. On failure out_dir is removed. */
int merge_flatten(struct ckptchain *ch, const char *out_dir);

#endif
