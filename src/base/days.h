/*
 * days.h - UTC calendar arithmetic on day numbers (days since 1970-01-01),
 * and the reporting windows the cost metrics use. Pure, thread-safe; no
 * time zone other than UTC is ever involved.
 */
#ifndef BCE_DAYS_H
#define BCE_DAYS_H

#include <stdbool.h>

/* Day number of a civil date (proleptic Gregorian). */
long days_from_civil(int y, int m, int d);
void days_to_civil(long day, int *y, int *m, int *d);
/* The UTC day containing Unix time @t. */
long days_of_time(double t);
/* Unix seconds of the day's 00:00:00 UTC. */
double days_start_time(long day);
/* Writes "YYYY-MM-DD" (11 bytes with NUL). */
void days_format(long day, char out[11]);
/* Parses exactly "YYYY-MM-DD" (a real date). Returns 0 or -EINVAL. */
int days_parse(const char *s, long *day);
/* First day of the month containing @day, and of the next / previous month. */
long days_month_start(long day);
long days_next_month(long day);
long days_prev_month(long day);

enum window {
	WIN_TODAY,          /* the current UTC day so far */
	WIN_YESTERDAY,
	WIN_BASELINE,       /* the 7 complete days before yesterday */
	WIN_MONTH_TO_DATE,  /* first of this month .. today */
	WIN_PREVIOUS_MONTH,
	WIN_COUNT
};

#define BASELINE_DAYS 7

/* The window's name as used in the `window` label: "today", "yesterday", ... */
const char *days_window_name(enum window w);
/* The window's days as [start, end). */
void days_window(enum window w, long today, long *start, long *end);
/* The attribution query's window: first day of the previous month .. tomorrow. */
void days_query_window(long today, long *start, long *end);

#endif
