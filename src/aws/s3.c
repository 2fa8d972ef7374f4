/*
 * s3.c - see s3.h.
 */
#include "aws/s3.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "aws/awscreds.h"
#include "base/util.h"

/* Appends @s to @out with every byte but the unreserved ones and '/' percent-encoded (the
 * S3 canonical URI is the path as sent: encoded once). */
static void put_key(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/') {
			buf_append(out, (const char *)p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(out, e, 3);
		}
	}
}

char *s3_object_url(const char *endpoint, const char *region, const char *bucket,
		    const char *key)
{
	bool virtual_hosted = strstr(endpoint, "{bucket}") != NULL;
	struct buf out;
	buf_init(&out, 64 * 1024);
	for (const char *p = endpoint; *p;) {
		if (strncmp(p, "{bucket}", 8) == 0) {
			buf_puts(&out, bucket);
			p += 8;
		} else if (strncmp(p, "{region}", 8) == 0) {
			buf_puts(&out, region);
			p += 8;
		} else {
			buf_append(&out, p++, 1);
		}
	}
	while (out.len && out.data[out.len - 1] == '/')
		out.len--;
	if (!virtual_hosted) {
		buf_puts(&out, "/");
		buf_puts(&out, bucket);
	}
	buf_puts(&out, "/");
	put_key(&out, key);
	return buf_steal(&out, NULL);
}

/* The lower-case hex SHA-256 of @body (65 bytes with the NUL). */
static void sha256_hex(const char *body, size_t len, char out[65])
{
	unsigned char d[32];
	static const char hex[] = "0123456789abcdef";
	gnutls_hash_fast(GNUTLS_DIG_SHA256, body, len, d);
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

/* S3 answers in XML; 304, 404 and 412 are answers the callers act on, not failures. */
static enum aws_verdict classify_s3(long status, const char *body, size_t len,
				    enum api_reason *reason, char *msg, size_t msglen)
{
	/* the error's <Code>, for the log line and to tell a missing bucket from a missing key */
	char code[64] = "";
	const char *c = body ? strstr(body, "<Code>") : NULL;
	if (c) {
		c += 6;
		size_t n = 0;
		while (c + n < body + len && isalnum((unsigned char)c[n]) && n + 1 < sizeof(code))
			n++;
		memcpy(code, c, n);
		code[n] = '\0';
	}
	if (status == 304 || status == 412 || (status == 404 && strcmp(code, "NoSuchBucket") != 0))
		return AWS_OK;
	enum aws_verdict v = aws_classify_status(status, "", 0, reason, msg, msglen);
	if (v == AWS_OK)
		return v;
	if (strcmp(code, "SlowDown") == 0) {
		*reason = REASON_THROTTLED;
		v = AWS_RETRY;
	} else if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidAccessKeyId") == 0 ||
		   strcmp(code, "SignatureDoesNotMatch") == 0) {
		*reason = REASON_AUTH;
		v = AWS_FAIL;
	}
	if (*code) {
		size_t n = strlen(msg);
		snprintf(msg + n, msglen - n, " %s", code);
	}
	return v;
}

/* One signed request. Returns 0 with @resp filled, -ECANCELED, or -EIO with @err. */
static int call(const struct s3_ctx *x, api_op op, const char *method, const char *url,
		const char *region, const char *body, size_t len, const char *cond,
		struct hc_resp *resp, char *err, size_t errlen)
{
	struct aws_creds cr = { 0 };
	int rc = aws_provider_get(x->creds, x->hc, x->http, x->conf, x->now, &cr, err, errlen);
	if (rc)
		return rc == -ECANCELED ? rc : -EIO;
	char sha[65], *sh;
	sha256_hex(body ? body : "", len, sha);
	sh = xasprintf("x-amz-content-sha256: %s", sha);
	struct curl_slist *h = hc_header_add(NULL, sh);
	if (cond)
		h = hc_header_add(h, cond);
	if (body)
		h = hc_header_add(h, "Content-Type: application/json");
	struct aws_sign sign;
	aws_sign_prepare(&sign, &cr, region, "s3", &h);
	struct hc_req req = { .op = op, .method = method, .url = url, .body = body,
			      .body_len = len, .headers = h, .aws_sigv4 = sign.provider,
			      .userpwd = sign.userpwd, .classify = classify_s3 };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(x->hc, x->http, &req, resp, &reason, herr, sizeof(herr));
	if (rc && rc != -ECANCELED) {
		snprintf(err, errlen, "%s %s failed (%s): %s", method, url,
			 apistats_reason_name(reason), herr);
		rc = -EIO;
	}
	if (rc == -EIO && reason == REASON_AUTH)
		aws_provider_invalidate(x->creds);
	hc_slist_free_secret(h);
	aws_sign_clear(&sign);
	awscreds_clear(&cr);
	free(sh);
	return rc;
}

int s3_get(const struct s3_ctx *x, const char *url, const char *region,
	   const char *if_none_match, struct hc_resp *resp, char *err, size_t errlen)
{
	char *cond = if_none_match && *if_none_match ? xasprintf("If-None-Match: %s", if_none_match)
						     : NULL;
	int rc = call(x, x->get_op, "GET", url, region, NULL, 0, cond, resp, err, errlen);
	free(cond);
	if (rc == 0 && resp->status == 200 && !resp->etag[0]) {
		snprintf(err, errlen, "GET %s: the answer has no ETag", url);
		free(resp->body);
		resp->body = NULL;
		return -EIO;
	}
	return rc;
}

int s3_put(const struct s3_ctx *x, const char *url, const char *region, const char *body,
	   size_t len, const char *if_match, char *etag, size_t etaglen, char *err,
	   size_t errlen)
{
	char *cond = if_match && *if_match ? xasprintf("If-Match: %s", if_match)
					   : xstrdup("If-None-Match: *");
	struct hc_resp resp = { 0 };
	int rc = call(x, x->put_op, "PUT", url, region, body, len, cond, &resp, err, errlen);
	free(cond);
	if (rc)
		return rc;
	if (resp.status == 412 || resp.status == 404) {
		snprintf(err, errlen, "PUT %s: %s", url,
			 resp.status == 412 ? "another writer changed the object since it was read "
					      "(412 Precondition Failed)"
					    : "the object was deleted since it was read (404)");
		rc = -EAGAIN;
	} else if (!resp.etag[0]) {
		snprintf(err, errlen, "PUT %s: the answer has no ETag", url);
		rc = -EIO;
	} else {
		snprintf(etag, etaglen, "%s", resp.etag);
	}
	free(resp.body);
	return rc;
}
