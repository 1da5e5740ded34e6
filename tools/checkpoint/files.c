/* The checkpoint directory: preparing it, counting the pages each host
 * stored, removing a failed run's files (ckpt.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/loctable.h"
#include "dcres/mainpresence.h"
#include "dcres/manifest.h"
#include "dcres/mappedram.h"

/* Creates path and its missing parents (the last one mode 0700). */
static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(tmp)) {
		pr_err("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST) {
			pr_perror("cannot create %s", tmp);
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST) {
		pr_perror("cannot create %s", tmp);
		return -errno;
	}
	return 0;
}

/* Formats dir/name into out (PATH_MAX bytes); -ENAMETOOLONG naming it. */
static int join(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		pr_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Whether name is a file a checkpoint writes (a finished or partial one). */
static bool ckpt_file(const char *name)
{
	unsigned k;
	char rest[16];

	return !strcmp(name, "main.mem") || !strcmp(name, "main.loc") ||
	       !strcmp(name, DCRES_MAIN_PRESENT_NAME) || strstr(name, ".partial") ||
	       (sscanf(name, "host-%u.%15s", &k, rest) == 2 &&
		(!strncmp(rest, "mem", 3) || !strncmp(rest, "present", 7)));
}

/* Takes the directory for this run: an exclusive lock held until the
 * process ends (a second dcres-checkpoint into it is refused), and no
 * checkpoint file left there by an earlier run. */
static int take_dir(struct ckpt_run *r)
{
	int fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	struct dirent *e;
	DIR *d;

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = -errno;
		if (err == -EWOULDBLOCK)
			pr_err("%s is in use by another dcres-checkpoint: choose another "
			       "directory", r->dir);
		else
			pr_perror("lock %s", r->dir);
		if (fd >= 0)
			close(fd);
		return err == -EWOULDBLOCK ? -EBUSY : err;
	}
	r->dir_lock_fd = fd;
	if (!(d = opendir(r->dir))) {
		err = -errno;
		pr_perror("read %s", r->dir);
		return err;
	}
	while (!err && (e = readdir(d))) {
		if (ckpt_file(e->d_name)) {
			pr_err("%s holds %s, a file of an earlier checkpoint that did not "
			       "complete; it is left intact: remove it or choose another "
			       "directory", r->dir, e->d_name);
			err = -EEXIST;
		}
	}
	closedir(d);
	return err;
}

int files_prepare(struct ckpt_run *r)
{
	char manifest[PATH_MAX];
	struct stat st;
	int err;

	err = join(manifest, r->opts.dir, DCRES_MANIFEST_NAME);
	if (err)
		return err;
	if (!stat(manifest, &st)) {
		pr_err("%s already holds a checkpoint (%s); it is left intact: choose "
		       "another directory", r->opts.dir, manifest);
		return -EEXIST;
	}
	r->created_dir = stat(r->opts.dir, &st) && errno == ENOENT;
	err = mkdir_p(r->opts.dir);
	if (err)
		return err;
	if (!realpath(r->opts.dir, r->dir)) {
		pr_perror("%s", r->opts.dir);
		return -errno;
	}
	if (stat(r->dir, &st) || !S_ISDIR(st.st_mode)) {
		pr_err("%s is not a directory", r->dir);
		return -ENOTDIR;
	}
	if (join(r->mem_path, r->dir, "main.mem") || join(r->loc_path, r->dir, "main.loc") ||
	    join(r->present_path, r->dir, DCRES_MAIN_PRESENT_NAME))
		return -ENAMETOOLONG;
	return take_dir(r);
}

int files_host_path(const struct ckpt_run *r, unsigned k, const char *suffix, char *out)
{
	if (snprintf(out, PATH_MAX, "%s/host-%u.%s", r->dir, k, suffix) >= PATH_MAX) {
		pr_err("%s: path too long", r->dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Punches stale copies out of main.mem (pages that moved to a server
 * during a live checkpoint) and counts its pages, with main.loc's
 * geometry. */
static int count_main(struct ckpt_run *r, const struct dcres_loctable *loc)
{
	struct dcres_mrfile f;
	uint64_t punched = 0;
	int err;

	err = dcres_mrfile_open(r->mem_path, &loc->main_file, true, &f);
	if (err)
		return err;
	err = dcres_mrfile_punch_absent(&f, &punched);
	if (!err) {
		r->main_pages = dcres_mrfile_count(&f);
		pr_debug("%s: %llu pages, %llu stale copies punched", r->mem_path,
			 (unsigned long long)r->main_pages, (unsigned long long)punched);
	}
	dcres_mrfile_close(&f);
	return err;
}

int files_count_pages(struct ckpt_run *r)
{
	struct dcres_loctable loc;
	int err;

	if (!r->dcres_mode) {
		/* Conventional mode or an ordinary VM: everything is in main.mem. */
		r->main_pages = r->mig.normal_pages;
		return 0;
	}
	err = dcres_loctable_read(r->loc_path, &loc);
	if (err)
		return err;
	if (loc.page_size != CKPT_PAGE_SIZE || loc.npages * CKPT_PAGE_SIZE != r->ram_size) {
		pr_err("%s covers %llu pages of %u bytes; the VM has %llu bytes of RAM in "
		       "pages of %d", r->loc_path, (unsigned long long)loc.npages, loc.page_size,
		       (unsigned long long)r->ram_size, CKPT_PAGE_SIZE);
		err = -EINVAL;
	}
	if (!err)
		err = count_main(r, &loc);
	/* One part per server, in host order (replicate.c relies on it), as
	 * each final reported it. */
	if (!err)
		err = parent_check_loc(r, &loc);
	if (!err && loc.nparts != r->after.nservers) {
		pr_err("%s records %u memory servers' parts; the VM has %u servers", r->loc_path,
		       loc.nparts, r->after.nservers);
		err = -EINVAL;
	}
	for (unsigned i = 0; !err && i < loc.nparts; i++) {
		if (loc.parts[i].host != i + 1) {
			pr_err("%s records no part of memory server %u (%s)", r->loc_path, i + 1,
			       r->after.servers[i].address);
			err = -EINVAL;
		}
		r->server_pages[i] = loc.parts[i].pages;
	}
	if (!err) {
		/* The parts move into r (freed with it). */
		r->parts = loc.parts;
		r->nparts = loc.nparts;
		loc.parts = NULL;
		loc.nparts = 0;
		snprintf(r->server_dir, sizeof(r->server_dir), "%s", loc.server_dir);
	}
	dcres_loctable_free(&loc);
	return err;
}

int files_sync_main(struct ckpt_run *r)
{
	int fd = open(r->mem_path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0 || fsync(fd)) {
		err = -errno;
		pr_perror("fsync %s", r->mem_path);
	}
	if (fd >= 0)
		close(fd);
	r->durable_ms = ckpt_now_ms();
	return err;
}

int files_write_main_present(struct ckpt_run *r)
{
	struct dcres_loctable loc;
	struct dcres_presence p;
	struct dcres_mrfile f;
	int err;

	if (!r->dcres_mode)
		return 0;
	err = dcres_loctable_read(r->loc_path, &loc);
	if (err)
		return err;
	err = dcres_mrfile_open(r->mem_path, &loc.main_file, false, &f);
	if (!err) {
		err = dcres_main_presence_build(&f, &loc, &p);
		dcres_mrfile_close(&f);
	}
	if (!err) {
		err = dcres_presence_write(r->present_path, &p);
		if (!err)
			pr_debug("%s: the CRCs of %llu pages of %s", r->present_path,
				 (unsigned long long)dcres_presence_count(&p), r->mem_path);
		dcres_presence_free(&p);
	}
	if (err)
		pr_err("%s: cannot write it: %s", r->present_path, strerror(-err));
	dcres_loctable_free(&loc);
	return err;
}

/* Unlinks path if it exists, saying so. */
static void remove_file(const char *path)
{
	if (!unlink(path))
		pr_info("removed %s", path);
	else if (errno != ENOENT)
		pr_perror("cannot remove %s", path);
}

void files_remove(struct ckpt_run *r)
{
	char path[PATH_MAX];

	if (r->migrate_started) {
		remove_file(r->mem_path);
		remove_file(r->loc_path);
		remove_file(r->present_path);
	}
	/* Files that servers published before the checkpoint failed elsewhere
	 * (seen here when DIR is shared with them). */
	for (unsigned k = 1; r->migrate_started && r->split && !r->opts.conventional &&
			     k <= r->before.nservers; k++) {
		if (!files_host_path(r, k, "mem", path))
			remove_file(path);
		if (!files_host_path(r, k, "present", path))
			remove_file(path);
	}
	/* The directory, if this run created it and nothing else is there. */
	if (r->created_dir && r->dir[0])
		rmdir(r->dir);
}
