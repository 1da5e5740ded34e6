#include "dcres/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "dcres/log.h"

/* Sends the whole iovec, retrying partial sends. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (iovcnt && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

uint64_t dcres_wire_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until fd is readable or deadline_ms (0: no deadline) passes. */
static int wait_readable(int fd, uint64_t deadline_ms)
{
	if (!deadline_ms) /* the common case: every authenticated frame */
		return 0;
	for (;;) {
		uint64_t now = dcres_wire_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n;

		if (now >= deadline_ms)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)(deadline_ms - now));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Receives exactly len bytes before deadline_ms (0: none); 0 bytes at a
 * clean end of stream is -ECONNRESET, a stream ending mid-way is -EPROTO
 * (truncated frame). */
static int recv_all(int fd, void *buf, size_t len, int at_frame_start, uint64_t deadline_ms)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		int ret = wait_readable(fd, deadline_ms);
		if (ret)
			return ret;
		ssize_t n = recv(fd, p + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		if (n == 0)
			return at_frame_start && got == 0 ? -ECONNRESET : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

int dcres_frame_send(int fd, Dcres__Header *hdr, const void *payload, size_t len)
{
	uint32_t prefix[2];
	uint8_t stackbuf[512], *hbuf = stackbuf;
	size_t hlen;
	int ret;

	hdr->has_version = 1;
	hdr->version = DCRES__WIRE_VERSION__WIRE_VERSION;
	hdr->has_payload_len = len > 0;
	hdr->payload_len = len;
	hlen = dcres__header__get_packed_size(hdr);
	if (hlen > DCRES_WIRE_MAX_HEADER || len > DCRES_WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (hlen > sizeof(stackbuf) && !(hbuf = malloc(hlen)))
		return -ENOMEM;
	dcres__header__pack(hdr, hbuf);
	prefix[0] = htonl(DCRES_WIRE_MAGIC);
	prefix[1] = htonl((uint32_t)hlen);
	struct iovec iov[3] = {
		{ prefix, sizeof(prefix) },
		{ hbuf, hlen },
		{ (void *)payload, len },
	};
	ret = send_all(fd, iov, len ? 3 : 2);
	if (hbuf != stackbuf)
		free(hbuf);
	return ret;
}

/* Receives one frame within the limits given, before deadline_ms (0:
 * none). */
static int frame_recv(int fd, struct dcres_frame *f, const char *peer, uint32_t max_header,
		      size_t max_payload, uint64_t deadline_ms)
{
	uint32_t prefix[2], hlen;
	uint8_t *hbuf;
	int ret;

	f->hdr = NULL;
	f->payload_len = 0;
	ret = recv_all(fd, prefix, sizeof(prefix), 1, deadline_ms);
	if (ret == -EPROTO)
		pr_err("%s: truncated frame (stream ended inside the prefix)", peer);
	if (ret)
		return ret;
	if (ntohl(prefix[0]) != DCRES_WIRE_MAGIC) {
		pr_err("%s: bad frame magic 0x%08x (not a dcres peer?)", peer, ntohl(prefix[0]));
		return -EPROTO;
	}
	hlen = ntohl(prefix[1]);
	if (hlen == 0 || hlen > max_header) {
		pr_err("%s: frame header of %u bytes (limit %u)", peer, hlen, max_header);
		return -EMSGSIZE;
	}
	hbuf = malloc(hlen);
	if (!hbuf)
		return -ENOMEM;
	ret = recv_all(fd, hbuf, hlen, 0, deadline_ms);
	if (ret) {
		if (ret == -EPROTO)
			pr_err("%s: truncated frame header", peer);
		free(hbuf);
		return ret;
	}
	f->hdr = dcres__header__unpack(NULL, hlen, hbuf);
	free(hbuf);
	if (!f->hdr) {
		pr_err("%s: malformed frame header (protobuf does not parse)", peer);
		return -EPROTO;
	}
	if (!f->hdr->has_version || f->hdr->version != DCRES__WIRE_VERSION__WIRE_VERSION) {
		pr_err("%s: wire version %u, this side speaks %u", peer, f->hdr->version,
		       DCRES__WIRE_VERSION__WIRE_VERSION);
		dcres_frame_free(f);
		return -EPROTO;
	}
	if (f->hdr->has_payload_len && f->hdr->payload_len) {
		if (f->hdr->payload_len > max_payload) {
			pr_err("%s: frame payload of %llu bytes (limit %zu)", peer,
			       (unsigned long long)f->hdr->payload_len, max_payload);
			dcres_frame_free(f);
			return -EMSGSIZE;
		}
		if (f->hdr->payload_len > f->payload_cap) {
			free(f->payload);
			f->payload_cap = 0;
			if (posix_memalign(&f->payload, DCRES_PAGE_SIZE, f->hdr->payload_len)) {
				f->payload = NULL;
				dcres_frame_free(f);
				return -ENOMEM;
			}
			f->payload_cap = f->hdr->payload_len;
		}
		f->payload_len = f->hdr->payload_len;
		ret = recv_all(fd, f->payload, f->payload_len, 0, deadline_ms);
		if (ret) {
			if (ret == -EPROTO)
				pr_err("%s: truncated frame payload", peer);
			dcres_frame_free(f);
			return ret;
		}
	}
	return 0;
}

int dcres_frame_recv(int fd, struct dcres_frame *f, const char *peer)
{
	return frame_recv(fd, f, peer, DCRES_WIRE_MAX_HEADER, DCRES_WIRE_MAX_PAYLOAD, 0);
}

int dcres_frame_recv_auth(int fd, struct dcres_frame *f, const char *peer,
			  uint64_t deadline_ms)
{
	return frame_recv(fd, f, peer, DCRES_WIRE_MAX_AUTH_HEADER, 0, deadline_ms);
}

void dcres_frame_free(struct dcres_frame *f)
{
	if (f->hdr)
		dcres__header__free_unpacked(f->hdr, NULL);
	f->hdr = NULL;
	f->payload_len = 0;
}

void dcres_frame_destroy(struct dcres_frame *f)
{
	dcres_frame_free(f);
	free(f->payload);
	f->payload = NULL;
	f->payload_cap = 0;
}

Dcres__Header dcres_reply_header(uint64_t seq, int status)
{
	Dcres__Header h = DCRES__HEADER__INIT;

	h.has_type = 1;
	h.type = DCRES__MSG_TYPE__MSG_REPLY;
	h.has_seq = 1;
	h.seq = seq;
	h.has_status = 1;
	h.status = status;
	return h;
}

int dcres_reply_error(int fd, uint64_t seq, int status, Dcres__ErrorReason reason,
		      const char *fmt, ...)
{
	Dcres__Header h = dcres_reply_header(seq, status);
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h.error = msg;
	h.has_reason = 1;
	h.reason = reason;
	return dcres_frame_send(fd, &h, NULL, 0);
}

Dcres__ErrorReason dcres_wire_reason(int status)
{
	switch (-status) {
	case ENOSPC:
	case ENOMEM:
		return DCRES__ERROR_REASON__ERR_NO_ROOM;
	case ENOENT:
	case ENOTDIR:
		return DCRES__ERROR_REASON__ERR_NOT_FOUND;
	case EBUSY:
	case EAGAIN:
		return DCRES__ERROR_REASON__ERR_BUSY;
	case EBADMSG:
	case ENOTSUP:
		return DCRES__ERROR_REASON__ERR_BAD_CHECKSUM;
	case EACCES:
	case EPERM:
	case ESTALE:
	case ELOOP:
	case EXDEV:
		return DCRES__ERROR_REASON__ERR_REFUSED;
	case EINVAL:
	case ERANGE:
	case EMSGSIZE:
	case ENAMETOOLONG:
	case EPROTO:
		return DCRES__ERROR_REASON__ERR_BAD_REQUEST;
	case EEXIST:
		return DCRES__ERROR_REASON__ERR_EXISTS;
	case ECANCELED:
		return DCRES__ERROR_REASON__ERR_CANCELLED;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENOTCONN:
	case EPIPE:
		return DCRES__ERROR_REASON__ERR_PEER_UNREACHABLE;
	default:
		return DCRES__ERROR_REASON__ERR_IO;
	}
}

const char *dcres_msg_name(Dcres__MsgType t)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&dcres__msg_type__descriptor, (int)t);
	return v ? v->name : "unknown";
}
