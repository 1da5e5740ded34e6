/* One host's files of one checkpoint on a memory server (host-K.mem and
 * host-K.present below --dir), opened and checked against a VM, and read
 * page by page with each page's CRC checked. Functions return 0 or a
 * negative errno with err naming the file (relative to --dir) and page. */
#ifndef DCRES_MEMSERVER_SRV_HOSTFILES_H
#define DCRES_MEMSERVER_SRV_HOSTFILES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "vmstore.h"

struct srv_host_files {
	char mem_path[PATH_MAX], present_path[PATH_MAX]; /* rel/host-K.*, for messages */
	struct dcres_memfile *mf;
	struct dcres_presence present;
};

/* Opens host host_id's files of checkpoint rel below base_fd (no symlink
 * followed) and checks they are vm's: its UUID, RAM size, page count. */
int srv_host_files_open(struct srv_host_files *h, const struct vm *vm, int base_fd,
			const char *rel, uint32_t host_id, char *err, size_t err_len);

/* Reads pages[0..n) into buf (n * 4096 bytes) and checks each page's CRC
 * against the presence file: -EBADMSG naming the first that differs. */
int srv_host_files_read(struct srv_host_files *h, const uint64_t *pages, uint64_t n,
			void *buf, char *err, size_t err_len);

void srv_host_files_close(struct srv_host_files *h);

#endif
