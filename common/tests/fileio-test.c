/* Unit test of the file helpers that guard the memory server's --dir:
 * dcres_open_beneath (openat2 and the per-component walk), mkdirs and
 * atomic publication through unique temp files. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/fileio.h"
#include "fileio-internal.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

static char base[64];

/* Counts the entries of base/rel. */
static int entries(const char *rel)
{
	char path[256];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", base, rel);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* Opening below a directory: plain files and directories work; symlinks,
 * "..", absolute names are refused, whichever path the call takes. */
static void test_open_beneath(int dirfd, const char *how)
{
	int fd;

	fd = dcres_open_beneath(dirfd, "in/file", O_RDONLY, 0);
	CHECK(fd >= 0, "%s: open in/file: %s", how, strerror(-fd));
	if (fd >= 0)
		close(fd);
	fd = dcres_open_beneath(dirfd, "in/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "%s: create in/new: %s", how, strerror(-fd));
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, "in/new", 0);
	const char *refused[] = { "in/link-file", "link-dir/file", "in/../../outside",
				  "/etc/passwd", "in/dangling" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		fd = dcres_open_beneath(dirfd, refused[i], O_RDONLY, 0);
		CHECK(fd == -ELOOP || fd == -EXDEV, "%s: open %s returned %d, want -ELOOP or "
		      "-EXDEV", how, refused[i], fd);
		if (fd >= 0)
			close(fd);
	}
	fd = dcres_open_beneath(dirfd, "in/dangling", O_WRONLY | O_CREAT, 0600);
	CHECK(fd < 0, "%s: created a file through a dangling symlink", how);
	CHECK(entries("outside") == 1, "%s: something was created outside", how);
}

int main(void)
{
	char victim[128];
	int dirfd, fd;

	snprintf(base, sizeof(base), "/tmp/dcres-fileio-test.XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cd '%s' && mkdir top top/in outside && echo x > top/in/file "
		 "&& echo v > outside/victim && ln -s ../../outside/victim top/in/link-file && "
		 "ln -s ../outside top/link-dir && ln -s ../../outside/nothing top/in/dangling",
		 base);
	if (system(cmd) != 0)
		return 1;
	snprintf(victim, sizeof(victim), "%s/top", base);
	dirfd = open(victim, O_RDONLY | O_DIRECTORY);
	if (dirfd < 0)
		return 1;

	test_open_beneath(dirfd, "openat2");
	dcres__fileio_no_openat2 = true;
	test_open_beneath(dirfd, "walk");
	dcres__fileio_no_openat2 = false;

	/* mkdirs: new levels made 0700, none through a symlink. */
	fd = dcres_mkdirs_beneath(dirfd, "a/b/c");
	CHECK(fd >= 0, "mkdirs a/b/c: %s", strerror(-fd));
	if (fd >= 0)
		close(fd);
	struct stat sb;
	snprintf(cmd, sizeof(cmd), "%s/top/a/b", base);
	CHECK(stat(cmd, &sb) == 0 && (sb.st_mode & 0777) == 0700, "a/b mode %o",
	      sb.st_mode & 0777);
	fd = dcres_mkdirs_beneath(dirfd, "link-dir/sub");
	CHECK(fd == -ELOOP || fd == -ENOTDIR, "mkdirs through a symlink returned %d", fd);
	CHECK(entries("outside") == 1, "mkdirs created something outside");
	fd = dcres_mkdirs_beneath(dirfd, "a/../../x");
	CHECK(fd == -EXDEV, "mkdirs with .. returned %d", fd);

	/* Publication replaces a planted symlink (and its planted temp name)
	 * instead of writing through it, and leaves no temp file. */
	CHECK(symlinkat("../../outside/victim", dirfd, "in/pub.tmp") == 0 &&
	      symlinkat("../../outside/victim", dirfd, "in/pub") == 0, "plant in/pub");
	snprintf(cmd, sizeof(cmd), "%s/top/in", base);
	int in = open(cmd, O_RDONLY | O_DIRECTORY);
	CHECK(dcres_publish_fileat(in, "pub", "in/pub", "new\n", 4) == 0, "publish in/pub");
	CHECK(entries("top/in") == 5, "publication left %d entries in top/in, want 5",
	      entries("top/in"));
	snprintf(cmd, sizeof(cmd), "grep -qx v '%s/outside/victim' && grep -qx new '%s/top/in/pub'"
		 " && test ! -L '%s/top/in/pub'", base, base, base);
	CHECK(system(cmd) == 0, "publication wrote through the planted symlink");
	CHECK(dcres_publish_fileat(in, "a/b", "a/b", "x", 1) == -EINVAL,
	      "publish of a name with a slash was not refused");
	close(in);
	close(dirfd);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", base);
	printf("fileio-test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	return failures ? 1 : 0;
}
