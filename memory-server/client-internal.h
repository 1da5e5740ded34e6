/* Internals of the memory server's client library shared by its files
 * (client.c: connection and page calls; client-files.c: whole files). */
#ifndef DCRES_MEMCLIENT_INTERNAL_H
#define DCRES_MEMCLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/memclient.h"
#include "dcres/wire.h"

struct dcres_memclient {
	int fd;
	uint64_t seq;
	struct dcres_frame rx; /* replies; its payload buffer is reused */
	int timeout_ms;        /* for ordinary requests */
	char peer[128];
	char error[512];
	enum dcres_mem_reason reason; /* of the last refusal, NONE if none */
	const char *broken;    /* what left the connection unusable, NULL if usable */
};

/* Sends request h (+ payload) and receives its reply into c->rx (release
 * with dcres_frame_free after use). A reply with an error status is
 * returned as that status, its reason kept in c->reason and its message
 * in c->error and logged. A failure of the exchange itself (sending,
 * receiving, a reply out of sequence) makes c unusable (c->broken): every
 * later call returns -ENOTCONN at once. */
int memclient_call(struct dcres_memclient *c, Dcres__Header *h, const void *payload,
		   size_t len);

/* A request without payload whose reply carries nothing of interest. */
int memclient_simple_call(struct dcres_memclient *c, Dcres__Header *h);

/* Like memclient_simple_call for requests whose answer waits for disk work
 * proportional to the VM (checkpoint sync and final, restore, whole
 * files): the reply may take up to DCRES_MEMCLIENT_LONG_TIMEOUT_MS. */
int memclient_long_call(struct dcres_memclient *c, Dcres__Header *h);

/* A request header of type. */
Dcres__Header memclient_request(Dcres__MsgType type);

/* Sets how long the next replies may take. */
void memclient_set_reply_timeout(struct dcres_memclient *c, int ms);

#endif
