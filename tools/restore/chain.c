/* A restore of an incremental checkpoint (restore.h): its chain, read
 * from the layers' directories, flattened into a directory of its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dcres/appendf.h"
#include "dcres/ckptchain.h"
#include "dcres/log.h"
#include "restore.h"

#define FLAT_BASE "/var/tmp" /* a disk, not /run's memory: it holds the RAM */

int chain_flatten(struct rst_run *r)
{
	static struct ckptchain ch; /* 64 layers of paths: not on the stack */
	static char servers[RST_MAX_SOURCES * 257];
	struct ckptview_opts remote = { .psk_path = r->opts.psk_path,
					.ckpt_root = r->opts.ckpt_root, .servers = servers };
	int64_t t = rst_now_ms();
	uint64_t duplicates;
	size_t used = 0;
	int ret;

	/* Parts not in a layer's directory come through the servers given
	 * (and those its manifest names), fetched whole. */
	servers[0] = '\0';
	for (unsigned i = 0; i < r->nsources; i++)
		dcres_appendf(servers, sizeof(servers), &used, "%s%s", i ? "," : "",
			      r->sources[i].name);
	ret = ckptchain_open(r->dir, &remote, &ch);
	if (ret)
		return ret;
	ret = ckptchain_check(&ch, &duplicates);
	if (!ret && duplicates) {
		pr_err("%s: %llu pages are in two files of one checkpoint of its chain", r->dir,
		       (unsigned long long)duplicates);
		ret = -EBADMSG;
	}
	r->chain_layers = ch.n;
	r->resident_pages = verify_resident(&ch.layer[0].loc);
	if (!ret) {
		char path[PATH_MAX];

		if (r->opts.flat_dir)
			snprintf(path, sizeof(path), "%s", r->opts.flat_dir);
		else
			snprintf(path, sizeof(path), FLAT_BASE "/dcres-flat-%s", r->uuid_str);
		pr_info("%s is incremental: flattening its chain of %u checkpoints into %s",
			r->dir, ch.n, path);
		/* A new directory: an earlier restore's VM may still read one. */
		ret = ckptchain_flatten(&ch, path);
		if (!ret)
			snprintf(r->flat_dir, sizeof(r->flat_dir), "%s", path);
	}
	ckptchain_close(&ch);
	if (ret) {
		pr_err("%s: its chain could not be read and flattened (nothing released or "
		       "started)", r->dir);
		return ret;
	}
	r->flatten_ms = rst_now_ms() - t;
	return verify_open(r, r->flat_dir, false);
}

void chain_remove(struct rst_run *r)
{
	if (r->flat_dir[0])
		ckptchain_remove_flat(r->flat_dir);
}
