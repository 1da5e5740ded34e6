/* dcres-merge: checking a chain's server pages (merge.h). */
#include "merge.h"

int merge_verify_server_pages(const struct ckptchain *ch)
{
	for (unsigned l = 0; l < ch->n; l++) {
		const struct ckptdir *c = &ch->layer[l];

		for (unsigned i = 0; i < c->nservers; i++) {
			int ret = dcres_presence_verify_pages(&c->servers[i].pres,
							      c->servers[i].mf, NULL);
			if (ret)
				return ret;
		}
	}
	return 0;
}
