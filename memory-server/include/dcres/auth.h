/* Pre-shared-key authentication of every wire connection: HMAC-SHA256
 * challenge/response in both directions (see proto/wire.proto). Nothing
 * else is accepted on a connection before it succeeds. */
#ifndef DCRES_AUTH_H
#define DCRES_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define DCRES_PSK_MIN_LEN 16
#define DCRES_PSK_MAX_LEN 4096

struct dcres_psk {
	uint8_t key[DCRES_PSK_MAX_LEN];
	size_t len;
};

/* Loads a key file (its bytes, a trailing newline dropped); shorter than
 * DCRES_PSK_MIN_LEN is -EINVAL; a file others can read is refused too
 * (-EPERM), naming the file. */
int dcres_psk_load(const char *path, struct dcres_psk *psk);

/* Runs the client side on fd: proves the server knows the key, then proves
 * it does. A wrong key on either side is -EACCES. */
int dcres_auth_client(int fd, const struct dcres_psk *psk, const char *peer);

/* Runs the server side on fd, all of it within timeout_ms (a peer that has
 * not authenticated by then is -ETIMEDOUT); frames are limited as
 * dcres_frame_recv_auth says. On failure an error reply is sent (the
 * caller closes the connection). */
int dcres_auth_server(int fd, const struct dcres_psk *psk, const char *peer,
		      unsigned timeout_ms);

#endif
