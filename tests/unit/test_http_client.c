/* Unit tests for http_client.c: backoff, classification, and what a caller hears of each
 * failed attempt (through hc_new_fake: no network). */
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

/* The fake transport: @statuses[i] answers attempt i (0: a failed transfer). */
struct script {
	const long *statuses;
	int n, sent;
};

static int scripted(void *arg, const struct hc_req *req, long *status, struct buf *body)
{
	(void)req;
	struct script *sc = arg;
	assert_true(sc->sent < sc->n);
	long st = sc->statuses[sc->sent++];
	if (!st)
		return -ETIMEDOUT;
	*status = st;
	buf_puts(body, st == 200 ? "{}" : "{\"message\":\"slow down\"}");
	return 0;
}

struct heard {
	int calls;
	bool will_retry[8];
	int sent_before[8]; /* attempts made when it was called */
	char err[8][128];
	const struct script *sc;
};

static void on_failed(void *arg, const char *err, bool will_retry)
{
	struct heard *h = arg;
	assert_true(h->calls < 8);
	h->will_retry[h->calls] = will_retry;
	h->sent_before[h->calls] = h->sc->sent;
	snprintf(h->err[h->calls], sizeof(h->err[0]), "%s", err);
	h->calls++;
}

static int no_wait(void *arg, double seconds)
{
	(void)arg;
	(void)seconds;
	return 0;
}

/* Each failed attempt is told as it fails, before its retry; the last one says no retry
 * follows; a success after failures is not a failure. */
static void each_failed_attempt_is_told(void **state)
{
	(void)state;
	static const struct api_op_def ops[] = { { "test", "Op" }, { NULL, NULL } };
	apistats_register(ops);
	api_op op = apistats_op("test", "Op");
	static const long fail_all[] = { 0, 503, 0 }, recover[] = { 429, 200 };
	for (int round = 0; round < 2; round++) {
		struct script sc = { round ? recover : fail_all, round ? 2 : 3, 0 };
		struct heard h = { .sc = &sc };
		struct hc *c = hc_new_fake(scripted, &sc);
		struct hc_opts o = { .connect_timeout = 1, .request_timeout = 1, .max_retries = 2,
				     .retry_max_delay = 1, .max_body = 1 << 20, .wait = no_wait,
				     .attempt_failed = on_failed, .attempt_failed_arg = &h };
		struct hc_req req = { .op = op, .method = "GET", .url = "http://127.0.0.1:1/" };
		struct hc_resp resp = { 0 };
		enum api_reason reason = REASON_COUNT;
		char err[256] = "";
		int rc = hc_perform(c, &o, &req, &resp, &reason, err, sizeof(err));
		if (round == 0) {
			assert_int_equal(rc, -EIO);
			assert_int_equal(h.calls, 3);
			assert_true(h.will_retry[0] && h.will_retry[1] && !h.will_retry[2]);
			for (int i = 0; i < 3; i++)
				assert_int_equal(h.sent_before[i], i + 1); /* before the next attempt */
			assert_string_equal(h.err[2], err); /* the last is what the caller gets */
			assert_true(strstr(h.err[1], "503") || strstr(h.err[1], "slow down"));
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(h.calls, 1);
			assert_true(h.will_retry[0]);
			free(resp.body);
		}
		hc_free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_is_full_jitter_with_cap),
		cmocka_unit_test(classify_curl_errors),
		cmocka_unit_test(each_failed_attempt_is_told),
	};
	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
