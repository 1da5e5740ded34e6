/* Test helper: synthetic D-CRES checkpoints made with the format libraries,
 * without QEMU: main.mem laid out as QEMU 10.0's mapped-ram writes it,
 * main.loc, two memory servers' host-K.mem and host-K.present, optionally
 * main.present and a manifest. Variants damage them in known ways. Every failure exits the
 * test (CHECK of ckpt-format/tests/testutil.h). */
#ifndef DCRES_TEST_CKPT_BUILD_H
#define DCRES_TEST_CKPT_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "dcres/mappedram.h"

#define TEST_CKPT_PS 4096u
#define TEST_CKPT_NPAGES 1000u
#define TEST_CKPT_PREFIX 3000u /* "device state" before the block's header */

/* Ways to build a checkpoint. */
enum test_ckpt_variant {
	TEST_CKPT_OK,
	TEST_CKPT_MANIFEST,     /* with a manifest listing hosts and file checksums */
	TEST_CKPT_MANIFEST_BAD, /* ... and host-1.mem changed after it was written */
	TEST_CKPT_DUP,          /* page 12 (on host 1) also in main.mem's bitmap */
	TEST_CKPT_MISSING,      /* page 13 (on host 2) not in host-2.present */
	TEST_CKPT_STRAY,        /* page 20 (never written) present on host 2 */
	TEST_CKPT_CORRUPT,      /* a byte of page 22 flipped in host-1.mem */
	TEST_CKPT_UUID,         /* host-2.mem of another VM */
	TEST_CKPT_PAGE_8K,      /* with a manifest; host-1.mem and host-1.present
				 * declare 8 KiB pages (their CRCs right) */
	TEST_CKPT_PAGE_1M,      /* ... 1 MiB pages */
	TEST_CKPT_MAIN_PRESENT, /* with main.present and a manifest listing it (as the
				 * main host's present_file too), as dcres-checkpoint
				 * writes them */
	TEST_CKPT_MAIN_CORRUPT, /* main.present, no manifest; a byte of page 16 (on
				 * the main host) flipped in main.mem */
};

/* The VM UUID of every checkpoint built here. */
extern const uint8_t test_ckpt_uuid[16];

/* Where main.loc places page p: never written (DCRES_LOC_ZERO), the main
 * host (DCRES_LOC_MAIN), host 1 or host 2. */
uint8_t test_ckpt_owner(uint64_t p);

/* Main-host pages QEMU found to be zero: placed on main, not in the file. */
bool test_ckpt_zero_page(uint64_t p);

/* Fills buf (TEST_CKPT_PS bytes) with the content of page p as host h
 * saved it (h 9: stale data of a page that moved away). Never all zeros. */
void test_ckpt_fill_page(uint8_t *buf, uint64_t p, unsigned h);

/* test_set_page_size of testutil.h, for tests with CHECK macros of their
 * own: makes path (any dcres file) declare pages of page_size bytes, with
 * its checksum right. */
void test_ckpt_set_page_size(const char *path, uint32_t page_size);

/* Creates path: a mapped-ram file of geo as QEMU 10.0 lays it out (the
 * block's header right before its bitmap), with no page in it yet; the
 * mappedram library writes pages into it. */
void test_ckpt_empty_main(const char *path, const struct dcres_mapped_ram *geo);

/* Builds a checkpoint of variant v in a new directory under base (a
 * scratch directory; the result lives until exit) and returns its path;
 * *geo is main.mem's geometry. At most 32 per process. */
const char *test_ckpt_make(const char *base, enum test_ckpt_variant v,
			   struct dcres_mapped_ram *geo);

#endif
