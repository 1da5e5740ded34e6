/* Checkpoint of the memory servers from the main host (mainckpt.h). */
#include "dcres/mainckpt.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcres/loctable.h"
#include "dcres/log.h"
#include "dcres/memclient.h"
#include "dcres/path.h"

#define POLL_MS 250       /* between progress polls of a server */
#define WATCH_MS 100      /* between looks at the pager while a step runs */
#define TABLE_CHUNK 65536 /* pages copied from the pager at a time */

enum step { STEP_BEGIN, STEP_SYNC, STEP_FINAL };

/* One memory server: a control connection that runs the steps (one at a
 * time, each in a thread of its own) and a second one for progress. */
struct ckpt_server {
	struct dcres_mainckpt *c;
	unsigned k;                   /* 1..n, the pager's numbering */
	char addr[256];
	struct dcres_memclient *ctl, *poll;
	bool begun;
	enum step step;
	int ret;                      /* of the last step */
	char msg[256];                /* the server's explanation of a refusal */
	_Atomic bool lost;            /* the pager lost it during the step */
	_Atomic bool done;
	_Atomic uint64_t bytes;       /* written for this checkpoint */
	struct dcres_ckpt_part part;  /* what its final published */
	pthread_t thread;
};

struct dcres_mainckpt {
	struct dcres_mainckpt_config cfg;
	char dir[PATH_MAX], server_dir[PATH_MAX];
	unsigned n;
	struct ckpt_server *servers;
	bool finished;                /* final succeeded */
	pthread_mutex_t lock;         /* with cond: step threads report */
	pthread_cond_t cond;
	bool stop_poll;
	pthread_t poller;
	bool poller_running;
};

/* Connects one client to s, attached to the VM (not exclusively: the
 * pager's connection stays valid). */
static int connect_attached(struct ckpt_server *s, struct dcres_memclient **out)
{
	const struct dcres_mainckpt_config *cfg = &s->c->cfg;
	int ret = dcres_memclient_connect(s->addr, cfg->psk, cfg->timeout_ms, out);

	if (ret)
		return ret;
	ret = dcres_memclient_attach(*out, cfg->vm_uuid, cfg->ram_size);
	if (ret) {
		snprintf(s->msg, sizeof(s->msg), "%s", dcres_memclient_error(*out));
		dcres_memclient_close(*out);
		*out = NULL;
	}
	return ret;
}

/* Runs s->step on s's control connection (a thread per server). */
static void *step_main(void *arg)
{
	struct ckpt_server *s = arg;
	struct dcres_mainckpt *c = s->c;
	int ret = -EINVAL;

	switch (s->step) {
	case STEP_BEGIN:
		ret = connect_attached(s, &s->ctl);
		if (!ret)
			ret = connect_attached(s, &s->poll);
		if (!ret) {
			ret = dcres_memclient_ckpt_begin(s->ctl, c->server_dir, s->k);
			s->begun = ret == 0;
		}
		break;
	case STEP_SYNC:
		ret = dcres_memclient_ckpt_sync(s->ctl);
		break;
	case STEP_FINAL:
		ret = dcres_memclient_ckpt_final(s->ctl, &s->part);
		if (!ret)
			atomic_store(&s->bytes, s->part.bytes_written);
		break;
	}
	if (ret && !s->msg[0] && s->ctl)
		snprintf(s->msg, sizeof(s->msg), "%s", dcres_memclient_error(s->ctl));
	s->ret = ret;
	pthread_mutex_lock(&c->lock);
	atomic_store(&s->done, true);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Waits on c->cond (c->lock held) for at most ms milliseconds. */
static void wait_ms(struct dcres_mainckpt *c, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static bool server_up(const struct dcres_mainckpt *c, unsigned k)
{
	struct dcres_pager_server_info si;

	return dcres_pager_server_info(c->cfg.pager, k, &si) == 0 && si.up;
}

/* Runs step on every server in parallel and waits for all. A server the
 * pager reports lost meanwhile has its request cut short. The first
 * failure is described in err, naming the server. */
static int run_step(struct dcres_mainckpt *c, enum step step, char *err, size_t err_len)
{
	static const char *const names[] = { "begin", "sync", "final" };
	unsigned started = 0;
	int ret = 0;

	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		s->step = step;
		s->ret = 0;
		s->msg[0] = '\0';
		atomic_store(&s->lost, false);
		atomic_store(&s->done, false);
		if (pthread_create(&s->thread, NULL, step_main, s)) {
			s->ret = -EAGAIN;
			atomic_store(&s->done, true);
			snprintf(s->msg, sizeof(s->msg), "cannot start a thread");
			break;
		}
		started++;
	}
	pthread_mutex_lock(&c->lock);
	for (;;) {
		bool all = true;
		for (unsigned i = 0; i < started; i++) {
			struct ckpt_server *s = &c->servers[i];
			if (atomic_load(&s->done))
				continue;
			all = false;
			if (!server_up(c, s->k) && s->ctl && !atomic_exchange(&s->lost, true))
				dcres_memclient_shutdown(s->ctl);
		}
		if (all)
			break;
		wait_ms(c, WATCH_MS);
	}
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(c->servers[i].thread, NULL);
	for (unsigned i = 0; i < c->n && !ret; i++) {
		struct ckpt_server *s = &c->servers[i];
		if (!s->ret && i < started)
			continue;
		ret = s->ret ? s->ret : -EAGAIN;
		snprintf(err, err_len, "checkpoint %s on memory server %u (%s) failed: %s",
			 names[step], s->k, s->addr,
			 atomic_load(&s->lost) ? "lost (it stopped answering the VM)" :
			 s->msg[0] ? s->msg : strerror(-ret));
	}
	return ret;
}

/* Polls every server's progress until told to stop. */
static void *poll_main(void *arg)
{
	struct dcres_mainckpt *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop_poll) {
		pthread_mutex_unlock(&c->lock);
		for (unsigned i = 0; i < c->n; i++) {
			struct ckpt_server *s = &c->servers[i];
			struct dcres_memstats st;
			if (s->poll && dcres_memclient_stats(s->poll, &st) == 0 && st.ckpt_state)
				atomic_store(&s->bytes, st.ckpt_bytes_written);
		}
		pthread_mutex_lock(&c->lock);
		if (!c->stop_poll)
			wait_ms(c, POLL_MS);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void stop_poller(struct dcres_mainckpt *c)
{
	if (!c->poller_running)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop_poll = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->poller, NULL);
	c->poller_running = false;
}

/* Names the checkpoint directory relative to the servers' --dir (root). */
static int relative_to_root(struct dcres_mainckpt *c, const char *root, char *err,
			    size_t err_len)
{
	int ret = dcres_path_relative(root, c->dir, c->server_dir, sizeof(c->server_dir));

	if (ret == -EINVAL)
		snprintf(err, err_len, "checkpoint directory %s is not below %s, the memory "
			 "servers' directory", c->dir, root);
	else if (ret)
		snprintf(err, err_len, "checkpoint directory %s: %s", c->dir, strerror(-ret));
	return ret;
}

int dcres_mainckpt_begin(const struct dcres_mainckpt_config *cfg,
			 struct dcres_mainckpt **out, char *err, size_t err_len)
{
	struct dcres_mainckpt *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	snprintf(c->dir, sizeof(c->dir), "%s", cfg->dir);
	c->cfg.dir = c->dir;
	c->cfg.root = NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if ((ret = relative_to_root(c, cfg->root, err, err_len))) {
		dcres_mainckpt_end(c);
		return ret;
	}
	c->n = dcres_pager_server_count(cfg->pager);
	c->servers = calloc(c->n ? c->n : 1, sizeof(*c->servers));
	if (!c->servers) {
		dcres_mainckpt_end(c);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		struct dcres_pager_server_info si;
		s->c = c;
		s->k = i + 1;
		dcres_pager_server_info(cfg->pager, s->k, &si);
		snprintf(s->addr, sizeof(s->addr), "%s", si.addr);
	}
	ret = run_step(c, STEP_BEGIN, err, err_len);
	if (!ret) {
		ret = -pthread_create(&c->poller, NULL, poll_main, c);
		c->poller_running = ret == 0;
		if (ret)
			snprintf(err, err_len, "cannot start the progress thread");
	}
	if (ret) {
		dcres_mainckpt_end(c);
		return ret;
	}
	*out = c;
	return 0;
}

int dcres_mainckpt_sync(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	return run_step(c, STEP_SYNC, err, err_len);
}

int dcres_mainckpt_probe(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		struct dcres_memstats st;
		int ret = s->ctl ? dcres_memclient_stats(s->ctl, &st) : 0;

		if (ret) {
			snprintf(err, err_len, "memory server %u (%s) does not answer: %s", s->k,
				 s->addr, strerror(-ret));
			return -EIO;
		}
	}
	return 0;
}

/* Writes DIR/main.loc from the pager's table and history, with the
 * servers' parts as their finals described them. */
static int write_loctable(struct dcres_mainckpt *c, const struct dcres_mapped_ram *main_file,
			  char *err, size_t err_len)
{
	uint64_t npages = c->cfg.ram_size / 4096;
	struct dcres_loctable t;
	char path[PATH_MAX + 16];
	int ret = dcres_loctable_init(&t, npages, 4096);

	if (ret) {
		snprintf(err, err_len, "cannot make the location table: %s", strerror(-ret));
		return ret;
	}
	t.main_file = *main_file;
	snprintf(t.server_dir, sizeof(t.server_dir), "%s", c->server_dir);
	for (unsigned i = 0; i < c->n && !ret; i++) {
		const struct ckpt_server *s = &c->servers[i];
		struct dcres_loc_part part = {
			.host = s->k, .pages = s->part.pages,
			.mem_size = s->part.mem.size, .mem_crc = s->part.mem.crc32c,
			.present_size = s->part.present.size, .present_crc = s->part.present.crc32c,
		};

		snprintf(part.address, sizeof(part.address), "%s", s->addr);
		ret = dcres_loctable_add_part(&t, &part);
	}
	for (uint64_t first = 0; first < npages && !ret; first += TABLE_CHUNK) {
		uint64_t n = npages - first < TABLE_CHUNK ? npages - first : TABLE_CHUNK;
		ret = dcres_pager_read_table(c->cfg.pager, first, n, t.host + first,
					     t.history + first);
	}
	snprintf(path, sizeof(path), "%s/main.loc", c->dir);
	if (!ret)
		ret = dcres_loctable_write(path, &t);
	if (ret)
		snprintf(err, err_len, "cannot write %s: %s", path, strerror(-ret));
	dcres_loctable_free(&t);
	return ret;
}

int dcres_mainckpt_final(struct dcres_mainckpt *c, const struct dcres_mapped_ram *main_file,
			 char *err, size_t err_len)
{
	int ret;

	stop_poller(c); /* final's own count replaces the polled one */
	ret = run_step(c, STEP_FINAL, err, err_len);
	if (!ret)
		ret = write_loctable(c, main_file, err, err_len);
	c->finished = ret == 0;
	return ret;
}

uint64_t dcres_mainckpt_server_bytes(const struct dcres_mainckpt *c, unsigned k)
{
	return k >= 1 && k <= c->n ? atomic_load(&c->servers[k - 1].bytes) : 0;
}

void dcres_mainckpt_end(struct dcres_mainckpt *c)
{
	if (!c)
		return;
	stop_poller(c);
	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		/* A server whose checkpoint did not finish drops its partial
		 * file (it would also do so when the connection closes). */
		if (s->ctl && s->begun && !c->finished && dcres_memclient_ckpt_abort(s->ctl))
			pr_warn("memory server %u (%s): checkpoint abort not confirmed: %s", s->k,
				s->addr, dcres_memclient_error(s->ctl));
		if (s->ctl)
			dcres_memclient_close(s->ctl);
		if (s->poll)
			dcres_memclient_close(s->poll);
	}
	free(c->servers);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
