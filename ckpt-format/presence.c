/* Presence files (presence.h).
 *
 * On disk, integers big-endian unless noted:
 *
 *   offset size           field
 *        0    8           magic "DCRESPRS"
 *        8    4           version (1)
 *       12    4           page size
 *       16    8           page count N (at most PRESENCE_MAX_PAGES)
 *       24    8           present count P (set bits in the bitmap)
 *       32    8*ceil(N/64) bitmap, 64-bit little-endian words, page p is
 *                         bit p%64 of word p/64; bits past N are zero
 *        .    4*P         CRC-32C of each present page, in page order
 *        .    4           CRC-32C of all the bytes before it
 *
 * Published with dcres_publish_file. */
#include "dcres/presence.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "ondisk.h"

#define PRESENCE_MAGIC "DCRESPRS"
#define PRESENCE_VERSION 1u
#define PRESENCE_HDR_SIZE 32u
/* 16 TiB of 4 KiB pages: bounds what a damaged header can make us allocate. */
#define PRESENCE_MAX_PAGES (1ull << 32)
#define PRESENCE_MAX_FILE \
	(PRESENCE_HDR_SIZE + PRESENCE_MAX_PAGES / 8 + 4 * PRESENCE_MAX_PAGES + 4)
/* verify_pages: pages of page-index space per parallel task, and pages per read. */
#define VERIFY_TASK_PAGES 16384u
#define VERIFY_READ_BYTES (1u << 20)
#define BUF_ALIGN 4096u

static uint64_t nwords(uint64_t npages)
{
	return (npages + 63) / 64;
}

int dcres_presence_init(struct dcres_presence *p, uint64_t npages, uint32_t page_size)
{
	memset(p, 0, sizeof(*p));
	if (page_size != DCRES_CKPT_PAGE_SIZE) {
		pr_err("presence: page size %u is not supported (only %u)", page_size,
		       DCRES_CKPT_PAGE_SIZE);
		return -ENOTSUP;
	}
	if (npages > PRESENCE_MAX_PAGES) {
		pr_err("presence: unsupported geometry (%llu pages)", (unsigned long long)npages);
		return -EINVAL;
	}
	p->bits = calloc(nwords(npages) ? nwords(npages) : 1, sizeof(*p->bits));
	p->page_crc = calloc(npages ? npages : 1, sizeof(*p->page_crc));
	if (!p->bits || !p->page_crc) {
		dcres_presence_free(p);
		return -ENOMEM;
	}
	p->npages = npages;
	p->page_size = page_size;
	return 0;
}

void dcres_presence_free(struct dcres_presence *p)
{
	free(p->bits);
	free(p->page_crc);
	memset(p, 0, sizeof(*p));
}

void dcres_presence_set(struct dcres_presence *p, uint64_t page, uint32_t crc)
{
	p->bits[page / 64] |= 1ull << (page % 64);
	p->page_crc[page] = crc;
}

void dcres_presence_clear(struct dcres_presence *p, uint64_t page)
{
	p->bits[page / 64] &= ~(1ull << (page % 64));
	p->page_crc[page] = 0;
}

bool dcres_presence_test(const struct dcres_presence *p, uint64_t page)
{
	return p->bits[page / 64] >> (page % 64) & 1;
}

uint64_t dcres_presence_count(const struct dcres_presence *p)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nwords(p->npages); i++)
		n += (uint64_t)__builtin_popcountll(p->bits[i]);
	return n;
}

int dcres_presence_check_page(const struct dcres_presence *p, uint64_t page,
			      const void *data)
{
	if (page >= p->npages || !dcres_presence_test(p, page))
		return -ENOENT;
	return dcres_crc32c(0, data, p->page_size) == p->page_crc[page] ? 0 : -EBADMSG;
}

/* Encodes p as its file's bytes into a new buffer *out of *len bytes. */
static int encode(const struct dcres_presence *p, uint8_t **out, size_t *len)
{
	uint64_t words = nwords(p->npages), present = dcres_presence_count(p);
	uint8_t *buf, *q;

	*len = PRESENCE_HDR_SIZE + 8 * words + 4 * present + 4;
	buf = malloc(*len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, PRESENCE_MAGIC, 8);
	put_be32(buf + 8, PRESENCE_VERSION);
	put_be32(buf + 12, p->page_size);
	put_be64(buf + 16, p->npages);
	put_be64(buf + 24, present);
	q = buf + PRESENCE_HDR_SIZE;
	for (uint64_t i = 0; i < words; i++, q += 8)
		put_le64(q, p->bits[i]);
	for (uint64_t page = 0; page < p->npages; page++) {
		if (dcres_presence_test(p, page)) {
			put_be32(q, p->page_crc[page]);
			q += 4;
		}
	}
	put_be32(q, dcres_crc32c(0, buf, *len - 4));
	*out = buf;
	return 0;
}

int dcres_presence_write_at(int dirfd, const char *name, const char *path,
			    const struct dcres_presence *p, uint64_t *size, uint32_t *crc)
{
	uint8_t *buf;
	size_t len;
	int ret = encode(p, &buf, &len);

	if (ret)
		return ret;
	ret = dcres_publish_fileat(dirfd, name, path, buf, len);
	if (!ret && size)
		*size = len;
	if (!ret && crc)
		*crc = dcres_crc32c(0, buf, len);
	free(buf);
	return ret;
}

int dcres_presence_write(const char *path, const struct dcres_presence *p)
{
	return dcres_presence_write_at(AT_FDCWD, path, path, p, NULL, NULL);
}

/* Checks the header of a presence file of len bytes at buf: the geometry,
 * then that len is exactly what it implies. -EINVAL/-EIO naming path. */
static int check_header(const char *path, const uint8_t *buf, size_t len)
{
	uint64_t npages, present, want;
	uint32_t version, page_size;

	if (len < PRESENCE_HDR_SIZE + 4) {
		pr_err("%s: truncated (%zu bytes)", path, len);
		return -EIO;
	}
	if (memcmp(buf, PRESENCE_MAGIC, 8)) {
		pr_err("%s: bad magic (not a dcres presence file)", path);
		return -EINVAL;
	}
	version = get_be32(buf + 8);
	page_size = get_be32(buf + 12);
	npages = get_be64(buf + 16);
	present = get_be64(buf + 24);
	if (version != PRESENCE_VERSION) {
		pr_err("%s: unsupported version %u", path, version);
		return -EINVAL;
	}
	if (page_size != DCRES_CKPT_PAGE_SIZE) {
		pr_err("%s: page size %u in the header is not supported (only %u)", path,
		       page_size, DCRES_CKPT_PAGE_SIZE);
		return -ENOTSUP;
	}
	if (npages > PRESENCE_MAX_PAGES || present > npages) {
		pr_err("%s: invalid header (%llu of %llu pages of %u bytes)", path,
		       (unsigned long long)present, (unsigned long long)npages, page_size);
		return -EINVAL;
	}
	want = PRESENCE_HDR_SIZE + 8 * nwords(npages) + 4 * present + 4;
	if (len != want) {
		pr_err("%s: %s (%zu bytes, header implies %llu)", path,
		       len < want ? "truncated" : "trailing bytes", len,
		       (unsigned long long)want);
		return len < want ? -EIO : -EINVAL;
	}
	return 0;
}

/* Decodes a presence file whose header and size check_header accepted. */
static int decode(const char *path, const uint8_t *buf, size_t len,
		  struct dcres_presence *p)
{
	const uint8_t *q = buf + PRESENCE_HDR_SIZE;
	uint64_t present = get_be64(buf + 24);
	int ret;

	if (get_be32(buf + len - 4) != dcres_crc32c(0, buf, len - 4)) {
		pr_err("%s: checksum mismatch", path);
		return -EINVAL;
	}
	ret = dcres_presence_init(p, get_be64(buf + 16), get_be32(buf + 12));
	if (ret)
		return ret;
	for (uint64_t i = 0; i < nwords(p->npages); i++, q += 8)
		p->bits[i] = get_le64(q);
	if (p->npages % 64 && p->bits[p->npages / 64] >> (p->npages % 64)) {
		pr_err("%s: bits set past the last of %llu pages", path,
		       (unsigned long long)p->npages);
		goto err;
	}
	if (dcres_presence_count(p) != present) {
		pr_err("%s: %llu CRCs for %llu present pages", path,
		       (unsigned long long)present,
		       (unsigned long long)dcres_presence_count(p));
		goto err;
	}
	for (uint64_t page = 0; page < p->npages; page++) {
		if (dcres_presence_test(p, page)) {
			p->page_crc[page] = get_be32(q);
			q += 4;
		}
	}
	return 0;
err:
	dcres_presence_free(p);
	return -EINVAL;
}

int dcres_presence_read(const char *path, struct dcres_presence *p)
{
	return dcres_presence_read_at(AT_FDCWD, path, path, p);
}

int dcres_presence_read_at(int dirfd, const char *name, const char *path,
			   struct dcres_presence *p)
{
	void *data;
	size_t len;
	int ret;

	memset(p, 0, sizeof(*p));
	ret = dcres_read_fileat(dirfd, name, path, PRESENCE_MAX_FILE, &data, &len);
	if (ret)
		return ret;
	ret = check_header(path, data, len);
	if (!ret)
		ret = decode(path, data, len, p);
	free(data);
	return ret;
}

/* Outcome of verify_pages so far: the lowest failing task and its result. */
struct verify_state {
	uint64_t fail_task; /* UINT64_MAX while none failed */
	int err;	    /* -EBADMSG (bad_page, got) or the read error */
	uint64_t bad_page;
	uint32_t got;
};

/* Checks the present pages among [first, end) in order, reading them in
 * batches into buf; returns 0, -EBADMSG with *bad_page and *got set, or a
 * read error. */
static int verify_range(const struct dcres_presence *p, struct dcres_memfile *mf,
			uint64_t first, uint64_t end, uint64_t *pages, uint8_t *buf,
			size_t batch, uint64_t *bad_page, uint32_t *got)
{
	uint64_t page = first;

	while (page < end) {
		size_t n = 0;
		int ret;

		for (; page < end && n < batch; page++) {
			if (dcres_presence_test(p, page))
				pages[n++] = page;
		}
		ret = dcres_memfile_read_pages(mf, pages, buf, n);
		if (ret)
			return ret;
		for (size_t i = 0; i < n; i++) {
			uint32_t crc = dcres_crc32c(0, buf + i * p->page_size, p->page_size);

			if (crc != p->page_crc[pages[i]]) {
				*bad_page = pages[i];
				*got = crc;
				return -EBADMSG;
			}
		}
	}
	return 0;
}

/* Runs one verify task (VERIFY_TASK_PAGES pages of index space) and records
 * its failure in st if it is the lowest so far. */
static void verify_task(const struct dcres_presence *p, struct dcres_memfile *mf,
			uint64_t task, struct verify_state *st)
{
	size_t batch = VERIFY_READ_BYTES / p->page_size ? VERIFY_READ_BYTES / p->page_size : 1;
	uint64_t first = task * VERIFY_TASK_PAGES;
	uint64_t end = first + VERIFY_TASK_PAGES < p->npages ? first + VERIFY_TASK_PAGES
							      : p->npages;
	uint64_t *pages = malloc(batch * sizeof(*pages));
	uint8_t *buf = aligned_alloc(BUF_ALIGN, batch * p->page_size);
	uint64_t bad_page = 0;
	uint32_t got = 0;
	int ret = -ENOMEM;

	if (pages && buf)
		ret = verify_range(p, mf, first, end, pages, buf, batch, &bad_page, &got);
	free(pages);
	free(buf);
	if (!ret)
		return;
#pragma omp critical(dcres_presence_verify)
	if (task < st->fail_task) {
		/* verify_pages reads fail_task outside this section. */
#pragma omp atomic write
		st->fail_task = task;
		st->err = ret;
		st->bad_page = bad_page;
		st->got = got;
	}
}

int dcres_presence_verify_pages(const struct dcres_presence *p,
				struct dcres_memfile *mf, uint64_t *bad_page)
{
	const struct dcres_memfile_info *info = dcres_memfile_info(mf);
	const char *path = dcres_memfile_path(mf);
	uint64_t ntasks = (p->npages + VERIFY_TASK_PAGES - 1) / VERIFY_TASK_PAGES;
	struct verify_state st = { .fail_task = UINT64_MAX };

	if (info->page_size != p->page_size || p->npages > info->ram_size / info->page_size) {
		pr_err("%s: %llu pages of %u bytes do not fit its %llu bytes of %u-byte pages",
		       path, (unsigned long long)p->npages, p->page_size,
		       (unsigned long long)info->ram_size, info->page_size);
		return -EINVAL;
	}

#pragma omp parallel for schedule(dynamic, 1)
	for (uint64_t task = 0; task < ntasks; task++) {
		uint64_t fail_task;

#pragma omp atomic read
		fail_task = st.fail_task;
		if (task < fail_task)
			verify_task(p, mf, task, &st);
	}

	if (st.err == -EBADMSG) {
		pr_err("%s: page %llu: CRC-32C %08x, presence file says %08x", path,
		       (unsigned long long)st.bad_page, st.got, p->page_crc[st.bad_page]);
		if (bad_page)
			*bad_page = st.bad_page;
	}
	return st.err;
}
