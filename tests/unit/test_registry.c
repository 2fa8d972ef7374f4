/* Unit tests for registry.c: ordering, grouping, duplicates, validation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/model/registry.c"

static const struct metric_def m_b = { "b_metric", METRIC_GAUGE, "B help\nwith \\ newline" };
static const struct metric_def m_a = { "a_total", METRIC_COUNTER, "A help" };
static const struct metric_def m_bad = { "bad-name", METRIC_GAUGE, "x" };

static char *render(struct reg *r, size_t *dropped)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(reg_render(r, &b, dropped), 0);
	return buf_steal(&b, NULL);
}

static void sorted_contiguous_with_help_and_type(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	reg_addv(r, &m_b, 2, "region", "us-west-2", (char *)0);
	reg_addv(r, &m_a, 7, "op", "List", (char *)0);
	reg_addv(r, &m_b, 1.5, "region", "eu-west-1", (char *)0);
	reg_addv(r, &m_a, 0, (char *)0);
	size_t dropped = 99;
	char *out = render(r, &dropped);
	assert_int_equal(dropped, 0);
	const char *want =
		"# HELP a_total A help\n"
		"# TYPE a_total counter\n"
		"a_total 0\n"
		"a_total{op=\"List\"} 7\n"
		"# HELP b_metric B help\\nwith \\\\ newline\n"
		"# TYPE b_metric gauge\n"
		"b_metric{region=\"eu-west-1\"} 1.5\n"
		"b_metric{region=\"us-west-2\"} 2\n";
	assert_string_equal(out, want);
	free(out);
	reg_free(r);
}

static void duplicates_are_dropped(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	reg_addv(r, &m_b, 1, "k", "v", (char *)0);
	reg_addv(r, &m_b, 2, "k", "v", (char *)0);
	reg_addv(r, &m_b, 3, "k", "w", (char *)0);
	size_t dropped = 0;
	char *out = render(r, &dropped);
	assert_int_equal(dropped, 1);
	/* exactly one series for k="v" */
	const char *first = strstr(out, "b_metric{k=\"v\"}");
	assert_non_null(first);
	assert_null(strstr(first + 1, "b_metric{k=\"v\"}"));
	assert_non_null(strstr(out, "b_metric{k=\"w\"} 3\n"));
	free(out);
	reg_free(r);
}

static void invalid_names_never_reach_output(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	assert_int_equal(reg_addv(r, &m_bad, 1, (char *)0), -EINVAL);
	assert_int_equal(reg_addv(r, &m_b, 1, "bad-label", "x", (char *)0), -EINVAL);
	assert_int_equal(reg_addv(r, &m_b, 1, "__name__", "x", (char *)0), -EINVAL);
	assert_int_equal(reg_count(r), 0);
	char *out = render(r, NULL);
	assert_string_equal(out, "");
	free(out);
	reg_free(r);
}

static void label_values_are_escaped(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	reg_addv(r, &m_b, 1, "name", "a\"b\\c\nd", (char *)0);
	char *out = render(r, NULL);
	assert_non_null(strstr(out, "b_metric{name=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(out);
	reg_free(r);
}

static void many_samples_stay_sorted(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	char v[16];
	for (int i = 999; i >= 0; i--) {
		snprintf(v, sizeof(v), "p%04d", i);
		reg_addv(r, &m_b, i, "id", v, (char *)0);
	}
	char *out = render(r, NULL);
	const char *prev = strstr(out, "b_metric{id=\"p0000\"}");
	assert_non_null(prev);
	for (int i = 1; i < 1000; i++) {
		snprintf(v, sizeof(v), "\"p%04d\"", i);
		const char *cur = strstr(out, v);
		assert_non_null(cur);
		assert_true(cur > prev);
		prev = cur;
	}
	free(out);
	reg_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sorted_contiguous_with_help_and_type),
		cmocka_unit_test(duplicates_are_dropped),
		cmocka_unit_test(invalid_names_never_reach_output),
		cmocka_unit_test(label_values_are_escaped),
		cmocka_unit_test(many_samples_stay_sorted),
	};
	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
