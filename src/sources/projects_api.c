/*
 * projects_api.c - see projects_api.h.
 */
#include "sources/projects_api.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awscreds.h"
#include "base/files.h"
#include "base/jsontape.h"
#include "base/textmap.h"
#include "base/util.h"

static int cmp_tag(const void *a, const void *b)
{
	return strcmp(((const struct project_tag *)a)->key, ((const struct project_tag *)b)->key);
}

/* Copies the string member @name of @obj into *out. @optional allows missing/null. */
static int get_string(const struct jsontape *t, size_t obj, const char *name, bool optional,
		      char **out, size_t idx, char *err, size_t errlen)
{
	size_t v = jt_get(t, obj, name);
	if (optional && (v == JT_NONE || jt_is(t, v, JT_NULL))) {
		*out = xstrdup("");
		return 0;
	}
	if (v == JT_NONE) {
		snprintf(err, errlen, "data[%zu].%s: missing", idx, name);
		return -EPROTO;
	}
	char *s = jt_strdup(t, v);
	if (!s) {
		snprintf(err, errlen, "data[%zu].%s: expected a string", idx, name);
		return -EPROTO;
	}
	if (strlen(s) > PROJECTS_MAX_STRING) {
		free(s);
		snprintf(err, errlen, "data[%zu].%s: longer than %d bytes", idx, name, PROJECTS_MAX_STRING);
		return -EPROTO;
	}
	*out = s;
	return 0;
}

int projects_parse_item(const struct jsontape *t, size_t item, size_t idx, struct project *p,
			char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (!jt_is(t, item, JT_OBJECT)) {
		snprintf(err, errlen, "data[%zu]: expected an object", idx);
		return -EPROTO;
	}
	int rc = get_string(t, item, "id", false, &p->id, idx, err, errlen);
	if (!rc && !*p->id) {
		snprintf(err, errlen, "data[%zu].id: empty", idx);
		rc = -EPROTO;
	}
	if (!rc)
		rc = get_string(t, item, "name", false, &p->name, idx, err, errlen);
	if (!rc)
		rc = get_string(t, item, "arn", true, &p->arn, idx, err, errlen);
	if (!rc)
		rc = get_string(t, item, "status", false, &p->status, idx, err, errlen);
	if (!rc) {
		size_t v = jt_get(t, item, "created_at");
		double d = 0;
		if (v == JT_NONE) {
			snprintf(err, errlen, "data[%zu].created_at: missing", idx);
			rc = -EPROTO;
		} else if (jt_number(t, v, &d) || !isfinite(d) || d < 0) {
			snprintf(err, errlen, "data[%zu].created_at: expected a number of seconds", idx);
			rc = -EPROTO;
		} else {
			p->created_at = d;
		}
	}
	if (!rc) {
		size_t tags = jt_get(t, item, "tags");
		if (tags != JT_NONE && !jt_is(t, tags, JT_NULL)) {
			size_t ntags = jt_is(t, tags, JT_OBJECT) ? jt_count(t, tags) : 0;
			if (!jt_is(t, tags, JT_OBJECT)) {
				snprintf(err, errlen, "data[%zu].tags: expected an object", idx);
				rc = -EPROTO;
			} else if (ntags > PROJECTS_MAX_TAGS) {
				snprintf(err, errlen, "data[%zu].tags: more than %d tags", idx, PROJECTS_MAX_TAGS);
				rc = -EPROTO;
			} else {
				p->tags = xcalloc(ntags ? ntags : 1, sizeof(*p->tags));
				for (size_t k = jt_first(t, tags); k != JT_NONE; k = jt_next(t, tags, k)) {
					if (!jt_is(t, k + 1, JT_STRING)) {
						snprintf(err, errlen, "data[%zu].tags: values must be strings", idx);
						rc = -EPROTO;
						break;
					}
					char *key = jt_strdup(t, k), *value = jt_strdup(t, k + 1);
					if (strlen(key) > PROJECTS_MAX_STRING || strlen(value) > PROJECTS_MAX_STRING) {
						free(key);
						free(value);
						snprintf(err, errlen, "data[%zu].tags: tag longer than %d bytes",
							 idx, PROJECTS_MAX_STRING);
						rc = -EPROTO;
						break;
					}
					p->tags[p->ntags].key = key;
					p->tags[p->ntags].value = value;
					p->ntags++;
				}
				if (!rc && p->ntags > 1) {
					qsort(p->tags, p->ntags, sizeof(*p->tags), cmp_tag);
					for (size_t i = 1; i < p->ntags; i++) {
						if (strcmp(p->tags[i].key, p->tags[i - 1].key) == 0) {
							snprintf(err, errlen, "data[%zu].tags: key repeated", idx);
							rc = -EPROTO;
							break;
						}
					}
				}
			}
		}
	}
	if (rc)
		project_free(p);
	return rc;
}

int projects_parse_page(const char *body, size_t len, struct project_list *list,
			bool *has_more, char *err, size_t errlen)
{
	struct jsontape t;
	struct project *items = NULL;
	size_t n = 0;
	int rc = 0;

	if (jsontape_parse(&t, body, len)) {
		snprintf(err, errlen, "response is not valid JSON");
		rc = -EPROTO;
		goto out;
	}
	if (!jt_is(&t, 0, JT_OBJECT)) {
		snprintf(err, errlen, "response: expected a JSON object");
		rc = -EPROTO;
		goto out;
	}
	size_t data = jt_get(&t, 0, "data");
	size_t more = jt_get(&t, 0, "has_more");
	if (!jt_is(&t, data, JT_ARRAY)) {
		snprintf(err, errlen, "data: %s", data != JT_NONE ? "expected an array" : "missing");
		rc = -EPROTO;
		goto out;
	}
	if (!jt_is(&t, more, JT_TRUE) && !jt_is(&t, more, JT_FALSE)) {
		snprintf(err, errlen, "has_more: %s", more != JT_NONE ? "expected a boolean" : "missing");
		rc = -EPROTO;
		goto out;
	}
	size_t count = jt_count(&t, data);
	items = xcalloc(count ? count : 1, sizeof(*items));
	for (size_t item = jt_first(&t, data); item != JT_NONE; item = jt_next(&t, data, item)) {
		rc = projects_parse_item(&t, item, n, &items[n], err, errlen);
		if (rc)
			goto out;
		n++;
	}
	list->v = xrealloc(list->v, (list->n + n) * sizeof(*list->v) + 1);
	memcpy(list->v + list->n, items, n * sizeof(*items));
	list->n += n;
	n = 0; /* ownership moved */
	*has_more = jt_is(&t, more, JT_TRUE);
out:
	for (size_t i = 0; i < n; i++)
		project_free(&items[i]);
	free(items);
	jsontape_free(&t);
	return rc;
}

char *projects_base_url(const char *endpoint, const char *region)
{
	return region_url(endpoint, region);
}

/* RFC 3986 percent-encoding of everything but unreserved characters. */
static void put_query_value(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			buf_putc(b, (char)*p);
		else
			buf_printf(b, "%%%02X", *p);
	}
}

/* Reads the Bedrock API key per the configuration. Caller frees with free_secret(). */
static int read_api_key(const struct conf *c, char **out, char *err, size_t errlen)
{
	if (*c->projects_api_key_file) {
		char *key = NULL;
		int rc = read_file_max(c->projects_api_key_file, 4096, &key, NULL);
		if (rc) {
			snprintf(err, errlen, "cannot read projects.api_key_file %s: %s",
				 c->projects_api_key_file,
				 rc == -EFBIG ? "key longer than 4096 bytes" : strerror(-rc));
			return -EACCES;
		}
		if (!*text_trim(key)) {
			free_secret(key);
			snprintf(err, errlen, "projects.api_key_file %s is empty", c->projects_api_key_file);
			return -EACCES;
		}
		*out = key;
		return 0;
	}
	const char *v = getenv(c->projects_api_key_env);
	if (!v || !*v) {
		snprintf(err, errlen, "no Bedrock API key: environment variable %s is not set "
			 "(or set projects.api_key_file)", c->projects_api_key_env);
		return -EACCES;
	}
	*out = xstrdup(v);
	return 0;
}

int projects_list_region(struct hc *hc, const struct hc_opts *o, const struct conf *c,
			 const struct aws_creds *creds, const char *region, struct project_list *out,
			 char *err, size_t errlen)
{
	struct project_list all = { 0 };
	struct textmap *seen = textmap_new();
	struct curl_slist *headers = NULL;
	char *base = projects_base_url(c->projects_endpoint, region);
	struct aws_sign sign = { 0 };
	char *after = NULL;
	int rc = 0;

	headers = hc_header_add(headers, "Accept: application/json");
	if (c->projects_auth == AUTH_API_KEY) {
		char *key = NULL;
		rc = read_api_key(c, &key, err, errlen);
		if (rc)
			goto out;
		char *h = xasprintf("Authorization: Bearer %s", key);
		headers = hc_header_add(headers, h);
		free_secret(h);
		free_secret(key);
	} else {
		if (!creds) {
			snprintf(err, errlen, "no AWS credentials for SigV4");
			rc = -EACCES;
			goto out;
		}
		aws_sign_prepare(&sign, creds, region, "bedrock-mantle", &headers);
	}

	/* One page per `limit` projects, plus slack for the last page. */
	size_t max_pages = (size_t)(c->projects_max_projects / c->projects_page_size) + 2;
	for (size_t page = 0;; page++) {
		if (page >= max_pages) {
			apistats_error(OP_LIST_PROJECTS, REASON_PARSE);
			snprintf(err, errlen, "pagination did not end after %zu pages", page);
			rc = -EPROTO;
			goto out;
		}
		struct buf url;
		buf_init(&url, 16384);
		buf_printf(&url, "%s/organization/projects?", base);
		if (after) { /* query parameters sorted and encoded, as SigV4 on libcurl 7.88 needs */
			buf_puts(&url, "after=");
			put_query_value(&url, after);
			buf_putc(&url, '&');
		}
		buf_printf(&url, "limit=%ld", c->projects_page_size);
		struct hc_req req = {
			.op = OP_LIST_PROJECTS,
			.method = "GET",
			.url = url.data,
			.headers = headers,
			.aws_sigv4 = sign.provider,
			.userpwd = sign.userpwd,
		};
		struct hc_resp resp = { 0 };
		enum api_reason reason = REASON_NETWORK;
		char herr[256] = "";
		rc = hc_perform(hc, o, &req, &resp, &reason, herr, sizeof(herr));
		buf_free(&url);
		if (rc == -ECANCELED) {
			snprintf(err, errlen, "stopped");
			goto out;
		}
		if (rc) {
			snprintf(err, errlen, "ListProjects failed (%s): %s",
				 apistats_reason_name(reason), herr);
			goto out;
		}
		size_t before = all.n;
		bool has_more = false;
		char perr[256];
		rc = projects_parse_page(resp.body, resp.len, &all, &has_more, perr, sizeof(perr));
		free(resp.body);
		if (rc) {
			apistats_error(OP_LIST_PROJECTS, REASON_PARSE);
			snprintf(err, errlen, "ListProjects page %zu: %s", page + 1, perr);
			goto out;
		}
		for (size_t i = before; i < all.n; i++) {
			if (!textmap_put(seen, all.v[i].id, NULL)) {
				apistats_error(OP_LIST_PROJECTS, REASON_PARSE);
				snprintf(err, errlen, "ListProjects page %zu repeats project %s "
					 "(pagination loop)", page + 1, all.v[i].id);
				rc = -EPROTO;
				goto out;
			}
		}
		if (all.n > (size_t)c->projects_max_projects) {
			/* served as far as the cap allows, and counted: an account over the cap still
			 * shows its projects, and the error says what to raise */
			apistats_error(OP_LIST_PROJECTS, REASON_PARSE);
			snprintf(err, errlen, "more than %ld projects (projects.max_projects); serving the "
				 "first %ld", c->projects_max_projects, c->projects_max_projects);
			while (all.n > (size_t)c->projects_max_projects)
				project_free(&all.v[--all.n]);
			project_list_move(out, &all);
			rc = -E2BIG;
			goto out;
		}
		if (!has_more)
			break;
		if (all.n == before) {
			apistats_error(OP_LIST_PROJECTS, REASON_PARSE);
			snprintf(err, errlen, "ListProjects page %zu is empty but has_more is true",
				 page + 1);
			rc = -EPROTO;
			goto out;
		}
		free(after);
		after = xstrdup(all.v[all.n - 1].id);
	}
	project_list_move(out, &all);
out:
	project_list_free(&all);
	textmap_free(seen);
	hc_slist_free_secret(headers);
	aws_sign_clear(&sign);
	free(after);
	free(base);
	return rc;
}
