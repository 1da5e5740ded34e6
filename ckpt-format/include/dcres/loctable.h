/* Location table of the main host: for every guest page, the host holding
 * it at the checkpoint's stop point and its access-history byte (aged: the
 * top bit is set when the page is seen, all bits shift right each period;
 * hotter pages have larger values).
 *
 * It also records where the main host's pages are in main.mem (the guest
 * RAM block's mapped-ram geometry, see mappedram.h).
 *
 * On disk (see loctable.c): magic "DCRESLOC", version, page size, page
 * count, the main.mem geometry; the host bytes; the history bytes; a
 * CRC-32C of all that. Published atomically. */
#ifndef DCRES_LOCTABLE_H
#define DCRES_LOCTABLE_H

#include <stdint.h>

#include "dcres/mappedram.h"

#define DCRES_LOC_MAIN 0x00 /* on the main host */
#define DCRES_LOC_ZERO 0xff /* never written: reads as zeros, stored nowhere */

struct dcres_loctable {
	uint64_t npages;
	uint32_t page_size;
	uint8_t *host;    /* DCRES_LOC_MAIN, 1..254 memory server, DCRES_LOC_ZERO */
	uint8_t *history;
	struct dcres_mapped_ram main_file; /* the RAM block in main.mem */
};

/* Allocates a table of npages pages, all DCRES_LOC_ZERO with history 0. */
int dcres_loctable_init(struct dcres_loctable *t, uint64_t npages, uint32_t page_size);
void dcres_loctable_free(struct dcres_loctable *t);

/* Publishes t as path atomically. */
int dcres_loctable_write(const char *path, const struct dcres_loctable *t);

/* Reads and validates path into t (initialised by this call). */
int dcres_loctable_read(const char *path, struct dcres_loctable *t);

#endif
