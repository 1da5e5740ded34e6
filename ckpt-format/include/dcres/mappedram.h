/* The main host's memory file, main.mem: a QEMU 10.0 mapped-ram migration
 * file. Only the guest RAM block of the split-memory VM matters here; its
 * geometry in the file (struct dcres_mapped_ram) is recorded in main.loc by
 * the patched QEMU, and checked against the block's MappedRamHeader
 * (packed, big-endian: be32 version 1, be64 page size, be64 bitmap offset,
 * be64 pages offset) which sits right before the bitmap. The bitmap holds
 * one bit per page (64-bit little-endian words, QEMU's unsigned long on
 * x86-64); a set bit means the page's content is at pages_offset +
 * page * page_size. A clear bit means the page is not in the file, whatever
 * data may be there. Functions return 0 or a negative errno and log a
 * message naming the file (and page). */
#ifndef DCRES_MAPPEDRAM_H
#define DCRES_MAPPEDRAM_H

#include <stdbool.h>
#include <stdint.h>

#define DCRES_MAPPED_RAM_ID_MAX 256

/* Where one RAM block lies in a mapped-ram file. */
struct dcres_mapped_ram {
	char block_id[DCRES_MAPPED_RAM_ID_MAX]; /* RAMBlock idstr, NUL-terminated */
	uint64_t used_length;   /* bytes of the block */
	uint64_t bitmap_offset; /* file offset of its page bitmap */
	uint64_t pages_offset;  /* file offset of its page 0 */
};

/* The geometry as dcres files store it (main.loc, restore plans): the
 * block id NUL-padded to DCRES_MAPPED_RAM_ID_MAX bytes, then be64
 * used_length, bitmap_offset, pages_offset. Encoding needs a
 * NUL-terminated id; a decoded id is NUL-terminated only if the stored
 * one was (callers check with memchr first). */
#define DCRES_MAPPED_RAM_GEO_LEN (DCRES_MAPPED_RAM_ID_MAX + 24u)
void dcres_mapped_ram_encode(const struct dcres_mapped_ram *geo, uint8_t *out);
void dcres_mapped_ram_decode(const uint8_t *in, struct dcres_mapped_ram *geo);

/* An open mapped-ram file and the bitmap of one of its blocks. */
struct dcres_mrfile {
	int fd;
	char path[4096];
	struct dcres_mapped_ram geo;
	uint32_t page_size;
	uint64_t npages;
	uint64_t *bitmap;       /* npages bits */
};

/* Opens path (read-only, or read-write when writable) and reads the
 * block's header and bitmap; a header that does not match geo (version 1,
 * page size 4096, same offsets) or an inconsistent geo is -EINVAL, a file
 * too short for the bitmap -EIO, all naming the file. Bits beyond the
 * block's last page are dropped. */
int dcres_mrfile_open(const char *path, const struct dcres_mapped_ram *geo,
		      bool writable, struct dcres_mrfile *out);
/* Closes f; safe on f after a failed open and twice in a row. */
void dcres_mrfile_close(struct dcres_mrfile *f);

/* Bit of page in memory (pages beyond the block: false / ignored), and the
 * number of set bits. */
bool dcres_mrfile_test(const struct dcres_mrfile *f, uint64_t page);
void dcres_mrfile_set(struct dcres_mrfile *f, uint64_t page);
uint64_t dcres_mrfile_count(const struct dcres_mrfile *f);

/* Reads or writes n consecutive pages starting at page (the bitmap is not
 * touched by either); pages beyond the block are -ERANGE. */
int dcres_mrfile_read_pages(struct dcres_mrfile *f, uint64_t page, void *buf, uint64_t n);
int dcres_mrfile_write_pages(struct dcres_mrfile *f, uint64_t page, const void *buf,
			     uint64_t n);

/* Writes the in-memory bitmap back to the file and fsyncs it. */
int dcres_mrfile_write_bitmap(struct dcres_mrfile *f);

/* Punches out data left in the pages area for pages whose bit is clear
 * (copies of pages that moved to a memory server during a live
 * checkpoint), so each page's data is stored once; *punched counts the
 * pages (may be NULL). Only runs that hold data (SEEK_DATA/SEEK_HOLE) are
 * punched; f must be open writable. */
int dcres_mrfile_punch_absent(struct dcres_mrfile *f, uint64_t *punched);

#endif
