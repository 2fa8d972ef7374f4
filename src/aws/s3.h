/*
 * s3.h - objects in Amazon S3: read one (conditionally, so an unchanged object costs no
 * transfer), write one (conditionally, so two writers never overwrite each other's newer
 * data), and list a prefix (ListObjectsV2, whose XML is read with expat). The shared state
 * file (state_file = "s3://bucket/key") reads and writes; AWS Data Exports (issue 15) list
 * and read.
 *
 * Requests are signed with SigV4 (service "s3") by libcurl, with the credentials of the
 * shared chain (awscreds.h) and an x-amz-content-sha256 header carrying the body's
 * SHA-256. Addressing: an endpoint that contains "{bucket}" is virtual-hosted
 * (https://{bucket}.s3.{region}.amazonaws.com/key); one without it is path-style
 * ({endpoint}/bucket/key, for S3-compatible stores, VPC endpoints and tests).
 * Poller thread (or main under --once).
 */
#ifndef BCE_S3_H
#define BCE_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/http_client.h"

struct aws_provider;
struct conf;

/* The object's URL at @endpoint ({bucket} and {region} substituted, the key URI-encoded
 * segment by segment). Caller frees. */
char *s3_object_url(const char *endpoint, const char *region, const char *bucket,
		    const char *key);

/* What one request needs: the HTTP client and its options, the credential chain and the
 * configuration it reads (aws.*), the wall clock. All borrowed. */
struct s3_ctx {
	struct hc *hc;
	const struct hc_opts *http;
	struct aws_provider *creds;
	const struct conf *conf;
	double now;
	api_op get_op, put_op, list_op;
};

/*
 * GetObject of @url (region @region for the signature). With @if_none_match (an ETag,
 * or NULL), an object still carrying that ETag answers 304 and no body.
 * Returns 0 with resp->status 200 (body and resp->etag filled; caller frees the body),
 * 304 (unchanged) or 404 (no such object); -ECANCELED when stopped; -EIO otherwise with
 * a one-line reason in @err (credentials included).
 */
int s3_get(const struct s3_ctx *x, const char *url, const char *region,
	   const char *if_none_match, struct hc_resp *resp, char *err, size_t errlen);

/* Where s3_get_stream hands the object's bytes (hc_req.stream). */
struct s3_stream {
	int (*fn)(void *arg, const char *data, size_t len); /* non-zero stops the transfer */
	int (*restart)(void *arg); /* before a retry of a transfer cut short; 0 = start over */
	void *arg;
};

/*
 * As s3_get, for an object of any size: the body of a 200 answer goes to @st piece by
 * piece (resp->body holds nothing; resp->streamed counts the bytes), and the transfer has
 * no overall timeout, only a stall of http.request_timeout fails it. Returns as s3_get,
 * or what @st->fn returned to stop it.
 */
int s3_get_stream(const struct s3_ctx *x, const char *url, const char *region,
		  const char *if_none_match, const struct s3_stream *st, struct hc_resp *resp,
		  char *err, size_t errlen);

/*
 * PutObject of @body to @url. Conditional: with @if_match (the ETag last read or
 * written) the write succeeds only over that version; with NULL, only when there is
 * no object yet (If-None-Match: *). Returns 0 with the new ETag in @etag; -EAGAIN when
 * the condition failed (412: another writer was first, or 404: the object was deleted
 * under an If-Match) with @err saying which; -ECANCELED; -EIO with @err.
 */
int s3_put(const struct s3_ctx *x, const char *url, const char *region, const char *body,
	   size_t len, const char *if_match, char *etag, size_t etaglen, char *err,
	   size_t errlen);

/* One object of a listing. */
struct s3_object {
	char *key;            /* owned by the listing */
	char etag[128];       /* as S3 writes it, quotes included */
	long long size;       /* bytes */
	double last_modified; /* Unix seconds; 0 when S3 gave none that reads */
};

/* Objects listed, in S3's order (by key); s3_listing_clear() frees. */
struct s3_listing {
	struct s3_object *v;
	size_t n, cap;
	bool truncated;   /* the last page said there is more */
	char *next_token; /* its NextContinuationToken, or NULL */
};

/* The ListObjectsV2 URL of @prefix in @bucket at @endpoint (as s3_object_url), with
 * @token (NULL or "": the first page): parameters sorted and encoded, as SigV4 needs them
 * on libcurl 7.88. Caller frees. */
char *s3_list_url(const char *endpoint, const char *region, const char *bucket,
		  const char *prefix, const char *token);

/*
 * Reads one ListObjectsV2 answer (a ListBucketResult document) and appends its <Contents>
 * to @out, setting out->truncated and out->next_token. A document type declaration, nesting
 * deeper than 8, an element text over 4 KiB, a <Contents> without Key or Size, or a
 * truncated page without its token is refused. Returns 0, or -EPROTO with @err (the
 * objects of @out as they were, and no next page).
 */
int s3_list_parse(const char *xml, size_t len, struct s3_listing *out, char *err,
		  size_t errlen);
void s3_listing_clear(struct s3_listing *l);

#define S3_LIST_MAX_PAGES 1000

/*
 * Lists every object under @prefix, following continuation tokens (at most
 * S3_LIST_MAX_PAGES pages of up to 1,000 keys, and at most @max_keys objects: -E2BIG),
 * appending to @out. Counted as x->list_op. Returns 0; -ECANCELED; -EIO or -EPROTO with
 * @err.
 */
int s3_list(const struct s3_ctx *x, const char *endpoint, const char *region,
	    const char *bucket, const char *prefix, size_t max_keys, struct s3_listing *out,
	    char *err, size_t errlen);

#endif
