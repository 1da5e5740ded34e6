#include "pattern.h"

/* splitmix64 finaliser: seeds each page's stream from (page, gen). */
static uint64_t mt_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t mt_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint64_t mt_sum_step(uint64_t sum, uint64_t w)
{
	return (sum ^ w) * 0x100000001b3ull + 0x9e37ull;
}

void mt_fill_page(uint64_t *w, uint64_t page, uint64_t gen)
{
	uint64_t s = mt_mix(page * 0x10001ull + gen) | 1u;
	uint64_t sum = 0;

	w[0] = page;
	w[1] = gen;
	w[2] = MT_MAGIC;
	for (unsigned i = 0; i < 3; i++)
		sum = mt_sum_step(sum, w[i]);
	for (unsigned i = 3; i < MT_WORDS - 1; i++) {
		w[i] = mt_next(&s);
		sum = mt_sum_step(sum, w[i]);
	}
	w[MT_WORDS - 1] = sum;
}

enum mt_check_result mt_check_page(const volatile uint64_t *w, uint64_t page,
				   uint64_t gen, unsigned *bad_word)
{
	uint64_t s = mt_mix(page * 0x10001ull + gen) | 1u;
	uint64_t sum = 0;

	if (w[2] != MT_MAGIC)
		return MT_BAD_MAGIC;
	if (w[0] != page)
		return MT_BAD_PAGE_NUMBER;
	if (w[1] != gen)
		return MT_BAD_GENERATION;
	for (unsigned i = 0; i < 3; i++)
		sum = mt_sum_step(sum, w[i]);
	for (unsigned i = 3; i < MT_WORDS - 1; i++) {
		uint64_t v = w[i];
		if (v != mt_next(&s)) {
			*bad_word = i;
			return MT_BAD_BODY;
		}
		sum = mt_sum_step(sum, v);
	}
	return w[MT_WORDS - 1] == sum ? MT_OK : MT_BAD_CHECKSUM;
}

const char *mt_check_name(enum mt_check_result r)
{
	switch (r) {
	case MT_OK: return "ok";
	case MT_BAD_PAGE_NUMBER: return "wrong-page-number";
	case MT_BAD_GENERATION: return "wrong-generation";
	case MT_BAD_MAGIC: return "no-pattern";
	case MT_BAD_BODY: return "body-mismatch";
	case MT_BAD_CHECKSUM: return "checksum-mismatch";
	}
	return "unknown";
}
