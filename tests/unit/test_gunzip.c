/* Unit tests for gunzip.c: members, chunks of any size, truncation, corruption, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "../../src/base/gunzip.c"

/* @len bytes of @in as one gzip member (zlib's deflate with a gzip header); caller frees. */
static unsigned char *gz(const void *in, size_t len, size_t *out_len)
{
	z_stream z = { 0 };
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	unsigned char *out = malloc(cap);
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

struct sink {
	struct buf b;
	int fail_after; /* return -ECANCELED once this many bytes arrived (0: never) */
};

static int take(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;
	assert_true(len > 0 && len <= WINDOW);
	buf_append(&s->b, data, len);
	return s->fail_after && s->b.len >= (size_t)s->fail_after ? -ECANCELED : 0;
}

/* Inflates @in in chunks of @chunk (0: at once); the result of the last call. */
static int inflate_all(const unsigned char *in, size_t len, size_t chunk, uint64_t max_out,
		       struct sink *s, char *err, size_t errlen)
{
	struct gunzip *g = gunzip_new(max_out, take, s);
	assert_non_null(g);
	int rc = 0;
	for (size_t at = 0; at < len && !rc;) {
		size_t n = chunk && len - at > chunk ? chunk : len - at;
		rc = gunzip_feed(g, in + at, n, err, errlen);
		at += n;
	}
	if (!rc)
		rc = gunzip_finish(g, err, errlen);
	if (!rc)
		assert_int_equal(gunzip_in(g), len);
	gunzip_free(g);
	return rc;
}

/* A text of @n bytes that compresses (lines of CSV with a counter). */
static char *text(size_t n)
{
	char *t = malloc(n + 1);
	size_t at = 0;
	for (unsigned i = 0; at < n; i++) {
		char line[96];
		int k = snprintf(line, sizeof(line), "2026-12-01T%02u:00:00Z,123456789012,Usage,%u,0.%06u\n",
				 i % 24, i, i * 7919 % 1000000);
		size_t take_n = (size_t)k < n - at ? (size_t)k : n - at;
		memcpy(t + at, line, take_n);
		at += take_n;
	}
	t[n] = '\0';
	return t;
}

static void members_and_chunks(void **state)
{
	(void)state;
	size_t n = 3 * WINDOW + 123, l1, l2;
	char *t = text(n);
	unsigned char *a = gz(t, n, &l1), *b = gz("tail\n", 5, &l2);
	unsigned char *both = malloc(l1 + l2);
	memcpy(both, a, l1);
	memcpy(both + l1, b, l2);
	static const size_t chunks[] = { 0, 1, 7, 4096 };
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct sink s = { 0 };
		buf_init(&s.b, 1 << 24);
		char err[256] = "";
		int rc = inflate_all(both, l1 + l2, chunks[c], 0, &s, err, sizeof(err));
		if (rc)
			fail_msg("chunk %zu: %s", chunks[c], err);
		assert_int_equal(s.b.len, n + 5);
		assert_memory_equal(s.b.data, t, n);
		assert_memory_equal(s.b.data + n, "tail\n", 5);
		buf_free(&s.b);
	}
	/* an empty member is a member */
	size_t le;
	unsigned char *e = gz("", 0, &le);
	struct sink s = { 0 };
	buf_init(&s.b, 1024);
	char err[256];
	assert_int_equal(inflate_all(e, le, 0, 0, &s, err, sizeof(err)), 0);
	assert_int_equal(s.b.len, 0);
	buf_free(&s.b);
	free(e);
	free(a);
	free(b);
	free(both);
	free(t);
}

static void expect_error(const unsigned char *in, size_t len, uint64_t max_out, int want_rc,
			 const char *want)
{
	static const size_t chunks[] = { 0, 1, 1000 };
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct sink s = { 0 };
		buf_init(&s.b, 1 << 24);
		char err[256] = "";
		int rc = inflate_all(in, len, chunks[c], max_out, &s, err, sizeof(err));
		if (rc != want_rc || !strstr(err, want))
			fail_msg("chunk %zu: rc %d (want %d), \"%s\" (want \"%s\")", chunks[c], rc,
				 want_rc, err, want);
		buf_free(&s.b);
	}
}

static void refusals(void **state)
{
	(void)state;
	size_t n = 2 * WINDOW, l;
	char *t = text(n);
	unsigned char *z = gz(t, n, &l);
	/* truncated: anywhere inside the member, the trailer included */
	expect_error(z, l / 2, 0, -EPROTO, "the file ends inside a member (truncated");
	expect_error(z, l - 4, 0, -EPROTO, "the file ends inside a member (truncated");
	expect_error(z, 0, 0, -EPROTO, "the file ends before any member");
	/* not gzip at all */
	expect_error((const unsigned char *)"PAR1 is parquet", 15, 0, -EPROTO, "gzip: ");
	/* corrupt: a flipped byte in the deflate data, or in the CRC */
	unsigned char *bad = malloc(l);
	memcpy(bad, z, l);
	bad[l / 2] ^= 0x55;
	expect_error(bad, l, 0, -EPROTO, "gzip: ");
	memcpy(bad, z, l);
	bad[l - 6] ^= 1;
	expect_error(bad, l, 0, -EPROTO, "incorrect data check");
	/* a member followed by garbage */
	unsigned char *tail = malloc(l + 4);
	memcpy(tail, z, l);
	memcpy(tail + l, "junk", 4);
	expect_error(tail, l + 4, 0, -EPROTO, "gzip: ");
	/* the limit on what it inflates to */
	expect_error(z, l, n - 1, -EFBIG, "more than");
	free(tail);
	free(bad);
	free(z);
	free(t);
}

static void callback_and_after_an_error(void **state)
{
	(void)state;
	size_t n = 4 * WINDOW, l;
	char *t = text(n);
	unsigned char *z = gz(t, n, &l);
	struct sink s = { .fail_after = 1 };
	buf_init(&s.b, 1 << 24);
	struct gunzip *g = gunzip_new(0, take, &s);
	char err[256];
	assert_int_equal(gunzip_feed(g, z, l, err, sizeof(err)), -ECANCELED);
	assert_int_equal(s.b.len, WINDOW);
	assert_int_equal(gunzip_feed(g, z, l, err, sizeof(err)), -ECANCELED);
	assert_non_null(strstr(err, "earlier error"));
	assert_int_equal(gunzip_finish(g, err, sizeof(err)), -ECANCELED);
	assert_int_equal(s.b.len, WINDOW);
	gunzip_free(g);
	buf_free(&s.b);
	free(z);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(members_and_chunks),
		cmocka_unit_test(refusals),
		cmocka_unit_test(callback_and_after_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
