/*
 * days.c - see days.h. The civil-date conversions are Howard Hinnant's
 * public-domain algorithms (days_from_civil / civil_from_days).
 */
#include "base/days.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

long days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void days_to_civil(long z, int *y, int *m, int *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = yoe + era * 400;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

long days_of_time(double t)
{
	return (long)floor(t / 86400.0);
}

double days_start_time(long day)
{
	return (double)day * 86400.0;
}

void days_format(long day, char out[11])
{
	int y, m, d;
	days_to_civil(day, &y, &m, &d);
	char tmp[48];
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", y, m, d);
	memcpy(out, tmp, 10);
	out[10] = '\0';
}

int days_parse(const char *s, long *day)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -EINVAL;
	int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	int m = (s[5] - '0') * 10 + (s[6] - '0');
	int d = (s[8] - '0') * 10 + (s[9] - '0');
	if (m < 1 || m > 12 || d < 1 || d > 31)
		return -EINVAL;
	long z = days_from_civil(y, m, d);
	int y2, m2, d2;
	days_to_civil(z, &y2, &m2, &d2);
	if (y2 != y || m2 != m || d2 != d) /* e.g. 2026-02-30 */
		return -EINVAL;
	*day = z;
	return 0;
}

long days_month_start(long day)
{
	int y, m, d;
	days_to_civil(day, &y, &m, &d);
	return days_from_civil(y, m, 1);
}

long days_next_month(long day)
{
	int y, m, d;
	days_to_civil(day, &y, &m, &d);
	return m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
}

long days_prev_month(long day)
{
	int y, m, d;
	days_to_civil(day, &y, &m, &d);
	return m == 1 ? days_from_civil(y - 1, 12, 1) : days_from_civil(y, m - 1, 1);
}

const char *days_window_name(enum window w)
{
	static const char *const names[WIN_COUNT] = { "today", "yesterday", "baseline",
						      "month_to_date", "previous_month" };
	return w < WIN_COUNT ? names[w] : "unknown";
}

void days_window(enum window w, long today, long *start, long *end)
{
	switch (w) {
	case WIN_TODAY:
		*start = today;
		*end = today + 1;
		break;
	case WIN_YESTERDAY:
		*start = today - 1;
		*end = today;
		break;
	case WIN_BASELINE:
		*start = today - 1 - BASELINE_DAYS;
		*end = today - 1;
		break;
	case WIN_MONTH_TO_DATE:
		*start = days_month_start(today);
		*end = today + 1;
		break;
	case WIN_PREVIOUS_MONTH:
	default:
		*start = days_prev_month(today);
		*end = days_month_start(today);
		break;
	}
}

void days_query_window(long today, long *start, long *end)
{
	long s = days_prev_month(today);
	/* the baseline may reach further back than the previous month's first day */
	if (today - 1 - BASELINE_DAYS < s)
		s = today - 1 - BASELINE_DAYS;
	*start = s;
	*end = today + 1;
}
