/* qcow2 disks: an internal snapshot taken while the VM is stopped at the
 * checkpoint's stop point, named "dcres-<basename of DIR>" (ckpt.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dcres/log.h"

/* Whether image (an ImageInfo) already has a snapshot called name. */
static bool has_snapshot(struct json_object *image, const char *name)
{
	struct json_object *snaps = dcres_qmp_get_obj(image, "snapshots");

	for (size_t i = 0; snaps && json_object_is_type(snaps, json_type_array) &&
			   i < json_object_array_length(snaps); i++) {
		const char *s = dcres_qmp_get_str(json_object_array_get_idx(snaps, i), "name");

		if (s && !strcmp(s, name))
			return true;
	}
	return false;
}

int disk_find(struct ckpt_run *r)
{
	struct json_object *ret;
	const char *base = strrchr(r->dir, '/');
	size_t n;
	int err;

	if (snprintf(r->snapshot, sizeof(r->snapshot), "dcres-%s",
		     base && base[1] ? base + 1 : r->dir) >= (int)sizeof(r->snapshot)) {
		pr_err("%s: name too long for a disk snapshot name", r->dir);
		return -ENAMETOOLONG;
	}
	err = ckpt_qmp(r, "query-block", NULL, &ret);
	if (err)
		return err;
	n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
	r->disks = calloc(n ? n : 1, sizeof(*r->disks));
	if (!r->disks) {
		json_object_put(ret);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *blk = json_object_array_get_idx(ret, i);
		struct json_object *ins = dcres_qmp_get_obj(blk, "inserted");
		struct json_object *image = dcres_qmp_get_obj(ins, "image");
		const char *format = dcres_qmp_get_str(image, "format");
		const char *dev = dcres_qmp_get_str(blk, "device"), *file;

		if (!ins || !format || strcmp(format, "qcow2") || dcres_qmp_get_bool(ins, "ro"))
			continue;
		if (!dev || !*dev)
			dev = dcres_qmp_get_str(ins, "node-name");
		if (!dev) {
			pr_err("query-block: a qcow2 disk has neither device nor node name");
			err = -EPROTO;
			break;
		}
		if (has_snapshot(image, r->snapshot)) {
			pr_err("disk %s already has a snapshot named %s (from an earlier "
			       "checkpoint into a directory of that name?); choose another "
			       "directory name or delete the snapshot", dev, r->snapshot);
			err = -EEXIST;
			break;
		}
		file = dcres_qmp_get_str(ins, "file");
		if (!file || !strncmp(file, "json:", 5))
			file = ""; /* not a plain file name: not recorded */
		snprintf(r->disks[r->ndisks].device, sizeof(r->disks[0].device), "%s", dev);
		snprintf(r->disks[r->ndisks++].file, sizeof(r->disks[0].file), "%s", file);
	}
	json_object_put(ret);
	if (!r->ndisks)
		r->snapshot[0] = '\0';
	return err;
}

/* Runs command (blockdev-snapshot-internal-sync or its delete) on disk d. */
static int snapshot_cmd(struct ckpt_run *r, const char *command, const struct ckpt_disk *d)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "device", json_object_new_string(d->device));
	json_object_object_add(args, "name", json_object_new_string(r->snapshot));
	return ckpt_qmp(r, command, args, NULL);
}

int disk_snapshot(struct ckpt_run *r)
{
	struct json_object *args;
	int err;

	if (!r->ndisks)
		return 0;
	/* After the migration QEMU has made its block nodes inactive. */
	args = json_object_new_object();
	json_object_object_add(args, "active", json_object_new_boolean(true));
	err = ckpt_qmp(r, "blockdev-set-active", args, NULL);
	if (err)
		return err;
	for (unsigned i = 0; i < r->ndisks; i++) {
		err = snapshot_cmd(r, "blockdev-snapshot-internal-sync", &r->disks[i]);
		if (err) {
			pr_err("disk %s: cannot take snapshot %s", r->disks[i].device, r->snapshot);
			return err;
		}
		r->disks[i].snapshotted = true;
	}
	return 0;
}

void disk_undo(struct ckpt_run *r)
{
	if (!r->qmp)
		return;
	for (unsigned i = 0; i < r->ndisks; i++) {
		if (!r->disks[i].snapshotted)
			continue;
		if (snapshot_cmd(r, "blockdev-snapshot-delete-internal-sync", &r->disks[i]))
			pr_warn("disk %s keeps snapshot %s", r->disks[i].device, r->snapshot);
		else
			r->disks[i].snapshotted = false;
	}
}
