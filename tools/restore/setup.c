/* Paths and keys of a run: --ckpt-root, --psk, the run directory
 * (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/path.h"
#include "restore.h"

#define RUN_BASE "/run/dcres"
#define THROWAWAY_KEY_BYTES 32

static int make_dirs(const char *dir);

int setup_paths(struct rst_run *r)
{
	const char *psk = r->opts.psk_path;
	int ret;

	if (!realpath(r->opts.ckpt_root, r->root)) {
		ret = -errno;
		pr_perror("--ckpt-root %s", r->opts.ckpt_root);
		return ret;
	}
	/* A checkpoint whose main host is gone: its files come from a copy. */
	if (access(r->opts.ckpt, F_OK) && errno == ENOENT && r->nsources > 0 &&
	    (ret = make_dirs(r->opts.ckpt)))
		return ret;
	if (!realpath(r->opts.ckpt, r->dir)) {
		ret = -errno;
		pr_perror("%s", r->opts.ckpt);
		r->dir[0] = '\0';
		return ret;
	}
	if (r->nsources == 0 && !psk)
		return 0;
	if (!psk) {
		pr_err("--psk is required with memory servers (their pre-shared key)");
		return -EINVAL;
	}
	if (!realpath(psk, r->psk_file)) {
		ret = -errno;
		pr_perror("--psk %s", psk);
		return ret;
	}
	if ((ret = dcres_psk_load(r->psk_file, &r->psk)))
		return ret;
	ret = dcres_path_relative(r->root, r->dir, r->rel_dir, sizeof(r->rel_dir));
	if (ret && r->nsources == 0) {
		/* Onto this host alone: DIR's own files, no server asked. */
		r->rel_dir[0] = '\0';
		return 0;
	}
	if (ret)
		pr_err("checkpoint directory %s is not below %s, the memory servers' directory "
		       "(--ckpt-root)", r->dir, r->root);
	return ret;
}

/* Creates dir and its missing parents (parents 0755, dir itself 0700); an
 * existing dir is fine. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s", dir);
	for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			pr_perror("mkdir %s", path);
			return -errno;
		}
		*s = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		pr_perror("mkdir %s", path);
		return -errno;
	}
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		pr_err("%s: not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

/* Formats r->run_dir/name into out (PATH_MAX bytes). */
static int run_path(const struct rst_run *r, const char *name, char *out)
{
	if (snprintf(out, PATH_MAX, "%s/%s", r->run_dir, name) >= PATH_MAX) {
		pr_err("%s/%s: path too long", r->run_dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Checks that path fits a unix socket address and that no process answers
 * on it (an earlier restore of the VM still running there). */
static int check_qmp_free(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, busy;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_err("QMP socket path %s is longer than the %zu bytes a unix socket allows",
		       path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_perror("socket");
		return -errno;
	}
	busy = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	if (busy) {
		pr_err("%s: a process already listens on this QMP socket (is a restored VM "
		       "still running?)", path);
		return -EADDRINUSE;
	}
	return 0;
}

/* Writes a throw-away key (random bytes, base64) to RUN/psk, 0600, for
 * QEMU's psk-file when the VM has no memory servers and no --psk. */
static int write_throwaway_key(struct rst_run *r)
{
	unsigned char key[THROWAWAY_KEY_BYTES];
	unsigned char text[4 * (THROWAWAY_KEY_BYTES + 2) / 3 + 2];
	int n, ret;

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		pr_perror("getrandom");
		return -EIO;
	}
	n = EVP_EncodeBlock(text, key, sizeof(key));
	text[n++] = '\n';
	if ((ret = run_path(r, "psk", r->psk_file)))
		return ret;
	return dcres_publish_file(r->psk_file, text, (size_t)n);
}

int setup_run_dir(struct rst_run *r)
{
	char path[PATH_MAX];
	int ret;

	if (r->opts.run_dir)
		snprintf(r->run_dir, sizeof(r->run_dir), "%s", r->opts.run_dir);
	else
		snprintf(r->run_dir, sizeof(r->run_dir), RUN_BASE "/restore-%s", r->uuid_str);
	if ((ret = make_dirs(r->run_dir)))
		return ret;
	if (!realpath(r->run_dir, path)) {
		ret = -errno;
		pr_perror("%s", r->run_dir);
		return ret;
	}
	snprintf(r->run_dir, sizeof(r->run_dir), "%s", path);
	if ((ret = run_path(r, "plan", r->plan_path)) ||
	    (ret = run_path(r, "qemu.log", r->log_path)) ||
	    (ret = run_path(r, "parts", r->stage_dir)))
		return ret;
	if (r->opts.qmp_path)
		snprintf(r->qmp_path, sizeof(r->qmp_path), "%s", r->opts.qmp_path);
	else if ((ret = run_path(r, "qmp.sock", r->qmp_path)))
		return ret;
	if ((ret = check_qmp_free(r->qmp_path)))
		return ret;
	return r->psk_file[0] ? 0 : write_throwaway_key(r);
}
