/* Unit tests for numfmt.c: numbers as text that reads back exactly (the exposition's and
 * JSON's spellings), and strict decimals read exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../../src/base/numfmt.c"
#include "random_values.h"

static void floats_round_trip(void **state)
{
	(void)state;
	char out[32];
	assert_string_equal(numfmt_double(1, out), "1");
	assert_string_equal(numfmt_double(0, out), "0");
	assert_string_equal(numfmt_double(0.1, out), "0.1");
	assert_string_equal(numfmt_double(-2.5, out), "-2.5");
	assert_string_equal(numfmt_double(1795696078.25, out), "1795696078.25");
	assert_string_equal(numfmt_double(NAN, out), "NaN");
	assert_string_equal(numfmt_double(INFINITY, out), "+Inf");
	assert_string_equal(numfmt_double(-INFINITY, out), "-Inf");
	double hard[] = { 1.0 / 3.0, 0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308,
			  123456789.123456789, -0.000123 };
	for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
		numfmt_double(hard[i], out);
		assert_true(strtod(out, NULL) == hard[i]);
	}
	/* shortest: 0.1+0.2 needs 17 digits, 1/3 needs 16 */
	assert_string_equal(numfmt_double(0.1 + 0.2, out), "0.30000000000000004");
}

static void money_fast_path_matches_printf(void **state)
{
	(void)state;
	char out[32], want[32];
	for (int i = 0; i < 300000; i++) {
		double v;
		if (i % 3 == 0) { /* arbitrary doubles around the fast path's range */
			v = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 14 - 6);
		} else { /* Cost Explorer-like amounts, rounded to 1e-10 as metrics.c does */
			long long n = ((long long)rand() << 20 ^ rand()) % 2000000000000000LL;
			v = round((double)n / pow(10, rand() % 11) * 1e10) / 1e10 * (i % 5 ? 1 : -1);
		}
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(want, sizeof(want), "%.*g", prec, v);
			if (strtod(want, NULL) == v)
				break;
		}
		if (v == (double)(long long)v)
			continue; /* the integer path, tested above */
		numfmt_double(v, out);
		if (strcmp(out, want) != 0)
			fail_msg("%.17g: got %s, printf %s", v, out, want);
	}
}

static void amounts(void **state)
{
	(void)state;
	double v;
	assert_int_equal(numfmt_parse_decimal("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(numfmt_parse_decimal("3.4172839012", &v), 0);
	assert_true(v == 3.4172839012);
	assert_int_equal(numfmt_parse_decimal("-0.0000001", &v), 0);
	assert_true(v == -0.0000001);
	assert_int_equal(numfmt_parse_decimal("1.5E-7", &v), 0);
	assert_true(v == 1.5e-7);
	const char *bad[] = { "", "-", ".5", "5.", "1,5", " 1", "1 ", "0x10", "nan", "inf", "1e",
			      "1e999", "+1", "1.2.3", "12abc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (numfmt_parse_decimal(bad[i], &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void amounts_match_strtod(void **state)
{
	(void)state;
	const char *fixed[] = { "0.0000000000", "-0", "-0.0", "0.1", "0.3", "1.0000000001",
				"9007199254740993", "123456789012345", "1234567890123456",
				"0.12345678901234567890", "99999999999999.9999999999", "1e22", "1e23",
				"1e-22", "1e-23", "4.9e-324", "1.7976931348623157e308", "12345e-5",
				"000000000000000000001.5", "0.000000000000000000000000001" };
	char s[80];
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 200000; i++) {
		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			snprintf(s, sizeof(s), "%s", fixed[i]);
		} else {
			/* CE-like amounts: up to 12 integer digits and 0..12 decimals, some exponents */
			unsigned r = (unsigned)rand();
			long long ip = (long long)(((unsigned long long)rand() << 31 | (unsigned)rand()) %
						   (r % 4 == 0 ? 1000000000000ULL : 1000ULL));
			int dec = rand() % 13;
			long long frac = ((long long)rand() << 20 | rand()) % 10000000000000LL;
			int n = snprintf(s, sizeof(s), "%s%lld", r % 7 == 0 ? "-" : "", ip);
			if (dec)
				n += snprintf(s + n, sizeof(s) - (size_t)n, ".%0*lld", dec,
					      frac % (long long)pow(10, dec));
			if (r % 11 == 0)
				snprintf(s + n, sizeof(s) - (size_t)n, "e%d", rand() % 60 - 30);
		}
		double v, want = strtod(s, NULL);
		if (!isfinite(want))
			continue;
		assert_int_equal(numfmt_parse_decimal(s, &v), 0);
		if (memcmp(&v, &want, sizeof(v)) != 0)
			fail_msg("\"%s\": %.17g, strtod %.17g", s, v, want);
	}
}

/* ---- numfmt_exact: the JSON spelling that reads back as the same double ---- */

static void expect_exact(double v)
{
	char out[32];
	memset(out, 'x', sizeof(out));
	size_t n = numfmt_exact(v, out);
	if (!isfinite(v)) {
		assert_int_equal(n, 0);
		return;
	}
	assert_true(n > 0 && n < 32);
	out[n] = '\0';
	char *end;
	double back = strtod(out, &end);
	if (*end || !same_double(back, v))
		fail_msg("%a written as \"%s\" reads back as %a", v, out, back);
	/* and as a JSON reader reads it: a JSON number through cJSON */
	cJSON *j = cJSON_Parse(out);
	assert_true(cJSON_IsNumber(j));
	assert_true(same_double(j->valuedouble, v));
	cJSON_Delete(j);
}

static void amounts_round_trip_exactly(void **state)
{
	(void)state;
	const double special[] = { 0.0, -0.0, 1.0, -1.0, 0.1, 0.1 + 0.2, 1e-10, -1e-10, 5e-11, 1.5e-10,
				   1e-11, 123.456789, 0.30000000000000004, DBL_MIN, -DBL_MIN,
				   4.9406564584124654e-324, DBL_MAX, -DBL_MAX, DBL_EPSILON, 9e5,
				   899999.9999999999, 900000.0000000001, 9007199254740991.0,
				   9007199254740992.0, 9007199254740994.0, 18446744073709551616.0,
				   1e21, 1e22, 123456789012345678.0, 1795651600.1234567, 0.5, 1e300,
				   NAN, -NAN, INFINITY, -INFINITY };
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		expect_exact(special[i]);
	for (int i = 0; i < 200000; i++) {
		double a = ce_amount();
		expect_exact(a);
		expect_exact(nextafter(a, INFINITY)); /* one ulp off: the fast path must notice */
		expect_exact(nextafter(a, -INFINITY));
		expect_exact(any_double());
		expect_exact(a * 1e-7);
		expect_exact((double)(rnd() >> (rnd() % 64)));
	}
	/* the fast path writes Cost Explorer's own decimals, not %.17g noise; integers are
	 * their digits; -0 keeps its sign */
	const struct {
		const char *in, *out;
	} text[] = { { "0.1234567891", "0.1234567891" }, { "0.0000000001", "0.0000000001" },
		     { "-12.5000000000", "-12.5" }, { "899999.9999999999", "899999.9999999999" },
		     { "42", "42" }, { "12", "12" }, { "-0", "-0" }, { "0.3", "0.3" },
		     { "155.1956029079", "155.1956029079" }, { "1795651600", "1795651600" },
		     { "9007199254740991", "9007199254740991" } };
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		char out[32];
		size_t n = numfmt_exact(strtod(text[i].in, NULL), out);
		out[n] = '\0';
		assert_string_equal(out, text[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(floats_round_trip),
		cmocka_unit_test(money_fast_path_matches_printf),
		cmocka_unit_test(amounts),
		cmocka_unit_test(amounts_match_strtod),
		cmocka_unit_test(amounts_round_trip_exactly),
	};
	return cmocka_run_group_tests_name("numfmt", tests, NULL, NULL);
}
