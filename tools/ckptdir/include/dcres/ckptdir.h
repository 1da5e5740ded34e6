/* libdcres-ckptdir: one D-CRES checkpoint directory opened for reading by
 * the offline tools (dcres-merge, dcres-inspect): the manifest, main.loc,
 * main.mem, main.present (when the checkpoint has one) and each memory
 * server's host-K.mem and host-K.present (DESIGN.md §5), and the check
 * that every written page is in exactly one file. It is opened in steps so
 * that a tool may stop at the first failure (ckptdir_open) or go on and
 * report every part (dcres-inspect): each step records in the structure
 * which parts opened. Functions return 0 or a
 * negative errno and log one line naming the file (and page). */
#ifndef DCRES_CKPTDIR_H
#define DCRES_CKPTDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "dcres/loctable.h"
#include "dcres/manifest.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"

#define CKPTDIR_MAX_SERVERS 254 /* host ids 1..254 */

/* One memory server's files. */
struct ckptdir_server {
	unsigned id;
	char mem_path[PATH_MAX];
	char present_path[PATH_MAX];
	struct dcres_memfile *mf;    /* open read-only, or NULL */
	struct dcres_presence pres;
	uint64_t pages;              /* present pages */
	bool ok;                     /* both files open and agree with main.loc */
};

/* A checkpoint directory: the manifest, main.loc, main.mem, the servers. */
struct ckptdir {
	const char *dir;
	char loc_path[PATH_MAX];
	char main_path[PATH_MAX];
	Dcres__Manifest *manifest;    /* NULL when the directory has none */
	struct dcres_loctable loc;
	bool loc_ok;                  /* main.loc read and consistent */
	struct dcres_mrfile main;     /* open read-only when main_ok */
	bool main_ok;
	uint64_t main_pages;          /* bits set in main.mem's bitmap */
	char main_present_path[PATH_MAX]; /* main.present; "" when there is none */
	struct dcres_presence main_pres;  /* read when main_pres_ok */
	bool main_pres_ok;
	struct ckptdir_server *servers; /* nservers, by increasing id */
	unsigned nservers;
	int index_of[256];            /* host id -> index in servers, or -1 */
	uint8_t uuid[16];             /* the VM's, once known (have_uuid) */
	bool have_uuid;
};

/* Prepares c for dir (nothing opened yet; paths default to main.loc and
 * main.mem). Call ckptdir_close even when it fails. */
int ckptdir_init(struct ckptdir *c, const char *dir);

/* Reads DIR/manifest into c->manifest when it exists (without one it
 * stays NULL: not an error) and takes the names of main.loc, main.mem and
 * main.present (the main host's present_file: an older checkpoint has
 * none) and the VM UUID from it; without a manifest, main.present is
 * DIR's if it exists. Checksums are not verified here. */
int ckptdir_load_manifest(struct ckptdir *c);

/* Reads main.loc and checks its geometry, and that it agrees with the
 * manifest's RAM and page size; sets loc_ok. */
int ckptdir_open_loc(struct ckptdir *c);

/* Opens main.mem with main.loc's geometry (its MappedRamHeader must match,
 * see dcres_mrfile_open) and counts its bitmap; needs loc_ok; sets
 * main_ok. */
int ckptdir_open_main(struct ckptdir *c);

/* Reads main.present when the checkpoint has one (main_present_path set
 * by ckptdir_load_manifest) and checks it: the page count of main.loc,
 * and exactly the pages main.mem holds that main.loc places on the main
 * host (-EBADMSG naming the first page otherwise). Needs main_ok; sets
 * main_pres_ok. Without one: 0, nothing done. */
int ckptdir_open_main_present(struct ckptdir *c);

/* Lists the memory servers: the manifest's hosts with id > 0 when there is
 * a manifest, otherwise every host main.loc places a page on and every
 * host-K.present in the directory. With loc_ok, every host main.loc names
 * must be one of them (-EBADMSG naming the page otherwise; the servers
 * are listed anyway). */
int ckptdir_find_servers(struct ckptdir *c);

/* Opens server s's memory and presence files and checks their headers
 * against main.loc (needs loc_ok) and the VM UUID (learnt from the first
 * server without a manifest); sets s->ok. */
int ckptdir_open_server(struct ckptdir *c, struct ckptdir_server *s);

/* The steps after the manifest (main.loc, main.mem, main.present, the
 * servers) in order, stopping at the first failure. */
int ckptdir_open(struct ckptdir *c);

/* Releases everything; safe after any failure and twice in a row. */
void ckptdir_close(struct ckptdir *c);

/* Checks, over the parts that opened (needs loc_ok), that every written
 * page is in exactly one file, the one main.loc names (in an incremental
 * checkpoint, at most one: the others are in its parents, see
 * dcres/ckptchain.h); each violation is
 * logged naming page and files. Returns 0, or -EBADMSG when any was
 * found; *duplicates (may be NULL) counts the pages in more than one
 * file. Pages main.loc places on the main host without a bit in main.mem
 * are fine: QEMU leaves zero pages out of a mapped-ram file. */
int ckptdir_check_placement(const struct ckptdir *c, uint64_t *duplicates);

#endif
