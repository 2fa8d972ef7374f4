/*
 * libFuzzer target: the streaming CSV reader (every AWS Data Exports file goes through
 * it). Differential: the input read at once, read in two parts split where its first byte
 * says, and read byte by byte give the same records and the same outcome; every field is
 * NUL-terminated and within the limits; and the records written back as CSV (every field
 * quoted) read back as the same records.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct csv_limits LIMITS = { .max_field = 64, .max_record = 256, .max_fields = 16 };

/* Each record as its field count and fields (length, bytes), appended to a buffer. */
static int dump(void *arg, const struct csv_record *r)
{
	struct buf *b = arg;
	if (r->n == 0 || r->n > LIMITS.max_fields)
		__builtin_trap();
	size_t total = 0;
	buf_printf(b, "%zu:", r->n);
	for (size_t i = 0; i < r->n; i++) {
		if (r->len[i] > LIMITS.max_field || r->field[i][r->len[i]] != '\0')
			__builtin_trap();
		total += r->len[i];
		buf_printf(b, "%zu=", r->len[i]);
		buf_append(b, r->field[i], r->len[i]);
	}
	if (total > LIMITS.max_record)
		__builtin_trap();
	buf_puts(b, ";");
	return 0;
}

/* Reads @data in parts that end at @cuts (ascending, last = size); the records into @out. */
static int read_parts(const char *data, const size_t *cuts, size_t ncuts, struct buf *out)
{
	char err[256];
	struct csv *p = csv_new(&LIMITS, dump, out);
	int rc = 0;
	size_t at = 0;
	for (size_t i = 0; i < ncuts && !rc; i++) {
		rc = csv_feed(p, data + at, cuts[i] - at, err, sizeof(err));
		at = cuts[i];
	}
	if (!rc)
		rc = csv_finish(p, err, sizeof(err));
	csv_free(p);
	return rc;
}

static void same(const struct buf *a, int ra, const struct buf *b, int rb)
{
	if (ra != rb || a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0))
		__builtin_trap();
}

/* The records of @a (as dump wrote them) written back as CSV with every field quoted. */
static void write_back(const struct buf *a, struct buf *csv)
{
	const char *s = a->data, *end = a->data + a->len;
	while (s < end) {
		char *next;
		size_t n = strtoul(s, &next, 10);
		s = next + 1; /* ':' */
		for (size_t i = 0; i < n; i++) {
			size_t len = strtoul(s, &next, 10);
			s = next + 1; /* '=' */
			buf_puts(csv, i ? ",\"" : "\"");
			for (size_t k = 0; k < len; k++)
				buf_append(csv, s[k] == '"' ? "\"\"" : s + k, s[k] == '"' ? 2 : 1);
			buf_puts(csv, "\"");
			s += len;
		}
		s++; /* ';' */
		buf_puts(csv, "\n");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf whole, two, bytes;
	buf_init(&whole, 1 << 20);
	buf_init(&two, 1 << 20);
	buf_init(&bytes, 1 << 20);
	size_t all[] = { size };
	int rw = read_parts(in, all, 1, &whole);
	size_t split = size ? data[0] % (size + 1) : 0;
	size_t halves[] = { split, size };
	int r2 = read_parts(in, halves, 2, &two);
	size_t *each = malloc((size + 1) * sizeof(*each));
	for (size_t i = 0; i < size; i++)
		each[i] = i + 1;
	int r1 = read_parts(in, each, size, &bytes);
	free(each);
	same(&whole, rw, &two, r2);
	same(&whole, rw, &bytes, r1);
	if (rw == 0 && whole.len) {
		struct buf csv, again;
		buf_init(&csv, 1 << 22);
		buf_init(&again, 1 << 20);
		write_back(&whole, &csv);
		size_t end[] = { csv.len };
		same(&whole, 0, &again, read_parts(csv.data, end, 1, &again));
		buf_free(&csv);
		buf_free(&again);
	}
	buf_free(&whole);
	buf_free(&two);
	buf_free(&bytes);
	return 0;
}
