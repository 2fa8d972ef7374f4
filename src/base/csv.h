/*
 * csv.h - a streaming CSV reader (RFC 4180) in bounded memory: bytes in, in chunks of any
 * size, records out, one at a time. Written for AWS Data Exports (CUR 2.0) files, which
 * arrive gzip-compressed and gigabytes long (sources/data_exports, issue 15).
 *
 * The format: fields are separated by ',' and records by LF or CRLF. A field that starts
 * with '"' is quoted: it ends at the next lone '"', and may hold ',', CR, LF and doubled
 * quotes ("" stands for one). Empty lines are skipped (a record of one empty field cannot
 * be told from them, and export files end with one).
 *
 * What is refused, each with the record number and the physical line it starts on:
 *  - a field longer than limits.max_field bytes, or a record longer than max_record bytes
 *    (-EMSGSIZE), or a record of more than max_fields fields (-E2BIG);
 *  - a '"' inside an unquoted field, anything but ',', CR or LF after a closing quote, a CR
 *    not followed by LF outside quotes (-EPROTO);
 *  - a quoted field still open at the end of the input (-EPROTO, from csv_finish).
 * After an error the reader refuses everything (the input is not trusted past it).
 *
 * Memory: the current record only (at most max_record bytes plus its field table), so a
 * 5 GB file costs what a small one does. Not thread-safe; one reader per input.
 */
#ifndef BCE_CSV_H
#define BCE_CSV_H

#include <stddef.h>

struct csv_limits {
	size_t max_field;  /* bytes of one field, unescaped */
	size_t max_record; /* bytes of one record's fields together */
	size_t max_fields; /* fields of one record */
};

/* The defaults: a field of 256 KiB, a record of 1 MiB, 4096 fields. */
extern const struct csv_limits CSV_DEFAULT_LIMITS;

/* One record, valid during the callback only. field[i] is NUL-terminated (a field may also
 * hold NUL bytes: len[i] is its length). */
struct csv_record {
	size_t n;
	char *const *field;
	const size_t *len;
	unsigned long long number; /* 1-based, empty lines not counted */
	unsigned long long line;   /* the physical line it starts on, 1-based */
};

/* Called for each record; a non-zero return stops the reader, and csv_feed/csv_finish
 * return it (the callback fills the error text through its own argument). */
typedef int (*csv_record_fn)(void *arg, const struct csv_record *r);

struct csv;

/* A reader with @limits (NULL: the defaults) that hands records to @fn(@arg). */
struct csv *csv_new(const struct csv_limits *limits, csv_record_fn fn, void *arg);
void csv_free(struct csv *p);

/* Reads @len bytes. Returns 0; a negative errno with @err filled as listed above; or the
 * callback's non-zero return. */
int csv_feed(struct csv *p, const char *data, size_t len, char *err, size_t errlen);

/* The end of the input: the last record when it has no final newline; -EPROTO when a
 * quoted field is open. Returns as csv_feed. */
int csv_finish(struct csv *p, char *err, size_t errlen);

#endif
