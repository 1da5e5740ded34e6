/* Whole checkpoint files through a memory server (memclient.h): sums,
 * copies sent and fetched, server-to-server replication. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client-internal.h"
#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"

#define FILE_CHUNK (4u << 20) /* bytes per FILE_PUT_DATA and FILE_GET */

/* Sends request h about the n files of dir (each named, with its CRC when
 * not 0, and its size too when sizes is set) and receives the reply into
 * c->rx; the answer may take up to DCRES_MEMCLIENT_LONG_TIMEOUT_MS (the
 * server reads whole files). */
static int call_with_files(struct dcres_memclient *c, Dcres__Header *h, const char *dir,
			   const struct dcres_file_sum *files, size_t n, bool sizes)
{
	Dcres__FileInfo *infos = calloc(n ? n : 1, sizeof(*infos));
	Dcres__FileInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	int ret = infos && ptrs ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < n; i++) {
		dcres__file_info__init(&infos[i]);
		infos[i].name = (char *)files[i].name;
		infos[i].has_crc32c = sizes || files[i].crc32c != 0;
		infos[i].crc32c = files[i].crc32c;
		infos[i].has_size = sizes;
		infos[i].size = files[i].size;
		ptrs[i] = &infos[i];
	}
	h->path = (char *)dir;
	h->n_files = n;
	h->files = ptrs;
	memclient_set_reply_timeout(c, DCRES_MEMCLIENT_LONG_TIMEOUT_MS);
	if (!ret)
		ret = memclient_call(c, h, NULL, 0);
	memclient_set_reply_timeout(c, c->timeout_ms);
	free(infos);
	free(ptrs);
	return ret;
}

int dcres_memclient_file_sums(struct dcres_memclient *c, const char *dir,
			      struct dcres_file_sum *files, size_t n, bool quick)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_FILE_SUMS);
	const Dcres__Header *r;
	int ret;

	h.has_quick = quick;
	h.quick = quick;
	ret = call_with_files(c, &h, dir, files, n, false);

	for (size_t i = 0; i < n; i++) {
		files[i].held = false;
		files[i].error[0] = '\0';
	}
	if (ret)
		return ret;
	r = c->rx.hdr;
	/* Held files come back in request order: match them by name. */
	for (size_t i = 0, j = 0; i < r->n_files; i++) {
		const Dcres__FileInfo *fi = r->files[i];

		while (j < n && (!fi->name || strcmp(fi->name, files[j].name)))
			j++;
		if (j == n) {
			pr_err("%s: FILE_SUMS answer names a file not asked for", c->peer);
			dcres_frame_free(&c->rx);
			return -EPROTO;
		}
		files[j].held = true;
		files[j].size = fi->size;
		files[j].has_crc = fi->has_crc32c;
		if (fi->has_crc32c)
			files[j].crc32c = fi->crc32c;
		snprintf(files[j].error, sizeof(files[j].error), "%s", fi->error ? fi->error : "");
		j++;
	}
	dcres_frame_free(&c->rx);
	return 0;
}

/* FILE_PUT_BEGIN of f into dir; *exists says the server has it already. */
static int put_begin(struct dcres_memclient *c, const char *dir, const struct dcres_file_sum *f,
		     bool *exists)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_FILE_PUT_BEGIN);
	Dcres__FileInfo fi = DCRES__FILE_INFO__INIT, *ptr = &fi;
	int ret;

	fi.name = (char *)f->name;
	fi.has_size = fi.has_crc32c = 1;
	fi.size = f->size;
	fi.crc32c = f->crc32c;
	h.path = (char *)dir;
	h.n_files = 1;
	h.files = &ptr;
	memclient_set_reply_timeout(c, DCRES_MEMCLIENT_LONG_TIMEOUT_MS);
	ret = memclient_call(c, &h, NULL, 0);
	memclient_set_reply_timeout(c, c->timeout_ms);
	if (ret)
		return ret;
	*exists = c->rx.hdr->exists;
	dcres_frame_free(&c->rx);
	return 0;
}

int dcres_memclient_put_file(struct dcres_memclient *c, const char *dir,
			     const struct dcres_file_sum *f, int fd, const char *display,
			     uint64_t *sent)
{
	uint8_t *buf = NULL;
	uint64_t pos = 0, total = 0;
	bool exists;
	int ret = put_begin(c, dir, f, &exists);

	if (sent)
		*sent = 0;
	if (ret || exists)
		return ret;
	if (!(buf = malloc(FILE_CHUNK)))
		return -ENOMEM;
	/* Data extents only: holes stay holes at the receiver. */
	while (!ret && pos < f->size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if (data < 0 || hole < 0) {
			ret = -errno;
			pr_perror("seek in %s", display);
			break;
		}
		if ((uint64_t)hole > f->size)
			hole = (off_t)f->size; /* the file grew: the announced size counts */
		for (off_t off = data; !ret && off < hole;) {
			size_t len = (size_t)(hole - off) < FILE_CHUNK ? (size_t)(hole - off)
								      : FILE_CHUNK;
			Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_FILE_PUT_DATA);

			ret = dcres_pread_full(fd, buf, len, off, display);
			h.has_offset = 1;
			h.offset = (uint64_t)off;
			if (!ret && !(ret = memclient_call(c, &h, buf, len)))
				dcres_frame_free(&c->rx);
			off += (off_t)len;
			total += len;
		}
		pos = (uint64_t)hole;
	}
	free(buf);
	if (!ret) {
		Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_FILE_PUT_END);

		ret = memclient_long_call(c, &h);
	}
	if (!ret && sent)
		*sent = total;
	return ret;
}

int dcres_memclient_get_file(struct dcres_memclient *c, const char *dir, const char *name,
			     int fd, const char *display, struct dcres_file_sum *got)
{
	Dcres__FileInfo fi = DCRES__FILE_INFO__INIT, *ptr = &fi;
	uint64_t pos = 0, size = UINT64_MAX;
	uint32_t crc = 0;
	int ret = 0;

	fi.name = (char *)name;
	while (!ret && pos < size) {
		Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_FILE_GET);
		const Dcres__Header *r;

		h.path = (char *)dir;
		h.n_files = 1;
		h.files = &ptr;
		h.has_offset = h.has_length = 1;
		h.offset = pos;
		h.length = FILE_CHUNK;
		if ((ret = memclient_call(c, &h, NULL, 0)))
			break;
		r = c->rx.hdr;
		if (r->n_files != 1 || !r->files[0]->has_size || r->offset < pos ||
		    r->offset + c->rx.payload_len > r->files[0]->size ||
		    (size != UINT64_MAX && r->files[0]->size != size) ||
		    (c->rx.payload_len == 0 && r->offset != r->files[0]->size)) {
			pr_err("%s: FILE_GET answer for %s/%s does not fit the file", c->peer, dir,
			       name);
			ret = -EPROTO;
		} else {
			size = r->files[0]->size;
			crc = dcres_crc32c_zeros(crc, r->offset - pos);
			crc = dcres_crc32c(crc, c->rx.payload, c->rx.payload_len);
			ret = dcres_pwrite_full(fd, c->rx.payload, c->rx.payload_len,
						(off_t)r->offset, display);
			pos = r->offset + c->rx.payload_len;
		}
		dcres_frame_free(&c->rx);
	}
	if (!ret && ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		pr_perror("set the size of %s", display);
	}
	if (!ret) {
		got->name = name;
		got->held = true;
		got->size = size;
		got->crc32c = crc;
	}
	return ret;
}

int dcres_memclient_replicate(struct dcres_memclient *c, const char *dir,
			      const struct dcres_file_sum *files, size_t n, const char *peer,
			      uint64_t *sent)
{
	Dcres__Header h = memclient_request(DCRES__MSG_TYPE__MSG_REPLICATE);
	int ret;

	h.peer_address = (char *)peer;
	if ((ret = call_with_files(c, &h, dir, files, n, true)))
		return ret;
	if (sent)
		*sent = c->rx.hdr->bytes_sent;
	dcres_frame_free(&c->rx);
	return 0;
}
