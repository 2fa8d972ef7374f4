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

static void list_urls(void **state)
{
	(void)state;
	char *u = s3_list_url("https://{bucket}.s3.{region}.amazonaws.com", "us-east-1", "cur",
			      "exports/bedrock/data/BILLING_PERIOD=2026-12/", NULL);
	assert_string_equal(u, "https://cur.s3.us-east-1.amazonaws.com/?list-type=2&prefix="
			       "exports%2Fbedrock%2Fdata%2FBILLING_PERIOD%3D2026-12%2F");
	free(u);
	/* the token first (sorted), encoded as a query value */
	u = s3_list_url("http://127.0.0.1:9/s3/", "eu-west-1", "cur", "p/", "1a+b/c=");
	assert_string_equal(u, "http://127.0.0.1:9/s3/cur/?continuation-token=1a%2Bb%2Fc%3D&"
			       "list-type=2&prefix=p%2F");
	free(u);
}

static void listings(void **state)
{
	(void)state;
	const char *page1 =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>cur</Name><Prefix>e/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
		"<IsTruncated>true</IsTruncated><NextContinuationToken>tok+1</NextContinuationToken>"
		"<Contents><Key>e/data/BILLING_PERIOD=2026-12/x-00001.csv.gz</Key>"
		"<LastModified>2026-12-05T10:00:00.000Z</LastModified>"
		"<ETag>&quot;0123abcd&quot;</ETag><Size>1234</Size>"
		"<StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>e/a&amp;b &lt;c&gt;.json</Key><ETag>\"9\"</ETag><Size>0</Size>"
		"</Contents></ListBucketResult>";
	const char *page2 =
		"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>e/z</Key>"
		"<Size>5</Size></Contents></ListBucketResult>";
	struct s3_listing l = { 0 };
	char err[200];
	assert_int_equal(s3_list_parse(page1, strlen(page1), &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 2);
	assert_true(l.truncated);
	assert_string_equal(l.next_token, "tok+1");
	assert_string_equal(l.v[0].key, "e/data/BILLING_PERIOD=2026-12/x-00001.csv.gz");
	assert_string_equal(l.v[0].etag, "\"0123abcd\"");
	assert_int_equal(l.v[0].size, 1234);
	assert_true(l.v[0].last_modified == 1796464800.0);
	assert_string_equal(l.v[1].key, "e/a&b <c>.json");
	assert_int_equal(l.v[1].size, 0);
	assert_int_equal(s3_list_parse(page2, strlen(page2), &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_false(l.truncated);
	assert_null(l.next_token);
	assert_string_equal(l.v[2].key, "e/z");
	/* refused, and the listing stays as it was */
	const char *bad[] = {
		"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key></Contents>"
		"</ListBucketResult>",
		"<Error><Code>AccessDenied</Code></Error>",
		"<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>"
		"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>&b;</Key>"
		"<Size>1</Size></Contents></ListBucketResult>",
		"<a><b><c><d><e><f><g><h><i></i></h></g></f></e></d></c></b></a>",
		"not xml at all",
		"",
	};
	const char *why[] = { "XML: ", "without a NextContinuationToken", "without its Key or Size",
			      "not a ListBucketResult", "a DOCTYPE", "nested too deep", "XML: ",
			      "XML: " };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(s3_list_parse(bad[i], strlen(bad[i]), &l, err, sizeof(err)), -EPROTO);
		if (!strstr(err, why[i]))
			fail_msg("%zu: \"%s\" does not say \"%s\"", i, err, why[i]);
		assert_int_equal(l.n, 3);
	}
	/* an element text over 4 KiB */
	struct buf big;
	buf_init(&big, 1 << 20);
	buf_puts(&big, "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>");
	for (int i = 0; i < 5000; i++)
		buf_puts(&big, "k");
	buf_puts(&big, "</Key><Size>1</Size></Contents></ListBucketResult>");
	assert_int_equal(s3_list_parse(big.data, big.len, &l, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "too long"));
	buf_free(&big);
	s3_listing_clear(&l);
	assert_int_equal(l.n, 0);
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
		cmocka_unit_test(list_urls),
		cmocka_unit_test(listings),
		cmocka_unit_test(sha256_of_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
