/* Whole checkpoint files on a memory server: their sums, receiving a copy
 * from a peer (a replica) and reading one out (FILE_SUMS, FILE_PUT_*,
 * FILE_GET in proto/wire.proto).
 *
 * Files live in a checkpoint directory rel below the server's --dir, are
 * reached without following symlinks (as in srv-ckpt.h), and are named by
 * one plain component (letters, digits, '.', '-', '_'; not starting with
 * '.'). A received file is written to a new file of its own and published
 * under its name only once its size and CRC-32C match what the sender
 * announced; an existing file is never replaced. Functions return 0 or a
 * negative errno with err saying why, naming the file relative to --dir. */
#ifndef DCRES_MEMSERVER_SRV_FILES_H
#define DCRES_MEMSERVER_SRV_FILES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcres/wire.pb-c.h"

/* Checks that name is one plain file name (see above). */
int srv_file_name_check(const char *name, char *err, size_t err_len);

/* Fills out[0..*nout) with the size and CRC-32C, read now, of those of the
 * n files in[] held in rel (names point into in[]); files not held are
 * left out, other errors fail the request. A memory or presence file
 * that its reader refuses, or a memory file whose CRC differs from the
 * one in[] expects (its damaged page found), gets an error (in errs: n
 * strings of errs_len bytes). quick: memory files (*.mem) only have
 * their header checked and their size given, no CRC (has_crc32c clear). */
int srv_file_sums(int base_fd, const char *rel, Dcres__FileInfo *const *in, size_t n,
		  bool quick, Dcres__FileInfo *out, size_t *nout, char *errs, size_t errs_len,
		  char *err, size_t err_len);

/* Reads up to len bytes of rel/name from off on into buf, skipping holes:
 * *data_off is where the bytes read start (>= off; the file's size when
 * only holes remain) and *data_len how many there are; *size is the
 * file's size. */
int srv_file_get(int base_fd, const char *rel, const char *name, uint64_t off, uint64_t len,
		 void *buf, uint64_t *data_off, uint64_t *data_len, uint64_t *size, char *err,
		 size_t err_len);

/* A file being received on one connection. */
struct srv_put {
	int dir_fd, fd;            /* -1 when none */
	char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
	char display[PATH_MAX];    /* rel/name */
	uint64_t size, pos;        /* announced size; end of the data so far */
	uint32_t want_crc, crc;    /* announced; of the bytes up to pos */
};

void srv_put_init(struct srv_put *p);

/* Starts receiving f (name, size, crc32c) into rel (made if missing): a
 * new temporary file. *exists is set, and nothing started, when the file
 * is there already with that size and CRC; other content there is -EEXIST.
 * A transfer already under way is -EBUSY. */
int srv_put_begin(struct srv_put *p, int base_fd, const char *rel, const Dcres__FileInfo *f,
		  bool *exists, char *err, size_t err_len);

/* Writes len bytes at off (at or past the end of the data so far; the gap
 * stays a hole) within the announced size. */
int srv_put_data(struct srv_put *p, uint64_t off, const void *data, size_t len, char *err,
		 size_t err_len);

/* Checks size and CRC, fsyncs and publishes the file (not over an existing
 * one), fsyncs the directory. Ends the transfer either way. */
int srv_put_end(struct srv_put *p, char *err, size_t err_len);

/* Drops a transfer under way (its temporary file removed). */
void srv_put_abort(struct srv_put *p);

#endif
