/* Internals of libdcres-pager shared by its files: pager.c (public calls),
 * fault.c (the fault thread), evict.c (eviction under the local limit) and
 * servers.c (connections to the memory servers, loss and reconnection).
 * Only the fault thread talks to the servers and changes the table; other
 * threads read it, pin pages and note accesses. */
#ifndef DCRES_PAGER_INTERNAL_H
#define DCRES_PAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dcres/memclient.h"
#include "dcres/pager.h"
#include "dcres/wire.h"

#define PAGER_LAT_SAMPLES 4096   /* ring of recent page-in service times */
#define PAGER_EVICT_BATCH 64     /* pages sent to a memory server per page-out */
#define PAGER_HISTORY_SEEN 0x80  /* history bit set by an access */
#define PAGER_RECONNECT_MS 1000  /* between attempts to reach a lost server */

/* One memory server as the fault thread sees it. */
struct pager_server {
	char *addr;                     /* "HOST:PORT" */
	struct dcres_memclient *client; /* NULL while lost */
	_Atomic bool up;
	bool reported_lost;             /* on_server told it lost, not yet back */
	uint64_t free_pages;            /* pages it can still take */
	_Atomic uint64_t pages;         /* table entries pointing at it */
	uint64_t *doubtful;             /* pages of a page-out whose answer was lost */
	size_t ndoubtful;
	_Atomic uint64_t restore_pending; /* its lazy restore's pages not loaded yet */
	_Atomic uint64_t restore_bad;   /* of those, failed their check */
};

struct dcres_pager {
	uint8_t *base;
	uint64_t npages;
	size_t size;
	uint8_t vm_uuid[16];
	struct dcres_psk psk;
	int timeout_ms;
	void (*on_server)(void *opaque, unsigned server, bool up);
	void (*on_page_error)(void *opaque, uint64_t page, const char *why);
	void *opaque;
	pthread_mutex_t watch_lock;     /* with watch_fn: dcres_pager_watch_moves;
					 * held through each page-in */
	pthread_cond_t pageins_go;      /* with watch_lock: pageins_held cleared */
	bool pageins_held;              /* dcres_pager_hold_page_ins */
	dcres_pager_move_fn watch_fn;
	void *watch_opaque;

	_Atomic uint8_t *loc;           /* network page table */
	_Atomic uint8_t *history;       /* aged access history per page */
	_Atomic uint64_t *touched;      /* bitmap: faulted in or noted since the
					 * last dcres_pager_take_touched */
	struct pager_server *servers;   /* servers[k - 1] is server k */
	unsigned nservers, nlost;
	uint64_t last_reconnect_us;
	uint64_t *pending;              /* faults waiting for a lost server */
	_Atomic size_t npending;
	size_t pending_cap;

	int uffd, stop_fd, kick_fd;     /* kick_fd: new work for the fault thread */
	bool restore_watch;             /* servers may have restored pages loading */
	uint64_t restore_polled_ms;     /* their STATS last asked for */
	pthread_t thread;
	void *buf;                      /* one page, for UFFDIO_COPY */

	uint64_t local_limit;           /* resident pages allowed; 0: no limit */
	_Atomic uint64_t resident;
	uint64_t hand;                  /* CLOCK hand */
	bool evict_wp;                  /* evict by write-protection, not UFFDIO_MOVE */
	uint8_t *staging;               /* PAGER_EVICT_BATCH pages on their way out */
	pthread_mutex_t evict_lock;     /* held while a batch leaves; guards pins */
	_Atomic bool evict_held;        /* dcres_pager_hold_eviction */
	uint8_t *pins;                  /* pin count per page */

	/* Fill (fill.c): pages to load, their order, progress. */
	uint64_t *_Atomic fill_list;
	uint64_t fill_n, fill_next;     /* list length, next entry to load */
	dcres_pager_fetch_fn fill_fetch;
	void *fill_opaque;
	uint8_t *fill_buf;              /* DCRES_PAGER_FILL_BATCH pages */
	_Atomic uint64_t fill_pending, fill_loaded, fill_faults;
	_Atomic uint64_t fill_bad;      /* pending pages whose data failed its check */
	uint64_t *fill_bad_bits;        /* npages bits: those pages */
	_Atomic int fill_error;
	_Atomic bool fill_go;           /* loading in the background allowed */
	pthread_mutex_t fill_lock;      /* with fill_done: dcres_pager_fill_wait */
	pthread_cond_t fill_done;

	pthread_mutex_t stats_lock;
	uint64_t page_ins, zero_fills, page_outs;
	uint32_t lat_us[PAGER_LAT_SAMPLES];
	unsigned nlat;
};

uint64_t pager_now_us(void);
/* Wakes the fault thread to look for new work. */
int pager_kick(struct dcres_pager *p);
/* Marks page touched (dcres_pager_take_touched); any thread. */
void pager_touch(struct dcres_pager *p, uint64_t page);

/* fault.c */
void *pager_fault_main(void *arg);

/* servers.c: asks every server that is up, at most once a second, how
 * many pages its lazy restore has still to load, until none has any. */
void pager_poll_restore(struct dcres_pager *p);
/* Serves the fault on page idx (or queues it while its server is lost). */
int pager_serve_fault(struct dcres_pager *p, uint64_t idx);

/* fill.c */
/* Whether a fill has pages left to load in the background. */
bool pager_fill_active(const struct dcres_pager *p);
/* Loads the next batch of a fill. */
void pager_fill_step(struct dcres_pager *p);
/* Serves a fault on a page a fill has not loaded yet. */
int pager_fill_fault(struct dcres_pager *p, uint64_t idx);
/* Frees the fill's state (the pager is stopping). */
void pager_fill_free(struct dcres_pager *p);

/* evict.c: brings the resident set back under the local limit. */
void pager_enforce_limit(struct dcres_pager *p);
/* A write hit a page write-protected for eviction, which is settled by
 * now: lets the write go on (it faults again if the page left). */
void pager_wp_fault(struct dcres_pager *p, uint64_t idx);

/* servers.c */
/* Connects to server s (0-based) within connect_timeout_ms, fencing off
 * its earlier connection of this VM, and learns its free capacity. */
int pager_server_connect(struct dcres_pager *p, unsigned s, int connect_timeout_ms);
/* Whether a failed request to server s means the server is out of reach
 * (rather than a refusal it answered): the failure came without a
 * reason (dcres_memclient_reason), so no answer came. */
bool pager_server_unreachable(const struct dcres_pager *p, unsigned s, int ret);
/* Marks server s lost: drops its connection and tells the VM layer. */
void pager_server_lost(struct dcres_pager *p, unsigned s);
/* Tries, at most every PAGER_RECONNECT_MS, to reach the lost servers
 * again; a server back gets the faults that waited for it served and the
 * doubtful pages released. */
void pager_reconnect_lost(struct dcres_pager *p);

/* Reports n pages moved from host to host to the watcher, if any (fault
 * thread); the _locked one with the watch lock held. */
void pager_report_moves(struct dcres_pager *p, const uint64_t *pages, size_t n,
			uint8_t from, uint8_t to);
void pager_report_moves_locked(struct dcres_pager *p, const uint64_t *pages, size_t n,
			       uint8_t from, uint8_t to);

#endif
