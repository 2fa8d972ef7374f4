/*
 * projects.h - the Bedrock Projects API (bedrock-mantle): parsing a page
 * (pure) and listing every project of one region (network).
 *
 * Listing follows OpenAI-style pagination: `limit` and `after=<id of the last
 * item received>`, until `has_more` is false. `last_id` is not trusted. A page
 * that repeats a project already received, an empty page that claims more, or
 * more than the configured maximum of projects fails the listing.
 */
#ifndef BCE_PROJECTS_H
#define BCE_PROJECTS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/conf.h"
#include "aws/awscreds.h"
#include "aws/http_client.h"

/* AWS allows 50 tags per resource; a project with more is refused. */
#define PROJECTS_MAX_TAGS 128
/* Longest id/name/arn/status/tag string accepted, in bytes. */
#define PROJECTS_MAX_STRING 2048

struct project_tag {
	char *key;
	char *value;
};

struct project {
	char *id;
	char *name;
	char *arn;    /* "" when the API gives none */
	char *status;
	double created_at; /* Unix seconds */
	struct project_tag *tags; /* sorted by key */
	size_t ntags;
};

struct project_list {
	struct project *v;
	size_t n;
};

/*
 * Parses one page. On success appends its projects to @list, sets *has_more
 * and returns 0. On failure returns -EPROTO, leaves @list unchanged and
 * writes the reason (naming the field, e.g. "data[3].created_at: expected a
 * number") into @err. Never logs. Thread-safe.
 */
int projects_parse_page(const char *body, size_t len, struct project_list *list,
			bool *has_more, char *err, size_t errlen);

/* Returns the tag value for @key, or NULL. */
const char *project_tag(const struct project *p, const char *key);

void project_list_free(struct project_list *l);
/* Moves @from into @to (freeing what @to held); @from becomes empty. */
void project_list_move(struct project_list *to, struct project_list *from);

/*
 * Lists every project of @region into @out, signing with @creds when
 * projects.auth is sigv4 (borrowed; ignored for api_key), (replacing nothing: @out must be
 * empty). Returns 0; or -EIO/-EPROTO/-EACCES with @reason_out (a short
 * reason for the log, never a secret) in @err; or -ECANCELED when stopped.
 * On failure @out is left empty. Poller thread (or main under --once).
 */
int projects_list_region(struct hc *hc, const struct hc_opts *o, const struct conf *c,
			 const struct aws_creds *creds, const char *region, struct project_list *out,
			 char *err, size_t errlen);

/* Builds the region's base URL from the endpoint template. Caller frees. */
char *projects_base_url(const char *endpoint, const char *region);

#endif
