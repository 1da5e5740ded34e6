/* Lazy restores on a memory server: a VM's pages held before their data
 * is here. A lazy RESTORE registers pages, each with its source (host K's
 * files of a checkpoint below --dir, or another server serving its copy
 * of them): their arena slots are taken at once and they count as held.
 * A page-in of a page not loaded yet reads it from its source, its CRC
 * checked, before it is returned; MSG_LOAD starts a thread that loads the
 * others into their slots, in the order they were registered. A page is
 * read into its slot at most once; one whose data fails its check stays
 * pending and is never served (every page-in of it is refused, naming the
 * file and page).
 *
 * Those marked "vm->lock held" are called with it held (from vmstore.c
 * and srv-ckpt.c); the others take it themselves. Functions return 0 or a
 * negative errno with err naming the file, page or peer. */
#ifndef DCRES_MEMSERVER_SRV_LAZY_H
#define DCRES_MEMSERVER_SRV_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"
#include "dcres/wire.pb-c.h"
#include "vmstore.h"

/* Registers pages[0..n) of vm (in range, distinct, none held yet) as
 * pending from host host_id's files of checkpoint rel below base_fd
 * (peer NULL: each page must be in them) or as the server at peer serves
 * them: all or nothing; -ENOSPC when the arena cannot take them, -EBUSY
 * while a checkpoint of vm runs. */
int srv_lazy_add(struct vmstore *s, struct vm *vm, int base_fd, const struct dcres_psk *psk,
		 const char *rel, uint32_t host_id, const char *peer, const uint64_t *pages,
		 uint64_t n, char *err, size_t err_len);

/* Starts loading vm's pending pages in the background (nothing to do
 * when none is pending or the loader runs already). */
int srv_lazy_load(struct vmstore *s, struct vm *vm, char *err, size_t err_len);

/* vm->lock held: reads those of pages[0..n) still pending into their
 * slots, letting the lock go meanwhile (a page loaded or released then is
 * left as it is). A page whose data fails its check is refused (-EBADMSG,
 * err naming file and page), a source out of reach too: nothing changes
 * then. */
int srv_lazy_fill(struct vmstore *s, struct vm *vm, const uint64_t *pages, uint64_t n,
		  char *err, size_t err_len);

/* vm->lock held: page's data arrived otherwise (a page-out): no longer
 * pending. */
void srv_lazy_forget(struct vm *vm, uint64_t page);

/* vm->lock held: pages still pending (0 when none was registered). */
uint64_t srv_lazy_pending(const struct vm *vm);

/* vm->lock held: stops the loader and forgets every pending page (their
 * slots stay in vm->slot for the caller to free). */
void srv_lazy_drop(struct vm *vm);

/* vm->lock held: fills restore_pending and restore_bad of st. */
void srv_lazy_stats(const struct vm *vm, Dcres__Stats *st);

/* Waits until no loader thread of s runs any more (after srv_lazy_drop
 * of every VM), before s is destroyed. */
void srv_lazy_wait_loaders(struct vmstore *s);

#endif
