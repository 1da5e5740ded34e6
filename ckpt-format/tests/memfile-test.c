/* Unit test of memfile.c: round trips through O_DIRECT + libaio (a real
 * disk under /var/tmp) and buffered I/O (tmpfs, forced), holes, punching,
 * extents, header validation, range checks and concurrent callers. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>

#include "dcres/memfile.h"
#include "memfile-internal.h"

#define PS 4096u
#define NPAGES 4096u
#define DATA_START DCRES_MEMFILE_DATA_START

/* What the test has written: the content seed of each page, 0 for a hole. */
static uint8_t seed_of[NPAGES];

static void fill_page(uint8_t *p, uint64_t page, uint8_t seed)
{
	for (unsigned i = 0; i < PS; i++)
		p[i] = (uint8_t)(page * 7 + i * 13 + seed);
	p[0] = seed; /* never all zeros */
}

static void *page_buf(size_t n)
{
	void *b = aligned_alloc(4096, n * PS);

	CHECK(b);
	return b;
}

/* Writes pages[0..n) with the given seed and records it in seed_of. */
static void write_pages(struct dcres_memfile *mf, const uint64_t *pages, size_t n,
			uint8_t seed)
{
	uint8_t *buf = page_buf(n);

	for (size_t i = 0; i < n; i++) {
		fill_page(buf + i * PS, pages[i], seed);
		seed_of[pages[i]] = seed;
	}
	CHECK_EQ(dcres_memfile_write_pages(mf, pages, buf, n), 0);
	free(buf);
}

/* Reads every page (in reverse order, one batch) and checks it against
 * seed_of: written content or zeros. */
static void check_all_pages(struct dcres_memfile *mf)
{
	uint64_t *pages = malloc(NPAGES * sizeof(*pages));
	uint8_t *buf = page_buf(NPAGES), *want = page_buf(1);

	CHECK(pages);
	memset(buf, 0xaa, (size_t)NPAGES * PS);
	for (unsigned i = 0; i < NPAGES; i++)
		pages[i] = NPAGES - 1 - i;
	CHECK_EQ(dcres_memfile_read_pages(mf, pages, buf, NPAGES), 0);
	for (unsigned i = 0; i < NPAGES; i++) {
		uint64_t page = pages[i];

		if (seed_of[page])
			fill_page(want, page, seed_of[page]);
		else
			memset(want, 0, PS);
		if (memcmp(buf + (size_t)i * PS, want, PS)) {
			fprintf(stderr, "page %llu differs (seed %u)\n",
				(unsigned long long)page, seed_of[page]);
			exit(1);
		}
	}
	free(pages);
	free(buf);
	free(want);
}

struct extents {
	uint64_t first[NPAGES], count[NPAGES];
	unsigned n;
};

static int collect_extent(uint64_t first, uint64_t count, void *arg)
{
	struct extents *e = arg;

	CHECK(e->n < NPAGES);
	e->first[e->n] = first;
	e->count[e->n] = count;
	e->n++;
	return 0;
}

/* Checks that the extents are exactly the runs of written pages. */
static void check_extents(struct dcres_memfile *mf)
{
	static struct extents got, want;
	unsigned p = 0;

	memset(&got, 0, sizeof(got));
	memset(&want, 0, sizeof(want));
	CHECK_EQ(dcres_memfile_for_each_extent(mf, collect_extent, &got), 0);
	while (p < NPAGES) {
		if (!seed_of[p]) {
			p++;
			continue;
		}
		want.first[want.n] = p;
		while (p < NPAGES && seed_of[p])
			p++;
		want.count[want.n] = p - want.first[want.n];
		want.n++;
	}
	for (unsigned i = 0; i < got.n || i < want.n; i++) {
		if (i >= got.n || i >= want.n || got.first[i] != want.first[i] ||
		    got.count[i] != want.count[i]) {
			fprintf(stderr, "extent %u: got %llu+%llu, want %llu+%llu\n", i,
				(unsigned long long)got.first[i],
				(unsigned long long)got.count[i],
				(unsigned long long)want.first[i],
				(unsigned long long)want.count[i]);
			exit(1);
		}
	}
}

static int stop_at_first(uint64_t first, uint64_t count, void *arg)
{
	(void)first;
	(void)count;
	++*(int *)arg;
	return 42;
}

struct writer {
	struct dcres_memfile *mf;
	unsigned id;
};

/* Writes and re-reads pages 3500 + id, + 4, + 8, ... one at a time. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = page_buf(1), *back = page_buf(1);

	for (uint64_t page = 3500 + w->id; page < 3900; page += 4) {
		fill_page(buf, page, (uint8_t)(50 + w->id));
		CHECK_EQ(dcres_memfile_write_pages(w->mf, &page, buf, 1), 0);
		CHECK_EQ(dcres_memfile_read_pages(w->mf, &page, back, 1), 0);
		CHECK(memcmp(buf, back, PS) == 0);
	}
	free(buf);
	free(back);
	return NULL;
}

static void concurrent_writers(struct dcres_memfile *mf)
{
	pthread_t th[4];
	struct writer w[4];

	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct writer){ mf, i };
		CHECK(pthread_create(&th[i], NULL, writer_thread, &w[i]) == 0);
	}
	for (unsigned i = 0; i < 4; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	for (uint64_t page = 3500; page < 3900; page++)
		seed_of[page] = (uint8_t)(50 + (page - 3500) % 4);
}

/* Flipping any of these header bytes must make open fail with -EINVAL. */
static void check_header_damage(const char *path)
{
	static const off_t offs[] = { 0, 7, 8, 11, 12, 15, 16, 23, 24, 31, 32, 36, 40, 55,
				      56, 2000, 4091, 4092, 4095 };
	struct dcres_memfile *mf;

	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		test_flip_byte(path, offs[i]);
		test_capture_start();
		mf = NULL;
		CHECK_EQ(dcres_memfile_open(path, &mf), -EINVAL);
		CHECK(mf == NULL);
		CHECK(test_logged(path));
		dcres_log_set_sink(NULL);
		test_flip_byte(path, offs[i]);
	}
	CHECK_EQ(dcres_memfile_open(path, &mf), 0);
	dcres_memfile_close(mf);
}

/* A consistent header (CRC right) declaring 8 KiB or 1 MiB pages is
 * refused naming the file and the field: readers size buffers by 4 KiB. */
/* dcres_memfile_open of path, closed again; a refusal leaves no memfile. */
static int open_close(const char *path)
{
	struct dcres_memfile *mf = NULL;
	int ret = dcres_memfile_open(path, &mf);

	CHECK(ret == 0 || mf == NULL);
	dcres_memfile_close(mf);
	return ret;
}

static void check_page_size_refused(const char *path)
{
	struct dcres_memfile *mf;

	test_page_sizes_refused(path, open_close);
	test_set_page_size(path, PS);
	CHECK_EQ(dcres_memfile_open(path, &mf), 0);
	dcres_memfile_close(mf);
}

/* One full pass in dir; expect_direct is 1/0, or -1 for "either". */
static void run_suite(const char *base, bool force_buffered, int expect_direct)
{
	const char *dir = test_tmpdir(base);
	char *path = test_path(dir, "host-3.mem");
	struct dcres_memfile_info info = { .ram_size = (uint64_t)NPAGES * PS,
					   .page_size = PS, .host_id = 3 };
	struct dcres_memfile *mf, *ro;
	uint64_t pages[1200], bad;
	uint8_t *buf = page_buf(2);
	struct stat sb;
	int calls;
	int fd;

	printf("%s (%s)\n", dir, force_buffered ? "buffered forced" : "default");
	memset(seed_of, 0, sizeof(seed_of));
	for (int i = 0; i < 16; i++)
		info.vm_uuid[i] = (uint8_t)(0xa0 + i);
	dcres__memfile_force_buffered = force_buffered;

	/* A leftover file with a loose mode is truncated and made 0600. */
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, "junk", 4) == 4);
	close(fd);
	CHECK_EQ(dcres_memfile_create(path, &info, &mf), 0);
	if (expect_direct >= 0)
		CHECK_EQ(dcres__memfile_is_direct(mf), expect_direct);
	printf("  direct I/O: %s\n", dcres__memfile_is_direct(mf) ? "yes" : "no");
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	CHECK(strcmp(dcres_memfile_path(mf), path) == 0);
	check_all_pages(mf);
	check_extents(mf);

	/* Scattered pages, unsorted, with a run in the middle and the edges. */
	uint64_t scattered[] = { 5, 4095, 100, 101, 102, 103, 2000, 0, 7, 6, 1000 };
	write_pages(mf, scattered, sizeof(scattered) / sizeof(scattered[0]), 1);
	/* A long consecutive run (split into several requests). */
	for (unsigned i = 0; i < 1100; i++)
		pages[i] = 1200 + i;
	write_pages(mf, pages, 1100, 2);
	/* Many separate runs (parallel in buffered mode), one overwriting. */
	for (unsigned i = 0; i < 200; i++)
		pages[i] = 3000 + 2 * i;
	pages[200] = 5;
	write_pages(mf, pages, 201, 3);
	check_all_pages(mf);
	check_extents(mf);

	/* Punching turns pages into zeros and out of the extents. */
	CHECK_EQ(dcres_memfile_punch(mf, 101, 2), 0);
	CHECK_EQ(dcres_memfile_punch(mf, 4095, 1), 0);
	CHECK_EQ(dcres_memfile_punch(mf, 1300, 100), 0);
	CHECK_EQ(dcres_memfile_punch(mf, 0, 1), 0);
	CHECK_EQ(dcres_memfile_punch(mf, 3000, 0), 0);
	seed_of[101] = seed_of[102] = seed_of[4095] = seed_of[0] = 0;
	memset(seed_of + 1300, 0, 100);
	check_all_pages(mf);
	check_extents(mf);

	calls = 0;
	CHECK_EQ(dcres_memfile_for_each_extent(mf, stop_at_first, &calls), 42);
	CHECK_EQ(calls, 1);

	concurrent_writers(mf);
	check_all_pages(mf);
	check_extents(mf);

	/* Range and alignment checks. */
	test_capture_start();
	bad = NPAGES;
	CHECK_EQ(dcres_memfile_write_pages(mf, &bad, buf, 1), -ERANGE);
	CHECK(test_logged(path) && test_logged("page 4096"));
	bad = 1ull << 52;
	CHECK_EQ(dcres_memfile_read_pages(mf, &bad, buf, 1), -ERANGE);
	CHECK_EQ(dcres_memfile_punch(mf, NPAGES - 10, 11), -ERANGE);
	CHECK_EQ(dcres_memfile_punch(mf, UINT64_MAX, 2), -ERANGE);
	bad = 1;
	CHECK_EQ(dcres_memfile_read_pages(mf, &bad, buf + 1, 1), -EINVAL);
	dcres_log_set_sink(NULL);
	CHECK_EQ(dcres_memfile_read_pages(mf, pages, buf, 0), 0);

	CHECK_EQ(dcres_memfile_sync(mf), 0);
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_size, DATA_START + (off_t)NPAGES * PS); /* full size after sync */
	dcres_memfile_close(mf);
	dcres_memfile_close(NULL);

	/* Reopened read-only: same header, same content, same extents. */
	CHECK_EQ(dcres_memfile_open(path, &ro), 0);
	CHECK_EQ(dcres_memfile_info(ro)->ram_size, info.ram_size);
	CHECK_EQ(dcres_memfile_info(ro)->page_size, PS);
	CHECK_EQ(dcres_memfile_info(ro)->host_id, 3);
	CHECK(memcmp(dcres_memfile_info(ro)->vm_uuid, info.vm_uuid, 16) == 0);
	check_all_pages(ro);
	check_extents(ro);
	test_capture_start();
	bad = 9;
	CHECK(dcres_memfile_write_pages(ro, &bad, buf, 1) < 0);
	CHECK(test_logged(path) && test_logged("page"));
	dcres_log_set_sink(NULL);
	dcres_memfile_close(ro);

	check_header_damage(path);
	check_page_size_refused(path);

	/* A file cut short is refused; so is a missing one. */
	CHECK(truncate(path, DATA_START + 10 * PS) == 0);
	CHECK_EQ(dcres_memfile_open(path, &ro), -EIO);
	CHECK(truncate(path, 100) == 0);
	CHECK_EQ(dcres_memfile_open(path, &ro), -EIO);
	CHECK(unlink(path) == 0);
	CHECK_EQ(dcres_memfile_open(path, &ro), -ENOENT);

	/* Geometry that cannot work is refused at create. */
	info.page_size = 1000;
	CHECK_EQ(dcres_memfile_create(path, &info, &mf), -ENOTSUP);
	info.page_size = 8192;
	CHECK_EQ(dcres_memfile_create(path, &info, &mf), -ENOTSUP);
	info.page_size = PS;
	info.ram_size = PS + 1;
	CHECK_EQ(dcres_memfile_create(path, &info, &mf), -EINVAL);

	free(buf);
	free(path);
}

int main(void)
{
	run_suite("/var/tmp", false, 1);
	run_suite("/dev/shm", true, 0);
	run_suite("/dev/shm", false, -1);
	printf("ckpt-memfile-test: ok\n");
	return 0;
}
