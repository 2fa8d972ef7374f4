/*
 * shared_state.c - see shared_state.h.
 */
#include "engine/shared_state.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "config/conf.h"
#include "engine/statefile.h"

struct shared_state {
	char *url;          /* the object these fields describe */
	char etag[128];     /* the version last read or written, "" = none seen */
	bool pushed;        /* the object is what this handle last wrote: */
	uint64_t hash;      /* the hash of that body (without written_at) */
};

struct shared_state *shared_state_new(void)
{
	return xcalloc(1, sizeof(struct shared_state));
}

void shared_state_free(struct shared_state *s)
{
	if (!s)
		return;
	free(s->url);
	free(s);
}

bool shared_state_configured(const struct conf *c)
{
	return c->state_s3_bucket != NULL;
}

const char *shared_state_url(struct shared_state *s, const struct conf *c)
{
	char *url = s3_object_url(c->state_s3_endpoint, c->state_s3_region, c->state_s3_bucket,
				  c->state_s3_key);
	if (!s->url || strcmp(s->url, url) != 0) { /* another object: nothing known of it */
		free(s->url);
		s->url = url;
		s->etag[0] = '\0';
		s->pushed = false;
	} else {
		free(url);
	}
	return s->url;
}

int shared_state_pull(struct shared_state *s, const struct s3_ctx *x, struct source_set *set,
		      const double *newer, struct source_restored *restored, char *err,
		      size_t errlen)
{
	const struct conf *c = x->conf;
	const char *url = shared_state_url(s, c);
	struct hc_resp resp = { 0 };
	int rc = s3_get(x, url, c->state_s3_region, s->etag, &resp, err, errlen);
	if (rc)
		return rc;
	if (resp.status == 304) {
		free(resp.body);
		return -EALREADY;
	}
	if (resp.status == 404) {
		free(resp.body);
		s->etag[0] = '\0';
		s->pushed = false;
		return -ENOENT;
	}
	snprintf(s->etag, sizeof(s->etag), "%s", resp.etag);
	s->pushed = false;
	rc = statefile_parse(url, resp.body, resp.len, set, c, x->now, newer, restored, err,
			     errlen);
	free(resp.body);
	return rc;
}

int shared_state_push(struct shared_state *s, const struct s3_ctx *x,
		      const struct source_set *set, char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	const char *url = shared_state_url(s, c);
	char *text, rerr[200];
	size_t len;
	uint64_t hash;
	int rc = statefile_render(set, x->now, &text, &len, &hash, rerr, sizeof(rerr));
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", url, rerr);
		return rc;
	}
	if (s->pushed && s->hash == hash) {
		free(text);
		return 0;
	}
	char etag[128];
	rc = s3_put(x, url, c->state_s3_region, text, len, s->etag[0] ? s->etag : NULL, etag,
		    sizeof(etag), err, errlen);
	free(text);
	if (rc)
		return rc;
	snprintf(s->etag, sizeof(s->etag), "%s", etag);
	s->hash = hash;
	s->pushed = true;
	return 0;
}
