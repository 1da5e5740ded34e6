/* A restore of an incremental checkpoint (restore.h): its chain, read
 * from the layers' directories, flattened into RUN/flat. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dcres/ckptchain.h"
#include "dcres/ckptview.h"
#include "dcres/log.h"
#include "restore.h"

int chain_flatten(struct rst_run *r)
{
	static struct ckptchain ch; /* 64 layers of paths: not on the stack */
	int64_t t = rst_now_ms();
	uint64_t duplicates;
	int ret;

	if (ckptview_needed(r->dir)) {
		pr_err("%s is an incremental checkpoint whose memory servers' parts are not in "
		       "its directory (each host kept its own): dcres-restore reads a chain "
		       "only from the layers' own directories (a shared one)", r->dir);
		return -ENOTSUP;
	}
	ret = ckptchain_open(r->dir, &ch);
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
	if (!ret && snprintf(r->flat_dir, sizeof(r->flat_dir), "%s/flat", r->run_dir) >=
		    (int)sizeof(r->flat_dir))
		ret = -ENAMETOOLONG;
	if (!ret) {
		/* Left by an earlier run of this run directory, whose VM is gone
		 * (setup_run_dir found its QMP socket unanswered). */
		chain_remove(r);
		pr_info("%s is incremental: flattening its chain of %u checkpoints into %s",
			r->dir, ch.n, r->flat_dir);
		ret = ckptchain_flatten(&ch, r->flat_dir);
	}
	ckptchain_close(&ch);
	if (ret) {
		r->flat_dir[0] = '\0';
		pr_err("%s: cannot read its chain (nothing released or started)", r->dir);
		return ret;
	}
	r->flatten_ms = rst_now_ms() - t;
	return verify_open(r, r->flat_dir);
}

void chain_remove(struct rst_run *r)
{
	static const char *const names[] = { DCRES_MANIFEST_NAME, "main.mem", "main.loc" };
	char path[PATH_MAX + 32];

	if (!r->flat_dir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", r->flat_dir, names[i]);
		unlink(path);
	}
	if (rmdir(r->flat_dir) < 0 && errno != ENOENT)
		pr_perror("remove %s, the flattened chain", r->flat_dir);
}
