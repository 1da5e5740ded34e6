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

#endif
