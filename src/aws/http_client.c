/*
 * http_client.c - see http_client.h.
 */
#include "aws/http_client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "base/version.h"

struct hc {
	CURL *curl;
	CURLM *multi; /* drives the transfer so hc_wakeup() can interrupt it at once */
};

struct sink {
	struct buf body;
	bool too_big;
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

void hc_error_message(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (!root)
		return;
	const cJSON *m = NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsObject(e))
		m = cJSON_GetObjectItemCaseSensitive(e, "message");
	if (!cJSON_IsString(m))
		m = cJSON_GetObjectItemCaseSensitive(root, "message");
	if (!cJSON_IsString(m))
		m = cJSON_GetObjectItemCaseSensitive(root, "Message");
	if (cJSON_IsString(m) && m->valuestring) {
		size_t n = 0;
		for (const char *p = m->valuestring; *p && n + 1 < outlen && n < 160; p++)
			out[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
		out[n] = '\0';
	}
	cJSON_Delete(root);
}

enum hc_verdict hc_classify_default(long status, const char *body, size_t len,
				    enum api_reason *reason, char *msg, size_t msglen)
{
	if (status >= 200 && status < 300)
		return HC_OK;
	char detail[164];
	hc_error_message(body, len, detail, sizeof(detail));
	snprintf(msg, msglen, "HTTP %ld%s%s", status, *detail ? ": " : "", detail);
	if (status == 429) {
		*reason = REASON_THROTTLED;
		return HC_RETRY;
	}
	if (status == 401 || status == 403) {
		*reason = REASON_AUTH;
		return HC_FAIL;
	}
	if (status >= 500) {
		*reason = REASON_SERVER;
		return HC_RETRY;
	}
	*reason = REASON_CLIENT;
	return HC_FAIL;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
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

static void setup(CURL *h, const struct hc_opts *o, const struct hc_req *req, struct sink *s)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bedrock-cost-exporter/" BCE_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->request_timeout);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	if (req->headers)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, req->headers);
	if (strcmp(req->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	if (req->aws_sigv4) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);
	}
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
	enum hc_verdict (*classify)(long, const char *, size_t, enum api_reason *, char *, size_t) =
		req->classify ? req->classify : hc_classify_default;

	for (unsigned attempt = 0;; attempt++) {
		struct sink s = { .too_big = false };
		buf_init(&s.body, o->max_body);
		if (req->admit && req->admit(req->admit_arg)) {
			buf_free(&s.body);
			snprintf(err, errlen, "request refused by the daily request ceiling");
			return -EDQUOT;
		}
		setup(c->curl, o, req, &s);
		apistats_request(req->op);
		double t0 = mono_now();
		CURLcode rc = perform(c, o->stop);
		double took = mono_now() - t0;
		bool retry;
		curl_off_t retry_after = 0;

		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			buf_free(&s.body);
			snprintf(err, errlen, "stopped");
			return -ECANCELED;
		}
		if (rc != CURLE_OK) {
			retry = classify_curl(rc, s.too_big, reason);
			if (s.too_big)
				snprintf(err, errlen, "response larger than %zu bytes", o->max_body);
			else
				snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		} else {
			long status = 0;
			curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
			const char *body = s.body.data ? s.body.data : "";
			char msg[200] = "";
			enum hc_verdict v = classify(status, body, s.body.len, reason, msg, sizeof(msg));
			if (log_enabled(LOG_DEBUG)) {
				char st[16], ms[32];
				snprintf(st, sizeof(st), "%ld", status);
				snprintf(ms, sizeof(ms), "%.1f", took * 1000);
				log_debug("http request", "method", req->method, "url", req->url,
					  "status", st, "duration_ms", ms);
			}
			if (v == HC_OK) {
				out->status = status;
				out->body = buf_steal(&s.body, &out->len);
				return 0;
			}
			retry = v == HC_RETRY;
			snprintf(err, errlen, "%s", msg);
			curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &retry_after);
		}
		buf_free(&s.body);
		apistats_error(req->op, *reason);

		if (!retry || attempt >= (unsigned)o->max_retries)
			return -EIO;
		if (retry_after > o->retry_max_delay) {
			size_t n = strlen(err);
			snprintf(err + n, errlen - n, " (Retry-After %lds exceeds http.retry_max_delay)",
				 (long)retry_after);
			return -EIO;
		}
		double delay = hc_backoff(attempt, BACKOFF_BASE, (double)o->retry_max_delay,
					  (double)retry_after, rand_unit());
		char d[32], a[16];
		snprintf(d, sizeof(d), "%.3f", delay);
		snprintf(a, sizeof(a), "%u", attempt + 1);
		log_debug("retrying request", "url", req->url, "reason",
			  apistats_reason_name(*reason), "error", err, "attempt", a, "delay_seconds", d);
		apistats_retry(req->op);
		if (do_wait(o, delay)) {
			snprintf(err, errlen, "stopped");
			return -ECANCELED;
		}
	}
}
