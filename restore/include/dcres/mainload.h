/* The main host's side of a D-CRES restore, run inside the patched QEMU.
 *
 * From a plan file (plan.h) it puts the pages planned for the memory
 * servers into the pager's table (the servers hold them already), seeds
 * the access history, and loads the pages planned for the main host into
 * guest RAM through the pager's fill: each from main.mem (checked against
 * its CRC in main.present, when the checkpoint has one), or from the
 * memory file of the checkpoint server that saved it (host-K.mem in the
 * checkpoint directory, checked against its per-page CRC). Eager: all of
 * them before the VM resumes. Lazy: hottest first in the background, and
 * at once when the guest touches one.
 *
 * Functions return 0 or a negative errno with err saying why, naming the
 * file and page. */
#ifndef DCRES_MAINLOAD_H
#define DCRES_MAINLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/pager.h"

struct dcres_mainload;

/* Reads the plan at plan_path for a VM of ram_size bytes split over
 * nservers memory servers, and opens and checks its source files: every
 * page it takes from main.mem is in main.mem, every page it takes from a
 * server's file is in that file, main.present (if there) has the plan's
 * page count. */
int dcres_mainload_open(const char *plan_path, uint64_t ram_size, unsigned nservers,
			struct dcres_mainload **out, char *err, size_t err_len);

/* Checks that file (the incoming migration's) is the plan's main.mem,
 * and its RAM block block_id (used_length bytes, bitmap and pages at
 * these file offsets) the one the plan was made for: -EINVAL otherwise,
 * err naming both. */
int dcres_mainload_check_block(const struct dcres_mainload *m, const char *file,
			       const char *block_id, uint64_t used_length,
			       uint64_t bitmap_offset, uint64_t pages_offset, char *err,
			       size_t err_len);

/* Records the plan's remote pages and history in pager p (started on the
 * VM's RAM, nothing loaded yet). */
int dcres_mainload_place(struct dcres_mainload *m, struct dcres_pager *p, char *err,
			 size_t err_len);

/* Starts loading the main host's pages (once: -EBUSY, err saying so,
 * after the first call): they load when touched and, after
 * dcres_pager_fill_go, in the background, hottest first (m must stay open
 * until the pager stops). With wait, it goes and returns once all are in
 * (-EBADMSG when some failed their check); without, at once. */
int dcres_mainload_start(struct dcres_mainload *m, struct dcres_pager *p, bool wait,
			 char *err, size_t err_len);

/* Pages the plan puts on the main host that are not loaded yet into p:
 * all of them before dcres_mainload_start. */
uint64_t dcres_mainload_pending(const struct dcres_mainload *m, struct dcres_pager *p);

void dcres_mainload_close(struct dcres_mainload *m);

#endif
