/* Unit tests for jsontape.c: fixed valid and invalid documents, and a
 * differential check against cJSON on random documents and their mutations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../../src/base/jsontape.c"
#include "jsontape_cjson.h"

static void valid_documents(void **state)
{
	(void)state;
	const char *docs[] = {
		"0", "-0.5e+10", "\"\"", "[]", "{}", " [ 1 , [ ] , { } ] ", "true", "null",
		"{\"a\":{\"b\":[1,2,{\"c\":\"d\"}]},\"e\":false}",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"",
		"{\"Keys\":[\"Application$A\\\"B\",\"Environment$\"]}",
		"[1E5,1e-5,-0,0.0,123456789012345678901234567890]",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct jsontape t;
		cJSON *j = cJSON_Parse(docs[i]);
		assert_non_null(j);
		if (jsontape_parse(&t, docs[i], strlen(docs[i])))
			fail_msg("rejected %s", docs[i]);
		if (!same(&t, 0, j))
			fail_msg("differs from cJSON: %s", docs[i]);
		jsontape_free(&t);
		cJSON_Delete(j);
	}
	/* duplicate keys: the first wins, as with cJSON_GetObjectItemCaseSensitive */
	struct jsontape t;
	const char *dup = "{\"a\":1,\"a\":2,\"\\u0061b\":3}";
	assert_int_equal(jsontape_parse(&t, dup, strlen(dup)), 0);
	size_t a = jt_get(&t, 0, "a");
	assert_int_equal(t.t[a].start, 5);
	assert_true(jt_is(&t, jt_get(&t, 0, "ab"), JT_NUMBER)); /* an escaped key matches */
	assert_int_equal(jt_get(&t, 0, "b"), JT_NONE);
	char small[2];
	assert_int_equal(jt_str(&t, 1, small, sizeof(small)), 1); /* "a" fits */
	assert_int_equal(jt_str(&t, 5, small, sizeof(small)), -1); /* "ab" does not */
	jsontape_free(&t);
}

static void invalid_documents(void **state)
{
	(void)state;
	const char *docs[] = {
		"", " ", "{", "[", "[1,]", "{\"a\":}", "{\"a\" 1}", "{1:2}", "[1 2]", "01", "1.", ".5",
		"-", "1e", "+1", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"a\tb\"", "{} x",
		"[]]", "NaN", "\"\\",
		/* a surrogate escape may stand alone (jsontape.h), but the text must still be JSON */
		"\"\\ud800", "\"\\ud800\\u12\"", "\"\\ud800\\\"", "\"\\udc0g\"", "\"\\u00\"",
		"\"\\U0041\"", "\"\\u0000\x01\"", "\"\xff", "[\"\xff\\x\"]",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct jsontape t;
		if (jsontape_parse(&t, docs[i], strlen(docs[i])) != -EPROTO)
			fail_msg("accepted \"%s\"", docs[i]);
		assert_int_equal(t.n, 0);
		jsontape_free(&t);
	}
	/* nesting is bounded */
	char deep[2 * JSONTAPE_MAX_DEPTH + 10];
	memset(deep, '[', JSONTAPE_MAX_DEPTH + 1);
	memset(deep + JSONTAPE_MAX_DEPTH + 1, ']', JSONTAPE_MAX_DEPTH + 1);
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, deep, 2 * JSONTAPE_MAX_DEPTH + 2), -EPROTO);
	jsontape_free(&t);
	assert_int_equal(jsontape_parse(&t, deep + 1, 2 * JSONTAPE_MAX_DEPTH), 0);
	jsontape_free(&t);
}

#define FFFD "\xEF\xBF\xBD"

/*
 * The string rule (jsontape.h): what is not valid UTF-8 comes out as U+FFFD,
 * the rest as it stands, and no such string fails the document. Each case is
 * a string's text between its quotes and the bytes that must come out; the
 * text is tried as a value and as an object key, and every way out of the
 * tape must agree.
 */
static void strings_come_out_as_valid_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
		/* \u0000 no longer ends the string */
		{ "a\\u0000b", "a" FFFD "b" },
		{ "\\u0000", FFFD },
		{ "\\u0000\\u0000x", FFFD FFFD "x" },
		/* surrogate escapes: a pair is one character, a lone half is U+FFFD */
		{ "\\ud800x", FFFD "x" },
		{ "\\udc00", FFFD },
		{ "\\ud800", FFFD },
		{ "\\ud800\\u0041", FFFD "A" },
		{ "\\udbff\\ud800", FFFD FFFD },
		{ "\\udc00\\ud800", FFFD FFFD },
		{ "\\ud800\\ud800\\udc00", FFFD "\xF0\x90\x80\x80" },
		{ "\\ud83d\\ude00", "\xF0\x9F\x98\x80" },
		{ "\\uD83D\\uDE00!", "\xF0\x9F\x98\x80!" },
		{ "\\udbff\\udfff", "\xF4\x8F\xBF\xBF" },
		{ "\\ud83d\\n\\ude00", FFFD "\n" FFFD },
		{ "\\u00e9\\u20ac\\uffff", "\xC3\xA9\xE2\x82\xAC\xEF\xBF\xBF" },
		/* raw bytes that are not UTF-8: one U+FFFD per maximal subpart */
		{ "\xFF", FFFD },
		{ "a\xFF" "b", "a" FFFD "b" },
		{ "\xC0\x80", FFFD FFFD },             /* overlong NUL */
		{ "\xC1\xBF", FFFD FFFD },             /* overlong DEL */
		{ "\xE0\x80\xAF", FFFD FFFD FFFD },    /* overlong '/' */
		{ "\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD },
		{ "\xED\xA0\x80", FFFD FFFD FFFD },    /* U+D800 encoded */
		{ "\xED\xBF\xBF", FFFD FFFD FFFD },    /* U+DFFF encoded */
		{ "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD }, /* above U+10FFFF */
		{ "\xF5\x80", FFFD FFFD },
		{ "ab\xE2\x82", "ab" FFFD },           /* cut at the end of the string */
		{ "\xE2\x82x", FFFD "x" },
		{ "\xF0\x9F\x98", FFFD },
		{ "\xF0\x9F\x98\xF0\x9F\x98\x80", FFFD "\xF0\x9F\x98\x80" },
		{ "\x80\xBF", FFFD FFFD },             /* stray continuation bytes */
		{ "\xC3", FFFD },
		{ "\xC3\\n", FFFD "\n" },              /* cut by an escape */
		{ "\xE2\x82\\u00ac", FFFD "\xC2\xAC" },
		{ "\\u00e9\xA9", "\xC3\xA9" FFFD },    /* an escape never completes raw bytes */
		/* valid UTF-8 is kept, at every length and at the edges of Table 3-7 */
		{ "Z\xC3\xBCrich \xE2\x82\xAC \xF0\x9F\x98\x80",
		  "Z\xC3\xBCrich \xE2\x82\xAC \xF0\x9F\x98\x80" },
		{ "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF",
		  "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF" },
		{ "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E" },
		/* a mixture */
		{ "Team \\u0000\xFF\\ud800\xC3\xA9\\ud83d\\ude00\xED\xA0\x80\\\"",
		  "Team " FFFD FFFD FFFD "\xC3\xA9\xF0\x9F\x98\x80" FFFD FFFD FFFD "\"" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *want = cases[c].want;
		size_t n = strlen(want);
		assert_true(ref_utf8_valid(want, n)); /* the validator agrees with the table */
		for (int as_key = 0; as_key < 2; as_key++) {
			char doc[256];
			snprintf(doc, sizeof(doc), as_key ? "{\"%s\":1}" : "\"%s\"", cases[c].text);
			struct jsontape t;
			if (jsontape_parse(&t, doc, strlen(doc)))
				fail_msg("case %zu: rejected %s", c, doc);
			size_t i = as_key ? 1 : 0;
			char *s = jt_strdup(&t, i);
			if (strcmp(s, want) != 0)
				fail_msg("case %zu: %s gave %s", c, cases[c].text, s);
			assert_true(ref_utf8_valid(s, strlen(s)));
			char out[256];
			assert_int_equal(jt_str(&t, i, out, n + 1), (long)n); /* exactly fits */
			assert_memory_equal(out, want, n + 1);
			assert_int_equal(jt_str(&t, i, out, n), -1);          /* one byte short */
			assert_int_equal(jt_str(&t, i, out, sizeof(out)), (long)n);
			assert_true(jt_str_eq(&t, i, want));
			assert_int_equal(jt_str_eq(&t, i, cases[c].text), strcmp(cases[c].text, want) == 0);
			if (as_key)
				assert_int_equal(jt_get(&t, 0, want), 2);
			free(s);
			jsontape_free(&t);
		}
	}
	/* jt_str_eq compares the whole string: a NUL no longer hides the rest */
	struct jsontape t;
	const char *doc = "{\"Team\\u0000x\":1,\"Team\":2}";
	assert_int_equal(jsontape_parse(&t, doc, strlen(doc)), 0);
	assert_false(jt_str_eq(&t, 1, "Team"));
	assert_int_equal(jt_get(&t, 0, "Team"), 4);
	assert_int_equal(jt_get(&t, 0, "Team" FFFD "x"), 2);
	jsontape_free(&t);
}

/*
 * Replacement makes a string longer (1 raw byte -> 3) or shorter (a 6-byte
 * escape -> 3): jt_str sizes by the result, through each of its paths, and
 * jt_strdup allocates enough (ASan watches both).
 */
static void replacement_changes_the_length(void **state)
{
	(void)state;
	char doc[2 + 300 + 1], want[3 * 300 + 1];
	doc[0] = '"';
	memset(doc + 1, 0xFF, 300);
	doc[301] = '"';
	for (size_t k = 0; k < 300; k++)
		memcpy(want + 3 * k, FFFD, 3);
	want[900] = '\0';
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, doc, 302), 0);
	char *s = jt_strdup(&t, 0);
	assert_string_equal(s, want);
	free(s);
	char *out = malloc(901);
	assert_int_equal(jt_str(&t, 0, out, 901), 900); /* room for the worst case: direct */
	assert_string_equal(out, want);
	assert_int_equal(jt_str(&t, 0, out, 900), -1);
	assert_int_equal(jt_str(&t, 0, out, 302), -1); /* room for the text, not the result */
	assert_int_equal(jt_str(&t, 0, out, 0), -1);
	assert_true(jt_str_eq(&t, 0, want));            /* longer than the 256-byte stack buffer */
	want[899] = 'x';
	assert_false(jt_str_eq(&t, 0, want));
	jsontape_free(&t);

	/* shorter: 50 escaped NULs (300 bytes) are 150 bytes; fits where the text would not */
	doc[0] = '"';
	for (size_t k = 0; k < 50; k++)
		memcpy(doc + 1 + 6 * k, "\\u0000", 6);
	doc[301] = '"';
	assert_int_equal(jsontape_parse(&t, doc, 302), 0);
	assert_int_equal(jt_str(&t, 0, out, 151), 150); /* counted, then copied */
	assert_memory_equal(out, want, 150);
	assert_int_equal(out[150], '\0');
	assert_int_equal(jt_str(&t, 0, out, 150), -1);
	s = jt_strdup(&t, 0);
	assert_int_equal(strlen(s), 150);
	free(s);
	jsontape_free(&t);
	free(out);
}

/* The word-at-a-time scan must see a stop byte at every offset of a word. */
static void stop_bytes_at_every_offset(void **state)
{
	(void)state;
	for (size_t pos = 0; pos < 24; pos++) {
		char doc[40], want[40];
		struct jsontape t;
		/* a control byte anywhere: rejected */
		memset(doc, 'a', sizeof(doc));
		doc[0] = '"';
		doc[1 + pos] = '\x1f';
		doc[30] = '"';
		assert_int_equal(jsontape_parse(&t, doc, 31), -EPROTO);
		jsontape_free(&t);
		/* an escape anywhere: found and unescaped */
		doc[1 + pos] = '\\';
		doc[2 + pos] = 'n';
		assert_int_equal(jsontape_parse(&t, doc, 31), 0);
		memset(want, 'a', 28); /* 29 bytes of text with one 2-byte escape: 28 */
		want[pos] = '\n';
		want[28] = '\0';
		char *s = jt_strdup(&t, 0);
		assert_string_equal(s, want);
		free(s);
		jsontape_free(&t);
		/* a quote anywhere: the string ends there, the rest is junk */
		memset(doc + 1, 'a', 29);
		doc[1 + pos] = '"';
		assert_int_equal(jsontape_parse(&t, doc, 31), -EPROTO);
		assert_int_equal(jsontape_parse(&t, doc, 2 + pos), 0);
		assert_int_equal(t.t[0].len, pos);
		jsontape_free(&t);
	}
}

static cJSON *random_value(int depth)
{
	/* cJSON prints raw bytes from 0x80 as they are: invalid UTF-8 reaches the text too */
	static const char *const pieces[] = { "a", "Application$", "\"", "\\", "/", "\n", "\t",
					      "\x01", "é", "€", "😀", "$", "", " ", "\xFF",
					      "\xC0\x80", "\xED\xA0\x80", "\xE2\x82", "\xF4\x90",
					      "\x80" };
	int kind = rand() % (depth > 3 ? 5 : 7);
	switch (kind) {
	case 0: return cJSON_CreateNull();
	case 1: return cJSON_CreateBool(rand() % 2);
	case 2: return cJSON_CreateNumber((double)(rand() - RAND_MAX / 2) / (1 + rand() % 1000));
	case 3:
	case 4: {
		char s[64] = "";
		for (int k = rand() % 5; k > 0; k--)
			strcat(s, pieces[(size_t)rand() % (sizeof(pieces) / sizeof(pieces[0]))]);
		return cJSON_CreateString(s);
	}
	case 5: {
		cJSON *a = cJSON_CreateArray();
		for (int k = rand() % 4; k > 0; k--)
			cJSON_AddItemToArray(a, random_value(depth + 1));
		return a;
	}
	default: {
		cJSON *o = cJSON_CreateObject();
		for (int k = rand() % 4; k > 0; k--) {
			char key[8];
			snprintf(key, sizeof(key), "k%d", rand() % 5);
			cJSON_AddItemToObject(o, key, random_value(depth + 1));
		}
		return o;
	}
	}
}

/*
 * cJSON prints, the tape must read back the same tree (after the string rule,
 * jsontape_cjson.h). Then mutations, some of which insert escapes that cJSON
 * reads differently (\u0000, lone surrogates): what the tape accepts, cJSON
 * must accept too as cjson_text() gives it (the tape is the stricter), with
 * the same tree.
 */
static void differential_against_cjson(void **state)
{
	(void)state;
	static const char junk[] = "{}[]\",:\\ u0d9eE+-.atfn";
	static const char *const escapes[] = { "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00",
					       "\\uDBFF", "\\u0041", "\xFF", "\xED\xA0\x80", "\\" };
	int rescued = 0;
	for (int round = 0; round < 3000; round++) {
		cJSON *j = random_value(0);
		char *text = cJSON_PrintUnformatted(j);
		size_t len = strlen(text);
		struct jsontape t;
		cJSON *back = cJSON_Parse(text); /* cJSON's printed numbers need not round-trip */
		if (jsontape_parse(&t, text, len) || !same(&t, 0, back))
			fail_msg("round %d: %s", round, text);
		jsontape_free(&t);
		cJSON_Delete(back);
		for (int m = 0; m < 20 && len; m++) {
			char *mut = xmalloc(len + 16);
			memcpy(mut, text, len + 1);
			size_t pos = (size_t)rand() % len;
			int how = rand() % 4;
			if (how == 0) {
				memmove(mut + pos, mut + pos + 1, len - pos);
			} else if (how == 1) {
				const char *e = escapes[(size_t)rand() % (sizeof(escapes) / sizeof(escapes[0]))];
				memmove(mut + pos + strlen(e), mut + pos, len - pos + 1);
				memcpy(mut + pos, e, strlen(e));
			} else {
				mut[pos] = junk[(size_t)rand() % (sizeof(junk) - 1)];
			}
			size_t mlen = strlen(mut);
			if (jsontape_parse(&t, mut, mlen) == 0) {
				char *ctext = cjson_text(mut, mlen);
				const char *end = NULL;
				cJSON *c = cJSON_ParseWithOpts(ctext, &end, true);
				if (!c || !same(&t, 0, c))
					fail_msg("tape accepts what cJSON reads differently: %s", mut);
				cJSON_Delete(c);
				free(ctext);
				c = cJSON_ParseWithOpts(mut, &end, true);
				rescued += c == NULL; /* a lone surrogate escape: cJSON alone rejects it */
				cJSON_Delete(c);
			}
			jsontape_free(&t);
			free(mut);
		}
		free(text);
		cJSON_Delete(j);
	}
	assert_true(rescued > 0); /* the mutations did reach what cJSON reads differently */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_documents),
		cmocka_unit_test(invalid_documents),
		cmocka_unit_test(strings_come_out_as_valid_utf8),
		cmocka_unit_test(replacement_changes_the_length),
		cmocka_unit_test(stop_bytes_at_every_offset),
		cmocka_unit_test(differential_against_cjson),
	};
	return cmocka_run_group_tests_name("jsontape", tests, NULL, NULL);
}
