/* The memory server's page arena: capacity / 4096 page slots in one
 * anonymous mapping, handed out and taken back in O(1). Thread-safe. */
#ifndef DCRES_MEMSERVER_ARENA_H
#define DCRES_MEMSERVER_ARENA_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dcres/wire.h"

#define ARENA_NO_SLOT UINT32_MAX

struct arena {
	uint8_t *base;
	uint64_t nslots;
	uint32_t *free_stack; /* slots not in use */
	uint64_t nfree;
	pthread_mutex_t lock;
};

/* Maps capacity bytes (rounded down to pages), populated up front when
 * populate is set, so the server never runs out of host memory later. */
int arena_init(struct arena *a, uint64_t capacity, bool populate);
void arena_destroy(struct arena *a);

/* Takes n slots into slots[], all or none: -ENOSPC when fewer are free. */
int arena_alloc(struct arena *a, uint64_t n, uint32_t *slots);
/* Returns n slots. */
void arena_free(struct arena *a, const uint32_t *slots, uint64_t n);
uint64_t arena_free_count(struct arena *a);

static inline void *arena_page(const struct arena *a, uint32_t slot)
{
	return a->base + (uint64_t)slot * DCRES_PAGE_SIZE;
}

#endif
