/* The memory server's id (server.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/uuid.h"
#include "server.h"

int server_id_load(struct server *srv, const char *path)
{
	char text[DCRES_UUID_STR_LEN + 1] = "";
	void *data = NULL;
	size_t len = 0;
	int ret;

	if (path) {
		ret = dcres_read_file(path, 64, &data, &len);
		if (!ret) {
			memcpy(text, data, len < DCRES_UUID_STR_LEN - 1 ? len : DCRES_UUID_STR_LEN - 1);
			text[strcspn(text, "\n")] = '\0';
			free(data);
			if (dcres_uuid_parse(text, srv->id)) {
				pr_err("--id-file %s: expected a UUID, found '%s'", path, text);
				return -EINVAL;
			}
			dcres_uuid_format(srv->id, srv->id_str);
			return 0;
		}
		if (ret != -ENOENT) {
			pr_err("--id-file %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	if (getrandom(srv->id, sizeof(srv->id), 0) != (ssize_t)sizeof(srv->id)) {
		pr_perror("getrandom for the server id");
		return -EIO;
	}
	srv->id[6] = (srv->id[6] & 0x0f) | 0x40; /* a random (version 4) UUID */
	srv->id[8] = (srv->id[8] & 0x3f) | 0x80;
	dcres_uuid_format(srv->id, srv->id_str);
	if (!path) {
		pr_info("server id %s (new at each start: no --id-file)", srv->id_str);
		return 0;
	}
	snprintf(text, sizeof(text), "%s\n", srv->id_str);
	ret = dcres_publish_file(path, text, strlen(text));
	if (ret)
		pr_err("--id-file %s: cannot create it: %s", path, strerror(-ret));
	else
		pr_info("server id %s, new, kept in %s", srv->id_str, path);
	return ret;
}
