/* Unit test of CRC-32C: the known check value, the zero-run extension and
 * dcres_crc32c_append against the CRC of the concatenation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcres/crc32c.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

int main(void)
{
	static uint8_t buf[3 * 4096 + 77];
	struct dcres_crc32c_shift page, odd;
	uint32_t whole, acc;

	CHECK(dcres_crc32c(0, "123456789", 9) == 0xe3069283u, "check value");
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	memset(buf + 4096, 0, 4096);
	CHECK(dcres_crc32c_zeros(dcres_crc32c(0, buf, 4096), 4096) ==
	      dcres_crc32c(0, buf, 8192), "zeros");

	/* A "file" of a 77-byte header and three pages, from the pages' CRCs. */
	dcres_crc32c_shift_init(&page, 4096);
	whole = dcres_crc32c(0, buf, sizeof(buf));
	acc = dcres_crc32c(0, buf, 77);
	for (int p = 0; p < 3; p++)
		acc = dcres_crc32c_append(&page, acc, dcres_crc32c(0, buf + 77 + p * 4096, 4096));
	CHECK(acc == whole, "append: %08x, the whole is %08x", acc, whole);

	dcres_crc32c_shift_init(&odd, 13);
	CHECK(dcres_crc32c_append(&odd, dcres_crc32c(0, buf, 100), dcres_crc32c(0, buf + 100, 13)) ==
	      dcres_crc32c(0, buf, 113), "append of 13 bytes");
	CHECK(dcres_crc32c_append(&odd, 0, dcres_crc32c(0, buf, 13)) == dcres_crc32c(0, buf, 13),
	      "append to nothing");
	if (failures)
		return 1;
	printf("crc32c: ok\n");
	return 0;
}
