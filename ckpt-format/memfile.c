/* Sparse memory files (memfile.h).
 *
 * Header: the first DCRES_MEMFILE_HDR_SIZE (4096) bytes, integers
 * big-endian, unused bytes zero:
 *
 *   offset size field
 *        0    8 magic "DCRESMEM"
 *        8    4 version (1)
 *       12    4 page size (power of two, 4096 .. data start)
 *       16    8 data start (DCRES_MEMFILE_DATA_START)
 *       24    8 RAM size in bytes (a multiple of the page size)
 *       32    4 host id
 *       36    4 reserved, 0
 *       40   16 VM UUID
 *     4092    4 CRC-32C of bytes 0 .. 4091
 *
 * Guest page p lives at data start + p * page size; the file's apparent
 * size is data start + RAM size from creation on, so it only grows in
 * allocated blocks, never in length.
 *
 * I/O: O_DIRECT with libaio when the filesystem accepts O_DIRECT,
 * buffered pread/pwrite (OpenMP-parallel for large batches) otherwise. Each
 * call builds its own requests and, in direct mode, takes an aio context of
 * its own from the memfile's pool (creating one when all are busy), so calls
 * on one memfile may run concurrently. Contexts are kept rather than
 * destroyed after each call because io_destroy waits for an RCU grace
 * period (tens of milliseconds). */
#define _GNU_SOURCE
#include "dcres/memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/presence.h"
#include "memfile-internal.h"
#include "ondisk.h"

#define HDR_SIZE 4096u
#define HDR_CRC_OFF (HDR_SIZE - 4)
#define MEMFILE_MAGIC "DCRESMEM"
#define MEMFILE_VERSION 1u
#define BUF_ALIGN 4096u
#define AIO_DEPTH 64u		  /* requests in flight per call */
#define MAX_REQ_BYTES (4u << 20) /* a run longer than this is split */
#define OMP_MIN_RUNS 64		  /* buffered batches smaller than this stay serial */
#define AIO_POOL_MAX 8		  /* idle aio contexts kept per memfile */

struct dcres_memfile {
	int fd;
	bool direct;
	uint64_t npages;
	struct dcres_memfile_info info;
	char *path;
	pthread_mutex_t pool_lock; /* protects the idle aio contexts */
	io_context_t pool[AIO_POOL_MAX];
	unsigned npool;
};

/* A run of consecutive pages that is also contiguous in the caller's buffer. */
struct run {
	uint64_t page;
	size_t count;
	char *buf;
};

bool dcres__memfile_force_buffered;

bool dcres__memfile_is_direct(const struct dcres_memfile *mf)
{
	return mf->direct;
}

/* Checks the geometry in info; -EINVAL naming path when it is unusable. */
static int check_info(const char *path, const struct dcres_memfile_info *info)
{
	if (info->page_size != DCRES_CKPT_PAGE_SIZE) {
		pr_err("%s: page size %u in the header is not supported (only %u)", path,
		       info->page_size, DCRES_CKPT_PAGE_SIZE);
		return -ENOTSUP;
	}
	if (!info->ram_size || info->ram_size % info->page_size ||
	    info->ram_size > (uint64_t)INT64_MAX - DCRES_MEMFILE_DATA_START) {
		pr_err("%s: invalid RAM size %llu for page size %u", path,
		       (unsigned long long)info->ram_size, info->page_size);
		return -EINVAL;
	}
	return 0;
}

static void encode_header(uint8_t *hdr, const struct dcres_memfile_info *info)
{
	memset(hdr, 0, HDR_SIZE);
	memcpy(hdr, MEMFILE_MAGIC, 8);
	put_be32(hdr + 8, MEMFILE_VERSION);
	put_be32(hdr + 12, info->page_size);
	put_be64(hdr + 16, DCRES_MEMFILE_DATA_START);
	put_be64(hdr + 24, info->ram_size);
	put_be32(hdr + 32, info->host_id);
	memcpy(hdr + 40, info->vm_uuid, 16);
	put_be32(hdr + HDR_CRC_OFF, dcres_crc32c(0, hdr, HDR_CRC_OFF));
}

/* Validates hdr and fills info; -EINVAL naming path when it is damaged. */
static int decode_header(const char *path, const uint8_t *hdr,
			 struct dcres_memfile_info *info)
{
	uint32_t version;
	uint64_t data_start;

	if (memcmp(hdr, MEMFILE_MAGIC, 8)) {
		pr_err("%s: bad magic (not a dcres memory file)", path);
		return -EINVAL;
	}
	if (get_be32(hdr + HDR_CRC_OFF) != dcres_crc32c(0, hdr, HDR_CRC_OFF)) {
		pr_err("%s: header checksum mismatch", path);
		return -EINVAL;
	}
	version = get_be32(hdr + 8);
	if (version != MEMFILE_VERSION) {
		pr_err("%s: unsupported version %u", path, version);
		return -EINVAL;
	}
	data_start = get_be64(hdr + 16);
	if (data_start != DCRES_MEMFILE_DATA_START) {
		pr_err("%s: unsupported data start %llu", path,
		       (unsigned long long)data_start);
		return -EINVAL;
	}
	info->page_size = get_be32(hdr + 12);
	info->ram_size = get_be64(hdr + 24);
	info->host_id = get_be32(hdr + 32);
	memcpy(info->vm_uuid, hdr + 40, 16);
	return check_info(path, info);
}

/* Opens name below dirfd (dcres_open_beneath), then turns O_DIRECT on
 * unless the filesystem refuses it or tests force buffered I/O (set
 * afterwards, so that a refusal cannot leave a file created behind);
 * returns the fd or a negative errno, logged naming display. */
static int open_file(int dirfd, const char *name, const char *display, int flags,
		     bool *direct)
{
	int fd = dcres_open_beneath(dirfd, name, flags, 0600);

	*direct = false;
	if (fd < 0) {
		errno = -fd;
		pr_perror("open %s", display);
		return fd;
	}
	if (!dcres__memfile_force_buffered) {
		int fl = fcntl(fd, F_GETFL);
		*direct = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
	}
	return fd;
}

/* Allocates a memfile for fd; takes ownership of fd (closed on failure). */
static int new_memfile(const char *path, int fd, bool direct,
		       const struct dcres_memfile_info *info, struct dcres_memfile **out)
{
	struct dcres_memfile *mf = calloc(1, sizeof(*mf));

	if (!mf || !(mf->path = strdup(path))) {
		free(mf);
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&mf->pool_lock, NULL);
	mf->fd = fd;
	mf->direct = direct;
	mf->info = *info;
	mf->npages = info->ram_size / info->page_size;
	*out = mf;
	return 0;
}

/* Creates name below dirfd with the open flags given (O_CREAT added) and
 * writes its header; display names it in messages. */
static int create_file(int dirfd, const char *name, const char *path, int flags,
		       const struct dcres_memfile_info *info, struct dcres_memfile **out)
{
	uint8_t *hdr;
	bool direct;
	int fd, ret;

	ret = check_info(path, info);
	if (ret)
		return ret;
	fd = open_file(dirfd, name, path, O_RDWR | O_CREAT | flags, &direct);
	if (fd < 0)
		return fd;
	/* The header goes through O_DIRECT too: it needs an aligned buffer. */
	hdr = aligned_alloc(BUF_ALIGN, HDR_SIZE);
	if (!hdr) {
		ret = -ENOMEM;
		goto err;
	}
	encode_header(hdr, info);
	/* The file reaches its full size at dcres_memfile_sync: until then most
	 * page writes extend it, which on ext4 avoids converting unwritten
	 * extents (a costly fsync) for writes into holes inside the file. */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, DCRES_MEMFILE_DATA_START) < 0) {
		ret = -errno;
		pr_perror("%s: set mode and size", path);
	} else {
		ret = dcres_pwrite_full(fd, hdr, HDR_SIZE, 0, path);
	}
	free(hdr);
	if (ret)
		goto err;
	return new_memfile(path, fd, direct, info, out);
err:
	close(fd);
	if (flags & O_EXCL) /* the file is this call's own */
		unlinkat(dirfd, name, 0);
	return ret;
}

int dcres_memfile_create(const char *path, const struct dcres_memfile_info *info,
			 struct dcres_memfile **out)
{
	return create_file(AT_FDCWD, path, path, O_TRUNC, info, out);
}

int dcres_memfile_create_at(int dirfd, const char *name, const char *display,
			    const struct dcres_memfile_info *info, struct dcres_memfile **out)
{
	return create_file(dirfd, name, display, O_EXCL, info, out);
}

int dcres_memfile_open_at(int dirfd, const char *name, const char *path,
			  struct dcres_memfile **out)
{
	struct dcres_memfile_info info;
	struct stat sb;
	uint8_t *hdr;
	bool direct;
	int fd, ret;

	fd = open_file(dirfd, name, path, O_RDONLY, &direct);
	if (fd < 0)
		return fd;
	hdr = aligned_alloc(BUF_ALIGN, HDR_SIZE);
	if (!hdr) {
		close(fd);
		return -ENOMEM;
	}
	ret = dcres_pread_full(fd, hdr, HDR_SIZE, 0, path);
	if (!ret)
		ret = decode_header(path, hdr, &info);
	free(hdr);
	if (!ret && fstat(fd, &sb) < 0) {
		ret = -errno;
		pr_perror("stat %s", path);
	}
	if (!ret && (uint64_t)sb.st_size < DCRES_MEMFILE_DATA_START + info.ram_size) {
		pr_err("%s: truncated (%lld bytes, header says RAM ends at %llu)", path,
		       (long long)sb.st_size,
		       (unsigned long long)(DCRES_MEMFILE_DATA_START + info.ram_size));
		ret = -EIO;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	return new_memfile(path, fd, direct, &info, out);
}

int dcres_memfile_open(const char *path, struct dcres_memfile **out)
{
	return dcres_memfile_open_at(AT_FDCWD, path, path, out);
}

const struct dcres_memfile_info *dcres_memfile_info(const struct dcres_memfile *mf)
{
	return &mf->info;
}

const char *dcres_memfile_path(const struct dcres_memfile *mf)
{
	return mf->path;
}

static off_t page_offset(const struct dcres_memfile *mf, uint64_t page)
{
	return (off_t)(DCRES_MEMFILE_DATA_START + page * mf->info.page_size);
}

/* Checks the indices and buffer of a page batch: -ERANGE naming the first
 * page out of range, -EINVAL for a misaligned buffer. */
static int check_batch(const struct dcres_memfile *mf, const uint64_t *pages,
		       const void *buf, size_t n)
{
	if ((uintptr_t)buf % BUF_ALIGN) {
		pr_err("%s: page buffer %p is not %u-aligned", mf->path, buf, BUF_ALIGN);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (pages[i] >= mf->npages) {
			pr_err("%s: page %llu beyond the %llu pages of RAM", mf->path,
			       (unsigned long long)pages[i],
			       (unsigned long long)mf->npages);
			return -ERANGE;
		}
	}
	return 0;
}

/* Splits a batch into runs of pages consecutive both in the file and in buf
 * (at most MAX_REQ_BYTES each); *runs is malloc'd. Returns the run count or
 * 0 when out of memory (n > 0). */
static size_t make_runs(const struct dcres_memfile *mf, const uint64_t *pages,
			char *buf, size_t n, struct run **runs)
{
	size_t max_count = MAX_REQ_BYTES / mf->info.page_size;
	struct run *r = malloc(n * sizeof(*r));
	size_t nruns = 0;

	*runs = r;
	if (!r)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct run *last = nruns ? &r[nruns - 1] : NULL;

		if (last && pages[i] == last->page + last->count && last->count < max_count) {
			last->count++;
			continue;
		}
		r[nruns++] = (struct run){ pages[i], 1, buf + i * mf->info.page_size };
	}
	return nruns;
}

static void log_run_error(const struct dcres_memfile *mf, bool write,
			  const struct run *r, int err)
{
	pr_err("%s: %s pages %llu..%llu: %s", mf->path, write ? "writing" : "reading",
	       (unsigned long long)r->page,
	       (unsigned long long)(r->page + r->count - 1), strerror(-err));
}

/* Transfers one run with pread/pwrite, retrying short transfers; reading
 * past the end of the file (not yet grown to full size by
 * dcres_memfile_sync) yields zeros, like a hole. Logs failures naming the
 * pages. */
static int buffered_run(const struct dcres_memfile *mf, bool write, const struct run *r)
{
	size_t len = r->count * mf->info.page_size;
	off_t off = page_offset(mf, r->page);
	char *p = r->buf;
	int err;

	while (len) {
		ssize_t done = write ? pwrite(mf->fd, p, len, off) : pread(mf->fd, p, len, off);

		if (done < 0 && errno == EINTR)
			continue;
		if (done == 0 && !write) {
			memset(p, 0, len);
			return 0;
		}
		if (done <= 0) {
			err = done < 0 ? -errno : -EIO;
			log_run_error(mf, write, r, err);
			return err;
		}
		p += done;
		len -= (size_t)done;
		off += done;
	}
	return 0;
}

/* Transfers the runs with buffered I/O, in parallel for large batches;
 * returns 0 or the first error seen. */
static int buffered_io(const struct dcres_memfile *mf, bool write,
		       const struct run *runs, size_t nruns)
{
	int err = 0;

#pragma omp parallel for schedule(dynamic, 8) if (nruns >= OMP_MIN_RUNS)
	for (size_t i = 0; i < nruns; i++) {
		int seen;

#pragma omp atomic read
		seen = err;
		if (seen)
			continue;
		int ret = buffered_run(mf, write, &runs[i]);
		if (ret) {
#pragma omp critical(dcres_memfile_err)
			if (!err)
				err = ret;
		}
	}
	return err;
}

/* One request in flight: what is left of its run. */
struct aio_slot {
	struct iocb cb;
	const struct run *run;
	char *buf;
	size_t len;
	long long off;
};

static void aio_prep(const struct dcres_memfile *mf, bool write, struct aio_slot *s)
{
	if (write)
		io_prep_pwrite(&s->cb, mf->fd, s->buf, s->len, s->off);
	else
		io_prep_pread(&s->cb, mf->fd, s->buf, s->len, s->off);
	s->cb.data = s;
}

/* Takes an idle aio context of mf, or sets up a new one (AIO_DEPTH deep). */
static int ctx_get(struct dcres_memfile *mf, io_context_t *ctx)
{
	int ret;

	*ctx = 0;
	pthread_mutex_lock(&mf->pool_lock);
	if (mf->npool)
		*ctx = mf->pool[--mf->npool];
	pthread_mutex_unlock(&mf->pool_lock);
	if (*ctx)
		return 0;
	ret = io_setup(AIO_DEPTH, ctx);
	if (ret < 0)
		pr_err("%s: io_setup: %s", mf->path, strerror(-ret));
	return ret;
}

/* Returns ctx to mf's pool when it is idle and there is room, destroys it
 * otherwise (io_destroy waits for requests still in flight). */
static void ctx_put(struct dcres_memfile *mf, io_context_t ctx, bool idle)
{
	pthread_mutex_lock(&mf->pool_lock);
	if (idle && mf->npool < AIO_POOL_MAX) {
		mf->pool[mf->npool++] = ctx;
		ctx = 0;
	}
	pthread_mutex_unlock(&mf->pool_lock);
	if (ctx)
		io_destroy(ctx);
}

/* Transfers the runs through an aio context of mf's pool, keeping up to
 * AIO_DEPTH requests in flight and resubmitting the rest of short
 * transfers. Returns 0 or the first error (logged naming the pages). */
static int aio_io(struct dcres_memfile *mf, bool write, const struct run *runs,
		  size_t nruns)
{
	struct aio_slot slots[AIO_DEPTH];
	struct aio_slot *free_slots[AIO_DEPTH];
	struct iocb *queue[AIO_DEPTH];
	struct io_event events[AIO_DEPTH];
	size_t next = 0, nqueue = 0, inflight = 0, nfree = AIO_DEPTH;
	io_context_t ctx;
	int err = 0, ret;

	ret = ctx_get(mf, &ctx);
	if (ret)
		return ret;
	for (unsigned i = 0; i < AIO_DEPTH; i++)
		free_slots[i] = &slots[i];

	for (;;) {
		while (!err && next < nruns && nfree) {
			struct aio_slot *s = free_slots[--nfree];
			const struct run *r = &runs[next++];

			*s = (struct aio_slot){ .run = r, .buf = r->buf,
						.len = r->count * mf->info.page_size,
						.off = page_offset(mf, r->page) };
			aio_prep(mf, write, s);
			queue[nqueue++] = &s->cb;
		}
		if (!err && nqueue) {
			ret = io_submit(ctx, (long)nqueue, queue);
			if (ret > 0) {
				inflight += (size_t)ret;
				nqueue -= (size_t)ret;
				memmove(queue, queue + ret, nqueue * sizeof(queue[0]));
			} else if (ret != -EAGAIN || !inflight) {
				err = ret ? ret : -EIO;
				log_run_error(mf, write,
					      ((struct aio_slot *)queue[0]->data)->run, err);
			}
		}
		if (!inflight)
			break;

		ret = io_getevents(ctx, 1, (long)inflight, events, NULL);
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			/* ctx_put destroys ctx, waiting for what is in flight. */
			pr_err("%s: io_getevents: %s", mf->path, strerror(-ret));
			err = err ? err : ret;
			break;
		}
		inflight -= (size_t)ret;
		for (int i = 0; i < ret; i++) {
			struct aio_slot *s = events[i].data;
			long res = (long)events[i].res;

			if (res > 0 && (size_t)res < s->len) {
				/* Short transfer: send the rest again. */
				s->buf += res;
				s->len -= (size_t)res;
				s->off += res;
				aio_prep(mf, write, s);
				queue[nqueue++] = &s->cb;
				continue;
			}
			if (res == 0 && !write) /* past the end: a hole */
				memset(s->buf, 0, s->len);
			else if (res <= 0 && !err) {
				err = res < 0 ? (int)res : -EIO;
				log_run_error(mf, write, s->run, err);
			}
			free_slots[nfree++] = s;
		}
	}
	ctx_put(mf, ctx, !inflight);
	return err;
}

/* Common body of write_pages and read_pages. */
static int page_io(struct dcres_memfile *mf, bool write, const uint64_t *pages,
		   char *buf, size_t n)
{
	struct run *runs;
	size_t nruns;
	int ret;

	if (!n)
		return 0;
	ret = check_batch(mf, pages, buf, n);
	if (ret)
		return ret;
	nruns = make_runs(mf, pages, buf, n, &runs);
	if (!nruns)
		return -ENOMEM;
	if (mf->direct)
		ret = aio_io(mf, write, runs, nruns);
	else
		ret = buffered_io(mf, write, runs, nruns);
	free(runs);
	return ret;
}

int dcres_memfile_write_pages(struct dcres_memfile *mf, const uint64_t *pages,
			      const void *buf, size_t n)
{
	/* The buffer is only read from; page_io shares code with reads. */
	return page_io(mf, true, pages, (char *)buf, n);
}

int dcres_memfile_read_pages(struct dcres_memfile *mf, const uint64_t *pages,
			     void *buf, size_t n)
{
	return page_io(mf, false, pages, buf, n);
}

int dcres_memfile_punch(struct dcres_memfile *mf, uint64_t first, uint64_t count)
{
	if (first >= mf->npages || count > mf->npages - first) {
		pr_err("%s: punching pages %llu+%llu beyond the %llu pages of RAM",
		       mf->path, (unsigned long long)first, (unsigned long long)count,
		       (unsigned long long)mf->npages);
		return -ERANGE;
	}
	if (!count)
		return 0;
	if (fallocate(mf->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      page_offset(mf, first), (off_t)(count * mf->info.page_size)) < 0) {
		int err = errno;

		pr_perror("%s: punching pages %llu..%llu", mf->path,
			  (unsigned long long)first,
			  (unsigned long long)(first + count - 1));
		return -err;
	}
	return 0;
}

/* Finds the next data region at or after off: *data and *hole bound it.
 * Returns 1 if found, 0 at the end of the data, or a negative errno. */
static int next_data(const struct dcres_memfile *mf, off_t off, off_t *data, off_t *hole)
{
	*data = lseek(mf->fd, off, SEEK_DATA);
	if (*data < 0)
		goto err;
	*hole = lseek(mf->fd, *data, SEEK_HOLE);
	if (*hole < 0)
		goto err;
	return 1;
err:
	if (errno == ENXIO)
		return 0;
	int ret = -errno;
	pr_perror("%s: seeking data from offset %lld", mf->path, (long long)off);
	return ret;
}

int dcres_memfile_for_each_extent(struct dcres_memfile *mf, dcres_extent_fn fn,
				  void *arg)
{
	uint64_t ps = mf->info.page_size;
	uint64_t run_first = 0, run_end = 0; /* pending run, empty when equal */
	off_t end = page_offset(mf, mf->npages);
	off_t off = DCRES_MEMFILE_DATA_START, data = 0, hole = 0;
	int ret = 0;

	while (off < end && (ret = next_data(mf, off, &data, &hole)) > 0 && data < end) {
		if (hole > end)
			hole = end;
		/* Round outward: a page holding any data counts as data. */
		uint64_t first = ((uint64_t)data - DCRES_MEMFILE_DATA_START) / ps;
		uint64_t last = ((uint64_t)hole - DCRES_MEMFILE_DATA_START + ps - 1) / ps;

		if (run_end > run_first && first <= run_end) {
			if (last > run_end)
				run_end = last;
		} else {
			if (run_end > run_first) {
				ret = fn(run_first, run_end - run_first, arg);
				if (ret)
					return ret;
			}
			run_first = first;
			run_end = last;
		}
		off = page_offset(mf, run_end);
	}
	if (ret < 0)
		return ret;
	if (run_end > run_first)
		return fn(run_first, run_end - run_first, arg);
	return 0;
}

void dcres_memfile_sum(const struct dcres_memfile *mf, const struct dcres_presence *p,
		       uint64_t *size, uint32_t *crc)
{
	static const uint8_t zero_page[DCRES_CKPT_PAGE_SIZE];
	struct dcres_crc32c_shift page;
	uint8_t hdr[HDR_SIZE];
	uint32_t sum, zero_crc = dcres_crc32c(0, zero_page, sizeof(zero_page));

	encode_header(hdr, &mf->info);
	sum = dcres_crc32c_zeros(dcres_crc32c(0, hdr, HDR_SIZE),
				 DCRES_MEMFILE_DATA_START - HDR_SIZE);
	dcres_crc32c_shift_init(&page, DCRES_CKPT_PAGE_SIZE);
	for (uint64_t i = 0; i < p->npages; i++)
		sum = dcres_crc32c_append(&page, sum, dcres_presence_test(p, i) ? p->page_crc[i]
										 : zero_crc);
	*size = DCRES_MEMFILE_DATA_START + mf->info.ram_size;
	*crc = sum;
}

int dcres_memfile_sync(struct dcres_memfile *mf)
{
	off_t full = (off_t)(DCRES_MEMFILE_DATA_START + mf->info.ram_size);
	struct stat sb;

	if (fstat(mf->fd, &sb) < 0 || (sb.st_size < full && ftruncate(mf->fd, full) < 0)) {
		int err = errno;

		pr_perror("%s: set size", mf->path);
		return -err;
	}
	if (fsync(mf->fd) < 0) {
		int err = errno;

		pr_perror("fsync %s", mf->path);
		return -err;
	}
	return 0;
}

int dcres_memfile_flush(struct dcres_memfile *mf)
{
	if (fdatasync(mf->fd) < 0) {
		int err = errno;

		pr_perror("fdatasync %s", mf->path);
		return -err;
	}
	return 0;
}

void dcres_memfile_close(struct dcres_memfile *mf)
{
	if (!mf)
		return;
	for (unsigned i = 0; i < mf->npool; i++)
		io_destroy(mf->pool[i]);
	pthread_mutex_destroy(&mf->pool_lock);
	close(mf->fd);
	free(mf->path);
	free(mf);
}
