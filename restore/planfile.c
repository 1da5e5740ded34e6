/* Plan files (plan.h).
 *
 * On disk, integers big-endian:
 *
 *     offset size field
 *          0    8 magic "DCRESPLN"
 *          8    4 version (1)
 *         12    4 page size (a power of two)
 *         16    8 page count N (at most PLAN_MAX_PAGES)
 *         24    4 sub-host count S (at most DCRES_PLAN_MAX_SUBS)
 *         28    4 length D of the checkpoint directory (1..PLAN_DIR_MAX)
 *         32    D the checkpoint directory: absolute, no NUL byte
 *       32+D  256 main.mem geometry as in main.loc: RAM block id, NUL-padded
 *      288+D    8   used length of the block (bytes)
 *      296+D    8   file offset of its mapped-ram bitmap
 *      304+D    8   file offset of its page 0
 *      312+D    N target byte of each page: 0 main, 1..S sub-host, 0xff zero
 *    312+D+N    N source byte of each page: 0 main, K server K, 0xff zero
 *   312+D+2N    N history byte of each page
 *   312+D+3N    4 CRC-32C of all the bytes before it
 *
 * A page's target is 0xff exactly when its source is. Published with
 * dcres_publish_file (0600, atomic). */
#include "dcres/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/bytes.h"
#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/memfile.h"
#include "plan-internal.h"

#define PLAN_MAGIC "DCRESPLN"
#define PLAN_VERSION 1u
#define PLAN_DIR_OFF 32u
#define PLAN_GEO_SIZE DCRES_MAPPED_RAM_GEO_LEN
/* As for main.loc: 16 TiB of 4 KiB pages bounds what a bad header allocates. */
#define PLAN_MAX_PAGES (1ull << 32)
#define PLAN_MAX_FILE (PLAN_DIR_OFF + PLAN_DIR_MAX + PLAN_GEO_SIZE + 3 * PLAN_MAX_PAGES + 4)

/* Bytes of the header (up to the target bytes) for a directory of dlen. */
static size_t header_size(size_t dlen)
{
	return PLAN_DIR_OFF + dlen + PLAN_GEO_SIZE;
}

/* Checks the fields and page bytes of p (what: the file, for messages):
 * 0, or -EINVAL with err naming what and what is wrong. */
static int check_plan(const struct dcres_plan *p, const char *what, char *err, size_t err_len)
{
	size_t dlen = p->ckpt_dir ? strlen(p->ckpt_dir) : 0;

	if (p->page_size != DCRES_CKPT_PAGE_SIZE)
		return plan_err(err, err_len, -ENOTSUP, "%s: page size %u in the header is not "
				"supported (only %u)", what, p->page_size, DCRES_CKPT_PAGE_SIZE);
	if (p->npages > PLAN_MAX_PAGES)
		return plan_err(err, err_len, -EINVAL, "%s: unsupported geometry (%llu pages of "
				"%u bytes)", what, (unsigned long long)p->npages, p->page_size);
	if (p->nsubs > DCRES_PLAN_MAX_SUBS)
		return plan_err(err, err_len, -EINVAL, "%s: %u sub-hosts, at most %u supported",
				what, p->nsubs, DCRES_PLAN_MAX_SUBS);
	if (!dlen || p->ckpt_dir[0] != '/' || dlen > PLAN_DIR_MAX)
		return plan_err(err, err_len, -EINVAL, "%s: checkpoint directory '%.200s' is not "
				"an absolute path of at most %d bytes", what,
				p->ckpt_dir ? p->ckpt_dir : "", PLAN_DIR_MAX);
	if (!memchr(p->main_file.block_id, 0, DCRES_MAPPED_RAM_ID_MAX))
		return plan_err(err, err_len, -EINVAL, "%s: RAM block id not NUL-terminated", what);
	for (uint64_t i = 0; i < p->npages; i++) {
		uint8_t d = p->target[i], s = p->source[i];

		if (d != DCRES_PLAN_ZERO && d > p->nsubs)
			return plan_err(err, err_len, -EINVAL, "%s: page %llu: target %u, but the "
					"plan has %u sub-hosts", what, (unsigned long long)i,
					d, p->nsubs);
		if ((d == DCRES_PLAN_ZERO) != (s == DCRES_PLAN_ZERO))
			return plan_err(err, err_len, -EINVAL, "%s: page %llu: target %u but source "
					"%u (zero pages must be zero in both)", what,
					(unsigned long long)i, d, s);
	}
	return 0;
}

int dcres_plan_write(const char *path, const struct dcres_plan *p, char *err, size_t err_len)
{
	size_t dlen, hdr, len;
	uint8_t *buf;
	int ret;

	ret = check_plan(p, path, err, err_len);
	if (ret)
		return ret;
	dlen = strlen(p->ckpt_dir);
	hdr = header_size(dlen);
	len = hdr + 3 * p->npages + 4;
	buf = calloc(len, 1);
	if (!buf)
		return plan_err(err, err_len, -ENOMEM, "%s: out of memory for %zu bytes", path, len);
	memcpy(buf, PLAN_MAGIC, 8);
	put_be32(buf + 8, PLAN_VERSION);
	put_be32(buf + 12, p->page_size);
	put_be64(buf + 16, p->npages);
	put_be32(buf + 24, p->nsubs);
	put_be32(buf + 28, (uint32_t)dlen);
	memcpy(buf + PLAN_DIR_OFF, p->ckpt_dir, dlen);
	dcres_mapped_ram_encode(&p->main_file, buf + PLAN_DIR_OFF + dlen);
	memcpy(buf + hdr, p->target, p->npages);
	memcpy(buf + hdr + p->npages, p->source, p->npages);
	memcpy(buf + hdr + 2 * p->npages, p->history, p->npages);
	put_be32(buf + len - 4, dcres_crc32c(0, buf, len - 4));
	ret = dcres_publish_file(path, buf, len);
	free(buf);
	if (ret)
		return plan_err(err, err_len, ret, "%s: cannot write the plan: %s", path,
				strerror(-ret));
	return 0;
}

/* Validates the framing of a plan file of len bytes at buf (magic,
 * version, sizes, CRC): 0, -EIO when truncated, else -EINVAL. */
static int check_file(const char *path, const uint8_t *buf, size_t len, char *err,
		      size_t err_len)
{
	uint64_t npages, want;
	uint32_t version, dlen;

	if (len >= 8 && memcmp(buf, PLAN_MAGIC, 8))
		return plan_err(err, err_len, -EINVAL, "%s: bad magic (not a dcres plan file)",
				path);
	if (len < PLAN_DIR_OFF)
		return plan_err(err, err_len, -EIO, "%s: truncated (%zu bytes)", path, len);
	version = get_be32(buf + 8);
	if (version != PLAN_VERSION)
		return plan_err(err, err_len, -EINVAL, "%s: unsupported version %u (version %u "
				"is)", path, version, PLAN_VERSION);
	npages = get_be64(buf + 16);
	dlen = get_be32(buf + 28);
	if (npages > PLAN_MAX_PAGES || !dlen || dlen > PLAN_DIR_MAX)
		return plan_err(err, err_len, -EINVAL, "%s: invalid header (%llu pages, "
				"directory of %u bytes)", path, (unsigned long long)npages, dlen);
	want = header_size(dlen) + 3 * npages + 4;
	if (len != want)
		return plan_err(err, err_len, len < want ? -EIO : -EINVAL,
				"%s: %s (%zu bytes, %llu expected for %llu pages)", path,
				len < want ? "truncated" : "trailing bytes", len,
				(unsigned long long)want, (unsigned long long)npages);
	if (get_be32(buf + len - 4) != dcres_crc32c(0, buf, len - 4))
		return plan_err(err, err_len, -EINVAL, "%s: checksum mismatch", path);
	if (memchr(buf + PLAN_DIR_OFF, 0, dlen))
		return plan_err(err, err_len, -EINVAL, "%s: NUL byte in the checkpoint directory",
				path);
	return 0;
}

/* Decodes a checked plan file at buf into p (zeroed): 0 or -ENOMEM. */
static int decode(const uint8_t *buf, struct dcres_plan *p)
{
	uint32_t dlen = get_be32(buf + 28);
	const uint8_t *g = buf + PLAN_DIR_OFF + dlen;
	size_t hdr = header_size(dlen);

	p->page_size = get_be32(buf + 12);
	p->npages = get_be64(buf + 16);
	p->nsubs = get_be32(buf + 24);
	p->ckpt_dir = strndup((const char *)buf + PLAN_DIR_OFF, dlen);
	p->target = malloc(p->npages ? p->npages : 1);
	p->source = malloc(p->npages ? p->npages : 1);
	p->history = malloc(p->npages ? p->npages : 1);
	if (!p->ckpt_dir || !p->target || !p->source || !p->history)
		return -ENOMEM;
	dcres_mapped_ram_decode(g, &p->main_file);
	memcpy(p->target, buf + hdr, p->npages);
	memcpy(p->source, buf + hdr + p->npages, p->npages);
	memcpy(p->history, buf + hdr + 2 * p->npages, p->npages);
	return 0;
}

int dcres_plan_read(const char *path, struct dcres_plan *p, char *err, size_t err_len)
{
	void *data;
	size_t len;
	int ret;

	memset(p, 0, sizeof(*p));
	ret = dcres_read_file(path, PLAN_MAX_FILE, &data, &len);
	if (ret)
		return plan_err(err, err_len, ret, "%s: cannot read the plan: %s", path,
				strerror(-ret));
	ret = check_file(path, data, len, err, err_len);
	if (!ret) {
		ret = decode(data, p);
		if (ret)
			plan_err(err, err_len, ret, "%s: out of memory for %zu bytes", path, len);
	}
	if (!ret)
		ret = check_plan(p, path, err, err_len);
	free(data);
	if (ret)
		dcres_plan_free(p);
	return ret;
}
