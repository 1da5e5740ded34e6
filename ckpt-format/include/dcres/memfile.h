/* Sparse memory file: the pages one host saved in one checkpoint.
 *
 * Layout: a 4 KiB header at offset 0 (see memfile.c: magic "DCRESMEM",
 * version, page size, data start, RAM size, host id, VM UUID, CRC-32C of
 * the header), then guest page p at data_start + p * page_size, with
 * data_start = DCRES_MEMFILE_DATA_START (1 MiB, aligned for O_DIRECT).
 * Pages the host does not hold are holes. Which pages count is decided by
 * the presence file (presence.h), never by the holes alone.
 *
 * I/O uses O_DIRECT with libaio where the filesystem allows it and falls
 * back to buffered pwrite/pread where it does not (tmpfs). Functions return
 * 0 or a negative errno and log a message naming the file (and page).
 * Calls on one memfile may run concurrently from several threads. */
#ifndef DCRES_MEMFILE_H
#define DCRES_MEMFILE_H

#include <stddef.h>
#include <stdint.h>

#define DCRES_MEMFILE_DATA_START (1u << 20)

/* The page size of every dcres checkpoint file. Readers refuse a header
 * declaring another with -ENOTSUP (naming the file and the field), so no
 * buffer sized for it is ever overrun. */
#define DCRES_CKPT_PAGE_SIZE 4096u

struct dcres_memfile_info {
	uint8_t vm_uuid[16];
	uint64_t ram_size;  /* bytes of guest RAM the page indices cover */
	uint32_t page_size; /* 4096 */
	uint32_t host_id;   /* 0 main host, 1.. memory servers */
};

struct dcres_memfile;
struct dcres_presence;

/* Creates (or truncates) path, mode 0600, and writes its header. */
int dcres_memfile_create(const char *path, const struct dcres_memfile_info *info,
			 struct dcres_memfile **out);

/* Opens an existing memory file read-only and validates its header
 * (magic, version, CRC, sizes); a damaged header is -EINVAL naming path,
 * a page size other than DCRES_CKPT_PAGE_SIZE -ENOTSUP. */
int dcres_memfile_open(const char *path, struct dcres_memfile **out);

/* The same for name below the directory dirfd, reached without following
 * any symlink or leaving that directory (dcres_open_beneath); display names
 * the file in messages. Creation refuses an existing name (O_EXCL). */
int dcres_memfile_create_at(int dirfd, const char *name, const char *display,
			    const struct dcres_memfile_info *info, struct dcres_memfile **out);
int dcres_memfile_open_at(int dirfd, const char *name, const char *display,
			  struct dcres_memfile **out);

const struct dcres_memfile_info *dcres_memfile_info(const struct dcres_memfile *mf);
const char *dcres_memfile_path(const struct dcres_memfile *mf);

/* Writes n pages: page pages[i] from buf + i * page_size. buf must be
 * aligned to 4096. Indices need not be sorted; runs of consecutive indices
 * go out as one request. Indices beyond ram_size are -ERANGE. */
int dcres_memfile_write_pages(struct dcres_memfile *mf, const uint64_t *pages,
			      const void *buf, size_t n);

/* Reads n pages into buf (aligned to 4096), pages[i] to buf + i * page_size.
 * A page in a hole reads as zeros. */
int dcres_memfile_read_pages(struct dcres_memfile *mf, const uint64_t *pages,
			     void *buf, size_t n);

/* Size and CRC-32C of mf's whole file as dcres_file_checksum would read
 * them, computed from its header and p's per-page CRCs without reading the
 * file: valid when mf holds exactly p's pages (absent pages are holes or
 * zeros) at its full size (after dcres_memfile_sync). */
void dcres_memfile_sum(const struct dcres_memfile *mf, const struct dcres_presence *p,
		       uint64_t *size, uint32_t *crc);

/* Turns pages [first, first + count) into a hole (fallocate PUNCH_HOLE). */
int dcres_memfile_punch(struct dcres_memfile *mf, uint64_t first, uint64_t count);

/* Calls fn for every run of pages holding data, in page order, found with
 * SEEK_DATA/SEEK_HOLE; stops early and returns fn's value if it is non-zero. */
typedef int (*dcres_extent_fn)(uint64_t first, uint64_t count, void *arg);
int dcres_memfile_for_each_extent(struct dcres_memfile *mf, dcres_extent_fn fn,
				  void *arg);

/* Gives the file its full size and fsyncs it: call once, when all pages
 * are written. */
int dcres_memfile_sync(struct dcres_memfile *mf);

/* fdatasyncs what was written so far, leaving the size alone: lets a long
 * write commit its metadata along the way instead of all at the end. */
int dcres_memfile_flush(struct dcres_memfile *mf);

/* Closes mf (NULL is a no-op). */
void dcres_memfile_close(struct dcres_memfile *mf);

#endif
