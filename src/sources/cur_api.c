/*
 * cur_api.c - see cur_api.h.
 */
#include "sources/cur_api.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/csv.h"
#include "base/days.h"
#include "base/jsontape.h"
#include "base/numfmt.h"
#include "base/textmap.h"
#include "base/util.h"

const char *const cur_tab_names[CUR_NTABS] = { "spend", "models", "hours", "types",
					       "principals", "rates" };

/* ---- aggregate tables ---- */

void cur_agg_init(struct cur_agg *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < CUR_NTABS; i++)
		a->t[i].index = textmap_new();
	a->first_hour = 1;
	a->last_hour = 0;
}

void cur_agg_free(struct cur_agg *a)
{
	for (int i = 0; i < CUR_NTABS; i++) {
		for (size_t j = 0; j < a->t[i].n; j++)
			free(a->t[i].v[j].key);
		free(a->t[i].v);
		if (a->t[i].index)
			textmap_free(a->t[i].index);
	}
	memset(a, 0, sizeof(*a));
}

void cur_table_add(struct cur_table *t, const char *key, double cost, double usage)
{
	uintptr_t i = (uintptr_t)textmap_get(t->index, key, NULL);
	if (!i) {
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 64;
			t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
		}
		t->v[t->n] = (struct cur_cell){ .key = xstrdup(key) };
		textmap_put(t->index, key, (void *)(uintptr_t)(t->n + 1));
		i = ++t->n;
	}
	t->v[i - 1].cost += cost;
	t->v[i - 1].usage += usage;
}

void cur_agg_merge(struct cur_agg *to, const struct cur_agg *from)
{
	for (int i = 0; i < CUR_NTABS; i++)
		for (size_t j = 0; j < from->t[i].n; j++)
			cur_table_add(&to->t[i], from->t[i].v[j].key, from->t[i].v[j].cost,
				      from->t[i].v[j].usage);
	to->lines += from->lines;
	to->bedrock_lines += from->bedrock_lines;
	if (from->last_hour >= from->first_hour) {
		if (to->last_hour < to->first_hour || from->first_hour < to->first_hour)
			to->first_hour = from->first_hour;
		if (to->last_hour < to->first_hour || from->last_hour > to->last_hour)
			to->last_hour = from->last_hour;
	}
}

size_t cur_key_split(const char *key, char **copy, char **fields, size_t max)
{
	*copy = xstrdup(key);
	size_t n = 0;
	char *p = *copy;
	while (n < max) {
		fields[n++] = p;
		char *e = strchr(p, CUR_SEP);
		if (!e)
			break;
		*e = '\0';
		p = e + 1;
	}
	return n;
}

/* ---- the manifest ---- */

void cur_manifest_clear(struct cur_manifest *m)
{
	free(m->execution_id);
	free(m->export_arn);
	textlist_free(&m->files);
	memset(m, 0, sizeof(*m));
}

static bool ends_with_ci(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int cur_manifest_parse(const char *json, size_t len, struct cur_manifest *out, char *err,
		       size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct jsontape t;
	int rc = -EPROTO;
	if (jsontape_parse(&t, json, len) || !jt_is(&t, 0, JT_OBJECT)) {
		snprintf(err, errlen, "the manifest is not a JSON object");
		goto out;
	}
	size_t id = jt_get(&t, 0, "executionId"), files = jt_get(&t, 0, "dataFiles");
	if (id == JT_NONE || !jt_is(&t, id, JT_STRING)) {
		snprintf(err, errlen, "the manifest has no executionId string");
		goto out;
	}
	if (files == JT_NONE || !jt_is(&t, files, JT_ARRAY)) {
		snprintf(err, errlen, "the manifest has no dataFiles list");
		goto out;
	}
	out->execution_id = jt_strdup(&t, id);
	size_t arn = jt_get(&t, 0, "exportArn");
	out->export_arn = arn != JT_NONE && jt_is(&t, arn, JT_STRING) ? jt_strdup(&t, arn)
								      : xstrdup("");
	/* a format written in the manifest (none is documented; some exports carry one) */
	for (size_t k = jt_first(&t, 0); k != JT_NONE; k = jt_next(&t, 0, k)) {
		char v[64];
		if (jt_is(&t, k + 1, JT_STRING) && jt_str(&t, k + 1, v, sizeof(v)) >= 0 &&
		    strcasestr(v, "parquet"))
			out->parquet = true;
	}
	for (size_t f = jt_first(&t, files); f != JT_NONE; f = jt_next(&t, files, f)) {
		char *u = jt_is(&t, f, JT_STRING) ? jt_strdup(&t, f) : NULL;
		if (!u || strncmp(u, "s3://", 5) != 0 || !strchr(u + 5, '/')) {
			snprintf(err, errlen, "the manifest's dataFiles holds %s, not an s3:// URI",
				 u ? u : "a value that is not a string");
			free(u);
			cur_manifest_clear(out);
			goto out;
		}
		if (ends_with_ci(u, ".parquet"))
			out->parquet = true;
		textlist_push(&out->files, u);
	}
	rc = 0;
out:
	jsontape_free(&t);
	return rc;
}

/* ---- line items ---- */

enum col {
	C_START, C_COST, C_USAGE_TYPE, C_ACCOUNT, C_PRODUCT_CODE, C_TYPE, C_AMOUNT, C_UNIT,
	C_PRINCIPAL, C_SERVICE, C_PRODUCT_MAP, C_TAG0, C_TAG1, C_NCOLS
};

struct cur_reader {
	const struct cur_opts *o;
	struct cur_agg *agg;
	struct csv *csv;
	bool header_done;
	size_t nfields;
	long col[C_NCOLS];           /* field index, -1 = absent */
	char *map_key[2];            /* a tag read from a map column: its key, else NULL */
	struct buf key;              /* the cell key being built */
	char *err;                   /* where the callback writes its message */
	size_t errlen;
	uint64_t bytes;
};

static char *norm_key(const char *key)
{
	char *s = xstrdup(key);
	for (char *p = s; *p; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		*p = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ? c : '_';
	}
	return s;
}

static long find_col(const struct csv_record *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->field[i], name) == 0)
			return (long)i;
	return -1;
}

/* Finds attribution tag @i's column (and map key) in header @h; false when none. */
static bool find_tag(struct cur_reader *r, const struct csv_record *h, size_t i, char *tried,
		     size_t triedlen)
{
	const struct cur_opts *o = r->o;
	const char *want = i < o->tag_columns->n ? o->tag_columns->v[i] : NULL;
	if (want && *want) {
		const char *dot = strchr(want, '.');
		char *col = dot ? xstrndup(want, (size_t)(dot - want)) : xstrdup(want);
		r->col[C_TAG0 + i] = find_col(h, col);
		if (dot)
			r->map_key[i] = xstrdup(dot + 1);
		snprintf(tried, triedlen, "%s", want);
		free(col);
		return r->col[C_TAG0 + i] >= 0;
	}
	char *n = norm_key(o->tag_keys->v[i]);
	char *flat = xasprintf("resource_tags_user_%s", n);
	if ((r->col[C_TAG0 + i] = find_col(h, n)) < 0 &&
	    (r->col[C_TAG0 + i] = find_col(h, flat)) < 0 &&
	    (r->col[C_TAG0 + i] = find_col(h, "resource_tags")) >= 0)
		r->map_key[i] = xasprintf("user_%s", n);
	snprintf(tried, triedlen, "%s, %s or resource_tags['user_%s']", n, flat, n);
	free(n);
	free(flat);
	return r->col[C_TAG0 + i] >= 0;
}

static int read_header(struct cur_reader *r, const struct csv_record *h)
{
	static const struct {
		enum col c;
		const char *names[3];
	} cols[] = {
		{ C_START, { "line_item_usage_start_date" } },
		{ C_USAGE_TYPE, { "line_item_usage_type" } },
		{ C_ACCOUNT, { "line_item_usage_account_id" } },
		{ C_PRODUCT_CODE, { "line_item_product_code" } },
		{ C_TYPE, { "line_item_line_item_type" } },
		{ C_AMOUNT, { "line_item_usage_amount" } },
		{ C_UNIT, { "pricing_unit" } },
		{ C_PRINCIPAL, { "line_item_iam_principal" } },
		{ C_SERVICE, { "product_product_name", "product_servicename", "product_service_name" } },
		{ C_PRODUCT_MAP, { "product" } },
	};
	for (int i = 0; i < C_NCOLS; i++)
		r->col[i] = -1;
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		for (size_t k = 0; k < 3 && cols[i].names[k] && r->col[cols[i].c] < 0; k++)
			r->col[cols[i].c] = find_col(h, cols[i].names[k]);
	r->col[C_COST] = find_col(h, r->o->cost_column);
	const char *missing = r->col[C_START] < 0 ? "line_item_usage_start_date"
			      : r->col[C_COST] < 0 ? r->o->cost_column
			      : r->col[C_USAGE_TYPE] < 0 ? "line_item_usage_type"
							 : NULL;
	if (missing) {
		snprintf(r->err, r->errlen, "the header row has no column %s", missing);
		return -ENOENT;
	}
	for (size_t i = 0; i < r->o->tag_keys->n && i < 2; i++) {
		char tried[512];
		if (!find_tag(r, h, i, tried, sizeof(tried))) {
			snprintf(r->err, r->errlen, "the header row has no column for the attribution "
				 "tag %s (looked for %s; see data_exports.tag_columns)",
				 r->o->tag_keys->v[i], tried);
			return -ENOENT;
		}
	}
	r->nfields = h->n;
	r->header_done = true;
	return 0;
}

/* The value of @key in map cell @cell (JSON object, or Athena's {k=v, k2=v2}), copied into
 * @out; "" when absent. */
static void map_value(const char *cell, size_t len, const char *key, char *out, size_t outlen)
{
	*out = '\0';
	const char *p = cell;
	while (*p == ' ')
		p++;
	if (*p != '{')
		return;
	const char *q = p + 1;
	while (*q == ' ')
		q++;
	if (*q == '"') { /* JSON */
		struct jsontape t;
		if (!jsontape_parse(&t, cell, len) && jt_is(&t, 0, JT_OBJECT)) {
			size_t v = jt_get(&t, 0, key);
			if (v != JT_NONE && jt_is(&t, v, JT_STRING) && jt_str(&t, v, out, outlen) < 0)
				*out = '\0';
		}
		jsontape_free(&t);
		return;
	}
	size_t kl = strlen(key);
	for (const char *s = q; *s && *s != '}';) { /* {k=v, k2=v2} */
		const char *eq = strchr(s, '=');
		if (!eq)
			return;
		const char *end = strstr(eq, ", ");
		if (!end)
			end = strrchr(eq, '}');
		if (!end)
			end = eq + strlen(eq);
		if ((size_t)(eq - s) == kl && memcmp(s, key, kl) == 0) {
			size_t n = (size_t)(end - eq - 1);
			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, eq + 1, n);
			out[n] = '\0';
			return;
		}
		s = *end == ',' ? end + 2 : end;
	}
}

/* "2026-12-01T05:00:00Z" (or .000Z, +00:00, a space for T): hours since the epoch. */
static int parse_hour(const char *s, long *hour)
{
	char d[11];
	if (strlen(s) < 13 || (s[10] != 'T' && s[10] != ' ') || s[11] < '0' || s[11] > '2' ||
	    s[12] < '0' || s[12] > '9')
		return -1;
	memcpy(d, s, 10);
	d[10] = '\0';
	long day;
	int h = (s[11] - '0') * 10 + (s[12] - '0');
	if (days_parse(d, &day) || h > 23)
		return -1;
	*hour = day * 24 + h;
	return 0;
}

static int parse_number(const char *s, double *out)
{
	if (!*s) {
		*out = 0;
		return 0;
	}
	if (!numfmt_parse_decimal(s, out))
		return 0;
	char *end;
	*out = strtod(s, &end); /* "1E-7", "+1" and friends */
	return *end || end == s || *out != *out ? -1 : 0;
}

double cur_tokens_per_unit(const char *u)
{
	if (!u)
		return 1;
	if (strcasestr(u, "1M ") || strcasestr(u, "million"))
		return 1e6;
	if (strcasestr(u, "1K ") || strcasestr(u, "thousand"))
		return 1e3;
	return 1;
}

static bool is_bedrock(const struct cur_opts *o, const char *code, const char *service)
{
	if (o->services && o->services->n)
		return textlist_find(o->services, service) >= 0;
	return strcmp(code, "AmazonBedrock") == 0 ||
	       (*o->service_search && strcasestr(service, o->service_search));
}

static const char *field(const struct csv_record *rec, long c)
{
	return c >= 0 ? rec->field[c] : "";
}

/* Appends the fields (each a string) to r->key, separated. */
static const char *key_of(struct cur_reader *r, const char *first, const char *const *more,
			  size_t n)
{
	buf_reset(&r->key);
	buf_puts(&r->key, first);
	for (size_t i = 0; i < n; i++) {
		buf_putc(&r->key, CUR_SEP);
		buf_puts(&r->key, more[i]);
	}
	return r->key.data;
}

static int on_record(void *arg, const struct csv_record *rec)
{
	struct cur_reader *r = arg;
	if (!r->header_done)
		return read_header(r, rec);
	if (rec->n != r->nfields) {
		snprintf(r->err, r->errlen, "line %llu has %zu fields, the header %zu", rec->line,
			 rec->n, r->nfields);
		return -EPROTO;
	}
	struct cur_agg *a = r->agg;
	a->lines++;
	const char *code = field(rec, r->col[C_PRODUCT_CODE]);
	char service[512];
	if (r->col[C_SERVICE] >= 0)
		snprintf(service, sizeof(service), "%s", field(rec, r->col[C_SERVICE]));
	else if (r->col[C_PRODUCT_MAP] >= 0)
		map_value(rec->field[r->col[C_PRODUCT_MAP]], rec->len[r->col[C_PRODUCT_MAP]],
			  "product_name", service, sizeof(service));
	else
		*service = '\0';
	if (!*service)
		snprintf(service, sizeof(service), "%s", code);
	if (!is_bedrock(r->o, code, service))
		return 0;
	long hour;
	double cost, amount;
	if (parse_hour(rec->field[r->col[C_START]], &hour)) {
		snprintf(r->err, r->errlen, "line %llu: line_item_usage_start_date \"%.40s\" is not "
			 "an ISO 8601 time", rec->line, rec->field[r->col[C_START]]);
		return -EPROTO;
	}
	if (parse_number(rec->field[r->col[C_COST]], &cost) ||
	    parse_number(field(rec, r->col[C_AMOUNT]), &amount)) {
		snprintf(r->err, r->errlen, "line %llu: a cost or usage amount is not a number",
			 rec->line);
		return -EPROTO;
	}
	a->bedrock_lines++;
	if (a->last_hour < a->first_hour || hour < a->first_hour)
		a->first_hour = hour;
	if (a->last_hour < a->first_hour || hour > a->last_hour)
		a->last_hour = hour;
	char tag[2][1024] = { "", "" };
	for (size_t i = 0; i < r->o->tag_keys->n && i < 2; i++) {
		long c = r->col[C_TAG0 + i];
		if (r->map_key[i])
			map_value(rec->field[c], rec->len[c], r->map_key[i], tag[i], sizeof(tag[i]));
		else
			snprintf(tag[i], sizeof(tag[i]), "%s", rec->field[c]);
	}
	const char *acct = field(rec, r->col[C_ACCOUNT]);
	const char *ut = rec->field[r->col[C_USAGE_TYPE]];
	const char *type = r->col[C_TYPE] >= 0 ? rec->field[r->col[C_TYPE]] : "Usage";
	char num[32];
	snprintf(num, sizeof(num), "%ld", hour / 24);
	const char *spend[] = { acct, tag[0], tag[1] };
	cur_table_add(&a->t[CUR_SPEND], key_of(r, num, spend, 3), cost, 0);
	const char *model[] = { acct, service, ut };
	cur_table_add(&a->t[CUR_MODELS], key_of(r, num, model, 3), cost, amount);
	snprintf(num, sizeof(num), "%ld", hour);
	cur_table_add(&a->t[CUR_HOURS], key_of(r, num, &acct, 1), cost, 0);
	const char *types[] = { tag[0], tag[1], type };
	cur_table_add(&a->t[CUR_TYPES], key_of(r, acct, types, 3), cost, 0);
	const char *pr[] = { tag[0], tag[1], field(rec, r->col[C_PRINCIPAL]) };
	cur_table_add(&a->t[CUR_PRINCIPALS], key_of(r, acct, pr, 3), cost, 0);
	if (strcmp(type, "Usage") == 0) {
		snprintf(num, sizeof(num), "%.0f", cur_tokens_per_unit(field(rec, r->col[C_UNIT])));
		const char *rate[] = { service, ut, num };
		cur_table_add(&a->t[CUR_RATES], key_of(r, acct, rate, 3), cost, amount);
	}
	return 0;
}

struct cur_reader *cur_reader_new(const struct cur_opts *o, struct cur_agg *agg)
{
	struct cur_reader *r = xcalloc(1, sizeof(*r));
	r->o = o;
	r->agg = agg;
	r->csv = csv_new(NULL, on_record, r);
	buf_init(&r->key, 16 * 1024);
	return r;
}

void cur_reader_free(struct cur_reader *r)
{
	if (!r)
		return;
	csv_free(r->csv);
	free(r->map_key[0]);
	free(r->map_key[1]);
	buf_free(&r->key);
	free(r);
}

int cur_reader_feed(struct cur_reader *r, const char *data, size_t len, char *err, size_t errlen)
{
	r->err = err;
	r->errlen = errlen;
	r->bytes += len;
	return csv_feed(r->csv, data, len, err, errlen);
}

int cur_reader_finish(struct cur_reader *r, char *err, size_t errlen)
{
	r->err = err;
	r->errlen = errlen;
	int rc = csv_finish(r->csv, err, errlen);
	if (!rc && !r->header_done && r->bytes) {
		snprintf(err, errlen, "no header row");
		rc = -ENOENT;
	}
	return rc;
}
