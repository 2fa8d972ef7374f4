/* Unit tests for projects_api.c: page parsing (good and every malformed shape), URLs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/sources/projects_api.c"

static const char good_page[] =
	"{\"object\":\"list\",\"data\":["
	"{\"id\":\"default\",\"object\":\"organization.project\",\"name\":\"Default project\","
	" \"arn\":null,\"status\":\"active\",\"created_at\":1767603600,\"tags\":{}},"
	"{\"id\":\"proj_abc\",\"object\":\"organization.project\",\"name\":\"Chat \\\"Prod\\\"\","
	" \"arn\":\"arn:aws:bedrock-mantle:us-east-1:123456789012:project/proj_abc\","
	" \"status\":\"archived\",\"created_at\":1768226601,"
	" \"tags\":{\"Team\":\"CX\",\"Application\":\"Chat\\nBot\",\"City\":\"Z\\u00fcrich\"}}],"
	"\"first_id\":\"default\",\"last_id\":\"bogus\",\"has_more\":true}";

static void parses_a_good_page(void **state)
{
	(void)state;
	struct project_list l = { 0 };
	bool more = false;
	char err[256] = "";
	assert_int_equal(projects_parse_page(good_page, strlen(good_page), &l, &more, err, sizeof(err)), 0);
	assert_true(more);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, "default");
	assert_string_equal(l.v[0].arn, "");
	assert_int_equal(l.v[0].ntags, 0);
	assert_string_equal(l.v[1].name, "Chat \"Prod\"");
	assert_string_equal(l.v[1].status, "archived");
	assert_true(l.v[1].created_at == 1768226601.0);
	assert_int_equal(l.v[1].ntags, 3);
	/* tags come back sorted by key and searchable */
	assert_string_equal(l.v[1].tags[0].key, "Application");
	assert_string_equal(project_tag(&l.v[1], "Application"), "Chat\nBot");
	assert_string_equal(project_tag(&l.v[1], "City"), "Z\xc3\xbcrich");
	assert_string_equal(project_tag(&l.v[1], "Team"), "CX");
	assert_null(project_tag(&l.v[1], "CostCenter"));

	/* a second page appends */
	const char *p2 = "{\"data\":[{\"id\":\"proj_z\",\"name\":\"z\",\"status\":\"active\","
			 "\"created_at\":1}],\"has_more\":false}";
	assert_int_equal(projects_parse_page(p2, strlen(p2), &l, &more, err, sizeof(err)), 0);
	assert_false(more);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[2].id, "proj_z");
	project_list_free(&l);
}

/*
 * A tag value (or a name) that is not valid UTF-8 in any of the three ways
 * JSON allows costs the page nothing: the page parses, the project is there,
 * and the bad sequence reads as U+FFFD (base/jsontape.h). Before, \u0000 cut
 * the value short, a lone surrogate escape failed the whole page, and raw
 * bytes went through as they were.
 */
static void invalid_utf8_in_tags_becomes_fffd(void **state)
{
	(void)state;
#define ITEM(name, tags)                                                                       \
	"{\"data\":[{\"id\":\"default\",\"name\":\"Default project\",\"status\":\"active\","      \
	"\"created_at\":1,\"tags\":{}},{\"id\":\"proj_x\",\"name\":" name ",\"status\":\"active\"," \
	"\"created_at\":2,\"tags\":{" tags "}}],\"has_more\":false}"
	static const struct {
		const char *page, *name, *key, *value;
	} cases[] = {
		/* an escaped NUL in the middle of a value, and one in a name */
		{ ITEM("\"Chat\\u0000Bot\"", "\"Team\":\"CX\",\"Application\":\"Chat\\u0000Bot\""),
		  "Chat\xEF\xBF\xBD" "Bot", "Application", "Chat\xEF\xBF\xBD" "Bot" },
		/* lone surrogate escapes: a high half followed by text, a low half alone */
		{ ITEM("\"Chat\\udc00\"", "\"Team\":\"CX\",\"Application\":\"Chat\\ud800Bot\""),
		  "Chat\xEF\xBF\xBD", "Application", "Chat\xEF\xBF\xBD" "Bot" },
		/* raw bytes that are not UTF-8: Latin-1, an overlong, an encoded surrogate, a cut
		 * character at the end */
		{ ITEM("\"Z\xFCrich\"", "\"Team\":\"CX\",\"City\":\"Z\xFCrich \xC0\x80 \xED\xA0\x80 \xE2\x82\""),
		  "Z\xEF\xBF\xBDrich", "City",
		  "Z\xEF\xBF\xBDrich \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
		  "\xEF\xBF\xBD" },
		/* in a key: the key is made valid the same way and still found */
		{ ITEM("\"a\"", "\"Team\":\"CX\",\"Cost\\u0000Center\":\"\\ud83d\\ude00\\ud83d\""),
		  "a", "Cost\xEF\xBF\xBD" "Center", "\xF0\x9F\x98\x80\xEF\xBF\xBD" },
	};
#undef ITEM
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct project_list l = { 0 };
		bool more = true;
		char err[256] = "";
		int rc = projects_parse_page(cases[i].page, strlen(cases[i].page), &l, &more, err,
					     sizeof(err));
		if (rc != 0)
			fail_msg("case %zu: rc=%d err=\"%s\"", i, rc, err);
		assert_false(more);
		assert_int_equal(l.n, 2);
		assert_string_equal(l.v[1].id, "proj_x");
		assert_string_equal(l.v[1].name, cases[i].name);
		assert_int_equal(l.v[1].ntags, 2);
		assert_string_equal(project_tag(&l.v[1], "Team"), "CX");
		const char *v = project_tag(&l.v[1], cases[i].key);
		if (!v || strcmp(v, cases[i].value) != 0)
			fail_msg("case %zu: %s=\"%s\"", i, cases[i].key, v ? v : "(missing)");
		project_list_free(&l);
	}
}

/* Keys that differed only after an escaped NUL were one key before (both cut there). */
static void keys_that_differ_after_a_nul_are_two_keys(void **state)
{
	(void)state;
	const char *page = "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1,"
			   "\"tags\":{\"Team\\u0000A\":\"x\",\"Team\\u0000B\":\"y\"}}],\"has_more\":false}";
	struct project_list l = { 0 };
	bool more;
	char err[256] = "";
	assert_int_equal(projects_parse_page(page, strlen(page), &l, &more, err, sizeof(err)), 0);
	assert_int_equal(l.v[0].ntags, 2);
	assert_string_equal(project_tag(&l.v[0], "Team\xEF\xBF\xBD" "A"), "x");
	assert_string_equal(project_tag(&l.v[0], "Team\xEF\xBF\xBD" "B"), "y");
	assert_null(project_tag(&l.v[0], "Team"));
	project_list_free(&l);
}

/* Each malformed page fails, names the problem, and leaves the list untouched. */
static void rejects_malformed_pages(void **state)
{
	(void)state;
	struct {
		const char *body, *why;
	} cases[] = {
		{ "", "not valid JSON" },
		{ "{\"object\":\"list\",\"data\":[{\"id\":", "not valid JSON" },
		{ "[1,2]", "expected a JSON object" },
		{ "{\"has_more\":false}", "data: missing" },
		{ "{\"data\":{},\"has_more\":false}", "data: expected an array" },
		{ "{\"data\":[]}", "has_more: missing" },
		{ "{\"data\":[],\"has_more\":\"false\"}", "has_more: expected a boolean" },
		{ "{\"data\":[3],\"has_more\":false}", "data[0]: expected an object" },
		{ "{\"data\":[{\"name\":\"a\",\"status\":\"active\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].id: missing" },
		{ "{\"data\":[{\"id\":7,\"name\":\"a\",\"status\":\"active\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].id: expected a string" },
		{ "{\"data\":[{\"id\":\"\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].id: empty" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":null,\"status\":\"active\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].name: expected a string" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].status: missing" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":\"1\"}],\"has_more\":false}",
		  "data[0].created_at: expected a number" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":-5}],\"has_more\":false}",
		  "data[0].created_at: expected a number" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\"}],\"has_more\":false}",
		  "data[0].created_at: missing" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"arn\":5,\"status\":\"active\",\"created_at\":1}],\"has_more\":false}",
		  "data[0].arn: expected a string" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1,"
		  "\"tags\":[{\"Key\":\"Team\",\"Value\":\"x\"}]}],\"has_more\":false}",
		  "data[0].tags: expected an object" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1,"
		  "\"tags\":{\"Team\":1}}],\"has_more\":false}",
		  "data[0].tags: values must be strings" },
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1,"
		  "\"tags\":{\"Team\":\"a\",\"Team\":\"b\"}}],\"has_more\":false}",
		  "data[0].tags: key repeated" },
		/* the second item is broken: the good first one must not be kept */
		{ "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1},"
		  "{\"id\":\"q\"}],\"has_more\":false}",
		  "data[1].name: missing" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct project_list l = { 0 };
		bool more = true;
		char err[256] = "";
		int rc = projects_parse_page(cases[i].body, strlen(cases[i].body), &l, &more, err,
					     sizeof(err));
		if (rc != -EPROTO || !strstr(err, cases[i].why))
			fail_msg("case %zu: rc=%d err=\"%s\", want \"%s\"", i, rc, err, cases[i].why);
		assert_int_equal(l.n, 0);
		assert_true(more); /* untouched */
	}
}

static void truncated_body_never_reads_past_length(void **state)
{
	(void)state;
	/* the buffer is longer than the length given: only the prefix counts */
	for (size_t n = 0; n < strlen(good_page); n += 7) {
		struct project_list l = { 0 };
		bool more;
		char err[256];
		char *copy = malloc(n ? n : 1); /* exact size: ASan catches any overread */
		memcpy(copy, good_page, n);
		assert_int_equal(projects_parse_page(copy, n, &l, &more, err, sizeof(err)), -EPROTO);
		assert_int_equal(l.n, 0);
		free(copy);
	}
}

static void too_many_tags(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"data\":[{\"id\":\"p\",\"name\":\"a\",\"status\":\"active\",\"created_at\":1,\"tags\":{");
	for (int i = 0; i <= PROJECTS_MAX_TAGS; i++)
		buf_printf(&b, "%s\"k%d\":\"v\"", i ? "," : "", i);
	buf_puts(&b, "}}],\"has_more\":false}");
	struct project_list l = { 0 };
	bool more;
	char err[256];
	assert_int_equal(projects_parse_page(b.data, b.len, &l, &more, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "more than 128 tags"));
	buf_free(&b);
}

static void base_url_and_query_encoding(void **state)
{
	(void)state;
	char *u = projects_base_url("https://bedrock-mantle.{region}.api.aws/v1/", "eu-west-1");
	assert_string_equal(u, "https://bedrock-mantle.eu-west-1.api.aws/v1");
	free(u);
	u = projects_base_url("http://127.0.0.1:9/mantle/{region}/{region}", "us-east-1");
	assert_string_equal(u, "http://127.0.0.1:9/mantle/us-east-1/us-east-1");
	free(u);
	struct buf b;
	buf_init(&b, 1024);
	put_query_value(&b, "proj_AZaz09-._~ /+=&\xc3\xbc");
	assert_string_equal(b.data, "proj_AZaz09-._~%20%2F%2B%3D%26%C3%BC");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_a_good_page),
		cmocka_unit_test(invalid_utf8_in_tags_becomes_fffd),
		cmocka_unit_test(keys_that_differ_after_a_nul_are_two_keys),
		cmocka_unit_test(rejects_malformed_pages),
		cmocka_unit_test(truncated_body_never_reads_past_length),
		cmocka_unit_test(too_many_tags),
		cmocka_unit_test(base_url_and_query_encoding),
	};
	return cmocka_run_group_tests_name("projects", tests, NULL, NULL);
}
