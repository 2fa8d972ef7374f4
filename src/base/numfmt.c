/*
 * numfmt.c - see numfmt.h.
 */
#include "base/numfmt.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *numfmt_u64(char *o, uint64_t u)
{
	char tmp[20];
	size_t i = 0;
	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (i)
		*o++ = tmp[--i];
	return o;
}

/*
 * Why the text reads back as @a: n < 9e15 < 2^53 and 1e10 are exact doubles,
 * so n / 1e10 in double arithmetic is the double nearest to the real n / 10^10
 * (IEEE division rounds correctly), and strtod, also correctly rounded in the
 * same round-to-nearest-even mode, makes the same double of the text. Needs
 * double arithmetic without excess precision (FLT_EVAL_METHOD 0; an x87 double
 * rounding could break the argument), so elsewhere the function declines.
 */
char *numfmt_decimal10(char *o, double a)
{
#if FLT_EVAL_METHOD == 0
	if (!(a >= 0 && a < 9e5))
		return NULL;
	double scaled = a * 1e10;
	uint64_t n = (uint64_t)scaled;
	if (scaled - (double)n >= 0.5) /* exact: n <= scaled < n + 1 */
		n++;
	if ((double)n / 1e10 != a)
		return NULL;
	uint64_t frac = n % 10000000000u;
	o = numfmt_u64(o, n / 10000000000u);
	if (!frac)
		return o;
	int digits = 10;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	*o++ = '.';
	for (int i = digits - 1; i >= 0; i--) {
		o[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	return o + digits;
#else
	(void)o, (void)a;
	return NULL;
#endif
}

/*
 * Money values: the cost sources round amounts to 1e-10 USD. For 1e-4 <= |v| < 1e5
 * the 10-decimal text has at most 15 significant digits, and as v is its
 * nearest double, "%.15g" prints exactly that text (no exponent in this
 * range), so the fast path changes no output. Returns false when it does not
 * apply.
 */
static bool format_money(double v, char out[32])
{
	double a = fabs(v);
	if (!(a >= 1e-4 && a < 1e5))
		return false;
	char *o = out;
	if (v < 0)
		*o++ = '-';
	o = numfmt_decimal10(o, a);
	if (!o)
		return false;
	*o = '\0';
	return true;
}

char *numfmt_double(double v, char out[32])
{
	if (isnan(v)) {
		strcpy(out, "NaN");
	} else if (isinf(v)) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
	} else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(long long)v) {
		/* integers (info values, counts, most timestamps): no printf, no strtod */
		char *o = out;
		if (v < 0 || signbit(v))
			*o++ = '-';
		o = numfmt_u64(o, (uint64_t)fabs(v));
		*o = '\0';
	} else if (!format_money(v, out)) {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, 32, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
	return out;
}


size_t numfmt_exact(double v, char out[32])
{
	if (!isfinite(v))
		return 0;
	char *o = out;
	double a = fabs(v);
	if (signbit(v))
		*o++ = '-'; /* -0 stays -0 */
	if (a < 9007199254740992.0 && a == (double)(uint64_t)a)
		return (size_t)(numfmt_u64(o, (uint64_t)a) - out);
	char *end = numfmt_decimal10(o, a);
	if (end)
		return (size_t)(end - out);
	return (size_t)snprintf(out, 32, "%.17g", v);
}

/*
 * Clinger's fast path: a decimal with at most 15 significant digits (so the
 * digits fit a double exactly) and a power of ten up to 1e22 (also exact) is
 * one correctly rounded multiplication or division away from its value, which
 * is exactly what strtod() returns. Cost Explorer's amounts ("0.0123456789")
 * all take this path; anything else falls back to strtod().
 */
static const double pow10_exact[] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
				      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

int numfmt_parse_decimal(const char *s, double *out)
{
	const char *p = s;
	uint64_t mant = 0;
	int digits = 0, scale = 0; /* significant digits; value = mant * 10^scale */
	bool neg = *p == '-';
	if (neg)
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++)
		if (mant || *p != '0') {
			if (++digits <= 15)
				mant = mant * 10 + (uint64_t)(*p - '0');
			else
				scale++;
		}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (mant || *p != '0') {
				if (++digits <= 15) {
					mant = mant * 10 + (uint64_t)(*p - '0');
					scale--;
				}
			} else {
				scale--;
			}
	}
	bool fast = digits <= 15;
	if (*p == 'e' || *p == 'E') {
		p++;
		int esign = 1;
		long e = 0;
		if (*p == '+' || *p == '-')
			esign = *p++ == '-' ? -1 : 1;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		if (e >= 100000)
			fast = false;
		else
			scale += esign * (int)e;
	}
	if (*p || p - s > 64)
		return -EINVAL;
	double v;
	if (fast && mant == 0) {
		v = 0.0;
	} else if (fast && scale >= -22 && scale <= 22) {
		v = scale < 0 ? (double)mant / pow10_exact[-scale] : (double)mant * pow10_exact[scale];
	} else {
		v = strtod(s, NULL);
		neg = false; /* strtod read the sign */
	}
	if (neg)
		v = -v;
	if (!isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}
