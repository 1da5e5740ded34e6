#define _GNU_SOURCE
#include "srv-ckpt.h"
#include "srv-lazy.h"

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
#include "dcres/memfile.h"
#include "dcres/presence.h"
#include "dcres/uuid.h"

#define WRITE_BATCH 512    /* pages per write: 2 MiB */
#define WRITERS 3          /* batches in flight: copying overlaps writing */
#define SYNC_REMAINING 256 /* sync answers when at most this many are left */
#define FLUSH_EVERY (256ull << 20) /* bytes between fdatasyncs while writing */
#define TAIL_MAX 4096      /* final copies at most this many pages (16 MiB) */

/* What a checkpoint is doing; vm->ckpt points at it in every phase. */
enum ckpt_phase {
	CKPT_STARTING, /* slot taken, files being created: paging not tracked */
	CKPT_RUNNING,  /* writers saving; paging tracked */
	CKPT_FROZEN,   /* after final: its pages fixed, paging no longer tracked */
	CKPT_ENDING,   /* commit or abort under way: refused to anyone else */
};

struct srv_ckpt {
	struct vmstore *store;
	struct vm *vm;
	uint8_t id[16];
	uint64_t *next_since;     /* vm->since from final on (zeroed beforehand) */
	uint64_t *frozen_since;   /* after final: vm->since up to it, merged
				   * back unless the checkpoint commits */
	uint64_t owner;
	uint32_t host_id;
	int dir_fd;               /* the checkpoint directory */
	char partial_name[NAME_MAX + 1], mem_name[64], present_name[64];
	char partial_display[PATH_MAX], mem_display[PATH_MAX], present_display[PATH_MAX];
	struct dcres_memfile *mf;
	struct dcres_presence present;
	uint64_t *dirty;          /* pages still to write */
	uint64_t *inflight;       /* pages in a batch being written */
	uint64_t ndirty, cursor;
	uint64_t *tail;           /* after final: pages still dirty then, */
	void *tail_buf;           /* their content then, */
	uint64_t ntail;           /* how many; written by commit */
	enum ckpt_phase phase;
	bool tracking;            /* page moves update dirty and present */
	bool final_requested, stop;
	unsigned writers_running;
	unsigned syncs_waiting;   /* srv_ckpt_sync calls inside c's lifetime */
	int error;
	uint64_t pages_written, bytes_written;
	pthread_t writers[WRITERS];
	pthread_cond_t cond;      /* with vm->lock: progress, requests */
};

static bool bit_test(const uint64_t *b, uint64_t i) { return b[i / 64] >> (i % 64) & 1; }
static void bit_set(uint64_t *b, uint64_t i) { b[i / 64] |= 1ull << (i % 64); }
static void bit_clear(uint64_t *b, uint64_t i) { b[i / 64] &= ~(1ull << (i % 64)); }

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
		uint64_t kept = 0;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t slot = vm->slot[pages[i]];
			if (slot == ARENA_NO_SLOT) {
				/* Gone without srv_ckpt_page_left: never read a freed slot. */
				bit_clear(c->inflight, pages[i]);
				dcres_presence_clear(&c->present, pages[i]);
				continue;
			}
			void *dst = (char *)buf + kept * DCRES_PAGE_SIZE;
			memcpy(dst, arena_page(c->store->arena, slot), DCRES_PAGE_SIZE);
			dcres_presence_set(&c->present, pages[i],
					   dcres_crc32c(0, dst, DCRES_PAGE_SIZE));
			pages[kept++] = pages[i];
		}
		n = kept;
		if (n == 0)
			continue;
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

/* Waits for the writer threads to end and for syncs waiting on c to leave,
 * then stops tracking page moves (vm->lock held on entry, released). */
static void join_writers(struct vm *vm, struct srv_ckpt *c)
{
	while (c->writers_running || c->syncs_waiting)
		pthread_cond_wait(&c->cond, &vm->lock);
	c->tracking = false;
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(c->writers[i], NULL);
}

static void ckpt_free(struct srv_ckpt *c)
{
	dcres_memfile_close(c->mf);
	dcres_presence_free(&c->present);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	free(c->dirty);
	free(c->inflight);
	free(c->tail);
	free(c->tail_buf);
	free(c->next_since);
	free(c->frozen_since);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Gives up the VM's checkpoint slot, removes c's partial file if it made
 * one, and frees c (no writer running). Past its final, the pages stored
 * since its parent's stop point count for the next increment again. */
static void ckpt_end(struct vm *vm, struct srv_ckpt *c)
{
	if (c->mf)
		unlinkat(c->dir_fd, c->partial_name, 0);
	pthread_mutex_lock(&vm->lock);
	vm->ckpt = NULL;
	for (uint64_t w = 0; c->frozen_since && w < (vm->npages + 63) / 64; w++)
		vm->since[w] |= c->frozen_since[w];
	pthread_mutex_unlock(&vm->lock);
	ckpt_free(c);
}

/* Allocates c's state for vm, the files' names, and nothing on disk. */
static struct srv_ckpt *ckpt_new(struct vmstore *s, struct vm *vm, const char *rel,
				 uint32_t host_id, const uint8_t id[16], uint64_t owner,
				 char *err, size_t err_len)
{
	struct srv_ckpt *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->store = s;
	c->vm = vm;
	c->owner = owner;
	c->host_id = host_id;
	memcpy(c->id, id, 16);
	c->dir_fd = -1;
	pthread_cond_init(&c->cond, NULL);
	if (srv_host_file(c->mem_name, sizeof(c->mem_name), c->mem_display,
			  sizeof(c->mem_display), rel, host_id, "mem") ||
	    srv_host_file(c->present_name, sizeof(c->present_name), c->present_display,
			  sizeof(c->present_display), rel, host_id, "present")) {
		snprintf(err, err_len, "checkpoint path too long");
		ckpt_free(c);
		return NULL;
	}
	c->dirty = calloc((vm->npages + 63) / 64, sizeof(uint64_t));
	c->inflight = calloc((vm->npages + 63) / 64, sizeof(uint64_t));
	c->next_since = calloc((vm->npages + 63) / 64, sizeof(uint64_t));
	if (!c->dirty || !c->inflight || !c->next_since ||
	    dcres_presence_init(&c->present, vm->npages, DCRES_PAGE_SIZE)) {
		snprintf(err, err_len, "no memory for the checkpoint of %llu pages",
			 (unsigned long long)vm->npages);
		ckpt_free(c);
		return NULL;
	}
	return c;
}

/* Creates c's directory and a partial memory file of its own in it. */
static int ckpt_create_files(struct srv_ckpt *c, int base_fd, const char *rel, char *err,
			     size_t err_len)
{
	struct dcres_memfile_info info = {
		.ram_size = c->vm->npages * DCRES_PAGE_SIZE,
		.page_size = DCRES_PAGE_SIZE,
		.host_id = c->host_id,
	};
	char prefix[64];
	int ret = -EEXIST;

	c->dir_fd = srv_ckpt_dir_open(base_fd, rel, true, err, err_len);
	if (c->dir_fd < 0)
		return c->dir_fd;
	/* Another checkpoint's files are never replaced: refused now, before
	 * anything is written, rather than at commit. */
	if (!faccessat(c->dir_fd, c->mem_name, F_OK, AT_SYMLINK_NOFOLLOW) ||
	    !faccessat(c->dir_fd, c->present_name, F_OK, AT_SYMLINK_NOFOLLOW)) {
		snprintf(err, err_len, "%s already holds a checkpoint's %s or %s: nothing is "
			 "replaced", rel, c->mem_name, c->present_name);
		return -EEXIST;
	}
	memcpy(info.vm_uuid, c->vm->uuid, 16);
	snprintf(prefix, sizeof(prefix), "host-%u.mem.partial", c->host_id);
	/* A new file every time (O_EXCL), so nothing there is ever truncated. */
	for (int attempt = 0; attempt < 8 && ret == -EEXIST; attempt++) {
		ret = dcres_unique_name(prefix, c->partial_name, sizeof(c->partial_name));
		if (!ret && snprintf(c->partial_display, sizeof(c->partial_display), "%s/%s", rel,
				     c->partial_name) >= (int)sizeof(c->partial_display))
			ret = -ENAMETOOLONG;
		if (!ret)
			ret = dcres_memfile_create_at(c->dir_fd, c->partial_name,
						      c->partial_display, &info, &c->mf);
	}
	if (ret) {
		c->mf = NULL;
		snprintf(err, err_len, "cannot create %s: %s", c->partial_display[0]
			 ? c->partial_display : rel, strerror(-ret));
	}
	return ret;
}

/* Why vm's last checkpoint here is not parent, into err (vm->lock held). */
static int not_the_parent(const struct vm *vm, const uint8_t parent[16], char *err,
			  size_t err_len)
{
	char want[40], have[40];

	dcres_uuid_format(parent, want);
	dcres_uuid_format(vm->base_id, have);
	if (vm->has_base)
		snprintf(err, err_len, "VM %s: an incremental checkpoint on checkpoint %s, but "
			 "its last checkpoint here is %s: take a full one", vm->name, want, have);
	else
		snprintf(err, err_len, "VM %s: an incremental checkpoint on checkpoint %s, but "
			 "no checkpoint here covers its pages (none yet, or pages restored "
			 "since): take a full one", vm->name, want);
	return -ESTALE;
}

int srv_ckpt_begin(struct vmstore *s, struct vm *vm, int base_fd, const char *rel,
		   uint32_t host_id, const uint8_t id[16], const uint8_t *parent,
		   uint64_t owner, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	if (host_id == 0 || host_id > 254) {
		snprintf(err, err_len, "host id %u: memory servers are 1..254", host_id);
		return -EINVAL;
	}
	if ((ret = srv_ckpt_path_check(rel, err, err_len)))
		return ret;
	c = ckpt_new(s, vm, rel, host_id, id, owner, err, err_len);
	if (!c)
		return -ENOMEM;
	/* The slot first: a refused begin touches no file. */
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, err_len, "a checkpoint of VM %s is already running", vm->name);
		ckpt_free(c);
		return -EBUSY;
	}
	if (srv_lazy_pending(vm)) {
		snprintf(err, err_len, "VM %s has %llu restored pages still loading here; "
			 "checkpoint it once they are in (query-dcres, dcres-restore "
			 "--wait-loaded)", vm->name, (unsigned long long)srv_lazy_pending(vm));
		pthread_mutex_unlock(&vm->lock);
		ckpt_free(c);
		return -EBUSY;
	}
	if (parent && (!vm->has_base || memcmp(vm->base_id, parent, 16))) {
		ret = not_the_parent(vm, parent, err, err_len);
		pthread_mutex_unlock(&vm->lock);
		ckpt_free(c);
		return ret;
	}
	vm->ckpt = c;
	pthread_mutex_unlock(&vm->lock);

	ret = ckpt_create_files(c, base_fd, rel, err, err_len);
	if (ret) {
		ckpt_end(vm, c);
		return ret;
	}
	pthread_mutex_lock(&vm->lock);
	for (uint64_t p = 0; p < vm->npages; p++) {
		if (vm->slot[p] != ARENA_NO_SLOT && (!parent || bit_test(vm->since, p))) {
			bit_set(c->dirty, p);
			c->ndirty++;
			dcres_presence_set(&c->present, p, 0);
		}
	}
	c->tracking = true;
	for (unsigned i = 0; i < WRITERS; i++) {
		ret = pthread_create(&c->writers[i], NULL, writer_main, c);
		if (ret) {
			/* Without all its writers the checkpoint cannot start. */
			c->stop = true;
			c->tracking = false;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&vm->lock);
			for (unsigned j = 0; j < i; j++)
				pthread_join(c->writers[j], NULL);
			snprintf(err, err_len, "cannot start the checkpoint's writers: %s",
				 strerror(ret));
			ckpt_end(vm, c);
			return -ret;
		}
		c->writers_running++;
	}
	c->phase = CKPT_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	pr_info("VM %s: %s checkpoint to %s begun, %llu pages to save", vm->name,
		parent ? "incremental" : "full", c->partial_display,
		(unsigned long long)c->ndirty);
	return 0;
}

void srv_ckpt_page_arrived(struct srv_ckpt *c, uint64_t page)
{
	if (!c->tracking)
		return;
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
	if (!c->tracking)
		return;
	if (bit_test(c->dirty, page)) {
		bit_clear(c->dirty, page);
		c->ndirty--;
	}
	dcres_presence_clear(&c->present, page);
	/* Best effort: final punches whatever stale data remains. */
	dcres_memfile_punch(c->mf, page, 1);
}

static const char *phase_name(enum ckpt_phase phase)
{
	static const char *const names[] = { "starting", "running", "past its final",
					     "ending" };
	return names[phase];
}

/* Locks vm and returns its checkpoint if it is in phase want; otherwise
 * unlocks and returns NULL with *ret and err explaining. */
static struct srv_ckpt *lock_phase(struct vm *vm, enum ckpt_phase want, int *ret, char *err,
				   size_t err_len)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt && vm->ckpt->phase == want)
		return vm->ckpt;
	*ret = vm->ckpt ? -EBUSY : -ENOENT;
	if (vm->ckpt)
		snprintf(err, err_len, "the checkpoint of VM %s is %s", vm->name,
			 phase_name(vm->ckpt->phase));
	else
		snprintf(err, err_len, "no checkpoint of VM %s is running", vm->name);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static struct srv_ckpt *lock_running(struct vm *vm, int *ret, char *err, size_t err_len)
{
	return lock_phase(vm, CKPT_RUNNING, ret, err, err_len);
}

int srv_ckpt_sync(struct vm *vm, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	c = lock_running(vm, &ret, err, err_len);
	if (!c)
		return ret;
	c->syncs_waiting++;
	while (c->ndirty > SYNC_REMAINING && !c->error && c->writers_running)
		pthread_cond_wait(&c->cond, &vm->lock);
	ret = c->error;
	if (ret)
		snprintf(err, err_len, "writing %s failed: %s", c->partial_display, strerror(-ret));
	else if (c->stop)
		snprintf(err, err_len, "the checkpoint of VM %s was aborted", vm->name);
	if (!ret && c->stop)
		ret = -ECANCELED;
	c->syncs_waiting--;
	pthread_cond_broadcast(&c->cond);
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

/* Makes c's files durable and publishes them: presence, then the memory
 * file renamed over its final name, then the directory fsynced; out gets
 * their sums. */
static int publish(struct srv_ckpt *c, struct srv_ckpt_result *out)
{
	int ret = c->error;

	if (!ret)
		ret = dcres_memfile_for_each_extent(c->mf, punch_absent, c);
	if (!ret)
		ret = dcres_memfile_sync(c->mf);
	if (!ret)
		ret = dcres_presence_write_at(c->dir_fd, c->present_name, c->present_display,
					      &c->present, &out->present_size, &out->present_crc);
	if (!ret)
		dcres_memfile_sum(c->mf, &c->present, &out->mem_size, &out->mem_crc);
	/* Never over a file already there (another checkpoint's). */
	if (!ret && renameat2(c->dir_fd, c->partial_name, c->dir_fd, c->mem_name,
			      RENAME_NOREPLACE) < 0) {
		ret = -errno;
		pr_perror("rename %s to %s", c->partial_display, c->mem_display);
	}
	if (!ret && fsync(c->dir_fd) < 0) {
		ret = -errno;
		pr_perror("fsync the directory of %s", c->mem_display);
	}
	return ret;
}

/* Copies c's dirty pages, as they are now, into its tail, clearing them
 * (vm->lock held); -ENOMEM leaves c as it was. */
static int take_tail(struct srv_ckpt *c)
{
	struct vm *vm = c->vm;
	uint64_t n = 0;

	c->tail = malloc((c->ndirty ? c->ndirty : 1) * sizeof(*c->tail));
	if (!c->tail || posix_memalign(&c->tail_buf, DCRES_PAGE_SIZE,
				       (c->ndirty ? c->ndirty : 1) * DCRES_PAGE_SIZE)) {
		free(c->tail);
		c->tail = NULL;
		c->tail_buf = NULL;
		return -ENOMEM;
	}
	for (uint64_t w = 0; w < (vm->npages + 63) / 64; w++) {
		for (uint64_t bits = c->dirty[w]; bits; bits &= bits - 1) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);
			uint32_t slot = vm->slot[page];
			if (slot == ARENA_NO_SLOT) {
				dcres_presence_clear(&c->present, page);
				continue;
			}
			memcpy((char *)c->tail_buf + n * DCRES_PAGE_SIZE,
			       arena_page(c->store->arena, slot), DCRES_PAGE_SIZE);
			c->tail[n++] = page;
		}
		c->dirty[w] = 0;
	}
	c->ntail = n;
	c->ndirty = 0;
	return 0;
}

int srv_ckpt_final(struct vm *vm, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	c = lock_running(vm, &ret, err, err_len);
	if (!c)
		return ret;
	/* A long tail would stretch the caller's stop window: wait for the
	 * writers to bring it down first. */
	while (c->ndirty > TAIL_MAX && !c->error && c->writers_running)
		pthread_cond_wait(&c->cond, &vm->lock);
	ret = c->error ? c->error : take_tail(c);
	if (ret) {
		snprintf(err, err_len, "checkpoint of VM %s into %s failed: %s", vm->name,
			 c->partial_display, strerror(-ret));
	} else {
		c->tracking = false;
		c->phase = CKPT_FROZEN;
		c->final_requested = true;
		/* The stop point: what is stored from now on is the next
		 * increment's. */
		c->frozen_since = vm->since;
		vm->since = c->next_since;
		c->next_since = NULL;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Writes c's tail (no writer running any more), with the pages' CRCs. */
static int write_tail(struct srv_ckpt *c)
{
	for (uint64_t i = 0; i < c->ntail; i += WRITE_BATCH) {
		uint64_t n = c->ntail - i < WRITE_BATCH ? c->ntail - i : WRITE_BATCH;
		char *buf = (char *)c->tail_buf + i * DCRES_PAGE_SIZE;
		int ret;

		for (uint64_t j = 0; j < n; j++)
			dcres_presence_set(&c->present, c->tail[i + j],
					   dcres_crc32c(0, buf + j * DCRES_PAGE_SIZE,
							DCRES_PAGE_SIZE));
		ret = dcres_memfile_write_pages(c->mf, c->tail + i, buf, n);
		if (ret)
			return ret;
		c->pages_written += n;
		c->bytes_written += n * DCRES_PAGE_SIZE;
	}
	return 0;
}

int srv_ckpt_commit(struct vm *vm, struct srv_ckpt_result *out, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	c = lock_phase(vm, CKPT_FROZEN, &ret, err, err_len);
	if (!c)
		return ret;
	c->phase = CKPT_ENDING;
	join_writers(vm, c);

	memset(out, 0, sizeof(*out));
	ret = c->error ? c->error : write_tail(c);
	if (!ret)
		ret = publish(c, out);
	if (ret) {
		snprintf(err, err_len, "checkpoint of VM %s into %s failed: %s", vm->name,
			 c->mem_display, strerror(-ret));
	} else {
		dcres_memfile_close(c->mf);
		c->mf = NULL; /* published: ckpt_end leaves it */
		pthread_mutex_lock(&vm->lock);
		memcpy(vm->base_id, c->id, 16);
		vm->has_base = true;
		free(c->frozen_since); /* the next increment is on this one */
		c->frozen_since = NULL;
		pthread_mutex_unlock(&vm->lock);
		out->bytes_written = c->bytes_written;
		out->pages = dcres_presence_count(&c->present);
		snprintf(out->mem_name, sizeof(out->mem_name), "%s", c->mem_name);
		snprintf(out->present_name, sizeof(out->present_name), "%s", c->present_name);
		pr_info("VM %s: checkpoint %s complete, %llu pages", vm->name, c->mem_display,
			(unsigned long long)dcres_presence_count(&c->present));
	}
	ckpt_end(vm, c);
	return ret;
}

int srv_ckpt_abort(struct vm *vm, char *err, size_t err_len)
{
	struct srv_ckpt *c;
	int ret;

	/* Before its final or after it, not while it starts or ends. */
	c = lock_phase(vm, CKPT_FROZEN, &ret, err, err_len);
	if (!c && ret == -EBUSY && !(c = lock_running(vm, &ret, err, err_len)))
		return ret;
	if (!c)
		return ret;
	c->phase = CKPT_ENDING;
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	join_writers(vm, c);
	pr_info("VM %s: checkpoint %s aborted", vm->name, c->partial_display);
	ckpt_end(vm, c);
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
