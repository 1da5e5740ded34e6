/* Lazy restores on a memory server (srv-lazy.h). */
#include "srv-lazy.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/wire.h"
#include "srv-ckpt.h"
#include "srv-hostfiles.h"
#include "srv-peer.h"

#define LAZY_MAX_SOURCES 127 /* source numbers 1..127 in a page's byte */
#define LAZY_BAD 0x80        /* with a page's source: its data failed its check */
#define LOAD_BATCH 64        /* pages the loader reads at once: 256 KiB */

/* Where pending pages come from. */
struct lazy_source {
	char rel[PATH_MAX];
	uint32_t host_id;
	char peer[256];               /* "" for files below --dir */
	char display[PATH_MAX + 300]; /* the memory file, and the peer, for messages */
	struct srv_host_files files;  /* local */
	const struct dcres_psk *psk;  /* peer: the server's own key */
	struct dcres_memclient *c;    /* peer: connected when needed */
	pthread_mutex_t io;           /* one read of this source at a time */
};

/* A VM's lazy restore; vm->lazy while it is the VM's (guarded by
 * vm->lock, as every field but the sources' io). */
struct srv_lazy {
	struct lazy_source *src[LAZY_MAX_SOURCES + 1]; /* [1..nsrc] */
	unsigned nsrc;
	uint8_t *state;               /* per page: 0, or its source | LAZY_BAD */
	uint64_t npending, nbad;
	uint64_t *queue, qlen, qcap, qpos; /* pages in registration order */
	uint64_t loaded, filled;      /* by the loader; by page-ins */
	int64_t load_started_ms;
	bool loading;                 /* the loader runs */
	unsigned refs;                /* vm->lazy, the loader, readers */
};

struct loader_arg {
	struct vmstore *s;
	struct vm *vm;
	struct srv_lazy *l;
};

static void source_free(struct lazy_source *src)
{
	if (!src)
		return;
	srv_host_files_close(&src->files);
	dcres_memclient_close(src->c);
	pthread_mutex_destroy(&src->io);
	free(src);
}

/* Drops a reference (vm->lock held); the last one frees l. */
static void lazy_unref(struct srv_lazy *l)
{
	if (--l->refs)
		return;
	for (unsigned i = 1; i <= l->nsrc; i++)
		source_free(l->src[i]);
	free(l->state);
	free(l->queue);
	free(l);
}

/* Opens a source: host host_id's files of rel, or the peer serving them. */
static int source_open(const struct vm *vm, int base_fd, const struct dcres_psk *psk,
		       const char *rel, uint32_t host_id, const char *peer,
		       struct lazy_source **out, char *err, size_t err_len)
{
	struct lazy_source *src = calloc(1, sizeof(*src));
	int ret = 0;

	if (!src)
		return -ENOMEM;
	pthread_mutex_init(&src->io, NULL);
	snprintf(src->rel, sizeof(src->rel), "%s", rel);
	src->host_id = host_id;
	src->psk = psk;
	if (peer) {
		snprintf(src->peer, sizeof(src->peer), "%s", peer);
		snprintf(src->display, sizeof(src->display), "%s/host-%u.mem on memory server %s",
			 rel, host_id, peer);
		ret = srv_peer_connect(psk, vm, peer, &src->c, err, err_len);
	} else {
		ret = srv_host_files_open(&src->files, vm, base_fd, rel, host_id, err, err_len);
		snprintf(src->display, sizeof(src->display), "%s", src->files.mem_path);
	}
	if (ret) {
		source_free(src);
		return ret;
	}
	*out = src;
	return 0;
}

/* Reads pages[0..n) of src into buf, each page's CRC checked (here, or
 * by the peer); a peer whose connection broke is reached again once. */
static int source_read(struct lazy_source *src, const struct vm *vm, const uint64_t *pages,
		       uint64_t n, void *buf, char *err, size_t err_len)
{
	int ret;

	pthread_mutex_lock(&src->io);
	if (!src->peer[0]) {
		ret = srv_host_files_read(&src->files, pages, n, buf, err, err_len);
		pthread_mutex_unlock(&src->io);
		return ret;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!src->c && (ret = srv_peer_connect(src->psk, vm, src->peer, &src->c, err,
							  err_len)))
			break;
		ret = dcres_memclient_serve(src->c, src->rel, src->host_id, pages, buf, n);
		if (!ret)
			break;
		snprintf(err, err_len, "memory server %s serving pages of %s/host-%u.mem: %s",
			 src->peer, src->rel, src->host_id, *dcres_memclient_error(src->c)
			 ? dcres_memclient_error(src->c) : strerror(-ret));
		if (dcres_memclient_reason(src->c) != DCRES_MEM_REASON_NONE)
			break; /* the peer answered: no point asking again */
		dcres_memclient_close(src->c);
		src->c = NULL;
	}
	pthread_mutex_unlock(&src->io);
	return ret;
}

/* vm's lazy restore, made when it has none (vm->lock held). */
static struct srv_lazy *lazy_get(struct vm *vm)
{
	struct srv_lazy *l = vm->lazy;

	if (l)
		return l;
	l = calloc(1, sizeof(*l));
	if (l)
		l->state = calloc(vm->npages, 1);
	if (!l || !l->state) {
		free(l);
		return NULL;
	}
	l->refs = 1;
	vm->lazy = l;
	return l;
}

/* Appends pages[0..n) to l's queue (vm->lock held). */
static int queue_append(struct srv_lazy *l, const uint64_t *pages, uint64_t n)
{
	if (l->qlen + n > l->qcap) {
		uint64_t cap = l->qcap ? l->qcap : 4096;
		while (cap < l->qlen + n)
			cap *= 2;
		uint64_t *q = realloc(l->queue, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		l->queue = q;
		l->qcap = cap;
	}
	memcpy(l->queue + l->qlen, pages, n * sizeof(*pages));
	l->qlen += n;
	return 0;
}

/* The source of l for (rel, host_id, peer), or NULL (vm->lock held). */
static struct lazy_source *source_find(const struct srv_lazy *l, const char *rel,
				       uint32_t host_id, const char *peer, unsigned *idx)
{
	for (unsigned i = 1; i <= l->nsrc; i++) {
		struct lazy_source *o = l->src[i];
		if (o->host_id == host_id && !strcmp(o->rel, rel) &&
		    !strcmp(o->peer, peer ? peer : "")) {
			*idx = i;
			return o;
		}
	}
	return NULL;
}

/* The source of vm's lazy restore for (rel, host_id, peer), opened and
 * added when it has none yet (vm->lock held on entry and return, let go
 * while opening); *l set to the lazy restore. */
static int source_get(struct vm *vm, int base_fd, const struct dcres_psk *psk,
		      const char *rel, uint32_t host_id, const char *peer,
		      struct srv_lazy **lp, unsigned *idx, char *err, size_t err_len)
{
	struct lazy_source *src = NULL;
	struct srv_lazy *l = lazy_get(vm);
	int ret;

	if (!l)
		return -ENOMEM;
	if (source_find(l, rel, host_id, peer, idx)) {
		*lp = l;
		return 0;
	}
	l->refs++;
	pthread_mutex_unlock(&vm->lock);
	ret = source_open(vm, base_fd, psk, rel, host_id, peer, &src, err, err_len);
	pthread_mutex_lock(&vm->lock);
	if (!ret && vm->lazy != l) {
		snprintf(err, err_len, "VM %s was released meanwhile (nothing registered)",
			 vm->name);
		ret = -EAGAIN;
	}
	if (!ret && source_find(l, rel, host_id, peer, idx)) {
		source_free(src); /* another request opened it meanwhile */
	} else if (!ret && l->nsrc == LAZY_MAX_SOURCES) {
		snprintf(err, err_len, "VM %s: more than %u sources in one lazy restore",
			 vm->name, LAZY_MAX_SOURCES);
		ret = -E2BIG;
	} else if (!ret) {
		l->src[++l->nsrc] = src;
		*idx = l->nsrc;
		src = NULL;
	}
	if (ret)
		source_free(src);
	lazy_unref(l);
	*lp = l;
	return ret;
}

int srv_lazy_add(struct vmstore *s, struct vm *vm, int base_fd, const struct dcres_psk *psk,
		 const char *rel, uint32_t host_id, const char *peer, const uint64_t *pages,
		 uint64_t n, char *err, size_t err_len)
{
	struct lazy_source *src;
	struct srv_lazy *l;
	uint32_t *slots;
	unsigned idx;
	int ret;

	if (n == 0) {
		snprintf(err, err_len, "a lazy RESTORE needs the list of pages");
		return -EINVAL;
	}
	if ((ret = srv_ckpt_path_check(rel, err, err_len)) ||
	    (ret = vm_check_pages(vm, pages, n, err, err_len)))
		return ret;
	slots = malloc(n * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt) {
		snprintf(err, err_len, "VM %s is being checkpointed", vm->name);
		ret = -EBUSY;
		goto out;
	}
	if ((ret = source_get(vm, base_fd, psk, rel, host_id, peer, &l, &idx, err, err_len)))
		goto out;
	src = l->src[idx];
	for (uint64_t i = 0; i < n; i++) {
		if (vm->slot[pages[i]] != ARENA_NO_SLOT) {
			snprintf(err, err_len, "page %llu of VM %s is already held here; restore "
				 "loads into pages not held (nothing registered)",
				 (unsigned long long)pages[i], vm->name);
			ret = -EEXIST;
			goto out;
		}
		if (!src->peer[0] && !dcres_presence_test(&src->files.present, pages[i])) {
			snprintf(err, err_len, "%s does not hold page %llu", src->files.mem_path,
				 (unsigned long long)pages[i]);
			ret = -ENOENT;
			goto out;
		}
	}
	if ((ret = arena_alloc(s->arena, n, slots))) {
		snprintf(err, err_len, "capacity: registering %llu pages, %llu pages are free "
			 "(nothing registered)", (unsigned long long)n,
			 (unsigned long long)arena_free_count(s->arena));
		goto out;
	}
	if ((ret = queue_append(l, pages, n))) {
		arena_free(s->arena, slots, n);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		vm->slot[pages[i]] = slots[i];
		l->state[pages[i]] = (uint8_t)idx;
	}
	l->npending += n;
	vm->held += n;
	vm->has_base = false; /* restored pages: no increment on any checkpoint */
	pr_debug("VM %s: %llu pages registered from %s", vm->name, (unsigned long long)n,
		 src->display);
out:
	pthread_mutex_unlock(&vm->lock);
	free(slots);
	return ret;
}

/* Whether page is pending and not known bad, from source idx (any when 0). */
static bool loadable(const struct srv_lazy *l, uint64_t page, unsigned idx)
{
	uint8_t st = l->state[page];

	return st && !(st & LAZY_BAD) && (!idx || st == idx);
}

/* Puts buf's pages[0..n), read from source idx, into their slots where
 * still pending from it (vm->lock held, vm->lazy == l); counts them. */
static uint64_t install(struct vmstore *s, struct vm *vm, struct srv_lazy *l, unsigned idx,
			const uint64_t *pages, uint64_t n, const uint8_t *buf)
{
	uint64_t done = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = pages[i];
		if ((l->state[p] & ~LAZY_BAD) != idx || vm->slot[p] == ARENA_NO_SLOT)
			continue;
		memcpy(arena_page(s->arena, vm->slot[p]), buf + i * DCRES_PAGE_SIZE,
		       DCRES_PAGE_SIZE);
		if (l->state[p] & LAZY_BAD)
			l->nbad--;
		l->state[p] = 0;
		l->npending--;
		done++;
	}
	return done;
}

/* Marks page bad (vm->lock held), logging it the first time. */
static void mark_bad(struct srv_lazy *l, uint64_t page, const char *why)
{
	if (!l->state[page] || (l->state[page] & LAZY_BAD))
		return;
	l->state[page] |= LAZY_BAD;
	l->nbad++;
	pr_err("%s (the page stays pending and is not served)", why);
}

/* Reads pages[0..n) of source idx one at a time after a batch failed its
 * check, installing the good ones and marking the bad ones (vm->lock
 * held on entry and return; let go while reading). Returns 0, or the
 * error that is not a page's (a source out of reach). */
static int read_one_by_one(struct vmstore *s, struct vm *vm, struct srv_lazy *l, unsigned idx,
			   const uint64_t *pages, uint64_t n, uint8_t *buf, uint64_t *done,
			   char *err, size_t err_len)
{
	struct lazy_source *src = l->src[idx];

	for (uint64_t i = 0; i < n && vm->lazy == l; i++) {
		int ret;

		pthread_mutex_unlock(&vm->lock);
		ret = source_read(src, vm, &pages[i], 1, buf, err, err_len);
		pthread_mutex_lock(&vm->lock);
		if (ret == -EBADMSG)
			mark_bad(l, pages[i], err);
		else if (ret)
			return ret;
		else if (vm->lazy == l)
			*done += install(s, vm, l, idx, &pages[i], 1, buf);
	}
	return 0;
}

/* Takes the loader's next batch (vm->lock held): pending pages from the
 * queue, all of the first one's source (*idx); returns how many. */
static uint64_t next_batch(struct srv_lazy *l, uint64_t *pages, unsigned *idx)
{
	uint64_t n = 0;

	*idx = 0;
	for (; l->qpos < l->qlen && n < LOAD_BATCH; l->qpos++) {
		uint64_t p = l->queue[l->qpos];
		if (!loadable(l, p, 0))
			continue;
		if (!*idx)
			*idx = l->state[p];
		else if (l->state[p] != *idx)
			break; /* the next batch starts with it */
		pages[n++] = p;
	}
	return n;
}

/* Counts a loader thread of s in (delta 1) or out (-1). Not under a VM's
 * lock: the store's lock comes first. */
static void count_loader(struct vmstore *s, int delta)
{
	pthread_mutex_lock(&s->lock);
	s->nloaders += (unsigned)delta;
	pthread_cond_broadcast(&s->loaders_done);
	pthread_mutex_unlock(&s->lock);
}

/* The loader thread: loads the queue's pending pages in order. */
static void *loader_main(void *arg)
{
	struct loader_arg a = *(struct loader_arg *)arg;
	struct vm *vm = a.vm;
	struct srv_lazy *l = a.l;
	uint64_t pages[LOAD_BATCH];
	uint8_t *buf = NULL;
	char err[512] = "";
	int ret = 0;

	free(arg);
	if (posix_memalign((void **)&buf, DCRES_PAGE_SIZE, LOAD_BATCH * DCRES_PAGE_SIZE))
		buf = NULL;
	pthread_mutex_lock(&vm->lock);
	while (buf && vm->lazy == l) {
		unsigned idx;
		uint64_t n = next_batch(l, pages, &idx);

		if (!n)
			break;
		pthread_mutex_unlock(&vm->lock);
		ret = source_read(l->src[idx], vm, pages, n, buf, err, sizeof(err));
		pthread_mutex_lock(&vm->lock);
		if (vm->lazy != l)
			break;
		if (ret == -EBADMSG)
			ret = read_one_by_one(a.s, vm, l, idx, pages, n, buf, &l->loaded, err,
					      sizeof(err));
		else if (!ret)
			l->loaded += install(a.s, vm, l, idx, pages, n, buf);
		if (ret) {
			pr_err("VM %s: loading restored pages stopped: %s (%llu pages still "
			       "pending; page-ins read them)", vm->name, err,
			       (unsigned long long)l->npending);
			break;
		}
	}
	if (!buf)
		pr_err("VM %s: no memory to load restored pages", vm->name);
	if (vm->lazy == l && !ret && buf)
		pr_info("VM %s: lazy restore loaded %llu pages in %lld ms (%llu more were read "
			"by page-ins, %llu failed their check)", vm->name,
			(unsigned long long)l->loaded,
			(long long)(dcres_wire_now_ms() - l->load_started_ms),
			(unsigned long long)l->filled, (unsigned long long)l->nbad);
	l->loading = false;
	if (vm->lazy == l && !l->npending) {
		vm->lazy = NULL; /* every page is in: the sources close */
		lazy_unref(l);
	}
	lazy_unref(l);
	pthread_mutex_unlock(&vm->lock);
	free(buf);
	count_loader(a.s, -1);
	return NULL;
}

int srv_lazy_load(struct vmstore *s, struct vm *vm, char *err, size_t err_len)
{
	struct loader_arg *a = malloc(sizeof(*a));
	struct srv_lazy *l;
	pthread_t t;
	int ret = 0;

	if (!a)
		return -ENOMEM;
	count_loader(s, 1); /* before the thread can end */
	pthread_mutex_lock(&vm->lock);
	l = vm->lazy;
	if (!l || l->loading || !l->npending) {
		pthread_mutex_unlock(&vm->lock);
		count_loader(s, -1);
		free(a);
		return 0;
	}
	*a = (struct loader_arg){ .s = s, .vm = vm, .l = l };
	l->loading = true;
	l->refs++;
	l->load_started_ms = dcres_wire_now_ms();
	ret = -pthread_create(&t, NULL, loader_main, a);
	if (ret) {
		l->loading = false;
		l->refs--;
		snprintf(err, err_len, "cannot start a loader thread: %s", strerror(-ret));
	} else {
		pthread_detach(t);
	}
	pthread_mutex_unlock(&vm->lock);
	if (ret) {
		count_loader(s, -1);
		free(a);
	}
	return ret;
}

/* Sorts pages[0..n) by source (vm->lock held), keeping page order within
 * one; returns how many are pending. */
static uint64_t pending_by_source(const struct srv_lazy *l, const uint64_t *pages, uint64_t n,
				  uint64_t *out)
{
	uint64_t k = 0;

	for (unsigned idx = 1; idx <= l->nsrc; idx++)
		for (uint64_t i = 0; i < n; i++)
			if ((l->state[pages[i]] & ~LAZY_BAD) == idx)
				out[k++] = pages[i];
	return k;
}

int srv_lazy_fill(struct vmstore *s, struct vm *vm, const uint64_t *pages, uint64_t n,
		  char *err, size_t err_len)
{
	struct srv_lazy *l = vm->lazy;
	uint64_t *want, k;
	uint8_t *buf = NULL;
	int ret = 0;

	if (!l || !l->npending)
		return 0;
	want = malloc(n * sizeof(*want));
	if (!want)
		return -ENOMEM;
	k = pending_by_source(l, pages, n, want);
	if (!k) {
		free(want);
		return 0;
	}
	if (posix_memalign((void **)&buf, DCRES_PAGE_SIZE, k * DCRES_PAGE_SIZE)) {
		free(want);
		return -ENOMEM;
	}
	l->refs++;
	for (uint64_t i = 0; i < k && !ret;) {
		unsigned idx = l->state[want[i]] & ~LAZY_BAD;
		uint64_t run = 1;

		while (i + run < k && (l->state[want[i + run]] & ~LAZY_BAD) == idx)
			run++;
		pthread_mutex_unlock(&vm->lock);
		ret = source_read(l->src[idx], vm, want + i, run, buf + i * DCRES_PAGE_SIZE, err,
				  err_len);
		pthread_mutex_lock(&vm->lock);
		if (ret == -EBADMSG && run == 1)
			mark_bad(l, want[i], err);
		if (!ret && vm->lazy == l)
			l->filled += install(s, vm, l, idx, want + i, run,
					     buf + i * DCRES_PAGE_SIZE);
		i += run;
	}
	lazy_unref(l);
	free(want);
	free(buf);
	return ret;
}

void srv_lazy_forget(struct vm *vm, uint64_t page)
{
	struct srv_lazy *l = vm->lazy;

	if (!l || !l->state[page])
		return;
	if (l->state[page] & LAZY_BAD)
		l->nbad--;
	l->state[page] = 0;
	l->npending--;
}

uint64_t srv_lazy_pending(const struct vm *vm)
{
	return vm->lazy ? vm->lazy->npending : 0;
}

void srv_lazy_drop(struct vm *vm)
{
	struct srv_lazy *l = vm->lazy;

	if (!l)
		return;
	if (l->npending)
		pr_info("VM %s: %llu restored pages dropped before they were loaded", vm->name,
			(unsigned long long)l->npending);
	vm->lazy = NULL; /* the loader and readers see it and stop */
	lazy_unref(l);
}

void srv_lazy_stats(const struct vm *vm, Dcres__Stats *st)
{
	st->has_restore_pending = st->has_restore_bad = 1;
	st->restore_pending = vm->lazy ? vm->lazy->npending : 0;
	st->restore_bad = vm->lazy ? vm->lazy->nbad : 0;
}

void srv_lazy_wait_loaders(struct vmstore *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->nloaders)
		pthread_cond_wait(&s->loaders_done, &s->lock);
	pthread_mutex_unlock(&s->lock);
}
