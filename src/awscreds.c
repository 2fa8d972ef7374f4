/*
 * awscreds.c - see awscreds.h.
 */
#include "awscreds.h"

#include <errno.h>
#include <stdlib.h>

#include "util.h"

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
	return 0;
}

void awscreds_clear(struct aws_creds *c)
{
	free_secret(c->access_key_id);
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	c->access_key_id = c->secret_access_key = c->session_token = NULL;
}

char *awscreds_userpwd(const struct aws_creds *c)
{
	return xasprintf("%s:%s", c->access_key_id, c->secret_access_key);
}
