/* The memory server as a client of another one (srv-peer.h). */
#include "srv-peer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/wire.h"
#include "srv-ckpt.h"
#include "srv-files.h"

#define PEER_BATCH 4096 /* pages per SERVE from the peer: 16 MiB */

int srv_peer_connect(const struct dcres_psk *psk, const struct vm *vm, const char *peer,
			struct dcres_memclient **out, char *err, size_t err_len)
{
	int ret;

	if (!peer || !*peer) {
		snprintf(err, err_len, "no peer_address given");
		return -EINVAL;
	}
	ret = dcres_memclient_connect(peer, psk, SRV_PEER_CONNECT_MS, out);
	if (!ret && (ret = dcres_memclient_attach(*out, vm->uuid, vm->npages * DCRES_PAGE_SIZE))) {
		snprintf(err, err_len, "memory server %s refused VM %s: %s", peer, vm->name,
			 dcres_memclient_error(*out));
		dcres_memclient_close(*out);
		return ret;
	}
	if (ret)
		snprintf(err, err_len, "cannot reach memory server %s: %s", peer, strerror(-ret));
	return ret;
}

int srv_replicate(const struct dcres_psk *psk, const struct vm *vm, int base_fd,
		  const char *rel, Dcres__FileInfo *const *files, size_t n, const char *peer,
		  uint64_t *sent, char *err, size_t err_len)
{
	struct dcres_memclient *c = NULL;
	int dir_fd, ret = 0;

	*sent = 0;
	for (size_t i = 0; i < n; i++) {
		if (!files[i]->has_size || !files[i]->has_crc32c) {
			snprintf(err, err_len, "REPLICATE needs each file's size and CRC");
			return -EINVAL;
		}
		if ((ret = srv_file_name_check(files[i]->name, err, err_len)))
			return ret;
	}
	dir_fd = srv_ckpt_dir_open(base_fd, rel, false, err, err_len);
	if (dir_fd < 0)
		return dir_fd;
	ret = srv_peer_connect(psk, vm, peer, &c, err, err_len);
	for (size_t i = 0; i < n && !ret; i++) {
		struct dcres_file_sum f = { .name = files[i]->name, .size = files[i]->size,
					    .crc32c = files[i]->crc32c };
		char display[PATH_MAX];
		uint64_t bytes;
		int fd = dcres_open_beneath(dir_fd, f.name, O_RDONLY, 0);

		snprintf(display, sizeof(display), "%s/%s", rel, f.name);
		if (fd < 0) {
			ret = fd;
			snprintf(err, err_len, "%s: %s", display, strerror(-fd));
			break;
		}
		ret = dcres_memclient_put_file(c, rel, &f, fd, display, &bytes);
		close(fd);
		if (ret)
			snprintf(err, err_len, "copying %s to memory server %s: %s", display, peer,
				 *dcres_memclient_error(c) ? dcres_memclient_error(c)
							   : strerror(-ret));
		else
			*sent += bytes;
	}
	if (!ret)
		pr_info("VM %s: %zu files of %s copied to %s (%llu bytes sent)", vm->name, n, rel,
			peer, (unsigned long long)*sent);
	dcres_memclient_close(c);
	close(dir_fd);
	return ret;
}

int srv_restore_from_peer(struct vmstore *s, struct vm *vm, const struct dcres_psk *psk,
			  const char *rel, uint32_t host_id, const uint64_t *pages, uint64_t n,
			  const char *peer, char *err, size_t err_len)
{
	struct dcres_memclient *c = NULL;
	void *buf = NULL;
	int ret;

	if (n == 0) {
		snprintf(err, err_len, "RESTORE from a peer needs the list of pages");
		return -EINVAL;
	}
	if ((ret = srv_ckpt_path_check(rel, err, err_len)) ||
	    (ret = vm_check_pages(vm, pages, n, err, err_len)))
		return ret;
	if (posix_memalign(&buf, DCRES_PAGE_SIZE, PEER_BATCH * DCRES_PAGE_SIZE))
		return -ENOMEM;
	ret = srv_peer_connect(psk, vm, peer, &c, err, err_len);
	for (uint64_t done = 0; !ret && done < n;) {
		uint64_t b = n - done < PEER_BATCH ? n - done : PEER_BATCH;

		ret = dcres_memclient_serve(c, rel, host_id, pages + done, buf, b);
		if (ret)
			snprintf(err, err_len, "memory server %s serving pages of %s/host-%u.mem: %s",
				 peer, rel, host_id, *dcres_memclient_error(c)
				 ? dcres_memclient_error(c) : strerror(-ret));
		else
			ret = vm_page_out(s, vm, 0, pages + done, buf, b, err, err_len);
		done += b;
	}
	if (!ret)
		pr_info("VM %s: restored %llu pages of %s/host-%u.mem from %s", vm->name,
			(unsigned long long)n, rel, host_id, peer);
	dcres_memclient_close(c);
	free(buf);
	return ret;
}
