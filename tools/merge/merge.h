/* dcres-merge internals: merging one D-CRES checkpoint directory, opened
 * with libdcres-ckptdir (dcres/ckptdir.h), into one mapped-ram file (see
 * dcres-merge.c for the tool, DESIGN.md §5 for the files). Functions
 * return 0 or a negative errno and log, naming the file and page. */
#ifndef DCRES_MERGE_H
#define DCRES_MERGE_H

#include "dcres/ckptdir.h"

/* Opens the checkpoint in dir: the manifest if any (verifying every file's
 * checksum), main.loc, main.mem with main.loc's geometry, each server's
 * memory and presence files; checks that every header agrees (page size,
 * RAM size, VM UUID, host id). On failure c is closed. */
int merge_open(const char *dir, struct ckptdir *c);

/* Reads every server page and checks its CRC against its presence file;
 * the first bad page is -EBADMSG naming file and page. */
int merge_verify_server_pages(const struct ckptdir *c);

/* Writes out: main.mem with every server page put at its place and its
 * bitmap bit set (CRC-checked on the way). Outside the pages area main.mem
 * is copied as is (holes kept); in it, only pages with a set bit are
 * written, so stale data of pages that moved away is dropped and pages
 * stored nowhere are holes. Goes through out.partial.XXXXXXXX (a new
 * file, 0600), fsynced and renamed; on failure it is removed and out is
 * left as it was.
 * Refuses an out that is one of the checkpoint's files. */
int merge_write(struct ckptdir *c, const char *out);

#endif
