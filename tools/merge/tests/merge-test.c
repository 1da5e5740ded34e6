/* Test of dcres-merge without QEMU: builds synthetic checkpoints
 * (ckpt-build.h: main.mem laid out as QEMU 10.0's mapped-ram writes it,
 * main.loc, two memory servers, optionally main.present and a manifest),
 * runs the tool (argv[1]) on them and checks the merged file page by page,
 * the summaries, a flattened checkpoint's main.present and manifest, and
 * that damaged or inconsistent checkpoints fail with exit 1 naming page
 * and file, leaving neither OUT nor OUT.partial.*. */
#include "testutil.h"

#include <errno.h>
#include <glob.h>

#include "ckpt-build.h"
#include "tool-run.h"
#include "dcres/loctable.h"
#include "dcres/manifest.h"
#include "dcres/mappedram.h"
#include "dcres/presence.h"

#define PS TEST_CKPT_PS
#define NPAGES TEST_CKPT_NPAGES
#define PREFIX TEST_CKPT_PREFIX

static const char *tool;

static struct test_tool_output ran; /* what the last run said */

/* Runs the tool with args (NULL-terminated); returns its exit status. */
static int run(const char *scratch, const char *const *args)
{
	return test_run_tool(tool, scratch, args, &ran);
}

/* True when path exists. */
static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Whether a file matches the glob pattern. */
static bool matches(const char *pattern)
{
	glob_t g;
	bool found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;

	globfree(&g);
	return found;
}

/* Checks the merged file out page by page against the checkpoint's plan,
 * and that everything outside the pages area equals main.mem's. */
static void check_merged(const char *dir, const char *out, const struct dcres_mapped_ram *geo)
{
	char *main_path = test_path(dir, "main.mem");
	struct dcres_mrfile f;
	uint8_t got[PS], want[PS], a[PREFIX + 28], b[PREFIX + 28];
	uint64_t expect_count = 0;
	struct stat sb;
	int fd;

	CHECK(stat(out, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	CHECK_EQ(sb.st_size, test_file_size(main_path));
	CHECK_EQ(dcres_mrfile_open(out, geo, false, &f), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		bool stored = test_ckpt_owner(p) == 1 || test_ckpt_owner(p) == 2 ||
			      (test_ckpt_owner(p) == DCRES_LOC_MAIN && !test_ckpt_zero_page(p));

		CHECK_EQ(dcres_mrfile_test(&f, p), stored);
		if (!stored) {
			/* Pages stored nowhere are holes. */
			CHECK(lseek(f.fd, (off_t)(geo->pages_offset + p * PS), SEEK_HOLE) ==
			      (off_t)(geo->pages_offset + p * PS));
			continue;
		}
		expect_count++;
		CHECK_EQ(dcres_mrfile_read_pages(&f, p, got, 1), 0);
		test_ckpt_fill_page(want, p, test_ckpt_owner(p));
		if (memcmp(got, want, PS)) {
			fprintf(stderr, "page %llu: wrong content\n", (unsigned long long)p);
			exit(1);
		}
	}
	CHECK_EQ(dcres_mrfile_count(&f), expect_count);
	dcres_mrfile_close(&f);

	fd = open(main_path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, a, sizeof(a), 0) == (ssize_t)sizeof(a));
	CHECK(pread(fd, got, 9, (off_t)(geo->pages_offset + geo->used_length)) == 9);
	close(fd);
	fd = open(out, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b));
	CHECK(pread(fd, want, 9, (off_t)(geo->pages_offset + geo->used_length)) == 9);
	close(fd);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(memcmp(got, want, 9) == 0 && memcmp(got, "QEVM-tail", 9) == 0);
	free(main_path);
}

/* Pages each host holds in the plan: main (written), host 1, host 2. */
static void plan_counts(uint64_t *m, uint64_t *h1, uint64_t *h2)
{
	*m = *h1 = *h2 = 0;
	for (uint64_t p = 0; p < NPAGES; p++) {
		*m += test_ckpt_owner(p) == DCRES_LOC_MAIN && !test_ckpt_zero_page(p);
		*h1 += test_ckpt_owner(p) == 1;
		*h2 += test_ckpt_owner(p) == 2;
	}
}

/* A good checkpoint (variant v) checks and merges. */
static void good(const char *base, const char *scratch, enum test_ckpt_variant v)
{
	struct dcres_mapped_ram geo;
	const char *dir = test_ckpt_make(base, v, &geo);
	char *out = test_path(scratch, "merged.mem"), *partial = test_path(scratch, "merged.mem.partial.*");
	char want[1024];
	uint64_t m, h1, h2;

	plan_counts(&m, &h1, &h2);
	unlink(out);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, NULL }), 0);
	CHECK(strstr(ran.out, "check passed") != NULL);
	CHECK(!exists(out));
	CHECK_EQ(run(scratch, (const char *[]){ dir, out, NULL }), 0);
	CHECK(strstr(ran.out, out) != NULL && strstr(ran.out, "host-2") != NULL);
	CHECK(!matches(partial));
	check_merged(dir, out, &geo);

	/* Again over the existing OUT, with the JSON summary. */
	CHECK_EQ(run(scratch, (const char *[]){ "--json", dir, out, NULL }), 0);
	snprintf(want, sizeof(want),
		 "{\"dir\":\"%s\",\"out\":\"%s\",\"page_size\":4096,\"pages\":{\"main\":%llu,"
		 "\"host-1\":%llu,\"host-2\":%llu},\"total\":%llu,\"duplicates\":0,\"chain\":1}\n",
		 dir, out, (unsigned long long)m, (unsigned long long)h1,
		 (unsigned long long)h2, (unsigned long long)(m + h1 + h2));
	CHECK(strcmp(ran.out, want) == 0);
	check_merged(dir, out, &geo);
	CHECK(unlink(out) == 0);
	free(out);
	free(partial);
}

/* --flatten of checkpoint variant v (with a manifest) into scratch/name:
 * the new directory's main.present lists every page its main.mem holds
 * (all on the main host now) with its CRC, its manifest names it as the
 * main host's and checksums it, and the result checks. */
static void flatten(const char *base, const char *scratch, enum test_ckpt_variant v,
		    const char *name)
{
	struct dcres_mapped_ram geo;
	const char *dir = test_ckpt_make(base, v, &geo);
	char *out = test_path(scratch, name), *mem, *present;
	const Dcres__FileSum *sum;
	struct dcres_presence p;
	struct dcres_mrfile f;
	Dcres__Manifest *m;
	uint8_t page[PS];
	uint64_t size;
	uint32_t crc;

	CHECK_EQ(run(scratch, (const char *[]){ "--flatten", dir, out, NULL }), 0);
	mem = test_path(out, "main.mem");
	present = test_path(out, "main.present");
	check_merged(dir, mem, &geo);
	CHECK_EQ(dcres_presence_read(present, &p), 0);
	CHECK_EQ(dcres_mrfile_open(mem, &geo, false, &f), 0);
	CHECK_EQ(dcres_presence_count(&p), dcres_mrfile_count(&f));
	for (uint64_t i = 0; i < NPAGES; i++) {
		CHECK_EQ(dcres_presence_test(&p, i), dcres_mrfile_test(&f, i));
		if (!dcres_presence_test(&p, i))
			continue;
		test_ckpt_fill_page(page, i, test_ckpt_owner(i));
		CHECK_EQ(dcres_presence_check_page(&p, i, page), 0);
	}
	dcres_mrfile_close(&f);
	dcres_presence_free(&p);

	CHECK_EQ(dcres_manifest_read(out, &m), 0);
	CHECK_EQ(m->n_hosts, 1);
	CHECK(m->hosts[0]->present_file && !strcmp(m->hosts[0]->present_file, "main.present"));
	CHECK_EQ(m->n_files, 3);
	CHECK((sum = dcres_manifest_file(m, "main.present")) != NULL);
	CHECK_EQ(dcres_file_checksum(present, &size, &crc), 0);
	CHECK(sum->size == size && sum->crc32c == crc);
	dcres_manifest_free(m);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", out, NULL }), 0);
	free(out);
	free(mem);
	free(present);
}

/* A bad checkpoint (variant v) fails, with and without --check, naming
 * what and where, and leaves no output behind. */
static void bad(const char *base, const char *scratch, enum test_ckpt_variant v, const char *what,
		const char *file, bool check_detects)
{
	struct dcres_mapped_ram geo;
	const char *dir = test_ckpt_make(base, v, &geo);
	char *out = test_path(scratch, "merged.mem"), *partial = test_path(scratch, "merged.mem.partial.*");

	CHECK(!exists(out));
	CHECK_EQ(run(scratch, (const char *[]){ dir, out, NULL }), 1);
	CHECK(strstr(ran.err, what) != NULL);
	CHECK(strstr(ran.err, file) != NULL);
	CHECK(ran.out[0] == 0);
	CHECK(!exists(out) && !matches(partial));
	CHECK_EQ(run(scratch, (const char *[]){ "--check", "--json", dir, NULL }),
		 check_detects ? 1 : 0);
	if (check_detects)
		CHECK(strstr(ran.err, what) != NULL && strstr(ran.err, file) != NULL);
	free(out);
	free(partial);
}

/* argv[1] is the dcres-merge binary; exits 0 after printing "merge-test: ok". */
int main(int argc, char **argv)
{
	const char *scratch, *shm;
	struct dcres_mapped_ram geo;
	const char *dir;
	char *loc;

	CHECK(argc == 2);
	tool = argv[1];
	scratch = test_tmpdir("/var/tmp");
	shm = test_tmpdir("/dev/shm");

	/* A real disk (O_DIRECT + libaio reads, copy_file_range) and tmpfs
	 * (buffered I/O; OUT on another filesystem). The other cases use tmpfs:
	 * fsync-heavy set-up is slow on a busy disk. */
	good(scratch, scratch, TEST_CKPT_OK);
	good(shm, scratch, TEST_CKPT_OK);
	good(shm, shm, TEST_CKPT_MANIFEST);
	good(shm, shm, TEST_CKPT_MAIN_PRESENT);
	flatten(shm, shm, TEST_CKPT_MANIFEST, "flat-old");
	flatten(shm, shm, TEST_CKPT_MAIN_PRESENT, "flat");

	bad(shm, shm, TEST_CKPT_DUP, "page 12:", "host-1.present", true);
	CHECK(strstr(ran.err, "main.mem") != NULL);
	bad(shm, shm, TEST_CKPT_MISSING, "page 13:", "host-2.present", true);
	bad(shm, shm, TEST_CKPT_STRAY, "page 20:", "host-2.present", true);
	bad(shm, shm, TEST_CKPT_CORRUPT, "page 22:", "host-1.mem", true);
	bad(scratch, scratch, TEST_CKPT_CORRUPT, "page 22:", "host-1.mem", true);
	bad(shm, shm, TEST_CKPT_MAIN_CORRUPT, "page 16:", "main.mem", true);
	bad(shm, shm, TEST_CKPT_UUID, "VM", "host-2.mem", true);
	bad(shm, shm, TEST_CKPT_MANIFEST_BAD, "CRC-32C", "host-1.mem", true);
	bad(shm, shm, TEST_CKPT_PAGE_8K, "page size 8192", "host-1.mem", true);
	bad(shm, shm, TEST_CKPT_PAGE_1M, "page size 1048576", "host-1.mem", true);

	/* A missing main.loc is named. */
	dir = test_ckpt_make(shm, TEST_CKPT_OK, &geo);
	loc = test_path(dir, "main.loc");
	CHECK(unlink(loc) == 0);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, NULL }), 1);
	CHECK(strstr(ran.err, loc) != NULL);
	free(loc);

	/* Usage errors are exit 2; OUT may not be a checkpoint file. */
	CHECK_EQ(run(scratch, (const char *[]){ NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ dir, NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, "x", NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--bogus", dir, "x", NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--help", NULL }), 0);
	dir = test_ckpt_make(shm, TEST_CKPT_OK, &geo);
	loc = test_path(dir, "host-1.mem");
	CHECK_EQ(run(scratch, (const char *[]){ dir, loc, NULL }), 1);
	CHECK(strstr(ran.err, "refusing") != NULL);
	free(loc);

	printf("merge-test: ok\n");
	return 0;
}
