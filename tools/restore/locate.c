/* Where the parts of the checkpoint are: each host's own files or a copy
 * on another memory server (restore.h). The servers read and check their
 * files themselves; this host reads only its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/mainpresence.h"
#include "restore.h"

/* The index of source name in r->sources, or -1. */
static int source_index(const struct rst_run *r, const char *name)
{
	for (unsigned i = 0; i < r->nsources; i++)
		if (!strcmp(r->sources[i].name, name))
			return (int)i;
	return -1;
}

/* Adds source name (target host index, 0 for none) unless listed. */
static int add_source(struct rst_run *r, const char *name, unsigned host)
{
	struct rst_source *s;

	if (source_index(r, name) >= 0)
		return 0;
	if (r->nsources == RST_MAX_SOURCES || strlen(name) >= sizeof(s->name) ||
	    !strchr(name, ':')) {
		fprintf(stderr, "dcres-restore: --replica-hosts: %s is not HOST:PORT or too "
			"many servers\n", name);
		return -EINVAL;
	}
	s = &r->sources[r->nsources++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->host = host;
	return 0;
}

int locate_parse(struct rst_run *r, const char *replica_hosts)
{
	char *copy, *save = NULL, *tok;
	int ret = 0;

	r->nsources = 0;
	for (unsigned k = 1; k < r->nhosts && !ret; k++)
		ret = add_source(r, r->hosts[k].name, k);
	if (!replica_hosts || ret)
		return ret;
	if (!(copy = strdup(replica_hosts)))
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save))
		ret = add_source(r, tok, 0);
	free(copy);
	return ret;
}

/* Connects to source s (no VM attached: file requests need none). */
static int connect_source(const struct rst_run *r, const struct rst_source *s,
			  struct dcres_memclient **c)
{
	int ret = dcres_memclient_connect(s->name, &r->psk, RST_CONNECT_MS, c);

	if (ret)
		pr_warn("memory server %s cannot be reached: %s", s->name, strerror(-ret));
	return ret;
}

/* Fetches name of the checkpoint from c into DIR as a new file of its own
 * (name.partial), checks it against want (when given) and renames it into
 * place. */
static int fetch_file(struct rst_run *r, struct dcres_memclient *c, const char *from,
		      const char *name, const Dcres__FileSum *want)
{
	char tmp[PATH_MAX + 32], path[PATH_MAX + 32];
	struct dcres_file_sum got;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	snprintf(tmp, sizeof(tmp), "%s/%s.partial", r->dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		pr_perror("create %s", tmp);
		return ret;
	}
	ret = dcres_memclient_get_file(c, r->rel_dir, name, fd, tmp, &got);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (!ret && want && (got.size != want->size || got.crc32c != want->crc32c)) {
		pr_err("%s: the copy on memory server %s has %llu bytes, CRC %08x; the manifest "
		       "says %llu, %08x: not used", name, from,
		       (unsigned long long)got.size, got.crc32c, (unsigned long long)want->size,
		       want->crc32c);
		ret = -EBADMSG;
	}
	if (!ret)
		ret = dcres_rename_durable(tmp, path);
	if (ret)
		unlink(tmp);
	return ret;
}

/* Fetches the main host's files from source s: the manifest first (read
 * and checked), then the files it lists for the main host (main.present
 * only when it lists one: older checkpoints have none). */
static int fetch_main_from(struct rst_run *r, const struct rst_source *s)
{
	struct dcres_memclient *c = NULL;
	Dcres__Manifest *m = NULL;
	const char *names[] = { "main.loc", "main.mem", DCRES_MAIN_PRESENT_NAME,
				DCRES_MANIFEST_NAME };
	int ret = connect_source(r, s, &c);

	if (!ret)
		ret = fetch_file(r, c, s->name, DCRES_MANIFEST_NAME, NULL);
	if (!ret && (ret = dcres_manifest_read(r->dir, &m)))
		pr_err("%s/manifest from memory server %s does not read: not used", r->dir,
		       s->name);
	for (unsigned i = 0; !ret && i < 3; i++) {
		const Dcres__FileSum *want = dcres_manifest_file(m, names[i]);

		if (!want && i == 2)
			continue; /* no main.present */
		if (!want) {
			pr_err("the manifest from memory server %s lists no %s", s->name, names[i]);
			ret = -EBADMSG;
		} else {
			ret = fetch_file(r, c, s->name, names[i], want);
		}
	}
	/* Nothing half-fetched stays: the next source starts afresh. */
	for (unsigned i = 0; ret && i < 4; i++) {
		char path[PATH_MAX + 32];

		snprintf(path, sizeof(path), "%s/%s", r->dir, names[i]);
		unlink(path);
	}
	dcres_manifest_free(m);
	dcres_memclient_close(c);
	return ret;
}

int locate_main_files(struct rst_run *r)
{
	char path[PATH_MAX + 32];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", r->dir, DCRES_MANIFEST_NAME);
	if (stat(path, &sb) == 0 || r->nsources == 0)
		return 0; /* here, or verify_checkpoint says it is missing */
	pr_info("%s has no manifest: looking for a copy of the main host's files on the "
		"memory servers", r->dir);
	for (unsigned i = 0; i < r->nsources; i++) {
		if (fetch_main_from(r, &r->sources[i]) == 0) {
			snprintf(r->main_from, sizeof(r->main_from), "%s", r->sources[i].name);
			pr_info("the main host's files of %s came from memory server %s", r->dir,
				r->main_from);
			return 0;
		}
	}
	pr_err("the main host's part of %s (manifest, main.loc, main.mem) exists nowhere: "
	       "not in %s, and none of the %u memory servers asked holds a good copy",
	       r->dir, r->dir, r->nsources);
	return -ENOENT;
}

/* One source's answer about every server part (a thread each). */
struct ask {
	struct rst_run *r;
	struct rst_source *s;
	pthread_t thread;
	bool started;
};

/* Judges source s's answer about file want of part id: s holds part id
 * only while every file of it matches. */
static void judge(const struct rst_run *r, struct rst_source *s, unsigned id,
		  const struct dcres_file_sum *got, const Dcres__FileSum *want)
{
	if (!s->holds[id])
		return;
	if (!got->held) {
		s->holds[id] = false;
		snprintf(s->trouble[id], sizeof(s->trouble[id]), "no %s", want->name);
	} else if (got->error[0] || got->size != want->size || got->crc32c != want->crc32c) {
		s->holds[id] = false;
		snprintf(s->trouble[id], sizeof(s->trouble[id]), "%s",
			 got->error[0] ? got->error : "CRC mismatch");
		pr_warn("memory server %s: its copy of %s/%s does not match the manifest (%s): "
			"not used", s->name, r->rel_dir, want->name, s->trouble[id]);
	}
}

static void *ask_main(void *arg)
{
	struct ask *a = arg;
	struct rst_run *r = a->r;
	const Dcres__Manifest *m = r->cd.manifest;
	struct dcres_file_sum *files = calloc(2 * m->n_hosts + 1, sizeof(*files));
	const Dcres__FileSum **want = calloc(2 * m->n_hosts + 1, sizeof(*want));
	unsigned *owner = calloc(2 * m->n_hosts + 1, sizeof(*owner));
	struct dcres_memclient *c = NULL;
	size_t n = 0;

	if (!files || !want || !owner || connect_source(r, a->s, &c))
		goto out;
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];
		const char *names[2] = { h->mem_file, h->present_file };

		if (h->id == 0)
			continue;
		a->s->holds[h->id] = true;
		for (unsigned j = 0; j < 2; j++) {
			want[n] = dcres_manifest_file(m, names[j]);
			if (!want[n])
				continue;
			files[n].name = want[n]->name;
			files[n].crc32c = want[n]->crc32c;
			owner[n++] = h->id;
		}
	}
	if (dcres_memclient_file_sums(c, r->rel_dir, files, n, r->opts.lazy)) {
		pr_warn("memory server %s: cannot ask for its files: %s", a->s->name,
			dcres_memclient_error(c));
		memset(a->s->holds, 0, sizeof(a->s->holds));
		goto out;
	}
	a->s->reachable = true;
	for (size_t i = 0; i < n; i++)
		judge(r, a->s, owner[i], &files[i], want[i]);
out:
	dcres_memclient_close(c);
	free(files);
	free(want);
	free(owner);
	return NULL;
}

/* Refuses part h that no source holds, naming what was asked. */
static void report_missing(const struct rst_run *r, const Dcres__HostPart *h)
{
	char asked[2048] = "", recorded[2048] = "";
	size_t used = 0;

	for (unsigned i = 0; i < r->nsources && used < sizeof(asked); i++) {
		const struct rst_source *s = &r->sources[i];
		int w = snprintf(asked + used, sizeof(asked) - used, "%s%s (%s)", i ? ", " : "",
				 s->name, !s->reachable ? "unreachable" : s->trouble[h->id]);

		used += w > 0 ? (size_t)w : 0;
	}
	used = 0;
	for (size_t i = 0; i < h->n_replicas && used < sizeof(recorded); i++) {
		int w = snprintf(recorded + used, sizeof(recorded) - used, "%s%s", i ? ", " : "",
				 h->replicas[i]);

		used += w > 0 ? (size_t)w : 0;
	}
	pr_err("the part of host %u (%s, %s, saved on %s) exists nowhere: asked %s; the "
	       "manifest records copies on %s", h->id, h->mem_file, h->present_file,
	       h->address ? h->address : "?", asked[0] ? asked : "no memory server",
	       recorded[0] ? recorded : "no other host");
}

/* Whether DIR itself has part h's files at the manifest's sizes (a shared
 * checkpoint directory): only their sizes are looked at here. */
static bool local_part(const struct rst_run *r, const Dcres__HostPart *h)
{
	const char *names[2] = { h->mem_file, h->present_file };

	for (unsigned j = 0; j < 2; j++) {
		const Dcres__FileSum *want = dcres_manifest_file(r->cd.manifest, names[j]);
		char path[PATH_MAX + 32];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/%s", r->cd.dir, names[j] ? names[j] : "");
		if (!want || stat(path, &sb) || (uint64_t)sb.st_size != want->size)
			return false;
	}
	return true;
}

int locate_parts(struct rst_run *r)
{
	const Dcres__Manifest *m = r->cd.manifest;
	struct ask asks[RST_MAX_SOURCES] = { 0 };
	bool reachable = false;
	int ret = 0;

	/* Where the manifest says the parts were saved and copied: asked too,
	 * after the servers given. */
	for (size_t i = 0; r->psk_file[0] && r->rel_dir[0] && i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];

		if (h->id && h->address && strchr(h->address, ':'))
			add_source(r, h->address, 0);
		for (size_t j = 0; h->id && j < h->n_replicas; j++)
			add_source(r, h->replicas[j], 0);
		for (size_t j = 0; !h->id && j < h->n_replicas; j++)
			add_source(r, h->replicas[j], 0);
	}
	for (unsigned i = 0; i < r->nsources; i++) {
		asks[i] = (struct ask){ .r = r, .s = &r->sources[i] };
		asks[i].started = pthread_create(&asks[i].thread, NULL, ask_main, &asks[i]) == 0;
		if (!asks[i].started)
			ask_main(&asks[i]);
	}
	for (unsigned i = 0; i < r->nsources; i++)
		if (asks[i].started)
			pthread_join(asks[i].thread, NULL);
	for (unsigned j = 0; j < r->nsources; j++)
		reachable |= r->sources[j].reachable;
	for (size_t i = 0; i < m->n_hosts; i++) {
		const Dcres__HostPart *h = m->hosts[i];
		bool found = false;

		if (h->id == 0)
			continue;
		for (unsigned j = 0; j < r->nsources; j++)
			found |= r->sources[j].holds[h->id];
		/* DIR's own copy (a shared directory, QEMU checks each page it
		 * loads) only when no server could say what its copy is worth. */
		r->local[h->id] = !reachable && local_part(r, h);
		if (!found && !r->local[h->id]) {
			report_missing(r, h);
			ret = -ENOENT;
		}
	}
	return ret;
}

const struct rst_source *locate_holder(const struct rst_run *r, unsigned k, unsigned src)
{
	unsigned n = 0, pick;

	for (unsigned i = 0; i < r->nsources; i++)
		if (r->sources[i].host == k && k && r->sources[i].holds[src])
			return &r->sources[i];
	for (unsigned i = 0; i < r->nsources; i++)
		n += r->sources[i].holds[src];
	if (!n)
		return NULL;
	pick = k % n;
	for (unsigned i = 0; i < r->nsources; i++)
		if (r->sources[i].holds[src] && pick-- == 0)
			return &r->sources[i];
	return NULL;
}
