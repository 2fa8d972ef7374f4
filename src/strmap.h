/*
 * strmap.h - a string-keyed hash map (open addressing, FNV-1a), so lookups
 * stay O(1) at 10,000 projects. Keys are copied; values are borrowed
 * pointers the map never frees. Not thread-safe; one owner at a time.
 */
#ifndef BCE_STRMAP_H
#define BCE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* Sets @key to @value. Returns true if @key was new. */
bool strmap_put(struct strmap *m, const char *key, void *value);
/* Returns the value for @key, or NULL. @found (optional) tells a stored NULL apart. */
void *strmap_get(const struct strmap *m, const char *key, bool *found);
size_t strmap_size(const struct strmap *m);

#endif
