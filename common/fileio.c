#define _GNU_SOURCE
#include "dcres/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"

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

int dcres_publish_file(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		pr_perror("create %s", tmp);
		return ret;
	}
	ret = dcres_pwrite_full(fd, data, len, 0, tmp);
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		pr_perror("fsync %s", tmp);
	}
	close(fd);
	if (!ret)
		ret = dcres_rename_durable(tmp, path);
	if (ret)
		unlink(tmp);
	return ret;
}

int dcres_read_file(const char *path, size_t max_len, void **data, size_t *len)
{
	struct stat sb;
	void *buf;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_perror("open %s", path);
		return ret;
	}
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		pr_perror("stat %s", path);
		close(fd);
		return ret;
	}
	if ((size_t)sb.st_size > max_len) {
		pr_err("%s: %lld bytes, more than the %zu allowed", path,
		       (long long)sb.st_size, max_len);
		close(fd);
		return -EFBIG;
	}
	buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	ret = dcres_pread_full(fd, buf, (size_t)sb.st_size, 0, path);
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = (size_t)sb.st_size;
	return 0;
}
