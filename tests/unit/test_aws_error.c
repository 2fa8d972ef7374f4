/* Unit tests for aws_error.c: what an AWS answer that is not a success means. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/aws/aws_error.c"

static void default_classification(void **state)
{
	(void)state;
	enum api_reason r = REASON_COUNT;
	char msg[200];
	assert_int_equal(aws_classify_status(200, "", 0, &r, msg, sizeof(msg)), AWS_OK);
	assert_int_equal(aws_classify_status(429, "", 0, &r, msg, sizeof(msg)), AWS_RETRY);
	assert_int_equal(r, REASON_THROTTLED);
	assert_int_equal(aws_classify_status(401, "", 0, &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(aws_classify_status(403, "", 0, &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(aws_classify_status(400, "", 0, &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	assert_int_equal(aws_classify_status(404, "", 0, &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	assert_int_equal(aws_classify_status(503, "", 0, &r, msg, sizeof(msg)), AWS_RETRY);
	assert_int_equal(r, REASON_SERVER);
	assert_string_equal(msg, "HTTP 503");
	const char *body = "{\"error\":{\"message\":\"Invalid API key\",\"type\":\"x\"}}";
	aws_classify_status(401, body, strlen(body), &r, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 401: Invalid API key");
}

static void error_messages(void **state)
{
	(void)state;
	char out[200];
	const char *aws = "{\"__type\":\"x#LimitExceededException\",\"Message\":\"Rate\\nexceeded\"}";
	aws_error_message(aws, strlen(aws), out, sizeof(out));
	assert_string_equal(out, "Rate exceeded");
	const char *plain = "{\"message\":\"The request signature we calculated does not match\"}";
	aws_error_message(plain, strlen(plain), out, sizeof(out));
	assert_string_equal(out, "The request signature we calculated does not match");
	aws_error_message("<html>", 6, out, sizeof(out));
	assert_string_equal(out, "");
	aws_error_message("{\"error\":\"str\"}", 15, out, sizeof(out));
	assert_string_equal(out, "");
}

static void json_protocol_errors(void **state)
{
	(void)state;
	enum api_reason r;
	char msg[256];
	const char *thr = "{\"__type\":\"com.amazonaws.awsinsightsindexservice#LimitExceededException\",\"Message\":\"Rate exceeded\"}";
	assert_int_equal(aws_classify_json(400, thr, strlen(thr), &r, msg, sizeof(msg)), AWS_RETRY);
	assert_int_equal(r, REASON_THROTTLED);
	assert_string_equal(msg, "HTTP 400 LimitExceededException: Rate exceeded");
	const char *du = "{\"__type\":\"x#DataUnavailableException\",\"Message\":\"no data\"}";
	assert_int_equal(aws_classify_json(400, du, strlen(du), &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	const char *ex = "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\",\"message\":\"expired\"}";
	assert_int_equal(aws_classify_json(400, ex, strlen(ex), &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(aws_classify_json(403, "{}", 2, &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(aws_classify_json(503, "", 0, &r, msg, sizeof(msg)), AWS_RETRY);
	assert_int_equal(r, REASON_SERVER);
	const char *sts = "{\"Error\":{\"Code\":\"InvalidIdentityToken\",\"Message\":\"bad\"}}";
	assert_int_equal(aws_classify_json(400, sts, strlen(sts), &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_classification),
		cmocka_unit_test(error_messages),
		cmocka_unit_test(json_protocol_errors),
	};
	return cmocka_run_group_tests_name("aws_error", tests, NULL, NULL);
}
