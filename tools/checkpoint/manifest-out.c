/* Writing DIR/manifest (proto/manifest.proto) for a completed run: the VM,
 * the hosts and their pages, the size and CRC of every file, and the qcow2
 * images the disk snapshot was taken in (ckpt.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/mainpresence.h"
#include "dcres/manifest.h"

#define MAX_FILES (3 + 2 * CKPT_MAX_SERVERS)

/* Storage for the strings and messages the manifest points to. */
struct manifest_buf {
	Dcres__HostPart hosts[1 + CKPT_MAX_SERVERS];
	Dcres__HostPart *host_ptrs[1 + CKPT_MAX_SERVERS];
	char *replicas[1 + CKPT_MAX_SERVERS][CKPT_MAX_SERVERS];
	char mem_names[CKPT_MAX_SERVERS][32];
	char present_names[CKPT_MAX_SERVERS][32];
	Dcres__FileSum files[MAX_FILES];
	Dcres__FileSum *file_ptrs[MAX_FILES];
	char **disk_files;	/* r->ndisks entries */
	Dcres__ParentRef parent;
	char parent_rel[PATH_MAX];
};

/* The parent's directory as the manifest names it: relative to DIR when
 * both are in one directory ("../NAME"), else absolute. */
static void parent_relative(const struct ckpt_run *r, char *out, size_t len)
{
	const char *ps = strrchr(r->parent_dir, '/'), *ds = strrchr(r->dir, '/');

	if (ps && ds && ps - r->parent_dir == ds - r->dir &&
	    !strncmp(r->parent_dir, r->dir, (size_t)(ps - r->parent_dir)))
		snprintf(out, len, "..%s", ps);
	else
		snprintf(out, len, "%s", r->parent_dir);
}

/* Adds file name with its size and CRC. */
static void add_sum(Dcres__Manifest *m, struct manifest_buf *b, char *name, uint64_t size,
		    uint32_t crc)
{
	Dcres__FileSum *f = &b->files[m->n_files];

	dcres__file_sum__init(f);
	f->name = name;
	f->has_size = f->has_crc32c = true;
	f->size = size;
	f->crc32c = crc;
	b->file_ptrs[m->n_files++] = f;
}

/* Checksums the main host's file name (relative to the directory) into
 * r->main_files, once, and adds it. */
static int add_main_file(struct ckpt_run *r, Dcres__Manifest *m, struct manifest_buf *b,
			 unsigned i, const char *name)
{
	struct ckpt_file_sum *f = &r->main_files[i];
	char path[PATH_MAX];
	int err;

	if (i >= r->nmain_files) {
		snprintf(f->name, sizeof(f->name), "%s", name);
		if (snprintf(path, sizeof(path), "%s/%s", r->dir, name) >= (int)sizeof(path)) {
			pr_err("%s/%s: path too long", r->dir, name);
			return -ENAMETOOLONG;
		}
		err = dcres_file_checksum(path, &f->size, &f->crc);
		if (err) {
			pr_err("%s: cannot checksum it for the manifest", path);
			return err;
		}
		r->nmain_files = i + 1;
	}
	add_sum(m, b, f->name, f->size, f->crc);
	return 0;
}

/* Adds host id with its address, files, page count and the copies of its
 * part made so far. */
static void add_host(const struct ckpt_run *r, Dcres__Manifest *m, struct manifest_buf *b,
		     uint32_t id, const char *address, char *mem_file, char *present_file,
		     uint64_t pages)
{
	Dcres__HostPart *h = &b->hosts[m->n_hosts];

	dcres__host_part__init(h);
	h->has_id = h->has_pages = true;
	h->id = id;
	h->address = (char *)address;
	h->mem_file = mem_file;
	h->present_file = present_file;
	h->pages = pages;
	h->replicas = b->replicas[m->n_hosts];
	for (unsigned i = 0; i < r->nreplicas; i++) {
		const struct ckpt_replica *c = &r->replicas[i];

		if (c->part == id && c->ret == 0)
			h->replicas[h->n_replicas++] = r->parts[c->target - 1].address;
	}
	b->host_ptrs[m->n_hosts++] = h;
}

int manifest_out(struct ckpt_run *r)
{
	Dcres__Manifest m = DCRES__MANIFEST__INIT;
	struct manifest_buf *b = calloc(1, sizeof(*b));
	unsigned nservers = r->dcres_mode ? r->nparts : 0;
	int err;

	if (!b || !(b->disk_files = calloc(r->ndisks + 1, sizeof(char *)))) {
		free(b);
		return -ENOMEM;
	}
	m.has_version = true;
	m.version = DCRES__MANIFEST_VERSION__MANIFEST_VERSION;
	m.has_vm_uuid = true;
	m.vm_uuid.len = sizeof(r->uuid);
	m.vm_uuid.data = r->uuid;
	m.has_ram_size = m.has_page_size = m.has_created_unix = m.has_live = true;
	m.ram_size = r->ram_size;
	m.page_size = CKPT_PAGE_SIZE;
	m.qemu_version = r->qemu_version;
	m.disk_snapshot = r->snapshot[0] ? r->snapshot : NULL;
	m.created_unix = (uint64_t)r->created;
	m.live = r->opts.live;
	m.loc_file = r->dcres_mode ? "main.loc" : NULL;
	m.hosts = b->host_ptrs;
	m.files = b->file_ptrs;
	if (r->dcres_mode) {
		m.has_checkpoint_id = true;
		m.checkpoint_id = (ProtobufCBinaryData){ 16, r->ckpt_id };
	}
	if (r->has_parent) {
		dcres__parent_ref__init(&b->parent);
		b->parent.has_id = b->parent.has_manifest_crc = true;
		b->parent.id = (ProtobufCBinaryData){ 16, r->parent_id };
		b->parent.manifest_crc = r->parent_manifest_crc;
		b->parent.dir = b->parent_rel;
		parent_relative(r, b->parent_rel, sizeof(b->parent_rel));
		m.parent = &b->parent;
	}
	m.disk_files = b->disk_files;
	for (unsigned i = 0; i < r->ndisks; i++)
		if (r->disks[i].snapshotted && r->disks[i].file[0])
			b->disk_files[m.n_disk_files++] = r->disks[i].file;

	add_host(r, &m, b, 0, "main", "main.mem",
		 r->dcres_mode ? DCRES_MAIN_PRESENT_NAME : NULL, r->main_pages);
	err = add_main_file(r, &m, b, 0, "main.mem");
	if (!err && r->dcres_mode)
		err = add_main_file(r, &m, b, 1, "main.loc");
	if (!err && r->dcres_mode)
		err = add_main_file(r, &m, b, 2, DCRES_MAIN_PRESENT_NAME);
	/* The servers' files as their finals described them: never read here. */
	for (unsigned i = 0; !err && i < nservers; i++) {
		const struct dcres_loc_part *p = &r->parts[i];

		snprintf(b->mem_names[i], sizeof(b->mem_names[0]), "host-%u.mem", p->host);
		snprintf(b->present_names[i], sizeof(b->present_names[0]), "host-%u.present",
			 p->host);
		add_host(r, &m, b, p->host, p->address, b->mem_names[i], b->present_names[i],
			 p->pages);
		if (p->has_server_id) {
			Dcres__HostPart *h = &b->hosts[m.n_hosts - 1];

			h->has_server_id = true;
			h->server_id = (ProtobufCBinaryData){ 16, (uint8_t *)p->server_id };
		}
		add_sum(&m, b, b->mem_names[i], p->mem_size, p->mem_crc);
		add_sum(&m, b, b->present_names[i], p->present_size, p->present_crc);
	}
	if (!err)
		err = dcres_manifest_write(r->dir, &m);
	free(b->disk_files);
	free(b);
	return err;
}
