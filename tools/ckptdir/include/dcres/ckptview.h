/* A checkpoint whose memory servers' parts are not in its directory (each
 * host keeps its own part): a private view directory with links to DIR's
 * own files and copies of the servers' parts, fetched through the memory
 * servers that hold them (the servers given, then those the manifest names
 * as where each part was saved and copied), each checked against the
 * manifest. The offline tools read the view as the checkpoint. Functions
 * return 0 or a negative errno and log one line naming the part and the
 * servers asked. */
#ifndef DCRES_CKPTVIEW_H
#define DCRES_CKPTVIEW_H

#include <limits.h>
#include <stdbool.h>

#include "dcres/auth.h"

#define CKPTVIEW_MAX_SERVERS 64

/* Where the parts come from. */
struct ckptview_opts {
	const char *psk_path;      /* the memory servers' key */
	const char *ckpt_root;     /* what the servers' --dir is here */
	const char *servers;       /* "HOST:PORT,..." to ask first, or NULL */
};

/* One part read through a server. */
struct ckptview_part {
	unsigned id;
	char from[256];            /* the server its copy came from */
	char holders[1024];        /* every server holding a good copy, ", "-separated */
};

struct ckptview {
	char dir[PATH_MAX];        /* the view ("" when DIR has every file) */
	struct ckptview_part parts[CKPTVIEW_MAX_SERVERS];
	unsigned nparts;
};

/* Whether DIR lacks a file its manifest lists for a memory server. */
bool ckptview_needed(const char *dir);

/* Makes the view of DIR (below $TMPDIR or /var/tmp) and fills v. */
int ckptview_open(const char *dir, const struct ckptview_opts *o, struct ckptview *v);

/* Removes the view and what was fetched into it; safe when none was made. */
void ckptview_close(struct ckptview *v);

#endif
