/* Unit test of presence.c: round trip, detection of any flipped byte and
 * of truncation, and verify_pages naming the lowest damaged page. */
#include "testutil.h"

#include <errno.h>

#include "dcres/crc32c.h"
#include "dcres/manifest.h"
#include "dcres/presence.h"

#define PS 4096u
#define DATA_START DCRES_MEMFILE_DATA_START

static void check_equal(const struct dcres_presence *a, const struct dcres_presence *b)
{
	CHECK_EQ(a->npages, b->npages);
	CHECK_EQ(a->page_size, b->page_size);
	CHECK_EQ(dcres_presence_count(a), dcres_presence_count(b));
	for (uint64_t p = 0; p < a->npages; p++) {
		CHECK_EQ(dcres_presence_test(a, p), dcres_presence_test(b, p));
		if (dcres_presence_test(a, p))
			CHECK_EQ(a->page_crc[p], b->page_crc[p]);
	}
}

static void round_trip(const char *dir)
{
	char *path = test_path(dir, "host-1.present");
	struct dcres_presence p, q;
	struct stat sb;
	off_t len;
	int fd;

	/* 1000 pages: the last bitmap word is partly used. */
	CHECK_EQ(dcres_presence_init(&p, 1000, PS), 0);
	for (uint64_t page = 0; page < 1000; page += 3)
		dcres_presence_set(&p, page, (uint32_t)(page * 2654435761u));
	dcres_presence_set(&p, 999, 0x12345678);
	dcres_presence_clear(&p, 300);
	CHECK(!dcres_presence_test(&p, 300));
	CHECK(dcres_presence_test(&p, 999) && !dcres_presence_test(&p, 998));
	CHECK_EQ(dcres_presence_count(&p), 333);
	CHECK_EQ(dcres_presence_write(path, &p), 0);
	{
		/* The size and CRC the writer reports are the file's. */
		uint64_t size, fsize;
		uint32_t crc, fcrc;

		unlink(path);
		CHECK_EQ(dcres_presence_write_at(AT_FDCWD, path, path, &p, &size, &crc), 0);
		CHECK_EQ(dcres_file_checksum(path, &fsize, &fcrc), 0);
		CHECK_EQ(size, fsize);
		CHECK_EQ(crc, fcrc);
	}
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	CHECK_EQ(dcres_presence_read(path, &q), 0);
	check_equal(&p, &q);
	dcres_presence_free(&q);

	/* Any flipped byte is detected. */
	len = test_file_size(path);
	CHECK_EQ(len, 32 + 16 * 8 + 333 * 4 + 4);
	for (off_t off = 0; off < len; off++) {
		test_flip_byte(path, off);
		test_capture_start();
		if (dcres_presence_read(path, &q) >= 0) {
			fprintf(stderr, "flipped byte %lld not detected\n", (long long)off);
			exit(1);
		}
		CHECK(test_logged(path));
		CHECK(q.bits == NULL && q.page_crc == NULL);
		dcres_log_set_sink(NULL);
		test_flip_byte(path, off);
	}

	/* Truncation anywhere is detected, as is a trailing byte. */
	static const off_t cuts[] = { 0, 5, 31, 32, 35, 100, 200, 1000 };
	for (unsigned i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		CHECK_EQ(dcres_presence_write(path, &p), 0);
		CHECK(truncate(path, cuts[i]) == 0);
		CHECK_EQ(dcres_presence_read(path, &q), -EIO);
	}
	CHECK_EQ(dcres_presence_write(path, &p), 0);
	CHECK(truncate(path, len - 1) == 0);
	CHECK_EQ(dcres_presence_read(path, &q), -EIO);
	CHECK_EQ(dcres_presence_write(path, &p), 0);
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	CHECK(dcres_presence_read(path, &q) < 0);
	CHECK(unlink(path) == 0);
	CHECK_EQ(dcres_presence_read(path, &q), -ENOENT);

	/* An empty set round-trips too. */
	dcres_presence_free(&p);
	CHECK_EQ(dcres_presence_init(&p, 0, PS), 0);
	CHECK_EQ(dcres_presence_write(path, &p), 0);
	CHECK_EQ(dcres_presence_read(path, &q), 0);
	check_equal(&p, &q);
	dcres_presence_free(&q);
	dcres_presence_free(&p);
	CHECK_EQ(dcres_presence_init(&p, (1ull << 32) + 1, PS), -EINVAL);
	free(path);
}

/* Flips one byte of page's data in the memory file behind mf's back. */
static void damage_page(const char *path, uint64_t page)
{
	test_flip_byte(path, (off_t)(DATA_START + page * PS + 1234));
}

static void verify(const char *dir)
{
	/* 40000 pages: several parallel tasks of 16384 pages. */
	const uint64_t npages = 40000;
	char *path = test_path(dir, "host-1.mem");
	struct dcres_memfile_info info = { .ram_size = npages * PS, .page_size = PS,
					   .host_id = 1 };
	struct dcres_presence p;
	struct dcres_memfile *mf;
	uint64_t *pages = malloc(npages * sizeof(*pages)), n = 0, bad;
	uint8_t *buf = aligned_alloc(4096, 2000 * PS), *zero = calloc(1, PS);

	CHECK(pages && buf && zero);
	CHECK_EQ(dcres_memfile_create(path, &info, &mf), 0);
	CHECK_EQ(dcres_presence_init(&p, npages, PS), 0);
	for (uint64_t page = 3; page < npages; page += 37) {
		uint8_t *d = buf + n * PS;

		for (unsigned i = 0; i < PS; i++)
			d[i] = (uint8_t)(page ^ (i * 31));
		dcres_presence_set(&p, page, dcres_crc32c(0, d, PS));
		pages[n++] = page;
	}
	CHECK(n < 2000);
	CHECK_EQ(dcres_memfile_write_pages(mf, pages, buf, n), 0);
	/* A present page that is a hole holds zeros. */
	dcres_presence_set(&p, 20000, dcres_crc32c(0, zero, PS));
	CHECK(!dcres_presence_test(&p, 20001));
	CHECK_EQ(dcres_memfile_sync(mf), 0);

	{
		/* The file's sum, from its header and the pages' CRCs. */
		uint64_t size, fsize;
		uint32_t crc, fcrc;

		dcres_memfile_sum(mf, &p, &size, &crc);
		CHECK_EQ(dcres_file_checksum(path, &fsize, &fcrc), 0);
		CHECK_EQ(size, fsize);
		CHECK_EQ(crc, fcrc);
	}
	bad = 12345;
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), 0);
	CHECK_EQ(bad, 12345);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, NULL), 0);

	/* Two damaged pages in different tasks: the lower one is reported. */
	damage_page(path, 3 + 37 * 900);  /* 33303, third task */
	damage_page(path, 3 + 37 * 200);  /* 7403, first task */
	test_capture_start();
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), -EBADMSG);
	CHECK_EQ(bad, 7403);
	CHECK(test_logged(path) && test_logged("page 7403"));
	dcres_log_set_sink(NULL);
	damage_page(path, 7403);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), -EBADMSG);
	CHECK_EQ(bad, 33303);
	damage_page(path, 33303);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), 0);

	/* Data where the presence file expects a hole's zeros. */
	damage_page(path, 20000);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), -EBADMSG);
	CHECK_EQ(bad, 20000);
	/* A page punched away no longer matches its CRC. */
	damage_page(path, 20000);
	CHECK_EQ(dcres_memfile_punch(mf, 3 + 37 * 500, 1), 0);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), -EBADMSG);
	CHECK_EQ(bad, 3 + 37 * 500);
	dcres_memfile_close(mf);

	/* A presence set that does not fit the memory file is refused. */
	CHECK_EQ(dcres_memfile_open(path, &mf), 0);
	dcres_presence_free(&p);
	CHECK_EQ(dcres_presence_init(&p, npages + 1, PS), 0);
	CHECK_EQ(dcres_presence_verify_pages(&p, mf, &bad), -EINVAL);
	dcres_memfile_close(mf);

	dcres_presence_free(&p);
	free(pages);
	free(buf);
	free(zero);
	free(path);
}

/* dcres_presence_read of path, freed again. */
static int read_free(const char *path)
{
	struct dcres_presence p;
	int ret = dcres_presence_read(path, &p);

	if (!ret)
		dcres_presence_free(&p);
	return ret;
}

/* A consistent file declaring 8 KiB or 1 MiB pages is refused naming the
 * file and the field; so is such a set at init. */
static void page_size_refused(const char *dir)
{
	char *path = test_path(dir, "host-2.present");
	struct dcres_presence p;

	CHECK_EQ(dcres_presence_init(&p, 1000, 8192), -ENOTSUP);
	CHECK_EQ(dcres_presence_init(&p, 1000, PS), 0);
	dcres_presence_set(&p, 7, 1234);
	CHECK_EQ(dcres_presence_write(path, &p), 0);
	dcres_presence_free(&p);
	test_page_sizes_refused(path, read_free);
	free(path);
}

int main(void)
{
	const char *dir = test_tmpdir("/var/tmp");

	round_trip(dir);
	page_size_refused(dir);
	verify(dir);
	printf("ckpt-presence-test: ok\n");
	return 0;
}
