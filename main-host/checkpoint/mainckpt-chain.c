/* Incremental checkpoints (mainckpt.h): which checkpoint the next one
 * may build on, and which of the main host's pages changed since. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "dcres/log.h"
#include "dcres/mappedram.h"
#include "dcres/memfile.h"
#include "dcres/uuid.h"
#include "mainckpt-internal.h"

/* Words of a bitmap of c's pages. */
static uint64_t words(const struct dcres_mainckpt *c)
{
	return (c->npages + 63) / 64;
}

int mainckpt_chain_begin(struct dcres_mainckpt *c, const uint8_t *parent, char *err,
			 size_t err_len)
{
	char want[DCRES_UUID_STR_LEN], have[DCRES_UUID_STR_LEN];

	if (parent && (!c->has_base || memcmp(c->base_id, parent, 16))) {
		dcres_uuid_format(parent, want);
		dcres_uuid_format(c->base_id, have);
		if (c->has_base)
			snprintf(err, err_len, "the parent checkpoint %s is not this VM's last "
				 "checkpoint (%s): take a full one or build on that", want, have);
		else
			snprintf(err, err_len, "no checkpoint of this VM was made durable since it "
				 "started (or was restored), so none can be the parent %s: take "
				 "a full one", want);
		return -ESTALE;
	}
	if (getrandom(c->id, sizeof(c->id), 0) != sizeof(c->id)) {
		snprintf(err, err_len, "no random checkpoint id: %s", strerror(errno));
		return -errno;
	}
	c->incremental = parent != NULL;
	return 0;
}

void mainckpt_chain_ids(const struct dcres_mainckpt *c, struct dcres_loctable *t)
{
	memcpy(t->ckpt_id, c->id, 16);
	t->has_parent = c->incremental;
	if (c->incremental)
		memcpy(t->parent_id, c->base_id, 16);
}

void mainckpt_chain_stop_point(struct dcres_mainckpt *c)
{
	memset(c->taken, 0, words(c) * sizeof(uint64_t));
	dcres_pager_take_touched(c->cfg.pager, c->taken, true);
}

void mainckpt_chain_end(struct dcres_mainckpt *c, bool durable)
{
	if (durable) {
		memcpy(c->base_id, c->id, 16);
		c->has_base = true;
		memset(c->since_base, 0, words(c) * sizeof(uint64_t));
		return;
	}
	for (uint64_t w = 0; w < words(c); w++)
		c->since_base[w] |= c->taken[w];
}

void dcres_mainckpt_for_each_unchanged(struct dcres_mainckpt *c,
				       void (*fn)(void *opaque, uint64_t first, uint64_t n),
				       void *opaque)
{
	uint64_t first = 0, n = 0;

	if (!c->incremental)
		return;
	memcpy(c->taken, c->since_base, words(c) * sizeof(uint64_t));
	dcres_pager_take_touched(c->cfg.pager, c->taken, false);
	for (uint64_t p = 0; p < c->npages; p++) {
		bool unchanged = !(c->taken[p / 64] >> (p % 64) & 1) &&
				 dcres_pager_location(c->cfg.pager, p) == DCRES_PAGER_LOCAL;
		if (unchanged && n && first + n == p) {
			n++;
			continue;
		}
		if (n)
			fn(opaque, first, n);
		n = unchanged;
		first = p;
	}
	if (n)
		fn(opaque, first, n);
}

/* Whether page p changed since the base: touched before or up to the
 * running checkpoint's stop point. */
static bool changed(const struct dcres_mainckpt *c, uint64_t p)
{
	return ((c->since_base[p / 64] | c->taken[p / 64]) >> (p % 64)) & 1;
}

int mainckpt_chain_write_zeros(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	static const uint8_t zero[DCRES_CKPT_PAGE_SIZE];
	struct dcres_mrfile f = { .fd = -1 };
	uint64_t zeros = 0;
	int ret;

	if (!c->incremental)
		return 0;
	ret = dcres_mrfile_open(c->main_path, &c->table.main_file, true, &f);
	for (uint64_t p = 0; !ret && p < c->npages && p < f.npages; p++) {
		if (c->table.host[p] != DCRES_LOC_MAIN || !changed(c, p) ||
		    dcres_mrfile_test(&f, p))
			continue;
		zeros++;
		ret = dcres_mrfile_write_pages(&f, p, zero, 1);
		dcres_mrfile_set(&f, p);
	}
	if (!ret && zeros)
		ret = dcres_mrfile_write_bitmap(&f);
	dcres_mrfile_close(&f);
	if (ret)
		snprintf(err, err_len, "cannot write the zero pages of the increment into %s: %s",
			 c->main_path, strerror(-ret));
	else if (zeros)
		pr_info("checkpoint into %s: %llu changed pages are zero", c->status.dir,
			(unsigned long long)zeros);
	return ret;
}
