#include "memtest-core.h"
#include "pattern.h"

#define MT_VERIFY_CHUNK 256u   /* pages verified between rate checks */
#define MT_MAX_BURST 4096u     /* larger debts (a paused VM) are dropped */
#define MT_MAX_ERROR_LINES 8u  /* per pass */

/* A console line under construction. */
struct mt_line {
	char buf[200];
	unsigned len;
};

static void line_str(struct mt_line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void line_u64(struct mt_line *l, uint64_t v)
{
	char tmp[21];
	unsigned n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static void line_kv(struct mt_line *l, const char *key, uint64_t v)
{
	line_str(l, " ");
	line_str(l, key);
	line_str(l, "=");
	line_u64(l, v);
}

static void line_emit(const struct mt_platform *plat, struct mt_line *l)
{
	line_str(l, "\n");
	plat->write(l->buf, l->len);
	l->len = 0;
}

void mt_say(const struct mt_platform *plat, const char *msg)
{
	struct mt_line l = { .len = 0 };

	line_str(&l, "MEMTEST ");
	line_str(&l, msg);
	line_emit(plat, &l);
}

static int starts_with(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static uint64_t parse_u64(const char *s)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

void mt_parse_cmdline(struct mt_config *cfg, const char *s, const char *prefix)
{
	cfg->rate = 1000;
	cfg->hot_pct = 100;
	cfg->hot_at_pct = 0;
	cfg->rest_s = 0;
	cfg->tick_ms = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (starts_with(s, prefix)) {
			const char *t = s;
			for (const char *p = prefix; *p; p++)
				t++;
			if (starts_with(t, "rate=max"))
				cfg->rate = MT_RATE_MAX;
			else if (starts_with(t, "rate="))
				cfg->rate = parse_u64(t + 5);
			else if (starts_with(t, "hotat=")) {
				uint64_t h = parse_u64(t + 6);
				cfg->hot_at_pct = h > 99 ? 99 : (unsigned)h;
			} else if (starts_with(t, "rest=")) {
				cfg->rest_s = parse_u64(t + 5);
			} else if (starts_with(t, "tick=")) {
				cfg->tick_ms = parse_u64(t + 5);
			} else if (starts_with(t, "hot=")) {
				uint64_t h = parse_u64(t + 4);
				cfg->hot_pct = h < 1 ? 1 : h > 100 ? 100 : (unsigned)h;
			}
		}
		while (*s && *s != ' ')
			s++;
	}
}

/* Returns the address of tested page idx. */
static uint64_t *page_addr(const struct mt_state *st, uint64_t idx,
			   uint64_t *page_no)
{
	for (unsigned r = 0; r < st->nregions; r++) {
		if (idx < st->regions[r].count) {
			*page_no = st->regions[r].first_page + idx;
			return st->regions[r].addr + idx * MT_WORDS;
		}
		idx -= st->regions[r].count;
	}
	*page_no = 0;
	return 0;
}

static uint64_t rng_next(struct mt_state *st)
{
	st->rng ^= st->rng << 13;
	st->rng ^= st->rng >> 7;
	st->rng ^= st->rng << 17;
	return st->rng;
}

/* Rewrites one random page of the hot set with its next generation. */
static void rewrite_one(struct mt_state *st)
{
	uint64_t idx = st->hot_first + rng_next(st) % st->hot_pages, page_no;
	uint64_t *p = page_addr(st, idx, &page_no);

	mt_fill_page(p, page_no, ++st->gens[idx]);
	st->writes++;
}

/* Does the rewrites the configured rate owes since the last call. */
static void rewrite_due(struct mt_state *st)
{
	uint64_t n, now;

	if (st->cfg.rate == 0)
		return;
	if (st->cfg.rate == MT_RATE_MAX) {
		n = MT_VERIFY_CHUNK;
	} else {
		now = st->plat->now_us();
		st->credit_us += now - st->last_us;
		st->last_us = now;
		n = st->credit_us * st->cfg.rate / 1000000u;
		if (n > MT_MAX_BURST) {
			n = MT_MAX_BURST;
			st->credit_us = 0;
		} else {
			st->credit_us -= n * 1000000u / st->cfg.rate;
		}
	}
	while (n--)
		rewrite_one(st);
}

static void report_error(struct mt_state *st, uint64_t idx, uint64_t page_no,
			 enum mt_check_result r, unsigned word)
{
	struct mt_line l = { .len = 0 };

	line_str(&l, "MEMTEST error");
	line_kv(&l, "pass", st->pass);
	line_kv(&l, "page", page_no);
	line_kv(&l, "index", idx);
	line_kv(&l, "gen", st->gens[idx]);
	line_str(&l, " kind=");
	line_str(&l, mt_check_name(r));
	if (r == MT_BAD_BODY)
		line_kv(&l, "word", word);
	line_emit(st->plat, &l);
}

/* With tick=MS, prints the pages verified so far once MS have passed. */
static void tick_due(struct mt_state *st)
{
	struct mt_line l = { .len = 0 };
	uint64_t now;

	if (!st->cfg.tick_ms || (now = st->plat->now_us()) < st->next_tick_us)
		return;
	st->next_tick_us = now + st->cfg.tick_ms * 1000u;
	line_str(&l, "MEMTEST tick");
	line_kv(&l, "verified", st->verified);
	line_emit(st->plat, &l);
}

/* Verifies every page once, interleaving the rewrites due; returns errors. */
static uint64_t verify_pass(struct mt_state *st)
{
	uint64_t idx = 0, errors = 0;

	for (unsigned r = 0; r < st->nregions; r++) {
		const struct mt_region *rg = &st->regions[r];
		for (uint64_t i = 0; i < rg->count; i++, idx++) {
			unsigned word = 0;
			enum mt_check_result res =
				mt_check_page(rg->addr + i * MT_WORDS, rg->first_page + i,
					      st->gens[idx], &word);
			if (res != MT_OK && errors++ < MT_MAX_ERROR_LINES)
				report_error(st, idx, rg->first_page + i, res, word);
			st->verified++;
			if (i % MT_VERIFY_CHUNK == MT_VERIFY_CHUNK - 1) {
				rewrite_due(st);
				tick_due(st);
			}
		}
	}
	return errors;
}

/* Only rewrites, verifying nothing, for cfg.rest_s seconds. */
static void rest(struct mt_state *st)
{
	uint64_t until = st->plat->now_us() + st->cfg.rest_s * 1000000u;

	while (st->plat->now_us() < until)
		rewrite_due(st);
}

void mt_run(struct mt_state *st)
{
	struct mt_line l = { .len = 0 };
	uint64_t idx = 0, hot_page;

	st->hot_pages = st->npages * st->cfg.hot_pct / 100;
	if (st->hot_pages == 0)
		st->hot_pages = 1;
	st->hot_first = st->npages * st->cfg.hot_at_pct / 100;
	if (st->hot_first + st->hot_pages > st->npages)
		st->hot_first = st->npages - st->hot_pages;
	st->rng = 0x2545f4914f6cdd1dull;
	line_str(&l, "MEMTEST start");
	line_kv(&l, "pages", st->npages);
	line_kv(&l, "hot_pages", st->hot_pages);
	page_addr(st, st->hot_first, &hot_page);
	line_kv(&l, "hot_page", hot_page);
	if (st->cfg.rate == MT_RATE_MAX)
		line_str(&l, " rate=max");
	else
		line_kv(&l, "rate", st->cfg.rate);
	if (st->cfg.rest_s)
		line_kv(&l, "rest", st->cfg.rest_s);
	line_emit(st->plat, &l);

	for (unsigned r = 0; r < st->nregions; r++)
		for (uint64_t i = 0; i < st->regions[r].count; i++, idx++) {
			st->gens[idx] = 1;
			mt_fill_page(st->regions[r].addr + i * MT_WORDS,
				     st->regions[r].first_page + i, 1);
		}
	mt_say(st->plat, "filled");
	st->last_us = st->plat->now_us();

	for (;;) {
		uint64_t errors = verify_pass(st);

		st->pass++;
		line_str(&l, "MEMTEST");
		line_kv(&l, "pass", st->pass);
		line_kv(&l, "pages", st->npages);
		line_kv(&l, "errors", errors);
		line_kv(&l, "writes", st->writes);
		line_emit(st->plat, &l);
		rest(st);
	}
}
