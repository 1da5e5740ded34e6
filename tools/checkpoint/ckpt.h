/* dcres-checkpoint internals: the state of one run and the steps that
 * fill it (DESIGN.md §5). main.c runs the steps in order; each other file
 * holds one concern. Functions return 0 or a negative errno and log one
 * line naming what failed (host, file, QMP command and QEMU's error). */
#ifndef DCRES_CKPT_TOOL_H
#define DCRES_CKPT_TOOL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dcres/auth.h"
#include "dcres/loctable.h"
#include "dcres/qmp.h"

#define CKPT_PAGE_SIZE 4096
#define CKPT_POLL_MS 200
/* Polls that end the VM's stop: the completed migration is seen, the VM
 * resumed, within this. */
#define CKPT_FAST_POLL_MS 20
#define DEFAULT_MAX_DOWNTIME_MS 20
#define DEFAULT_LOST_TIMEOUT_S 5
#define DEFAULT_KEEP 5
/* Once interrupted, how long a QMP answer may take: the tool returns
 * within seconds. */
#define INTERRUPTED_REPLY_TIMEOUT_MS 3000
#define DURABLE_TIMEOUT_MS 600000 /* servers fsync, main.loc written */
#define CKPT_MAX_SERVERS 254 /* host ids 1..254 */

/* Set by the SIGINT/SIGTERM handler (main.c). */
extern volatile sig_atomic_t ckpt_interrupted;

/* The command line. */
struct ckpt_opts {
	const char *qmp_path;
	const char *dir;      /* as given */
	bool live;
	bool direct_io;
	bool conventional;
	bool json;
	unsigned parallel;    /* migration channels; 1: no multifd */
	unsigned max_downtime_ms; /* QEMU's downtime-limit while it runs */
	unsigned lost_timeout_s;  /* a server out of reach this long fails it */
	unsigned replicas;    /* copies of every part on other hosts */
	const char *psk_path; /* the memory servers' key (needed for replicas) */
	const char *parent;   /* --parent: incremental on this checkpoint */
	bool incremental;     /* on the newest checkpoint beside dir */
	unsigned every_s;     /* periodic: a checkpoint into chain every_s */
	const char *chain;
	unsigned keep;        /* checkpoints of the chain kept */
	unsigned full_every;  /* every K-th is full; 0: only the first */
	bool quiet;           /* no progress line (the periodic service's runs) */
};

/* A file of the checkpoint with its size and CRC-32C. */
struct ckpt_file_sum {
	char name[32];
	uint64_t size;
	uint32_t crc;
};

/* One copy of a part made after the checkpoint (replicate.c). */
struct ckpt_replica {
	unsigned part;        /* 0: the main host's files, K: memory server K's */
	unsigned target;      /* the memory server receiving it (1..) */
	int ret;              /* 0: published there */
	char error[PATH_MAX + 512];
	uint64_t bytes;       /* sent */
	int64_t ms;           /* how long it took */
};

/* A memory server of a split VM, as query-dcres reports it. */
struct ckpt_server {
	char address[256];    /* HOST:PORT */
	bool connected;
	uint64_t pages;       /* pages the VM keeps on it */
	bool has_ckpt_bytes;  /* ckpt-bytes is new in the patched QEMU */
	uint64_t ckpt_bytes;  /* bytes it wrote for the running or last checkpoint */
};

/* One query-dcres answer. */
struct ckpt_dcres {
	char id[128];         /* the dcres-split object's */
	bool has_ram_size;
	uint64_t ram_size;
	uint64_t page_ins;
	uint64_t page_outs;
	char checkpoint_dir[PATH_MAX]; /* "" when QEMU does not say */
	char checkpoint_state[16];     /* "running", ..., "durable", "failed" */
	char checkpoint_error[512];
	unsigned nservers;
	struct ckpt_server servers[CKPT_MAX_SERVERS];
};

/* One query-migrate answer. */
struct ckpt_migration {
	char status[32];      /* "" before any migration */
	char error[PATH_MAX + 512];      /* error-desc of a failed migration */
	bool has_times;       /* total-time and downtime (once completed) */
	uint64_t total_time_ms;
	uint64_t downtime_ms;
	uint64_t normal_pages;
	uint64_t normal_bytes;
	uint64_t transferred;
	uint64_t remaining;
};

/* A qcow2 disk attached to the VM. */
struct ckpt_disk {
	char device[256];     /* block backend name, or the root node name */
	char file[PATH_MAX];  /* its qcow2 image as QEMU names it, "" if not a plain file */
	bool snapshotted;     /* this run took its internal snapshot */
};

/* Migration settings as they were before the run, put back at its end. */
struct ckpt_settings {
	bool valid;
	bool mapped_ram, multifd, conventional;
	bool has_max_bandwidth, has_multifd_channels, has_downtime_limit;
	uint64_t max_bandwidth, multifd_channels, downtime_limit;
	bool direct_io;
};

/* Everything one run learns and does. */
struct ckpt_run {
	struct ckpt_opts opts;
	struct dcres_qmp *qmp;
	char dir[PATH_MAX];        /* absolute */
	char mem_path[PATH_MAX];   /* dir/main.mem */
	char loc_path[PATH_MAX];   /* dir/main.loc */
	char present_path[PATH_MAX]; /* dir/main.present */

	/* The VM, before the checkpoint. */
	bool was_running;
	uint8_t uuid[16];
	char qemu_version[256];
	uint64_t ram_size;
	bool split;                /* it has a dcres-split object */
	bool has_conventional_cap; /* QEMU knows dcres-conventional */
	struct ckpt_settings saved;
	struct ckpt_dcres before;  /* query-dcres right before migrate */
	struct ckpt_dcres after;   /* query-dcres at completion */

	/* What this run did (for the cleanup on failure). */
	bool created_dir;          /* DIR did not exist before */
	int dir_lock_fd;           /* DIR, locked for this run (-1: not yet) */
	bool stopped;              /* it issued stop */
	bool migrate_started;      /* main.mem (and main.loc) are this run's */
	bool completed;            /* the migration completed */
	bool resumed;              /* it issued cont */
	struct ckpt_migration mig; /* the last query-migrate */
	struct ckpt_disk *disks;
	unsigned ndisks;
	char snapshot[300];        /* disk snapshot name, "" without qcow2 disks */

	/* Results. */
	bool dcres_mode;           /* QEMU made a D-CRES checkpoint into dir durable */
	uint64_t main_pages;
	uint64_t server_pages[CKPT_MAX_SERVERS];
	struct dcres_loc_part *parts; /* each server's part, from main.loc (nparts) */
	unsigned nparts;
	char server_dir[DCRES_LOC_TEXT_MAX]; /* the servers' name of DIR */
	struct ckpt_file_sum main_files[3];  /* main.mem, main.loc, main.present */
	unsigned nmain_files;
	uint8_t ckpt_id[16];       /* from main.loc */
	bool has_parent;           /* incremental on parent_dir */
	char parent_dir[PATH_MAX];
	uint8_t parent_id[16];
	uint32_t parent_manifest_crc;
	struct dcres_psk psk;
	struct ckpt_replica *replicas;
	unsigned nreplicas;
	int64_t replicated_ms;     /* replication's end (0: none) */
	int64_t started_ms;        /* CLOCK_MONOTONIC */
	int64_t durable_ms;        /* every file of the checkpoint fsynced */
	int64_t finished_ms;
	time_t created;            /* when the migration completed */
	bool has_paused;
	int64_t paused_ms;         /* STOP to RESUME, from QEMU's event times */
};

/* Sleeps ms milliseconds, returning early when interrupted. */
void ckpt_nap(int ms);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t ckpt_now_ms(void);

/* Runs one QMP command (args consumed, see dcres_qmp_execute); logs a
 * failure with QEMU's class and desc. *ret may be NULL. */
int ckpt_qmp(struct ckpt_run *r, const char *command, struct json_object *args,
	     struct json_object **ret);

/* vm.c: the VM's state. */
/* Fills was_running, uuid, qemu_version, split, ram_size (query-status,
 * query-uuid, query-version, query-dcres, query-memory-size-summary) and
 * refuses a VM that is already migrating. */
int vm_query(struct ckpt_run *r);
/* Fills *d from query-dcres (split VMs only). */
int vm_query_dcres(struct ckpt_run *r, struct ckpt_dcres *d);
/* QEMU's run state ("running", "paused", "postmigrate", ...) into status. */
int vm_status(struct ckpt_run *r, char *status, size_t len);
/* A D-CRES checkpoint (split VM, not conventional): waits until QEMU
 * reports the checkpoint into r->dir durable (dcres_mode set, the servers
 * in r->after updated) or failed (-EIO, naming why); a no-op otherwise. */
int vm_wait_durable(struct ckpt_run *r);
/* Whether the servers' ckpt-bytes in d are about this run's checkpoint:
 * not in conventional mode (the servers save nothing), and QEMU's
 * checkpoint-dir, when it gives one, is r->dir (not an earlier one). */
bool vm_dcres_is_ours(const struct ckpt_run *r, const struct ckpt_dcres *d);
/* Stops the VM (r->stopped set). */
int vm_stop(struct ckpt_run *r);
/* Resumes the VM (r->resumed set) and measures the pause from QEMU's STOP
 * and RESUME events. */
int vm_resume(struct ckpt_run *r);
/* After a failure: resumes the VM if this run stopped it (its own stop or a
 * completed migration) and nothing else keeps it paused, such as a memory
 * server QEMU lost (a DCRES_SERVER_LOST event without its
 * DCRES_SERVER_BACK, or a server query-dcres shows disconnected); says
 * what it did or why not. */
void vm_undo_stop(struct ckpt_run *r);

/* migrate.c: the migration into main.mem. */
/* Sets the migration capabilities and parameters for the options,
 * remembering the previous ones. */
int migrate_setup(struct ckpt_run *r);
/* Puts back the capabilities and parameters migrate_setup changed
 * (best effort: failures are warnings). */
void migrate_restore_settings(struct ckpt_run *r);
/* Issues migrate to file:dir/main.mem (r->migrate_started set). */
int migrate_start(struct ckpt_run *r);
/* Polls until the migration completes, showing progress; fails on status
 * failed or cancelled with QEMU's error, and cancels the migration when
 * interrupted (-EINTR). Fills r->mig, r->after and r->completed. */
int migrate_wait(struct ckpt_run *r);
/* Fills *m from query-migrate. */
int migrate_query(struct ckpt_run *r, struct ckpt_migration *m);

/* progress.c: one line of progress on stderr. */
/* Shows the progress of r's migration (throttled to about once a second
 * when stderr is not a terminal). */
void progress_show(const struct ckpt_run *r, const struct ckpt_migration *m,
		   const struct ckpt_dcres *d);
/* Ends the progress line (a newline on a terminal); idempotent. */
void progress_end(void);

/* disk.c: qcow2 disks. */
/* Finds the writable qcow2 disks (query-block) into r->disks. */
int disk_find(struct ckpt_run *r);
/* Reactivates the block nodes and takes snapshot r->snapshot of every
 * qcow2 disk (nothing without qcow2 disks). */
int disk_snapshot(struct ckpt_run *r);
/* Deletes the snapshots this run took (after a failure). */
void disk_undo(struct ckpt_run *r);

/* files.c: the checkpoint directory. */
/* Makes r->dir absolute, refuses a directory holding a manifest, creates
 * it (mode 0700), sets the file paths, and takes it: an exclusive lock
 * (another dcres-checkpoint into it is -EBUSY) and no file of an earlier
 * checkpoint there (main.*, host-K.*, partial files: -EEXIST, left
 * intact). */
int files_prepare(struct ckpt_run *r);
/* Counts the pages each host stored: with main.loc, punches stale copies
 * out of main.mem, counts its bitmap and takes every server's part from
 * main.loc (what its final reported: no server file is read); without,
 * main's pages are QEMU's normal pages. */
int files_count_pages(struct ckpt_run *r);
/* fsyncs main.mem (QEMU does not; the memory servers fsynced theirs before
 * the migration completed) and notes the time: the checkpoint's data is
 * durable from then on. */
int files_sync_main(struct ckpt_run *r);
/* A D-CRES checkpoint (main.loc exists): publishes main.present, the
 * CRC-32C of each page main.mem holds for the main host (read back from
 * main.mem), so that a restore checks each page as it loads it; a no-op
 * in conventional mode. */
int files_write_main_present(struct ckpt_run *r);
/* After a failure: removes main.mem, main.loc and main.present if this
 * run started a migration (and, for a D-CRES checkpoint, the
 * host-K.mem/.present files servers may have published in DIR before
 * another part failed), and DIR if this run created it and it is empty. */
void files_remove(struct ckpt_run *r);
/* Formats dir/host-K.suffix into out (PATH_MAX bytes); -ENAMETOOLONG
 * (logged) if it does not fit. */
int files_host_path(const struct ckpt_run *r, unsigned k, const char *suffix, char *out);

/* parent.c: incremental checkpoints. */
/* With --parent or --incremental, after vm_query: finds the parent (the
 * newest checkpoint beside DIR for --incremental), checks it is a D-CRES
 * checkpoint of this VM, and notes its id and manifest CRC. */
int parent_find(struct ckpt_run *r);
/* Whether dir holds a manifest, i.e. is a checkpoint. */
bool parent_is_checkpoint(const char *dir);
/* Before migrate: sets the dcres-split object's ckpt-parent (a no-op
 * for a full checkpoint). */
int parent_tell_qemu(struct ckpt_run *r);
/* Notes the checkpoint's id from its main.loc and checks that it builds
 * on the parent asked for (or on nothing). */
int parent_check_loc(struct ckpt_run *r, const struct dcres_loctable *loc);

/* manifest-out.c: writes DIR/manifest for the run (atomically), the
 * servers' files as their parts describe them, and the replicas made so
 * far (r->replicas). */
int manifest_out(struct ckpt_run *r);

/* replicate.c: copies of the parts on other hosts, after the checkpoint. */
/* Refuses --replicas N the VM's memory servers cannot hold with no two
 * copies of a part on one host (before anything starts), and loads the
 * key. */
int replicate_check(struct ckpt_run *r);
/* Copies every part to opts.replicas other hosts, in parallel, server to
 * server (the main host's files from here), rewrites the manifest naming
 * the copies made and sends it with the main host's files. A copy that
 * fails is recorded in r->replicas (and logged); the checkpoint stays
 * valid. Returns 0 when every copy was made, -EIO otherwise. */
int replicate_run(struct ckpt_run *r);
/* How many hosts the checkpoint may lose: the fewest copies of a part
 * beyond the first. */
unsigned replicate_survivable(const struct ckpt_run *r);

/* main.c: one checkpoint as the command line o describes (o->dir);
 * returns the exit status. */
int ckpt_run_once(const struct ckpt_opts *o);

/* periodic.c: --every: checkpoints into o->chain until SIGTERM or
 * SIGINT (a checkpoint under way is finished or aborted, never left half
 * published), keeping o->keep of them restorable; returns the exit
 * status: 0 when stopped by a signal between checkpoints or after one. */
int periodic_run(const struct ckpt_opts *o);

/* summary.c: prints the run's summary to stdout (JSON with --json). */
void summary_print(const struct ckpt_run *r);

#endif
