/* Restore and serve: the memory server reading a checkpoint's files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/fileio.h"
#include "dcres/log.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "srv-ckpt.h"
#include "srv-hostfiles.h"

#define READ_BATCH 256 /* pages per read: 1 MiB */

/* The readers refuse files of any other page size (-ENOTSUP), so every
 * page read here fits the server's page buffers. */
_Static_assert(DCRES_PAGE_SIZE == DCRES_CKPT_PAGE_SIZE,
	       "the wire's page size is the checkpoint files' page size");

int srv_ckpt_path_check(const char *rel, char *err, size_t err_len)
{
	if (!rel || !*rel || rel[0] == '/' || strstr(rel, "..")) {
		snprintf(err, err_len, "checkpoint path '%s' must be relative to the server's "
			 "--dir and must not contain '..'", rel ? rel : "");
		return -EINVAL;
	}
	if (strlen(rel) > PATH_MAX - 64) {
		snprintf(err, err_len, "checkpoint path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

int srv_ckpt_dir_open(int base_fd, const char *rel, bool create, char *err, size_t err_len)
{
	int fd = srv_ckpt_path_check(rel, err, err_len);

	if (fd)
		return fd;
	fd = create ? dcres_mkdirs_beneath(base_fd, rel)
		    : dcres_open_beneath(base_fd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd == -ELOOP || fd == -EXDEV || (create && fd == -ENOTDIR)) {
		snprintf(err, err_len, "checkpoint directory %s: a symlink on the way (refused; "
			 "the server follows none below --dir)", rel);
		pr_err("%s", err);
	} else if (fd < 0) {
		snprintf(err, err_len, "checkpoint directory %s: %s", rel, strerror(-fd));
	}
	return fd;
}

int srv_host_file(char *name, size_t name_len, char *display, size_t display_len,
		  const char *rel, uint32_t host_id, const char *suffix)
{
	int n = snprintf(name, name_len, "host-%u.%s", host_id, suffix);
	int m = snprintf(display, display_len, "%s/%s", rel, name);

	return n < 0 || (size_t)n >= name_len || m < 0 || (size_t)m >= display_len
		? -ENAMETOOLONG : 0;
}

void srv_host_files_close(struct srv_host_files *h)
{
	dcres_memfile_close(h->mf);
	dcres_presence_free(&h->present);
}

/* Explains why a file could not be opened: a symlink or a page size
 * (-ENOTSUP from the readers) is refused by name. */
static void open_error(char *err, size_t err_len, const char *path, int ret)
{
	if (ret == -ELOOP || ret == -EXDEV)
		snprintf(err, err_len, "%s is a symlink (refused; the server follows none "
			 "below --dir)", path);
	else if (ret == -ENOTSUP)
		snprintf(err, err_len, "%s: the page size in its header is not supported "
			 "(only %u)", path, DCRES_PAGE_SIZE);
	else
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
}

int srv_host_files_open(struct srv_host_files *h, const struct vm *vm, int base_fd,
			   const char *rel, uint32_t host_id, char *err, size_t err_len)
{
	char mem_name[64], present_name[64];
	const struct dcres_memfile_info *info;
	int dir_fd, ret;

	memset(h, 0, sizeof(*h));
	dir_fd = srv_ckpt_dir_open(base_fd, rel, false, err, err_len);
	if (dir_fd < 0)
		return dir_fd;
	if (srv_host_file(mem_name, sizeof(mem_name), h->mem_path, sizeof(h->mem_path), rel,
			  host_id, "mem") ||
	    srv_host_file(present_name, sizeof(present_name), h->present_path,
			  sizeof(h->present_path), rel, host_id, "present")) {
		snprintf(err, err_len, "checkpoint path too long");
		close(dir_fd);
		return -ENAMETOOLONG;
	}
	ret = dcres_memfile_open_at(dir_fd, mem_name, h->mem_path, &h->mf);
	if (ret) {
		open_error(err, err_len, h->mem_path, ret);
		close(dir_fd);
		return ret;
	}
	ret = dcres_presence_read_at(dir_fd, present_name, h->present_path, &h->present);
	close(dir_fd);
	if (ret) {
		open_error(err, err_len, h->present_path, ret);
		dcres_memfile_close(h->mf);
		h->mf = NULL;
		return ret;
	}
	info = dcres_memfile_info(h->mf);
	if (memcmp(info->vm_uuid, vm->uuid, 16) != 0 ||
	    info->ram_size != vm->npages * DCRES_PAGE_SIZE ||
	    h->present.npages != vm->npages) {
		snprintf(err, err_len, "%s belongs to another VM or RAM size than VM %s",
			 h->mem_path, vm->name);
		srv_host_files_close(h);
		return -EINVAL;
	}
	return 0;
}

int srv_host_files_read(struct srv_host_files *h, const uint64_t *pages, uint64_t n,
			void *buf, char *err, size_t err_len)
{
	int ret = dcres_memfile_read_pages(h->mf, pages, buf, n);

	if (ret) {
		snprintf(err, err_len, "reading %s: %s", h->mem_path, strerror(-ret));
		return ret;
	}
	for (uint64_t i = 0; i < n; i++) {
		const void *p = (const char *)buf + i * DCRES_PAGE_SIZE;
		if (dcres_crc32c(0, p, DCRES_PAGE_SIZE) != h->present.page_crc[pages[i]]) {
			snprintf(err, err_len, "%s: page %llu is corrupted (checksum mismatch)",
				 h->mem_path, (unsigned long long)pages[i]);
			pr_err("%s", err);
			return -EBADMSG;
		}
	}
	return 0;
}

/* The pages to load or serve. */
struct page_list {
	uint64_t *v;
	uint64_t n;
	const struct srv_host_files *h;
};

/* Appends the present pages of one data extent; data of a page that is not
 * present is ignored. */
static int collect_extent(uint64_t first, uint64_t count, void *arg)
{
	struct page_list *l = arg;

	for (uint64_t p = first; p < first + count && p < l->h->present.npages; p++)
		if (dcres_presence_test(&l->h->present, p))
			l->v[l->n++] = p;
	return 0;
}

/* Lists the requested pages (each must be present, in range and listed
 * once) or, with n == 0, every
 * present page, found through the file's data extents (SEEK_DATA); a
 * present page lying in a hole means the file lost data. The caller frees
 * out->v, also after an error. */
static int list_pages(const struct vm *vm, struct srv_host_files *h, const uint64_t *pages,
		      uint64_t n, struct page_list *out, char *err, size_t err_len)
{
	uint64_t count = n ? n : dcres_presence_count(&h->present);
	int ret;

	out->v = malloc((count ? count : 1) * sizeof(uint64_t));
	if (!out->v)
		return -ENOMEM;
	out->n = 0;
	out->h = h;
	if (n) {
		/* The same check as page-in and page-out: in range, no duplicates. */
		if ((ret = vm_check_pages(vm, pages, n, err, err_len)))
			return ret;
		for (uint64_t i = 0; i < n; i++) {
			if (!dcres_presence_test(&h->present, pages[i])) {
				snprintf(err, err_len, "%s does not hold page %llu",
					 h->mem_path, (unsigned long long)pages[i]);
				return -ENOENT;
			}
			out->v[out->n++] = pages[i];
		}
		return 0;
	}
	ret = dcres_memfile_for_each_extent(h->mf, collect_extent, out);
	if (!ret && out->n != count) {
		uint64_t p = 0, i = 0;
		for (; p < h->present.npages; p++) {
			if (!dcres_presence_test(&h->present, p))
				continue;
			if (i >= out->n || out->v[i] != p)
				break;
			i++;
		}
		snprintf(err, err_len, "%s: page %llu is listed in %s but its data is missing",
			 h->mem_path, (unsigned long long)p, h->present_path);
		pr_err("%s", err);
		ret = -EBADMSG;
	}
	return ret;
}

int srv_restore(struct vmstore *s, struct vm *vm, int base_fd, const char *rel,
		uint32_t host_id, const uint64_t *pages, uint64_t n, char *err, size_t err_len)
{
	struct srv_host_files h;
	struct page_list list = { 0 };
	uint32_t *slots = NULL;
	void *buf = NULL;
	int ret;

	ret = srv_host_files_open(&h, vm, base_fd, rel, host_id, err, err_len);
	if (ret)
		return ret;
	ret = list_pages(vm, &h, pages, n, &list, err, err_len);
	if (ret)
		goto out;
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, err_len, "VM %s is being checkpointed", vm->name);
		ret = -EBUSY;
		goto out;
	}
	for (uint64_t i = 0; i < list.n; i++) {
		if (vm->slot[list.v[i]] != ARENA_NO_SLOT) {
			pthread_mutex_unlock(&vm->lock);
			snprintf(err, err_len, "page %llu of VM %s is already held here; restore "
				 "loads into pages not held (nothing loaded)",
				 (unsigned long long)list.v[i], vm->name);
			ret = -EEXIST;
			goto out;
		}
	}
	slots = malloc((list.n ? list.n : 1) * sizeof(*slots));
	ret = slots && !posix_memalign(&buf, DCRES_PAGE_SIZE, READ_BATCH * DCRES_PAGE_SIZE)
		? 0 : -ENOMEM;
	if (!ret && (ret = arena_alloc(s->arena, list.n, slots)))
		snprintf(err, err_len, "capacity: restoring %llu pages from %s, %llu pages are "
			 "free (nothing loaded)", (unsigned long long)list.n, h.mem_path,
			 (unsigned long long)arena_free_count(s->arena));
	if (ret) {
		pthread_mutex_unlock(&vm->lock);
		goto out;
	}
	/* Load into the new slots; install them only when every page is good. */
	for (uint64_t i = 0; i < list.n && !ret; i += READ_BATCH) {
		uint64_t b = list.n - i < READ_BATCH ? list.n - i : READ_BATCH;
		ret = srv_host_files_read(&h, list.v + i, b, buf, err, err_len);
		for (uint64_t j = 0; j < b && !ret; j++)
			memcpy(arena_page(s->arena, slots[i + j]),
			       (char *)buf + j * DCRES_PAGE_SIZE, DCRES_PAGE_SIZE);
	}
	if (ret) {
		arena_free(s->arena, slots, list.n);
	} else {
		for (uint64_t i = 0; i < list.n; i++)
			vm->slot[list.v[i]] = slots[i];
		vm->held += list.n;
		vm->has_base = false; /* restored pages: no increment on any checkpoint */
		pr_info("VM %s: restored %llu pages from %s", vm->name,
			(unsigned long long)list.n, h.mem_path);
	}
	pthread_mutex_unlock(&vm->lock);
out:
	free(list.v);
	free(slots);
	free(buf);
	srv_host_files_close(&h);
	return ret;
}

int srv_serve(const struct vm *vm, int base_fd, const char *rel, uint32_t host_id,
	      const uint64_t *pages, uint64_t n, void *out, char *err, size_t err_len)
{
	struct srv_host_files h;
	struct page_list list = { 0 };
	int ret;

	ret = srv_host_files_open(&h, vm, base_fd, rel, host_id, err, err_len);
	if (ret)
		return ret;
	ret = n ? list_pages(vm, &h, pages, n, &list, err, err_len) : 0;
	for (uint64_t i = 0; i < n && !ret; i += READ_BATCH) {
		uint64_t b = n - i < READ_BATCH ? n - i : READ_BATCH;
		ret = srv_host_files_read(&h, pages + i, b, (char *)out + i * DCRES_PAGE_SIZE, err, err_len);
	}
	free(list.v);
	srv_host_files_close(&h);
	return ret;
}
