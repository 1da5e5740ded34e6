/* The D-CRES live checkpoint from the main host (mainckpt.h): its states,
 * the stop point and the commit. */
#include "dcres/mainckpt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcres/log.h"
#include "dcres/path.h"
#include "mainckpt-internal.h"

#define PAGE_SIZE 4096
#define TABLE_CHUNK 65536 /* pages copied from the pager at a time */
#define NOT_YET_NAP_MS 10

int dcres_mainckpt_new(const struct dcres_mainckpt_config *cfg, struct dcres_mainckpt **out)
{
	struct dcres_mainckpt *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	snprintf(c->root, sizeof(c->root), "%s", cfg->root);
	c->cfg.root = c->root;
	c->npages = cfg->ram_size / PAGE_SIZE;
	c->n = dcres_pager_server_count(cfg->pager);
	c->servers = calloc(c->n ? c->n : 1, sizeof(*c->servers));
	c->paged_in = calloc((c->npages + 63) / 64, sizeof(*c->paged_in));
	c->since_base = calloc((c->npages + 63) / 64, sizeof(uint64_t));
	c->taken = calloc((c->npages + 63) / 64, sizeof(uint64_t));
	if (!c->servers || !c->paged_in || !c->since_base || !c->taken) {
		free(c->servers);
		free(c->paged_in);
		free(c->since_base);
		free(c->taken);
		free(c);
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
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

/* Sets c's state and, unless one is already recorded, its error. */
static void set_state(struct dcres_mainckpt *c, enum dcres_mainckpt_state state,
		      const char *error)
{
	pthread_mutex_lock(&c->lock);
	c->status.state = state;
	if (error && !c->status.error[0])
		snprintf(c->status.error, sizeof(c->status.error), "%s", error);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static enum dcres_mainckpt_state get_state(struct dcres_mainckpt *c)
{
	pthread_mutex_lock(&c->lock);
	enum dcres_mainckpt_state state = c->status.state;
	pthread_mutex_unlock(&c->lock);
	return state;
}

/* Tells the committer thread, waiting past the stop point, to commit or
 * abort; false if it is not waiting. */
static bool tell_committer(struct dcres_mainckpt *c, enum go go, const char *why)
{
	bool waiting;

	pthread_mutex_lock(&c->lock);
	waiting = c->committer_running && c->go == GO_WAIT;
	if (waiting) {
		c->go = go;
		snprintf(c->abort_why, sizeof(c->abort_why), "%s", why ? why : "");
		if (go == GO_COMMIT && c->status.state == DCRES_MAINCKPT_STOPPED)
			c->status.state = DCRES_MAINCKPT_COMMITTING;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return waiting;
}

/* Lets eviction go on again if the stop point held it. */
static void release_eviction(struct dcres_mainckpt *c)
{
	if (c->holding)
		dcres_pager_hold_eviction(c->cfg.pager, false);
	c->holding = false;
}

/* The directory holding main_file, symlinks resolved, into dir
 * (PATH_MAX bytes). */
static int main_file_dir(const char *main_file, char *dir, char *err, size_t err_len)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(main_file, '/');
	int n = slash ? (int)(slash - main_file) : 1;

	snprintf(parent, sizeof(parent), "%.*s", n ? n : 1, slash ? main_file : ".");
	if (!realpath(parent, dir)) {
		int ret = -errno;
		snprintf(err, err_len, "checkpoint directory %s: %s", parent, strerror(-ret));
		return ret;
	}
	return 0;
}

int dcres_mainckpt_begin(struct dcres_mainckpt *c, const char *main_file,
			 const uint8_t *parent, char *err, size_t err_len)
{
	enum dcres_mainckpt_state state = get_state(c);
	struct dcres_pager_stats ps;
	char dir[PATH_MAX];
	int ret;

	if (state == DCRES_MAINCKPT_RUNNING || state == DCRES_MAINCKPT_STOPPED ||
	    state == DCRES_MAINCKPT_COMMITTING) {
		snprintf(err, err_len, "the checkpoint into %s is still %s", c->status.dir,
			 state == DCRES_MAINCKPT_COMMITTING ? "being made durable" : "running");
		return -EBUSY;
	}
	dcres_pager_get_stats(c->cfg.pager, &ps);
	if (ps.fill_pending) {
		snprintf(err, err_len, "the VM's restored pages are still loading (%llu left); "
			 "checkpoint it once they are in", (unsigned long long)ps.fill_pending);
		return -EBUSY;
	}
	if (c->committer_running) {
		/* Past a stop point nobody committed (its final failed). */
		tell_committer(c, GO_ABORT, "a new checkpoint began");
		pthread_join(c->committer, NULL);
		c->committer_running = false;
	}
	ret = mainckpt_chain_begin(c, parent, err, err_len);
	if (!ret)
		ret = main_file_dir(main_file, dir, err, err_len);
	if (ret)
		return ret;
	ret = dcres_path_relative(c->root, dir, c->server_dir, sizeof(c->server_dir));
	if (ret) {
		if (ret == -EINVAL)
			snprintf(err, err_len, "checkpoint directory %s is not below %s, the "
				 "memory servers' directory", dir, c->root);
		else
			snprintf(err, err_len, "checkpoint directory %s: %s", dir, strerror(-ret));
		return ret;
	}
	snprintf(c->main_path, sizeof(c->main_path), "%s/%s", dir,
		 strrchr(main_file, '/') ? strrchr(main_file, '/') + 1 : main_file);
	pthread_mutex_lock(&c->lock);
	memset(&c->status, 0, sizeof(c->status));
	snprintf(c->status.dir, sizeof(c->status.dir), "%s", dir);
	c->status.state = DCRES_MAINCKPT_RUNNING;
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->n; i++) {
		atomic_store(&c->servers[i].bytes, 0);
		atomic_store(&c->servers[i].pending, 0);
		atomic_store(&c->servers[i].unanswered, false);
	}
	/* The table's room now, not in the stop window. */
	ret = dcres_loctable_init(&c->table, c->npages, PAGE_SIZE);
	if (ret) {
		snprintf(err, err_len, "cannot make the location table: %s", strerror(-ret));
		set_state(c, DCRES_MAINCKPT_FAILED, err);
		return ret;
	}
	mainckpt_chain_ids(c, &c->table);
	/* Watch first: a page moving before a server begins is still seen. */
	ret = mainckpt_watch(c);
	if (ret)
		snprintf(err, err_len, "the pager's page moves are watched by someone else");
	if (!ret)
		ret = mainckpt_run_step(c, STEP_BEGIN, err, err_len);
	if (!ret && (ret = mainckpt_start_poller(c)))
		snprintf(err, err_len, "cannot start the progress thread");
	if (ret)
		dcres_mainckpt_abort(c, err);
	return ret;
}

uint64_t dcres_mainckpt_pending(struct dcres_mainckpt *c, bool exact)
{
	uint64_t pages = 0;
	bool not_yet = false;

	if (get_state(c) != DCRES_MAINCKPT_RUNNING)
		return 0;
	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		struct dcres_memstats st;
		if (exact && s->ctl && dcres_memclient_stats(s->ctl, &st) == 0) {
			atomic_store(&s->pending, st.ckpt_pages_pending);
			atomic_store(&s->bytes, st.ckpt_bytes_written);
		}
		uint64_t left = atomic_load(&s->pending);
		pages += left;
		not_yet |= left > DCRES_MAINCKPT_TAIL_PAGES;
	}
	if (not_yet && !exact) {
		/* A caller looping on it while only the servers have work left
		 * (migration's thread) would spin. */
		struct timespec ts = { 0, NOT_YET_NAP_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	return pages * PAGE_SIZE + (not_yet ? DCRES_MAINCKPT_NOT_YET : 0);
}

/* Records err as the reason the running checkpoint will fail; returns
 * -EIO. */
static int note_failure(struct dcres_mainckpt *c, const char *err)
{
	set_state(c, DCRES_MAINCKPT_RUNNING, err);
	return -EIO;
}

int dcres_mainckpt_check(struct dcres_mainckpt *c, bool probe, char *err, size_t err_len)
{
	bool running = get_state(c) == DCRES_MAINCKPT_RUNNING;

	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		struct dcres_pager_server_info si;
		struct dcres_memstats st;
		int ret;

		if (running ? !mainckpt_server_answers(s) :
			      dcres_pager_server_info(c->cfg.pager, s->k, &si) || !si.up) {
			snprintf(err, err_len, "memory server %u (%s) is lost", s->k, s->addr);
			return running ? note_failure(c, err) : -EIO;
		}
		if (running && probe && s->ctl && (ret = dcres_memclient_stats(s->ctl, &st))) {
			snprintf(err, err_len, "memory server %u (%s) does not answer: %s", s->k,
				 s->addr, strerror(-ret));
			return note_failure(c, err);
		}
	}
	return 0;
}

/* With page-ins held: -EAGAIN, err naming it, if a page was paged in
 * since the caller last took them (the checkpoint would miss it). */
static int check_late_page_ins(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	for (uint64_t w = 0; w < (c->npages + 63) / 64; w++) {
		uint64_t bits = atomic_load(&c->paged_in[w]);
		if (bits) {
			snprintf(err, err_len, "guest page %llu was paged in after the last pass "
				 "over dirty pages; the checkpoint would miss it",
				 (unsigned long long)(w * 64 + (uint64_t)__builtin_ctzll(bits)));
			return -EAGAIN;
		}
	}
	return 0;
}

/* With page moves held: the table captured into the room begin made. */
static int capture_table(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	int ret = 0;

	for (uint64_t first = 0; first < c->npages && !ret; first += TABLE_CHUNK) {
		uint64_t n = c->npages - first < TABLE_CHUNK ? c->npages - first : TABLE_CHUNK;
		ret = dcres_pager_read_table(c->cfg.pager, first, n, c->table.host + first,
					     c->table.history + first);
	}
	if (ret)
		snprintf(err, err_len, "cannot read the page table: %s", strerror(-ret));
	return ret;
}

/* The committer thread's last word: c's final state (and error). */
static void finish(struct dcres_mainckpt *c, enum dcres_mainckpt_state state, const char *error)
{
	pthread_mutex_lock(&c->lock);
	c->committer_done = true;
	pthread_mutex_unlock(&c->lock);
	set_state(c, state, error);
}

/* Publishes main.loc: the captured table, with the servers' parts as
 * their commits described them. */
static int write_loctable(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	char path[PATH_MAX + 16];
	int ret = 0;

	for (unsigned i = 0; i < c->n && !ret; i++) {
		const struct ckpt_server *s = &c->servers[i];
		struct dcres_loc_part part = {
			.host = s->k, .pages = s->part.pages,
			.mem_size = s->part.mem.size, .mem_crc = s->part.mem.crc32c,
			.present_size = s->part.present.size, .present_crc = s->part.present.crc32c,
			.has_server_id = s->part.has_server_id,
		};

		memcpy(part.server_id, s->part.server_id, sizeof(part.server_id));
		snprintf(part.address, sizeof(part.address), "%s", s->addr);
		ret = dcres_loctable_add_part(&c->table, &part);
	}
	snprintf(path, sizeof(path), "%s/main.loc", c->status.dir);
	if (!ret)
		ret = dcres_loctable_write(path, &c->table);
	if (ret)
		snprintf(err, err_len, "cannot write %.400s: %s", path, strerror(-ret));
	return ret;
}

/* The committer thread, from the stop point on. With page moves held,
 * every server fixes its pages (final) and the table is captured; page-ins
 * go on (eviction stays held until commit: the caller's last pass over
 * its pages comes first). Then, once told to commit, every server's files
 * durable, then main.loc; told to abort, the servers' partial files go. */
static void *committer_main(void *arg)
{
	struct dcres_mainckpt *c = arg;
	char err[512];
	int ret;

	/* The poller runs on: a server that stops answering fails the step. */
	ret = mainckpt_run_step(c, STEP_FINAL, err, sizeof(err));
	if (!ret)
		ret = capture_table(c, err, sizeof(err));
	dcres_pager_hold_page_ins(c->cfg.pager, false);
	if (ret)
		set_state(c, DCRES_MAINCKPT_FAILED, err);
	pthread_mutex_lock(&c->lock);
	while (c->go == GO_WAIT)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	release_eviction(c);
	if (ret || c->go == GO_ABORT) {
		mainckpt_end_servers(c);
		dcres_loctable_free(&c->table);
		mainckpt_chain_end(c, false);
		finish(c, DCRES_MAINCKPT_FAILED, c->abort_why);
		return NULL;
	}
	ret = mainckpt_chain_write_zeros(c, err, sizeof(err));
	if (!ret)
		ret = mainckpt_run_step(c, STEP_COMMIT, err, sizeof(err));
	mainckpt_stop_poller(c);
	for (unsigned i = 0; i < c->n && !ret; i++) /* each commit's own count */
		atomic_store(&c->servers[i].bytes, c->servers[i].part.bytes_written);
	if (!ret)
		ret = write_loctable(c, err, sizeof(err));
	mainckpt_end_servers(c);
	dcres_loctable_free(&c->table);
	if (ret)
		pr_err("checkpoint into %s failed: %s", c->status.dir, err);
	mainckpt_chain_end(c, ret == 0);
	finish(c, ret ? DCRES_MAINCKPT_FAILED : DCRES_MAINCKPT_DURABLE, ret ? err : NULL);
	return NULL;
}

int dcres_mainckpt_stop_point(struct dcres_mainckpt *c, const struct dcres_mapped_ram *main_file,
			      char *err, size_t err_len)
{
	int ret;

	if (get_state(c) != DCRES_MAINCKPT_RUNNING) {
		snprintf(err, err_len, "no checkpoint is running");
		return -EINVAL;
	}
	dcres_pager_hold_eviction(c->cfg.pager, true);
	c->holding = true;
	dcres_pager_hold_page_ins(c->cfg.pager, true);
	ret = check_late_page_ins(c, err, err_len);
	mainckpt_unwatch(c);
	mainckpt_chain_stop_point(c);
	if (!ret) {
		c->table.main_file = *main_file;
		snprintf(c->table.server_dir, sizeof(c->table.server_dir), "%s", c->server_dir);
		c->go = GO_WAIT;
		c->committer_done = false;
		/* STOPPED first: a final failing at once makes it FAILED. */
		set_state(c, DCRES_MAINCKPT_STOPPED, NULL);
		if ((ret = -pthread_create(&c->committer, NULL, committer_main, c)))
			snprintf(err, err_len, "cannot start the commit thread");
	}
	c->committer_running = ret == 0;
	if (ret) {
		dcres_pager_hold_page_ins(c->cfg.pager, false);
		mainckpt_chain_end(c, false);
		set_state(c, DCRES_MAINCKPT_FAILED, err);
	}
	return ret;
}

int dcres_mainckpt_commit(struct dcres_mainckpt *c)
{
	/* A stop point whose final failed is FAILED: that commit aborts. */
	return tell_committer(c, GO_COMMIT, NULL) ? 0 : -EINVAL;
}

int dcres_mainckpt_wait(struct dcres_mainckpt *c, char *err, size_t err_len)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	while (c->committer_running && c->go == GO_COMMIT && !c->committer_done)
		pthread_cond_wait(&c->cond, &c->lock);
	ret = c->status.state == DCRES_MAINCKPT_DURABLE ? 0 : -EIO;
	if (ret)
		snprintf(err, err_len, "%s", c->status.state == DCRES_MAINCKPT_FAILED ?
			 c->status.error : "the checkpoint was not committed");
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void dcres_mainckpt_abort(struct dcres_mainckpt *c, const char *why)
{
	enum dcres_mainckpt_state state = get_state(c);

	if (tell_committer(c, GO_ABORT, why)) {
		pthread_join(c->committer, NULL);
		c->committer_running = false;
		return;
	}
	if (state != DCRES_MAINCKPT_RUNNING && state != DCRES_MAINCKPT_FAILED)
		return;
	if (c->committer_running)
		return; /* a commit under way or failed ends its servers itself */
	mainckpt_unwatch(c);
	mainckpt_end_servers(c);
	release_eviction(c);
	dcres_loctable_free(&c->table);
	if (state != DCRES_MAINCKPT_FAILED)
		set_state(c, DCRES_MAINCKPT_FAILED, why);
}

void dcres_mainckpt_status(struct dcres_mainckpt *c, struct dcres_mainckpt_status *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->status;
	pthread_mutex_unlock(&c->lock);
}

uint64_t dcres_mainckpt_server_bytes(struct dcres_mainckpt *c, unsigned k)
{
	return k >= 1 && k <= c->n ? atomic_load(&c->servers[k - 1].bytes) : 0;
}

void dcres_mainckpt_free(struct dcres_mainckpt *c)
{
	if (!c)
		return;
	dcres_mainckpt_abort(c, "the VM is going away");
	if (c->committer_running)
		pthread_join(c->committer, NULL);
	free(c->servers);
	free(c->paged_in);
	free(c->since_base);
	free(c->taken);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
