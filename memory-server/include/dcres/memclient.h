/* Client library of the dcres memory server, for the main host and tools.
 *
 * One dcres_memclient is one authenticated TCP connection to one memory
 * server, attached to one VM. Calls are synchronous and not thread-safe on
 * one client (use one client per thread). Requests larger than a frame are
 * split into batches. Every call returns 0 or a negative errno; why the
 * server refused a request is in dcres_memclient_reason() (for programs)
 * and dcres_memclient_error() (for humans). Network waits are bounded by
 * the timeout given at connect (-ETIMEDOUT), except the answers to
 * checkpoint sync and commit and to restore, which wait for disk
 * work and get DCRES_MEMCLIENT_LONG_TIMEOUT_MS. A call that fails on the
 * connection itself (a timeout, a failed send, a truncated or malformed
 * reply, one out of sequence, the server closing) leaves the connection
 * unusable: every later call on it fails at once with -ENOTCONN, sending
 * and reading nothing (a late reply is never taken for another call's);
 * close it and connect again. */
#ifndef DCRES_MEMCLIENT_H
#define DCRES_MEMCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"

struct dcres_memclient;

/* Why a server refused a request: proto/wire.proto's ErrorReason, value
 * for value (which errnos give which is listed there). NONE when the call
 * failed without a refusal: the server could not be reached, did not
 * answer in time, or the connection broke or is unusable (see above). */
enum dcres_mem_reason {
	DCRES_MEM_REASON_NONE = 0,
	DCRES_MEM_REASON_NO_ROOM = 1,          /* capacity or memory full; nothing stored */
	DCRES_MEM_REASON_NOT_FOUND = 2,        /* page, file or checkpoint not there */
	DCRES_MEM_REASON_BUSY = 3,             /* other work in the way; may pass later */
	DCRES_MEM_REASON_BAD_CHECKSUM = 4,     /* data failed its check, file unreadable */
	DCRES_MEM_REASON_REFUSED = 5,          /* not allowed: auth, fenced off, symlink */
	DCRES_MEM_REASON_BAD_REQUEST = 6,      /* malformed or out of range */
	DCRES_MEM_REASON_IO = 7,               /* the server's storage failed (or other) */
	DCRES_MEM_REASON_EXISTS = 8,           /* would replace what is there */
	DCRES_MEM_REASON_CANCELLED = 9,        /* the checkpoint was aborted meanwhile */
	DCRES_MEM_REASON_PEER_UNREACHABLE = 10,/* server to server: the other one failed */
};

#define DCRES_MEMCLIENT_LONG_TIMEOUT_MS (10 * 60 * 1000)

struct dcres_memstats {
	uint64_t capacity_pages, used_pages, vm_pages;
	uint64_t page_ins, page_outs;
	uint32_t vm_count, connections, ckpt_state;
	uint64_t ckpt_pages_written, ckpt_bytes_written, ckpt_pages_pending;
	uint64_t restore_pending;   /* lazy restore: pages not loaded yet */
	uint64_t restore_bad;       /* of those, pages that failed their check */
	bool has_server_id;
	uint8_t server_id[16];
};

/* A file of a checkpoint directory and, where known, its size and CRC-32C
 * (holes read as zeros). */
struct dcres_file_sum {
	const char *name;
	bool held;            /* file_sums: the server has it */
	uint64_t size;
	bool has_crc;         /* file_sums: crc32c is the server's (not quick) */
	uint32_t crc32c;
	char error[512];      /* file_sums: held but unusable, why ("" if not) */
};

/* What a memory server's checkpoint commit published. */
struct dcres_ckpt_part {
	uint64_t bytes_written; /* in all (rewrites count) */
	uint64_t pages;         /* pages in its files */
	struct dcres_file_sum mem, present; /* host-K.mem, host-K.present */
	char mem_name[32], present_name[32]; /* what their names point to */
	bool has_server_id;     /* the server said who it is */
	uint8_t server_id[16];
};

/* Connects to "HOST:PORT" and authenticates with psk. */
int dcres_memclient_connect(const char *addr, const struct dcres_psk *psk,
			    int timeout_ms, struct dcres_memclient **out);
void dcres_memclient_close(struct dcres_memclient *c);

/* Changes the timeout of the connection's ordinary requests. */
void dcres_memclient_set_timeout(struct dcres_memclient *c, int timeout_ms);

/* Binds the connection to VM uuid of ram_size bytes (created on the server
 * if new; an existing VM must have the same size). */
int dcres_memclient_attach(struct dcres_memclient *c, const uint8_t uuid[16],
			   uint64_t ram_size);

/* Like dcres_memclient_attach, and fences off the VM's exclusive
 * connections made before this one: page-ins and page-outs still in flight
 * on them are refused (-ESTALE) from now on. The pager attaches this way,
 * so a request it gave up on cannot land after it reconnected (and an
 * attempt it gave up cannot fence off a later one). */
int dcres_memclient_attach_exclusive(struct dcres_memclient *c, const uint8_t uuid[16],
				     uint64_t ram_size);

/* Stores n pages (data: n * 4096 bytes). A batch that does not fit is
 * refused whole with -ENOSPC and nothing stored. */
int dcres_memclient_page_out(struct dcres_memclient *c, const uint64_t *pages,
			     const void *data, size_t n);

/* Fetches n pages into data and releases them on the server. A page the
 * server does not hold is -ENOENT and nothing is released. A retry of the
 * VM's most recent page-in request (its reply may have been lost) is served
 * again, from this or another connection, until the VM's next page-in or
 * page-out; of a call split into batches, only the last batch is. */
int dcres_memclient_page_in(struct dcres_memclient *c, const uint64_t *pages,
			    void *data, size_t n);

int dcres_memclient_stats(struct dcres_memclient *c, struct dcres_memstats *st);

/* Checkpoint id of the attached VM's pages on this server as host host_id
 * of the checkpoint in dir (a path on the server). With parent_id (NULL
 * for a full checkpoint), incremental: only the pages the server received
 * since the stop point of its last committed checkpoint of the VM, which
 * must be parent_id (-ESTALE otherwise). */
int dcres_memclient_ckpt_begin(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			       const uint8_t id[16], const uint8_t *parent_id);
int dcres_memclient_ckpt_sync(struct dcres_memclient *c);
/* Final is the stop point (call it with the VM stopped): the pages the
 * server holds now are the checkpoint's; nothing is durable yet. It
 * answers within the ordinary timeout once a sync has returned (with more
 * than 4096 pages left it first waits for the writers). Commit
 * (any time after, e.g. once the VM runs again) makes the server's files
 * durable and reports what it published (out may be NULL). */
int dcres_memclient_ckpt_final(struct dcres_memclient *c);
int dcres_memclient_ckpt_commit(struct dcres_memclient *c, struct dcres_ckpt_part *out);
int dcres_memclient_ckpt_abort(struct dcres_memclient *c);

/* Loads the attached VM's pages from host host_id's files of checkpoint
 * dir: all of them (pages NULL, n 0) or exactly the n listed. */
int dcres_memclient_restore(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			    const uint64_t *pages, size_t n);

/* Like dcres_memclient_restore of the n listed pages, which the server
 * fetches itself from the server at peer ("HOST:PORT"), as that one serves
 * them from its copy of host host_id's files (server to server). */
int dcres_memclient_restore_from(struct dcres_memclient *c, const char *dir,
				 uint32_t host_id, const uint64_t *pages, size_t n,
				 const char *peer);

/* Reads n pages from host host_id's files of checkpoint dir on the server
 * into data, without loading them (restore onto another host set). */
int dcres_memclient_serve(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			  const uint64_t *pages, void *data, size_t n);

/* Lazy restore: registers the n listed pages of host host_id's files of
 * checkpoint dir (as the server at peer serves them, when peer is not
 * NULL) as held by the server without reading them yet (each is read,
 * its CRC checked, when a page-in asks for it or the loader reaches it);
 * then load has the server load them in the background, in the order
 * registered. */
int dcres_memclient_restore_lazy(struct dcres_memclient *c, const char *dir,
				 uint32_t host_id, const uint64_t *pages, size_t n,
				 const char *peer);
int dcres_memclient_load(struct dcres_memclient *c);

/* Whole files of checkpoint dir on the server (client-files.c). */
/* Fills held, size and crc32c (read and computed by the server now) of
 * each of the n files named in files[], and error for a memory or
 * presence file the server's readers refuse, or a memory file whose CRC
 * is not the crc32c given (non-zero) there, naming its damaged page.
 * quick: memory files (*.mem) are not read whole, only their header
 * checked: size given, has_crc false and crc32c left as it was. */
int dcres_memclient_file_sums(struct dcres_memclient *c, const char *dir,
			      struct dcres_file_sum *files, size_t n, bool quick);
/* Sends file fd (display names it in messages), announced as f's name,
 * size and CRC, to be stored as a copy in dir; only its data extents
 * travel. The server checks the CRC and publishes the file atomically,
 * never over another one. *sent (may be NULL) counts the bytes sent (0
 * when the server held that file already). */
int dcres_memclient_put_file(struct dcres_memclient *c, const char *dir,
			     const struct dcres_file_sum *f, int fd, const char *display,
			     uint64_t *sent);
/* Downloads file name of dir into fd (an empty file opened for writing;
 * holes stay holes); fills *got with its size and the CRC of what
 * arrived. */
int dcres_memclient_get_file(struct dcres_memclient *c, const char *dir, const char *name,
			     int fd, const char *display, struct dcres_file_sum *got);
/* Has the server copy the n files (names, sizes and CRCs given) of dir to
 * the server at peer itself (server to server); *sent (may be NULL)
 * counts the bytes it sent. */
int dcres_memclient_replicate(struct dcres_memclient *c, const char *dir,
			      const struct dcres_file_sum *files, size_t n, const char *peer,
			      uint64_t *sent);

/* Drops every page of the attached VM that this server holds (also its
 * pages retained for a page-in retry), before a restore loads the VM's
 * pages afresh; *released (may be NULL) counts the held pages dropped
 * (retained copies not counted). Refused (-EBUSY, nothing dropped) while
 * another connection is attached to the VM exclusively (the VM runs on
 * some main host; connections fenced off by a newer exclusive one do not
 * count) or a checkpoint of it runs. */
int dcres_memclient_release(struct dcres_memclient *c, uint64_t *released);

/* Makes a call blocked on c in another thread fail at once (-EPIPE or
 * the like); c is unusable afterwards except for dcres_memclient_close. */
void dcres_memclient_shutdown(struct dcres_memclient *c);

/* Why the server refused the last request sent on c, or NONE when it did
 * not refuse it (it succeeded, or the call failed without an answer). */
enum dcres_mem_reason dcres_memclient_reason(const struct dcres_memclient *c);
/* The server's message for the last refused request or, after a call on
 * a connection made unusable earlier, why it is ("" otherwise). */
const char *dcres_memclient_error(const struct dcres_memclient *c);
/* A short name of reason for logs ("no room", "busy", ...). */
const char *dcres_mem_reason_name(enum dcres_mem_reason reason);
/* "HOST:PORT" of the server. */
const char *dcres_memclient_peer(const struct dcres_memclient *c);

#endif
