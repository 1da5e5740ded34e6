/* libdcres-pager: userfaultfd remote paging of a split-memory VM's RAM.
 *
 * The pager owns a page-aligned anonymous region (QEMU's guest RAM, or any
 * mmap'd region in tests), registered with userfaultfd for missing faults.
 * The network page table says where each page lives: on this host, on
 * memory server K (1..N, in the order of the configuration), or nowhere
 * (never written: it reads as zeros). A fault on a remote page fetches it
 * from its server (which releases it) and installs it atomically with
 * UFFDIO_COPY; a fault on a never-written page installs a zero page.
 *
 * With a local limit, the coldest resident pages (CLOCK over an aged
 * access-history byte per page, set on every fault and access noted) are
 * evicted in batches: taken out of the region atomically with UFFDIO_MOVE
 * (Linux 6.8+) or, on older kernels, write-protected and copied; sent to a
 * memory server with room; dropped once it has acknowledged them. A write
 * racing with an eviction lands before the page is taken or waits until
 * it is settled, and is never lost. Faults and evictions are served by one
 * thread.
 *
 * A memory server that stops answering is "lost": faults on its pages wait
 * (the faulting threads stay blocked, nothing is lost), other faults and
 * evictions go on, and the pager reconnects every second; on its return
 * the waiting faults are served. A page-in or page-out whose answer was
 * lost is settled on reconnection (the server keeps the last page-in for
 * a retry, and earlier connections are fenced off). on_server reports
 * both transitions, back only once the waiting faults are served and the
 * doubtful pages settled.
 *
 * Functions return 0 or a negative errno and log what failed, naming the
 * server or page. */
#ifndef DCRES_PAGER_H
#define DCRES_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"

#define DCRES_PAGER_LOCAL 0x00  /* resident on this host */
#define DCRES_PAGER_ZERO 0xff   /* never written */
#define DCRES_PAGER_FILL 0xfe   /* restored here, not loaded yet (fill) */

struct dcres_pager;

/* A page moved from host to host (DCRES_PAGER_LOCAL or 1..nservers). */
typedef void (*dcres_pager_move_fn)(void *opaque, uint64_t page, uint8_t from, uint8_t to);

struct dcres_pager_config {
	void *base;                /* page-aligned region, private anonymous */
	size_t size;               /* bytes, a multiple of 4096 */
	uint8_t vm_uuid[16];
	const char *const *servers;/* "HOST:PORT" of memory servers 1..nservers */
	unsigned nservers;
	const struct dcres_psk *psk;
	int timeout_ms;            /* per request to a server */
	uint64_t local_limit_pages;/* resident pages allowed here; 0: no limit */
	/* Optional, called from the fault thread (keep it short): server
	 * (1..nservers) lost (up false) or back (up true). */
	void (*on_server)(void *opaque, unsigned server, bool up);
	/* Optional, called from the fault thread: a fault on page cannot be
	 * served, its data having failed its check or its server having
	 * refused it (why names the file or server, and the page); the
	 * faulting thread waits. Again at each such fault. */
	void (*on_page_error)(void *opaque, uint64_t page, const char *why);
	void *opaque;
	bool evict_by_write_protect; /* even where UFFDIO_MOVE exists (tests) */
};

struct dcres_pager_stats {
	uint64_t page_ins;         /* faults served from a memory server */
	uint64_t zero_fills;       /* faults on never-written pages */
	uint64_t page_outs;        /* pages evicted to memory servers */
	uint64_t fault_us_p50, fault_us_p99; /* page-in service time */
	uint64_t local_limit;      /* pages; 0: no limit */
	uint64_t resident;         /* pages resident here */
	uint64_t waiting_faults;   /* faults waiting for a lost server */
	uint64_t fill_loaded;      /* pages a fill loaded so far */
	uint64_t fill_pending;     /* pages a fill has still to load */
	uint64_t fill_faults;      /* of the loaded, those a fault asked for */
	uint64_t fill_bad;         /* of the pending, pages whose data failed its check */
	int fill_error;            /* 0, or the error that stopped the fill */
};

struct dcres_pager_server_info {
	const char *addr;          /* "HOST:PORT", valid while the pager runs */
	uint64_t pages;            /* pages the table places there */
	bool up;                   /* false while lost */
	uint64_t restore_pending;  /* its lazy restore's pages not loaded yet, as
				    * it said at most a second or so ago */
	uint64_t restore_bad;      /* of those, pages that failed their check */
};

/* Connects to every server (failing with a message naming the one that
 * cannot be reached or refuses the key), registers the region and starts
 * the fault thread. Pages already present in the region start local (and
 * count against the limit); the others start as never written. */
int dcres_pager_start(const struct dcres_pager_config *cfg, struct dcres_pager **out);

/* Stops the fault thread, unregisters the region and disconnects. */
void dcres_pager_stop(struct dcres_pager *p);

/* Records that page (not yet touched here) lives on host (1..nservers or
 * DCRES_PAGER_ZERO), e.g. after a restore placed it there. */
int dcres_pager_place(struct dcres_pager *p, uint64_t page, uint8_t host);

/* Sets the access history of every page (npages bytes, e.g. a
 * checkpoint's), before the VM runs. */
void dcres_pager_seed_history(struct dcres_pager *p, const uint8_t *history);

#define DCRES_PAGER_FILL_BATCH 256 /* most pages one fetch asks for */

/* Reads the n pages listed into buf (n * 4096 bytes) for a fill; returns
 * 0 or a negative errno with err (err_len bytes) naming the file and page:
 * -EBADMSG when a page's data failed its check (the page is then never
 * installed: the fill goes on without it). Called on the fault thread. */
typedef int (*dcres_pager_fetch_fn)(void *opaque, const uint64_t *pages, size_t n,
				    void *buf, char *err, size_t err_len);

/* Fill (restore): the n listed pages, never written here so far, become
 * DCRES_PAGER_FILL: a fault on one of them loads it from fetch at once,
 * and once dcres_pager_fill_go is called the fault thread loads the rest
 * between faults, in list order (e.g. hottest first), in batches. Loaded
 * pages are local. A page whose data fails its check (-EBADMSG from fetch)
 * stays pending and is never installed: on_page_error reports it, a fault
 * on it waits, the fill goes on; any other fetch error stops the fill.
 * The list is copied. -EBUSY while another fill runs, -EINVAL for a page
 * out of range or already local or remote. */
int dcres_pager_fill_start(struct dcres_pager *p, const uint64_t *pages, uint64_t n,
			   dcres_pager_fetch_fn fetch, void *opaque);

/* Lets the fill load its pages in the background (e.g. once the VM
 * runs, so that loading its devices is not slowed down). */
int dcres_pager_fill_go(struct dcres_pager *p);

/* Waits until the fill has loaded every page (0), every page left failed
 * its check (-EBADMSG) or the fill stopped on a fetch error (that error);
 * call dcres_pager_fill_go first. A fault on a page the fill could not
 * load waits. */
int dcres_pager_fill_wait(struct dcres_pager *p);

/* Where page lives now. */
uint8_t dcres_pager_location(const struct dcres_pager *p, uint64_t page);

void dcres_pager_get_stats(struct dcres_pager *p, struct dcres_pager_stats *st);

/* Number of memory servers, and what server k (1..n) holds; -EINVAL for
 * another k. */
unsigned dcres_pager_server_count(const struct dcres_pager *p);
int dcres_pager_server_info(const struct dcres_pager *p, unsigned k,
			    struct dcres_pager_server_info *out);

/* Notes an access to page (e.g. found in a dirty-log sync): it counts as
 * hot for eviction, like a fault, and as touched. Any thread. */
void dcres_pager_note_access(struct dcres_pager *p, uint64_t page);

/* ORs into bits (one bit per page) the pages touched since the pager
 * started or since the last call with forget: installed by a fault (from
 * a server or as zeros) or noted (dcres_pager_note_access); with forget,
 * they no longer count as touched. With the dirty log noted, a page not
 * touched since a point is unchanged since then (incremental
 * checkpoints). Any thread. */
void dcres_pager_take_touched(struct dcres_pager *p, uint64_t *bits, bool forget);

/* Keeps a resident page resident until unpinned (e.g. while a checkpoint
 * reads it); pins nest. -ENOENT if the page is not resident. Any thread;
 * may wait for an eviction batch in progress. */
int dcres_pager_pin(struct dcres_pager *p, uint64_t page);
void dcres_pager_unpin(struct dcres_pager *p, uint64_t page);

/* Holds eviction (hold true), returning once a batch in progress has
 * settled, so the table stops changing while nothing faults (a stopped
 * VM); the resident set may exceed the limit meanwhile. hold false lets
 * eviction go on at the next fault. Any thread. */
void dcres_pager_hold_eviction(struct dcres_pager *p, bool hold);

/* Has fn called for every page a page-in or a page-out moves from now on,
 * after the table says so, on the fault thread (keep it short; it must
 * not call the pager). One watcher at a time: -EBUSY if another is set.
 * fn NULL removes the watcher and returns once no call to it runs. An
 * eviction batch is reported before it settles, so once
 * dcres_pager_hold_eviction(p, true) returns no page-out is unreported. */
int dcres_pager_watch_moves(struct dcres_pager *p, dcres_pager_move_fn fn, void *opaque);

/* Holds page-ins (hold true), returning once none is half done: faults
 * on remote pages wait (the fault thread with them) until hold false.
 * With eviction held too, the table and what the servers hold agree and
 * stay put. Any thread; dcres_pager_stop lets them go. */
void dcres_pager_hold_page_ins(struct dcres_pager *p, bool hold);

/* Copies the table entries (location, as dcres_pager_location) and access
 * history of pages first..first+n-1 into loc and history (either may be
 * NULL). Resident pages are those with location DCRES_PAGER_LOCAL. */
int dcres_pager_read_table(const struct dcres_pager *p, uint64_t first, uint64_t n,
			   uint8_t *loc, uint8_t *history);

/* Calls fn for every run of pages first..first+n-1 not resident here (any
 * location but DCRES_PAGER_LOCAL), in order, as the table says while it
 * runs (a page moving meanwhile may or may not count). */
void dcres_pager_for_each_nonresident(const struct dcres_pager *p,
				      void (*fn)(void *opaque, uint64_t first, uint64_t n),
				      void *opaque);

#endif
