/* dcres-merge internals: merging a D-CRES checkpoint and, for an
 * incremental one, its parents (a chain, opened, merged and flattened
 * with libdcres-ckptdir: dcres/ckptchain.h) into one mapped-ram file (see
 * dcres-merge.c for the tool). Functions return 0 or a negative errno and
 * log, naming the file and page. */
#ifndef DCRES_MERGE_H
#define DCRES_MERGE_H

#include "dcres/ckptchain.h"

/* Reads every page of every layer that has a per-page CRC (a server's
 * pages against its presence file, main.mem's against main.present when
 * the layer has one) and checks it; the first bad page is -EBADMSG naming
 * file and page. */
int merge_verify_pages(struct ckptchain *ch);

#endif
