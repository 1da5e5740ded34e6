#define _GNU_SOURCE
#include "dcres/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dcres/log.h"
#include "fileio-internal.h"

bool dcres__fileio_no_openat2;

int dcres_pwrite_full(int fd, const void *buf, size_t len, off_t off, const char *path)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			pr_perror("write %s at offset %lld", path, (long long)off);
			return -err;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int dcres_pread_full(int fd, void *buf, size_t len, off_t off, const char *path)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			pr_perror("read %s at offset %lld", path, (long long)off);
			return -err;
		}
		if (n == 0) {
			pr_err("%s: truncated (end of file at offset %lld, %zu bytes short)",
			       path, (long long)off, len);
			return -EIO;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int dcres_fsync_parent(const char *path)
{
	char copy[PATH_MAX];
	const char *dir;
	int fd, ret = 0;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	dir = dirname(copy);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_perror("open directory %s", dir);
		return ret;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		pr_perror("fsync directory %s", dir);
	}
	close(fd);
	return ret;
}

int dcres_rename_durable(const char *from, const char *to)
{
	if (rename(from, to) < 0) {
		int err = errno;
		pr_perror("rename %s to %s", from, to);
		return -err;
	}
	return dcres_fsync_parent(to);
}

/* Opens name below dirfd one component at a time, none a symlink or "..";
 * the last with flags and mode. */
static int open_walk(int dirfd, const char *name, int flags, mode_t mode)
{
	char copy[PATH_MAX], *save = NULL, *comp, *next;
	int cur = dirfd, fd;

	if (snprintf(copy, sizeof(copy), "%s", name) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	comp = strtok_r(copy, "/", &save);
	if (!comp)
		return -EINVAL;
	for (;; comp = next) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0)
			fd = -EXDEV;
		else if (next)
			fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd == -1)
			fd = -errno;
		/* A symlinked directory on the way fails O_DIRECTORY first. */
		struct stat sb;
		if (fd == -ENOTDIR && fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(sb.st_mode))
			fd = -ELOOP;
		if (cur != dirfd)
			close(cur);
		if (fd < 0 || !next)
			break;
		cur = fd;
	}
	return fd;
}

int dcres_open_beneath(int dirfd, const char *name, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};
	long fd;

	if (dirfd == AT_FDCWD) {
		fd = open(name, flags | O_CLOEXEC, mode);
		return fd < 0 ? -errno : (int)fd;
	}
	if (name[0] == '/')
		return -EXDEV;
	if (!dcres__fileio_no_openat2) {
		fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
	}
	return open_walk(dirfd, name, flags, mode);
}

int dcres_mkdirs_beneath(int dirfd, const char *rel)
{
	char copy[PATH_MAX], *save = NULL;
	int cur = -1, fd;

	if (rel[0] == '/')
		return -EXDEV;
	if (snprintf(copy, sizeof(copy), "%s", rel) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int at = cur >= 0 ? cur : dirfd;

		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0)
			fd = -EXDEV;
		else if (mkdirat(at, comp, 0700) < 0 && errno != EEXIST)
			fd = -errno;
		else if ((fd = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			fd = -errno;
		if (cur >= 0)
			close(cur);
		if (fd < 0)
			return fd;
		cur = fd;
	}
	if (cur < 0 && (cur = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	return cur;
}

int dcres_unique_name(const char *prefix, char *name, size_t len)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		return -errno;
	return snprintf(name, len, "%s.%08x", prefix, r) >= (int)len ? -ENAMETOOLONG : 0;
}

int dcres_create_unique(int dirfd, const char *prefix, int flags, char *name, size_t len,
			const char *display)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		int fd, ret = dcres_unique_name(prefix, name, len);

		if (ret)
			return ret;
		fd = openat(dirfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			ret = -errno;
			pr_perror("create %s (for %s)", name, display);
			return ret;
		}
	}
	pr_err("create a file %s.* for %s: every name tried exists", prefix, display);
	return -EEXIST;
}

/* dcres_publish_fileat for a real directory fd and a one-component name. */
static int publish_in(int dirfd, const char *name, const char *display, const void *data,
		      size_t len)
{
	char prefix[NAME_MAX + 1], tmp[NAME_MAX + 1];
	int fd, ret;

	if (strchr(name, '/') || snprintf(prefix, sizeof(prefix), "%s.tmp", name) >= 240)
		return -EINVAL;
	fd = dcres_create_unique(dirfd, prefix, O_WRONLY, tmp, sizeof(tmp), display);
	if (fd < 0)
		return fd;
	ret = dcres_pwrite_full(fd, data, len, 0, display);
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		pr_perror("fsync %s (temporary %s)", display, tmp);
	}
	close(fd);
	if (!ret && renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		pr_perror("rename %s over %s", tmp, display);
	}
	if (!ret && fsync(dirfd) < 0) {
		ret = -errno;
		pr_perror("fsync the directory of %s", display);
	}
	if (ret)
		unlinkat(dirfd, tmp, 0);
	return ret;
}

int dcres_publish_fileat(int dirfd, const char *name, const char *display, const void *data,
			 size_t len)
{
	char copy[PATH_MAX], copy2[PATH_MAX];
	int parent, ret;

	if (dirfd != AT_FDCWD)
		return publish_in(dirfd, name, display, data, len);
	if (snprintf(copy, sizeof(copy), "%s", name) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	memcpy(copy2, copy, sizeof(copy));
	parent = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0) {
		ret = -errno;
		pr_perror("open the directory of %s", display);
		return ret;
	}
	ret = publish_in(parent, basename(copy2), display, data, len);
	close(parent);
	return ret;
}

int dcres_publish_file(const char *path, const void *data, size_t len)
{
	return dcres_publish_fileat(AT_FDCWD, path, path, data, len);
}

int dcres_read_fileat(int dirfd, const char *name, const char *display, size_t max_len,
		      void **data, size_t *len)
{
	struct stat sb;
	void *buf;
	int fd, ret;

	fd = dcres_open_beneath(dirfd, name, O_RDONLY, 0);
	if (fd < 0) {
		errno = -fd;
		pr_perror("open %s", display);
		return fd;
	}
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		pr_perror("stat %s", display);
		close(fd);
		return ret;
	}
	ret = 0;
	if (!S_ISREG(sb.st_mode)) {
		pr_err("%s: not a regular file", display);
		ret = -EINVAL;
	} else if ((size_t)sb.st_size > max_len) {
		pr_err("%s: %lld bytes, more than the %zu allowed", display,
		       (long long)sb.st_size, max_len);
		ret = -EFBIG;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	ret = dcres_pread_full(fd, buf, (size_t)sb.st_size, 0, display);
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = (size_t)sb.st_size;
	return 0;
}

int dcres_read_file(const char *path, size_t max_len, void **data, size_t *len)
{
	return dcres_read_fileat(AT_FDCWD, path, path, max_len, data, len);
}
