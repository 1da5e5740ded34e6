/* dcres-merge: checking a chain's pages against their CRCs (merge.h). */
#include "merge.h"

#include "dcres/mainpresence.h"

int merge_verify_pages(struct ckptchain *ch)
{
	for (unsigned l = 0; l < ch->n; l++) {
		struct ckptdir *c = &ch->layer[l];

		if (c->main_pres_ok) {
			int ret = dcres_main_presence_verify(&c->main_pres, &c->main, NULL);
			if (ret)
				return ret;
		}
		for (unsigned i = 0; i < c->nservers; i++) {
			int ret = dcres_presence_verify_pages(&c->servers[i].pres,
							      c->servers[i].mf, NULL);
			if (ret)
				return ret;
		}
	}
	return 0;
}
