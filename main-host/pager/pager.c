/* libdcres-pager's public calls: start and stop, the table, pins, stats. */
#define _GNU_SOURCE
#include "dcres/pager.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dcres/log.h"
#include "pager-internal.h"
#include "uffd-move.h"

/* Opens a userfaultfd (syscall, else /dev/userfaultfd). */
static int uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0) {
		int err = errno;
		pr_perror("userfaultfd (needs root or vm.unprivileged_userfaultfd=1)");
		return -err;
	}
	return fd;
}

/* Opens a userfaultfd with features (0: none, and *offered gets what the
 * kernel offers). */
static int uffd_open(uint64_t features, uint64_t *offered)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_new();

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = errno;
		pr_perror("UFFDIO_API (features %#llx)", (unsigned long long)features);
		close(fd);
		return -err;
	}
	if (offered)
		*offered = api.features;
	return fd;
}

/* Chooses how eviction takes pages out of the guest: UFFDIO_MOVE where the
 * kernel has it (Linux 6.8+), else write-protection (Linux 5.7+). */
static int choose_eviction(struct dcres_pager *p, bool force_wp)
{
	uint64_t offered = 0;
	int fd = uffd_open(0, &offered);

	if (fd < 0)
		return fd;
	close(fd);
	if (!force_wp && (offered & UFFD_FEATURE_MOVE))
		return 0;
	if (!(offered & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		pr_err("pager: eviction needs UFFDIO_MOVE (Linux 6.8+) or userfaultfd "
		       "write-protection of anonymous memory (Linux 5.7+); this kernel has neither");
		return -EOPNOTSUPP;
	}
	p->evict_wp = true;
	return 0;
}

/* Starts the table from what is already mapped (QEMU writes ROMs and boot
 * data into guest RAM before the pager attaches): pages present are local
 * and count against the limit, the rest were never written. */
static int scan_resident(struct dcres_pager *p)
{
	unsigned char *vec = malloc(p->npages);

	if (!vec)
		return -ENOMEM;
	if (mincore(p->base, p->npages * DCRES_PAGE_SIZE, vec) < 0) {
		int err = errno;
		pr_perror("pager: mincore of the region");
		free(vec);
		return -err;
	}
	for (uint64_t i = 0; i < p->npages; i++) {
		bool present = vec[i] & 1;
		p->loc[i] = present ? DCRES_PAGER_LOCAL : DCRES_PAGER_ZERO;
		p->resident += present;
	}
	free(vec);
	return 0;
}

/* Registers the region (and the staging area eviction moves pages
 * through) with a new userfaultfd. */
static int register_uffd(struct dcres_pager *p)
{
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)p->base, p->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (p->local_limit)
		reg.mode |= p->evict_wp ? UFFDIO_REGISTER_MODE_WP : 0;
	p->uffd = uffd_open(!p->local_limit ? 0 : p->evict_wp ? UFFD_FEATURE_PAGEFAULT_FLAG_WP :
			    UFFD_FEATURE_MOVE, NULL);
	if (p->uffd < 0)
		return p->uffd;
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int err = errno;
		pr_perror("pager: UFFDIO_REGISTER of %zu bytes", p->size);
		return -err;
	}
	if (!p->local_limit)
		return 0;
	/* Evicted pages pass through here. UFFDIO_MOVE needs the destination
	 * registered with the same uffd; a copy under write-protection does not. */
	p->staging = mmap(NULL, PAGER_EVICT_BATCH * DCRES_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range = (struct uffdio_range){ (uint64_t)(uintptr_t)p->staging,
					   PAGER_EVICT_BATCH * DCRES_PAGE_SIZE };
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (p->staging == MAP_FAILED ||
	    (!p->evict_wp && ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)) {
		int err = errno;
		pr_perror("pager: staging area for eviction");
		return -err;
	}
	return 0;
}

int dcres_pager_start(const struct dcres_pager_config *cfg, struct dcres_pager **out)
{
	struct dcres_pager *p;
	int ret;

	if (!cfg->base || cfg->size == 0 || cfg->size % DCRES_PAGE_SIZE ||
	    (uintptr_t)cfg->base % DCRES_PAGE_SIZE || cfg->nservers > 254) {
		pr_err("pager: region must be page-aligned and servers at most 254");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->base = cfg->base;
	p->size = cfg->size;
	p->npages = cfg->size / DCRES_PAGE_SIZE;
	memcpy(p->vm_uuid, cfg->vm_uuid, sizeof(p->vm_uuid));
	p->psk = *cfg->psk;
	p->timeout_ms = cfg->timeout_ms;
	p->on_server = cfg->on_server;
	p->on_page_error = cfg->on_page_error;
	p->restore_watch = true; /* until every server has said it has nothing loading */
	p->opaque = cfg->opaque;
	p->nservers = cfg->nservers;
	p->uffd = p->stop_fd = p->kick_fd = -1;
	pthread_mutex_init(&p->stats_lock, NULL);
	pthread_mutex_init(&p->fill_lock, NULL);
	pthread_cond_init(&p->fill_done, NULL);
	pthread_mutex_init(&p->evict_lock, NULL);
	pthread_mutex_init(&p->watch_lock, NULL);
	pthread_cond_init(&p->pageins_go, NULL);
	p->local_limit = cfg->local_limit_pages;
	p->staging = MAP_FAILED;
	p->loc = malloc(p->npages);
	p->history = calloc(p->npages, 1);
	p->pins = calloc(p->npages, 1);
	p->touched = calloc((p->npages + 63) / 64, sizeof(uint64_t));
	p->servers = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*p->servers));
	if (!p->loc || !p->history || !p->pins || !p->touched || !p->servers ||
	    posix_memalign(&p->buf, DCRES_PAGE_SIZE, DCRES_PAGE_SIZE)) {
		ret = -ENOMEM;
		goto err;
	}
	ret = scan_resident(p);
	if (!ret && p->local_limit)
		ret = choose_eviction(p, cfg->evict_by_write_protect);
	if (ret)
		goto err;
	for (unsigned i = 0; i < cfg->nservers; i++) {
		if (!(p->servers[i].addr = strdup(cfg->servers[i]))) {
			ret = -ENOMEM;
			goto err;
		}
		ret = pager_server_connect(p, i, p->timeout_ms);
		if (ret) {
			pr_err("pager: memory server %u (%s) is not usable", i + 1, cfg->servers[i]);
			goto err;
		}
	}
	ret = register_uffd(p);
	if (ret)
		goto err;
	p->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->kick_fd < 0) {
		ret = -errno;
		goto err;
	}
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_fd < 0 || (ret = -pthread_create(&p->thread, NULL, pager_fault_main, p))) {
		ret = p->stop_fd < 0 ? -errno : ret;
		goto err;
	}
	*out = p;
	return 0;
err:
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	p->stop_fd = -1;
	dcres_pager_stop(p);
	return ret;
}

void dcres_pager_stop(struct dcres_pager *p)
{
	if (!p)
		return;
	if (p->stop_fd >= 0) {
		uint64_t one = 1;
		dcres_pager_hold_page_ins(p, false); /* a fault thread waiting there ends */
		if (write(p->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(p->thread, NULL);
		close(p->stop_fd);
	}
	if (p->uffd >= 0) {
		struct uffdio_range r = { (uint64_t)(uintptr_t)p->base, p->size };
		ioctl(p->uffd, UFFDIO_UNREGISTER, &r);
		close(p->uffd);
	}
	if (p->kick_fd >= 0)
		close(p->kick_fd);
	if (p->staging != MAP_FAILED)
		munmap(p->staging, PAGER_EVICT_BATCH * DCRES_PAGE_SIZE);
	for (unsigned i = 0; p->servers && i < p->nservers; i++) {
		dcres_memclient_close(p->servers[i].client);
		free(p->servers[i].addr);
		free(p->servers[i].doubtful);
	}
	free(p->servers);
	free(p->pending);
	free((void *)p->history);
	free(p->pins);
	free((void *)p->touched);
	free((void *)p->loc);
	free(p->buf);
	pager_fill_free(p);
	pthread_cond_destroy(&p->fill_done);
	pthread_mutex_destroy(&p->fill_lock);
	pthread_mutex_destroy(&p->evict_lock);
	pthread_cond_destroy(&p->pageins_go);
	pthread_mutex_destroy(&p->watch_lock);
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
}

int dcres_pager_place(struct dcres_pager *p, uint64_t page, uint8_t host)
{
	if (page >= p->npages || (host != DCRES_PAGER_ZERO && (host == 0 || host > p->nservers)))
		return -EINVAL;
	uint8_t old = atomic_exchange(&p->loc[page], host);
	if (old != DCRES_PAGER_LOCAL && old != DCRES_PAGER_ZERO)
		atomic_fetch_sub(&p->servers[old - 1].pages, 1);
	if (host != DCRES_PAGER_ZERO)
		atomic_fetch_add(&p->servers[host - 1].pages, 1);
	return 0;
}

int pager_kick(struct dcres_pager *p)
{
	uint64_t one = 1;

	if (write(p->kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN) {
		int err = errno;
		pr_perror("pager: waking the fault thread");
		return -err;
	}
	return 0;
}

void dcres_pager_seed_history(struct dcres_pager *p, const uint8_t *history)
{
	for (uint64_t i = 0; i < p->npages; i++)
		atomic_store_explicit(&p->history[i], history[i], memory_order_relaxed);
}

uint8_t dcres_pager_location(const struct dcres_pager *p, uint64_t page)
{
	return page < p->npages ? atomic_load(&p->loc[page]) : DCRES_PAGER_ZERO;
}

unsigned dcres_pager_server_count(const struct dcres_pager *p)
{
	return p->nservers;
}

int dcres_pager_server_info(const struct dcres_pager *p, unsigned k,
			    struct dcres_pager_server_info *out)
{
	if (k == 0 || k > p->nservers)
		return -EINVAL;
	out->addr = p->servers[k - 1].addr;
	out->pages = atomic_load(&p->servers[k - 1].pages);
	out->up = atomic_load(&p->servers[k - 1].up);
	out->restore_pending = atomic_load(&p->servers[k - 1].restore_pending);
	out->restore_bad = atomic_load(&p->servers[k - 1].restore_bad);
	return 0;
}

void dcres_pager_note_access(struct dcres_pager *p, uint64_t page)
{
	if (page >= p->npages)
		return;
	atomic_fetch_or_explicit(&p->history[page], PAGER_HISTORY_SEEN, memory_order_relaxed);
	pager_touch(p, page);
}

void pager_touch(struct dcres_pager *p, uint64_t page)
{
	atomic_fetch_or_explicit(&p->touched[page / 64], 1ull << (page % 64),
				 memory_order_relaxed);
}

void dcres_pager_take_touched(struct dcres_pager *p, uint64_t *bits, bool forget)
{
	for (uint64_t w = 0; w < (p->npages + 63) / 64; w++)
		bits[w] |= forget ? atomic_exchange(&p->touched[w], 0) : atomic_load(&p->touched[w]);
}

int dcres_pager_watch_moves(struct dcres_pager *p, dcres_pager_move_fn fn, void *opaque)
{
	int ret = 0;

	pthread_mutex_lock(&p->watch_lock);
	if (fn && p->watch_fn) {
		ret = -EBUSY;
	} else {
		p->watch_fn = fn;
		p->watch_opaque = opaque;
	}
	pthread_mutex_unlock(&p->watch_lock);
	return ret;
}

void pager_report_moves_locked(struct dcres_pager *p, const uint64_t *pages, size_t n,
			       uint8_t from, uint8_t to)
{
	for (size_t i = 0; p->watch_fn && i < n; i++)
		p->watch_fn(p->watch_opaque, pages[i], from, to);
}

void pager_report_moves(struct dcres_pager *p, const uint64_t *pages, size_t n,
			uint8_t from, uint8_t to)
{
	pthread_mutex_lock(&p->watch_lock);
	pager_report_moves_locked(p, pages, n, from, to);
	pthread_mutex_unlock(&p->watch_lock);
}

void dcres_pager_hold_page_ins(struct dcres_pager *p, bool hold)
{
	/* Taking the lock waits for a page-in half done. */
	pthread_mutex_lock(&p->watch_lock);
	p->pageins_held = hold;
	if (!hold)
		pthread_cond_broadcast(&p->pageins_go);
	pthread_mutex_unlock(&p->watch_lock);
}

void dcres_pager_hold_eviction(struct dcres_pager *p, bool hold)
{
	atomic_store(&p->evict_held, hold);
	/* A batch that started before the flag was seen ends under the lock. */
	pthread_mutex_lock(&p->evict_lock);
	pthread_mutex_unlock(&p->evict_lock);
}

int dcres_pager_pin(struct dcres_pager *p, uint64_t page)
{
	int ret = 0;

	if (page >= p->npages)
		return -EINVAL;
	pthread_mutex_lock(&p->evict_lock);
	if (atomic_load(&p->loc[page]) != DCRES_PAGER_LOCAL)
		ret = -ENOENT;
	else if (p->pins[page] == UINT8_MAX)
		ret = -EBUSY;
	else
		p->pins[page]++;
	pthread_mutex_unlock(&p->evict_lock);
	return ret;
}

void dcres_pager_unpin(struct dcres_pager *p, uint64_t page)
{
	pthread_mutex_lock(&p->evict_lock);
	if (page < p->npages && p->pins[page])
		p->pins[page]--;
	pthread_mutex_unlock(&p->evict_lock);
}

int dcres_pager_read_table(const struct dcres_pager *p, uint64_t first, uint64_t n,
			   uint8_t *loc, uint8_t *history)
{
	if (first > p->npages || n > p->npages - first)
		return -EINVAL;
	for (uint64_t i = 0; i < n; i++) {
		if (loc)
			loc[i] = atomic_load_explicit(&p->loc[first + i], memory_order_relaxed);
		if (history)
			history[i] = atomic_load_explicit(&p->history[first + i],
							  memory_order_relaxed);
	}
	return 0;
}

void dcres_pager_for_each_nonresident(const struct dcres_pager *p,
				      void (*fn)(void *opaque, uint64_t first, uint64_t n),
				      void *opaque)
{
	uint64_t i = 0;

	while (i < p->npages) {
		uint64_t end = i;

		while (end < p->npages &&
		       atomic_load_explicit(&p->loc[end], memory_order_relaxed) != DCRES_PAGER_LOCAL)
			end++;
		if (end > i)
			fn(opaque, i, end - i);
		i = end + 1;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void dcres_pager_get_stats(struct dcres_pager *p, struct dcres_pager_stats *st)
{
	uint32_t lat[PAGER_LAT_SAMPLES];
	unsigned n;

	pthread_mutex_lock(&p->stats_lock);
	st->page_ins = p->page_ins;
	st->zero_fills = p->zero_fills;
	st->page_outs = p->page_outs;
	n = p->nlat < PAGER_LAT_SAMPLES ? p->nlat : PAGER_LAT_SAMPLES;
	memcpy(lat, p->lat_us, n * sizeof(*lat));
	pthread_mutex_unlock(&p->stats_lock);
	qsort(lat, n, sizeof(*lat), cmp_u32);
	st->fault_us_p50 = n ? lat[n / 2] : 0;
	st->fault_us_p99 = n ? lat[(n * 99) / 100] : 0;
	st->local_limit = p->local_limit;
	st->resident = atomic_load(&p->resident);
	st->waiting_faults = atomic_load(&p->npending);
	st->fill_loaded = atomic_load(&p->fill_loaded);
	st->fill_pending = atomic_load(&p->fill_pending);
	st->fill_faults = atomic_load(&p->fill_faults);
	st->fill_bad = atomic_load(&p->fill_bad);
	st->fill_error = atomic_load(&p->fill_error);
}
