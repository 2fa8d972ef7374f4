/*
 * statefile.c - see statefile.h.
 */
#include "statefile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "days.h"
#include "expfmt.h"
#include "util.h"

#define FORMAT "bedrock-cost-exporter-state"

/* cJSON prints numbers with 15 digits when they compare "close enough"; amounts
 * must round-trip exactly, so they are written as raw shortest-round-trip text. */
static void add_exact(cJSON *o, const char *k, double v)
{
	char num[32];
	cJSON_AddRawToObject(o, k, expfmt_format_double(v, num));
}
#define MAX_STATE_BYTES ((size_t)256 * 1024 * 1024)

static cJSON *strlist_json(const struct strlist *l)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < l->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
	return a;
}

static cJSON *series_json(const struct ce_series *s, const char *sig)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "signature", sig ? sig : "");
	cJSON *days = cJSON_AddArrayToObject(o, "days");
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		char ds[11];
		days_format(d->day, ds);
		cJSON *jd = cJSON_CreateObject();
		cJSON_AddStringToObject(jd, "day", ds);
		cJSON_AddBoolToObject(jd, "estimated", d->estimated);
		cJSON *gs = cJSON_AddArrayToObject(jd, "groups");
		for (size_t j = 0; j < d->n; j++) {
			cJSON *g = cJSON_CreateObject();
			cJSON *k = cJSON_AddArrayToObject(g, "k");
			for (int q = 0; q < 2 && d->g[j].k[q]; q++)
				cJSON_AddItemToArray(k, cJSON_CreateString(d->g[j].k[q]));
			add_exact(g, "amount", d->g[j].amount);
			cJSON_AddItemToArray(gs, g);
		}
		cJSON_AddItemToArray(days, jd);
	}
	return o;
}

static cJSON *projects_json(const struct region_state *regions, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t r = 0; r < n; r++) {
		if (!regions[r].has_data)
			continue;
		cJSON *a = cJSON_AddArrayToObject(o, regions[r].region);
		for (size_t i = 0; i < regions[r].projects.n; i++) {
			const struct project *p = &regions[r].projects.v[i];
			cJSON *jp = cJSON_CreateObject();
			cJSON_AddStringToObject(jp, "id", p->id);
			cJSON_AddStringToObject(jp, "name", p->name);
			cJSON_AddStringToObject(jp, "arn", p->arn);
			cJSON_AddStringToObject(jp, "status", p->status);
			add_exact(jp, "created_at", p->created_at);
			cJSON *t = cJSON_AddObjectToObject(jp, "tags");
			for (size_t k = 0; k < p->ntags; k++)
				cJSON_AddStringToObject(t, p->tags[k].key, p->tags[k].value);
			cJSON_AddItemToArray(a, jp);
		}
	}
	return o;
}

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

int statefile_save(const char *path, const struct ce_source *ce, const struct region_state *regions,
		   size_t nregions, double now, char *err, size_t errlen)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", FORMAT);
	cJSON_AddNumberToObject(root, "version", STATEFILE_VERSION);
	cJSON_AddNumberToObject(root, "written_at", now);
	cJSON *q = cJSON_AddObjectToObject(root, "ce_requests");
	char ds[11];
	days_format(ce->req_day, ds);
	cJSON_AddStringToObject(q, "day", ds);
	cJSON_AddNumberToObject(q, "count", (double)ce->req_count);
	cJSON *sv = cJSON_AddObjectToObject(root, "services");
	cJSON_AddNumberToObject(sv, "at", ce->services_at);
	cJSON_AddStringToObject(sv, "search", ce->services_search ? ce->services_search : "");
	cJSON_AddItemToObject(sv, "values", strlist_json(&ce->services));
	cJSON_AddNumberToObject(root, "costs_at", ce->costs_at);
	cJSON_AddItemToObject(root, "spend", series_json(&ce->spend, ce->spend_sig));
	cJSON_AddItemToObject(root, "models", series_json(&ce->models, ce->models_sig));
	if (ce->has_forecast) {
		cJSON *f = cJSON_AddObjectToObject(root, "forecast");
		days_format(ce->forecast_day, ds);
		cJSON_AddStringToObject(f, "day", ds);
		cJSON_AddNumberToObject(f, "at", ce->forecast_at);
		add_exact(f, "mean", ce->forecast_mean);
		add_exact(f, "lower", ce->forecast_lower);
		add_exact(f, "upper", ce->forecast_upper);
	}
	if (ce->tags_at > 0) {
		cJSON *t = cJSON_AddObjectToObject(root, "allocation_tags");
		cJSON_AddNumberToObject(t, "at", ce->tags_at);
		cJSON *a = cJSON_AddObjectToObject(t, "active");
		for (size_t i = 0; i < ce->tag_keys.n; i++)
			cJSON_AddBoolToObject(a, ce->tag_keys.v[i], ce->tag_active[i]);
	}
	cJSON_AddItemToObject(root, "projects", projects_json(regions, nregions));
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		abort();

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
	rc = write_all(fd, text, strlen(text));
	if (!rc && fsync(fd))
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
out:
	cJSON_free(text);
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
