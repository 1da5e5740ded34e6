/* dcres-inspect internals (see dcres-inspect.c for the tool, DESIGN.md §5
 * for the files it reads). One run fills a struct inspect: facts about
 * the checkpoint (facts.c) and a list of checks, each OK, failed with its
 * error messages, or skipped because something it needs failed first
 * (report.c). structure.c, checksums.c and disk.c add the checks;
 * print-text.c and print-json.c show the result. */
#ifndef DCRES_INSPECT_H
#define DCRES_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/ckptdir.h"
#include "dcres/ckptview.h"

/* History buckets: 0, 1-15, 16-63, 64-127, 128-255 (the top bit: hot). */
#define INSP_BUCKETS 5
extern const uint8_t insp_bucket_min[INSP_BUCKETS];
extern const char *const insp_bucket_name[INSP_BUCKETS];

/* Where a check belongs in the report. */
enum insp_section {
	INSP_STRUCTURE, /* manifest, main.loc, main.mem, servers, placement */
	INSP_CHECKSUM,  /* one per file the manifest lists */
	INSP_PAGES,     /* per-page CRCs of one memory file (main.mem, host-K.mem) */
	INSP_DISK,      /* one per qcow2 image */
};

enum insp_state { INSP_OK, INSP_FAILED, INSP_SKIPPED };

/* One check and its outcome. */
struct insp_check {
	enum insp_section section;
	char *name;              /* what was checked: a file name or a topic */
	enum insp_state state;
	char *detail;            /* OK: what was found; SKIPPED: why (may be NULL) */
	char **errors;           /* FAILED: one line each, naming file (and page) */
	size_t nerrors;
	struct insp_check *next;
};

/* One host of the checkpoint, as the manifest and the files describe it. */
struct insp_host {
	unsigned id;             /* 0 main host, 1.. memory servers */
	const char *address;     /* from the manifest, or NULL */
	const char *mem_file;    /* its memory file's name in the directory */
	bool has_saved, has_stored;
	uint64_t pages_saved;    /* the manifest's count */
	uint64_t pages_stored;   /* set bits in main.mem's bitmap / the presence file */
	uint64_t pages_placed;   /* pages main.loc places on it */
	uint64_t hot_pages;      /* ... of which hot (history top bit set) */
};

/* A page whose CRC does not match its presence file. */
struct insp_bad_page {
	char *file;              /* the memory file's name in the directory */
	uint64_t page;
};

/* What the manifest's disk snapshot is known to be in one image. */
enum insp_snap { INSP_SNAP_NONE, INSP_SNAP_UNKNOWN, INSP_SNAP_MISSING };

/* One qcow2 image and what libqcow says of it. */
struct insp_disk {
	char *file;
	bool from_manifest;      /* listed in the manifest's disk_files */
	bool opened;             /* libqcow opened it and read its header */
	uint32_t format_version;
	uint64_t media_size;
	uint32_t encryption;     /* LIBQCOW_ENCRYPTION_METHOD_* */
	int nsnapshots;
	char *backing_file;      /* NULL without one */
	enum insp_snap snapshot; /* INSP_SNAP_NONE: the manifest names none */
	struct insp_check *check;
};

/* One run. */
struct inspect {
	const char *dir;         /* what is read: DIR, or the view of it */
	const char *given_dir;   /* DIR as given */
	bool json, verify;
	struct ckptview_opts remote; /* --psk, --ckpt-root, --servers */
	struct ckptview view;    /* the servers' parts fetched through them */
	const char **disk_args;  /* the --disk files */
	size_t ndisk_args;

	struct ckptdir c;
	bool dir_opened;         /* ckptdir_init was called: close c */
	bool conventional;       /* the manifest lists no main.loc */

	char **chain;            /* an increment's layers, newest first (the dirs
				  * as found), once its chain opened */
	unsigned nchain;

	struct insp_host *hosts;
	unsigned nhosts;
	bool have_loc_facts;     /* main.loc read: the counts below are valid */
	uint64_t zero_pages;     /* never written */
	uint64_t main_zero;      /* placed on main, absent from main.mem: zero pages */
	uint64_t buckets[INSP_BUCKETS];

	struct insp_check *checks, **checks_tail;
	struct insp_bad_page *bad;
	size_t nbad;
	struct insp_disk *disks;
	size_t ndisks;
};

/* report.c: checks. */
/* Routes dcres log lines through the capture below (call once). */
void insp_log_init(void);
/* Appends a new check (state OK) to in; exits on allocation failure. */
struct insp_check *insp_check_new(struct inspect *in, enum insp_section section,
				  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Makes the error lines the calling thread logs from now on errors of ck
 * (NULL: back to stderr). */
void insp_capture(struct insp_check *ck);
/* insp_check_new plus insp_capture of the new check. */
struct insp_check *insp_check_begin(struct inspect *in, enum insp_section section,
				    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds an error line to ck (which then fails). */
void insp_check_fail(struct insp_check *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drops ck's error lines (to replace the library's with a clearer one). */
void insp_check_clear_errors(struct insp_check *ck);
/* Sets ck's detail line (replacing any). */
void insp_check_detail(struct insp_check *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Ends ck for the calling thread (capture off): failed when ret is
 * negative or it has error lines; a negative ret without any line adds
 * "name: strerror". */
void insp_check_end(struct insp_check *ck, int ret);
/* Marks ck skipped, because of why. */
void insp_check_skip(struct insp_check *ck, const char *why);
/* Number of failed checks. */
unsigned insp_failures(const struct inspect *in);
/* Frees everything in holds (the checkpoint is closed too). */
void insp_free(struct inspect *in);
/* Returns the last component of path (borrowed). */
const char *insp_basename(const char *path);

/* structure.c: opening the checkpoint part by part. */
/* Checks the manifest, main.loc, main.mem, the server list and each
 * server's files, one check each, going on past failures. */
void insp_open_parts(struct inspect *in);
/* Checks the manifest's page counts against the files and that every
 * written page is in exactly one file (after insp_facts). */
void insp_check_consistency(struct inspect *in);

/* facts.c: the host table, zero pages and the history summary. */
void insp_facts(struct inspect *in);

/* checksums.c: reading every byte. */
/* Checks every file the manifest lists against its size and CRC-32C, in
 * parallel, one check per file. */
void insp_verify_files(struct inspect *in);
/* Checks every page of main.mem against main.present (when the
 * checkpoint has one) and of each opened server's memory file against
 * the CRC in its presence file; a bad page is recorded and named. */
void insp_verify_pages(struct inspect *in);

/* disk.c: qcow2 images through libqcow. */
/* Lists the --disk files, then the manifest's disk_files that are not
 * among them, and checks each: one check per image. */
void insp_check_disks(struct inspect *in);
/* One line about what libqcow can tell of snapshots (for the report). */
const char *insp_disk_snapshot_note(void);

/* print-text.c, print-json.c: the report on stdout. */
void insp_print_text(const struct inspect *in);
void insp_print_json(const struct inspect *in);

#endif
