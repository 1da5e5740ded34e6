/* dcres-checkpoint --every: a checkpoint service on a chain directory,
 * one checkpoint process at a time (ckpt.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/manifest.h"

#define NAME_LEN 16

/* The chain's checkpoints: directories NNNNNN holding a manifest. */
struct chain {
	unsigned n;
	char (*names)[NAME_LEN]; /* ascending */
};

/* qsort order of two names. */
static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Whether name is six digits. */
static bool seq_name(const char *name)
{
	return strlen(name) == 6 && strspn(name, "0123456789") == 6;
}

/* Lists dir's checkpoints into ch (ascending). */
static int chain_list(const char *dir, struct chain *ch)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	ch->n = 0;
	free(ch->names);
	ch->names = NULL;
	if (!d) {
		pr_perror("the chain directory %s", dir);
		return -errno;
	}
	while ((e = readdir(d))) {
		void *v;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!seq_name(e->d_name) || !parent_is_checkpoint(path))
			continue;
		v = realloc(ch->names, (ch->n + 1) * sizeof(*ch->names));
		if (!v) {
			closedir(d);
			return -ENOMEM;
		}
		ch->names = v;
		snprintf(ch->names[ch->n++], NAME_LEN, "%s", e->d_name);
	}
	closedir(d);
	if (ch->n)
		qsort(ch->names, ch->n, sizeof(*ch->names), by_name);
	return 0;
}

/* Runs argv (a program of the tools) and waits; its exit status, or -1. */
static int run_tool(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Removes checkpoint directory dir and the files in it. */
static int remove_ckpt(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);
	int ret = 0;

	if (!d)
		return -errno;
	/* The manifest first: a half-removed directory is no checkpoint. */
	snprintf(path, sizeof(path), "%s/" DCRES_MANIFEST_NAME, dir);
	unlink(path);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path) &&
		    unlink(path) < 0)
			ret = -errno;
	closedir(d);
	if (!ret && rmdir(dir) < 0)
		ret = -errno;
	if (ret)
		pr_err("cannot remove the old checkpoint %s: %s", dir, strerror(-ret));
	return ret;
}

/* Makes checkpoint name of chain full in place: flattened into a new
 * directory, swapped in atomically (its children then take the flat one
 * as their parent), the incremental one removed. */
static int flatten(const char *chain, const char *name)
{
	char dir[PATH_MAX], flat[PATH_MAX];
	const char *merge = getenv("DCRES_MERGE") ? getenv("DCRES_MERGE") : "dcres-merge";
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", chain, name);
	snprintf(flat, sizeof(flat), "%s/.flat-%s", chain, name);
	rc = run_tool((char *const[]){ (char *)merge, "--flatten", dir, flat, NULL });
	if (rc != 0) {
		pr_err("cannot flatten %s (%s exited %d): the older checkpoints it builds on "
		       "stay", dir, merge, rc);
		return -EIO;
	}
	if (renameat2(AT_FDCWD, flat, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
		int ret = -errno;
		pr_perror("swap %s with its flattened copy", dir);
		remove_ckpt(flat);
		return ret;
	}
	return remove_ckpt(flat); /* the incremental one, now at flat */
}

/* Keeps the newest keep checkpoints of chain, each restorable: the
 * oldest kept one is made full first, then the older ones go. */
static void prune(const char *chain, unsigned keep)
{
	struct chain ch = { 0 };
	char dir[PATH_MAX];
	Dcres__Manifest *m;
	bool full;

	if (chain_list(chain, &ch) || ch.n <= keep)
		goto out;
	unsigned first = ch.n - keep;
	snprintf(dir, sizeof(dir), "%s/%s", chain, ch.names[first]);
	if (dcres_manifest_read(dir, &m))
		goto out;
	full = !m->parent;
	dcres_manifest_free(m);
	if (!full && flatten(chain, ch.names[first]))
		goto out;
	for (unsigned i = 0; i < first; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", chain, ch.names[i]);
		if (!remove_ckpt(dir))
			pr_info("removed %s (keeping the newest %u)", dir, keep);
	}
out:
	free(ch.names);
}

/* Logs the one line of checkpoint dir from its JSON summary (len bytes). */
static void log_line(const char *dir, const char *json, int rc)
{
	struct json_object *j = json_tokener_parse(json), *hosts, *v;
	uint64_t bytes = 0, pages = 0;

	if (rc != 0 || !j) {
		pr_err("checkpoint %s failed (exit %d); the chain keeps its previous ones", dir,
		       rc);
		json_object_put(j);
		return;
	}
	if (json_object_object_get_ex(j, "hosts", &hosts))
		for (size_t i = 0; i < json_object_array_length(hosts); i++) {
			struct json_object *h = json_object_array_get_idx(hosts, i);
			if (json_object_object_get_ex(h, "bytes_written", &v))
				bytes += (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(h, "pages", &v))
				pages += (uint64_t)json_object_get_int64(v);
		}
	bool incremental = json_object_object_get_ex(j, "parent", &v) &&
			   json_object_is_type(v, json_type_string);
	pr_info("checkpoint %s: %s, %llu pages, %llu MiB written, downtime %lld ms, %s s",
		dir, incremental ? "incremental" : "full", (unsigned long long)pages,
		(unsigned long long)(bytes >> 20),
		json_object_object_get_ex(j, "downtime_ms", &v) ? (long long)json_object_get_int64(v) : -1LL,
		json_object_object_get_ex(j, "total_time_s", &v) ? json_object_get_string(v) : "?");
	json_object_put(j);
}

/* Takes checkpoint dir (incremental on parent, or full when NULL) in a
 * process of its own, passing it SIGTERM or SIGINT; its exit status. */
static int take_one(const struct ckpt_opts *base, const char *dir, const char *parent)
{
	struct ckpt_opts o = *base;
	char out[65536];
	size_t len = 0;
	int fds[2], status;
	bool forwarded = false;
	pid_t pid;

	o.dir = dir;
	o.parent = parent;
	o.every_s = 0;
	o.chain = NULL;
	o.json = true;
	o.quiet = true;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return 1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		_exit(ckpt_run_once(&o));
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return 1;
	}
	for (;;) {
		ssize_t n = read(fds[0], out + len, sizeof(out) - 1 - len);
		if (n > 0 && (len += (size_t)n) < sizeof(out) - 1)
			continue;
		if (n < 0 && errno == EINTR) {
			if (ckpt_interrupted && !forwarded) {
				kill(pid, SIGTERM);
				forwarded = true;
			}
			continue;
		}
		break;
	}
	close(fds[0]);
	out[len] = '\0';
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return 1;
		if (ckpt_interrupted && !forwarded) {
			kill(pid, SIGTERM);
			forwarded = true;
		}
	}
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	log_line(dir, out, status == 3 ? 0 : status);
	return status;
}

int periodic_run(const struct ckpt_opts *o)
{
	struct chain ch = { 0 };
	char dir[PATH_MAX], parent[PATH_MAX] = "";
	unsigned seq, taken = 0;
	int rc = 0;

	if (mkdir(o->chain, 0700) < 0 && errno != EEXIST) {
		pr_perror("create the chain directory %s", o->chain);
		return 1;
	}
	if (chain_list(o->chain, &ch))
		return 1;
	seq = ch.n ? (unsigned)strtoul(ch.names[ch.n - 1], NULL, 10) + 1 : 1;
	free(ch.names);
	pr_info("checkpointing every %u s into %s, keeping %u", o->every_s, o->chain, o->keep);
	while (!ckpt_interrupted) {
		int64_t start = ckpt_now_ms();
		bool full = !parent[0] || (o->full_every && taken % o->full_every == 0);

		snprintf(dir, sizeof(dir), "%s/%06u", o->chain, seq++);
		rc = take_one(o, dir, full ? NULL : parent);
		if (rc == 0 || rc == 3) {
			snprintf(parent, sizeof(parent), "%s", dir);
			taken++;
			prune(o->chain, o->keep);
		}
		if (ckpt_interrupted)
			break;
		while (!ckpt_interrupted && ckpt_now_ms() - start < (int64_t)o->every_s * 1000)
			ckpt_nap(200);
	}
	pr_info("stopped (%s); the chain holds every checkpoint that completed",
		rc == 0 || rc == 3 ? "signal" : "signal during a checkpoint, which was aborted");
	return rc == 0 || rc == 3 ? 0 : 1;
}
