/* libdcres-mainckpt's internals, shared by its files. */
#ifndef DCRES_MAINCKPT_INTERNAL_H
#define DCRES_MAINCKPT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dcres/loctable.h"
#include "dcres/mainckpt.h"
#include "dcres/memclient.h"

enum step { STEP_BEGIN, STEP_FINAL, STEP_COMMIT };

/* What the committer thread, past the stop point, is told to do. */
enum go { GO_WAIT, GO_COMMIT, GO_ABORT };

/* One memory server of the running checkpoint: a control connection that
 * runs the steps (each in a thread of its own) and probes, and a second
 * one for progress polls. */
struct ckpt_server {
	struct dcres_mainckpt *c;
	unsigned k;                   /* 1..n, the pager's numbering */
	char addr[256];
	struct dcres_memclient *ctl, *poll;
	bool begun;                   /* its begin succeeded, not ended since */
	enum step step;
	int ret;                      /* of the last step */
	char msg[256];                /* the server's explanation of a refusal */
	_Atomic bool lost;            /* lost during the step (ctl shut down) */
	_Atomic bool unanswered;      /* a progress poll got no answer */
	_Atomic bool done;
	_Atomic uint64_t bytes;       /* written for this checkpoint */
	_Atomic uint64_t pending;     /* pages it still has to write */
	struct dcres_ckpt_part part;  /* what its commit published */
	pthread_t thread;
};

struct dcres_mainckpt {
	struct dcres_mainckpt_config cfg;
	char root[PATH_MAX];
	uint64_t npages;
	unsigned n;
	struct ckpt_server *servers;
	char server_dir[PATH_MAX];    /* the directory as the servers name it */
	char main_path[PATH_MAX + 256]; /* main.mem in it */

	pthread_mutex_t lock;         /* with cond: state, status, step reports */
	pthread_cond_t cond;
	struct dcres_mainckpt_status status;

	bool watching;                /* its watcher is the pager's */
	_Atomic bool tracking;        /* page moves go to paged_in, left_main */
	_Atomic uint64_t *paged_in;   /* bitmap: paged in since the last take */

	struct dcres_loctable table;  /* captured at the stop point */
	bool holding;                 /* eviction held since the stop point */

	bool stop_poll;
	pthread_t poller, committer;  /* committer: from the stop point on */
	bool poller_running, committer_running;
	enum go go;                   /* with lock: the committer's orders */
	char abort_why[256];          /* with GO_ABORT */
	bool committer_done;          /* with lock: it has set the final state */

	/* Chains (mainckpt-chain.c). The main host's pages touched since
	 * base's stop point are since_base | taken | what the pager has
	 * touched since the last take. */
	uint8_t id[16];               /* of the running or last checkpoint */
	bool incremental;             /* it builds on base_id */
	bool has_base;                /* a checkpoint was made durable */
	uint8_t base_id[16];          /* the last one made durable */
	uint64_t *since_base;         /* touched from base's stop point on */
	uint64_t *taken;              /* touched up to the running one's stop
				       * point (merged into since_base unless
				       * it becomes durable) */
};

/* mainckpt-servers.c: whether s answers: the pager has not lost it and no
 * progress poll of it went unanswered. */
bool mainckpt_server_answers(const struct ckpt_server *s);
/* Runs step on every server in parallel and waits for all; a server that
 * stops answering meanwhile has its request cut short.
 * The first failure is described in err, naming the server. */
int mainckpt_run_step(struct dcres_mainckpt *c, enum step step, char *err, size_t err_len);
/* Starts and stops the progress poller (every server's bytes, pending,
 * and whether it answers). */
int mainckpt_start_poller(struct dcres_mainckpt *c);
void mainckpt_stop_poller(struct dcres_mainckpt *c);
/* Aborts the checkpoint on every server that began it; closes all. */
void mainckpt_end_servers(struct dcres_mainckpt *c);

/* mainckpt-chain.c: at begin, checks that parent (NULL: a full
 * checkpoint) is the last durable checkpoint and gives the new one an id;
 * -ESTALE naming both otherwise. */
int mainckpt_chain_begin(struct dcres_mainckpt *c, const uint8_t *parent, char *err,
			 size_t err_len);
/* Writes the running checkpoint's ids into t. */
void mainckpt_chain_ids(const struct dcres_mainckpt *c, struct dcres_loctable *t);
/* At the stop point (the caller has noted the dirty log): the pages
 * touched up to it. */
void mainckpt_chain_stop_point(struct dcres_mainckpt *c);
/* After a stop point: the checkpoint became durable (the next builds on
 * it) or failed (the next builds on the one before). */
void mainckpt_chain_end(struct dcres_mainckpt *c, bool durable);
/* For an increment, once QEMU has written main.mem: every page the table
 * places here that changed since the parent but has no copy in main.mem
 * (QEMU found it zero and left it out) is written there as a zero page,
 * its bit set, so that a clear bit only ever means "in the parent"; the
 * file is then fsynced. 0, or a negative errno described in err. */
int mainckpt_chain_write_zeros(struct dcres_mainckpt *c, char *err, size_t err_len);

/* mainckpt-moves.c: watching the pager's page moves while tracking. */
int mainckpt_watch(struct dcres_mainckpt *c);
void mainckpt_unwatch(struct dcres_mainckpt *c);

#endif
