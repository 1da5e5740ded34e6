/* The checkpoint, opened (libdcres-ckptdir) and verified before anything
 * is contacted or started (restore.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "restore.h"

#define CAPTURE_LINES 16

/* Lines the format libraries log while the files are checked: shown as
 * they are when the damage cannot be pinned to a page, replaced by one
 * line naming the page when it can. */
static char captured[CAPTURE_LINES][1024];
static unsigned ncaptured;

/* Log sink keeping the first CAPTURE_LINES lines. */
static void capture(enum dcres_log_level level, const char *line)
{
	(void)level;
	if (ncaptured < CAPTURE_LINES)
		snprintf(captured[ncaptured++], sizeof(captured[0]), "%s", line);
}

/* Stops capturing; prints the captured lines when show is true. */
static void capture_end(bool show)
{
	dcres_log_set_sink(NULL);
	for (unsigned i = 0; show && i < ncaptured; i++)
		fprintf(stderr, "%s\n", captured[i]);
	ncaptured = 0;
}

/* Checks the manifest's fields this tool relies on and fills r->uuid and
 * r->ram_size. */
static int check_manifest(struct rst_run *r)
{
	const Dcres__Manifest *m = r->cd.manifest;

	if (!m) {
		pr_err("%s/%s: No such file or directory (a directory without a manifest is "
		       "not a complete checkpoint)", r->dir, DCRES_MANIFEST_NAME);
		return -ENOENT;
	}
	if (!r->cd.have_uuid || !m->has_ram_size || !m->ram_size ||
	    m->ram_size % RST_PAGE_SIZE || (m->has_page_size && m->page_size != RST_PAGE_SIZE)) {
		pr_err("%s/%s: needs a 16-byte VM UUID and a RAM size of whole %u-byte pages",
		       r->dir, DCRES_MANIFEST_NAME, RST_PAGE_SIZE);
		return -EINVAL;
	}
	memcpy(r->uuid, r->cd.uuid, 16);
	dcres_uuid_format(r->uuid, r->uuid_str);
	r->ram_size = m->ram_size;
	return 0;
}

/* Looks, with the presence files' per-page CRCs, for a damaged page in the
 * servers' files; when one is found, logs it ("FILE: page N is corrupted")
 * and returns true. */
static bool find_bad_page(struct rst_run *r)
{
	for (unsigned i = 0; i < r->cd.nservers; i++) {
		struct ckptdir_server *s = &r->cd.servers[i];
		uint64_t bad = 0;

		if (ckptdir_open_server(&r->cd, s) ||
		    dcres_presence_verify_pages(&s->pres, s->mf, &bad) != -EBADMSG)
			continue;
		capture_end(false);
		pr_err("%s: page %llu is corrupted (checksum mismatch)", s->mem_path,
		       (unsigned long long)bad);
		return true;
	}
	return false;
}

/* Verifies the checksums of the files the manifest lists; a damaged
 * server file is searched for the page that is damaged. */
static int verify_files(struct rst_run *r)
{
	int ret;

	ncaptured = 0;
	dcres_log_set_sink(capture);
	ret = dcres_manifest_verify_files(r->dir, r->cd.manifest);
	if (ret == -EBADMSG && find_bad_page(r))
		return ret;
	capture_end(ret != 0);
	return ret;
}

/* Opens every server's files and checks their headers against main.loc
 * (page size, RAM size, host, VM): a file the manifest's checksum cannot
 * fault may still declare a geometry that no reader can use. */
static int check_server_files(struct rst_run *r)
{
	for (unsigned i = 0; i < r->cd.nservers; i++) {
		struct ckptdir_server *s = &r->cd.servers[i];
		int ret = s->ok ? 0 : ckptdir_open_server(&r->cd, s);

		if (ret)
			return ret;
	}
	return 0;
}

/* Whether id is a well-formed QEMU object id (a letter, then letters,
 * digits, '-', '.' and '_'): the restored VM's memory backend must have
 * the id the checkpoint's RAM block had, for QEMU to load main.mem. */
static bool qemu_id_ok(const char *id)
{
	if (!isalpha((unsigned char)*id))
		return false;
	for (; *id; id++)
		if (!isalnum((unsigned char)*id) && !strchr("-._", *id))
			return false;
	return true;
}

int verify_checkpoint(struct rst_run *r)
{
	int ret;

	r->cd.main.fd = -1; /* for verify_close, whatever happens */
	if (!realpath(r->opts.ckpt, r->dir)) {
		ret = -errno;
		pr_perror("%s", r->opts.ckpt);
		r->dir[0] = '\0';
		return ret;
	}
	if ((ret = ckptdir_init(&r->cd, r->dir)) || (ret = ckptdir_load_manifest(&r->cd)) ||
	    (ret = check_manifest(r)) || (ret = ckptdir_open_loc(&r->cd)) ||
	    (ret = ckptdir_find_servers(&r->cd)) || (ret = verify_files(r)) ||
	    (ret = check_server_files(r)))
		return ret;
	if (!qemu_id_ok(r->cd.loc.main_file.block_id)) {
		pr_err("%s: the guest RAM block is '%s', which cannot be the id of the memory "
		       "backend that main.mem is loaded into", r->cd.loc_path,
		       r->cd.loc.main_file.block_id);
		return -EINVAL;
	}
	return ckptdir_open_main(&r->cd);
}

void verify_close(struct rst_run *r)
{
	ckptdir_close(&r->cd);
}
