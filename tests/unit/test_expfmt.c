/* Unit tests for expfmt.c: escaping, names, float formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/model/expfmt.c"

static char *escaped(const char *in)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(expfmt_put_label_value(&b, in), 0);
	return buf_steal(&b, NULL);
}

static void label_value_escaping(void **state)
{
	(void)state;
	struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "say \"hi\"", "say \\\"hi\\\"" },
		{ "C:\\path\\x", "C:\\\\path\\\\x" },
		{ "two\nlines", "two\\nlines" },
		{ "tab\there", "tab\there" }, /* tabs are legal as is */
		{ "Z\xc3\xbcrich \xe2\x98\x83", "Z\xc3\xbcrich \xe2\x98\x83" },
		{ "emoji \xf0\x9f\x92\xb8", "emoji \xf0\x9f\x92\xb8" },
		{ "\\\"\n", "\\\\\\\"\\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escaped(cases[i].in);
		assert_string_equal(got, cases[i].want);
		free(got);
	}
}

static void invalid_utf8_is_replaced(void **state)
{
	(void)state;
	const char *rep = "\xef\xbf\xbd";
	struct {
		const char *in;
		const char *want_fmt; /* %s = replacement character */
	} cases[] = {
		{ "a\xff" "b", "a%sb" },              /* never valid */
		{ "a\xc3", "a%s" },                   /* truncated sequence */
		{ "\xc0\xaf", "%s%s" },               /* overlong '/' */
		{ "\xed\xa0\x80", "%s%s%s" },         /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", "%s%s%s%s" },   /* above U+10FFFF */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), cases[i].want_fmt, rep, rep, rep, rep);
		char *got = escaped(cases[i].in);
		assert_string_equal(got, want);
		free(got);
	}
}

static void long_values_are_capped(void **state)
{
	(void)state;
	char *in = malloc(EXPFMT_MAX_LABEL_VALUE * 2 + 1);
	memset(in, 'x', EXPFMT_MAX_LABEL_VALUE * 2);
	in[EXPFMT_MAX_LABEL_VALUE * 2] = '\0';
	char *got = escaped(in);
	assert_int_equal(strlen(got), EXPFMT_MAX_LABEL_VALUE);
	free(got);
	/* a multi-byte character cut by the cap becomes a replacement, never half a character */
	memset(in, 'x', EXPFMT_MAX_LABEL_VALUE - 1);
	strcpy(in + EXPFMT_MAX_LABEL_VALUE - 1, "\xc3\xbc");
	got = escaped(in);
	assert_string_equal(got + EXPFMT_MAX_LABEL_VALUE - 1, "\xef\xbf\xbd");
	free(got);
	free(in);
}

static void help_escaping(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1024);
	expfmt_put_help(&b, "a \\ b\nc \"d\"");
	assert_string_equal(b.data, "a \\\\ b\\nc \"d\"");
	buf_free(&b);
}

static void floats_round_trip(void **state)
{
	(void)state;
	char out[32];
	assert_string_equal(expfmt_format_double(1, out), "1");
	assert_string_equal(expfmt_format_double(0, out), "0");
	assert_string_equal(expfmt_format_double(0.1, out), "0.1");
	assert_string_equal(expfmt_format_double(-2.5, out), "-2.5");
	assert_string_equal(expfmt_format_double(1795696078.25, out), "1795696078.25");
	assert_string_equal(expfmt_format_double(NAN, out), "NaN");
	assert_string_equal(expfmt_format_double(INFINITY, out), "+Inf");
	assert_string_equal(expfmt_format_double(-INFINITY, out), "-Inf");
	double hard[] = { 1.0 / 3.0, 0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308,
			  123456789.123456789, -0.000123 };
	for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
		expfmt_format_double(hard[i], out);
		assert_true(strtod(out, NULL) == hard[i]);
	}
	/* shortest: 0.1+0.2 needs 17 digits, 1/3 needs 16 */
	assert_string_equal(expfmt_format_double(0.1 + 0.2, out), "0.30000000000000004");
}

/* The money fast path must print exactly what the printf path prints. */
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
		expfmt_format_double(v, out);
		if (strcmp(out, want) != 0)
			fail_msg("%.17g: got %s, printf %s", v, out, want);
	}
}

static void names(void **state)
{
	(void)state;
	assert_true(expfmt_valid_metric_name("bedrock_cost_projects"));
	assert_true(expfmt_valid_metric_name("a:b_c"));
	assert_false(expfmt_valid_metric_name("1abc"));
	assert_false(expfmt_valid_metric_name(""));
	assert_false(expfmt_valid_metric_name("a-b"));
	assert_true(expfmt_valid_label_name("tag_costcenter"));
	assert_true(expfmt_valid_label_name("_x"));
	assert_false(expfmt_valid_label_name("__reserved"));
	assert_false(expfmt_valid_label_name("a:b"));
	assert_false(expfmt_valid_label_name("9a"));
	assert_false(expfmt_valid_label_name(""));
}

static void tag_label_names(void **state)
{
	(void)state;
	struct {
		const char *key, *want;
	} cases[] = {
		{ "Application", "tag_application" },
		{ "CostCenter", "tag_costcenter" },
		{ "cost-center", "tag_cost_center" },
		{ "aws:createdBy", "tag_aws_createdby" },
		{ "Owner Email", "tag_owner_email" },
		{ "\xc3\x9c" "ber", "tag___ber" }, /* each non-ASCII byte becomes _ */
		{ "9lives", "tag_9lives" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = expfmt_tag_label_name(cases[i].key);
		assert_string_equal(got, cases[i].want);
		assert_true(expfmt_valid_label_name(got));
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_value_escaping),
		cmocka_unit_test(invalid_utf8_is_replaced),
		cmocka_unit_test(long_values_are_capped),
		cmocka_unit_test(help_escaping),
		cmocka_unit_test(floats_round_trip),
		cmocka_unit_test(money_fast_path_matches_printf),
		cmocka_unit_test(names),
		cmocka_unit_test(tag_label_names),
	};
	return cmocka_run_group_tests_name("expfmt", tests, NULL, NULL);
}
