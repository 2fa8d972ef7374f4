/*
 * statefile.c - see statefile.h.
 *
 * Saving streams the JSON straight into one struct buf (no cJSON tree): at
 * 1,000 projects the file is some 50,000 cost groups, and building a tree of
 * them and printing it cost ~100 ms per save. The bytes are what cJSON would
 * print for the same structure: strings are escaped exactly as cJSON's
 * printer does (", \, \b \f \n \r \t, other bytes below 0x20 as \u00xx, all
 * other bytes as they are, so invalid UTF-8 comes back byte for byte through
 * cJSON's parser); numbers are written so that strtod (which cJSON's parser
 * uses) gives back the identical double. Loading uses cJSON.
 */
#include "engine/statefile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/days.h"
#include "model/expfmt.h"
#include "base/util.h"

#define FORMAT "bedrock-cost-exporter-state"
#define MAX_STATE_BYTES ((size_t)256 * 1024 * 1024)

/* ---- exact number text ---- */

/*
 * Writes finite @v into @out (no NUL) so that strtod gives back exactly @v;
 * returns the length, or 0 for NaN and infinities (JSON cannot spell them).
 *
 * 1. Integers below 2^53 (counts, most timestamps): their digits.
 * 2. Amounts of at most 10 decimals below 9e5: expfmt_put_decimal10(), no
 *    printf and no strtod (expfmt.c says why it round-trips).
 * 3. Anything else: %.17g, which always round-trips a double.
 */
static size_t format_exact(double v, char out[32])
{
	if (!isfinite(v))
		return 0;
	char *o = out;
	double a = fabs(v);
	if (signbit(v))
		*o++ = '-'; /* -0 stays -0 */
	if (a < 9007199254740992.0 && a == (double)(uint64_t)a)
		return (size_t)(expfmt_put_u64(o, (uint64_t)a) - out);
	char *end = expfmt_put_decimal10(o, a);
	if (end)
		return (size_t)(end - out);
	return (size_t)snprintf(out, 32, "%.17g", v);
}

/* ---- the writer: JSON straight into a struct buf ---- */

struct jw {
	struct buf b;
	int err; /* the first failure; later writes do nothing */
};

/* Room for @n bytes at the end, or NULL after a failure. */
static char *jw_room(struct jw *w, size_t n)
{
	if (w->err)
		return NULL;
	if (buf_reserve(&w->b, n)) {
		w->err = -EFBIG;
		return NULL;
	}
	return w->b.data + w->b.len;
}

static void jw_end(struct jw *w, char *end)
{
	w->b.len = (size_t)(end - w->b.data);
	*end = '\0';
}

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	char *o = jw_room(w, n);
	if (o) {
		memcpy(o, s, n);
		jw_end(w, o + n);
	}
}

/* A string literal (no escaping: only for our own keys and punctuation). */
#define jw_lit(w, lit) jw_raw((w), "" lit, sizeof(lit) - 1)

/* A JSON string, escaped as cJSON's printer does; NULL is written as "". */
static void jw_str(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (!s)
		s = "";
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 2) / 6) {
		w->err = -EFBIG;
		return;
	}
	char *o = jw_room(w, 6 * n + 2); /* worst case: every byte as \u00xx */
	if (!o)
		return;
	*o++ = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	jw_end(w, o);
}

/* A number that reads back as exactly @v. NaN and infinities fail the save (-EDOM):
 * the loader would reject the whole file, so the last good file is kept instead. */
static void jw_num(struct jw *w, double v)
{
	char *o = jw_room(w, 32);
	if (!o)
		return;
	size_t n = format_exact(v, o);
	if (!n) {
		w->err = -EDOM;
		return;
	}
	jw_end(w, o + n);
}

static void jw_long(struct jw *w, long v)
{
	char *o = jw_room(w, 21);
	if (!o)
		return;
	if (v < 0)
		*o++ = '-';
	jw_end(w, expfmt_put_u64(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v));
}

static void jw_day(struct jw *w, long day)
{
	char ds[11];
	days_format(day, ds);
	jw_str(w, ds);
}

static void jw_bool(struct jw *w, bool v)
{
	if (v)
		jw_lit(w, "true");
	else
		jw_lit(w, "false");
}

static void write_strlist(struct jw *w, const struct strlist *l)
{
	jw_lit(w, "[");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			jw_lit(w, ",");
		jw_str(w, l->v[i]);
	}
	jw_lit(w, "]");
}

static void write_series(struct jw *w, const struct ce_series *s, const char *sig)
{
	jw_lit(w, "{\"signature\":");
	jw_str(w, sig);
	jw_lit(w, ",\"days\":[");
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		if (i)
			jw_lit(w, ",");
		jw_lit(w, "{\"day\":");
		jw_day(w, d->day);
		jw_lit(w, ",\"estimated\":");
		jw_bool(w, d->estimated);
		jw_lit(w, ",\"groups\":[");
		for (size_t j = 0; j < d->n; j++) {
			const struct ce_group *g = &d->g[j];
			if (j)
				jw_lit(w, ",");
			jw_lit(w, "{\"k\":[");
			for (int q = 0; q < 2 && g->k[q]; q++) {
				if (q)
					jw_lit(w, ",");
				jw_str(w, g->k[q]);
			}
			jw_lit(w, "],\"amount\":");
			jw_num(w, g->amount);
			jw_lit(w, "}");
		}
		jw_lit(w, "]}");
	}
	jw_lit(w, "]}");
}

static void write_projects(struct jw *w, const struct region_state *regions, size_t n)
{
	jw_lit(w, "{");
	bool first = true;
	for (size_t r = 0; r < n; r++) {
		if (!regions[r].has_data)
			continue;
		if (!first)
			jw_lit(w, ",");
		first = false;
		jw_str(w, regions[r].region);
		jw_lit(w, ":[");
		for (size_t i = 0; i < regions[r].projects.n; i++) {
			const struct project *p = &regions[r].projects.v[i];
			if (i)
				jw_lit(w, ",");
			jw_lit(w, "{\"id\":");
			jw_str(w, p->id);
			jw_lit(w, ",\"name\":");
			jw_str(w, p->name);
			jw_lit(w, ",\"arn\":");
			jw_str(w, p->arn);
			jw_lit(w, ",\"status\":");
			jw_str(w, p->status);
			jw_lit(w, ",\"created_at\":");
			jw_num(w, p->created_at);
			jw_lit(w, ",\"tags\":{");
			for (size_t k = 0; k < p->ntags; k++) {
				if (k)
					jw_lit(w, ",");
				jw_str(w, p->tags[k].key);
				jw_lit(w, ":");
				jw_str(w, p->tags[k].value);
			}
			jw_lit(w, "}}");
		}
		jw_lit(w, "]");
	}
	jw_lit(w, "}");
}

/*
 * The whole file into @w. *tail receives the offset just after the
 * written_at value: the bytes before it are constant apart from that value,
 * so the bytes from *tail on decide whether the content changed.
 */
static void write_state(struct jw *w, const struct ce_source *ce, const struct region_state *regions,
			size_t nregions, double now, size_t *tail)
{
	jw_lit(w, "{\"format\":\"" FORMAT "\",\"version\":");
	jw_long(w, STATEFILE_VERSION);
	jw_lit(w, ",\"written_at\":");
	jw_num(w, now);
	*tail = w->b.len;
	jw_lit(w, ",\"ce_requests\":{\"day\":");
	jw_day(w, ce->req_day);
	jw_lit(w, ",\"count\":");
	jw_long(w, ce->req_count);
	jw_lit(w, "},\"services\":{\"at\":");
	jw_num(w, ce->services_at);
	jw_lit(w, ",\"search\":");
	jw_str(w, ce->services_search);
	jw_lit(w, ",\"values\":");
	write_strlist(w, &ce->services);
	jw_lit(w, "},\"costs_at\":");
	jw_num(w, ce->costs_at);
	jw_lit(w, ",\"spend\":");
	write_series(w, &ce->spend, ce->spend_sig);
	jw_lit(w, ",\"models\":");
	write_series(w, &ce->models, ce->models_sig);
	if (ce->has_forecast) {
		jw_lit(w, ",\"forecast\":{\"day\":");
		jw_day(w, ce->forecast_day);
		jw_lit(w, ",\"at\":");
		jw_num(w, ce->forecast_at);
		jw_lit(w, ",\"mean\":");
		jw_num(w, ce->forecast_mean);
		jw_lit(w, ",\"lower\":");
		jw_num(w, ce->forecast_lower);
		jw_lit(w, ",\"upper\":");
		jw_num(w, ce->forecast_upper);
		jw_lit(w, "}");
	}
	if (ce->tags_at > 0) {
		jw_lit(w, ",\"allocation_tags\":{\"at\":");
		jw_num(w, ce->tags_at);
		jw_lit(w, ",\"active\":{");
		for (size_t i = 0; i < ce->tag_keys.n; i++) {
			if (i)
				jw_lit(w, ",");
			jw_str(w, ce->tag_keys.v[i]);
			jw_lit(w, ":");
			jw_bool(w, ce->tag_active[i]);
		}
		jw_lit(w, "}}");
	}
	jw_lit(w, ",\"projects\":");
	write_projects(w, regions, nregions);
	jw_lit(w, "}");
}

/* ---- the atomic write ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool same_file(const struct statefile_writer *w, const struct stat *st)
{
	return w->dev == (uint64_t)st->st_dev && w->ino == (uint64_t)st->st_ino &&
	       w->size == (int64_t)st->st_size && w->mtime_sec == (int64_t)st->st_mtim.tv_sec &&
	       w->mtime_nsec == (int64_t)st->st_mtim.tv_nsec;
}

static void remember_file(struct statefile_writer *w, const struct stat *st)
{
	w->dev = (uint64_t)st->st_dev;
	w->ino = (uint64_t)st->st_ino;
	w->size = (int64_t)st->st_size;
	w->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	w->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
}

int statefile_save(struct statefile_writer *sw, const char *path, const struct ce_source *ce,
		   const struct region_state *regions, size_t nregions, double now, char *err,
		   size_t errlen)
{
	struct jw w = { .err = 0 };
	buf_init(&w.b, MAX_STATE_BYTES);
	size_t tail = 0;
	write_state(&w, ce, regions, nregions, now, &tail);
	if (w.err) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 w.err == -EDOM ? "the state holds a number that is NaN or infinite"
					: "the state is larger than 256 MiB");
		int rc = w.err;
		buf_free(&w.b);
		return rc;
	}
	uint64_t hash = hash64(w.b.data + tail, w.b.len - tail, 0);

	/* unchanged content, and the file on disk is still the one we wrote: nothing to do */
	struct stat st;
	if (sw && sw->written && sw->hash == hash && stat(path, &st) == 0 && same_file(sw, &st)) {
		buf_free(&w.b);
		return 0;
	}
	if (sw)
		sw->written = false; /* until this write has succeeded */

	/* one fixed name: a write cut short by a crash is overwritten by the next one */
	char *tmp = xasprintf("%s.tmp", path);
	char *dircopy = xstrdup(path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = write_all(fd, w.b.data, w.b.len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (!rc && fstat(fd, &st))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		unlink(tmp);
		goto out;
	}
	int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	if (sw) {
		sw->hash = hash;
		remember_file(sw, &st);
		sw->written = true;
	}
out:
	buf_free(&w.b);
	free(tmp);
	free(dircopy);
	return rc;
}

/* ---- loading: every field checked; any surprise rejects the whole file ---- */

static int load_strlist(const cJSON *a, struct strlist *out)
{
	if (!cJSON_IsArray(a))
		return -EPROTO;
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		if (!cJSON_IsString(e))
			return -EPROTO;
		strlist_push(out, xstrdup(e->valuestring));
	}
	return 0;
}

static double num(const cJSON *o, const char *k, bool *ok)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
		*ok = false;
		return 0;
	}
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k, bool *ok)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(v)) {
		*ok = false;
		return "";
	}
	return v->valuestring;
}

static int load_series(const cJSON *o, struct ce_series *out, char **sig)
{
	bool ok = cJSON_IsObject(o);
	if (!ok)
		return -EPROTO;
	const char *s = str(o, "signature", &ok);
	const cJSON *days = cJSON_GetObjectItemCaseSensitive(o, "days");
	if (!ok || !cJSON_IsArray(days))
		return -EPROTO;
	const cJSON *jd;
	long prev = LONG_MIN;
	cJSON_ArrayForEach(jd, days) {
		long day;
		const cJSON *est = cJSON_IsObject(jd) ? cJSON_GetObjectItemCaseSensitive(jd, "estimated") : NULL;
		const cJSON *gs = cJSON_IsObject(jd) ? cJSON_GetObjectItemCaseSensitive(jd, "groups") : NULL;
		if (!cJSON_IsBool(est) || !cJSON_IsArray(gs) || days_parse(str(jd, "day", &ok), &day) ||
		    !ok || day <= prev)
			return -EPROTO;
		prev = day;
		out->days = xrealloc(out->days, (out->n + 1) * sizeof(*out->days));
		struct ce_day *d = &out->days[out->n++];
		d->day = day;
		d->estimated = cJSON_IsTrue(est);
		d->n = 0;
		d->g = xcalloc((size_t)cJSON_GetArraySize(gs) + 1, sizeof(*d->g));
		const cJSON *g;
		cJSON_ArrayForEach(g, gs) {
			const cJSON *k = cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, "k") : NULL;
			double amount = cJSON_IsObject(g) ? num(g, "amount", &ok) : 0;
			if (!cJSON_IsArray(k) || cJSON_GetArraySize(k) > 2 || !ok)
				return -EPROTO;
			struct ce_group *cg = &d->g[d->n++];
			cg->amount = amount;
			for (int q = 0; q < cJSON_GetArraySize(k); q++) {
				const cJSON *kv = cJSON_GetArrayItem(k, q);
				if (!cJSON_IsString(kv))
					return -EPROTO;
				cg->k[q] = xstrdup(kv->valuestring);
			}
		}
	}
	*sig = *s ? xstrdup(s) : NULL;
	return 0;
}

static int load_projects(const cJSON *o, struct region_state *regions, size_t nregions,
			 struct project_list *lists)
{
	if (!cJSON_IsObject(o))
		return -EPROTO;
	for (size_t r = 0; r < nregions; r++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, regions[r].region);
		if (!a)
			continue;
		/* reuse the API page parser: same shape, same checks */
		cJSON *page = cJSON_CreateObject();
		cJSON_AddItemReferenceToObject(page, "data", (cJSON *)a);
		cJSON_AddFalseToObject(page, "has_more");
		char *text = cJSON_PrintUnformatted(page);
		cJSON_Delete(page);
		bool more;
		char perr[256];
		int rc = projects_parse_page(text, strlen(text), &lists[r], &more, perr, sizeof(perr));
		cJSON_free(text);
		if (rc)
			return -EPROTO;
		lists[r].v = lists[r].v ? lists[r].v : xcalloc(1, sizeof(struct project));
	}
	return 0;
}

int statefile_load(const char *path, struct ce_source *ce, struct region_state *regions,
		   size_t nregions, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file_max(path, MAX_STATE_BYTES, &text, &len);
	if (rc == -ENOENT)
		return -ENOENT;
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
		return -EPROTO;
	}
	cJSON *root = cJSON_ParseWithLength(text, len);
	free(text);
	struct ce_source fresh = { 0 };
	struct project_list *lists = xcalloc(nregions + 1, sizeof(*lists));
	bool ok = true;
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s is not valid JSON", path);
		rc = -EPROTO;
		goto out;
	}
	if (strcmp(str(root, "format", &ok), FORMAT) != 0 || !ok) {
		snprintf(err, errlen, "%s is not a bedrock-cost-exporter state file", path);
		rc = -EPROTO;
		goto out;
	}
	if (num(root, "version", &ok) != STATEFILE_VERSION || !ok) {
		snprintf(err, errlen, "%s has state version %g, this exporter reads version %d", path,
			 num(root, "version", &ok), STATEFILE_VERSION);
		rc = -EPROTO;
		goto out;
	}
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "ce_requests");
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "services");
	if (!cJSON_IsObject(q) || !cJSON_IsObject(sv) ||
	    days_parse(str(q, "day", &ok), &fresh.req_day) || !ok)
		goto corrupt;
	fresh.req_count = (long)num(q, "count", &ok);
	fresh.services_at = num(sv, "at", &ok);
	fresh.services_search = xstrdup(str(sv, "search", &ok));
	if (!ok || fresh.req_count < 0 ||
	    load_strlist(cJSON_GetObjectItemCaseSensitive(sv, "values"), &fresh.services))
		goto corrupt;
	fresh.costs_at = num(root, "costs_at", &ok);
	if (!ok || load_series(cJSON_GetObjectItemCaseSensitive(root, "spend"), &fresh.spend, &fresh.spend_sig) ||
	    load_series(cJSON_GetObjectItemCaseSensitive(root, "models"), &fresh.models, &fresh.models_sig))
		goto corrupt;
	const cJSON *fc = cJSON_GetObjectItemCaseSensitive(root, "forecast");
	if (fc) {
		if (!cJSON_IsObject(fc) || days_parse(str(fc, "day", &ok), &fresh.forecast_day))
			goto corrupt;
		fresh.forecast_at = num(fc, "at", &ok);
		fresh.forecast_mean = num(fc, "mean", &ok);
		fresh.forecast_lower = num(fc, "lower", &ok);
		fresh.forecast_upper = num(fc, "upper", &ok);
		if (!ok)
			goto corrupt;
		fresh.has_forecast = true;
	}
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "allocation_tags");
	if (at) {
		const cJSON *act = cJSON_IsObject(at) ? cJSON_GetObjectItemCaseSensitive(at, "active") : NULL;
		fresh.tags_at = cJSON_IsObject(at) ? num(at, "at", &ok) : 0;
		if (!cJSON_IsObject(act) || !ok)
			goto corrupt;
		fresh.tag_active = xcalloc((size_t)cJSON_GetArraySize(act) + 1, sizeof(bool));
		const cJSON *e;
		cJSON_ArrayForEach(e, act) {
			if (!cJSON_IsBool(e))
				goto corrupt;
			fresh.tag_active[fresh.tag_keys.n] = cJSON_IsTrue(e);
			strlist_push(&fresh.tag_keys, xstrdup(e->string));
		}
	}
	if (load_projects(cJSON_GetObjectItemCaseSensitive(root, "projects"), regions, nregions, lists))
		goto corrupt;

	/* all checked: install */
	ce_source_free(ce);
	*ce = fresh;
	memset(&fresh, 0, sizeof(fresh));
	for (size_t r = 0; r < nregions; r++) {
		if (!lists[r].v)
			continue;
		project_list_move(&regions[r].projects, &lists[r]);
		regions[r].has_data = true;
	}
	goto out;
corrupt:
	snprintf(err, errlen, "%s is corrupt (a field is missing or has the wrong type)", path);
	rc = -EPROTO;
out:
	for (size_t r = 0; r < nregions; r++)
		project_list_free(&lists[r]);
	free(lists);
	ce_source_free(&fresh);
	cJSON_Delete(root);
	return rc;
}
