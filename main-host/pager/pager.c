#define _GNU_SOURCE
#include "dcres/pager.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
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

#define LAT_SAMPLES 4096 /* ring of recent page-in service times */

struct dcres_pager {
	uint8_t *base;
	uint64_t npages;
	_Atomic uint8_t *loc;             /* network page table */
	struct dcres_memclient **clients; /* one per server, used by the fault thread */
	unsigned nservers;
	int uffd, stop_fd;
	pthread_t thread;
	void *buf;                        /* one page, for UFFDIO_COPY */
	pthread_mutex_t stats_lock;
	uint64_t page_ins, zero_fills;
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
static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
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
		pr_perror("UFFDIO_API");
		close(fd);
		return -err;
	}
	return fd;
}

/* Installs page idx (a copy of buf, or a zero page when buf is NULL),
 * records it as local, and only then wakes the threads waiting on it, so
 * they never see the page before the table does. A page that appeared
 * meanwhile (EEXIST) is fine. */
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
	atomic_store(&p->loc[idx], DCRES_PAGER_LOCAL);
	if (ioctl(p->uffd, UFFDIO_WAKE, &range) < 0) {
		int err = errno;
		pr_perror("waking threads waiting on page %llu", (unsigned long long)idx);
		return -err;
	}
	return 0;
}

/* Serves one missing-page fault. */
static int serve_fault(struct dcres_pager *p, uint64_t addr)
{
	uint64_t idx = (addr - (uint64_t)(uintptr_t)p->base) / DCRES_PAGE_SIZE;
	uint8_t host = atomic_load(&p->loc[idx]);
	uint64_t t0 = now_us();
	int ret;

	if (host == DCRES_PAGER_ZERO || host == DCRES_PAGER_LOCAL) {
		if (host == DCRES_PAGER_LOCAL)
			pr_err("page %llu was resident but is missing: discarded outside "
			       "the pager? installing zeros", (unsigned long long)idx);
		ret = install(p, idx, NULL);
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
	ret = install(p, idx, p->buf);
	if (ret)
		return ret;
	pthread_mutex_lock(&p->stats_lock);
	p->page_ins++;
	p->lat_us[p->nlat++ % LAT_SAMPLES] = (uint32_t)(now_us() - t0);
	pthread_mutex_unlock(&p->stats_lock);
	return 0;
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
	}
	return NULL;
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
	p->loc = malloc(p->npages);
	p->clients = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*p->clients));
	if (!p->loc || !p->clients || posix_memalign(&p->buf, DCRES_PAGE_SIZE, DCRES_PAGE_SIZE)) {
		ret = -ENOMEM;
		goto err;
	}
	memset((void *)p->loc, DCRES_PAGER_ZERO, p->npages);
	for (unsigned i = 0; i < cfg->nservers; i++) {
		ret = dcres_memclient_connect(cfg->servers[i], cfg->psk, cfg->timeout_ms,
					      &p->clients[i]);
		if (!ret && (ret = dcres_memclient_attach(p->clients[i], cfg->vm_uuid, cfg->size)))
			pr_err("pager: memory server %s refused the VM: %s", cfg->servers[i],
			       dcres_memclient_error(p->clients[i]));
		if (ret) {
			pr_err("pager: memory server %u (%s) is not usable", i + 1, cfg->servers[i]);
			goto err;
		}
	}
	p->uffd = uffd_open();
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
	for (unsigned i = 0; p->clients && i < p->nservers; i++)
		dcres_memclient_close(p->clients[i]);
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
	n = p->nlat < LAT_SAMPLES ? p->nlat : LAT_SAMPLES;
	memcpy(lat, p->lat_us, n * sizeof(*lat));
	pthread_mutex_unlock(&p->stats_lock);
	qsort(lat, n, sizeof(*lat), cmp_u32);
	st->fault_us_p50 = n ? lat[n / 2] : 0;
	st->fault_us_p99 = n ? lat[(n * 99) / 100] : 0;
}
