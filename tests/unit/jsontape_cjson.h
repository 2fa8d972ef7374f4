/*
 * jsontape_cjson.h - test helper shared by tests/unit/test_jsontape.c and
 * tests/fuzz/fuzz_jsontape.c: does a tape token describe the same JSON value
 * as a cJSON item? Include after jsontape.h (or jsontape.c) and cJSON.h.
 */
#ifndef BCE_TEST_JSONTAPE_CJSON_H
#define BCE_TEST_JSONTAPE_CJSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does tape token @i describe the same value as cJSON item @j? */
static bool same(const struct jsontape *t, size_t i, const cJSON *j)
{
	if (cJSON_IsNull(j))
		return jt_is(t, i, JT_NULL);
	if (cJSON_IsFalse(j))
		return jt_is(t, i, JT_FALSE);
	if (cJSON_IsTrue(j))
		return jt_is(t, i, JT_TRUE);
	if (cJSON_IsNumber(j)) {
		if (!jt_is(t, i, JT_NUMBER))
			return false;
		char num[400];
		snprintf(num, sizeof(num), "%.*s", (int)t->t[i].len, t->text + t->t[i].start);
		return strtod(num, NULL) == j->valuedouble;
	}
	if (cJSON_IsString(j)) {
		char *s = jt_strdup(t, i);
		bool eq = s && strcmp(s, j->valuestring) == 0 && jt_str_eq(t, i, j->valuestring);
		free(s);
		return eq;
	}
	bool obj = cJSON_IsObject(j);
	if (!jt_is(t, i, obj ? JT_OBJECT : JT_ARRAY) || jt_count(t, i) != (size_t)cJSON_GetArraySize(j))
		return false;
	const cJSON *c = j->child;
	for (size_t k = jt_first(t, i); k != JT_NONE; k = jt_next(t, i, k), c = c->next) {
		if (obj && (!jt_str_eq(t, k, c->string) || !same(t, k + 1, c)))
			return false;
		if (!obj && !same(t, k, c))
			return false;
	}
	return c == NULL;
}

#endif
