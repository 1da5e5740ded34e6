/* dcres-merge internals: merging a D-CRES checkpoint and, for an
 * incremental one, its parents (a chain, opened, merged and flattened
 * with libdcres-ckptdir: dcres/ckptchain.h) into one mapped-ram file (see
 * dcres-merge.c for the tool). Functions return 0 or a negative errno and
 * log, naming the file and page. */
#ifndef DCRES_MERGE_H
#define DCRES_MERGE_H

#include "dcres/ckptchain.h"

/* Reads every server page of every layer and checks its CRC against its
 * presence file; the first bad page is -EBADMSG naming file and page. */
int merge_verify_server_pages(const struct ckptchain *ch);

#endif
