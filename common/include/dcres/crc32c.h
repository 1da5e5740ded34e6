/* CRC-32C (Castagnoli), used for every checksum in dcres files. */
#ifndef DCRES_CRC32C_H
#define DCRES_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes at data; hardware-accelerated
 * with SSE4.2 when the CPU has it. */
uint32_t dcres_crc32c(uint32_t crc, const void *data, size_t len);

/* Extends crc over len zero bytes, in O(log len) (a file's holes). */
uint32_t dcres_crc32c_zeros(uint32_t crc, uint64_t len);

/* The CRC of A||B from crc(A) and crc(B) for one fixed length of B, in
 * four table lookups: a file's CRC from its pages' CRCs. */
struct dcres_crc32c_shift {
	uint32_t t[4][256];
};
/* Prepares s for a B of len bytes. */
void dcres_crc32c_shift_init(struct dcres_crc32c_shift *s, uint64_t len);
/* crc(A||B) from crc_a = crc(A) and crc_b = crc(B), |B| as s was made for. */
uint32_t dcres_crc32c_append(const struct dcres_crc32c_shift *s, uint32_t crc_a,
			     uint32_t crc_b);

#endif
