/*
 * jsonarena.c - see jsonarena.h. The cJSON hooks are installed once per
 * process and consult a per-thread arena pointer, so threads that never call
 * jsonarena_begin() are unaffected.
 */
#include "jsonarena.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define REDZONE 16
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define REDZONE 0
#endif

#define ALIGN 16
#define FIRST_CHUNK ((size_t)1 << 20)
#define MAX_CHUNK ((size_t)16 << 20)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	alignas(ALIGN) unsigned char data[];
};

struct arena {
	struct chunk *head;
	size_t next_cap;
};

static _Thread_local struct arena *cur;

static void *arena_alloc(struct arena *a, size_t n)
{
	size_t need = (n + REDZONE + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	struct chunk *c = a->head;
	if (!c || c->cap - c->used < need) {
		size_t cap = a->next_cap;
		if (cap < need)
			cap = need;
		c = xmalloc(sizeof(*c) + cap);
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		POISON(c->data, cap);
		a->head = c;
		if (a->next_cap < MAX_CHUNK)
			a->next_cap *= 2;
	}
	void *p = c->data + c->used;
	c->used += need;
	UNPOISON(p, n);
	return p;
}

static void *hook_malloc(size_t n)
{
	return cur ? arena_alloc(cur, n) : malloc(n);
}

static void hook_free(void *p)
{
	if (!cur)
		free(p);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void)
{
	cJSON_Hooks h = { hook_malloc, hook_free };
	cJSON_InitHooks(&h);
}

void jsonarena_begin(void)
{
	pthread_once(&once, install);
	cur = xcalloc(1, sizeof(*cur));
	cur->next_cap = FIRST_CHUNK;
}

void jsonarena_end(void)
{
	struct arena *a = cur;
	cur = NULL;
	if (!a)
		return;
	for (struct chunk *c = a->head, *n; c; c = n) {
		n = c->next;
		UNPOISON(c->data, c->cap);
		free(c);
	}
	free(a);
}
