/* The VMs a memory server holds pages of, keyed by VM UUID, each with its
 * page subtable (guest page index -> arena slot), and the page-out and
 * page-in operations on them. */
#ifndef DCRES_MEMSERVER_VMSTORE_H
#define DCRES_MEMSERVER_VMSTORE_H

#include <pthread.h>
#include <stdint.h>

#include "arena.h"

struct srv_ckpt;

struct vm {
	uint8_t uuid[16];
	char name[40];        /* UUID as text, for messages */
	uint64_t npages;      /* guest RAM pages the indices cover */
	uint32_t *slot;       /* npages entries, ARENA_NO_SLOT where not held */
	uint64_t held;        /* pages held */
	uint64_t page_ins, page_outs;
	pthread_mutex_t lock; /* guards everything above and ckpt */
	struct srv_ckpt *ckpt;/* running checkpoint, or NULL */
	struct vm *next;
};

struct vmstore {
	struct arena *arena;
	pthread_mutex_t lock; /* guards the list */
	struct vm *vms;
	uint32_t count;
};

void vmstore_init(struct vmstore *s, struct arena *arena);
void vmstore_destroy(struct vmstore *s);

/* Finds the VM uuid or creates it with ram_size bytes of RAM; an existing VM
 * of another size is -EINVAL. *err_msg explains refusals. */
int vmstore_attach(struct vmstore *s, const uint8_t uuid[16], uint64_t ram_size,
		   struct vm **out, char *err_msg, size_t err_len);

/* Stores n pages from data into vm: all or nothing (-ENOSPC when the arena
 * cannot take the pages not yet held; -ERANGE/-EINVAL for bad indices or
 * duplicates). Pages already held are overwritten. */
int vm_page_out(struct vmstore *s, struct vm *vm, const uint64_t *pages,
		const void *data, uint64_t n, char *err_msg, size_t err_len);

/* Copies n pages into out and releases them: all or nothing (-ENOENT names
 * the first page not held). */
int vm_page_in(struct vmstore *s, struct vm *vm, const uint64_t *pages,
	       void *out, uint64_t n, char *err_msg, size_t err_len);

/* Checks n page indices: in range and pairwise distinct. */
int vm_check_pages(const struct vm *vm, const uint64_t *pages, uint64_t n,
		   char *err_msg, size_t err_len);

#endif
