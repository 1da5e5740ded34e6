#define _GNU_SOURCE
#include "dcres/pager.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/wire.h"
#include "uffd-move.h"

#define LAT_SAMPLES 4096 /* ring of recent page-in service times */
#define EVICT_BATCH 64   /* pages sent to a memory server per page-out */
#define HISTORY_SEEN 0x80

struct dcres_pager {
	uint8_t *base;
	uint64_t npages;
	_Atomic uint8_t *loc;             /* network page table */
	struct dcres_memclient **clients; /* one per server, used by the fault thread */
	unsigned nservers;
	int uffd, stop_fd;
	pthread_t thread;
	void *buf;                        /* one page, for UFFDIO_COPY */
	uint64_t local_limit;             /* resident pages allowed; 0: no limit */
	uint64_t resident, hand;          /* pages here; CLOCK hand */
	uint8_t *history;                 /* aged access history per page */
	uint8_t *staging;                 /* EVICT_BATCH pages, same uffd */
	uint64_t *server_free;            /* pages each server can still take */
	unsigned next_server;
	pthread_mutex_t stats_lock;
	uint64_t page_ins, zero_fills, page_outs;
	uint32_t lat_us[LAT_SAMPLES];
	unsigned nlat;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Opens a userfaultfd (syscall, else /dev/userfaultfd) and negotiates the API. */
static int uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
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
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = errno;
		if (features & UFFD_FEATURE_MOVE)
			pr_perror("UFFDIO_API: this kernel lacks UFFDIO_MOVE (Linux 6.8+), "
				  "which eviction needs");
		else
			pr_perror("UFFDIO_API");
		close(fd);
		return -err;
	}
	return fd;
}

/* Installs page idx (a copy of buf, or a zero page when buf is NULL),
 * records it as local, and only then wakes the threads waiting on it, so
 * they never see the page before the table does. Returns 1 if the page was
 * already there (a second fault on one page), 0 if installed. */
static int install(struct dcres_pager *p, uint64_t idx, const void *buf)
{
	uint64_t addr = (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE);
	struct uffdio_range range = { addr, DCRES_PAGE_SIZE };
	int ret;

	if (buf) {
		struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)buf,
					 .len = DCRES_PAGE_SIZE, .mode = UFFDIO_COPY_MODE_DONTWAKE };
		ret = ioctl(p->uffd, UFFDIO_COPY, &c);
	} else {
		struct uffdio_zeropage z = { .range = range, .mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE };
		ret = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z);
	}
	if (ret < 0 && errno != EEXIST) {
		int err = errno;
		pr_perror("installing page %llu", (unsigned long long)idx);
		return -err;
	}
	bool existed = ret < 0;
	if (!existed)
		p->resident++;
	p->history[idx] |= HISTORY_SEEN;
	atomic_store(&p->loc[idx], DCRES_PAGER_LOCAL);
	if (ioctl(p->uffd, UFFDIO_WAKE, &range) < 0) {
		int err = errno;
		pr_perror("waking threads waiting on page %llu", (unsigned long long)idx);
		return -err;
	}
	return existed;
}

/* Serves one missing-page fault. */
static int serve_fault(struct dcres_pager *p, uint64_t addr)
{
	uint64_t idx = (addr - (uint64_t)(uintptr_t)p->base) / DCRES_PAGE_SIZE;
	uint8_t host = atomic_load(&p->loc[idx]);
	uint64_t t0 = now_us();
	int ret;

	if (host == DCRES_PAGER_ZERO || host == DCRES_PAGER_LOCAL) {
		ret = install(p, idx, NULL);
		if (ret == 1) /* a second fault on a page already served */
			return 0;
		if (ret == 0 && host == DCRES_PAGER_LOCAL)
			pr_err("page %llu was resident but is missing: discarded outside "
			       "the pager? installed zeros", (unsigned long long)idx);
		pthread_mutex_lock(&p->stats_lock);
		p->zero_fills++;
		pthread_mutex_unlock(&p->stats_lock);
		return ret;
	}
	ret = dcres_memclient_page_in(p->clients[host - 1], &idx, p->buf, 1);
	if (ret) {
		pr_err("page %llu: page-in from %s failed: %s", (unsigned long long)idx,
		       dcres_memclient_peer(p->clients[host - 1]), strerror(-ret));
		return ret;
	}
	p->server_free[host - 1]++; /* the server released it */
	ret = install(p, idx, p->buf);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->stats_lock);
	p->page_ins++;
	p->lat_us[p->nlat++ % LAT_SAMPLES] = (uint32_t)(now_us() - t0);
	pthread_mutex_unlock(&p->stats_lock);
	return 0;
}

/* Picks up to max resident pages with the coldest history, CLOCK style:
 * the hand ages every page it passes and takes those already at zero. */
static size_t pick_victims(struct dcres_pager *p, uint64_t *victims, size_t max)
{
	size_t n = 0;

	for (uint64_t steps = 0; n < max && steps < 9 * p->npages; steps++) {
		uint64_t i = p->hand;
		p->hand = p->hand + 1 == p->npages ? 0 : p->hand + 1;
		if (atomic_load(&p->loc[i]) != DCRES_PAGER_LOCAL)
			continue;
		if (p->history[i]) {
			p->history[i] >>= 1;
			continue;
		}
		victims[n++] = i;
	}
	return n;
}

/* Moves page idx of the region to slot of the staging area or back:
 * atomically, so a vCPU write lands before the move or faults after it. */
static int move_page(struct dcres_pager *p, uint64_t idx, size_t slot, bool out)
{
	uint64_t guest = (uint64_t)(uintptr_t)(p->base + idx * DCRES_PAGE_SIZE);
	uint64_t stage = (uint64_t)(uintptr_t)(p->staging + slot * DCRES_PAGE_SIZE);
	struct uffdio_move m = {
		.dst = out ? stage : guest, .src = out ? guest : stage,
		.len = DCRES_PAGE_SIZE, .mode = UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (ioctl(p->uffd, UFFDIO_MOVE, &m) < 0) {
		int err = errno;
		pr_perror("UFFDIO_MOVE of page %llu %s", (unsigned long long)idx,
			  out ? "out of the guest" : "back into the guest");
		return -err;
	}
	return 0;
}

/* Sends the n staged pages to a memory server with room, trying each once. */
static int send_staged(struct dcres_pager *p, const uint64_t *pages, size_t n,
		       unsigned *server)
{
	int ret = -ENOSPC;

	for (unsigned tries = 0; tries < p->nservers; tries++) {
		unsigned s = (p->next_server + tries) % p->nservers;
		if (p->server_free[s] < n)
			continue;
		ret = dcres_memclient_page_out(p->clients[s], pages, p->staging, n);
		if (ret == 0) {
			p->server_free[s] -= n;
			p->next_server = (s + 1) % p->nservers;
			*server = s;
			return 0;
		}
		if (ret == -ENOSPC)
			p->server_free[s] = 0;
	}
	pr_err("pager: no memory server took %zu evicted pages: %s", n, strerror(-ret));
	return ret;
}

/* Evicts up to EVICT_BATCH of the coldest resident pages to a memory
 * server. The pages leave the guest by UFFDIO_MOVE into the staging area;
 * a vCPU touching one meanwhile faults and is served (after this batch)
 * from the server. If no server takes them they move back. */
static int evict_batch(struct dcres_pager *p, size_t want)
{
	uint64_t victims[EVICT_BATCH], moved[EVICT_BATCH];
	size_t n, k = 0;
	unsigned server = 0;
	int ret;

	n = pick_victims(p, victims, want < EVICT_BATCH ? want : EVICT_BATCH);
	for (size_t i = 0; i < n; i++)
		if (move_page(p, victims[i], k, true) == 0)
			moved[k++] = victims[i];
	if (k == 0)
		return n ? -EIO : -ENOSPC;
	ret = send_staged(p, moved, k, &server);
	if (ret) {
		for (size_t i = 0; i < k; i++) {
			struct uffdio_range r = { (uint64_t)(uintptr_t)(p->base + moved[i] * DCRES_PAGE_SIZE),
						  DCRES_PAGE_SIZE };
			move_page(p, moved[i], i, false);
			ioctl(p->uffd, UFFDIO_WAKE, &r);
		}
		return ret;
	}
	for (size_t i = 0; i < k; i++)
		atomic_store(&p->loc[moved[i]], (uint8_t)(server + 1));
	p->resident -= k;
	madvise(p->staging, k * DCRES_PAGE_SIZE, MADV_DONTNEED);
	pthread_mutex_lock(&p->stats_lock);
	p->page_outs += k;
	pthread_mutex_unlock(&p->stats_lock);
	return 0;
}

/* Brings the resident set back under the local limit. */
static void enforce_limit(struct dcres_pager *p)
{
	while (p->local_limit && p->resident > p->local_limit)
		if (evict_batch(p, p->resident - p->local_limit + EVICT_BATCH / 2))
			break;
}

/* Fault thread: reads userfaultfd events until stopped. A fault it cannot
 * serve is logged and left pending (the faulting thread waits); the VM
 * layer decides what to do about a lost server. */
static void *fault_main(void *arg)
{
	struct dcres_pager *p = arg;
	struct pollfd fds[2] = { { p->uffd, POLLIN, 0 }, { p->stop_fd, POLLIN, 0 } };

	for (;;) {
		struct uffd_msg msg;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[1].revents)
			break;
		if (!(fds[0].revents & POLLIN))
			continue;
		ssize_t n = read(p->uffd, &msg, sizeof(msg));
		if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		serve_fault(p, msg.arg.pagefault.address & ~(uint64_t)(DCRES_PAGE_SIZE - 1));
		enforce_limit(p);
	}
	return NULL;
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

int dcres_pager_start(const struct dcres_pager_config *cfg, struct dcres_pager **out)
{
	struct uffdio_register reg;
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
	p->npages = cfg->size / DCRES_PAGE_SIZE;
	p->nservers = cfg->nservers;
	p->uffd = p->stop_fd = -1;
	pthread_mutex_init(&p->stats_lock, NULL);
	p->local_limit = cfg->local_limit_pages;
	p->staging = MAP_FAILED;
	p->loc = malloc(p->npages);
	p->history = calloc(p->npages, 1);
	p->server_free = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(uint64_t));
	p->clients = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*p->clients));
	if (!p->loc || !p->history || !p->server_free || !p->clients || posix_memalign(&p->buf, DCRES_PAGE_SIZE, DCRES_PAGE_SIZE)) {
		ret = -ENOMEM;
		goto err;
	}
	ret = scan_resident(p);
	if (ret)
		goto err;
	for (unsigned i = 0; i < cfg->nservers; i++) {
		ret = dcres_memclient_connect(cfg->servers[i], cfg->psk, cfg->timeout_ms,
					      &p->clients[i]);
		if (!ret && (ret = dcres_memclient_attach(p->clients[i], cfg->vm_uuid, cfg->size)))
			pr_err("pager: memory server %s refused the VM: %s", cfg->servers[i],
			       dcres_memclient_error(p->clients[i]));
		struct dcres_memstats ms;
		if (!ret && !(ret = dcres_memclient_stats(p->clients[i], &ms)))
			p->server_free[i] = ms.capacity_pages - ms.used_pages;
		if (ret) {
			pr_err("pager: memory server %u (%s) is not usable", i + 1, cfg->servers[i]);
			goto err;
		}
	}
	p->uffd = uffd_open(p->local_limit ? UFFD_FEATURE_MOVE : 0);
	if (p->uffd < 0) {
		ret = p->uffd;
		goto err;
	}
	reg = (struct uffdio_register){
		.range = { (uint64_t)(uintptr_t)cfg->base, cfg->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		pr_perror("pager: UFFDIO_REGISTER of %zu bytes", cfg->size);
		goto err;
	}
	if (p->local_limit) {
		/* Evicted pages pass through here; UFFDIO_MOVE needs the
		 * destination registered with the same userfaultfd. */
		p->staging = mmap(NULL, EVICT_BATCH * DCRES_PAGE_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		reg = (struct uffdio_register){
			.range = { (uint64_t)(uintptr_t)p->staging, EVICT_BATCH * DCRES_PAGE_SIZE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (p->staging == MAP_FAILED || ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
			ret = -errno;
			pr_perror("pager: staging area for eviction");
			goto err;
		}
	}
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_fd < 0 || (ret = -pthread_create(&p->thread, NULL, fault_main, p))) {
		ret = p->stop_fd < 0 ? -errno : ret;
		goto err;
	}
	*out = p;
	return 0;
err:
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	p->stop_fd = -1;
	p->thread = 0;
	dcres_pager_stop(p);
	return ret;
}

void dcres_pager_stop(struct dcres_pager *p)
{
	if (!p)
		return;
	if (p->stop_fd >= 0) {
		uint64_t one = 1;
		if (write(p->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(p->thread, NULL);
		close(p->stop_fd);
	}
	if (p->uffd >= 0) {
		struct uffdio_range r = { (uint64_t)(uintptr_t)p->base, p->npages * DCRES_PAGE_SIZE };
		ioctl(p->uffd, UFFDIO_UNREGISTER, &r);
		close(p->uffd);
	}
	if (p->staging != MAP_FAILED && p->staging)
		munmap(p->staging, EVICT_BATCH * DCRES_PAGE_SIZE);
	for (unsigned i = 0; p->clients && i < p->nservers; i++)
		dcres_memclient_close(p->clients[i]);
	free(p->history);
	free(p->server_free);
	free(p->clients);
	free((void *)p->loc);
	free(p->buf);
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
}

int dcres_pager_place(struct dcres_pager *p, uint64_t page, uint8_t host)
{
	if (page >= p->npages || (host != DCRES_PAGER_ZERO && (host == 0 || host > p->nservers)))
		return -EINVAL;
	atomic_store(&p->loc[page], host);
	return 0;
}

uint8_t dcres_pager_location(const struct dcres_pager *p, uint64_t page)
{
	return page < p->npages ? atomic_load(&p->loc[page]) : DCRES_PAGER_ZERO;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void dcres_pager_get_stats(struct dcres_pager *p, struct dcres_pager_stats *st)
{
	uint32_t lat[LAT_SAMPLES];
	unsigned n;

	pthread_mutex_lock(&p->stats_lock);
	st->page_ins = p->page_ins;
	st->zero_fills = p->zero_fills;
	st->page_outs = p->page_outs;
	n = p->nlat < LAT_SAMPLES ? p->nlat : LAT_SAMPLES;
	memcpy(lat, p->lat_us, n * sizeof(*lat));
	pthread_mutex_unlock(&p->stats_lock);
	qsort(lat, n, sizeof(*lat), cmp_u32);
	st->fault_us_p50 = n ? lat[n / 2] : 0;
	st->fault_us_p99 = n ? lat[(n * 99) / 100] : 0;
}
