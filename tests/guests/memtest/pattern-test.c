/* Unit test of the memtest page pattern: a filled page checks out, and every
 * kind of damage the end-to-end tests rely on is detected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

static int failures;

static void expect(const char *what, enum mt_check_result got,
		   enum mt_check_result want)
{
	if (got != want) {
		fprintf(stderr, "FAIL %s: got %s, want %s\n", what,
			mt_check_name(got), mt_check_name(want));
		failures++;
	}
}

int main(void)
{
	static uint64_t page[MT_WORDS], copy[MT_WORDS];
	unsigned word = 0;

	mt_fill_page(page, 1234, 7);
	memcpy(copy, page, sizeof(page));
	expect("fresh page", mt_check_page(page, 1234, 7, &word), MT_OK);
	expect("other page number", mt_check_page(page, 1235, 7, &word),
	       MT_BAD_PAGE_NUMBER);
	expect("stale generation", mt_check_page(page, 1234, 8, &word),
	       MT_BAD_GENERATION);

	for (unsigned byte = 0; byte < MT_PAGE_SIZE; byte++) {
		((unsigned char *)page)[byte] ^= 0x01;
		if (mt_check_page(page, 1234, 7, &word) == MT_OK) {
			fprintf(stderr, "FAIL flipped byte %u not detected\n", byte);
			failures++;
		}
		memcpy(page, copy, sizeof(page));
	}
	page[100] ^= 1;
	expect("flipped body word", mt_check_page(page, 1234, 7, &word), MT_BAD_BODY);
	if (word != 100) {
		fprintf(stderr, "FAIL bad word reported as %u, want 100\n", word);
		failures++;
	}
	memcpy(page, copy, sizeof(page));
	page[MT_WORDS - 1] ^= 1;
	expect("flipped checksum", mt_check_page(page, 1234, 7, &word), MT_BAD_CHECKSUM);
	memset(page, 0, sizeof(page));
	expect("zero page", mt_check_page(page, 1234, 7, &word), MT_BAD_MAGIC);

	mt_fill_page(copy, 1234, 8);
	mt_fill_page(page, 1234, 7);
	if (memcmp(page + 3, copy + 3, 8 * 8) == 0) {
		fprintf(stderr, "FAIL generations 7 and 8 share a body\n");
		failures++;
	}
	printf("%s\n", failures ? "pattern-test: FAILED" : "pattern-test: ok");
	return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
