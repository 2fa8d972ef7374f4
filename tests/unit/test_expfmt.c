/* Unit tests for expfmt.c: escaping, names, float formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
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

/* The money fast path must print exactly what the printf path prints. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_value_escaping),
		cmocka_unit_test(invalid_utf8_is_replaced),
		cmocka_unit_test(long_values_are_capped),
		cmocka_unit_test(help_escaping),
		cmocka_unit_test(names),
	};
	return cmocka_run_group_tests_name("expfmt", tests, NULL, NULL);
}
