/* dcres-restore internals: the state of one run and the steps that fill it
 * (DESIGN.md §6). main.c runs the steps in order; each other file holds
 * one concern. Functions return 0 or a negative errno and log one line
 * naming what failed (file, page, host, QMP command and QEMU's error). */
#ifndef DCRES_RESTORE_TOOL_H
#define DCRES_RESTORE_TOOL_H

#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dcres/auth.h"
#include "dcres/ckptdir.h"
#include "dcres/memclient.h"
#include "dcres/memfile.h"
#include "dcres/plan.h"
#include "dcres/qmp.h"
#include "dcres/uuid.h"

#define RST_PAGE_SIZE DCRES_CKPT_PAGE_SIZE
#define RST_MAX_HOSTS (1 + DCRES_PLAN_MAX_SUBS) /* the main host and its subs */
#define RST_POLL_MS 200
#define RST_CONNECT_MS 5000  /* to reach a memory server */
#define RST_MAX_SOURCES (2 * RST_MAX_HOSTS) /* --hosts' subs and --replica-hosts */

/* Set by the SIGINT/SIGTERM handler (main.c). */
extern volatile sig_atomic_t rst_interrupted;

/* The command line. */
struct rst_opts {
	const char *ckpt;          /* DIR as given */
	bool lazy;
	bool wait_loaded;
	bool json;
	const char *psk_path;      /* NULL: none given */
	const char *replica_hosts; /* more servers that may hold copies, or NULL */
	const char *ckpt_root;
	const char *qemu;          /* resolved: --qemu, $DCRES_QEMU or the default */
	const char *qmp_path;      /* NULL: RUN/qmp.sock */
	const char *run_dir;       /* NULL: /run/dcres/restore-<uuid> */
	const char *flat_dir;      /* NULL: /var/tmp/dcres-flat-<uuid> */
	unsigned timeout_s;
	char **qemu_args;          /* after "--" */
	int nqemu_args;
};

/* One host of the target set: hosts[0] is the main host, hosts[k] sub-host
 * k (a memory server). */
struct rst_host {
	char name[256];            /* as given in --hosts */
	bool has_capacity;         /* --capacity named it */
	uint64_t capacity;         /* pages it may hold (the plan's) */
	unsigned same_as;          /* subs: the checkpoint's server it is, or 0 */
	struct dcres_memclient *c; /* subs: attached to the VM (servers.c) */
	bool has_id;               /* subs: the server reported its id */
	uint8_t id[16];
	bool dirty;                /* subs: this run may have stored pages there */
	uint64_t pages;            /* pages the plan puts there */
	uint64_t moved_in;         /* of those, pages coming from another host */
	atomic_uint_least64_t loaded; /* pages loaded (lazy: registered) so far
				    * (subs: load.c) */
	uint64_t lazy_pages;       /* subs, lazy: pages registered, loaded later */
	bool has_pending;          /* pending_at_resume known */
	uint64_t pending_at_resume;/* pages still to load when the VM resumed */
	int64_t loader_ms;         /* subs: what its loader thread took (lazy:
				    * registering the pages) */
	bool has_load_ms;
	int64_t load_ms;           /* until its pages were in; lazy: from the
				    * resume on */
};

/* A memory server asked for copies of the checkpoint's parts (locate.c):
 * the subs of --hosts, then those of --replica-hosts. */
struct rst_source {
	char name[256];            /* HOST:PORT */
	unsigned host;             /* its index in hosts, 0 when not a target */
	bool reachable;
	bool holds[256];           /* [K]: a copy of host K's part that matches the
				    * manifest ([0]: the main host's files) */
	char trouble[256][160];    /* [K]: why its copy of part K is not used */
};

/* Everything one run learns and does. */
struct rst_run {
	struct rst_opts opts;
	struct rst_host hosts[RST_MAX_HOSTS];
	unsigned nhosts;           /* 1 + number of subs */

	/* The checkpoint (verify.c). */
	char dir[PATH_MAX];        /* absolute, symlinks resolved */
	struct ckptdir cd;         /* its manifest, main.loc, main.mem (open) */
	uint8_t uuid[16];
	char uuid_str[DCRES_UUID_STR_LEN];
	uint64_t ram_size;
	bool increment;            /* DIR is incremental: a chain (chain.c) */
	char flat_dir[PATH_MAX];   /* the chain flattened (made here), or "" */
	unsigned chain_layers;
	uint64_t resident_pages;   /* pages DIR's main.loc places on the main host */
	char root[PATH_MAX];       /* --ckpt-root, symlinks resolved */
	char rel_dir[PATH_MAX];    /* dir relative to root: the servers' name for it */

	/* Where the parts are (locate.c). */
	struct rst_source sources[RST_MAX_SOURCES];
	unsigned nsources;
	char main_from[256];       /* the server the main host's files came from, "" */
	bool local[256];           /* [K]: DIR itself has host K's files (shared) */

	/* Set-up (setup.c). */
	struct dcres_psk psk;
	char psk_file[PATH_MAX];   /* what QEMU gets as psk-file */
	char run_dir[PATH_MAX];
	char plan_path[PATH_MAX];
	char log_path[PATH_MAX];
	char qmp_path[PATH_MAX];
	char stage_dir[PATH_MAX];  /* RUN/parts: what QEMU reads its pages from */

	/* The plan (planning.c). */
	struct dcres_plan plan;
	bool planned;

	/* QEMU (qemu.c, incoming.c). */
	pid_t qemu_pid;            /* 0: none running */
	int64_t qemu_started_at;   /* when it was started */
	struct dcres_qmp *qmp;

	/* Results; times are CLOCK_MONOTONIC milliseconds. */
	int64_t started_ms;
	int64_t verify_ms, flatten_ms, plan_ms, servers_load_ms, main_load_ms;
	int64_t qemu_start_ms;     /* from starting QEMU until its QMP answered */
	int64_t resume_ms;         /* what cont took */
	int64_t time_to_run_ms;
	bool has_loaded_ms;
	int64_t loaded_ms;         /* from the start until nothing was pending */
	bool has_pending;          /* QEMU reports restore-pending */
	uint64_t pending_at_resume;
	uint64_t zero_pages;
	uint64_t pages_moved;
};

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t rst_now_ms(void);
/* Sleeps ms milliseconds, returning early when interrupted. */
void rst_nap(int ms);
/* Fails with -EINTR (logged) once SIGINT or SIGTERM came. */
int rst_check_interrupt(void);

/* hosts.c: --hosts and --capacity. */
/* Fills r->hosts and r->nhosts from "MAIN,SUB1,..." (names unique, subs
 * HOST:PORT); 0, or -EINVAL after a message on stderr. */
int hosts_parse(struct rst_run *r, const char *arg);
/* Sets the capacities of "HOST=SIZE,..." (keys are --hosts entries, sizes
 * bytes with K, M, G or T suffixes, rounded down to pages); 0, or -EINVAL
 * after a message on stderr. */
int hosts_parse_capacity(struct rst_run *r, const char *arg);

/* verify.c: the checkpoint, before anything else happens. */
/* Opens DIR (its manifest required) and main.loc, checks they agree,
 * verifies the checksums of the main host's files the manifest lists and
 * opens main.mem and main.present (if listed). With --lazy and a
 * main.present, main.mem's size only is checked (its pages are checked as
 * they load). The memory servers' files are not read here: their
 * servers check them (locate.c). An incremental DIR only has its manifest
 * read (r->increment set): chain_flatten opens the rest. */
int verify_checkpoint(struct rst_run *r);
/* Like verify_checkpoint of dir, read in place of DIR (a flattened chain);
 * without checksums, the main host's files are not read to check them
 * (they were just written and made durable here). */
int verify_open(struct rst_run *r, const char *dir, bool checksums);
/* Pages table t places on the main host: the old VM's resident set. */
uint64_t verify_resident(const struct dcres_loctable *t);
/* Releases what verify_checkpoint holds (safe after a failure). */
void verify_close(struct rst_run *r);

/* chain.c: an incremental checkpoint. */
/* Opens DIR's chain (every layer's files read from its own directory
 * and verified, each parent where its child's manifest says, with the
 * recorded id and manifest CRC; servers' parts not in a layer's
 * directory fetched whole through the sources or the servers its
 * manifest names), flattens it into a new directory (--flat-dir; a full
 * checkpoint, every page on the main host, the newest access history) and
 * opens that in DIR's place; r->resident_pages stays DIR's resident set.
 * A missing or mismatched parent, a part no server holds or an existing
 * flat directory is refused naming them; nothing is released or started
 * then. */
int chain_flatten(struct rst_run *r);
/* Removes the flattened chain this run made (after a failure: once the
 * VM runs, it may read it). */
void chain_remove(struct rst_run *r);

/* setup.c: paths and keys. */
/* Resolves --ckpt-root and DIR (made, mode 0700, when missing and servers
 * are named: its files may come from a copy) relative to it, and loads
 * --psk (required when servers are named; DIR must then be below the
 * root). Contacts nothing. */
int setup_paths(struct rst_run *r);
/* Creates the run directory (0700) and sets the plan, log and QMP paths;
 * refuses a QMP socket a live process still answers on. Without --psk,
 * writes a throw-away key there for QEMU's psk-file. */
int setup_run_dir(struct rst_run *r);

/* locate.c: where each part of the checkpoint is. */
/* Fills r->sources from --hosts' subs and --replica-hosts ("A,B,..."),
 * each listed once; 0, or -EINVAL after a message on stderr. */
int locate_parse(struct rst_run *r, const char *replica_hosts);
/* When DIR has no manifest, fetches the main host's files (manifest,
 * main.loc, main.mem, main.present when it lists one) from the first
 * source holding a copy that checks out against the manifest fetched with
 * it; a damaged copy is named and the next one tried. Nothing when DIR
 * has its manifest. */
int locate_main_files(struct rst_run *r);
/* Asks every source, in parallel, which copies of the servers' parts it
 * holds (the server reads and checks them); the servers the manifest
 * names (where parts were saved and copied) are asked too. A copy that
 * does not match the manifest is named and not used. A part no source
 * holds, and DIR does not have either (a shared directory), is refused,
 * naming the part, the servers asked and the replicas the manifest
 * records; nothing has been started then. */
int locate_parts(struct rst_run *r);
/* The source to take host src's part from for sub-host k: k itself when
 * it holds a copy, otherwise a holder (spread over them by k). */
const struct rst_source *locate_holder(const struct rst_run *r, unsigned k, unsigned src);
/* Writes r->stage_dir: links to main.mem, main.loc and main.present (when
 * the checkpoint has one; none left otherwise), and for every
 * server part the plan takes pages from for this host, a memory and
 * presence file holding only those pages, served by a holder. */
int locate_stage_main(struct rst_run *r);

/* servers.c: the memory servers (sub-hosts). */
/* Connects to every sub, attaches to the VM (not exclusively), learns its
 * id and sets each sub's capacity from its free pages and the VM's old ones there,
 * which servers_drop_old will release (lowered by --capacity). Nothing is
 * released yet: an infeasible plan leaves every server as it was. */
int servers_prepare(struct rst_run *r);
/* Releases the VM's old pages on every sub (after planning). */
int servers_drop_old(struct rst_run *r);
/* Drops the VM's pages from every sub this run may have stored some on
 * (best effort: failures are logged), reconnecting when needed and
 * retrying a while when the QEMU this run ended is still attached there. */
void servers_release(struct rst_run *r);
/* Closes every connection (a later servers_release reconnects). */
void servers_close(struct rst_run *r);
/* Lazy, once the VM runs: reconnects to every sub with registered pages,
 * records how many it has still to load (pending_at_resume) and has it
 * load them in the background. */
int servers_start_loading(struct rst_run *r);
/* Fills *pending and *bad with the pages sub k has still to load and, of
 * those, the ones that failed their check. */
int servers_pending(struct rst_run *r, unsigned k, uint64_t *pending, uint64_t *bad);

/* planning.c: the plan. */
/* Sets the main host's capacity and every sub's same_as, makes the plan
 * (an infeasible one is refused naming the hosts and the numbers) and
 * writes it to r->plan_path. Fills the hosts' pages and moved_in. */
int planning_make(struct rst_run *r);

/* load.c: the sub-hosts' share. */
/* Loads every sub's planned pages, one thread per sub: from its own copy
 * of a part by the server itself, from another server's copy server to
 * server, from main.mem through this tool. With --lazy, only the pages
 * from main.mem are sent now: the others are registered, hottest first,
 * for the server to read when asked and load once servers_start_loading
 * says so. Shows progress; on failure every thread stops early. */
int load_servers(struct rst_run *r);

/* qemu.c: the QEMU process. */
/* Starts QEMU detached (own session, stdin /dev/null, output to the log)
 * with -incoming defer and the dcres-split object of the plan; r->qemu_pid
 * set. */
int qemu_start(struct rst_run *r);
/* Whether QEMU still runs; when it has exited, logs how and the tail of
 * its log, and clears r->qemu_pid. */
bool qemu_alive(struct rst_run *r);
/* Ends QEMU (SIGTERM, then SIGKILL after a few seconds) and reaps it. */
void qemu_kill(struct rst_run *r);
/* Logs the last lines of QEMU's log (error level). */
void qemu_log_tail(const struct rst_run *r);

/* incoming.c: the main host's share, through QMP. */
/* Connects to QMP, starts migrate-incoming from main.mem, waits for it to
 * complete (with progress), resumes the VM and, with --lazy
 * --wait-loaded, waits until no page is pending. Fills the times. */
int incoming_run(struct rst_run *r);

/* progress.c: one line of progress on stderr. */
/* Shows how many pages each sub has loaded out of its planned ones. */
void progress_servers(const struct rst_run *r);
/* Shows the main host's migration: status and, when QEMU reports them,
 * pages loaded and pending. */
void progress_main(const struct rst_run *r, const char *status, bool has_counts,
		   uint64_t loaded, uint64_t pending);
/* Ends the progress line (a newline on a terminal); idempotent. */
void progress_end(void);

/* summary.c: prints the run's summary to stdout (JSON with --json). */
void summary_print(const struct rst_run *r);

#endif
