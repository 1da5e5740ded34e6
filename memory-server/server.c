#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
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
#include "dcres/memclient.h"
#include "dcres/wire.h"
#include "fault.h"
#include "srv-ckpt.h"
#include "srv-files.h"
#include "srv-lazy.h"
#include "srv-peer.h"

struct conn {
	struct server *srv;
	int fd, slot;
	uint64_t id;
	char host[64]; /* peer address, numeric */
	char peer[96]; /* "client HOST:PORT", for messages */
	struct vm *vm; /* after ATTACH */
	uint64_t epoch;/* id if attached exclusively, else 0 */
	void *out;     /* reply payload buffer, reused across requests */
	size_t out_cap;
	struct srv_put put; /* a file being received (FILE_PUT_*) */
};

/* Makes c->out hold at least len bytes, 4096-aligned. */
static int reserve_out(struct conn *c, size_t len)
{
	if (len <= c->out_cap)
		return 0;
	free(c->out);
	c->out_cap = 0;
	if (posix_memalign(&c->out, DCRES_PAGE_SIZE, len)) {
		c->out = NULL;
		return -ENOMEM;
	}
	c->out_cap = len;
	return 0;
}

int server_listen(struct server *srv, const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	char host[256];
	const char *colon = strrchr(addr, ':');
	int one = 1, fd, ret;

	if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
		pr_err("--listen %s: expected ADDR:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	ret = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (ret) {
		pr_err("--listen %s: %s", addr, gai_strerror(ret));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		ret = -errno;
		pr_perror("listen on %s", addr);
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return ret;
	}
	freeaddrinfo(res);
	srv->listen_fd = fd;
	return 0;
}

/* Sends an OK reply, optionally with stats and a payload. */
static int reply_ok(struct conn *c, uint64_t seq, Dcres__Stats *st, const void *payload,
		    size_t len)
{
	Dcres__Header h = dcres_reply_header(seq, 0);

	h.stats = st;
	return dcres_frame_send(c->fd, &h, payload, len);
}

static int handle_attach(struct conn *c, const Dcres__Header *h, char *err, size_t elen)
{
	if (!h->has_vm_uuid || h->vm_uuid.len != 16 || !h->has_ram_size) {
		snprintf(err, elen, "ATTACH needs vm_uuid (16 bytes) and ram_size");
		return -EINVAL;
	}
	if (h->has_page_size && h->page_size != DCRES_PAGE_SIZE) {
		snprintf(err, elen, "page size %u is not supported (only %u)", h->page_size,
			 DCRES_PAGE_SIZE);
		return -EINVAL;
	}
	struct vm *old = c->vm;
	int ret = vmstore_attach(&c->srv->store, h->vm_uuid.data, h->ram_size, &c->vm, err, elen);
	if (!ret && old && old != c->vm)
		vm_detach(old, c->id);
	if (!ret && h->has_exclusive && h->exclusive) {
		vm_fence(c->vm, c->id, c->peer);
		c->epoch = c->id;
	}
	return ret;
}

/* RELEASE: drops the attached VM's pages; *released gets their count. */
static int handle_release(struct conn *c, const Dcres__Header *h, uint64_t *released,
			  char *err, size_t elen)
{
	int ret;

	if (h->n_pages) {
		snprintf(err, elen, "RELEASE drops every page of the VM; it takes no page list");
		return -EINVAL;
	}
	ret = vm_release(&c->srv->store, c->vm, c->id, released, err, elen);
	if (!ret)
		pr_info("VM %s: released %llu pages for a restore", c->vm->name,
			(unsigned long long)*released);
	return ret;
}

static void fill_stats(struct conn *c, Dcres__Stats *st)
{
	struct server *srv = c->srv;

	st->has_server_id = 1;
	st->server_id = (ProtobufCBinaryData){ sizeof(srv->id), srv->id };
	st->has_capacity_pages = st->has_used_pages = st->has_vm_count = 1;
	st->capacity_pages = srv->arena.nslots;
	st->used_pages = vmstore_used_pages(&srv->store);
	pthread_mutex_lock(&srv->store.lock);
	st->vm_count = srv->store.count;
	pthread_mutex_unlock(&srv->store.lock);
	pthread_mutex_lock(&srv->lock);
	st->has_connections = 1;
	st->connections = srv->nconns;
	pthread_mutex_unlock(&srv->lock);
	if (c->vm) {
		pthread_mutex_lock(&c->vm->lock);
		st->has_vm_pages = st->has_page_ins = st->has_page_outs = 1;
		st->vm_pages = c->vm->held;
		st->page_ins = c->vm->page_ins;
		st->page_outs = c->vm->page_outs;
		srv_ckpt_stats(c->vm, st);
		srv_lazy_stats(c->vm, st);
		pthread_mutex_unlock(&c->vm->lock);
	}
}

#define MAX_FILES_PER_REQUEST 1024
#define FILE_GET_MAX (4u << 20)
#define FILE_ERROR_MAX 512

/* CKPT_COMMIT: replies with what was published (1), or returns the error
 * for dispatch to answer; -EPIPE when the reply could not be sent. */
static int handle_commit(struct conn *c, uint64_t seq, char *err, size_t elen)
{
	struct srv_ckpt_result res;
	Dcres__Stats st = DCRES__STATS__INIT;
	Dcres__FileInfo mem = DCRES__FILE_INFO__INIT, present = DCRES__FILE_INFO__INIT;
	Dcres__FileInfo *files[2] = { &mem, &present };
	Dcres__Header r;
	int ret = srv_ckpt_commit(c->vm, &res, err, elen);

	if (ret)
		return ret;
	r = dcres_reply_header(seq, 0);
	st.has_ckpt_bytes_written = st.has_ckpt_pages_saved = st.has_server_id = 1;
	st.server_id = (ProtobufCBinaryData){ sizeof(c->srv->id), c->srv->id };
	st.ckpt_bytes_written = res.bytes_written;
	st.ckpt_pages_saved = res.pages;
	mem.name = res.mem_name;
	present.name = res.present_name;
	mem.has_size = mem.has_crc32c = present.has_size = present.has_crc32c = 1;
	mem.size = res.mem_size;
	mem.crc32c = res.mem_crc;
	present.size = res.present_size;
	present.crc32c = res.present_crc;
	r.stats = &st;
	r.n_files = 2;
	r.files = files;
	return dcres_frame_send(c->fd, &r, NULL, 0) ? -EPIPE : 1;
}

/* The whole-file requests (srv-files.h, srv-peer.h). Returns 1 once it has
 * replied, -EPIPE when its reply could not be sent, otherwise 0 or a
 * negative errno (err set) for dispatch to answer. */
static int handle_file_request(struct conn *c, const struct dcres_frame *f, uint64_t seq,
			       char *err, size_t elen)
{
	const Dcres__Header *h = f->hdr;
	struct server *srv = c->srv;
	Dcres__Header r = dcres_reply_header(seq, 0);
	int ret;

	if (h->n_files > MAX_FILES_PER_REQUEST) {
		snprintf(err, elen, "%zu files in one request (limit %u)", h->n_files,
			 MAX_FILES_PER_REQUEST);
		return -EMSGSIZE;
	}
	switch (h->type) {
	case DCRES__MSG_TYPE__MSG_FILE_SUMS: {
		Dcres__FileInfo *out = calloc(h->n_files ? h->n_files : 1, sizeof(*out));
		Dcres__FileInfo **ptrs = calloc(h->n_files ? h->n_files : 1, sizeof(*ptrs));
		char *errs = calloc(h->n_files ? h->n_files : 1, FILE_ERROR_MAX);
		size_t n = 0;

		ret = out && ptrs && errs ? srv_file_sums(srv->dir_fd, h->path, h->files,
							  h->n_files, h->has_quick && h->quick,
							  out, &n, errs,
							  FILE_ERROR_MAX, err, elen) : -ENOMEM;
		for (size_t i = 0; i < n; i++)
			ptrs[i] = &out[i];
		r.n_files = n;
		r.files = ptrs;
		if (!ret)
			ret = dcres_frame_send(c->fd, &r, NULL, 0) ? -EPIPE : 1;
		free(out);
		free(ptrs);
		free(errs);
		return ret;
	}
	case DCRES__MSG_TYPE__MSG_FILE_PUT_BEGIN: {
		bool exists;

		ret = srv_put_begin(&c->put, srv->dir_fd, h->path, h->n_files == 1 ? h->files[0]
				    : NULL, &exists, err, elen);
		if (ret)
			return ret;
		r.has_exists = 1;
		r.exists = exists;
		return dcres_frame_send(c->fd, &r, NULL, 0) ? -EPIPE : 1;
	}
	case DCRES__MSG_TYPE__MSG_FILE_PUT_DATA:
		if (!h->has_offset || f->payload_len == 0) {
			snprintf(err, elen, "FILE_PUT_DATA needs an offset and data");
			srv_put_abort(&c->put);
			return -EINVAL;
		}
		return srv_put_data(&c->put, h->offset, f->payload, f->payload_len, err, elen);
	case DCRES__MSG_TYPE__MSG_FILE_PUT_END:
		return srv_put_end(&c->put, err, elen);
	case DCRES__MSG_TYPE__MSG_FILE_GET: {
		Dcres__FileInfo fi = DCRES__FILE_INFO__INIT, *ptr = &fi;
		uint64_t len = h->has_length && h->length < FILE_GET_MAX ? h->length : FILE_GET_MAX;
		uint64_t data_off, data_len;

		if (h->n_files != 1) {
			snprintf(err, elen, "FILE_GET names one file");
			return -EINVAL;
		}
		if ((ret = reserve_out(c, FILE_GET_MAX)) ||
		    (ret = srv_file_get(srv->dir_fd, h->path, h->files[0]->name, h->offset, len,
					c->out, &data_off, &data_len, &fi.size, err, elen)))
			return ret;
		fi.name = h->files[0]->name;
		fi.has_size = 1;
		r.has_offset = 1;
		r.offset = data_off;
		r.n_files = 1;
		r.files = &ptr;
		return dcres_frame_send(c->fd, &r, c->out, data_len) ? -EPIPE : 1;
	}
	case DCRES__MSG_TYPE__MSG_REPLICATE:
		ret = srv_replicate(&srv->psk, c->vm, srv->dir_fd, h->path, h->files, h->n_files,
				    h->peer_address, &r.bytes_sent, err, elen);
		if (ret)
			return ret;
		r.has_bytes_sent = 1;
		return dcres_frame_send(c->fd, &r, NULL, 0) ? -EPIPE : 1;
	default:
		return 0;
	}
}

/* The reason of the error reply to request h, refused with status: by the
 * errno (dcres_wire_reason), except where an errno means two things. A
 * full disk (ENOSPC) while writing a checkpoint or a file copy is ERR_IO,
 * not the page capacity; a peer's connection out of protocol (EPROTO
 * from REPLICATE or a RESTORE from a peer) is ERR_PEER_UNREACHABLE, not
 * a request of h's sender the server could not parse. */
static Dcres__ErrorReason refusal_reason(const Dcres__Header *h, int status)
{
	bool peer = h->type == DCRES__MSG_TYPE__MSG_REPLICATE ||
		    (h->type == DCRES__MSG_TYPE__MSG_RESTORE && h->peer_address);
	bool disk = (h->type >= DCRES__MSG_TYPE__MSG_CKPT_BEGIN &&
		     h->type <= DCRES__MSG_TYPE__MSG_CKPT_ABORT) ||
		    h->type == DCRES__MSG_TYPE__MSG_CKPT_COMMIT ||
		    (h->type >= DCRES__MSG_TYPE__MSG_FILE_PUT_BEGIN &&
		     h->type <= DCRES__MSG_TYPE__MSG_FILE_PUT_END) ||
		    h->type == DCRES__MSG_TYPE__MSG_REPLICATE;

	if (status == -ENOSPC && disk)
		return DCRES__ERROR_REASON__ERR_IO;
	if (status == -EPROTO && peer)
		return DCRES__ERROR_REASON__ERR_PEER_UNREACHABLE;
	return dcres_wire_reason(status);
}

/* Handles one authenticated request and replies. Returns a negative errno
 * only for protocol violations, after which the connection is closed;
 * refused requests are answered and return 0. */
static int dispatch(struct conn *c, struct dcres_frame *f)
{
	const Dcres__Header *h = f->hdr;
	struct server *srv = c->srv;
	uint64_t seq = h->has_seq ? h->seq : 0;
	char err[512] = "";
	int ret = 0;

	fault_before_request(srv->fault_file, h->type);
	if (h->type == DCRES__MSG_TYPE__MSG_STATS) {
		Dcres__Stats st = DCRES__STATS__INIT;
		fill_stats(c, &st);
		return reply_ok(c, seq, &st, NULL, 0);
	}
	if (h->type == DCRES__MSG_TYPE__MSG_ATTACH) {
		ret = handle_attach(c, h, err, sizeof(err));
		goto answer;
	}
	if (h->type < DCRES__MSG_TYPE__MSG_PAGE_OUT || h->type > DCRES__MSG_TYPE__MSG_LOAD) {
		dcres_reply_error(c->fd, seq, -EPROTO, DCRES__ERROR_REASON__ERR_BAD_REQUEST,
				  "unexpected message %s", dcres_msg_name(h->type));
		pr_err("%s: unexpected message %s", c->peer, dcres_msg_name(h->type));
		return -EPROTO;
	}
	/* Whole files are not a VM's pages: they need no ATTACH (a restore
	 * fetches the manifest before it knows the VM); the rest does. */
	if (!c->vm && !(h->type >= DCRES__MSG_TYPE__MSG_FILE_SUMS &&
			h->type <= DCRES__MSG_TYPE__MSG_FILE_GET)) {
		snprintf(err, sizeof(err), "%s before ATTACH", dcres_msg_name(h->type));
		ret = -EINVAL;
		goto answer;
	}
	if (h->n_pages > DCRES_WIRE_MAX_PAGES) {
		snprintf(err, sizeof(err), "%zu pages in one request (limit %u)", h->n_pages,
			 DCRES_WIRE_MAX_PAGES);
		ret = -EMSGSIZE;
		goto answer;
	}
	switch (h->type) {
	case DCRES__MSG_TYPE__MSG_PAGE_OUT:
		if (h->n_pages == 0 || f->payload_len != h->n_pages * DCRES_PAGE_SIZE) {
			dcres_reply_error(c->fd, seq, -EPROTO, DCRES__ERROR_REASON__ERR_BAD_REQUEST,
					  "PAGE_OUT of %zu pages carries %zu bytes", h->n_pages,
					  f->payload_len);
			pr_err("%s: PAGE_OUT of %zu pages carries %zu bytes", c->peer,
			       h->n_pages, f->payload_len);
			return -EPROTO;
		}
		ret = vm_page_out(&srv->store, c->vm, c->epoch, h->pages, f->payload, h->n_pages, err,
				  sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_PAGE_IN:
	case DCRES__MSG_TYPE__MSG_SERVE:
		if (h->n_pages == 0) {
			snprintf(err, sizeof(err), "%s without pages", dcres_msg_name(h->type));
			ret = -EINVAL;
			break;
		}
		if ((ret = reserve_out(c, h->n_pages * DCRES_PAGE_SIZE)))
			break;
		if (h->type == DCRES__MSG_TYPE__MSG_PAGE_IN)
			ret = vm_page_in(&srv->store, c->vm, c->epoch, h->pages, c->out, h->n_pages, err,
					 sizeof(err));
		else
			ret = srv_serve(c->vm, srv->dir_fd, h->path, h->host_id, h->pages,
					h->n_pages, c->out, err, sizeof(err));
		if (!ret)
			return reply_ok(c, seq, NULL, c->out, h->n_pages * DCRES_PAGE_SIZE);
		break;
	case DCRES__MSG_TYPE__MSG_CKPT_BEGIN: {
		static const uint8_t no_id[16];

		if ((h->has_ckpt_id && h->ckpt_id.len != 16) ||
		    (h->has_parent_id && h->parent_id.len != 16)) {
			snprintf(err, sizeof(err), "checkpoint ids are 16 bytes");
			ret = -EINVAL;
			break;
		}
		ret = srv_ckpt_begin(&srv->store, c->vm, srv->dir_fd, h->path, h->host_id,
				     h->has_ckpt_id ? h->ckpt_id.data : no_id,
				     h->has_parent_id ? h->parent_id.data : NULL, c->id,
				     err, sizeof(err));
		break;
	}
	case DCRES__MSG_TYPE__MSG_CKPT_SYNC:
		ret = srv_ckpt_sync(c->vm, err, sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_CKPT_FINAL:
		ret = srv_ckpt_final(c->vm, err, sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_CKPT_COMMIT:
		ret = handle_commit(c, seq, err, sizeof(err));
		if (ret == 1 || ret == -EPIPE)
			return ret == 1 ? 0 : ret;
		break;
	case DCRES__MSG_TYPE__MSG_CKPT_ABORT:
		ret = srv_ckpt_abort(c->vm, err, sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_RESTORE:
		if (h->has_lazy && h->lazy) {
			ret = srv_lazy_add(&srv->store, c->vm, srv->dir_fd, &srv->psk, h->path,
					   h->host_id, h->peer_address, h->pages, h->n_pages, err,
					   sizeof(err));
			if (ret == -ENOSPC && vmstore_drop_retained(&srv->store))
				ret = srv_lazy_add(&srv->store, c->vm, srv->dir_fd, &srv->psk,
						   h->path, h->host_id, h->peer_address, h->pages,
						   h->n_pages, err, sizeof(err));
			break;
		}
		if (h->peer_address) {
			ret = srv_restore_from_peer(&srv->store, c->vm, &srv->psk, h->path,
						    h->host_id, h->pages, h->n_pages,
						    h->peer_address, err, sizeof(err));
			break;
		}
		ret = srv_restore(&srv->store, c->vm, srv->dir_fd, h->path, h->host_id, h->pages,
				  h->n_pages, err, sizeof(err));
		/* Pages retained for page-in retries give way to a restore. */
		if (ret == -ENOSPC && vmstore_drop_retained(&srv->store))
			ret = srv_restore(&srv->store, c->vm, srv->dir_fd, h->path, h->host_id,
					  h->pages, h->n_pages, err, sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_LOAD:
		ret = srv_lazy_load(&srv->store, c->vm, err, sizeof(err));
		break;
	case DCRES__MSG_TYPE__MSG_RELEASE: {
		Dcres__Header r = dcres_reply_header(seq, 0);
		ret = handle_release(c, h, &r.released, err, sizeof(err));
		if (!ret) {
			r.has_released = 1;
			return dcres_frame_send(c->fd, &r, NULL, 0);
		}
		break;
	}
	default:
		ret = handle_file_request(c, f, seq, err, sizeof(err));
		if (ret == 1 || ret == -EPIPE)
			return ret == 1 ? 0 : ret;
		break;
	}
answer:
	if (ret) {
		Dcres__ErrorReason reason = refusal_reason(h, ret);

		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-ret));
		pr_warn("%s: %s refused (%s): %s", c->peer, dcres_msg_name(h->type),
			dcres_mem_reason_name((enum dcres_mem_reason)reason), err);
		return dcres_reply_error(c->fd, seq, ret, reason, "%s", err) == 0 ? 0 : -EPIPE;
	}
	return reply_ok(c, seq, NULL, NULL, 0);
}

/* Closes fd so that a reply just sent arrives: a close with unread input
 * (the rest of a malformed frame) would reset the connection and lose it.
 * Drains at most 1 MiB for at most SERVER_LINGER_MS in all, however the
 * peer trickles its bytes. */
static void linger_close(int fd)
{
	uint64_t deadline = dcres_wire_now_ms() + SERVER_LINGER_MS, now;
	char buf[4096];
	size_t drained = 0;

	shutdown(fd, SHUT_WR);
	while (drained < (1u << 20) && (now = dcres_wire_now_ms()) < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			break;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		drained += (size_t)n;
	}
	close(fd);
}

/* The handshake of c: on success its slot stops counting as
 * unauthenticated. A send blocked by a peer that reads nothing gives up at
 * the handshake's deadline too. */
static int authenticate(struct conn *c)
{
	struct server *srv = c->srv;
	struct timeval tv = { SERVER_AUTH_DEADLINE_MS / 1000, SERVER_AUTH_DEADLINE_MS % 1000 * 1000 };
	struct timeval none = { 0, 0 };
	int auth;

	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	auth = dcres_auth_server(c->fd, &srv->psk, c->peer, SERVER_AUTH_DEADLINE_MS);
	if (auth == -EPROTO || auth == -EMSGSIZE)
		dcres_reply_error(c->fd, 0, auth, DCRES__ERROR_REASON__ERR_BAD_REQUEST,
				  "malformed frame during authentication; closing");
	if (auth == -ETIMEDOUT)
		pr_warn("%s: not authenticated within %u ms; closing", c->peer,
			SERVER_AUTH_DEADLINE_MS);
	if (auth)
		return auth;
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	pthread_mutex_lock(&srv->lock);
	if (srv->slots[c->slot].unauth) { /* else closed as the oldest meanwhile */
		srv->slots[c->slot].unauth = false;
		srv->nunauth--;
	}
	pthread_mutex_unlock(&srv->lock);
	pr_debug("%s: authenticated", c->peer);
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct server *srv = c->srv;
	struct dcres_frame f = DCRES_FRAME_INIT;

	srv_put_init(&c->put);
	if (authenticate(c) == 0) {
		for (;;) {
			int ret = dcres_frame_recv(c->fd, &f, c->peer);
			if (ret) {
				if (ret == -EPROTO || ret == -EMSGSIZE)
					dcres_reply_error(c->fd, 0, ret,
							  DCRES__ERROR_REASON__ERR_BAD_REQUEST,
							  "malformed frame; closing");
				break;
			}
			ret = dispatch(c, &f);
			dcres_frame_free(&f);
			if (ret)
				break;
		}
	}
	dcres_frame_destroy(&f);
	free(c->out);
	srv_put_abort(&c->put);
	if (c->vm) {
		srv_ckpt_abort_owned(c->vm, c->id);
		vm_detach(c->vm, c->id);
	}
	linger_close(c->fd);
	pthread_mutex_lock(&srv->lock);
	if (srv->slots[c->slot].unauth)
		srv->nunauth--;
	srv->slots[c->slot] = (struct server_slot){ .fd = -1 };
	srv->nconns--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
	pr_debug("%s: closed", c->peer);
	free(c);
	return NULL;
}

/* Formats the peer address of fd: host (numeric) and "client HOST:PORT". */
static void peer_name(int fd, char *host, size_t host_len, char *out, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	char port[16];

	if (getpeername(fd, (struct sockaddr *)&sa, &salen) < 0 ||
	    getnameinfo((struct sockaddr *)&sa, salen, host, (socklen_t)host_len, port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(host, host_len, "?");
		snprintf(out, len, "client fd %d", fd);
	} else {
		snprintf(out, len, "client %s:%s", host, port);
	}
}

void server_init_slots(struct server *srv)
{
	for (unsigned i = 0; i < SERVER_MAX_CONNS; i++)
		srv->slots[i] = (struct server_slot){ .fd = -1 };
	srv->nconns = srv->nunauth = 0;
}

/* Finds a slot for a new connection from host (srv->lock held) and returns
 * it, or -1 with why explaining: all taken, or host already has its share
 * of connections still authenticating. With the unauthenticated ones at
 * their cap, the oldest of them is closed to make room (its thread frees
 * the slot), so a stream of new ones cannot starve a real peer. */
static int take_slot(struct server *srv, const char *host, const char **why)
{
	unsigned same_host = 0;
	int free_slot = -1, oldest = -1;

	for (int i = 0; i < SERVER_MAX_CONNS; i++) {
		struct server_slot *s = &srv->slots[i];
		if (s->fd < 0) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (!s->unauth)
			continue;
		same_host += strcmp(s->host, host) == 0;
		if (oldest < 0 || s->conn_id < srv->slots[oldest].conn_id)
			oldest = i;
	}
	if (same_host >= SERVER_MAX_UNAUTH_PER_PEER) {
		*why = "too many connections from this address still authenticating";
		return -1;
	}
	if (free_slot < 0) {
		*why = "too many connections";
		return -1;
	}
	if (srv->nunauth >= SERVER_MAX_UNAUTH && oldest >= 0) {
		pr_warn("%u connections still authenticating: closing the oldest, from %s",
			srv->nunauth, srv->slots[oldest].host);
		shutdown(srv->slots[oldest].fd, SHUT_RDWR);
		srv->slots[oldest].unauth = false; /* counted out now, freed by its thread */
		srv->nunauth--;
	}
	return free_slot;
}

void server_accept_loop(struct server *srv)
{
	for (;;) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC), one = 1;
		const char *why = NULL;
		struct conn *c;
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				continue;
			return; /* the listening socket was shut down */
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		peer_name(fd, c->host, sizeof(c->host), c->peer, sizeof(c->peer));
		pthread_mutex_lock(&srv->lock);
		c->slot = take_slot(srv, c->host, &why);
		if (c->slot < 0) {
			pthread_mutex_unlock(&srv->lock);
			pr_warn("%s: refused: %s", c->peer, why);
			/* A fresh socket's buffer takes this small reply at once;
			 * never wait for the peer here. */
			struct timeval tv = { 0, 10000 };
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			dcres_reply_error(fd, 0, -EBUSY, DCRES__ERROR_REASON__ERR_BUSY,
					  "too many connections");
			close(fd);
			free(c);
			continue;
		}
		c->id = ++srv->next_conn_id;
		srv->slots[c->slot] = (struct server_slot){ .fd = fd, .unauth = true,
							    .conn_id = c->id };
		snprintf(srv->slots[c->slot].host, sizeof(srv->slots[0].host), "%s", c->host);
		srv->nconns++;
		srv->nunauth++;
		pthread_mutex_unlock(&srv->lock);
		if (pthread_create(&t, NULL, conn_main, c)) {
			pthread_mutex_lock(&srv->lock);
			srv->slots[c->slot] = (struct server_slot){ .fd = -1 };
			srv->nconns--;
			srv->nunauth--;
			pthread_mutex_unlock(&srv->lock);
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
}

void server_shutdown(struct server *srv)
{
	shutdown(srv->listen_fd, SHUT_RDWR);
	pthread_mutex_lock(&srv->lock);
	for (int i = 0; i < SERVER_MAX_CONNS; i++)
		if (srv->slots[i].fd >= 0)
			shutdown(srv->slots[i].fd, SHUT_RDWR);
	while (srv->nconns)
		pthread_cond_wait(&srv->idle, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
}
