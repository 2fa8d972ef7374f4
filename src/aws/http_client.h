/*
 * http_client.h - one HTTP request to an AWS API, with timeouts, a cap on
 * the response size, and bounded retries (exponential backoff with full
 * jitter, Retry-After honoured).
 *
 * Every attempt is counted in apistats (requests, errors by reason, retries).
 * The final failure is NOT logged here: the caller decides what it means and
 * logs it once; retries are logged at debug level only.
 *
 * A struct hc keeps one libcurl handle so connections are reused. It belongs
 * to one thread at a time (the poller).
 */
#ifndef BCE_HTTP_CLIENT_H
#define BCE_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <curl/curl.h>

#include "aws/apistats.h"
#include "aws/aws_error.h"
#include "base/util.h"

struct hc;

struct hc_opts {
	long connect_timeout;  /* seconds */
	long request_timeout;  /* seconds, whole transfer */
	long max_retries;
	long retry_max_delay;  /* seconds; also the longest Retry-After honoured */
	size_t max_body;       /* bytes */
	/* Set to true to abort transfers and waits (shutdown). May be NULL. */
	const atomic_bool *stop;
	/* Sleeps @seconds unless woken; returns non-zero if it was woken to stop.
	 * NULL means nanosleep. */
	int (*wait)(void *arg, double seconds);
	void *wait_arg;
	/* Called after every failed attempt with its one-line description, before the
	 * wait for its retry (@will_retry) or before hc_perform returns -EIO: the
	 * caller can show the failure while the request is still retrying. May be
	 * NULL. */
	void (*attempt_failed)(void *arg, const char *err, bool will_retry);
	void *attempt_failed_arg;
};

struct hc_req {
	api_op op;                     /* apistats_op() */
	const char *method;            /* "GET", "POST" or "PUT" */
	const char *url;
	const char *body;              /* POST body or NULL */
	size_t body_len;
	const struct curl_slist *headers; /* borrowed */
	const char *aws_sigv4;         /* e.g. "aws:amz:us-east-1:bedrock-mantle", or NULL */
	const char *userpwd;           /* "AKID:SECRET" for SigV4; borrowed secret */
	/* Decides what a response means (aws_error.h); NULL = aws_classify_status. */
	aws_classifier classify;
	/* Called before every attempt; non-zero refuses it (hc_perform returns
	 * -EDQUOT). Used for the paid Cost Explorer API's daily ceiling. */
	int (*admit)(void *arg);
	void *admit_arg;
	/* Streams the body of a 200 answer to @stream, piece by piece as it arrives, instead
	 * of holding it (no max_body; the transfer has no overall timeout, only a stall of
	 * request_timeout seconds fails it). A non-zero return stops the transfer and
	 * hc_perform returns it. An attempt that fails after pieces were streamed is retried
	 * only when @stream_restart returns 0 (the reader starts over). The body of any other
	 * answer is held as usual, for the classifier. NULL: the body is held. */
	int (*stream)(void *arg, const char *data, size_t len);
	int (*stream_restart)(void *arg);
	void *stream_arg;
};

struct hc_resp {
	long status;
	char *body; /* NUL-terminated; caller frees */
	size_t len;
	char etag[128]; /* the ETag header as sent (quotes included), or "" */
	size_t streamed; /* bytes handed to hc_req.stream (body is then NULL or empty) */
};

/* Returns a new client, or NULL if libcurl cannot make a handle. */
struct hc *hc_new(void);
void hc_free(struct hc *c);

/*
 * For unit tests: a client that answers every attempt with @fn instead of the
 * network. @fn returns 0 with *status set and the body appended to @body, or
 * a negative errno for a failed transfer (counted as reason "network").
 * Everything else (admission, counters, classification, retries and their
 * waits) is as with a real client.
 */
typedef int (*hc_fake_fn)(void *arg, const struct hc_req *req, long *status, struct buf *body);
struct hc *hc_new_fake(hc_fake_fn fn, void *arg);

/* libcurl's version, for bedrock_cost_exporter_build_info. */
const char *hc_library_version(void);

/* Interrupts a transfer in progress so it notices hc_opts.stop at once. The
 * only function any thread may call while another uses @c. */
void hc_wakeup(struct hc *c);

/*
 * Performs @req, retrying as allowed. On success (HC_OK) returns 0 and fills
 * @out (caller frees out->body). On failure returns -EIO (the last attempt's
 * reason in *reason and a one-line description in @err; a libcurl option
 * that cannot be set fails the request the same way, with libcurl's words
 * in @err), -EDQUOT when
 * req->admit refused, or -ECANCELED when stopped. @out is only written on success.
 */
int hc_perform(struct hc *c, const struct hc_opts *o, const struct hc_req *req,
	       struct hc_resp *out, enum api_reason *reason, char *err, size_t errlen);

/* Appends header line @line to @l (NULL: a new list) and returns the list; aborts on
 * out-of-memory rather than send a request without its header. */
struct curl_slist *hc_header_add(struct curl_slist *l, const char *line);

/* Zeroes every string of @l, then frees it (for lists holding secrets). */
void hc_slist_free_secret(struct curl_slist *l);

/*
 * The delay before retry number @attempt (0-based): full jitter over
 * min(cap, base * 2^attempt), raised to @retry_after when that is > 0.
 * @u is a uniform random number in [0,1). Pure; exposed for tests.
 */
double hc_backoff(unsigned attempt, double base, double cap, double retry_after, double u);

#endif
