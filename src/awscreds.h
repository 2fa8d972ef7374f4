/*
 * awscreds.h - AWS credentials for SigV4.
 *
 * This slice reads the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN); the rest of the standard chain comes with the Cost
 * Explorer source. Secrets are zeroed when freed and never logged.
 */
#ifndef BCE_AWSCREDS_H
#define BCE_AWSCREDS_H

struct aws_creds {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when not temporary */
};

/* Fills @out from the environment. Returns 0, or -ENOENT when either key is
 * missing (nothing allocated). Caller frees with awscreds_clear(). */
int awscreds_from_env(struct aws_creds *out);
void awscreds_clear(struct aws_creds *c);

/* Returns "AKID:SECRET" for CURLOPT_USERPWD. Caller frees with free_secret(). */
char *awscreds_userpwd(const struct aws_creds *c);

#endif
