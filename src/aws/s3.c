/*
 * s3.c - see s3.h.
 */
#include "aws/s3.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "aws/awscreds.h"
#include "base/util.h"

/* Appends @s to @out with every byte but the unreserved ones (and '/' when @slash)
 * percent-encoded (the S3 canonical URI is the path as sent: encoded once; a query value
 * encodes '/' too). */
static void put_encoded(struct buf *out, const char *s, bool slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (slash && *p == '/')) {
			buf_append(out, (const char *)p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(out, e, 3);
		}
	}
}

/* The bucket's URL at @endpoint, without a trailing '/'. */
static void bucket_url(struct buf *out, const char *endpoint, const char *region,
		       const char *bucket)
{
	bool virtual_hosted = strstr(endpoint, "{bucket}") != NULL;
	for (const char *p = endpoint; *p;) {
		if (strncmp(p, "{bucket}", 8) == 0) {
			buf_puts(out, bucket);
			p += 8;
		} else if (strncmp(p, "{region}", 8) == 0) {
			buf_puts(out, region);
			p += 8;
		} else {
			buf_append(out, p++, 1);
		}
	}
	while (out->len && out->data[out->len - 1] == '/')
		out->len--;
	if (!virtual_hosted) {
		buf_puts(out, "/");
		buf_puts(out, bucket);
	}
}

char *s3_object_url(const char *endpoint, const char *region, const char *bucket,
		    const char *key)
{
	struct buf out;
	buf_init(&out, 64 * 1024);
	bucket_url(&out, endpoint, region, bucket);
	buf_puts(&out, "/");
	put_encoded(&out, key, true);
	return buf_steal(&out, NULL);
}

char *s3_list_url(const char *endpoint, const char *region, const char *bucket,
		  const char *prefix, const char *token)
{
	struct buf out;
	buf_init(&out, 64 * 1024);
	bucket_url(&out, endpoint, region, bucket);
	/* the parameters sorted by name and encoded, as SigV4's canonical query string */
	buf_puts(&out, "/?");
	if (token && *token) {
		buf_puts(&out, "continuation-token=");
		put_encoded(&out, token, false);
		buf_puts(&out, "&");
	}
	buf_puts(&out, "list-type=2&prefix=");
	put_encoded(&out, prefix, false);
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

/* ---- S3's XML (expat): error documents and ListObjectsV2 pages ---- */

#define XML_MAX_DEPTH 8
#define XML_MAX_TEXT 4096 /* an element's text: a key is at most 1,024 bytes */

struct xml_walk {
	XML_Parser xp;
	const char *path[XML_MAX_DEPTH]; /* element names from the root (expat's, borrowed) */
	int depth;
	struct buf text;                 /* the current leaf's text */
	const char *refused;             /* why parsing was stopped, or NULL */
	/* what is read */
	char code[64];                   /* <Error><Code> */
	struct s3_listing *list;         /* NULL: an error document only */
	struct s3_object cur;            /* the <Contents> being read */
	bool truncated_seen;
};

static void xml_stop(struct xml_walk *w, const char *why)
{
	if (!w->refused)
		w->refused = why;
	XML_StopParser(w->xp, XML_FALSE);
}

static bool at(const struct xml_walk *w, const char *a, const char *b, const char *c)
{
	const char *want[3] = { a, b, c };
	int n = c ? 3 : b ? 2 : 1;
	if (w->depth != n)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(w->path[i], want[i]) != 0)
			return false;
	return true;
}

static void XMLCALL xml_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	(void)attrs;
	struct xml_walk *w = arg;
	if (w->depth == XML_MAX_DEPTH) {
		xml_stop(w, "nested too deep");
		return;
	}
	w->path[w->depth++] = name;
	w->text.len = 0;
	if (w->list && at(w, "ListBucketResult", "Contents", NULL)) {
		free(w->cur.key);
		w->cur = (struct s3_object){ .size = -1 };
	}
}

static void XMLCALL xml_text(void *arg, const XML_Char *s, int len)
{
	struct xml_walk *w = arg;
	if (w->text.len + (size_t)len > XML_MAX_TEXT) {
		xml_stop(w, "an element's text is too long");
		return;
	}
	buf_append(&w->text, s, (size_t)len);
}

static void XMLCALL xml_end(void *arg, const XML_Char *name)
{
	(void)name;
	struct xml_walk *w = arg;
	const char *t = w->text.data ? w->text.data : "";
	if (at(w, "Error", "Code", NULL)) { /* S3's codes are words: nothing else is kept */
		size_t n = 0;
		for (const char *c = t; *c && n + 1 < sizeof(w->code); c++)
			if (isalnum((unsigned char)*c))
				w->code[n++] = *c;
		w->code[n] = '\0';
	} else if (!w->list) {
		/* an error document is all that is read */
	} else if (at(w, "ListBucketResult", "IsTruncated", NULL)) {
		w->list->truncated = strcmp(t, "true") == 0;
		w->truncated_seen = true;
	} else if (at(w, "ListBucketResult", "NextContinuationToken", NULL)) {
		free(w->list->next_token);
		w->list->next_token = xstrdup(t);
	} else if (at(w, "ListBucketResult", "Contents", "Key")) {
		free(w->cur.key);
		w->cur.key = xstrdup(t);
	} else if (at(w, "ListBucketResult", "Contents", "ETag")) {
		snprintf(w->cur.etag, sizeof(w->cur.etag), "%s", t);
	} else if (at(w, "ListBucketResult", "Contents", "Size")) {
		char *end;
		long long v = strtoll(t, &end, 10);
		w->cur.size = *t && !*end && v >= 0 ? v : -1;
	} else if (at(w, "ListBucketResult", "Contents", "LastModified")) {
		if (awscreds_parse_iso8601(t, &w->cur.last_modified))
			w->cur.last_modified = 0;
	} else if (at(w, "ListBucketResult", "Contents", NULL)) {
		if (!w->cur.key || !*w->cur.key || w->cur.size < 0) {
			xml_stop(w, "a <Contents> without its Key or Size");
		} else {
			if (w->list->n == w->list->cap) {
				w->list->cap = w->list->cap ? 2 * w->list->cap : 64;
				w->list->v = xrealloc(w->list->v, w->list->cap * sizeof(*w->list->v));
			}
			w->list->v[w->list->n++] = w->cur;
			w->cur = (struct s3_object){ 0 };
		}
	}
	w->text.len = 0;
	if (w->text.data)
		w->text.data[0] = '\0';
	w->depth--;
}

/* A document type declaration is refused: no entity of the document's own is expanded. */
static void XMLCALL xml_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
				const XML_Char *pubid, int internal)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)internal;
	xml_stop(arg, "a DOCTYPE");
}

/* Parses @xml: an error document's code into w->code, a listing into w->list (appended).
 * Returns 0, or -EPROTO with @err. */
static int xml_read(struct xml_walk *w, const char *xml, size_t len, char *err, size_t errlen)
{
	int rc = 0;
	w->xp = XML_ParserCreate("UTF-8");
	if (!w->xp) {
		snprintf(err, errlen, "XML: cannot create a parser");
		return -ENOMEM;
	}
	buf_init(&w->text, XML_MAX_TEXT + 1);
	XML_SetUserData(w->xp, w);
	XML_SetElementHandler(w->xp, xml_start, xml_end);
	XML_SetCharacterDataHandler(w->xp, xml_text);
	XML_SetStartDoctypeDeclHandler(w->xp, xml_doctype);
	if (len > INT_MAX ||
	    XML_Parse(w->xp, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK) {
		snprintf(err, errlen, "XML: %s at line %lu",
			 w->refused ? w->refused
				    : len > INT_MAX ? "too long"
				    : XML_ErrorString(XML_GetErrorCode(w->xp)),
			 (unsigned long)XML_GetCurrentLineNumber(w->xp));
		rc = -EPROTO;
	}
	XML_ParserFree(w->xp);
	buf_free(&w->text);
	free(w->cur.key);
	w->cur.key = NULL;
	return rc;
}

int s3_list_parse(const char *xml, size_t len, struct s3_listing *out, char *err,
		  size_t errlen)
{
	struct xml_walk w = { .list = out };
	out->truncated = false;
	free(out->next_token);
	out->next_token = NULL;
	size_t before = out->n;
	int rc = xml_read(&w, xml, len, err, errlen);
	if (!rc && (w.depth != 0 || !w.truncated_seen)) {
		snprintf(err, errlen, "ListObjectsV2: the answer is not a ListBucketResult");
		rc = -EPROTO;
	} else if (!rc && out->truncated && (!out->next_token || !*out->next_token)) {
		snprintf(err, errlen, "ListObjectsV2: truncated, without a NextContinuationToken");
		rc = -EPROTO;
	}
	if (rc) { /* all or nothing: the objects as they were, and no next page */
		for (size_t i = before; i < out->n; i++)
			free(out->v[i].key);
		out->n = before;
		out->truncated = false;
		free(out->next_token);
		out->next_token = NULL;
	}
	return rc;
}

void s3_listing_clear(struct s3_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next_token);
	*l = (struct s3_listing){ 0 };
}

/* S3 answers in XML; 304, 404 and 412 are answers the callers act on, not failures. */
static enum aws_verdict classify_s3(long status, const char *body, size_t len,
				    enum api_reason *reason, char *msg, size_t msglen)
{
	/* the error's <Code>, for the log line and to tell a missing bucket from a missing key */
	struct xml_walk w = { 0 };
	char xerr[128];
	const char *code = status >= 300 && body && len && !xml_read(&w, body, len, xerr, sizeof(xerr))
				   ? w.code : "";
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
		const struct s3_stream *st, struct hc_resp *resp, char *err, size_t errlen)
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
			      .userpwd = sign.userpwd, .classify = classify_s3,
			      .stream = st ? st->fn : NULL, .stream_restart = st ? st->restart : NULL,
			      .stream_arg = st ? st->arg : NULL };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(x->hc, x->http, &req, resp, &reason, herr, sizeof(herr));
	if (rc && rc != -ECANCELED && rc != -EIO) { /* the stream's reader stopped it */
		snprintf(err, errlen, "%s %s: %s", method, url, herr);
	} else if (rc && rc != -ECANCELED) {
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
	int rc = call(x, x->get_op, "GET", url, region, NULL, 0, cond, NULL, resp, err, errlen);
	free(cond);
	if (rc == 0 && resp->status == 200 && !resp->etag[0]) {
		snprintf(err, errlen, "GET %s: the answer has no ETag", url);
		free(resp->body);
		resp->body = NULL;
		return -EIO;
	}
	return rc;
}

int s3_get_stream(const struct s3_ctx *x, const char *url, const char *region,
		  const char *if_none_match, const struct s3_stream *st, struct hc_resp *resp,
		  char *err, size_t errlen)
{
	char *cond = if_none_match && *if_none_match ? xasprintf("If-None-Match: %s", if_none_match)
						     : NULL;
	int rc = call(x, x->get_op, "GET", url, region, NULL, 0, cond, st, resp, err, errlen);
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
	int rc = call(x, x->put_op, "PUT", url, region, body, len, cond, NULL, &resp, err, errlen);
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

int s3_list(const struct s3_ctx *x, const char *endpoint, const char *region,
	    const char *bucket, const char *prefix, size_t max_keys, struct s3_listing *out,
	    char *err, size_t errlen)
{
	char *token = NULL;
	int rc = 0;
	for (int page = 0;; page++) {
		if (page == S3_LIST_MAX_PAGES) {
			snprintf(err, errlen, "ListObjectsV2 of s3://%s/%s: more than %d pages", bucket,
				 prefix, S3_LIST_MAX_PAGES);
			rc = -E2BIG;
			break;
		}
		char *url = s3_list_url(endpoint, region, bucket, prefix, token);
		struct hc_resp resp = { 0 };
		rc = call(x, x->list_op, "GET", url, region, NULL, 0, NULL, NULL, &resp, err, errlen);
		if (!rc && resp.status != 200) {
			snprintf(err, errlen, "GET %s: HTTP %ld", url, resp.status);
			rc = -EIO;
		}
		if (!rc)
			rc = s3_list_parse(resp.body, resp.len, out, err, errlen);
		free(resp.body);
		free(url);
		if (!rc && out->n > max_keys) {
			snprintf(err, errlen, "ListObjectsV2 of s3://%s/%s: more than %zu objects",
				 bucket, prefix, max_keys);
			rc = -E2BIG;
		}
		if (!rc && out->truncated && token && strcmp(token, out->next_token) == 0) {
			snprintf(err, errlen, "ListObjectsV2 of s3://%s/%s: the same continuation "
				 "token twice", bucket, prefix);
			rc = -EPROTO;
		}
		if (rc || !out->truncated)
			break;
		free(token);
		token = xstrdup(out->next_token);
	}
	free(token);
	return rc;
}
