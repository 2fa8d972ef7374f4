/* Unit tests for days.c: civil dates, month arithmetic, windows across boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>

#include "../../src/base/days.c"

static long d(const char *s)
{
	long v = 0;
	assert_int_equal(days_parse(s, &v), 0);
	return v;
}

static const char *f(long day)
{
	static char out[4][11];
	static int i;
	i = (i + 1) % 4;
	days_format(day, out[i]);
	return out[i];
}

static void civil(void **state)
{
	(void)state;
	assert_int_equal(d("1970-01-01"), 0);
	assert_int_equal(d("1970-01-02"), 1);
	assert_int_equal(d("1969-12-31"), -1);
	assert_int_equal(d("2000-03-01") - d("2000-02-28"), 2); /* 2000 is a leap year */
	assert_int_equal(d("1900-03-01") - d("1900-02-28"), 1); /* 1900 is not */
	assert_int_equal(d("2024-03-01") - d("2024-02-28"), 2);
	assert_string_equal(f(d("2026-11-26")), "2026-11-26");
	/* 2026-11-26T00:00:00Z = 1795651200 */
	assert_int_equal(d("2026-11-26"), 1795651200L / 86400);
	assert_int_equal(days_of_time(1795651200.0), d("2026-11-26"));
	assert_int_equal(days_of_time(1795651199.999), d("2026-11-25"));
	assert_true(days_start_time(d("2026-11-26")) == 1795651200.0);
	long out;
	const char *bad[] = { "2026-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "20261101",
			      "2026-11-31", "2026-11-01x", "", "abcd-ef-gh" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (days_parse(bad[i], &out) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(days_parse("2024-02-29", &out), 0);
}

static void months(void **state)
{
	(void)state;
	assert_string_equal(f(days_month_start(d("2026-11-26"))), "2026-11-01");
	assert_string_equal(f(days_next_month(d("2026-11-26"))), "2026-12-01");
	assert_string_equal(f(days_next_month(d("2026-12-31"))), "2027-01-01");
	assert_string_equal(f(days_prev_month(d("2027-01-15"))), "2026-12-01");
	assert_string_equal(f(days_prev_month(d("2026-03-31"))), "2026-02-01");
}

static void window(enum window w, const char *today, const char *start, const char *end)
{
	long s, e;
	days_window(w, d(today), &s, &e);
	if (strcmp(f(s), start) != 0 || strcmp(f(e), end) != 0)
		fail_msg("%s on %s: got [%s, %s), want [%s, %s)", days_window_name(w), today, f(s), f(e),
			 start, end);
}

static void windows(void **state)
{
	(void)state;
	window(WIN_TODAY, "2026-11-26", "2026-11-26", "2026-11-27");
	window(WIN_YESTERDAY, "2026-11-26", "2026-11-25", "2026-11-26");
	window(WIN_BASELINE, "2026-11-26", "2026-11-18", "2026-11-25"); /* 7 days: 18..24 */
	window(WIN_MONTH_TO_DATE, "2026-11-26", "2026-11-01", "2026-11-27");
	window(WIN_PREVIOUS_MONTH, "2026-11-26", "2026-10-01", "2026-11-01");
	/* on the first of a month: yesterday is last month, month-to-date is one day */
	window(WIN_YESTERDAY, "2026-12-01", "2026-11-30", "2026-12-01");
	window(WIN_MONTH_TO_DATE, "2026-12-01", "2026-12-01", "2026-12-02");
	window(WIN_BASELINE, "2026-12-01", "2026-11-23", "2026-11-30");
	/* across the year */
	window(WIN_PREVIOUS_MONTH, "2027-01-01", "2026-12-01", "2027-01-01");
	window(WIN_YESTERDAY, "2027-01-01", "2026-12-31", "2027-01-01");
	window(WIN_BASELINE, "2027-01-03", "2026-12-26", "2027-01-02");
	/* leap day */
	window(WIN_PREVIOUS_MONTH, "2028-03-01", "2028-02-01", "2028-03-01");
	window(WIN_YESTERDAY, "2028-03-01", "2028-02-29", "2028-03-01");
	long s, e;
	days_query_window(d("2026-11-26"), &s, &e);
	assert_string_equal(f(s), "2026-10-01");
	assert_string_equal(f(e), "2026-11-27");
	days_query_window(d("2027-01-01"), &s, &e);
	assert_string_equal(f(s), "2026-12-01");
	assert_string_equal(f(e), "2027-01-02");
}

static void midnight(void **state)
{
	(void)state;
	/* one second before and at UTC midnight the windows move by one day */
	long before = days_of_time(1795737599.0), after = days_of_time(1795737600.0);
	assert_string_equal(f(before), "2026-11-26");
	assert_string_equal(f(after), "2026-11-27");
	long s1, e1, s2, e2;
	days_window(WIN_YESTERDAY, before, &s1, &e1);
	days_window(WIN_YESTERDAY, after, &s2, &e2);
	assert_int_equal(s2, s1 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(civil),
		cmocka_unit_test(months),
		cmocka_unit_test(windows),
		cmocka_unit_test(midnight),
	};
	return cmocka_run_group_tests_name("days", tests, NULL, NULL);
}
