/* dcres-merge internals: one D-CRES checkpoint directory opened for
 * checking and merging (see dcres-merge.c for the tool, DESIGN.md §5 for
 * the files). Functions return 0 or a negative errno and log, naming the
 * file and page. */
#ifndef DCRES_MERGE_H
#define DCRES_MERGE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "dcres/loctable.h"
#include "dcres/manifest.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"

#define MERGE_MAX_SERVERS 254 /* host ids 1..254 */

/* One memory server's files. */
struct merge_server {
	unsigned id;
	char mem_path[PATH_MAX];
	char present_path[PATH_MAX];
	struct dcres_memfile *mf;    /* open read-only */
	struct dcres_presence pres;
	uint64_t pages;              /* present pages */
};

/* A checkpoint directory: main.loc, main.mem, the servers, the manifest. */
struct merge_ckpt {
	const char *dir;
	char loc_path[PATH_MAX];
	char main_path[PATH_MAX];
	struct dcres_loctable loc;
	struct dcres_mrfile main;    /* open read-only */
	Dcres__Manifest *manifest;   /* NULL when the directory has none */
	struct merge_server *servers; /* nservers, by increasing id */
	unsigned nservers;
	int index_of[256];           /* host id -> index in servers, or -1 */
	uint64_t main_pages;         /* bits set in main.mem's bitmap */
};

/* Opens the checkpoint in dir: the manifest if any (verifying every file's
 * checksum), main.loc, main.mem with main.loc's geometry, each server's
 * memory and presence files; checks that every header agrees (page size,
 * RAM size, VM UUID, host id). On failure c is closed. */
int merge_open(const char *dir, struct merge_ckpt *c);

/* Releases everything merge_open took (safe after a failed merge_open). */
void merge_close(struct merge_ckpt *c);

/* Checks that every written page is in exactly one file, the one main.loc
 * names; each violation is logged naming page and files. Returns 0, or
 * -EBADMSG when any violation was found; *duplicates counts the pages
 * found in more than one file. */
int merge_check_placement(const struct merge_ckpt *c, uint64_t *duplicates);

/* Reads every server page and checks its CRC against its presence file;
 * the first bad page is -EBADMSG naming file and page. */
int merge_verify_server_pages(const struct merge_ckpt *c);

/* Writes out: main.mem with every server page put at its place and its
 * bitmap bit set (CRC-checked on the way). Outside the pages area main.mem
 * is copied as is (holes kept); in it, only pages with a set bit are
 * written, so stale data of pages that moved away is dropped and pages
 * stored nowhere are holes. Goes through out.partial (0600), fsynced and
 * renamed; on failure out.partial is removed and out is left as it was.
 * Refuses an out that is one of the checkpoint's files. */
int merge_write(struct merge_ckpt *c, const char *out);

#endif
