/* A chain made one full D-CRES checkpoint (dcres/ckptchain.h). */
#define _GNU_SOURCE
#include "dcres/ckptchain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/mainpresence.h"

/* Writes out_dir/main.loc: the newest layer's table, every written page on
 * the main host, no servers' parts, the same id, no parent; *t (freed by
 * the caller, even on failure) is the table written. */
static int write_loc(const struct ckptdir *top, const char *out_dir, struct dcres_loctable *t)
{
	char path[PATH_MAX];
	int ret;

	if (snprintf(path, sizeof(path), "%s/main.loc", out_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	ret = dcres_loctable_init(t, top->loc.npages, top->loc.page_size);
	if (ret)
		return ret;
	for (uint64_t p = 0; p < t->npages; p++)
		t->host[p] = top->loc.host[p] == DCRES_LOC_ZERO ? DCRES_LOC_ZERO : DCRES_LOC_MAIN;
	memcpy(t->history, top->loc.history, t->npages);
	t->main_file = top->loc.main_file;
	memcpy(t->ckpt_id, top->loc.ckpt_id, 16);
	return dcres_loctable_write(path, t);
}

/* Writes out_dir/main.present for the merged main.mem (open as mr) and
 * its table t: every page it holds. */
static int write_present(struct dcres_mrfile *mr, const struct dcres_loctable *t,
			 const char *out_dir)
{
	struct dcres_presence p;
	char path[PATH_MAX];
	int ret;

	if (snprintf(path, sizeof(path), "%s/" DCRES_MAIN_PRESENT_NAME, out_dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	ret = dcres_main_presence_build(mr, t, &p);
	if (ret)
		return ret;
	ret = dcres_presence_write(path, &p);
	dcres_presence_free(&p);
	return ret;
}

/* Adds out_dir/name's size and CRC to m (f and sum are the caller's). */
static int add_sum(Dcres__Manifest *m, Dcres__FileSum *f, Dcres__FileSum **ptr,
		   const char *out_dir, char *name)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", out_dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	dcres__file_sum__init(f);
	f->name = name;
	f->has_size = f->has_crc32c = true;
	*ptr = f;
	m->n_files++;
	return dcres_file_checksum(path, &f->size, &f->crc32c);
}

/* Writes out_dir/manifest: the newest layer's, for a full checkpoint
 * whose pages are all in main.mem (main_pages of them). */
static int write_manifest(const struct ckptchain *ch, const char *out_dir, uint64_t main_pages)
{
	const Dcres__Manifest *old = ch->layer[0].manifest;
	Dcres__Manifest m = DCRES__MANIFEST__INIT;
	Dcres__HostPart main = DCRES__HOST_PART__INIT, *hosts[1] = { &main };
	Dcres__FileSum files[3], *file_ptrs[3];
	char path[PATH_MAX];
	uint64_t size;
	int ret;

	if (snprintf(path, sizeof(path), "%s/manifest", ch->dir[0]) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	ret = dcres_file_checksum(path, &size, &m.replaces_manifest_crc);
	if (ret)
		return ret;
	m.has_replaces_manifest_crc = true;
	m.has_version = old->has_version;
	m.version = old->version;
	m.has_vm_uuid = old->has_vm_uuid;
	m.vm_uuid = old->vm_uuid;
	m.has_ram_size = old->has_ram_size;
	m.ram_size = old->ram_size;
	m.has_page_size = old->has_page_size;
	m.page_size = old->page_size;
	m.qemu_version = old->qemu_version;
	m.disk_snapshot = old->disk_snapshot;
	m.has_created_unix = old->has_created_unix;
	m.created_unix = old->created_unix;
	m.has_live = old->has_live;
	m.live = old->live;
	m.n_disk_files = old->n_disk_files;
	m.disk_files = old->disk_files;
	m.has_checkpoint_id = old->has_checkpoint_id;
	m.checkpoint_id = old->checkpoint_id;
	m.loc_file = "main.loc";
	main.has_id = main.has_pages = true;
	main.address = "main";
	main.mem_file = "main.mem";
	main.present_file = DCRES_MAIN_PRESENT_NAME;
	main.pages = main_pages;
	m.n_hosts = 1;
	m.hosts = hosts;
	m.files = file_ptrs;
	ret = add_sum(&m, &files[0], &file_ptrs[0], out_dir, "main.mem");
	if (!ret)
		ret = add_sum(&m, &files[1], &file_ptrs[1], out_dir, "main.loc");
	if (!ret)
		ret = add_sum(&m, &files[2], &file_ptrs[2], out_dir, DCRES_MAIN_PRESENT_NAME);
	if (!ret)
		ret = dcres_manifest_write(out_dir, &m);
	return ret;
}

int ckptchain_flatten(struct ckptchain *ch, const char *out_dir)
{
	char path[PATH_MAX];
	struct dcres_mrfile mr = { .fd = -1 };
	struct dcres_loctable t = { 0 };
	int ret;

	if (mkdir(out_dir, 0700) < 0) {
		ret = -errno;
		pr_perror("create %s (a flattened chain goes into a new directory)", out_dir);
		return ret;
	}
	ret = snprintf(path, sizeof(path), "%s/main.mem", out_dir) < (int)sizeof(path)
		? ckptchain_merge(ch, path) : -ENAMETOOLONG;
	if (!ret)
		ret = dcres_mrfile_open(path, &ch->layer[0].loc.main_file, false, &mr);
	if (!ret)
		ret = write_loc(&ch->layer[0], out_dir, &t);
	if (!ret)
		ret = write_present(&mr, &t, out_dir);
	if (!ret)
		ret = write_manifest(ch, out_dir, dcres_mrfile_count(&mr));
	dcres_mrfile_close(&mr);
	dcres_loctable_free(&t);
	if (ret) /* not a checkpoint: nothing of it stays */
		ckptchain_remove_flat(out_dir);
	return ret;
}

int ckptchain_remove_flat(const char *out_dir)
{
	static const char *const names[] = { DCRES_MANIFEST_NAME, "main.mem", "main.loc",
					     DCRES_MAIN_PRESENT_NAME };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (snprintf(path, sizeof(path), "%s/%s", out_dir, names[i]) < (int)sizeof(path))
			unlink(path);
	if (rmdir(out_dir) < 0 && errno != ENOENT) {
		int ret = -errno;
		pr_perror("remove %s", out_dir);
		return ret;
	}
	return 0;
}
