/* Restore planner (plan.h): assigns every page of a checkpoint to one host
 * of a target set. O(pages) time; no sorting beyond counting.
 *
 * The rules, applied in this order:
 *  1. Zero pages (never written) stay zero: target and source ZERO.
 *  2. Main host: the non-zero pages ranked with the pages already on the
 *     main host first, then by history descending, then page index
 *     ascending; the first min(capacity, count) of them go to the main
 *     host. So it keeps its own pages, the hottest when it has less room
 *     than before, and takes the hottest others into the room left: a
 *     restore onto the same hosts moves nothing.
 *  3. Stay: in page order, a page from the checkpoint's server K goes to
 *     the sub-host whose same_as is K while that sub-host has room.
 *  4. Spread: the pages still without a host are counted out to the
 *     sub-hosts as if one by one, each to the sub-host with the most free
 *     room (capacity minus the pages planned on it), ties to the lowest
 *     number; unlimited sub-hosts have more room than any limited one and,
 *     among themselves, the one with fewer pages planned has more. This
 *     levels free room (between unlimited hosts, load). The pages are then
 *     handed out in page order: the first q1 to sub-host 1 (q1 its share),
 *     the next q2 to sub-host 2, and so on.
 * The total capacity is checked first, so the spread always fits. */
#include "dcres/plan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plan-internal.h"

#define UNPLACED 0xfe /* target of a page not yet planned (never > 64 subs) */
#define NKEYS 512     /* rank keys of rule 2: on main or not x 256 histories */

/* Rank key of a page in rule 2: smaller keys go to the main host first. */
static unsigned rank_key(uint8_t history, uint8_t source)
{
	return (source != DCRES_PLAN_MAIN) * 256u + (255u - history);
}

/* Checks the target set and ckpt_dir: 0, or -EINVAL with err set. */
static int check_targets(const char *ckpt_dir, const struct dcres_plan_target *targets,
			 unsigned ntargets, char *err, size_t err_len)
{
	if (!ntargets)
		return plan_err(err, err_len, -EINVAL, "plan: no target hosts (a main host is needed)");
	if (ntargets - 1 > DCRES_PLAN_MAX_SUBS)
		return plan_err(err, err_len, -EINVAL, "plan: %u sub-hosts, at most %u supported",
				ntargets - 1, DCRES_PLAN_MAX_SUBS);
	if (!ckpt_dir || ckpt_dir[0] != '/' || strlen(ckpt_dir) > PLAN_DIR_MAX)
		return plan_err(err, err_len, -EINVAL,
				"plan: checkpoint directory '%.200s' is not an absolute path "
				"of at most %d bytes", ckpt_dir ? ckpt_dir : "", PLAN_DIR_MAX);
	for (unsigned h = 1; h < ntargets; h++) {
		unsigned k = targets[h].same_as;

		if (!k)
			continue;
		if (k >= DCRES_LOC_ZERO)
			return plan_err(err, err_len, -EINVAL,
					"plan: sub-host %u: same_as %u is not a server number "
					"(1..%u)", h, k, DCRES_LOC_ZERO - 1);
		for (unsigned g = 1; g < h; g++)
			if (targets[g].same_as == k)
				return plan_err(err, err_len, -EINVAL,
						"plan: sub-hosts %u and %u are both the "
						"checkpoint's server %u", g, h, k);
	}
	return 0;
}

/* Appends printf-style text to buf (size len), truncating. */
static void __attribute__((format(printf, 3, 4)))
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* Checks that n pages fit the targets' total capacity: 0, or -ENOSPC with
 * err "plan: N pages to place, capacity C: main X + sub-host 1 Y = C pages". */
static int check_capacity(uint64_t n, const struct dcres_plan_target *targets,
			  unsigned ntargets, char *err, size_t err_len)
{
	char msg[4096];
	uint64_t total = 0;

	for (unsigned h = 0; h < ntargets; h++) {
		if (targets[h].capacity == DCRES_PLAN_UNLIMITED)
			return 0;
		total += targets[h].capacity;
		if (total < targets[h].capacity)
			return 0; /* more than 2^64 pages: everything fits */
	}
	if (n <= total)
		return 0;
	snprintf(msg, sizeof(msg), "plan: %llu pages to place, capacity %llu: main %llu",
		 (unsigned long long)n, (unsigned long long)total,
		 (unsigned long long)targets[0].capacity);
	for (unsigned h = 1; h < ntargets; h++)
		append(msg, sizeof(msg), " + sub-host %u %llu", h,
		       (unsigned long long)targets[h].capacity);
	if (ntargets > 1)
		append(msg, sizeof(msg), " = %llu", (unsigned long long)total);
	append(msg, sizeof(msg), " pages");
	return plan_err(err, err_len, -ENOSPC, "%s", msg);
}

/* Rule 2: puts the cap highest-ranked non-zero pages on the main host. */
static void plan_main(struct dcres_plan *p, uint64_t cap)
{
	uint64_t count[NKEYS] = { 0 }, left = cap;
	unsigned b;

	for (uint64_t i = 0; i < p->npages; i++)
		if (p->source[i] != DCRES_PLAN_ZERO)
			count[rank_key(p->history[i], p->source[i])]++;
	/* Keys below b go whole; of key b, the first `left` pages in page order. */
	for (b = 0; b < NKEYS && count[b] <= left; b++)
		left -= count[b];
	for (uint64_t i = 0; i < p->npages; i++) {
		unsigned k;

		if (p->source[i] == DCRES_PLAN_ZERO)
			continue;
		k = rank_key(p->history[i], p->source[i]);
		if (k < b) {
			p->target[i] = DCRES_PLAN_MAIN;
		} else if (k == b && left) {
			p->target[i] = DCRES_PLAN_MAIN;
			left--;
		}
	}
}

/* Rule 3: pages of server K stay on the sub-host that is K while it has
 * room; planned[h] counts the pages planned on sub-host h. */
static void plan_stay(struct dcres_plan *p, const struct dcres_plan_target *targets,
		      uint64_t *planned)
{
	uint8_t sub_of[256] = { 0 }; /* server K -> sub-host, 0: none */

	for (unsigned h = 1; h <= p->nsubs; h++)
		if (targets[h].same_as)
			sub_of[targets[h].same_as] = (uint8_t)h;
	for (uint64_t i = 0; i < p->npages; i++) {
		uint8_t h = sub_of[p->source[i]];

		if (p->target[i] == UNPLACED && h && planned[h] < targets[h].capacity) {
			p->target[i] = h;
			planned[h]++;
		}
	}
}

/* Counts m pages out to the sub-hosts h with cand[h], as if one by one to
 * the largest key[h] (ties to the lowest h), each page lowering its host's
 * key by one; adds the shares to quota[]. Keys never go below 0: the
 * caller guarantees enough room. Done by levels, O(nsubs^2). */
static void level(uint64_t *key, const bool *cand, unsigned nsubs, uint64_t m,
		  uint64_t *quota)
{
	while (m) {
		uint64_t top = 0, next = 0, g = 0, f, r;

		for (unsigned h = 1; h <= nsubs; h++)
			if (cand[h] && key[h] > top)
				top = key[h];
		for (unsigned h = 1; h <= nsubs; h++) {
			if (cand[h] && key[h] == top)
				g++;
			else if (cand[h] && key[h] > next)
				next = key[h];
		}
		if (!top)
			return; /* no room: cannot happen after check_capacity */
		if (top - next <= m / g) { /* whole rounds down to the next level */
			f = top - next;
			r = 0;
		} else {                   /* the last rounds: m < g * (top - next) */
			f = m / g;
			r = m % g;
		}
		for (unsigned h = 1; h <= nsubs; h++) {
			if (cand[h] && key[h] == top) {
				uint64_t give = f + (r ? 1 : 0);

				r -= r ? 1 : 0;
				key[h] -= give;
				quota[h] += give;
				m -= give;
			}
		}
	}
}

/* Rule 4: spreads the m unplaced pages over the sub-hosts. */
static void plan_spread(struct dcres_plan *p, const struct dcres_plan_target *targets,
			const uint64_t *planned, uint64_t m)
{
	uint64_t key[DCRES_PLAN_MAX_SUBS + 1] = { 0 }, quota[DCRES_PLAN_MAX_SUBS + 1] = { 0 };
	bool cand[DCRES_PLAN_MAX_SUBS + 1] = { false }, unlimited = false;
	unsigned h = 1;

	for (unsigned s = 1; s <= p->nsubs; s++)
		unlimited |= targets[s].capacity == DCRES_PLAN_UNLIMITED;
	for (unsigned s = 1; s <= p->nsubs; s++) {
		if (unlimited) {
			cand[s] = targets[s].capacity == DCRES_PLAN_UNLIMITED;
			key[s] = UINT64_MAX - planned[s];
		} else {
			cand[s] = true;
			key[s] = targets[s].capacity - planned[s];
		}
	}
	level(key, cand, p->nsubs, m, quota);
	for (uint64_t i = 0; i < p->npages; i++) {
		if (p->target[i] != UNPLACED)
			continue;
		while (h <= p->nsubs && !quota[h])
			h++;
		if (h > p->nsubs)
			break; /* cannot happen: the quotas add up to m */
		p->target[i] = (uint8_t)h;
		quota[h]--;
	}
}

int dcres_plan_make(const struct dcres_loctable *t, const char *ckpt_dir,
		    const struct dcres_plan_target *targets, unsigned ntargets,
		    struct dcres_plan *out, char *err, size_t err_len)
{
	uint64_t nonzero = 0, onmain, unplaced;
	uint64_t planned[DCRES_PLAN_MAX_SUBS + 1] = { 0 };
	size_t alloc = t->npages ? t->npages : 1;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = check_targets(ckpt_dir, targets, ntargets, err, err_len);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < t->npages; i++)
		nonzero += t->host[i] != DCRES_LOC_ZERO;
	ret = check_capacity(nonzero, targets, ntargets, err, err_len);
	if (ret)
		return ret;

	out->target = malloc(alloc);
	out->source = malloc(alloc);
	out->history = malloc(alloc);
	out->ckpt_dir = strdup(ckpt_dir);
	if (!out->target || !out->source || !out->history || !out->ckpt_dir) {
		dcres_plan_free(out);
		return plan_err(err, err_len, -ENOMEM, "plan: out of memory for %llu pages",
				(unsigned long long)t->npages);
	}
	out->npages = t->npages;
	out->page_size = t->page_size;
	out->nsubs = ntargets - 1;
	out->main_file = t->main_file;
	memcpy(out->source, t->host, t->npages);
	memcpy(out->history, t->history, t->npages);
	for (uint64_t i = 0; i < t->npages; i++)
		out->target[i] = t->host[i] == DCRES_LOC_ZERO ? DCRES_PLAN_ZERO : UNPLACED;

	onmain = targets[0].capacity < nonzero ? targets[0].capacity : nonzero;
	plan_main(out, onmain);
	plan_stay(out, targets, planned);
	unplaced = nonzero - onmain;
	for (unsigned h = 1; h < ntargets; h++)
		unplaced -= planned[h];
	if (unplaced)
		plan_spread(out, targets, planned, unplaced);
	return 0;
}

void dcres_plan_free(struct dcres_plan *p)
{
	free(p->target);
	free(p->source);
	free(p->history);
	free(p->ckpt_dir);
	memset(p, 0, sizeof(*p));
}

uint64_t dcres_plan_count(const struct dcres_plan *p, uint8_t h)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < p->npages; i++)
		n += p->target[i] == h;
	return n;
}

uint64_t dcres_plan_moved(const struct dcres_plan *p, const struct dcres_plan_target *targets)
{
	uint64_t moved = 0;

	for (uint64_t i = 0; i < p->npages; i++) {
		uint8_t s = p->source[i], d = p->target[i];

		if (s == DCRES_PLAN_ZERO || d == DCRES_PLAN_ZERO)
			continue;
		if (s == DCRES_PLAN_MAIN)
			moved += d != DCRES_PLAN_MAIN;
		else
			moved += d == DCRES_PLAN_MAIN || targets[d].same_as != s;
	}
	return moved;
}

int dcres_plan_pages(const struct dcres_plan *p, uint8_t h, int hottest_first,
		     uint64_t **out, uint64_t *n)
{
	uint64_t count[256] = { 0 }, pos[256], total = 0, *pages;

	for (uint64_t i = 0; i < p->npages; i++)
		if (p->target[i] == h)
			count[p->history[i]]++;
	for (int v = 255; v >= 0; v--) {
		pos[v] = hottest_first ? total : 0;
		total += count[v];
	}
	pages = malloc((total ? total : 1) * sizeof(*pages));
	if (!pages)
		return -ENOMEM;
	for (uint64_t i = 0, k = 0; i < p->npages; i++)
		if (p->target[i] == h)
			pages[hottest_first ? pos[p->history[i]]++ : k++] = i;
	*out = pages;
	*n = total;
	return 0;
}
