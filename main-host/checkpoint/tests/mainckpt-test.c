/* libdcres-mainckpt against a real pager and two real memory servers on
 * loopback: a checkpoint begun, synced and finished leaves each server's
 * files holding exactly the pages the pager places there, and main.loc
 * the pager's table with main.mem's geometry; a directory outside the
 * servers' root is refused; a server killed mid-checkpoint fails the next
 * step naming it, and the other server's partial file is removed.
 * usage: mainckpt-test PATH_TO_DCRES_MEMSERVER (exit 77: no userfaultfd) */
#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/loctable.h"
#include "dcres/mainckpt.h"
#include "dcres/memclient.h"
#include "dcres/presence.h"
#include "memserver-spawn.h"

#define PAGE 4096u
#define NPAGES 4096u
#define ON_SERVER 500u /* pages each server holds */
#define LOCAL_FIRST 3000u
#define LOCAL_PAGES 100u

static int failures;
static char tmpdir[128];
static struct test_memserver servers[2];
static struct dcres_psk psk;
static const uint8_t uuid[16] = { 0x3c, 0x4b, 9 };

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

static void finish(void)
{
	char cmd[200];

	for (int i = 0; i < 2; i++)
		test_memserver_kill(&servers[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
	printf("mainckpt-test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	exit(failures ? 1 : 0);
}

/* The server (1 or 2) page p lives on, or 0 for none. */
static unsigned home(uint64_t p)
{
	return p < ON_SERVER ? 1 : p < 2 * ON_SERVER ? 2 : 0;
}

/* Pages 0..ON_SERVER-1 go to server 1, the next ON_SERVER to server 2. */
static void place_on_servers(void)
{
	uint64_t pages[ON_SERVER];
	uint8_t *buf = calloc(ON_SERVER, PAGE);

	for (unsigned s = 0; buf && s < 2; s++) {
		struct dcres_memclient *c;
		CHECK(dcres_memclient_connect(servers[s].addr, &psk, 2000, &c) == 0, "connect");
		CHECK(dcres_memclient_attach(c, uuid, (uint64_t)NPAGES * PAGE) == 0, "attach");
		for (unsigned j = 0; j < ON_SERVER; j++) {
			pages[j] = s * ON_SERVER + j;
			memset(buf + (size_t)j * PAGE, (int)(pages[j] & 0xff) | 1, PAGE);
		}
		CHECK(dcres_memclient_page_out(c, pages, buf, ON_SERVER) == 0, "page-out");
		dcres_memclient_close(c);
	}
	free(buf);
}

static bool exists(const char *dir, const char *name)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Whether dir holds a partial memory file of host id (host-ID.mem.partial.*). */
static bool partial_exists(const char *dir, unsigned id)
{
	char pattern[400];
	glob_t g;
	bool found;

	snprintf(pattern, sizeof(pattern), "%s/host-%u.mem.partial.*", dir, id);
	found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
	globfree(&g);
	return found;
}

/* Checks a completed checkpoint in dir against the pager's placement. */
static void check_files(const char *dir)
{
	char path[400];
	struct dcres_presence pres;
	struct dcres_loctable t;

	for (unsigned k = 1; k <= 2; k++) {
		snprintf(path, sizeof(path), "%s/host-%u.present", dir, k);
		CHECK(dcres_presence_read(path, &pres) == 0, "read %s", path);
		uint64_t wrong = 0;
		for (uint64_t p = 0; pres.bits && p < NPAGES; p++)
			wrong += dcres_presence_test(&pres, p) != (home(p) == k);
		CHECK(pres.bits && wrong == 0, "%s: %llu pages differ from the pager's table", path,
		      (unsigned long long)wrong);
		dcres_presence_free(&pres);
	}
	snprintf(path, sizeof(path), "%s/main.loc", dir);
	CHECK(dcres_loctable_read(path, &t) == 0, "read %s", path);
	if (!t.host)
		return;
	uint64_t wrong = 0;
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint8_t want = home(p) ? home(p) :
			       p >= LOCAL_FIRST && p < LOCAL_FIRST + LOCAL_PAGES ? DCRES_LOC_MAIN :
			       DCRES_LOC_ZERO;
		wrong += t.host[p] != want;
	}
	CHECK(t.npages == NPAGES && wrong == 0, "main.loc: %llu of %llu entries wrong",
	      (unsigned long long)wrong, (unsigned long long)t.npages);
	CHECK(!strcmp(t.main_file.block_id, "ram0") && t.main_file.pages_offset == 1u << 20,
	      "main.loc's geometry: block %s, pages at %llu", t.main_file.block_id,
	      (unsigned long long)t.main_file.pages_offset);
	dcres_loctable_free(&t);
}

int main(int argc, char **argv)
{
	char key[200], dir[300], err[512];
	struct dcres_pager *pager;
	struct dcres_mainckpt *ck;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: mainckpt-test PATH_TO_DCRES_MEMSERVER\n");
		return 2;
	}
	if (!test_uffd_available()) {
		printf("SKIP: userfaultfd unavailable (needs root or vm.unprivileged_userfaultfd=1)\n");
		return 77;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/var/tmp/dcres-mainckpt-test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(key, sizeof(key), "%s/psk", tmpdir);
	if (test_write_key(key, &psk))
		finish();
	/* Both servers see tmpdir as their --dir: the shared checkpoint root. */
	for (int i = 0; i < 2; i++) {
		ret = test_memserver_start(&servers[i], argv[1], "16M", tmpdir, key, &psk);
		CHECK(ret == 0, "memory server %d: %s", i + 1, strerror(-ret));
		if (ret)
			finish();
	}
	place_on_servers();

	uint8_t *region = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const char *addrs[2] = { servers[0].addr, servers[1].addr };
	struct dcres_pager_config pcfg = {
		.base = region, .size = (size_t)NPAGES * PAGE, .servers = addrs,
		.nservers = 2, .psk = &psk, .timeout_ms = 2000,
	};
	memcpy(pcfg.vm_uuid, uuid, 16);
	ret = dcres_pager_start(&pcfg, &pager);
	CHECK(ret == 0, "pager start: %s", strerror(-ret));
	if (ret)
		finish();
	for (uint64_t p = 0; p < 2 * ON_SERVER; p++)
		dcres_pager_place(pager, p, (uint8_t)home(p));
	for (uint64_t p = LOCAL_FIRST; p < LOCAL_FIRST + LOCAL_PAGES; p++)
		region[p * PAGE] = 1; /* zero-filled on first touch, then local */

	struct dcres_mainckpt_config cfg = {
		.pager = pager, .ram_size = (uint64_t)NPAGES * PAGE, .psk = &psk,
		.timeout_ms = 2000, .dir = dir, .root = tmpdir,
	};
	struct dcres_mapped_ram geo = {
		.block_id = "ram0", .used_length = (uint64_t)NPAGES * PAGE,
		.bitmap_offset = 4096, .pages_offset = 1u << 20,
	};
	memcpy(cfg.vm_uuid, uuid, 16);

	/* 1. A whole checkpoint. */
	snprintf(dir, sizeof(dir), "%s/c1", tmpdir);
	mkdir(dir, 0700);
	ret = dcres_mainckpt_begin(&cfg, &ck, err, sizeof(err));
	CHECK(ret == 0, "begin: %s", err);
	if (ret)
		finish();
	CHECK(partial_exists(dir, 1) && partial_exists(dir, 2),
	      "the servers did not begin writing into %s", dir);
	CHECK(dcres_mainckpt_sync(ck, err, sizeof(err)) == 0, "sync: %s", err);
	dcres_pager_hold_eviction(pager, true);
	CHECK(dcres_mainckpt_final(ck, &geo, err, sizeof(err)) == 0, "final: %s", err);
	dcres_pager_hold_eviction(pager, false);
	CHECK(dcres_mainckpt_server_bytes(ck, 1) >= (uint64_t)ON_SERVER * PAGE &&
	      dcres_mainckpt_server_bytes(ck, 2) >= (uint64_t)ON_SERVER * PAGE,
	      "servers report %llu and %llu bytes written",
	      (unsigned long long)dcres_mainckpt_server_bytes(ck, 1),
	      (unsigned long long)dcres_mainckpt_server_bytes(ck, 2));
	dcres_mainckpt_end(ck);
	check_files(dir);

	/* 2. A directory the servers cannot name is refused before anything. */
	snprintf(dir, sizeof(dir), "/var/tmp");
	ret = dcres_mainckpt_begin(&cfg, &ck, err, sizeof(err));
	CHECK(ret == -EINVAL && strstr(err, "not below"), "outside the root: %d %s", ret, err);

	/* 3. Server 2 dies mid-checkpoint: the next step fails naming it, and
	 * server 1 drops its partial file when the checkpoint ends. */
	snprintf(dir, sizeof(dir), "%s/c2", tmpdir);
	mkdir(dir, 0700);
	ret = dcres_mainckpt_begin(&cfg, &ck, err, sizeof(err));
	CHECK(ret == 0, "begin c2: %s", err);
	if (ret)
		finish();
	test_memserver_kill(&servers[1]);
	ret = dcres_mainckpt_sync(ck, err, sizeof(err));
	CHECK(ret != 0 && strstr(err, servers[1].addr),
	      "sync with a dead server: %d, \"%s\" (want an error naming %s)", ret, err,
	      servers[1].addr);
	dcres_mainckpt_end(ck);
	CHECK(!partial_exists(dir, 1) && !exists(dir, "host-1.mem"),
	      "server 1 kept files of the failed checkpoint");

	dcres_pager_stop(pager);
	munmap(region, (size_t)NPAGES * PAGE);
	finish();
}
