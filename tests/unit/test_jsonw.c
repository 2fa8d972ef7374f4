/*
 * Unit tests for jsonw.c, the one JSON writer: strings escaped byte for byte as cJSON's
 * printer escapes them (read back by cJSON byte for byte, and by jsontape as its rule says:
 * invalid UTF-8 becomes U+FFFD), the compact structure
 * cJSON prints for the same tree, numbers that read back exactly, and sticky errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../src/base/jsonw.c"
#include "base/jsontape.h"
#include "jsontape_cjson.h"
#include "random_values.h"

/* ---- helpers ---- */

/* The writer's text (caller frees); fails the test if the writer failed. */
static char *steal_ok(struct jsonw *w, size_t *len)
{
	int err = w->err;
	char *text = jsonw_steal(w, len);
	if (!text)
		fail_msg("jsonw_steal: NULL (err %d, depth %d)", err, w->depth);
	assert_int_equal(strlen(text), *len);
	return text;
}

/* ---- strings ---- */

static void check_string(const char *s)
{
	struct jsonw w;
	jsonw_init(&w, 1 << 20);
	jsonw_string(&w, s);
	assert_int_equal(w.err, 0);
	size_t len;
	char *out = steal_ok(&w, &len);
	/* the bytes cJSON's printer makes */
	cJSON *c = cJSON_CreateString(s);
	char *ref = cJSON_PrintUnformatted(c);
	assert_non_null(ref);
	assert_string_equal(out, ref);
	/* cJSON's parser gives @s back byte for byte */
	cJSON *back = cJSON_Parse(out);
	assert_true(cJSON_IsString(back));
	assert_string_equal(back->valuestring, s);
	/* the exporter's own reader gives @s back with invalid UTF-8 replaced
	 * (the reference replacement is the test helper's, not jsontape's) */
	char *want = ref_utf8_fix(s);
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, out, len), 0);
	assert_true(jt_is(&t, 0, JT_STRING));
	char *dup = jt_strdup(&t, 0);
	assert_string_equal(dup, want);
	char small[96];
	long n = jt_str(&t, 0, small, sizeof(small));
	if (strlen(want) < sizeof(small)) {
		assert_int_equal(n, (long)strlen(want));
		assert_string_equal(small, want);
	} else {
		assert_int_equal(n, -1);
	}
	assert_true(jt_str_eq(&t, 0, want));
	assert_true(jt_str_eq(&t, 0, s) == (strcmp(s, want) == 0));
	jsontape_free(&t);
	free(dup);

	/* as a member name: the same escaping */
	jsonw_init(&w, 1 << 20);
	jsonw_object_begin(&w);
	jsonw_key(&w, s);
	jsonw_int(&w, 1);
	jsonw_object_end(&w);
	char *obj = steal_ok(&w, &len);
	cJSON *co = cJSON_CreateObject();
	cJSON_AddNumberToObject(co, s, 1);
	char *oref = cJSON_PrintUnformatted(co);
	assert_string_equal(obj, oref);
	assert_int_equal(jsontape_parse(&t, obj, len), 0);
	assert_int_equal(jt_count(&t, 0), 1);
	size_t k = jt_first(&t, 0);
	dup = jt_strdup(&t, k);
	assert_string_equal(dup, want);
	assert_int_not_equal(jt_get(&t, 0, want), JT_NONE);
	jsontape_free(&t);

	free(dup);
	free(want);
	free(obj);
	cJSON_free(oref);
	cJSON_Delete(co);
	cJSON_Delete(back);
	cJSON_free(ref);
	cJSON_Delete(c);
	free(out);
}

static void strings_escape_like_cjson(void **state)
{
	(void)state;
	for (int c = 1; c < 256; c++) {
		char s[4] = { 'a', (char)c, 'b', '\0' };
		check_string(s);
	}
	check_string("");
	check_string("\xc3\x28 \xa0\xa1 \xe2\x82 \xf0\x28\x8c\x28 \xed\xa0\x80 \\u0000 \"}],{\"k\":");
	/* the exact escapes, spelled out */
	struct jsonw w;
	jsonw_init(&w, 1024);
	jsonw_string(&w, "\"\\/\b\f\n\r\t\x01\x1f\x7f\xff");
	size_t len;
	char *out = steal_ok(&w, &len);
	assert_string_equal(out, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xff\"");
	free(out);
	/* NULL is written as "" */
	jsonw_init(&w, 1024);
	jsonw_string(&w, NULL);
	out = steal_ok(&w, &len);
	assert_string_equal(out, "\"\"");
	free(out);
	for (int i = 0; i < 20000; i++) {
		char *s = hostile(0, i % 100 == 0 ? 300 : 64);
		check_string(s);
		free(s);
	}
}

/* ---- structure ---- */

/* Writes cJSON tree @j (objects, arrays, strings, bools, integral numbers) with the writer. */
static void emit(struct jsonw *w, const cJSON *j)
{
	if (j->string && w->depth > 0)
		jsonw_key(w, j->string);
	if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		if (cJSON_IsObject(j))
			jsonw_object_begin(w);
		else
			jsonw_array_begin(w);
		for (const cJSON *c = j->child; c; c = c->next)
			emit(w, c);
		if (cJSON_IsObject(j))
			jsonw_object_end(w);
		else
			jsonw_array_end(w);
	} else if (cJSON_IsString(j)) {
		jsonw_string(w, j->valuestring);
	} else if (cJSON_IsBool(j)) {
		jsonw_bool(w, cJSON_IsTrue(j));
	} else if (cJSON_IsNumber(j)) {
		/* integral values in int range: cJSON prints them as %d, the writer as digits */
		if (j->valueint % 2)
			jsonw_int(w, j->valueint);
		else
			jsonw_number(w, j->valuedouble);
	} else {
		fail_msg("unexpected cJSON type %d", j->type);
	}
}

static cJSON *random_tree(int depth)
{
	uint64_t r = rnd() % 8;
	if (depth > 0 && r < 4) {
		bool object = r < 2;
		cJSON *c = object ? cJSON_CreateObject() : cJSON_CreateArray();
		int n = (int)(rnd() % 5); /* 0..4: empty containers too */
		for (int i = 0; i < n; i++) {
			cJSON *child = random_tree(depth - 1);
			if (object) {
				char *k = hostile(0, 8);
				cJSON_AddItemToObject(c, k, child);
				free(k);
			} else {
				cJSON_AddItemToArray(c, child);
			}
		}
		return c;
	}
	switch (r) {
	case 4:
	case 5: {
		char *s = hostile(0, 12);
		cJSON *c = cJSON_CreateString(s);
		free(s);
		return c;
	}
	case 6:
		return cJSON_CreateBool(rnd() % 2);
	default:
		return cJSON_CreateNumber((double)((int64_t)(rnd() % 2000001) - 1000000));
	}
}

static void expect_like_cjson(const cJSON *tree)
{
	struct jsonw w;
	jsonw_init(&w, 1 << 22);
	emit(&w, tree);
	size_t len;
	char *out = steal_ok(&w, &len);
	char *ref = cJSON_PrintUnformatted(tree);
	assert_non_null(ref);
	assert_string_equal(out, ref);
	/* and what was written is one JSON value for the exporter's reader */
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, out, len), 0);
	jsontape_free(&t);
	cJSON_free(ref);
	free(out);
}

static void structure(void **state)
{
	(void)state;
	/* one document spelled out: commas between members and elements only, empty
	 * containers, nesting, a key right before a container */
	struct jsonw w;
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a");
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_key(&w, "b");
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "c");
	jsonw_array_begin(&w);
	jsonw_int(&w, 1);
	jsonw_string(&w, "x");
	jsonw_bool(&w, true);
	jsonw_bool(&w, false);
	jsonw_object_begin(&w);
	jsonw_key(&w, "d");
	jsonw_array_begin(&w);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_array_begin(&w);
	jsonw_number(&w, -2);
	jsonw_array_end(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "e");
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_object_end(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "");
	jsonw_string(&w, "");
	jsonw_object_end(&w);
	size_t len;
	char *out = steal_ok(&w, &len);
	const char *want = "{\"a\":{},\"b\":[],\"c\":[1,\"x\",true,false,{\"d\":[[],[-2]],\"e\":{}}],\"\":\"\"}";
	assert_string_equal(out, want);
	cJSON *tree = cJSON_Parse(want);
	char *ref = cJSON_PrintUnformatted(tree);
	assert_string_equal(out, ref);
	cJSON_free(ref);
	cJSON_Delete(tree);
	free(out);

	/* top-level containers and scalars */
	static const char *const alone[] = { "{}", "[]", "[[]]", "[{}]", "{\"k\":[]}", "\"s\"", "true",
					     "false", "0", "[1,2,3]" };
	for (size_t i = 0; i < sizeof(alone) / sizeof(alone[0]); i++) {
		tree = cJSON_Parse(alone[i]);
		assert_non_null(tree);
		jsonw_init(&w, 4096);
		emit(&w, tree);
		out = steal_ok(&w, &len);
		assert_string_equal(out, alone[i]);
		free(out);
		cJSON_Delete(tree);
	}
	/* an empty writer is an empty text */
	jsonw_init(&w, 16);
	out = steal_ok(&w, &len);
	assert_int_equal(len, 0);
	free(out);

	/* nesting up to the maximum depth */
	jsonw_init(&w, 4096);
	for (int i = 0; i < JSONW_MAX_DEPTH; i++)
		if (i % 2)
			jsonw_array_begin(&w);
		else {
			jsonw_object_begin(&w);
			jsonw_key(&w, "k");
		}
	jsonw_int(&w, 7);
	for (int i = JSONW_MAX_DEPTH - 1; i >= 0; i--)
		if (i % 2)
			jsonw_array_end(&w);
		else
			jsonw_object_end(&w);
	out = steal_ok(&w, &len);
	tree = cJSON_Parse(out);
	assert_non_null(tree);
	ref = cJSON_PrintUnformatted(tree);
	assert_string_equal(out, ref);
	cJSON_free(ref);
	cJSON_Delete(tree);
	free(out);

	/* random trees with hostile keys and strings: what cJSON prints */
	for (int i = 0; i < 3000; i++) {
		tree = random_tree(1 + i % 6);
		expect_like_cjson(tree);
		cJSON_Delete(tree);
	}
}

/* ---- errors ---- */

/* After the first failure nothing changes: no byte, no other error. */
static void expect_stuck(struct jsonw *w, int err)
{
	assert_int_equal(w->err, err);
	size_t len = w->b.len;
	char *before = len ? xstrdup(w->b.data) : NULL;
	jsonw_key(w, "more");
	jsonw_string(w, "text");
	jsonw_number(w, 1.5);
	jsonw_number(w, NAN);
	jsonw_int(w, 42);
	jsonw_bool(w, true);
	jsonw_object_begin(w);
	jsonw_array_begin(w);
	jsonw_array_end(w);
	jsonw_object_end(w);
	jsonw_object_end(w);
	jsonw_array_end(w);
	assert_int_equal(w->err, err);
	assert_int_equal(w->b.len, len);
	if (len)
		assert_memory_equal(w->b.data, before, len);
	free(before);
	size_t out_len = 12345;
	assert_null(jsonw_steal(w, &out_len));
	assert_null(w->b.data); /* freed by the failed steal */
	jsonw_free(w);        /* and freeing again is harmless */
}

static void errors_are_sticky(void **state)
{
	(void)state;
	struct jsonw w;
	/* a NaN or an infinity: -EDOM */
	const double bad[] = { NAN, -NAN, INFINITY, -INFINITY };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jsonw_init(&w, 4096);
		jsonw_object_begin(&w);
		jsonw_key(&w, "a");
		jsonw_number(&w, 1);
		jsonw_key(&w, "b");
		jsonw_number(&w, bad[i]);
		expect_stuck(&w, -EDOM);
	}
	/* a key in an array, a value in an object without its key, the wrong bracket: -EINVAL */
	jsonw_init(&w, 4096);
	jsonw_array_begin(&w);
	jsonw_key(&w, "a");
	expect_stuck(&w, -EINVAL);
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_string(&w, "no key");
	expect_stuck(&w, -EINVAL);
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_array_end(&w);
	expect_stuck(&w, -EINVAL);
	jsonw_init(&w, 4096);
	jsonw_array_begin(&w);
	jsonw_object_end(&w);
	expect_stuck(&w, -EINVAL);
	/* a key without its value, before another key or the closing brace: -EINVAL */
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a");
	jsonw_key(&w, "b");
	expect_stuck(&w, -EINVAL);
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a");
	jsonw_object_end(&w);
	expect_stuck(&w, -EINVAL);
	/* the maximum: -EFBIG, and never a byte over it */
	jsonw_init(&w, 16);
	jsonw_string(&w, "0123456789abcdefghij");
	expect_stuck(&w, -EFBIG);
	for (size_t max = 0; max < 300; max++) {
		jsonw_init(&w, max);
		jsonw_array_begin(&w);
		for (int i = 0; i < 10; i++) {
			jsonw_string(&w, "abc");
			jsonw_number(&w, 0.1 + 0.2);
			jsonw_int(&w, LLONG_MIN);
		}
		jsonw_array_end(&w);
		assert_true(w.b.len <= max);
		if (w.err) {
			assert_int_equal(w.err, -EFBIG);
			expect_stuck(&w, -EFBIG);
			continue;
		}
		size_t len;
		char *out = steal_ok(&w, &len);
		assert_true(len <= max);
		free(out);
	}
	jsonw_init(&w, 1 << 16); /* roomy: the same document fits */
	jsonw_array_begin(&w);
	jsonw_string(&w, "abc");
	jsonw_array_end(&w);
	assert_int_equal(w.err, 0);
	jsonw_free(&w);

	/* a container still open: no text */
	jsonw_init(&w, 4096);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a");
	jsonw_array_begin(&w);
	jsonw_int(&w, 1);
	assert_int_equal(w.err, 0);
	size_t len = 12345;
	assert_null(jsonw_steal(&w, &len));
	jsonw_free(&w);
	jsonw_init(&w, 4096);
	jsonw_array_begin(&w);
	assert_null(jsonw_steal(&w, &len));
	jsonw_free(&w);

	/* closing more than was opened */
	jsonw_init(&w, 4096);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_array_end(&w);
	expect_stuck(&w, -EINVAL);
	jsonw_init(&w, 4096);
	jsonw_object_end(&w);
	expect_stuck(&w, -EINVAL);

	/* nesting deeper than JSONW_MAX_DEPTH */
	jsonw_init(&w, 4096);
	for (int i = 0; i < JSONW_MAX_DEPTH; i++)
		jsonw_array_begin(&w);
	assert_int_equal(w.err, 0);
	jsonw_object_begin(&w);
	assert_int_equal(w.err, -EINVAL);
	for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
		jsonw_array_end(&w);
	expect_stuck(&w, -EINVAL);
}

/* ---- numbers ---- */

/* @v written alone, and as an array element after another, reads back as exactly @v through
 * strtod, cJSON and jsontape. */
static void check_number(double v)
{
	struct jsonw w;
	jsonw_init(&w, 4096);
	jsonw_array_begin(&w);
	jsonw_int(&w, 0);
	jsonw_number(&w, v);
	jsonw_array_end(&w);
	size_t len;
	char *out = steal_ok(&w, &len);
	assert_memory_equal(out, "[0,", 3);
	assert_int_equal(out[len - 1], ']');
	char *end;
	double back = strtod(out + 3, &end);
	if (end != out + len - 1 || !same_double(back, v))
		fail_msg("%a written as %s", v, out);
	cJSON *c = cJSON_Parse(out);
	assert_true(cJSON_IsNumber(cJSON_GetArrayItem(c, 1)));
	assert_true(same_double(cJSON_GetArrayItem(c, 1)->valuedouble, v));
	cJSON_Delete(c);
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, out, len), 0);
	double tv;
	assert_int_equal(jt_number(&t, jt_next(&t, 0, jt_first(&t, 0)), &tv), 0);
	assert_true(same_double(tv, v));
	jsontape_free(&t);
	free(out);
}

static void check_int(long long v)
{
	struct jsonw w;
	jsonw_init(&w, 64);
	jsonw_int(&w, v);
	size_t len;
	char *out = steal_ok(&w, &len);
	char want[32];
	snprintf(want, sizeof(want), "%lld", v);
	assert_string_equal(out, want);
	free(out);
}

static void numbers(void **state)
{
	(void)state;
	const double special[] = { 0.0, -0.0, 1.0, -1.0, 0.1, 0.1 + 0.2, 1e-10, -1e-10, 5e-11,
				   123.456789, DBL_MIN, -DBL_MIN, 4.9406564584124654e-324, DBL_MAX,
				   -DBL_MAX, DBL_EPSILON, 9e5, 899999.9999999999, 900000.0000000001,
				   9007199254740991.0, 9007199254740992.0, 9007199254740994.0,
				   18446744073709551616.0, 1e21, 1e22, 1795651600.1234567, 1e300 };
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		check_number(special[i]);
	for (int i = 0; i < 100000; i++) {
		double v = any_double();
		if (isfinite(v))
			check_number(v);
		char s[48];
		snprintf(s, sizeof(s), "%s%llu.%010llu", i % 5 ? "" : "-",
			 (unsigned long long)(rnd() % 1000000), (unsigned long long)(rnd() % 10000000000u));
		check_number(strtod(s, NULL)); /* Cost Explorer-like amounts */
		check_number((double)(rnd() >> (rnd() % 64)));
	}
	/* -0 keeps its sign; integers are their digits */
	struct jsonw w;
	jsonw_init(&w, 64);
	jsonw_array_begin(&w);
	jsonw_number(&w, -0.0);
	jsonw_number(&w, 12);
	jsonw_number(&w, 155.1956029079);
	jsonw_array_end(&w);
	size_t len;
	char *out = steal_ok(&w, &len);
	assert_string_equal(out, "[-0,12,155.1956029079]");
	free(out);

	const long long ints[] = { 0, 1, -1, 9, 10, -10, INT_MAX, INT_MIN, 9007199254740993LL,
				   LLONG_MAX, LLONG_MIN, LLONG_MIN + 1 };
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		check_int(ints[i]);
	for (int i = 0; i < 10000; i++)
		check_int((long long)rnd() >> (rnd() % 64));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strings_escape_like_cjson),
		cmocka_unit_test(structure),
		cmocka_unit_test(errors_are_sticky),
		cmocka_unit_test(numbers),
	};
	return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
