/* Mapped-ram files (mappedram.h): QEMU 10.0's layout of one RAM block, as
 * written by mapped_ram_setup_ramblock() and ram_save_file_bmap() and read
 * back by read_ramblock_mapped_ram() (migration/ram.c):
 *
 *   bitmap_offset - 28   MappedRamHeader, packed, big-endian:
 *                          be32 version (1), be64 page size,
 *                          be64 bitmap_offset, be64 pages_offset
 *   bitmap_offset        BITS_TO_LONGS(npages) 64-bit little-endian words
 *   pages_offset         page p at pages_offset + p * page_size
 *
 * The bitmap is written at the end of the migration; a page whose bit is
 * clear is not in the file even if data is there. */
#define _GNU_SOURCE
#include "dcres/mappedram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/fileio.h"
#include "dcres/log.h"
#include "ondisk.h"

#define MR_HDR_SIZE 28u
#define MR_VERSION 1u
#define MR_PAGE_SIZE 4096u
/* 16 TiB of 4 KiB pages (a 512 MiB bitmap): bounds what a bad geometry can
 * make us allocate. */
#define MR_MAX_PAGES (1ull << 32)

/* Bytes of the on-disk bitmap of npages pages (QEMU: BITS_TO_LONGS * 8). */
static uint64_t bitmap_bytes(uint64_t npages)
{
	return (npages + 63) / 64 * 8;
}

/* Checks geo on its own (before looking at the file): page-size multiple,
 * bounded, offsets leaving room for header and bitmap. -EINVAL naming path. */
static int check_geometry(const char *path, const struct dcres_mapped_ram *geo)
{
	uint64_t npages = geo->used_length / MR_PAGE_SIZE;

	if (!memchr(geo->block_id, 0, sizeof(geo->block_id))) {
		pr_err("%s: block id not NUL-terminated", path);
		return -EINVAL;
	}
	if (geo->used_length % MR_PAGE_SIZE || npages > MR_MAX_PAGES) {
		pr_err("%s: block '%s': unsupported length %llu (not a multiple of %u "
		       "or too large)", path, geo->block_id,
		       (unsigned long long)geo->used_length, MR_PAGE_SIZE);
		return -EINVAL;
	}
	if (geo->bitmap_offset < MR_HDR_SIZE || geo->bitmap_offset > INT64_MAX / 2 ||
	    geo->pages_offset > INT64_MAX / 2 ||
	    geo->pages_offset < geo->bitmap_offset + bitmap_bytes(npages)) {
		pr_err("%s: block '%s': inconsistent geometry (bitmap at %llu, "
		       "pages at %llu, %llu pages)", path, geo->block_id,
		       (unsigned long long)geo->bitmap_offset,
		       (unsigned long long)geo->pages_offset,
		       (unsigned long long)npages);
		return -EINVAL;
	}
	return 0;
}

/* Reads the MappedRamHeader before the bitmap and checks it against geo;
 * -EINVAL (or the read error) naming path. */
static int check_header(struct dcres_mrfile *f)
{
	uint8_t hdr[MR_HDR_SIZE];
	uint32_t version;
	uint64_t page_size, bmap, pages;
	int ret;

	ret = dcres_pread_full(f->fd, hdr, sizeof(hdr),
			       (off_t)(f->geo.bitmap_offset - MR_HDR_SIZE), f->path);
	if (ret)
		return ret;
	version = get_be32(hdr);
	page_size = get_be64(hdr + 4);
	bmap = get_be64(hdr + 12);
	pages = get_be64(hdr + 20);
	if (version != MR_VERSION) {
		pr_err("%s: block '%s': mapped-ram header version %u, want %u", f->path,
		       f->geo.block_id, version, MR_VERSION);
		return -EINVAL;
	}
	if (page_size != MR_PAGE_SIZE || bmap != f->geo.bitmap_offset ||
	    pages != f->geo.pages_offset) {
		pr_err("%s: block '%s': mapped-ram header (page size %llu, bitmap at "
		       "%llu, pages at %llu) does not match the expected geometry "
		       "(page size %u, bitmap at %llu, pages at %llu)", f->path,
		       f->geo.block_id, (unsigned long long)page_size,
		       (unsigned long long)bmap, (unsigned long long)pages,
		       MR_PAGE_SIZE, (unsigned long long)f->geo.bitmap_offset,
		       (unsigned long long)f->geo.pages_offset);
		return -EINVAL;
	}
	return 0;
}

/* Reads the on-disk bitmap into f->bitmap, dropping bits beyond npages. */
static int read_bitmap(struct dcres_mrfile *f)
{
	uint64_t len = bitmap_bytes(f->npages);
	uint8_t *raw = malloc(len ? len : 1);
	int ret;

	if (!raw)
		return -ENOMEM;
	ret = dcres_pread_full(f->fd, raw, len, (off_t)f->geo.bitmap_offset, f->path);
	if (!ret) {
		for (uint64_t i = 0; i < len / 8; i++)
			f->bitmap[i] = get_le64(raw + 8 * i);
		if (f->npages % 64)
			f->bitmap[f->npages / 64] &= (1ull << (f->npages % 64)) - 1;
	}
	free(raw);
	return ret;
}

void dcres_mapped_ram_encode(const struct dcres_mapped_ram *geo, uint8_t *out)
{
	memset(out, 0, DCRES_MAPPED_RAM_ID_MAX);
	memcpy(out, geo->block_id, strlen(geo->block_id));
	put_be64(out + DCRES_MAPPED_RAM_ID_MAX, geo->used_length);
	put_be64(out + DCRES_MAPPED_RAM_ID_MAX + 8, geo->bitmap_offset);
	put_be64(out + DCRES_MAPPED_RAM_ID_MAX + 16, geo->pages_offset);
}

void dcres_mapped_ram_decode(const uint8_t *in, struct dcres_mapped_ram *geo)
{
	memcpy(geo->block_id, in, DCRES_MAPPED_RAM_ID_MAX);
	geo->used_length = get_be64(in + DCRES_MAPPED_RAM_ID_MAX);
	geo->bitmap_offset = get_be64(in + DCRES_MAPPED_RAM_ID_MAX + 8);
	geo->pages_offset = get_be64(in + DCRES_MAPPED_RAM_ID_MAX + 16);
}

int dcres_mrfile_open(const char *path, const struct dcres_mapped_ram *geo,
		      bool writable, struct dcres_mrfile *out)
{
	struct stat sb;
	int ret;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (snprintf(out->path, sizeof(out->path), "%s", path) >= (int)sizeof(out->path))
		return -ENAMETOOLONG;
	ret = check_geometry(path, geo);
	if (ret)
		return ret;
	out->geo = *geo;
	out->page_size = MR_PAGE_SIZE;
	out->npages = geo->used_length / MR_PAGE_SIZE;
	out->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (out->fd < 0) {
		ret = -errno;
		pr_perror("open %s", path);
		goto err;
	}
	if (fstat(out->fd, &sb) < 0) {
		ret = -errno;
		pr_perror("stat %s", path);
		goto err;
	}
	if ((uint64_t)sb.st_size < geo->bitmap_offset + bitmap_bytes(out->npages)) {
		pr_err("%s: truncated (%lld bytes; block '%s' needs its bitmap up to "
		       "offset %llu)", path, (long long)sb.st_size, geo->block_id,
		       (unsigned long long)(geo->bitmap_offset +
					    bitmap_bytes(out->npages)));
		ret = -EIO;
		goto err;
	}
	ret = check_header(out);
	if (ret)
		goto err;
	out->bitmap = calloc(bitmap_bytes(out->npages) / 8 + 1, 8);
	if (!out->bitmap) {
		ret = -ENOMEM;
		goto err;
	}
	ret = read_bitmap(out);
	if (ret)
		goto err;
	return 0;
err:
	dcres_mrfile_close(out);
	return ret;
}

void dcres_mrfile_close(struct dcres_mrfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->bitmap);
	f->fd = -1;
	f->bitmap = NULL;
}

bool dcres_mrfile_test(const struct dcres_mrfile *f, uint64_t page)
{
	return page < f->npages && (f->bitmap[page / 64] >> (page % 64) & 1);
}

void dcres_mrfile_set(struct dcres_mrfile *f, uint64_t page)
{
	if (page < f->npages)
		f->bitmap[page / 64] |= 1ull << (page % 64);
}

uint64_t dcres_mrfile_count(const struct dcres_mrfile *f)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < (f->npages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(f->bitmap[i]);
	return n;
}

/* Checks that pages [page, page + n) lie in the block; -ERANGE naming the
 * file and page otherwise. */
static int check_range(const struct dcres_mrfile *f, uint64_t page, uint64_t n)
{
	if (page > f->npages || n > f->npages - page) {
		pr_err("%s: pages %llu..+%llu beyond block '%s' (%llu pages)", f->path,
		       (unsigned long long)page, (unsigned long long)n, f->geo.block_id,
		       (unsigned long long)f->npages);
		return -ERANGE;
	}
	return 0;
}

int dcres_mrfile_read_pages(struct dcres_mrfile *f, uint64_t page, void *buf, uint64_t n)
{
	int ret = check_range(f, page, n);

	if (ret)
		return ret;
	return dcres_pread_full(f->fd, buf, n * f->page_size,
				(off_t)(f->geo.pages_offset + page * f->page_size),
				f->path);
}

int dcres_mrfile_write_pages(struct dcres_mrfile *f, uint64_t page, const void *buf,
			     uint64_t n)
{
	int ret = check_range(f, page, n);

	if (ret)
		return ret;
	return dcres_pwrite_full(f->fd, buf, n * f->page_size,
				 (off_t)(f->geo.pages_offset + page * f->page_size),
				 f->path);
}

int dcres_mrfile_write_bitmap(struct dcres_mrfile *f)
{
	uint64_t len = bitmap_bytes(f->npages);
	uint8_t *raw = malloc(len ? len : 1);
	int ret;

	if (!raw)
		return -ENOMEM;
	for (uint64_t i = 0; i < len / 8; i++)
		put_le64(raw + 8 * i, f->bitmap[i]);
	ret = dcres_pwrite_full(f->fd, raw, len, (off_t)f->geo.bitmap_offset, f->path);
	free(raw);
	if (!ret && fsync(f->fd) < 0) {
		ret = -errno;
		pr_perror("fsync %s", f->path);
	}
	return ret;
}

/* Punches pages [first, end) whose bit is clear, adding them to *count. */
static int punch_clear_runs(struct dcres_mrfile *f, uint64_t first, uint64_t end,
			    uint64_t *count)
{
	uint64_t p = first;

	while (p < end) {
		uint64_t run;

		if (dcres_mrfile_test(f, p)) {
			p++;
			continue;
		}
		for (run = p; run < end && !dcres_mrfile_test(f, run); run++)
			;
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(f->geo.pages_offset + p * f->page_size),
			      (off_t)((run - p) * f->page_size)) < 0) {
			int err = errno;

			pr_perror("%s: punch pages %llu..%llu", f->path,
				  (unsigned long long)p, (unsigned long long)run - 1);
			return -err;
		}
		*count += run - p;
		p = run;
	}
	return 0;
}

int dcres_mrfile_punch_absent(struct dcres_mrfile *f, uint64_t *punched)
{
	uint64_t start = f->geo.pages_offset;
	uint64_t end = start + f->npages * f->page_size;
	uint64_t count = 0;
	off_t pos = (off_t)start;
	int ret = 0;

	while ((uint64_t)pos < end) {
		off_t data = lseek(f->fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break; /* no data after pos */
		if (data < 0)
			goto lseek_err;
		if ((uint64_t)data >= end)
			break;
		hole = lseek(f->fd, data, SEEK_HOLE);
		if (hole < 0)
			goto lseek_err;
		if ((uint64_t)hole > end)
			hole = (off_t)end;
		/* Every page overlapping [data, hole) holds some data. */
		ret = punch_clear_runs(f, ((uint64_t)data - start) / f->page_size,
				       ((uint64_t)hole - start + f->page_size - 1) /
					       f->page_size, &count);
		if (ret)
			break;
		pos = hole;
	}
	if (punched)
		*punched = count;
	return ret;
lseek_err:
	ret = -errno;
	pr_perror("%s: seek data/hole at offset %lld", f->path, (long long)pos);
	if (punched)
		*punched = count;
	return ret;
}
