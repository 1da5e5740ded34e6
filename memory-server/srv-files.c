/* Whole checkpoint files on a memory server (srv-files.h). */
#define _GNU_SOURCE
#include "srv-files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/manifest.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "srv-ckpt.h"

int srv_file_name_check(const char *name, char *err, size_t err_len)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 64 || name[0] == '.' || strspn(name, "abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != n) {
		snprintf(err, err_len, "file name '%s' is not a plain checkpoint file name",
			 name ? name : "");
		return -EINVAL;
	}
	return 0;
}

/* Opens rel/name for reading into *fd; -ENOENT when it is not there. */
static int open_file(int base_fd, const char *rel, const char *name, int *fd, char *err,
		     size_t err_len)
{
	int dir_fd, ret;

	if ((ret = srv_file_name_check(name, err, err_len)))
		return ret;
	dir_fd = srv_ckpt_dir_open(base_fd, rel, false, err, err_len);
	if (dir_fd < 0)
		return dir_fd;
	ret = dcres_open_beneath(dir_fd, name, O_RDONLY, 0);
	close(dir_fd);
	if (ret < 0) {
		snprintf(err, err_len, "%s/%s: %s", rel, name, ret == -ELOOP || ret == -EXDEV
			 ? "a symlink (refused)" : strerror(-ret));
		return ret;
	}
	*fd = ret;
	return 0;
}

/* Checks a memory or presence file (host-K.mem, host-K.present) of rel as
 * its reader would; for a memory file whose CRC differs from the one
 * expected (want), finds the damaged page with the presence file's
 * per-page CRCs. Says what is wrong in why (empty when nothing is). */
static void check_part_file(int base_fd, const char *rel, const Dcres__FileInfo *want,
			    uint32_t crc, char *why, size_t why_len)
{
	char suffix[16], mem[PATH_MAX], present[PATH_MAX], mem_name[64], present_name[64];
	struct dcres_memfile *mf = NULL;
	struct dcres_presence p = { 0 };
	uint64_t bad;
	unsigned k;
	int dir_fd, ret;

	why[0] = '\0';
	if (sscanf(want->name, "host-%u.%15s", &k, suffix) != 2 ||
	    (strcmp(suffix, "mem") && strcmp(suffix, "present")) ||
	    srv_host_file(mem_name, sizeof(mem_name), mem, sizeof(mem), rel, k, "mem") ||
	    srv_host_file(present_name, sizeof(present_name), present, sizeof(present), rel, k,
			  "present"))
		return;
	dir_fd = srv_ckpt_dir_open(base_fd, rel, false, why, why_len);
	if (dir_fd < 0)
		return;
	why[0] = '\0';
	if (!strcmp(suffix, "present")) {
		if ((ret = dcres_presence_read_at(dir_fd, present_name, present, &p)))
			snprintf(why, why_len, "%s: %s", present, ret == -ENOTSUP
				 ? "the page size in its header is not supported" : "damaged");
	} else if ((ret = dcres_memfile_open_at(dir_fd, mem_name, mem, &mf))) {
		snprintf(why, why_len, "%s: %s", mem, ret == -ENOTSUP
			 ? "the page size in its header is not supported" : "damaged header");
	} else if (want->has_crc32c && want->crc32c != crc &&
		   !dcres_presence_read_at(dir_fd, present_name, present, &p) &&
		   dcres_presence_verify_pages(&p, mf, &bad) == -EBADMSG) {
		snprintf(why, why_len, "%s: page %llu is corrupted (checksum mismatch)", mem,
			 (unsigned long long)bad);
	}
	dcres_presence_free(&p);
	dcres_memfile_close(mf);
	close(dir_fd);
}

/* Whether name is a memory file (host-K.mem, main.mem): the large ones. */
static bool is_memory_file(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && !strcmp(name + n - 4, ".mem");
}

/* The size of the open file fd. */
static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

int srv_file_sums(int base_fd, const char *rel, Dcres__FileInfo *const *in, size_t n,
		  bool quick, Dcres__FileInfo *out, size_t *nout, char *errs, size_t errs_len,
		  char *err, size_t err_len)
{
	char display[PATH_MAX];

	*nout = 0;
	for (size_t i = 0; i < n; i++) {
		Dcres__FileInfo *f = &out[*nout];
		int fd, ret = open_file(base_fd, rel, in[i]->name, &fd, err, err_len);

		if (ret == -ENOENT) {
			err[0] = '\0';
			continue;
		}
		if (ret)
			return ret;
		dcres__file_info__init(f);
		snprintf(display, sizeof(display), "%s/%s", rel, in[i]->name);
		if (quick && is_memory_file(in[i]->name)) {
			ret = file_size(fd, &f->size);
			f->crc32c = in[i]->crc32c; /* not read: nothing to compare */
		} else {
			ret = dcres_file_checksum_fd(fd, display, &f->size, &f->crc32c);
			f->has_crc32c = 1;
		}
		close(fd);
		if (ret) {
			snprintf(err, err_len, "%s: cannot read it: %s", display, strerror(-ret));
			return ret;
		}
		f->name = in[i]->name;
		f->has_size = 1;
		check_part_file(base_fd, rel, in[i], f->crc32c, errs + *nout * errs_len, errs_len);
		if (errs[*nout * errs_len])
			f->error = errs + *nout * errs_len;
		(*nout)++;
	}
	return 0;
}

int srv_file_get(int base_fd, const char *rel, const char *name, uint64_t off, uint64_t len,
		 void *buf, uint64_t *data_off, uint64_t *data_len, uint64_t *size, char *err,
		 size_t err_len)
{
	char display[PATH_MAX];
	struct stat st;
	off_t data, hole;
	int fd, ret = open_file(base_fd, rel, name, &fd, err, err_len);

	if (ret)
		return ret;
	snprintf(display, sizeof(display), "%s/%s", rel, name);
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	*size = (uint64_t)st.st_size;
	*data_off = *size;
	*data_len = 0;
	if (off >= *size)
		goto out;
	data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0 && errno == ENXIO)
		goto out; /* only a hole remains */
	hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
	if (data < 0 || hole < 0) {
		ret = -errno;
		goto out;
	}
	*data_off = (uint64_t)data;
	*data_len = (uint64_t)(hole - data) < len ? (uint64_t)(hole - data) : len;
	ret = dcres_pread_full(fd, buf, *data_len, data, display);
out:
	if (ret)
		snprintf(err, err_len, "reading %s: %s", display, strerror(-ret));
	close(fd);
	return ret;
}

void srv_put_init(struct srv_put *p)
{
	memset(p, 0, sizeof(*p));
	p->dir_fd = p->fd = -1;
}

void srv_put_abort(struct srv_put *p)
{
	if (p->fd >= 0) {
		close(p->fd);
		unlinkat(p->dir_fd, p->tmp, 0);
	}
	if (p->dir_fd >= 0)
		close(p->dir_fd);
	srv_put_init(p);
}

/* Whether name in dir_fd exists with size and crc: 1 yes, 0 not there,
 * -EEXIST there with other content (err says so). */
static int existing_matches(int dir_fd, const char *name, const char *display, uint64_t size,
			    uint32_t crc, char *err, size_t err_len)
{
	uint64_t have_size;
	uint32_t have_crc;
	int fd = dcres_open_beneath(dir_fd, name, O_RDONLY, 0), ret;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", display, strerror(-fd));
		return fd;
	}
	ret = dcres_file_checksum_fd(fd, display, &have_size, &have_crc);
	close(fd);
	if (ret) {
		snprintf(err, err_len, "%s: cannot read it: %s", display, strerror(-ret));
		return ret;
	}
	if (have_size == size && have_crc == crc)
		return 1;
	snprintf(err, err_len, "%s exists with other content (%llu bytes, CRC %08x; the copy "
		 "is %llu bytes, CRC %08x): not replaced", display, (unsigned long long)have_size,
		 have_crc, (unsigned long long)size, crc);
	return -EEXIST;
}

int srv_put_begin(struct srv_put *p, int base_fd, const char *rel, const Dcres__FileInfo *f,
		  bool *exists, char *err, size_t err_len)
{
	int ret;

	*exists = false;
	if (p->fd >= 0) {
		snprintf(err, err_len, "a transfer of %s is under way on this connection",
			 p->display);
		return -EBUSY;
	}
	if (!f || !f->has_size || !f->has_crc32c) {
		snprintf(err, err_len, "FILE_PUT_BEGIN needs the file's name, size and CRC");
		return -EINVAL;
	}
	if ((ret = srv_file_name_check(f->name, err, err_len)) ||
	    (ret = srv_ckpt_path_check(rel, err, err_len)))
		return ret;
	if (snprintf(p->display, sizeof(p->display), "%s/%s", rel, f->name) >=
	    (int)sizeof(p->display)) {
		snprintf(err, err_len, "checkpoint path too long");
		return -ENAMETOOLONG;
	}
	p->dir_fd = srv_ckpt_dir_open(base_fd, rel, true, err, err_len);
	if (p->dir_fd < 0) {
		ret = p->dir_fd;
		srv_put_init(p);
		return ret;
	}
	ret = existing_matches(p->dir_fd, f->name, p->display, f->size, f->crc32c, err, err_len);
	if (ret) {
		*exists = ret == 1;
		srv_put_abort(p);
		return ret == 1 ? 0 : ret;
	}
	char prefix[NAME_MAX + 1];

	snprintf(p->name, sizeof(p->name), "%s", f->name);
	snprintf(prefix, sizeof(prefix), "%s.partial", f->name);
	p->fd = dcres_create_unique(p->dir_fd, prefix, O_WRONLY, p->tmp, sizeof(p->tmp), p->display);
	if (p->fd < 0) {
		ret = p->fd;
		snprintf(err, err_len, "cannot create a file for %s: %s", p->display,
			 strerror(-ret));
		close(p->dir_fd);
		srv_put_init(p);
		return ret;
	}
	p->size = f->size;
	p->want_crc = f->crc32c;
	return 0;
}

int srv_put_data(struct srv_put *p, uint64_t off, const void *data, size_t len, char *err,
		 size_t err_len)
{
	int ret;

	if (p->fd < 0) {
		snprintf(err, err_len, "FILE_PUT_DATA without FILE_PUT_BEGIN");
		return -EINVAL;
	}
	if (off < p->pos || off > p->size || len > p->size - off) {
		snprintf(err, err_len, "%s: %zu bytes at offset %llu do not follow the data so "
			 "far (%llu bytes) within its %llu bytes", p->display, len,
			 (unsigned long long)off, (unsigned long long)p->pos,
			 (unsigned long long)p->size);
		srv_put_abort(p);
		return -EINVAL;
	}
	ret = dcres_pwrite_full(p->fd, data, len, (off_t)off, p->display);
	if (ret) {
		snprintf(err, err_len, "writing %s: %s", p->display, strerror(-ret));
		srv_put_abort(p);
		return ret;
	}
	p->crc = dcres_crc32c(dcres_crc32c_zeros(p->crc, off - p->pos), data, len);
	p->pos = off + len;
	return 0;
}

int srv_put_end(struct srv_put *p, char *err, size_t err_len)
{
	int ret = 0;

	if (p->fd < 0) {
		snprintf(err, err_len, "FILE_PUT_END without FILE_PUT_BEGIN");
		return -EINVAL;
	}
	p->crc = dcres_crc32c_zeros(p->crc, p->size - p->pos);
	if (p->crc != p->want_crc) {
		snprintf(err, err_len, "%s: the copy received has CRC %08x, the sender announced "
			 "%08x (not published)", p->display, p->crc, p->want_crc);
		ret = -EBADMSG;
	} else if (ftruncate(p->fd, (off_t)p->size) < 0 || fsync(p->fd) < 0) {
		ret = -errno;
		snprintf(err, err_len, "writing %s: %s", p->display, strerror(-ret));
	} else if (renameat2(p->dir_fd, p->tmp, p->dir_fd, p->name, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			snprintf(err, err_len, "%s appeared during the transfer: not replaced",
				 p->display);
		else
			snprintf(err, err_len, "publishing %s: %s", p->display, strerror(-ret));
	} else {
		close(p->fd);
		p->fd = -1; /* published: srv_put_abort leaves it */
		if (fsync(p->dir_fd) < 0) {
			ret = -errno;
			snprintf(err, err_len, "fsync the directory of %s: %s", p->display,
				 strerror(-ret));
		} else {
			pr_info("received %s (%llu bytes)", p->display, (unsigned long long)p->size);
		}
	}
	if (ret)
		pr_err("%s", err);
	srv_put_abort(p);
	return ret;
}
