/* libdcres-mainckpt: the D-CRES live checkpoint of a split-memory VM, from
 * the main host (DESIGN.md section 5). The caller (the patched QEMU's
 * migration, or a test) saves the pages resident here into main.mem; the
 * library has every memory server save its own pages in parallel, and
 * keeps the two consistent while pages move, so that at the stop point
 * every written page is in exactly one file, with its content then.
 *
 * One dcres_mainckpt per split-memory VM (its pager); checkpoints run one
 * at a time:
 *
 *   begin          every server starts saving its pages into the checkpoint
 *                  directory; the library watches the pager's page moves.
 *   (VM running)   a page paged in has been dropped by its server: the
 *                  caller saves it here (take_paged_in, before each pass
 *                  over its dirty pages); a page paged out leaves main.mem
 *                  (cfg.left_main): its server saves it. pending tells the
 *                  caller's convergence test what the servers still have to
 *                  write; check fails the checkpoint on a lost server.
 *   stop_point     (VM stopped, after the caller's last take_paged_in)
 *                  eviction and page-ins held; a page paged in since the
 *                  last take_paged_in fails it (the checkpoint would miss
 *                  it). It returns at once: in a thread of its own every
 *                  server then fixes its pages (final) and the page table
 *                  is captured, and page-ins go on (faults on remote pages
 *                  wait until then, a round trip). Nothing waits on a
 *                  server or is made durable here: the stop window stays
 *                  short. A final that fails leaves the checkpoint FAILED.
 *   commit         (once the caller's last pass is done, e.g. when the VM
 *                  may run again) eviction resumes; in that thread every
 *                  server makes its files durable, then main.loc is
 *                  published (with each
 *                  server's part: sizes and CRC-32C as the server reported
 *                  them; nothing here reads a server's file). status says
 *                  DURABLE or FAILED.
 *   abort          a checkpoint that did not reach commit: every server
 *                  still reachable drops its partial file.
 *
 * Errors are negative errnos with a message (err) naming the server or
 * page. begin, check, pending, take_paged_in, stop_point, commit and abort
 * are called from one thread; status, server_bytes and check without
 * probe from any. */
#ifndef DCRES_MAINCKPT_H
#define DCRES_MAINCKPT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"
#include "dcres/mappedram.h"
#include "dcres/pager.h"

struct dcres_mainckpt;

struct dcres_mainckpt_config {
	struct dcres_pager *pager; /* the VM's pager: servers, reachability, table */
	uint8_t vm_uuid[16];
	uint64_t ram_size;         /* bytes of the paged guest RAM */
	const struct dcres_psk *psk;
	int timeout_ms;            /* connect and ordinary requests */
	const char *root;          /* the directory the servers' --dir stands for
				    * on this host: they are told the checkpoint
				    * directory relative to it */
	/* While a checkpoint runs, before its stop point: page left this host
	 * (paged out); the caller's copy of it in main.mem no longer counts.
	 * Called on the pager's fault thread; keep it short. */
	void (*left_main)(void *opaque, uint64_t page);
	void *opaque;
};

enum dcres_mainckpt_state {
	DCRES_MAINCKPT_IDLE,       /* no checkpoint yet */
	DCRES_MAINCKPT_RUNNING,    /* begun, before its stop point */
	DCRES_MAINCKPT_STOPPED,    /* past its stop point, not committed yet */
	DCRES_MAINCKPT_COMMITTING, /* being made durable */
	DCRES_MAINCKPT_DURABLE,    /* every file durable, main.loc published */
	DCRES_MAINCKPT_FAILED,     /* failed or aborted: status says why */
};

struct dcres_mainckpt_status {
	enum dcres_mainckpt_state state;
	char dir[PATH_MAX];        /* of the running or last checkpoint */
	char error[512];           /* FAILED: why, naming the server or page */
};

/* Sets up checkpoints of cfg->pager's VM (nothing contacted yet). */
int dcres_mainckpt_new(const struct dcres_mainckpt_config *cfg, struct dcres_mainckpt **out);

/* Aborts a checkpoint that did not reach commit, waits for a commit under
 * way, and frees c (before the pager stops). NULL is a no-op. */
void dcres_mainckpt_free(struct dcres_mainckpt *c);

/* Starts a checkpoint on every server into the directory of main_file
 * (the caller's main.mem; the directory, symlinks resolved, must be
 * below cfg->root). -EBUSY while another runs or commits, or while
 * restored pages are still loading (a pager fill); on failure
 * nothing is left running and err names the directory or server.
 *
 * With parent (NULL: a full checkpoint), incremental: every host saves
 * only the pages that changed since the stop point of the checkpoint of
 * that id, which must be the last one made durable (-ESTALE otherwise,
 * nothing started): the servers the pages they received since, the
 * caller the pages touched since (see dcres_mainckpt_for_each_unchanged).
 * The checkpoint's id and its parent's go into main.loc. */
int dcres_mainckpt_begin(struct dcres_mainckpt *c, const char *main_file,
			 const uint8_t *parent, char *err, size_t err_len);

/* For an incremental checkpoint, after the caller noted the dirty log
 * into the pager (dcres_pager_note_access) at its first pass: calls fn
 * for every run of pages resident here and untouched since the parent's
 * stop point (its chain holds them: the caller leaves them out). Nothing
 * for a full checkpoint. The caller notes the dirty log again right
 * before the stop point. */
void dcres_mainckpt_for_each_unchanged(struct dcres_mainckpt *c,
				       void (*fn)(void *opaque, uint64_t first, uint64_t n),
				       void *opaque);

/* Pages the servers still have to write, as bytes for the caller's
 * estimate of what is left (with exact, asked now; otherwise as last
 * polled). While a server has more than DCRES_MAINCKPT_TAIL_PAGES left,
 * at least DCRES_MAINCKPT_NOT_YET: the stop point should wait for it (the
 * estimate then takes 10 ms, so that a caller looping on it does not
 * spin). */
#define DCRES_MAINCKPT_TAIL_PAGES 1024
#define DCRES_MAINCKPT_NOT_YET (1ull << 40)
uint64_t dcres_mainckpt_pending(struct dcres_mainckpt *c, bool exact);

/* -EIO (err naming it) if a memory server is lost (the pager says so, or,
 * while a checkpoint runs, it stopped answering the checkpoint or, with
 * probe, does not answer now); otherwise 0. While a checkpoint runs, the
 * first such error stays in status as the checkpoint's error. Without
 * probe, from any thread. */
int dcres_mainckpt_check(struct dcres_mainckpt *c, bool probe, char *err, size_t err_len);

/* Calls fn for every page paged in since the last call (its server
 * dropped it: the caller saves it here) and forgets them. */
void dcres_mainckpt_take_paged_in(struct dcres_mainckpt *c,
				  void (*fn)(void *opaque, uint64_t page), void *opaque);

/* The stop point (see above); main_file says where the RAM block lies in
 * main.mem. On failure the checkpoint is FAILED (abort it); after
 * success, commit or abort it. */
int dcres_mainckpt_stop_point(struct dcres_mainckpt *c, const struct dcres_mapped_ram *main_file,
			      char *err, size_t err_len);

/* Starts making a checkpoint past its stop point durable (see above) and
 * returns (a checkpoint whose final failed is aborted instead); -EINVAL
 * when no checkpoint is past its stop point. */
int dcres_mainckpt_commit(struct dcres_mainckpt *c);

/* Waits until a commit under way has ended; 0 if the checkpoint is
 * DURABLE, otherwise a negative errno with err saying why. */
int dcres_mainckpt_wait(struct dcres_mainckpt *c, char *err, size_t err_len);

/* Aborts a checkpoint that did not reach commit (why goes to status
 * unless an error is recorded already), waiting for a final under way;
 * a no-op in another state. */
void dcres_mainckpt_abort(struct dcres_mainckpt *c, const char *why);

void dcres_mainckpt_status(struct dcres_mainckpt *c, struct dcres_mainckpt_status *st);

/* Bytes server k (1..n) has written for the running or last checkpoint
 * (rewrites count), as last polled or as its commit reported. */
uint64_t dcres_mainckpt_server_bytes(struct dcres_mainckpt *c, unsigned k);

#endif
