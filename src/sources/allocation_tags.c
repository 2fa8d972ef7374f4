/*
 * allocation_tags.c - see allocation_tags.h.
 */
#include "sources/allocation_tags.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/textlist.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/registry.h"
#include "sources/accounts.h"
#include "sources/ce_api.h"
#include "sources/ce_client.h"
#include "sources/cost_explorer.h"

struct state {
	struct textlist keys; /* every attribution and tag-label key, in that order */
	bool *active;         /* one per key */
	double at;            /* last successful check; 0 = never */
};

static const struct metric_def m_tag_active = {
	"bedrock_cost_allocation_tag_active", METRIC_GAUGE,
	"1 if the tag key is an active cost allocation tag (ListCostAllocationTags), else 0; "
	"inactive keys cannot group spend.",
};

/* Tag activation is the payer's: in an organization, shard 0 reports it. */
static bool enabled(const struct conf *c)
{
	return c->ce_enabled && c->shard == 0;
}

static long interval(const struct conf *c)
{
	return c->ce_allocation_tags_interval;
}

static void *create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, sizeof(struct state));
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	textlist_free(&s->keys);
	free(s->active);
	free(s);
}

static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)priv;
	return cost_explorer_query_changed(old, c);
}

struct tags_arg {
	const struct textlist *want;
	struct textlist keys;
	bool *active;
};

static char *tags_body(void *arg, const char *token)
{
	return ce_body_allocation_tags(((struct tags_arg *)arg)->want, token);
}

static int tags_parse(void *arg, const char *body, size_t len, char **next, size_t *items,
		      char *err, size_t errlen)
{
	struct tags_arg *t = arg;
	size_t before = t->keys.n;
	int rc = ce_parse_allocation_tags(body, len, &t->keys, &t->active, next, err, errlen);
	*items = t->keys.n - before;
	return rc;
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	struct ce_meter *meter = cost_explorer_meter(source_peer(x->set, &cost_explorer_source));
	if (!meter) {
		snprintf(err, errlen, "needs the cost_explorer source");
		return -EINVAL;
	}
	if (ce_meter_remaining(meter, c->ce_max_requests_per_day, x->now) < 1) {
		snprintf(err, errlen, "skipped: no Cost Explorer requests left today "
			 "(cost_explorer.max_requests_per_day)");
		return -EDQUOT;
	}
	struct textlist want = { 0 };
	for (size_t i = 0; i < c->ce_attribution_tags.n; i++)
		textlist_push(&want, xstrdup(c->ce_attribution_tags.v[i]));
	for (size_t i = 0; i < c->projects_tag_labels.n; i++)
		if (textlist_find(&want, c->projects_tag_labels.v[i]) < 0)
			textlist_push(&want, xstrdup(c->projects_tag_labels.v[i]));
	struct tags_arg ta = { &want, { 0 }, NULL };
	struct ce_pages pg = { .expected = want.n };
	int rc = ce_paginate(x, meter, OP_CE_LIST_COST_ALLOCATION_TAGS, "ListCostAllocationTags",
			     tags_body, tags_parse, &ta, &pg, err, errlen);
	ce_pages_clear(&pg);
	if (rc) {
		textlist_free(&want);
		textlist_free(&ta.keys);
		free(ta.active);
		return rc;
	}
	/* one entry per wanted key: active only if Cost Explorer says so */
	bool *result = xcalloc(want.n + 1, sizeof(*result));
	struct buf inactive;
	buf_init(&inactive, 8192);
	for (size_t i = 0; i < want.n; i++) {
		for (size_t j = 0; j < ta.keys.n; j++)
			if (strcmp(ta.keys.v[j], want.v[i]) == 0 && ta.active[j])
				result[i] = true;
		if (!result[i])
			buf_printf(&inactive, "%s%s", inactive.len ? ", " : "", want.v[i]);
	}
	bool changed = want.n != s->keys.n;
	for (size_t i = 0; !changed && i < want.n; i++)
		changed = strcmp(want.v[i], s->keys.v[i]) != 0 || result[i] != s->active[i];
	if (changed && inactive.len)
		log_warn("tag keys are not active cost allocation tags; their spend cannot be grouped "
			 "(activate them in the Billing console; it takes up to 24 h and is not retroactive)",
			 "tag_keys", inactive.data);
	buf_free(&inactive);
	textlist_free(&ta.keys);
	free(ta.active);
	textlist_free(&s->keys);
	free(s->active);
	s->keys = want;
	s->active = result;
	s->at = x->now;
	x->state_changed = true;
	return 0;
}

/* "allocation_tags": {"at": ..., "active": {"<key>": bool, ...}}, once checked */
static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	if (!(s->at > 0))
		return;
	jsonw_key(w, "allocation_tags");
	jsonw_object_begin(w);
	jsonw_key(w, "at");
	jsonw_number(w, s->at);
	jsonw_key(w, "active");
	jsonw_object_begin(w);
	for (size_t i = 0; i < s->keys.n; i++) {
		jsonw_key(w, s->keys.v[i]);
		jsonw_bool(w, s->active[i]);
	}
	jsonw_object_end(w);
	jsonw_object_end(w);
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	struct state *s = create(c);
	size_t a = jt_get(t, root, "allocation_tags");
	if (a == JT_NONE)
		return s;
	size_t act = jt_get(t, a, "active");
	bool ok = jt_is(t, a, JT_OBJECT) && jt_is(t, act, JT_OBJECT) &&
		  jt_number(t, jt_get(t, a, "at"), &s->at) == 0 && isfinite(s->at);
	if (ok) {
		s->active = xcalloc(jt_count(t, act) + 1, sizeof(*s->active));
		for (size_t k = jt_first(t, act); ok && k != JT_NONE; k = jt_next(t, act, k)) {
			ok = jt_is(t, k + 1, JT_TRUE) || jt_is(t, k + 1, JT_FALSE);
			s->active[s->keys.n] = jt_is(t, k + 1, JT_TRUE);
			textlist_push(&s->keys, jt_strdup(t, k));
		}
	}
	if (!ok) {
		snprintf(err, errlen, "allocation_tags: malformed");
		destroy(s);
		return NULL;
	}
	if (s->at > 0 && s->at <= now) {
		out->has_data = true;
		out->at = s->at;
	}
	return s;
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	if (!x->health->has_data)
		return;
	for (size_t i = 0; i < s->keys.n; i++)
		reg_addv(r, &m_tag_active, s->active[i] ? 1 : 0, "account_id", accounts_label(x->set),
			 "tag_key", s->keys.v[i], (char *)0);
}

static const struct api_op_def operations[] = {
	{ "cost_explorer", "ListCostAllocationTags" },
	{ NULL, NULL },
};

const struct source_def allocation_tags_source = {
	.name = "allocation_tags",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 900,
	.operations = operations,
	.create = create,
	.destroy = destroy,
	.reconfigure = reconfigure,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
};
