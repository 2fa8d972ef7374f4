/*
 * http_client.c - see http_client.h.
 */
#include "aws/http_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/version.h"

struct hc {
	CURL *curl;
	CURLM *multi; /* drives the transfer so hc_wakeup() can interrupt it at once */
	hc_fake_fn fake; /* tests: answers instead of the network */
	void *fake_arg;
	char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER: libcurl's own words */
};

struct sink {
	struct buf body;
	bool too_big;
	const struct hc_req *req; /* its stream, when it has one */
	CURL *curl;               /* to ask the status before the first piece (NULL: fake) */
	long status;              /* the fake's status */
	bool streaming;           /* the answer is a 200 going to req->stream */
	int stream_rc;            /* what req->stream returned to stop the transfer */
	size_t streamed;          /* bytes handed to req->stream */
};

#define BACKOFF_BASE 1.0 /* seconds */

struct hc *hc_new(void)
{
	CURL *curl = curl_easy_init();
	CURLM *multi = curl_multi_init();
	if (!curl || !multi) {
		curl_easy_cleanup(curl);
		curl_multi_cleanup(multi);
		return NULL;
	}
	struct hc *c = xcalloc(1, sizeof(*c));
	c->curl = curl;
	c->multi = multi;
	return c;
}

struct hc *hc_new_fake(hc_fake_fn fn, void *arg)
{
	struct hc *c = xcalloc(1, sizeof(*c));
	c->fake = fn;
	c->fake_arg = arg;
	return c;
}

const char *hc_library_version(void)
{
	return curl_version_info(CURLVERSION_NOW)->version;
}

void hc_free(struct hc *c)
{
	if (!c)
		return;
	curl_multi_cleanup(c->multi);
	curl_easy_cleanup(c->curl);
	free(c);
}

void hc_wakeup(struct hc *c)
{
	if (c->multi)
		curl_multi_wakeup(c->multi);
}

/*
 * curl_easy_perform() would notice a stop only in its progress callback,
 * about once a second on an idle transfer; the multi interface's poll is
 * woken by hc_wakeup() instead, so shutdown never waits on a stalled server.
 */
static CURLcode perform(struct hc *c, const atomic_bool *stop)
{
	CURLcode res = CURLE_ABORTED_BY_CALLBACK;
	if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		int running = 0;
		if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running) {
			int queued;
			for (CURLMsg *m; (m = curl_multi_info_read(c->multi, &queued)) != NULL;)
				if (m->msg == CURLMSG_DONE)
					res = m->data.result;
			break;
		}
		if (stop && atomic_load(stop))
			break;
		if (curl_multi_poll(c->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			break;
		}
	}
	curl_multi_remove_handle(c->multi, c->curl);
	return res;
}

struct curl_slist *hc_header_add(struct curl_slist *l, const char *line)
{
	struct curl_slist *n = curl_slist_append(l, line);
	if (!n) {
		fprintf(stderr, "level=error msg=\"out of memory\" what=\"an HTTP header\"\n");
		abort();
	}
	return n;
}

void hc_slist_free_secret(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			secure_zero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

double hc_backoff(unsigned attempt, double base, double cap, double retry_after, double u)
{
	double ceiling = base * ldexp(1.0, attempt > 30 ? 30 : (int)attempt);
	if (ceiling > cap)
		ceiling = cap;
	double d = u * ceiling;
	return retry_after > d ? retry_after : d;
}

/* Whether this piece of the answer goes to the request's stream: a 200 answer of a request
 * that has one (any other answer is held, for the classifier). */
static bool to_stream(struct sink *s)
{
	if (!s->req || !s->req->stream)
		return false;
	if (!s->streaming && s->streamed == 0 && s->body.len == 0) {
		long status = s->status;
		if (s->curl)
			curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		s->streaming = status == 200;
	}
	return s->streaming;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	if (to_stream(s)) {
		s->stream_rc = s->req->stream(s->req->stream_arg, p, len);
		s->streamed += len;
		return s->stream_rc ? 0 : len; /* 0 makes libcurl stop with CURLE_WRITE_ERROR */
	}
	if (buf_append(&s->body, p, len)) {
		s->too_big = true;
		return 0; /* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	return len;
}

/* Maps a libcurl failure to a reason; returns whether it is worth a retry. */
static bool classify_curl(CURLcode rc, bool too_big, enum api_reason *reason)
{
	if (too_big) {
		*reason = REASON_PARSE;
		return false;
	}
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		*reason = REASON_TIMEOUT;
		return true;
	case CURLE_BAD_CONTENT_ENCODING:
		*reason = REASON_PARSE;
		return false;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		*reason = REASON_CLIENT;
		return false;
	default:
		*reason = REASON_NETWORK;
		return true;
	}
}

/*
 * Sets every option of one attempt. Returns CURLE_OK, or the first option's
 * failure (an unknown option in this libcurl, out of memory): then the request
 * fails with that reason instead of going out half-configured.
 */
static CURLcode setup(struct hc *c, const struct hc_opts *o, const struct hc_req *req,
		      struct sink *s)
{
	CURL *h = c->curl;
	CURLcode rc = CURLE_OK;
	curl_easy_reset(h);
	c->errbuf[0] = '\0';
#define SET(opt, val)                                                        \
	do {                                                                 \
		if (rc == CURLE_OK)                                          \
			rc = curl_easy_setopt(h, opt, val);                  \
	} while (0)
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_USERAGENT, "bedrock-cost-exporter/" BCE_VERSION);
	SET(CURLOPT_CONNECTTIMEOUT, o->connect_timeout);
	if (req->stream) { /* as long as it takes, but not stalled for request_timeout */
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, o->request_timeout);
	} else {
		SET(CURLOPT_TIMEOUT, o->request_timeout);
	}
	SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, s);
	if (req->headers)
		SET(CURLOPT_HTTPHEADER, req->headers);
	if (strcmp(req->method, "PUT") == 0)
		SET(CURLOPT_CUSTOMREQUEST, "PUT");
	else if (strcmp(req->method, "POST") == 0)
		SET(CURLOPT_POST, 1L);
	if (strcmp(req->method, "GET") != 0) {
		SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	if (req->aws_sigv4) {
		SET(CURLOPT_AWS_SIGV4, req->aws_sigv4);
		SET(CURLOPT_USERPWD, req->userpwd);
	}
#undef SET
	return rc;
}

/* One attempt: the real transfer, or the fake's answer. */
static CURLcode attempt(struct hc *c, const struct hc_opts *o, const struct hc_req *req,
			struct sink *s, long *status, bool *setup_failed)
{
	*status = 0;
	*setup_failed = false;
	if (c->fake) {
		struct buf all;
		buf_init(&all, (size_t)1 << 30); /* the fake holds what it answers */
		int rc = c->fake(c->fake_arg, req, status, &all);
		s->status = *status;
		/* handed over in pieces of 1000 bytes, as a transfer would */
		for (size_t at = 0; at < all.len && !s->too_big && !s->stream_rc; at += 1000) {
			size_t n = all.len - at < 1000 ? all.len - at : 1000;
			on_body(all.data + at, 1, n, s);
		}
		buf_free(&all);
		if (s->too_big || s->stream_rc)
			return CURLE_WRITE_ERROR;
		return rc ? CURLE_COULDNT_CONNECT : CURLE_OK;
	}
	CURLcode rc = setup(c, o, req, s);
	if (rc != CURLE_OK) {
		*setup_failed = true;
		return rc;
	}
	rc = perform(c, o->stop);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return rc;
}

static int do_wait(const struct hc_opts *o, double seconds)
{
	if (o->wait)
		return o->wait(o->wait_arg, seconds);
	struct timespec ts = { (time_t)seconds, (long)((seconds - floor(seconds)) * 1e9) };
	nanosleep(&ts, NULL);
	return o->stop && atomic_load(o->stop);
}

int hc_perform(struct hc *c, const struct hc_opts *o, const struct hc_req *req,
	       struct hc_resp *out, enum api_reason *reason, char *err, size_t errlen)
{
	aws_classifier classify = req->classify ? req->classify : aws_classify_status;

	for (unsigned n = 0;; n++) {
		struct sink s = { .req = req, .curl = c->fake ? NULL : c->curl };
		buf_init(&s.body, o->max_body);
		if (req->admit && req->admit(req->admit_arg)) {
			buf_free(&s.body);
			snprintf(err, errlen, "request refused by the daily request ceiling");
			return -EDQUOT;
		}
		apistats_request(req->op);
		double t0 = mono_now();
		long status = 0;
		bool setup_failed;
		CURLcode rc = attempt(c, o, req, &s, &status, &setup_failed);
		double took = mono_now() - t0;
		bool retry;
		curl_off_t retry_after = 0;

		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			buf_free(&s.body);
			snprintf(err, errlen, "stopped");
			return -ECANCELED;
		}
		if (s.stream_rc) { /* the consumer stopped: its error, not the transfer's */
			buf_free(&s.body);
			snprintf(err, errlen, "the answer's reader stopped after %zu bytes", s.streamed);
			return s.stream_rc;
		}
		if (setup_failed) {
			*reason = REASON_CLIENT;
			retry = false;
			snprintf(err, errlen, "cannot set up the request: %s%s%s", curl_easy_strerror(rc),
				 c->errbuf[0] ? ": " : "", c->errbuf);
		} else if (rc != CURLE_OK) {
			retry = classify_curl(rc, s.too_big, reason);
			if (s.too_big)
				snprintf(err, errlen, "response larger than %zu bytes", o->max_body);
			else if (c->errbuf[0]) /* libcurl's own words say more ("Failed to connect to ... port 1") */
				snprintf(err, errlen, "%s", c->errbuf);
			else
				snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		} else {
			const char *body = s.body.data ? s.body.data : "";
			char msg[200] = "";
			enum aws_verdict v = classify(status, body, s.body.len, reason, msg, sizeof(msg));
			log_debug("http request", "method", req->method, "url", req->url, "status",
				  LOG_INT(status), "duration_ms", LOG_FIXED(took * 1000, 1));
			if (v == AWS_OK) {
				out->status = status;
				out->streamed = s.streamed;
				out->etag[0] = '\0';
				struct curl_header *eh;
				if (!c->fake && curl_easy_header(c->curl, "ETag", 0, CURLH_HEADER, -1,
								 &eh) == CURLHE_OK)
					snprintf(out->etag, sizeof(out->etag), "%s", eh->value);
				out->body = buf_steal(&s.body, &out->len);
				return 0;
			}
			retry = v == AWS_RETRY;
			snprintf(err, errlen, "%s", msg);
			if (!c->fake)
				curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &retry_after);
		}
		buf_free(&s.body);
		apistats_error(req->op, *reason);

		retry = retry && n < (unsigned)o->max_retries;
		if (retry && retry_after > o->retry_max_delay) {
			size_t len = strlen(err);
			snprintf(err + len, errlen - len,
				 " (Retry-After %lds exceeds http.retry_max_delay)", (long)retry_after);
			retry = false;
		}
		if (o->attempt_failed)
			o->attempt_failed(o->attempt_failed_arg, err, retry);
		if (!retry)
			return -EIO;
		if (s.streamed && req->stream_restart && req->stream_restart(req->stream_arg)) {
			size_t len = strlen(err);
			snprintf(err + len, errlen - len, " (after %zu bytes; the reader cannot start "
				 "over)", s.streamed);
			return -EIO;
		}
		double delay = hc_backoff(n, BACKOFF_BASE, (double)o->retry_max_delay,
					  (double)retry_after, rand_unit());
		log_debug("retrying request", "url", req->url, "reason",
			  apistats_reason_name(*reason), "error", err, "attempt", LOG_INT(n + 1),
			  "delay_seconds", LOG_FIXED(delay, 3));
		apistats_retry(req->op);
		if (do_wait(o, delay)) {
			snprintf(err, errlen, "stopped");
			return -ECANCELED;
		}
	}
}
