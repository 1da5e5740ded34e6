#include "srv-ckpt.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/crc32c.h"
#include "dcres/log.h"
#include "dcres/memfile.h"
#include "dcres/presence.h"

#define WRITE_BATCH 512    /* pages per write: 2 MiB */
#define WRITERS 3          /* batches in flight: copying overlaps writing */
#define SYNC_REMAINING 256 /* sync answers when at most this many are left */
#define FLUSH_EVERY (256ull << 20) /* bytes between fdatasyncs while writing */

struct srv_ckpt {
	struct vmstore *store;
	struct vm *vm;
	uint64_t owner;
	uint32_t host_id;
	char mem_partial[PATH_MAX], mem_path[PATH_MAX], present_path[PATH_MAX];
	struct dcres_memfile *mf;
	struct dcres_presence present;
	uint64_t *dirty;          /* pages still to write */
	uint64_t *inflight;       /* pages in a batch being written */
	uint64_t ndirty, cursor;
	bool final_requested, stop;
	unsigned writers_running;
	int error;
	uint64_t pages_written, bytes_written;
	pthread_t writers[WRITERS];
	pthread_cond_t cond;      /* with vm->lock: progress, requests */
};

static bool bit_test(const uint64_t *b, uint64_t i) { return b[i / 64] >> (i % 64) & 1; }
static void bit_set(uint64_t *b, uint64_t i) { b[i / 64] |= 1ull << (i % 64); }
static void bit_clear(uint64_t *b, uint64_t i) { b[i / 64] &= ~(1ull << (i % 64)); }

/* mkdir -p of dir with mode 0700. */
static int make_dirs(const char *dir)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Collects up to max dirty pages that are not in flight, starting at the
 * cursor, and marks them in flight (vm->lock held). */
static uint64_t take_dirty(struct srv_ckpt *c, uint64_t *pages, uint64_t max)
{
	uint64_t n = 0, npages = c->vm->npages, scanned = 0;
	uint64_t i = c->cursor;

	while (n < max && c->ndirty && scanned < npages) {
		uint64_t w = c->dirty[i / 64] >> (i % 64);
		if (!w) {
			uint64_t next = (i / 64 + 1) * 64;
			scanned += next - i;
			i = next >= npages ? 0 : next;
			continue;
		}
		uint64_t skip = (uint64_t)__builtin_ctzll(w);
		i += skip;
		scanned += skip;
		if (i >= npages) {
			i = 0;
			continue;
		}
		/* A page still being written by another batch waits for it, so
		 * two versions of one page are never in flight at once. */
		if (!bit_test(c->inflight, i)) {
			bit_clear(c->dirty, i);
			bit_set(c->inflight, i);
			c->ndirty--;
			pages[n++] = i;
		}
		i = i + 1 >= npages ? 0 : i + 1;
		scanned++;
	}
	c->cursor = i;
	return n;
}

/* Writer thread (WRITERS of them): saves dirty pages until final drains
 * them or abort. Batches are written in parallel, each page in at most one
 * batch at a time, so a newer version is never overtaken by an older one. */
static void *writer_main(void *arg)
{
	struct srv_ckpt *c = arg;
	struct vm *vm = c->vm;
	uint64_t *pages = malloc(WRITE_BATCH * sizeof(*pages));
	void *buf = NULL;

	pthread_mutex_lock(&vm->lock);
	if (!pages || posix_memalign(&buf, DCRES_PAGE_SIZE, (size_t)WRITE_BATCH * DCRES_PAGE_SIZE)) {
		c->error = -ENOMEM;
		goto out;
	}
	while (!c->stop && !c->error) {
		uint64_t n = c->ndirty ? take_dirty(c, pages, WRITE_BATCH) : 0;
		if (n == 0) {
			if (c->ndirty == 0 && c->final_requested)
				break;
			pthread_cond_wait(&c->cond, &vm->lock);
			continue;
		}
		for (uint64_t i = 0; i < n; i++) {
			void *dst = (char *)buf + i * DCRES_PAGE_SIZE;
			memcpy(dst, arena_page(c->store->arena, vm->slot[pages[i]]), DCRES_PAGE_SIZE);
			dcres_presence_set(&c->present, pages[i],
					   dcres_crc32c(0, dst, DCRES_PAGE_SIZE));
		}
		pthread_mutex_unlock(&vm->lock);
		int ret = dcres_memfile_write_pages(c->mf, pages, buf, n);
		pthread_mutex_lock(&vm->lock);
		for (uint64_t i = 0; i < n; i++)
			bit_clear(c->inflight, pages[i]);
		if (ret) {
			c->error = ret;
			break;
		}
		bool flush = (c->bytes_written + n * DCRES_PAGE_SIZE) / FLUSH_EVERY !=
			     c->bytes_written / FLUSH_EVERY;
		c->pages_written += n;
		c->bytes_written += n * DCRES_PAGE_SIZE;
		pthread_cond_broadcast(&c->cond);
		if (flush) {
			/* Commit metadata as we go, so final's fsync is short. */
			pthread_mutex_unlock(&vm->lock);
			ret = dcres_memfile_flush(c->mf);
			pthread_mutex_lock(&vm->lock);
			if (ret) {
				c->error = ret;
				break;
			}
		}
	}
out:
	c->writers_running--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&vm->lock);
	free(pages);
	free(buf);
	return NULL;
}

/* Waits for the writer threads to end (vm->lock held on entry, released). */
static void join_writers(struct vm *vm, struct srv_ckpt *c)
{
	while (c->writers_running)
		pthread_cond_wait(&c->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(c->writers[i], NULL);
}

static void ckpt_free(struct srv_ckpt *c)
{
	dcres_memfile_close(c->mf);
	dcres_presence_free(&c->present);
	free(c->dirty);
	free(c->inflight);
	pthread_cond_destroy(&c->cond);
	free(c);
}

int srv_ckpt_begin(struct vmstore *s, struct vm *vm, const char *base, const char *rel,
		   uint32_t host_id, uint64_t owner, char *err, size_t err_len)
{
	char dir[PATH_MAX];
	struct srv_ckpt *c;
	int ret;

	if ((ret = srv_ckpt_dir(base, rel, dir, sizeof(dir), err, err_len)))
		return ret;
	if (host_id == 0 || host_id > 254) {
		snprintf(err, err_len, "host id %u: memory servers are 1..254", host_id);
		return -EINVAL;
	}
	if ((ret = make_dirs(dir))) {
		snprintf(err, err_len, "cannot create %s: %s", dir, strerror(-ret));
		return ret;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->store = s;
	c->vm = vm;
	c->owner = owner;
	c->host_id = host_id;
	pthread_cond_init(&c->cond, NULL);
	if (srv_host_file(c->mem_path, sizeof(c->mem_path), dir, host_id, "mem") ||
	    srv_host_file(c->mem_partial, sizeof(c->mem_partial), dir, host_id, "mem.partial") ||
	    srv_host_file(c->present_path, sizeof(c->present_path), dir, host_id, "present")) {
		snprintf(err, err_len, "checkpoint path too long");
		ckpt_free(c);
		return -ENAMETOOLONG;
	}
	c->dirty = calloc((vm->npages + 63) / 64, sizeof(uint64_t));
	c->inflight = calloc((vm->npages + 63) / 64, sizeof(uint64_t));
	if (!c->dirty || !c->inflight || dcres_presence_init(&c->present, vm->npages, DCRES_PAGE_SIZE)) {
		ckpt_free(c);
		return -ENOMEM;
	}
	struct dcres_memfile_info info = {
		.ram_size = vm->npages * DCRES_PAGE_SIZE,
		.page_size = DCRES_PAGE_SIZE,
		.host_id = host_id,
	};
	memcpy(info.vm_uuid, vm->uuid, 16);
	ret = dcres_memfile_create(c->mem_partial, &info, &c->mf);
	if (ret) {
		snprintf(err, err_len, "cannot create %s: %s", c->mem_partial, strerror(-ret));
		ckpt_free(c);
		return ret;
	}

	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, err_len, "a checkpoint of VM %s is already running", vm->name);
		unlink(c->mem_partial);
		ckpt_free(c);
		return -EBUSY;
	}
	for (uint64_t p = 0; p < vm->npages; p++) {
		if (vm->slot[p] != ARENA_NO_SLOT) {
			bit_set(c->dirty, p);
			c->ndirty++;
			dcres_presence_set(&c->present, p, 0);
		}
	}
	for (unsigned i = 0; i < WRITERS; i++) {
		ret = pthread_create(&c->writers[i], NULL, writer_main, c);
		if (ret) {
			/* Without all its writers the checkpoint cannot start. */
			c->stop = true;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&vm->lock);
			for (unsigned j = 0; j < i; j++)
				pthread_join(c->writers[j], NULL);
			unlink(c->mem_partial);
			ckpt_free(c);
			return -ret;
		}
		c->writers_running++;
	}
	vm->ckpt = c;
	pthread_mutex_unlock(&vm->lock);
	pr_info("VM %s: checkpoint to %s begun, %llu pages to save", vm->name, dir,
		(unsigned long long)c->ndirty);
	return 0;
}

void srv_ckpt_page_arrived(struct srv_ckpt *c, uint64_t page)
{
	if (!bit_test(c->dirty, page)) {
		bit_set(c->dirty, page);
		c->ndirty++;
	}
	dcres_presence_set(&c->present, page, 0);
}

void srv_ckpt_wake(struct srv_ckpt *c)
{
	pthread_cond_broadcast(&c->cond);
}

void srv_ckpt_page_left(struct srv_ckpt *c, uint64_t page)
{
	if (bit_test(c->dirty, page)) {
		bit_clear(c->dirty, page);
		c->ndirty--;
	}
	dcres_presence_clear(&c->present, page);
	/* Best effort: final punches whatever stale data remains. */
	dcres_memfile_punch(c->mf, page, 1);
}

/* Locks vm and returns its running checkpoint; without one, unlocks and
 * returns NULL with err explaining. */
static struct srv_ckpt *lock_running(struct vm *vm, char *err, size_t err_len)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt)
		return vm->ckpt;
	pthread_mutex_unlock(&vm->lock);
	snprintf(err, err_len, "no checkpoint of VM %s is running", vm->name);
	return NULL;
}

int srv_ckpt_sync(struct vm *vm, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	c = lock_running(vm, err, err_len);
	if (!c)
		return -ENOENT;
	while (c->ndirty > SYNC_REMAINING && !c->error && c->writers_running)
		pthread_cond_wait(&c->cond, &vm->lock);
	ret = c->error;
	if (ret)
		snprintf(err, err_len, "writing %s failed: %s", c->mem_partial, strerror(-ret));
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Punches data left in c's file for pages that are not present. */
static int punch_absent(uint64_t first, uint64_t count, void *arg)
{
	struct srv_ckpt *c = arg;

	for (uint64_t p = first; p < first + count; p++) {
		if (!dcres_presence_test(&c->present, p)) {
			int ret = dcres_memfile_punch(c->mf, p, 1);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int srv_ckpt_final(struct vm *vm, uint64_t *bytes_written, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	c = lock_running(vm, err, err_len);
	if (!c)
		return -ENOENT;
	c->final_requested = true;
	pthread_cond_broadcast(&c->cond);
	vm->ckpt = NULL; /* the VM is stopped: no paging is expected any more */
	join_writers(vm, c);

	ret = c->error;
	if (!ret)
		ret = dcres_memfile_for_each_extent(c->mf, punch_absent, c);
	if (!ret)
		ret = dcres_memfile_sync(c->mf);
	if (!ret)
		ret = dcres_presence_write(c->present_path, &c->present);
	if (!ret && rename(c->mem_partial, c->mem_path) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, err_len, "checkpoint of VM %s into %s failed: %s", vm->name,
			 c->mem_path, strerror(-ret));
		unlink(c->mem_partial);
	} else {
		*bytes_written = c->bytes_written;
		pr_info("VM %s: checkpoint %s complete, %llu pages",
			vm->name, c->mem_path,
			(unsigned long long)dcres_presence_count(&c->present));
	}
	ckpt_free(c);
	return ret;
}

int srv_ckpt_abort(struct vm *vm, char *err, size_t err_len)
{
	struct srv_ckpt *c;

	c = lock_running(vm, err, err_len);
	if (!c)
		return -ENOENT;
	vm->ckpt = NULL;
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	join_writers(vm, c);
	unlink(c->mem_partial);
	pr_info("VM %s: checkpoint %s aborted", vm->name, c->mem_partial);
	ckpt_free(c);
	return 0;
}

void srv_ckpt_abort_owned(struct vm *vm, uint64_t owner)
{
	char err[256];

	pthread_mutex_lock(&vm->lock);
	bool owned = vm->ckpt && vm->ckpt->owner == owner;
	pthread_mutex_unlock(&vm->lock);
	if (owned) {
		pr_warn("VM %s: the connection running its checkpoint closed; aborting it",
			vm->name);
		srv_ckpt_abort(vm, err, sizeof(err));
	}
}

void srv_ckpt_stats(const struct vm *vm, Dcres__Stats *st)
{
	const struct srv_ckpt *c = vm->ckpt;

	st->has_ckpt_state = 1;
	st->ckpt_state = c ? (c->final_requested ? 2 : 1) : 0;
	if (!c)
		return;
	st->has_ckpt_pages_written = st->has_ckpt_bytes_written = st->has_ckpt_pages_pending = 1;
	st->ckpt_pages_written = c->pages_written;
	st->ckpt_bytes_written = c->bytes_written;
	st->ckpt_pages_pending = c->ndirty;
}
