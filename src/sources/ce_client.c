/*
 * ce_client.c - see ce_client.h.
 */
#include "sources/ce_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/days.h"
#include "base/util.h"
#include "config/conf.h"
#include "sources/aws_json.h"

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

int ce_call(struct source_ctx *x, struct ce_meter *m, api_op op, const char *target,
	    const char *body, struct hc_resp *resp, enum api_reason *reason_out, char *err,
	    size_t errlen)
{
	const struct conf *c = x->conf;
	const char *ep = c->ce_endpoint;
	size_t el = strlen(ep);
	while (el && ep[el - 1] == '/')
		el--;
	char *url = xasprintf("%.*s/", (int)el, ep);
	char *tg = xasprintf("AWSInsightsIndexService.%s", target);
	struct admit_arg aa = { m, c->ce_max_requests_per_day, x->now };
	struct aws_json_req r = { .op = op, .url = url, .version = "1.1", .target = tg,
				  .service = "ce", .region = c->ce_signing_region, .body = body,
				  .admit = admit, .admit_arg = &aa };
	int rc = aws_json_call(x, &r, target, resp, reason_out, err, errlen);
	if (rc == -EDQUOT)
		snprintf(err, errlen, "%s: daily ceiling of %ld requests reached "
			 "(cost_explorer.max_requests_per_day)", target, c->ce_max_requests_per_day);
	free(tg);
	free(url);
	return rc;
}

void ce_pages_clear(struct ce_pages *p)
{
	free(p->token);
	memset(p, 0, sizeof(*p));
}

/* The most pages one operation may take. */
static long page_cap(const struct conf *c, const struct ce_pages *pg)
{
	if (c->ce_max_pages > 0)
		return c->ce_max_pages;
	if (!pg->expected || !pg->per_page)
		return 100;
	size_t need = (pg->expected + pg->per_page - 1) / pg->per_page;
	return (long)(need > 100000 ? 200002 : 2 * need + 2);
}

int ce_paginate(struct source_ctx *x, struct ce_meter *m, api_op op, const char *target,
		ce_body_fn make_body, ce_parse_fn parse, void *arg, struct ce_pages *pg, char *err,
		size_t errlen)
{
	char *prev = NULL;
	int rc = 0;
	for (;;) {
		long cap = page_cap(x->conf, pg);
		if (pg->pages >= cap) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: pagination did not end after %ld pages (%s)", target,
				 pg->pages,
				 x->conf->ce_max_pages > 0 ? "cost_explorer.max_pages"
							    : "twice the pages its size needs");
			rc = -EPROTO;
			break;
		}
		char *body = make_body(arg, pg->token);
		struct hc_resp resp = { 0 };
		enum api_reason reason = REASON_NETWORK;
		rc = ce_call(x, m, op, target, body, &resp, &reason, err, errlen);
		free(body);
		if (rc == -EIO && reason == REASON_CLIENT && pg->token) {
			ce_pages_clear(pg); /* e.g. InvalidNextTokenException: a token can expire */
			rc = -EPROTO;
		}
		if (rc)
			break;
		char *next = NULL, perr[256];
		size_t items = 0;
		rc = parse(arg, resp.body, resp.len, &next, &items, perr, sizeof(perr));
		free(resp.body);
		if (rc) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s page %ld: %s", target, pg->pages + 1, perr);
			break;
		}
		if (pg->pages++ == 0)
			pg->per_page = items;
		free(prev);
		prev = pg->token;
		pg->token = next;
		if (!next)
			break;
		if (prev && strcmp(prev, next) == 0) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: the next-page token repeats (pagination loop)", target);
			rc = -EPROTO;
			break;
		}
	}
	free(prev);
	if (rc == 0 || rc == -EPROTO)
		ce_pages_clear(pg);
	return rc;
}
