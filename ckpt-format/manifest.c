/* Checkpoint manifests (manifest.h).
 *
 * On disk: magic "DCRESMAN", be32 length L (at most MANIFEST_MAX_LEN), the
 * L bytes of the packed Dcres__Manifest, be32 CRC-32C of those L bytes.
 * Published with dcres_publish_file. */
#define _GNU_SOURCE
#include "dcres/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "ondisk.h"

#define MANIFEST_MAGIC "DCRESMAN"
#define MANIFEST_HDR_SIZE 12u
#define MANIFEST_MAX_LEN (16u << 20)
#define CHECKSUM_CHUNK (4u << 20)

/* Formats dir/name into out (PATH_MAX bytes); -ENAMETOOLONG naming it. */
static int join_path(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		pr_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

int dcres_manifest_write(const char *dir, const Dcres__Manifest *m)
{
	char path[PATH_MAX];
	size_t len;
	uint8_t *buf;
	int ret;

	ret = join_path(path, dir, DCRES_MANIFEST_NAME);
	if (ret)
		return ret;
	if (!m->has_version || m->version != DCRES__MANIFEST_VERSION__MANIFEST_VERSION) {
		pr_err("%s: refusing to write manifest version %u", path, m->version);
		return -EINVAL;
	}
	len = dcres__manifest__get_packed_size(m);
	if (len > MANIFEST_MAX_LEN) {
		pr_err("%s: manifest of %zu bytes exceeds %u", path, len, MANIFEST_MAX_LEN);
		return -EFBIG;
	}
	buf = malloc(MANIFEST_HDR_SIZE + len + 4);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, MANIFEST_MAGIC, 8);
	put_be32(buf + 8, (uint32_t)len);
	dcres__manifest__pack(m, buf + MANIFEST_HDR_SIZE);
	put_be32(buf + MANIFEST_HDR_SIZE + len,
		 dcres_crc32c(0, buf + MANIFEST_HDR_SIZE, len));
	ret = dcres_publish_file(path, buf, MANIFEST_HDR_SIZE + len + 4);
	free(buf);
	return ret;
}

/* Validates the framing of a manifest file of len bytes at buf and unpacks
 * it into *m; -EINVAL, or -EIO when truncated, naming path. */
static int decode(const char *path, const uint8_t *buf, size_t len, Dcres__Manifest **m)
{
	uint32_t plen;

	if (len < MANIFEST_HDR_SIZE + 4) {
		pr_err("%s: truncated (%zu bytes)", path, len);
		return -EIO;
	}
	if (memcmp(buf, MANIFEST_MAGIC, 8)) {
		pr_err("%s: bad magic (not a dcres manifest)", path);
		return -EINVAL;
	}
	plen = get_be32(buf + 8);
	if (plen > MANIFEST_MAX_LEN) {
		pr_err("%s: length %u exceeds %u", path, plen, MANIFEST_MAX_LEN);
		return -EINVAL;
	}
	if (len != MANIFEST_HDR_SIZE + (size_t)plen + 4) {
		bool short_file = len < MANIFEST_HDR_SIZE + (size_t)plen + 4;

		pr_err("%s: %s (%zu bytes, length field says %u)", path,
		       short_file ? "truncated" : "trailing bytes", len, plen);
		return short_file ? -EIO : -EINVAL;
	}
	if (get_be32(buf + MANIFEST_HDR_SIZE + plen) !=
	    dcres_crc32c(0, buf + MANIFEST_HDR_SIZE, plen)) {
		pr_err("%s: checksum mismatch", path);
		return -EINVAL;
	}
	*m = dcres__manifest__unpack(NULL, plen, buf + MANIFEST_HDR_SIZE);
	if (!*m) {
		pr_err("%s: cannot decode the manifest", path);
		return -EINVAL;
	}
	if (!(*m)->has_version ||
	    (*m)->version != DCRES__MANIFEST_VERSION__MANIFEST_VERSION) {
		pr_err("%s: unsupported manifest version %u", path, (*m)->version);
		dcres__manifest__free_unpacked(*m, NULL);
		*m = NULL;
		return -EINVAL;
	}
	return 0;
}

int dcres_manifest_read(const char *dir, Dcres__Manifest **m)
{
	char path[PATH_MAX];
	void *data;
	size_t len;
	int ret;

	*m = NULL;
	ret = join_path(path, dir, DCRES_MANIFEST_NAME);
	if (ret)
		return ret;
	ret = dcres_read_file(path, MANIFEST_HDR_SIZE + MANIFEST_MAX_LEN + 4, &data, &len);
	if (ret)
		return ret;
	ret = decode(path, data, len, m);
	free(data);
	return ret;
}

const Dcres__FileSum *dcres_manifest_file(const Dcres__Manifest *m, const char *name)
{
	for (size_t i = 0; name && i < m->n_files; i++)
		if (m->files[i]->name && !strcmp(m->files[i]->name, name))
			return m->files[i];
	return NULL;
}

void dcres_manifest_free(Dcres__Manifest *m)
{
	if (m)
		dcres__manifest__free_unpacked(m, NULL);
}

/* Adds len bytes of file fd from offset off (data, read in chunks into
 * buf) to *sum. */
static int checksum_data(int fd, const char *path, uint8_t *buf, off_t off, off_t len,
			 uint32_t *sum)
{
	while (len > 0) {
		size_t want = len < CHECKSUM_CHUNK ? (size_t)len : CHECKSUM_CHUNK;
		int ret = dcres_pread_full(fd, buf, want, off, path);

		if (ret)
			return ret;
		*sum = dcres_crc32c(*sum, buf, want);
		off += (off_t)want;
		len -= (off_t)want;
	}
	return 0;
}

int dcres_file_checksum_fd(int fd, const char *display, uint64_t *size, uint32_t *crc)
{
	struct stat st;
	uint8_t *buf = NULL;
	uint32_t sum = 0;
	off_t pos = 0;
	int ret = 0;

	if (fstat(fd, &st) < 0) {
		ret = -errno;
		pr_perror("stat %s", display);
	} else if (!(buf = malloc(CHECKSUM_CHUNK))) {
		ret = -ENOMEM;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	/* Data extents are read; holes count as zeros without a read. */
	while (!ret && pos < st.st_size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			data = st.st_size;
		if (data < 0 || (hole = data < st.st_size ? lseek(fd, data, SEEK_HOLE) : data) < 0) {
			ret = -errno;
			pr_perror("seek in %s at offset %lld", display, (long long)pos);
			break;
		}
		sum = dcres_crc32c_zeros(sum, (uint64_t)(data - pos));
		ret = checksum_data(fd, display, buf, data, hole - data, &sum);
		pos = hole;
	}
	free(buf);
	if (!ret) {
		*size = (uint64_t)st.st_size;
		*crc = sum;
	}
	return ret;
}

int dcres_file_checksum(const char *path, uint64_t *size, uint32_t *crc)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		pr_perror("open %s", path);
		return ret;
	}
	ret = dcres_file_checksum_fd(fd, path, size, crc);
	close(fd);
	return ret;
}

/* True when name is a plain relative path inside the checkpoint directory
 * (not empty, not absolute, no ".." component). */
static bool name_is_safe(const char *name)
{
	const char *p = name;

	if (!*name || *name == '/')
		return false;
	while (p) {
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return false;
		p = strchr(p, '/');
		if (p)
			p++;
	}
	return true;
}

int dcres_manifest_verify_files(const char *dir, const Dcres__Manifest *m)
{
	for (size_t i = 0; i < m->n_files; i++) {
		const Dcres__FileSum *f = m->files[i];
		char path[PATH_MAX];
		uint64_t size;
		uint32_t crc;
		int ret;

		if (!f->name || !name_is_safe(f->name) || !f->has_size || !f->has_crc32c) {
			pr_err("%s: manifest entry %zu (%s) lacks a safe name, size or CRC",
			       dir, i, f->name ? f->name : "unnamed");
			return -EINVAL;
		}
		ret = join_path(path, dir, f->name);
		if (!ret)
			ret = dcres_file_checksum(path, &size, &crc);
		if (ret)
			return ret;
		if (size != f->size) {
			pr_err("%s: %llu bytes, manifest says %llu", path,
			       (unsigned long long)size, (unsigned long long)f->size);
			return -EBADMSG;
		}
		if (crc != f->crc32c) {
			pr_err("%s: CRC-32C %08x, manifest says %08x", path, crc, f->crc32c);
			return -EBADMSG;
		}
	}
	return 0;
}
