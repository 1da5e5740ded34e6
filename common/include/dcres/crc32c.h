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

#endif
