/*
 * aws_error.c - see aws_error.h.
 */
#include "aws/aws_error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsontape.h"

void aws_error_message(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	struct jsontape t;
	if (jsontape_parse(&t, body, len))
		return;
	size_t m = jt_get(&t, jt_get(&t, 0, "error"), "message");
	if (!jt_is(&t, m, JT_STRING))
		m = jt_get(&t, 0, "message");
	if (!jt_is(&t, m, JT_STRING))
		m = jt_get(&t, 0, "Message");
	char *s = jt_strdup(&t, m);
	if (s) {
		size_t n = 0;
		for (const char *p = s; *p && n + 1 < outlen && n < 160; p++)
			out[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
		out[n] = '\0';
		free(s);
	}
	jsontape_free(&t);
}

void aws_error_type(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	struct jsontape t;
	if (jsontape_parse(&t, body, len))
		return;
	size_t ty = jt_get(&t, 0, "__type");
	if (!jt_is(&t, ty, JT_STRING)) /* STS answers {"Error":{"Code":...}} */
		ty = jt_get(&t, jt_get(&t, 0, "Error"), "Code");
	char *s = jt_strdup(&t, ty);
	if (s) {
		const char *h = strrchr(s, '#');
		const char *name = h ? h + 1 : s;
		size_t n = 0;
		for (const char *p = name; *p && n + 1 < outlen && n < 64; p++)
			if (isalnum((unsigned char)*p))
				out[n++] = *p;
		out[n] = '\0';
		free(s);
	}
	jsontape_free(&t);
}

/* The verdict of a status code alone. */
static enum aws_verdict by_status(long status, enum api_reason *reason)
{
	if (status == 429) {
		*reason = REASON_THROTTLED;
		return AWS_RETRY;
	}
	if (status == 401 || status == 403) {
		*reason = REASON_AUTH;
		return AWS_FAIL;
	}
	if (status >= 500) {
		*reason = REASON_SERVER;
		return AWS_RETRY;
	}
	*reason = REASON_CLIENT;
	return AWS_FAIL;
}

enum aws_verdict aws_classify_status(long status, const char *body, size_t len,
				     enum api_reason *reason, char *msg, size_t msglen)
{
	if (status >= 200 && status < 300)
		return AWS_OK;
	char detail[164];
	aws_error_message(body, len, detail, sizeof(detail));
	snprintf(msg, msglen, "HTTP %ld%s%s", status, *detail ? ": " : "", detail);
	return by_status(status, reason);
}

enum aws_verdict aws_classify_json(long status, const char *body, size_t len,
				   enum api_reason *reason, char *msg, size_t msglen)
{
	if (status >= 200 && status < 300)
		return AWS_OK;
	char type[72], detail[128];
	aws_error_type(body, len, type, sizeof(type));
	aws_error_message(body, len, detail, sizeof(detail));
	snprintf(msg, msglen, "HTTP %ld%s%s%s%s", status, *type ? " " : "", type,
		 *detail ? ": " : "", detail);
	static const char *const auth_types[] = {
		"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
		"ExpiredToken", "AccessDeniedException", "AccessDenied", "IncompleteSignature",
		"MissingAuthenticationToken", "InvalidClientTokenId", "InvalidIdentityToken", NULL,
	};
	if (status == 429 || strstr(type, "LimitExceeded") || strstr(type, "Throttl")) {
		*reason = REASON_THROTTLED;
		return AWS_RETRY;
	}
	for (const char *const *a = auth_types; *a; a++) {
		if (strcmp(type, *a) == 0) {
			*reason = REASON_AUTH;
			return AWS_FAIL;
		}
	}
	return by_status(status, reason);
}
