/* The checkpoint, opened (libdcres-ckptdir) and its main host's files
 * verified before anything is started (restore.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dcres/log.h"
#include "dcres/mainpresence.h"
#include "restore.h"

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

/* Whether file name belongs to a memory server's part. */
static bool server_file(const Dcres__Manifest *m, const char *name)
{
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->id && ((h->mem_file && !strcmp(h->mem_file, name)) ||
			      (h->present_file && !strcmp(h->present_file, name))))
			return true;
	}
	return false;
}

/* The main host's memory file when a lazy restore checks its pages as they
 * load instead: the manifest lists the main host's presence file
 * (main.present) too. NULL otherwise (eager, or an older checkpoint). */
static const char *paged_main_file(const struct rst_run *r)
{
	const Dcres__Manifest *m = r->cd.manifest;

	for (size_t i = 0; r->opts.lazy && i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->has_id && h->id == 0 && h->mem_file && h->present_file &&
		    !strcmp(h->present_file, DCRES_MAIN_PRESENT_NAME) &&
		    dcres_manifest_file(m, h->present_file))
			return h->mem_file;
	}
	return NULL;
}

/* Checks only the size of path (a stat) against f. */
static int check_size(const char *path, const Dcres__FileSum *f)
{
	struct stat sb;
	int ret;

	if (stat(path, &sb) < 0) {
		ret = -errno;
		pr_perror("stat %s", path);
		return ret;
	}
	if ((uint64_t)sb.st_size != f->size) {
		pr_err("%s: %llu bytes; the manifest says %llu bytes (the file is damaged)", path,
		       (unsigned long long)sb.st_size, (unsigned long long)f->size);
		return -EBADMSG;
	}
	return 0;
}

/* Verifies the size and CRC of the main host's files the manifest lists
 * (the servers' files are their servers' to check); in a lazy restore of
 * a checkpoint with main.present, only main.mem's size: each of its pages
 * is checked against main.present as it loads. */
static int verify_main_files(struct rst_run *r, const char *dir)
{
	const Dcres__Manifest *m = r->cd.manifest;
	const char *paged = paged_main_file(r);

	for (size_t i = 0; i < m->n_files; i++) {
		const Dcres__FileSum *f = m->files[i];
		char path[PATH_MAX + 256];
		uint64_t size;
		uint32_t crc;
		int ret;

		if (!f->name || server_file(m, f->name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, f->name);
		if (paged && !strcmp(f->name, paged)) {
			if ((ret = check_size(path, f)))
				return ret;
			pr_info("%s: size checked; its pages are checked against "
				DCRES_MAIN_PRESENT_NAME " as they load (lazy restore)", path);
			continue;
		}
		if ((ret = dcres_file_checksum(path, &size, &crc)))
			return ret;
		if (size != f->size || crc != f->crc32c) {
			pr_err("%s: %llu bytes, CRC-32C %08x; the manifest says %llu bytes, %08x "
			       "(the file is damaged)", path, (unsigned long long)size, crc,
			       (unsigned long long)f->size, f->crc32c);
			return -EBADMSG;
		}
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

uint64_t verify_resident(const struct dcres_loctable *t)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < t->npages; p++)
		n += t->host[p] == DCRES_LOC_MAIN;
	return n;
}

/* Opens dir's manifest into r->cd (after closing what it held) and
 * checks it. */
static int open_manifest(struct rst_run *r, const char *dir)
{
	int ret;

	verify_close(r);
	if ((ret = ckptdir_init(&r->cd, dir)) || (ret = ckptdir_load_manifest(&r->cd)))
		return ret;
	return check_manifest(r);
}

/* With the manifest open: main.loc, the servers' parts it names, the main
 * host's files' checksums (when checksums), main.mem and main.present
 * (when the checkpoint has one). */
static int open_rest(struct rst_run *r, const char *dir, bool checksums)
{
	int ret;

	if ((ret = ckptdir_open_loc(&r->cd)) || (ret = ckptdir_find_servers(&r->cd)) ||
	    (checksums && (ret = verify_main_files(r, dir))))
		return ret;
	if (!qemu_id_ok(r->cd.loc.main_file.block_id)) {
		pr_err("%s: the guest RAM block is '%s', which cannot be the id of the memory "
		       "backend that main.mem is loaded into", r->cd.loc_path,
		       r->cd.loc.main_file.block_id);
		return -EINVAL;
	}
	if ((ret = ckptdir_open_main(&r->cd)))
		return ret;
	return ckptdir_open_main_present(&r->cd);
}

int verify_checkpoint(struct rst_run *r)
{
	int ret = open_manifest(r, r->dir);

	if (ret)
		return ret;
	if (r->cd.manifest->parent) {
		r->increment = true;
		return 0;
	}
	if ((ret = open_rest(r, r->dir, true)))
		return ret;
	r->resident_pages = verify_resident(&r->cd.loc);
	return 0;
}

int verify_open(struct rst_run *r, const char *dir, bool checksums)
{
	int ret = open_manifest(r, dir);

	return ret ? ret : open_rest(r, dir, checksums);
}

void verify_close(struct rst_run *r)
{
	ckptdir_close(&r->cd);
}
