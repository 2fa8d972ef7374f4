/* Unit tests for log.c: logfmt and JSON lines, typed values, and that a line below the level
 * costs nothing (its arguments are not even evaluated). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/base/log.c"

#define OUT "build/unit/test_log.out"

/* Runs @fn with stderr going to a file; returns what was written (caller frees). */
static char *captured(void (*fn)(void))
{
	fflush(stderr);
	int saved = dup(2);
	FILE *f = freopen(OUT, "w", stderr);
	assert_non_null(f);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char *text = NULL;
	FILE *r = fopen(OUT, "r");
	assert_non_null(r);
	size_t cap = 0;
	ssize_t n = getdelim(&text, &cap, '\0', r);
	fclose(r);
	remove(OUT);
	if (n < 0) {
		free(text);
		text = strdup("");
	}
	return text;
}

static void typed_lines(void)
{
	log_info("listening", "port", LOG_INT(19880), "tls", LOG_BOOL(0), "ratio", LOG_FIXED(0.25, 2),
		 "nan", LOG_FIXED(NAN, 1), "name", "a \"b\"\n", "empty", (char *)NULL);
}

static void json_values_have_their_types(void **state)
{
	(void)state;
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_JSON);
	char *out = captured(typed_lines);
	assert_non_null(strstr(out, "\"msg\":\"listening\",\"port\":19880,\"tls\":false,"
				    "\"ratio\":0.25,\"nan\":\"nan\",\"name\":\"a \\\"b\\\"\\n\",\"empty\":\"\"}\n"));
	assert_null(strchr(out, '\001'));
	free(out);
}

static void logfmt_values_read_plainly(void **state)
{
	(void)state;
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
	char *out = captured(typed_lines);
	assert_non_null(strstr(out, " level=info msg=listening port=19880 tls=false ratio=0.25 nan=nan "
				    "name=\"a \\\"b\\\"\\n\" empty=\"\"\n"));
	assert_null(strchr(out, '\001'));
	free(out);
}

static int evaluated;

static const char *costly(void)
{
	evaluated++;
	return "x";
}

static void below_and_at_the_level(void)
{
	log_debug("not written", "v", costly(), "n", LOG_INT(1));
	log_warn("written", "v", costly());
}

static void below_the_level_costs_nothing(void **state)
{
	(void)state;
	log_setup(LOG_LEVEL_WARN, LOG_FORMAT_LOGFMT);
	evaluated = 0;
	char *out = captured(below_and_at_the_level);
	assert_int_equal(evaluated, 1); /* only the warn line's argument */
	assert_null(strstr(out, "not written"));
	assert_non_null(strstr(out, "msg=written v=x\n"));
	assert_false(log_enabled(LOG_LEVEL_INFO));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	free(out);
}

static void levels_and_formats_parse(void **state)
{
	(void)state;
	enum log_level l;
	enum log_format f;
	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_parse_level("warn", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_not_equal(log_parse_level("warning", &l), 0);
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_not_equal(log_parse_format("text", &f), 0);
}

static void hostile_marked(void)
{
	log_info("hostile", "v", "\001Bedrock\" injected=\"1\nts=x level=error msg=FORGED");
}

/* A value that merely starts with the marker byte is a string like any other: escaped, on one
 * line, never written bare. */
static void a_marked_string_cannot_inject(void **state)
{
	(void)state;
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_JSON);
	char *out = captured(hostile_marked);
	assert_non_null(strstr(out, "\"v\":\"\\u0001Bedrock\\\" injected=\\\"1\\nts=x level=error msg=FORGED\"}\n"));
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
	free(out);
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
	out = captured(hostile_marked);
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_null(strstr(out, "\nts=x"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_values_have_their_types),
		cmocka_unit_test(logfmt_values_read_plainly),
		cmocka_unit_test(below_the_level_costs_nothing),
		cmocka_unit_test(levels_and_formats_parse),
		cmocka_unit_test(a_marked_string_cannot_inject),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
