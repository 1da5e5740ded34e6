/* dcres-merge: opening a checkpoint directory for merging (merge.h). */
#include "merge.h"

int merge_open(const char *dir, struct ckptdir *c)
{
	int ret = ckptdir_init(c, dir);

	if (!ret)
		ret = ckptdir_load_manifest(c);
	if (!ret && c->manifest)
		ret = dcres_manifest_verify_files(dir, c->manifest);
	if (!ret)
		ret = ckptdir_open(c);
	if (ret)
		ckptdir_close(c);
	return ret;
}

int merge_verify_server_pages(const struct ckptdir *c)
{
	for (unsigned i = 0; i < c->nservers; i++) {
		int ret = dcres_presence_verify_pages(&c->servers[i].pres, c->servers[i].mf,
						      NULL);
		if (ret)
			return ret;
	}
	return 0;
}
