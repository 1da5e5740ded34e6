/* Checkpoint manifest (proto/manifest.proto), the file DIR/manifest that
 * makes a directory a checkpoint: written last and atomically.
 *
 * On disk: "DCRESMAN", be32 length, the protobuf bytes, be32 CRC-32C of
 * the protobuf bytes. */
#ifndef DCRES_MANIFEST_H
#define DCRES_MANIFEST_H

#include <stdint.h>

#include "dcres/manifest.pb-c.h"

#define DCRES_MANIFEST_NAME "manifest"

/* Publishes m as DIR/manifest atomically (temp, fsync, rename, fsync dir). */
int dcres_manifest_write(const char *dir, const Dcres__Manifest *m);

/* Reads and validates DIR/manifest; *m is freed with dcres_manifest_free. */
int dcres_manifest_read(const char *dir, Dcres__Manifest **m);
void dcres_manifest_free(Dcres__Manifest *m);

/* m's entry for the file name, or NULL (name NULL: NULL). */
const Dcres__FileSum *dcres_manifest_file(const Dcres__Manifest *m, const char *name);

/* Size and CRC-32C of a whole file (holes read as zeros). */
int dcres_file_checksum(const char *path, uint64_t *size, uint32_t *crc);
/* The same for the open file fd (its offset untouched); display names it
 * in messages. */
int dcres_file_checksum_fd(int fd, const char *display, uint64_t *size, uint32_t *crc);

/* Checks that every file m lists exists in dir with its size and CRC;
 * the first mismatch is -EBADMSG (or the open error) naming the file. */
int dcres_manifest_verify_files(const char *dir, const Dcres__Manifest *m);

#endif
