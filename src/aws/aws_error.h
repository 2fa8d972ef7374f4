/*
 * aws_error.h - what an AWS answer that is not a success means: whether to
 * retry, the api_reason it counts as, and a one-line message for the log
 * (never a secret). Pure: reads the status and the body only; thread-safe.
 *
 * Two classifiers, one per error model:
 *   aws_classify_status  by HTTP status alone (REST APIs: Bedrock Projects,
 *                        instance metadata, container credentials)
 *   aws_classify_json    the JSON and query protocols (Cost Explorer, STS),
 *                        whose throttling arrives as HTTP 400 with an
 *                        exception name ("__type" or "Error.Code")
 */
#ifndef BCE_AWS_ERROR_H
#define BCE_AWS_ERROR_H

#include <stddef.h>

#include "aws/apistats.h"

enum aws_verdict { AWS_OK, AWS_RETRY, AWS_FAIL };

/* A classifier: decides what @status and @body mean; sets *reason unless
 * AWS_OK and may write a message into @msg. */
typedef enum aws_verdict (*aws_classifier)(long status, const char *body, size_t len,
					   enum api_reason *reason, char *msg, size_t msglen);

/* 2xx ok; 429 throttled (retry); 401/403 auth; other 4xx client; 5xx server (retry). */
enum aws_verdict aws_classify_status(long status, const char *body, size_t len,
				     enum api_reason *reason, char *msg, size_t msglen);

/* As aws_classify_status, and an exception name with LimitExceeded or Throttl in it
 * is a throttle, and the credential exceptions are auth errors, whatever the status. */
enum aws_verdict aws_classify_json(long status, const char *body, size_t len,
				   enum api_reason *reason, char *msg, size_t msglen);

/* The exception name of an error body ("LimitExceededException": the part after
 * '#' of "__type", or STS's "Error.Code"), alphanumerics only, or "". */
void aws_error_type(const char *body, size_t len, char *out, size_t outlen);

/*
 * The human message of an AWS/OpenAI error body (error.message, message or
 * Message) into @out, control characters blanked, at most 160 bytes; "" if
 * there is none.
 */
void aws_error_message(const char *body, size_t len, char *out, size_t outlen);

#endif
