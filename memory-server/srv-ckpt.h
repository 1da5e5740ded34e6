/* The memory server's side of checkpoint and restore.
 *
 * A checkpoint of one VM on this server writes DIR/host-K.mem.partial
 * while running and, at final, publishes DIR/host-K.mem and
 * DIR/host-K.present (DIR relative to the server's --dir). Begin marks every
 * held page dirty; a writer thread saves dirty pages in batches. While it
 * runs, a page arriving (page-out) is marked dirty and present; a page
 * leaving (page-in) is marked absent and its hole punched. Final drains the
 * dirty set, punches any stale data of absent pages, fsyncs and publishes,
 * so the files hold exactly the pages held at final with their content
 * then. Abort removes the partial file; published files of an earlier
 * checkpoint are never touched before final. */
#ifndef DCRES_MEMSERVER_SRV_CKPT_H
#define DCRES_MEMSERVER_SRV_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/wire.pb-c.h"
#include "vmstore.h"

/* Joins the server's base directory and a checkpoint path from a request
 * into out; rel must be relative and free of "..". */
int srv_ckpt_dir(const char *base, const char *rel, char *out, size_t len,
		 char *err, size_t err_len);

/* Formats dir/host-ID.SUFFIX into out; -ENAMETOOLONG if it does not fit. */
int srv_host_file(char *out, size_t len, const char *dir, uint32_t host_id,
		  const char *suffix);

/* Starts a checkpoint of vm into base/rel as host host_id; owner names the
 * connection that runs it (it is aborted if that connection goes away). */
int srv_ckpt_begin(struct vmstore *s, struct vm *vm, const char *base, const char *rel,
		   uint32_t host_id, uint64_t owner, char *err, size_t err_len);

/* Hooks called by page-out and page-in with vm->lock held. */
void srv_ckpt_page_arrived(struct srv_ckpt *c, uint64_t page);
void srv_ckpt_page_left(struct srv_ckpt *c, uint64_t page);
/* Wakes the writers after a batch of srv_ckpt_page_arrived calls. */
void srv_ckpt_wake(struct srv_ckpt *c);

/* Returns once at most a small number of pages remain to be written. */
int srv_ckpt_sync(struct vm *vm, char *err, size_t err_len);
/* Completes the checkpoint: every page written, fsynced and published;
 * *bytes_written gets what the checkpoint wrote in all (rewrites count). */
int srv_ckpt_final(struct vm *vm, uint64_t *bytes_written, char *err, size_t err_len);
/* Stops the checkpoint and deletes its partial file. */
int srv_ckpt_abort(struct vm *vm, char *err, size_t err_len);
/* Aborts vm's checkpoint if connection owner started it. */
void srv_ckpt_abort_owned(struct vm *vm, uint64_t owner);

/* Fills the checkpoint fields of st (vm->lock held). */
void srv_ckpt_stats(const struct vm *vm, Dcres__Stats *st);

/* Loads pages of checkpoint base/rel, host host_id, into vm: the n listed,
 * or (n == 0) every page the files hold. All or nothing: a page missing
 * from the files, a checksum mismatch or a capacity shortfall loads
 * nothing, and err names the file and page. */
int srv_restore(struct vmstore *s, struct vm *vm, const char *base, const char *rel,
		uint32_t host_id, const uint64_t *pages, uint64_t n, char *err, size_t err_len);

/* Reads the n listed pages of checkpoint base/rel, host host_id, of VM vm
 * into out (n * 4096 bytes), verifying each page's checksum. */
int srv_serve(const struct vm *vm, const char *base, const char *rel, uint32_t host_id,
	      const uint64_t *pages, uint64_t n, void *out, char *err, size_t err_len);

#endif
