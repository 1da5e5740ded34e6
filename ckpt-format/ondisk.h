/* Byte-order helpers for the on-disk headers of dcres checkpoint files.
 * Header fields and checksums are big-endian (dcres/bytes.h, shared with
 * other components); the presence bitmap is made of 64-bit little-endian
 * words (see presence.c). Internal to dcres-ckpt. */
#ifndef DCRES_CKPT_ONDISK_H
#define DCRES_CKPT_ONDISK_H

#include <stdint.h>

#include "dcres/bytes.h"

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
