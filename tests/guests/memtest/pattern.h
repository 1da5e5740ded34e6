/* Page pattern of the dcres memory-verifier guests.
 *
 * Every tested 4 KiB page holds, as 512 little-endian 64-bit words:
 *   w[0] page number, w[1] generation, w[2] MT_MAGIC,
 *   w[3..510] a pseudo-random stream seeded by (page number, generation),
 *   w[511] a checksum over w[0..510].
 * The guest keeps each page's current generation in a table in its own RAM,
 * so a page that was lost, reverted to an older version, moved or corrupted is
 * caught. Freestanding: used by the bare-metal guest, the Linux guest's
 * verifier and host-side tools alike. */
#ifndef DCRES_MEMTEST_PATTERN_H
#define DCRES_MEMTEST_PATTERN_H

#include <stdint.h>

#define MT_PAGE_SIZE 4096u
#define MT_WORDS (MT_PAGE_SIZE / 8u)
#define MT_MAGIC 0x31545345544d4344ull /* "DCMTEST1" */

enum mt_check_result {
	MT_OK = 0,
	MT_BAD_PAGE_NUMBER, /* w[0] names another page: misplaced page */
	MT_BAD_GENERATION,  /* w[1] differs from the table: stale or lost write */
	MT_BAD_MAGIC,       /* w[2]: page never filled or overwritten */
	MT_BAD_BODY,        /* a body word differs from the expected stream */
	MT_BAD_CHECKSUM,    /* w[511] does not match the rest */
};

/* Fills the page at w with the pattern for (page, gen). */
void mt_fill_page(uint64_t *w, uint64_t page, uint64_t gen);

/* Checks the page at w against (page, gen); returns an mt_check_result and,
 * for MT_BAD_BODY, stores the first differing word index in *bad_word. */
enum mt_check_result mt_check_page(const volatile uint64_t *w, uint64_t page,
				   uint64_t gen, unsigned *bad_word);

/* Short name of a check result, for error reports. */
const char *mt_check_name(enum mt_check_result r);

#endif
