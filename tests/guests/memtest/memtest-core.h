/* The memory-verifier loop shared by the bare-metal and Linux guests.
 *
 * The platform supplies the tested regions, a generation table (in guest
 * RAM, so a restored guest checks itself against its own saved state), a
 * clock and a console. mt_run() fills every page, then forever rewrites pages
 * of the hot set at the configured rate while verifying every page (with
 * rest=SEC, after each pass it only rewrites for SEC seconds). It
 * starts with a line naming the hot set's guest-physical pages:
 *   MEMTEST start pages=262144 hot_pages=13107 hot_page=157286 rate=1000
 * and prints one line per verification pass:
 *   MEMTEST pass=17 pages=262144 errors=0 writes=12345
 */
#ifndef DCRES_MEMTEST_CORE_H
#define DCRES_MEMTEST_CORE_H

#include <stdint.h>

#define MT_MAX_REGIONS 32
#define MT_RATE_MAX UINT64_MAX /* rewrite continuously */

struct mt_region {
	uint64_t *addr;      /* first page of the region */
	uint64_t first_page; /* page number stored in that page */
	uint64_t count;      /* pages */
};

struct mt_platform {
	void (*write)(const char *s, unsigned len); /* console output */
	uint64_t (*now_us)(void);                   /* monotonic microseconds */
};

struct mt_config {
	uint64_t rate;      /* pages rewritten per second; 0 none; MT_RATE_MAX */
	unsigned hot_pct;   /* rewrites go to hot_pct% of the pages, */
	unsigned hot_at_pct;/* starting hot_at_pct% into them */
	uint64_t rest_s;    /* seconds of rewrites only after each pass */
	uint64_t tick_ms;   /* print the pages verified so far this often; 0 never */
};

struct mt_state {
	const struct mt_platform *plat;
	struct mt_config cfg;
	struct mt_region regions[MT_MAX_REGIONS];
	unsigned nregions;
	uint64_t npages;
	uint32_t *gens;     /* npages entries, one per tested page */
	uint64_t hot_first, hot_pages;
	uint64_t pass, writes, rng, last_us, credit_us;
	uint64_t verified, next_tick_us; /* pages verified in all; for tick= */
};

/* Parses "hot=PCT", "hotat=PCT", "rate=N|max", "rest=SEC" and "tick=MS"
 * tokens (optionally with PREFIX, e.g. "memtest.") out of a space-separated
 * command line into cfg; unknown tokens are ignored. Defaults: hot=100,
 * hotat=0, rate=1000, rest=0, tick=0 (with tick=MS, a line
 * "MEMTEST tick verified=N" every MS milliseconds gives the pages verified
 * so far: the verifier's throughput). */
void mt_parse_cmdline(struct mt_config *cfg, const char *cmdline,
		      const char *prefix);

/* Runs the verifier on st (regions, npages, gens, plat and cfg set by the
 * caller); never returns. */
void mt_run(struct mt_state *st) __attribute__((noreturn));

/* Writes "MEMTEST " + msg + "\n" to the console (platform-level messages). */
void mt_say(const struct mt_platform *plat, const char *msg);

#endif
