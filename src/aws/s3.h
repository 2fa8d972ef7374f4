/*
 * s3.h - one object in Amazon S3: read it (conditionally, so an unchanged object costs no
 * transfer) and write it (conditionally, so two writers never overwrite each other's newer
 * data). The shared state file (state_file = "s3://bucket/key") is its one user.
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
	api_op get_op, put_op;
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

#endif
