/* Location table of the main host: for every guest page, the host holding
 * it at the checkpoint's stop point and its access-history byte (aged: the
 * top bit is set when the page is seen, all bits shift right each period;
 * hotter pages have larger values).
 *
 * It also records where the main host's pages are in main.mem (the guest
 * RAM block's mapped-ram geometry, see mappedram.h).
 *
 * And it records the memory servers' parts of the checkpoint as their
 * CKPT_FINAL answers described them (the directory the servers were told,
 * and per server its address, pages and the size and CRC-32C of its two
 * files), so that the manifest is made without reading those files.
 *
 * And it names the checkpoint: its id and, for an incremental checkpoint
 * (one holding only the pages changed since its parent's stop point),
 * its parent's id.
 *
 * On disk (see loctable.c): magic "DCRESLOC", version, page size, page
 * count, the main.mem geometry; the host bytes; the history bytes; the
 * parts; the ids; a CRC-32C of all that. Published atomically. */
#ifndef DCRES_LOCTABLE_H
#define DCRES_LOCTABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "dcres/mappedram.h"

#define DCRES_LOC_MAIN 0x00 /* on the main host */
#define DCRES_LOC_ZERO 0xff /* never written: reads as zeros, stored nowhere */

#define DCRES_LOC_TEXT_MAX 4096 /* bytes of the directory and addresses */

/* A memory server's part of the checkpoint. */
struct dcres_loc_part {
	uint32_t host;                  /* 1..254 */
	char address[256];              /* HOST:PORT it was reached at */
	uint64_t pages;                 /* pages in its files */
	uint64_t mem_size, present_size;/* host-K.mem, host-K.present */
	uint32_t mem_crc, present_crc;
	bool has_server_id;             /* the server reported its id */
	uint8_t server_id[16];
};

struct dcres_loctable {
	uint64_t npages;
	uint32_t page_size;
	uint8_t *host;    /* DCRES_LOC_MAIN, 1..254 memory server, DCRES_LOC_ZERO */
	uint8_t *history;
	struct dcres_mapped_ram main_file; /* the RAM block in main.mem */
	char server_dir[DCRES_LOC_TEXT_MAX]; /* the servers' name of the directory */
	unsigned nparts;
	struct dcres_loc_part *parts;     /* nparts, by host; malloc'd */
	uint8_t ckpt_id[16];              /* all zero in a version 2 or 3 file */
	bool has_parent;                  /* incremental: parent_id is its parent */
	uint8_t parent_id[16];
};

/* Allocates a table of npages pages, all DCRES_LOC_ZERO with history 0,
 * and no parts. */
int dcres_loctable_init(struct dcres_loctable *t, uint64_t npages, uint32_t page_size);
void dcres_loctable_free(struct dcres_loctable *t);

/* Publishes t as path atomically. */
int dcres_loctable_write(const char *path, const struct dcres_loctable *t);

/* Adds a server's part (a copy of *p); -EINVAL for a bad host or address. */
int dcres_loctable_add_part(struct dcres_loctable *t, const struct dcres_loc_part *p);

/* Reads and validates path into t (initialised by this call). A version 2
 * file (before parts were recorded) reads with none, a version 2 or 3 one
 * (before ids) with a zero id and no parent, a version 4 one without the
 * servers' ids. */
int dcres_loctable_read(const char *path, struct dcres_loctable *t);

#endif
