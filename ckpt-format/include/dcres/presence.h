/* Presence file: which pages a memory server's memory file holds (or, as
 * main.present, the main host's main.mem: mainpresence.h), with a CRC-32C
 * of each present page, so a damaged page is reported by number.
 *
 * On disk (see presence.c): magic "DCRESPRS", version, page size, page
 * count, present count; the bitmap (64-bit little-endian words); one be32
 * CRC-32C per present page, in page order; a CRC-32C of all that. Published
 * atomically. In memory: a bitmap and a per-page CRC array. */
#ifndef DCRES_PRESENCE_H
#define DCRES_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "dcres/memfile.h"

struct dcres_presence {
	uint64_t npages;
	uint32_t page_size;
	uint64_t *bits;     /* npages bits */
	uint32_t *page_crc; /* npages entries; meaningful where the bit is set */
};

/* Allocates an empty set for npages pages. */
int dcres_presence_init(struct dcres_presence *p, uint64_t npages, uint32_t page_size);
void dcres_presence_free(struct dcres_presence *p);

/* Marks page present with the CRC-32C of its content, or absent. */
void dcres_presence_set(struct dcres_presence *p, uint64_t page, uint32_t crc);
void dcres_presence_clear(struct dcres_presence *p, uint64_t page);
bool dcres_presence_test(const struct dcres_presence *p, uint64_t page);
uint64_t dcres_presence_count(const struct dcres_presence *p);

/* Checks one page a reader loaded: data (p->page_size bytes) as page.
 * 0 when p lists the page with data's CRC-32C, -ENOENT when p does not
 * list it (or page is beyond p's pages), -EBADMSG when the CRC differs.
 * Not logged: the caller names the file. */
int dcres_presence_check_page(const struct dcres_presence *p, uint64_t page,
			      const void *data);

/* Publishes p as path atomically (temp, fsync, rename, fsync directory). */
int dcres_presence_write(const char *path, const struct dcres_presence *p);

/* Reads and validates path into p (initialised by this call); corruption
 * or truncation is -EINVAL/-EIO with a message naming path. */
int dcres_presence_read(const char *path, struct dcres_presence *p);

/* The same for name below the directory dirfd, reached without following
 * any symlink or leaving that directory; display names it in messages.
 * Writing takes name as one path component, and reports the file's size
 * and CRC-32C (each may be NULL). */
int dcres_presence_write_at(int dirfd, const char *name, const char *display,
			    const struct dcres_presence *p, uint64_t *size, uint32_t *crc);
int dcres_presence_read_at(int dirfd, const char *name, const char *display,
			   struct dcres_presence *p);

/* Reads every present page of mf and checks its CRC; the first bad page is
 * -EBADMSG, logged with the file and page number, and stored in *bad_page
 * (if not NULL). Parallel (OpenMP). */
int dcres_presence_verify_pages(const struct dcres_presence *p,
				struct dcres_memfile *mf, uint64_t *bad_page);

#endif
