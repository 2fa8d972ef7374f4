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

/* The streaming transport: attempt i answers @statuses[i], a 200 with a body of @len bytes
 * (a counter mod 251), another status with a short error; a status < 0 delivers the body
 * and then fails the transfer. */
struct stream_script {
	const long *statuses;
	int n, sent;
	size_t len;
};

static int stream_scripted(void *arg, const struct hc_req *req, long *status, struct buf *body)
{
	(void)req;
	struct stream_script *sc = arg;
	assert_true(sc->sent < sc->n);
	long st = sc->statuses[sc->sent++];
	*status = st < 0 ? -st : st;
	if (*status != 200) {
		buf_puts(body, "{\"message\":\"slow down\"}");
		return 0;
	}
	for (size_t i = 0; i < sc->len; i++) {
		char c = (char)(i % 251);
		buf_append(body, &c, 1);
	}
	return st < 0 ? -ECONNRESET : 0;
}

struct reader {
	size_t got, pieces;
	int restarts, refuse_restart, stop_at; /* stop_at: return -EPIPE past this many bytes */
	bool in_order;
};

static int read_piece(void *arg, const char *data, size_t len)
{
	struct reader *r = arg;
	for (size_t i = 0; i < len; i++)
		if (data[i] != (char)((r->got + i) % 251))
			r->in_order = false;
	r->got += len;
	r->pieces++;
	return r->stop_at && r->got > (size_t)r->stop_at ? -EPIPE : 0;
}

static int restart_reader(void *arg)
{
	struct reader *r = arg;
	r->restarts++;
	r->got = 0;
	return r->refuse_restart;
}

/* A 200 answer is streamed in pieces past max_body; an error answer is held and classified;
 * a transfer cut after pieces restarts the reader before its retry, or fails when the reader
 * cannot start over; the reader's error stops the transfer and is returned. */
static void streams(void **state)
{
	(void)state;
	static const struct api_op_def ops[] = { { "test", "Stream" }, { NULL, NULL } };
	apistats_register(ops);
	api_op op = apistats_op("test", "Stream");
	static const long ok[] = { 200 }, slow_then_ok[] = { 503, 200 }, cut_then_ok[] = { -200, 200 },
			  cut[] = { -200, 200 };
	struct {
		const long *st;
		int n, refuse_restart, stop_at, want_rc, want_restarts;
	} cases[] = {
		{ ok, 1, 0, 0, 0, 0 },
		{ slow_then_ok, 2, 0, 0, 0, 0 }, /* the 503's body is not the reader's */
		{ cut_then_ok, 2, 0, 0, 0, 1 },
		{ cut, 2, 1, 0, -EIO, 1 },
		{ ok, 1, 0, 3000, -EPIPE, 0 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct stream_script sc = { cases[k].st, cases[k].n, 0, 10000 };
		struct reader r = { .in_order = true, .refuse_restart = cases[k].refuse_restart,
				    .stop_at = cases[k].stop_at };
		struct hc *c = hc_new_fake(stream_scripted, &sc);
		struct hc_opts o = { .connect_timeout = 1, .request_timeout = 1, .max_retries = 2,
				     .retry_max_delay = 1, .max_body = 4096, .wait = no_wait };
		struct hc_req req = { .op = op, .method = "GET", .url = "http://127.0.0.1:1/",
				      .stream = read_piece, .stream_restart = restart_reader,
				      .stream_arg = &r };
		struct hc_resp resp = { 0 };
		enum api_reason reason = REASON_COUNT;
		char err[256] = "";
		int rc = hc_perform(c, &o, &req, &resp, &reason, err, sizeof(err));
		if (rc != cases[k].want_rc)
			fail_msg("case %zu: rc %d, want %d (%s)", k, rc, cases[k].want_rc, err);
		assert_int_equal(r.restarts, cases[k].want_restarts);
		assert_true(r.in_order);
		if (rc == 0) {
			assert_int_equal(resp.status, 200);
			assert_int_equal(resp.streamed, 10000);
			assert_int_equal(r.got, 10000);
			assert_true(r.pieces >= 10);
			assert_true(resp.len == 0);
			free(resp.body);
		} else if (rc == -EPIPE) {
			assert_non_null(strstr(err, "reader stopped"));
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
		cmocka_unit_test(streams),
	};
	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
