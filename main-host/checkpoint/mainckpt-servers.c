/* The memory servers' side of a checkpoint: steps run on every server in
 * parallel, progress polls (mainckpt-internal.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dcres/log.h"
#include "mainckpt-internal.h"

#define POLL_MS 100       /* between progress polls of a server */
#define WATCH_MS 100      /* between looks at the pager while a step runs */

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

/* Begin on s: its two connections, then the server's begin. */
static int begin_server(struct ckpt_server *s)
{
	int ret = connect_attached(s, &s->ctl);

	if (!ret)
		ret = connect_attached(s, &s->poll);
	if (!ret)
		ret = dcres_memclient_ckpt_begin(s->ctl, s->c->server_dir, s->k, s->c->id,
						 s->c->incremental ? s->c->base_id : NULL);
	s->begun = ret == 0;
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
		ret = begin_server(s);
		break;
	case STEP_FINAL:
		ret = dcres_memclient_ckpt_final(s->ctl);
		break;
	case STEP_COMMIT:
		ret = dcres_memclient_ckpt_commit(s->ctl, &s->part);
		if (!ret)
			s->begun = false; /* nothing left to abort */
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

bool mainckpt_server_answers(const struct ckpt_server *s)
{
	struct dcres_pager_server_info si;

	return !atomic_load(&s->unanswered) &&
	       dcres_pager_server_info(s->c->cfg.pager, s->k, &si) == 0 && si.up;
}

int mainckpt_run_step(struct dcres_mainckpt *c, enum step step, char *err, size_t err_len)
{
	static const char *const names[] = { "begin", "final", "commit" };
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
			if (!mainckpt_server_answers(s) && s->ctl && !atomic_exchange(&s->lost, true))
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
			 atomic_load(&s->lost) ? "lost (it stopped answering)" :
			 s->msg[0] ? s->msg : strerror(-ret));
	}
	return ret;
}

/* Polls every server's progress until told to stop. A poll that gets no
 * answer (within the ordinary timeout) marks its server unanswered: the
 * checkpoint treats it as lost, whatever the pager has seen of it. */
static void *poll_main(void *arg)
{
	struct dcres_mainckpt *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop_poll) {
		pthread_mutex_unlock(&c->lock);
		for (unsigned i = 0; i < c->n; i++) {
			struct ckpt_server *s = &c->servers[i];
			struct dcres_memstats st;
			if (!s->poll || atomic_load(&s->unanswered))
				continue;
			if (dcres_memclient_stats(s->poll, &st)) {
				pr_warn("memory server %u (%s): no answer to a progress poll: %s",
					s->k, s->addr, dcres_memclient_error(s->poll));
				atomic_store(&s->unanswered, true);
				pthread_mutex_lock(&c->lock);
				pthread_cond_broadcast(&c->cond);
				pthread_mutex_unlock(&c->lock);
			} else if (st.ckpt_state) {
				atomic_store(&s->bytes, st.ckpt_bytes_written);
				atomic_store(&s->pending, st.ckpt_pages_pending);
			}
		}
		pthread_mutex_lock(&c->lock);
		if (!c->stop_poll)
			wait_ms(c, POLL_MS);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int mainckpt_start_poller(struct dcres_mainckpt *c)
{
	c->stop_poll = false;
	int ret = -pthread_create(&c->poller, NULL, poll_main, c);
	c->poller_running = ret == 0;
	return ret;
}

void mainckpt_stop_poller(struct dcres_mainckpt *c)
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

void mainckpt_end_servers(struct dcres_mainckpt *c)
{
	mainckpt_stop_poller(c);
	for (unsigned i = 0; i < c->n; i++) {
		struct ckpt_server *s = &c->servers[i];
		/* A server whose checkpoint did not commit drops its partial
		 * file (it would also do so when the connection closes). */
		if (s->ctl && s->begun && dcres_memclient_ckpt_abort(s->ctl))
			pr_warn("memory server %u (%s): checkpoint abort not confirmed: %s", s->k,
				s->addr, dcres_memclient_error(s->ctl));
		s->begun = false;
		if (s->ctl)
			dcres_memclient_close(s->ctl);
		if (s->poll)
			dcres_memclient_close(s->poll);
		s->ctl = s->poll = NULL;
	}
}
