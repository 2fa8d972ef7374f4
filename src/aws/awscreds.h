/*
 * awscreds.h - AWS credentials for SigV4: the standard chain, cached and
 * refreshed before they expire, with an optional STS AssumeRole on top.
 *
 * Chain, first match wins (as the AWS SDKs do):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials),
 *      profile aws.profile, else AWS_PROFILE, else "default"
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN -> STS
 *      AssumeRoleWithWebIdentity (unsigned)
 *   4. container: AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
 *   5. EC2 instance metadata, IMDSv2 (unless aws.imds_enabled = false or
 *      AWS_EC2_METADATA_DISABLED=true)
 * then, if aws.role_arn is set, STS AssumeRole with those credentials.
 *
 * Secrets are zeroed before they are freed and never logged. The provider
 * belongs to the poller thread.
 */
#ifndef BCE_AWSCREDS_H
#define BCE_AWSCREDS_H

#include "config/conf.h"
#include "aws/http_client.h"

/* The credential chain's operations (apistats.h), registered by aws_provider_new(). */
#define OP_STS_ASSUME_ROLE apistats_op("sts", "AssumeRole")
#define OP_STS_ASSUME_ROLE_WEB_IDENTITY apistats_op("sts", "AssumeRoleWithWebIdentity")
#define OP_IMDS_CREDENTIALS apistats_op("imds", "GetRoleCredentials")
#define OP_CONTAINER_CREDENTIALS apistats_op("container", "GetCredentials")
#define OP_STS_GET_CALLER_IDENTITY apistats_op("sts", "GetCallerIdentity")

struct aws_creds {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when not temporary */
	double expiration;   /* Unix seconds; 0 = does not expire */
};

/* Fills @out from the environment. Returns 0, or -ENOENT when either key is
 * missing (nothing allocated). Caller frees with awscreds_clear(). */
int awscreds_from_env(struct aws_creds *out);

/*
 * Reads profile @profile from an INI credentials file. Returns 0, -ENOENT
 * (no file or no such profile) or -EPROTO (profile lacks keys). Pure but for
 * reading the file.
 */
int awscreds_from_file(const char *path, const char *profile, struct aws_creds *out);

void awscreds_clear(struct aws_creds *c);
void awscreds_copy(const struct aws_creds *from, struct aws_creds *to);

/*
 * What a SigV4-signed request needs (libcurl's CURLOPT_AWS_SIGV4 signs):
 * the provider string "aws:amz:<region>:<service>" and "AKID:SECRET" for
 * CURLOPT_USERPWD. aws_sign_prepare() fills @s from @creds and, for temporary
 * credentials, appends the X-Amz-Security-Token header to *@headers (free the
 * list with hc_slist_free_secret). aws_sign_clear() zeroes and frees @s.
 */
struct aws_sign {
	char *provider;
	char *userpwd; /* a secret */
};
void aws_sign_prepare(struct aws_sign *s, const struct aws_creds *creds, const char *region,
		      const char *service, struct curl_slist **headers);
void aws_sign_clear(struct aws_sign *s);

/* Parses "2026-11-26T18:00:00Z" (fractions and offsets allowed). 0 or -EINVAL. */
int awscreds_parse_iso8601(const char *s, double *out);

struct aws_provider;

struct aws_provider *aws_provider_new(void);
void aws_provider_free(struct aws_provider *p);

/*
 * Gives a copy of valid credentials in @out (caller clears), fetching or
 * refreshing them first when absent or expiring within 5 minutes. Returns 0,
 * or a negative errno with the reason in @err (never a secret); -ECANCELED
 * when stopped.
 */
int aws_provider_get(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
		     const struct conf *c, double now, struct aws_creds *out, char *err,
		     size_t errlen);

/*
 * As aws_provider_get, then STS AssumeRole into @role_arn (with @external_id unless "")
 * with them: a member account's credentials, cached per role and refreshed 5 minutes
 * before they expire. aws_provider_invalidate() forgets them too.
 */
int aws_provider_get_role(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
			  const struct conf *c, double now, const char *role_arn,
			  const char *external_id, struct aws_creds *out, char *err,
			  size_t errlen);

/*
 * STS GetCallerIdentity (free) with the chain's credentials: the 12-digit account id
 * they belong to, into @account. 0, or a negative errno with the reason in @err.
 */
int aws_caller_account(struct aws_provider *p, struct hc *hc, const struct hc_opts *o,
		       const struct conf *c, double now, char *account, size_t accountlen,
		       char *err, size_t errlen);

/* Forgets cached credentials (after an ExpiredToken answer, or a reload). */
void aws_provider_invalidate(struct aws_provider *p);

/* Where the cached credentials came from ("environment", "web identity", ...), or "". */
const char *aws_provider_source(const struct aws_provider *p);

#endif
