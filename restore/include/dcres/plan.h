/* Restore plans: where every guest page of a checkpoint goes on a target
 * host set, and which of the checkpoint's hosts it comes from.
 *
 * The main host keeps its own pages up to its capacity (its local limit),
 * the hottest (by the checkpoint's access history) when it has less room
 * than before, and takes the hottest of the others into the room left;
 * the rest go to the sub-hosts within their capacities, a page staying on
 * the sub-host that holds it when that host is in the target set and has
 * room. Least data moves: a restore onto the same hosts moves nothing. A plan that cannot fit is refused before anything
 * starts, with the numbers that do not fit.
 *
 * A plan file (written by dcres-restore, read by the patched QEMU) is:
 * magic "DCRESPLN", be32 version, be32 page size, be64 page count, be32
 * sub-host count, the checkpoint directory (be32 length + bytes), the
 * main.mem geometry (as in main.loc), the target byte per page, the source
 * byte per page, the history byte per page, be32 CRC-32C of all before.
 * Created 0600 and published atomically. Functions return 0 or a negative
 * errno; err (when given) says why, naming the file or the numbers. */
#ifndef DCRES_PLAN_H
#define DCRES_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/loctable.h"

#define DCRES_PLAN_MAIN 0x00 /* target/source: the main host */
#define DCRES_PLAN_ZERO 0xff /* never written: stored nowhere, reads as zeros */
#define DCRES_PLAN_MAX_SUBS 64
#define DCRES_PLAN_UNLIMITED UINT64_MAX

struct dcres_plan {
	uint64_t npages;
	uint32_t page_size;
	unsigned nsubs;        /* target sub-hosts, numbered 1..nsubs */
	uint8_t *target;       /* per page: DCRES_PLAN_MAIN, 1..nsubs, DCRES_PLAN_ZERO */
	uint8_t *source;       /* per page: the checkpoint's host (main.loc
				* numbering: 0 main, K its server K) or ZERO */
	uint8_t *history;      /* per page: the checkpoint's access history */
	char *ckpt_dir;        /* absolute path of the checkpoint on the main host */
	struct dcres_mapped_ram main_file; /* the RAM block in DIR/main.mem */
};

/* One host of the target set. */
struct dcres_plan_target {
	uint64_t capacity;     /* pages it may hold; DCRES_PLAN_UNLIMITED: any */
	unsigned same_as;      /* sub-hosts: the checkpoint's server index (1..)
				* this host is (its pages may stay), 0 if new */
};

/* Plans the restore of checkpoint table t onto targets[0] (the main host)
 * and targets[1..ntargets-1] (sub-hosts 1..ntargets-1); ckpt_dir (absolute)
 * is copied into the plan; targets[0].same_as is ignored. The rules, with
 * the exact spreading of pages that do not stay, are in planner.c.
 * -ENOSPC (err: pages to place vs. the capacity of each host) when the
 * pages do not fit; -EINVAL for a bad target set: none, more than
 * DCRES_PLAN_MAX_SUBS sub-hosts, two sub-hosts with the same same_as, a
 * same_as that cannot be a server (>= 0xff), or a relative ckpt_dir. A
 * same_as naming a server that held no pages in t is accepted. On failure
 * *out is zeroed (dcres_plan_free is safe on it). */
int dcres_plan_make(const struct dcres_loctable *t, const char *ckpt_dir,
		    const struct dcres_plan_target *targets, unsigned ntargets,
		    struct dcres_plan *out, char *err, size_t err_len);
void dcres_plan_free(struct dcres_plan *p);

/* Pages the plan puts on target host h (0 main, 1..nsubs); pages whose
 * target is a sub-host that is not their source's same host, or the main
 * host when they came from a server, or a sub-host when they came from
 * the main host ("moved": read from another host's file); targets is the
 * set p was made for (nsubs + 1 entries). */
uint64_t dcres_plan_count(const struct dcres_plan *p, uint8_t h);
uint64_t dcres_plan_moved(const struct dcres_plan *p, const struct dcres_plan_target *targets);

/* The pages planned for host h, hottest first (history descending, then
 * page index ascending) or in page order; *out (malloc'd) holds *n pages. */
int dcres_plan_pages(const struct dcres_plan *p, uint8_t h, int hottest_first,
		     uint64_t **out, uint64_t *n);

/* Plan files (see above); dcres_plan_read zeroes p on failure. */
int dcres_plan_write(const char *path, const struct dcres_plan *p, char *err, size_t err_len);
int dcres_plan_read(const char *path, struct dcres_plan *p, char *err, size_t err_len);

#endif
