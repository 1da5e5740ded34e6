/* Unit test of the restore planner and plan files (plan.h): pages stay
 * where they are on the same host set, fewer and more sub-hosts, a single
 * host, the hottest pages on a smaller main host (with ties), infeasible
 * plans and bad target sets, the moved count, plan-file round trip, mode,
 * corruption and truncation, and a 1M-page plan. */
#include "testutil.h"

#include <errno.h>
#include <time.h>

#include "dcres/bytes.h"
#include "dcres/crc32c.h"
#include "dcres/plan.h"

#define DIR "/srv/ckpt/vm1/ckpt-0001"
#define UNL DCRES_PLAN_UNLIMITED

static char err[8192];

/* A table of n pages: hosts[i % nh] and history hist[i % nhist] (NULL: 0). */
static void make_table(struct dcres_loctable *t, uint64_t n, const uint8_t *hosts,
		       unsigned nh, const uint8_t *hist, unsigned nhist)
{
	CHECK_EQ(dcres_loctable_init(t, n, 4096), 0);
	for (uint64_t i = 0; i < n; i++) {
		t->host[i] = hosts[i % nh];
		t->history[i] = hist ? hist[i % nhist] : 0;
	}
	snprintf(t->main_file.block_id, sizeof(t->main_file.block_id), "pc.ram");
	t->main_file.used_length = n * 4096;
	t->main_file.bitmap_offset = 0x2000;
	t->main_file.pages_offset = 0x100000;
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* Plans t onto targets and checks what every plan must be: zero pages
 * zero, others on a target host within its capacity, source and history
 * copied from t. */
static void plan(const struct dcres_loctable *t, const struct dcres_plan_target *targets,
		 unsigned n, struct dcres_plan *p)
{
	uint64_t count[DCRES_PLAN_MAX_SUBS + 1] = { 0 };

	err[0] = 0;
	if (dcres_plan_make(t, DIR, targets, n, p, err, sizeof(err))) {
		fprintf(stderr, "plan failed: %s\n", err);
		exit(1);
	}
	CHECK_EQ(p->npages, t->npages);
	CHECK_EQ(p->nsubs, n - 1);
	CHECK(strcmp(p->ckpt_dir, DIR) == 0);
	CHECK(memcmp(&p->main_file, &t->main_file, sizeof(p->main_file)) == 0);
	CHECK(memcmp(p->source, t->host, t->npages) == 0);
	CHECK(memcmp(p->history, t->history, t->npages) == 0);
	for (uint64_t i = 0; i < t->npages; i++) {
		if (t->host[i] == DCRES_LOC_ZERO) {
			CHECK_EQ(p->target[i], DCRES_PLAN_ZERO);
			continue;
		}
		CHECK(p->target[i] < n);
		count[p->target[i]]++;
	}
	for (unsigned h = 0; h < n; h++) {
		CHECK(count[h] <= targets[h].capacity);
		CHECK_EQ(dcres_plan_count(p, (uint8_t)h), count[h]);
	}
}

/* The host of the target set that is page i's own host (-1: none). */
static int own_host(const struct dcres_plan *p, const struct dcres_plan_target *targets,
		    uint64_t i)
{
	if (p->source[i] == DCRES_PLAN_MAIN)
		return 0;
	for (unsigned h = 1; h <= p->nsubs; h++)
		if (targets[h].same_as == p->source[i])
			return (int)h;
	return -1;
}

/* Same host set (sub-hosts in another order), main's pages the hottest or
 * as hot: every page stays, nothing moves. */
static void test_same_hosts(void)
{
	static const uint8_t hosts[] = { 0, 1, 0, 2, 0xff, 1, 0, 2, 1, 0 };
	static const uint8_t hot[] = { 200, 90, 210, 80, 0, 100, 220, 70, 95, 230 };
	struct dcres_plan_target tg[3] = { { 400, 0 }, { 200, 2 }, { 300, 1 } };
	struct dcres_loctable t;
	struct dcres_plan p;

	for (int equal = 0; equal < 2; equal++) {
		make_table(&t, 1000, hosts, 10, equal ? NULL : hot, 10);
		plan(&t, tg, 3, &p);
		for (uint64_t i = 0; i < p.npages; i++)
			if (p.source[i] != DCRES_PLAN_ZERO)
				CHECK_EQ(p.target[i], own_host(&p, tg, i));
		CHECK_EQ(dcres_plan_count(&p, 0), 400);
		CHECK_EQ(dcres_plan_count(&p, 1), 200);
		CHECK_EQ(dcres_plan_count(&p, 2), 300);
		CHECK_EQ(dcres_plan_count(&p, DCRES_PLAN_ZERO), 100);
		CHECK_EQ(dcres_plan_moved(&p, tg), 0);
		dcres_plan_free(&p);
		dcres_loctable_free(&t);
	}
}

/* Two servers in the checkpoint, one sub-host (server 1): only server 2's
 * pages move, all to it. */
static void test_fewer_subs(void)
{
	static const uint8_t hosts[] = { 0, 1, 2, 2, 0xff, 1, 0, 2 };
	struct dcres_plan_target tg[2] = { { 250, 0 }, { 625, 1 } };
	struct dcres_loctable t;
	struct dcres_plan p;

	make_table(&t, 1000, hosts, 8, NULL, 1);
	plan(&t, tg, 2, &p);
	for (uint64_t i = 0; i < p.npages; i++) {
		if (p.source[i] == 2)
			CHECK_EQ(p.target[i], 1);
		else if (p.source[i] != DCRES_PLAN_ZERO)
			CHECK_EQ(p.target[i], own_host(&p, tg, i));
	}
	CHECK_EQ(dcres_plan_moved(&p, tg), 375);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* More sub-hosts: added empty hosts take nothing when all fits where it
 * is; with a smaller main host its coldest pages are spread, levelling
 * free room, in page order; unlimited new hosts share evenly. */
static void test_more_subs(void)
{
	static const uint8_t hosts[] = { 0, 0, 0, 1, 1, 0, 1, 0, 1, 0 }; /* 60 / 40 */
	struct dcres_plan_target grow[4] = { { 60, 0 }, { UNL, 1 }, { UNL, 0 }, { 10, 0 } };
	struct dcres_plan_target shrink[4] = { { 30, 0 }, { 50, 1 }, { 20, 0 }, { 30, 0 } };
	struct dcres_plan_target full[3] = { { 60, 0 }, { 25, 1 }, { UNL, 0 } };
	struct dcres_plan_target unl[3] = { { 10, 0 }, { UNL, 0 }, { UNL, 0 } };
	struct dcres_plan_target one_unl[3] = { { 10, 0 }, { 1000, 0 }, { UNL, 0 } };
	uint8_t hist[100];
	struct dcres_loctable t;
	struct dcres_plan p;
	uint64_t seen = 0, kept = 0;

	for (int i = 0; i < 100; i++)
		hist[i] = (uint8_t)(hosts[i % 10] == 0 ? 100 + i : i); /* main's hottest */
	make_table(&t, 100, hosts, 10, hist, 100);
	plan(&t, grow, 4, &p);
	CHECK_EQ(dcres_plan_moved(&p, grow), 0);
	CHECK_EQ(dcres_plan_count(&p, 2) + dcres_plan_count(&p, 3), 0);
	dcres_plan_free(&p);

	/* Main keeps its 30 hottest; server 1's 40 stay on sub-host 1 (room
	 * 10 left); the other 30 level rooms 10/20/30 to 10/10/10: sub-host 2
	 * gets 10, sub-host 3 gets 20, the first 10 in page order to 2. */
	plan(&t, shrink, 4, &p);
	CHECK_EQ(dcres_plan_count(&p, 0), 30);
	CHECK_EQ(dcres_plan_count(&p, 1), 40);
	CHECK_EQ(dcres_plan_count(&p, 2), 10);
	CHECK_EQ(dcres_plan_count(&p, 3), 20);
	CHECK_EQ(dcres_plan_moved(&p, shrink), 30);
	for (uint64_t i = 0; i < 100; i++) {
		if (p.source[i] == 1)
			CHECK_EQ(p.target[i], 1);
		if (p.source[i] == 0 && i >= 50) /* the 30 hottest of main's 60 */
			CHECK_EQ(p.target[i], 0);
		if (p.source[i] == 0 && i < 50)
			CHECK_EQ(p.target[i], seen++ < 10 ? 2 : 3);
	}
	dcres_plan_free(&p);

	/* Sub-host 1 keeps the first 25 of server 1's 40 pages, in page order. */
	plan(&t, full, 3, &p);
	for (uint64_t i = 0; i < 100; i++)
		if (p.source[i] == 1)
			CHECK_EQ(p.target[i], kept++ < 25 ? 1 : 2);
	CHECK_EQ(dcres_plan_moved(&p, full), 15);
	dcres_plan_free(&p);

	plan(&t, unl, 3, &p); /* 90 left over: 45 each */
	CHECK_EQ(dcres_plan_count(&p, 1), 45);
	CHECK_EQ(dcres_plan_count(&p, 2), 45);
	dcres_plan_free(&p);
	plan(&t, one_unl, 3, &p); /* unlimited has the most room */
	CHECK_EQ(dcres_plan_count(&p, 1), 0);
	CHECK_EQ(dcres_plan_count(&p, 2), 90);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* A single host takes everything, or the plan is refused. */
static void test_single_host(void)
{
	static const uint8_t hosts[] = { 0, 1, 0xff, 2, 3 };
	struct dcres_plan_target tg = { UNL, 0 };
	struct dcres_loctable t;
	struct dcres_plan p;

	make_table(&t, 100, hosts, 5, NULL, 1);
	plan(&t, &tg, 1, &p);
	CHECK_EQ(dcres_plan_count(&p, 0), 80);
	CHECK_EQ(dcres_plan_moved(&p, &tg), 60);
	dcres_plan_free(&p);
	tg.capacity = 80;
	plan(&t, &tg, 1, &p);
	dcres_plan_free(&p);
	tg.capacity = 79;
	CHECK_EQ(dcres_plan_make(&t, DIR, &tg, 1, &p, err, sizeof(err)), -ENOSPC);
	CHECK(strcmp(err, "plan: 80 pages to place, capacity 79: main 79 pages") == 0);
	CHECK(p.target == NULL);
	dcres_loctable_free(&t);
}

static const struct dcres_plan *cmp_plan;

/* Rule 2's order: main's pages first, history descending, index. */
static int cmp_rank(const void *a, const void *b)
{
	uint64_t i = *(const uint64_t *)a, j = *(const uint64_t *)b;
	const struct dcres_plan *p = cmp_plan;

	if ((p->source[i] != 0) != (p->source[j] != 0))
		return p->source[i] == 0 ? -1 : 1;
	if (p->history[i] != p->history[j])
		return p->history[i] > p->history[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* A smaller main host keeps exactly its hottest pages; a larger one keeps
 * all and takes exactly the hottest of the servers'. */
static void test_hottest_on_main(void)
{
	static const uint8_t hosts[] = { 0, 1, 2, 0xff, 0, 1 };
	static const uint64_t caps[] = { 1000, 2500 };
	struct dcres_plan_target tg[3] = { { 1000, 0 }, { UNL, 1 }, { UNL, 2 } };
	uint64_t seed = 42, *rank, n;
	struct dcres_loctable t;
	struct dcres_plan p;

	make_table(&t, 6000, hosts, 6, NULL, 1);
	for (uint64_t i = 0; i < t.npages; i++)
		t.history[i] = (uint8_t)(lcg(&seed) % 40); /* many ties */
	rank = malloc(t.npages * sizeof(*rank));
	CHECK(rank != NULL);
	for (unsigned c = 0; c < 2; c++) {
		tg[0].capacity = caps[c];
		plan(&t, tg, 3, &p);
		n = 0;
		for (uint64_t i = 0; i < t.npages; i++)
			if (p.source[i] != DCRES_PLAN_ZERO)
				rank[n++] = i;
		cmp_plan = &p;
		qsort(rank, n, sizeof(*rank), cmp_rank);
		for (uint64_t k = 0; k < n; k++)
			CHECK_EQ(p.target[rank[k]] == 0, k < caps[c]);
		CHECK_EQ(dcres_plan_count(&p, 0), caps[c]);
		dcres_plan_free(&p);
	}

	/* All equally hot: 2000 pages on main; capacity 700 keeps its first
	 * 700, capacity 2300 all of them and the first 300 of the servers'
	 * (three in every six pages). */
	memset(t.history, 7, t.npages);
	tg[0].capacity = 700;
	plan(&t, tg, 3, &p);
	for (uint64_t i = 0; i < t.npages; i++)
		CHECK_EQ(p.target[i] == 0, p.source[i] == 0 && i < 6 * 350);
	dcres_plan_free(&p);
	tg[0].capacity = 2300;
	plan(&t, tg, 3, &p);
	for (uint64_t i = 0; i < t.npages; i++)
		CHECK_EQ(p.target[i] == 0, p.source[i] == 0 ||
			 ((p.source[i] == 1 || p.source[i] == 2) && i < 6 * 100));
	dcres_plan_free(&p);
	free(rank);
	dcres_loctable_free(&t);
}

/* Too many pages: -ENOSPC with the numbers. */
static void test_infeasible(void)
{
	static const uint8_t hosts[] = { 0, 1, 2, 0 };
	struct dcres_plan_target tg[3] = { { 65536, 0 }, { 65536, 1 }, { 65536, 2 } };
	struct dcres_loctable t;
	struct dcres_plan p;

	make_table(&t, 262144, hosts, 4, NULL, 1);
	CHECK_EQ(dcres_plan_make(&t, DIR, tg, 3, &p, err, sizeof(err)), -ENOSPC);
	fprintf(stderr, "  [err] %s\n", err);
	CHECK(strcmp(err, "plan: 262144 pages to place, capacity 196608: main 65536 + "
		      "sub-host 1 65536 + sub-host 2 65536 = 196608 pages") == 0);
	CHECK_EQ(dcres_plan_make(&t, DIR, tg, 3, &p, NULL, 0), -ENOSPC);
	tg[2].capacity = 131072; /* exactly enough */
	plan(&t, tg, 3, &p);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* Bad target sets and directories: -EINVAL with a message. */
static void test_bad_targets(void)
{
	static const uint8_t hosts[] = { 0, 1, 2 };
	struct dcres_plan_target tg[DCRES_PLAN_MAX_SUBS + 2];
	struct dcres_loctable t;
	struct dcres_plan p;
	const struct {
		unsigned n, dup_at, same_as;
		const char *dir, *want;
	} cases[] = {
		{ 0, 0, 0, DIR, "no target hosts" },
		{ DCRES_PLAN_MAX_SUBS + 2, 0, 0, DIR, "65 sub-hosts, at most 64" },
		{ 3, 2, 1, DIR, "sub-hosts 1 and 2 are both the checkpoint's server 1" },
		{ 3, 2, 255, DIR, "sub-host 2: same_as 255 is not a server number" },
		{ 3, 2, 1000, DIR, "same_as 1000" },
		{ 3, 0, 0, "relative/dir", "'relative/dir' is not an absolute path" },
		{ 3, 0, 0, NULL, "is not an absolute path" },
	};

	make_table(&t, 30, hosts, 3, NULL, 1);
	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (unsigned h = 0; h < DCRES_PLAN_MAX_SUBS + 2; h++)
			tg[h] = (struct dcres_plan_target){ UNL, h == 1 ? 1 : 0 };
		if (cases[c].dup_at)
			tg[cases[c].dup_at].same_as = cases[c].same_as;
		err[0] = 0;
		CHECK_EQ(dcres_plan_make(&t, cases[c].dir, tg, cases[c].n, &p, err, sizeof(err)),
			 -EINVAL);
		if (!strstr(err, cases[c].want)) {
			fprintf(stderr, "case %u: err '%s', want '%s'\n", c, err, cases[c].want);
			exit(1);
		}
	}
	/* 64 sub-hosts are fine, and so is the same_as of a server that held
	 * no pages (all of them fitted on the main host at the checkpoint). */
	tg[0].capacity = 10;
	tg[2].same_as = 3;
	plan(&t, tg, DCRES_PLAN_MAX_SUBS + 1, &p);
	CHECK_EQ(dcres_plan_moved(&p, tg), 10);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* dcres_plan_moved on a hand-made plan: one page of each kind. */
static void test_moved(void)
{
	uint8_t src[] = { 0, 0, 1, 1, 2, 2, 3, 0xff };
	uint8_t dst[] = { 0, 1, 0, 1, 1, 2, 2, 0xff };
	uint8_t hist[8] = { 0 };
	struct dcres_plan_target tg[3] = { { UNL, 0 }, { UNL, 1 }, { UNL, 0 } };
	struct dcres_plan p = { .npages = 8, .page_size = 4096, .nsubs = 2,
				.target = dst, .source = src, .history = hist };

	/* moved: 0->1, 1->0, 2->1, 2->2 (new), 3->2 (new) */
	CHECK_EQ(dcres_plan_moved(&p, tg), 5);
	tg[2].same_as = 2;
	CHECK_EQ(dcres_plan_moved(&p, tg), 4);
}

/* dcres_plan_pages in both orders. */
static void test_pages(void)
{
	static const uint8_t hosts[] = { 0, 1, 0xff };
	static const uint8_t hot[] = { 5, 9, 0, 5, 200, 0, 9, 3 };
	struct dcres_plan_target tg[2] = { { UNL, 0 }, { UNL, 1 } };
	struct dcres_loctable t;
	struct dcres_plan p;
	uint64_t *pg, n;

	make_table(&t, 24, hosts, 3, hot, 8);
	plan(&t, tg, 2, &p);
	CHECK_EQ(dcres_plan_pages(&p, 0, 0, &pg, &n), 0);
	CHECK_EQ(n, 16);
	for (uint64_t k = 0; k < n; k++)
		CHECK(k == 0 || pg[k] > pg[k - 1]);
	free(pg);
	CHECK_EQ(dcres_plan_pages(&p, 0, 1, &pg, &n), 0);
	CHECK_EQ(n, 16);
	for (uint64_t k = 1; k < n; k++)
		CHECK(p.history[pg[k - 1]] > p.history[pg[k]] ||
		      (p.history[pg[k - 1]] == p.history[pg[k]] && pg[k - 1] < pg[k]));
	CHECK_EQ(pg[0], 4); /* history 200 */
	free(pg);
	CHECK_EQ(dcres_plan_pages(&p, 1, 1, &pg, &n), 0);
	CHECK_EQ(n, 0);
	free(pg);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
}

/* Sets the byte at off of the plan file at path to v and rewrites the CRC. */
static void poke(const char *path, off_t off, uint8_t v)
{
	off_t len = test_file_size(path);
	uint8_t *b = malloc((size_t)len);
	int fd = open(path, O_RDWR);

	CHECK(b && fd >= 0 && pread(fd, b, (size_t)len, 0) == len);
	b[off] = v;
	put_be32(b + len - 4, dcres_crc32c(0, b, (size_t)len - 4));
	CHECK(pwrite(fd, b, (size_t)len, 0) == len);
	close(fd);
	free(b);
}

/* Expects reading path to fail with ret and an err naming it and saying s. */
static void read_fails(const char *path, int ret, const char *s)
{
	struct dcres_plan q;

	err[0] = 0;
	CHECK_EQ(dcres_plan_read(path, &q, err, sizeof(err)), ret);
	if (strncmp(err, path, strlen(path)) || !strstr(err, s)) {
		fprintf(stderr, "err '%s', want '%s: ...%s...'\n", err, path, s);
		exit(1);
	}
	CHECK(q.target == NULL && q.ckpt_dir == NULL);
}

/* Round trip, mode, corruption, truncation and bad values of plan files. */
static void test_file(const char *dir)
{
	static const uint8_t hosts[] = { 0, 1, 0xff, 2 };
	static const uint8_t hot[] = { 1, 2, 3, 250, 7 };
	struct dcres_plan_target tg[3] = { { 20, 0 }, { 20, 1 }, { 20, 0 } };
	char *path = test_path(dir, "restore.plan");
	size_t hdr = 32 + strlen(DIR) + 280;
	struct dcres_loctable t;
	struct dcres_plan p, q;
	struct stat sb;
	uint8_t saved;
	off_t len;

	make_table(&t, 60, hosts, 4, hot, 5);
	plan(&t, tg, 3, &p);
	CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	len = sb.st_size;
	CHECK_EQ(len, hdr + 3 * 60 + 4);
	CHECK_EQ(dcres_plan_read(path, &q, err, sizeof(err)), 0);
	CHECK_EQ(q.npages, p.npages);
	CHECK_EQ(q.page_size, p.page_size);
	CHECK_EQ(q.nsubs, p.nsubs);
	CHECK(strcmp(q.ckpt_dir, p.ckpt_dir) == 0);
	CHECK(memcmp(&q.main_file, &p.main_file, sizeof(q.main_file)) == 0);
	CHECK(memcmp(q.target, p.target, 60) == 0);
	CHECK(memcmp(q.source, p.source, 60) == 0);
	CHECK(memcmp(q.history, p.history, 60) == 0);
	dcres_plan_free(&q);

	for (off_t off = 0; off < len; off++) { /* any flipped byte */
		test_flip_byte(path, off);
		err[0] = 0;
		if (dcres_plan_read(path, &q, err, sizeof(err)) >= 0 ||
		    strncmp(err, path, strlen(path))) {
			fprintf(stderr, "flipped byte %lld: err '%s'\n", (long long)off, err);
			exit(1);
		}
		test_flip_byte(path, off);
	}
	CHECK_EQ(dcres_plan_read(path, &q, err, sizeof(err)), 0);
	dcres_plan_free(&q);

	/* Bad values under a good CRC. */
	poke(path, (off_t)hdr + 1, 3); /* page 1 to sub-host 3 of 2 */
	read_fails(path, -EINVAL, "page 1: target 3, but the plan has 2 sub-hosts");
	CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
	poke(path, (off_t)hdr + 60 + 2, 0); /* zero page 2 from the main host */
	read_fails(path, -EINVAL, "page 2: target 255 but source 0");
	saved = p.target[5]; /* and write refuses such plans */
	p.target[5] = 3;
	CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "page 5: target 3") != NULL);
	p.target[5] = saved;

	/* A plan declaring 8 KiB or 1 MiB pages, CRC right, is refused. */
	for (uint32_t ps = 8192; ps <= (1u << 20); ps <<= 7) {
		CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
		test_set_page_size(path, ps);
		read_fails(path, -ENOTSUP, "page size");
	}

	/* Truncated, trailing bytes, not a plan. */
	CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
	for (off_t cut = len - 1; cut >= 0; cut = cut > 40 ? cut - 37 : cut - 1) {
		CHECK(truncate(path, cut) == 0);
		read_fails(path, -EIO, "truncated");
		CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
	}
	CHECK(truncate(path, len + 1) == 0);
	read_fails(path, -EINVAL, "trailing bytes");
	test_flip_byte(path, 3);
	read_fails(path, -EINVAL, "bad magic");
	CHECK(unlink(path) == 0);
	read_fails(path, -ENOENT, "cannot read");
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
	free(path);
}

/* A 4 GiB guest: 1M pages over main and three sub-hosts. */
static void test_large(const char *dir)
{
	static const uint8_t hosts[] = { 0, 1, 2, 3, 0xff, 0, 1, 2 };
	struct dcres_plan_target tg[4] = { { 300000, 0 }, { 300000, 1 }, { 300000, 2 },
					   { 300000, 0 } };
	char *path = test_path(dir, "large.plan");
	uint64_t seed = 7, *pg, n;
	struct dcres_loctable t;
	struct dcres_plan p, q;
	struct timespec a, b;

	make_table(&t, 1u << 20, hosts, 8, NULL, 1);
	for (uint64_t i = 0; i < t.npages; i++)
		t.history[i] = (uint8_t)lcg(&seed);
	clock_gettime(CLOCK_MONOTONIC, &a);
	plan(&t, tg, 4, &p);
	clock_gettime(CLOCK_MONOTONIC, &b);
	fprintf(stderr, "  1M pages planned in %.1f ms, %llu moved\n",
		(double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6,
		(unsigned long long)dcres_plan_moved(&p, tg));
	CHECK_EQ(dcres_plan_count(&p, 0), 300000);
	CHECK_EQ(dcres_plan_pages(&p, 0, 1, &pg, &n), 0);
	CHECK_EQ(n, 300000);
	free(pg);
	CHECK_EQ(dcres_plan_write(path, &p, err, sizeof(err)), 0);
	CHECK_EQ(dcres_plan_read(path, &q, err, sizeof(err)), 0);
	CHECK(memcmp(q.target, p.target, p.npages) == 0);
	dcres_plan_free(&q);
	dcres_plan_free(&p);
	dcres_loctable_free(&t);
	free(path);
}

int main(void)
{
	const char *dir = test_tmpdir("/var/tmp");

	test_same_hosts();
	test_fewer_subs();
	test_more_subs();
	test_single_host();
	test_hottest_on_main();
	test_infeasible();
	test_bad_targets();
	test_moved();
	test_pages();
	test_file(dir);
	test_large(dir);
	printf("plan: ok\n");
	return 0;
}
