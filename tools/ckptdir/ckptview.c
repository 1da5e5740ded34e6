/* A view of a checkpoint with its servers' parts fetched through the
 * servers holding them (ckptview.h). */
#define _GNU_SOURCE
#include "dcres/ckptview.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/manifest.h"
#include "dcres/memclient.h"
#include "dcres/path.h"

#define VIEW_CONNECT_MS 5000

/* Whether dir/name exists. */
static bool here(const char *dir, const char *name)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

bool ckptview_needed(const char *dir)
{
	Dcres__Manifest *m;
	bool need = false;

	if (dcres_manifest_read(dir, &m))
		return false; /* the tool reports it */
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->id && ((h->mem_file && !here(dir, h->mem_file)) ||
			      (h->present_file && !here(dir, h->present_file))))
			need = true;
	}
	dcres_manifest_free(m);
	return need;
}

/* The servers to ask, in order: o->servers, then where the manifest says
 * parts were saved and copied; each once. */
static unsigned server_list(const Dcres__Manifest *m, const char *given,
			    char list[][256], unsigned max)
{
	unsigned n = 0;
	char *copy = given ? strdup(given) : NULL, *save = NULL;

	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && n < max;
	     t = strtok_r(NULL, ",", &save))
		snprintf(list[n++], 256, "%s", t);
	free(copy);
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];
		const char *cand[1 + 64];
		size_t nc = 0;

		if (h->id && h->address && strchr(h->address, ':'))
			cand[nc++] = h->address;
		for (size_t j = 0; j < h->n_replicas && nc < 65; j++)
			cand[nc++] = h->replicas[j];
		for (size_t j = 0; j < nc && n < max; j++) {
			bool dup = false;

			for (unsigned k = 0; k < n; k++)
				dup |= !strcmp(list[k], cand[j]);
			if (!dup)
				snprintf(list[n++], 256, "%s", cand[j]);
		}
	}
	return n;
}

/* Links view/name to dir/name. */
static int link_into(const char *view, const char *dir, const char *name)
{
	char from[PATH_MAX + 256], to[PATH_MAX + 256];

	snprintf(to, sizeof(to), "%s/%s", dir, name);
	snprintf(from, sizeof(from), "%s/%s", view, name);
	if (symlink(to, from) < 0) {
		int err = errno;

		pr_perror("link %s to %s", from, to);
		return -err;
	}
	return 0;
}

/* Fetches part h's two files from server c into the view, each checked
 * against the manifest. */
static int fetch_part(struct dcres_memclient *c, const char *server, const char *rel,
		      const char *view, const Dcres__Manifest *m, const Dcres__HostPart *h)
{
	const char *names[2] = { h->mem_file, h->present_file };

	for (unsigned j = 0; j < 2; j++) {
		const Dcres__FileSum *want = dcres_manifest_file(m, names[j]);
		char path[PATH_MAX + 256];
		struct dcres_file_sum got;
		int fd, ret;

		snprintf(path, sizeof(path), "%s/%s", view, names[j]);
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			ret = -errno;
			pr_perror("create %s", path);
			return ret;
		}
		ret = dcres_memclient_get_file(c, rel, names[j], fd, path, &got);
		close(fd);
		if (!ret && (!want || got.size != want->size || got.crc32c != want->crc32c)) {
			pr_warn("memory server %s: its copy of %s/%s does not match the manifest: "
				"not used", server, rel, names[j]);
			ret = -EBADMSG;
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* Finds and fetches part h: every server asked for its sums, the copy
 * taken from the first whose both files match. */
static int get_part(struct ckptview *v, const char *rel, const Dcres__Manifest *m,
		    const Dcres__HostPart *h, char servers[][256], unsigned nservers,
		    const struct dcres_psk *psk)
{
	struct ckptview_part *p = &v->parts[v->nparts];
	size_t used = 0;

	memset(p, 0, sizeof(*p));
	p->id = h->id;
	for (unsigned i = 0; i < nservers; i++) {
		struct dcres_file_sum f[2] = { { .name = h->mem_file }, { .name = h->present_file } };
		struct dcres_memclient *c = NULL;
		bool good = true;

		for (unsigned j = 0; j < 2; j++) {
			const Dcres__FileSum *want = dcres_manifest_file(m, f[j].name);

			f[j].crc32c = want ? want->crc32c : 0;
		}
		if (dcres_memclient_connect(servers[i], psk, VIEW_CONNECT_MS, &c))
			continue;
		if (dcres_memclient_file_sums(c, rel, f, 2, false))
			good = false;
		for (unsigned j = 0; good && j < 2; j++) {
			const Dcres__FileSum *want = dcres_manifest_file(m, f[j].name);

			good = f[j].held && !f[j].error[0] && want && f[j].size == want->size &&
			       f[j].crc32c == want->crc32c;
			if (f[j].held && !good)
				pr_warn("memory server %s: its copy of %s/%s does not match the "
					"manifest (%s): not used", servers[i], rel, f[j].name,
					f[j].error[0] ? f[j].error : "CRC mismatch");
		}
		if (good) {
			int w = snprintf(p->holders + used, sizeof(p->holders) - used, "%s%s",
					 used ? ", " : "", servers[i]);

			used += w > 0 && (size_t)w < sizeof(p->holders) - used ? (size_t)w : 0;
			if (!p->from[0] && !fetch_part(c, servers[i], rel, v->dir, m, h))
				snprintf(p->from, sizeof(p->from), "%s", servers[i]);
		}
		dcres_memclient_close(c);
	}
	if (!p->from[0]) {
		pr_err("the part of host %u (%s, %s) is not in the checkpoint directory, and "
		       "none of the %u memory servers asked holds a good copy", h->id,
		       h->mem_file, h->present_file, nservers);
		return -ENOENT;
	}
	v->nparts++;
	return 0;
}

int ckptview_open(const char *dir, const struct ckptview_opts *o, struct ckptview *v)
{
	char root[PATH_MAX], abs[PATH_MAX], rel[PATH_MAX], servers[CKPTVIEW_MAX_SERVERS][256];
	const char *tmp = getenv("TMPDIR");
	Dcres__Manifest *m = NULL;
	struct dcres_psk psk;
	unsigned nservers;
	int ret;

	memset(v, 0, sizeof(*v));
	if (!o->psk_path) {
		pr_err("%s lacks memory servers' files: give --psk (and --ckpt-root) to read "
		       "them through the servers", dir);
		return -ENOENT;
	}
	if ((ret = dcres_psk_load(o->psk_path, &psk)))
		return ret;
	if (!realpath(o->ckpt_root ? o->ckpt_root : "/", root) || !realpath(dir, abs)) {
		ret = -errno;
		pr_perror("%s", dir);
		return ret;
	}
	if (dcres_path_relative(root, abs, rel, sizeof(rel))) {
		pr_err("%s is not below %s, the memory servers' directory (--ckpt-root)", abs,
		       root);
		return -EINVAL;
	}
	if ((ret = dcres_manifest_read(dir, &m)))
		return ret;
	snprintf(v->dir, sizeof(v->dir), "%s/dcres-view.XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(v->dir)) {
		ret = -errno;
		pr_perror("mkdtemp %s", v->dir);
		v->dir[0] = '\0';
		dcres_manifest_free(m);
		return ret;
	}
	/* DIR's own files, linked; the servers' parts, fetched. */
	ret = link_into(v->dir, abs, DCRES_MANIFEST_NAME);
	for (size_t i = 0; !ret && i < m->n_files; i++)
		if (m->files[i]->name && here(abs, m->files[i]->name))
			ret = link_into(v->dir, abs, m->files[i]->name);
	nservers = server_list(m, o->servers, servers, CKPTVIEW_MAX_SERVERS);
	for (size_t i = 0; !ret && i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->id && h->mem_file && h->present_file && v->nparts < CKPTVIEW_MAX_SERVERS &&
		    (!here(abs, h->mem_file) || !here(abs, h->present_file)))
			ret = get_part(v, rel, m, h, servers, nservers, &psk);
	}
	dcres_manifest_free(m);
	if (ret)
		ckptview_close(v);
	return ret;
}

void ckptview_close(struct ckptview *v)
{
	DIR *d;
	struct dirent *e;

	if (!v->dir[0] || !(d = opendir(v->dir)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(v->dir);
	v->dir[0] = '\0';
}
