/* Helpers shared by the dcres-ckpt unit tests: checks that exit on failure,
 * scratch directories removed at exit, byte flipping, page-size rewriting
 * and log capture. */
#ifndef DCRES_CKPT_TESTUTIL_H
#define DCRES_CKPT_TESTUTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/bytes.h"
#include "dcres/crc32c.h"
#include "dcres/log.h"
#include "dcres/mappedram.h"

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
			exit(1);                                                 \
		}                                                                \
	} while (0)

/* Checks that expression e (an int) equals want, printing both if not. */
#define CHECK_EQ(e, want)                                                        \
	do {                                                                     \
		long long got_ = (long long)(e), want_ = (long long)(want);      \
		if (got_ != want_) {                                             \
			fprintf(stderr, "%s:%d: %s is %lld, want %lld\n", __FILE__, \
				__LINE__, #e, got_, want_);                      \
			exit(1);                                                 \
		}                                                                \
	} while (0)

#define MAX_TMPDIRS 8
static char test_tmpdirs[MAX_TMPDIRS][256];
static int test_ntmpdirs;

static inline int test_rm_entry(const char *path, const struct stat *sb, int type,
				struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static inline void test_cleanup(void)
{
	for (int i = 0; i < test_ntmpdirs; i++)
		nftw(test_tmpdirs[i], test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a scratch directory under base, removed when the test exits. */
static inline const char *test_tmpdir(const char *base)
{
	char *dir;

	CHECK(test_ntmpdirs < MAX_TMPDIRS);
	dir = test_tmpdirs[test_ntmpdirs];
	snprintf(dir, sizeof(test_tmpdirs[0]), "%s/dcres-ckpt-test.XXXXXX", base);
	CHECK(mkdtemp(dir) != NULL);
	if (!test_ntmpdirs++)
		atexit(test_cleanup);
	return dir;
}

/* Returns a malloc'd "dir/name". */
static inline char *test_path(const char *dir, const char *name)
{
	char *p;

	CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Flips (xor 0xff) the byte at off of path. */
static inline void test_flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, off) == 1);
	c ^= 0xff;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

/* Rewrites the page size field (be32 at offset 12 of every dcres file) of
 * path and recomputes the checksum that covers it, so that the file is
 * consistent but declares pages of page_size bytes: a memory file's
 * header CRC (offset 4092), or the trailing CRC of the other files. */
static inline void test_set_page_size(const char *path, uint32_t page_size)
{
	int fd = open(path, O_RDWR);
	off_t len = lseek(fd, 0, SEEK_END);
	bool memfile;
	uint8_t *buf;

	CHECK(fd >= 0 && len >= 64);
	buf = malloc((size_t)len);
	CHECK(buf && pread(fd, buf, (size_t)len, 0) == len);
	memfile = memcmp(buf, "DCRESMEM", 8) == 0;
	put_be32(buf + 12, page_size);
	off_t crc_off = memfile ? 4092 : len - 4;
	put_be32(buf + crc_off, dcres_crc32c(0, buf, (size_t)crc_off));
	CHECK(pwrite(fd, buf, memfile ? 4096 : (size_t)len, 0) == (memfile ? 4096 : len));
	free(buf);
	close(fd);
}

static inline off_t test_file_size(const char *path)
{
	struct stat sb;

	CHECK(stat(path, &sb) == 0);
	return sb.st_size;
}

/* Writes QEMU's 28-byte MappedRamHeader of geo (be32 version 1, be64 page
 * size, bitmap offset, pages offset) into fd right before the bitmap. */
static inline void test_write_mapped_ram_header(int fd, const struct dcres_mapped_ram *geo)
{
	const uint64_t fields[4] = { 1, 4096, geo->bitmap_offset, geo->pages_offset };
	const int width[4] = { 4, 8, 8, 8 };
	uint8_t hdr[28], *b = hdr;

	for (int f = 0; f < 4; f++)
		for (int i = 0; i < width[f]; i++)
			*b++ = (uint8_t)(fields[f] >> (8 * (width[f] - 1 - i)));
	CHECK(pwrite(fd, hdr, sizeof(hdr), (off_t)geo->bitmap_offset - 28) == 28);
}

/* Log capture: the lines logged since test_capture_start, also echoed to
 * stderr so failures stay readable. */
static char test_log[16384];

static inline void test_sink(enum dcres_log_level level, const char *line)
{
	size_t used = strlen(test_log);

	(void)level;
	fprintf(stderr, "  [log] %s\n", line);
	snprintf(test_log + used, sizeof(test_log) - used, "%s\n", line);
}

static inline void test_capture_start(void)
{
	test_log[0] = 0;
	dcres_log_set_sink(test_sink);
}

/* True when a line logged since test_capture_start contains s. */
static inline bool test_logged(const char *s)
{
	return strstr(test_log, s) != NULL;
}

/* Makes path declare 8 KiB, then 1 MiB pages (test_set_page_size) and
 * checks that read(path) refuses it with -ENOTSUP, logging path and the
 * field; path is left declaring 1 MiB pages. */
static inline void test_page_sizes_refused(const char *path, int (*read)(const char *path))
{
	static const uint32_t sizes[] = { 8192, 1u << 20 };

	for (unsigned i = 0; i < 2; i++) {
		test_set_page_size(path, sizes[i]);
		test_capture_start();
		CHECK_EQ(read(path), -ENOTSUP);
		CHECK(test_logged(path) && test_logged("page size"));
		dcres_log_set_sink(NULL);
	}
}

#endif
