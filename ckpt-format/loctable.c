/* Location tables (loctable.h).
 *
 * On disk, integers big-endian:
 *
 *   offset size field
 *        0    8 magic "DCRESLOC"
 *        8    4 version (5)
 *       12    4 page size
 *       16    8 page count N (at most LOC_MAX_PAGES)
 *       24  256 main.mem geometry: RAM block id, NUL-padded (at least one NUL)
 *      280    8   used length of the block (bytes)
 *      288    8   file offset of its mapped-ram bitmap
 *      296    8   file offset of its page 0
 *      304    N host byte of each page
 *    304+N    N history byte of each page
 *  304+2N    2 length D of the servers' directory name, then its D bytes
 *       .    4 part count P, then P parts, each:
 *                4 host, 8 pages, 8 memory file size, 4 its CRC-32C,
 *                8 presence file size, 4 its CRC-32C, 2 address length A,
 *                A address bytes
 *       .   16 the checkpoint's id
 *       .    1 1 if it is incremental, else 0; then 16 bytes: its parent's id
 *       .  17P per part, in order: 1 if its server reported an id, else 0;
 *                then 16 bytes: that id
 *       .    4 CRC-32C of all the bytes before it
 *
 * Version 4 ends after the ids (CRC follows): read with no server ids.
 * Version 3 ends after the parts: read with a zero id and no parent. Version 2 ends after the history bytes: read with no parts
 * either. Version 1 (no geometry, host bytes at 24) is refused: only early
 * tests wrote it. Published with dcres_publish_file. */
#include "dcres/loctable.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/memfile.h"
#include "ondisk.h"

#define LOC_MAGIC "DCRESLOC"
#define LOC_VERSION 5u
#define LOC_IDS_LEN 33u /* version 4: id, incremental flag, parent id */
#define LOC_SERVER_ID_LEN 17u /* version 5, per part: flag, server id */
#define LOC_PART_FIXED 38u /* a part's bytes before its address */
#define LOC_GEO_OFF 24u
#define LOC_HDR_SIZE (LOC_GEO_OFF + DCRES_MAPPED_RAM_GEO_LEN)
/* 16 TiB of 4 KiB pages: bounds what a damaged header can make us allocate. */
#define LOC_MAX_PAGES (1ull << 32)
#define LOC_MAX_PARTS 254u
#define LOC_MAX_TAIL (2 + DCRES_LOC_TEXT_MAX + 4 + LOC_MAX_PARTS * (LOC_PART_FIXED + 256))
#define LOC_MAX_FILE (LOC_HDR_SIZE + 2 * LOC_MAX_PAGES + LOC_MAX_TAIL + LOC_IDS_LEN + 4)

int dcres_loctable_init(struct dcres_loctable *t, uint64_t npages, uint32_t page_size)
{
	memset(t, 0, sizeof(*t));
	if (page_size != DCRES_CKPT_PAGE_SIZE) {
		pr_err("location table: page size %u is not supported (only %u)", page_size,
		       DCRES_CKPT_PAGE_SIZE);
		return -ENOTSUP;
	}
	if (npages > LOC_MAX_PAGES) {
		pr_err("location table: unsupported geometry (%llu pages)",
		       (unsigned long long)npages);
		return -EINVAL;
	}
	t->host = malloc(npages ? npages : 1);
	t->history = calloc(npages ? npages : 1, 1);
	if (!t->host || !t->history) {
		dcres_loctable_free(t);
		return -ENOMEM;
	}
	memset(t->host, DCRES_LOC_ZERO, npages);
	t->npages = npages;
	t->page_size = page_size;
	return 0;
}

void dcres_loctable_free(struct dcres_loctable *t)
{
	free(t->host);
	free(t->history);
	free(t->parts);
	memset(t, 0, sizeof(*t));
}

int dcres_loctable_add_part(struct dcres_loctable *t, const struct dcres_loc_part *p)
{
	struct dcres_loc_part *v;

	if (p->host < 1 || p->host > LOC_MAX_PARTS ||
	    !memchr(p->address, 0, sizeof(p->address))) {
		pr_err("location table: part of host %u: bad host or address", p->host);
		return -EINVAL;
	}
	v = realloc(t->parts, (t->nparts + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->parts = v;
	t->parts[t->nparts++] = *p;
	return 0;
}

/* Bytes of t's parts section. */
static size_t tail_len(const struct dcres_loctable *t)
{
	size_t len = 2 + strlen(t->server_dir) + 4 + LOC_IDS_LEN;

	for (unsigned i = 0; i < t->nparts; i++)
		len += LOC_PART_FIXED + strlen(t->parts[i].address) + LOC_SERVER_ID_LEN;
	return len;
}

/* Writes t's parts section at q. */
static void encode_tail(const struct dcres_loctable *t, uint8_t *q)
{
	size_t d = strlen(t->server_dir);

	put_be16(q, (uint16_t)d);
	memcpy(q + 2, t->server_dir, d);
	q += 2 + d;
	put_be32(q, t->nparts);
	q += 4;
	for (unsigned i = 0; i < t->nparts; i++) {
		const struct dcres_loc_part *p = &t->parts[i];
		size_t a = strlen(p->address);

		put_be32(q, p->host);
		put_be64(q + 4, p->pages);
		put_be64(q + 12, p->mem_size);
		put_be32(q + 20, p->mem_crc);
		put_be64(q + 24, p->present_size);
		put_be32(q + 32, p->present_crc);
		put_be16(q + 36, (uint16_t)a);
		memcpy(q + LOC_PART_FIXED, p->address, a);
		q += LOC_PART_FIXED + a;
	}
	memcpy(q, t->ckpt_id, 16);
	q[16] = t->has_parent;
	memcpy(q + 17, t->parent_id, 16);
	q += LOC_IDS_LEN;
	for (unsigned i = 0; i < t->nparts; i++, q += LOC_SERVER_ID_LEN) {
		q[0] = t->parts[i].has_server_id;
		memcpy(q + 1, t->parts[i].server_id, 16);
	}
}

/* Decodes the parts section at q (len bytes, exactly: the ids after it in
 * a version 4 file, and the servers' ids in a version 5 one) into t;
 * -EINVAL naming path when it does not parse. */
static int decode_tail(const char *path, const uint8_t *q, size_t len, uint32_t version,
		       struct dcres_loctable *t)
{
	const uint8_t *end = q + len;
	uint32_t n;
	size_t d;

	if (len < 6 || (d = get_be16(q)) >= sizeof(t->server_dir) || (size_t)(end - q) < 6 + d)
		goto bad;
	memcpy(t->server_dir, q + 2, d);
	t->server_dir[d] = '\0';
	q += 2 + d;
	n = get_be32(q);
	q += 4;
	if (n > LOC_MAX_PARTS)
		goto bad;
	for (uint32_t i = 0; i < n; i++) {
		struct dcres_loc_part p = { 0 };
		size_t a;

		if ((size_t)(end - q) < LOC_PART_FIXED ||
		    (a = get_be16(q + 36)) >= sizeof(p.address) ||
		    (size_t)(end - q) < LOC_PART_FIXED + a)
			goto bad;
		p.host = get_be32(q);
		p.pages = get_be64(q + 4);
		p.mem_size = get_be64(q + 12);
		p.mem_crc = get_be32(q + 20);
		p.present_size = get_be64(q + 24);
		p.present_crc = get_be32(q + 32);
		memcpy(p.address, q + LOC_PART_FIXED, a);
		q += LOC_PART_FIXED + a;
		if (dcres_loctable_add_part(t, &p))
			goto bad;
	}
	if (version >= 4) {
		if ((size_t)(end - q) < LOC_IDS_LEN || q[16] > 1)
			goto bad;
		memcpy(t->ckpt_id, q, 16);
		t->has_parent = q[16];
		memcpy(t->parent_id, q + 17, 16);
		q += LOC_IDS_LEN;
	}
	for (uint32_t i = 0; version >= 5 && i < n; i++, q += LOC_SERVER_ID_LEN) {
		if ((size_t)(end - q) < LOC_SERVER_ID_LEN || q[0] > 1)
			goto bad;
		t->parts[i].has_server_id = q[0];
		memcpy(t->parts[i].server_id, q + 1, 16);
	}
	if (q == end)
		return 0;
bad:
	pr_err("%s: the servers' parts do not parse", path);
	return -EINVAL;
}

int dcres_loctable_write(const char *path, const struct dcres_loctable *t)
{
	size_t len = LOC_HDR_SIZE + 2 * t->npages + tail_len(t) + 4;
	const struct dcres_mapped_ram *geo = &t->main_file;
	size_t id_len = strnlen(geo->block_id, DCRES_MAPPED_RAM_ID_MAX);
	uint8_t *buf;
	int ret;

	if (id_len == DCRES_MAPPED_RAM_ID_MAX) {
		pr_err("%s: RAM block id too long (not NUL-terminated)", path);
		return -EINVAL;
	}
	if (!memchr(t->server_dir, 0, sizeof(t->server_dir)) || t->nparts > LOC_MAX_PARTS) {
		pr_err("%s: the servers' directory or parts do not fit", path);
		return -EINVAL;
	}
	buf = calloc(len, 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, LOC_MAGIC, 8);
	put_be32(buf + 8, LOC_VERSION);
	put_be32(buf + 12, t->page_size);
	put_be64(buf + 16, t->npages);
	dcres_mapped_ram_encode(geo, buf + LOC_GEO_OFF);
	memcpy(buf + LOC_HDR_SIZE, t->host, t->npages);
	memcpy(buf + LOC_HDR_SIZE + t->npages, t->history, t->npages);
	encode_tail(t, buf + LOC_HDR_SIZE + 2 * t->npages);
	put_be32(buf + len - 4, dcres_crc32c(0, buf, len - 4));
	ret = dcres_publish_file(path, buf, len);
	free(buf);
	return ret;
}

/* Validates a location table file of len bytes at buf (header, size, CRC);
 * -EINVAL, or -EIO when truncated, naming path. */
static int check_file(const char *path, const uint8_t *buf, size_t len)
{
	uint32_t version, page_size;
	uint64_t npages;

	if (len >= 12 && !memcmp(buf, LOC_MAGIC, 8) && get_be32(buf + 8) == 1) {
		pr_err("%s: location table version 1 (without the main.mem geometry) "
		       "is no longer supported; version %u is", path, LOC_VERSION);
		return -EINVAL;
	}
	if (len < LOC_HDR_SIZE + 4) {
		pr_err("%s: truncated (%zu bytes)", path, len);
		return -EIO;
	}
	if (memcmp(buf, LOC_MAGIC, 8)) {
		pr_err("%s: bad magic (not a dcres location table)", path);
		return -EINVAL;
	}
	version = get_be32(buf + 8);
	page_size = get_be32(buf + 12);
	npages = get_be64(buf + 16);
	if (version < 2 || version > LOC_VERSION) {
		pr_err("%s: unsupported version %u", path, version);
		return -EINVAL;
	}
	if (page_size != DCRES_CKPT_PAGE_SIZE) {
		pr_err("%s: page size %u in the header is not supported (only %u)", path,
		       page_size, DCRES_CKPT_PAGE_SIZE);
		return -ENOTSUP;
	}
	if (npages > LOC_MAX_PAGES) {
		pr_err("%s: invalid header (%llu pages of %u bytes)", path,
		       (unsigned long long)npages, page_size);
		return -EINVAL;
	}
	if (version == 2 ? len != LOC_HDR_SIZE + 2 * npages + 4
			 : len < LOC_HDR_SIZE + 2 * npages + 4 + 6) {
		bool short_file = len < LOC_HDR_SIZE + 2 * npages + 4;

		pr_err("%s: %s (%zu bytes for %llu pages)", path,
		       short_file ? "truncated" : "trailing bytes", len,
		       (unsigned long long)npages);
		return short_file ? -EIO : -EINVAL;
	}
	if (get_be32(buf + len - 4) != dcres_crc32c(0, buf, len - 4)) {
		pr_err("%s: checksum mismatch", path);
		return -EINVAL;
	}
	if (!memchr(buf + LOC_GEO_OFF, 0, DCRES_MAPPED_RAM_ID_MAX)) {
		pr_err("%s: RAM block id not NUL-terminated", path);
		return -EINVAL;
	}
	return 0;
}

int dcres_loctable_read(const char *path, struct dcres_loctable *t)
{
	void *data;
	uint8_t *buf;
	size_t len;
	int ret;

	memset(t, 0, sizeof(*t));
	ret = dcres_read_file(path, LOC_MAX_FILE, &data, &len);
	if (ret)
		return ret;
	buf = data;
	ret = check_file(path, buf, len);
	if (!ret)
		ret = dcres_loctable_init(t, get_be64(buf + 16), get_be32(buf + 12));
	if (!ret) {
		memcpy(t->host, buf + LOC_HDR_SIZE, t->npages);
		memcpy(t->history, buf + LOC_HDR_SIZE + t->npages, t->npages);
		dcres_mapped_ram_decode(buf + LOC_GEO_OFF, &t->main_file);
		if (get_be32(buf + 8) >= 3)
			ret = decode_tail(path, buf + LOC_HDR_SIZE + 2 * t->npages,
					  len - 4 - LOC_HDR_SIZE - 2 * t->npages,
					  get_be32(buf + 8), t);
		if (ret)
			dcres_loctable_free(t);
	}
	free(data);
	return ret;
}
