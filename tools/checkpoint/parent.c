/* The parent of an incremental checkpoint (--parent DIR, --incremental):
 * finding and checking it, telling QEMU, and checking what QEMU made
 * (ckpt.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/manifest.h"
#include "dcres/uuid.h"

bool parent_is_checkpoint(const char *dir)
{
	char path[PATH_MAX];

	return snprintf(path, sizeof(path), "%s/" DCRES_MANIFEST_NAME, dir) < (int)sizeof(path) &&
	       access(path, F_OK) == 0;
}

/* The newest checkpoint (by creation time, then name) in the directory
 * holding r->dir, other than r->dir, into r->parent_dir; -ENOENT if none. */
static int newest_sibling(struct ckpt_run *r)
{
	char copy[PATH_MAX], chain[PATH_MAX], path[PATH_MAX];
	uint64_t best = 0;
	struct dirent *e;
	DIR *d;

	snprintf(copy, sizeof(copy), "%s", r->dir);
	snprintf(chain, sizeof(chain), "%s", dirname(copy));
	d = opendir(chain);
	if (!d) {
		pr_perror("--incremental: the chain directory %s", chain);
		return -errno;
	}
	r->parent_dir[0] = '\0';
	while ((e = readdir(d))) {
		Dcres__Manifest *m;

		if (e->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", chain, e->d_name) >= (int)sizeof(path) ||
		    !strcmp(path, r->dir) || !parent_is_checkpoint(path) || dcres_manifest_read(path, &m))
			continue;
		if (m->created_unix > best ||
		    (m->created_unix == best && strcmp(path, r->parent_dir) > 0)) {
			best = m->created_unix;
			snprintf(r->parent_dir, sizeof(r->parent_dir), "%s", path);
		}
		dcres_manifest_free(m);
	}
	closedir(d);
	if (!r->parent_dir[0]) {
		pr_err("--incremental: no checkpoint in %s to build on: take a full one first",
		       chain);
		return -ENOENT;
	}
	return 0;
}

int parent_find(struct ckpt_run *r)
{
	Dcres__Manifest *m;
	char path[PATH_MAX];
	uint64_t size;
	int err;

	if (!r->opts.parent && !r->opts.incremental)
		return 0;
	if (r->opts.parent && !realpath(r->opts.parent, r->parent_dir)) {
		pr_perror("--parent %s", r->opts.parent);
		return -errno;
	}
	if (!r->opts.parent && (err = newest_sibling(r)))
		return err;
	if ((err = dcres_manifest_read(r->parent_dir, &m)))
		return err; /* logged, naming the file */
	if (!m->has_checkpoint_id || m->checkpoint_id.len != 16 || !m->loc_file) {
		pr_err("%s is not a D-CRES checkpoint of a split VM: no incremental checkpoint "
		       "builds on it", r->parent_dir);
		err = -EINVAL;
	} else if (!m->has_vm_uuid || m->vm_uuid.len != 16 ||
		   memcmp(m->vm_uuid.data, r->uuid, 16)) {
		pr_err("%s is a checkpoint of another VM: no incremental checkpoint of this one "
		       "builds on it", r->parent_dir);
		err = -EINVAL;
	} else {
		memcpy(r->parent_id, m->checkpoint_id.data, 16);
	}
	dcres_manifest_free(m);
	if (!err && snprintf(path, sizeof(path), "%s/" DCRES_MANIFEST_NAME, r->parent_dir) >= (int)sizeof(path))
		err = -ENAMETOOLONG;
	if (!err && (err = dcres_file_checksum(path, &size, &r->parent_manifest_crc)))
		pr_err("%s: cannot checksum it", path);
	if (!err)
		r->has_parent = true;
	return err;
}

int parent_tell_qemu(struct ckpt_run *r)
{
	struct json_object *args;
	char id[DCRES_UUID_STR_LEN], path[300];

	if (!r->has_parent)
		return 0;
	if (!r->split || r->opts.conventional) {
		pr_err("an incremental checkpoint needs a split VM's D-CRES checkpoint (not "
		       "--conventional)");
		return -EINVAL;
	}
	dcres_uuid_format(r->parent_id, id);
	snprintf(path, sizeof(path), "/objects/%s", r->before.id);
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string("ckpt-parent"));
	json_object_object_add(args, "value", json_object_new_string(id));
	return ckpt_qmp(r, "qom-set", args, NULL);
}

int parent_check_loc(struct ckpt_run *r, const struct dcres_loctable *loc)
{
	memcpy(r->ckpt_id, loc->ckpt_id, 16);
	if (loc->has_parent == r->has_parent &&
	    (!r->has_parent || !memcmp(loc->parent_id, r->parent_id, 16)))
		return 0;
	pr_err("%s does not build on %s as asked (QEMU without incremental checkpoints?)",
	       r->loc_path, r->has_parent ? r->parent_dir : "nothing");
	return -EPROTO;
}
