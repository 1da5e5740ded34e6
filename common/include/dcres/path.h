/* Path helpers shared by dcres components. */
#ifndef DCRES_PATH_H
#define DCRES_PATH_H

#include <stddef.h>

/* Writes into out (len bytes) the absolute path path relative to the
 * absolute directory root ("." when path is root itself; root "/" or with
 * trailing slashes is fine). Compares names only: the caller resolves
 * symlinks first if it must. Returns 0, -EINVAL when path is not absolute
 * or not root or below it, -ENAMETOOLONG when out is too small. Logs
 * nothing: the caller names both paths in its own message. */
int dcres_path_relative(const char *root, const char *path, char *out, size_t len);

#endif
