/* Unit tests for util.c: complain-once error matching, hash64 and text_trim. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/base/util.c"

static void failures_differing_only_in_numbers_are_the_same(void **state)
{
	(void)state;
	assert_true(same_failure("HTTP 403 InvalidSignatureException: Signature expired: 20261126T120000Z "
				 "is now earlier than 20261126T120500Z (20261126T120000Z + 5 min.)",
				 "HTTP 403 InvalidSignatureException: Signature expired: 20261126T131500Z "
				 "is now earlier than 20261126T132000Z (20261126T131500Z + 5 min.)"));
	assert_true(same_failure("attempt 3 of 4", "attempt 12 of 4"));
	assert_true(same_failure("", ""));
	assert_false(same_failure("HTTP 403 AccessDenied", "HTTP 500 InternalFailure"));
	assert_false(same_failure("timeout after 3 s", "timeout after 3 ms"));
	assert_false(same_failure("a 1", "a 1 b"));
	assert_false(same_failure("a1", "a"));
	assert_false(same_failure(NULL, "x"));
	assert_false(same_failure("x", NULL));
}

static void hash64_test_vectors(void **state)
{
	(void)state;
	/* published FNV-1a 64-bit test vectors (the FNV reference test suite) */
	assert_true(hash64("", 0, HASH64_INIT) == 0xcbf29ce484222325u);
	assert_true(hash64("a", 1, HASH64_INIT) == 0xaf63dc4c8601ec8cu);
	assert_true(hash64("foobar", 6, HASH64_INIT) == 0x85944171f73967e8u);
	/* continuing from a hash is hashing the concatenation */
	assert_true(hash64("bar", 3, hash64("foo", 3, HASH64_INIT)) == 0x85944171f73967e8u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failures_differing_only_in_numbers_are_the_same),
		cmocka_unit_test(hash64_test_vectors),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
