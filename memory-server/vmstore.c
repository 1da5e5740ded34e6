#include "vmstore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "dcres/uuid.h"
#include "srv-ckpt.h"
#include "srv-lazy.h"

void vmstore_init(struct vmstore *s, struct arena *arena)
{
	memset(s, 0, sizeof(*s));
	s->arena = arena;
	atomic_init(&s->nretained, 0);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->loaders_done, NULL);
}

void vmstore_destroy(struct vmstore *s)
{
	struct vm *vm, *next;

	for (vm = s->vms; vm; vm = vm->next) {
		pthread_mutex_lock(&vm->lock);
		srv_lazy_drop(vm);
		pthread_mutex_unlock(&vm->lock);
	}
	srv_lazy_wait_loaders(s);
	for (vm = s->vms; vm; vm = next) {
		next = vm->next;
		free(vm->slot);
		free(vm->since);
		free(vm->retained_page);
		free(vm->retained_slot);
		pthread_mutex_destroy(&vm->lock);
		free(vm);
	}
	pthread_cond_destroy(&s->loaders_done);
	pthread_mutex_destroy(&s->lock);
}

int vmstore_attach(struct vmstore *s, const uint8_t uuid[16], uint64_t ram_size,
		   struct vm **out, char *err_msg, size_t err_len)
{
	uint64_t npages = ram_size / DCRES_PAGE_SIZE;
	struct vm *vm;

	if (ram_size == 0 || ram_size % DCRES_PAGE_SIZE || npages >= (1ull << 40)) {
		snprintf(err_msg, err_len, "RAM size %llu is not a positive multiple of %u",
			 (unsigned long long)ram_size, DCRES_PAGE_SIZE);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	for (vm = s->vms; vm; vm = vm->next)
		if (memcmp(vm->uuid, uuid, 16) == 0)
			break;
	if (vm) {
		pthread_mutex_unlock(&s->lock);
		if (vm->npages != npages) {
			/* The peer learns no other VM's size; the log has both. */
			pr_warn("VM %s is held with %llu pages; an attach asked for %llu",
				vm->name, (unsigned long long)vm->npages,
				(unsigned long long)npages);
			snprintf(err_msg, err_len, "VM %s is held here with another RAM size "
				 "than %llu bytes (not attached)", vm->name,
				 (unsigned long long)ram_size);
			return -EINVAL;
		}
		*out = vm;
		return 0;
	}
	vm = calloc(1, sizeof(*vm));
	if (vm) {
		vm->slot = malloc(npages * sizeof(uint32_t));
		vm->since = calloc((npages + 63) / 64, sizeof(uint64_t));
	}
	if (!vm || !vm->slot || !vm->since) {
		pthread_mutex_unlock(&s->lock);
		if (vm) {
			free(vm->slot);
			free(vm->since);
		}
		free(vm);
		snprintf(err_msg, err_len, "no memory for a subtable of %llu pages",
			 (unsigned long long)npages);
		return -ENOMEM;
	}
	memcpy(vm->uuid, uuid, 16);
	dcres_uuid_format(uuid, vm->name);
	vm->npages = npages;
	memset(vm->slot, 0xff, npages * sizeof(uint32_t));
	pthread_mutex_init(&vm->lock, NULL);
	vm->next = s->vms;
	s->vms = vm;
	s->count++;
	pthread_mutex_unlock(&s->lock);
	pr_info("VM %s attached: %llu pages", vm->name, (unsigned long long)npages);
	*out = vm;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Checks n page indices as vm_check_pages does and leaves them in
 * ascending order in sorted (n entries). */
static int sort_pages(const struct vm *vm, const uint64_t *pages, uint64_t *sorted,
		      uint64_t n, char *err_msg, size_t err_len)
{
	for (uint64_t i = 0; i < n; i++) {
		if (pages[i] >= vm->npages) {
			snprintf(err_msg, err_len, "page %llu is beyond the VM's %llu pages",
				 (unsigned long long)pages[i], (unsigned long long)vm->npages);
			return -ERANGE;
		}
	}
	memcpy(sorted, pages, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (uint64_t i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1]) {
			snprintf(err_msg, err_len, "page %llu listed twice in one batch",
				 (unsigned long long)sorted[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int vm_check_pages(const struct vm *vm, const uint64_t *pages, uint64_t n,
		   char *err_msg, size_t err_len)
{
	uint64_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	int ret;

	if (!sorted)
		return -ENOMEM;
	ret = sort_pages(vm, pages, sorted, n, err_msg, err_len);
	free(sorted);
	return ret;
}

/* The retained slot of page, or NULL if vm does not retain it (vm->lock
 * held). */
static uint32_t *retained(struct vm *vm, uint64_t page)
{
	uint64_t *p;

	if (!vm->nretained)
		return NULL;
	p = bsearch(&page, vm->retained_page, vm->nretained, sizeof(page), cmp_u64);
	return p ? &vm->retained_slot[p - vm->retained_page] : NULL;
}

/* Frees vm's retained pages (vm->lock held); returns how many there were. */
static uint64_t drop_retained(struct vmstore *s, struct vm *vm)
{
	uint64_t n = vm->nretained;

	atomic_fetch_sub(&s->nretained, n);
	arena_free(s->arena, vm->retained_slot, n);
	free(vm->retained_page);
	free(vm->retained_slot);
	vm->retained_page = NULL;
	vm->retained_slot = NULL;
	vm->nretained = 0;
	return n;
}

uint64_t vmstore_drop_retained(struct vmstore *s)
{
	uint64_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (struct vm *vm = s->vms; vm; vm = vm->next) {
		pthread_mutex_lock(&vm->lock);
		n += drop_retained(s, vm);
		pthread_mutex_unlock(&vm->lock);
	}
	pthread_mutex_unlock(&s->lock);
	if (n)
		pr_info("capacity: freed %llu pages retained for page-in retries",
			(unsigned long long)n);
	return n;
}

uint64_t vmstore_used_pages(struct vmstore *s)
{
	uint64_t retained = atomic_load(&s->nretained);
	uint64_t busy = s->arena->nslots - arena_free_count(s->arena);

	/* Requests running meanwhile move both: never report less than none. */
	return busy > retained ? busy - retained : 0;
}

/* Counts the pages of a batch that vm does not hold yet (vm->lock held). */
static uint64_t count_fresh(const struct vm *vm, const uint64_t *pages, uint64_t n)
{
	uint64_t fresh = 0;

	for (uint64_t i = 0; i < n; i++)
		fresh += vm->slot[pages[i]] == ARENA_NO_SLOT;
	return fresh;
}

void vm_fence(struct vm *vm, uint64_t conn_id, const char *peer)
{
	pthread_mutex_lock(&vm->lock);
	/* Equal: the fence connection attaching again (it may have left for
	 * another VM meanwhile). */
	if (conn_id >= vm->fence) {
		vm->fence = conn_id;
		vm->running = conn_id;
		snprintf(vm->running_peer, sizeof(vm->running_peer), "%s", peer);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm_detach(struct vm *vm, uint64_t conn_id)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->running == conn_id)
		vm->running = 0;
	pthread_mutex_unlock(&vm->lock);
}

/* Returns vm's held pages to the arena and empties its table (vm->lock
 * held); returns how many there were. */
static uint64_t drop_held(struct vmstore *s, struct vm *vm)
{
	uint32_t batch[1024];
	uint64_t n = 0, k = 0;

	for (uint64_t p = 0; p < vm->npages && n + k < vm->held; p++) {
		if (vm->slot[p] == ARENA_NO_SLOT)
			continue;
		batch[k++] = vm->slot[p];
		vm->slot[p] = ARENA_NO_SLOT;
		if (k == sizeof(batch) / sizeof(batch[0])) {
			arena_free(s->arena, batch, k);
			n += k;
			k = 0;
		}
	}
	arena_free(s->arena, batch, k);
	vm->held = 0;
	return n + k;
}

int vm_release(struct vmstore *s, struct vm *vm, uint64_t conn_id, uint64_t *released,
	       char *err_msg, size_t err_len)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->ckpt) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err_msg, err_len, "VM %s is being checkpointed; finish or abort the "
			 "checkpoint before restoring (nothing released)", vm->name);
		return -EBUSY;
	}
	if (vm->running && vm->running != conn_id) {
		snprintf(err_msg, err_len, "VM %s is attached from a running main host (%s, "
			 "exclusively); stop it before restoring (nothing released)", vm->name,
			 vm->running_peer);
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	srv_lazy_drop(vm);
	*released = drop_held(s, vm);
	drop_retained(s, vm);
	vm->has_base = false;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Whether a request of a connection with epoch may touch vm (vm->lock
 * held); explains a refusal in err_msg. */
static bool fenced_off(const struct vm *vm, uint64_t epoch, char *err_msg, size_t err_len)
{
	if (!epoch || epoch >= vm->fence)
		return false;
	snprintf(err_msg, err_len, "this connection of VM %s was fenced off by a newer "
		 "exclusive one (nothing done)", vm->name);
	return true;
}

int vm_page_out(struct vmstore *s, struct vm *vm, uint64_t epoch, const uint64_t *pages,
		const void *data, uint64_t n, char *err_msg, size_t err_len)
{
	uint64_t fresh, k = 0;
	uint32_t *slots;
	int ret;

	ret = vm_check_pages(vm, pages, n, err_msg, err_len);
	if (ret)
		return ret;
	slots = malloc((n ? n : 1) * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	pthread_mutex_lock(&vm->lock);
	if (fenced_off(vm, epoch, err_msg, err_len)) {
		pthread_mutex_unlock(&vm->lock);
		free(slots);
		return -ESTALE;
	}
	drop_retained(s, vm);
	fresh = count_fresh(vm, pages, n);
	ret = arena_alloc(s->arena, fresh, slots);
	if (ret == -ENOSPC && atomic_load(&s->nretained)) {
		/* Other VMs' retained pages give way. Their locks come after
		 * the store's, so vm's is let go meanwhile. */
		pthread_mutex_unlock(&vm->lock);
		vmstore_drop_retained(s);
		pthread_mutex_lock(&vm->lock);
		fresh = count_fresh(vm, pages, n);
		ret = arena_alloc(s->arena, fresh, slots);
	}
	if (ret) {
		pthread_mutex_unlock(&vm->lock);
		free(slots);
		snprintf(err_msg, err_len,
			 "capacity: %llu new pages do not fit, %llu pages free (nothing stored)",
			 (unsigned long long)fresh,
			 (unsigned long long)arena_free_count(s->arena));
		return ret;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t *slot = &vm->slot[pages[i]];
		if (*slot == ARENA_NO_SLOT) {
			*slot = slots[k++];
			vm->held++;
		}
		memcpy(arena_page(s->arena, *slot), (const char *)data + i * DCRES_PAGE_SIZE,
		       DCRES_PAGE_SIZE);
		vm->since[pages[i] / 64] |= 1ull << (pages[i] % 64);
		srv_lazy_forget(vm, pages[i]);
		if (vm->ckpt)
			srv_ckpt_page_arrived(vm->ckpt, pages[i]);
	}
	if (vm->ckpt)
		srv_ckpt_wake(vm->ckpt);
	vm->page_outs += n;
	pthread_mutex_unlock(&vm->lock);
	free(slots);
	return 0;
}

int vm_page_in(struct vmstore *s, struct vm *vm, uint64_t epoch, const uint64_t *pages,
	       void *out, uint64_t n, char *err_msg, size_t err_len)
{
	/* The retained list this page-in makes: its pages, ascending. */
	uint64_t *kept_page = malloc((n ? n : 1) * sizeof(*kept_page));
	uint32_t *kept_slot = malloc((n ? n : 1) * sizeof(*kept_slot));
	uint64_t *old_page, nold, nfree = 0, again = 0, first_again = 0;
	uint32_t *old_slot;
	int ret = kept_page && kept_slot ? 0 : -ENOMEM;

	if (!ret)
		ret = sort_pages(vm, pages, kept_page, n, err_msg, err_len);
	if (ret) {
		free(kept_page);
		free(kept_slot);
		return ret;
	}
	pthread_mutex_lock(&vm->lock);
	/* Pages not loaded yet are read first (the lock let go meanwhile). */
	if (!fenced_off(vm, epoch, err_msg, err_len) &&
	    (ret = srv_lazy_fill(s, vm, pages, n, err_msg, err_len))) {
		pthread_mutex_unlock(&vm->lock);
		free(kept_page);
		free(kept_slot);
		return ret;
	}
	if (fenced_off(vm, epoch, err_msg, err_len)) {
		pthread_mutex_unlock(&vm->lock);
		free(kept_page);
		free(kept_slot);
		return -ESTALE;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t slot = vm->slot[pages[i]], *r;
		if (slot == ARENA_NO_SLOT && (r = retained(vm, pages[i])))
			slot = *r;
		if (slot == ARENA_NO_SLOT) {
			pthread_mutex_unlock(&vm->lock);
			free(kept_page);
			free(kept_slot);
			snprintf(err_msg, err_len, "page %llu of VM %s is not held here (nothing released)",
				 (unsigned long long)pages[i], vm->name);
			return -ENOENT;
		}
		memcpy((char *)out + i * DCRES_PAGE_SIZE, arena_page(s->arena, slot),
		       DCRES_PAGE_SIZE);
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t page = kept_page[i];
		uint32_t *slot = &vm->slot[page];
		if (*slot != ARENA_NO_SLOT) {
			if (vm->ckpt)
				srv_ckpt_page_left(vm->ckpt, page);
		} else {
			/* Served again: the page left the table, and any
			 * checkpoint, at the previous page-in already. */
			slot = retained(vm, page);
			if (!again++)
				first_again = page;
		}
		/* Out of the table, or out of the old retained list into the new. */
		kept_slot[i] = *slot;
		*slot = ARENA_NO_SLOT;
	}
	old_page = vm->retained_page;
	old_slot = vm->retained_slot;
	nold = vm->nretained;
	vm->retained_page = kept_page;
	vm->retained_slot = kept_slot;
	vm->nretained = n;
	atomic_fetch_add(&s->nretained, n);
	atomic_fetch_sub(&s->nretained, nold);
	vm->held -= n - again;
	vm->page_ins += n;
	pthread_mutex_unlock(&vm->lock);
	for (uint64_t i = 0; i < nold; i++)
		if (old_slot[i] != ARENA_NO_SLOT)
			old_slot[nfree++] = old_slot[i];
	arena_free(s->arena, old_slot, nfree);
	free(old_page);
	free(old_slot);
	if (again)
		pr_info("VM %s: %llu pages served again from the previous page-in (page %llu "
			"first): its reply was lost?", vm->name, (unsigned long long)again,
			(unsigned long long)first_again);
	return 0;
}
