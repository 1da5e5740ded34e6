/* The VMs a memory server holds pages of, keyed by VM UUID, each with its
 * page subtable (guest page index -> arena slot), and the page-out and
 * page-in operations on them.
 *
 * Each VM also retains the data of the pages its most recent page-in
 * returned, so that a retry of that page-in after a lost reply is served
 * again. Retained pages are not held: they count neither in vm->held nor in
 * the used pages, and give way to any page-out or restore that needs their
 * room. Locks: the store's lock before a VM's lock. */
#ifndef DCRES_MEMSERVER_VMSTORE_H
#define DCRES_MEMSERVER_VMSTORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"

struct srv_ckpt;
struct srv_lazy;

struct vm {
	uint8_t uuid[16];
	char name[40];        /* UUID as text, for messages */
	uint64_t npages;      /* guest RAM pages the indices cover */
	uint32_t *slot;       /* npages entries, ARENA_NO_SLOT where not held */
	uint64_t held;        /* pages held */
	/* The pages the most recent page-in returned, ascending, and the
	 * arena slots still holding their data (nretained entries each);
	 * freed by the next page-in or page-out. */
	uint64_t *retained_page;
	uint32_t *retained_slot;
	uint64_t nretained;
	uint64_t page_ins, page_outs;
	uint64_t fence;       /* newest connection attached exclusively */
	/* The fence connection while it is open and attached to this VM: the
	 * main host running the VM (0 if none; the connections it fenced off
	 * no longer count). Its peer name, for messages. */
	uint64_t running;
	char running_peer[96];
	/* For incremental checkpoints: the pages page-outs stored since the
	 * stop point of the VM's last committed checkpoint here, base_id;
	 * has_base false while that is unknown (none yet, or pages restored
	 * or released since). A bitmap of npages bits. */
	uint64_t *since;
	uint8_t base_id[16];
	bool has_base;
	pthread_mutex_t lock; /* guards everything above and ckpt */
	struct srv_ckpt *ckpt;/* running checkpoint, or NULL */
	struct srv_lazy *lazy;/* pages of a lazy restore not loaded yet, or NULL */
	struct vm *next;
};

struct vmstore {
	struct arena *arena;
	pthread_mutex_t lock; /* guards the list */
	struct vm *vms;
	uint32_t count;
	_Atomic uint64_t nretained; /* sum of the VMs' nretained */
	unsigned nloaders;    /* lazy restores' loader threads running (lock) */
	pthread_cond_t loaders_done;
};

void vmstore_init(struct vmstore *s, struct arena *arena);
void vmstore_destroy(struct vmstore *s);

/* Finds the VM uuid or creates it with ram_size bytes of RAM; an existing VM
 * of another size is -EINVAL. *err_msg explains refusals. */
int vmstore_attach(struct vmstore *s, const uint8_t uuid[16], uint64_t ram_size,
		   struct vm **out, char *err_msg, size_t err_len);

/* Connection conn_id (numbered in the order the server accepted them)
 * attaches to vm exclusively: vm_page_in and vm_page_out refuse the VM's
 * exclusive connections accepted before it. An attach arriving late on a
 * connection older than the newest exclusive one (a reconnection attempt
 * its client gave up) fences off nothing but itself. The newest one becomes
 * vm->running (peer names it) until vm_detach. */
void vm_fence(struct vm *vm, uint64_t conn_id, const char *peer);

/* Connection conn_id leaves vm (it closed, or attached to another VM): if
 * it was vm->running, the VM no longer counts as running on a main host. */
void vm_detach(struct vm *vm, uint64_t conn_id);

/* Drops every page vm holds (a lazy restore's pending ones too) and its
 * retained pages, so that a restore can load the VM afresh; *released gets how many held pages were dropped.
 * Refused with -EBUSY, nothing dropped, while a checkpoint of vm runs or a
 * connection other than conn_id is vm->running. */
int vm_release(struct vmstore *s, struct vm *vm, uint64_t conn_id, uint64_t *released,
	       char *err_msg, size_t err_len);

/* epoch: 0 for a connection not attached exclusively, else its conn_id;
 * a fenced-off one is refused with -ESTALE, nothing done. */

/* Stores n pages from data into vm: all or nothing (-ENOSPC when the arena
 * cannot take the pages not yet held; -ERANGE/-EINVAL for bad indices or
 * duplicates). Pages already held are overwritten. Frees vm's retained
 * pages first (the client has moved on), and every VM's if the arena is
 * short of room. */
int vm_page_out(struct vmstore *s, struct vm *vm, uint64_t epoch, const uint64_t *pages,
		const void *data, uint64_t n, char *err_msg, size_t err_len);

/* Copies n pages into out and releases them: all or nothing (-ENOENT names
 * the first page neither held nor retained). A page of a lazy restore not
 * loaded yet is read from its source first (srv-lazy.h); one whose data
 * fails its check is refused (-EBADMSG naming file and page). A page retained by vm's
 * previous page-in is served again from its retained copy: that is the
 * retry of a page-in whose reply was lost. On success the pages of this
 * request become vm's retained pages and the previous ones are freed; a
 * failed page-in leaves them as they were. */
int vm_page_in(struct vmstore *s, struct vm *vm, uint64_t epoch, const uint64_t *pages,
	       void *out, uint64_t n, char *err_msg, size_t err_len);

/* Frees the retained pages of every VM; returns how many there were. */
uint64_t vmstore_drop_retained(struct vmstore *s);

/* Arena pages in use for held pages, retained ones not counted. */
uint64_t vmstore_used_pages(struct vmstore *s);

/* Checks n page indices: in range and pairwise distinct. */
int vm_check_pages(const struct vm *vm, const uint64_t *pages, uint64_t n,
		   char *err_msg, size_t err_len);

#endif
