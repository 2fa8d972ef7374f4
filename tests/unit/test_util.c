/* Unit tests for util.c: complain-once error matching and hash64. */
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
	/* published XXH64 test vectors, seed 0 */
	assert_true(hash64("", 0, 0) == 0xef46db3751d8e999u);
	assert_true(hash64("a", 1, 0) == 0xd24ec4f1a98c6e5bu);
	assert_true(hash64("abc", 3, 0) == 0x44bc2cf5ad770999u);
	const char *fox = "The quick brown fox jumps over the lazy dog";
	assert_true(hash64(fox, strlen(fox), 0) == 0x0b242d361fda71bcu);
	assert_true(hash64("12345678901234567890123456789012", 32, 0) == 0x40fd1aa52d98274cu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failures_differing_only_in_numbers_are_the_same),
		cmocka_unit_test(hash64_test_vectors),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
