/*
 * textmap.h - a string-keyed hash map (open addressing, FNV-1a), so lookups
 * stay O(1) at 10,000 projects. Keys are copied; values are borrowed
 * pointers the map never frees. Not thread-safe; one owner at a time.
 */
#ifndef BCE_TEXTMAP_H
#define BCE_TEXTMAP_H

#include <stdbool.h>
#include <stddef.h>

struct textmap;

struct textmap *textmap_new(void);
void textmap_free(struct textmap *m);
/* Sets @key to @value. Returns true if @key was new. */
bool textmap_put(struct textmap *m, const char *key, void *value);
/* Returns the value for @key, or NULL. @found (optional) tells a stored NULL apart. */
void *textmap_get(const struct textmap *m, const char *key, bool *found);
size_t textmap_size(const struct textmap *m);

/*
 * A map from a pair of strings to a size_t, for hot loops over Cost Explorer
 * groups: no allocation per lookup and no key copies. The key strings are
 * BORROWED and must stay unchanged while the map lives. NULL reads as "".
 */
struct pairmap;

/* @hint: expected number of keys (0 is fine). Caller frees with pairmap_free(). */
struct pairmap *pairmap_new(size_t hint);
void pairmap_free(struct pairmap *m);
/*
 * Returns the value slot of (@a, @b), valid until the next insertion. A new
 * key is inserted with value 0 and *@inserted set true; otherwise false.
 */
size_t *pairmap_slot(struct pairmap *m, const char *a, const char *b, bool *inserted);
/* Returns the value slot of (@a, @b), or NULL if absent. */
const size_t *pairmap_find(const struct pairmap *m, const char *a, const char *b);

#endif
