/* Path helpers (dcres/path.h). */
#include "dcres/path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int dcres_path_relative(const char *root, const char *path, char *out, size_t len)
{
	size_t n = strlen(root);
	const char *rest;

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (root[0] != '/' || path[0] != '/')
		return -EINVAL;
	if (n == 1)
		rest = path + 1;
	else if (!strncmp(path, root, n) && (path[n] == '/' || !path[n]))
		rest = path[n] ? path + n + 1 : "";
	else
		return -EINVAL;
	while (*rest == '/')
		rest++;
	if ((size_t)snprintf(out, len, "%s", *rest ? rest : ".") >= len)
		return -ENAMETOOLONG;
	return 0;
}
