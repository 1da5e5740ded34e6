/* Framing of the dcres wire protocol (proto/wire.proto): be32 magic, be32
 * header length, protobuf Header, raw payload of Header.payload_len bytes.
 * Shared by the memory server and its clients. Functions return 0 or a
 * negative errno and log what was wrong, naming the peer. */
#ifndef DCRES_WIRE_H
#define DCRES_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/wire.pb-c.h"

#define DCRES_WIRE_MAGIC 0x44435746u         /* "DCWF" */
#define DCRES_WIRE_MAX_HEADER (1u << 20)
/* Authentication frames are tiny: what an unauthenticated peer may send. */
#define DCRES_WIRE_MAX_AUTH_HEADER 512u
#define DCRES_WIRE_MAX_PAYLOAD (64u << 20)
#define DCRES_PAGE_SIZE 4096u
#define DCRES_WIRE_MAX_PAGES (DCRES_WIRE_MAX_PAYLOAD / DCRES_PAGE_SIZE)

/* A received frame. payload is 4096-aligned; its buffer is kept and reused
 * by the next dcres_frame_recv into the same frame (fresh buffers would cost
 * a page fault per page on every frame). Start from DCRES_FRAME_INIT. */
struct dcres_frame {
	Dcres__Header *hdr;
	void *payload;
	size_t payload_len;
	size_t payload_cap;
};
#define DCRES_FRAME_INIT { 0 }

/* Sends hdr (version is filled in, payload_len set to len) and len bytes
 * of payload. */
int dcres_frame_send(int fd, Dcres__Header *hdr, const void *payload, size_t len);

/* Receives one frame. End of stream before a frame is -ECONNRESET; a bad
 * magic, an unparsable header or a length over the limits is -EPROTO or
 * -EMSGSIZE; peer names the other side in messages. */
int dcres_frame_recv(int fd, struct dcres_frame *f, const char *peer);

/* As dcres_frame_recv, for a peer not authenticated yet: a header over
 * DCRES_WIRE_MAX_AUTH_HEADER bytes or any payload is refused (-EMSGSIZE)
 * before anything is allocated, and the whole frame must arrive before
 * deadline_ms (dcres_wire_now_ms's clock), else -ETIMEDOUT. */
int dcres_frame_recv_auth(int fd, struct dcres_frame *f, const char *peer,
			  uint64_t deadline_ms);

/* Milliseconds of CLOCK_MONOTONIC, the clock of deadlines. */
uint64_t dcres_wire_now_ms(void);

/* Releases f's header; the payload buffer stays for reuse. */
void dcres_frame_free(struct dcres_frame *f);
/* Releases f's header and payload buffer. */
void dcres_frame_destroy(struct dcres_frame *f);

/* A MSG_REPLY header answering request seq with status (0 or a negative
 * errno); the caller may add stats or an error message before sending. */
Dcres__Header dcres_reply_header(uint64_t seq, int status);

/* Sends an error MSG_REPLY: seq, status (a negative errno), reason (not
 * DCRES__ERROR_REASON__ERR_NONE) and a message for humans formatted from
 * fmt. */
int dcres_reply_error(int fd, uint64_t seq, int status, Dcres__ErrorReason reason,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The reason an error reply with status (a negative errno) gives by
 * default (proto/wire.proto lists the errnos of each); never ERR_NONE. A
 * transport errno (ETIMEDOUT, ECONNREFUSED, ...) in a reply can only come
 * from the server's own connection to another server:
 * ERR_PEER_UNREACHABLE. Errnos the table does not name are ERR_IO. */
Dcres__ErrorReason dcres_wire_reason(int status);

/* Name of a message type for logs. */
const char *dcres_msg_name(Dcres__MsgType t);

#endif
