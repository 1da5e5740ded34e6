/* Unit test of mainpresence.c and dcres_presence_check_page: main.present
 * built from a synthetic main.mem (several parallel tasks' worth of pages)
 * and its main.loc lists exactly the main host's pages main.mem holds,
 * with their CRCs, and survives a write and read; checking main.mem
 * against it passes, then names the lowest damaged page, and a listed
 * page main.mem lacks; page counts that disagree and a truncated main.mem
 * are refused naming the file. */
#include "testutil.h"

#include <errno.h>

#include "dcres/loctable.h"
#include "dcres/mainpresence.h"
#include "dcres/mappedram.h"
#include "dcres/presence.h"

#define PS 4096u
#define NPAGES (2 * 16384u + 1000u) /* three parallel tasks, the last partial */
#define PREFIX 3000u
#define MIB (1u << 20)

/* Content of page p: every byte depends on it. */
static void fill_page(uint8_t *buf, uint64_t p)
{
	for (unsigned i = 0; i < PS; i++)
		buf[i] = (uint8_t)(p * 131 + i * 7 + 1);
}

/* Where main.loc places page p: never written, the main host, or host 1. */
static uint8_t owner(uint64_t p)
{
	static const uint8_t by_mod[5] = { DCRES_LOC_ZERO, DCRES_LOC_MAIN, 1, DCRES_LOC_MAIN, 1 };

	return by_mod[p % 5];
}

/* Whether page p's bit is set in main.mem: the main host's pages but every
 * eleventh (zero pages QEMU left out), and host 1's pages 4, 9, ... below
 * 100 (in two files: main.present must leave them out). Pages are sparse
 * past the first 2000 and around each task boundary, so most runs hold a
 * few pages only. */
static bool bit(uint64_t p)
{
	bool near_edge = p < 2000 || (p % 16384 < 300) || (p % 16384 > 16384 - 300) ||
			 p > NPAGES - 300;

	if (owner(p) == DCRES_LOC_MAIN)
		return p % 11 && (near_edge || p % 97 == 1);
	return owner(p) == 1 && p % 5 == 4 && p < 100;
}

/* Writes dir/main.mem with the pages of bit() and fills geo; loc gets
 * owner()'s placement. */
static char *make_main(const char *dir, struct dcres_mapped_ram *geo,
		       struct dcres_loctable *loc)
{
	char *path = test_path(dir, "main.mem");
	uint8_t page[PS];
	struct dcres_mrfile f;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	memset(geo, 0, sizeof(*geo));
	snprintf(geo->block_id, sizeof(geo->block_id), "pc.ram");
	geo->used_length = (uint64_t)NPAGES * PS;
	geo->bitmap_offset = PREFIX + 28;
	geo->pages_offset = (geo->bitmap_offset + (NPAGES + 63) / 64 * 8 + MIB - 1) / MIB * MIB;
	test_write_mapped_ram_header(fd, geo);
	CHECK(ftruncate(fd, (off_t)(geo->pages_offset + geo->used_length + 100)) == 0);
	close(fd);
	CHECK_EQ(dcres_mrfile_open(path, geo, true, &f), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (!bit(p))
			continue;
		fill_page(page, p);
		CHECK_EQ(dcres_mrfile_write_pages(&f, p, page, 1), 0);
		dcres_mrfile_set(&f, p);
	}
	CHECK_EQ(dcres_mrfile_write_bitmap(&f), 0);
	dcres_mrfile_close(&f);

	CHECK_EQ(dcres_loctable_init(loc, NPAGES, PS), 0);
	for (uint64_t p = 0; p < NPAGES; p++)
		loc->host[p] = owner(p);
	loc->main_file = *geo;
	return path;
}

/* Checks that p lists exactly the main host's pages with a bit, each with
 * its content's CRC. */
static void check_built(const struct dcres_presence *p)
{
	uint8_t page[PS];
	uint64_t n = 0;

	CHECK_EQ(p->npages, NPAGES);
	CHECK_EQ(p->page_size, PS);
	for (uint64_t i = 0; i < NPAGES; i++) {
		bool want = owner(i) == DCRES_LOC_MAIN && bit(i);

		CHECK_EQ(dcres_presence_test(p, i), want);
		if (!want)
			continue;
		n++;
		fill_page(page, i);
		CHECK_EQ(p->page_crc[i], dcres_crc32c(0, page, PS));
		CHECK_EQ(dcres_presence_check_page(p, i, page), 0);
	}
	CHECK_EQ(dcres_presence_count(p), n);
	CHECK(n > 1000);
}

/* The checker: a listed page's data, a damaged copy, unlisted pages. */
static void check_page(const struct dcres_presence *p)
{
	uint8_t page[PS];

	fill_page(page, 1);
	CHECK_EQ(dcres_presence_check_page(p, 1, page), 0);
	page[100] ^= 1;
	CHECK_EQ(dcres_presence_check_page(p, 1, page), -EBADMSG);
	fill_page(page, 2);
	CHECK_EQ(dcres_presence_check_page(p, 2, page), -ENOENT);  /* host 1's */
	CHECK_EQ(dcres_presence_check_page(p, 4, page), -ENOENT);  /* host 1's, in main.mem */
	CHECK_EQ(dcres_presence_check_page(p, 33, page), -ENOENT); /* a zero page */
	CHECK_EQ(dcres_presence_check_page(p, NPAGES, page), -ENOENT);
}

/* Opens path with geo, verifies it against p and expects want (and, for
 * -EBADMSG, bad as the page named in the log with path). */
static void expect_verify(const char *path, const struct dcres_mapped_ram *geo,
			  const struct dcres_presence *p, int want, uint64_t bad,
			  const char *logged)
{
	struct dcres_mrfile f;
	uint64_t got = UINT64_MAX;
	char page[64];

	CHECK_EQ(dcres_mrfile_open(path, geo, false, &f), 0);
	test_capture_start();
	CHECK_EQ(dcres_main_presence_verify(p, &f, &got), want);
	if (want == -EBADMSG) {
		snprintf(page, sizeof(page), "page %llu:", (unsigned long long)bad);
		CHECK_EQ(got, bad);
		CHECK(test_logged(path) && test_logged(page) && test_logged(logged));
	}
	dcres_log_set_sink(NULL);
	dcres_mrfile_close(&f);
}

/* Every check on a main.mem in a scratch directory under base. */
static void run(const char *base)
{
	const char *dir = test_tmpdir(base);
	char *present = test_path(dir, DCRES_MAIN_PRESENT_NAME);
	struct dcres_mapped_ram geo;
	struct dcres_loctable loc;
	struct dcres_presence p, q;
	struct dcres_mrfile f;
	char *path = make_main(dir, &geo, &loc);
	uint64_t bad_lo = 16384 + 2, bad_hi = 2 * 16384 + 3; /* tasks 1 and 2, main's */

	CHECK(owner(bad_lo) == DCRES_LOC_MAIN && bit(bad_lo));
	CHECK(owner(bad_hi) == DCRES_LOC_MAIN && bit(bad_hi));

	/* Built, written, read back: the same set. */
	CHECK_EQ(dcres_mrfile_open(path, &geo, false, &f), 0);
	CHECK_EQ(dcres_main_presence_build(&f, &loc, &p), 0);
	dcres_mrfile_close(&f);
	check_built(&p);
	check_page(&p);
	CHECK_EQ(dcres_presence_write(present, &p), 0);
	CHECK_EQ(dcres_presence_read(present, &q), 0);
	check_built(&q);
	dcres_presence_free(&q);

	/* main.mem checks out; then the lowest of two damaged pages is named
	 * whichever task finds its page first. */
	expect_verify(path, &geo, &p, 0, 0, NULL);
	test_flip_byte(path, (off_t)(geo.pages_offset + bad_hi * PS + 9));
	expect_verify(path, &geo, &p, -EBADMSG, bad_hi, "CRC-32C");
	test_flip_byte(path, (off_t)(geo.pages_offset + bad_lo * PS + 4095));
	expect_verify(path, &geo, &p, -EBADMSG, bad_lo, "CRC-32C");
	test_flip_byte(path, (off_t)(geo.pages_offset + bad_lo * PS + 4095));
	test_flip_byte(path, (off_t)(geo.pages_offset + bad_hi * PS + 9));
	expect_verify(path, &geo, &p, 0, 0, NULL);

	/* A listed page whose bit is clear (its data there or not). */
	dcres_presence_set(&p, 33, 0);
	expect_verify(path, &geo, &p, -EBADMSG, 33, "not in its bitmap");
	dcres_presence_clear(&p, 33);

	/* Page counts that disagree. */
	CHECK_EQ(dcres_mrfile_open(path, &geo, false, &f), 0);
	loc.npages--;
	test_capture_start();
	CHECK_EQ(dcres_main_presence_build(&f, &loc, &q), -EINVAL);
	CHECK(test_logged(path));
	loc.npages++;
	p.npages--;
	CHECK_EQ(dcres_main_presence_verify(&p, &f, NULL), -EINVAL);
	p.npages++;
	dcres_log_set_sink(NULL);
	dcres_mrfile_close(&f);

	/* main.mem cut short in its pages area: the read error, nothing built. */
	CHECK(truncate(path, (off_t)(geo.pages_offset + 20000ull * PS)) == 0);
	CHECK_EQ(dcres_mrfile_open(path, &geo, false, &f), 0);
	test_capture_start();
	CHECK_EQ(dcres_main_presence_build(&f, &loc, &q), -EIO);
	CHECK(test_logged(path));
	CHECK(q.bits == NULL && q.page_crc == NULL);
	dcres_log_set_sink(NULL);
	dcres_mrfile_close(&f);

	dcres_presence_free(&p);
	dcres_loctable_free(&loc);
	free(path);
	free(present);
}

int main(void)
{
	run("/var/tmp");
	if (access("/dev/shm", W_OK) == 0)
		run("/dev/shm");
	printf("ckpt-mainpresence-test: ok\n");
	return 0;
}
