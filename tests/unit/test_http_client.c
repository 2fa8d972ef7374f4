/* Unit tests for http_client.c's pure parts: backoff, classification, error text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/aws/http_client.c"

static void backoff_is_full_jitter_with_cap(void **state)
{
	(void)state;
	/* u = 0 gives 0, u -> 1 approaches the ceiling base * 2^attempt */
	assert_true(hc_backoff(0, 1.0, 30, 0, 0.0) == 0.0);
	assert_true(hc_backoff(0, 1.0, 30, 0, 0.5) == 0.5);
	assert_true(hc_backoff(3, 1.0, 30, 0, 0.5) == 4.0);
	/* capped */
	assert_true(hc_backoff(10, 1.0, 30, 0, 0.5) == 15.0);
	assert_true(hc_backoff(1000, 1.0, 30, 0, 0.999) < 30.0);
	/* Retry-After is a floor */
	assert_true(hc_backoff(0, 1.0, 30, 7, 0.5) == 7.0);
	assert_true(hc_backoff(5, 1.0, 30, 2, 0.5) == 15.0); /* min(30, 32) / 2 */
}

static void classify_curl_errors(void **state)
{
	(void)state;
	enum api_reason r;
	assert_true(classify_curl(CURLE_OPERATION_TIMEDOUT, false, &r));
	assert_int_equal(r, REASON_TIMEOUT);
	assert_true(classify_curl(CURLE_COULDNT_CONNECT, false, &r));
	assert_int_equal(r, REASON_NETWORK);
	assert_true(classify_curl(CURLE_PARTIAL_FILE, false, &r));
	assert_int_equal(r, REASON_NETWORK);
	assert_false(classify_curl(CURLE_WRITE_ERROR, true, &r));
	assert_int_equal(r, REASON_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_is_full_jitter_with_cap),
		cmocka_unit_test(classify_curl_errors),
	};
	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
