#include "dcres/crc32c.h"

#include <pthread.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int have_sse42;

static void init_crc(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
		table[i] = c;
	}
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len--)
		crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
	return crc;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	for (; len >= 8; len -= 8, p += 8)
		c = __builtin_ia32_crc32di(c, *(const uint64_t *)(const void *)p);
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

uint32_t dcres_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&table_once, init_crc);
	crc = ~crc;
	crc = have_sse42 ? crc_hw(crc, data, len) : crc_sw(crc, data, len);
	return ~crc;
}

/* GF(2) matrix (32 columns) times vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

/* sq = mat * mat. */
static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

uint32_t dcres_crc32c_zeros(uint32_t crc, uint64_t len)
{
	uint32_t even[32], odd[32], reg = ~crc;

	if (!len)
		return crc;
	/* odd: the CRC register's step over one zero bit; squared up to one
	 * byte, then len's bits pick the powers of two (as zlib's
	 * crc32_combine does). */
	odd[0] = POLY;
	for (int n = 1; n < 32; n++)
		odd[n] = 1u << (n - 1);
	gf2_square(even, odd); /* two bits */
	gf2_square(odd, even); /* four bits */
	for (;;) {
		gf2_square(even, odd);
		if (len & 1)
			reg = gf2_times(even, reg);
		if (!(len >>= 1))
			break;
		gf2_square(odd, even);
		if (len & 1)
			reg = gf2_times(odd, reg);
		if (!(len >>= 1))
			break;
	}
	return ~reg;
}

/* crc(A||B) = shift(crc(A)) ^ crc(B), shift being the (linear) step over
 * |B| zero bytes: shift(x) = zeros(x, len) ^ zeros(0, len). The table holds
 * shift of every byte value at every byte position. */
void dcres_crc32c_shift_init(struct dcres_crc32c_shift *s, uint64_t len)
{
	uint32_t basis[32], zero = dcres_crc32c_zeros(0, len);

	for (int i = 0; i < 32; i++)
		basis[i] = dcres_crc32c_zeros(1u << i, len) ^ zero;
	for (int b = 0; b < 4; b++) {
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t x = 0;

			for (int j = 0; j < 8; j++)
				if (v >> j & 1)
					x ^= basis[8 * b + j];
			s->t[b][v] = x;
		}
	}
}

uint32_t dcres_crc32c_append(const struct dcres_crc32c_shift *s, uint32_t crc_a,
			     uint32_t crc_b)
{
	return s->t[0][crc_a & 0xff] ^ s->t[1][crc_a >> 8 & 0xff] ^
	       s->t[2][crc_a >> 16 & 0xff] ^ s->t[3][crc_a >> 24] ^ crc_b;
}
