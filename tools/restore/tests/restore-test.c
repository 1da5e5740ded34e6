/* Test of dcres-restore's paths that need no QEMU, on synthetic
 * checkpoints (ckpt-build.h) and a real memory server on loopback:
 * a missing manifest, a damaged or missing server file (named with its
 * page by the server holding it, before anything is released or started),
 * a directory outside --ckpt-root,
 * an infeasible --capacity (refused with the numbers, the server left
 * empty), a full load of the server followed by a QEMU that cannot start
 * or exits at once (the server emptied again), a target server that
 * does not see the checkpoint directory (it loads the pages from the
 * server holding the files, server to server), a checkpoint with
 * main.present (main.mem fully checked when eager, only its size when
 * lazy; main.present staged for QEMU, and no stale one left for an older
 * checkpoint), and usage errors.
 * This program is also the QEMU that exits at once (run with "-S" first,
 * as dcres-restore runs QEMU): it reads the plan dcres-restore gave it,
 * checks every page the server holds for the VM against the checkpoint,
 * says so and exits 3.
 * usage: restore-test DCRES_RESTORE DCRES_MEMSERVER */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include <errno.h>
#include <limits.h>

#include "ckpt-build.h"
#include "dcres/manifest.h"
#include "dcres/memclient.h"
#include "dcres/memfile.h"
#include "dcres/plan.h"
#include "dcres/uuid.h"
#include "memserver-spawn.h"
#include "tool-run.h"

#define FAKE_QEMU_EXIT 3

static const char *tool;
static const char *scratch;
static struct test_tool_output ran; /* what the last run said */

/* Runs the tool with args (NULL-terminated); returns its exit status. */
static int run(const char *const *args)
{
	return test_run_tool(tool, scratch, args, &ran);
}

/* Checks that the tool's stderr contains s. */
static void expect_err(const char *s)
{
	if (!strstr(ran.err, s)) {
		fprintf(stderr, "expected in dcres-restore's stderr: %s\n", s);
		exit(1);
	}
}

/* True when path exists. */
static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Pages the memory server at addr holds (of all VMs). */
static uint64_t server_used_pages(const char *addr, const struct dcres_psk *psk)
{
	struct dcres_memclient *c;
	struct dcres_memstats st;

	CHECK_EQ(dcres_memclient_connect(addr, psk, 2000, &c), 0);
	CHECK_EQ(dcres_memclient_stats(c, &st), 0);
	dcres_memclient_close(c);
	return st.used_pages;
}

/* Checks that the progress lines show every planned page of the server
 * at addr loaded (last line "ADDR N/N pages", N > 0). */
static void expect_loaded(const char *addr)
{
	const char *last = NULL, *p = ran.err;
	unsigned long long done, planned;

	while ((p = strstr(p, addr))) {
		if (sscanf(p + strlen(addr), " %llu/%llu pages", &done, &planned) == 2)
			last = p;
		p++;
	}
	CHECK(last != NULL);
	CHECK(sscanf(last + strlen(addr), " %llu/%llu", &done, &planned) == 2);
	CHECK(planned > 0 && done == planned);
}

/* The value of property key in QEMU option string opts ("" if absent; no
 * doubled commas expected), copied into out (len bytes). */
static void option_value(const char *opts, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	out[0] = 0;
	for (const char *p = opts; p; p = strchr(p, ','), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(p + klen + 1, ","), p + klen + 1);
			return;
		}
	}
}

/* The fake QEMU: checks that the server (the only sub-host) holds the
 * pages the plan puts there, some from each of main.mem, host-1.mem and
 * host-2.mem, with the content the checkpoint saved (zeros for the pages
 * QEMU left out of main.mem), then exits FAKE_QEMU_EXIT; any mismatch
 * exits 1. */
static int fake_qemu(int argc, char **argv)
{
	char addr[128] = "", key[512] = "", plan_path[512] = "";
	const char *uuid_text = NULL;
	struct dcres_memclient *c;
	struct dcres_plan plan;
	struct dcres_psk psk;
	uint8_t uuid[16], want[TEST_CKPT_PS], *got = malloc(TEST_CKPT_PS);
	uint64_t *pages, n, from[3] = { 0 };
	char err[512];

	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "-uuid"))
			uuid_text = argv[i + 1];
		if (!strcmp(argv[i], "-object") && !strncmp(argv[i + 1], "dcres-split,", 12)) {
			option_value(argv[i + 1], "servers", addr, sizeof(addr));
			option_value(argv[i + 1], "psk-file", key, sizeof(key));
			option_value(argv[i + 1], "restore-plan", plan_path, sizeof(plan_path));
		}
	}
	CHECK(got && uuid_text && !dcres_uuid_parse(uuid_text, uuid) && addr[0]);
	CHECK_EQ(dcres_psk_load(key, &psk), 0);
	if (dcres_plan_read(plan_path, &plan, err, sizeof(err))) {
		fprintf(stderr, "fake QEMU: %s\n", err);
		return 1;
	}
	CHECK_EQ(plan.nsubs, 1);
	CHECK_EQ(dcres_memclient_connect(addr, &psk, 2000, &c), 0);
	CHECK_EQ(dcres_memclient_attach(c, uuid, plan.npages * TEST_CKPT_PS), 0);
	CHECK_EQ(dcres_plan_pages(&plan, 1, 0, &pages, &n), 0);
	CHECK(n > 0);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = pages[i];
		uint8_t src = plan.source[p];

		if (src == DCRES_PLAN_MAIN && test_ckpt_zero_page(p))
			memset(want, 0, sizeof(want));
		else
			test_ckpt_fill_page(want, p, src);
		CHECK(src <= 2);
		from[src]++;
		CHECK_EQ(dcres_memclient_page_in(c, &p, got, 1), 0);
		if (memcmp(got, want, TEST_CKPT_PS)) {
			printf("fake QEMU: page %llu (from host %u) is wrong\n",
			       (unsigned long long)p, src);
			return 1;
		}
	}
	/* Pages came from main.mem and from both checkpoint servers' files. */
	CHECK(from[0] > 0 && from[1] > 0 && from[2] > 0);
	printf("fake QEMU: %llu pages verified on %s\n", (unsigned long long)n, addr);
	dcres_memclient_close(c);
	dcres_plan_free(&plan);
	free(pages);
	free(got);
	return FAKE_QEMU_EXIT;
}

/* Errors found in the checkpoint itself, before anything is contacted. */
static void bad_checkpoints(const char *base)
{
	struct dcres_mapped_ram geo;
	const char *dir;
	char *run_dir = test_path(scratch, "run-bad"), want[1024];

	/* No manifest: not a checkpoint; nothing created. */
	dir = test_ckpt_make(base, TEST_CKPT_OK, &geo);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", "main", "--run-dir", run_dir,
				      "--", NULL }), 1);
	snprintf(want, sizeof(want), "%s/manifest", dir);
	expect_err(want);
	CHECK(!exists(run_dir));
	free(run_dir);
}

/* Damaged or missing parts, found by the server holding them (the main
 * host reads no server file): each refused naming the file (and page)
 * before anything is released or started. */
static void bad_parts(const char *base, const char *memserver)
{
	struct test_memserver srv;
	struct dcres_psk psk;
	struct dcres_mapped_ram geo;
	char *key = test_path(scratch, "psk-bad"), *run_dir = test_path(scratch, "run-bad");
	char hosts[128], want[1024], *path;
	const char *dir;

	CHECK_EQ(test_write_key(key, &psk), 0);
	CHECK_EQ(test_memserver_start(&srv, memserver, "64M", base, key, &psk), 0);
	snprintf(hosts, sizeof(hosts), "main,%s", srv.addr);

	/* A flipped byte in a present page of host-1.mem: the server names
	 * the page. */
	dir = test_ckpt_make(base, TEST_CKPT_MANIFEST, &geo);
	path = test_path(dir, "host-1.mem");
	test_flip_byte(path, DCRES_MEMFILE_DATA_START + 22 * TEST_CKPT_PS + 100);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--", NULL }), 1);
	snprintf(want, sizeof(want), "%s/host-1.mem: page 22 is corrupted (checksum mismatch)",
		 dir + strlen(base) + 1);
	expect_err(want);
	expect_err("the part of host 1 (host-1.mem, host-1.present");
	expect_err("exists nowhere");
	CHECK(!exists(run_dir));

	/* Files declaring another page size: refused naming the file. */
	for (int v = TEST_CKPT_PAGE_8K; v <= TEST_CKPT_PAGE_1M; v++) {
		const char *odd = test_ckpt_make(base, (enum test_ckpt_variant)v, &geo);

		CHECK_EQ(run((const char *[]){ "--ckpt", odd, "--hosts", hosts, "--psk", key,
					      "--ckpt-root", base, "--run-dir", run_dir, "--",
					      NULL }), 1);
		snprintf(want, sizeof(want), "%s/host-1.mem: the page size in its header is not "
			 "supported", odd + strlen(base) + 1);
		expect_err(want);
		CHECK(!exists(run_dir));
	}

	/* host-1.mem missing. */
	CHECK(unlink(path) == 0);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--", NULL }), 1);
	expect_err("no host-1.mem");
	expect_err("exists nowhere");
	CHECK(!exists(run_dir));
	CHECK_EQ(server_used_pages(srv.addr, &psk), 0);
	test_memserver_kill(&srv);
	free(path);
	free(key);
	free(run_dir);
}

/* With a real memory server: a checkpoint directory outside --ckpt-root,
 * an infeasible plan, and a full load of the server undone when QEMU
 * cannot start or exits at once. */
static void with_server(const char *base, const char *memserver, const char *self)
{
	struct test_memserver srv;
	struct dcres_psk psk;
	struct dcres_mapped_ram geo;
	char *key = test_path(scratch, "psk"), *run_dir = test_path(scratch, "run");
	char *plan = test_path(run_dir, "plan"), hosts[128], cap[256], want[1024];
	const char *dir = test_ckpt_make(base, TEST_CKPT_MANIFEST, &geo);
	int ret;

	CHECK_EQ(test_write_key(key, &psk), 0);
	ret = test_memserver_start(&srv, memserver, "64M", base, key, &psk);
	if (ret) {
		fprintf(stderr, "cannot start %s: %s\n", memserver, strerror(-ret));
		exit(1);
	}
	snprintf(hosts, sizeof(hosts), "main,%s", srv.addr);

	/* The servers must see DIR below their --dir. */
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", "/proc", "--run-dir", run_dir, "--",
				      NULL }), 1);
	expect_err("is not below /proc");

	/* With sub-hosts the key is required. */
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--ckpt-root", base,
				      "--run-dir", run_dir, "--", NULL }), 1);
	expect_err("--psk is required");

	/* 800 written pages do not fit 25 + 100. */
	snprintf(cap, sizeof(cap), "main=100K,%s=400K", srv.addr);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--capacity", cap,
				      "--psk", key, "--ckpt-root", base, "--run-dir", run_dir,
				      "--", NULL }), 1);
	snprintf(want, sizeof(want), "main=main sub-host 1=%s", srv.addr);
	expect_err(want);
	expect_err("800 pages to place, capacity 125: main 25 + sub-host 1 100 = 125 pages");
	CHECK(!exists(plan));
	CHECK_EQ(server_used_pages(srv.addr, &psk), 0);

	/* The server loads its share (the pages of both checkpoint servers:
	 * the main host keeps its own), then QEMU cannot start: the server is
	 * emptied. */
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--qemu",
				      "/nonexistent/qemu", "--", "-m", "4000K", NULL }), 1);
	expect_err("cannot run QEMU /nonexistent/qemu: No such file or directory");
	expect_loaded(srv.addr);
	CHECK(exists(plan));
	CHECK_EQ(test_file_size(plan) > 0, 1);
	CHECK_EQ(server_used_pages(srv.addr, &psk), 0);

	/* Again, with a QEMU (this program) that checks the server's pages and
	 * exits at once: its exit and log are shown. The main host gets half
	 * its old room: 100 of its pages go to the server from main.mem. */
	snprintf(cap, sizeof(cap), "main=400K");
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--capacity", cap,
				      "--psk", key, "--ckpt-root", base, "--run-dir", run_dir,
				      "--qemu", self, "--", "-m", "4000K", NULL }), 1);
	expect_err("exited with status 3");
	snprintf(want, sizeof(want), "dcres-restore started: %s -S -incoming defer -uuid "
		 "deadbeef-0102-0304-0506-0708090a0b0c -object memory-backend-ram,id=pc.ram,"
		 "size=4096000 -machine memory-backend=pc.ram -object dcres-split,"
		 "id=dcres-split0,memdev=pc.ram,local-size=409600,servers=%s,psk-file=%s,"
		 "ckpt-root=%s,restore-plan=%s,restore-lazy=off -qmp unix:%s/qmp.sock,"
		 "server=on,wait=off -m 4000K", self, srv.addr, key, base, plan, run_dir);
	expect_err(want);
	snprintf(want, sizeof(want), "fake QEMU: 700 pages verified on %s", srv.addr);
	expect_err(want);
	expect_loaded(srv.addr);
	CHECK_EQ(server_used_pages(srv.addr, &psk), 0);

	test_memserver_kill(&srv);
	free(key);
	free(run_dir);
	free(plan);
}

/* Names server addr as where the checkpoint's servers 1 and 2 ran. */
static void manifest_servers_at(const char *dir, const char *addr)
{
	Dcres__Manifest *m;

	CHECK_EQ(dcres_manifest_read(dir, &m), 0);
	for (size_t i = 0; i < m->n_hosts; i++) {
		if (m->hosts[i]->id == 0)
			continue;
		free(m->hosts[i]->address);
		m->hosts[i]->address = strdup(addr);
	}
	CHECK_EQ(dcres_manifest_write(dir, m), 0);
	dcres_manifest_free(m);
}

/* Without a shared directory: the target server does not hold the
 * checkpoint's server files (its --dir is elsewhere), so it loads their
 * pages from the server the manifest names, server to server. */
static void without_shared_dir(const char *base, const char *memserver, const char *self)
{
	struct test_memserver holder, target;
	struct dcres_psk psk;
	struct dcres_mapped_ram geo;
	char *key = test_path(scratch, "psk2"), *run_dir = test_path(scratch, "run-peer");
	char *elsewhere = test_path(scratch, "elsewhere"), hosts[128], want[256];
	const char *dir = test_ckpt_make(base, TEST_CKPT_MANIFEST, &geo);

	CHECK_EQ(test_write_key(key, &psk), 0);
	CHECK_EQ(test_memserver_start(&holder, memserver, "64M", base, key, &psk), 0);
	CHECK_EQ(test_memserver_start(&target, memserver, "64M", elsewhere, key, &psk), 0);
	manifest_servers_at(dir, holder.addr);
	snprintf(hosts, sizeof(hosts), "main,%s", target.addr);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--capacity", "main=400K",
				      "--psk", key, "--ckpt-root", base, "--run-dir", run_dir,
				      "--qemu", self, "--", "-m", "4000K", NULL }), 1);
	snprintf(want, sizeof(want), "of host 1's part from %s", holder.addr);
	expect_err(want);
	snprintf(want, sizeof(want), "fake QEMU: 700 pages verified on %s", target.addr);
	expect_err(want);
	CHECK_EQ(server_used_pages(target.addr, &psk), 0);
	test_memserver_kill(&target);
	test_memserver_kill(&holder);
	free(key);
	free(run_dir);
	free(elsewhere);
}

/* A checkpoint with main.present and a flipped byte in a hot main-host
 * page of main.mem (one the main host keeps): an eager restore checks all
 * of main.mem and refuses it before anything starts; a lazy one checks
 * only its size (QEMU checks each page against main.present as it loads
 * it), and stages main.present for QEMU.
 * A later restore of a checkpoint without one leaves no main.present in
 * the stage. */
static void main_present(const char *base, const char *memserver, const char *self)
{
	struct test_memserver srv;
	struct dcres_psk psk;
	struct dcres_mapped_ram geo;
	char *key = test_path(scratch, "psk3"), *run_dir = test_path(scratch, "run-present");
	char *staged = test_path(run_dir, "parts/main.present"), hosts[128], want[1024];
	char *mem, *present, link[PATH_MAX];
	const char *dir = test_ckpt_make(base, TEST_CKPT_MAIN_PRESENT, &geo);
	struct stat sb;
	ssize_t len;

	mem = test_path(dir, "main.mem");
	present = test_path(dir, "main.present");
	CHECK(test_ckpt_owner(251) == DCRES_LOC_MAIN && !test_ckpt_zero_page(251));
	test_flip_byte(mem, (off_t)(geo.pages_offset + 251 * TEST_CKPT_PS + 100));
	CHECK_EQ(test_write_key(key, &psk), 0);
	CHECK_EQ(test_memserver_start(&srv, memserver, "64M", base, key, &psk), 0);
	snprintf(hosts, sizeof(hosts), "main,%s", srv.addr);

	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--capacity", "main=400K",
				      "--qemu", self, "--", "-m", "4000K", NULL }), 1);
	snprintf(want, sizeof(want), "%s: %llu bytes, CRC-32C", mem,
		 (unsigned long long)test_file_size(mem));
	expect_err(want);
	expect_err("(the file is damaged)");
	CHECK(!exists(run_dir));

	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--lazy",
				      "--capacity", "main=400K", "--qemu", self, "--", "-m", "4000K",
				      NULL }), 1);
	snprintf(want, sizeof(want), "%s: size checked; its pages are checked against "
		 "main.present as they load (lazy restore)", mem);
	expect_err(want);
	expect_err("exited with status 3");
	len = readlink(staged, link, sizeof(link) - 1);
	CHECK(len > 0);
	link[len] = '\0';
	CHECK(strcmp(link, present) == 0);

	/* An older checkpoint (no main.present), the same run directory. */
	dir = test_ckpt_make(base, TEST_CKPT_MANIFEST, &geo);
	CHECK_EQ(run((const char *[]){ "--ckpt", dir, "--hosts", hosts, "--psk", key,
				      "--ckpt-root", base, "--run-dir", run_dir, "--lazy",
				      "--capacity", "main=400K", "--qemu", self, "--", "-m", "4000K",
				      NULL }), 1);
	expect_err("exited with status 3");
	CHECK(!strstr(ran.err, "size checked"));
	CHECK(lstat(staged, &sb) < 0 && errno == ENOENT);
	CHECK_EQ(server_used_pages(srv.addr, &psk), 0);

	test_memserver_kill(&srv);
	free(key);
	free(run_dir);
	free(staged);
	free(mem);
	free(present);
}

/* Usage errors are exit 2, --help exit 0. */
static void usage_errors(void)
{
	CHECK_EQ(run((const char *[]){ NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main,nope", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main,main", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main", "--capacity",
				      "other=1G", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main", "--capacity",
				      "main=12Q", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main", "--wait-loaded",
				      NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--ckpt", "x", "--hosts", "main", "-m", "1G", NULL }), 2);
	CHECK_EQ(run((const char *[]){ "--help", NULL }), 0);
	CHECK(strstr(ran.out, "--ckpt DIR") != NULL);
}

int main(int argc, char **argv)
{
	char self[PATH_MAX];
	const char *base;

	if (argc > 1 && !strcmp(argv[1], "-S"))
		return fake_qemu(argc, argv);
	if (argc != 3) {
		fprintf(stderr, "usage: restore-test DCRES_RESTORE DCRES_MEMSERVER\n");
		return 2;
	}
	tool = argv[1];
	scratch = test_tmpdir("/dev/shm");
	base = test_tmpdir("/dev/shm");

	usage_errors();
	bad_checkpoints(base);
	bad_parts(base, argv[2]);
	with_server(base, argv[2], realpath("/proc/self/exe", self));
	without_shared_dir(base, argv[2], self);
	main_present(base, argv[2], self);
	printf("restore-test: ok\n");
	return 0;
}
