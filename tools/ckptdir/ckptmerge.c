/* A chain merged into one mapped-ram file (dcres/ckptchain.h). */
#define _GNU_SOURCE
#include "dcres/ckptchain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"

#define WINDOW_PAGES 512u     /* pages merged per window (2 MiB) */
#define COPY_BUF (4u << 20)   /* bounce buffer of the fallback copy */

/* Copies [off, off + len) of in to the same offset of out: copy_file_range
 * where the kernel and filesystems allow it, pread/pwrite through *buf
 * (allocated on first use, COPY_BUF bytes, freed by the caller) otherwise. */
static int copy_range(int in, const char *in_path, int out, const char *out_path,
		      off_t off, off_t len, char **buf)
{
	while (len > 0) {
		loff_t ioff = off, ooff = off;
		ssize_t n = copy_file_range(in, &ioff, out, &ooff, (size_t)len, 0);

		if (n > 0) {
			off += n;
			len -= n;
			continue;
		}
		if (n == 0) {
			pr_err("%s: truncated while copying (offset %lld)", in_path,
			       (long long)off);
			return -EIO;
		}
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP && errno != EBADF) {
			int err = errno;

			pr_perror("copy %s to %s at offset %lld", in_path, out_path,
				  (long long)off);
			return -err;
		}
		break; /* fall back to a bounce buffer */
	}
	if (len > 0 && !*buf && !(*buf = malloc(COPY_BUF)))
		return -ENOMEM;
	while (len > 0) {
		size_t n = len < (off_t)COPY_BUF ? (size_t)len : COPY_BUF;
		int ret = dcres_pread_full(in, *buf, n, off, in_path);

		if (!ret)
			ret = dcres_pwrite_full(out, *buf, n, off, out_path);
		if (ret)
			return ret;
		off += (off_t)n;
		len -= (off_t)n;
	}
	return 0;
}

/* Copies the data extents of src within [start, end) to the same offsets
 * of out (found with SEEK_DATA/SEEK_HOLE; holes stay holes). */
static int copy_sparse(int in, const char *src, int out, const char *out_path,
		       off_t start, off_t end)
{
	off_t pos = start;
	char *buf = NULL;
	int ret = 0;

	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0 || (hole = lseek(in, data, SEEK_HOLE)) < 0) {
			ret = -errno;
			pr_perror("%s: seek data/hole at offset %lld", src, (long long)pos);
			break;
		}
		if (data >= end)
			break;
		if (hole > end)
			hole = end;
		ret = copy_range(in, src, out, out_path, data, hole - data, &buf);
		if (ret)
			break;
		pos = hole;
	}
	free(buf);
	return ret;
}

/* Creates path (0600, exclusive) as main.mem minus its pages area: same
 * size, everything outside [pages_offset, pages_offset + used_length)
 * copied sparsely (device state, headers, the bitmap, other blocks). */
static int copy_outside_pages(const struct ckptdir *c, const char *path)
{
	off_t pages = (off_t)c->loc.main_file.pages_offset;
	off_t pages_end = pages + (off_t)c->loc.main_file.used_length;
	struct stat sb;
	int fd, ret;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		pr_perror("create %s", path);
		return ret;
	}
	if (fstat(c->main.fd, &sb) < 0 ||
	    ftruncate(fd, sb.st_size > pages_end ? sb.st_size : pages_end) < 0) {
		ret = -errno;
		pr_perror("size %s as %s", path, c->main_path);
		close(fd);
		return ret;
	}
	ret = copy_sparse(c->main.fd, c->main_path, fd, path, 0, pages);
	if (!ret)
		ret = copy_sparse(c->main.fd, c->main_path, fd, path, pages_end, sb.st_size);
	close(fd);
	return ret;
}

/* Buffers of one window of WINDOW_PAGES pages. */
struct window {
	uint64_t first, n;  /* pages [first, first + n) */
	uint8_t *data;      /* the window's pages, in place */
	uint8_t *sbuf;      /* one server's pages, packed */
	uint64_t *list;     /* their indices */
	bool *stored;       /* which pages of the window the output holds */
};

/* Reads server s's pages of window w not stored yet (CRC-checked against
 * its presence file) into their places in w->data and marks them stored
 * and set in out. */
static int window_server(const struct ckptdir_server *s, struct window *w,
			 struct dcres_mrfile *out)
{
	uint32_t ps = out->page_size;
	size_t n = 0;
	int ret;

	for (uint64_t p = w->first; p < w->first + w->n; p++)
		if (!w->stored[p - w->first] && dcres_presence_test(&s->pres, p))
			w->list[n++] = p;
	if (!n)
		return 0;
	ret = dcres_memfile_read_pages(s->mf, w->list, w->sbuf, n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		uint64_t p = w->list[i];
		uint32_t crc = dcres_crc32c(0, w->sbuf + i * ps, ps);

		if (crc != s->pres.page_crc[p]) {
			pr_err("%s: page %llu: CRC-32C %08x, %s says %08x", s->mem_path,
			       (unsigned long long)p, crc, s->present_path,
			       s->pres.page_crc[p]);
			return -EBADMSG;
		}
		memcpy(w->data + (p - w->first) * ps, w->sbuf + i * ps, ps);
		w->stored[p - w->first] = true;
		dcres_mrfile_set(out, p);
	}
	return 0;
}

/* Reads layer c's main.mem pages of window w not stored yet (their bit
 * set) into their places in w->data, one read for the span from first to
 * last (each page CRC-checked against main.present when c has one), and
 * marks them stored and set in out. */
static int window_main(struct ckptdir *c, struct window *w, struct dcres_mrfile *out)
{
	uint32_t ps = out->page_size;
	uint64_t lo = UINT64_MAX, hi = 0;
	int ret;

	for (uint64_t i = 0; i < w->n; i++) {
		if (!w->stored[i] && dcres_mrfile_test(&c->main, w->first + i)) {
			lo = lo < i ? lo : i;
			hi = i + 1;
		}
	}
	if (!hi)
		return 0;
	ret = dcres_mrfile_read_pages(&c->main, w->first + lo, w->sbuf, hi - lo);
	for (uint64_t i = lo; i < hi && !ret; i++) {
		const uint8_t *page = w->sbuf + (i - lo) * ps;

		if (w->stored[i] || !dcres_mrfile_test(&c->main, w->first + i))
			continue;
		if (c->main_pres_ok &&
		    (ret = dcres_presence_check_page(&c->main_pres, w->first + i, page))) {
			pr_err("%s: page %llu: %s %s", c->main_path,
			       (unsigned long long)(w->first + i),
			       ret == -ENOENT ? "not in" : "its CRC-32C is not the one of",
			       c->main_present_path);
			return -EBADMSG;
		}
		memcpy(w->data + i * ps, page, ps);
		w->stored[i] = true;
		dcres_mrfile_set(out, w->first + i);
	}
	return ret;
}

/* Fills window w from each layer of the chain, newest first (its main.mem
 * pages with their bit set, then every server's), each page from the
 * first layer holding it, then writes each run of stored pages to out
 * with one write; pages stored nowhere stay holes. */
static int window_merge(struct ckptchain *ch, struct window *w,
			struct dcres_mrfile *out)
{
	uint32_t ps = out->page_size;
	int ret = 0;

	memset(w->stored, 0, w->n * sizeof(bool));
	for (unsigned l = 0; l < ch->n && !ret; l++) {
		struct ckptdir *c = &ch->layer[l];

		ret = window_main(c, w, out);
		for (unsigned k = 0; k < c->nservers && !ret; k++)
			ret = window_server(&c->servers[k], w, out);
	}
	for (uint64_t i = 0, j; i < w->n && !ret; i = j) {
		if (!w->stored[i]) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < w->n && w->stored[j]; j++)
			;
		ret = dcres_mrfile_write_pages(out, w->first + i, w->data + i * ps, j - i);
	}
	return ret;
}

/* Merges every page into out, window by window. */
static int merge_pages(struct ckptchain *ch, struct dcres_mrfile *out)
{
	size_t bytes = (size_t)WINDOW_PAGES * out->page_size;
	struct window w = {
		.data = aligned_alloc(4096, bytes),
		.sbuf = aligned_alloc(4096, bytes),
		.list = malloc(WINDOW_PAGES * sizeof(uint64_t)),
		.stored = malloc(WINDOW_PAGES * sizeof(bool)),
	};
	int ret = 0;

	if (!w.data || !w.sbuf || !w.list || !w.stored)
		ret = -ENOMEM;
	for (w.first = 0; w.first < out->npages && !ret; w.first += WINDOW_PAGES) {
		w.n = out->npages - w.first < WINDOW_PAGES ? out->npages - w.first
							    : WINDOW_PAGES;
		ret = window_merge(ch, &w, out);
	}
	free(w.data);
	free(w.sbuf);
	free(w.list);
	free(w.stored);
	return ret;
}

/* Refuses an out that is one of the checkpoint's own files. */
static int check_out(const struct ckptdir *c, const char *out)
{
	struct stat o, i;
	const char *inputs[3 + 2 * CKPTDIR_MAX_SERVERS];
	unsigned n = 0;

	if (stat(out, &o) < 0)
		return 0;
	inputs[n++] = c->main_path;
	inputs[n++] = c->loc_path;
	if (c->main_present_path[0])
		inputs[n++] = c->main_present_path;
	for (unsigned k = 0; k < c->nservers; k++) {
		inputs[n++] = c->servers[k].mem_path;
		inputs[n++] = c->servers[k].present_path;
	}
	for (unsigned k = 0; k < n; k++) {
		if (stat(inputs[k], &i) == 0 && i.st_dev == o.st_dev && i.st_ino == o.st_ino) {
			pr_err("%s: is the checkpoint's own %s; refusing to overwrite it",
			       out, inputs[k]);
			return -EEXIST;
		}
	}
	return 0;
}

int ckptchain_merge(struct ckptchain *ch, const char *out)
{
	struct dcres_mrfile mr = { .fd = -1 };
	char prefix[PATH_MAX], partial[PATH_MAX];
	struct ckptdir *c = &ch->layer[0];
	int ret = 0;

	for (unsigned l = 0; l < ch->n && !ret; l++)
		ret = check_out(&ch->layer[l], out);
	if (ret)
		return ret;
	if (snprintf(prefix, sizeof(prefix), "%s.partial", out) >= (int)sizeof(prefix) - 16) {
		pr_err("%s: path too long", out);
		return -ENAMETOOLONG;
	}
	/* A name of its own (O_EXCL): another merge's partial file is never
	 * truncated or removed. */
	ret = -EEXIST;
	for (int attempt = 0; attempt < 8 && ret == -EEXIST; attempt++)
		if (!(ret = dcres_unique_name(prefix, partial, sizeof(partial))))
			ret = copy_outside_pages(c, partial);
	if (!ret)
		ret = dcres_mrfile_open(partial, &c->loc.main_file, true, &mr);
	/* The copy has main.mem's bitmap; server pages' bits are set as they
	 * are written. */
	if (!ret)
		ret = merge_pages(ch, &mr);
	if (!ret)
		ret = dcres_mrfile_write_bitmap(&mr); /* fsyncs the whole file */
	dcres_mrfile_close(&mr);
	if (!ret)
		ret = dcres_rename_durable(partial, out);
	if (ret)
		unlink(partial);
	return ret;
}
