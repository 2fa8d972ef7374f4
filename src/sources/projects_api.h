/*
 * projects_api.h - the Bedrock Projects API (bedrock-mantle) on the wire:
 * parsing a page (pure) and listing every project of one region (network).
 * The projects source (projects.h) calls it; the data is model/project.h.
 *
 * Listing follows OpenAI-style pagination: `limit` and `after=<id of the last
 * item received>`, until `has_more` is false. `last_id` is not trusted. A page
 * that repeats a project already received, an empty page that claims more, or
 * more than the configured maximum of projects fails the listing.
 */
#ifndef BCE_PROJECTS_API_H
#define BCE_PROJECTS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/awscreds.h"
#include "aws/http_client.h"
#include "config/conf.h"
#include "model/project.h"

/* The listing's operation (apistats.h). */
#define OP_LIST_PROJECTS apistats_op("bedrock_mantle", "ListProjects")

/* AWS allows 50 tags per resource; a project with more is refused. */
#define PROJECTS_MAX_TAGS 128
/* Longest id/name/arn/status/tag string accepted, in bytes. */
#define PROJECTS_MAX_STRING 2048

struct jsontape;

/*
 * Parses project object @item (the @idx-th of its array, for messages) of
 * tape @t into @p: the shape of a `data[]` entry of the API, which the state
 * file keeps as well. Returns 0, or -EPROTO with @err naming the field
 * ("data[3].created_at: expected a number of seconds"); @p is then empty.
 */
int projects_parse_item(const struct jsontape *t, size_t item, size_t idx, struct project *p,
			char *err, size_t errlen);

/*
 * Parses one page. On success appends its projects to @list, sets *has_more
 * and returns 0. On failure returns -EPROTO, leaves @list unchanged and
 * writes the reason (naming the field, e.g. "data[3].created_at: expected a
 * number") into @err. Never logs. Thread-safe.
 */
int projects_parse_page(const char *body, size_t len, struct project_list *list,
			bool *has_more, char *err, size_t errlen);

/*
 * Lists every project of @region into @out (which must be empty), signing with
 * @creds when projects.auth is sigv4 (borrowed; ignored for api_key). Returns 0;
 * -E2BIG when the region has more than projects.max_projects: @out then holds
 * the first max_projects of them and @err says so (counted as reason "parse");
 * -EIO/-EPROTO/-EACCES with a short reason in @err (never a secret), @out
 * left empty; -ECANCELED when stopped. Poller thread (or main under --once).
 */
int projects_list_region(struct hc *hc, const struct hc_opts *o, const struct conf *c,
			 const struct aws_creds *creds, const char *region, struct project_list *out,
			 char *err, size_t errlen);

/* Builds the region's base URL from the endpoint template. Caller frees. */
char *projects_base_url(const char *endpoint, const char *region);

#endif
