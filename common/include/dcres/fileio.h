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

/* Publishes data as path atomically: writes path.tmp (0600), fsyncs it,
 * renames it over path and fsyncs the directory. On failure path is left
 * as it was and the temporary file is removed. */
int dcres_publish_file(const char *path, const void *data, size_t len);

/* Renames from over to and fsyncs the directory of to. */
int dcres_rename_durable(const char *from, const char *to);

/* Reads the whole of path into a malloc'd buffer (*data, *len), refusing
 * files larger than max_len. */
int dcres_read_file(const char *path, size_t max_len, void **data, size_t *len);

#endif
