/* Unit test of mappedram.c: a synthetic mapped-ram file laid out as QEMU
 * 10.0 writes one (device state, then the block's 28-byte MappedRamHeader,
 * its bitmap, pages at a 1 MiB aligned offset, more stream after them) is
 * opened, read, written and punched; a wrong geometry, a damaged header and
 * a truncated file are refused naming the file. Run on ext4 (/var/tmp) and
 * tmpfs (/dev/shm, when present). */
#include "testutil.h"

#include <errno.h>

#include "dcres/mappedram.h"

#define PS 4096u
#define NPAGES 1000u /* the last bitmap word is partly used */
#define PREFIX 3000u /* bytes of "device state" before the header */
#define MIB (1u << 20)

/* Content of page p, generation g: every byte depends on both. */
static void fill_page(uint8_t *buf, uint64_t p, unsigned g)
{
	for (unsigned i = 0; i < PS; i++)
		buf[i] = (uint8_t)(p * 131 + i * 7 + g * 29 + 1);
}

/* Stores v as n big-endian bytes at b. */
/* Whether page p of the original file has its bit set: every third page
 * (0, 3, ..., 999, the last one). */
static bool orig_bit(uint64_t p)
{
	return p % 3 == 0;
}

/* Writes path as QEMU would and fills geo. Pages with orig_bit carry
 * generation 0; pages 1, 2, 4 also carry data but a clear bit (pages that
 * moved away during a live checkpoint). A stray bit beyond NPAGES is set in
 * the last bitmap word, which readers must ignore. */
static void make_file(const char *path, struct dcres_mapped_ram *geo)
{
	uint64_t bmap_len = (NPAGES + 63) / 64 * 8;
	uint8_t page[PS];
	uint8_t *bmap = calloc(bmap_len, 1);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && bmap != NULL);
	memset(geo, 0, sizeof(*geo));
	snprintf(geo->block_id, sizeof(geo->block_id), "pc.ram");
	geo->used_length = (uint64_t)NPAGES * PS;
	geo->bitmap_offset = PREFIX + 28;
	geo->pages_offset = (geo->bitmap_offset + bmap_len + MIB - 1) / MIB * MIB;

	memset(page, 0xab, sizeof(page));
	CHECK(pwrite(fd, page, PREFIX, 0) == PREFIX);
	test_write_mapped_ram_header(fd, geo);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (orig_bit(p))
			bmap[p / 8] |= (uint8_t)(1u << (p % 8)); /* LE 64-bit words */
		if (orig_bit(p) || p == 1 || p == 2 || p == 4) {
			fill_page(page, p, 0);
			CHECK(pwrite(fd, page, PS, (off_t)(geo->pages_offset + p * PS)) == PS);
		}
	}
	bmap[NPAGES / 8] |= (uint8_t)(1u << (NPAGES % 8)); /* beyond the block */
	CHECK(pwrite(fd, bmap, bmap_len, (off_t)geo->bitmap_offset) == (ssize_t)bmap_len);
	/* The stream goes on after the block's pages (next block, device state). */
	CHECK(pwrite(fd, "QEVM", 4, (off_t)(geo->pages_offset + geo->used_length)) == 4);
	close(fd);
	free(bmap);
}

/* True when page p of f holds no data (lies in a hole). */
static bool page_is_hole(const struct dcres_mrfile *f, uint64_t p)
{
	off_t off = (off_t)(f->geo.pages_offset + p * PS);
	off_t hole = lseek(f->fd, off, SEEK_HOLE);

	CHECK(hole >= 0);
	return hole == off;
}

/* Expects dcres_mrfile_open(path, geo) to fail with want, naming path. */
static void expect_refused(const char *path, const struct dcres_mapped_ram *geo, int want)
{
	struct dcres_mrfile f;

	test_capture_start();
	CHECK_EQ(dcres_mrfile_open(path, geo, false, &f), want);
	CHECK(test_logged(path));
	CHECK(f.fd == -1 && f.bitmap == NULL);
	dcres_log_set_sink(NULL);
}

/* Runs every check on a file in a scratch directory under base. */
static void run(const char *base)
{
	const char *dir = test_tmpdir(base);
	char *path = test_path(dir, "main.mem");
	struct dcres_mapped_ram geo, bad;
	struct dcres_mrfile f;
	uint8_t *buf = malloc(4 * PS), want[PS];
	uint64_t punched = 99;

	CHECK(buf != NULL);
	make_file(path, &geo);

	/* Open, test, count, read. */
	CHECK_EQ(dcres_mrfile_open(path, &geo, false, &f), 0);
	CHECK_EQ(f.npages, NPAGES);
	CHECK_EQ(f.page_size, PS);
	for (uint64_t p = 0; p < NPAGES; p++)
		CHECK_EQ(dcres_mrfile_test(&f, p), orig_bit(p));
	CHECK(!dcres_mrfile_test(&f, NPAGES));
	CHECK_EQ(dcres_mrfile_count(&f), 334); /* 0, 3, ..., 999 */
	CHECK_EQ(dcres_mrfile_read_pages(&f, 3, buf, 4), 0);
	fill_page(want, 3, 0);
	CHECK(memcmp(buf, want, PS) == 0);
	fill_page(want, 4, 0);
	CHECK(memcmp(buf + PS, want, PS) == 0);
	fill_page(want, 6, 0);
	CHECK(memcmp(buf + 3 * PS, want, PS) == 0);
	CHECK_EQ(dcres_mrfile_read_pages(&f, NPAGES - 1, buf, 1), 0);
	fill_page(want, NPAGES - 1, 0);
	CHECK(memcmp(buf, want, PS) == 0);
	test_capture_start();
	CHECK_EQ(dcres_mrfile_read_pages(&f, NPAGES - 1, buf, 2), -ERANGE);
	CHECK(test_logged(path));
	dcres_log_set_sink(NULL);
	/* Read-only: writing fails. */
	test_capture_start();
	CHECK(dcres_mrfile_write_pages(&f, 0, buf, 1) < 0);
	CHECK(test_logged(path));
	dcres_log_set_sink(NULL);
	dcres_mrfile_close(&f);

	/* Write pages and bits, write the bitmap back, reopen. */
	CHECK_EQ(dcres_mrfile_open(path, &geo, true, &f), 0);
	for (uint64_t p = 500; p < 504; p++)
		fill_page(buf + (p - 500) * PS, p, 1);
	CHECK_EQ(dcres_mrfile_write_pages(&f, 500, buf, 4), 0);
	for (uint64_t p = 500; p < 504; p++)
		dcres_mrfile_set(&f, p);
	dcres_mrfile_set(&f, NPAGES); /* beyond the block: ignored */
	CHECK_EQ(dcres_mrfile_count(&f), 334 + 3); /* 501 was set */
	CHECK_EQ(dcres_mrfile_write_bitmap(&f), 0);
	test_capture_start();
	CHECK_EQ(dcres_mrfile_write_pages(&f, NPAGES, buf, 1), -ERANGE);
	CHECK(test_logged(path));
	dcres_log_set_sink(NULL);
	dcres_mrfile_close(&f);
	CHECK_EQ(dcres_mrfile_open(path, &geo, true, &f), 0);
	CHECK_EQ(dcres_mrfile_count(&f), 334 + 3); /* 501 was set */
	for (uint64_t p = 0; p < NPAGES; p++)
		CHECK_EQ(dcres_mrfile_test(&f, p), orig_bit(p) || (p >= 500 && p < 504));
	CHECK_EQ(dcres_mrfile_read_pages(&f, 500, buf, 4), 0);
	for (uint64_t p = 500; p < 504; p++) {
		fill_page(want, p, 1);
		CHECK(memcmp(buf + (p - 500) * PS, want, PS) == 0);
	}

	/* Punch: pages 1, 2, 4 (data, clear bit) become holes; pages with
	 * their bit set keep their data; the stream after the block stays. */
	CHECK(!page_is_hole(&f, 1) && !page_is_hole(&f, 4));
	CHECK_EQ(dcres_mrfile_punch_absent(&f, &punched), 0);
	CHECK_EQ(punched, 3);
	for (uint64_t p = 0; p < NPAGES; p++)
		CHECK_EQ(page_is_hole(&f, p), !dcres_mrfile_test(&f, p));
	CHECK_EQ(dcres_mrfile_read_pages(&f, 0, buf, 4), 0);
	fill_page(want, 0, 0);
	CHECK(memcmp(buf, want, PS) == 0);
	fill_page(want, 3, 0);
	CHECK(memcmp(buf + 3 * PS, want, PS) == 0);
	memset(want, 0, PS);
	CHECK(memcmp(buf + PS, want, PS) == 0 && memcmp(buf + 2 * PS, want, PS) == 0);
	CHECK(pread(f.fd, want, 4, (off_t)(geo.pages_offset + geo.used_length)) == 4);
	CHECK(memcmp(want, "QEVM", 4) == 0);
	CHECK_EQ(dcres_mrfile_punch_absent(&f, &punched), 0);
	CHECK_EQ(punched, 0);
	dcres_mrfile_close(&f);

	/* Wrong geometry is refused, naming the file. */
	bad = geo;
	bad.bitmap_offset += 8;
	expect_refused(path, &bad, -EINVAL);
	bad = geo;
	bad.pages_offset += MIB;
	expect_refused(path, &bad, -EINVAL);
	bad = geo;
	bad.used_length += 100; /* not a page multiple */
	expect_refused(path, &bad, -EINVAL);
	bad = geo;
	bad.pages_offset = bad.bitmap_offset + 8; /* overlaps the bitmap */
	expect_refused(path, &bad, -EINVAL);
	bad = geo;
	bad.bitmap_offset = 10; /* no room for the header */
	expect_refused(path, &bad, -EINVAL);

	/* A damaged header (version, page size, each offset) is refused. */
	static const off_t fields[] = { 3, 10, 12 + 7, 20 + 5 };
	for (unsigned i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		test_flip_byte(path, PREFIX + fields[i]);
		expect_refused(path, &geo, -EINVAL);
		test_flip_byte(path, PREFIX + fields[i]);
	}
	CHECK_EQ(dcres_mrfile_open(path, &geo, false, &f), 0);
	dcres_mrfile_close(&f);

	/* A file too short for its bitmap is refused; a missing one too. */
	CHECK(truncate(path, (off_t)geo.bitmap_offset + 100) == 0);
	expect_refused(path, &geo, -EIO);
	CHECK(unlink(path) == 0);
	expect_refused(path, &geo, -ENOENT);

	free(buf);
	free(path);
}

int main(void)
{
	struct stat sb;

	run("/var/tmp");
	if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode))
		run("/dev/shm");
	printf("ckpt-mappedram-test: ok\n");
	return 0;
}
