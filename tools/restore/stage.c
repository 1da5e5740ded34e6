/* The files QEMU loads this host's pages from (restore.h): RUN/parts,
 * the plan's checkpoint directory. main.mem, main.loc and main.present
 * (when the checkpoint has one) are links to DIR's (an increment's: to its
 * flattened chain's, RUN/flat); a server part the plan takes pages from
 * for this host is a link to DIR's files when DIR has them (a shared
 * directory), otherwise a memory and presence file holding only those
 * pages, which a server with a copy serves (each page's CRC checked
 * there and again by QEMU). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/crc32c.h"
#include "dcres/mainpresence.h"
#include "dcres/presence.h"
#include "restore.h"

#define SERVE_BATCH 4096 /* pages per SERVE: 16 MiB */

/* Links stage/name to name in the directory read: DIR, or the flattened
 * chain (replacing an old link). */
static int link_file(const struct rst_run *r, const char *name)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 32];

	snprintf(to, sizeof(to), "%s/%s", r->cd.dir, name);
	snprintf(from, sizeof(from), "%s/%s", r->stage_dir, name);
	unlink(from);
	if (symlink(to, from) < 0) {
		int err = errno;

		pr_perror("link %s to %s", from, to);
		return -err;
	}
	return 0;
}

/* Removes stage/name, left by an earlier run of a checkpoint that had it. */
static int unlink_stale(const struct rst_run *r, const char *name)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", r->stage_dir, name);
	if (unlink(path) < 0 && errno != ENOENT) {
		int err = errno;

		pr_perror("remove %s", path);
		return -err;
	}
	return 0;
}

/* Writes stage/host-SRC.mem and .present with pages[0..n) of host src's
 * part, as source s serves them. */
static int stage_part(const struct rst_run *r, const struct rst_source *s, unsigned src,
		      const uint64_t *pages, uint64_t n)
{
	struct dcres_memfile_info info = { .ram_size = r->ram_size, .page_size = RST_PAGE_SIZE,
					   .host_id = src };
	char mem[PATH_MAX + 32], present[PATH_MAX + 32];
	struct dcres_memclient *c = NULL;
	struct dcres_memfile *mf = NULL;
	struct dcres_presence p;
	uint8_t *buf = aligned_alloc(RST_PAGE_SIZE, (size_t)SERVE_BATCH * RST_PAGE_SIZE);
	int ret = buf ? dcres_presence_init(&p, r->ram_size / RST_PAGE_SIZE, RST_PAGE_SIZE)
		      : -ENOMEM;

	if (ret) {
		free(buf);
		return ret;
	}
	memcpy(info.vm_uuid, r->uuid, 16);
	snprintf(mem, sizeof(mem), "%s/host-%u.mem", r->stage_dir, src);
	snprintf(present, sizeof(present), "%s/host-%u.present", r->stage_dir, src);
	unlink(mem);
	unlink(present);
	ret = dcres_memfile_create(mem, &info, &mf);
	if (!ret && (ret = dcres_memclient_connect(s->name, &r->psk, RST_CONNECT_MS, &c)) == 0 &&
	    (ret = dcres_memclient_attach(c, r->uuid, r->ram_size)))
		pr_err("memory server %s: %s", s->name, dcres_memclient_error(c));
	for (uint64_t done = 0; !ret && done < n;) {
		uint64_t b = n - done < SERVE_BATCH ? n - done : SERVE_BATCH;

		ret = dcres_memclient_serve(c, r->rel_dir, src, pages + done, buf, b);
		if (ret) {
			pr_err("memory server %s: serving pages of %s/host-%u.mem: %s", s->name,
			       r->rel_dir, src, *dcres_memclient_error(c) ? dcres_memclient_error(c)
									  : strerror(-ret));
			break;
		}
		ret = dcres_memfile_write_pages(mf, pages + done, buf, b);
		for (uint64_t i = 0; !ret && i < b; i++)
			dcres_presence_set(&p, pages[done + i],
					   dcres_crc32c(0, buf + i * RST_PAGE_SIZE, RST_PAGE_SIZE));
		done += b;
	}
	if (!ret)
		ret = dcres_memfile_sync(mf);
	if (!ret)
		ret = dcres_presence_write(present, &p);
	if (!ret)
		pr_info("%llu pages of host %u's part for this host, from memory server %s",
			(unsigned long long)n, src, s->name);
	dcres_memclient_close(c);
	dcres_memfile_close(mf);
	dcres_presence_free(&p);
	free(buf);
	return ret;
}

int locate_stage_main(struct rst_run *r)
{
	uint64_t *pages = NULL, *sel = NULL, n = 0, count[256] = { 0 };
	int ret;

	if (mkdir(r->stage_dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		pr_perror("mkdir %s", r->stage_dir);
		return ret;
	}
	if ((ret = link_file(r, "main.mem")) || (ret = link_file(r, "main.loc")))
		return ret;
	if (r->cd.main_present_path[0])
		ret = link_file(r, DCRES_MAIN_PRESENT_NAME);
	else
		ret = unlink_stale(r, DCRES_MAIN_PRESENT_NAME);
	if (ret)
		return ret;
	ret = dcres_plan_pages(&r->plan, DCRES_PLAN_MAIN, 0, &pages, &n);
	if (!ret && !(sel = malloc((n ? n : 1) * sizeof(*sel))))
		ret = -ENOMEM;
	for (uint64_t i = 0; !ret && i < n; i++)
		count[r->plan.source[pages[i]]]++;
	/* Only the servers this host takes pages from: one pass each. */
	for (unsigned src = 1; !ret && src < DCRES_PLAN_ZERO; src++) {
		const struct rst_source *s;
		uint64_t k = 0;
		char name[32];

		if (!count[src])
			continue;
		for (uint64_t i = 0; i < n; i++)
			if (r->plan.source[pages[i]] == src)
				sel[k++] = pages[i];
		if (r->local[src]) {
			snprintf(name, sizeof(name), "host-%u.mem", src);
			ret = link_file(r, name);
			snprintf(name, sizeof(name), "host-%u.present", src);
			if (!ret)
				ret = link_file(r, name);
		} else if ((s = locate_holder(r, 0, src))) {
			ret = stage_part(r, s, src, sel, k);
		} else {
			pr_err("no memory server holds host %u's part", src);
			ret = -ENOENT;
		}
	}
	free(sel);
	free(pages);
	return ret;
}
