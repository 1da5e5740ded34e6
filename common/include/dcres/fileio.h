/* File helpers shared by dcres components. All return 0 or a negative errno
 * and log the failure naming the file. Files dcres creates are mode 0600. */
#ifndef DCRES_FILEIO_H
#define DCRES_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* pwrite/pread of exactly len bytes at off, retrying short transfers;
 * a read hitting end of file is -EIO ("truncated"). path is for messages. */
int dcres_pwrite_full(int fd, const void *buf, size_t len, off_t off, const char *path);
int dcres_pread_full(int fd, void *buf, size_t len, off_t off, const char *path);

/* fsyncs the directory that contains path. */
int dcres_fsync_parent(const char *path);

/* Opens name below the directory dirfd without following any symlink and
 * without leaving that directory (openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS; component by component with O_NOFOLLOW on kernels
 * without openat2). name is relative; with dirfd AT_FDCWD it is an ordinary
 * path, opened as open(2) would. Returns the fd (O_CLOEXEC) or a negative
 * errno: -ELOOP for a symlink on the way, -EXDEV for an escape. Not logged. */
int dcres_open_beneath(int dirfd, const char *name, int flags, mode_t mode);

/* Makes the directory rel below dirfd, and those on the way to it (mode
 * 0700), none through a symlink, and returns an O_DIRECTORY fd of it or a
 * negative errno (not logged). */
int dcres_mkdirs_beneath(int dirfd, const char *rel);

/* Formats prefix.XXXXXXXX, a random suffix, into name (len bytes). */
int dcres_unique_name(const char *prefix, char *name, size_t len);

/* Creates a file that did not exist, in the directory dirfd, named
 * prefix.XXXXXXXX (dcres_unique_name) (O_CREAT | O_EXCL | O_NOFOLLOW, mode
 * 0600, flags added); its name goes to name (len bytes). Returns the fd or
 * a negative errno, logged naming display. */
int dcres_create_unique(int dirfd, const char *prefix, int flags, char *name, size_t len,
			const char *display);

/* Publishes data as name in the directory dirfd atomically: writes a new
 * temporary file there (unique name, O_EXCL, 0600), fsyncs it, renames it
 * over name and fsyncs the directory. name is one path component, or with
 * dirfd AT_FDCWD an ordinary path (published in its directory); display
 * names it in messages. On failure name is left as it was and the
 * temporary file is removed. */
int dcres_publish_fileat(int dirfd, const char *name, const char *display, const void *data,
			 size_t len);

/* dcres_publish_fileat(AT_FDCWD, path, path, ...). */
int dcres_publish_file(const char *path, const void *data, size_t len);

/* Renames from over to and fsyncs the directory of to. */
int dcres_rename_durable(const char *from, const char *to);

/* Reads the whole of path into a malloc'd buffer (*data, *len), refusing
 * files larger than max_len. */
int dcres_read_file(const char *path, size_t max_len, void **data, size_t *len);

/* dcres_read_file of name below dirfd, opened by dcres_open_beneath;
 * display names it in messages. */
int dcres_read_fileat(int dirfd, const char *name, const char *display, size_t max_len,
		      void **data, size_t *len);

#endif
