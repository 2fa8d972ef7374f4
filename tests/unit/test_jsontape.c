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
		"-", "1e", "+1", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
		"\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\tb\"", "{} x", "[]]", "NaN", "\"\\",
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
	static const char *const pieces[] = { "a", "Application$", "\"", "\\", "/", "\n", "\t",
					      "\x01", "é", "€", "😀", "$", "", " " };
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
 * cJSON prints, the tape must read back the same tree. Then mutations: what
 * the tape accepts, cJSON must accept too (the tape is the stricter), with
 * the same tree.
 */
static void differential_against_cjson(void **state)
{
	(void)state;
	static const char junk[] = "{}[]\",:\\ u0d9eE+-.atfn";
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
			char *mut = xstrdup(text);
			size_t pos = (size_t)rand() % len;
			if (rand() % 3)
				mut[pos] = junk[(size_t)rand() % (sizeof(junk) - 1)];
			else
				memmove(mut + pos, mut + pos + 1, len - pos);
			size_t mlen = strlen(mut);
			if (jsontape_parse(&t, mut, mlen) == 0) {
				const char *end = NULL;
				cJSON *c = cJSON_ParseWithOpts(mut, &end, true);
				if (!c || !same(&t, 0, c))
					fail_msg("tape accepts what cJSON reads differently: %s", mut);
				cJSON_Delete(c);
			}
			jsontape_free(&t);
			free(mut);
		}
		free(text);
		cJSON_Delete(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_documents),
		cmocka_unit_test(invalid_documents),
		cmocka_unit_test(stop_bytes_at_every_offset),
		cmocka_unit_test(differential_against_cjson),
	};
	return cmocka_run_group_tests_name("jsontape", tests, NULL, NULL);
}
