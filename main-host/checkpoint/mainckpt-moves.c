/* The pager's page moves during a checkpoint (mainckpt-internal.h): a page
 * paged in is noted for the caller to save here; a page paged out is
 * handed to cfg.left_main. */
#include <errno.h>
#include <stdlib.h>

#include "mainckpt-internal.h"

/* The pager's move watcher (its fault thread). */
static void on_move(void *opaque, uint64_t page, uint8_t from, uint8_t to)
{
	struct dcres_mainckpt *c = opaque;

	if (!atomic_load(&c->tracking) || page >= c->npages)
		return;
	if (to == DCRES_PAGER_LOCAL)
		atomic_fetch_or(&c->paged_in[page / 64], 1ull << (page % 64));
	else if (from == DCRES_PAGER_LOCAL && c->cfg.left_main)
		c->cfg.left_main(c->cfg.opaque, page);
}

int mainckpt_watch(struct dcres_mainckpt *c)
{
	for (uint64_t w = 0; w < (c->npages + 63) / 64; w++)
		atomic_store(&c->paged_in[w], 0);
	atomic_store(&c->tracking, true);
	int ret = dcres_pager_watch_moves(c->cfg.pager, on_move, c);
	c->watching = ret == 0;
	if (ret)
		atomic_store(&c->tracking, false);
	return ret;
}

void mainckpt_unwatch(struct dcres_mainckpt *c)
{
	atomic_store(&c->tracking, false);
	if (c->watching)
		dcres_pager_watch_moves(c->cfg.pager, NULL, NULL);
	c->watching = false;
}

void dcres_mainckpt_take_paged_in(struct dcres_mainckpt *c,
				  void (*fn)(void *opaque, uint64_t page), void *opaque)
{
	for (uint64_t w = 0; w < (c->npages + 63) / 64; w++) {
		uint64_t bits = atomic_exchange(&c->paged_in[w], 0);

		for (; bits; bits &= bits - 1)
			fn(opaque, w * 64 + (uint64_t)__builtin_ctzll(bits));
	}
}
