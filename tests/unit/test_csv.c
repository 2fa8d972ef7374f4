/* Unit tests for csv.c: RFC 4180 records from chunks of any size, and every refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/csv.c"

/* What the callback saw: each record as "[line] field|field|...\n", bytes < 0x20 as \xNN. */
struct seen {
	struct buf out;
	unsigned long long records;
	int stop_at; /* return -ECANCELED at this record number (0: never) */
};

static int collect(void *arg, const struct csv_record *r)
{
	struct seen *s = arg;
	s->records++;
	assert_int_equal(r->number, s->records);
	buf_printf(&s->out, "[%llu]", r->line);
	for (size_t i = 0; i < r->n; i++) {
		assert_int_equal(r->field[i][r->len[i]], '\0');
		buf_puts(&s->out, i ? "|" : " ");
		for (size_t k = 0; k < r->len[i]; k++) {
			unsigned char c = (unsigned char)r->field[i][k];
			if (c < 0x20)
				buf_printf(&s->out, "\\x%02x", c);
			else
				buf_append(&s->out, (const char *)&c, 1);
		}
	}
	buf_puts(&s->out, "\n");
	return s->stop_at && (int)s->records == s->stop_at ? -ECANCELED : 0;
}

/* Reads @in in chunks of @chunk bytes (0: at once); returns the result of the last call and
 * what was seen in *out (caller frees). */
static int read_all(const char *in, size_t len, size_t chunk, const struct csv_limits *lim,
		    char **out, char *err, size_t errlen)
{
	struct seen s = { 0 };
	buf_init(&s.out, 1 << 24);
	struct csv *p = csv_new(lim, collect, &s);
	int rc = 0;
	for (size_t at = 0; at < len && !rc;) {
		size_t n = chunk && len - at > chunk ? chunk : len - at;
		rc = csv_feed(p, in + at, n, err, errlen);
		at += n;
	}
	if (!rc)
		rc = csv_finish(p, err, errlen);
	csv_free(p);
	*out = buf_steal(&s.out, NULL);
	if (!*out)
		*out = strdup("");
	return rc;
}

static void expect(const char *in, const char *want)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7 };
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		char err[256] = "", *got = NULL;
		int rc = read_all(in, strlen(in), chunks[c], NULL, &got, err, sizeof(err));
		if (rc)
			fail_msg("chunk %zu: %s", chunks[c], err);
		if (strcmp(got, want) != 0)
			fail_msg("chunk %zu of %s:\n got %s\nwant %s", chunks[c], in, got, want);
		free(got);
	}
}

static void records(void **state)
{
	(void)state;
	expect("a,b,c\n1,2,3\n", "[1] a|b|c\n[2] 1|2|3\n");
	expect("a,b\r\n1,2\r\n", "[1] a|b\n[2] 1|2\n");            /* CRLF */
	expect("a,b\n1,2", "[1] a|b\n[2] 1|2\n");                  /* no final newline */
	expect("a,,c,\n,\n", "[1] a||c|\n[2] |\n");                /* empty fields */
	expect("\n\na\n\n\nb\n", "[3] a\n[6] b\n");                /* empty lines skipped */
	expect("\"\"\n", "[1] \n");                                /* a quoted empty field is one */
	expect("\"a,b\",\"say \"\"hi\"\"\"\n", "[1] a,b|say \"hi\"\n");
	expect("\"x\ny\",z\r\nnext,1\n", "[1] x\\x0ay|z\n[3] next|1\n"); /* lines counted inside quotes */
	expect("\"a\r\nb\"\n", "[1] a\\x0d\\x0ab\n");
	expect("\"\",\"\"", "[1] |\n");
	expect("", "");
	expect("\"q\"", "[1] q\n");
	expect("a,b\r", "[1] a|b\n");                               /* a last CR without its LF */
}

static void expect_error(const char *in, size_t len, const struct csv_limits *lim, int want_rc,
			 const char *want_err)
{
	static const size_t chunks[] = { 0, 1, 5 };
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		char err[256] = "", *got = NULL;
		int rc = read_all(in, len, chunks[c], lim, &got, err, sizeof(err));
		free(got);
		if (rc != want_rc || !strstr(err, want_err))
			fail_msg("chunk %zu of %.60s: rc %d (want %d), error \"%s\" (want \"%s\")",
				 chunks[c], in, rc, want_rc, err, want_err);
	}
}

static void refusals(void **state)
{
	(void)state;
	expect_error("a,b\"c\n", 6, NULL, -EPROTO, "record 1 (line 1): a '\"' inside an unquoted");
	expect_error("ok\n\"a\"b\n", 8, NULL, -EPROTO,
		     "record 2 (line 2): a character after the closing quote");
	expect_error("a\rb\n", 4, NULL, -EPROTO, "a CR not followed by LF");
	expect_error("x\n\"open,\nnever closed", 22, NULL, -EPROTO,
		     "record 2 (line 2): a quoted field still open at the end");
	struct csv_limits small = { .max_field = 4, .max_record = 10, .max_fields = 3 };
	expect_error("abcde\n", 6, &small, -EMSGSIZE, "a field longer than 4 bytes");
	expect_error("\"ab\"\"cd\"\n", 9, &small, -EMSGSIZE, "a field longer than 4 bytes");
	expect_error("abcd,abcd,abc\n", 14, &small, -EMSGSIZE, "a record longer than 10 bytes");
	expect_error("a,b,c,d\n", 8, &small, -E2BIG, "more than 3 fields");
	/* a field of 1 MiB with the default limits (256 KiB a field) */
	size_t big = 1024 * 1024;
	char *in = malloc(big + 3);
	memset(in, 'x', big);
	memcpy(in + big, ",y", 3);
	expect_error(in, big + 2, NULL, -EMSGSIZE, "a field longer than 262144 bytes");
	in[0] = '"'; /* quoted, the same */
	in[big - 1] = '"';
	expect_error(in, big + 2, NULL, -EMSGSIZE, "a field longer than 262144 bytes");
	free(in);
}

static void stops_after_an_error(void **state)
{
	(void)state;
	struct seen s = { 0 };
	buf_init(&s.out, 4096);
	struct csv *p = csv_new(NULL, collect, &s);
	char err[256];
	assert_int_equal(csv_feed(p, "a\"\n", 3, err, sizeof(err)), -EPROTO);
	assert_int_equal(csv_feed(p, "fine\n", 5, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "earlier error"));
	assert_int_equal(csv_finish(p, err, sizeof(err)), -EPROTO);
	assert_int_equal(s.records, 0);
	csv_free(p);
	buf_free(&s.out);
}

static void callback_stops_the_reader(void **state)
{
	(void)state;
	struct seen s = { .stop_at = 2 };
	buf_init(&s.out, 4096);
	struct csv *p = csv_new(NULL, collect, &s);
	char err[256];
	assert_int_equal(csv_feed(p, "1\n2\n3\n", 6, err, sizeof(err)), -ECANCELED);
	assert_int_equal(s.records, 2);
	assert_int_equal(csv_feed(p, "4\n", 2, err, sizeof(err)), -ECANCELED);
	assert_int_equal(s.records, 2);
	csv_free(p);
	buf_free(&s.out);
}

/* The memory is one record's: a long file of small records never grows the buffer past
 * the largest record. */
static void bounded_memory(void **state)
{
	(void)state;
	struct seen s = { 0 };
	buf_init(&s.out, 1 << 26);
	struct csv *p = csv_new(NULL, NULL, NULL);
	char line[] = "2026-12-01T00:00:00Z,123456789012,\"Bedrock, tokens\",0.0001\n";
	char err[256];
	for (int i = 0; i < 100000; i++)
		assert_int_equal(csv_feed(p, line, sizeof(line) - 1, err, sizeof(err)), 0);
	assert_int_equal(csv_finish(p, err, sizeof(err)), 0);
	assert_int_equal(p->records, 100000);
	assert_true(p->cap <= 4096);
	assert_int_equal(p->line, 100001);
	csv_free(p);
	buf_free(&s.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records),
		cmocka_unit_test(refusals),
		cmocka_unit_test(stops_after_an_error),
		cmocka_unit_test(callback_stops_the_reader),
		cmocka_unit_test(bounded_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
