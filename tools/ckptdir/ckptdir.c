/* libdcres-ckptdir: opening a checkpoint directory in steps and checking
 * that every written page is in exactly one file (dcres/ckptdir.h). Moved
 * here from dcres-merge so that dcres-inspect shares it. */
#define _GNU_SOURCE
#include "dcres/ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dcres/log.h"
#include "dcres/mainpresence.h"
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

int ckptdir_init(struct ckptdir *c, const char *dir)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->dir = dir;
	c->main.fd = -1;
	for (int i = 0; i < 256; i++)
		c->index_of[i] = -1;
	c->servers = calloc(CKPTDIR_MAX_SERVERS, sizeof(*c->servers));
	if (!c->servers)
		return -ENOMEM;
	ret = join(c->loc_path, dir, "main.loc");
	if (!ret)
		ret = join(c->main_path, dir, "main.mem");
	return ret;
}

int ckptdir_load_manifest(struct ckptdir *c)
{
	const char *loc_name = "main.loc", *main_name = "main.mem", *present_name = NULL;
	const Dcres__Manifest *m;
	char path[PATH_MAX];
	struct stat sb;
	int ret;

	ret = join(path, c->dir, DCRES_MANIFEST_NAME);
	if (ret)
		return ret;
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT) {
			/* No manifest to say: main.present if the directory has it. */
			ret = join(path, c->dir, DCRES_MAIN_PRESENT_NAME);
			if (!ret && stat(path, &sb) == 0)
				memcpy(c->main_present_path, path, sizeof(path));
			return ret;
		}
		ret = -errno;
		pr_perror("stat %s", path);
		return ret;
	}
	ret = dcres_manifest_read(c->dir, &c->manifest);
	if (ret)
		return ret;
	m = c->manifest;
	if (m->loc_file)
		loc_name = m->loc_file;
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->has_id && h->id == 0 && h->mem_file)
			main_name = h->mem_file;
		if (h->has_id && h->id == 0 && h->present_file)
			present_name = h->present_file;
	}
	if (!plain_name(loc_name) || !plain_name(main_name) ||
	    (present_name && !plain_name(present_name))) {
		pr_err("%s: file names must be plain names in the directory", path);
		return -EINVAL;
	}
	if (m->has_vm_uuid && m->vm_uuid.len == 16) {
		memcpy(c->uuid, m->vm_uuid.data, 16);
		c->have_uuid = true;
	}
	ret = join(c->loc_path, c->dir, loc_name);
	if (!ret)
		ret = join(c->main_path, c->dir, main_name);
	if (!ret && present_name)
		ret = join(c->main_present_path, c->dir, present_name);
	return ret;
}

/* Checks main.loc's geometry and, with a manifest, that they agree. */
static int check_loc(const struct ckptdir *c)
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

int ckptdir_open_loc(struct ckptdir *c)
{
	int ret = dcres_loctable_read(c->loc_path, &c->loc);

	if (!ret)
		ret = check_loc(c);
	c->loc_ok = !ret;
	return ret;
}

int ckptdir_open_main(struct ckptdir *c)
{
	int ret;

	if (!c->loc_ok) {
		pr_err("%s: cannot be checked without %s", c->main_path, c->loc_path);
		return -EINVAL;
	}
	ret = dcres_mrfile_open(c->main_path, &c->loc.main_file, false, &c->main);
	if (ret)
		return ret;
	c->main_pages = dcres_mrfile_count(&c->main);
	c->main_ok = true;
	return 0;
}

/* Checks that main.present lists exactly the pages main.mem holds that
 * main.loc places on the main host; -EBADMSG naming the first that
 * differs. */
static int check_main_present(const struct ckptdir *c)
{
	const struct dcres_presence *p = &c->main_pres;

	if (p->npages != c->loc.npages || p->page_size != c->loc.page_size) {
		pr_err("%s: %llu pages of %u bytes; %s has %llu of %u", c->main_present_path,
		       (unsigned long long)p->npages, p->page_size, c->loc_path,
		       (unsigned long long)c->loc.npages, c->loc.page_size);
		return -EINVAL;
	}
	for (uint64_t pg = 0; pg < p->npages; pg++) {
		bool want = c->loc.host[pg] == DCRES_LOC_MAIN && dcres_mrfile_test(&c->main, pg);

		if (dcres_presence_test(p, pg) == want)
			continue;
		if (want)
			pr_err("%s: page %llu is not in it, but %s holds it for the main host",
			       c->main_present_path, (unsigned long long)pg, c->main_path);
		else
			pr_err("%s: page %llu is in it, but %s does not hold it for the main "
			       "host", c->main_present_path, (unsigned long long)pg, c->main_path);
		return -EBADMSG;
	}
	return 0;
}

int ckptdir_open_main_present(struct ckptdir *c)
{
	int ret;

	if (!c->main_present_path[0])
		return 0; /* a checkpoint made before main.present */
	if (!c->main_ok) {
		pr_err("%s: cannot be checked without %s", c->main_present_path, c->main_path);
		return -EINVAL;
	}
	ret = dcres_presence_read(c->main_present_path, &c->main_pres);
	if (!ret)
		ret = check_main_present(c);
	c->main_pres_ok = !ret;
	return ret;
}

/* Adds server id with its file names (NULL: host-K.mem, host-K.present). */
static int add_server(struct ckptdir *c, unsigned id, const char *mem,
		      const char *present, const char *source)
{
	struct ckptdir_server *s;
	char name[32];
	int ret;

	if (id < 1 || id > CKPTDIR_MAX_SERVERS) {
		pr_err("%s: host id %u out of range 1..%u", source, id, CKPTDIR_MAX_SERVERS);
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

/* Adds the manifest's hosts with id > 0. */
static int servers_from_manifest(struct ckptdir *c)
{
	for (size_t i = 0; i < c->manifest->n_hosts; i++) {
		const Dcres__HostPart *h = c->manifest->hosts[i];
		int ret;

		if (!h->has_id) {
			pr_err("%s/manifest: host entry %zu has no id", c->dir, i);
			return -EINVAL;
		}
		if (h->id == 0)
			continue;
		ret = add_server(c, h->id, h->mem_file, h->present_file, "manifest");
		if (ret)
			return ret;
	}
	return 0;
}

/* Adds every host in used[] and every host-K.present in the directory. */
static int servers_from_dir(struct ckptdir *c, bool used[256])
{
	DIR *d = opendir(c->dir);
	struct dirent *e;
	int ret = 0;

	if (!d) {
		ret = -errno;
		pr_perror("open directory %s", c->dir);
		return ret;
	}
	while ((e = readdir(d))) {
		unsigned id;
		char again[64];

		if (sscanf(e->d_name, "host-%u.present", &id) == 1 && id >= 1 &&
		    id <= CKPTDIR_MAX_SERVERS &&
		    snprintf(again, sizeof(again), "host-%u.present", id) > 0 &&
		    !strcmp(again, e->d_name))
			used[id] = true;
	}
	closedir(d);
	for (unsigned id = 1; id <= CKPTDIR_MAX_SERVERS && !ret; id++)
		if (used[id])
			ret = add_server(c, id, NULL, NULL, c->dir);
	return ret;
}

int ckptdir_find_servers(struct ckptdir *c)
{
	bool used[256] = { false };
	int ret;

	for (uint64_t p = 0; c->loc_ok && p < c->loc.npages; p++)
		used[c->loc.host[p]] = true;
	used[DCRES_LOC_MAIN] = used[DCRES_LOC_ZERO] = false;
	ret = c->manifest ? servers_from_manifest(c) : servers_from_dir(c, used);
	if (ret)
		return ret;
	for (uint64_t p = 0; c->loc_ok && p < c->loc.npages; p++) {
		uint8_t h = c->loc.host[p];

		if (h != DCRES_LOC_MAIN && h != DCRES_LOC_ZERO && c->index_of[h] < 0) {
			pr_err("%s: page %llu is placed on host %u, which the manifest "
			       "does not list", c->loc_path, (unsigned long long)p, h);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Checks the header of s's memory file against main.loc and the VM UUID
 * (learnt here when not known yet). */
static int check_server_header(struct ckptdir *c, const struct ckptdir_server *s)
{
	const struct dcres_memfile_info *info = dcres_memfile_info(s->mf);
	uint64_t ram = c->loc.npages * c->loc.page_size;

	if (info->page_size != c->loc.page_size || info->ram_size != ram ||
	    info->host_id != s->id) {
		pr_err("%s: host %u, %llu bytes of %u-byte pages; %s expects host %u, "
		       "%llu bytes of %u-byte pages", s->mem_path, info->host_id,
		       (unsigned long long)info->ram_size, info->page_size, c->loc_path,
		       s->id, (unsigned long long)ram, c->loc.page_size);
		return -EINVAL;
	}
	if (c->have_uuid && memcmp(c->uuid, info->vm_uuid, 16)) {
		char got[DCRES_UUID_STR_LEN], want[DCRES_UUID_STR_LEN];

		dcres_uuid_format(info->vm_uuid, got);
		dcres_uuid_format(c->uuid, want);
		pr_err("%s: VM %s, but the checkpoint is of VM %s", s->mem_path, got, want);
		return -EINVAL;
	}
	memcpy(c->uuid, info->vm_uuid, 16);
	c->have_uuid = true;
	return 0;
}

int ckptdir_open_server(struct ckptdir *c, struct ckptdir_server *s)
{
	int ret;

	if (!c->loc_ok) {
		pr_err("%s: cannot be checked without %s", s->mem_path, c->loc_path);
		return -EINVAL;
	}
	ret = dcres_memfile_open(s->mem_path, &s->mf);
	if (!ret)
		ret = check_server_header(c, s);
	if (!ret)
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
	s->ok = true;
	return 0;
}

int ckptdir_open(struct ckptdir *c)
{
	int ret = ckptdir_open_loc(c);

	if (!ret)
		ret = ckptdir_open_main(c);
	if (!ret)
		ret = ckptdir_open_main_present(c);
	if (!ret)
		ret = ckptdir_find_servers(c);
	for (unsigned i = 0; i < c->nservers && !ret; i++)
		ret = ckptdir_open_server(c, &c->servers[i]);
	return ret;
}

void ckptdir_close(struct ckptdir *c)
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
	dcres_manifest_free(c->manifest);
	c->manifest = NULL;
	dcres_mrfile_close(&c->main);
	dcres_presence_free(&c->main_pres);
	dcres_loctable_free(&c->loc);
	c->loc_ok = c->main_ok = c->main_pres_ok = false;
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

int ckptdir_check_placement(const struct ckptdir *c, uint64_t *duplicates)
{
	uint64_t violations = 0, dups = 0;
	char where[64];

	if (!c->loc_ok) {
		pr_err("%s: placement cannot be checked without %s", c->dir, c->loc_path);
		return -EINVAL;
	}
#define REPORT(...)                                                              \
	do {                                                                     \
		if (violations++ < MAX_REPORTS)                                  \
			pr_err(__VA_ARGS__);                                     \
	} while (0)

	for (uint64_t p = 0; p < c->loc.npages; p++) {
		unsigned long long pg = (unsigned long long)p;
		uint8_t owner = c->loc.host[p];
		bool in_main = c->main_ok && dcres_mrfile_test(&c->main, p);
		const char *first = in_main ? c->main_path : NULL;
		unsigned holders = in_main;

		if (in_main && owner != DCRES_LOC_MAIN)
			REPORT("page %llu: %s has it in its bitmap, but %s places it %s", pg,
			       c->main_path, c->loc_path, placement(owner, where));
		for (unsigned i = 0; i < c->nservers; i++) {
			const struct ckptdir_server *s = &c->servers[i];
			bool present = s->ok && dcres_presence_test(&s->pres, p);

			if (!s->ok)
				continue;
			if (present && ++holders > 1)
				REPORT("page %llu: in more than one file: %s and %s", pg,
				       first, s->present_path);
			if (present && !first)
				first = s->present_path;
			if (present && owner != s->id)
				REPORT("page %llu: %s has it, but %s places it %s", pg,
				       s->present_path, c->loc_path, placement(owner, where));
			if (!present && owner == s->id && !c->loc.has_parent)
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
