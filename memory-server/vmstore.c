#include "vmstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/log.h"
#include "dcres/uuid.h"
#include "srv-ckpt.h"

void vmstore_init(struct vmstore *s, struct arena *arena)
{
	memset(s, 0, sizeof(*s));
	s->arena = arena;
	pthread_mutex_init(&s->lock, NULL);
}

void vmstore_destroy(struct vmstore *s)
{
	struct vm *vm, *next;

	for (vm = s->vms; vm; vm = next) {
		next = vm->next;
		free(vm->slot);
		pthread_mutex_destroy(&vm->lock);
		free(vm);
	}
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
			snprintf(err_msg, err_len, "VM %s is held with %llu pages, not %llu",
				 vm->name, (unsigned long long)vm->npages,
				 (unsigned long long)npages);
			return -EINVAL;
		}
		*out = vm;
		return 0;
	}
	vm = calloc(1, sizeof(*vm));
	if (vm)
		vm->slot = malloc(npages * sizeof(uint32_t));
	if (!vm || !vm->slot) {
		pthread_mutex_unlock(&s->lock);
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

int vm_check_pages(const struct vm *vm, const uint64_t *pages, uint64_t n,
		   char *err_msg, size_t err_len)
{
	uint64_t *sorted;

	for (uint64_t i = 0; i < n; i++) {
		if (pages[i] >= vm->npages) {
			snprintf(err_msg, err_len, "page %llu is beyond the VM's %llu pages",
				 (unsigned long long)pages[i], (unsigned long long)vm->npages);
			return -ERANGE;
		}
	}
	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, pages, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (uint64_t i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1]) {
			snprintf(err_msg, err_len, "page %llu listed twice in one batch",
				 (unsigned long long)sorted[i]);
			free(sorted);
			return -EINVAL;
		}
	}
	free(sorted);
	return 0;
}

int vm_page_out(struct vmstore *s, struct vm *vm, const uint64_t *pages,
		const void *data, uint64_t n, char *err_msg, size_t err_len)
{
	uint64_t fresh = 0, k = 0;
	uint32_t *slots;
	int ret;

	ret = vm_check_pages(vm, pages, n, err_msg, err_len);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	for (uint64_t i = 0; i < n; i++)
		fresh += vm->slot[pages[i]] == ARENA_NO_SLOT;
	slots = malloc((fresh ? fresh : 1) * sizeof(*slots));
	if (!slots) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOMEM;
	}
	ret = arena_alloc(s->arena, fresh, slots);
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

int vm_page_in(struct vmstore *s, struct vm *vm, const uint64_t *pages,
	       void *out, uint64_t n, char *err_msg, size_t err_len)
{
	uint32_t *freed;
	int ret;

	ret = vm_check_pages(vm, pages, n, err_msg, err_len);
	if (ret)
		return ret;
	freed = malloc((n ? n : 1) * sizeof(*freed));
	if (!freed)
		return -ENOMEM;
	pthread_mutex_lock(&vm->lock);
	for (uint64_t i = 0; i < n; i++) {
		if (vm->slot[pages[i]] == ARENA_NO_SLOT) {
			pthread_mutex_unlock(&vm->lock);
			free(freed);
			snprintf(err_msg, err_len, "page %llu of VM %s is not held here (nothing released)",
				 (unsigned long long)pages[i], vm->name);
			return -ENOENT;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t *slot = &vm->slot[pages[i]];
		memcpy((char *)out + i * DCRES_PAGE_SIZE, arena_page(s->arena, *slot),
		       DCRES_PAGE_SIZE);
		freed[i] = *slot;
		*slot = ARENA_NO_SLOT;
		if (vm->ckpt)
			srv_ckpt_page_left(vm->ckpt, pages[i]);
	}
	vm->held -= n;
	vm->page_ins += n;
	pthread_mutex_unlock(&vm->lock);
	arena_free(s->arena, freed, n);
	free(freed);
	return 0;
}
