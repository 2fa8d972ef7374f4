/*
 * textmap.c - see textmap.h. Linear probing, load factor <= 1/2, FNV-1a (util.h).
 */
#include "base/textmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct slot {
	char *key;
	void *value;
	uint64_t hash;
};

struct textmap {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

static uint64_t str_hash(const char *s)
{
	return hash64(s, strlen(s), HASH64_INIT);
}

struct textmap *textmap_new(void)
{
	struct textmap *m = xcalloc(1, sizeof(*m));
	m->cap = 16;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	return m;
}

void textmap_free(struct textmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *find(const struct textmap *m, const char *key, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

static void grow(struct textmap *m)
{
	struct slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key)
			*find(m, old[i].key, old[i].hash) = old[i];
	free(old);
}

bool textmap_put(struct textmap *m, const char *key, void *value)
{
	if ((m->n + 1) * 2 > m->cap)
		grow(m);
	uint64_t h = str_hash(key);
	struct slot *s = find(m, key, h);
	if (s->key) {
		s->value = value;
		return false;
	}
	s->key = xstrdup(key);
	s->hash = h;
	s->value = value;
	m->n++;
	return true;
}

void *textmap_get(const struct textmap *m, const char *key, bool *found)
{
	struct slot *s = find(m, key, str_hash(key));
	if (found)
		*found = s->key != NULL;
	return s->key ? s->value : NULL;
}

size_t textmap_size(const struct textmap *m)
{
	return m->n;
}

struct pslot {
	const char *a, *b; /* borrowed; a == NULL: empty slot */
	uint64_t hash;
	size_t value;
};

struct pairmap {
	struct pslot *slots;
	size_t cap; /* power of two */
	size_t n;
};

static uint64_t pair_hash(const char *a, const char *b)
{
	/* a's NUL is hashed too: ("ab", "") and ("a", "b") hash apart */
	return hash64(b, strlen(b), hash64(a, strlen(a) + 1, HASH64_INIT));
}

struct pairmap *pairmap_new(size_t hint)
{
	struct pairmap *m = xcalloc(1, sizeof(*m));
	m->cap = 16;
	while (m->cap < 2 * hint)
		m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	return m;
}

void pairmap_free(struct pairmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

static struct pslot *pfind(const struct pairmap *m, const char *a, const char *b, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct pslot *s = &m->slots[i];
		if (!s->a || (s->hash == h && strcmp(s->a, a) == 0 && strcmp(s->b, b) == 0))
			return s;
	}
}

size_t *pairmap_slot(struct pairmap *m, const char *a, const char *b, bool *inserted)
{
	a = a ? a : "";
	b = b ? b : "";
	if ((m->n + 1) * 2 > m->cap) {
		struct pslot *old = m->slots;
		size_t oldcap = m->cap;
		m->cap *= 2;
		m->slots = xcalloc(m->cap, sizeof(*m->slots));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].a)
				*pfind(m, old[i].a, old[i].b, old[i].hash) = old[i];
		free(old);
	}
	uint64_t h = pair_hash(a, b);
	struct pslot *s = pfind(m, a, b, h);
	*inserted = !s->a;
	if (!s->a) {
		*s = (struct pslot){ a, b, h, 0 };
		m->n++;
	}
	return &s->value;
}

const size_t *pairmap_find(const struct pairmap *m, const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	const struct pslot *s = pfind(m, a, b, pair_hash(a, b));
	return s->a ? &s->value : NULL;
}
