/* Test helper: tiny valid qcow2 v3 images written by hand (qemu-img is not
 * needed): 64 KiB clusters, no data clusters allocated, optionally one
 * internal snapshot. Failures exit the test (CHECK). */
#ifndef DCRES_INSPECT_QCOW2_FIXTURE_H
#define DCRES_INSPECT_QCOW2_FIXTURE_H

#include <stdint.h>

/* Writes path as a qcow2 v3 image of media_size bytes (at most 512 MiB:
 * one L1 entry) with one internal snapshot called snapshot, or none when
 * snapshot is NULL. */
void qcow2_fixture_write(const char *path, uint64_t media_size, const char *snapshot);

#endif
