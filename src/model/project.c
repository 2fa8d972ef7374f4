/*
 * project.c - see project.h.
 */
#include "model/project.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

const char *project_tag(const struct project *p, const char *key)
{
	size_t lo = 0, hi = p->ntags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(p->tags[mid].key, key);
		if (c == 0)
			return p->tags[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void project_free(struct project *p)
{
	free(p->id);
	free(p->name);
	free(p->arn);
	free(p->status);
	for (size_t i = 0; i < p->ntags; i++) {
		free(p->tags[i].key);
		free(p->tags[i].value);
	}
	free(p->tags);
	memset(p, 0, sizeof(*p));
}

void project_list_free(struct project_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		project_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void project_list_move(struct project_list *to, struct project_list *from)
{
	project_list_free(to);
	*to = *from;
	from->v = NULL;
	from->n = 0;
}

size_t project_catalog_count(const struct project_catalog *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nregions; i++)
		n += c->regions[i].projects.n;
	return n;
}

const struct project **project_catalog_flatten(const struct project_catalog *c,
						const char *account, size_t *n)
{
	const struct project **all = xcalloc(project_catalog_count(c) + 1, sizeof(*all));
	size_t k = 0;
	for (size_t i = 0; i < c->nregions; i++)
		if (!account || strcmp(c->regions[i].account, account) == 0)
			for (size_t j = 0; j < c->regions[i].projects.n; j++)
			all[k++] = &c->regions[i].projects.v[j];
	*n = k;
	return all;
}

const struct project *project_catalog_find(const struct project_catalog *c, const char *key)
{
	for (size_t i = 0; i < c->nregions; i++)
		for (size_t j = 0; j < c->regions[i].projects.n; j++) {
			const struct project *p = &c->regions[i].projects.v[j];
			if (strcmp(p->id, key) == 0 || strcmp(p->name, key) == 0)
				return p;
		}
	return NULL;
}

void project_catalog_free(struct project_catalog *c)
{
	for (size_t i = 0; i < c->nregions; i++) {
		free(c->regions[i].region);
		free(c->regions[i].account);
		project_list_free(&c->regions[i].projects);
		free(c->regions[i].last_error);
	}
	free(c->regions);
	c->regions = NULL;
	c->nregions = 0;
}
