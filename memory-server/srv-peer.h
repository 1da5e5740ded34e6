/* The memory server as a client of another one, server to server: copying
 * checkpoint files to a replica (REPLICATE) and loading pages another
 * server serves from its copy of a checkpoint (RESTORE with peer_address).
 * The connection is authenticated with this server's own key and attached
 * to the VM of the request. Functions return 0 or a negative errno with
 * err naming the peer and the file or page. */
#ifndef DCRES_MEMSERVER_SRV_PEER_H
#define DCRES_MEMSERVER_SRV_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"
#include "dcres/memclient.h"
#include "dcres/wire.pb-c.h"
#include "vmstore.h"

#define SRV_PEER_CONNECT_MS 5000

/* Connects to the server at peer with psk and attaches to vm (not
 * exclusively). */
int srv_peer_connect(const struct dcres_psk *psk, const struct vm *vm, const char *peer,
		     struct dcres_memclient **out, char *err, size_t err_len);

/* Sends the n files (name, size, crc32c) of checkpoint rel below base_fd to
 * the server at peer, each published there once its CRC matches; *sent
 * counts the bytes sent. */
int srv_replicate(const struct dcres_psk *psk, const struct vm *vm, int base_fd,
		  const char *rel, Dcres__FileInfo *const *files, size_t n, const char *peer,
		  uint64_t *sent, char *err, size_t err_len);

/* Loads the n listed pages of vm as the server at peer serves them from
 * host host_id's files of checkpoint rel (each page's CRC checked there).
 * Pages stored before a failure stay (the restore releases them). */
int srv_restore_from_peer(struct vmstore *s, struct vm *vm, const struct dcres_psk *psk,
			  const char *rel, uint32_t host_id, const uint64_t *pages, uint64_t n,
			  const char *peer, char *err, size_t err_len);

#endif
