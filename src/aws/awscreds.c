/*
 * awscreds.c - see awscreds.h.
 */
#include "aws/awscreds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/days.h"
#include "base/files.h"
#include "base/jsontape.h"
#include "base/log.h"
#include "base/util.h"

/* Temporary credentials are replaced this long before they expire. */
#define REFRESH_MARGIN 300.0

/* A member account's assumed-role credentials. */
struct role_creds {
	char *role_arn;
	struct aws_creds creds;
	double refresh_at;
};

struct aws_provider {
	struct aws_creds creds;
	bool have;
	const char *source;
	double refresh_at; /* when to fetch anew: REFRESH_MARGIN before expiry, or halfway */
	bool warned_short; /* "short-lived credentials" said once */
	struct role_creds *roles; /* aws_provider_get_role()'s cache */
	size_t nroles;
};

/* When credentials expiring at @expiration, obtained at @now, are replaced: 5 minutes
 * before they expire; credentials issued with less than that left are used for half of
 * what remains (never fetched per request). 0 = never. */
static double refresh_time(double expiration, double now)
{
	double left = expiration - now;
	return expiration == 0		   ? 0
	       : left > 2 * REFRESH_MARGIN ? expiration - REFRESH_MARGIN
					   : now + (left > 0 ? left / 2 : 0);
}

int awscreds_from_env(struct aws_creds *out)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret)
		return -ENOENT;
	out->access_key_id = xstrdup(id);
	out->secret_access_key = xstrdup(secret);
	out->session_token = token && *token ? xstrdup(token) : NULL;
	out->expiration = 0;
	return 0;
}

void awscreds_clear(struct aws_creds *c)
{
	free_secret(c->access_key_id);
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	c->access_key_id = c->secret_access_key = c->session_token = NULL;
	c->expiration = 0;
}

void awscreds_copy(const struct aws_creds *from, struct aws_creds *to)
{
	to->access_key_id = xstrdup(from->access_key_id);
	to->secret_access_key = xstrdup(from->secret_access_key);
	to->session_token = xstrdup(from->session_token);
	to->expiration = from->expiration;
}

void aws_sign_prepare(struct aws_sign *s, const struct aws_creds *creds, const char *region,
		      const char *service, struct curl_slist **headers)
{
	s->provider = xasprintf("aws:amz:%s:%s", region, service);
	s->userpwd = xasprintf("%s:%s", creds->access_key_id, creds->secret_access_key);
	if (creds->session_token) {
		char *t = xasprintf("X-Amz-Security-Token: %s", creds->session_token);
		*headers = hc_header_add(*headers, t);
		free_secret(t);
	}
}

void aws_sign_clear(struct aws_sign *s)
{
	free(s->provider);
	free_secret(s->userpwd);
	s->provider = s->userpwd = NULL;
}

int awscreds_from_file(const char *path, const char *profile, struct aws_creds *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -ENOENT;
	char line[4096];
	bool in = false, found = false;
	struct aws_creds c = { 0 };
	while (fgets(line, sizeof(line), f)) {
		text_trim(line);
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *end = strchr(line, ']');
			if (end)
				*end = '\0';
			char *name = text_trim(line + 1);
			in = strcmp(name, profile) == 0;
			found = found || in;
			continue;
		}
		if (!in)
			continue;
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *k = text_trim(line), *v = text_trim(eq + 1);
		char **dst = strcmp(k, "aws_access_key_id") == 0	 ? &c.access_key_id
			   : strcmp(k, "aws_secret_access_key") == 0 ? &c.secret_access_key
			   : strcmp(k, "aws_session_token") == 0	 ? &c.session_token
								 : NULL;
		if (dst && *v) {
			free_secret(*dst);
			*dst = xstrdup(v);
		}
	}
	secure_zero(line, sizeof(line));
	fclose(f);
	if (!found) {
		awscreds_clear(&c);
		return -ENOENT;
	}
	if (!c.access_key_id || !c.secret_access_key) {
		awscreds_clear(&c);
		return -EPROTO;
	}
	*out = c;
	return 0;
}

int awscreds_parse_iso8601(const char *s, double *out)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return -EINVAL;
	char date[40];
	snprintf(date, sizeof(date), "%04d-%02d-%02d", y, mo, d);
	long day;
	if (days_parse(date, &day) || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	const char *p = s + 19;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	double offset = 0;
	if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
			return -EINVAL;
		offset = (*p == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
		p += 6;
	} else if (*p == 'Z') {
		p++;
	}
	if (*p)
		return -EINVAL;
	*out = days_start_time(day) + h * 3600.0 + mi * 60.0 + sec - offset;
	return 0;
}

/* Reads {AccessKeyId, SecretAccessKey, Token|SessionToken, Expiration} from object @obj. */
static int creds_from_json(const struct jsontape *t, size_t obj, struct aws_creds *out, char *err,
			   size_t errlen)
{
	size_t tk = jt_get(t, obj, "SessionToken");
	if (tk == JT_NONE)
		tk = jt_get(t, obj, "Token");
	size_t ex = jt_get(t, obj, "Expiration");
	char *id = jt_strdup(t, jt_get(t, obj, "AccessKeyId"));
	char *sk = jt_strdup(t, jt_get(t, obj, "SecretAccessKey"));
	char *token = jt_strdup(t, tk);
	int rc = 0;
	double exp = 0;
	if (!id || !*id || !sk || !*sk || !token || !*token) {
		snprintf(err, errlen, "credentials response lacks AccessKeyId, SecretAccessKey or token");
		rc = -EPROTO;
	} else if (jt_is(t, ex, JT_NUMBER)) {
		jt_number(t, ex, &exp);
	} else {
		char s[64];
		if (jt_str(t, ex, s, sizeof(s)) < 0 || awscreds_parse_iso8601(s, &exp)) {
			snprintf(err, errlen, "credentials response has no valid Expiration");
			rc = -EPROTO;
		}
	}
	if (rc) {
		free_secret(id);
		free_secret(sk);
		free_secret(token);
		return rc;
	}
	out->access_key_id = id;
	out->secret_access_key = sk;
	out->session_token = token;
	out->expiration = exp;
	return 0;
}

/* Parses a JSON body and finds the credentials object at @path (NULL-terminated keys). */
static int creds_from_body(const char *body, size_t len, const char *const *path,
			   struct aws_creds *out, char *err, size_t errlen)
{
	struct jsontape t;
	if (jsontape_parse(&t, body, len)) {
		snprintf(err, errlen, "credentials response is not valid JSON");
		return -EPROTO;
	}
	size_t o = 0;
	for (const char *const *k = path; *k && o != JT_NONE; k++)
		o = jt_get(&t, o, *k);
	int rc;
	if (!jt_is(&t, o, JT_OBJECT)) {
		snprintf(err, errlen, "credentials response lacks %s", path[0] ? path[0] : "an object");
		rc = -EPROTO;
	} else {
		rc = creds_from_json(&t, o, out, err, errlen);
	}
	/* the tape holds no copies: the secrets are only in the body, zeroed by the caller */
	jsontape_free(&t);
	return rc;
}

static void form_put(struct buf *b, const char *k, const char *v)
{
	if (b->len)
		buf_putc(b, '&');
	buf_puts(b, k);
	buf_putc(b, '=');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			buf_putc(b, (char)*p);
		else
			buf_printf(b, "%%%02X", *p);
	}
}

static char *sts_url(const struct conf *c)
{
	char *base = region_url(c->aws_sts_endpoint, c->aws_region);
	char *url = xasprintf("%s/", base);
	free(base);
	return url;
}

/* Sends one request and parses credentials at @path out of the answer. */
static int fetch(struct hc *hc, const struct hc_opts *o, struct hc_req *req, const char *const *path,
		 struct aws_creds *out, char *err, size_t errlen)
{
	struct hc_resp resp = { 0 };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	int rc = hc_perform(hc, o, req, &resp, &reason, herr, sizeof(herr));
	if (rc == -ECANCELED)
		return rc;
	if (rc) {
		snprintf(err, errlen, "%s (%s)", herr, apistats_reason_name(reason));
		return rc;
	}
	rc = creds_from_body(resp.body, resp.len, path, out, err, errlen);
	if (rc)
		apistats_error(req->op, REASON_PARSE);
	free_secret(resp.body);
	return rc;
}

static int read_small_file(const char *path, char **out)
{
	int rc = read_file_max(path, 64 * 1024, out, NULL);
	if (!rc)
		text_trim(*out);
	return rc;
}

static int web_identity(struct hc *hc, const struct hc_opts *o, const struct conf *c,
			const char *token_file, const char *role, struct aws_creds *out, char *err,
			size_t errlen)
{
	char *token = NULL;
	int rc = read_small_file(token_file, &token);
	if (rc) {
		snprintf(err, errlen, "cannot read AWS_WEB_IDENTITY_TOKEN_FILE %s: %s", token_file,
			 strerror(-rc));
		return -EACCES;
	}
	const char *session = getenv("AWS_ROLE_SESSION_NAME");
	struct buf form;
	buf_init(&form, 128 * 1024);
	form_put(&form, "Action", "AssumeRoleWithWebIdentity");
	form_put(&form, "RoleArn", role);
	form_put(&form, "RoleSessionName", session && *session ? session : c->aws_role_session_name);
	form_put(&form, "Version", "2011-06-15");
	form_put(&form, "WebIdentityToken", token);
	free_secret(token);
	char *url = sts_url(c);
	struct curl_slist *h = hc_header_add(NULL, "Accept: application/json");
	h = hc_header_add(h, "Content-Type: application/x-www-form-urlencoded");
	struct hc_req req = { .op = OP_STS_ASSUME_ROLE_WEB_IDENTITY, .method = "POST", .url = url,
			      .body = form.data, .body_len = form.len, .headers = h,
			      .classify = aws_classify_json };
	static const char *const path[] = { "AssumeRoleWithWebIdentityResponse",
					    "AssumeRoleWithWebIdentityResult", "Credentials", NULL };
	rc = fetch(hc, o, &req, path, out, err, errlen);
	curl_slist_free_all(h);
	secure_zero(form.data, form.len);
	buf_free(&form);
	free(url);
	return rc;
}

static int container(struct hc *hc, const struct hc_opts *o, const struct conf *c,
		     struct aws_creds *out, char *err, size_t errlen)
{
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	char *url = full && *full ? xstrdup(full) : xasprintf("%s%s", c->aws_container_endpoint, rel);
	char *token = NULL;
	const char *tfile = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tenv = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	int rc = 0;
	if (tfile && *tfile) {
		rc = read_small_file(tfile, &token);
		if (rc) {
			snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				 tfile, strerror(-rc));
			free(url);
			return -EACCES;
		}
	} else if (tenv && *tenv) {
		token = xstrdup(tenv);
	}
	struct curl_slist *h = hc_header_add(NULL, "Accept: application/json");
	if (token) {
		char *ah = xasprintf("Authorization: %s", token);
		h = hc_header_add(h, ah);
		free_secret(ah);
		free_secret(token);
	}
	struct hc_req req = { .op = OP_CONTAINER_CREDENTIALS, .method = "GET", .url = url, .headers = h };
	static const char *const path[] = { NULL };
	rc = fetch(hc, o, &req, path, out, err, errlen);
	hc_slist_free_secret(h);
	free(url);
	return rc;
}

static int imds(struct hc *hc, const struct hc_opts *o0, const struct conf *c,
		struct aws_creds *out, char *err, size_t errlen)
{
	const char *env = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *base = env && *env ? env : c->aws_imds_endpoint;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	/* instance metadata answers in milliseconds or not at all */
	struct hc_opts o = *o0;
	o.connect_timeout = 1;
	o.request_timeout = 3;
	o.max_retries = o.max_retries > 1 ? 1 : o.max_retries;
	o.max_body = 64 * 1024;

	char *url = xasprintf("%.*s/latest/api/token", (int)bl, base);
	struct curl_slist *h = hc_header_add(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	struct hc_req req = { .op = OP_IMDS_CREDENTIALS, .method = "PUT", .url = url, .headers = h };
	struct hc_resp resp = { 0 };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	char *role = NULL, *tokhdr = NULL;
	int rc = hc_perform(hc, &o, &req, &resp, &reason, herr, sizeof(herr));
	curl_slist_free_all(h);
	h = NULL;
	free(url);
	url = NULL;
	if (rc) {
		snprintf(err, errlen, "IMDSv2 token: %s (%s)", herr, apistats_reason_name(reason));
		goto out;
	}
	tokhdr = xasprintf("X-aws-ec2-metadata-token: %s", text_trim(resp.body));
	free_secret(resp.body);
	h = hc_header_add(NULL, tokhdr);
	url = xasprintf("%.*s/latest/meta-data/iam/security-credentials/", (int)bl, base);
	req = (struct hc_req){ .op = OP_IMDS_CREDENTIALS, .method = "GET", .url = url, .headers = h };
	rc = hc_perform(hc, &o, &req, &resp, &reason, herr, sizeof(herr));
	if (rc) {
		snprintf(err, errlen, "IMDS role name: %s (%s)", herr, apistats_reason_name(reason));
		goto out;
	}
	role = resp.body;
	char *nl = strchr(role, '\n');
	if (nl)
		*nl = '\0';
	text_trim(role);
	if (!*role || strpbrk(role, "/?#% ")) {
		apistats_error(OP_IMDS_CREDENTIALS, REASON_PARSE);
		snprintf(err, errlen, "IMDS: no IAM role attached to this instance");
		rc = -EPROTO;
		goto out;
	}
	free(url);
	url = xasprintf("%.*s/latest/meta-data/iam/security-credentials/%s", (int)bl, base, role);
	req.url = url;
	static const char *const path[] = { NULL };
	rc = fetch(hc, &o, &req, path, out, err, errlen);
out:
	hc_slist_free_secret(h);
	free_secret(tokhdr);
	free(role);
	free(url);
	return rc;
}

static int assume_role(struct hc *hc, const struct hc_opts *o, const struct conf *c,
		       const char *role_arn, const char *external_id,
		       const struct aws_creds *base, struct aws_creds *out, char *err, size_t errlen)
{
	struct buf form;
	buf_init(&form, 64 * 1024);
	/* parameters sorted, as the signature is computed over the body as sent */
	form_put(&form, "Action", "AssumeRole");
	form_put(&form, "DurationSeconds", "3600");
	if (*external_id)
		form_put(&form, "ExternalId", external_id);
	form_put(&form, "RoleArn", role_arn);
	form_put(&form, "RoleSessionName", c->aws_role_session_name);
	form_put(&form, "Version", "2011-06-15");
	char *url = sts_url(c);
	struct curl_slist *h = hc_header_add(NULL, "Accept: application/json");
	h = hc_header_add(h, "Content-Type: application/x-www-form-urlencoded");
	struct aws_sign sign;
	aws_sign_prepare(&sign, base, c->aws_region, "sts", &h);
	struct hc_req req = { .op = OP_STS_ASSUME_ROLE, .method = "POST", .url = url,
			      .body = form.data, .body_len = form.len, .headers = h,
			      .aws_sigv4 = sign.provider, .userpwd = sign.userpwd,
			      .classify = aws_classify_json };
	static const char *const path[] = { "AssumeRoleResponse", "AssumeRoleResult", "Credentials",
					    NULL };
	int rc = fetch(hc, o, &req, path, out, err, errlen);
	hc_slist_free_secret(h);
	aws_sign_clear(&sign);
	free(url);
	buf_free(&form);
	return rc;
}

struct aws_provider *aws_provider_new(void)
{
	/* their counters exist from the first scrape, whichever link of the chain is used */
	(void)OP_STS_ASSUME_ROLE;
	(void)OP_STS_ASSUME_ROLE_WEB_IDENTITY;
	(void)OP_IMDS_CREDENTIALS;
	(void)OP_CONTAINER_CREDENTIALS;
	(void)OP_STS_GET_CALLER_IDENTITY;
	return xcalloc(1, sizeof(struct aws_provider));
}

static void roles_clear(struct aws_provider *p)
{
	for (size_t i = 0; i < p->nroles; i++) {
		free(p->roles[i].role_arn);
		awscreds_clear(&p->roles[i].creds);
	}
	free(p->roles);
	p->roles = NULL;
	p->nroles = 0;
}

void aws_provider_free(struct aws_provider *p)
{
	if (!p)
		return;
	awscreds_clear(&p->creds);
	roles_clear(p);
	free(p);
}

void aws_provider_invalidate(struct aws_provider *p)
{
	awscreds_clear(&p->creds);
	p->have = false;
	p->source = NULL;
	roles_clear(p); /* they were assumed with what is forgotten */
}

const char *aws_provider_source(const struct aws_provider *p)
{
	return p->have && p->source ? p->source : "";
}

/* Runs the chain into @out; sets *source. */
static int resolve_base(struct hc *hc, const struct hc_opts *o, const struct conf *c,
			struct aws_creds *out, const char **source, char *err, size_t errlen)
{
	if (awscreds_from_env(out) == 0) {
		*source = "environment";
		return 0;
	}
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	char *path = file && *file ? xstrdup(file) : home ? xasprintf("%s/.aws/credentials", home) : NULL;
	const char *envp = getenv("AWS_PROFILE");
	const char *profile = *c->aws_profile ? c->aws_profile : envp && *envp ? envp : "default";
	bool explicit_profile = *c->aws_profile || (envp && *envp);
	int rc = path ? awscreds_from_file(path, profile, out) : -ENOENT;
	if (rc == 0) {
		free(path);
		*source = "shared credentials file";
		return 0;
	}
	if (rc == -EPROTO || (explicit_profile && rc == -ENOENT)) {
		snprintf(err, errlen, "profile \"%s\" %s in %s", profile,
			 rc == -EPROTO ? "lacks aws_access_key_id/aws_secret_access_key" : "not found",
			 path ? path : "(no credentials file)");
		free(path);
		return -EACCES;
	}
	free(path);
	const char *wif = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role = getenv("AWS_ROLE_ARN");
	if (wif && *wif && role && *role) {
		*source = "web identity";
		rc = web_identity(hc, o, c, wif, role, out, err, errlen);
		return rc;
	}
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	if ((full && *full) || (rel && *rel)) {
		*source = "container";
		return container(hc, o, c, out, err, errlen);
	}
	const char *disabled = getenv("AWS_EC2_METADATA_DISABLED");
	if (c->aws_imds_enabled && !(disabled && strcasecmp(disabled, "true") == 0)) {
		*source = "instance metadata";
		return imds(hc, o, c, out, err, errlen);
	}
	snprintf(err, errlen, "no AWS credentials found (environment, shared credentials file, web "
		 "identity, container; instance metadata disabled)");
	return -ENOENT;
}

int aws_provider_get(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
		     const struct conf *c, double now, struct aws_creds *out, char *err,
		     size_t errlen)
{
	if (p->have && (p->creds.expiration == 0 || now < p->refresh_at)) {
		awscreds_copy(&p->creds, out);
		return 0;
	}
	aws_provider_invalidate(p);
	struct aws_creds base = { 0 };
	const char *source = "";
	int rc = resolve_base(hc, o, c, &base, &source, err, errlen);
	if (rc)
		return rc;
	if (*c->aws_role_arn) {
		struct aws_creds assumed = { 0 };
		rc = assume_role(hc, o, c, c->aws_role_arn, c->aws_external_id, &base, &assumed,
				 err, errlen);
		awscreds_clear(&base);
		if (rc)
			return rc;
		base = assumed;
		source = "assumed role";
	}
	double left = base.expiration - now;
	p->refresh_at = refresh_time(base.expiration, now);
	if (base.expiration != 0 && left <= 2 * REFRESH_MARGIN) {
		if (!p->warned_short)
			log_warn("AWS credentials arrive with less than 10 minutes to live; they are "
				 "fetched again halfway through", "source", source);
		p->warned_short = true;
	} else {
		p->warned_short = false;
	}
	p->creds = base;
	p->have = true;
	p->source = source;
	log_debug("AWS credentials obtained", "source", source);
	awscreds_copy(&p->creds, out);
	return 0;
}

int aws_provider_get_role(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
			  const struct conf *c, double now, const char *role_arn,
			  const char *external_id, struct aws_creds *out, char *err, size_t errlen)
{
	struct role_creds *r = NULL;
	for (size_t i = 0; i < p->nroles && !r; i++)
		if (strcmp(p->roles[i].role_arn, role_arn) == 0)
			r = &p->roles[i];
	if (r && (r->creds.expiration == 0 || now < r->refresh_at)) {
		awscreds_copy(&r->creds, out);
		return 0;
	}
	struct aws_creds base = { 0 }, assumed = { 0 };
	int rc = aws_provider_get(p, hc, o, c, now, &base, err, errlen);
	if (rc)
		return rc;
	rc = assume_role(hc, o, c, role_arn, external_id, &base, &assumed, err, errlen);
	awscreds_clear(&base);
	if (rc)
		return rc;
	if (!r) {
		p->roles = xrealloc(p->roles, (p->nroles + 1) * sizeof(*p->roles));
		r = &p->roles[p->nroles++];
		*r = (struct role_creds){ .role_arn = xstrdup(role_arn) };
	}
	awscreds_clear(&r->creds);
	r->creds = assumed;
	r->refresh_at = refresh_time(assumed.expiration, now);
	log_debug("member account credentials obtained", "role", role_arn);
	awscreds_copy(&r->creds, out);
	return 0;
}

int aws_caller_account(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
		       const struct conf *c, double now, char *account, size_t accountlen,
		       char *err, size_t errlen)
{
	struct aws_creds creds = { 0 };
	int rc = aws_provider_get(p, hc, o, c, now, &creds, err, errlen);
	if (rc)
		return rc;
	static const char form[] = "Action=GetCallerIdentity&Version=2011-06-15";
	char *url = sts_url(c);
	struct curl_slist *h = hc_header_add(NULL, "Accept: application/json");
	h = hc_header_add(h, "Content-Type: application/x-www-form-urlencoded");
	struct aws_sign sign;
	aws_sign_prepare(&sign, &creds, c->aws_region, "sts", &h);
	struct hc_req req = { .op = OP_STS_GET_CALLER_IDENTITY, .method = "POST", .url = url,
			      .body = form, .body_len = sizeof(form) - 1, .headers = h,
			      .aws_sigv4 = sign.provider, .userpwd = sign.userpwd,
			      .classify = aws_classify_json };
	struct hc_resp resp = { 0 };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(hc, o, &req, &resp, &reason, herr, sizeof(herr));
	if (rc && rc != -ECANCELED)
		snprintf(err, errlen, "STS GetCallerIdentity: %s (%s)", herr,
			 apistats_reason_name(reason));
	if (rc == 0) {
		struct jsontape t;
		size_t a = JT_NONE;
		bool parsed = jsontape_parse(&t, resp.body, resp.len) == 0;
		if (parsed)
			a = jt_get(&t, jt_get(&t, jt_get(&t, 0, "GetCallerIdentityResponse"),
					      "GetCallerIdentityResult"),
				   "Account");
		if (!parsed || jt_str(&t, a, account, accountlen) < 0 ||
		    !conf_account_id_ok(account)) {
			apistats_error(OP_STS_GET_CALLER_IDENTITY, REASON_PARSE);
			snprintf(err, errlen, "STS GetCallerIdentity: the answer has no account id");
			rc = -EPROTO;
		}
		if (parsed)
			jsontape_free(&t);
	}
	free(resp.body);
	hc_slist_free_secret(h);
	aws_sign_clear(&sign);
	free(url);
	awscreds_clear(&creds);
	return rc;
}
