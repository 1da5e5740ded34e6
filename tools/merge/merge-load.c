/* dcres-merge: opening a checkpoint directory and checking that every
 * written page is in exactly one file (merge.h). */
#define _GNU_SOURCE
#include "merge.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dcres/log.h"
#include "dcres/uuid.h"

/* At most this many placement violations are logged one by one. */
#define MAX_REPORTS 20

/* Joins dir and name into out (PATH_MAX bytes); -ENAMETOOLONG naming them. */
static int join(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		pr_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* True when name is a plain file name (no directory part, not . or ..). */
static bool plain_name(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* Reads DIR/manifest into c->manifest when it exists and verifies the
 * checksum of every file it lists; leaves c->manifest NULL without one. */
static int load_manifest(struct merge_ckpt *c)
{
	char path[PATH_MAX];
	struct stat sb;
	int ret;

	ret = join(path, c->dir, DCRES_MANIFEST_NAME);
	if (ret)
		return ret;
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		pr_perror("stat %s", path);
		return ret;
	}
	ret = dcres_manifest_read(c->dir, &c->manifest);
	if (ret)
		return ret;
	return dcres_manifest_verify_files(c->dir, c->manifest);
}

/* Adds server id with its file names (NULL: host-K.mem, host-K.present). */
static int add_server(struct merge_ckpt *c, unsigned id, const char *mem,
		      const char *present, const char *source)
{
	struct merge_server *s;
	char name[32];
	int ret;

	if (id < 1 || id > MERGE_MAX_SERVERS) {
		pr_err("%s: host id %u out of range 1..%u", source, id, MERGE_MAX_SERVERS);
		return -EINVAL;
	}
	if (c->index_of[id] >= 0) {
		pr_err("%s: host %u listed twice", source, id);
		return -EINVAL;
	}
	if ((mem && !plain_name(mem)) || (present && !plain_name(present))) {
		pr_err("%s: host %u: file names must be plain names in the directory",
		       source, id);
		return -EINVAL;
	}
	s = &c->servers[c->nservers];
	s->id = id;
	snprintf(name, sizeof(name), "host-%u.mem", id);
	ret = join(s->mem_path, c->dir, mem ? mem : name);
	snprintf(name, sizeof(name), "host-%u.present", id);
	if (!ret)
		ret = join(s->present_path, c->dir, present ? present : name);
	if (ret)
		return ret;
	c->index_of[id] = (int)c->nservers++;
	return 0;
}

/* Finds the memory servers: the manifest's hosts with id > 0 when there is
 * a manifest, otherwise every host main.loc places a page on and every
 * host-K.present in the directory. Every host main.loc names must be one. */
static int find_servers(struct merge_ckpt *c)
{
	bool used[256] = { false };
	int ret = 0;

	for (uint64_t p = 0; p < c->loc.npages; p++)
		used[c->loc.host[p]] = true;
	if (c->manifest) {
		for (size_t i = 0; i < c->manifest->n_hosts && !ret; i++) {
			const Dcres__HostPart *h = c->manifest->hosts[i];

			if (!h->has_id) {
				pr_err("%s/manifest: host entry %zu has no id", c->dir, i);
				return -EINVAL;
			}
			if (h->id > 0)
				ret = add_server(c, h->id, h->mem_file, h->present_file,
						 "manifest");
		}
	} else {
		DIR *d = opendir(c->dir);
		struct dirent *e;

		if (!d) {
			ret = -errno;
			pr_perror("open directory %s", c->dir);
			return ret;
		}
		while ((e = readdir(d))) {
			unsigned id;
			char again[64];

			if (sscanf(e->d_name, "host-%u.present", &id) == 1 && id >= 1 &&
			    id <= MERGE_MAX_SERVERS &&
			    snprintf(again, sizeof(again), "host-%u.present", id) > 0 &&
			    !strcmp(again, e->d_name))
				used[id] = true;
		}
		closedir(d);
		for (unsigned id = 1; id <= MERGE_MAX_SERVERS && !ret; id++)
			if (used[id])
				ret = add_server(c, id, NULL, NULL, c->dir);
	}
	if (ret)
		return ret;
	for (uint64_t p = 0; p < c->loc.npages; p++) {
		uint8_t h = c->loc.host[p];

		if (h != DCRES_LOC_MAIN && h != DCRES_LOC_ZERO && c->index_of[h] < 0) {
			pr_err("%s: page %llu is placed on host %u, which the manifest "
			       "does not list", c->loc_path, (unsigned long long)p, h);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Checks main.loc's geometry and, with a manifest, that they agree. */
static int check_loc(const struct merge_ckpt *c)
{
	const struct dcres_loctable *t = &c->loc;
	const Dcres__Manifest *m = c->manifest;

	if (t->main_file.used_length != t->npages * t->page_size) {
		pr_err("%s: RAM block '%s' of %llu bytes in main.mem, but %llu pages of "
		       "%u bytes in the table", c->loc_path, t->main_file.block_id,
		       (unsigned long long)t->main_file.used_length,
		       (unsigned long long)t->npages, t->page_size);
		return -EINVAL;
	}
	if (m && ((m->has_ram_size && m->ram_size != t->npages * t->page_size) ||
		  (m->has_page_size && m->page_size != t->page_size))) {
		pr_err("%s: %llu pages of %u bytes, but the manifest says %llu bytes of "
		       "%u-byte pages", c->loc_path, (unsigned long long)t->npages,
		       t->page_size, (unsigned long long)m->ram_size, m->page_size);
		return -EINVAL;
	}
	return 0;
}

/* Opens server s's memory and presence files and checks their headers
 * against main.loc, and the VM UUID against uuid (set from the first
 * server when *have_uuid is false). */
static int open_server(const struct merge_ckpt *c, struct merge_server *s,
		       uint8_t uuid[16], bool *have_uuid)
{
	const struct dcres_memfile_info *info;
	uint64_t ram = c->loc.npages * c->loc.page_size;
	int ret;

	ret = dcres_memfile_open(s->mem_path, &s->mf);
	if (ret)
		return ret;
	info = dcres_memfile_info(s->mf);
	if (info->page_size != c->loc.page_size || info->ram_size != ram ||
	    info->host_id != s->id) {
		pr_err("%s: host %u, %llu bytes of %u-byte pages; %s expects host %u, "
		       "%llu bytes of %u-byte pages", s->mem_path, info->host_id,
		       (unsigned long long)info->ram_size, info->page_size, c->loc_path,
		       s->id, (unsigned long long)ram, c->loc.page_size);
		return -EINVAL;
	}
	if (*have_uuid && memcmp(uuid, info->vm_uuid, 16)) {
		char got[DCRES_UUID_STR_LEN], want[DCRES_UUID_STR_LEN];

		dcres_uuid_format(info->vm_uuid, got);
		dcres_uuid_format(uuid, want);
		pr_err("%s: VM %s, but the checkpoint is of VM %s", s->mem_path, got, want);
		return -EINVAL;
	}
	memcpy(uuid, info->vm_uuid, 16);
	*have_uuid = true;
	ret = dcres_presence_read(s->present_path, &s->pres);
	if (ret)
		return ret;
	if (s->pres.npages != c->loc.npages || s->pres.page_size != c->loc.page_size) {
		pr_err("%s: %llu pages of %u bytes; %s has %llu of %u", s->present_path,
		       (unsigned long long)s->pres.npages, s->pres.page_size, c->loc_path,
		       (unsigned long long)c->loc.npages, c->loc.page_size);
		return -EINVAL;
	}
	s->pages = dcres_presence_count(&s->pres);
	return 0;
}

int merge_open(const char *dir, struct merge_ckpt *c)
{
	const char *loc_name = "main.loc", *main_name = "main.mem";
	bool have_uuid = false;
	uint8_t uuid[16];
	int ret;

	memset(c, 0, sizeof(*c));
	c->dir = dir;
	c->main.fd = -1;
	for (int i = 0; i < 256; i++)
		c->index_of[i] = -1;
	c->servers = calloc(MERGE_MAX_SERVERS, sizeof(*c->servers));
	if (!c->servers)
		return -ENOMEM;

	ret = load_manifest(c);
	if (ret)
		goto err;
	if (c->manifest) {
		const Dcres__Manifest *m = c->manifest;

		if (m->loc_file)
			loc_name = m->loc_file;
		for (size_t i = 0; i < m->n_hosts; i++)
			if (m->hosts[i]->has_id && m->hosts[i]->id == 0 && m->hosts[i]->mem_file)
				main_name = m->hosts[i]->mem_file;
		if (!plain_name(loc_name) || !plain_name(main_name)) {
			pr_err("%s/manifest: file names must be plain names in the directory",
			       dir);
			ret = -EINVAL;
			goto err;
		}
		if (m->has_vm_uuid && m->vm_uuid.len == 16) {
			memcpy(uuid, m->vm_uuid.data, 16);
			have_uuid = true;
		}
	}
	ret = join(c->loc_path, dir, loc_name);
	if (!ret)
		ret = join(c->main_path, dir, main_name);
	if (!ret)
		ret = dcres_loctable_read(c->loc_path, &c->loc);
	if (!ret)
		ret = check_loc(c);
	if (!ret)
		ret = dcres_mrfile_open(c->main_path, &c->loc.main_file, false, &c->main);
	if (ret)
		goto err;
	c->main_pages = dcres_mrfile_count(&c->main);
	ret = find_servers(c);
	for (unsigned i = 0; i < c->nservers && !ret; i++)
		ret = open_server(c, &c->servers[i], uuid, &have_uuid);
	if (ret)
		goto err;
	return 0;
err:
	merge_close(c);
	return ret;
}

void merge_close(struct merge_ckpt *c)
{
	if (c->servers) {
		for (unsigned i = 0; i < c->nservers; i++) {
			dcres_memfile_close(c->servers[i].mf);
			dcres_presence_free(&c->servers[i].pres);
		}
		free(c->servers);
		c->servers = NULL;
	}
	c->nservers = 0;
	if (c->manifest)
		dcres_manifest_free(c->manifest);
	c->manifest = NULL;
	dcres_mrfile_close(&c->main);
	dcres_loctable_free(&c->loc);
}

/* Writes into out (64 bytes) where main.loc places a page: "on the main
 * host", "on host K" or "nowhere (never written)". */
static const char *placement(uint8_t host, char *out)
{
	if (host == DCRES_LOC_MAIN)
		return "on the main host";
	if (host == DCRES_LOC_ZERO)
		return "nowhere (never written)";
	snprintf(out, 64, "on host %u", host);
	return out;
}

int merge_check_placement(const struct merge_ckpt *c, uint64_t *duplicates)
{
	uint64_t violations = 0, dups = 0;
	char where[64];

#define REPORT(...)                                                              \
	do {                                                                     \
		if (violations++ < MAX_REPORTS)                                  \
			pr_err(__VA_ARGS__);                                     \
	} while (0)

	for (uint64_t p = 0; p < c->loc.npages; p++) {
		unsigned long long pg = (unsigned long long)p;
		uint8_t owner = c->loc.host[p];
		bool in_main = dcres_mrfile_test(&c->main, p);
		const char *first = in_main ? c->main_path : NULL;
		unsigned holders = in_main;

		if (in_main && owner != DCRES_LOC_MAIN)
			REPORT("page %llu: %s has it in its bitmap, but %s places it %s", pg,
			       c->main_path, c->loc_path, placement(owner, where));
		for (unsigned i = 0; i < c->nservers; i++) {
			const struct merge_server *s = &c->servers[i];
			bool present = dcres_presence_test(&s->pres, p);

			if (present && ++holders > 1)
				REPORT("page %llu: in more than one file: %s and %s", pg,
				       first, s->present_path);
			if (present && !first)
				first = s->present_path;
			if (present && owner != s->id)
				REPORT("page %llu: %s has it, but %s places it %s", pg,
				       s->present_path, c->loc_path, placement(owner, where));
			if (!present && owner == s->id)
				REPORT("page %llu: %s places it on host %u, but %s lacks it",
				       pg, c->loc_path, s->id, s->present_path);
		}
		dups += holders > 1;
	}
#undef REPORT
	if (violations > MAX_REPORTS)
		pr_err("%s: %llu more placement errors not shown", c->dir,
		       (unsigned long long)(violations - MAX_REPORTS));
	if (duplicates)
		*duplicates = dups;
	return violations ? -EBADMSG : 0;
}

int merge_verify_server_pages(const struct merge_ckpt *c)
{
	for (unsigned i = 0; i < c->nservers; i++) {
		int ret = dcres_presence_verify_pages(&c->servers[i].pres, c->servers[i].mf,
						      NULL);
		if (ret)
			return ret;
	}
	return 0;
}
