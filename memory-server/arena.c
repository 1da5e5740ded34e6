#include "arena.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "dcres/log.h"

int arena_init(struct arena *a, uint64_t capacity, bool populate)
{
	a->nslots = capacity / DCRES_PAGE_SIZE;
	if (a->nslots == 0 || a->nslots >= ARENA_NO_SLOT) {
		pr_err("capacity %llu bytes: must be between one page and 16 TiB",
		       (unsigned long long)capacity);
		return -EINVAL;
	}
	a->base = mmap(NULL, a->nslots * DCRES_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
	if (a->base == MAP_FAILED) {
		int err = errno;
		pr_perror("cannot map an arena of %llu pages", (unsigned long long)a->nslots);
		return -err;
	}
	a->free_stack = malloc(a->nslots * sizeof(uint32_t));
	if (!a->free_stack) {
		munmap(a->base, a->nslots * DCRES_PAGE_SIZE);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < a->nslots; i++)
		a->free_stack[i] = (uint32_t)(a->nslots - 1 - i);
	a->nfree = a->nslots;
	pthread_mutex_init(&a->lock, NULL);
	return 0;
}

void arena_destroy(struct arena *a)
{
	munmap(a->base, a->nslots * DCRES_PAGE_SIZE);
	free(a->free_stack);
	pthread_mutex_destroy(&a->lock);
}

int arena_alloc(struct arena *a, uint64_t n, uint32_t *slots)
{
	pthread_mutex_lock(&a->lock);
	if (n > a->nfree) {
		pthread_mutex_unlock(&a->lock);
		return -ENOSPC;
	}
	for (uint64_t i = 0; i < n; i++)
		slots[i] = a->free_stack[--a->nfree];
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void arena_free(struct arena *a, const uint32_t *slots, uint64_t n)
{
	pthread_mutex_lock(&a->lock);
	for (uint64_t i = 0; i < n; i++)
		a->free_stack[a->nfree++] = slots[i];
	pthread_mutex_unlock(&a->lock);
}

uint64_t arena_free_count(struct arena *a)
{
	uint64_t n;

	pthread_mutex_lock(&a->lock);
	n = a->nfree;
	pthread_mutex_unlock(&a->lock);
	return n;
}
