/* Test of dcres-merge without QEMU: builds synthetic checkpoints (main.mem
 * laid out as QEMU 10.0's mapped-ram writes it, main.loc, two memory
 * servers, optionally a manifest), runs the tool (argv[1]) on them and
 * checks the merged file page by page, the summaries, and that damaged or
 * inconsistent checkpoints fail with exit 1 naming page and file, leaving
 * neither OUT nor OUT.partial. */
#include "testutil.h"

#include <errno.h>
#include <sys/wait.h>
#include <time.h>

#include "dcres/crc32c.h"
#include "dcres/loctable.h"
#include "dcres/manifest.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"

#define PS 4096u
#define NPAGES 1000u
#define PREFIX 3000u /* "device state" before the block's header */
#define MIB (1u << 20)

static const char *tool;

/* Ways to build a checkpoint. */
enum variant {
	V_OK,
	V_MANIFEST,     /* with a manifest listing hosts and file checksums */
	V_MANIFEST_BAD, /* ... and host-1.mem changed after it was written */
	V_DUP,          /* page 12 (on host 1) also in main.mem's bitmap */
	V_MISSING,      /* page 13 (on host 2) not in host-2.present */
	V_STRAY,        /* page 20 (never written) present on host 2 */
	V_CORRUPT,      /* a byte of page 22 flipped in host-1.mem */
	V_UUID,         /* host-2.mem of another VM */
};

/* Where main.loc places page p: never written, main host, host 1 or 2. */
static uint8_t owner(uint64_t p)
{
	static const uint8_t by_mod[5] = { DCRES_LOC_ZERO, DCRES_LOC_MAIN, 1, 2, 1 };

	return by_mod[p % 5];
}

/* Main-host pages QEMU found to be zero: placed on main, not in the file. */
static bool zero_page(uint64_t p)
{
	return owner(p) == DCRES_LOC_MAIN && p % 7 == 0;
}

/* Content of page p as host h saved it (gen 9: stale data of a page that
 * moved away). Never all zeros. */
static void fill_page(uint8_t *buf, uint64_t p, unsigned h)
{
	for (unsigned i = 0; i < PS; i++)
		buf[i] = (uint8_t)(p * 131 + i * 7 + h * 61 + 1);
	buf[0] = (uint8_t)(h + 1);
}

/* Stores v as n big-endian bytes at b. */
/* Writes dir/main.mem: device-state bytes, the 28-byte MappedRamHeader, an
 * empty bitmap, then (through the mappedram library) the main host's pages
 * with their bits, and stream bytes after the pages area. */
static void make_main(const char *dir, const struct dcres_mapped_ram *geo, enum variant v)
{
	char *path = test_path(dir, "main.mem");
	static const uint8_t zeros[(NPAGES + 63) / 64 * 8]; /* the empty bitmap */
	uint8_t page[PS];
	struct dcres_mrfile f;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	memset(page, 0xd5, sizeof(page));
	CHECK(pwrite(fd, page, PREFIX, 0) == PREFIX);
	test_write_mapped_ram_header(fd, geo);
	CHECK(pwrite(fd, zeros, sizeof(zeros), (off_t)geo->bitmap_offset) == sizeof(zeros));
	CHECK(pwrite(fd, "QEVM-tail", 9, (off_t)(geo->pages_offset + geo->used_length)) == 9);
	close(fd);

	CHECK_EQ(dcres_mrfile_open(path, geo, true, &f), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (owner(p) == DCRES_LOC_MAIN && !zero_page(p)) {
			fill_page(page, p, 0);
			CHECK_EQ(dcres_mrfile_write_pages(&f, p, page, 1), 0);
			dcres_mrfile_set(&f, p);
		} else if (owner(p) == 1 && p < 100) {
			/* Moved to host 1 during the checkpoint: data left, bit clear. */
			fill_page(page, p, 9);
			CHECK_EQ(dcres_mrfile_write_pages(&f, p, page, 1), 0);
		}
	}
	if (v == V_DUP) {
		fill_page(page, 12, 0);
		CHECK_EQ(dcres_mrfile_write_pages(&f, 12, page, 1), 0);
		dcres_mrfile_set(&f, 12);
	}
	CHECK_EQ(dcres_mrfile_write_bitmap(&f), 0);
	dcres_mrfile_close(&f);
	free(path);
}

/* Writes dir/host-K.mem and host-K.present with the pages placed on K. */
static void make_server(const char *dir, unsigned k, const uint8_t uuid[16],
			enum variant v)
{
	char name[32], *mem, *present;
	struct dcres_memfile_info info = { .ram_size = (uint64_t)NPAGES * PS,
					   .page_size = PS, .host_id = k };
	struct dcres_memfile *mf;
	struct dcres_presence pres;
	uint8_t *page = aligned_alloc(4096, PS);

	CHECK(page != NULL);
	snprintf(name, sizeof(name), "host-%u.mem", k);
	mem = test_path(dir, name);
	snprintf(name, sizeof(name), "host-%u.present", k);
	present = test_path(dir, name);
	memcpy(info.vm_uuid, uuid, 16);
	if (v == V_UUID && k == 2)
		info.vm_uuid[15] ^= 1;
	CHECK_EQ(dcres_memfile_create(mem, &info, &mf), 0);
	CHECK_EQ(dcres_presence_init(&pres, NPAGES, PS), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		bool mine = owner(p) == k;

		if ((v == V_MISSING && k == 2 && p == 13) || (v == V_STRAY && k == 2 && p == 20))
			mine = !mine;
		if (!mine)
			continue;
		fill_page(page, p, k);
		CHECK_EQ(dcres_memfile_write_pages(mf, &p, page, 1), 0);
		dcres_presence_set(&pres, p, dcres_crc32c(0, page, PS));
	}
	CHECK_EQ(dcres_memfile_sync(mf), 0);
	dcres_memfile_close(mf);
	CHECK_EQ(dcres_presence_write(present, &pres), 0);
	dcres_presence_free(&pres);
	free(page);
	free(mem);
	free(present);
}

/* Writes dir/manifest listing the hosts and the checksums of all files. */
static void make_manifest(const char *dir, const uint8_t uuid[16])
{
	static const char *files[] = { "main.mem", "main.loc", "host-1.mem",
				       "host-1.present", "host-2.mem", "host-2.present" };
	Dcres__Manifest m = DCRES__MANIFEST__INIT;
	Dcres__HostPart h[3], *hp[3];
	Dcres__FileSum fs[6], *fsp[6];

	m.has_version = m.has_vm_uuid = m.has_ram_size = m.has_page_size = 1;
	m.version = DCRES__MANIFEST_VERSION__MANIFEST_VERSION;
	m.vm_uuid.data = (uint8_t *)uuid;
	m.vm_uuid.len = 16;
	m.ram_size = (uint64_t)NPAGES * PS;
	m.page_size = PS;
	m.loc_file = "main.loc";
	for (unsigned i = 0; i < 3; i++) {
		dcres__host_part__init(&h[i]);
		hp[i] = &h[i];
		h[i].has_id = 1;
		h[i].id = i;
	}
	h[0].mem_file = "main.mem";
	h[1].mem_file = "host-1.mem";
	h[1].present_file = "host-1.present";
	h[2].mem_file = "host-2.mem";
	h[2].present_file = "host-2.present";
	m.n_hosts = 3;
	m.hosts = hp;
	for (unsigned i = 0; i < 6; i++) {
		char *path = test_path(dir, files[i]);

		dcres__file_sum__init(&fs[i]);
		fsp[i] = &fs[i];
		fs[i].name = (char *)files[i];
		fs[i].has_size = fs[i].has_crc32c = 1;
		CHECK_EQ(dcres_file_checksum(path, &fs[i].size, &fs[i].crc32c), 0);
		free(path);
	}
	m.n_files = 6;
	m.files = fsp;
	CHECK_EQ(dcres_manifest_write(dir, &m), 0);
}

/* Builds a checkpoint of variant v in a new directory under base (a
 * scratch directory; the result lives until exit); *geo is main.mem's
 * geometry. */
static const char *make_ckpt(const char *base, enum variant v, struct dcres_mapped_ram *geo)
{
	static const uint8_t uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
					  5, 6, 7, 8, 9, 10, 11, 12 };
	static char dirs[16][512];
	static int seq;
	char *dir, *path;
	struct dcres_loctable t;

	CHECK(seq < 16);
	dir = dirs[seq];
	snprintf(dir, sizeof(dirs[0]), "%s/ckpt-%d", base, seq);
	seq++;
	CHECK(mkdir(dir, 0700) == 0);
	path = test_path(dir, "main.loc");

	memset(geo, 0, sizeof(*geo));
	snprintf(geo->block_id, sizeof(geo->block_id), "pc.ram");
	geo->used_length = (uint64_t)NPAGES * PS;
	geo->bitmap_offset = PREFIX + 28;
	geo->pages_offset = MIB;
	make_main(dir, geo, v);
	make_server(dir, 1, uuid, v);
	make_server(dir, 2, uuid, v);
	CHECK_EQ(dcres_loctable_init(&t, NPAGES, PS), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		t.host[p] = owner(p);
		t.history[p] = (uint8_t)p;
	}
	t.main_file = *geo;
	CHECK_EQ(dcres_loctable_write(path, &t), 0);
	dcres_loctable_free(&t);
	free(path);
	if (v == V_MANIFEST || v == V_MANIFEST_BAD)
		make_manifest(dir, uuid);
	if (v == V_MANIFEST_BAD) {
		path = test_path(dir, "host-1.mem");
		test_flip_byte(path, DCRES_MEMFILE_DATA_START + 10 * PS); /* a hole */
		free(path);
	}
	if (v == V_CORRUPT) {
		path = test_path(dir, "host-1.mem");
		test_flip_byte(path, DCRES_MEMFILE_DATA_START + 22 * PS + 100);
		free(path);
	}
	return dir;
}

static char out_text[65536], err_text[65536];

/* Reads path into buf (size bytes, NUL-terminated). */
static void slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	CHECK(fd >= 0);
	n = read(fd, buf, size - 1);
	CHECK(n >= 0);
	buf[n] = 0;
	close(fd);
}

/* Runs the tool with args (NULL-terminated) and returns its exit status;
 * its stdout and stderr end up in out_text and err_text. */
static int run(const char *scratch, const char *const *args)
{
	char *o = test_path(scratch, "stdout"), *e = test_path(scratch, "stderr");
	const char *argv[8] = { tool };
	struct timespec t0, t1;
	int status, n = 1;
	pid_t pid;

	for (; args[n - 1]; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(127);
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(WIFEXITED(status));
	slurp(o, out_text, sizeof(out_text));
	slurp(e, err_text, sizeof(err_text));
	fprintf(stderr, "--- dcres-merge");
	for (int i = 1; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, ": exit %d (%.2f s)\n%s%s", WEXITSTATUS(status),
		(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, out_text,
		err_text);
	free(o);
	free(e);
	return WEXITSTATUS(status);
}

/* True when path exists. */
static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
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
		bool stored = owner(p) == 1 || owner(p) == 2 ||
			      (owner(p) == DCRES_LOC_MAIN && !zero_page(p));

		CHECK_EQ(dcres_mrfile_test(&f, p), stored);
		if (!stored) {
			/* Pages stored nowhere are holes. */
			CHECK(lseek(f.fd, (off_t)(geo->pages_offset + p * PS), SEEK_HOLE) ==
			      (off_t)(geo->pages_offset + p * PS));
			continue;
		}
		expect_count++;
		CHECK_EQ(dcres_mrfile_read_pages(&f, p, got, 1), 0);
		fill_page(want, p, owner(p));
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
		*m += owner(p) == DCRES_LOC_MAIN && !zero_page(p);
		*h1 += owner(p) == 1;
		*h2 += owner(p) == 2;
	}
}

/* A good checkpoint (variant v) checks and merges. */
static void good(const char *base, const char *scratch, enum variant v)
{
	struct dcres_mapped_ram geo;
	const char *dir = make_ckpt(base, v, &geo);
	char *out = test_path(scratch, "merged.mem"), *partial = test_path(scratch, "merged.mem.partial");
	char want[1024];
	uint64_t m, h1, h2;

	plan_counts(&m, &h1, &h2);
	unlink(out);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, NULL }), 0);
	CHECK(strstr(out_text, "check passed") != NULL);
	CHECK(!exists(out));
	CHECK_EQ(run(scratch, (const char *[]){ dir, out, NULL }), 0);
	CHECK(strstr(out_text, out) != NULL && strstr(out_text, "host-2") != NULL);
	CHECK(!exists(partial));
	check_merged(dir, out, &geo);

	/* Again over the existing OUT, with the JSON summary. */
	CHECK_EQ(run(scratch, (const char *[]){ "--json", dir, out, NULL }), 0);
	snprintf(want, sizeof(want),
		 "{\"dir\":\"%s\",\"out\":\"%s\",\"page_size\":4096,\"pages\":{\"main\":%llu,"
		 "\"host-1\":%llu,\"host-2\":%llu},\"total\":%llu,\"duplicates\":0}\n",
		 dir, out, (unsigned long long)m, (unsigned long long)h1,
		 (unsigned long long)h2, (unsigned long long)(m + h1 + h2));
	CHECK(strcmp(out_text, want) == 0);
	check_merged(dir, out, &geo);
	CHECK(unlink(out) == 0);
	free(out);
	free(partial);
}

/* A bad checkpoint (variant v) fails, with and without --check, naming
 * what and where, and leaves no output behind. */
static void bad(const char *base, const char *scratch, enum variant v, const char *what,
		const char *file, bool check_detects)
{
	struct dcres_mapped_ram geo;
	const char *dir = make_ckpt(base, v, &geo);
	char *out = test_path(scratch, "merged.mem"), *partial = test_path(scratch, "merged.mem.partial");

	CHECK(!exists(out));
	CHECK_EQ(run(scratch, (const char *[]){ dir, out, NULL }), 1);
	CHECK(strstr(err_text, what) != NULL);
	CHECK(strstr(err_text, file) != NULL);
	CHECK(out_text[0] == 0);
	CHECK(!exists(out) && !exists(partial));
	CHECK_EQ(run(scratch, (const char *[]){ "--check", "--json", dir, NULL }),
		 check_detects ? 1 : 0);
	if (check_detects)
		CHECK(strstr(err_text, what) != NULL && strstr(err_text, file) != NULL);
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
	good(scratch, scratch, V_OK);
	good(shm, scratch, V_OK);
	good(shm, shm, V_MANIFEST);

	bad(shm, shm, V_DUP, "page 12:", "host-1.present", true);
	CHECK(strstr(err_text, "main.mem") != NULL);
	bad(shm, shm, V_MISSING, "page 13:", "host-2.present", true);
	bad(shm, shm, V_STRAY, "page 20:", "host-2.present", true);
	bad(shm, shm, V_CORRUPT, "page 22:", "host-1.mem", true);
	bad(scratch, scratch, V_CORRUPT, "page 22:", "host-1.mem", true);
	bad(shm, shm, V_UUID, "VM", "host-2.mem", true);
	bad(shm, shm, V_MANIFEST_BAD, "CRC-32C", "host-1.mem", true);

	/* A missing main.loc is named. */
	dir = make_ckpt(shm, V_OK, &geo);
	loc = test_path(dir, "main.loc");
	CHECK(unlink(loc) == 0);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, NULL }), 1);
	CHECK(strstr(err_text, loc) != NULL);
	free(loc);

	/* Usage errors are exit 2; OUT may not be a checkpoint file. */
	CHECK_EQ(run(scratch, (const char *[]){ NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ dir, NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--check", dir, "x", NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--bogus", dir, "x", NULL }), 2);
	CHECK_EQ(run(scratch, (const char *[]){ "--help", NULL }), 0);
	dir = make_ckpt(shm, V_OK, &geo);
	loc = test_path(dir, "host-1.mem");
	CHECK_EQ(run(scratch, (const char *[]){ dir, loc, NULL }), 1);
	CHECK(strstr(err_text, "refusing") != NULL);
	free(loc);

	printf("merge-test: ok\n");
	return 0;
}
