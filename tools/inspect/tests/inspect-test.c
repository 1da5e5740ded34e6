/* Test of dcres-inspect (argv[1]) without QEMU: synthetic checkpoints from
 * the shared builder (ckpt-build.h) with a complete manifest (addresses,
 * page counts, QEMU version, disk snapshot and images), and hand-written
 * qcow2 images (qcow2-fixture.h). A good checkpoint passes with the right
 * report (text and JSON: pages per host, zero pages, history, hot pages,
 * checksums, disks); each kind of damage fails with exit 1 naming the file
 * (and page), and the damage only checksums can see passes --no-verify. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */


#include <json-c/json.h>

#include "ckpt-build.h"
#include "dcres/loctable.h"
#include "dcres/manifest.h"
#include "dcres/memfile.h"
#include "qcow2-fixture.h"
#include "tool-run.h"

#define PS TEST_CKPT_PS
#define NPAGES TEST_CKPT_NPAGES
#define DISK_SIZE (64ull << 20)
#define SNAPSHOT "dcres-ckpt-test"
#define BAD_PAGE 418u /* placed on host 2 (418 % 5 == 3) */
#define MAIN_BAD_PAGE 16u /* on the main host, in main.mem (TEST_CKPT_MAIN_CORRUPT's) */

static const char *tool, *scratch;
static struct test_tool_output ran; /* what the last run said */

/* Runs the tool with args (NULL-terminated); returns its exit status. A
 * sanitizer report would hide behind an expected exit 1: it fails. */
static int run(const char *const *args)
{
	int status = test_run_tool(tool, scratch, args, &ran);

	CHECK(!strstr(ran.err, "Sanitizer") && !strstr(ran.err, "runtime error"));
	return status;
}

/* True when the last run's stdout or stderr contains s. */
static bool said(const char *s)
{
	return strstr(ran.out, s) || strstr(ran.err, s);
}

/* Pages host id (0 main) saved in the builder's plan. */
static uint64_t plan_saved(unsigned id)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < NPAGES; p++)
		n += id == 0 ? test_ckpt_owner(p) == DCRES_LOC_MAIN && !test_ckpt_zero_page(p)
			     : test_ckpt_owner(p) == id;
	return n;
}

/* Rewrites dir's manifest as dcres-checkpoint writes it: host addresses
 * and page counts (host 1's off by skew), QEMU version, creation time,
 * live, the disk snapshot and its images. File checksums are kept. */
static void complete_manifest(const char *dir, const char *disk, int64_t skew)
{
	static const char *const addr[3] = { "main", "10.0.0.1:7700", "10.0.0.2:7700" };
	char *disks[1] = { (char *)disk };
	Dcres__HostPart h[3], *hp[3];
	Dcres__Manifest *m, n;

	CHECK_EQ(dcres_manifest_read(dir, &m), 0);
	CHECK_EQ(m->n_hosts, 3);
	n = *m;
	for (unsigned i = 0; i < 3; i++) {
		h[i] = *m->hosts[i];
		CHECK_EQ(h[i].id, i);
		h[i].address = (char *)addr[i];
		h[i].has_pages = 1;
		h[i].pages = plan_saved(i) + (i == 1 ? (uint64_t)skew : 0);
		hp[i] = &h[i];
	}
	n.hosts = hp;
	n.qemu_version = "10.0.0 (synthetic)";
	n.has_created_unix = n.has_live = 1;
	n.created_unix = 1700000000; /* 2023-11-14 22:13:20 UTC */
	n.live = 1;
	n.disk_snapshot = SNAPSHOT;
	n.n_disk_files = 1;
	n.disk_files = disks;
	CHECK_EQ(dcres_manifest_write(dir, &n), 0);
	dcres_manifest_free(m);
}

/* Rewrites dir's manifest as a conventional checkpoint's: no main.loc,
 * only the main host, the same file checksums. */
static void conventional_manifest(const char *dir)
{
	Dcres__Manifest *m, n;

	CHECK_EQ(dcres_manifest_read(dir, &m), 0);
	n = *m;
	n.loc_file = NULL;
	n.n_hosts = 1;
	n.disk_snapshot = NULL;
	n.n_disk_files = 0;
	CHECK_EQ(dcres_manifest_write(dir, &n), 0);
	dcres_manifest_free(m);
}

/* A checkpoint with a complete manifest and a qcow2 image (in its own
 * directory, holding the snapshot) recorded in it; *disk is its path. */
static const char *make_ckpt(const char *base, int64_t skew, char **disk)
{
	struct dcres_mapped_ram geo;
	const char *dir = test_ckpt_make(base, TEST_CKPT_MANIFEST, &geo);

	CHECK(asprintf(disk, "%s.qcow2", dir) > 0);
	qcow2_fixture_write(*disk, DISK_SIZE, SNAPSHOT);
	complete_manifest(dir, *disk, skew);
	return dir;
}

/* Member key of obj (must exist). */
static struct json_object *get(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(obj, key, &v)) {
		fprintf(stderr, "JSON member %s missing\n", key);
		exit(1);
	}
	return v;
}

/* Member key of obj as an integer (must exist and be a number). */
static long long get_int(struct json_object *obj, const char *key)
{
	struct json_object *v = get(obj, key);

	CHECK(json_object_is_type(v, json_type_int));
	return (long long)json_object_get_int64(v);
}

/* Member key of obj as a string ("" when null). */
static const char *get_str(struct json_object *obj, const char *key)
{
	struct json_object *v = get(obj, key);

	return v ? json_object_get_string(v) : "";
}

/* Parses the last run's stdout as one JSON object. */
static struct json_object *parse_out(void)
{
	struct json_object *o = json_tokener_parse(ran.out);

	CHECK(o != NULL && json_object_is_type(o, json_type_object));
	return o;
}

/* Checks the JSON report of the good checkpoint dir against main.loc and
 * the builder's plan. */
static void check_good_json(const char *dir, const char *disk, const char *extra_disk)
{
	struct json_object *o = parse_out(), *hosts, *hist, *files, *disks;
	uint64_t placed[256] = { 0 }, hot[256] = { 0 }, buckets[5] = { 0 };
	static const char *const bucket_key[5] = { "0", "1-15", "16-63", "64-127", "128-255" };
	struct dcres_loctable t;
	char *loc = test_path(dir, "main.loc");

	CHECK_EQ(dcres_loctable_read(loc, &t), 0);
	for (uint64_t p = 0; p < t.npages; p++) {
		uint8_t v = t.history[p];

		placed[t.host[p]]++;
		hot[t.host[p]] += v >= 128;
		buckets[v == 0 ? 0 : v < 16 ? 1 : v < 64 ? 2 : v < 128 ? 3 : 4]++;
	}
	CHECK(buckets[4] > 0 && buckets[0] > 0);

	CHECK(strcmp(get_str(o, "dir"), dir) == 0);
	CHECK(strcmp(get_str(o, "vm_uuid"), "deadbeef-0102-0304-0506-0708090a0b0c") == 0);
	CHECK_EQ(get_int(o, "ram_size"), (long long)NPAGES * PS);
	CHECK_EQ(get_int(o, "page_size"), PS);
	CHECK(strcmp(get_str(o, "qemu_version"), "10.0.0 (synthetic)") == 0);
	CHECK_EQ(get_int(o, "created_unix"), 1700000000);
	CHECK(json_object_get_boolean(get(o, "live")));
	CHECK(strcmp(get_str(o, "disk_snapshot"), SNAPSHOT) == 0);
	CHECK(json_object_get_boolean(get(o, "ok")));

	hosts = get(o, "hosts");
	CHECK_EQ(json_object_array_length(hosts), 3);
	for (unsigned i = 0; i < 3; i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i);
		unsigned loc_id = i == 0 ? DCRES_LOC_MAIN : i;
		char name[32];

		snprintf(name, sizeof(name), i ? "host-%u.mem" : "main.mem", i);
		CHECK_EQ(get_int(h, "id"), i);
		CHECK(strcmp(get_str(h, "mem_file"), name) == 0);
		CHECK_EQ(get_int(h, "pages_saved"), plan_saved(i));
		CHECK_EQ(get_int(h, "pages_stored"), plan_saved(i));
		CHECK_EQ(get_int(h, "pages_placed"), placed[loc_id]);
		CHECK_EQ(get_int(h, "hot_pages"), hot[loc_id]);
		CHECK(hot[loc_id] > 0);
	}
	CHECK(strcmp(get_str(json_object_array_get_idx(hosts, 2), "address"),
		     "10.0.0.2:7700") == 0);
	CHECK_EQ(get_int(o, "zero_pages"), placed[DCRES_LOC_ZERO]);
	CHECK_EQ(get_int(o, "main_zero_pages"), placed[DCRES_LOC_MAIN] - plan_saved(0));
	hist = get(o, "history");
	for (unsigned b = 0; b < 5; b++)
		CHECK_EQ(get_int(hist, bucket_key[b]), buckets[b]);
	CHECK_EQ(get_int(hist, "hot"), buckets[4]);

	files = get(o, "files");
	CHECK_EQ(json_object_array_length(files), 6);
	for (size_t i = 0; i < 6; i++)
		CHECK(json_object_get_boolean(get(json_object_array_get_idx(files, i), "ok")));
	CHECK_EQ(json_object_array_length(get(o, "bad_pages")), 0);

	disks = get(o, "disks");
	CHECK_EQ(json_object_array_length(disks), extra_disk ? 2 : 1);
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		struct json_object *d = json_object_array_get_idx(disks, i);

		CHECK(json_object_get_boolean(get(d, "ok")));
		CHECK_EQ(get_int(d, "media_size"), DISK_SIZE);
		CHECK_EQ(get_int(d, "format_version"), 3);
		CHECK(!json_object_get_boolean(get(d, "encrypted")));
		CHECK_EQ(get_int(d, "snapshots"), 1);
		/* libqcow 20201213 cannot list snapshot names: not guessed. */
		CHECK(strcmp(get_str(d, "snapshot"), "unknown") == 0);
	}
	/* --disk files first, then the manifest's. */
	CHECK(strcmp(get_str(json_object_array_get_idx(disks, 0), "file"),
		     extra_disk ? extra_disk : disk) == 0);
	json_object_put(o);
	dcres_loctable_free(&t);
	free(loc);
}

/* A good checkpoint: every check passes, the reports are right. */
static void good(const char *base)
{
	char *disk, *extra = test_path(scratch, "extra.qcow2");
	const char *dir = make_ckpt(base, 0, &disk);
	struct json_object *o;

	qcow2_fixture_write(extra, DISK_SIZE, SNAPSHOT);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 0);
	CHECK(strstr(ran.out, "result: OK") && strstr(ran.out, "10.0.0.1:7700"));
	CHECK(strstr(ran.out, "2023-11-14 22:13:20 UTC") && strstr(ran.out, "live"));
	CHECK(strstr(ran.out, "cannot tell") && !strstr(ran.out, "FAILED"));
	CHECK(ran.err[0] == 0);

	CHECK_EQ(run((const char *[]){ "--json", "--disk", extra, dir, NULL }), 0);
	check_good_json(dir, disk, extra);
	/* The manifest's image given again by --disk is checked once. */
	CHECK_EQ(run((const char *[]){ "--json", "--disk", disk, dir, NULL }), 0);
	check_good_json(dir, disk, NULL);

	CHECK_EQ(run((const char *[]){ "--json", "--no-verify", dir, NULL }), 0);
	o = parse_out();
	CHECK(!json_object_get_boolean(get(o, "verified")));
	CHECK_EQ(json_object_array_length(get(o, "files")), 0);
	json_object_put(o);
	free(disk);
	free(extra);
}

/* A byte of page BAD_PAGE flipped in host-2.mem: its CRC names the page. */
static void bad_page(const char *base)
{
	char *disk, *mem;
	const char *dir = make_ckpt(base, 0, &disk);
	struct json_object *o, *bad, *files;
	bool host2_failed = false;

	mem = test_path(dir, "host-2.mem");
	test_flip_byte(mem, DCRES_MEMFILE_DATA_START + (off_t)BAD_PAGE * PS + 7);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
	CHECK(said("host-2.mem: page 418 is corrupted"));
	CHECK(strstr(ran.err, "host-2.mem: page 418"));
	CHECK_EQ(run((const char *[]){ "--json", dir, NULL }), 1);
	o = parse_out();
	CHECK(!json_object_get_boolean(get(o, "ok")));
	bad = get(o, "bad_pages");
	CHECK_EQ(json_object_array_length(bad), 1);
	CHECK(strcmp(get_str(json_object_array_get_idx(bad, 0), "file"), "host-2.mem") == 0);
	CHECK_EQ(get_int(json_object_array_get_idx(bad, 0), "page"), BAD_PAGE);
	files = get(o, "files");
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		struct json_object *f = json_object_array_get_idx(files, i);
		bool is_host2 = !strcmp(get_str(f, "name"), "host-2.mem");

		CHECK(json_object_get_boolean(get(f, "ok")) == !is_host2);
		if (is_host2)
			host2_failed = strstr(get_str(f, "error"), "host-2.mem") != NULL;
	}
	CHECK(host2_failed);
	json_object_put(o);
	/* Only reading the pages finds it. */
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 0);
	free(mem);
	free(disk);
}

/* Damage only the manifest's checksum sees: a byte of main.mem's device
 * state. main.mem is named; --no-verify passes. */
static void bad_checksum(const char *base)
{
	char *disk, *mem;
	const char *dir = make_ckpt(base, 0, &disk);

	mem = test_path(dir, "main.mem");
	test_flip_byte(mem, 100);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
	CHECK(said("main.mem: CRC-32C"));
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 0);
	free(mem);
	free(disk);
}

/* main.mem missing, or its mapped-ram header not matching main.loc: named
 * with and without --no-verify. */
static void bad_main(const char *base)
{
	char *disk, *mem;
	const char *dir = make_ckpt(base, 0, &disk);

	mem = test_path(dir, "main.mem");
	CHECK(unlink(mem) == 0);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
	CHECK(said(mem));
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, mem));
	free(mem);
	free(disk);

	dir = make_ckpt(base, 0, &disk);
	mem = test_path(dir, "main.mem");
	/* The MappedRamHeader ends at the bitmap, at TEST_CKPT_PREFIX + 28;
	 * byte 11 is in its page size. */
	test_flip_byte(mem, TEST_CKPT_PREFIX + 11);
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, mem));
	free(mem);
	free(disk);
}

/* Inconsistent parts: a wrong page count in the manifest, a page in two
 * files, no manifest at all. */
static void inconsistent(const char *base)
{
	struct dcres_mapped_ram geo;
	char *disk, *present;
	const char *dir = make_ckpt(base, 1, &disk);
	struct json_object *o;

	present = test_path(dir, "host-1.present");
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, present) && said("the manifest says host 1 saved"));
	free(present);
	free(disk);

	/* Files declaring another page size: named with the field. */
	for (int v = TEST_CKPT_PAGE_8K; v <= TEST_CKPT_PAGE_1M; v++) {
		dir = test_ckpt_make(base, (enum test_ckpt_variant)v, &geo);
		present = test_path(dir, "host-1.mem");
		CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
		CHECK(strstr(ran.err, present) && strstr(ran.err, "page size"));
		free(present);
	}

	dir = test_ckpt_make(base, TEST_CKPT_DUP, &geo);
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, "page 12:") && strstr(ran.err, "main.mem"));
	CHECK(strstr(ran.err, "manifest: missing"));

	/* Without a manifest: still a report, from the files found. */
	dir = test_ckpt_make(base, TEST_CKPT_OK, &geo);
	CHECK_EQ(run((const char *[]){ "--json", dir, NULL }), 1);
	o = parse_out();
	CHECK(!json_object_get_boolean(get(o, "ok")));
	CHECK_EQ(json_object_array_length(get(o, "hosts")), 3);
	CHECK_EQ(get_int(json_object_array_get_idx(get(o, "hosts"), 2), "pages_stored"),
		 plan_saved(2));
	CHECK(strstr(ran.err, "manifest: missing"));
	json_object_put(o);
}

/* A conventional checkpoint: main.mem is checked by its checksum only;
 * nothing about main.loc is reported. */
static void conventional(const char *base)
{
	char *disk;
	const char *dir = make_ckpt(base, 0, &disk);
	struct json_object *o, *h;

	conventional_manifest(dir);
	CHECK_EQ(run((const char *[]){ "--json", dir, NULL }), 0);
	o = parse_out();
	CHECK(json_object_get_boolean(get(o, "conventional")));
	CHECK(get(o, "history") == NULL && get(o, "zero_pages") == NULL);
	CHECK_EQ(json_object_array_length(get(o, "hosts")), 1);
	h = json_object_array_get_idx(get(o, "hosts"), 0);
	CHECK_EQ(get_int(h, "pages_saved"), plan_saved(0));
	CHECK(get(h, "pages_placed") == NULL);
	json_object_put(o);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 0);
	CHECK(strstr(ran.out, "conventional"));
	free(disk);
}

/* Bad disks: not qcow (bad magic), and one without the snapshot. */
static void bad_disks(const char *base)
{
	char *bad = test_path(scratch, "bad.qcow2");
	char *nosnap = test_path(scratch, "nosnap.qcow2");
	char *disk;
	const char *dir = make_ckpt(base, 0, &disk);
	struct json_object *o, *d;

	qcow2_fixture_write(bad, DISK_SIZE, SNAPSHOT);
	test_flip_byte(bad, 0);
	CHECK_EQ(run((const char *[]){ "--no-verify", "--disk", bad, dir, NULL }), 1);
	CHECK(strstr(ran.err, bad) && strstr(ran.err, "signature"));
	CHECK_EQ(run((const char *[]){ "--json", "--no-verify", "--disk", bad, dir, NULL }), 1);
	o = parse_out();
	d = json_object_array_get_idx(get(o, "disks"), 0);
	CHECK(!json_object_get_boolean(get(d, "ok")));
	CHECK(strstr(get_str(d, "error"), bad));
	CHECK(json_object_get_boolean(get(json_object_array_get_idx(get(o, "disks"), 1), "ok")));
	json_object_put(o);

	qcow2_fixture_write(nosnap, DISK_SIZE, NULL);
	CHECK_EQ(run((const char *[]){ "--no-verify", "--disk", nosnap, dir, NULL }), 1);
	CHECK(strstr(ran.err, nosnap) && strstr(ran.err, SNAPSHOT));

	/* The manifest's image gone. */
	CHECK(unlink(disk) == 0);
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, disk));
	free(disk);
	free(bad);
	free(nosnap);
}

/* A checkpoint with main.present, as dcres-checkpoint writes them now:
 * it is checked, and a byte flipped in a main-host page of main.mem is
 * named by page as a server's is; a damaged or missing main.present is
 * named. Without a manifest, DIR's main.present is used. (Checkpoints
 * without one, as good() shows, still pass.) */
static void main_present(const char *base)
{
	struct dcres_mapped_ram geo;
	const char *dir = test_ckpt_make(base, TEST_CKPT_MAIN_PRESENT, &geo);
	char *mem = test_path(dir, "main.mem"), *present = test_path(dir, "main.present");
	off_t off = (off_t)(geo.pages_offset + MAIN_BAD_PAGE * PS + 7);
	struct json_object *o, *bad;

	CHECK_EQ(run((const char *[]){ dir, NULL }), 0);
	CHECK(strstr(ran.out, "main.present: ") && strstr(ran.out, "those of main.mem"));
	CHECK(strstr(ran.out, "pages match the CRCs of main.present"));
	CHECK_EQ(run((const char *[]){ "--json", dir, NULL }), 0);
	o = parse_out();
	CHECK_EQ(json_object_array_length(get(o, "files")), 7);
	json_object_put(o);

	test_flip_byte(mem, off);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
	CHECK(said("main.mem: page 16 is corrupted"));
	CHECK(strstr(ran.err, "main.mem: page 16"));
	CHECK_EQ(run((const char *[]){ "--json", dir, NULL }), 1);
	o = parse_out();
	bad = get(o, "bad_pages");
	CHECK_EQ(json_object_array_length(bad), 1);
	CHECK(strcmp(get_str(json_object_array_get_idx(bad, 0), "file"), "main.mem") == 0);
	CHECK_EQ(get_int(json_object_array_get_idx(bad, 0), "page"), MAIN_BAD_PAGE);
	json_object_put(o);
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 0);
	test_flip_byte(mem, off);

	test_flip_byte(present, 40); /* its bitmap */
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, present));
	test_flip_byte(present, 40);
	CHECK(unlink(present) == 0);
	CHECK_EQ(run((const char *[]){ "--no-verify", dir, NULL }), 1);
	CHECK(strstr(ran.err, present));

	dir = test_ckpt_make(base, TEST_CKPT_MAIN_CORRUPT, &geo);
	CHECK_EQ(run((const char *[]){ dir, NULL }), 1);
	CHECK(said("main.mem: page 16 is corrupted") && said("manifest: missing"));
	free(mem);
	free(present);
}

/* Usage errors are exit 2; --help is 0. */
static void usage(void)
{
	CHECK_EQ(run((const char *[]){ NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--bogus", "x", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "x", "y", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "x", "--disk", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--help", NULL }), 0);
	CHECK(strstr(ran.out, "usage: dcres-inspect"));
}

/* argv[1] is the dcres-inspect binary; exits 0 after "inspect-test: ok". */
int main(int argc, char **argv)
{
	const char *disk_dir, *shm;

	CHECK(argc == 2);
	tool = argv[1];
	disk_dir = test_tmpdir("/var/tmp");
	shm = test_tmpdir("/dev/shm");
	scratch = shm;

	/* A real disk (O_DIRECT reads) once; tmpfs (buffered) for the rest. */
	good(disk_dir);
	good(shm);
	bad_page(shm);
	bad_checksum(shm);
	bad_main(shm);
	inconsistent(shm);
	conventional(shm);
	main_present(shm);
	bad_disks(shm);
	usage();
	printf("inspect-test: ok\n");
	return 0;
}
