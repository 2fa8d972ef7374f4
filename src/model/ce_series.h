/*
 * ce_series.h - what Cost Explorer answers, as plain data: amounts per day
 * (or per month) and per group of up to two group-by values. Filled by the
 * Cost Explorer wire parsers (sources/ce_api.c), kept by the cost source and
 * the state file, read by attribution. Not thread-safe; one owner.
 */
#ifndef BCE_CE_SERIES_H
#define BCE_CE_SERIES_H

#include <stdbool.h>
#include <stddef.h>

/* One group of one period: up to two group-by values and the cost. */
struct ce_group {
	char *k[2]; /* tag values (the part after '$') or dimension values; NULL if unused */
	double amount;
};

/* One period (a day for DAILY queries), identified by its first day. */
struct ce_day {
	long day; /* base/days.h day number: the period's first day */
	bool estimated;
	struct ce_group *g;
	size_t n;
	long end; /* the day after its last day; 0 = day + 1 (a DAILY period) */
};

/* The day after the period's last day. */
long ce_day_end(const struct ce_day *d);

/* Periods ascending by day, each day once. */
struct ce_series {
	struct ce_day *days;
	size_t n;
};

void ce_day_free(struct ce_day *d);
void ce_series_free(struct ce_series *s);
/* Deep copy of days [from, to) of @s appended to @out. */
void ce_series_copy_range(const struct ce_series *s, long from, long to, struct ce_series *out);
/* Returns the day's entry or NULL (binary search). */
const struct ce_day *ce_series_find(const struct ce_series *s, long day);
/* Sum of every group of @s over days [from, to). */
double ce_series_sum(const struct ce_series *s, long from, long to);

/*
 * Cost Explorer amounts carry at most 10 decimals; sums of doubles grow noise
 * below that (155.19560290789997). Rounded to 1e-10 USD it prints 155.1956029079.
 */
double ce_money(double v);

#endif
