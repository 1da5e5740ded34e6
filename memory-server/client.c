#define _GNU_SOURCE
#include "dcres/memclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dcres/log.h"
#include "client-internal.h"
#include "dcres/wire.h"


/* Splits "HOST:PORT" (HOST may be [v6]). */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t n;

	if (!colon || !colon[1])
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n && addr[0] == '[' && addr[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* Connects to one resolved address within timeout_ms. */
static int connect_timeout(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	struct pollfd pfd;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			return err;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		int n = poll(&pfd, 1, timeout_ms);
		if (n == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
			err = err ? -err : -errno;
			close(fd);
			return err;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int dcres_memclient_connect(const char *addr, const struct dcres_psk *psk,
			    int timeout_ms, struct dcres_memclient **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256], port[16];
	struct dcres_memclient *c;
	int one = 1, fd = -ENOENT, ret;

	if (split_addr(addr, host, sizeof(host), port, sizeof(port))) {
		pr_err("memory server address '%s' is not HOST:PORT", addr);
		return -EINVAL;
	}
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		pr_err("memory server %s: %s", addr, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if ((fd = connect_timeout(ai, timeout_ms)) >= 0)
			break;
	freeaddrinfo(res);
	if (fd < 0) {
		pr_err("memory server %s: cannot connect: %s", addr, strerror(-fd));
		return fd;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	dcres_memclient_set_timeout(c, timeout_ms);
	snprintf(c->peer, sizeof(c->peer), "memory server %s", addr);
	ret = dcres_auth_client(fd, psk, c->peer);
	if (ret) {
		if (ret == -ETIMEDOUT)
			pr_err("%s: no answer within %d ms", c->peer, timeout_ms);
		dcres_memclient_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void dcres_memclient_shutdown(struct dcres_memclient *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

void dcres_memclient_close(struct dcres_memclient *c)
{
	if (!c)
		return;
	dcres_frame_destroy(&c->rx);
	close(c->fd);
	free(c);
}

const char *dcres_memclient_error(const struct dcres_memclient *c)
{
	return c->error;
}

enum dcres_mem_reason dcres_memclient_reason(const struct dcres_memclient *c)
{
	return c->reason;
}

/* The public reasons are the wire's, value for value. */
#define MIRRORS(r) ((int)DCRES_MEM_REASON_##r == (int)DCRES__ERROR_REASON__ERR_##r)
_Static_assert(MIRRORS(NONE) && MIRRORS(NO_ROOM) && MIRRORS(NOT_FOUND) && MIRRORS(BUSY) &&
	       MIRRORS(BAD_CHECKSUM) && MIRRORS(REFUSED) && MIRRORS(BAD_REQUEST) &&
	       MIRRORS(IO) && MIRRORS(EXISTS) && MIRRORS(CANCELLED) &&
	       MIRRORS(PEER_UNREACHABLE),
	       "enum dcres_mem_reason mirrors ErrorReason of proto/wire.proto");
#undef MIRRORS

const char *dcres_mem_reason_name(enum dcres_mem_reason reason)
{
	switch (reason) {
	case DCRES_MEM_REASON_NONE: return "none";
	case DCRES_MEM_REASON_NO_ROOM: return "no room";
	case DCRES_MEM_REASON_NOT_FOUND: return "not found";
	case DCRES_MEM_REASON_BUSY: return "busy";
	case DCRES_MEM_REASON_BAD_CHECKSUM: return "bad checksum";
	case DCRES_MEM_REASON_REFUSED: return "refused";
	case DCRES_MEM_REASON_BAD_REQUEST: return "bad request";
	case DCRES_MEM_REASON_IO: return "I/O error";
	case DCRES_MEM_REASON_EXISTS: return "exists";
	case DCRES_MEM_REASON_CANCELLED: return "cancelled";
	case DCRES_MEM_REASON_PEER_UNREACHABLE: return "peer unreachable";
	}
	return "unknown";
}

const char *dcres_memclient_peer(const struct dcres_memclient *c)
{
	return c->peer;
}

/* The reason of error reply h (status < 0): the one it gives, or, from a
 * server that gives none or one this side does not know, the status's. */
static enum dcres_mem_reason reply_reason(const Dcres__Header *h, int status)
{
	if (h->has_reason && h->reason > DCRES__ERROR_REASON__ERR_NONE &&
	    h->reason <= DCRES__ERROR_REASON__ERR_PEER_UNREACHABLE)
		return (enum dcres_mem_reason)h->reason;
	return (enum dcres_mem_reason)dcres_wire_reason(status);
}

int memclient_call(struct dcres_memclient *c, Dcres__Header *h, const void *payload, size_t len)
{
	struct dcres_frame *r = &c->rx;
	int ret;

	c->error[0] = '\0';
	c->reason = DCRES_MEM_REASON_NONE;
	if (c->broken) {
		snprintf(c->error, sizeof(c->error), "connection to %s unusable after %s", c->peer,
			 c->broken);
		pr_err("%s not sent: %s", dcres_msg_name(h->type), c->error);
		return -ENOTCONN;
	}
	h->has_seq = 1;
	h->seq = ++c->seq;
	ret = dcres_frame_send(c->fd, h, payload, len);
	if (ret) {
		pr_err("%s: send %s: %s", c->peer, dcres_msg_name(h->type), strerror(-ret));
		/* A frame over the limits is refused before any byte goes; any
		 * other failure may have sent part of it. */
		if (ret != -EMSGSIZE)
			c->broken = "an earlier failed send";
		return ret;
	}
	ret = dcres_frame_recv(c->fd, r, c->peer);
	if (ret) {
		if (ret == -ECONNRESET)
			pr_err("%s: connection closed during %s", c->peer, dcres_msg_name(h->type));
		else if (ret == -ETIMEDOUT)
			pr_err("%s: no answer to %s in time", c->peer, dcres_msg_name(h->type));
		c->broken = ret == -ETIMEDOUT ? "an earlier timeout" : ret == -ECONNRESET
			? "the server closed it" : "a malformed or truncated reply";
		return ret;
	}
	if (r->hdr->type != DCRES__MSG_TYPE__MSG_REPLY || r->hdr->seq != h->seq) {
		pr_err("%s: unexpected %s (seq %llu) in answer to %s", c->peer,
		       dcres_msg_name(r->hdr->type), (unsigned long long)r->hdr->seq,
		       dcres_msg_name(h->type));
		dcres_frame_free(r);
		c->broken = "a reply out of sequence";
		return -EPROTO;
	}
	if (r->hdr->status) {
		ret = r->hdr->status < 0 ? r->hdr->status : -EPROTO;
		c->reason = reply_reason(r->hdr, ret);
		snprintf(c->error, sizeof(c->error), "%s", r->hdr->error ? r->hdr->error : "");
		pr_err("%s refused %s (%s): %s", c->peer, dcres_msg_name(h->type),
		       dcres_mem_reason_name(c->reason), c->error);
		dcres_frame_free(r);
		return ret;
	}
	return 0;
}

void memclient_set_reply_timeout(struct dcres_memclient *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

void dcres_memclient_set_timeout(struct dcres_memclient *c, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	c->timeout_ms = timeout_ms;
	memclient_set_reply_timeout(c, timeout_ms);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int memclient_long_call(struct dcres_memclient *c, Dcres__Header *h)
{
	int ret;

	memclient_set_reply_timeout(c, DCRES_MEMCLIENT_LONG_TIMEOUT_MS);
	ret = memclient_simple_call(c, h);
	memclient_set_reply_timeout(c, c->timeout_ms);
	return ret;
}

int memclient_simple_call(struct dcres_memclient *c, Dcres__Header *h)
{
	int ret = memclient_call(c, h, NULL, 0);

	if (!ret)
		dcres_frame_free(&c->rx);
	return ret;
}

Dcres__Header memclient_request(Dcres__MsgType type)
{
	Dcres__Header h = DCRES__HEADER__INIT;

	h.has_type = 1;
	h.type = type;
	return h;
}

/* ATTACH, exclusive or not. */
static int attach(struct dcres_memclient *c, const uint8_t uuid[16], uint64_t ram_size,
		  bool exclusive)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_ATTACH);

	h.has_vm_uuid = 1;
	h.vm_uuid = (ProtobufCBinaryData){ 16, (uint8_t *)uuid };
	h.has_ram_size = 1;
	h.ram_size = ram_size;
	h.has_page_size = 1;
	h.page_size = DCRES_PAGE_SIZE;
	h.has_exclusive = exclusive;
	h.exclusive = exclusive;
	return memclient_simple_call(c, &h);
}



int dcres_memclient_attach(struct dcres_memclient *c, const uint8_t uuid[16],
			   uint64_t ram_size)
{
	return attach(c, uuid, ram_size, false);
}

int dcres_memclient_attach_exclusive(struct dcres_memclient *c, const uint8_t uuid[16],
				     uint64_t ram_size)
{
	return attach(c, uuid, ram_size, true);
}

int dcres_memclient_page_out(struct dcres_memclient *c, const uint64_t *pages,
			     const void *data, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < DCRES_WIRE_MAX_PAGES ? n - done : DCRES_WIRE_MAX_PAGES;
		Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_PAGE_OUT);
		int ret;

		h.n_pages = k;
		h.pages = (uint64_t *)pages + done;
		ret = memclient_call(c, &h, (const char *)data + done * DCRES_PAGE_SIZE,
			   k * DCRES_PAGE_SIZE);
		if (ret)
			return ret;
		dcres_frame_free(&c->rx);
		done += k;
	}
	return 0;
}

/* Sends pages in frame-sized batches as requests of h's type and copies
 * each reply's payload (4096 bytes a page) into data. */
static int fetch_pages(struct dcres_memclient *c, Dcres__Header *h, const uint64_t *pages,
		       void *data, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < DCRES_WIRE_MAX_PAGES ? n - done : DCRES_WIRE_MAX_PAGES;
		struct dcres_frame *r = &c->rx;
		int ret;

		h->n_pages = k;
		h->pages = (uint64_t *)pages + done;
		ret = memclient_call(c, h, NULL, 0);
		if (ret)
			return ret;
		if (r->payload_len != k * DCRES_PAGE_SIZE) {
			pr_err("%s: %s answer carries %zu bytes for %zu pages", c->peer,
			       dcres_msg_name(h->type), r->payload_len, k);
			dcres_frame_free(r);
			return -EPROTO;
		}
		memcpy((char *)data + done * DCRES_PAGE_SIZE, r->payload, r->payload_len);
		dcres_frame_free(r);
		done += k;
	}
	return 0;
}

int dcres_memclient_page_in(struct dcres_memclient *c, const uint64_t *pages,
			    void *data, size_t n)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_PAGE_IN);

	return fetch_pages(c, &h, pages, data, n);
}

int dcres_memclient_serve(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			  const uint64_t *pages, void *data, size_t n)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_SERVE);

	h.path = (char *)dir;
	h.has_host_id = 1;
	h.host_id = host_id;
	return fetch_pages(c, &h, pages, data, n);
}

int dcres_memclient_stats(struct dcres_memclient *c, struct dcres_memstats *st)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_STATS);
	int ret = memclient_call(c, &h, NULL, 0);

	if (ret)
		return ret;
	memset(st, 0, sizeof(*st));
	if (c->rx.hdr->stats) {
		const Dcres__Stats *s = c->rx.hdr->stats;
		st->capacity_pages = s->capacity_pages;
		st->used_pages = s->used_pages;
		st->vm_pages = s->vm_pages;
		st->vm_count = s->vm_count;
		st->page_ins = s->page_ins;
		st->page_outs = s->page_outs;
		st->connections = s->connections;
		st->ckpt_state = s->ckpt_state;
		st->ckpt_pages_written = s->ckpt_pages_written;
		st->ckpt_bytes_written = s->ckpt_bytes_written;
		st->ckpt_pages_pending = s->ckpt_pages_pending;
		st->restore_pending = s->restore_pending;
		st->restore_bad = s->restore_bad;
		st->has_server_id = s->has_server_id && s->server_id.len == 16;
		if (st->has_server_id)
			memcpy(st->server_id, s->server_id.data, 16);
	}
	dcres_frame_free(&c->rx);
	return 0;
}

int dcres_memclient_ckpt_begin(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			       const uint8_t id[16], const uint8_t *parent_id)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_CKPT_BEGIN);

	h.path = (char *)dir;
	h.has_host_id = 1;
	h.host_id = host_id;
	h.has_ckpt_id = 1;
	h.ckpt_id = (ProtobufCBinaryData){ 16, (uint8_t *)id };
	if (parent_id) {
		h.has_parent_id = 1;
		h.parent_id = (ProtobufCBinaryData){ 16, (uint8_t *)parent_id };
	}
	return memclient_simple_call(c, &h);
}

int dcres_memclient_ckpt_sync(struct dcres_memclient *c)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_CKPT_SYNC);
	return memclient_long_call(c, &h);
}

/* Copies a FileInfo of a reply into f (name pointing into the reply). */
static void file_sum_from(struct dcres_file_sum *f, const Dcres__FileInfo *fi)
{
	f->name = fi->name;
	f->held = true;
	f->size = fi->size;
	f->crc32c = fi->crc32c;
}

int dcres_memclient_ckpt_final(struct dcres_memclient *c)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_CKPT_FINAL);
	return memclient_simple_call(c, &h);
}

int dcres_memclient_ckpt_commit(struct dcres_memclient *c, struct dcres_ckpt_part *out)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_CKPT_COMMIT);
	const Dcres__Header *r;
	int ret;

	memclient_set_reply_timeout(c, DCRES_MEMCLIENT_LONG_TIMEOUT_MS);
	ret = memclient_call(c, &h, NULL, 0);
	memclient_set_reply_timeout(c, c->timeout_ms);
	if (ret)
		return ret;
	r = c->rx.hdr;
	if (out) {
		memset(out, 0, sizeof(*out));
		if (r->stats) {
			out->bytes_written = r->stats->ckpt_bytes_written;
			out->pages = r->stats->ckpt_pages_saved;
			out->has_server_id = r->stats->has_server_id &&
					     r->stats->server_id.len == 16;
			if (out->has_server_id)
				memcpy(out->server_id, r->stats->server_id.data, 16);
		}
		if (r->n_files != 2 || !r->files[0]->name || !r->files[1]->name) {
			pr_err("%s: CKPT_COMMIT answer does not name its two files", c->peer);
			dcres_frame_free(&c->rx);
			return -EPROTO;
		}
		/* The names outlive the frame: copied into out's storage. */
		snprintf(out->mem_name, sizeof(out->mem_name), "%s", r->files[0]->name);
		snprintf(out->present_name, sizeof(out->present_name), "%s", r->files[1]->name);
		file_sum_from(&out->mem, r->files[0]);
		file_sum_from(&out->present, r->files[1]);
		out->mem.name = out->mem_name;
		out->present.name = out->present_name;
	}
	dcres_frame_free(&c->rx);
	return 0;
}

int dcres_memclient_ckpt_abort(struct dcres_memclient *c)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_CKPT_ABORT);
	return memclient_simple_call(c, &h);
}

/* RESTORE of the n listed pages (all with n 0), from peer if not NULL;
 * lazy: registered, not read. */
static int restore(struct dcres_memclient *c, const char *dir, uint32_t host_id,
		   const uint64_t *pages, size_t n, const char *peer, bool lazy)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_RESTORE);

	h.has_lazy = lazy;
	h.lazy = lazy;
	h.path = (char *)dir;
	h.has_host_id = 1;
	h.host_id = host_id;
	h.peer_address = (char *)peer;
	if (n == 0)
		return memclient_long_call(c, &h);
	/* A long list goes out in pieces that keep each header small. */
	for (size_t done = 0; done < n;) {
		size_t k = n - done < DCRES_WIRE_MAX_PAGES ? n - done : DCRES_WIRE_MAX_PAGES;
		int ret;

		h.n_pages = k;
		h.pages = (uint64_t *)pages + done;
		if ((ret = memclient_long_call(c, &h)))
			return ret;
		done += k;
	}
	return 0;
}

int dcres_memclient_restore(struct dcres_memclient *c, const char *dir, uint32_t host_id,
			    const uint64_t *pages, size_t n)
{
	return restore(c, dir, host_id, pages, n, NULL, false);
}

int dcres_memclient_restore_from(struct dcres_memclient *c, const char *dir,
				 uint32_t host_id, const uint64_t *pages, size_t n,
				 const char *peer)
{
	if (n == 0)
		return -EINVAL;
	return restore(c, dir, host_id, pages, n, peer, false);
}

int dcres_memclient_restore_lazy(struct dcres_memclient *c, const char *dir,
				 uint32_t host_id, const uint64_t *pages, size_t n,
				 const char *peer)
{
	if (n == 0)
		return -EINVAL;
	return restore(c, dir, host_id, pages, n, peer, true);
}

int dcres_memclient_load(struct dcres_memclient *c)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_LOAD);
	return memclient_simple_call(c, &h);
}

int dcres_memclient_release(struct dcres_memclient *c, uint64_t *released)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_RELEASE);
	int ret = memclient_call(c, &h, NULL, 0);

	if (ret)
		return ret;
	if (released)
		*released = c->rx.hdr->released;
	dcres_frame_free(&c->rx);
	return 0;
}
