/* Unit tests for awscreds.c's pure parts: credentials file profiles, ISO-8601 times. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/aws/awscreds.c"

static void credentials_file(void **state)
{
	(void)state;
	const char *path = "build/unit/credentials";
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=secretD\n\n"
	      "[billing]\n aws_access_key_id=AKIDBILL \naws_secret_access_key = s/b+c\n"
	      "aws_session_token = tok\n[broken]\naws_access_key_id = X\n", f);
	fclose(f);
	struct aws_creds c = { 0 };
	assert_int_equal(awscreds_from_file(path, "default", &c), 0);
	assert_string_equal(c.access_key_id, "AKIDDEFAULT");
	assert_string_equal(c.secret_access_key, "secretD");
	assert_null(c.session_token);
	awscreds_clear(&c);
	assert_int_equal(awscreds_from_file(path, "billing", &c), 0);
	assert_string_equal(c.access_key_id, "AKIDBILL");
	assert_string_equal(c.secret_access_key, "s/b+c");
	assert_string_equal(c.session_token, "tok");
	awscreds_clear(&c);
	assert_int_equal(awscreds_from_file(path, "broken", &c), -EPROTO);
	assert_int_equal(awscreds_from_file(path, "nope", &c), -ENOENT);
	assert_int_equal(awscreds_from_file("build/unit/no-such-file", "default", &c), -ENOENT);
	remove(path);
}

static void iso8601(void **state)
{
	(void)state;
	double t;
	assert_int_equal(awscreds_parse_iso8601("2026-11-26T18:00:00Z", &t), 0);
	assert_true(t == 1795651200.0 + 18 * 3600);
	assert_int_equal(awscreds_parse_iso8601("2026-11-26T18:00:00.123Z", &t), 0);
	assert_true(t == 1795651200.0 + 18 * 3600);
	assert_int_equal(awscreds_parse_iso8601("2026-11-26T20:00:00+02:00", &t), 0);
	assert_true(t == 1795651200.0 + 18 * 3600);
	assert_int_equal(awscreds_parse_iso8601("2026-11-26 18:00:00Z", &t), -EINVAL);
	assert_int_equal(awscreds_parse_iso8601("2026-02-30T00:00:00Z", &t), -EINVAL);
	assert_int_equal(awscreds_parse_iso8601("2026-11-26T18:00:00Zjunk", &t), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(credentials_file),
		cmocka_unit_test(iso8601),
	};
	return cmocka_run_group_tests_name("awscreds", tests, NULL, NULL);
}
