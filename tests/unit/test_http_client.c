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

static void default_classification(void **state)
{
	(void)state;
	enum api_reason r = REASON_COUNT;
	char msg[200];
	assert_int_equal(hc_classify_default(200, "", 0, &r, msg, sizeof(msg)), HC_OK);
	assert_int_equal(hc_classify_default(429, "", 0, &r, msg, sizeof(msg)), HC_RETRY);
	assert_int_equal(r, REASON_THROTTLED);
	assert_int_equal(hc_classify_default(401, "", 0, &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(hc_classify_default(403, "", 0, &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(hc_classify_default(400, "", 0, &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	assert_int_equal(hc_classify_default(404, "", 0, &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	assert_int_equal(hc_classify_default(503, "", 0, &r, msg, sizeof(msg)), HC_RETRY);
	assert_int_equal(r, REASON_SERVER);
	assert_string_equal(msg, "HTTP 503");
	const char *body = "{\"error\":{\"message\":\"Invalid API key\",\"type\":\"x\"}}";
	hc_classify_default(401, body, strlen(body), &r, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 401: Invalid API key");
}

static void error_messages(void **state)
{
	(void)state;
	char out[200];
	const char *aws = "{\"__type\":\"x#LimitExceededException\",\"Message\":\"Rate\\nexceeded\"}";
	hc_error_message(aws, strlen(aws), out, sizeof(out));
	assert_string_equal(out, "Rate exceeded");
	const char *plain = "{\"message\":\"The request signature we calculated does not match\"}";
	hc_error_message(plain, strlen(plain), out, sizeof(out));
	assert_string_equal(out, "The request signature we calculated does not match");
	hc_error_message("<html>", 6, out, sizeof(out));
	assert_string_equal(out, "");
	hc_error_message("{\"error\":\"str\"}", 15, out, sizeof(out));
	assert_string_equal(out, "");
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
		cmocka_unit_test(default_classification),
		cmocka_unit_test(error_messages),
		cmocka_unit_test(classify_curl_errors),
	};
	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
