/* The memory servers' side of a split-memory VM's checkpoint, driven from
 * the main host (by the patched QEMU's migration, see DESIGN.md section 5).
 *
 * Begin connects to every memory server of the VM's pager (connections of
 * its own, not the pager's) and has each start saving the VM's pages it
 * holds into its host-K.mem of the checkpoint directory; page-ins and
 * page-outs during the checkpoint keep the server files right by
 * themselves (the servers track them). Sync waits until every server has
 * little left to write; final (with the VM stopped and the pager's
 * eviction held) has every server write the rest, fsync and publish, then
 * writes the main host's location table main.loc. Every step runs on all
 * servers in parallel, and a server the pager reports lost, or that
 * refuses, fails the step with a message naming it. Calls are made from
 * one thread. */
#ifndef DCRES_MAINCKPT_H
#define DCRES_MAINCKPT_H

#include <stddef.h>
#include <stdint.h>

#include "dcres/auth.h"
#include "dcres/mappedram.h"
#include "dcres/pager.h"

struct dcres_mainckpt;

struct dcres_mainckpt_config {
	struct dcres_pager *pager; /* the VM's pager: servers, reachability, table */
	uint8_t vm_uuid[16];
	uint64_t ram_size;         /* bytes of the paged guest RAM */
	const struct dcres_psk *psk;
	int timeout_ms;            /* connect and ordinary requests */
	const char *dir;           /* checkpoint directory on this host (absolute) */
	const char *root;          /* the directory the servers' --dir stands for
				    * on this host: they are told dir relative
				    * to it */
};

/* Starts the checkpoint on every server. On failure nothing is left
 * running and err names the server (or says that dir is not below
 * root). */
int dcres_mainckpt_begin(const struct dcres_mainckpt_config *cfg,
			 struct dcres_mainckpt **out, char *err, size_t err_len);

/* Returns once every server has little left to write. */
int dcres_mainckpt_sync(struct dcres_mainckpt *c, char *err, size_t err_len);

/* Between steps: asks every server whether it still answers; one that
 * does not (e.g. it died since the last step) is -EIO, err naming it.
 * Called before a dirty-bitmap sync, which (under TCG) would wait for
 * ever on a vCPU blocked on a page of a dead server. */
int dcres_mainckpt_probe(struct dcres_mainckpt *c, char *err, size_t err_len);

/* Completes the checkpoint: every server's files durable, then main.loc
 * written with the pager's table, history and main_file (where the RAM
 * block lies in main.mem), and each server's part as its final reported it
 * (address, pages, size and CRC-32C of its files): nothing on this host
 * reads a server's file. Call with nothing paging (VM stopped, eviction
 * held). */
int dcres_mainckpt_final(struct dcres_mainckpt *c, const struct dcres_mapped_ram *main_file,
			 char *err, size_t err_len);

/* Bytes server k (1..n) has written for this checkpoint so far (rewrites
 * count), as last polled; after final, its own count. */
uint64_t dcres_mainckpt_server_bytes(const struct dcres_mainckpt *c, unsigned k);

/* Ends c: a checkpoint not completed by final is aborted on the servers
 * still reachable (their partial files removed); frees c. NULL is a
 * no-op. */
void dcres_mainckpt_end(struct dcres_mainckpt *c);

#endif
