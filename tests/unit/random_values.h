/*
 * random_values.h - the unit tests' random inputs: a reproducible xorshift generator,
 * hostile strings, Cost Explorer-like amounts and arbitrary doubles. Static functions, for
 * the tests that include it (test_jsonw, test_numfmt, test_statefile).
 */
#ifndef BCE_TEST_RANDOM_VALUES_H
#define BCE_TEST_RANDOM_VALUES_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static uint64_t rng_state = 0x243f6a8885a308d3u;

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A NUL-terminated string of random bytes 1..255 (quotes, backslashes, control bytes,
 * invalid UTF-8), @min..@max bytes long. Caller frees. */
static inline char *hostile(size_t min, size_t max)
{
	size_t n = min + (size_t)(rnd() % (max - min + 1));
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		static const char pick[] = "\"\\\b\f\n\r\t\x01\x1f\x7f\x80\xc3\xff/u";
		uint64_t r = rnd();
		s[i] = (char)(r % 3 ? 1 + (r >> 8) % 255 : (unsigned char)pick[(r >> 8) % (sizeof(pick) - 1)]);
	}
	s[n] = '\0';
	return s;
}

/* Bit for bit (so -0 differs from 0 and a NaN equals itself). */
static inline bool same_double(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

/* Cost Explorer-like: up to 10 decimals, parsed from text as the exporter does. */
static inline double ce_amount(void)
{
	static const uint64_t mod[] = { 10u, 1000u, 100000u, 10000000000u, 1000000000000u,
					100000000000000u, 9000000000000000u };
	uint64_t n = rnd() % mod[rnd() % 7];
	char s[48];
	snprintf(s, sizeof(s), "%s%llu.%010llu", rnd() % 5 ? "" : "-",
		 (unsigned long long)(n / 10000000000u), (unsigned long long)(n % 10000000000u));
	return strtod(s, NULL);
}

/* Any double at all, from its bits (non-finite ones included). */
static inline double any_double(void)
{
	uint64_t bits = rnd();
	double v;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

#endif
