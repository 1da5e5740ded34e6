/* The memory server's side of checkpoint and restore.
 *
 * A checkpoint of one VM on this server writes DIR/host-K.mem.partial.XXXXXXXX
 * (a new file of its own, O_EXCL) while running and, at commit, publishes
 * DIR/host-K.mem and DIR/host-K.present (DIR relative to the server's
 * --dir). Every file and directory is reached from the --dir descriptor
 * without following symlinks or leaving it, and messages for the peer name
 * paths relative to --dir only. Begin takes the VM's checkpoint slot before
 * touching any file, then marks every held page dirty; writer threads save
 * dirty pages in batches. While it runs, a page arriving (page-out) is
 * marked dirty and present; a page leaving (page-in) is marked absent and
 * its hole punched. Final (the stop point) copies what is still dirty and
 * stops tracking; commit writes it, punches any stale data of absent
 * pages, fsyncs and publishes (the directory fsynced too), so the files
 * hold exactly the pages held at final, with their content then. The slot
 * stays taken until commit or abort has finished: meanwhile another
 * begin, final, abort, RELEASE or RESTORE of the VM is
 * refused. Abort removes the partial file; published files of an earlier
 * checkpoint are never touched before commit. */
#ifndef DCRES_MEMSERVER_SRV_CKPT_H
#define DCRES_MEMSERVER_SRV_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/wire.pb-c.h"
#include "vmstore.h"

/* Checks the checkpoint path rel of a request: relative, free of "..",
 * not too long; err says why not. */
int srv_ckpt_path_check(const char *rel, char *err, size_t err_len);

/* Opens the checkpoint directory rel of a request below the server's --dir
 * (base_fd), making it (mode 0700) when create is set; never through a
 * symlink; rel must pass srv_ckpt_path_check. Returns the directory's
 * fd or a negative errno with err naming rel. */
int srv_ckpt_dir_open(int base_fd, const char *rel, bool create, char *err, size_t err_len);

/* Formats host-ID.SUFFIX into name and REL/host-ID.SUFFIX into display;
 * -ENAMETOOLONG if either does not fit. */
int srv_host_file(char *name, size_t name_len, char *display, size_t display_len,
		  const char *rel, uint32_t host_id, const char *suffix);

/* Starts checkpoint id of vm into rel below base_fd as host host_id; owner
 * names the connection that runs it (it is aborted if that connection goes
 * away). A checkpoint of vm already running is -EBUSY, nothing touched.
 * With parent (else NULL), incremental: saves only the pages stored since
 * the stop point of vm's last committed checkpoint here, which must be
 * parent (-ESTALE, nothing touched, otherwise). */
int srv_ckpt_begin(struct vmstore *s, struct vm *vm, int base_fd, const char *rel,
		   uint32_t host_id, const uint8_t id[16], const uint8_t *parent,
		   uint64_t owner, char *err, size_t err_len);

/* Hooks called by page-out and page-in with vm->lock held. */
void srv_ckpt_page_arrived(struct srv_ckpt *c, uint64_t page);
void srv_ckpt_page_left(struct srv_ckpt *c, uint64_t page);
/* Wakes the writers after a batch of srv_ckpt_page_arrived calls. */
void srv_ckpt_wake(struct srv_ckpt *c);

/* Returns once at most a small number of pages remain to be written. */
int srv_ckpt_sync(struct vm *vm, char *err, size_t err_len);
/* What a completed checkpoint published. */
struct srv_ckpt_result {
	uint64_t bytes_written;   /* in all (rewrites count) */
	uint64_t pages;           /* pages in the files */
	char mem_name[64], present_name[64];
	uint64_t mem_size, present_size;
	uint32_t mem_crc, present_crc; /* CRC-32C of each whole file */
};

/* The stop point (the VM stopped, its pages here fixed): the pages still
 * to write are copied as they are now (once at most TAIL_MAX are left,
 * which it waits for) and page moves stop changing the checkpoint, whose
 * pages are now those held. Nothing is made durable: commit does that. */
int srv_ckpt_final(struct vm *vm, char *err, size_t err_len);
/* After final: writes the rest, fsyncs, and publishes the files (never
 * over existing ones), the directory fsynced, before it returns; *out
 * describes them (their sums computed from the pages' CRCs: nothing is
 * read back). */
int srv_ckpt_commit(struct vm *vm, struct srv_ckpt_result *out, char *err, size_t err_len);
/* Stops the checkpoint, before or after its final, and deletes its
 * partial file (-EBUSY while it starts or commits). */
int srv_ckpt_abort(struct vm *vm, char *err, size_t err_len);
/* Aborts vm's checkpoint if connection owner started it. */
void srv_ckpt_abort_owned(struct vm *vm, uint64_t owner);

/* Fills the checkpoint fields of st (vm->lock held). */
void srv_ckpt_stats(const struct vm *vm, Dcres__Stats *st);

/* Loads pages of checkpoint rel, host host_id, into vm: the n listed
 * (distinct, in range), or (n == 0) every page the files hold. All or
 * nothing: a page missing from the files, a checksum mismatch or a
 * capacity shortfall loads nothing, and err names the file and page. */
int srv_restore(struct vmstore *s, struct vm *vm, int base_fd, const char *rel,
		uint32_t host_id, const uint64_t *pages, uint64_t n, char *err, size_t err_len);

/* Reads the n listed pages (distinct, in range) of checkpoint rel, host
 * host_id, of VM vm into out (n * 4096 bytes), verifying each page's
 * checksum. */
int srv_serve(const struct vm *vm, int base_fd, const char *rel, uint32_t host_id,
	      const uint64_t *pages, uint64_t n, void *out, char *err, size_t err_len);

#endif
