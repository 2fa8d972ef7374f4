/*
 * Unit tests for s3.c: the object URL in both addressing styles (the key encoded once,
 * segment by segment), and what an S3 answer means (304/404/412 are answers, SlowDown is a
 * throttle, signature and token errors are auth). The wire is tested against the fake's S3
 * surface in tests/integration/shared_state.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/aws/s3.c"

static void object_urls(void **state)
{
	(void)state;
	char *u = s3_object_url("https://{bucket}.s3.{region}.amazonaws.com", "eu-west-1",
				"my-bucket", "prod/state.json");
	assert_string_equal(u, "https://my-bucket.s3.eu-west-1.amazonaws.com/prod/state.json");
	free(u);
	/* path-style: no {bucket} in the endpoint; a trailing slash is not doubled */
	u = s3_object_url("http://127.0.0.1:9000/s3/", "us-east-1", "b.c", "a/b.json");
	assert_string_equal(u, "http://127.0.0.1:9000/s3/b.c/a/b.json");
	free(u);
	/* every byte but the unreserved ones and '/' is percent-encoded, once */
	u = s3_object_url("http://127.0.0.1:1/s3", "us-east-1", "bkt", "dir x/st%te+1~_.json");
	assert_string_equal(u, "http://127.0.0.1:1/s3/bkt/dir%20x/st%25te%2B1~_.json");
	free(u);
	u = s3_object_url("http://{bucket}.localhost:8080/s3vh", "us-east-1", "bkt", "k");
	assert_string_equal(u, "http://bkt.localhost:8080/s3vh/k");
	free(u);
}

static void answers(void **state)
{
	(void)state;
	enum api_reason r = REASON_COUNT;
	char msg[200];
	assert_int_equal(classify_s3(200, "", 0, &r, msg, sizeof(msg)), AWS_OK);
	assert_int_equal(classify_s3(304, "", 0, &r, msg, sizeof(msg)), AWS_OK);
	assert_int_equal(classify_s3(404, "", 0, &r, msg, sizeof(msg)), AWS_OK);
	assert_int_equal(classify_s3(412, "", 0, &r, msg, sizeof(msg)), AWS_OK);
	/* a missing bucket is a configuration error, not a missing object */
	const char *nsb = "<Error><Code>NoSuchBucket</Code></Error>";
	assert_int_equal(classify_s3(404, nsb, strlen(nsb), &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	assert_non_null(strstr(msg, "NoSuchBucket"));
	const char *nsk = "<Error><Code>NoSuchKey</Code></Error>";
	assert_int_equal(classify_s3(404, nsk, strlen(nsk), &r, msg, sizeof(msg)), AWS_OK);
	const char *slow = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
			   "<Message>Please reduce your request rate.</Message></Error>";
	assert_int_equal(classify_s3(503, slow, strlen(slow), &r, msg, sizeof(msg)), AWS_RETRY);
	assert_int_equal(r, REASON_THROTTLED);
	assert_non_null(strstr(msg, "SlowDown"));
	const char *sig = "<Error><Code>SignatureDoesNotMatch</Code></Error>";
	assert_int_equal(classify_s3(403, sig, strlen(sig), &r, msg, sizeof(msg)), AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	const char *expired = "<Error><Code>ExpiredToken</Code></Error>";
	assert_int_equal(classify_s3(400, expired, strlen(expired), &r, msg, sizeof(msg)),
			 AWS_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(classify_s3(500, "<Error><Code>InternalError</Code></Error>", 41, &r, msg,
				     sizeof(msg)),
			 AWS_RETRY);
	assert_int_equal(r, REASON_SERVER);
	/* a <Code> cut by the body's length is read only as far as the body goes */
	assert_int_equal(classify_s3(400, "<Error><Code>SlowDownXX", 19, &r, msg, sizeof(msg)),
			 AWS_FAIL);
	assert_int_equal(r, REASON_CLIENT);
}

static void sha256_of_bodies(void **state)
{
	(void)state;
	char hex[65];
	sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(object_urls),
		cmocka_unit_test(answers),
		cmocka_unit_test(sha256_of_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
