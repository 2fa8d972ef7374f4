/*
 * aws_json.c - see aws_json.h.
 */
#include "sources/aws_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awscreds.h"
#include "base/util.h"

int aws_json_call(struct source_ctx *x, const struct aws_json_req *r, const char *what,
		  struct hc_resp *resp, enum api_reason *reason_out, char *err, size_t errlen)
{
	struct aws_creds cr = { 0 };
	int rc = aws_provider_get(x->creds, x->hc, x->http, x->conf, x->now, &cr, err, errlen);
	if (rc)
		return rc;
	char *ct = xasprintf("Content-Type: application/x-amz-json-%s", r->version);
	char *th = xasprintf("X-Amz-Target: %s", r->target);
	struct curl_slist *h = hc_header_add(NULL, ct);
	h = hc_header_add(h, th);
	h = hc_header_add(h, "Accept: application/json");
	struct aws_sign sign;
	aws_sign_prepare(&sign, &cr, r->region, r->service, &h);
	struct hc_req req = { .op = r->op, .method = "POST", .url = r->url, .body = r->body,
			      .body_len = strlen(r->body), .headers = h, .aws_sigv4 = sign.provider,
			      .userpwd = sign.userpwd, .classify = aws_classify_json,
			      .admit = r->admit, .admit_arg = r->admit_arg };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(x->hc, x->http, &req, resp, &reason, herr, sizeof(herr));
	if (rc && rc != -EDQUOT && rc != -ECANCELED)
		snprintf(err, errlen, "%s failed (%s): %s", what, apistats_reason_name(reason), herr);
	if (rc == -EIO && reason == REASON_AUTH)
		aws_provider_invalidate(x->creds); /* e.g. an expired token: fetch anew next time */
	if (reason_out)
		*reason_out = reason;
	hc_slist_free_secret(h);
	aws_sign_clear(&sign);
	awscreds_clear(&cr);
	free(th);
	free(ct);
	return rc;
}
