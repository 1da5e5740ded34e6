/* main.present: the presence file (presence.h) of the main host's
 * main.mem. It lists the pages main.mem holds for the main host (their
 * mapped-ram bit set and main.loc placing them on the main host) with a
 * CRC-32C of each, so that a reader checks each page as it loads it
 * rather than all of main.mem before it starts. In an incremental
 * checkpoint it covers that increment's main.mem only. Optional:
 * checkpoints made before it have none. Functions return 0 or a negative
 * errno and log one line naming the file (and page). */
#ifndef DCRES_MAINPRESENCE_H
#define DCRES_MAINPRESENCE_H

#include <stdint.h>

#include "dcres/loctable.h"
#include "dcres/mappedram.h"
#include "dcres/presence.h"

#define DCRES_MAIN_PRESENT_NAME "main.present"

/* Builds *out (initialised by this call) for main.mem open as f and its
 * location table loc: every page whose bit is set in f and that loc
 * places on the main host, with the CRC-32C of its content in f. Reads f
 * in runs of up to 1 MiB, in parallel (OpenMP). loc and f disagreeing on
 * the page count is -EINVAL; on failure *out holds nothing. */
int dcres_main_presence_build(struct dcres_mrfile *f, const struct dcres_loctable *loc,
			      struct dcres_presence *out);

/* Reads every page p lists from f and checks its CRC, like
 * dcres_presence_verify_pages: the first bad page (a CRC that differs, or
 * a page whose bit is clear in f) is -EBADMSG, logged with the file and
 * page number, and stored in *bad_page (if not NULL). p and f of
 * different page counts are -EINVAL. Parallel (OpenMP). */
int dcres_main_presence_verify(const struct dcres_presence *p, struct dcres_mrfile *f,
			       uint64_t *bad_page);

#endif
