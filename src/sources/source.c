/*
 * source.c - see source.h.
 */
#include "sources/source.h"

#include <stdlib.h>

#include "aws/apistats.h"
#include "base/util.h"

void source_set_init(struct source_set *s, const struct source_def *const *table,
		     const struct conf *c)
{
	size_t n = 0;
	while (table[n])
		n++;
	s->v = xcalloc(n + 1, sizeof(*s->v));
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		s->v[i].def = table[i];
		apistats_register(table[i]->operations);
		s->v[i].priv = table[i]->create(c);
		s->v[i].enabled = table[i]->enabled(c);
	}
}

void source_set_free(struct source_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		s->v[i].def->destroy(s->v[i].priv);
		free(s->v[i].health.last_error);
		free(s->v[i].health.logged_error);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void *source_peer(const struct source_set *set, const struct source_def *def)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (set->v[i].def == def)
			return set->v[i].priv;
	return NULL;
}
