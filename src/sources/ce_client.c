/*
 * ce_client.c - see ce_client.h.
 */
#include "sources/ce_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awscreds.h"
#include "base/days.h"
#include "base/util.h"
#include "config/conf.h"

long ce_meter_remaining(const struct ce_meter *m, long max_per_day, double now)
{
	long used = m->day == days_of_time(now) ? m->count : 0;
	long left = max_per_day - used;
	return left > 0 ? left : 0;
}

struct admit_arg {
	struct ce_meter *m;
	long max_per_day;
	double now;
};

/* Every Cost Explorer attempt is billable: counted before it is sent. */
static int admit(void *arg)
{
	struct admit_arg *a = arg;
	long today = days_of_time(a->now);
	if (a->m->day != today) {
		a->m->day = today;
		a->m->count = 0;
	}
	if (a->m->count >= a->max_per_day)
		return 1;
	a->m->count++;
	a->m->billable_total++;
	return 0;
}

int ce_call(struct source_ctx *x, struct ce_meter *m, enum api_op op, const char *target,
	    const char *body, struct hc_resp *resp, char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	struct aws_creds cr = { 0 };
	int rc = aws_provider_get(x->creds, x->hc, x->http, c, x->now, &cr, err, errlen);
	if (rc)
		return rc;
	const char *ep = c->ce_endpoint;
	size_t el = strlen(ep);
	while (el && ep[el - 1] == '/')
		el--;
	char *url = xasprintf("%.*s/", (int)el, ep);
	char *th = xasprintf("X-Amz-Target: AWSInsightsIndexService.%s", target);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.1");
	h = curl_slist_append(h, th);
	h = curl_slist_append(h, "Accept: application/json");
	struct aws_sign sign;
	aws_sign_prepare(&sign, &cr, c->ce_signing_region, "ce", &h);
	struct admit_arg aa = { m, c->ce_max_requests_per_day, x->now };
	struct hc_req req = { .op = op, .method = "POST", .url = url, .body = body,
			      .body_len = strlen(body), .headers = h, .aws_sigv4 = sign.provider,
			      .userpwd = sign.userpwd, .classify = aws_classify_json,
			      .admit = admit, .admit_arg = &aa };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(x->hc, x->http, &req, resp, &reason, herr, sizeof(herr));
	if (rc == -EDQUOT)
		snprintf(err, errlen, "%s: daily ceiling of %ld requests reached "
			 "(cost_explorer.max_requests_per_day)", target, c->ce_max_requests_per_day);
	else if (rc && rc != -ECANCELED)
		snprintf(err, errlen, "%s failed (%s): %s", target, apistats_reason_name(reason), herr);
	if (rc == -EIO && reason == REASON_AUTH)
		aws_provider_invalidate(x->creds); /* e.g. expired token: fetch anew next time */
	hc_slist_free_secret(h);
	aws_sign_clear(&sign);
	awscreds_clear(&cr);
	free(th);
	free(url);
	return rc;
}

int ce_paginate(struct source_ctx *x, struct ce_meter *m, enum api_op op, const char *target,
		ce_body_fn make_body, ce_parse_fn parse, void *arg, char *err, size_t errlen)
{
	char *token = NULL, *prev = NULL;
	int rc = 0;
	for (long page = 0;; page++) {
		if (page >= x->conf->ce_max_pages) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: pagination did not end after %ld pages "
				 "(cost_explorer.max_pages)", target, page);
			rc = -EPROTO;
			break;
		}
		char *body = make_body(arg, token);
		struct hc_resp resp = { 0 };
		rc = ce_call(x, m, op, target, body, &resp, err, errlen);
		free(body);
		if (rc)
			break;
		free(prev);
		prev = token;
		token = NULL;
		char perr[256];
		rc = parse(arg, resp.body, resp.len, &token, perr, sizeof(perr));
		free(resp.body);
		if (rc) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s page %ld: %s", target, page + 1, perr);
			break;
		}
		if (!token)
			break;
		if (prev && strcmp(prev, token) == 0) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: the next-page token repeats (pagination loop)", target);
			rc = -EPROTO;
			break;
		}
	}
	free(token);
	free(prev);
	return rc;
}
